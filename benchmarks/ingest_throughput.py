"""Ingest throughput (passages/s through ``Retriever.add``: chunking, embedding, indexing) for one or more copies of
the code side by side (before and after a change): each copy runs in its own process, in turn, round after round,
and the best round of each is kept.

    python benchmarks/ingest_throughput.py --shared ../shared --code before=/path/to/old/src --code after=src \\
        --rounds 2 --out ingest.json

A copy is a folder that holds the ``rapidrag`` package (with its built ``_core``). Each process indexes the first
``--scifact`` SciFact passages and the first ``--gcide`` gcide passages, hybrid (the shared embedder, int8, as
``rapidrag index`` takes it) and lexical only, after a warm-up add. It also times what a second count of the chunks'
tokens costs (``Tokenizer.count_tokens`` over the chunk texts), the work that reusing the chunker's counts removes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import side_by_side, side_by_side_options, use_code_copy


def worker(args: argparse.Namespace) -> None:
    use_code_copy()
    import rapidrag
    from rapidrag.beir import iter_jsonl
    from rapidrag.retriever import Retriever

    shared = Path(args.shared)
    embedder = rapidrag.Embedder(shared / "models" / "all-MiniLM-L6-v2", quantized=True)
    sets = {
        "scifact": (shared / "data" / "beir" / "scifact" / "corpus.jsonl.gz", args.scifact),
        "gcide": (shared / "data" / "corpora" / "gcide" / "corpus.jsonl.gz", args.gcide),
    }
    out: dict[str, Any] = {"rapidrag": str(Path(rapidrag.__file__).parent)}
    Retriever(embedder).add([{"_id": f"w{i}", "text": "warm up " * (i + 1)} for i in range(64)])
    for name, (path, n) in sets.items():
        docs = []
        for doc in iter_jsonl(path):
            docs.append({"_id": str(doc["_id"]), "title": doc.get("title", ""), "text": doc.get("text", "")})
            if len(docs) == n:
                break
        for kind in ("hybrid", "lexical"):
            retriever = Retriever(embedder) if kind == "hybrid" else Retriever()
            clock = time.perf_counter()
            chunks = retriever.add(docs, progress=False)
            seconds = time.perf_counter() - clock
            out[f"{name}/{kind}"] = {"passages_per_s": len(docs) / seconds, "seconds": seconds, "chunks": chunks}
        chunker = rapidrag.Chunker(embedder.tokenizer, max_tokens=embedder.max_length - 2)
        texts = [f"{d['title']} {d['text']}" if d["title"] else d["text"] for d in docs]
        chunk_texts = [c.text for chunks_of in chunker.split_batch(texts) for c in chunks_of]
        clock = time.perf_counter()
        embedder.tokenizer.count_tokens(chunk_texts)
        out[f"{name}/count_tokens_s"] = {"seconds": time.perf_counter() - clock, "chunks": len(chunk_texts)}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--scifact", type=int, default=1000, help="SciFact passages (default 1,000)")
    parser.add_argument("--gcide", type=int, default=2000, help="gcide passages (default 2,000)")
    side_by_side_options(parser, rounds=2, out="ingest_throughput.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    argv = ["--shared", args.shared, "--scifact", str(args.scifact), "--gcide", str(args.gcide)]
    side_by_side(__file__, args.code, args.rounds, argv, "passages_per_s", args.out)


if __name__ == "__main__":
    main()
