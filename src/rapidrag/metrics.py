"""Quality and latency figures: nDCG@10, recall@100 and MRR@10 (BEIR protocol), and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .progress import Progress

__all__ = ["evaluate", "percentiles", "query_metrics"]


def evaluate(
    retriever: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 10,
    progress: str | None = None,
    **search_kwargs: Any,
) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 over the queries that have judgements (BEIR protocol: graded gains,
    log2 discount, relevance > 0 counts as relevant). ``progress``: a label for a progress bar on stderr (drawn
    when it is a terminal). An index split in shards that answered some queries without some of its shards
    (``SearchResult.missing_shards``) adds ``partial_answers``, how many: the figures are of partial answers."""
    rows = []
    partial = 0
    depth = max(100, k)
    judged = [(qid, rel) for qid, rel in qrels.items() if qid in queries]
    show = None if progress else False
    with Progress(len(judged), progress or "", unit="queries", enabled=show, erase=True) as bar:
        for done, (qid, rel) in enumerate(judged, 1):
            hits = retriever.search(queries[qid], k=depth, candidates=depth, **search_kwargs)
            partial += bool(getattr(hits, "missing_shards", None))
            rows.append(query_metrics([h.doc_id for h in hits], rel))
            bar.update(done)
    if not rows:
        raise ValueError("none of the judged queries is among the queries given")
    out = {name: float(np.mean([r[name] for r in rows])) for name in ("ndcg@10", "recall@100", "mrr@10")}
    if partial:
        out["partial_answers"] = partial
    return out


def query_metrics(ranked: Sequence[str], rel: Mapping[str, int]) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 of one ranked list of document ids against its judgements."""
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
    relevant = {d for d, g in rel.items() if g > 0}
    return {
        "ndcg@10": dcg / ideal if ideal > 0 else 0.0,
        "recall@100": len(relevant & set(ranked[:100])) / len(relevant) if relevant else 0.0,
        "mrr@10": next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0),
    }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of ``values`` (milliseconds, say); {} for none."""
    a = np.asarray(values, dtype=np.float64)
    if not len(a):
        return {}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(a.mean()), "max": float(a.max())}
