"""Retriever.save / Retriever.load: identical results, corrupted files caught, saves that survive a kill."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rapidrag
from rapidrag.errors import IndexFormatError
from rapidrag.persist import read_snapshot, write_snapshot
from rapidrag.retriever import Document, Retriever
from rapidrag.store import FORMAT_VERSION

WORDS = (
    "vitamin bone iron blood heart statin cholesterol tower paris river cell protein gene immune virus "
    "vaccine insulin glucose kidney liver lung brain neuron sleep memory"
).split()
QUERIES = ["vitamin bone", "heart cholesterol statin", "immune virus vaccine", "brain memory sleep", "kidney"]


def make_docs(n: int, start: int = 0) -> list[Document]:
    docs = []
    for i in range(start, start + n):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8 + i % 5)]
        text = f"Document {i}. " + " ".join(words) + "."
        meta = {"year": 2000 + i % 25, "topic": WORDS[i % 6], "when": date(2020, 1 + i % 12, 1), "odd": bool(i % 2)}
        docs.append(Document(f"d{i}", text, meta, title=f"Title {WORDS[i % len(WORDS)]}"))
    return docs


def results(r: Retriever, **kwargs: Any) -> list[list[tuple[Any, ...]]]:
    out = []
    for q in QUERIES:
        hits = r.search(q, k=8, **kwargs)
        out.append([(h.doc_id, h.chunk_id, h.start, h.end, h.text, h.score, h.scores, dict(h.metadata)) for h in hits])
    return out


@pytest.fixture(scope="module")
def embedder(minilm_dir: Path) -> rapidrag.Embedder:
    return rapidrag.Embedder(minilm_dir, quantized=True)


def test_lexical_round_trip(tmp_path: Path) -> None:
    r = Retriever(title_weight=0.5, k1=1.2, b=0.7)
    r.add(make_docs(300))
    r.delete(["d3", "d50"])
    r.upsert([Document("d7", "vitamin vitamin bone replaced", {"year": 1999})])
    r.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix")
    assert len(loaded) == len(r) == 298 and loaded.get("d3") is None
    assert loaded.get("d7") == r.get("d7") and loaded.get("d9") == r.get("d9")
    assert (loaded.bm25.k1, loaded.bm25.b, loaded.title_weight) == (1.2, 0.7, 0.5)
    assert results(loaded, mode="lexical") == results(r, mode="lexical")
    flt = {"$or": [{"when": {"$gte": "2020-06-01"}}, {"odd": True}]}
    assert results(loaded, mode="lexical", filter=flt) == results(r, mode="lexical", filter=flt)
    # A loaded index keeps changing like the original.
    for x in (r, loaded):
        x.add([Document("new", "zebra vitamin")])
        x.delete(["d10"])
    assert results(loaded, mode="lexical") == results(r, mode="lexical")


def test_unsaved_changes_count_what_the_last_save_does_not_hold(tmp_path: Path) -> None:
    """``unsaved_changes``: 0 for a new or loaded index and after a save; each write that changed the index (a
    batch added or replaced, a delete that removed something, a change of settings) counts; a refused write, a
    delete of unknown ids and a search do not. The same for an index split in shards."""
    from rapidrag.distributed import ShardedRetriever

    for r in (Retriever(), ShardedRetriever(None, n_shards=2)):
        assert r.unsaved_changes == 0
        r.add(make_docs(10))
        assert r.unsaved_changes == 1
        with pytest.raises(ValueError, match="already indexed"):
            r.add([Document("d1", "again")])
        r.delete(["no such id"])
        r.search("vitamin", mode="lexical")
        assert r.unsaved_changes == 1
        r.save(tmp_path / type(r).__name__)
        assert r.unsaved_changes == 0
        r.upsert([Document("d2", "replaced")])
        r.delete(["d3"])
        r.configure(k1=1.5)
        assert r.unsaved_changes == 3
        assert type(r).load(tmp_path / type(r).__name__).unsaved_changes == 0
        r.save(tmp_path / type(r).__name__)
        assert r.unsaved_changes == 0


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_dense_round_trip(tmp_path: Path, embedder: rapidrag.Embedder, kind: str) -> None:
    r = Retriever(embedder, index=kind)  # type: ignore[arg-type]
    r.add(make_docs(700))
    r.delete(["d1", "d2", "d400"])
    r.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix", embedder=embedder)
    for mode in ("lexical", "dense", "hybrid"):
        assert results(loaded, mode=mode) == results(r, mode=mode), mode
    flt = {"year": {"$lt": 2003}}  # about 12%: the exact-search path
    assert results(loaded, mode="hybrid", filter=flt) == results(r, mode="hybrid", filter=flt)
    r.compact()  # HNSW: drops the tombstones; results stay the same
    assert r.dense.dead == 0 and results(r, mode="dense") == results(loaded, mode="dense")
    # Saving again over the old snapshot replaces it and leaves one generation.
    r.delete(["d5"])
    r.save(tmp_path / "ix")
    assert len(Retriever.load(tmp_path / "ix", embedder=embedder)) == len(r)
    assert len([p for p in (tmp_path / "ix").iterdir() if p.name.startswith("gen-")]) == 1


def test_searches_and_writes_go_on_while_hnsw_is_compacted(
    embedder: rapidrag.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retriever.compact holds no lock of the retriever while the graph is rebuilt: a search and an upsert from
    # another thread finish meanwhile, and the index answers afterwards as it did before, the upsert included.
    import threading

    from rapidrag.dense import DenseIndex

    r = Retriever(embedder, index="hnsw")
    r.add(make_docs(300))
    r.delete([f"d{i}" for i in range(0, 300, 3)])
    before = results(r, mode="hybrid")
    build, done = DenseIndex._build, []

    def build_while_others_work(self: DenseIndex, rows: np.ndarray, vectors: np.ndarray) -> object:
        def work() -> None:
            done.append(results(r, mode="hybrid"))
            r.upsert(make_docs(1, start=400))
            done.append(results(r, mode="dense"))

        other = threading.Thread(target=work)
        other.start()
        other.join(timeout=120)
        assert not other.is_alive(), "a search or a write waited for the graph's rebuild"
        return build(self, rows, vectors)

    monkeypatch.setattr(DenseIndex, "_build", build_while_others_work)
    r.compact()
    assert len(done) == 2 and done[0] == before
    assert r.dense.dead == 0 and r.get("d400") is not None and results(r, mode="dense") == done[1]


def test_models_are_remembered(tmp_path: Path, embedder: rapidrag.Embedder, reranker_dir: Path) -> None:
    reranker = rapidrag.Reranker(reranker_dir, quantized=True, max_length=128)
    r = Retriever(embedder, reranker, rerank_weight=0.5, fusion="weighted", weights=(0.4, 0.6))
    r.add(make_docs(50))
    r.save(tmp_path / "ix")
    auto = Retriever.load(tmp_path / "ix")  # opens the recorded model files
    assert auto.embedder.model_path == embedder.model_path and auto.embedder.max_length == embedder.max_length
    assert auto.reranker.model_path == reranker.model_path and auto.reranker.max_length == 128
    assert (auto.fusion, auto.weights, auto.rerank_weight) == ("weighted", (0.4, 0.6), 0.5)
    assert auto.chunker.max_tokens == r.chunker.max_tokens
    assert [h.doc_id for h in auto.search("vitamin bone")] == [h.doc_id for h in r.search("vitamin bone")]
    assert Retriever.load(tmp_path / "ix", embedder=embedder, reranker=None).reranker is None
    lexical = Retriever.load(tmp_path / "ix", embedder=None)  # without models: lexical searches only
    assert lexical.default_mode == "lexical" and lexical.search("vitamin bone", mode="lexical")
    with pytest.raises(ValueError, match="embedder="):
        lexical.search("vitamin bone", mode="hybrid")
    with pytest.raises(ValueError, match="embedder="):
        lexical.add([{"id": "new", "text": "more text"}])
    other = rapidrag.Embedder(embedder.folder, quantized=False)  # same dimension, other weights
    with pytest.warns(UserWarning, match="not the model file"):
        Retriever.load(tmp_path / "ix", embedder=other, reranker=None)


def test_metadata_values_survive(tmp_path: Path) -> None:
    meta = {
        "when": datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc),
        "day": date(2023, 1, 2),
        "tags": ["a", "b"],
        "nested": {"x": 1.5},
        "none": None,
        "inf": float("inf"),
        "text": "ünïcødé \u2028 line",
    }
    r = Retriever()
    r.add([Document("a", "alpha", meta), Document("b", "beta \ud7ff", {"when": "2020-01-01"})])
    r.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix")
    assert loaded.get("a") == r.get("a") and loaded.get("b") == r.get("b")
    hits = loaded.search("alpha beta", mode="lexical", filter={"when": {"$gt": "2021-01-01"}})
    assert [h.doc_id for h in hits] == ["a"]
    with pytest.raises(TypeError, match="'c'.*'bad'"):  # refused when added, nothing stored
        r.add([Document("c", "gamma", {"bad": object()})])
    assert len(r) == 2
    # A metadata dict changed by its owner after the add is refused when saved, and the saved index is kept.
    dict.__setitem__(r.get("a").metadata, "bad", object())  # type: ignore[index]
    with pytest.raises(TypeError, match="'a'.*'bad'"):
        r.save(tmp_path / "ix")
    assert Retriever.load(tmp_path / "ix").get("a") == loaded.get("a")  # the failed save changed nothing


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    r = Retriever(title_weight=0.3)
    r.add(make_docs(120))
    root = r.save(tmp_path / "ix")
    (gen,) = [p for p in root.iterdir() if p.name.startswith("gen-")]
    return root, gen


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_files_are_named(tmp_path: Path, damage: str) -> None:
    root, gen = _saved(tmp_path)
    for file in sorted(gen.iterdir()):
        data = file.read_bytes()
        if damage == "truncate":
            file.write_bytes(data[: len(data) // 2])
        elif damage == "flip":
            middle = len(data) // 2
            file.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])
        else:
            file.unlink()
        with pytest.raises(IndexFormatError, match=file.name):
            Retriever.load(root)
        file.write_bytes(data)
    assert len(Retriever.load(root)) == 120


def test_damaged_manifest_and_wrong_folders(tmp_path: Path) -> None:
    root, _ = _saved(tmp_path)
    manifest = root / "MANIFEST.json"
    good = manifest.read_bytes()
    manifest.write_bytes(good.replace(b'"k1": 0.9', b'"k1": 9.0'))
    with pytest.raises(IndexFormatError, match="manifest is corrupted"):
        Retriever.load(root)
    manifest.write_bytes(good[:-20])
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        Retriever.load(root)
    body = json.loads(good)
    body["version"] = 99
    manifest.write_text(json.dumps(body))
    with pytest.raises(IndexFormatError, match="checksum|version"):
        Retriever.load(root)
    manifest.unlink()
    with pytest.raises(IndexFormatError, match="MANIFEST"):
        Retriever.load(root)
    with pytest.raises(FileNotFoundError, match="no such index"):
        Retriever.load(tmp_path / "nothing")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="other files"):
        Retriever().save(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


_SAVER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_persist import make_docs
    import rapidrag
    from rapidrag.retriever import Retriever

    root, stop_at = sys.argv[1], sys.argv[2]
    r = Retriever(rapidrag.Embedder({model!r}, quantized=True), index="hnsw", title_weight=0.5)
    r.add(make_docs(200))
    r.save(root)
    print("saved", flush=True)
    r.add(make_docs(100, start=200))
    r.delete(["d0", "d1"])

    def hook(name):
        if name == stop_at:
            print("stopped", name, flush=True)
            time.sleep(600)

    r._save(root, after_file=hook)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("stop_at", ["documents.jsonl", "bm25.npz", "dense.npz", "MANIFEST.json"])
def test_a_killed_save_leaves_the_previous_index(tmp_path: Path, minilm_dir: Path, stop_at: str) -> None:
    """A process killed (SIGKILL) in the middle of a save: the previous index loads, whole and unchanged."""
    script = tmp_path / "saver.py"
    script.write_text(_SAVER.format(tests=str(Path(__file__).parent), model=str(minilm_dir)))
    root = tmp_path / "ix"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), stop_at], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saved"
        before = Retriever.load(root)
        expected = results(before, mode="hybrid")
        assert proc.stdout.readline().strip() == f"stopped {stop_at}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    after = Retriever.load(root)
    assert len(after) == 200 and after.get("d0") is not None and after.get("d250") is None
    assert results(after, mode="hybrid") == expected
    # The next save succeeds and clears what the killed one left behind.
    after.add(make_docs(5, start=900))
    after.save(root)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("gen-")) == [".lock", "MANIFEST.json"]
    assert len([p for p in root.iterdir() if p.name.startswith("gen-")]) == 1
    assert len(Retriever.load(root)) == 205


def test_moved_models_are_found_by_name(
    tmp_path: Path, minilm_dir: Path, reranker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index finds its models again under RAPIDRAG_MODELS after the models folder moved, checked by
    fingerprint; without them it loads for lexical searches, and a save keeps the models recorded."""
    import shutil
    import warnings

    models = tmp_path / "models"
    for src in (minilm_dir, reranker_dir):
        (models / src.name).mkdir(parents=True)
        for name in ("model_int8.onnx", "vocab.txt", "tokenizer.json", "config.json", "tokenizer_config.json"):
            if (src / name).exists():
                shutil.copy(src / name, models / src.name / name)
    embedder = rapidrag.Embedder(models / minilm_dir.name, quantized=True)
    reranker = rapidrag.Reranker(models / reranker_dir.name, quantized=True, max_length=128)
    r = Retriever(embedder, reranker)
    r.add(make_docs(30))
    r.save(tmp_path / "ix")
    expected = [h.doc_id for h in r.search("vitamin bone", rerank=False)]
    moved = tmp_path / "moved"
    models.rename(moved)
    monkeypatch.delenv("RAPIDRAG_MODELS", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lexical = Retriever.load(tmp_path / "ix")
    said = " | ".join(str(w.message) for w in caught)
    assert "the embedder that built this index (all-MiniLM-L6-v2/model_int8.onnx) is not at" in said
    assert "the reranker that built this index (minilm-l6-reranker/model_int8.onnx)" in said and "--reranker" in said
    assert lexical.embedder is None and lexical.reranker is None and lexical.default_mode == "lexical"
    assert [h.doc_id for h in lexical.search("vitamin bone", mode="lexical")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lexical.save(tmp_path / "ix")  # a save without the models keeps them recorded
    monkeypatch.setenv("RAPIDRAG_MODELS", str(moved))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = Retriever.load(tmp_path / "ix")
    assert Path(found.embedder.model_path).parent == moved / minilm_dir.name
    assert found.reranker is not None and found.reranker.max_length == 128
    assert [h.doc_id for h in found.search("vitamin bone", rerank=False)] == expected
    # Given by path, a model folder opens the recorded file name in it.
    given = Retriever.load(tmp_path / "ix", embedder=moved / minilm_dir.name, reranker=None)
    assert given.embedder.model_path.name == "model_int8.onnx"
    # Another model under the same name is refused by its fingerprint.
    (moved / minilm_dir.name / "model_int8.onnx").write_bytes((minilm_dir / "model.onnx").read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Retriever.load(tmp_path / "ix").embedder is None
    assert any("fingerprint differs" in str(w.message) for w in caught)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_index_of_an_older_format_still_loads(minilm_dir: Path, tmp_path: Path, version: int) -> None:
    """``tests/data/index-v1`` was written by rapidrag at commit 1054f86 (format 1, whose BM25 keyed its rows by
    strings), ``tests/data/index-v2`` at 72f9a1d (format 2, whose dense index saved its vectors by row beside
    FAISS's file), ``tests/data/index-v3`` at f06c604 (format 3, whose metadata index was rebuilt at load from the
    documents): the first six documents of ``index-v1-source.jsonl`` added with ``Retriever(Embedder(minilm),
    None, Chunker(tokenizer, max_tokens=16, overlap=4), title_weight=0.5)``, d4 deleted, d3 upserted with its
    seventh line, saved. Each loads, and every mode (with and without a filter) searches as an index built now from
    the same steps does; a save writes the current format, which loads again."""
    import shutil

    embedder = rapidrag.Embedder(minilm_dir)
    fixture = tmp_path / f"index-v{version}"
    shutil.copytree(Path(__file__).parent / "data" / f"index-v{version}", fixture)
    old = Retriever.load(fixture, embedder=embedder, reranker=None)
    fresh = Retriever(embedder, None, rapidrag.Chunker(embedder.tokenizer, max_tokens=16, overlap=4), title_weight=0.5)
    source = [
        json.loads(line) for line in (Path(__file__).parent / "data" / "index-v1-source.jsonl").read_text().splitlines()
    ]
    fresh.add(source[:6])
    fresh.delete(["d4"])
    fresh.upsert(source[6:])
    assert len(old) == len(fresh) == 5 and old.n_chunks == fresh.n_chunks == 12 and old.get("d4") is None
    assert old.get("d3") == fresh.get("d3") and old.get("d1") == fresh.get("d1")
    queries = ["vitamin and bone", "tower in paris", "caffeine awake", "blood glucose"]
    found = 0
    for mode in ("lexical", "dense", "hybrid"):
        for where in (None, {"year": {"$gte": 2015}}, {"tags": {"$in": ["bone", "diabetes"]}}):
            for q in queries:
                got = [
                    (h.doc_id, h.chunk_id, h.start, h.end, h.text) for h in old.search(q, k=4, mode=mode, filter=where)
                ]
                want = [
                    (h.doc_id, h.chunk_id, h.start, h.end, h.text)
                    for h in fresh.search(q, k=4, mode=mode, filter=where)
                ]
                assert got == want, (mode, where, q)
                found += len(got)
                scores = [h.score for h in old.search(q, k=4, mode=mode, filter=where)]
                assert scores == pytest.approx(
                    [h.score for h in fresh.search(q, k=4, mode=mode, filter=where)], abs=1e-5
                )
    assert found >= 60  # of 144 at most
    old.save(tmp_path / "resaved")
    again = Retriever.load(tmp_path / "resaved", embedder=embedder, reranker=None)
    assert [h.doc_id for h in again.search("blood glucose", k=4)] == [
        h.doc_id for h in old.search("blood glucose", k=4)
    ]
    assert "metadata.npz" in read_snapshot(tmp_path / "resaved", version=FORMAT_VERSION).files
    for where in ({"year": {"$gte": 2015}}, {"tags": "bone"}, {"year": {"$ne": 2019}}):  # its metadata columns
        for q in queries:
            assert [h.doc_id for h in again.search(q, k=4, mode="lexical", filter=where)] == [
                h.doc_id for h in fresh.search(q, k=4, mode="lexical", filter=where)
            ], (where, q)
    again.add([{"_id": "d7", "text": "Glucose and insulin again, added after the load.", "title": "More"}])
    assert again.search("insulin glucose", k=5, mode="lexical")[0].doc_id in {"d5", "d7"}


def test_saved_parts_that_disagree_are_refused_by_name(tmp_path: Path) -> None:
    # Files whose checksums hold (rewritten through write_snapshot) but whose contents do not fit: ids that are
    # not the documents', a document line without its title (found when the document is first read: lines are
    # parsed as they are read), a metadata index of another row count, a string code past its table.
    r = Retriever()
    r.add([Document("a", "alpha words", {"lang": "en", "tags": ["x"]}), Document("b", "beta words", {"lang": "fr"})])
    r.save(tmp_path / "ix")
    snap = read_snapshot(tmp_path / "ix", version=FORMAT_VERSION)
    files = {n: snap.read(n) for n in snap.files}

    def load_with(name: str, data: bytes, **more: bytes) -> Retriever:
        changed = {**files, name: data, **{n.replace("_", "."): d for n, d in more.items()}}
        write_snapshot(tmp_path / "bad", changed, snap.config, version=FORMAT_VERSION)
        return Retriever.load(tmp_path / "bad")

    with pytest.raises(IndexFormatError, match="inconsistent.*document line 1 is not the document 'b'"):
        load_with("ids.json", b'["b", "a"]')
    with pytest.raises(IndexFormatError, match="inconsistent.*ids.json does not list the 2 documents"):
        load_with("ids.json", b'["a"]')
    lines = files["documents.jsonl"].decode().splitlines()
    with pytest.raises(IndexFormatError, match="inconsistent.*a document id is saved twice"):
        load_with("ids.json", b'["a", "a"]', documents_jsonl=(lines[0] + "\n" + lines[0] + "\n").encode())
    first = json.loads(lines[0])
    del first["title"]
    bad = load_with("documents.jsonl", "\n".join([json.dumps(first), lines[1]]).encode() + b"\n")
    assert bad.get("b") == r.get("b")
    with pytest.raises(IndexFormatError, match=r"saved document 0: not a document line \(fields \['id', 'metadata'"):
        bad.get("a")
    info = json.loads(files["metadata.json"])
    with pytest.raises(IndexFormatError, match="the metadata index holds 3 rows where the table has 2"):
        load_with("metadata.json", json.dumps({**info, "n": 3}).encode())
    with np.load(io.BytesIO(files["metadata.npz"])) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["0.codes"] = np.array([0, 7], dtype=np.int32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(IndexFormatError, match="a string code outside its table"):
        load_with("metadata.npz", buffer.getvalue())
    assert Retriever.load(tmp_path / "ix").search("alpha", mode="lexical", filter={"tags": "x"})[0].doc_id == "a"


def test_loaded_documents_are_parsed_when_read_and_saved_as_they_were(tmp_path: Path) -> None:
    # A load parses no document; a search parses those it returns; a save writes the lines it still holds as they
    # are and encodes the parsed ones again, to the same bytes; a parsed document changed by its owner is refused.
    r = Retriever()
    docs = make_docs(60)
    docs[3] = Document(docs[3].id, docs[3].text, {"when": date(2024, 5, 1), "inf": float("inf")}, "A title")
    docs[5] = Document(docs[5].id, docs[5].text + " Café au lait, 東京", {"place": "Zürich"})  # parsed at load
    r.add(docs)
    r.delete([docs[10].id])
    saved = r.save(tmp_path / "ix")
    loaded = Retriever.load(saved)
    held = loaded._documents.held
    assert len(held) == 59 and [n for n, item in enumerate(held) if type(item) is not str] == [5]
    assert held[5] == r.get(docs[5].id)
    hits = loaded.search(docs[7].text[:60], k=3, mode="lexical")
    parsed = {number for number, item in enumerate(held) if isinstance(item, Document)}
    assert {loaded._docs[h.doc_id] for h in hits} | {5} == parsed and hits[0].doc_id == docs[7].id
    assert loaded.get(docs[3].id) == r.get(docs[3].id) and loaded.get(docs[3].id).metadata["when"] == date(2024, 5, 1)

    def data(root: Path, name: str) -> bytes:
        return read_snapshot(root, version=FORMAT_VERSION).read(name)

    for name in ("some parsed", "all parsed"):
        again = loaded.save(tmp_path / name)
        for file in ("documents.jsonl", "ids.json", "metadata.json", "metadata.npz", "rows.npz"):
            assert data(again, file) == data(saved, file), (name, file)
        assert [loaded.get(d.id) for d in docs] == [r.get(d.id) for d in docs]
    assert all(isinstance(item, Document) for item in held)
    dict.__setitem__(loaded.get(docs[3].id).metadata, "bad", object())  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=f"{docs[3].id!r}.*'bad'"):
        loaded.save(tmp_path / "all parsed")
    assert Retriever.load(tmp_path / "all parsed").get(docs[3].id) == r.get(docs[3].id)


def test_index_options_are_saved_with_the_index(tmp_path: Path, embedder: rapidrag.Embedder) -> None:
    r = Retriever(embedder, index="hnsw", index_options={"ef_search": 256, "hnsw_m": 16, "exact_rows": 0})
    r.add(make_docs(60))
    r.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix", embedder=embedder)
    assert loaded.dense is not None and (loaded.dense.ef_search, loaded.dense.hnsw_m, loaded.dense.exact_rows) == (
        256,
        16,
        0,
    )
    assert results(loaded, mode="dense") == results(r, mode="dense")
    with pytest.raises(ValueError, match="index_options set the dense index: a retriever without an embedder"):
        Retriever(index_options={"ef_search": 64})
    with pytest.raises(ValueError, match="unknown index option 'efsearch'"):
        Retriever(embedder, index="hnsw", index_options={"efsearch": 64})
    # A loaded index takes other search settings (the saved file unchanged); not those that fix how it was built.
    wider = Retriever.load(tmp_path / "ix", embedder=embedder, index_options={"ef_search": 32, "exact_rows": 5})
    assert (wider.index_options["ef_search"], wider.index_options["exact_rows"]) == (32, 5)
    assert Retriever.load(tmp_path / "ix", embedder=embedder).index_options["ef_search"] == 256
    assert results(wider, mode="dense") == results(r, mode="dense")  # (60 documents: found at either width)
    with pytest.raises(rapidrag.errors.IndexOptionError, match="index option hnsw_m fixes how the index is built"):
        Retriever.load(tmp_path / "ix", embedder=embedder, index_options={"hnsw_m": 8})
    lexical = Retriever()
    lexical.add(make_docs(5))
    lexical.save(tmp_path / "lexical")
    with pytest.raises(rapidrag.errors.IndexOptionError, match="lexical only"):
        Retriever.load(tmp_path / "lexical", index_options={"ef_search": 32})


def test_an_hnsw_retriever_compacts_by_itself_with_compact_fraction(
    tmp_path: Path, embedder: rapidrag.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``index_options={"compact_fraction": f}``: the deletes that leave that share of the graph removed start its
    compaction in the background (``DenseIndex.compacting``); searches answer as without it; the setting is saved,
    and a loaded index can be given it."""
    import rapidrag.dense

    monkeypatch.setattr(rapidrag.dense, "COMPACT_MIN_ROWS", 10)
    docs = make_docs(60)
    auto = Retriever(embedder, index="hnsw", index_options={"compact_fraction": 0.25})
    manual = Retriever(embedder, index="hnsw")
    for r in (auto, manual):
        r.add(docs)
        r.delete([d.id for d in docs[:10]])  # 10 of 60 rows: not due
    assert auto.removed_vectors == 10 and auto.dense is not None and auto.dense._background is None
    for r in (auto, manual):
        r.delete([d.id for d in docs[10:20]])  # due at the 15th of 60 (deleted one document at a time)
    assert auto.dense._background is not None
    auto.dense._background.join(timeout=120)
    # (the 5 deleted after it started: dropped by it, or removed rows of the new graph, below the share again)
    assert auto.removed_vectors <= 5 and manual.removed_vectors == 20
    assert results(auto, mode="dense") == results(manual, mode="dense")
    auto.save(tmp_path / "auto")
    assert Retriever.load(tmp_path / "auto", embedder=embedder).index_options["compact_fraction"] == 0.25
    manual.save(tmp_path / "manual")
    opened = Retriever.load(tmp_path / "manual", embedder=embedder, index_options={"compact_fraction": 0.3})
    assert opened.dense is not None and opened.dense._background is not None  # 20 of 60 is due at once
    opened.dense._background.join(timeout=120)
    assert opened.removed_vectors == 0
