"""Training data: a corpus, queries and qrels read as ``rapidrag index`` reads them, checked, and split into train
and dev queries (the dev split is carved out of the training qrels; test qrels are never an input)."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataFormatError, RapidragError

__all__ = [
    "MIN_TRAIN_QUERIES",
    "TrainingData",
    "TrainingDataError",
    "load_training_data",
    "load_unlabelled_queries",
    "prepare",
    "split_dev",
]

MIN_TRAIN_QUERIES = 20  # below this, a dev split cannot choose anything and training over-fits in a few steps


class TrainingDataError(RapidragError, ValueError):
    """Training data that cannot train: nothing left after the checks, or fewer judged queries than the minimum."""


@dataclass
class TrainingData:
    """Documents (id -> text), queries (id -> text) and qrels (query -> {document: grade}) that refer only to
    known queries and documents; ``dropped`` counts the judgements that did not, and ``sources`` names the files
    with their SHA-256 (for the model's record)."""

    documents: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    dropped: dict[str, int] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def positives(self, query_id: str) -> list[str]:
        return [d for d, grade in self.qrels[query_id].items() if grade > 0]


def _sha256(path: Path) -> str:
    if path.is_dir():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_training_data(
    corpus: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str],
    *,
    min_queries: int = MIN_TRAIN_QUERIES,
) -> TrainingData:
    """Read and check the data. Judgements naming unknown queries or documents are counted in ``dropped`` and
    left out; an error if no judged query with a relevant document is left, or fewer than ``min_queries``."""
    from ..beir import load_qrels, load_queries
    from ..ingest import Ingest

    ingest = Ingest(Path(corpus))
    documents = {doc.id: doc.text for doc in ingest}
    if not documents:
        raise TrainingDataError(f"{corpus}: no documents")
    query_text = load_queries(Path(queries))
    raw = load_qrels(Path(qrels))
    kept: dict[str, dict[str, int]] = {}
    dropped = {"unknown queries": 0, "unknown documents": 0, "queries without a relevant document": 0}
    for qid, judged in raw.items():
        if qid not in query_text:
            dropped["unknown queries"] += 1
            continue
        known = {d: g for d, g in judged.items() if d in documents}
        dropped["unknown documents"] += len(judged) - len(known)
        if not any(g > 0 for g in known.values()):
            dropped["queries without a relevant document"] += 1
            continue
        kept[qid] = known
    if not kept:
        raise TrainingDataError(
            f"{qrels}: no judged query is left after the checks ({_counts(dropped)}); do the qrels use the "
            f"corpus's document ids and the queries' ids?"
        )
    if len(kept) < min_queries:
        raise TrainingDataError(
            f"{qrels}: {len(kept)} usable judged queries; training needs at least {min_queries} "
            "(a dev split is carved out of them to choose the steps and the fusion weight)"
        )
    sources = {
        name: {"path": str(Path(p).resolve()), "sha256": _sha256(Path(p))}
        for name, p in (("corpus", corpus), ("queries", queries), ("qrels", qrels))
    }
    if ingest.skipped:
        dropped["corpus lines or files skipped"] = ingest.skipped
    return TrainingData(documents, {q: query_text[q] for q in kept}, kept, dropped, sources)


def _counts(dropped: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in dropped.items() if n) or "nothing dropped"


def split_dev(data: TrainingData, dev_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train query ids, dev query ids): a seeded random ``dev_fraction`` of the judged queries for dev."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction!r}")
    ids = sorted(data.qrels)
    random.Random(seed).shuffle(ids)
    n_dev = max(1, round(len(ids) * dev_fraction))
    if len(ids) - n_dev < 1:
        raise DataFormatError("no training queries left after the dev split")
    return sorted(ids[n_dev:]), sorted(ids[:n_dev])


def prepare(
    corpus: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str],
    *,
    min_queries: int | None,
    dev_fraction: float,
    seed: int,
) -> tuple[TrainingData, list[str], list[str]]:
    """``load_training_data`` then ``split_dev``: (data, train query ids, dev query ids)."""
    data = load_training_data(corpus, queries, qrels, **({} if min_queries is None else {"min_queries": min_queries}))
    train_ids, dev_ids = split_dev(data, dev_fraction, seed)
    return data, train_ids, dev_ids


UNLABELLED_PREFIX = "unlabelled:"  # query ids of unlabelled queries, apart from the judged queries' ids


def load_unlabelled_queries(path: str | os.PathLike[str], data: TrainingData) -> tuple[dict[str, str], int]:
    """Unlabelled queries for distillation: a ``.txt`` file of one query per line, or queries as ``rapidrag index``
    reads them (BEIR ``queries.jsonl[.gz]``). Returns ``({id: text}, dropped)``: ids carry ``UNLABELLED_PREFIX``;
    blank lines, repeats and any query whose text is one of the judged queries' (so that no dev query is trained
    on) are dropped and counted. Records the file's checksum in ``data.sources``."""
    from ..beir import load_queries

    p = Path(path)
    if not p.exists():
        raise TrainingDataError(f"{p}: no such file of unlabelled queries")
    if p.suffix == ".txt":
        with open(p, encoding="utf-8") as f:
            texts = [line.strip() for line in f]
    else:
        texts = [t.strip() for t in load_queries(p).values()]
    judged = {" ".join(t.split()).lower() for t in data.queries.values()}
    kept: dict[str, str] = {}
    seen: set[str] = set()
    dropped = 0
    for text in texts:
        key = " ".join(text.split()).lower()
        if not key or key in judged or key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept[f"{UNLABELLED_PREFIX}{len(kept)}"] = text
    if not kept:
        raise TrainingDataError(f"{p}: no unlabelled query left ({dropped} blank, repeated or judged)")
    data.sources["unlabelled_queries"] = {"path": str(p.resolve()), "sha256": _sha256(p)}
    return kept, dropped
