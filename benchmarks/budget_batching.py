"""Does the order of a budget's batches change the reranked quality? SciFact test, the index's hybrid top 20
scored twice by its reranker: as an unbudgeted call batches them (sorted by length) and as a budgeted call does
(in the candidates' order; a budget too large to stop anything), each fused at the index's rerank share.

    python benchmarks/budget_batching.py --shared ../shared --index scifact.idx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--out", default="budget_batching.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.fusion import rerank_mix
    from rapidrag.retriever import query_metrics

    data = Path(args.shared) / "data/beir/scifact"
    qrels = load_qrels(data / "qrels/test.tsv")
    queries = load_queries(data)
    retriever = rapidrag.Retriever.load(args.index)
    weight = retriever.effective_rerank_weight
    rows = {"hybrid": [], "sorted batches": [], "in-order batches": []}
    diffs = []
    for q in (q for q in qrels if q in queries):
        hits = retriever.search(queries[q], k=100, mode="hybrid", rerank=False)
        docs, base = [h.doc_id for h in hits], np.array([h.score for h in hits])
        texts = [h.text for h in hits[: args.depth]]
        by_length = retriever.reranker.score(queries[q], texts)
        in_order = retriever.reranker.score(queries[q], texts, time_budget_ms=1e9)
        diffs.append(float(np.abs(by_length - in_order).max()))
        rows["hybrid"].append(query_metrics(docs, qrels[q])["ndcg@10"])
        for name, raw in (("sorted batches", by_length), ("in-order batches", in_order)):
            order, _ = rerank_mix(raw, base, weight)
            rows[name].append(query_metrics([docs[i] for i in order], qrels[q])["ndcg@10"])
    report = {name: float(np.mean(v)) for name, v in rows.items()}
    report.update(
        weight=weight, model_file=retriever.reranker.model_path.name, max_score_diff_mean=float(np.mean(diffs))
    )
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
