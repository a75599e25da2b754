"""What each reranker speed setting costs in retrieval quality: nDCG@10 on SciFact test, BEIR protocol.

    python benchmarks/rerank_quality.py [--shared ../shared] [--candidates 20] [--out rerank_quality.json]

First stage: rapidrag's Embedder (the shared all-MiniLM-L6-v2, int8 with fused attention) over title + text,
exact inner product; its top ``--candidates`` documents per query are rescored by the shared cross-encoder
under each setting below, and the list is reordered two ways:

- reranker alone: by the reranker's score;
- fused: a * z(reranker) + (1 - a) * z(first stage), z = standardised over the query's candidates, with ``a``
  chosen on the first ``--train-queries`` SciFact *train* queries (qrels/train.tsv) with the default fast
  setting, and the same ``a`` applied to every setting on the test queries.

Settings: fp32; the shipped dynamic int8 file; int8 made by ``rapidrag.quantize`` (attention fused, per-token
activation ranges in the down-projections), and the same with one activation range per batch there; the same at
shorter pair lengths; passage windows around the query terms; and the naive pipeline (HF tokenizers, every pair
padded to 256, one run per query), whose int8 scores differ from unpadded ones because dynamic quantization takes
its activation range over the padding too. The embeddings are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCH_CACHE, quantized
from _naive import naive_reranker

import rapidrag
from rapidrag.beir import document_text, load_corpus, load_qrels, load_queries

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SciFact:
    """The SciFact corpus, its test queries and its first ``train_queries`` train queries, with their qrels."""

    docs: list[dict[str, Any]]
    doc_ids: list[str]
    texts: list[str]
    queries: dict[str, dict[str, str]]  # "test" / "train" -> query id -> text
    qrels: dict[str, dict[str, dict[str, int]]]  # "test" / "train" -> query id -> judged documents


def load_scifact(shared: str | Path, train_queries: int) -> SciFact:
    data = Path(shared) / "data/beir/scifact"
    docs = load_corpus(data)
    qrels = {split: load_qrels(data / f"qrels/{split}.tsv") for split in ("test", "train")}
    qrels["train"] = {q: qrels["train"][q] for q in list(qrels["train"])[:train_queries]}
    all_queries = load_queries(data)
    queries = {split: {q: all_queries[q] for q in judged} for split, judged in qrels.items()}
    return SciFact(docs, [str(d["_id"]) for d in docs], [document_text(d) for d in docs], queries, qrels)


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    gains = [relevant.get(doc, 0) for doc in ranked[:10]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def fused_key(rerank: np.ndarray, first: np.ndarray, a: float) -> np.ndarray:
    """The fused ranking key of a query's candidates: a * z(reranker) + (1 - a) * z(first stage)."""
    return a * zscore(rerank) + (1 - a) * zscore(first)


