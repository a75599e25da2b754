"""Bringing an index in line with its source (``rapidrag index SRC --out DIR --update``): the documents new to the
index are added, those whose text or title changed are indexed again, those whose metadata alone changed (a file's
``modified`` date after a touch, a jsonl line's ``source`` after lines above it moved, a tag) get it without their
text being indexed again, and the unchanged ones are left as they are: an update of a few edited files costs what
they cost. Those no longer in the source are removed only when asked (``prune``), since an index may hold
documents added by other means (the HTTP service, the API).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from .documents import Document, check_documents, encode_metadata, same_text

__all__ = ["Update", "same_document", "update", "upsert_changed"]


@dataclass(frozen=True)
class Update:
    """What ``update`` did: the ids added, indexed again (``changed``: a new text or title) and given new metadata
    alone (``metadata_changed``), how many documents were unchanged, the ids in the index but not among the
    documents given (``gone``; removed when ``removed`` counts them), those of them kept because their file could not
    be read in full (``spared``, not in ``gone``), and the chunks indexed."""

    added: list[str]
    changed: list[str]
    metadata_changed: list[str]
    unchanged: int
    gone: list[str]
    removed: int
    chunks: int
    spared: list[str] = field(default_factory=list)


def same_document(a: Document, b: Document) -> bool:
    """Whether ``a`` and ``b`` would be indexed alike: the same text, title and metadata (values compared as the
    index saves them, so that a date read back from a saved index equals the date read from a file)."""
    return same_text(a, b) and _metadata(a) == _metadata(b)


def _metadata(doc: Document) -> str:
    return json.dumps(encode_metadata(doc), sort_keys=True)


def update(
    index: Any,
    documents: Iterable[Any],
    *,
    prune: bool = False,
    unread: Collection[str] = (),
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Update:
    """Bring ``index`` (a ``Retriever`` or a ``ShardedRetriever``) in line with ``documents``, the whole of its
    source: new ids added, documents with a new text or title indexed again (``upsert``), those with new metadata
    alone given it (``replace_metadata``: no embedding), unchanged ones left alone; the ids of the index that
    ``documents`` lacks are removed with ``prune``, else kept and listed (``Update.gone``). ``unread``: the files of
    the source that could not be read in full (``Ingest.unread``: a file unreadable for now, a jsonl line being
    written): a document whose ``source`` metadata names one of them is not gone, only unread (``Update.spared``).

    ``prune`` refuses (ValueError, nothing changed) to remove every document of a non-empty index: none of the ids
    given is indexed, which is a wrong source far more often than a wish to replace it all (make a new index for
    that). The index is changed in memory; save it to keep the change. ``dry_run``: nothing changes, and the
    ``Update`` says what would (``removed`` and ``chunks`` 0)."""
    docs = check_documents(documents)  # every document checked before anything changes
    added, changed, relabelled, unchanged = _sorted(index, docs)
    given = {doc.id for doc in docs}
    gone = [doc_id for doc_id in index.ids() if doc_id not in given]
    spared: list[str] = []
    if unread and gone:
        files = set(unread)
        spared = [old.id for old in index.get_many(gone) if old is not None and _source_file(old) in files]
        kept = set(spared)
        gone = [doc_id for doc_id in gone if doc_id not in kept]
    if prune and gone and len(gone) == len(index):
        raise ValueError(
            f"prune would remove all {len(gone):,} documents of the index: none of the {len(docs):,} documents given "
            "is in it (is this the source the index was made from? to replace everything, make a new index)"
        )
    ids = [[d.id for d in part] for part in (added, changed, relabelled)]
    if dry_run:
        return Update(ids[0], ids[1], ids[2], unchanged, gone, 0, 0, spared)
    chunks = _write(index, added + changed, relabelled, batch_size, progress)
    removed = index.delete(gone) if prune and gone else 0
    return Update(ids[0], ids[1], ids[2], unchanged, gone, removed, chunks, spared)


def upsert_changed(
    index: Any, documents: Iterable[Any], *, batch_size: int | None = None, progress: bool | None = None
) -> Update:
    """``index.upsert(documents)`` that leaves alone what it holds already: as ``update`` does for these documents,
    new ids added, a new text or title indexed again, new metadata alone given without embedding, the same document
    untouched; the index's other documents are not looked at (``gone`` empty). For a source that sends its
    documents again whether they changed or not (``POST /documents`` with ``skip_unchanged``). The documents
    indexed again become visible at once, those with new metadata alone right after."""
    added, changed, relabelled, unchanged = _sorted(index, check_documents(documents))
    chunks = _write(index, added + changed, relabelled, batch_size, progress)
    ids = [[d.id for d in part] for part in (added, changed, relabelled)]
    return Update(ids[0], ids[1], ids[2], unchanged, [], 0, chunks)


def _sorted(index: Any, docs: list[Document]) -> tuple[list[Document], list[Document], list[Document], int]:
    """``docs`` sorted by what the index holds of each: new, with a new text or title, with new metadata alone;
    and how many are unchanged (left out)."""
    added: list[Document] = []
    changed: list[Document] = []
    relabelled: list[Document] = []
    for doc, old in zip(docs, index.get_many([doc.id for doc in docs]), strict=True):
        if old is None:
            added.append(doc)
        elif not same_text(doc, old):
            changed.append(doc)
        elif _metadata(doc) != _metadata(old):
            relabelled.append(doc)
    return added, changed, relabelled, len(docs) - len(added) - len(changed) - len(relabelled)


def _write(
    index: Any, indexed: list[Document], relabelled: list[Document], batch_size: int | None, progress: bool | None
) -> int:
    """Index ``indexed`` (``upsert``) and give ``relabelled`` their metadata; returns the chunks indexed."""
    chunks = index.upsert(indexed, batch_size=batch_size, progress=progress) if indexed else 0
    if relabelled:
        index.replace_metadata(relabelled)
    return int(chunks)


def _source_file(doc: Document) -> str:
    """The file of a document's ``source`` metadata (``rapidrag.ingest``'s: a path, a jsonl's with ``:line``)."""
    source = str(doc.metadata.get("source", ""))
    name, _, line = source.rpartition(":")
    return name if name and line.isdigit() else source
