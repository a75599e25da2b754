"""Fixtures shared by tests/ and benchmarks/: the ../shared data and models, found through RAPIDRAG_SHARED.

Where RAPIDRAG_REQUIRE_DATA=1 (as in CI), a missing file fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent


def shared_dir() -> Path:
    return Path(os.environ.get("RAPIDRAG_SHARED", ROOT.parent / "shared")).resolve()


def require_shared(relative: str) -> Path:
    """Path of a file or folder under the shared directory; skip (or fail under RAPIDRAG_REQUIRE_DATA) if absent."""
    path = shared_dir() / relative
    if not path.exists():
        message = f"shared data missing: {path} (set RAPIDRAG_SHARED to the shared folder)"
        if os.environ.get("RAPIDRAG_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return require_shared("models/all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def reranker_dir() -> Path:
    return require_shared("models/minilm-l6-reranker")


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    return require_shared("data/beir/scifact")


@pytest.fixture(scope="session")
def gcide_corpus() -> Path:
    return require_shared("data/corpora/gcide/corpus.jsonl.gz")


@pytest.fixture(scope="session")
def scifact_texts(scifact_dir: Path) -> list[str]:
    from rapidrag.beir import document_text, load_corpus

    return [document_text(d) for d in load_corpus(scifact_dir)]


@pytest.fixture(scope="session")
def gcide_texts(gcide_corpus: Path) -> list[str]:
    from rapidrag.beir import document_text, load_corpus

    return [document_text(d) for d in load_corpus(gcide_corpus)]


@pytest.fixture(scope="session")
def hf_tokenizer(minilm_dir: Path):  # type: ignore[no-untyped-def]
    """The reference: HF tokenizers on the embedder's tokenizer.json, padding and truncation off."""
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@dataclass(frozen=True)
class Served:
    url: str
    pid: int


@contextmanager
def serving(index_dir: Path, log: Path, env: dict[str, str], extra: Sequence[str] = ()) -> Iterator[Served]:
    """``rapidrag serve index_dir`` in a child process on a free loopback port, with ``env`` added to the
    environment; yields its URL and pid once ``/healthz`` answers, and stops it after. Output goes to ``log``."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "rapidrag.cli", "serve", str(index_dir), "--port", str(port), *extra]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="session")
def serve_index() -> Callable[..., Any]:
    """``serving`` (above), for tests and benchmarks that run ``rapidrag serve`` in a child process."""
    return serving
