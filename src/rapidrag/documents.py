"""What goes in and what comes out: ``Document``, ``Hit`` and ``SearchResult``, and the metadata codec that saves
a document's metadata as JSON (dates tagged, non-finite floats kept) and reads it back."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

__all__ = [
    "Document",
    "DocumentList",
    "Hit",
    "SearchResult",
    "check_documents",
    "check_same_text",
    "decode_metadata",
    "encode_metadata",
    "line_start",
    "same_text",
    "saved_line",
    "title_and_text",
]

TAG = "__rapidrag__"  # the key of a saved metadata value that JSON has no type for: {TAG: "date", "value": ...}


@dataclass(frozen=True)
class Document:
    """A document to index: ``text``, metadata for filters, and an optional ``title``.

    The title is a separate BM25 field when the retriever gives it a weight (``title_weight``); for a BEIR
    document ``from_dict`` also prepends it to ``text`` (the BEIR protocol indexes and embeds "title text"), so
    spans always point into ``text``.
    """

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], index: int = 0) -> Document:
        """``{"id", "text", "metadata"}`` or a BEIR ``{"_id", "title", "text", ...}``."""
        doc_id = raw.get("id", raw.get("_id"))
        text = raw.get("text")
        if doc_id is None or not isinstance(text, str):
            raise ValueError(f"documents[{index}]: needs an 'id' (or '_id') and a str 'text', got keys {sorted(raw)}")
        title = raw.get("title")
        if not isinstance(title, str):
            title = ""
        text = title_and_text(title, text)
        # An explicit "metadata" (BEIR's is often {}) is the metadata; without one, the other fields are.
        if raw.get("metadata") is not None:
            metadata = raw["metadata"]
        else:
            metadata = {k: v for k, v in raw.items() if k not in ("id", "_id", "text", "title", "metadata")}
        if not isinstance(metadata, Mapping):
            raise ValueError(f"documents[{index}]: metadata must be a dict, got {type(metadata).__name__}")
        return cls(str(doc_id), text, dict(metadata), title)

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-ready values, encoded as ``Hit.to_dict`` encodes a hit (dates as ISO 8601 strings,
        non-finite numbers null), as ``GET /documents/{id}`` of the HTTP service answers."""
        return {
            "id": self.id,
            "text": self.text,
            "title": self.title,
            "metadata": {str(key): _json_value(v) for key, v in self.metadata.items()},
        }


FIELDS = frozenset(("id", "text", "metadata", "title"))  # a Document's, as saved


def saved_line(doc: Document) -> str:
    """``doc`` as one line of an index's ``documents.jsonl``: a JSON object, its id first (``DocumentList.saved``
    checks lines against their ids by that start), the metadata encoded (``encode_metadata``)."""
    return json.dumps({"id": doc.id, "text": doc.text, "title": doc.title, "metadata": encode_metadata(doc)})


def line_start(doc_id: str) -> str:
    """How the saved line of the document ``doc_id`` begins."""
    return '{"id": ' + json.dumps(doc_id) + ","


