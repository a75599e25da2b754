"""Retrieval quality of rapidrag.Retriever on SciFact test (BEIR protocol), lexical, dense and hybrid.

    python benchmarks/retriever_quality.py [--shared ../shared] [--embedder-file FILE] [--out retriever_quality.json]

Documents are title + text, chunked to the embedder's window (254 tokens), one hit per document (its best chunk).
Dense uses the shared all-MiniLM-L6-v2; ``--embedder-file`` picks another .onnx in its folder or a path (for
example the int8 file made by ``rapidrag quantize``). Hybrid is reciprocal rank fusion (k = 60) with equal weights:
nothing is tuned, on train or test queries.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import rapidrag
from rapidrag.beir import load_corpus, load_qrels, load_queries

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--embedder-file", default=None)
    parser.add_argument("--out", default="retriever_quality.json")
    args = parser.parse_args()
    data = Path(args.shared) / "data/beir/scifact"
    docs = load_corpus(data)
    queries = load_queries(data)
    qrels = load_qrels(data / "qrels/test.tsv")
    embedder = rapidrag.Embedder(Path(args.shared) / "models/all-MiniLM-L6-v2", model_file=args.embedder_file)
    retriever = rapidrag.Retriever(embedder=embedder)
    start = time.perf_counter()
    chunks = retriever.add(docs)
    print(f"indexed {len(retriever)} documents, {chunks} chunks in {time.perf_counter() - start:.0f} s")
    results = {}
    for mode in ("lexical", "dense", "hybrid"):
        results[mode] = rapidrag.evaluate(retriever, queries, qrels, mode=mode)
        print(mode, {k: round(v, 4) for k, v in results[mode].items()})
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
