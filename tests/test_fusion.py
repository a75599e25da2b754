"""rapidrag.fusion: the native kernels against the formulas written out in Python."""

from __future__ import annotations

import numpy as np
import pytest

from rapidrag.fusion import reciprocal_rank_fusion, weighted_fusion


def reference_rrf(rankings: list[list[int]], k: float, weights: list[float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for w, ranking in zip(weights, rankings, strict=True):
        for rank, row in enumerate(ranking, 1):
            out[row] = out.get(row, 0.0) + w / (k + rank)
    return out


def reference_weighted(results: list[tuple[list[int], list[float]]], weights: list[float], z: bool) -> dict[int, float]:
    rows = sorted({r for rs, _ in results for r in rs})
    out = dict.fromkeys(rows, 0.0)
    for w, (rs, ss) in zip(weights, results, strict=True):
        s = np.array(ss, dtype=np.float64)
        if z:
            norm = (s - s.mean()) / s.std() if s.std() > 0 else np.zeros_like(s)
        else:
            norm = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.ones_like(s)
        floor = norm.min() if z else 0.0
        given = dict(zip(rs, norm.tolist(), strict=True))
        for r in rows:
            out[r] += w * given.get(r, floor)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_rrf_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rankings = [rng.choice(50, size=int(rng.integers(0, 30)), replace=False).tolist() for _ in range(3)]
    weights = rng.uniform(0.1, 2.0, size=3).tolist()
    rows, scores = reciprocal_rank_fusion(rankings, rrf_k=60, weights=weights)
    ref = reference_rrf(rankings, 60, weights)
    assert sorted(rows.tolist()) == sorted(ref)
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        assert score == pytest.approx(ref[row], rel=1e-6)
    assert list(scores) == sorted(scores, reverse=True)
    top, _ = reciprocal_rank_fusion(rankings, rrf_k=60, weights=weights, top_k=5)
    assert top.tolist() == rows[:5].tolist()


@pytest.mark.parametrize("z", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_weighted_matches_reference(seed: int, z: bool) -> None:
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(2):
        rows = rng.choice(40, size=int(rng.integers(1, 25)), replace=False).tolist()
        results.append((rows, rng.normal(size=len(rows)).tolist()))
    weights = [0.3, 0.7]
    rows_out, scores = weighted_fusion(results, weights=weights, normalization="zscore" if z else "minmax")
    ref = reference_weighted(results, weights, z)
    assert sorted(rows_out.tolist()) == sorted(ref)
    for row, score in zip(rows_out.tolist(), scores.tolist(), strict=True):
        assert score == pytest.approx(ref[row], rel=1e-5, abs=1e-6)


def test_edge_cases_and_errors() -> None:
    rows, scores = reciprocal_rank_fusion([[], []])
    assert len(rows) == 0 and len(scores) == 0
    rows, _ = reciprocal_rank_fusion([[3, 1], [1, 3]])  # a tie: broken by row, deterministic
    assert rows.tolist() == [1, 3]
    rows, scores = weighted_fusion([([7], [5.0]), ([], [])])  # one-item list: normalised to 1
    assert rows.tolist() == [7] and scores.tolist() == [1.0]
    with pytest.raises(ValueError, match="2 lists but 1 weights"):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])
    with pytest.raises(ValueError, match="1 rows but 2 scores"):
        weighted_fusion([([1], [0.1, 0.2])])
    with pytest.raises(ValueError, match="finite"):
        weighted_fusion([([1, 2], [0.1, float("nan")])])
    with pytest.raises(ValueError, match="normalization"):
        weighted_fusion([([1], [1.0])], normalization="rank")


def test_rerank_mix_orders_the_scored_prefix_and_keeps_the_rest() -> None:
    from rapidrag.fusion import rerank_mix, zscore

    first = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    rerank = np.array([0.0, 2.0, 1.0])  # the first three scored
    order, final = rerank_mix(rerank, first, 1.0)  # the reranker alone
    assert order.tolist() == [1, 2, 0, 3, 4] and np.all(np.diff(final) < 0)
    order, _ = rerank_mix(rerank, first, 0.0)  # the first stage alone
    assert order.tolist() == [0, 1, 2, 3, 4]
    order, final = rerank_mix(rerank, first, 0.5)
    mixed = 0.5 * zscore(rerank) + 0.5 * zscore(first[:3])
    assert order[:3].tolist() == np.argsort(-mixed, kind="stable").tolist() and order[3:].tolist() == [3, 4]
    assert final[3] < final[2]  # the unscored below every scored one
    assert rerank_mix([], first, 0.5)[0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="6 reranker scores for 5 candidates"):
        rerank_mix(np.zeros(6), first, 0.5)
