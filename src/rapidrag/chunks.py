"""The chunk table: what each indexed row is, as integer arrays (its document's number, its chunk number within the
document, its character span in the document's text), the one mark of a deleted row, and the best row of each
document in a ranked list."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ChunkTable", "Span", "first_of_each", "whole"]

IntArray = npt.NDArray[np.int64]


def first_of_each(keys: IntArray) -> IntArray:
    """Positions of the first occurrence of each key in ``keys``, in order (with the documents of a ranked list of
    rows: the best row of each document)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(keys, return_index=True)
    return np.sort(first).astype(np.int64)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def whole(text: str) -> Span:
    """The span of all of ``text``: the one chunk of a document indexed without a chunker."""
    return Span(0, len(text))


class ChunkTable:
    """One entry per row, in the order rows were added (a row's number never changes, so every index keys its
    entries by it): ``doc``, the number of the row's document (-1 once deleted: the table's liveness), ``chunk``,
    ``start`` and ``end``.

    Appends replace the arrays (a reader holding the old ones sees a consistent table); ``kill`` marks rows in
    place, under the owner's write lock.
    """

    def __init__(self) -> None:
        self.doc: IntArray = np.zeros(0, dtype=np.int64)
        self.chunk: IntArray = np.zeros(0, dtype=np.int64)
        self.start: IntArray = np.zeros(0, dtype=np.int64)
        self.end: IntArray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def alive(self) -> npt.NDArray[np.bool_]:
        return self.doc >= 0

    def append(self, doc: IntArray, chunk: IntArray, start: IntArray, end: IntArray) -> range:
        """Add rows; returns their numbers."""
        first = len(self.doc)
        self.doc = np.concatenate([self.doc, np.asarray(doc, dtype=np.int64)])
        self.chunk = np.concatenate([self.chunk, np.asarray(chunk, dtype=np.int64)])
        self.start = np.concatenate([self.start, np.asarray(start, dtype=np.int64)])
        self.end = np.concatenate([self.end, np.asarray(end, dtype=np.int64)])
        return range(first, len(self.doc))

    def kill(self, rows: range | IntArray) -> None:
        """Mark ``rows`` deleted."""
        self.doc[rows] = -1

    def best_per_document(self, rows: IntArray) -> IntArray:
        """Positions in ``rows`` (a ranked list, best first) of the first, best, row of each document, in order."""
        return first_of_each(self.doc[rows])

    @classmethod
    def from_arrays(cls, doc: IntArray, chunk: IntArray, start: IntArray, end: IntArray) -> ChunkTable:
        out = cls()
        out.append(doc, chunk, start, end)
        return out
