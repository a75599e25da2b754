"""Readers for BEIR-format data sets: ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]`` and ``qrels/*.tsv``."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataFormatError

__all__ = ["iter_jsonl", "load_corpus", "load_queries", "load_qrels", "document_text"]


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _resolve(path: str | Path, stem: str) -> Path:
    """Accept a file, or a BEIR data set folder holding ``stem.jsonl`` or ``stem.jsonl.gz``."""
    p = Path(path)
    if p.is_dir():
        for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"no {stem}.jsonl or {stem}.jsonl.gz in {p}")
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    return p


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield one object per non-empty line; a malformed line raises DataFormatError naming the line."""
    p = Path(path)
    with _open_text(p) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{p}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield obj


def document_text(doc: dict[str, Any]) -> str:
    """Title and text joined by a space, the standard way to index a BEIR document."""
    title = doc.get("title") or ""
    text = doc.get("text") or ""
    return f"{title} {text}".strip() if title else text


def load_corpus(path: str | Path) -> list[dict[str, Any]]:
    """BEIR corpus as a list of ``{"_id", "title", "text", ...}`` dicts, in file order."""
    p = _resolve(path, "corpus")
    docs = []
    for i, doc in enumerate(iter_jsonl(p)):
        if "_id" not in doc or not isinstance(doc.get("text", ""), str):
            raise DataFormatError(f"{p}: document {i} needs an '_id' and a string 'text'")
        doc["_id"] = str(doc["_id"])
        docs.append(doc)
    return docs


def load_queries(path: str | Path) -> dict[str, str]:
    """BEIR queries as ``{query_id: text}``."""
    p = _resolve(path, "queries")
    return {str(q["_id"]): q["text"] for q in iter_jsonl(p)}


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (``query-id, corpus-id, score`` with a header; CRLF tolerated) as nested dicts."""
    p = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\r\n").split("\t")
            if lineno == 1 and parts[0] == "query-id":
                continue
            if parts == [""]:
                continue
            if len(parts) != 3:
                raise DataFormatError(f"{p}:{lineno}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                score = int(parts[2])
            except ValueError:
                raise DataFormatError(f"{p}:{lineno}: score {parts[2]!r} is not an integer") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels
