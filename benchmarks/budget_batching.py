"""How much does the way candidates are batched change the reranked quality? SciFact test: the index's hybrid top
20 of each query scored by its reranker's int8 file batched in several ways, and by the fp32 file, each fused at
the index's rerank share, against hybrid alone:

- sorted batches: as an unbudgeted ``Reranker.score`` batches them, by length;
- in-order batches: the same batch sizes taken in first-stage order, as a budgeted call batches them;
- one pair per run: no batch company at all;
- fp32: the fp32 file, sorted (fp32 scores do not depend on the batch).

Per-query differences against hybrid are reported with a 95% bootstrap interval, since 300 queries resolve
differences of a few thousandths only roughly.

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
    from rapidrag.train.common import gain_interval

    data = Path(args.shared) / "data/beir/scifact"
    qrels = load_qrels(data / "qrels/test.tsv")
    queries = load_queries(data)
    retriever = rapidrag.Retriever.load(args.index)
    int8 = retriever.reranker
    fp32 = rapidrag.Reranker(int8.model_path.parent, max_length=int8.max_length)  # model.onnx: fp32
    weight = retriever.effective_rerank_weight

    def in_order(query: str, texts: list[str]) -> np.ndarray:
        lengths = int8.tokenizer.encode_pairs(query, texts, max_length=int8.max_length, padding=False).lengths
        order, pos, parts = np.arange(len(texts)), 0, []
        while pos < len(texts):
            count = int8._batch_count(lengths, order, pos)
            parts.append(int8.score(query, texts[pos : pos + count]))  # one call, one batch
            pos += count
        return np.concatenate(parts)

    strategies = {
        "sorted batches": lambda q, t: int8.score(q, t),
        "in-order batches": in_order,
        "one pair per run": lambda q, t: np.concatenate([int8.score(q, [x]) for x in t]),
        "fp32, sorted": lambda q, t: fp32.score(q, t),
    }
    rows: dict[str, list[float]] = {"hybrid": [], **{name: [] for name in strategies}}
    diffs: dict[str, list[float]] = {name: [] for name in strategies}
    for q in (q for q in qrels if q in queries):
        hits = retriever.search(queries[q], k=100, mode="hybrid", rerank=False)
        docs, base = [h.doc_id for h in hits], np.array([h.score for h in hits])
        texts = [h.text for h in hits[: args.depth]]
        rows["hybrid"].append(query_metrics(docs, qrels[q])["ndcg@10"])
        raws = {name: run(queries[q], texts) for name, run in strategies.items()}
        for name, raw in raws.items():
            order, _ = rerank_mix(raw, base, weight)
            rows[name].append(query_metrics([docs[i] for i in order], qrels[q])["ndcg@10"])
            if name != "fp32, sorted":
                diffs[name].append(float(np.abs(raw - raws["fp32, sorted"]).mean()))
    hybrid = np.array(rows["hybrid"])
    report: dict[str, object] = {"queries": len(hybrid), "weight": weight, "model_file": int8.model_path.name}
    for name, values in rows.items():
        v = np.array(values)
        entry: dict[str, object] = {"ndcg@10": float(v.mean())}
        if name != "hybrid":
            gain = gain_interval(hybrid, v)
            entry.update(gain=gain["mean"], gain_95=[gain["low"], gain["high"]])
        if diffs.get(name):
            entry["mean_abs_score_diff_to_fp32"] = float(np.mean(diffs[name]))
        report[name] = entry
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
