"""Choosing a retriever's weights on judged queries: BM25 parameters, fusion, and the rerank fusion weight.

``tune(retriever, queries, qrels)`` searches small grids in three steps, each keeping the best setting of the
previous ones (coordinate ascent on nDCG@10):

1. BM25 k1, b and the title field's weight (when the index has a title field), by lexical nDCG@10;
2. the fusion (RRF or a normalised weighted sum) and the dense weight, by hybrid nDCG@10;
3. the reranker's share of the final score and how many candidates it reranks, by hybrid + rerank nDCG@10.

``retriever`` is a ``Retriever`` or a ``ShardedRetriever`` (each setting reaches its shards). The chosen settings
are left on the retriever (``save`` keeps them), and what chose them in its ``tuned_on``: the
reranker's share is used with the reranker it was chosen with only (another one brings its own recommendation).
Query embeddings and reranker scores are computed once and reused across the grid, so the cost is about one
hybrid + rerank pass over the queries plus cheap re-rankings. Tune on queries that are not the ones you report:
a figure measured on the tuning queries overstates what new queries will see.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Step", "TuneResult", "tune"]


@dataclass
class Step:
    """One tuning step: every setting tried with its nDCG@10, the one kept, and the gain over the step's start."""

    name: str
    tried: list[tuple[dict[str, Any], float]]
    chosen: dict[str, Any]
    before: float
    after: float

    @property
    def gain(self) -> float:
        return self.after - self.before


@dataclass
class TuneResult:
    steps: list[Step] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    seconds: float = 0.0
    reranker: str | None = None  # the folder name of the reranker the rerank step chose a weight with


class _CachedEmbedder:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}
        self.dim, self.max_length, self.tokenizer = inner.dim, inner.max_length, inner.tokenizer

    def embed(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.embed(missing, **kwargs), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


class _CachedReranker:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str], float] = {}

    def score(self, query: str, passages: Sequence[str], **kwargs: Any) -> np.ndarray:
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self.cache]
        if missing:
            for p, s in zip(missing, self.inner.score(query, missing), strict=True):
                self.cache[query, p] = float(s)
        return np.asarray([self.cache[query, p] for p in passages], dtype=np.float32)


def _bm25(r: Any, s: Mapping[str, Any]) -> None:
    r.configure(k1=float(s["k1"]), b=float(s["b"]), title_weight=s.get("title_weight"))


def _fusion(r: Any, s: Mapping[str, Any]) -> None:
    w = float(s["dense"])
    r.configure(fusion=s["fusion"], weights=(1.0 - w, w) if s["fusion"] == "weighted" else (1.0, w))


def _rerank(r: Any, s: Mapping[str, Any]) -> None:
    r.configure(rerank_weight=float(s["rerank_weight"]), rerank_depth=int(s["rerank_depth"]))


def tune(
    retriever: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    max_queries: int | None = None,
    rerank_depths: Sequence[int] = (10, 20, 30),
    log: Callable[[str], None] | None = None,
    progress: bool | None = False,
) -> TuneResult:
    """Choose the retriever's weights on ``qrels`` (see the module's docstring); returns what each step gained.

    ``max_queries``: tune on the first N judged queries only (the rerank step costs about one reranker call per
    query and candidate depth). ``progress``: a progress bar of the settings tried, on stderr (None: when it is
    a terminal).
    """
    from .metrics import evaluate
    from .progress import Progress
    from .store import model_name

    judged = {q: rel for q, rel in qrels.items() if q in queries}
    if not judged:
        raise ValueError("none of the judged queries is in the queries given")
    if max_queries is not None:
        judged = dict(itertools.islice(judged.items(), max_queries))
    say = log or (lambda _: None)
    started = time.perf_counter()
    result = TuneResult(queries=len(judged))
    embedder, reranker = retriever.embedder, retriever.reranker
    if embedder is not None:
        retriever.embedder = _CachedEmbedder(embedder)
    if reranker is not None:
        retriever.reranker = _CachedReranker(reranker)

    def ndcg(**kw: Any) -> float:
        return evaluate(retriever, queries, judged, **kw)["ndcg@10"]

    def step(name: str, grid: list[dict[str, Any]], apply: Callable[[Any, Mapping[str, Any]], None], **kw: Any) -> None:
        bar.label = f"tuning {name}"
        before = ndcg(**kw)
        bar.update(bar.done + 1)
        tried = []
        for setting in grid:
            apply(retriever, setting)
            value = ndcg(**kw)
            tried.append((setting, value))
            bar.update(bar.done + 1, f"best nDCG@10 {max(v for _, v in tried):.4f}")
            say(f"  {name} {setting}: nDCG@10 {value:.4f}")
        chosen, after = max(tried, key=lambda x: x[1])  # the first of equals: grids list the defaults first
        apply(retriever, chosen)
        result.steps.append(Step(name, tried, chosen, before, after))
        result.settings.update(chosen)
        say(f"{name}: {chosen} nDCG@10 {before:.4f} -> {after:.4f} ({after - before:+.4f})")

    titles = [0.0, 0.5, 1.0] if retriever.has_title_field else [retriever.title_weight]
    bm25_grid = [
        {"k1": k1, "b": b, "title_weight": tw}
        for k1, b, tw in itertools.product((0.9, 1.2, 1.5), (0.4, 0.6, 0.75), titles)
    ]
    fusion_grid = [{"fusion": "rrf", "dense": w} for w in (1.0, 0.5, 0.75, 1.25, 1.5, 2.0)]
    fusion_grid += [{"fusion": "weighted", "dense": w} for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
    rerank_grid = [
        {"rerank_weight": w, "rerank_depth": d}
        for d, w in itertools.product(rerank_depths, (1.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
    ]
    steps: list[tuple[str, list[dict[str, Any]], Callable[[Any, Mapping[str, Any]], None], dict[str, Any]]] = [
        ("bm25", bm25_grid, _bm25, {"mode": "lexical", "rerank": False})
    ]
    if retriever.default_mode == "hybrid":  # (the index has vectors)
        steps.append(("fusion", fusion_grid, _fusion, {"mode": "hybrid", "rerank": False}))
    if reranker is not None:
        mode = retriever.default_mode
        steps.append(("rerank", rerank_grid, _rerank, {"mode": mode, "rerank": True}))
        result.reranker = model_name(reranker)
    total = sum(len(grid) + 1 for _, grid, _, _ in steps)
    bar = Progress(total, "tuning", unit="settings", enabled=progress)
    try:
        for name, grid, apply, kw in steps:
            step(name, grid, apply, **kw)
    finally:
        bar.close()
        retriever.embedder, retriever.reranker = embedder, reranker
    result.seconds = time.perf_counter() - started
    # What chose the settings, saved with the index; a weight chosen with one reranker is not used for another.
    retriever.tuned_on = {
        "queries": result.queries,
        "settings": result.settings,
        "gains": {s.name: round(s.gain, 4) for s in result.steps},
        "reranker": result.reranker,
    }
    return result
