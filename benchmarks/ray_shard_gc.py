"""What a full collection of Python's garbage collector costs in a Ray shard actor, as loaded and frozen.

A shard actor is a Ray worker process holding one shard of an index (its documents, BM25, FAISS, the embedder) and
the modules of Ray, numpy and ONNX Runtime. A full (generation 2) collection walks every object it tracks
while the shard's answer to a search waits; ``_ShardActor`` freezes what it loaded (``process.freeze_loaded``).
This saves an index of ``--docs`` SciFact documents in ``--shards`` shards, loads each shard's folder in an actor
of its own, times a full collection there as loaded and then after ``freeze_loaded``, and reads what the index's
own shard actors report (``collector``: frozen and still tracked objects, a full collection's time). Run it inside
a private network namespace, as the Ray tests do:

    unshare --net sh -c 'ip link set lo up && python benchmarks/ray_shard_gc.py --shared ../shared --docs 2000'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import local_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="full collections timed in each state")
    parser.add_argument("--out", default="ray_shard_gc.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_corpus
    from rapidrag.distributed import ShardedRetriever

    ray = local_ray()

    @ray.remote
    class Probe:
        """A Ray worker that loads one shard's folder as a shard actor does, and times full collections."""

        def __init__(self, part: str) -> None:
            self.index = rapidrag.Retriever.load(part, reranker=None)

        def full_collections(self, repeats: int) -> dict[str, Any]:
            import gc

            tracked = len(gc.get_objects())
            times = []
            for _ in range(repeats):
                clock = time.perf_counter()
                gc.collect()
                times.append((time.perf_counter() - clock) * 1000)
            return {"tracked": tracked, "frozen": gc.get_freeze_count(), "full_ms": sorted(times)}

        def freeze(self) -> None:
            from rapidrag.process import freeze_loaded

            freeze_loaded()

    shared = Path(args.shared)
    docs = load_corpus(shared / "data" / "beir" / "scifact")[: args.docs]
    embedder = rapidrag.Embedder(shared / "models" / "all-MiniLM-L6-v2", quantized=True)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "docs": len(docs),
        "shards": args.shards,
    }
    with tempfile.TemporaryDirectory() as folder:
        built = ShardedRetriever(embedder, n_shards=args.shards, backend="local")
        built.add(docs)
        built.save(Path(folder) / "index")
        parts = sorted(str(p) for p in (Path(folder) / "index").iterdir() if p.name.startswith("part-"))
        probes = [Probe.remote(part) for part in parts]  # type: ignore[attr-defined]
        report["as loaded"] = ray.get([p.full_collections.remote(args.repeats) for p in probes])
        ray.get([p.freeze.remote() for p in probes])
        report["frozen"] = ray.get([p.full_collections.remote(args.repeats) for p in probes])
        opened = ShardedRetriever.load(Path(folder) / "index", embedder=embedder, reranker=None, backend="ray")
        opened.search("vitamin D and bone density", k=10)
        report["the index's shard actors"] = [
            [ray.get(g[0].call.remote("collector")) for _ in range(args.repeats)] for g in opened._shards
        ]
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
