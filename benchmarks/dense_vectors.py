"""Embed the gcide passages and the SciFact queries once, for the full-size dense benchmarks (bench_dense.py).

    python benchmarks/dense_vectors.py [--shared ../shared] [--out /tmp/rapidrag-bench-cache]

Writes ``gcide-minilm-int8.npy`` (float32 [125984, 384], normalised, in corpus order) and
``scifact-queries-minilm-int8.npy`` (float32 [n, 384], the queries in file order) with the int8 all-MiniLM-L6-v2
(``Embedder(..., quantized=True)``, ``max_length`` 256). 8 to 14 minutes on 2 cores. The vectors are a cache
outside the repository: bench_dense.py reads them from ``RAPIDRAG_BENCH_DENSE_CACHE`` when that folder holds
them, and falls back to seeded random vectors otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import rapidrag
from rapidrag.beir import document_text, load_corpus, load_queries

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILE = "gcide-minilm-int8.npy"
QUERIES_FILE = "scifact-queries-minilm-int8.npy"


def save(path: Path, vectors: np.ndarray) -> None:
    """Write through a temporary name, so that a half-written file is never taken for the cache."""
    tmp = path.with_suffix(".part.npy")
    np.save(tmp, np.ascontiguousarray(vectors, dtype=np.float32))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--out", default="/tmp/rapidrag-bench-cache")
    parser.add_argument("--batch", type=int, default=8192, help="passages embedded between progress lines")
    args = parser.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    embedder = rapidrag.Embedder(shared / "models/all-MiniLM-L6-v2", quantized=True)

    queries = load_queries(shared / "data/beir/scifact")
    save(out / QUERIES_FILE, embedder.embed(list(queries.values())))
    print(f"{len(queries)} SciFact queries embedded")

    texts = [document_text(d) for d in load_corpus(shared / "data/corpora/gcide/corpus.jsonl.gz")]
    parts = []
    start = time.perf_counter()
    for i in range(0, len(texts), args.batch):
        parts.append(embedder.embed(texts[i : i + args.batch]))
        done = min(i + args.batch, len(texts))
        print(f"{done}/{len(texts)} passages, {time.perf_counter() - start:.0f} s", flush=True)
    save(out / CORPUS_FILE, np.concatenate(parts))
    print(f"wrote {out / CORPUS_FILE} and {out / QUERIES_FILE}")


if __name__ == "__main__":
    main()
