"""Search throughput from 1, 2 and 4 threads at once, lexical, dense and hybrid, for one or more copies of the
code side by side (before and after a change): each copy runs in its own process, in turn, round after round, and
the best round of each is kept.

    python benchmarks/search_throughput.py --index scifact.idx --queries ../shared/data/beir/scifact \\
        --code before=/path/to/old/src --code after=src --rounds 3 --out throughput.json

A copy is a folder that holds the ``rapidrag`` package (with its built ``_core``). Each process loads the index,
runs the 300 test queries once to warm up, then ``rapidrag.bench.throughput`` (every query once from N threads)
for each mode and thread count, without a reranker.
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

MODES = ("lexical", "dense", "hybrid")
THREADS = (1, 2, 4)


def worker(args: argparse.Namespace) -> None:
    code = os.environ.get("RAPIDRAG_CODE")
    if code:  # this copy, not an editable install's redirect
        sys.meta_path[:] = [f for f in sys.meta_path if not any(x in type(f).__module__ for x in ("editable", "skbc"))]
        sys.path.insert(0, code)
    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.bench import Config, throughput
    from rapidrag.retriever import Retriever

    retriever = Retriever.load(args.index, reranker=None)
    queries = load_queries(args.queries)
    qrels = load_qrels(Path(args.queries) / "qrels" / "test.tsv")
    asked = {q: queries[q] for q in qrels if q in queries}
    for text in asked.values():  # warm up
        retriever.search(text, k=10)
    out: dict[str, Any] = {"rapidrag": str(Path(rapidrag.__file__).parent)}
    for mode in MODES:
        for threads in THREADS:
            r = throughput(retriever, asked, Config(mode, mode, False), threads, qrels=qrels)
            out[f"{mode}/{threads}"] = {
                "queries_per_s": r["queries_per_s"],
                "p50_ms": r["latency_ms"]["p50"],
                "p99_ms": r["latency_ms"]["p99"],
                "ndcg@10": r.get("ndcg@10"),
            }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a BEIR folder with queries and qrels/test.tsv")
    parser.add_argument("--code", action="append", default=[], help="NAME=FOLDER holding the rapidrag package")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="search_throughput.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    trees = dict(item.split("=", 1) for item in args.code) or {"current": ""}
    best: dict[str, dict[str, Any]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, folder in trees.items():
            env = dict(os.environ)
            if folder:
                env["RAPIDRAG_CODE"] = str(Path(folder).resolve())
            cmd = [sys.executable, __file__, "--worker", "--index", args.index, "--queries", args.queries]
            line = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            result = json.loads(line)
            if folder and not result["rapidrag"].startswith(str(Path(folder).resolve())):
                raise SystemExit(f"{name}: ran {result['rapidrag']}, not the copy in {folder}")
            for key, value in result.items():
                if key != "rapidrag" and value["queries_per_s"] > best[name].get(key, {}).get("queries_per_s", 0):
                    best[name][key] = value
            print(name, json.dumps({k: round(v["queries_per_s"], 1) for k, v in result.items() if k != "rapidrag"}))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rounds": args.rounds,
        "best": best,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
