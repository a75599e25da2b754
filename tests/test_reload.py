"""Several writers of one index folder: a save never replaces a snapshot another writer saved since its copy loaded
or saved (``IndexConflictError``; ``rapidrag.persist.Lineage``), and ``reload`` moves a copy to the folder's newest
snapshot, with the models and settings it was opened with, in one step that searches running beside it see whole.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from shard_helpers import results, same

import rapidrag
from rapidrag import Retriever
from rapidrag.distributed import ShardedRetriever
from rapidrag.documents import Document
from rapidrag.errors import IndexConflictError, IndexFormatError, ModelError

DOCS = [
    Document("vit", "Vitamin D deficiency causes bone loss in older adults."),
    Document("calc", "Calcium and vitamin D supplements slow bone loss."),
    Document("iron", "Iron deficiency causes anemia; iron supplements help."),
]
MORE = [Document("scurvy", "Scurvy comes from a lack of vitamin C."), Document("zinc", "Zinc helps wounds heal.")]


def _ids(index: Any, query: str, **options: Any) -> list[str]:
    return [h.doc_id for h in index.search(query, 10, **options)]


@pytest.mark.parametrize("kind", ["one", "sharded"])
def test_a_save_over_another_writers_snapshot_is_refused(kind: str, tmp_path: Path) -> None:
    """Two copies of one folder: the first to save wins; the other's save is refused with an error naming the
    folder and the way out, and the folder keeps the first's snapshot. ``force`` replaces it; another folder takes
    it; a reload then a save goes through."""
    cls: Any = ShardedRetriever if kind == "sharded" else Retriever
    made = cls(n_shards=2) if kind == "sharded" else cls()
    made.add(DOCS)
    folder = made.save(tmp_path / "ix")
    first, second = cls.load(folder), cls.load(folder)
    assert first.generation == second.generation == made.generation is not None
    first.add([MORE[0]])
    first.save(folder)
    first.add([MORE[1]])
    first.save(folder)  # (its own save before is no conflict)
    second.delete(["iron"])
    with pytest.raises(IndexConflictError, match=r"ix: saved by another writer since .*force=True"):
        second.save(folder)
    kept = cls.load(folder)
    assert len(kept) == 5 and kept.get("iron") is not None and kept.generation == first.generation
    with pytest.raises(IndexConflictError, match="1 change that no save holds, which a reload would drop"):
        second.reload(folder)
    aside = second.save(tmp_path / "aside")  # (a folder it never loaded: no conflict)
    assert len(cls.load(aside)) == 2 and second.unsaved_changes == 0
    assert second.reload(folder) and len(second) == 5 and second.get("iron") is not None
    second.add([Document("x", "a change dropped")])
    assert second.reload(aside, discard=True) and len(second) == 2 and second.unsaved_changes == 0
    assert second.reload(folder) and len(second) == 5
    second.delete(["iron"])
    second.save(folder)
    assert cls.load(folder).get("iron") is None
    with pytest.raises(IndexConflictError):  # first has not seen that save
        first.save(folder)
    first.save(folder, force=True)
    assert cls.load(folder).get("iron") is not None


def test_saves_of_one_copy_from_many_threads_are_not_a_conflict(tmp_path: Path) -> None:
    """A service saving from several requests at once: its saves take turns, each expecting the one before."""
    index = Retriever()
    index.add(DOCS)
    folder = index.save(tmp_path / "ix")
    errors: list[BaseException] = []

    def saving(k: int) -> None:
        try:
            for j in range(5):
                index.add([Document(f"t{k}-{j}", f"thread {k} document {j}")])
                index.save(folder)
        except BaseException as e:  # (reported below)
            errors.append(e)

    threads = [threading.Thread(target=saving, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(Retriever.load(folder)) == len(index) == 23 and index.unsaved_changes == 0


def test_reload_takes_the_newest_snapshot_with_the_models_and_settings_it_was_opened_with(
    minilm_dir: Path, reranker_dir: Path, tmp_path: Path
) -> None:
    embedder = rapidrag.Embedder(minilm_dir, max_length=128)
    reranker = rapidrag.Reranker(reranker_dir)
    made = Retriever(embedder, reranker)
    made.add(DOCS)
    folder = made.save(tmp_path / "ix")
    served = Retriever.load(folder, embedder=embedder, reranker=reranker, index_options={"n_threads": 1})
    assert served.reload() is False  # nothing new
    writer = Retriever.load(folder, embedder=embedder, reranker=None)
    writer.add(MORE)
    writer.delete(["iron"])
    writer.configure(weights=(1.0, 0.5), rerank_weight=0.3)
    writer.save(folder)
    before = served.generation
    assert served.reload() is True and served.generation == writer.generation != before
    assert served.embedder is embedder and served.reranker is reranker  # (not opened again)
    assert served.index_options == {"n_threads": 1}  # what it was opened with, kept
    assert served.weights == (1.0, 0.5) and served.rerank_weight == 0.3  # the snapshot's settings
    assert len(served) == 4 and served.get("iron") is None and served.get("scurvy") is not None
    fresh = Retriever.load(folder, embedder=embedder, reranker=reranker)
    for mode in ("lexical", "dense", "hybrid"):
        for query in ("vitamin C and scurvy", "bone loss", "iron"):
            got, want = served.search(query, 5, mode=mode), fresh.search(query, 5, mode=mode)
            assert [h.doc_id for h in got] == [h.doc_id for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
    served.add([Document("new", "A document added after the reload.")])  # (the chunker came back too)
    assert _ids(served, "document added after the reload", mode="lexical")[0] == "new"
    # Opened without a reranker: it stays without one.
    plain = Retriever.load(folder, embedder=embedder, reranker=None)
    writer.add([Document("more", "One more.")])
    writer.save(folder)
    assert plain.reload() and plain.reranker is None and plain.get("more") is not None


def test_a_snapshot_of_another_embedder_or_a_damaged_one_is_refused_and_the_old_one_served(
    minilm_dir: Path, tmp_path: Path
) -> None:
    fp32 = rapidrag.Embedder(minilm_dir, max_length=128)
    made = Retriever(fp32)
    made.add(DOCS)
    folder = made.save(tmp_path / "ix")
    served = Retriever.load(folder, embedder=fp32, reranker=None)
    want = [(h.doc_id, h.score) for h in served.search("bone loss", 3)]
    other = Retriever(rapidrag.Embedder(minilm_dir, quantized=True, max_length=128))
    other.add(MORE)
    other.save(folder, force=True)  # (rebuilt with the int8 file over it)
    with pytest.raises(ModelError, match="built by another embedder.*open it anew"):
        served.reload()
    assert [(h.doc_id, h.score) for h in served.search("bone loss", 3)] == want and len(served) == 3
    made.add(MORE)
    made.save(folder, force=True)
    damaged = next(p for p in folder.iterdir() if p.name.startswith("gen-")) / "documents.jsonl"
    damaged.write_text(damaged.read_text().replace("Vitamin", "Vitamen"))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        served.reload()
    assert [(h.doc_id, h.score) for h in served.search("bone loss", 3)] == want and len(served) == 3
    with pytest.raises(FileNotFoundError, match="no saved index to reload"):
        served.reload(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="never loaded or saved"):
        Retriever().reload()


def test_searches_beside_reloads_see_one_snapshot_or_the_other(tmp_path: Path) -> None:
    """Snapshots A and B hold other documents (ids a-*, b-*) that one query finds in both: each search during a
    run of reloads back and forth answers from A alone or from B alone, never a mix."""
    a, b = Retriever(), Retriever()
    a.add([Document(f"a-{i}", f"alpha shared term {i} " * (1 + i % 3)) for i in range(200)])
    b.add([Document(f"b-{i}", f"beta shared term {i} " * (1 + i % 2)) for i in range(150)])
    folder = a.save(tmp_path / "ix")
    served = Retriever.load(folder)
    stop = threading.Event()
    seen: set[str] = set()
    problems: list[Any] = []

    def searching() -> None:
        while not stop.is_set():
            try:
                hits = served.search("shared term", 20, mode="lexical")
                kinds = {h.doc_id[0] for h in hits}
                # (a hit's text is read from the table its row came from: "alpha ..." for a-*, "beta ..." for b-*)
                if len(hits) != 20 or len(kinds) != 1 or any(h.text[0] != h.doc_id[0] for h in hits):
                    problems.append([(h.doc_id, h.text[:5]) for h in hits])
                seen.update(kinds)
            except BaseException as e:  # (reported below)
                problems.append(e)

    threads = [threading.Thread(target=searching) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for k in range(12):
            writer = a if k % 2 else b
            writer.save(folder, force=True)
            assert served.reload()
            assert served.get("a-0" if writer is a else "b-0") is not None
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not problems, problems[:3]
    assert seen == {"a", "b"}


def test_reloads_at_once_take_turns_and_end_on_the_newest_snapshot(tmp_path: Path) -> None:
    """A second reload asked for while the first opens a snapshot waits for it (the snapshot is opened once), and
    a snapshot saved in between is the one the copy ends with, never the older one taken after it."""
    writer = Retriever()
    writer.add(DOCS)
    folder = writer.save(tmp_path / "ix")
    served = Retriever.load(folder)
    writer.add(MORE[:1])
    writer.save(folder)  # (the snapshot the first reload opens)
    opened: list[str | None] = []
    answers: list[bool] = []
    reopen = served._reopen

    def second() -> None:
        answers.append(served.reload())

    def slow_reopen(path: Path) -> Any:
        fresh = reopen(path)
        opened.append(fresh.generation)
        if len(opened) == 1:  # the first reload has opened its snapshot: another is saved, a second reload asked
            writer.add(MORE[1:])
            writer.save(folder)
            waiting = threading.Thread(target=second)
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive()  # (it waits for this reload; joined below)
            threads.append(waiting)
        return fresh

    threads: list[threading.Thread] = []
    served._reopen = slow_reopen  # type: ignore[method-assign]
    assert served.reload()
    for t in threads:
        t.join()
    assert answers == [True]  # (the second found a newer snapshot than the first took, and took it)
    assert len(opened) == 2 and opened[0] != opened[1]
    assert served.generation == opened[1] == rapidrag.persist.current_generation(folder)
    assert served.get("zinc") is not None and len(served) == 5
    assert not served.reload()  # (and a reload now finds it held)


def test_a_sharded_copy_reloads_as_it_was_opened(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str], tmp_path: Path
) -> None:
    made = ShardedRetriever(shard_embedder, n_shards=2, title_weight=0.5)
    made.add(shard_corpus[:60])
    folder = made.save(tmp_path / "ix")
    served = ShardedRetriever.load(folder, embedder=shard_embedder, reranker=None)
    made.add(shard_corpus[60:90])
    made.delete([shard_corpus[0]["id"]])
    made.save(folder)
    assert served.reload() and len(served) == 89 and served.embedder is shard_embedder
    fresh = ShardedRetriever.load(folder, embedder=shard_embedder, reranker=None)
    for mode in ("lexical", "hybrid"):
        same(results(served, shard_queries[:6], mode=mode), results(fresh, shard_queries[:6], mode=mode))


def test_rapidrag_index_update_beside_a_loaded_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The case it is for: a copy (a service) holds the index while ``rapidrag index --update`` brings the folder in
    line with its source. The copy's next save is refused, not written over the update; a reload serves it."""
    from rapidrag.cli import main

    source = tmp_path / "docs"
    source.mkdir()
    for name, text in [("a.txt", "Vitamin D and bone loss."), ("b.txt", "Iron and anemia.")]:
        (source / name).write_text(text)
    folder = tmp_path / "ix"
    assert main(["index", str(source), "--out", str(folder), "--lexical"]) == 0
    served = Retriever.load(folder)
    served.add([Document("sent", "A document sent to the service.")])
    (source / "c.txt").write_text("Scurvy and vitamin C.")
    assert main(["index", str(source), "--out", str(folder), "--update"]) == 0
    assert "1 added, 0 changed" in capsys.readouterr().out
    with pytest.raises(IndexConflictError):
        served.save(folder)
    assert len(Retriever.load(folder)) == 3
    served.save(tmp_path / "sent")  # (its change kept elsewhere)
    assert served.reload(folder) and len(served) == 3 and _ids(served, "scurvy")[0].endswith("c.txt")


