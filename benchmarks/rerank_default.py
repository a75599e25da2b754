"""Choosing the default share of the reranker's score (``Retriever(rerank_weight=None)`` with no tuned weight and
no weight recommended by the reranker's folder), on SciFact train only.

For each judged train query, the index's hybrid ranking (100 candidates, one hit per document) and the reranker's
scores of its top ``--depth`` (20, the retriever's ``rerank_depth``) are computed once. A time budget lets the
reranker score only a prefix of those candidates, so every share ``w`` is evaluated for prefixes of n = 2, 4, 8,
12 and 20 scored candidates, mixed exactly as ``Retriever.search`` mixes them (``rapidrag.fusion.rerank_mix``:
``w * z(rerank) + (1 - w) * z(first stage)`` over the scored prefix, the rest below in their order). The default is,
among the shares that gain over hybrid at every prefix (reranking must not lower quality at any budget), the one
with the largest mean gain across the prefixes. (The report also gives the share with the largest worst gain: it is
decided by n = 2, where no share of 0.5 or less can reorder two candidates, since two z-scores are -1 and +1.)
Test queries are never read here.

    python benchmarks/rerank_default.py --shared ../shared --index scifact.idx --out rerank_default.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PREFIXES = (2, 4, 8, 12, 20)
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True, help="a SciFact index with a reranker, untuned")
    parser.add_argument("--qrels", default="train", help="the split that chooses (default train)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--out", default="rerank_default.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.fusion import rerank_mix
    from rapidrag.retriever import query_metrics

    data = Path(args.shared) / "data/beir/scifact"
    if args.qrels == "test":
        raise SystemExit("the default is chosen on train queries; test only reports")
    qrels = load_qrels(data / f"qrels/{args.qrels}.tsv")
    queries = load_queries(data)
    ids = [q for q in qrels if q in queries]
    if args.max_queries:
        ids = ids[: args.max_queries]
    retriever = rapidrag.Retriever.load(args.index)
    if retriever.reranker is None:
        raise SystemExit("the index has no reranker")
    started = time.perf_counter()
    cached = []
    for q in ids:  # about 6 minutes on 2 cores for the 809 train queries
        hits = retriever.search(queries[q], k=100, mode="hybrid", rerank=False)
        top = hits[: args.depth]
        raw = retriever.reranker.score(queries[q], [h.text for h in top])
        cached.append(([h.doc_id for h in hits], np.array([h.score for h in hits]), raw))
    scoring_s = time.perf_counter() - started

    def ndcg(w: float | None, n: int) -> float:
        values = []
        for q, (docs, first, raw) in zip(ids, cached, strict=True):
            order = np.arange(len(docs))
            if w is not None and n:
                m = min(n, len(raw))
                order, _ = rerank_mix(raw[:m], first, w)
            values.append(query_metrics([docs[i] for i in order], qrels[q])["ndcg@10"])
        return float(np.mean(values))

    hybrid = ndcg(None, 0)
    table = {f"{w:g}": {str(n): ndcg(w, n) for n in PREFIXES} for w in WEIGHTS}
    worst = {w: min(v - hybrid for v in row.values()) for w, row in table.items()}
    mean = {w: float(np.mean([v - hybrid for v in row.values()])) for w, row in table.items()}
    safe = [w for w in table if worst[w] >= 0] or list(table)
    chosen = max(safe, key=lambda w: (round(mean[w], 6), -float(w)))
    by_worst = max(worst, key=lambda w: (round(worst[w], 6), -float(w)))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "qrels": args.qrels,
        "queries": len(ids),
        "depth": args.depth,
        "scoring_s": scoring_s,
        "hybrid_ndcg@10": hybrid,
        "ndcg@10_by_weight_and_prefix": table,
        "worst_gain_by_weight": worst,
        "mean_gain_by_weight": mean,
        "chosen": float(chosen),
        "largest_worst_gain": float(by_worst),
    }
    print(f"{len(ids)} {args.qrels} queries, hybrid nDCG@10 {hybrid:.4f}; reranker scores in {scoring_s:.0f} s")
    print("share " + "".join(f"{'n=' + str(n):>9}" for n in PREFIXES) + "   worst gain   mean gain")
    for w, row in table.items():
        cells = "".join(f"{row[str(n)]:>9.4f}" for n in PREFIXES)
        print(f"{w:<6}{cells}   {worst[w]:+.4f}      {mean[w]:+.4f}")
    print(f"chosen (largest mean gain, no prefix below hybrid): {chosen}; largest worst gain: {by_worst}")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
