"""Retrieval quality of rapidrag.Retriever on SciFact (BEIR protocol): lexical, dense, hybrid, hybrid + rerank.

    python benchmarks/retriever_quality.py [--shared ../shared] [--embedder-file FILE] [--reranker-file FILE]
        [--index DIR] [--out retriever_quality.json]

Documents are title + text, chunked to the embedder's window (254 tokens), one hit per document (its best chunk).
``--index DIR`` saves the built index there, or loads it when it is already there (indexing is the slow part).

Every setting that a reported figure uses is chosen on the SciFact *train* queries (qrels/train.tsv, 809 queries)
and only then measured on the test queries (qrels/test.tsv, 300), in three steps:

1. BM25: k1, b and the weight of the title field, by lexical nDCG@10;
2. fusion: reciprocal rank fusion or a normalised weighted sum, and the dense weight, by hybrid nDCG@10;
3. rerank: the reranker's share of the final score (``rerank_weight``) over the top 20 hybrid candidates.

The untuned defaults (Pyserini's BM25 0.9/0.4, RRF k = 60 with equal weights) are reported beside the tuned ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import rapidrag
from rapidrag.beir import load_corpus, load_qrels, load_queries

ROOT = Path(__file__).resolve().parent.parent


class CachedEmbedder:
    """The embedder, with query embeddings remembered (the tuning grid asks for the same queries many times)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.cache = inner, {}
        self.dim, self.max_length, self.tokenizer = inner.dim, inner.max_length, inner.tokenizer

    def embed(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.embed(missing, **kwargs), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


class CachedReranker:
    """The reranker, with (query, passage) scores remembered, so that the fusion weight can be varied cheaply."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.cache = inner, {}

    def score(self, query: str, passages: Sequence[str], **kwargs: Any) -> np.ndarray:
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self.cache]
        if missing:
            for p, s in zip(missing, self.inner.score(query, missing), strict=True):
                self.cache[query, p] = float(s)
        return np.asarray([self.cache[query, p] for p in passages], dtype=np.float32)


def best(
    name: str, grid: list[dict[str, Any]], apply: Callable[[dict[str, Any]], None], measure: Callable[[], float]
) -> dict[str, Any]:
    """The setting of ``grid`` with the highest train nDCG@10 (first wins ties); prints the grid."""
    scored = []
    for setting in grid:
        apply(setting)
        value = measure()
        scored.append((value, setting))
        print(f"  {name} {setting}: train nDCG@10 {value:.4f}", flush=True)
    value, setting = max(scored, key=lambda x: x[0])
    print(f"  -> {setting} ({value:.4f})", flush=True)
    apply(setting)
    return {"setting": setting, "train_ndcg@10": value, "grid": [[s, v] for v, s in scored]}


def set_bm25(r: rapidrag.Retriever, s: dict[str, Any]) -> None:
    for index in (r.bm25, r.bm25_title):
        if index is not None:
            index.k1, index.b = s["k1"], s["b"]
    r.title_weight = s["title_weight"]


def set_fusion(r: rapidrag.Retriever, s: dict[str, Any]) -> None:
    r.fusion, r.weights = (
        s["fusion"],
        (1.0 - s["dense"], s["dense"]) if s["fusion"] == "weighted" else (1.0, s["dense"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--embedder-file", default=None)
    parser.add_argument("--reranker-file", default=None, help="default: the shared model_int8.onnx")
    parser.add_argument("--index", default=None, help="save the index here, or load it from here")
    parser.add_argument("--out", default="retriever_quality.json")
    args = parser.parse_args()
    shared = Path(args.shared)
    data = shared / "data/beir/scifact"
    queries = load_queries(data)
    train = load_qrels(data / "qrels/train.tsv")
    test = load_qrels(data / "qrels/test.tsv")
    embedder = rapidrag.Embedder(shared / "models/all-MiniLM-L6-v2", model_file=args.embedder_file)
    reranker = rapidrag.Reranker(
        shared / "models/minilm-l6-reranker", quantized=args.reranker_file is None, model_file=args.reranker_file
    )
    if args.index and (Path(args.index) / "MANIFEST.json").exists():
        retriever = rapidrag.Retriever.load(args.index, embedder=embedder, reranker=None)
        print(f"loaded {args.index}: {len(retriever)} documents, {retriever.n_chunks} chunks")
    else:
        # A title field from the start (title_weight > 0), so that its weight can be tuned; 0 switches it off.
        retriever = rapidrag.Retriever(embedder=embedder, title_weight=1.0)
        start = time.perf_counter()
        chunks = retriever.add(load_corpus(data), progress=True)
        print(f"indexed {len(retriever)} documents, {chunks} chunks in {time.perf_counter() - start:.0f} s")
        if args.index:
            retriever.save(args.index)
    retriever.embedder = CachedEmbedder(embedder)
    cached_reranker = CachedReranker(reranker)

    def ndcg(qrels: dict[str, dict[str, int]], **kw: Any) -> float:
        return rapidrag.evaluate(retriever, queries, qrels, **kw)["ndcg@10"]

    def report(label: str, **kw: Any) -> dict[str, float]:
        metrics = rapidrag.evaluate(retriever, queries, test, **kw)
        print(f"{label}: test {json.dumps({k: round(v, 4) for k, v in metrics.items()})}", flush=True)
        return metrics

    results: dict[str, Any] = {"tuning": {}, "test": {}}
    defaults = {"k1": 0.9, "b": 0.4, "title_weight": 0.0}
    set_bm25(retriever, defaults)
    set_fusion(retriever, {"fusion": "rrf", "dense": 1.0})
    results["test"]["lexical (defaults)"] = report("lexical (defaults)", mode="lexical")
    results["test"]["dense"] = report("dense", mode="dense")
    results["test"]["hybrid (RRF, equal weights)"] = report("hybrid (RRF, equal weights)", mode="hybrid")

    print("step 1: BM25 on train", flush=True)
    grid = [
        {"k1": k1, "b": b, "title_weight": tw}
        for k1, b, tw in itertools.product((0.9, 1.2, 1.5), (0.4, 0.6, 0.75), (0.0, 0.5, 1.0))
    ]
    results["tuning"]["bm25"] = best(
        "bm25", grid, lambda s: set_bm25(retriever, s), lambda: ndcg(train, mode="lexical")
    )
    results["test"]["lexical (tuned)"] = report("lexical (tuned)", mode="lexical")

    print("step 2: fusion on train", flush=True)
    grid = [{"fusion": "rrf", "dense": w} for w in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    grid += [{"fusion": "weighted", "dense": w} for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    results["tuning"]["fusion"] = best(
        "fusion", grid, lambda s: set_fusion(retriever, s), lambda: ndcg(train, mode="hybrid")
    )
    results["test"]["hybrid (tuned)"] = report("hybrid (tuned)", mode="hybrid")

    print("step 3: rerank fusion weight on train (top 20 hybrid candidates)", flush=True)
    retriever.reranker = cached_reranker
    retriever.rerank_depth = 20
    grid = [{"rerank_weight": w} for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)]
    results["tuning"]["rerank"] = best(
        "rerank",
        grid,
        lambda s: setattr(retriever, "rerank_weight", s["rerank_weight"]),
        lambda: ndcg(train, mode="hybrid", rerank=True),
    )
    results["test"]["hybrid + rerank (tuned)"] = report("hybrid + rerank (tuned)", mode="hybrid", rerank=True)
    chosen = retriever.rerank_weight
    retriever.rerank_weight = 1.0
    results["test"]["hybrid + rerank alone (weight 1.0)"] = report("hybrid + rerank alone", mode="hybrid", rerank=True)
    retriever.rerank_weight = chosen
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