def first_stage(args: argparse.Namespace, docs: list[dict[str, Any]], queries: dict[str, str]) -> Any:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.shared) / "models/all-MiniLM-L6-v2"
    fused = cache / "embedder_fused_int8.onnx"
    if not fused.exists():
        rapidrag.quantize(model_dir, fused)
    embedder = rapidrag.Embedder(model_dir, model_file=fused)
    doc_file = cache / "scifact_doc_vectors.npy"
    if doc_file.exists():
        doc_vectors = np.load(doc_file)
    else:
        start = time.perf_counter()
        doc_vectors = embedder.embed([document_text(d) for d in docs])
        print(f"embedded {len(docs)} documents in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        np.save(doc_file, doc_vectors)
    ids = list(queries)
    query_vectors = embedder.embed([queries[q] for q in ids])
    sims = query_vectors @ doc_vectors.T
    top = np.argsort(-sims, axis=1)[:, : args.candidates]
    return {q: (top[i], sims[i, top[i]]) for i, q in enumerate(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--train-queries", type=int, default=200)
    parser.add_argument("--cache", default=str(BENCH_CACHE))
    parser.add_argument("--out", default="rerank_quality.json")
    parser.add_argument("--only", default="", help="semicolon-separated setting names (default: all)")
    args = parser.parse_args()

    model_dir = Path(args.shared) / "models/minilm-l6-reranker"
    scifact = load_scifact(args.shared, args.train_queries)
    docs, doc_ids, texts = scifact.docs, scifact.doc_ids, scifact.texts
    test, train = scifact.queries["test"], scifact.queries["train"]
    test_qrels, train_qrels = scifact.qrels["test"], scifact.qrels["train"]
    candidates = first_stage(args, docs, {**test, **train})

    cache = Path(args.cache)
    fused_int8 = quantized(model_dir, cache)
    batch_range = quantized(model_dir, cache, per_token=False)
    settings: dict[str, Any] = {
        "fp32": dict(model_file="model.onnx"),
        "int8 (shipped dynamic file)": dict(model_file="model_int8.onnx"),
        "int8 fused": dict(model_file=str(fused_int8)),
        "int8 fused, one range per batch": dict(model_file=str(batch_range)),
        "int8 fused, max_length 192": dict(model_file=str(fused_int8), max_length=192),
        "int8 fused, max_length 160": dict(model_file=str(fused_int8), max_length=160),
        "int8 fused, max_length 128": dict(model_file=str(fused_int8), max_length=128),
        "int8 fused, window 160": dict(model_file=str(fused_int8), window=160),
        "int8 fused, window 96": dict(model_file=str(fused_int8), window=96),
        "naive fp32 (padded to 256)": dict(naive="model.onnx"),
        "naive int8 (padded to 256)": dict(naive="model_int8.onnx"),
    }
    if args.only:
        settings = {k: v for k, v in settings.items() if k in args.only.split(";")}
    rerankers: dict[str, rapidrag.Reranker] = {}

    def scorer(setting: dict[str, Any]) -> Any:
        if "naive" in setting:
            return naive_reranker(model_dir, setting["naive"])
        file = setting["model_file"]
        if file not in rerankers:
            rerankers[file] = rapidrag.Reranker(model_dir, model_file=file)
        reranker = rerankers[file]
        return lambda q, p: reranker.score(q, p, max_length=setting.get("max_length"), window=setting.get("window"))

    def run(setting: dict[str, Any], queries: dict[str, str]) -> tuple[dict[str, np.ndarray], float]:
        score = scorer(setting)
        out, times = {}, []
        for q, text in queries.items():
            top, _ = candidates[q]
            start = time.perf_counter()
            out[q] = score(text, [texts[i] for i in top])
            times.append(time.perf_counter() - start)
        return out, float(np.median(times) * 1000)

    def evaluate(scores: dict[str, np.ndarray], qrels: dict[str, dict[str, int]], a: float | None) -> float:
        values = []
        for q, relevant in qrels.items():
            top, first = candidates[q]
            if a is None:
                order = np.argsort(-scores[q], kind="stable")
            else:
                order = np.argsort(-fused_key(scores[q], first, a), kind="stable")
            values.append(ndcg_at_10([doc_ids[top[i]] for i in order], relevant))
        return float(np.mean(values))

    first_ndcg = evaluate({q: candidates[q][1] for q in test}, test_qrels, None)
    print(f"first stage (dense, int8 embedder) nDCG@10 = {first_ndcg:.4f}", file=sys.stderr)

    # The fusion weight, chosen on train queries with the default fast setting.
    train_scores, _ = run(settings.get("int8 fused", dict(model_file=str(fused_int8))), train)
    grid = [round(0.05 * i, 2) for i in range(21)]
    train_ndcg = {a: evaluate(train_scores, {q: train_qrels[q] for q in train}, a) for a in grid}
    weight = max(grid, key=lambda a: (train_ndcg[a], -a))
    print(f"fusion weight a = {weight} (train nDCG@10 {train_ndcg[weight]:.4f})", file=sys.stderr)

    results: dict[str, Any] = {
        "candidates": args.candidates,
        "first_stage_ndcg10": first_ndcg,
        "fusion_weight": weight,
        "train_ndcg10_by_weight": train_ndcg,
        "settings": {},
    }
    for name, setting in settings.items():
        scores, ms = run(setting, test)
        row = {
            "ndcg10_reranker_alone": evaluate(scores, test_qrels, None),
            "ndcg10_fused": evaluate(scores, test_qrels, weight),
            "median_ms_per_query_in_this_run": ms,
        }
        results["settings"][name] = row
        print(
            f"{name:32s} alone {row['ndcg10_reranker_alone']:.4f}  fused {row['ndcg10_fused']:.4f}  {ms:.0f} ms",
            file=sys.stderr,
        )
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
