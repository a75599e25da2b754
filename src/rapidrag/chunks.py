"""Chunk rows: what each indexed row is (its document, its chunk number, its character span in the document's
text), the mark of a deleted row, and the best row of each document in a ranked list."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEAD_ROW", "Row", "Span", "best_per_document", "whole"]


@dataclass
class Row:
    """One indexed chunk: its document's id, its number within the document and its [start, end) span."""

    doc_id: str
    chunk_id: int
    start: int
    end: int


DEAD_ROW = Row("", 0, 0, 0)  # a deleted row keeps its place (row numbers never change) and points nowhere


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def whole(text: str) -> Span:
    """The span of all of ``text``: the one chunk of a document indexed without a chunker."""
    return Span(0, len(text))


def best_per_document(rows: np.ndarray, row_doc: np.ndarray) -> np.ndarray:
    """Positions of the first (best) row of each document in ``rows``, in order; ``row_doc``: per row, a number
    that its document's rows share (the document's first row)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(row_doc[rows], return_index=True)
    return np.sort(first).astype(np.int64)
