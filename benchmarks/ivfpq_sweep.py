"""IVF-PQ's recall against latency for pairs of (nprobe, refine): how DenseIndex's IVF-PQ defaults were chosen.

    python benchmarks/ivfpq_sweep.py [--docs 0] [--queries 300] [--settings 88:16,176:64,264:64]

Data as in _dense.py (the cached gcide vectors when present). For each setting: recall@10 against exact search and
p50 / p95 latency of single-query searches, unfiltered and with a filter keeping a random 50% of the rows (the
in-index path, FAISS with an ID selector), and exact flat search for scale. Ground truth by numpy over all rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _dense import build, load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="corpus vectors (0 = all)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--settings", default="88:16,176:64,176:128,264:64", help="nprobe:refine pairs")
    args = parser.parse_args()
    data = load_data(args.docs, args.queries)
    started = time.perf_counter()
    index = build("ivfpq", data.vectors)
    seconds = time.perf_counter() - started
    print(f"{data.source}: {len(data.vectors)} vectors, nlist {index.nlist}, built in {seconds:.0f} s")
    half = np.random.default_rng(1).random(len(data.vectors)) < 0.5
    truth = {}
    for name, mask in (("all", None), ("50%", half)):
        allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(data.vectors))
        truth[name] = [set(allowed[np.argsort(-(data.vectors[allowed] @ q))[:10]].tolist()) for q in data.queries]

    def measure(search: object, name: str, mask: np.ndarray | None) -> tuple[float, float, float]:
        found, times = 0, []
        for q, expected in zip(data.queries, truth[name], strict=True):
            t = time.perf_counter()
            rows, _ = search(q[None], 10, mask=mask)  # type: ignore[operator]
            times.append((time.perf_counter() - t) * 1000)
            found += len(set(rows[0].tolist()) & expected)
        p50, p95 = np.percentile(times, [50, 95])
        return found / (10 * len(data.queries)), float(p50), float(p95)

    print(f"{'nprobe':>7}{'refine':>7}{'kept':>6}{'recall@10':>11}{'p50 ms':>8}{'p95 ms':>8}")
    for setting in args.settings.split(","):
        nprobe, refine = (int(x) for x in setting.split(":"))
        index.nprobe, index.refine = min(nprobe, index.nlist), refine
        for name, mask in (("all", None), ("50%", half)):
            recall, p50, p95 = measure(index.search, name, mask)
            print(f"{index.nprobe:>7}{refine:>7}{name:>6}{recall:>11.4f}{p50:>8.2f}{p95:>8.2f}")
    flat = build("flat", data.vectors)
    for name, mask in (("all", None), ("50%", half)):
        recall, p50, p95 = measure(flat.search, name, mask)
        print(f"{'flat':>7}{'-':>7}{name:>6}{recall:>11.4f}{p50:>8.2f}{p95:>8.2f}")


if __name__ == "__main__":
    main()
