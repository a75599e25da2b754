"""Recall against latency of a dense index's search settings: how DenseIndex's IVF-PQ defaults were chosen, and
what ``--index-option ef_search=N`` (HNSW) or ``nprobe=N`` / ``refine=N`` (IVF-PQ) trade on a loaded index.

    python benchmarks/search_settings.py --kind ivfpq [--docs 0] [--queries 300] \\
        --setting nprobe=88:refine=16 --setting nprobe=176:refine=64 --setting nprobe=264:refine=64
    python benchmarks/search_settings.py --kind hnsw --setting ef_search=16 --setting ef_search=64 ...

Data as in _dense.py (the cached gcide vectors when present). The index is built once with the defaults; each
setting is applied through ``DenseIndex.set_options`` (the path of ``Retriever.load(index_options=...)`` and
``--index-option``). For each: recall@10 against exact search and p50 / p95 latency of single-query searches,
unfiltered and with a filter keeping a random 50% of the rows (the in-index path, FAISS with an ID selector), and
exact flat search for scale. Ground truth by numpy over all rows.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _dense import build, load_data

DEFAULTS = {
    "ivfpq": ["nprobe=88:refine=16", "nprobe=176:refine=64", "nprobe=176:refine=128", "nprobe=264:refine=64"],
    "hnsw": ["ef_search=16", "ef_search=32", "ef_search=64", "ef_search=128", "ef_search=256"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=sorted(DEFAULTS), default="ivfpq")
    parser.add_argument("--docs", type=int, default=0, help="corpus vectors (0 = all)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE[:NAME=VALUE...], repeatable")
    parser.add_argument("--out", help="a JSON file for the results")
    args = parser.parse_args()
    data = load_data(args.docs, args.queries)
    started = time.perf_counter()
    index = build(args.kind, data.vectors)
    seconds = time.perf_counter() - started
    lists = f", nlist {index.nlist}" if args.kind == "ivfpq" else ""
    print(f"{data.source}: {len(data.vectors)} vectors, {args.kind}{lists}, built in {seconds:.0f} s")
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

    results = []
    print(f"{'setting':<28}{'kept':>6}{'recall@10':>11}{'p50 ms':>8}{'p95 ms':>8}")
    for setting in args.setting or DEFAULTS[args.kind]:
        options = {name: int(value) for name, value in (item.split("=") for item in setting.split(":"))}
        index.set_options(**options)
        for name, mask in (("all", None), ("50%", half)):
            recall, p50, p95 = measure(index.search, name, mask)
            results.append({"setting": options, "kept": name, "recall@10": recall, "p50_ms": p50, "p95_ms": p95})
            print(f"{setting:<28}{name:>6}{recall:>11.4f}{p50:>8.2f}{p95:>8.2f}")
    flat = build("flat", data.vectors)
    for name, mask in (("all", None), ("50%", half)):
        recall, p50, p95 = measure(flat.search, name, mask)
        results.append({"setting": "flat", "kept": name, "recall@10": recall, "p50_ms": p50, "p95_ms": p95})
        print(f"{'flat (exact)':<28}{name:>6}{recall:>11.4f}{p50:>8.2f}{p95:>8.2f}")
    if args.out:
        report = {"date": time.strftime("%Y-%m-%d %H:%M"), "source": data.source, "kind": args.kind}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({**report, "vectors": len(data.vectors), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
