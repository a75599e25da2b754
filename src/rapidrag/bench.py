"""Latency of a retriever, stage by stage: what ``rapidrag bench`` runs.

Each configuration (lexical, dense, hybrid, hybrid + rerank, and hybrid + rerank under each time budget) runs
every query once, after a few warm-up queries, in one thread; the report has p50, p95 and p99 of each stage's
time and of the whole search, and nDCG@10 when judgements are given (from the same searches).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .retriever import query_metrics

__all__ = ["Config", "default_configs", "percentiles", "run"]

WARM_UP = 5


@dataclass(frozen=True)
class Config:
    name: str
    mode: str
    rerank: bool
    budget_ms: float | None = None


def default_configs(retriever: Any, budgets: Sequence[float] = (100.0, 500.0)) -> list[Config]:
    if retriever.dense is None:
        configs = [Config("lexical", "lexical", False)]
        if retriever.reranker is not None:
            configs.append(Config("lexical + rerank", "lexical", True))
        return configs
    configs = [Config("lexical", "lexical", False), Config("dense", "dense", False), Config("hybrid", "hybrid", False)]
    if retriever.reranker is not None:
        configs.append(Config("hybrid + rerank", "hybrid", True))
        configs += [Config(f"hybrid + rerank, {b:g} ms budget", "hybrid", True, b) for b in budgets]
    return configs


def percentiles(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if not len(a):
        return {}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(a.mean()), "max": float(a.max())}


def run(
    retriever: Any,
    queries: Mapping[str, str],
    configs: Sequence[Config],
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    k: int = 10,
    candidates: int = 100,
) -> dict[str, Any]:
    """Stage and end-to-end latency percentiles (ms) per configuration, with nDCG@10 when ``qrels`` is given."""
    ids = list(queries)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "queries": len(ids),
        "k": k,
        "candidates": candidates,
        "configs": {},
    }
    for config in configs:
        kwargs = {"mode": config.mode, "rerank": config.rerank, "budget_ms": config.budget_ms}
        for q in ids[:WARM_UP]:
            retriever.search(queries[q], k=k, candidates=candidates, **kwargs)
        stages: dict[str, list[float]] = {}
        quality = []
        reranked = []
        for q in ids:
            hits = retriever.search(queries[q], k=k, candidates=candidates, **kwargs)
            for stage, ms in hits.timings.items():
                stages.setdefault(stage.removesuffix("_ms"), []).append(ms)
            if config.rerank:
                reranked.append(sum("rerank" in h.scores for h in hits))
            if qrels is not None and q in qrels:
                quality.append(query_metrics([h.doc_id for h in hits], qrels[q])["ndcg@10"])
        entry: dict[str, Any] = {
            "mode": config.mode,
            "rerank": config.rerank,
            "budget_ms": config.budget_ms,
            "stages_ms": {stage: percentiles(v) for stage, v in stages.items()},
            "total_ms_all": stages.get("total", []),
        }
        if quality:
            entry["ndcg@10"] = float(np.mean(quality))
            entry["judged"] = len(quality)
        if reranked:
            entry["reranked_in_top_k"] = float(np.mean(reranked))
        report["configs"][config.name] = entry
    return report


def plot(report: Mapping[str, Any], path: str) -> None:
    """Box plots of the end-to-end latency of each configuration, on a log scale (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install 'rapidrag[plot]' (or matplotlib)") from None
    names = list(report["configs"])
    data = [report["configs"][n]["total_ms_all"] for n in names]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(names) + 1.5))
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end search latency, ms (box: p25-p75, whiskers: p1-p99)")
    for i, n in enumerate(names, 1):
        entry = report["configs"][n]
        label = f"p99 {entry['stages_ms']['total']['p99']:.1f} ms"
        if "ndcg@10" in entry:
            label += f", nDCG@10 {entry['ndcg@10']:.3f}"
        ax.annotate(label, xy=(1.01, i), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.set_title(f"{report['queries']} queries, k={report['k']}, {report['candidates']} candidates")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
