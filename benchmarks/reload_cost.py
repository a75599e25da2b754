"""What serving an index that another writer updates costs: ``Retriever.reload`` against opening the index anew
(what restarting a service costs, the process's own start-up aside), and the searches that run while it reloads.

1. The index (``--index``, e.g. the README's scifact.idx) is copied to a scratch folder, and a second snapshot of it
   made: the same index with ``--delete`` documents deleted (so that the two differ).
2. Timed, ``--rounds`` times each: ``reload()`` of a loaded copy after the other snapshot was saved over it (its
   models kept), with the process's resident memory before and at the peak of each (the old copy is held while the
   new one opens), then ``Retriever.load`` of the folder with the models it records (a fresh copy: what a restart
   costs). ``swap_ms``: each reload's last step (waiting for the searches in flight, taking the new state under
   the write lock, freeing the old after it).
3. A thread searches (the index's default mode, no reranker: what a service's searches do) the test queries over
   and over; its latency is recorded first with the index quiet, then for the searches that run while the main
   thread reloads (any part of them: one that began just before a reload is slowed by it too; until 2026-12-05
   evening those that began during one), ``--reloads`` times, the other snapshot saved before each (by this
   process, outside the windows: a writer is another process in use). On 2 cores the reload's reading and parsing
   take a core from the searches, and its Python work the GIL: that is the cost reported.

    python benchmarks/reload_cost.py --index scifact.idx --queries ../shared/data/beir/scifact --rounds 3

``--plain-turns``: the reloads at Python's own switch interval, as before ``rapidrag.process.prompt_switching``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit, report_stamp, reset_peak, status_kb


def _mb(field: str) -> float:
    kb = status_kb(field)
    return kb / 1024 if kb is not None else float("nan")


def _percentiles(ms: list[float]) -> dict[str, float | None]:
    a = np.asarray(ms)
    if not len(a):  # (no search ran then: a very short reload on a machine busy elsewhere)
        return {"searches": 0, "p50": None, "p99": None, "max": None}
    return {
        "searches": len(ms),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a saved index folder (copied; not changed)")
    ap.add_argument("--queries", type=Path, required=True, help="a BEIR folder whose queries.jsonl to search")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reloads", type=int, default=6, help="reloads while the search thread runs")
    ap.add_argument("--delete", type=int, default=50, help="documents the second snapshot lacks")
    ap.add_argument("--quiet-s", type=float, default=5.0, help="seconds of searches with no reload")
    ap.add_argument(
        "--plain-turns",
        action="store_true",
        help="reload at Python's own GIL switch interval (no prompt_switching: reloads before it), to compare",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.plain_turns:
        import contextlib

        import rapidrag.process

        rapidrag.process.prompt_switching = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment]

    from rapidrag import Retriever
    from rapidrag.beir import load_queries
    from rapidrag.search import Searcher

    queries = list(load_queries(args.queries).values())
    scratch = Path(tempfile.mkdtemp(prefix="reload-cost-"))
    try:
        folder = scratch / "ix"
        shutil.copytree(args.index, folder)
        first = Retriever.load(folder)
        second = Retriever.load(folder)
        second.delete(second.ids()[: args.delete])
        snapshots = [first, second]

        swaps: list[float] = []
        adopt = Searcher._adopt

        def timed_adopt(self: Any, *a: Any, **k: Any) -> None:
            start = time.perf_counter()
            adopt(self, *a, **k)
            swaps.append((time.perf_counter() - start) * 1000)

        Searcher._adopt = timed_adopt  # type: ignore[method-assign]

        served = Retriever.load(folder)
        turn = [0]

        def other_snapshot() -> None:
            turn[0] += 1
            snapshots[turn[0] % 2].save(folder, force=True)

        # The reloads first, so that the memory a reload takes is not memory a fresh load freed before it.
        load_s, reload_s, memory = [], [], []
        for _ in range(args.rounds):
            other_snapshot()
            before = _mb("VmRSS")
            reset_peak()
            start = time.perf_counter()
            if not served.reload():
                raise SystemExit("the reload found nothing new")
            reload_s.append(time.perf_counter() - start)
            memory.append({"before_mb": before, "peak_mb": _mb("VmHWM"), "after_mb": _mb("VmRSS")})
        for _ in range(args.rounds):
            start = time.perf_counter()
            fresh = Retriever.load(folder)
            load_s.append(time.perf_counter() - start)
            del fresh

        # Searches beside reloads. The other snapshot is saved by this process between reloads (a writer is another
        # process in use, whose save takes no lock of this one): the searches that run while a reload runs count.
        latencies: list[tuple[float, float]] = []  # (start, ms)
        stop = threading.Event()

        def searching() -> None:
            k = 0
            while not stop.is_set():
                start = time.perf_counter()
                served.search(queries[k % len(queries)], 10, rerank=False)
                latencies.append((start, (time.perf_counter() - start) * 1000))
                k += 1

        thread = threading.Thread(target=searching)
        thread.start()
        time.sleep(args.quiet_s)
        quiet = [ms for _, ms in latencies]
        windows = []
        for _ in range(args.reloads):
            other_snapshot()
            time.sleep(0.2)  # (the searches the save slowed down finish)
            start = time.perf_counter()
            served.reload()
            windows.append((start, time.perf_counter()))
        time.sleep(0.2)
        stop.set()
        thread.join()
        during = [ms for t, ms in latencies if any(t <= b and t + ms / 1000 >= a for a, b in windows)]
        busy_s = sum(b - a for a, b in windows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        **report_stamp(),
        "index": str(args.index),
        "documents": len(first),
        "mode": served.default_mode,
        "load_s": {"best": min(load_s), "all": load_s},
        "reload_s": {"best": min(reload_s), "all": reload_s},
        "load_over_reload": min(load_s) / min(reload_s),
        "swap_ms": {"max": max(swaps), "all": swaps},
        "memory": memory,
        "searches_quiet_ms": _percentiles(quiet),
        "searches_during_reloads_ms": _percentiles(during),
        "reloads_s": busy_s,
        "plain_turns": args.plain_turns,
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
