"""What the Retriever's search path costs over the index it wraps, on one saved index, in one process:

- lexical: ``Retriever.search(q, k=10, mode="lexical")`` (hits with citations, best chunk per document) against the
  same BM25 index called directly (``analyzer``, ``score_rows``, ``top_rows`` for 10 rows), and against that call
  plus what any hit must carry, read for its 10 rows (document id, chunk text sliced from the document, metadata):
  the floor of a search that returns hits with their text;
- dense: ``Retriever.search(q, k=10, mode="dense")`` against ``faiss.Index.search`` on the FAISS index it wraps
  (top 10), both given the same query vectors (embedded once beforehand, so that the model's time, which both
  would pay alike, does not hide the wrapper's).

    python benchmarks/wrapper_cost.py --index scifact.idx --queries ../shared/data/beir/scifact --rounds 7

To time a copy of the code (a folder holding the package with its built ``_core``), set ``RAPIDRAG_CODE=FOLDER``.
The 300 test queries one at a time; the paths take turns, round after round; the fastest round of each is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import GivenVectors, use_code_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a BEIR folder with queries and qrels/test.tsv")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="wrapper_cost.json")
    args = parser.parse_args()
    use_code_copy()  # RAPIDRAG_CODE=FOLDER: time that copy of the package (code before and after a change)

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.retriever import Retriever

    retriever = Retriever.load(args.index, reranker=None)
    queries = load_queries(args.queries)
    texts = [queries[q] for q in load_qrels(Path(args.queries) / "qrels" / "test.tsv") if q in queries]
    if retriever.dense is None or retriever.embedder is None:
        raise SystemExit("the index needs vectors and its embedder")
    vectors = {t: v for t, v in zip(texts, retriever.embedder.embed(texts), strict=True)}
    retriever.embedder = GivenVectors(retriever.embedder, vectors)
    bm25, faiss_index = retriever.bm25, retriever.dense._index

    table, documents = retriever._chunks, retriever._documents

    def bm25_and_texts(q: str) -> list[tuple[str, str, Any]]:
        rows, _ = bm25.top_rows(bm25.score_rows(bm25.analyzer(q)), 10)
        out = []
        for d, a, b in zip(table.doc[rows].tolist(), table.start[rows].tolist(), table.end[rows].tolist(), strict=True):
            doc = documents[d]
            out.append((doc.id, doc.text[a:b], doc.metadata))
        return out

    paths: dict[str, Callable[[str], Any]] = {
        "lexical: Retriever.search": lambda q: retriever.search(q, k=10, mode="lexical"),
        "lexical: BM25 index": lambda q: bm25.top_rows(bm25.score_rows(bm25.analyzer(q)), 10),
        "lexical: BM25 index + hit texts": bm25_and_texts,
        "dense: Retriever.search": lambda q: retriever.search(q, k=10, mode="dense"),
        "dense: FAISS search": lambda q: faiss_index.search(vectors[q][None, :], 10),
    }
    best = {name: float("inf") for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            clock = time.perf_counter()
            for q in texts:
                path(q)
            best[name] = min(best[name], time.perf_counter() - clock)
    per_query = {name: seconds / len(texts) * 1e6 for name, seconds in best.items()}
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rapidrag": rapidrag.__version__,
        "code": str(Path(rapidrag.__file__).parent),
        "queries": len(texts),
        "us_per_query": per_query,
        "lexical ratio": per_query["lexical: Retriever.search"] / per_query["lexical: BM25 index"],
        "lexical floor ratio": per_query["lexical: BM25 index + hit texts"] / per_query["lexical: BM25 index"],
        "dense ratio": per_query["dense: Retriever.search"] / per_query["dense: FAISS search"],
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
