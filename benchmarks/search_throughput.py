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
from pathlib import Path
from typing import Any

from _common import side_by_side, side_by_side_options, use_code_copy

MODES = ("lexical", "dense", "hybrid")
THREADS = (1, 2, 4)


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
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
    for mode in args.modes:
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
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    side_by_side_options(parser, rounds=3, out="search_throughput.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    argv = ["--index", args.index, "--queries", args.queries, "--modes", *args.modes]
    side_by_side(__file__, args.code, args.rounds, argv, "queries_per_s", args.out)


if __name__ == "__main__":
    main()
