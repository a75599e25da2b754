"""Dense search figures for BENCHMARKS.md: wrapper overhead against raw FAISS, and filtered recall and latency.

    python benchmarks/dense_report.py [--docs 0] [--queries 300] [--reps 5] [--search-threads 1] [--out FILE]

The compared variants run interleaved, query by query in a new random order for each query (seeded), in one
process, so that a shared machine's drift hits them alike and no variant always runs after the same neighbour (whose
warm caches or still-spinning threads it would inherit); the ratios are what to read. Data as in _dense.py (the
cached gcide vectors from ``benchmarks/dense_vectors.py`` when present, else random); every index uses DenseIndex's
default parameters.

Overhead: single queries, k = 10 and 100, no filter; ``DenseIndex.search`` against ``index._index.search`` on the
same FAISS object with the same parameters (one parameter object made once, as a user of FAISS would). IVF-PQ also
against FAISS asked for ``refine * k`` (what the wrapper fetches) and the re-scoring step alone.

Filtered: recall@10 against brute force over the allowed rows and latency per query (p50, p95) of
``search(q, 10, mask=mask)``; the path DenseIndex takes (exact over the allowed rows, or the FAISS index with an ID
selector); the post-filter reference (unfiltered search for up to 1,000 hits, disallowed ones dropped); and, for
HNSW and IVF-PQ, the in-index path forced (``exact_fraction = exact_rows = 0``) to show what the exact fallback is for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _dense import (
    KINDS,
    SELECTIVITIES,
    build,
    exact_topk,
    load_data,
    post_filter,
    post_filter_fetch,
    raw_params,
    raw_search,
    recall,
    selectivity_filter,
)

from rapidrag.dense import DenseIndex


def interleaved(variants: dict[str, Callable[[int], Any]], n_queries: int, reps: int) -> dict[str, Any]:
    """Run every variant on every query ``reps`` times, in a random order each time; per-call seconds and last
    results."""
    names = list(variants)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[Any]] = {name: [None] * n_queries for name in names}
    for name in names:  # warm-up, untimed
        variants[name](0)
    for _ in range(reps):
        for qi in range(n_queries):
            for name in rng.permutation(names).tolist():
                start = time.perf_counter()
                out = variants[name](qi)
                times[name].append(time.perf_counter() - start)
                results[name][qi] = out
    return {"times": times, "results": results}


def stats_us(times: list[float]) -> dict[str, float]:
    t = np.asarray(times) * 1e6
    return {
        "p50_us": round(float(np.median(t)), 1),
        "mean_us": round(float(t.mean()), 1),
        "p95_us": round(float(np.percentile(t, 95)), 1),
    }


def overhead(index: DenseIndex, queries: np.ndarray, k: int, reps: int) -> dict[str, Any]:
    params = raw_params(index)
    qs = [queries[i : i + 1] for i in range(len(queries))]
    variants: dict[str, Callable[[int], Any]] = {
        "rapidrag": lambda i: index.search(qs[i], k)[0],
        "faiss k": lambda i: raw_search(index, params, qs[i], k)[1],
    }
    if index.kind == "ivfpq":
        fetch = k * index.refine
        candidates = [raw_search(index, params, q, fetch)[1].astype(np.int64) for q in qs]
        variants["faiss refine*k"] = lambda i: raw_search(index, params, qs[i], fetch)[1]
        variants["rescore only"] = lambda i: index._rescore(qs[i], candidates[i], k)[0]
        vectors = index.vectors(np.arange(len(index._alive)))

        def by_hand(i: int) -> np.ndarray:
            """FAISS for the same candidates, re-scored in numpy as a user would (gather, product, top k)."""
            ids = raw_search(index, params, qs[i], fetch)[1][0]
            ids = ids[ids >= 0]
            scores = vectors[ids] @ qs[i][0]
            top = np.argpartition(-scores, k - 1)[:k] if len(ids) > k else np.arange(len(ids))
            return ids[top[np.argsort(-scores[top])]][None, :]

        variants["faiss refine*k + numpy re-score"] = by_hand
    run = interleaved(variants, len(qs), reps)
    out = {name: stats_us(t) for name, t in run["times"].items()}
    base = out["faiss k"]
    for name in out:
        out[name]["ratio_p50"] = round(out[name]["p50_us"] / base["p50_us"], 3)
        out[name]["ratio_mean"] = round(out[name]["mean_us"] / base["mean_us"], 3)
    if index.kind == "ivfpq":
        ref = out["faiss refine*k"]
        out["rapidrag"]["ratio_p50_vs_fetch"] = round(out["rapidrag"]["p50_us"] / ref["p50_us"], 3)
        out["rapidrag"]["ratio_mean_vs_fetch"] = round(out["rapidrag"]["mean_us"] / ref["mean_us"], 3)
        hand = out["faiss refine*k + numpy re-score"]
        out["rapidrag"]["ratio_p50_vs_by_hand"] = round(out["rapidrag"]["p50_us"] / hand["p50_us"], 3)
        out["rapidrag"]["ratio_mean_vs_by_hand"] = round(out["rapidrag"]["mean_us"] / hand["mean_us"], 3)
    truth = exact_topk(index.vectors(np.arange(len(index._alive))), None, queries, k)
    for name in ("rapidrag", "faiss k") + (("faiss refine*k + numpy re-score",) if index.kind == "ivfpq" else ()):
        out[name][f"recall@{k}"] = round(recall(np.vstack(run["results"][name])[:, :k], truth), 4)
    return out


def filtered(index: DenseIndex, queries: np.ndarray, mask: np.ndarray, selectivity: float, reps: int) -> dict[str, Any]:
    k = 10
    qs = [queries[i : i + 1] for i in range(len(queries))]
    fetch = post_filter_fetch(k, selectivity, len(index))

    def forced(i: int) -> np.ndarray:
        saved = index.exact_fraction, index.exact_rows
        index.exact_fraction, index.exact_rows = 0.0, 0
        try:
            return index.search(qs[i], k, mask=mask)[0]
        finally:
            index.exact_fraction, index.exact_rows = saved

    variants: dict[str, Callable[[int], Any]] = {
        "rapidrag": (lambda i: index.search(qs[i], k, mask=mask)[0])
        if selectivity < 1
        else (lambda i: index.search(qs[i], k)[0])  # the unfiltered reference: no mask at all
    }
    if selectivity < 1:
        variants["post-filter"] = lambda i: post_filter(index, qs[i], k, fetch, mask)
        if index.kind != "flat":
            variants["in-index forced"] = forced
    run = interleaved(variants, len(qs), reps)
    truth = exact_topk(index.vectors(np.arange(len(index._alive))), mask, queries, k)
    n_allowed = int(mask.sum())
    exact = index.kind == "flat" or (
        selectivity < 1 and n_allowed <= max(index.exact_fraction * len(index), index.exact_rows)
    )
    path = "exact" if exact else "faiss + selector" if selectivity < 1 else "faiss, no filter"
    out: dict[str, Any] = {"allowed": n_allowed, "path": path}
    if index.kind == "hnsw" and not exact:
        out["efSearch"] = int(min(max(index.ef_search, index.ef_search / (n_allowed / len(index))), 1024))
    if "post-filter" in variants:
        out["post_filter_fetch"] = fetch
    for name, t in run["times"].items():
        rows = np.vstack(run["results"][name])
        if selectivity < 1 and not mask[rows[rows >= 0]].all():
            raise AssertionError(f"{name}: a filtered search returned a row the filter excludes")
        out[name] = {"recall@10": round(recall(rows, truth), 4), **stats_us(t)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="corpus vectors (0 = all)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5, help="timed calls per query and variant")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads while searching (0 = FAISS's default); indexes are built with the default",
    )
    parser.add_argument("--out", default="dense_report.json")
    args = parser.parse_args()
    import faiss

    build_threads = faiss.omp_get_max_threads()
    data = load_data(args.docs, args.queries)
    report: dict[str, Any] = {
        "source": data.source,
        "docs": len(data.vectors),
        "queries": len(data.queries),
        "reps": args.reps,
        "cpu_count": os.cpu_count(),
        "faiss": faiss.__version__,
        "faiss_build_threads": build_threads,
        "faiss_search_threads": args.search_threads or build_threads,
        "openblas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "mask_ms": {},
        "kinds": {},
    }
    print(f"data: {data.source}, {len(data.vectors)} vectors, {len(data.queries)} queries", flush=True)
    masks = {}
    for s in SELECTIVITIES:
        spec = selectivity_filter(s)
        t = []
        for _ in range(21):
            start = time.perf_counter()
            masks[s] = data.meta.mask(spec)
            t.append(time.perf_counter() - start)
        report["mask_ms"][str(s)] = {"p50_ms": round(float(np.median(t)) * 1e3, 3), "kept": int(masks[s].sum())}
    print("mask", report["mask_ms"], flush=True)
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        faiss.omp_set_num_threads(build_threads)
        index = build(kind, data.vectors)
        faiss.omp_set_num_threads(args.search_threads or build_threads)
        entry: dict[str, Any] = {"build_s": round(time.perf_counter() - start, 1)}
        if kind == "ivfpq":
            entry.update(nlist=index.nlist, pq_m=index.pq_m, nprobe=index.nprobe, refine=index.refine)
        if kind == "hnsw":
            entry.update(M=index.hnsw_m, efConstruction=index.ef_construction, efSearch=index.ef_search)
        print(kind, entry, flush=True)
        for k in (10, 100):
            entry[f"overhead_k{k}"] = overhead(index, data.queries, k, args.reps)
            print(kind, f"k={k}", entry[f"overhead_k{k}"], flush=True)
        all_rows = np.ones(len(data.vectors), dtype=bool)
        entry["filtered"] = {"1.0": filtered(index, data.queries, all_rows, 1.0, args.reps)}
        for s in SELECTIVITIES:
            entry["filtered"][str(s)] = filtered(index, data.queries, masks[s], s, args.reps)
            print(kind, s, entry["filtered"][str(s)], flush=True)
        report["kinds"][kind] = entry
        del index
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
