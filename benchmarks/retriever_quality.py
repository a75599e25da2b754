"""Retrieval quality of rapidrag.Retriever on SciFact (BEIR protocol): lexical, dense, hybrid, hybrid + rerank.

    python benchmarks/retriever_quality.py [--shared ../shared] [--embedder-file FILE] [--reranker-file FILE]
        [--index DIR] [--out retriever_quality.json]

Documents are title + text, chunked to the embedder's window (254 tokens), one hit per document (its best chunk).
``--index DIR`` saves the built index there, or loads it when it is already there (indexing is the slow part).

Every setting that a reported "tuned" figure uses is chosen by ``rapidrag.tuning.tune`` (what ``rapidrag tune``
runs) on the SciFact *train* queries (qrels/train.tsv, 809 queries), and only then measured on the test queries
(qrels/test.tsv, 300): BM25 k1, b and title-field weight; the fusion and its dense weight; the reranker's share
of the final score and its depth. The untuned defaults (Pyserini's BM25 0.9/0.4, no title field, RRF k = 60 with
equal weights, reranker alone over the top 20) are reported beside the tuned ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import rapidrag
from rapidrag.beir import load_corpus, load_qrels, load_queries
from rapidrag.tuning import tune

ROOT = Path(__file__).resolve().parent.parent


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
    retriever.reranker = reranker

    def report(label: str, **kw: Any) -> dict[str, float]:
        metrics = rapidrag.evaluate(retriever, queries, test, **kw)
        print(f"{label}: test {json.dumps({k: round(v, 4) for k, v in metrics.items()})}", flush=True)
        return metrics

    results: dict[str, Any] = {"test": {}}
    # Defaults first: Pyserini's BM25, no title field, RRF with equal weights.
    retriever.title_weight, retriever.fusion, retriever.weights = 0.0, "rrf", (1.0, 1.0)
    results["test"]["lexical (defaults)"] = report("lexical (defaults)", mode="lexical", rerank=False)
    results["test"]["dense"] = report("dense", mode="dense", rerank=False)
    results["test"]["hybrid (RRF, equal weights)"] = report("hybrid (RRF, equal weights)", mode="hybrid", rerank=False)
    results["test"]["hybrid + rerank (default weight 1.0)"] = report(
        "hybrid + rerank (untuned)", mode="hybrid", rerank=True
    )

    print("tuning on train queries", flush=True)
    tuned = tune(retriever, queries, train, log=lambda line: print(line, flush=True))
    results["tuning"] = {
        "queries": tuned.queries,
        "seconds": round(tuned.seconds),
        "steps": [
            {"name": s.name, "chosen": s.chosen, "train_before": s.before, "train_after": s.after, "tried": s.tried}
            for s in tuned.steps
        ],
    }
    results["test"]["lexical (tuned)"] = report("lexical (tuned)", mode="lexical", rerank=False)
    results["test"]["hybrid (tuned)"] = report("hybrid (tuned)", mode="hybrid", rerank=False)
    results["test"]["hybrid + rerank (tuned)"] = report("hybrid + rerank (tuned)", mode="hybrid", rerank=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