def test_prompt_switching_during_a_reload_and_restored_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload hands the GIL over every ``PROMPT_SWITCH_S``; the interval before is back once the last of
    overlapping reloads ends, and a process that froze what it loaded has the reloaded snapshot frozen too."""
    import gc
    import sys

    from rapidrag.process import PROMPT_SWITCH_S, prompt_switching

    before = sys.getswitchinterval()
    with prompt_switching():
        assert sys.getswitchinterval() == pytest.approx(PROMPT_SWITCH_S)
        with prompt_switching():  # (another reload at once)
            assert sys.getswitchinterval() == pytest.approx(PROMPT_SWITCH_S)
        assert sys.getswitchinterval() == pytest.approx(PROMPT_SWITCH_S)
    assert sys.getswitchinterval() == before
    index = Retriever()
    index.add(DOCS)
    folder = index.save(tmp_path / "ix")
    writer = Retriever()
    writer.add(MORE)
    writer.save(folder, force=True)
    seen: list[float] = []
    reopen = Retriever._reopen
    monkeypatch.setattr(
        Retriever, "_reopen", lambda self, path: seen.append(sys.getswitchinterval()) or reopen(self, path)
    )
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert index.reload() and seen == [pytest.approx(PROMPT_SWITCH_S)] and sys.getswitchinterval() == before
        assert gc.get_freeze_count() > frozen and index.get("scurvy") is not None
    finally:
        gc.unfreeze()


def test_a_command_whose_folder_was_saved_meanwhile_writes_nothing_over_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rapidrag index --update`` while a service saves the same folder: the service's snapshot stays, and the
    command says to run it again."""
    import rapidrag.update
    from rapidrag.cli import main

    source = tmp_path / "docs"
    source.mkdir()
    (source / "a.txt").write_text("Vitamin D and bone loss.")
    folder = tmp_path / "ix"
    assert main(["index", str(source), "--out", str(folder), "--lexical"]) == 0
    (source / "b.txt").write_text("Iron and anemia.")
    original = rapidrag.update.update

    def update_while_a_service_saves(index: Any, docs: Any, **options: Any) -> Any:
        service = Retriever.load(folder)
        service.add([Document("sent", "Sent to the service meanwhile.")])
        service.save(folder)
        return original(index, docs, **options)

    monkeypatch.setattr(rapidrag.update, "update", update_while_a_service_saves)
    capsys.readouterr()
    assert main(["index", str(source), "--out", str(folder), "--update"]) == 2
    err = capsys.readouterr().err
    assert "saved by another writer" in err and "run rapidrag index --update again" in err, err
    kept = Retriever.load(folder)
    assert kept.get("sent") is not None and len(kept) == 2
    monkeypatch.setattr(rapidrag.update, "update", original)
    assert main(["index", str(source), "--out", str(folder), "--update"]) == 0
    assert len(Retriever.load(folder)) == 3