class DocumentList:
    """An index's documents by number (None: a deleted one), where a document loaded from a saved index stays its
    saved line until first read: a load parses no document of ASCII text (on a 126k-passage index, half a second
    of JSON), a search parses those it returns the first time (a few µs each), and a save writes the lines it still
    holds as they are. A list of Documents otherwise (``append``, ``[n] = None``)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Document | str | None] = []

    @classmethod
    def saved(cls, lines: list[str], ids: list[str] | None = None) -> DocumentList:
        """The documents of ``documents.jsonl``'s ``lines``, whose ids are ``ids`` (checked: each line begins
        with its id; ValueError names the first line that does not). ``ids`` None (formats 1-3, which saved none):
        every line parsed now."""
        out = cls()
        if ids is None:
            out._items = [_parse_line(line, number) for number, line in enumerate(lines)]
            return out
        if len(lines) != len(ids):
            raise ValueError(f"{len(lines)} documents where {len(ids)} ids were saved")
        for number, (line, doc_id) in enumerate(zip(lines, ids, strict=True)):
            if not (isinstance(doc_id, str) and line.startswith(line_start(doc_id))):
                raise ValueError(f"document line {number + 1} is not the document {doc_id!r}")
            # A line that escapes characters beyond ASCII (six bytes each, \uXXXX) is parsed now: kept as a line, a
            # text in another script would take up to three times the memory of the same text parsed.
            out._items.append(_parse_line(line, number) if "\\u" in line else line)
        return out

    def copy(self) -> DocumentList:
        """A shallow copy (what a save writes while writers go on)."""
        out = DocumentList()
        out._items = list(self._items)
        return out

    @property
    def held(self) -> list[Document | str | None]:
        """The list itself, for a hot loop that reads documents a lookup at a time: an item that is a ``str`` is
        a line not parsed yet, which ``self[number]`` parses."""
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, number: int) -> Document | None:
        item = self._items[number]
        if type(item) is str:
            item = self._items[number] = _parse_line(item, number)
        return item  # type: ignore[return-value]

    def __setitem__(self, number: int, doc: Document | None) -> None:
        self._items[number] = doc

    def append(self, doc: Document) -> None:
        self._items.append(doc)

    def line(self, number: int) -> str:
        """The document's line for ``documents.jsonl``: as it was read if it was not parsed since, else encoded
        again (its metadata, which its owner may have changed, checked again)."""
        item = self._items[number]
        if item is None:
            raise KeyError(f"document {number} was deleted")
        return item if type(item) is str else saved_line(item)  # type: ignore[arg-type]


def _parse_line(line: str, number: int) -> Document:
    from .errors import IndexFormatError

    try:
        item = json.loads(line)
        if not (isinstance(item, dict) and item.keys() == FIELDS):
            raise ValueError(f"fields {sorted(item) if isinstance(item, dict) else type(item).__name__}")
        metadata = decode_metadata(item["metadata"]) if TAG in line else item["metadata"]
        return Document(item["id"], item["text"], metadata, item["title"])
    except ValueError as e:  # (json's errors too)
        raise IndexFormatError(f"saved document {number}: not a document line ({e})") from None


def title_and_text(title: str, text: str) -> str:
    """A titled document's text as indexed and embedded: "title text" (the BEIR protocol), or whichever is given."""
    return f"{title} {text}" if title and text else title or text


