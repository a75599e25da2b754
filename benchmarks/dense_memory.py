"""Resident memory of a dense index, and its search time, for copies of the code side by side (each run in a
process of its own, in turn):

    python benchmarks/dense_memory.py --code before=/tmp/old/src --code after=src --rows 100000 --rounds 2

For each kind (flat, HNSW): ``added_mb``, what the process's resident size grew by when ``rows`` random unit
vectors of 384 dimensions were added in one call (the caller's array excluded); ``loaded_mb``, the same for the
index rebuilt from its saved state (``DenseIndex.from_state``, as a load does; the saved arrays freed after);
``vectors_mb``, the vectors' own size; ``search_us`` (mean of 300 queries, one at a time, k = 10 and 400) and
``queries_per_s`` at k = 10. Without ``--code``: the installed package. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

from _common import side_by_side, side_by_side_options, status_kb, use_code_copy

DIM = 384


def _rss_mb() -> float:
    """The resident size once freed memory is handed back (glibc keeps freed blocks for reuse otherwise)."""
    import ctypes

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    kb = status_kb("VmRSS")
    if kb is None:
        raise SystemExit("no VmRSS in /proc/self/status (Linux only)")
    return kb / 1024


def worker(rows: int) -> dict[str, Any]:
    use_code_copy()
    import numpy as np

    import rapidrag
    from rapidrag.dense import DenseIndex

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((300, DIM), dtype=np.float32)
    out: dict[str, Any] = {"rapidrag": str(rapidrag.__file__)}
    for kind in ("flat", "hnsw"):
        before = _rss_mb()
        index = DenseIndex(DIM, kind)  # type: ignore[arg-type]
        index.add(np.arange(rows), vectors)
        added = _rss_mb() - before
        times = {}
        for k in (10, 400):
            index.search(queries[:1], k)
            clock = time.perf_counter()
            for q in queries:
                index.search(q[None, :], k)
            times[k] = (time.perf_counter() - clock) / len(queries) * 1e6
        info, arrays = index.state()
        saved_mb = sum(a.nbytes for a in arrays.values()) / 2**20
        del index
        without = _rss_mb() - saved_mb  # the process with neither the index nor its saved arrays
        loaded_index = DenseIndex.from_state(info, arrays)
        del arrays
        loaded = _rss_mb() - without
        del loaded_index
        out[kind] = {
            "rows": rows,
            "vectors_mb": round(vectors.nbytes / 2**20, 1),
            "added_mb": round(added, 1),
            "loaded_mb": round(loaded, 1),
            "search_us": {str(k): round(t, 1) for k, t in times.items()},
            "queries_per_s": round(1e6 / times[10], 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    side_by_side_options(parser, rounds=2, out="dense_memory.json")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.rows)), flush=True)
        return
    best = side_by_side(__file__, args.code, args.rounds, ["--rows", str(args.rows)], "queries_per_s", args.out)
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
