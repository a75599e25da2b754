"""Where the reranked pipelines' nDCG@10 differ: the candidates (each first stage's fused top 20) or the scorer.

    python benchmarks/rerank_gap.py [--queries 300]

Builds the rapidrag and by-hand pipelines of ``_pipelines.py`` on all of SciFact, then for each test query takes
each pipeline's fused top 20 and orders it with each pipeline's cross-encoder (the same int8 model file; rapidrag's
``Reranker`` in unpadded length-bucketed batches, the by-hand one in one batch padded to the longest pair). Prints
nDCG@10 of the four combinations, recall@20 of each candidate list, and the paired difference of the two pipelines
as they run (rapidrag candidates + scorer against by-hand candidates + scorer) with its standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _pipelines import RERANK_DEPTH, ByHandPipeline, K, RapidragPipeline, rrf

from rapidrag.beir import document_text, load_corpus, load_qrels, load_queries
from rapidrag.retriever import query_metrics


def by_hand_head(pipeline: ByHandPipeline, query: str) -> list[int]:
    """The by-hand pipeline's fused top 20 rows, built as its ``search`` builds them."""
    import bm25s

    tokens = bm25s.tokenize([query], stopwords="en", stemmer=pipeline.stemmer, show_progress=False)
    lexical: list[int] = []
    if tokens.ids[0]:
        rows, scores = pipeline.bm25.retrieve(tokens, k=100, show_progress=False, n_threads=1)
        lexical = [int(r) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
    _, rows = pipeline.faiss.search(pipeline.embedder.embed([query]), 100)
    return rrf([lexical, [int(r) for r in rows[0] if r >= 0]])[:RERANK_DEPTH]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="the first N test queries")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from conftest import shared_dir

    scifact, models = shared_dir() / "data/beir/scifact", shared_dir() / "models"
    docs = load_corpus(scifact)
    ids, texts = [d["_id"] for d in docs], [document_text(d) for d in docs]
    row = {d: i for i, d in enumerate(ids)}
    qrels, query_text = load_qrels(scifact / "qrels/test.tsv"), load_queries(scifact)
    queries = [q for q in qrels if q in query_text][: args.queries]
    ours = RapidragPipeline(models / "all-MiniLM-L6-v2", models / "minilm-l6-reranker")
    ours.index(ids, texts)
    theirs = ByHandPipeline(models / "all-MiniLM-L6-v2", models / "minilm-l6-reranker")
    theirs.index(ids, texts)
    scorers = {"rapidrag": ours.reranker.score, "by hand": theirs.reranker.score}  # type: ignore[union-attr]
    ndcg: dict[tuple[str, str], list[float]] = {}
    recall: dict[str, list[float]] = {"rapidrag": [], "by hand": []}
    for q in queries:
        query = query_text[q]
        hits = ours.retriever.search(query, 100, mode="hybrid", rerank=False, candidates=100, per_document=False)
        heads = {"rapidrag": [row[h.doc_id] for h in hits][:RERANK_DEPTH], "by hand": by_hand_head(theirs, query)}
        relevant = {d for d, grade in qrels[q].items() if grade > 0}
        for cand, head in heads.items():
            recall[cand].append(len(relevant & {ids[r] for r in head}) / max(1, len(relevant)))
            for scorer, score in scorers.items():
                logits = score(query, [texts[r] for r in head])
                order = [ids[head[i]] for i in np.argsort(-logits, kind="stable")][:K]
                ndcg.setdefault((cand, scorer), []).append(query_metrics(order, qrels[q])["ndcg@10"])
    print(f"{len(queries)} queries; nDCG@10 of the fused top {RERANK_DEPTH} ordered by the cross-encoder")
    for (cand, scorer), values in ndcg.items():
        print(f"  candidates {cand:<9} scorer {scorer:<9} {np.mean(values):.4f}")
    for cand, values in recall.items():
        print(f"  recall@{RERANK_DEPTH} of the {cand} candidates: {np.mean(values):.4f}")
    diff = np.array(ndcg[("rapidrag", "rapidrag")]) - np.array(ndcg[("by hand", "by hand")])
    error = diff.std(ddof=1) / np.sqrt(len(diff))
    print(f"  rapidrag - by hand, as they run: {diff.mean():+.4f} (standard error {error:.4f})")


if __name__ == "__main__":
    main()
