"""Fixtures of the tokenizer and chunker tests, and of the sharded-index tests; the shared data and model fixtures
live in the root conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import rapidrag
from rapidrag.beir import load_corpus, load_qrels, load_queries

# The helper modules beside this file (unicode_stress, tok_helpers) are imported by name from the test modules;
# put this folder on sys.path so that works under every pytest import mode, importlib included.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import unicode_stress  # noqa: E402


@pytest.fixture(scope="session")
def stress_texts() -> list[str]:
    """The Unicode stress set (no lone surrogates): parity with the reference is checked on all of it."""
    return unicode_stress.stress_texts()


@pytest.fixture(scope="session")
def surrogate_texts() -> list[str]:
    """Strings with lone surrogates, for rapidrag-only tests."""
    return unicode_stress.surrogate_texts()


@pytest.fixture(scope="session")
def vocab_path(minilm_dir: Path) -> Path:
    return minilm_dir / "vocab.txt"


@pytest.fixture(scope="session")
def rr_tokenizer(vocab_path: Path):  # type: ignore[no-untyped-def]
    """rapidrag's tokenizer on the embedder's vocab.txt, default (uncased BERT) options."""
    import rapidrag

    return rapidrag.Tokenizer.from_file(str(vocab_path))


class _ShortRepr:
    """Delegates to the wrapped object; hypothesis prints fixtures of a failing example, and HF's repr is the vocab."""

    def __init__(self, obj: object, name: str) -> None:
        self._obj = obj
        self._name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(self._obj, attr)

    def __repr__(self) -> str:
        return f"<{self._name}>"


@pytest.fixture(scope="session")
def hf_ref(hf_tokenizer):  # type: ignore[no-untyped-def]
    """The root ``hf_tokenizer`` with a short repr, for hypothesis tests."""
    return _ShortRepr(hf_tokenizer, "hf_tokenizer")


SHARD_DOCS = 300  # the documents of the sharded-index tests (test_distributed.py, ray_cluster_cases.py)


@pytest.fixture(scope="session")
def shard_embedder(minilm_dir: Path) -> rapidrag.Embedder:
    """fp32: an int8 model's dynamic quantization scales each batch by its own range, so the same passage
    embedded in another batch (another shard's) moves by about 1e-2; fp32 vectors agree to about 1e-6."""
    return rapidrag.Embedder(minilm_dir, max_length=128)


@pytest.fixture(scope="session")
def shard_corpus(scifact_dir: Path) -> list[dict[str, Any]]:
    """SciFact documents with a year and a list of tags to filter on; the judged ones first, so queries find them."""
    docs = load_corpus(scifact_dir)
    judged = {d for rel in load_qrels(scifact_dir / "qrels" / "test.tsv").values() for d in rel}
    docs = sorted(docs, key=lambda d: d["_id"] not in judged)[:SHARD_DOCS]
    return [
        {"id": d["_id"], "title": d["title"], "text": d["text"], "year": 1990 + i % 30, "tags": [f"t{i % 7}", "all"]}
        for i, d in enumerate(docs)
    ]


@pytest.fixture(scope="session")
def shard_queries(scifact_dir: Path) -> list[str]:
    q = load_queries(scifact_dir)
    return [q[i] for i in list(load_qrels(scifact_dir / "qrels" / "test.tsv"))[:25]]
