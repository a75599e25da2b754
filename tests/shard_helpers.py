"""What the tests of rapidrag.distributed share: the models, a SciFact sample with metadata to filter on, the
queries, and the comparison of two indexes' answers (used by test_distributed.py and ray_cluster_cases.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import rapidrag
from rapidrag.beir import load_corpus, load_qrels, load_queries

N_DOCS = 300


def make_embedder(minilm_dir: Path) -> rapidrag.Embedder:
    """fp32: an int8 model's dynamic quantization scales each batch by its own range, so the same passage
    embedded in another batch (another shard's) moves by about 1e-2; fp32 vectors agree to about 1e-6."""
    return rapidrag.Embedder(minilm_dir, max_length=128)


def make_corpus(scifact_dir: Path) -> list[dict[str, Any]]:
    """SciFact documents with a year and a list of tags to filter on; the judged ones first, so queries find them."""
    docs = load_corpus(scifact_dir)
    judged = {d for rel in load_qrels(scifact_dir / "qrels" / "test.tsv").values() for d in rel}
    docs = sorted(docs, key=lambda d: d["_id"] not in judged)[:N_DOCS]
    return [
        {"id": d["_id"], "title": d["title"], "text": d["text"], "year": 1990 + i % 30, "tags": [f"t{i % 7}", "all"]}
        for i, d in enumerate(docs)
    ]


def make_queries(scifact_dir: Path) -> list[str]:
    q = load_queries(scifact_dir)
    return [q[i] for i in list(load_qrels(scifact_dir / "qrels" / "test.tsv"))[:25]]


def results(r: Any, queries: list[str], **kw: Any) -> list[list[tuple[str, int, int, int, float]]]:
    return [[(h.doc_id, h.chunk_id, h.start, h.end, h.score) for h in r.search(q, k=10, **kw)] for q in queries]


def same(got: list[list[tuple[Any, ...]]], want: list[list[tuple[Any, ...]]], atol: float = 1e-6) -> None:
    for g, w in zip(got, want, strict=True):
        assert [x[:4] for x in g] == [x[:4] for x in w]
        np.testing.assert_allclose([x[4] for x in g], [x[4] for x in w], rtol=1e-5, atol=atol)
