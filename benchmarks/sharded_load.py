"""What the coordinator of a sharded index holds after opening it on Ray: ``ShardedRetriever.load(backend="ray")``
of a saved index (each shard actor opens its own part), its time and the coordinator process's resident memory
(after the load, and its peak), then a first lexical search. One or more copies of the code side by side (before
and after a change), each load in a fresh process, the copies in turn, round after round; each copy keeps its
fastest round (every round is printed). Run it inside a private network namespace, as the Ray tests do:

    rapidrag index ../shared/data/corpora/gcide/corpus.jsonl.gz --out gcide_lex4.idx --lexical --shards 4
    unshare --net sh -c 'ip link set lo up && python benchmarks/sharded_load.py --index gcide_lex4.idx \\
        --code before=/path/to/old/src --code after=src --rounds 3'

A copy is a folder that holds the ``rapidrag`` package (with its built ``_core``); the shard actors import the
installed one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from _common import local_ray, side_by_side, side_by_side_options, use_code_copy


def _resident_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import rapidrag
    from rapidrag.distributed import ShardedRetriever

    ray = local_ray()
    before = _resident_mib()
    clock = time.perf_counter()
    index = ShardedRetriever.load(args.index, backend="ray", reranker=None)
    loaded = time.perf_counter()
    after = _resident_mib()
    hits = index.search(args.query, k=10, mode="lexical")
    searched = time.perf_counter()
    if not hits or hits.missing_shards:
        raise SystemExit(f"the first search did not answer from every shard: {hits.missing_shards}")
    result = {
        "load_s": loaded - clock,
        "loads_per_s": 1 / (loaded - clock),
        "first_lexical_ms": (searched - loaded) * 1000,
        "coordinator_load_mib": after - before,
        "coordinator_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shards": index.n_shards,
        "documents": len(index),
    }
    ray.shutdown()
    print(json.dumps({"rapidrag": str(Path(rapidrag.__file__).parent), "load": result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="a sharded index folder (rapidrag index --shards)")
    parser.add_argument("--query", default="a large animal of africa")
    side_by_side_options(parser, rounds=3, out="sharded_load.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    argv = ["--index", str(Path(args.index).resolve()), "--query", args.query]
    best = side_by_side(__file__, args.code, args.rounds, argv, "loads_per_s", args.out)
    for name, entry in best.items():
        print(name, json.dumps(entry["load"]))


if __name__ == "__main__":
    main()
