"""What a source that sends its documents again costs (``POST /documents``, a sync job): ``upsert`` indexes each
again, ``rapidrag.update.upsert_changed`` (``skip_unchanged``) leaves alone those the index holds as they are.

The index (``--index``, e.g. the README's scifact.idx) is loaded; ``--docs`` of its documents are sent again as they
are, then the same with ``--edit`` of them given a sentence more; each way, ``--rounds`` times in turns, each round
on a fresh load of the index. Seconds per call, the fastest round kept.

    python benchmarks/resend_cost.py --index scifact.idx --docs 500 --edit 5 --rounds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import emit, report_stamp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--edit", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from rapidrag import Retriever
    from rapidrag.documents import Document
    from rapidrag.update import upsert_changed

    def sent(index: Retriever, edit: int) -> list[Document]:
        docs = [d for d in index.get_many(index.ids()[: args.docs]) if d is not None]
        return [
            Document(d.id, d.text + " One sentence more.", d.metadata, d.title) if k < edit else d
            for k, d in enumerate(docs)
        ]

    ways = {
        "upsert": lambda index, docs: index.upsert(docs),
        "upsert_changed": lambda index, docs: upsert_changed(index, docs).chunks,
    }
    seconds: dict[str, list[float]] = {}
    chunks: dict[str, int] = {}
    for _ in range(args.rounds):
        for edit in (0, args.edit):
            for name, way in ways.items():
                index = Retriever.load(args.index)
                docs = sent(index, edit)
                start = time.perf_counter()
                chunks[f"{name}, {edit} edited"] = way(index, docs)
                seconds.setdefault(f"{name}, {edit} edited", []).append(time.perf_counter() - start)
    best = {key: min(values) for key, values in seconds.items()}
    report = {
        **report_stamp(),
        "index": str(args.index),
        "documents_sent": args.docs,
        "best_s": best,
        "all_s": seconds,
        "chunks_indexed": chunks,
        "upsert_over_upsert_changed": {
            f"{edit} edited": best[f"upsert, {edit} edited"] / best[f"upsert_changed, {edit} edited"]
            for edit in (0, args.edit)
        },
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
