"""Unlabelled queries for distillation (``rapidrag train reranker --distil-queries``) from a corpus: the titles of
its documents, a seeded sample of ``--limit`` of them, one per line. No judgement is read: a teacher labels them.

    python benchmarks/corpus_queries.py ../shared/data/beir/scifact --limit 2000 --out titles.txt
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from rapidrag.beir import iter_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="a BEIR data set folder or its corpus.jsonl[.gz]")
    ap.add_argument("--limit", type=int, default=2000, help="titles kept (a seeded sample; default 2000)")
    ap.add_argument("--min-words", type=int, default=4, help="titles shorter than this are skipped (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    path = Path(args.corpus)
    if path.is_dir():
        path = next(p for p in (path / "corpus.jsonl.gz", path / "corpus.jsonl") if p.exists())
    titles = sorted({" ".join(str(d.get("title", "")).split()) for d in iter_jsonl(path)})
    titles = [t for t in titles if len(t.split()) >= args.min_words]
    random.Random(args.seed).shuffle(titles)
    Path(args.out).write_text("".join(t + "\n" for t in titles[: args.limit]), encoding="utf-8")
    print(f"{min(args.limit, len(titles))} of {len(titles)} titles to {args.out}")


if __name__ == "__main__":
    main()
