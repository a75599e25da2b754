"""Dense search: rapidrag.DenseIndex against the same FAISS index called directly, and filtered search.

Unfiltered (groups ``dense-search-<kind>-k<k>``): single queries (batches of 1), one ``search`` call each, top 10
and top 100, against ``index._index.search(q, k)`` on the very FAISS object the DenseIndex wraps, with the search
parameters it passes (HNSW ``efSearch``, IVF ``nprobe``). IVF-PQ re-scores ``refine * k`` candidates exactly, so it
has two peers: FAISS asked for ``k`` (the overhead a user sees, refinement included) and FAISS asked for
``refine * k`` (the wrapper's own cost: the re-scoring and the Python around the call). Checks: flat and HNSW return
the rows FAISS returns; IVF-PQ returns FAISS's ``refine * k`` candidates re-scored; recall@k against exact search is
in extra_info.

Filtered (groups ``dense-filtered-<kind>``): a metadata filter keeps 50%, 10%, 1% or 0.1% of the rows (see
_dense.py); ``search(q, 10, mask=mask)`` one query at a time, recall@10 against brute force over the allowed rows,
latency p50/p95 per query. The mask is evaluated once per selectivity and timed apart (group ``dense-filter-mask``).
The reference "post-filter" searches unfiltered for up to 1,000 hits and drops the disallowed ones. Checks: every
hit is allowed, and recall@10 is at least the issue's 0.99 (rapidrag rows).

Searches run on one FAISS thread (the indexes are built on all cores): FAISS splits a batch by query.

Data and sizes: _dense.py (gcide passages embedded by ``benchmarks/dense_vectors.py`` when cached, else random
vectors). The interleaved overhead ratios in BENCHMARKS.md come from ``benchmarks/dense_report.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _common import record, run_timed
from _dense import (
    KINDS,
    SELECTIVITIES,
    DenseData,
    build,
    exact_topk,
    load_data,
    percentile_ms,
    post_filter,
    post_filter_fetch,
    raw_params,
    raw_search,
    recall,
    selectivity_filter,
)

from rapidrag.dense import DenseIndex

faiss = pytest.importorskip("faiss")

RECALL_GOAL = 0.99
_INDEXES: dict[str, DenseIndex] = {}


@pytest.fixture(scope="module")
def data() -> DenseData:
    return load_data()


@pytest.fixture(scope="module", autouse=True)
def search_threads() -> Iterator[None]:
    """Search single queries on one FAISS thread: FAISS splits a batch by query, so a second OpenMP thread has
    nothing to do for one query but wait at the barrier, and on a busy machine that wait costs milliseconds."""
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(saved)


def index_of(kind: str, data: DenseData) -> DenseIndex:
    """One index per kind for the whole module (an HNSW graph of the full corpus takes minutes to build). Large
    ones are built on all cores; small ones on one, where OpenMP's barriers on a busy machine cost more than the
    work (the CI smoke run)."""
    if kind not in _INDEXES:
        saved = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads((os.cpu_count() or 1) if len(data.vectors) > 20_000 else 1)
        try:
            _INDEXES[kind] = build(kind, data.vectors)
        finally:
            faiss.omp_set_num_threads(saved)
    return _INDEXES[kind]


def note(benchmark: Any, data: DenseData, library: str, text: str, **extra: Any) -> None:
    record(benchmark, library, data.queries.nbytes, timed=False, docs=len(data.vectors), note=text, **extra)


def per_query_us(benchmark: Any, n: int) -> float | None:
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return round(stats.median / n * 1e6, 1) if stats is not None and stats.median > 0 else None


@pytest.mark.parametrize("library", ["rapidrag", "faiss", "faiss (fetch refine*k)"])
@pytest.mark.parametrize("k", [10, 100])
@pytest.mark.parametrize("kind", KINDS)
def test_search(benchmark: Any, data: DenseData, kind: str, k: int, library: str) -> None:
    if library == "faiss (fetch refine*k)" and kind != "ivfpq":
        pytest.skip("only IVF-PQ fetches more than k")
    index = index_of(kind, data)
    benchmark.group = f"dense-search-{kind}-k{k}"
    queries = [data.queries[i : i + 1] for i in range(len(data.queries))]
    params = raw_params(index)
    fetch = k * index.refine if library == "faiss (fetch refine*k)" else k

    def run() -> np.ndarray:
        if library == "rapidrag":
            return np.vstack([index.search(q, k)[0] for q in queries])
        return np.vstack([raw_search(index, params, q, fetch)[1] for q in queries])

    rows = run_timed(benchmark, run)
    if library == "rapidrag":
        candidates = k * index.refine if kind == "ivfpq" else k
        raw = np.vstack([raw_search(index, params, q, candidates)[1] for q in queries]).astype(np.int64)
        expected = index._rescore(data.queries, raw, k)[0] if kind == "ivfpq" else raw
        np.testing.assert_array_equal(rows, expected)  # the wrapper returns what FAISS found
    assert rows.shape == (len(queries), k if library == "rapidrag" else fetch)
    assert (rows[:, :k] >= 0).all() and (rows < len(data.vectors)).all()
    got = recall(rows[:, :k], exact_topk(data.vectors, None, data.queries, k))
    if kind == "ivfpq":
        # Exact re-scoring of a superset of FAISS's top k cannot lose any of its true neighbours.
        floor = 0.0 if library != "rapidrag" else recall(raw[:, :k], exact_topk(data.vectors, None, data.queries, k))
    else:
        floor = 1.0 if kind == "flat" else 0.8
    assert got >= floor - 1e-9, f"recall@{k} {got:.4f} < {floor:.4f} ({kind}, {library})"
    note(
        benchmark,
        data,
        library,
        f"{data.source}, recall@{k}={got:.4f}, µs/query={per_query_us(benchmark, len(queries))}",
        **{f"recall@{k}": round(got, 4), "us/query (median)": per_query_us(benchmark, len(queries))},
    )


@pytest.mark.parametrize("selectivity", SELECTIVITIES)
@pytest.mark.benchmark(group="dense-filter-mask")
def test_filter_mask(benchmark: Any, data: DenseData, selectivity: float) -> None:
    spec = selectivity_filter(selectivity)
    mask = run_timed(benchmark, lambda: data.meta.mask(spec))
    kept = float(mask.mean())
    assert mask.dtype == np.bool_ and mask.shape == (len(data.vectors),)
    assert abs(kept - selectivity) <= max(0.2 * selectivity, 3 / len(mask) ** 0.5)
    note(benchmark, data, "rapidrag", f"{data.source}, kept {mask.sum()} rows ({kept:.4%})", kept=int(mask.sum()))


@pytest.mark.parametrize("library", ["rapidrag", "post-filter"])
@pytest.mark.parametrize("selectivity", SELECTIVITIES)
@pytest.mark.parametrize("kind", KINDS)
def test_filtered(benchmark: Any, data: DenseData, kind: str, selectivity: float, library: str) -> None:
    k = 10
    index = index_of(kind, data)
    benchmark.group = f"dense-filtered-{kind}"
    mask = data.meta.mask(selectivity_filter(selectivity))
    queries = [data.queries[i : i + 1] for i in range(len(data.queries))]
    fetch = post_filter_fetch(k, selectivity, len(index))
    times: list[float] = []

    def run() -> np.ndarray:
        out = []
        for q in queries:
            start = time.perf_counter()
            if library == "rapidrag":
                out.append(index.search(q, k, mask=mask)[0])
            else:
                out.append(post_filter(index, q, k, fetch, mask))
            times.append(time.perf_counter() - start)
        return np.vstack(out)

    rows = run_timed(benchmark, run)
    hits = rows[rows >= 0]
    assert mask[hits].all(), "a filtered search returned a row the filter excludes"
    got = recall(rows, exact_topk(data.vectors, mask, data.queries, k))
    p50, p95 = percentile_ms(times, 50), percentile_ms(times, 95)
    note(
        benchmark,
        data,
        library,
        f"{data.source}, {selectivity:.1%} kept, recall@10={got:.4f}, p50={p50} ms, p95={p95} ms"
        + (f", fetch={fetch}" if library == "post-filter" else ""),
        selectivity=selectivity,
        **{"recall@10": round(got, 4), "p50 ms": p50, "p95 ms": p95},
    )
    if library == "rapidrag":
        assert got >= RECALL_GOAL, f"filtered recall@10 {got:.4f} < {RECALL_GOAL} ({kind}, {selectivity:.1%} kept)"
