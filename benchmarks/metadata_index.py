"""What the metadata index costs: building it for N rows at once (as a load or a bulk add does), adding rows one
document at a time to an index of N rows (as a service's small writes do), and evaluating filters.

    python benchmarks/metadata_index.py --rows 100000 --rounds 3

The rows' metadata is seeded and of every kind a filter reads: a str among 40 values (a source), a distinct str
(an id-like reference), an int (a year), a float (a score), a bool, an ISO date str, a list of 0-3 tags, and a
nested dict (an author's name and a number), some fields absent and some None; with ``--rare-fields N``, also one
of N further fields per row (metadata that differs by source). Set ``RAPIDRAG_CODE=FOLDER`` to
time a copy of the code (a folder holding the package with its built ``_core``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from _common import use_code_copy


def metadata(n: int, seed: int = 0, rare_fields: int = 0) -> list[dict[str, Any] | None]:
    rng = np.random.default_rng(seed)
    tags = ["cardiology", "oncology", "neurology", "trial", "review", "cohort", "mouse", "human"]
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        if rng.random() < 0.02:
            out.append(None)
            continue
        meta: dict[str, Any] = {
            "source": f"source-{rng.integers(40)}",
            "ref": f"ref-{i}",
            "year": int(rng.integers(1990, 2026)),
            "score": float(rng.random()),
            "open": bool(rng.random() < 0.5),
            "published": f"{rng.integers(1990, 2026)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
            "tags": [tags[t] for t in rng.integers(0, len(tags), rng.integers(0, 4))],
            "author": {"name": f"author-{rng.integers(500)}", "h": int(rng.integers(0, 80))},
        }
        if rng.random() < 0.1:
            meta["score"] = None
        if rng.random() < 0.2:
            del meta["published"]
        if rare_fields:
            meta[f"rare-{rng.integers(rare_fields)}"] = int(rng.integers(100))
        out.append(meta)
    return out


FILTERS: list[dict[str, Any]] = [
    {"source": "source-3"},
    {"year": {"$gte": 2015}, "open": True},
    {"published": {"$gte": "2020-01-01"}},
    {"tags": {"$in": ["trial", "cohort"]}},
    {"$or": [{"author.name": "author-7"}, {"score": {"$gt": 0.99}}]},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=200, help="single-document adds timed after the bulk add")
    parser.add_argument("--rare-fields", type=int, default=0, help="one of this many further fields per row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="metadata_index.json")
    args = parser.parse_args()
    use_code_copy()

    import rapidrag
    from rapidrag.filters import MetadataIndex

    rows = metadata(args.rows + args.writes, rare_fields=args.rare_fields)
    bulk, single, masks = [], [], {json.dumps(f): float("inf") for f in FILTERS}
    for _ in range(args.rounds):
        index = MetadataIndex()
        clock = time.perf_counter()
        index.add(rows[: args.rows])
        bulk.append(time.perf_counter() - clock)
        times = []
        for meta in rows[args.rows :]:
            clock = time.perf_counter()
            index.add([meta])
            times.append(time.perf_counter() - clock)
        single.append(times)
        for spec in FILTERS:
            clock = time.perf_counter()
            for _ in range(10):
                index.mask(spec)
            masks[json.dumps(spec)] = min(masks[json.dumps(spec)], (time.perf_counter() - clock) / 10)
    best = single[int(np.argmin([np.median(t) for t in single]))]
    tracemalloc.start()  # (apart from the timed rounds: tracing slows allocation)
    held = MetadataIndex()
    held.add(rows[: args.rows])
    held_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "code": str(Path(rapidrag.__file__).parent),
        "rows": args.rows,
        "rare fields": args.rare_fields,
        "bulk add s (best)": min(bulk),
        "bulk add us per row (best)": min(bulk) / args.rows * 1e6,
        "MB held after the bulk add": held_bytes / 1e6,
        "single add ms p50 / p99 (best round)": [float(np.percentile(best, p)) * 1e3 for p in (50, 99)],
        "single add ms max (best round)": float(np.max(best)) * 1e3,
        "mask ms (best)": {spec: seconds * 1e3 for spec, seconds in masks.items()},
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
