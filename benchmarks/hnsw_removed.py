"""HNSW searches with removed rows still in the graph: recall@10 against exact search over the live rows, and time.

A removed row stays in HNSW's graph until ``DenseIndex.compact()``. The script builds an HNSW index over a saved
index's vectors (SciFact: 9,625 chunk vectors of the shared embedder), removes a growing share of its rows (a
seeded order: 1%, 50%, 90%, 99%), and after each step searches the test queries one at a time (k 10, no filter)
and with a filter keeping half the rows. One or more copies of the code side by side, each in its own process, in
turn, round after round; each keeps its fastest round.

    python benchmarks/hnsw_removed.py --index scifact.idx --queries ../shared/data/beir/scifact \\
        --code before=/path/to/old/src --code after=src --rounds 3

Or over vectors in .npy files (float32 [n, dim]), such as the 125,984 gcide passages and the SciFact queries
that ``benchmarks/dense_vectors.py`` writes: ``--vectors /tmp/rapidrag-bench-cache/gcide-minilm-int8.npy
--query-vectors /tmp/rapidrag-bench-cache/scifact-queries-minilm-int8.npy`` (the first 300 queries).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import side_by_side, side_by_side_options, use_code_copy

SHARES = (0.0, 0.01, 0.5, 0.9, 0.99)


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.dense import DenseIndex
    from rapidrag.retriever import Retriever

    if args.vectors:
        vectors = np.ascontiguousarray(np.load(args.vectors), dtype=np.float32)
        rows = np.arange(len(vectors))
        query_vectors = np.ascontiguousarray(np.load(args.query_vectors)[:300], dtype=np.float32)
    else:
        retriever = Retriever.load(args.index, reranker=None)
        if retriever.dense is None or retriever.embedder is None:
            raise SystemExit("the index needs vectors and its embedder")
        rows = np.flatnonzero(retriever.dense._alive)
        vectors = retriever.dense.vectors(rows)
        queries = load_queries(args.queries)
        texts = [queries[q] for q in load_qrels(Path(args.queries) / "qrels" / "test.tsv") if q in queries]
        query_vectors = retriever.embedder.embed(texts)
    index = DenseIndex(vectors.shape[1], "hnsw")
    index.add(rows, vectors)
    rng = np.random.default_rng(0)
    order = rng.permutation(rows)
    half = rng.random(int(rows.max()) + 1) < 0.5
    out: dict[str, object] = {"rapidrag": str(Path(rapidrag.__file__).parent)}
    removed = 0
    for share in SHARES:
        upto = int(share * len(rows))
        index.remove(order[removed:upto])
        removed = upto
        live = np.sort(order[upto:])
        for name, mask in (("", None), (", half filtered", half)):
            kept = live if mask is None else live[mask[live]]
            exact = query_vectors @ vectors[np.searchsorted(rows, kept)].T
            truth = [set(kept[np.argpartition(-s, 9)[:10]].tolist()) for s in exact]
            times, found = [], []
            for v in query_vectors:
                clock = time.perf_counter()
                got, _ = index.search(v[None, :], 10, mask=mask)
                times.append(time.perf_counter() - clock)
                found.append(got[0])
            recall = float(np.mean([len(set(f.tolist()) & t) / len(t) for f, t in zip(found, truth, strict=True)]))
            p50 = float(np.median(times)) * 1e6
            out[f"removed {share:.0%}{name}"] = {
                "recall_at_10": recall,
                "p50_us": p50,
                "p99_us": float(np.percentile(times, 99)) * 1e6,
                "queries_per_s": 1e6 / p50,
                "live_rows": len(kept),
            }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", help="a saved index with vectors and its embedder")
    parser.add_argument("--queries", help="a BEIR folder with queries and qrels/test.tsv")
    parser.add_argument("--vectors", help="instead of --index: a .npy file of float32 [n, dim] vectors")
    parser.add_argument("--query-vectors", help="with --vectors: a .npy file of query vectors")
    side_by_side_options(parser, rounds=3, out="hnsw_removed.json")
    args = parser.parse_args()
    if (
        bool(args.vectors) == bool(args.index)
        or bool(args.vectors) != bool(args.query_vectors)
        or (args.index and not args.queries)
    ):
        parser.error("give --index and --queries, or --vectors and --query-vectors")
    if args.worker:
        worker(args)
        return
    given = ["--vectors", args.vectors, "--query-vectors", args.query_vectors] if args.vectors else []
    given += ["--index", args.index, "--queries", args.queries] if args.index else []
    best = side_by_side(__file__, args.code, args.rounds, given, "queries_per_s", args.out)
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