@dataclass(frozen=True)
class Hit:
    """One result: the document, the chunk, its character span in the document text, and each stage's score.

    ``score`` orders the hits of one search: the stage's score in lexical or dense mode, the fused score in hybrid
    mode and, when the reranker ran, ``w * z(rerank) + (1 - w) * z(first stage)`` with z-scores over the scored
    candidates (so relative to that search: the only candidate scores 0). To compare across searches, or to set a
    threshold, use a stage's own score in ``scores`` ("bm25", "dense", "rerank": the reranker's logit).
    """

    doc_id: str
    chunk_id: int
    text: str
    start: int
    end: int
    score: float
    scores: dict[str, float]
    metadata: Mapping[str, Any]

    @classmethod
    def _new(
        cls,
        doc_id: str,
        chunk_id: int,
        text: str,
        start: int,
        end: int,
        score: float,
        scores: dict[str, float],
        metadata: Mapping[str, Any],
    ) -> Hit:
        """The hit ``Hit(...)`` makes, without the frozen class's eight ``object.__setattr__`` calls: 0.2 against
        0.6 µs, and a search makes one per hit."""
        hit = object.__new__(cls)
        fields = hit.__dict__
        fields["doc_id"], fields["chunk_id"], fields["text"], fields["start"] = doc_id, chunk_id, text, start
        fields["end"], fields["score"], fields["scores"], fields["metadata"] = end, score, scores, metadata
        return hit

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready values, the one encoding of the CLI's ``--json`` and the HTTP service: metadata
        keeps its lists and dicts, dates become ISO 8601 strings, non-finite numbers null."""
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": _json_value(self.score),
            "scores": {name: _json_value(v) for name, v in self.scores.items()},
            "metadata": {str(key): _json_value(v) for key, v in self.metadata.items()},
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


class SearchResult(list[Hit]):
    """The hits, best first, ``timings`` (milliseconds per stage), and ``missing_shards``: for an index split in
    shards, those that could not answer (none of their replicas alive), so that a partial answer says it is one."""

    def __init__(self, hits: Iterable[Hit], timings: dict[str, float], missing_shards: Iterable[int] = ()) -> None:
        super().__init__(hits)
        self.timings = timings
        self.missing_shards = list(missing_shards)


def encode_metadata(doc: Document) -> dict[str, Any]:
    """Metadata as JSON: dates and datetimes tagged, numpy scalars as Python numbers; other types refused."""
    out = {}
    for key, value in doc.metadata.items():
        out[str(key)] = _encode_value(value, doc.id, str(key))
    return out


def _encode_value(value: Any, doc_id: str, key: str) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if abs(value) > sys.float_info.max:  # filters compare numbers as float64
            bits = value.bit_length()
            raise ValueError(f"document {doc_id!r}: metadata {key!r} is an int too large for a float64 ({bits} bits)")
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if isinstance(value, datetime):
        return {TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "value": value.isoformat()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, doc_id, key) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode_value(v, doc_id, key) for k, v in value.items()}
    raise TypeError(
        f"document {doc_id!r}: metadata {key!r} is a {type(value).__name__}, which cannot be saved "
        "(use str, numbers, bools, None, dates, lists or dicts)"
    )


def decode_metadata(raw: Any) -> Any:
    if isinstance(raw, list):
        return [decode_metadata(v) for v in raw]
    if isinstance(raw, dict):
        tag = raw.get(TAG)
        if tag == "datetime":
            return datetime.fromisoformat(raw["value"])
        if tag == "date":
            return date.fromisoformat(raw["value"])
        if tag == "float":
            return float(raw["value"])
        return {k: decode_metadata(v) for k, v in raw.items()}
    return raw


def same_text(a: Document, b: Document) -> bool:
    """Whether ``a`` and ``b`` have the same text and title: what is chunked, embedded and scored."""
    return a.text == b.text and a.title == b.title


def check_same_text(doc: Document, indexed: Document | None) -> None:
    """Refuse (ValueError) to give ``doc`` new metadata alone when it is not indexed (``indexed`` None) or its text
    or title differs from the indexed one's (``replace_metadata`` of either kind of index)."""
    if indexed is None:
        raise ValueError(f"document {doc.id!r} is not indexed: add it")
    if not same_text(doc, indexed):
        raise ValueError(f"document {doc.id!r}: its text or title is not the indexed one's: upsert it")


def check_documents(documents: Iterable[Any]) -> list[Document]:
    """Documents to index (Document, {"id", "text", "metadata"} or BEIR dicts) as Documents, every one checked
    before any is stored: types, metadata that can be saved and filtered, valid Unicode, no id twice."""
    from .filters import check_metadata

    if isinstance(documents, (str, bytes, Mapping, Document)):
        raise TypeError("documents must be an iterable of documents (wrap a single one in a list)")
    out = []
    for i, d in enumerate(documents):
        if isinstance(d, Document):
            doc = d
        elif isinstance(d, Mapping):
            doc = Document.from_dict(d, i)
        else:
            raise TypeError(f"documents[{i}] must be a Document or a dict, not {type(d).__name__}")
        if not isinstance(doc.id, str) or not isinstance(doc.text, str) or not isinstance(doc.title, str):
            raise TypeError(f"documents[{i}]: id, text and title must be str")
        if not isinstance(doc.metadata, Mapping):
            raise TypeError(f"documents[{i}] ({doc.id!r}): metadata must be a dict")
        encode_metadata(doc)  # refuses, before anything is stored, a value that could not be saved
        try:
            check_metadata(doc.metadata)  # ... or not filtered
        except TypeError as e:
            raise TypeError(f"documents[{i}] ({doc.id!r}): {e}") from None
        for name, value in (("id", doc.id), ("text", doc.text), ("title", doc.title)):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(
                    f"documents[{i}] ({doc.id!r}): {name} is not valid Unicode ({e.reason} at index {e.start})"
                ) from None
        out.append(doc)
    first: dict[str, int] = {}
    for i, doc in enumerate(out):
        if first.setdefault(doc.id, i) != i:
            raise ValueError(
                f"documents[{first[doc.id]}] and documents[{i}] have the same id {doc.id!r}: an id given twice in "
                "one call (to replace a document, upsert it in a later call)"
            )
    return out
