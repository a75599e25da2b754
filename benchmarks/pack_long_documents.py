"""Packing hits of long documents: each document read whole (what ``pack`` did before, and still does up to
``rapidrag.context.LONG_TEXT`` characters) against read in stretches around its hits (what it does above that), in
one process, taking turns.

Documents are made of gcide passages joined by blank lines (``--per-document`` passages each, 60,000 passages in
all); an index of them (lexical, chunks of 128 tokens of the MiniLM tokenizer) is searched for 100 queries (the
first words of passages spread over the corpus; 20 hits, several chunks of a document allowed) and the hits packed
into 1,000 tokens with each strategy. "first": nothing kept from earlier packs; "again": the same packs once more.

    python benchmarks/pack_long_documents.py --shared ../shared --per-document 2000 --per-document 20
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

PASSAGES = 60_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parent.parent.parent / "shared"))
    parser.add_argument("--per-document", type=int, action="append", help="passages per document (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="pack_long_documents.json")
    args = parser.parse_args()

    import rapidrag
    import rapidrag.context as context

    texts = []
    with gzip.open(Path(args.shared) / "data/corpora/gcide/corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == PASSAGES:
                break
    tok = rapidrag.Tokenizer.from_file(Path(args.shared) / "models/all-MiniLM-L6-v2/tokenizer.json")
    queries = [" ".join(texts[i].split()[:8]) for i in range(5, PASSAGES, PASSAGES // 100)][:100]
    long_text = context.LONG_TEXT
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "long_text": long_text,
        "runs": {},
    }
    for per in args.per_document or [2000, 20]:
        docs = [{"id": f"d{k}", "text": "\n\n".join(texts[k * per : (k + 1) * per])} for k in range(PASSAGES // per)]
        index = rapidrag.Retriever(None, None, rapidrag.Chunker(tok, 128, 0))
        index.add(docs)
        hits = {q: index.search(q, 20, mode="lexical", per_document=False) for q in queries}
        chars = int(np.mean([len(d["text"]) for d in docs]))
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for reading, limit in (("whole", 10**12), ("near", long_text)):
                context.LONG_TEXT = limit
                for strategy in ("chunks", "sentences", "window"):
                    for phase in ("first", "again"):
                        if phase == "first":
                            context._DOCUMENTS.__init__(4096, offset_tokens=1 << 21)
                        times = []
                        for q in queries:
                            clock = time.perf_counter()
                            context.pack(hits[q], 1000, source=index, query=q, strategy=strategy, tokenizer=tok)
                            times.append((time.perf_counter() - clock) * 1000)
                        key = f"{reading}, {strategy}, {phase}"
                        row = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
                        if key not in best or row["p50_ms"] < best[key]["p50_ms"]:
                            best[key] = row
        context.LONG_TEXT = long_text
        report["runs"][f"{per} passages a document ({chars} characters)"] = best
        print(f"\n{len(docs)} documents of {chars} characters on average; ms, p50 / p99 (best round by p50)")
        print("| strategy, pass | read whole | read near the hits |\n|---|---|---|")
        for strategy in ("chunks", "sentences", "window"):
            for phase in ("first", "again"):
                cells = [best[f"{reading}, {strategy}, {phase}"] for reading in ("whole", "near")]
                print(
                    f"| {strategy}, {phase} | "
                    + " | ".join(f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f}" for c in cells)
                    + " |"
                )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
