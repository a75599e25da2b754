"""How long a sharded index takes to open on Ray and to come back after a shard actor dies: ``ShardedRetriever.load``
of a saved index of S shards (the shard actors started, each opening its part and the embedder), its first hybrid
search, then a shard actor's process killed (SIGKILL; Ray restarts the actor) and the time from its death until a
search answers from every shard again (the coordinator restores the actor: its part reloaded, the writes since
replayed). Each round opens the index anew (the actors of the last round killed first). Run it inside a private
network namespace, as the Ray tests do:

    unshare --net sh -c 'ip link set lo up && python benchmarks/sharded_start.py --shared ../shared --rounds 3'

The first ``--docs`` SciFact documents, the shared embedder (int8), no reranker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import local_ray


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="sharded_start.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_corpus, load_queries
    from rapidrag.distributed import ShardedRetriever

    clock = time.perf_counter()
    ray = local_ray()
    cluster_s = time.perf_counter() - clock
    shared = Path(args.shared)
    scifact = shared / "data" / "beir" / "scifact"
    docs = load_corpus(scifact)[: args.docs]
    queries = list(load_queries(scifact).values())
    embedder = rapidrag.Embedder(shared / "models" / "all-MiniLM-L6-v2", quantized=True)
    built = ShardedRetriever(embedder, None, n_shards=args.shards, backend="local")
    built.add(docs, progress=False)
    folder = Path(tempfile.mkdtemp()) / "sharded.idx"
    built.save(folder)
    rounds = []
    for r in range(args.rounds):
        clock = time.perf_counter()
        index = ShardedRetriever.load(folder, backend="ray", reranker=None)
        opened = time.perf_counter()
        first = index.search(queries[r], k=10, mode="hybrid")
        searched = time.perf_counter()
        if first.missing_shards or not first:
            raise SystemExit("the first search did not answer from every shard")
        pid = ray.get(index._shards[0][0].__ray_call__.remote(lambda _actor: os.getpid()))
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and not _zombie(pid):
            time.sleep(0.001)
        killed = time.perf_counter()
        tries = 0
        while True:  # until a search answers from every shard
            tries += 1
            again = index.search(queries[r + 1], k=10, mode="hybrid")
            if not again.missing_shards:
                break
        back = time.perf_counter()
        rounds.append(
            {
                "load_s": opened - clock,
                "first_search_ms": (searched - opened) * 1000,
                "back_after_kill_s": back - killed,
                "searches_until_back": tries,
            }
        )
        print(json.dumps(rounds[-1]), flush=True)
        for group in index._shards:
            for actor in group:
                ray.kill(actor, no_restart=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "documents": len(docs),
        "shards": args.shards,
        "cluster_start_s": cluster_s,
        "rounds": rounds,
        "median": {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]},
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
