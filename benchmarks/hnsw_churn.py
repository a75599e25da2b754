"""An HNSW index under churn, with and without ``compact_fraction``: documents replaced round after round (each
round removes random live rows and adds as many new ones, as upserts do), and after each round the test queries
searched one at a time. Without compaction the removed rows pile up in the graph and searches slow down (a wider
beam through removed nodes, then exact search of the live rows); with ``compact_fraction`` the index rebuilds its
graph in a background thread, beside the writes and searches, whenever the removed rows reach that share.

    python benchmarks/hnsw_churn.py --vectors /tmp/rapidrag-bench-cache/gcide-minilm-int8.npy \\
        --query-vectors /tmp/rapidrag-bench-cache/scifact-queries-minilm-int8.npy --rows 60000 \\
        --rounds 100 --per-round 500 [--pause-ms 300] --setting none --setting 0.2

The vectors are those ``benchmarks/dense_vectors.py`` writes: the first ``--rows`` start the index, the ones after
them are the new rows. Each setting runs on the same seeded churn, one after the other in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from rapidrag.dense import DenseIndex
from rapidrag.metrics import percentiles


def churn(
    vectors: np.ndarray,
    queries: np.ndarray,
    rows: int,
    rounds: int,
    per_round: int,
    fraction: float | None,
    pause_s: float = 0.0,
) -> dict[str, object]:
    index = DenseIndex(vectors.shape[1], "hnsw", compact_fraction=fraction)
    index.add(np.arange(rows), vectors[:rows])
    rng = np.random.default_rng(0)
    live = np.arange(rows)
    following = rows
    trace, all_searches, write_ms = [], [], []
    started = time.perf_counter()
    for r in range(rounds):
        clock = time.perf_counter()
        gone = rng.choice(len(live), size=per_round, replace=False)
        index.remove(live[gone])
        new = np.arange(following, following + per_round)
        index.add(new, vectors[new])
        write_ms.append((time.perf_counter() - clock) * 1000)
        live = np.concatenate([np.delete(live, gone), new])
        following += per_round
        times = []
        for q in queries:
            clock = time.perf_counter()
            index.search(q[None], 10)
            times.append((time.perf_counter() - clock) * 1000)
        all_searches += times
        trace.append({"round": r + 1, "removed_share": index.dead / (index.dead + len(index)), **percentiles(times)})
        time.sleep(pause_s)  # (a slower stream of writes: the time a compaction has to itself)
    churn_s = time.perf_counter() - started
    if index.compacting is not None:
        index.compacting.join()
    return {
        "compact_fraction": fraction,
        "churn_s": churn_s,
        "search_ms": percentiles(all_searches),
        "write_ms": percentiles(write_ms),
        "largest_removed_share": max(t["removed_share"] for t in trace),
        "last_rounds_p50_ms": float(np.median([t["p50"] for t in trace[-5:]])),
        "trace": trace,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", required=True)
    parser.add_argument("--query-vectors", required=True)
    parser.add_argument("--queries", type=int, default=100, help="queries searched after each round")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--pause-ms", type=float, default=0.0, help="a pause after each round")
    parser.add_argument("--setting", action="append", default=[], help="a compact_fraction, or none (repeatable)")
    parser.add_argument("--out", default="hnsw_churn.json")
    args = parser.parse_args()
    needed = args.rows + args.rounds * args.per_round
    vectors = np.ascontiguousarray(np.load(args.vectors, mmap_mode="r")[:needed], dtype=np.float32)
    if len(vectors) < needed:
        raise SystemExit(f"{args.vectors} holds {len(vectors)} vectors; the churn needs {needed}")
    queries = np.ascontiguousarray(np.load(args.query_vectors)[: args.queries], dtype=np.float32)
    results = []
    for setting in args.setting or ["none", "0.2"]:
        fraction = None if setting == "none" else float(setting)
        pause_s = args.pause_ms / 1000
        results.append(churn(vectors, queries, args.rows, args.rounds, args.per_round, fraction, pause_s))
        summary = {k: v for k, v in results[-1].items() if k != "trace"}
        print(json.dumps(summary), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": args.rows,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "pause_ms": args.pause_ms,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
