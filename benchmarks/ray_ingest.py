"""Ingest throughput through the Ray Data pipeline (``ShardedRetriever.ingest``: chunk and embed on an actor pool,
route, bulk add, save) against single-process indexing as ``rapidrag index`` does it (``Retriever.add`` of the same
documents, the int8 embedder, then ``save``), on the same cores, with the pipeline's per-stage costs and the scaling
model they give for N machines.

    python benchmarks/ray_ingest.py --shared ../shared --limit 5000 --rounds 2 --out ray_ingest.json

The first ``--limit`` gcide passages, read as ``rapidrag index`` reads the file (``rapidrag.ingest.Ingest``). Each
round runs the single process first (no Ray process alive), then starts a local Ray cluster of ``--cpus`` CPUs on
127.0.0.1, builds the sharded index (``--shards``, shard actors on 0 CPUs), ingests through the pipeline
(``--actors`` actors of one CPU and one embedder thread each), saves, and shuts the cluster down; each side keeps
its best round. Ray stays on loopback: the script runs itself inside a private network namespace (``unshare --net``
with only ``lo`` up; RAY_USAGE_STATS_ENABLED=0) and refuses to go on if a node is on another address.

A second single-process peer embeds with one ONNX Runtime thread instead of one per core (``n_threads=1``): on
this 2-core machine, one thread is often faster than two for short passages, so it is the stronger peer.

The shards' own cost of storing (BM25, the flat FAISS index, metadata) is measured apart, in this process:
``Retriever.add_embedded`` of the same documents and chunks with stand-in vectors (storing does not look at them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import local_ray, stand_in_index


def _in_private_network() -> None:
    """Run this script again inside a private network namespace, unless it already is in one."""
    if os.environ.get("RAPIDRAG_IN_PRIVATE_NETWORK") == "1":
        return
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise SystemExit("needs unshare and ip (util-linux, iproute2) to keep Ray in a private network")
    inner = "ip link set lo up && " + shlex.join([sys.executable, *sys.argv])
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAPIDRAG_IN_PRIVATE_NETWORK": "1"}
    raise SystemExit(subprocess.run(["unshare", "--net", "sh", "-c", inner], env=env).returncode)


def single_process(embedder: Any, docs: list[Any], folder: Path) -> dict[str, float]:
    from rapidrag.retriever import Retriever

    clock = time.perf_counter()
    retriever = Retriever(embedder)
    chunks = retriever.add(docs, progress=False)
    added = time.perf_counter() - clock
    retriever.save(folder)
    total = time.perf_counter() - clock
    assert len(retriever) == len(docs) and chunks == retriever.n_chunks
    return {"add_s": added, "save_s": total - added, "total_s": total, "chunks": chunks}


def pipeline(embedder: Any, docs: list[Any], folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from rapidrag.distributed import ShardedRetriever

    clock = time.perf_counter()
    local_ray(args.cpus)
    started = time.perf_counter() - clock
    try:
        clock = time.perf_counter()
        index = ShardedRetriever(embedder, n_shards=args.shards, backend="ray")
        len(index)  # the shard actors up, their embedders open
        shards_s = time.perf_counter() - clock
        report = index.ingest(
            docs,
            out=folder,
            actors=args.actors,
            batch_size=args.batch_size,
            task_documents=args.task_documents,
            add_documents=args.add_documents,
            progress=False,
        )
        assert len(index) == len(docs) and report.chunks == index.n_chunks
        return {
            "cluster_start_s": started,
            "shards_start_s": shards_s,
            "total_s": report.seconds,
            "add_s": report.seconds - report.stages["save"],  # from documents in memory to all stored
            "first_output_s": report.first_output_s,
            "first_rows": -(-len(docs) // -(-len(docs) // args.task_documents)),  # the documents of one task
            "actors": report.actors,
            "chunks": report.chunks,
            "stages": report.stages,
        }
    finally:
        ray.shutdown()


def store_cost(embedder: Any, docs: list[Any]) -> float:
    """Seconds that storing the documents' chunks takes a shard (one process, every document, in the pipeline's
    default bulk adds of 1,024)."""
    return stand_in_index(embedder, docs)[1]


def scaling(n: int, best: dict[str, Any], args: argparse.Namespace, store_s: float) -> dict[str, Any]:
    """Per-passage costs (seconds) of each stage, and the throughput they allow on N machines of ``--cpus``
    cores (the coordinator on one of them, one shard or more per machine)."""
    st = best["stages"]
    per = {
        "read": st["read_file"] / n,  # the coordinator reads the source: serial
        "start": st["start"] / n,  # the coordinator hands the rows to Ray Data: serial
        "chunk_embed": (st["chunk"] + st["embed"]) / n,  # actor-seconds: parallel over every core of every machine
        "route": st["route"] / n,  # the coordinator: serial
        "add": st["add"] / n,  # the coordinator waiting for the shards' bulk adds (transfer + storing), serial
        "store": store_s / n,  # a shard storing: parallel over shards
        "save": st["save"] / n,  # each shard writes its part: parallel over shards
    }
    serial = per["read"] + per["start"] + per["route"] + per["add"]
    rows = {}
    for machines in (1, 2, 4, 8, 16, 32, 64):
        embed_rate = machines * args.cpus / per["chunk_embed"]
        coordinator_rate = 1 / serial
        rows[str(machines)] = {
            "embed_bound": embed_rate,
            "coordinator_bound": coordinator_rate,
            "passages_per_s": min(embed_rate, coordinator_rate),
        }
    return {"per_passage_s": per, "coordinator_serial_s": serial, "by_machines": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--limit", type=int, default=5000, help="gcide passages (default 5000)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="the pipeline's texts per embedder run (8)")
    parser.add_argument("--task-documents", type=int, default=256)
    parser.add_argument("--add-documents", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="ray_ingest.json")
    args = parser.parse_args()
    _in_private_network()

    import ray

    import rapidrag
    from rapidrag.ingest import Ingest

    shared = Path(args.shared)
    source = shared / "data" / "corpora" / "gcide" / "corpus.jsonl.gz"
    clock = time.perf_counter()
    docs = list(itertools.islice(Ingest(source).unique(), args.limit))
    read_s = time.perf_counter() - clock
    model = shared / "models" / "all-MiniLM-L6-v2"
    embedder = rapidrag.Embedder(model, quantized=True)  # as `rapidrag index --int8`: one thread per core
    one_thread = rapidrag.Embedder(model, quantized=True, n_threads=1)
    for e in (embedder, one_thread):
        e.embed(["warm up"] * 8)
    work = Path(tempfile.mkdtemp(prefix="ray_ingest_"))
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "single_1_thread": [], "pipeline": []}
    try:
        for r in range(args.rounds):
            runs["single"].append(single_process(embedder, docs, work / f"single-{r}"))
            runs["single_1_thread"].append(single_process(one_thread, docs, work / f"single1-{r}"))
            runs["pipeline"].append(pipeline(embedder, docs, work / f"ray-{r}", args))
            took = {k: round(v[-1]["total_s"], 1) for k, v in runs.items()}
            print(f"round {r}: seconds {took}", file=sys.stderr, flush=True)
        store_s = store_cost(embedder, docs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    single = min(runs["single"], key=lambda x: x["total_s"])
    single1 = min(runs["single_1_thread"], key=lambda x: x["total_s"])
    best = min(runs["pipeline"], key=lambda x: x["total_s"])
    best["stages"]["read_file"] = read_s
    n = len(docs)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "ray": ray.__version__,
        "passages": n,
        "read_s": read_s,
        "settings": vars(args),
        "single": single,
        "single_1_thread": single1,
        "pipeline": best,
        "runs": runs,
        "passages_per_s": {
            "single_with_save": n / single["total_s"],
            "pipeline_with_save": n / best["total_s"],
            "single_1_thread_with_save": n / single1["total_s"],
            "single_add": n / single["add_s"],
            "pipeline_add": n / best["add_s"],
            # after its first output (actors started, models open, one task done): a little high, the other actors'
            # first tasks being done by then too
            "pipeline_after_first_output": (n - best["first_rows"]) / (best["add_s"] - best["first_output_s"]),
            # what the actors' measured chunk-and-embed cost allows, every actor busy
            "pipeline_embed_bound": best["actors"] / ((best["stages"]["chunk"] + best["stages"]["embed"]) / n),
        },
        "ratio_with_save": single["total_s"] / best["total_s"],
        "ratio_add": single["add_s"] / best["add_s"],
        "ratio_with_save_vs_1_thread": single1["total_s"] / best["total_s"],
        "store_s": store_s,
        "scaling": scaling(n, best, args, store_s),
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    rates = report["passages_per_s"]
    print(
        f"{n} passages: single process {rates['single_with_save']:.1f}/s, pipeline {rates['pipeline_with_save']:.1f}/s"
        f" (ratio {report['ratio_with_save']:.2f}; without the save {report['ratio_add']:.2f}); single process, one"
        f" thread {rates['single_1_thread_with_save']:.1f}/s (ratio {report['ratio_with_save_vs_1_thread']:.2f})"
    )
    print(json.dumps(report["pipeline"]["stages"], indent=1))


if __name__ == "__main__":
    main()
