"""BM25's two selection kernels side by side: the sorted list (``select``) and the buffered one (``select_many``),
for the top k of each SciFact test query's BM25 scores, k from 10 to 400 (a hybrid search fetches 4 x 100 rows a
stage), over a saved index's rows and over the first ``--shard-rows`` of them (a shard's share). Both kernels'
answers are checked equal; each keeps its best of ``--rounds`` passes. ``BM25.top_rows`` takes the buffered kernel
from ``rapidrag.lexical.SELECT_MANY_FROM`` rows.

    python benchmarks/select_top_rows.py --index scifact.idx --queries ../shared/data/beir/scifact
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a BEIR folder (its queries and qrels/test.tsv)")
    parser.add_argument("--shard-rows", type=int, default=941)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="select_top_rows.json")
    args = parser.parse_args()

    from rapidrag import _core
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.lexical import SELECT_MANY_FROM
    from rapidrag.retriever import Retriever

    index = Retriever.load(args.index, reranker=None)
    queries = load_queries(args.queries)
    texts = [queries[q] for q in load_qrels(Path(args.queries) / "qrels" / "test.tsv")]
    scores = [index.bm25.score_rows(index.bm25.analyzer(q)) for q in texts]
    kernels = {"sorted list": _core.bm25_select, "buffered": _core.bm25_select_many}
    report: dict[str, dict[str, dict[str, float]]] = {}
    for rows_name, n in (("all rows", len(scores[0])), ("a shard's rows", args.shard_rows)):
        cut = [np.ascontiguousarray(s[:n]) for s in scores]
        allowed = np.ascontiguousarray(index.bm25._alive[:n])
        report[f"{rows_name} ({n})"] = table = {}
        for k in (10, 40, 100, 200, 400):
            out = {name: (np.empty(k, dtype=np.int64), np.empty(k, dtype=np.float32)) for name in kernels}
            for s in cut:
                found = [(kernel(s, allowed, *out[name]), out[name][0].copy()) for name, kernel in kernels.items()]
                if found[0][0] != found[1][0] or (found[0][1][: found[0][0]] != found[1][1][: found[1][0]]).any():
                    raise SystemExit(f"the kernels disagree at k={k}")
            best = dict.fromkeys(kernels, np.inf)
            for _ in range(args.rounds):
                for name, kernel in kernels.items():
                    rows, values = out[name]
                    clock = time.perf_counter()
                    for s in cut:
                        kernel(s, allowed, rows, values)
                    best[name] = min(best[name], (time.perf_counter() - clock) / len(cut) * 1e6)
            table[str(k)] = {f"{name} us": round(v, 2) for name, v in best.items()}
            print(rows_name, k, table[str(k)], flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "queries": len(texts),
        "select_many_from": SELECT_MANY_FROM,
        "per_query": report,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
