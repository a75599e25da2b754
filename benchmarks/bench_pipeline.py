"""End-to-end hybrid retrieval on SciFact: rapidrag against the same pipeline built by hand and against LangChain.

The pipelines (``_pipelines.py``) use the same models (all-MiniLM-L6-v2 int8, the MiniLM-L6 cross-encoder int8),
the same inputs (whole documents, title + text, models truncating at 256 tokens), the same candidate counts (top 100
of BM25 and of exact dense search, fused by RRF, k = 60) and report the top 10; the rerank variant scores the
fused top 20 with the cross-encoder and orders them by its logit. Measured per pipeline: query latency p50 / p99
(one query at a time, after a warm-up), nDCG@10 on the test qrels (BEIR protocol) and indexing time.

Two ways to run it:

- pytest-benchmark (groups ``pipeline-hybrid`` and ``pipeline-hybrid-rerank``), each benchmark timing a pass over
  the queries and asserting nDCG@10 above a floor. By default tiny, for the CI smoke run: the documents judged
  relevant to the first 20 test queries plus the first documents of the corpus up to 150, those 20 queries, and
  the first 5 of them reranked. ``RAPIDRAG_BENCH_FULL=1``: all 5,183 documents and the 300 test queries.
  ``RAPIDRAG_BENCH_PIPELINE_DOCS``, ``RAPIDRAG_BENCH_PIPELINE_QUERIES`` and
  ``RAPIDRAG_BENCH_PIPELINE_RERANK_QUERIES`` set the sizes alone.
- a script, for the measurement in BENCHMARKS.md: ``python benchmarks/bench_pipeline.py --full`` indexes with each
  pipeline, then runs the queries round-robin over the pipelines (in a new random order every query), so that load
  from other jobs on the machine falls on all of them alike; prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import FULL, SCIFACT_DOCS, env_int, run_timed
from _pipelines import NEEDS, PIPELINES, import_quietly, make

from rapidrag.beir import document_text, load_corpus, load_qrels, load_queries
from rapidrag.retriever import query_metrics

# Embedding the corpus three times dominates the tiny run: 150 documents keep it well under a minute on 2 cores.
DOCS = env_int("RAPIDRAG_BENCH_PIPELINE_DOCS", SCIFACT_DOCS if FULL else 150)
QUERIES = env_int("RAPIDRAG_BENCH_PIPELINE_QUERIES", 0 if FULL else 20)
# Reranking 20 pairs costs about half a second a query on 2 cores: the tiny run reranks for its first 5 queries.
RERANK_QUERIES = env_int("RAPIDRAG_BENCH_PIPELINE_RERANK_QUERIES", 0 if FULL else 5)
WARMUP_QUERIES = 10
# nDCG@10 floors. Full: hybrid of BM25 and this embedder measures about 0.69-0.71 on SciFact; the shared reranker
# alone over the top 20 costs a few points (its SOURCE.md: 0.638). Tiny: 20 queries (5 reranked) over 150 documents
# that hold all their relevant ones, a loose check that the pipeline ranks at all.
FLOOR = {"hybrid": 0.66 if FULL else 0.5, "rerank": 0.6 if FULL else 0.2}


def scifact_subset(scifact_dir: Path, n_docs: int, n_queries: int) -> dict[str, Any]:
    """Test queries (the first ``n_queries``; 0 = all 300) and documents: those judged for the chosen queries
    plus the first of the corpus up to ``n_docs`` (0 = all), in corpus order."""
    docs = load_corpus(scifact_dir)
    qrels = load_qrels(scifact_dir / "qrels/test.tsv")
    texts = load_queries(scifact_dir)
    chosen = list(qrels)[:n_queries] if n_queries > 0 else list(qrels)
    if n_docs > 0:
        judged = {d for q in chosen for d in qrels[q]}
        keep = judged | {d["_id"] for d in docs[: max(n_docs - len(judged), 0)]}
        docs = [d for d in docs if d["_id"] in keep]
    return {
        "ids": [d["_id"] for d in docs],
        "texts": [document_text(d) for d in docs],
        "queries": [(q, texts[q]) for q in chosen],
        "qrels": {q: qrels[q] for q in chosen},
    }


def ndcg10(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> float:
    return float(np.mean([query_metrics(runs[q], qrels[q])["ndcg@10"] for q in runs]))


def build(name: str, data: dict[str, Any], embedder_dir: Path, reranker_dir: Path) -> tuple[Any, float]:
    """The pipeline with the corpus indexed, and the indexing time in seconds."""
    pipeline = make(name, embedder_dir, reranker_dir)
    start = time.perf_counter()
    pipeline.index(data["ids"], data["texts"])
    return pipeline, time.perf_counter() - start


def percentile_ms(latencies: list[float], p: float) -> float:
    return round(float(np.percentile(np.asarray(latencies) * 1000, p)), 2)


# -- pytest-benchmark ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(scifact_dir: Path) -> dict[str, Any]:
    return scifact_subset(scifact_dir, DOCS, QUERIES)


_BUILT: dict[str, tuple[Any, float]] = {}


@pytest.fixture(scope="module")
def pipelines(data: dict[str, Any], minilm_dir: Path, reranker_dir: Path) -> Any:
    """Each pipeline indexed once for both groups (on first use)."""

    def get(name: str) -> tuple[Any, float]:
        for module in NEEDS[name]:
            _importorskip_quietly(module)
        if name not in _BUILT:
            _BUILT[name] = build(name, data, minilm_dir, reranker_dir)
        return _BUILT[name]

    yield get
    _BUILT.clear()


def _importorskip_quietly(module: str) -> Any:
    """pytest.importorskip, without failing on the deprecation warnings LangChain emits on import."""
    try:
        return import_quietly(module)
    except ImportError:
        pytest.skip(f"{module} is not installed (pip install '.[bench]')")


def _bench(benchmark: Any, pipelines: Any, data: dict[str, Any], name: str, rerank: bool) -> None:
    pipeline, index_s = pipelines(name)
    queries = data["queries"][:RERANK_QUERIES] if rerank and RERANK_QUERIES > 0 else data["queries"]
    latencies: list[float] = []

    def run() -> dict[str, list[str]]:
        latencies.clear()
        out = {}
        for q, text in queries:
            start = time.perf_counter()
            out[q] = pipeline.search(text, rerank)
            latencies.append(time.perf_counter() - start)
        return out

    for _, text in queries[:WARMUP_QUERIES] if not benchmark.disabled else []:
        pipeline.search(text, rerank)
    runs = run_timed(benchmark, run, rounds=1, warmup=False)
    quality = ndcg10(runs, data["qrels"])
    benchmark.extra_info.update(
        library=name,
        docs=len(data["ids"]),
        queries=len(runs),
        index_s=round(index_s, 2),
        p50_ms=percentile_ms(latencies, 50),
        p99_ms=percentile_ms(latencies, 99),
        **{"nDCG@10": round(quality, 4)},
    )
    assert all(len(ids) == min(10, len(data["ids"])) for ids in runs.values())
    assert quality >= FLOOR["rerank" if rerank else "hybrid"], f"{name}: nDCG@10 {quality:.4f}"


@pytest.mark.parametrize("library", PIPELINES)
@pytest.mark.benchmark(group="pipeline-hybrid")
def test_hybrid(benchmark: Any, pipelines: Any, data: dict[str, Any], library: str) -> None:
    _bench(benchmark, pipelines, data, library, rerank=False)


@pytest.mark.parametrize("library", PIPELINES)
@pytest.mark.benchmark(group="pipeline-hybrid-rerank")
def test_hybrid_rerank(benchmark: Any, pipelines: Any, data: dict[str, Any], library: str) -> None:
    _bench(benchmark, pipelines, data, library, rerank=True)


# -- script mode: the interleaved measurement ----------------------------------------------------------------------


def measure(
    data: dict[str, Any],
    names: list[str],
    rerank_names: list[str],
    embedder_dir: Path,
    reranker_dir: Path,
    rerank_queries: int = 0,
    reference: str = "rapidrag",
) -> dict[str, Any]:
    """Index with each pipeline, warm up, then run every query through every (pipeline, mode) in a random order
    (reranking only for the first ``rerank_queries`` queries when that is > 0). Ratios, overlap and the paired
    nDCG@10 difference (with its standard error over queries) are against the ``reference`` pipeline."""
    built = {}
    for name in names:
        print(f"indexing {len(data['ids'])} documents with {name} ...", file=sys.stderr, flush=True)
        built[name] = build(name, data, embedder_dir, reranker_dir)
        print(f"  {built[name][1]:.1f} s", file=sys.stderr, flush=True)
    cells = [(name, False) for name in names] + [(name, True) for name in rerank_names]
    for name, rerank in cells:
        for _, text in data["queries"][:WARMUP_QUERIES]:
            built[name][0].search(text, rerank)
    runs: dict[tuple[str, bool], dict[str, list[str]]] = {c: {} for c in cells}
    latencies: dict[tuple[str, bool], list[float]] = {c: [] for c in cells}
    # A new random order of the cells for every query: a rotation would keep each cell behind the same neighbour
    # (whose ONNX Runtime threads may still spin when it starts), which moved identical cells by up to 1.3x.
    rng = np.random.default_rng(0)
    for i, (q, text) in enumerate(data["queries"]):
        active = [c for c in cells if not c[1] or rerank_queries <= 0 or i < rerank_queries]
        for j in rng.permutation(len(active)):
            cell = active[j]
            pipeline = built[cell[0]][0]
            start = time.perf_counter()
            runs[cell][q] = pipeline.search(text, cell[1])
            latencies[cell].append(time.perf_counter() - start)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1} / {len(data['queries'])} queries", file=sys.stderr, flush=True)
    rows = []
    ndcg = {cell: {q: query_metrics(run[q], data["qrels"][q])["ndcg@10"] for q in run} for cell, run in runs.items()}
    for name, rerank in cells:
        lat = latencies[(name, rerank)]
        base_run = runs.get((reference, rerank))
        overlap = (
            float(np.mean([len(set(r) & set(base_run[q])) / 10 for q, r in runs[(name, rerank)].items()]))
            if base_run is not None
            else None
        )
        paired = None
        if base_run is not None:
            diff = np.array([ndcg[(name, rerank)][q] - ndcg[(reference, rerank)][q] for q in runs[(name, rerank)]])
            paired = (round(float(diff.mean()), 4), round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4))
        rows.append(
            {
                "pipeline": name,
                "mode": "hybrid + rerank" if rerank else "hybrid",
                "queries": len(lat),
                "p50_ms": percentile_ms(lat, 50),
                "p99_ms": percentile_ms(lat, 99),
                "mean_ms": round(float(np.mean(lat)) * 1000, 2),
                "ndcg@10": round(float(np.mean(list(ndcg[(name, rerank)].values()))), 4),
                "overlap@10_with_reference": None if overlap is None else round(overlap, 4),
                "ndcg@10_diff_and_se_vs_reference": paired,
                "index_s": round(built[name][1], 1),
            }
        )
    for mode in ("hybrid", "hybrid + rerank"):
        base = next((r for r in rows if r["pipeline"] == reference and r["mode"] == mode), None)
        for r in rows:
            if base is not None and r["mode"] == mode:
                r["p50_ratio"] = round(r["p50_ms"] / base["p50_ms"], 2)
                r["p99_ratio"] = round(r["p99_ms"] / base["p99_ms"], 2)
    return {
        "reference": reference,
        "rows": rows,
        "latencies_ms": {
            f"{n}|{'rerank' if r else 'hybrid'}": [round(x * 1000, 3) for x in v] for (n, r), v in latencies.items()
        },
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "rapidrag",
        "numpy",
        "onnxruntime",
        "faiss-cpu",
        "tokenizers",
        "bm25s",
        "PyStemmer",
        "rank-bm25",
        "langchain-core",
        "langchain-community",
        "langchain-classic",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from conftest import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="all 5,183 documents and the 300 test queries")
    parser.add_argument("--docs", type=int, default=None, help="documents (0 = all; default 300, or all with --full)")
    parser.add_argument("--queries", type=int, default=None, help="test queries (0 = all; default 20, or all)")
    parser.add_argument(
        "--pipelines",
        default=",".join([*PIPELINES, "rapidrag-chunked"]),
        help="comma-separated, of rapidrag, by-hand, langchain, rapidrag-chunked, rapidrag-q, by-hand-q",
    )
    parser.add_argument("--reference", default="rapidrag", help="the pipeline ratios and differences are against")
    parser.add_argument("--rerank-pipelines", default=None, help="those also run with reranking (default: all)")
    parser.add_argument("--rerank-queries", type=int, default=0, help="rerank only the first N queries (0 = all)")
    parser.add_argument("--shared", type=Path, default=shared_dir(), help="the shared data and models folder")
    parser.add_argument("--out", type=Path, default=Path("/tmp/rapidrag-bench/pipeline.json"), help="JSON report")
    args = parser.parse_args(argv)
    n_docs = args.docs if args.docs is not None else (0 if args.full else 300)
    n_queries = args.queries if args.queries is not None else (0 if args.full else 20)
    data = scifact_subset(args.shared / "data/beir/scifact", n_docs, n_queries)
    names = args.pipelines.split(",")
    rerank_names = [n for n in args.rerank_pipelines.split(",") if n] if args.rerank_pipelines is not None else names
    embedder_dir, reranker_dir = args.shared / "models/all-MiniLM-L6-v2", args.shared / "models/minilm-l6-reranker"
    result = measure(data, names, rerank_names, embedder_dir, reranker_dir, args.rerank_queries, args.reference)
    header = (
        f"{'mode':<16} {'pipeline':<17} {'p50 ms':>8} {'p99 ms':>8} {'x p50':>6} {'x p99':>6} {'nDCG@10':>8} "
        f"{'overlap':>8} {'diff':>7} {'se':>6} {'index s':>8}"
    )
    print(header)
    for r in result["rows"]:
        print(
            f"{r['mode']:<16} {r['pipeline']:<17} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r.get('p50_ratio', float('nan')):>6.2f} {r.get('p99_ratio', float('nan')):>6.2f} "
            f"{r['ndcg@10']:>8.4f} {r['overlap@10_with_reference'] or 0:>8.3f} "
            f"{(r['ndcg@10_diff_and_se_vs_reference'] or (0, 0))[0]:>7.4f} "
            f"{(r['ndcg@10_diff_and_se_vs_reference'] or (0, 0))[1]:>6.4f} {r['index_s']:>8.1f}"
        )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(),
        "docs": len(data["ids"]),
        "queries": len(data["queries"]),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"report: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
