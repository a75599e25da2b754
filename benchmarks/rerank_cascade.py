"""A two-pass rerank (every candidate at a short pair length, the best few again at full length) against one pass.

    python benchmarks/rerank_cascade.py [--shared ../shared] [--candidates 20] [--out rerank_cascade.json]

The question: can 20 candidates be reranked within 200 ms at less nDCG@10 cost than scoring every pair at a shorter
length? First stage, reranker file (``rapidrag.quantize``, per-token ranges) and fusion as in rerank_quality.py:
the final order is by a * z(reranker) + (1 - a) * z(first stage), ``a`` chosen on the train queries with full-length
scores. Settings, each run for real on every query (timed from the first tokenizer call to the final order):

- one pass at ``max_length`` 256 (the model's length) and at each short length;
- cascade (short, k): all candidates scored at ``short`` tokens and fused; the best ``k`` of that order scored
  again at 256 and reordered among themselves by the same fused key, their full-length scores shifted by their
  mean difference from their short ones (so that both passes share one scale); the rest keep the first order.

nDCG@10 on SciFact test (300 queries) and on the first ``--train-queries`` train queries, and p50 / p95 ms on test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCH_CACHE, quantized
from rerank_quality import first_stage, fused_key, load_scifact, ndcg_at_10, zscore

import rapidrag

ROOT = Path(__file__).resolve().parent.parent
FULL = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--train-queries", type=int, default=200)
    parser.add_argument("--short", default="96,128,160")
    parser.add_argument("--refine", default="2,4,6")
    parser.add_argument("--cache", default=str(BENCH_CACHE))
    parser.add_argument("--out", default="rerank_cascade.json")
    args = parser.parse_args()

    model_dir = Path(args.shared) / "models/minilm-l6-reranker"
    scifact = load_scifact(args.shared, args.train_queries)
    doc_ids, texts, splits, qrels = scifact.doc_ids, scifact.texts, scifact.queries, scifact.qrels
    candidates = first_stage(args, scifact.docs, {**splits["test"], **splits["train"]})
    reranker = rapidrag.Reranker(model_dir, model_file=quantized(model_dir, Path(args.cache)))

    def one_pass(query: str, q: str, length: int) -> np.ndarray:
        top, _ = candidates[q]
        return reranker.score(query, [texts[i] for i in top], max_length=length)

    # The fusion weight: chosen on train with full-length scores.
    full_train = {q: one_pass(text, q, FULL) for q, text in splits["train"].items()}
    grid = [round(0.05 * i, 2) for i in range(21)]

    def fused_order(scores: np.ndarray, prior: np.ndarray, a: float) -> np.ndarray:
        return np.argsort(-fused_key(scores, prior, a), kind="stable")

    def ndcg(order: np.ndarray, q: str, split: str) -> float:
        top, _ = candidates[q]
        return ndcg_at_10([doc_ids[top[i]] for i in order], qrels[split][q])

    weight = max(
        grid,
        key=lambda a: (
            np.mean([ndcg(fused_order(full_train[q], candidates[q][1], a), q, "train") for q in full_train]),
            -a,
        ),
    )
    print(f"fusion weight a = {weight}", file=sys.stderr)

    def run_one(query: str, q: str, short: int, k: int) -> np.ndarray:
        top, prior = candidates[q]
        passages = [texts[i] for i in top]
        first = reranker.score(query, passages, max_length=short)
        z_prior = zscore(prior)
        key = fused_key(first, prior, weight)
        order = np.argsort(-key, kind="stable")
        if k == 0:
            return order
        head = order[:k]
        full = reranker.score(query, [passages[i] for i in head], max_length=FULL)
        # On the first pass's scale: full-length scores shifted by their mean difference from the short ones.
        shifted = full - (full - first[head]).mean()
        sd = first.std()
        z_full = (shifted - first.mean()) / sd if sd > 0 else np.zeros_like(shifted)
        head_key = weight * z_full + (1 - weight) * z_prior[head]
        return np.concatenate([head[np.argsort(-head_key, kind="stable")], order[k:]])

    settings = [(length, 0) for length in (FULL, *map(int, args.short.split(",")))]
    settings += [(s, k) for s in map(int, args.short.split(",")) for k in map(int, args.refine.split(","))]
    results: dict[str, Any] = {"candidates": args.candidates, "fusion_weight": weight, "settings": {}}
    for short, k in settings:
        name = f"one pass, max_length {short}" if k == 0 else f"cascade {short} -> {k} at {FULL}"
        row: dict[str, float] = {}
        for split, queries in splits.items():
            values, times = [], []
            for q, text in queries.items():
                start = time.perf_counter()
                order = run_one(text, q, short, k)
                times.append(time.perf_counter() - start)
                values.append(ndcg(order, q, split))
            row[f"ndcg10_{split}"] = float(np.mean(values))
            if split == "test":
                row["p50_ms"] = float(np.median(times) * 1000)
                row["p95_ms"] = float(np.percentile(times, 95) * 1000)
        results["settings"][name] = row
        print(f"{name:34s} " + "  ".join(f"{key} {v:.4f}" for key, v in row.items()), file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
