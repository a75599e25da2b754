"""Pauses of Python's garbage collector in a search service, with and without ``gc.freeze()`` after loading.

A process that has loaded an index and its models tracks some 130,000 objects (the documents, and the modules of
numpy, ONNX Runtime and the web stack); a full (generation 2) collection walks all of them, and whichever
request is running then waits. ``rapidrag serve`` freezes what it loaded (``rapidrag.process.freeze_loaded``: a
collection, then ``gc.freeze()``), so that collections walk only what requests make. This runs the work of the
service's ``/context`` route (a hybrid search for 20 hits without a reranker, packed into 1,000 tokens by pack's
default; what packing keeps of documents emptied before each pass, so that every pass keeps new objects as a
service meeting new documents does) over the SciFact test queries, in fresh processes with and without the freeze,
in turn, and reports each generation's collections (count, total and longest) and the requests' latency
percentiles.

    python benchmarks/gc_pauses.py --index scifact.idx --queries ../shared/data/beir/scifact --passes 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def worker(args: argparse.Namespace) -> None:
    import gc

    import numpy as np

    import rapidrag
    import rapidrag.context as context
    from rapidrag.beir import load_qrels, load_queries

    index = rapidrag.Retriever.load(args.index, reranker=None)  # the first stages and packing; no reranker
    queries = load_queries(args.queries)
    asked = [queries[q] for q in load_qrels(Path(args.queries) / "qrels" / "test.tsv") if q in queries]
    index.context(asked[0], 1000)  # imports and first calls, before the freeze as the service's warm-up
    tracked = len(gc.get_objects())
    if args.freeze:
        from rapidrag.process import freeze_loaded

        freeze_loaded()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def clock(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses[info["generation"]].append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(clock)
    times = []
    kept = context._DOCUMENTS
    for _ in range(args.passes):
        kept.__init__(capacity=kept.capacity, offset_tokens=kept.offset_tokens)  # type: ignore[misc]
        for text in asked:
            begin = time.perf_counter()
            index.context(text, 1000)
            times.append((time.perf_counter() - begin) * 1000)
    gc.callbacks.remove(clock)
    out: dict[str, Any] = {"tracked_at_load": tracked, "requests": len(times)}
    for q in (50, 99, 99.9):
        out[f"p{q}_ms"] = float(np.percentile(times, q))
    out["max_ms"] = max(times)
    for generation, ms in pauses.items():
        out[f"gen{generation}"] = {"count": len(ms), "total_ms": sum(ms), "longest_ms": max(ms, default=0.0)}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a BEIR folder with queries and qrels/test.tsv")
    parser.add_argument("--passes", type=int, default=4, help="passes over the queries in one process")
    parser.add_argument("--rounds", type=int, default=2, help="processes of each kind, in turn")
    parser.add_argument("--out", default="gc_pauses.json")
    parser.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs: dict[str, list[dict[str, Any]]] = {"as loaded": [], "frozen after loading": []}
    for _ in range(args.rounds):
        for name in runs:
            argv = [sys.executable, __file__, "--worker", "--index", args.index, "--queries", args.queries]
            argv += ["--passes", str(args.passes)] + (["--freeze"] if name.startswith("frozen") else [])
            done = subprocess.run(argv, check=True, capture_output=True, text=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("| process | requests | p50 / p99 / p99.9 / max ms | gen2 collections: count, total ms, longest ms |")
    print("|---|---|---|---|")
    for name, results in runs.items():
        for r in results:
            g = r["gen2"]
            print(
                f"| {name} | {r['requests']} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['p99.9_ms']:.2f} / "
                f"{r['max_ms']:.2f} | {g['count']}, {g['total_ms']:.1f}, {g['longest_ms']:.1f} |"
            )


if __name__ == "__main__":
    main()
