"""Latency of a retriever, stage by stage: what ``rapidrag bench`` runs.

Each configuration (lexical, dense, hybrid, hybrid + rerank, and hybrid + rerank under each time budget) runs
every query once, after a few warm-up queries, in one thread; the report has p50, p95 and p99 of each stage's
time and of the whole search, and nDCG@10 when judgements are given (from the same searches). Throughput: the
same queries again from several threads calling ``search`` at once (each takes the next query until none is
left), for each configuration that is not an unbudgeted rerank, as queries per second and latency percentiles.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import percentiles, query_metrics

__all__ = ["Config", "default_configs", "percentiles", "plot", "plot_budget", "run", "throughput"]

WARM_UP = 5


@dataclass(frozen=True)
class Config:
    name: str
    mode: str
    rerank: bool
    budget_ms: float | None = None


def default_configs(retriever: Any, budgets: Sequence[float] = (100.0, 500.0)) -> list[Config]:
    if retriever.default_mode == "lexical":  # (no vectors: one index or one split in shards)
        configs = [Config("lexical", "lexical", False)]
        if retriever.reranker is not None:
            configs.append(Config("lexical + rerank", "lexical", True))
        return configs
    configs = [Config("lexical", "lexical", False), Config("dense", "dense", False), Config("hybrid", "hybrid", False)]
    if retriever.reranker is not None:
        configs.append(Config("hybrid + rerank", "hybrid", True))
        configs += [Config(f"hybrid + rerank, {b:g} ms budget", "hybrid", True, b) for b in budgets]
    return configs


def run(
    retriever: Any,
    queries: Mapping[str, str],
    configs: Sequence[Config],
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    k: int = 10,
    candidates: int = 100,
    concurrency: Sequence[int] = (),
    progress: bool | None = False,
    context_budget: int | None = None,
    prices: tuple[float, float] = (0.0, 0.0),
    output_tokens: int = 0,
) -> dict[str, Any]:
    """Stage and end-to-end latency percentiles (ms) per configuration, with nDCG@10 when ``qrels`` is given,
    and throughput at each level of ``concurrency`` (threads searching at once). ``progress``: a progress bar
    per configuration on stderr (None: when it is a terminal).

    ``context_budget``: each search's hits are also packed into a context of at most that many tokens
    (``rapidrag.context.pack``, outside the search's own time): the report gives its tokens, its packing time and,
    at ``prices`` (input, output per million tokens) with ``output_tokens`` per answer, the cost per query."""
    from .progress import Progress

    if context_budget is not None:
        from .context import pack

    ids = list(queries)
    options = retriever.index_options
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "dense_index": {"kind": retriever.index_kind, **options} if options else None,
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
        partial = 0
        costs: list[Any] = []
        with_throughput = not config.rerank or config.budget_ms is not None  # not the unbudgeted rerank
        runs = len(ids) * (1 + (len(concurrency) if with_throughput else 0))
        bar = Progress(runs, f"bench {config.name}", unit="searches", enabled=progress, erase=True)
        for done, q in enumerate(ids, 1):
            bar.update(done)
            hits = retriever.search(queries[q], k=k, candidates=candidates, **kwargs)
            partial += bool(hits.missing_shards)
            for stage, ms in hits.timings.items():
                stages.setdefault(stage.removesuffix("_ms"), []).append(ms)
            if context_budget is not None:
                context = pack(hits, context_budget, source=retriever, query=queries[q])
                stages.setdefault("pack", []).append(context.pack_ms)
                costs.append(context.cost(*prices, output_tokens=output_tokens))
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
        if partial:  # (an index split in shards, some of which did not answer these searches)
            entry["partial_answers"] = partial
        if costs:
            entry["context"] = {
                "budget_tokens": context_budget,
                "tokens": percentiles([c.input_tokens for c in costs]),
                "mean_tokens": float(np.mean([c.input_tokens for c in costs])),
                "output_tokens": output_tokens,
                "prices_per_million": {"input": prices[0], "output": prices[1]},
                "cost_per_query": float(np.mean([c.per_query for c in costs])),
                "cost_per_1000_queries": float(np.mean([c.per_1000_queries for c in costs])),
            }
        if with_throughput:
            entry["throughput"] = []
            for level, threads in enumerate(concurrency, 1):
                bar.update(len(ids) * level, f"{threads} threads")
                entry["throughput"].append(
                    throughput(retriever, queries, config, threads, qrels=qrels, k=k, candidates=candidates)
                )
        bar.close()
        report["configs"][config.name] = entry
    return report


def throughput(
    retriever: Any,
    queries: Mapping[str, str],
    config: Config,
    threads: int,
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    k: int = 10,
    candidates: int = 100,
) -> dict[str, Any]:
    """Every query once, from ``threads`` threads searching at once: queries per second, latency (ms), and
    nDCG@10 when ``qrels`` is given (under a budget, load changes how much the reranker scores)."""
    if threads < 1:
        raise ValueError(f"concurrency must be at least 1, got {threads}")
    kwargs = {"mode": config.mode, "rerank": config.rerank, "budget_ms": config.budget_ms}
    lock = threading.Lock()
    todo = iter(list(queries.items()))
    latencies: list[float] = []
    quality: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        try:
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                t = time.perf_counter()
                hits = retriever.search(item[1], k=k, candidates=candidates, **kwargs)
                latencies.append((time.perf_counter() - t) * 1000)
                if qrels is not None and item[0] in qrels:
                    quality.append(query_metrics([h.doc_id for h in hits], qrels[item[0]])["ndcg@10"])
        except BaseException as e:  # reported in the calling thread
            errors.append(e)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    out: dict[str, Any] = {
        "concurrency": threads,
        "queries": len(latencies),
        "queries_per_s": len(latencies) / seconds if seconds > 0 else float("inf"),
        "latency_ms": percentiles(latencies),
    }
    if quality:
        out["ndcg@10"] = float(np.mean(quality))
    return out


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install 'rapidrag[plot]' (or matplotlib)") from None
    return plt


def plot(report: Mapping[str, Any], path: str) -> None:
    """Box plots of the end-to-end latency of each configuration, on a log scale (needs matplotlib)."""
    plt = _pyplot()
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


def plot_budget(report: Mapping[str, Any], path: str) -> None:
    """The budget/quality curve: nDCG@10 and p99 latency against the time budget (needs matplotlib, a report with
    budgeted configurations and judgements)."""
    plt = _pyplot()
    configs = report["configs"]
    budgeted = sorted(
        (c for c in configs.values() if c.get("budget_ms") and "ndcg@10" in c), key=lambda c: c["budget_ms"]
    )
    if not budgeted:
        raise ValueError("the report has no budgeted configuration with nDCG@10 (run with --qrels and --budget-ms)")
    budgets = [c["budget_ms"] for c in budgeted]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    own = report.get("reranker_name", "hybrid + rerank")
    left.plot(budgets, [c["ndcg@10"] for c in budgeted], "o-", label=f"{own} within the budget")
    for name, other in report.get("other_rerankers", {}).items():  # --compare-reranker: one curve each
        points = sorted((c["budget_ms"], c["ndcg@10"]) for c in other["configs"].values() if "ndcg@10" in c)
        if points:
            left.plot([b for b, _ in points], [v for _, v in points], "s--", label=name)
    if report.get("other_rerankers"):
        left.legend(fontsize=7)
    for name, style in (("hybrid", "--"), ("hybrid + rerank", ":")):
        if "ndcg@10" in configs.get(name, {}):
            left.axhline(configs[name]["ndcg@10"], linestyle=style, color="grey")
            left.annotate(f"{name}, no budget", xy=(budgets[0], configs[name]["ndcg@10"]), fontsize=8, va="bottom")
    left.set_xscale("log")
    left.set_xlabel("budget_ms")
    left.set_ylabel("nDCG@10")
    left.set_title("quality within the budget")
    right.plot(budgets, [c["stages_ms"]["total"]["p99"] for c in budgeted], "o-", label="p99")
    right.plot(budgets, [c["stages_ms"]["total"]["p50"] for c in budgeted], "s-", label="p50")
    right.plot(budgets, budgets, "--", color="grey", label="the budget")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("budget_ms")
    right.set_ylabel("end-to-end latency, ms")
    right.set_title("latency against the budget")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report['queries']} queries, k={report['k']}, {report['candidates']} candidates", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
