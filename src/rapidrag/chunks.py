"""The chunk table: what each indexed row is, as integer arrays (its document's number, its chunk number within the
document, its character span in the document's text), the one mark of a deleted row, and the best row of each
document in a ranked list; and the chunks of documents before they are indexed, as flat spans plus row pointers
(made by ``document_spans``, or given whole by a caller and checked by ``check_spans``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .growing import GrowingArray

__all__ = ["ChunkTable", "Span", "check_spans", "document_spans", "first_of_each", "whole"]

IntArray = npt.NDArray[np.int64]


def first_of_each(keys: IntArray) -> IntArray:
    """Positions of the first occurrence of each key in ``keys``, in order (with the documents of a ranked list of
    rows: the best row of each document)."""
    if len(keys) <= 64:  # a search's few dozen rows: a dict is faster than np.unique's sort (2.5 against 4 µs at 40)
        first_at: dict[int, int] = {}
        for i, key in enumerate(keys.tolist()):
            first_at.setdefault(key, i)
        return np.fromiter(first_at.values(), dtype=np.int64, count=len(first_at))
    _, first = np.unique(keys, return_index=True)
    return np.sort(first).astype(np.int64)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def whole(text: str) -> Span:
    """The span of all of ``text``: the one chunk of a document indexed without a chunker."""
    return Span(0, len(text))


def document_spans(chunker: Any, texts: Sequence[str]) -> tuple[IntArray, IntArray]:
    """The chunks of ``texts`` as they are indexed: ``spans`` int64 [n_chunks, 3] (start, end, token count) and
    ``row_splits`` int64 [len(texts) + 1], text i's chunks being ``spans[row_splits[i]:row_splits[i + 1]]``.

    Every text has at least one chunk: an empty or blank text is one empty chunk (0, len(text), 0). Without a
    ``chunker`` (None) each text is one chunk, of token count 0 (not counted)."""
    if chunker is None:
        ends = np.asarray([whole(t).end for t in texts], dtype=np.int64)
        zeros = np.zeros(len(texts), dtype=np.int64)
        return np.stack([zeros, ends, zeros], axis=1), np.arange(len(texts) + 1, dtype=np.int64)
    spans, row_splits = chunker.spans_batch(texts)
    counts = np.diff(row_splits)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        ends = np.asarray([len(texts[i]) for i in empty.tolist()], dtype=np.int64)
        filler = np.stack([np.zeros_like(ends), ends, np.zeros_like(ends)], axis=1)
        spans = np.insert(spans, row_splits[empty], filler, axis=0)
        counts[empty] = 1
        row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return np.asarray(spans, dtype=np.int64), np.asarray(row_splits, dtype=np.int64)


def check_spans(texts: Sequence[str], spans: Any, row_splits: Any) -> tuple[IntArray, IntArray]:
    """``spans`` (int64 [n_chunks, 2] or [n_chunks, 3]: start, end, and a token count, not used) and
    ``row_splits`` (int64 [len(texts) + 1]) given by a caller for ``texts``, as ``document_spans`` makes them:
    each text has at least one chunk, each chunk lies within its text. Returns (spans [n_chunks, 2],
    row_splits), C-contiguous; a wrong dtype or type is a TypeError, a shape or value out of range a ValueError."""
    for name, value in (("spans", spans), ("row_splits", row_splits)):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name} must be a numpy array of int64, not {type(value).__name__}")
        if value.dtype != np.int64:
            raise TypeError(f"{name} must be int64, got {value.dtype} (convert with .astype(np.int64))")
    if spans.ndim != 2 or spans.shape[1] not in (2, 3):
        raise ValueError(f"spans must be [n_chunks, 2] (start, end) or [n_chunks, 3], got shape {spans.shape}")
    if row_splits.shape != (len(texts) + 1,):
        raise ValueError(f"row_splits must be [{len(texts) + 1}] (one more than the documents), got {row_splits.shape}")
    counts = np.diff(row_splits)
    if row_splits[0] != 0 or row_splits[-1] != len(spans) or (counts < 1).any():
        raise ValueError(
            f"row_splits must run from 0 to the {len(spans)} spans, each document with at least one chunk "
            f"(an empty text is one empty chunk), got {row_splits[:8].tolist()}..."
        )
    start, end = spans[:, 0], spans[:, 1]
    limit = np.repeat(np.asarray([len(t) for t in texts], dtype=np.int64), counts)
    bad = np.flatnonzero((start < 0) | (start > end) | (end > limit))
    if len(bad):
        j = int(bad[0])
        doc = int(np.searchsorted(row_splits, j, side="right")) - 1
        raise ValueError(
            f"spans[{j}] = ({int(start[j])}, {int(end[j])}) is not within document {doc}'s text "
            f"(0 <= start <= end <= {int(limit[j])})"
        )
    return np.ascontiguousarray(spans[:, :2]), np.ascontiguousarray(row_splits)


class ChunkTable:
    """One entry per row, in the order rows were added (a row's number never changes, so every index keys its
    entries by it): ``doc``, the number of the row's document (-1 once deleted: the table's liveness), ``chunk``,
    ``start`` and ``end``; and ``one_per_document``: True while no document has more than one row (each row's
    document is then its own, so a ranked list of rows is already one per document).

    Appends make the columns longer views (``GrowingArray``: a reader holding the old ones sees a consistent table,
    and an append to a large table copies none of its rows); ``kill`` marks rows in place, under the owner's write
    lock.
    """

    def __init__(self) -> None:
        self._columns = tuple(GrowingArray(np.zeros(0, dtype=np.int64)) for _ in range(4))
        self.doc, self.chunk, self.start, self.end = (c.array for c in self._columns)
        self.one_per_document = True

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def alive(self) -> npt.NDArray[np.bool_]:
        return self.doc >= 0

    def append(self, doc: IntArray, chunk: IntArray, start: IntArray, end: IntArray) -> range:
        """Add rows; returns their numbers."""
        first = len(self.doc)
        # A document's rows are numbered 0, 1, ... and a document is added once (an upsert adds a new one), so a
        # chunk number above 0 is a second row of a document. (Deleting rows does not set the flag back: it says
        # what may hold, and a table is rebuilt from its live rows on load.)
        self.one_per_document = self.one_per_document and not np.any(chunk)
        self.doc, self.chunk, self.start, self.end = (
            c.append(values) for c, values in zip(self._columns, (doc, chunk, start, end), strict=True)
        )
        return range(first, len(self.doc))

    def kill(self, rows: range | IntArray) -> None:
        """Mark ``rows`` deleted."""
        self.doc[rows] = -1

    def best_per_document(self, rows: IntArray) -> IntArray:
        """Positions in ``rows`` (a ranked list, best first) of the first, best, row of each document, in order."""
        return first_of_each(self.doc[rows])

    @classmethod
    def from_arrays(cls, doc: IntArray, chunk: IntArray, start: IntArray, end: IntArray) -> ChunkTable:
        """A table of the given columns (copied: ``kill`` writes into ``doc``), its flag from the live rows only."""
        out = cls()
        out._columns = tuple(GrowingArray(np.array(a, dtype=np.int64)) for a in (doc, chunk, start, end))
        out.doc, out.chunk, out.start, out.end = (c.array for c in out._columns)
        out.one_per_document = not np.any(out.chunk[out.doc >= 0])
        return out
