"""Rerankers side by side on SciFact test: nDCG@10 of each one's order alone and fused with the first stage, over
the hybrid top 20 and 30 of one index, and the time to score 20 candidates.

    python benchmarks/reranker_compare.py --shared ../shared --index scifact.idx \\
        --reranker shared=../shared/models/minilm-l6-reranker:0.4 --reranker trained=out/reranker

Each ``--reranker NAME=FOLDER[:WEIGHT]`` is loaded with its int8 file (``quantized=True``) at 256 tokens; the
fusion weight is WEIGHT when given, else the one the folder's ``rapidrag.json`` recommends (chosen on its dev
split of the training qrels), else rapidrag's default. Weights are never chosen here: the test qrels only report.
The mix is ``rapidrag.fusion.rerank_mix``, as in searches. Each reranker after the first is set against the first
(a student against its teacher, say): the mean per-query difference in nDCG@10 with its paired 95% bootstrap
interval, alone and fused, so that a gap can be told from what 300 queries resolve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True)
    parser.add_argument("--reranker", action="append", required=True, help="NAME=FOLDER[:WEIGHT]")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 30])
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--out", default="reranker_compare.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.fusion import rerank_mix
    from rapidrag.retriever import DEFAULT_RERANK_WEIGHT, query_metrics
    from rapidrag.train.common import gain_interval

    data = Path(args.shared) / "data/beir/scifact"
    qrels = load_qrels(data / "qrels/test.tsv")
    queries = load_queries(data)
    ids = [q for q in qrels if q in queries][: args.max_queries or None]
    retriever = rapidrag.Retriever.load(args.index, reranker=None)
    first = {q: retriever.search(queries[q], k=100, mode="hybrid", rerank=False) for q in ids}
    hybrid = float(np.mean([query_metrics([h.doc_id for h in first[q]], qrels[q])["ndcg@10"] for q in ids]))
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "queries": len(ids),
        "hybrid_ndcg@10": hybrid,
        "rerankers": {},
    }
    print(f"{len(ids)} test queries, hybrid nDCG@10 {hybrid:.4f}")
    scored: dict[str, tuple[dict, list[float], str]] = {}  # folder -> scores, times, model file (weights differ)
    per_query: dict[str, dict[str, list[float]]] = {}  # name -> "top20 alone" etc. -> nDCG@10 of each query
    reference = args.reranker[0].partition("=")[0]
    for spec in args.reranker:
        name, _, rest = spec.partition("=")
        folder, _, weight_text = rest.partition(":")
        reranker = rapidrag.Reranker(folder, quantized=True, max_length=256)
        weight = float(weight_text) if weight_text else reranker.recommended_weight
        weight = DEFAULT_RERANK_WEIGHT if weight is None else weight
        entry: dict = {"folder": folder, "model_file": reranker.model_path.name, "weight": weight}
        depth = max(args.depths)
        if folder not in scored:
            scores, times = {}, []
            for q in ids:
                texts = [h.text for h in first[q][:depth]]
                scores[q] = reranker.score(queries[q], texts)
                if len(texts) >= 20:  # the time of a search's usual 20 candidates, scored again alone
                    t = time.perf_counter()
                    reranker.score(queries[q], texts[:20])
                    times.append((time.perf_counter() - t) * 1000)
            scored[folder] = (scores, times, reranker.model_path.name)
        scores, times, _ = scored[folder]
        for n in args.depths:
            alone, fused = [], []
            for q in ids:
                docs = [h.doc_id for h in first[q]]
                base = np.array([h.score for h in first[q]])
                for out, w in ((alone, 1.0), (fused, weight)):
                    order, _ = rerank_mix(scores[q][:n], base, w)
                    out.append(query_metrics([docs[i] for i in order], qrels[q])["ndcg@10"])
            entry[f"top{n}"] = {"alone": float(np.mean(alone)), "fused": float(np.mean(fused))}
            per_query.setdefault(name, {}).update({f"top{n} alone": alone, f"top{n} fused": fused})
        entry["ms_20_candidates"] = {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}
        report["rerankers"][name] = entry
        cells = "  ".join(
            f"top{n}: alone {entry[f'top{n}']['alone']:.4f} fused {entry[f'top{n}']['fused']:.4f}" for n in args.depths
        )
        print(f"{name:<12} w={weight:g}  {cells}  20 candidates p50 {entry['ms_20_candidates']['p50']:.0f} ms")
        if name != reference:
            entry[f"minus_{reference}"] = {
                key: gain_interval(per_query[reference][key], values) for key, values in per_query[name].items()
            }
            print(
                f"{'':<12} minus {reference}: "
                + "  ".join(
                    f"{key} {d['mean']:+.4f} ({d['low']:+.4f}, {d['high']:+.4f})"
                    for key, d in entry[f"minus_{reference}"].items()
                )
            )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
