"""Bringing an index in line with its source (``rapidrag index SRC --out DIR --update``): the documents new to the
index are added, those whose text, title or metadata changed are indexed again, the unchanged ones are left as they
are (not embedded again: an update of a few edited files costs what they cost), and those no longer in the source
are removed only when asked (``prune``), since an index may hold documents added by other means (the HTTP service,
the API).

A document is unchanged when its text, title and metadata equal the indexed one's, ``modified`` aside: the date a
file was last written changes with a copy, a checkout or a touch, and indexing the same text again for it would
cost an embedding and change nothing a search finds. The index keeps the ``modified`` of the text it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .documents import Document, check_documents, encode_metadata

__all__ = ["IGNORED_METADATA", "Update", "same_document", "update"]

IGNORED_METADATA = frozenset({"modified"})  # changed by a copy or a touch of a file, not by an edit


@dataclass(frozen=True)
class Update:
    """What ``update`` did: the ids added and indexed again, how many documents were unchanged, the ids in the
    index but not among the documents given (``gone``; removed when ``removed`` counts them), and the chunks
    indexed."""

    added: list[str]
    changed: list[str]
    unchanged: int
    gone: list[str]
    removed: int
    chunks: int


def same_document(a: Document, b: Document) -> bool:
    """Whether ``a`` and ``b`` would be indexed alike: the same text, title and metadata (``IGNORED_METADATA``
    aside; values compared as the index saves them, so a date read back from a saved index equals the date read
    from a file)."""
    return a.text == b.text and a.title == b.title and _metadata(a) == _metadata(b)


def _metadata(doc: Document) -> str:
    encoded = {key: value for key, value in encode_metadata(doc).items() if key not in IGNORED_METADATA}
    return json.dumps(encoded, sort_keys=True)


def update(
    index: Any, documents: Iterable[Any], *, prune: bool = False, batch_size: int = 32, progress: bool | None = None
) -> Update:
    """Bring ``index`` (a ``Retriever`` or a ``ShardedRetriever``) in line with ``documents``, the whole of its
    source: new ids added, changed documents indexed again (``upsert``), unchanged ones left alone; the ids of the
    index that ``documents`` lacks are removed with ``prune``, else kept and listed (``Update.gone``).

    ``prune`` refuses (ValueError, nothing changed) to remove every document of a non-empty index: none of the ids
    given is indexed, which is a wrong source far more often than a wish to replace it all (make a new index for
    that). The index is changed in memory; save it to keep the change."""
    docs = check_documents(documents)  # every document checked before anything changes
    stored = index.get_many([doc.id for doc in docs])
    added = [doc for doc, old in zip(docs, stored, strict=True) if old is None]
    changed = [doc for doc, old in zip(docs, stored, strict=True) if old is not None and not same_document(doc, old)]
    given = {doc.id for doc in docs}
    gone = [doc_id for doc_id in index.ids() if doc_id not in given]
    if prune and gone and len(gone) == len(index):
        raise ValueError(
            f"prune would remove all {len(gone):,} documents of the index: none of the {len(docs):,} documents given "
            "is in it (is this the source the index was made from? to replace everything, make a new index)"
        )
    chunks = index.upsert(added + changed, batch_size=batch_size, progress=progress) if added or changed else 0
    removed = index.delete(gone) if prune and gone else 0
    unchanged = len(docs) - len(added) - len(changed)
    return Update([d.id for d in added], [d.id for d in changed], unchanged, gone, removed, chunks)
