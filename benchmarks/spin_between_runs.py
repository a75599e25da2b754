"""What ``spin_between_runs=False`` costs where nothing else needs the cores: one query's embedding (p50, p99), the
queries back to back and with a pause between them (as a service sees them), and a hybrid search on one index,
for an embedder with ONNX Runtime's default (its threads spin for a while after a run), one whose threads stop
spinning as each run returns, and one of a single intra-op thread (no pool: nothing spins, nothing to wake). The
embedders live in this process and take turns, round after round; each keeps its best round.

    python benchmarks/spin_between_runs.py --shared ../shared --index scifact.idx --rounds 3

What the setting is for, the coordinator of an index split over shard processes on the same machine, is measured
by benchmarks/sharded_overhead.py ("stop spinning").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--index", default=None, help="a saved index for the hybrid searches (optional)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", default="spin_between_runs.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.retriever import Retriever

    shared = Path(args.shared)
    scifact = shared / "data" / "beir" / "scifact"
    queries = load_queries(scifact)
    texts = [queries[q] for q in load_qrels(scifact / "qrels" / "test.tsv")][: args.queries]
    model = shared / "models" / "all-MiniLM-L6-v2"
    embedders = {
        "spinning between runs (default)": rapidrag.Embedder(model, quantized=True),
        "stop spinning as a run returns": rapidrag.Embedder(model, quantized=True, spin_between_runs=False),
        "one thread (no pool)": rapidrag.Embedder(model, quantized=True, n_threads=1),
    }
    index = Retriever.load(args.index, reranker=None) if args.index else None
    for embedder in embedders.values():  # warm-up
        embedder.embed(texts[:50])

    def timed(run: Any, pause_s: float) -> dict[str, float]:
        times = []
        for q in texts:
            clock = time.perf_counter()
            run(q)
            times.append((time.perf_counter() - clock) * 1000)
            if pause_s:
                time.sleep(pause_s)
        return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}

    best: dict[str, dict[str, dict[str, float]]] = {name: {} for name in embedders}
    for _ in range(args.rounds):
        for name, embedder in embedders.items():
            cases: dict[str, Any] = {
                f"embed one query, {pause} ms apart": (lambda q, e=embedder: e.embed([q]), pause / 1000)
                for pause in (0, 2, 5, 10, 20)
            }
            if index is not None:
                index.embedder = embedder
                cases["hybrid search, back to back"] = (lambda q: index.search(q, k=10, mode="hybrid"), 0.0)
            for case, (run, pause_s) in cases.items():
                got = timed(run, pause_s)
                if case not in best[name] or got["p50_ms"] < best[name][case]["p50_ms"]:
                    best[name][case] = got
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "queries": len(texts),
        "rounds": args.rounds,
        "best": best,
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
