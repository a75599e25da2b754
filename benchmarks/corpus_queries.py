"""Unlabelled queries for distillation (``rapidrag train reranker --distil-queries``) from a corpus, one per line,
a seeded sample of ``--limit``: the titles of its documents (``--kind titles``), or sentences of their texts
(``--kind sentences``: statements of ``--min-words`` to ``--max-words`` words, at most ``--per-document`` from one
document, which read like SciFact's claims more than titles do). No judgement is read: a teacher labels them.

    python benchmarks/corpus_queries.py ../shared/data/beir/scifact --limit 2000 --out titles.txt
    python benchmarks/corpus_queries.py ../shared/data/beir/scifact --kind sentences --limit 6000 --out claims.txt
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rapidrag.beir import iter_jsonl
from rapidrag.sentences import sentence_spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="a BEIR data set folder or its corpus.jsonl[.gz]")
    ap.add_argument("--kind", choices=("titles", "sentences"), default="titles")
    ap.add_argument("--limit", type=int, default=2000, help="queries kept (a seeded sample; default 2000)")
    ap.add_argument("--min-words", type=int, default=4, help="shorter ones are skipped (default 4)")
    ap.add_argument("--max-words", type=int, default=40, help="sentences: longer ones are skipped (default 40)")
    ap.add_argument("--per-document", type=int, default=2, help="sentences: at most this many a document (2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    path = Path(args.corpus)
    if path.is_dir():
        path = next(p for p in (path / "corpus.jsonl.gz", path / "corpus.jsonl") if p.exists())
    rng = random.Random(args.seed)
    if args.kind == "titles":
        found = sorted({_words(d.get("title")) for d in iter_jsonl(path)})
        found = [t for t in found if len(t.split()) >= args.min_words]
    else:
        found = sorted(set(_statements(iter_jsonl(path), args.min_words, args.max_words, args.per_document, rng)))
    rng.shuffle(found)
    kept = found[: args.limit]
    Path(args.out).write_text("".join(q + "\n" for q in kept), encoding="utf-8")
    print(f"{len(kept)} of {len(found)} {args.kind} to {args.out}")


# The section headings of structured abstracts ("RESULTS Lipo-SP enhanced ...", "DATA SOURCES PubMed ..."), taken
# off a sentence's start: a known heading, or two upper-case words or more before a word such as "The" or "PubMed".
_HEADING = re.compile(
    r"^(?:(?:(?:BACKGROUND|OBJECTIVES?|METHODS?|RESULTS?|CONCLUSIONS?|PURPOSE|AIMS?|DESIGN|SETTINGS?|PARTICIPANTS|"
    r"INTERVENTIONS?|MEASUREMENTS|FINDINGS|INTRODUCTION|CONTEXT|IMPORTANCE|INTERPRETATION|PATIENTS|PROCESS)"
    r"[:\s]+(?=[A-Z0-9])|[A-Z]{2,}(?:\s+[A-Z]{2,})+[:\s]+(?=[A-Z][a-z]))+)"
)


def _words(text: Any) -> str:
    return " ".join(str(text or "").split())


def _statements(
    docs: Iterable[dict[str, Any]], min_words: int, max_words: int, per_document: int, rng: random.Random
) -> list[str]:
    """Up to ``per_document`` sentences of each document's text (a seeded choice) that read as a statement: a
    capital first letter (after a structured abstract's heading, taken off), a full stop last, ``min_words`` to
    ``max_words`` words."""
    out: list[str] = []
    for doc in docs:
        text = str(doc.get("text") or "")
        sentences = [_HEADING.sub("", _words(text[a:b])) for a, b in sentence_spans(text)]
        fit = [s for s in sentences if s[:1].isupper() and s.endswith(".") and min_words <= len(s.split()) <= max_words]
        out += rng.sample(fit, min(per_document, len(fit)))
    return out


if __name__ == "__main__":
    main()
