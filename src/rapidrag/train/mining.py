"""Candidates and hard negatives from rapidrag's own retriever: what the reranker will see in use.

The first stage is the hybrid retriever over the training corpus (lexical when no embedder is given). Hard
negatives are its best-ranked documents that are not judged relevant, except those ranked within ``skip_window``
places of a relevant one: unjudged documents ranked beside a relevant one are the likeliest false negatives (the
main risk of mining, since qrels are incomplete).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .data import TrainingData

__all__ = ["Candidates", "first_stage", "hard_negatives", "mine", "mining_retriever"]


@dataclass
class Candidates:
    """Per query: document ids best first, and their first-stage scores."""

    ranked: dict[str, list[str]]
    scores: dict[str, list[float]]


def build_retriever(data: TrainingData, embedder: Any = None, *, progress: bool | None = None) -> Any:
    """A Retriever over the training corpus (hybrid with ``embedder``, else lexical)."""
    from ..documents import Document
    from ..retriever import Retriever

    retriever = Retriever(embedder)
    retriever.add([Document(i, t) for i, t in data.documents.items()], progress=progress)
    return retriever


def mining_retriever(
    data: TrainingData, embedder: Any = None, index: Any = None, *, progress: bool | None = None
) -> Any:
    """The first stage to mine with: a saved ``index`` of the same corpus (checked to hold every judged document),
    else a new index of the corpus with ``embedder`` (an Embedder or its folder; None: lexical)."""
    if index is not None:
        from ..retriever import Retriever

        retriever = Retriever.load(index, reranker=None)
        missing = [d for q in data.qrels for d in data.positives(q) if retriever.get(d) is None]
        if missing:
            raise ValueError(f"--index {index} lacks {len(missing)} judged documents of the corpus ({missing[:3]})")
        return retriever
    if isinstance(embedder, (str, os.PathLike)):
        from ..embedder import Embedder

        embedder = Embedder(embedder, quantized=True)
    return build_retriever(data, embedder, progress=progress)


def mine(
    data: TrainingData,
    embedder: Any,
    index: Any,
    query_ids: Sequence[str],
    candidates: int,
    *,
    progress: bool | None = None,
) -> tuple[Candidates, str, float]:
    """The first stage's candidates for ``query_ids`` (see ``mining_retriever``), the mode that ranked them, and
    the seconds it took (indexing included)."""
    from .common import TrainingError

    clock = time.perf_counter()
    try:
        retriever = mining_retriever(data, embedder, index, progress=progress)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    mined = first_stage(retriever, data, query_ids, candidates)
    return mined, retriever.default_mode, time.perf_counter() - clock


def first_stage(retriever: Any, data: TrainingData, query_ids: Sequence[str], candidates: int) -> Candidates:
    ranked, scores = {}, {}
    for qid in query_ids:
        hits = retriever.search(data.queries[qid], k=candidates, candidates=max(candidates, 100), rerank=False)
        ranked[qid] = [h.doc_id for h in hits]
        scores[qid] = [h.score for h in hits]
    return Candidates(ranked, scores)


def hard_negatives(
    mined: Candidates, data: TrainingData, qid: str, n: int, skip_window: int, rng: random.Random
) -> list[str]:
    """``n`` negatives for ``qid``: drawn from its ranked candidates that are neither judged relevant nor within
    ``skip_window`` ranks of a relevant one, the better-ranked first half preferred; topped up at random from
    the corpus when the list runs short."""
    ranked = mined.ranked[qid]
    relevant = set(data.positives(qid))
    judged = set(data.qrels[qid])
    near: set[int] = set()
    for rank, doc in enumerate(ranked):
        if doc in relevant:
            near.update(range(rank - skip_window, rank + skip_window + 1))
    pool = [d for r, d in enumerate(ranked) if d not in judged and r not in near]
    hard = pool[: max(n, len(pool) // 2)]
    picked = rng.sample(hard, min(n, len(hard)))
    if len(picked) < n:
        others = [d for d in pool if d not in picked]
        picked += others[: n - len(picked)]
    rest = [d for d in data.documents if d not in judged and d not in picked]
    picked += rng.sample(rest, min(n - len(picked), len(rest)))
    if len(picked) < n:
        raise ValueError(f"query {qid!r}: the corpus has fewer than {n} documents that are not judged for it")
    return picked
