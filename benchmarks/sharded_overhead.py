"""What splitting an index in shards adds to a search: p50/p99 of lexical and hybrid searches on one index and on
the same documents in 2 and 4 shards (``ShardedRetriever``), in this process (``--backend local``) or in Ray actors
on a local cluster (``--backend ray``; run it inside a private network namespace, as the tests do:
``unshare --net sh -c 'ip link set lo up && python benchmarks/sharded_overhead.py --backend ray ...'``). On Ray,
each sharded index is timed four ways per round on the same actors, taking turns: its reads over the shard actors'
channels (``rapidrag.channels``, the default), the same with the coordinator's embedder made with
``spin_between_runs=False`` ("stop spinning": its ONNX Runtime threads stop spinning as soon as the query's run
returns, instead of spinning on the cores the shard actors then need), the same with an embedder of one intra-op
thread ("one thread": no pool, so nothing spins and nothing is woken), and through Ray calls (``channels = False``).
The single index keeps the default embedder.

Besides lexical, hybrid and reranked hybrid searches, "hybrid, vector given" is a hybrid search whose query vector
was embedded beforehand (as in wrapper_cost.py): what the shards add to a hybrid search without the embedding's
run on the same cores just before (on one machine the embedder's threads and the shard processes share 2 cores
and their caches; on a cluster the coordinator embeds on a machine of its own).

    python benchmarks/sharded_overhead.py --shared ../shared --docs 2000 --backend local --out sharded_local.json

``--only`` (repeated) times only some kinds of search and ``--ways`` only some of the four ways on Ray: a quicker
run, for a before/after pair of the installed code.

The first ``--docs`` SciFact documents (the judged ones first), the shared embedder (int8), the 300 test queries
one at a time after a warm-up pass; the indexes take turns, round after round, and each keeps its best round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import GivenVectors, local_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="sharded_overhead.json")
    parser.add_argument("--rerank-budget-ms", type=float, default=100.0, help="hybrid + rerank under this budget")
    parser.add_argument(
        "--no-spinning",
        action="store_true",
        help="the embedder (every index's, so the coordinator's) with allow_spinning=False: its idle threads sleep "
        "instead of spinning on the cores the shard actors need",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="time only this kind of search (repeated; 'lexical', 'hybrid', 'hybrid, vector given', 'hybrid + "
        "rerank'): a quicker run, for before/after pairs",
    )
    parser.add_argument(
        "--ways",
        nargs="+",
        choices=("channels", "stop spinning", "one thread", "Ray calls"),
        default=["channels", "stop spinning", "one thread", "Ray calls"],
        help="on Ray, the ways each sharded index is timed (default: all four)",
    )
    args = parser.parse_args()

    configs = {
        "lexical": {"mode": "lexical", "rerank": False},
        "hybrid": {"mode": "hybrid", "rerank": False},
        "hybrid, vector given": {"mode": "hybrid", "rerank": False},
        f"hybrid + rerank, {args.rerank_budget_ms:g} ms budget": {
            "mode": "hybrid",
            "rerank": True,
            "budget_ms": args.rerank_budget_ms,
        },
    }

    def short(name: str) -> str:  # (the rerank search's name without its budget)
        return name.split(",")[0] if "rerank" in name else name

    unknown = [c for c in args.only if c not in {short(name) for name in configs}]
    if unknown:
        raise SystemExit(f"--only {unknown[0]!r}: not one of {[short(name) for name in configs]}")
    if args.only:
        configs = {name: kw for name, kw in configs.items() if short(name) in args.only}

    import rapidrag
    from rapidrag.beir import load_corpus, load_qrels, load_queries
    from rapidrag.distributed import ShardedRetriever
    from rapidrag.retriever import Retriever

    if args.backend == "ray":
        ray = local_ray()
    shared = Path(args.shared)
    scifact = shared / "data" / "beir" / "scifact"
    qrels = load_qrels(scifact / "qrels" / "test.tsv")
    judged = {d for rel in qrels.values() for d in rel}
    docs = sorted(load_corpus(scifact), key=lambda d: d["_id"] not in judged)[: args.docs]
    queries = load_queries(scifact)
    texts = [queries[q] for q in qrels]
    embedder = rapidrag.Embedder(
        shared / "models" / "all-MiniLM-L6-v2", quantized=True, allow_spinning=not args.no_spinning
    )
    reranker = rapidrag.Reranker(shared / "models" / "minilm-l6-reranker", quantized=True)
    indexes: dict[str, Any] = {"one index": Retriever(embedder, reranker)}
    started: dict[str, float] = {}
    for n in (2, 4):
        clock = time.perf_counter()  # start-up: the shards made (on Ray: actors started, each opening the embedder)
        indexes[f"{n} shards"] = ShardedRetriever(embedder, reranker, n_shards=n, backend=args.backend)
        len(indexes[f"{n} shards"])  # every shard answers
        started[f"{n} shards"] = time.perf_counter() - clock
    built: dict[str, float] = {}
    for name, index in indexes.items():
        clock = time.perf_counter()
        index.add(docs)
        built[name] = time.perf_counter() - clock
    best: dict[str, dict[str, Any]] = {}
    for index in indexes.values():  # warm-up
        for q in texts[:50]:
            index.search(q, k=10, mode="hybrid")
    stopping = (  # (timed on Ray only: in one process the shards run on the embedder's own thread)
        rapidrag.Embedder(
            shared / "models" / "all-MiniLM-L6-v2",
            quantized=True,
            allow_spinning=not args.no_spinning,
            spin_between_runs=False,
        )
        if args.backend == "ray"
        else None
    )
    solo = (  # one intra-op thread: no pool whose threads could spin or have to be woken
        rapidrag.Embedder(shared / "models" / "all-MiniLM-L6-v2", quantized=True, n_threads=1)
        if args.backend == "ray"
        else None
    )
    timed: list[tuple[str, Any, bool, Any]] = []  # (name, index, channels, the coordinator's embedder)
    for name, index in indexes.items():
        if args.backend == "ray" and isinstance(index, ShardedRetriever):
            ways = {
                "channels": (f"{name}, channels", index, True, embedder),
                "stop spinning": (f"{name}, channels, stop spinning", index, True, stopping),
                "one thread": (f"{name}, channels, one thread", index, True, solo),
                "Ray calls": (f"{name}, Ray calls", index, False, embedder),
            }
            timed += [ways[w] for w in args.ways]
        else:
            timed.append((name, index, False, embedder))
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))
    for _ in range(args.rounds):
        for name, index, channels, coordinator in timed:
            if isinstance(index, ShardedRetriever) and args.backend == "ray":
                index.channels = channels
            given = GivenVectors(coordinator, vectors)
            for config, kwargs in configs.items():
                index.embedder = given if config == "hybrid, vector given" else coordinator
                times = []
                for q in texts:
                    clock = time.perf_counter()
                    index.search(q, k=10, **kwargs)
                    times.append((time.perf_counter() - clock) * 1000)
                p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
                key = f"{name}/{config}"
                if key not in best or p50 < best[key]["p50_ms"]:
                    best[key] = {"p50_ms": p50, "p99_ms": p99, "max_ms": float(np.max(times))}
    memory: dict[str, Any] = {}
    if args.backend == "ray":  # each shard actor's resident memory (its process: Ray worker, models, index)
        for name, index in indexes.items():
            if isinstance(index, ShardedRetriever):
                memory[name] = [ray.get(g[0].call.remote("memory")) / 2**20 for g in index._shards]
        folder = Path(args.out).with_suffix(".idx")
        indexes["4 shards"].save(folder)
        clock = time.perf_counter()
        reopened = ShardedRetriever.load(folder, backend="ray")
        len(reopened)
        started["4 shards, loaded from disk"] = time.perf_counter() - clock
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backend": args.backend,
        "embedder_spinning": not args.no_spinning,
        "documents": len(docs),
        "queries": len(texts),
        "index_seconds": built,
        "start_seconds": started,
        "shard_memory_mib": memory,
        "best": best,
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
