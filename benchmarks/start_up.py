"""A fresh process's start: open a saved index (its embedder too, no reranker) and answer a first lexical and a
first hybrid search, as ``rapidrag query`` or a new worker of a service does. One or more copies of the code side by
side (before and after a change): each start is its own process, the copies in turn, round after round; each copy
keeps its fastest round (and every round is printed).

    python benchmarks/start_up.py --index scifact.idx --code before=/path/to/old/src --code after=src \\
        --rounds 5 --out start_up.json

``--index NAME=FOLDER`` (repeated) gives a copy its own index: the same documents saved in the format each copy
writes, when a change moves the format. An index without an embedder answers the lexical search only. Also
reported: the process's resident memory after the load and the first searches, and the lexical search's µs once
warm (5 queries 40 times, best of 3 passes: what a change to the load must not slow).

A copy is a folder that holds the ``rapidrag`` package (with its built ``_core``). A copy of the code from before
its search kernels moved into the native core (2026-12-04) compiles them with numba in its first round and loads
them from numba's cache after it (as on a machine where rapidrag has run once): its rounds after the first are what
a user sees.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import side_by_side, side_by_side_options, use_code_copy

STEADY_QUERIES = ["a large animal of africa", "the state of being happy", "to run quickly", "blood glucose insulin"]


def worker(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    use_code_copy()
    import rapidrag
    from rapidrag.retriever import Retriever

    imported = time.perf_counter()
    indexes = dict(item.split("=", 1) if "=" in item else ("", item) for item in args.index)
    retriever = Retriever.load(indexes.get(os.environ.get("RAPIDRAG_CODE_NAME", ""), indexes.get("")), reranker=None)
    loaded = time.perf_counter()
    lexical = retriever.search(args.query, k=5, mode="lexical")
    searched = time.perf_counter()
    hybrid = retriever.search(args.query, k=5, mode="hybrid") if retriever.embedder is not None else lexical
    done = time.perf_counter()
    if not lexical or not hybrid:
        raise SystemExit(f"no hits for {args.query!r}")
    resident_mib = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    # Then searches as a service runs them: the same few queries again and again (their hits read before).
    queries = [args.query, *STEADY_QUERIES]
    steady = []
    for _ in range(3):
        clock = time.perf_counter()
        for _ in range(40):
            for q in queries:
                retriever.search(q, k=10, mode="lexical")
        steady.append((time.perf_counter() - clock) / (40 * len(queries)) * 1e6)
    ms = {
        "import_ms": (imported - started) * 1000,
        "load_ms": (loaded - imported) * 1000,
        "first_lexical_ms": (searched - loaded) * 1000,
        **({"first_hybrid_ms": (done - searched) * 1000} if retriever.embedder is not None else {}),
        "total_ms": (done - started) * 1000,
    }
    after = {"resident_mib": resident_mib, "steady_lexical_us": min(steady)}
    print(
        json.dumps(
            {
                "rapidrag": str(Path(rapidrag.__file__).parent),
                "start": {**ms, "starts_per_s": 1000 / ms["total_ms"], **after},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", action="append", required=True, help="FOLDER, or NAME=FOLDER for one copy")
    parser.add_argument("--query", default="vitamin D deficiency and bone loss")
    side_by_side_options(parser, rounds=5, out="start_up.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    argv = [*(x for item in args.index for x in ("--index", item)), "--query", args.query]
    best = side_by_side(__file__, args.code, args.rounds, argv, "starts_per_s", args.out)
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
