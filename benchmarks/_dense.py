"""Data, indexes and reference searches shared by bench_dense.py and dense_report.py.

Vectors. With ``RAPIDRAG_BENCH_DENSE_CACHE`` (default ``/tmp/rapidrag-bench-cache``) holding the files written by
``benchmarks/dense_vectors.py``, the corpus is the gcide passages and the queries the SciFact queries, embedded with
the int8 all-MiniLM-L6-v2 (384 dimensions, normalised). Without them (or with the variable set to ``random``), both
are seeded random normal vectors, normalised: the same shapes, but no cluster structure, which makes approximate
search harder than on real embeddings. ``data.source`` says which one a run used.

====================================  ==============  ==================================================
setting (environment variable)        default         with RAPIDRAG_BENCH_FULL=1
====================================  ==============  ==================================================
RAPIDRAG_BENCH_DENSE_DOCS             2,000           0 = all 125,984 (random: 125,984)
RAPIDRAG_BENCH_DENSE_QUERIES          8               300 (single queries, one search call each)
====================================  ==============  ==================================================

Filters come from the real filter code: every row gets a random int ``bucket`` in [0, 1000) in a
``rapidrag.filters.MetadataIndex``, and ``{"bucket": {"$lt": 1000 * selectivity}}`` keeps that fraction of rows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import FULL, env_int

from rapidrag.dense import DenseIndex
from rapidrag.filters import MetadataIndex

DENSE_DOCS = env_int("RAPIDRAG_BENCH_DENSE_DOCS", 0 if FULL else 2_000)
DENSE_QUERIES = env_int("RAPIDRAG_BENCH_DENSE_QUERIES", 300 if FULL else 8)
CACHE = os.environ.get("RAPIDRAG_BENCH_DENSE_CACHE", "/tmp/rapidrag-bench-cache").strip()
CORPUS_FILE = "gcide-minilm-int8.npy"
QUERIES_FILE = "scifact-queries-minilm-int8.npy"
GCIDE_SIZE = 125_984
DIM = 384
SEED = 20261124
KINDS = ["flat", "hnsw", "ivfpq"]
SELECTIVITIES = [0.5, 0.1, 0.01, 0.001]
BUCKETS = 1000


@dataclass(frozen=True)
class DenseData:
    source: str  # "gcide (int8 MiniLM)" or "random"
    vectors: np.ndarray  # float32 [n, DIM], normalised
    queries: np.ndarray  # float32 [q, DIM], normalised
    meta: MetadataIndex  # a "bucket" int in [0, BUCKETS) per row


def _normalised(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load_data(docs: int = DENSE_DOCS, queries: int = DENSE_QUERIES) -> DenseData:
    """The first ``docs`` corpus vectors (0 = all) and ``queries`` query vectors, cached or random."""
    rng = np.random.default_rng(SEED)
    folder = Path(CACHE) if CACHE and CACHE != "random" else None
    if folder is not None and (folder / CORPUS_FILE).exists() and (folder / QUERIES_FILE).exists():
        source = "gcide (int8 MiniLM)"
        vectors = np.load(folder / CORPUS_FILE, mmap_mode="r")
        vectors = np.ascontiguousarray(vectors if docs <= 0 else vectors[:docs], dtype=np.float32)
        all_queries = np.load(folder / QUERIES_FILE)
        picked = rng.choice(len(all_queries), size=min(queries, len(all_queries)), replace=False)
        query_vectors = np.ascontiguousarray(all_queries[np.sort(picked)], dtype=np.float32)
    else:
        source = "random"
        vectors = _normalised(rng, GCIDE_SIZE if docs <= 0 else docs)
        query_vectors = _normalised(rng, queries)
    meta = MetadataIndex()
    meta.add([{"bucket": int(b)} for b in np.random.default_rng(SEED + 1).integers(0, BUCKETS, len(vectors))])
    return DenseData(source, vectors, query_vectors, meta)


def build(kind: str, vectors: np.ndarray) -> DenseIndex:
    """A DenseIndex with the default parameters over ``vectors`` (rows 0..n-1), added in one call."""
    index = DenseIndex(DIM, kind)  # type: ignore[arg-type]
    index.add(np.arange(len(vectors)), vectors)
    return index


def raw_params(index: DenseIndex) -> Any:
    """The FAISS search parameters DenseIndex passes for an unfiltered search (None for flat)."""
    faiss = index.faiss
    if index.kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=index.ef_search)
    if index.kind == "ivfpq":
        return faiss.SearchParametersIVF(nprobe=index.nprobe)
    return None


def raw_search(index: DenseIndex, params: Any, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same FAISS index called directly: (scores, ids), FAISS's order."""
    if params is None:
        return index._index.search(q, k)  # type: ignore[no-any-return]
    return index._index.search(q, k, params=params)  # type: ignore[no-any-return]


def selectivity_filter(selectivity: float) -> dict[str, Any]:
    return {"bucket": {"$lt": round(BUCKETS * selectivity)}}


def exact_topk(vectors: np.ndarray, allowed: np.ndarray | None, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top ``k`` rows per query over the allowed rows (all when None): int64 [q, k], -1 padded."""
    rows = np.arange(len(vectors)) if allowed is None else np.flatnonzero(allowed)
    scores = queries @ vectors[rows].T
    take = min(k, len(rows))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :take]
    out = np.full((len(queries), k), -1, dtype=np.int64)
    out[:, :take] = rows[top]
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (the -1 padding of ``truth`` not counted)."""
    values = []
    for f, t in zip(found, truth, strict=True):
        t = t[t >= 0]
        if len(t):
            values.append(len(np.intersect1d(f[f >= 0], t)) / len(t))
    return float(np.mean(values)) if values else 1.0


def post_filter_fetch(k: int, selectivity: float, n: int) -> int:
    """How many unfiltered hits the post-filter reference asks for: twice the expected need, at most 1,000."""
    return min(n, 1000, math.ceil(2 * k / selectivity))


def post_filter(index: DenseIndex, q: np.ndarray, k: int, fetch: int, allowed: np.ndarray) -> np.ndarray:
    """Search unfiltered for ``fetch`` hits, drop the disallowed, keep ``k`` (-1 padded): int64 [1, k]."""
    rows, _ = index.search(q, fetch)
    kept = [r for r in rows[0] if r >= 0 and allowed[r]][:k]
    return np.array([kept + [-1] * (k - len(kept))], dtype=np.int64)


def percentile_ms(times_s: list[float], p: float) -> float:
    return round(float(np.percentile(np.asarray(times_s), p)) * 1e3, 3)
