"""What searches and writes wait while an HNSW index is compacted (``DenseIndex.compact()``: its graph rebuilt
from the live rows).

The script builds an HNSW index over vectors in .npy files (float32 [n, dim]; the first ``--rows``), removes half
of its rows (a seeded order), then compacts it in a second thread while the first searches the queries one at a
time (k 10), in turn, and adds one new row after every 50 searches, until the compaction returns. It reports the
compaction's time, how many searches and writes ran meanwhile, their latency (p50, p99, the longest), and a
search's p50 before and after. One or more copies of the code side by side, each in its own process, in turn,
round after round; each keeps its round with the most searches a second during the compaction.

    python benchmarks/hnsw_compact.py --vectors /tmp/rapidrag-bench-cache/gcide-minilm-int8.npy \\
        --query-vectors /tmp/rapidrag-bench-cache/scifact-queries-minilm-int8.npy --rows 30000 \\
        --code before=/path/to/old/src --code after=src --rounds 2

(``benchmarks/dense_vectors.py`` writes those files: the 125,984 gcide passages and the SciFact queries.)
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
from _common import side_by_side, side_by_side_options, use_code_copy

WRITE_EVERY = 50  # searches between two one-row adds


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import rapidrag
    from rapidrag.dense import DenseIndex
    from rapidrag.metrics import percentiles

    def ms(times: list[float]) -> dict[str, float]:  # p50, p99, max, ... of times in seconds; zeros for none
        return percentiles([t * 1e3 for t in times]) or dict.fromkeys(("p50", "p99", "max"), 0.0)

    vectors = np.ascontiguousarray(np.load(args.vectors)[: args.rows + 1000], dtype=np.float32)
    spare, vectors = vectors[args.rows :], vectors[: args.rows]  # rows added during the compaction
    queries = np.ascontiguousarray(np.load(args.query_vectors)[:300], dtype=np.float32)
    index = DenseIndex(vectors.shape[1], "hnsw")
    index.add(np.arange(len(vectors)), vectors)
    index.remove(np.random.default_rng(0).permutation(len(vectors))[: len(vectors) // 2])

    def p50_search() -> float:
        times = []
        for v in queries:
            clock = time.perf_counter()
            index.search(v[None, :], 10)
            times.append(time.perf_counter() - clock)
        return ms(times)["p50"]

    before = p50_search()
    dead = index.dead
    compaction = threading.Thread(target=index.compact)
    searches: list[float] = []
    writes: list[float] = []
    started = time.perf_counter()
    compaction.start()
    while compaction.is_alive():
        clock = time.perf_counter()
        index.search(queries[len(searches) % len(queries)][None, :], 10)
        searches.append(time.perf_counter() - clock)
        if len(searches) % WRITE_EVERY == 0 and len(writes) < len(spare):
            clock = time.perf_counter()
            index.add([len(vectors) + len(writes)], spare[len(writes) : len(writes) + 1])
            writes.append(time.perf_counter() - clock)
    compaction.join()
    seconds = time.perf_counter() - started
    during, written = ms(searches), ms(writes)
    out = {
        "rapidrag": str(Path(rapidrag.__file__).parent),
        f"compact {len(vectors):,} rows, half removed": {
            "compact_s": seconds,
            "removed_rows_before": dead,
            "removed_rows_after": index.dead,
            "searches_during": len(searches),
            "searches_per_s_during": len(searches) / seconds,
            "search_p50_ms_during": during["p50"],
            "search_p99_ms_during": during["p99"],
            "search_max_ms_during": during["max"],
            "writes_during": len(writes),
            "write_p50_ms_during": written["p50"],
            "write_max_ms_during": written["max"],
            "search_p50_ms_before": before,
            "search_p50_ms_after": p50_search(),
        },
    }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", required=True, help="a .npy file of float32 [n, dim] vectors")
    parser.add_argument("--query-vectors", required=True, help="a .npy file of query vectors (the first 300)")
    parser.add_argument("--rows", type=int, default=30_000, help="index the first ROWS vectors (default 30,000)")
    side_by_side_options(parser, rounds=2, out="hnsw_compact.json")
    args = parser.parse_args()
    if args.rows < 2:
        parser.error("--rows must be at least 2")
    if args.worker:
        worker(args)
        return
    given = ["--vectors", args.vectors, "--query-vectors", args.query_vectors, "--rows", str(args.rows)]
    best = side_by_side(__file__, args.code, args.rounds, given, "searches_per_s_during", args.out)
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
