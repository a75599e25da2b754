"""Fusion of ranked lists: reciprocal rank fusion and a normalised weighted sum of scores (kernels in the native
core, ``cpp/src/fusion.cpp``).

Each input is one retriever's result for one query: ``rows`` (int64 document rows, best first) and, for the weighted
sum, their ``scores``. A document missing from a list gets nothing from it under RRF, and the list's lowest
normalised score (0 after min-max) under the weighted sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core

__all__ = ["reciprocal_rank_fusion", "rerank_mix", "weighted_fusion", "zscore"]

IntArray = npt.NDArray[np.int64]
F32Array = npt.NDArray[np.float32]


def _pack(lists: Sequence[Any], weights: Sequence[float] | None, name: str) -> tuple[IntArray, IntArray, Any]:
    if weights is None:
        weights = [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError(f"{name}: {len(lists)} lists but {len(weights)} weights")
    arrays = [np.asarray(x, dtype=np.int64).ravel() for x in lists]
    row_splits = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=row_splits[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return flat, row_splits, np.asarray(weights, dtype=np.float64)


def _ranked(uniq: IntArray, fused: Any, k: int | None) -> tuple[IntArray, F32Array]:
    order = np.lexsort((uniq, -fused))  # best first; ties by row, so results are deterministic
    if k is not None:
        order = order[:k]
    return uniq[order], fused[order].astype(np.float32)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int] | IntArray],
    *,
    rrf_k: float = 60.0,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> tuple[IntArray, F32Array]:
    """RRF: each document scores sum_j weights[j] / (rrf_k + rank_j), rank from 1. Returns (rows, scores), best
    first."""
    if not rrf_k >= 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k!r}")
    rows, row_splits, w = _pack(rankings, weights, "reciprocal_rank_fusion")
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    uniq, fused = _core.fuse_reciprocal_rank(rows, row_splits, w, float(rrf_k))
    return _ranked(uniq, fused, top_k)


def weighted_fusion(
    results: Sequence[tuple[Sequence[int] | IntArray, Sequence[float] | npt.NDArray[np.floating[Any]]]],
    *,
    weights: Sequence[float] | None = None,
    normalization: str = "minmax",
    top_k: int | None = None,
) -> tuple[IntArray, F32Array]:
    """Sum of weights[j] * normalised score_j, with scores normalised per list ("minmax" to [0, 1], or "zscore").
    A document absent from a list gets that list's lowest normalised score. Returns (rows, scores), best first."""
    if normalization not in ("minmax", "zscore"):
        raise ValueError(f"normalization must be 'minmax' or 'zscore', got {normalization!r}")
    for j, (rows_j, scores_j) in enumerate(results):
        if len(rows_j) != len(scores_j):
            raise ValueError(f"weighted_fusion: list {j} has {len(rows_j)} rows but {len(scores_j)} scores")
    rows, row_splits, w = _pack([r for r, _ in results], weights, "weighted_fusion")
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for _, s in results])
    if not np.isfinite(scores).all():
        raise ValueError("weighted_fusion: scores must be finite")
    uniq, fused = _core.fuse_weighted(rows, scores, row_splits, w, normalization == "zscore")
    return _ranked(uniq, fused, top_k)


def zscore(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(x - mean) / std`` in float64; all zeros when the values are all equal."""
    a = np.asarray(x, dtype=np.float64)
    sd = a.std()
    return (a - a.mean()) / sd if sd > 0 else np.zeros_like(a)


def rerank_mix(
    rerank: npt.ArrayLike, first: npt.ArrayLike, weight: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The final order of candidates of which the first ``len(rerank)`` were scored by a reranker.

    ``first``: the first-stage scores of all candidates, best first. The scored ones are ordered by
    ``weight * z(rerank) + (1 - weight) * z(first-stage)`` (z over the scored ones: ``weight`` 1.0 is the reranker
    alone); the unscored keep their order below every scored one. Returns (positions into the candidates in the
    final order, their final scores).
    """
    raw = np.asarray(rerank, dtype=np.float64)
    base = np.asarray(first, dtype=np.float64)
    n = len(raw)
    if n > len(base):
        raise ValueError(f"{n} reranker scores for {len(base)} candidates")
    if n == 0:
        return np.arange(len(base), dtype=np.int64), base.copy()
    mixed = weight * zscore(raw) + (1.0 - weight) * zscore(base[:n])
    top = np.argsort(-mixed, kind="stable")
    tail = mixed.min() - 1.0 - 1e-3 * np.arange(len(base) - n)
    order = np.concatenate([top, np.arange(n, len(base))]).astype(np.int64)
    return order, np.concatenate([mixed[top], tail])
