"""BM25 on SciFact: indexing docs/s and queries/s against bm25s, tantivy and rank_bm25, single-threaded, with nDCG@10.

All use English stopwords and the Snowball English stemmer where the library allows (bm25s: PyStemmer and its
English stopword list; tantivy: its "en_stem" tokenizer, which lowercases and stems but keeps stopwords; rank_bm25:
the same words as rapidrag's WordAnalyzer, since it takes pre-tokenized text). BM25 parameters k1 = 0.9, b = 0.4
(Pyserini's BEIR setting) where the library takes them; tantivy uses its fixed 1.2 / 0.75. Documents are title + text.
Indexing time includes analysis. Queries: the 300 SciFact test queries, one at a time, top 10; rank_bm25 scores every
document in Python, so it runs the first 30 queries (``RAPIDRAG_BENCH_RANK_BM25_QUERIES``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import env_int, run_timed

from rapidrag.beir import document_text, load_corpus, load_qrels, load_queries
from rapidrag.lexical import BM25, WordAnalyzer

RANK_BM25_QUERIES = env_int("RAPIDRAG_BENCH_RANK_BM25_QUERIES", 30)
# "rapidrag-retriever": the whole lexical search path of a Retriever (hits with citations), beside the BM25 class.
LIBRARIES = ["rapidrag", "rapidrag-retriever", "bm25s", "tantivy", "rank_bm25"]


@pytest.fixture(scope="module")
def data(scifact_dir: Path) -> dict[str, Any]:
    docs = load_corpus(scifact_dir)
    qrels = load_qrels(scifact_dir / "qrels/test.tsv")
    queries = load_queries(scifact_dir)
    return {
        "ids": [d["_id"] for d in docs],
        "texts": [document_text(d) for d in docs],
        "queries": [(q, queries[q]) for q in qrels],
        "qrels": qrels,
    }


def ndcg10(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> float:
    values = []
    for q, ranked in runs.items():
        rel = qrels[q]
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
        values.append(dcg / ideal)
    return float(np.mean(values))


def make(library: str, ids: list[str], texts: list[str]) -> Any:
    """An index of the corpus and a search function query -> top-10 ids."""
    if library == "rapidrag":
        index = BM25()
        index.add(ids, texts)
        return lambda q: index.search(q, k=10)[0]
    if library == "rapidrag-retriever":
        from rapidrag.retriever import Document, Retriever

        retriever = Retriever()
        retriever.add([Document(i, t) for i, t in zip(ids, texts, strict=True)])
        return lambda q: [h.doc_id for h in retriever.search(q, k=10)]
    if library == "bm25s":
        import bm25s
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
        retriever = bm25s.BM25(k1=0.9, b=0.4)
        retriever.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
        )

        def search_bm25s(q: str) -> list[str]:
            tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
            docs, _ = retriever.retrieve(tokens, k=10, show_progress=False, n_threads=1)
            return [ids[i] for i in docs[0]]

        return search_bm25s
    if library == "tantivy":
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
        builder.add_integer_field("row", stored=True, fast=True)
        schema = builder.build()
        index = tantivy.Index(schema)
        writer = index.writer(heap_size=50_000_000, num_threads=1)
        for row, text in enumerate(texts):
            writer.add_document(tantivy.Document(body=text, row=row))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        searcher = index.searcher()

        def search_tantivy(q: str) -> list[str]:
            query = index.parse_query(" ".join(w for w in WordAnalyzer(stemmer=None)(q)) or "xyzzy", ["body"])
            return [ids[searcher.doc(addr)["row"][0]] for _, addr in searcher.search(query, 10).hits]

        return search_tantivy
    from rank_bm25 import BM25Okapi

    analyzer = WordAnalyzer()
    okapi = BM25Okapi([analyzer(t) for t in texts], k1=0.9, b=0.4)

    def search_rank_bm25(q: str) -> list[str]:
        scores = okapi.get_scores(analyzer(q))
        return [ids[i] for i in np.argsort(-scores)[:10]]

    return search_rank_bm25


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.benchmark(group="bm25-index-scifact")
def test_index(benchmark: Any, data: dict[str, Any], library: str) -> None:
    pytest.importorskip({"rapidrag-retriever": "rapidrag", "rank_bm25": "rank_bm25"}.get(library, library))
    run_timed(benchmark, lambda: make(library, data["ids"], data["texts"]), rounds=3)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.median > 0:
        benchmark.extra_info["docs/s (median)"] = round(len(data["ids"]) / stats.median)
    benchmark.extra_info["library"] = library


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.benchmark(group="bm25-query-scifact")
def test_query(benchmark: Any, data: dict[str, Any], library: str) -> None:
    pytest.importorskip({"rapidrag-retriever": "rapidrag", "rank_bm25": "rank_bm25"}.get(library, library))
    search = make(library, data["ids"], data["texts"])
    queries = data["queries"][:RANK_BM25_QUERIES] if library == "rank_bm25" else data["queries"]
    runs = run_timed(benchmark, lambda: {q: search(text) for q, text in queries}, rounds=3)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.median > 0:
        benchmark.extra_info["queries/s (median)"] = round(len(queries) / stats.median)
    quality = ndcg10(runs, data["qrels"])
    benchmark.extra_info.update(library=library, queries=len(queries), **{"nDCG@10": round(quality, 4)})
    if library.startswith("rapidrag"):
        assert quality >= 0.67  # the floor for lexical search on SciFact
