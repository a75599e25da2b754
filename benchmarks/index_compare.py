"""Several saved indexes of one corpus (built with different embedders, say) on the same judged queries:
nDCG@10 of each search mode, and each index's per-query difference from the first with its 95% bootstrap interval
(paired: the same queries), so that a difference within what the queries resolve reads as such.

    python benchmarks/index_compare.py --queries ../shared/data/beir/scifact \\
        --qrels ../shared/data/beir/scifact/qrels/test.tsv --index base=a.idx --index trained=b.idx \\
        [--mode dense --mode hybrid] [--out index_compare.json]

Each index opens with the models it was built with (``Retriever.load``), no reranking, and searches as ``rapidrag
eval`` does; an index tuned on the qrels given is named in a warning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", required=True, help="queries.jsonl[.gz] or a BEIR data set folder")
    parser.add_argument("--qrels", required=True, help="a qrels .tsv file (report-only judgements, e.g. test)")
    parser.add_argument(
        "--index", action="append", required=True, metavar="NAME=DIR", help="repeatable; first: reference"
    )
    parser.add_argument("--mode", action="append", choices=("lexical", "dense", "hybrid"), help="default: all three")
    parser.add_argument("--out", default="index_compare.json")
    args = parser.parse_args()
    if bad := [spec for spec in args.index if "=" not in spec]:
        raise SystemExit(f"--index takes NAME=DIR, got {bad[0]!r}")
    indexes = dict(spec.split("=", 1) for spec in args.index)
    if len(indexes) != len(args.index):
        raise SystemExit("--index: each NAME once")

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.metrics import query_metrics
    from rapidrag.persist import sha256_file
    from rapidrag.train.common import gain_interval

    queries, qrels = load_queries(args.queries), load_qrels(args.qrels)
    judged = [(q, rel) for q, rel in qrels.items() if q in queries]
    if not judged:
        raise SystemExit("none of the judged queries is among the queries given")
    modes = list(dict.fromkeys(args.mode or ["lexical", "dense", "hybrid"]))
    per_query: dict[str, dict[str, list[float]]] = {}
    for name, path in indexes.items():
        retriever = rapidrag.Retriever.load(path, reranker=None)
        tuned = retriever.tuned_on or {}
        if tuned.get("sha256") == sha256_file(args.qrels):
            print(f"warning: {name} was tuned on {args.qrels}: its figures overstate new queries")
        per_query[name] = {}
        for mode in modes:
            # As rapidrag eval searches (``rapidrag.metrics.evaluate``): 100 hits from 100 candidates.
            per_query[name][mode] = [
                query_metrics([h.doc_id for h in retriever.search(queries[q], k=100, candidates=100, mode=mode)], rel)[
                    "ndcg@10"
                ]
                for q, rel in judged
            ]
        del retriever
    reference = next(iter(indexes))
    report: dict[str, Any] = {"queries": len(judged), "qrels": args.qrels, "indexes": indexes, "reference": reference}
    report["ndcg@10"] = {n: {m: sum(v) / len(v) for m, v in by.items()} for n, by in per_query.items()}
    report["minus the reference"] = {
        n: {m: gain_interval(per_query[reference][m], v) for m, v in by.items()}
        for n, by in per_query.items()
        if n != reference
    }
    print(f"{len(judged)} judged queries ({args.qrels}); nDCG@10, and minus {reference} (95% interval)")
    for name in indexes:
        cells = []
        for mode in modes:
            cell = f"{mode} {report['ndcg@10'][name][mode]:.4f}"
            if name != reference:
                g = report["minus the reference"][name][mode]
                cell += f" ({g['mean']:+.4f}, {g['low']:+.4f}..{g['high']:+.4f})"
            cells.append(cell)
        print(f"{name}: " + "; ".join(cells))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
