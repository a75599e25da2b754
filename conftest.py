"""Fixtures shared by tests/ and benchmarks/: the ../shared data and models, found through RAPIDRAG_SHARED.

Where RAPIDRAG_REQUIRE_DATA=1 (as in CI), a missing file fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

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
