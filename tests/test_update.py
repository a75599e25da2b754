"""Bringing an index in line with its source (``rapidrag.update``): only what changed is indexed, and the index then
searches as one made afresh from the new source does."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

import pytest

import rapidrag
from rapidrag import Retriever
from rapidrag.documents import Document
from rapidrag.update import same_document, update


def _docs(corpus: list[dict[str, Any]], n: int) -> list[Document]:
    return [
        Document(d["id"], d["text"], {"year": d["year"], "modified": "2024-01-01T00:00:00+00:00"}, d["title"])
        for d in corpus[:n]
    ]


def _edited(docs: list[Document]) -> list[Document]:
    """``docs[10:]`` (the first ten gone) and ten new ones, with one text edited, one metadata field changed and
    one file only touched (its ``modified`` alone changed)."""
    out = list(docs[10:50])
    out[10] = Document(out[10].id, out[10].text + " An added sentence on vitamin D.", out[10].metadata, out[10].title)
    out[20] = Document(out[20].id, out[20].text, {**out[20].metadata, "year": 1900}, out[20].title)
    out[30] = Document(
        out[30].id, out[30].text, {**out[30].metadata, "modified": "2026-12-05T00:00:00+00:00"}, out[30].title
    )
    return out + docs[50:60]


def _make(kind: str, embedder: rapidrag.Embedder) -> Any:
    if kind == "sharded":
        from rapidrag.distributed import ShardedRetriever

        return ShardedRetriever(embedder, n_shards=2, title_weight=0.5)
    return Retriever(embedder, title_weight=0.5)


@pytest.mark.parametrize("kind", ["one", "sharded"])
def test_update_indexes_only_what_changed_and_searches_as_a_fresh_index(
    kind: str,
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = _docs(shard_corpus, 60)
    old, new = docs[:50], _edited(docs)
    index = _make(kind, shard_embedder)
    index.add(old)
    embedded: list[str] = []
    original = type(shard_embedder).embed

    @functools.wraps(original)
    def counting(self: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        embedded.extend(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(type(shard_embedder), "embed", counting)
    done = update(index, new, prune=True)
    assert done.added == [d.id for d in docs[50:60]]
    assert done.changed == [new[10].id] and done.metadata_changed == [new[20].id, new[30].id]
    assert done.unchanged == 37 and sorted(done.gone) == sorted(d.id for d in docs[:10]) and done.removed == 10
    assert len(index) == 50 and sorted(index.ids()) == sorted(d.id for d in new)
    # Only the eleven new or edited texts were embedded (their chunks; SciFact abstracts are 1-3 chunks).
    assert 11 <= len(embedded) <= 40
    assert all(any(t in d.text for d in new[10:11] + docs[50:60]) for t in embedded)
    assert index.get(new[30].id).metadata["modified"] == "2026-12-05T00:00:00+00:00"
    assert index.get(new[20].id).metadata["year"] == 1900

    monkeypatch.setattr(type(shard_embedder), "embed", original)
    fresh = _make(kind, shard_embedder)
    fresh.add(new)
    for query in shard_queries[:10]:
        for mode in ("lexical", "dense", "hybrid"):
            got, want = index.search(query, k=10, mode=mode), fresh.search(query, k=10, mode=mode)
            assert [h.doc_id for h in got] == [h.doc_id for h in want], (query, mode)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
        filtered = {"year": {"$lt": 1950}}
        assert [h.doc_id for h in index.search(query, k=5, filter=filtered)] == [new[20].id]


def test_update_keeps_what_is_gone_unless_pruned_and_refuses_to_prune_everything(
    shard_corpus: list[dict[str, Any]],
) -> None:
    docs = _docs(shard_corpus, 30)
    index = Retriever()
    index.add(docs[:20])
    before = index.unsaved_changes
    done = update(index, docs[10:30])
    assert (len(done.added), done.changed, done.unchanged, done.removed) == (10, [], 10, 0)
    assert done.gone == [d.id for d in docs[:10]] and len(index) == 30  # kept: another writer may have added them
    assert index.unsaved_changes > before
    before = index.unsaved_changes
    dry = update(index, docs[5:30], prune=True, dry_run=True)
    assert sorted(dry.gone) == sorted(d.id for d in docs[:5]) and (dry.removed, dry.chunks) == (0, 0)
    assert len(index) == 30 and index.unsaved_changes == before  # a dry run changes nothing
    with pytest.raises(ValueError, match="prune would remove all 30 documents of the index"):
        update(index, [Document("elsewhere", "another source altogether")], prune=True)
    assert len(index) == 30 and index.get("elsewhere") is None  # nothing changed
    nothing = update(index, docs[:30])
    assert (nothing.added, nothing.changed, nothing.unchanged, nothing.chunks) == ([], [], 30, 0)
    assert index.unsaved_changes == before  # nothing to save
    with pytest.raises(ValueError, match="no id twice|twice"):
        update(index, [docs[0], docs[0]])


@pytest.mark.parametrize("kind", ["one", "sharded"])
def test_replace_metadata_changes_what_filters_see_and_nothing_else(
    kind: str, shard_corpus: list[dict[str, Any]], tmp_path: Any
) -> None:
    from rapidrag.distributed import ShardedRetriever

    docs = _docs(shard_corpus, 12)
    index: Any = ShardedRetriever(n_shards=2) if kind == "sharded" else Retriever()
    index.add([Document(d.id, d.text, {**d.metadata, "tags": ["old"]}, d.title) for d in docs])
    before = [h.doc_id for h in index.search("cells", k=5)], [h.score for h in index.search("cells", k=5)]
    relabelled = Document(docs[4].id, docs[4].text, {"year": 1800, "tags": ["new", "x"]}, docs[4].title)
    assert index.replace_metadata([relabelled]) == 1
    assert [h.doc_id for h in index.search(docs[4].title, k=5, filter={"year": 1800})] == [docs[4].id]
    assert index.search(docs[4].title, k=1, filter={"tags": "x"})[0].doc_id == docs[4].id
    assert docs[4].id not in [h.doc_id for h in index.search(docs[4].title, k=12, filter={"tags": "old"})]
    assert not index.search(docs[4].title, k=12, filter={"year": docs[4].metadata["year"]})  # the old value
    assert (
        [h.doc_id for h in index.search("cells", k=5)],
        [h.score for h in index.search("cells", k=5)],
    ) == before  # the text's rows and scores are as they were
    assert index.get(docs[4].id) == relabelled
    with pytest.raises(ValueError, match="is not indexed: add it"):
        index.replace_metadata([Document("nope", "x")])
    with pytest.raises(ValueError, match="text or title is not the indexed one's: upsert it"):
        index.replace_metadata([Document(docs[5].id, docs[5].text + ".", {}, docs[5].title)])
    assert index.get(docs[5].id) == Document(
        docs[5].id, docs[5].text, {**docs[5].metadata, "tags": ["old"]}, docs[5].title
    )
    index.save(tmp_path / "ix")
    loaded = type(index).load(tmp_path / "ix")
    assert loaded.get(docs[4].id) == relabelled
    assert [h.doc_id for h in loaded.search(docs[4].title, k=3, filter={"tags": "new"})] == [docs[4].id]


def test_same_document_compares_as_the_index_saves(tmp_path: Any) -> None:
    doc = Document("a", "text", {"date": date(2024, 3, 1), "tags": ["x"], "modified": "2024"}, "T")
    index = Retriever()
    index.add([doc])
    index.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix").get("a")
    assert loaded is not None and same_document(doc, loaded)
    assert not same_document(doc, Document("a", "text", {**doc.metadata, "modified": "2026"}, "T"))
    assert not same_document(doc, Document("a", "text", {"date": date(2024, 3, 2), "tags": ["x"]}, "T"))
    assert not same_document(doc, Document("a", "text", doc.metadata, "Another title"))
    assert not same_document(doc, Document("a", "text.", doc.metadata, "T"))


def test_get_many_and_ids(shard_corpus: list[dict[str, Any]]) -> None:
    from rapidrag.distributed import ShardedRetriever

    docs = _docs(shard_corpus, 12)
    for index in (Retriever(), ShardedRetriever(n_shards=3)):
        index.add(docs)
        index.delete([docs[3].id])
        got = index.get_many([docs[5].id, "nope", docs[3].id, docs[0].id])
        assert [d.id if d else None for d in got] == [docs[5].id, None, None, docs[0].id]
        assert sorted(index.ids()) == sorted(d.id for i, d in enumerate(docs) if i != 3)
        with pytest.raises(TypeError, match="wrap a single id"):
            index.get_many(docs[0].id)


def test_upsert_changed_embeds_only_new_and_edited_texts_and_looks_at_nothing_else(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some of the documents sent again (``POST /documents`` with ``skip_unchanged``): the same ones left alone,
    new metadata given without embedding, an edited text and new documents embedded; the index's other documents
    kept (nothing is gone)."""
    from rapidrag.update import upsert_changed

    docs = _docs(shard_corpus, 30)
    index = Retriever(shard_embedder)
    index.add(docs[:20])
    edited = Document(
        docs[10].id, docs[10].text + " An added sentence on vitamin D.", docs[10].metadata, docs[10].title
    )
    relabelled = Document(docs[11].id, docs[11].text, {**docs[11].metadata, "year": 1800}, docs[11].title)
    sent = [edited, relabelled, *docs[12:30]]
    embedded: list[str] = []
    original = type(shard_embedder).embed

    def counting(self: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        embedded.extend(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(type(shard_embedder), "embed", counting)
    done = upsert_changed(index, sent)
    assert done.added == [d.id for d in docs[20:30]] and done.changed == [edited.id]
    assert done.metadata_changed == [relabelled.id] and done.unchanged == 8 and done.gone == [] and done.removed == 0
    assert len(index) == 30 and all(index.get(d.id) is not None for d in docs[:10])  # (the others kept)
    assert embedded and all(any(t in d.text for d in [edited, *docs[20:30]]) for t in embedded)
    assert index.get(relabelled.id).metadata["year"] == 1800 and index.get(edited.id).text == edited.text
    embedded.clear()
    again = upsert_changed(index, sent)
    assert again.unchanged == 20 and again.chunks == 0 and not embedded
