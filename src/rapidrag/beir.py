"""Readers for BEIR-format data sets: ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]`` and ``qrels/*.tsv``."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .documents import title_and_text
from .errors import DataFormatError

__all__ = ["read_jsonl", "iter_jsonl", "load_corpus", "load_queries", "load_qrels", "document_text"]


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
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


def read_jsonl(
    path: str | Path, *, label: str | None = None, on_error: Callable[[str], None] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line of a JSON-lines file (``.gz``: gzip): the one reader of JSON
    lines (corpora, queries, ``rapidrag index`` sources).

    A malformed line, or a file that cannot be read, raises DataFormatError naming the file (as ``label``, else its
    path) and the line; with ``on_error`` the message is passed to it instead and the reading goes on (a
    malformed line is skipped; an unreadable rest of the file ends it).
    """
    p = Path(path)
    name = label if label is not None else str(p)

    def problem(message: str) -> None:
        if on_error is None:
            raise DataFormatError(message)
        on_error(message)

    try:
        f = _open_text(p)
    except OSError as e:
        problem(f"{name}: cannot read ({e.strerror})")
        return
    with f:
        lines = iter(f)
        lineno = 0
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except (UnicodeDecodeError, OSError, EOFError) as e:
                problem(f"{name}: unreadable after line {lineno} ({e}); the rest of the file skipped")
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problem(f"{name}:{lineno}: not valid JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                problem(f"{name}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield one object per non-empty line; a malformed line raises DataFormatError naming the line."""
    for _, obj in read_jsonl(path):
        yield obj


def document_text(doc: dict[str, Any]) -> str:
    """Title and text joined, the standard way to index a BEIR document (``documents.title_and_text``)."""
    return title_and_text(doc.get("title") or "", doc.get("text") or "")


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
