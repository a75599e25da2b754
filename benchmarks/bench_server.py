"""Load test of ``rapidrag serve``: the server in its own process, requests from this one over loopback.

For each search configuration (hybrid; hybrid + rerank within a 100 ms budget; hybrid + rerank without a budget)
and each concurrency (1, 4 and 16 clients, each a thread with its own keep-alive HTTP connection sending one
request after another), the SciFact test queries are sent in turn until a request count or a time limit is
reached. Measured at the client: p50 / p99 latency of whole requests and requests per second; any non-200 answer
is counted and fails the run.

- pytest (the CI smoke run): a small lexical + dense index of the first SciFact documents, a few requests per
  level, checking that every request succeeds.
- ``python benchmarks/bench_server.py --index DIR [--queries SCIFACT] [--out JSON]``: the measurement in
  BENCHMARKS.md, on an index made by ``rapidrag index``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CONFIGS: dict[str, dict[str, Any]] = {
    "hybrid": {"mode": "hybrid", "rerank": False},
    "hybrid + rerank, 100 ms budget": {"mode": "hybrid", "rerank": True, "budget_ms": 100},
    "hybrid + rerank": {"mode": "hybrid", "rerank": True},
}
CONCURRENCY = (1, 4, 16)
KEY = "bench-key"


def load(
    url: str, queries: Sequence[str], body: dict[str, Any], clients: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    """``clients`` threads sending searches until ``max_requests`` are done or ``max_seconds`` have passed."""
    import httpx

    lock = threading.Lock()
    sent = 0
    latencies: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        nonlocal sent
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as c:
            start.wait()
            while True:
                with lock:
                    if sent >= max_requests or time.perf_counter() > deadline[0]:
                        return
                    query = queries[sent % len(queries)]
                    sent += 1
                t = time.perf_counter()
                r = c.post("/search", json={"query": query, "k": 10, **body})
                ms = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    failures.append(f"{r.status_code}: {r.text[:200]}")
                latencies.append(ms)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + max_seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    a = np.asarray(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": failures,
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
        "p99_ms": float(np.percentile(a, 99)) if len(a) else None,
    }


def measure(
    url: str, queries: Sequence[str], limits: dict[str, tuple[int, float]], warm_up: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """Every configuration at every concurrency; ``limits``: (requests, seconds) per configuration."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, body in CONFIGS.items():
        load(url, queries, body, 1, warm_up, 60)
        requests, seconds = limits[name]
        out[name] = [load(url, queries, body, clients, requests, seconds) for clients in CONCURRENCY]
    return out


def test_server_under_load(
    scifact_dir: Path, minilm_dir: Path, reranker_dir: Path, tmp_path: Path, serve_index: Callable[..., Any]
) -> None:
    """Smoke: a small index served from a child process; every request at every level answers 200."""
    pytest.importorskip("fastapi")
    import rapidrag
    from rapidrag.beir import load_corpus, load_queries

    docs = load_corpus(scifact_dir)[:200]
    retriever = rapidrag.Retriever(
        embedder=rapidrag.Embedder(minilm_dir, quantized=True), reranker=rapidrag.Reranker(reranker_dir)
    )
    retriever.add(docs)
    retriever.save(tmp_path / "index")
    queries = list(load_queries(scifact_dir).values())[:20]
    limits = {"hybrid": (12, 30.0), "hybrid + rerank, 100 ms budget": (8, 30.0), "hybrid + rerank": (4, 30.0)}
    env = {"RAPIDRAG_API_KEY": KEY}
    with serve_index(tmp_path / "index", tmp_path / "serve.log", env, ["--log-level", "warning"]) as served:
        report = measure(served.url, queries, limits, warm_up=2)
    for name, runs in report.items():
        for run in runs:
            assert run["failures"] == [], (name, run["failures"][:3])
            assert run["requests"] >= 1 and run["p50_ms"] > 0, (name, run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index folder made by rapidrag index")
    parser.add_argument("--queries", type=Path, help="BEIR folder or queries.jsonl (default: shared SciFact)")
    parser.add_argument("--requests", type=int, default=600, help="requests per level, hybrid (default 600)")
    parser.add_argument("--rerank-requests", type=int, default=120, help="per level with the reranker (120)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per level (default 60)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/rapidrag-bench/server.json"))
    args = parser.parse_args()
    from rapidrag.beir import load_qrels, load_queries

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from conftest import serving, shared_dir

    scifact = args.queries or shared_dir() / "data/beir/scifact"
    texts = load_queries(scifact)
    qrels = load_qrels(Path(scifact) / "qrels/test.tsv") if Path(scifact).is_dir() else texts
    queries = [texts[q] for q in qrels if q in texts]
    limits = {
        "hybrid": (args.requests, args.seconds),
        "hybrid + rerank, 100 ms budget": (args.rerank_requests, args.seconds),
        "hybrid + rerank": (args.rerank_requests, args.seconds),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log, env = args.out.with_suffix(".server.log"), {"RAPIDRAG_API_KEY": KEY}
    with serving(args.index, log, env, ["--log-level", "warning"]) as served:
        report = measure(served.url, queries, limits)
    print(f"{'configuration':<34}{'clients':>8}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    for name, runs in report.items():
        for r in runs:
            print(
                f"{name:<34}{r['clients']:>8}{r['requests']:>9}{r['requests_per_s']:>9.1f}"
                f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{len(r['failures']):>8}"
            )
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    args.out.write_text(json.dumps({"meta": meta, "index": str(args.index), "results": report}, indent=1))
    print(f"wrote {args.out}")
    return 0 if all(not r["failures"] for runs in report.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
