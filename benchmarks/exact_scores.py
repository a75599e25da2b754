"""The exact dense scores of chosen rows (``rapidrag._core.exact_inner_products``, behind a filter's exact search
and IVF-PQ's re-scoring), and a flat index's filtered search that uses them, for one or more copies of the code.

Over vectors in a .npy file (float32 [n, dim]; the 125,984 gcide passages that ``benchmarks/dense_vectors.py``
writes) and query vectors in another (the first 100): the scores of 126, 1,260 and 12,600 rows (those of these
sizes the file holds) spread over the matrix (a seeded sample, in row order, as a filter's allowed rows are), one
query at a time; then ``DenseIndex.search`` on a flat index with a filter keeping 1% and 10% of the rows (exact
over the allowed rows).
Each copy runs in its own process, in turn, round after round, and keeps its fastest round.

    python benchmarks/exact_scores.py --vectors /tmp/rapidrag-bench-cache/gcide-minilm-int8.npy \\
        --query-vectors /tmp/rapidrag-bench-cache/scifact-queries-minilm-int8.npy \\
        --code before=/path/to/old/src --code after=src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import side_by_side, side_by_side_options, use_code_copy


def best_of(fn: Callable[[np.ndarray], object], items: np.ndarray, passes: int = 5) -> float:
    """The fastest of ``passes`` passes of ``fn`` over ``items``, in µs an item."""
    best = float("inf")
    for _ in range(passes):
        clock = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - clock)
    return best / len(items) * 1e6


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import rapidrag
    from rapidrag import _core
    from rapidrag.dense import DenseIndex

    vectors = np.ascontiguousarray(np.load(args.vectors), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(args.query_vectors)[:100], dtype=np.float32)
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"rapidrag": str(Path(rapidrag.__file__).parent)}
    for n in (n for n in (126, 1_260, 12_600) if n <= len(vectors)):
        rows = np.sort(rng.choice(len(vectors), n, replace=False)).astype(np.int64)
        scores = np.empty((1, n), dtype=np.float32)
        us = best_of(
            lambda q, rows=rows, scores=scores: _core.exact_inner_products(q[None, :], vectors, rows, scores), queries
        )
        out[f"scores of {n:,} rows"] = {"us": us, "per_s": 1e6 / us}
    index = DenseIndex(vectors.shape[1], "flat")
    index.add(np.arange(len(vectors)), vectors)
    for kept in (0.01, 0.1):
        mask = rng.random(len(vectors)) < kept
        us = best_of(lambda q, mask=mask: index.search(q[None, :], 10, mask=mask), queries, passes=3)
        out[f"flat search, {kept:.0%} kept"] = {"us": us, "per_s": 1e6 / us}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", required=True, help="a .npy file of float32 [n, dim] vectors")
    parser.add_argument("--query-vectors", required=True, help="a .npy file of query vectors")
    side_by_side_options(parser, rounds=3, out="exact_scores.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    given = ["--vectors", args.vectors, "--query-vectors", args.query_vectors]
    best = side_by_side(__file__, args.code, args.rounds, given, "per_s", args.out)
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
