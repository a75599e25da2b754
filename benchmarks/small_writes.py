"""What one small write costs in a large index: ``add_embedded`` of one document (storing only: chunk table, BM25,
vectors, metadata), ``upsert`` of one document (its embedding included) and ``delete`` of one, each timed one at a
time into an index of ``--docs`` gcide passages (built with stand-in unit vectors: storing does not look at them).

    python benchmarks/small_writes.py --shared ../shared --docs 20000 --docs 125984 --writes 50

A service that keeps its index fresh (a changed policy page, a new ticket) writes documents one by one; each write
holds the index's write lock, so its time is also how long searches wait. Set ``RAPIDRAG_CODE=FOLDER`` to time a
copy of the code (a folder holding the package with its built ``_core``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import stand_in_index, use_code_copy


def timed(write: Any, items: list[Any]) -> dict[str, float]:
    times = []
    for item in items:
        clock = time.perf_counter()
        write(item)
        times.append((time.perf_counter() - clock) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)), "n": len(times)}


def writes(embedder: Any, retriever: Any, pool: list[Any], n: int, count: int) -> dict[str, Any]:
    """``count`` writes of each kind into ``retriever`` (holding ``pool[:n]``): new documents from ``pool[n:]``
    added, the first ones upserted, the next ones deleted."""
    from rapidrag.chunks import document_spans
    from rapidrag.documents import Document

    rng = np.random.default_rng(1)

    def add_one(doc: Any) -> None:
        spans, row_splits = document_spans(retriever.chunker, [doc.text])
        vectors = rng.standard_normal((len(spans), embedder.dim)).astype(np.float32)
        retriever.add_embedded([doc], spans, row_splits, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

    def upsert_one(doc: Any) -> None:
        retriever.upsert([Document(doc.id, doc.text + " (revised)", doc.metadata, doc.title)])

    return {
        "chunks": retriever.n_chunks,
        "add_embedded one document": timed(add_one, pool[n : n + count]),
        "upsert one document (embedding included)": timed(upsert_one, pool[:count]),
        "delete one document": timed(lambda doc: retriever.delete([doc.id]), pool[count : 2 * count]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--docs", type=int, action="append", help="index sizes, gcide passages (default 20000)")
    parser.add_argument("--writes", type=int, default=50, help="writes of each kind per index size")
    parser.add_argument("--out", default="small_writes.json")
    args = parser.parse_args()
    use_code_copy()

    import rapidrag
    from rapidrag.ingest import Ingest

    sizes = args.docs or [20000]
    source = Path(args.shared) / "data" / "corpora" / "gcide" / "corpus.jsonl.gz"
    pool = list(itertools.islice(Ingest(source).unique(), max(sizes) + args.writes))
    if len(pool) < max(sizes) + args.writes:
        raise SystemExit(f"the corpus has {len(pool):,} passages: --docs at most {len(pool) - args.writes:,}")
    embedder = rapidrag.Embedder(Path(args.shared) / "models" / "all-MiniLM-L6-v2", quantized=True)
    results: dict[str, Any] = {}
    for n in sizes:
        results[str(n)] = writes(embedder, stand_in_index(embedder, pool[:n])[0], pool, n, args.writes)
        print(n, json.dumps(results[str(n)]), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rapidrag": str(Path(rapidrag.__file__).parent),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
