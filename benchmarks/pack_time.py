"""Time of ``rapidrag.context.pack`` at 1,000 tokens per strategy, for one or more copies of the code side by side
(before and after a change): each copy runs in its own process, in turn, round after round.

    python benchmarks/pack_time.py --index scifact.idx --queries ../shared/data/beir/scifact \\
        --code before=/path/to/old/src --code after=/path/to/new/src --rounds 5 --out pack_time.json

A copy is a folder that holds the ``rapidrag`` package (with its built ``_core``). Each process loads the index
and searches the 300 SciFact test queries (hybrid, 20 hits, several chunks of a document allowed, no reranker: what
``Retriever.context`` packs). Then, per strategy: a first pass packs each query's hits once into a fresh process's
documents ("first": the documents met for the first time, or after a restart), a second pass packs them again
("again": the documents seen before, as a service packs the documents it keeps finding). Percentiles are of the
300 packs of one pass; a round keeps, per strategy and pass, the round with the most packs per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import side_by_side, side_by_side_options, use_code_copy

STRATEGIES: dict[str, dict[str, Any]] = {
    "chunks": {"strategy": "chunks"},
    "window 256": {"strategy": "window", "window_tokens": 256},
    "sentences 0": {"strategy": "sentences", "sentence_window": 0},
    "sentences 1 (default)": {"strategy": "sentences", "sentence_window": 1},
}
BUDGET = 1000


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import numpy as np

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.context import pack

    index = rapidrag.Retriever.load(args.index)
    queries = load_queries(args.queries)
    asked = [queries[q] for q in load_qrels(Path(args.queries) / "qrels" / "test.tsv") if q in queries]
    hits = [index.search(text, 20, per_document=False, rerank=False) for text in asked]
    pack(hits[0], BUDGET, source=index, query=asked[0])  # the first call's imports and set-up, not timed
    out: dict[str, Any] = {"rapidrag": str(Path(rapidrag.__file__).parent)}
    for name, settings in STRATEGIES.items():
        for phase in ("first", "again"):
            if phase == "first":
                _forget(index)
            times = []
            for text, found in zip(asked, hits, strict=True):
                clock = time.perf_counter()
                pack(found, BUDGET, source=index, query=text, **settings)
                times.append((time.perf_counter() - clock) * 1000)
            out[f"{name}, {phase}"] = {
                "packs_per_s": len(times) / (sum(times) / 1000),
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "max_ms": max(times),
            }
    print(json.dumps(out))


def _forget(index: Any) -> None:
    """Empty what packing keeps of documents across calls (where the copy of the code keeps any), and let go of the
    texts: the next pass meets every document for the first time."""
    import rapidrag.context as context

    for name in ("_DOCUMENTS", "_SPANS"):
        cache = getattr(context, name, None)
        if cache is not None:
            cache.__init__(**{k: getattr(cache, k) for k in ("capacity", "offset_tokens") if hasattr(cache, k)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="a BEIR folder with queries and qrels/test.tsv")
    side_by_side_options(parser, rounds=5, out="pack_time.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    argv = ["--index", args.index, "--queries", args.queries]
    best = side_by_side(__file__, args.code, args.rounds, argv, "packs_per_s", args.out)
    names = list(best)
    print("| strategy, pass | " + " | ".join(f"{n} p50 / p99 ms" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for key in best[names[0]]:
        cells = [f"{best[n][key]['p50_ms']:.2f} / {best[n][key]['p99_ms']:.2f}" for n in names]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
