"""rapidrag.Retriever: documents in, hits with spans and stage scores out; filters inside the search; changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shard_helpers import results, same

import rapidrag
from rapidrag.errors import IndexFormatError
from rapidrag.filters import FilterError
from rapidrag.retriever import FORMAT_VERSION, Document, Retriever, evaluate

DOCS = [
    {
        "id": "vit",
        "text": "Vitamin D deficiency causes bone loss in older adults.",
        "metadata": {"year": 2019, "topic": "bone"},
    },
    {
        "id": "iron",
        "text": "Iron deficiency causes anemia; supplements help.",
        "metadata": {"year": 2021, "topic": "blood"},
    },
    {"_id": "paris", "title": "Paris", "text": "The Eiffel tower stands in Paris.", "year": 2020},
    Document("heart", "Statins lower cholesterol and the risk of heart attack.", {"year": 2024, "topic": "heart"}),
]


@pytest.fixture(scope="module")
def embedder(minilm_dir: Path) -> rapidrag.Embedder:
    return rapidrag.Embedder(minilm_dir, quantized=True)


@pytest.fixture(scope="module")
def retriever(embedder: rapidrag.Embedder) -> Retriever:
    r = Retriever(embedder=embedder)
    r.add(DOCS)
    return r


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid"])
def test_modes_find_the_relevant_document(retriever: Retriever, mode: str) -> None:
    result = retriever.search("vitamin d and bone loss", k=3, mode=mode)  # type: ignore[arg-type]
    top = result[0]
    assert top.doc_id == "vit" and top.text == retriever.get("vit").text[top.start : top.end]  # type: ignore[union-attr]
    assert top.metadata["year"] == 2019
    expected = {"lexical": {"bm25"}, "dense": {"dense"}, "hybrid": {"bm25", "dense", "fused"}}[mode]
    assert expected <= set(top.scores)
    assert result.timings["total_ms"] > 0 and all(v >= 0 for v in result.timings.values())


def test_filters_apply_inside_the_search(retriever: Retriever) -> None:
    hits = retriever.search("deficiency", k=5, filter={"year": {"$gte": 2021}})
    assert {h.doc_id for h in hits} <= {"iron", "heart"} and hits[0].doc_id == "iron"
    assert all(
        h.metadata.get("topic") == "bone" for h in retriever.search("paris tower", k=5, filter={"topic": "bone"})
    )
    with pytest.raises(FilterError, match=r"\$bogus"):
        retriever.search("x", filter={"year": {"$bogus": 1}})


def test_beir_title_and_metadata(retriever: Retriever) -> None:
    doc = retriever.get("paris")
    assert doc is not None and doc.text.startswith("Paris ") and doc.metadata == {"year": 2020}


def test_delete_and_upsert(embedder: rapidrag.Embedder) -> None:
    r = Retriever(embedder=embedder)
    r.add(DOCS)
    assert len(r) == 4
    assert r.delete(["vit", "nope"]) == 1 and len(r) == 3
    for mode in ("lexical", "dense", "hybrid"):
        assert "vit" not in {h.doc_id for h in r.search("vitamin d bone", k=5, mode=mode)}  # type: ignore[arg-type]
    r.upsert([{"id": "iron", "text": "Bone density rises with vitamin D.", "metadata": {"year": 2025}}])
    hits = r.search("vitamin d bone", k=1)
    assert hits[0].doc_id == "iron" and hits[0].metadata["year"] == 2025
    with pytest.raises(ValueError, match="already indexed"):
        r.add([{"id": "iron", "text": "again"}])
    with pytest.raises(ValueError, match="needs an 'id'"):
        r.add([{"text": "no id"}])


def test_a_document_with_no_text_is_kept_but_never_a_hit(embedder: rapidrag.Embedder, tmp_path: Path) -> None:
    """An empty or blank document gets no vector (the embedding of nothing came up in dense searches as a hit with
    no text, ahead of real ones for a vague query): ``get`` returns it, no mode finds it, before and after a save,
    and its chunk has no stored vector (NaN); given text by an upsert it is found, and blank again it is not."""
    r = Retriever(embedder=embedder)
    r.add([*DOCS, {"id": "empty", "text": ""}, {"id": "blank", "text": " \n\t "}])
    blank = {"empty", "blank"}

    def found(retriever: Retriever, query: str = "what is it") -> set[str]:
        modes = ("dense", "hybrid", "lexical")
        return {h.doc_id for mode in modes for h in retriever.search(query, k=10, mode=mode)}  # type: ignore[arg-type]

    assert not found(r) & blank and "vit" in found(r, "vitamin")
    assert r.get("empty") == Document("empty", "", {}) and r.get("blank") is not None
    assert np.isnan(r.chunk_vectors([("empty", 0), ("blank", 0)])).all()  # type: ignore[arg-type]
    assert not np.isnan(r.chunk_vectors([("vit", 0)])).any()  # type: ignore[arg-type]
    r.save(tmp_path / "ix")
    loaded = Retriever.load(tmp_path / "ix", embedder=embedder)
    assert not found(loaded) & blank and loaded.get("blank") is not None
    loaded.upsert([{"id": "empty", "text": "What is it? A riddle about riddles."}])
    assert "empty" in found(loaded)
    loaded.upsert([{"id": "empty", "text": "   "}])
    assert "empty" not in found(loaded) and len(loaded) == len(DOCS) + 2
    # A load still refuses a dense index holding a vector of a row the chunk table does not have (deleted).
    from rapidrag.persist import read_snapshot, write_snapshot

    r.delete(["vit"])
    r.save(tmp_path / "deleted")
    full, deleted = (read_snapshot(tmp_path / name, version=FORMAT_VERSION) for name in ("ix", "deleted"))
    files = {**{n: deleted.read(n) for n in deleted.files}, "dense.npz": full.read("dense.npz")}
    write_snapshot(tmp_path / "bad", files, deleted.config, version=FORMAT_VERSION)
    with pytest.raises(IndexFormatError, match="inconsistent.*dense index holds vectors of rows"):
        Retriever.load(tmp_path / "bad", embedder=embedder)


def test_lexical_only_and_bad_input() -> None:
    r = Retriever()
    r.add([{"id": "a", "text": "alpha beta"}, {"id": "b", "text": ""}])
    assert [h.doc_id for h in r.search("alpha", mode="lexical")] == ["a"]
    with pytest.raises(ValueError, match="needs an embedder"):
        r.search("alpha", mode="hybrid")
    with pytest.raises(TypeError, match="query"):
        r.search(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        r.search("alpha", k=0, mode="lexical")


def test_reranker_stage(embedder: rapidrag.Embedder, reranker_dir: Path) -> None:
    r = Retriever(embedder=embedder, reranker=rapidrag.Reranker(reranker_dir, quantized=True))
    r.add(DOCS)
    hits = r.search("vitamin d deficiency and bone loss", k=2)
    assert hits[0].doc_id == "vit" and "rerank" in hits[0].scores and "rerank_ms" in hits.timings
    assert "rerank" not in r.search("vitamin", k=2, rerank=False)[0].scores


def test_evaluate_on_a_tiny_judged_set(retriever: Retriever) -> None:
    metrics = evaluate(retriever, {"q": "vitamin d bone"}, {"q": {"vit": 1}}, mode="lexical")
    assert metrics == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    half = evaluate(retriever, {"q": "eiffel tower"}, {"q": {"vit": 1, "paris": 1}}, mode="lexical")
    assert np.isclose(half["recall@100"], 0.5) and half["mrr@10"] == 1.0  # BM25 returns only matching documents


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning")  # raised inside ranx's own kernels
def test_evaluate_agrees_with_ranx(scifact_dir: Path) -> None:
    """BM25 on SciFact test: our nDCG@10, recall@100 and MRR@10 against ranx on the same runs."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    from rapidrag.beir import load_corpus, load_qrels, load_queries

    r = Retriever()
    r.add(load_corpus(scifact_dir))
    queries = load_queries(scifact_dir)
    qrels = load_qrels(scifact_dir / "qrels/test.tsv")
    ours = evaluate(r, queries, qrels, mode="lexical")
    run = {}
    for qid in qrels:
        hits = r.search(queries[qid], k=100, candidates=100, mode="lexical")
        # Scores strictly decreasing by rank, so that ranx's tie order cannot differ from ours.
        run[qid] = {h.doc_id: float(100 - i) for i, h in enumerate(hits)} or {"__none__": 0.0}
    ref = ranx_evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100", "mrr@10"])
    for metric in ("ndcg@10", "recall@100", "mrr@10"):
        assert ours[metric] == pytest.approx(ref[metric], abs=1e-6), metric
    assert ours["ndcg@10"] >= 0.67  # the floor for lexical search (BM25, whole documents, no chunking)


def test_chunks_follow_the_embedder_window(embedder: rapidrag.Embedder) -> None:
    assert Retriever(embedder=embedder).chunker.max_tokens == embedder.max_length - 2
    with pytest.warns(UserWarning, match="longer than the embedder's window"):
        Retriever(embedder=embedder, chunker=rapidrag.Chunker(embedder.tokenizer, max_tokens=embedder.max_length))
    long_text = " ".join(f"word{i} is here." for i in range(400))
    r = Retriever(embedder=embedder)
    assert r.add([{"id": "long", "text": long_text}]) > 1
    for h in r.search("word17 is here", k=5, per_document=False):
        assert h.text == long_text[h.start : h.end]
        assert embedder.tokenizer.count_tokens([h.text])[0] <= embedder.max_length - 2


def test_first_of_each_keeps_the_first_row_of_each_document_in_order() -> None:
    """Both ways of finding each document's first row (a dict for a search's few dozen rows, np.unique above 64)
    against the plain loop."""
    from rapidrag.chunks import first_of_each

    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 40, 64, 65, 300):
        for distinct in (1, 3, max(1, n // 2), max(1, 2 * n)):
            keys = rng.integers(0, distinct, n).astype(np.int64)
            seen: set[int] = set()
            expected = [i for i, key in enumerate(keys.tolist()) if not (key in seen or seen.add(key))]
            got = first_of_each(keys)
            assert got.dtype == np.int64 and got.tolist() == expected, (n, distinct)


def test_a_search_keeps_the_best_chunk_of_each_of_the_k_best_documents(embedder: rapidrag.Embedder) -> None:
    """The hits of a search without a reranker are the best chunk of each of the k best documents, as taking them
    from all rows gives, though one document fills 60 rows: lexical (BM25 keeps each document's best row as it
    selects) and dense (4k rows fetched, and more when they hold fewer than k documents); with filters and deletes
    too."""
    chunker = rapidrag.Chunker(embedder.tokenizer, max_tokens=8)
    r = Retriever(embedder, chunker=chunker)
    heavy = [{"id": f"heavy{i}", "text": " ".join(["bone marrow bone."] * 60), "year": i} for i in range(3)]
    light = [
        {"id": f"light{i}", "text": f"bone density {i} and other words of a long sentence.", "year": i}
        for i in range(40)
    ]
    r.add(heavy + light)
    r.delete(["light3"])
    assert r.n_chunks > 100
    assert not r._chunks.one_per_document
    for mode in ("lexical", "dense"):
        for where in (None, {"year": {"$gte": 1}}):
            everything = r.search("bone", k=10_000, mode=mode, per_document=False, filter=where, candidates=10_000)
            best: list[tuple[str, float]] = []
            for h in everything:
                if h.doc_id not in {d for d, _ in best}:
                    best.append((h.doc_id, round(h.score, 5)))
            for k in (1, 3, 5, 10, 30):
                hits = r.search("bone", k=k, mode=mode, filter=where)
                # (a heavy document's rows tie: the dense scan may return another of them first)
                assert [(h.doc_id, round(h.score, 5)) for h in hits] == best[:k], (mode, k, where)
                if mode == "lexical":  # BM25's ties stay in row order: the chunk too
                    first_chunk = {h.doc_id: h.chunk_id for h in reversed(everything)}
                    assert [h.chunk_id for h in hits] == [first_chunk[h.doc_id] for h in hits]
        assert len(r.search("bone", k=50, mode=mode)) == 42  # every live document, each heavy one of 60 rows


def test_an_index_of_one_row_per_document_searches_as_one_that_does_not_know_it(
    embedder: rapidrag.Embedder, tmp_path: Path
) -> None:
    """Without a chunker each document is one row: the chunk table says so, and a search then fetches k rows
    instead of 4k and skips the best-row-per-document step; the hits are those of a search that assumes nothing.
    A document of several chunks turns the flag off, and a saved index whose such documents were deleted loads
    with it on again."""
    docs = [{"id": f"d{i}", "text": f"vitamin D {i} and bone density, case {i % 7}.", "year": i} for i in range(60)]
    r = Retriever(embedder)
    r.add(docs)
    assert r._chunks.one_per_document
    for mode in ("lexical", "dense", "hybrid"):
        for where in (None, {"year": {"$gte": 30}}):
            for per_document in (True, False):
                got = r.search("bone vitamin", k=8, mode=mode, filter=where, per_document=per_document)
                r._chunks.one_per_document = False
                try:
                    want = r.search("bone vitamin", k=8, mode=mode, filter=where, per_document=per_document)
                finally:
                    r._chunks.one_per_document = True
                assert [(h.doc_id, h.score) for h in got] == [(h.doc_id, h.score) for h in want], (mode, where)
                assert len(got) == 8
    r.chunker = rapidrag.Chunker(embedder.tokenizer, max_tokens=8)
    r.add([{"id": "long", "text": " ".join(["bone marrow bone."] * 20)}])
    assert not r._chunks.one_per_document
    for mode in ("lexical", "dense", "hybrid"):
        assert sum(h.doc_id == "long" for h in r.search("bone marrow", k=5, mode=mode)) == 1, mode
    r.delete(["long"])
    loaded = Retriever.load(r.save(tmp_path / "index"), embedder=embedder)
    assert loaded._chunks.one_per_document


def test_hits_made_the_fast_way_equal_hits_made_by_the_class() -> None:
    from rapidrag.documents import Hit

    fields = ("d1", 2, "some text", 3, 12, 1.5, {"bm25": 1.5}, {"year": 2020})
    made, fast = Hit(*fields), Hit._new(*fields)
    assert made == fast and vars(made) == vars(fast) and repr(made) == repr(fast)
    assert fast.to_dict() == made.to_dict()
    with pytest.raises(AttributeError):
        fast.score = 2.0  # type: ignore[misc]


def test_an_embedder_of_your_own_needs_no_token_counts(embedder: rapidrag.Embedder) -> None:
    """The chunker's token counts go to an embedder whose ``embed`` takes ``lengths`` (rapidrag's); one of your
    own with ``embed(texts, batch_size)`` gets none, and indexes the same vectors."""
    from rapidrag.embedder import BATCH_SIZE

    class Plain:
        dim, max_length, tokenizer = embedder.dim, embedder.max_length, embedder.tokenizer

        def embed(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
            return embedder.embed(texts, batch_size=batch_size)  # (int8: the same runs give the same vectors)

    docs = [{"id": f"d{i}", "text": f"Document {i} about vitamin D and bone density, part {i}."} for i in range(20)]
    ours, plain = Retriever(embedder), Retriever(Plain())
    ours.add(docs)
    plain.add(docs)
    got = [(h.doc_id, round(h.score, 5)) for h in plain.search("vitamin bone", k=5, mode="dense")]
    assert got == [(h.doc_id, round(h.score, 5)) for h in ours.search("vitamin bone", k=5, mode="dense")]


def test_bad_documents_change_nothing() -> None:
    r = Retriever()
    r.add([{"id": "a", "text": "alpha"}])
    bad = [
        (
            [{"id": "b", "text": "fine"}, {"id": "c", "text": "lone \ud800 surrogate"}],
            ValueError,
            "'c'.*not valid Unicode",
        ),
        ([{"id": "b", "text": "fine"}, {"id": "b", "text": "twice"}], ValueError, "twice"),
        (
            [{"id": "b", "text": "fine"}, {"id": "c", "text": "other"}, {"id": "b", "text": "again"}],
            ValueError,
            r"documents\[0\] and documents\[2\] have the same id 'b'",
        ),
        ([{"id": "b", "text": 5}], ValueError, "str 'text'"),
        ([{"id": "b", "text": "x", "metadata": [1]}], ValueError, "metadata must be a dict"),
        ([42], TypeError, r"documents\[0\]"),
        # Metadata that could be neither filtered nor saved is refused before anything is stored.
        ([{"id": "b", "text": "x", "metadata": {"n": 10**400}}], ValueError, "'n' is an int too large"),
        ([{"id": "b", "text": "x", "metadata": {"s": {1, 2}}}], TypeError, "'s' is a set, which cannot be saved"),
        ({"id": "b", "text": "one"}, TypeError, "iterable of documents"),
    ]
    for docs, error, message in bad:
        with pytest.raises(error, match=message):
            r.add(docs)
        assert len(r) == 1 and r.get("b") is None and len(r.bm25) == 1
    with pytest.raises(TypeError, match="iterable of str"):
        r.delete("a")


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    r = Retriever()
    r.add([{"id": str(i), "text": f"text {i}"} for i in range(3000)], progress=True)
    err = capsys.readouterr().err
    assert "3,000/3,000 documents" in err and err.endswith("\n")
    r.add([{"id": "x", "text": "quiet"}])
    assert capsys.readouterr().err == ""


def test_searches_while_documents_change(embedder: rapidrag.Embedder, tmp_path: Path) -> None:
    """Threads search while another adds, upserts, deletes and saves: no errors, every hit consistent, and
    every change visible whole afterwards."""
    import threading

    r = Retriever(embedder=embedder, index="hnsw")
    r.add(
        [{"id": f"base{i}", "text": f"base document {i} about topic{i % 7}", "metadata": {"n": i}} for i in range(60)]
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    searched = [0]

    def searcher(mode: str) -> None:
        try:
            while not stop.is_set():
                for hits in (
                    r.search("topic3 document", k=10, mode=mode),  # type: ignore[arg-type]
                    r.search("batch words", k=10, mode=mode, filter={"n": {"$gte": 1000}}),  # type: ignore[arg-type]
                ):
                    ids = [h.doc_id for h in hits]
                    assert len(ids) == len(set(ids))
                    for h in hits:
                        assert h.text and h.start < h.end and h.metadata is not None
                searched[0] += 1
        except BaseException as e:  # re-raised on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(m,)) for m in ("lexical", "hybrid", "dense")]
    for t in threads:
        t.start()
    try:
        for b in range(12):
            r.add(
                [
                    {"id": f"b{b}-{i}", "text": f"batch words {b} {i} unique{b}x{i}", "metadata": {"n": 1000 + b}}
                    for i in range(10)
                ]
            )
            r.delete([f"b{b}-0", f"base{b}"])
            r.upsert([{"id": f"b{b}-1", "text": f"replaced{b} text", "metadata": {"n": 5}}])
            if b % 4 == 3:
                r.save(tmp_path / "ix")
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    assert searched[0] > 0
    assert len(r) == 60 - 12 + 12 * 9
    for b in range(12):
        assert r.search(f"unique{b}x5", k=1, mode="lexical")[0].doc_id == f"b{b}-5"
        assert r.get(f"b{b}-0") is None and r.get(f"base{b}") is None
        assert r.search(f"replaced{b}", k=1, mode="lexical")[0].doc_id == f"b{b}-1"
    loaded = Retriever.load(tmp_path / "ix", embedder=embedder)
    assert len(loaded) == 60 - 12 + 12 * 9  # the last save came after the last change


def test_concurrent_searches_equal_serial_ones(embedder: rapidrag.Embedder, reranker_dir: Path) -> None:
    """Searches from several threads at once (model runs share the cores through rapidrag._onnx.CORES) give the
    results of the same searches run one by one."""
    from concurrent.futures import ThreadPoolExecutor

    from rapidrag._onnx import CORES

    r = Retriever(embedder=embedder, reranker=rapidrag.Reranker(reranker_dir, quantized=True))
    r.add(DOCS)
    queries = ["vitamin d bone", "iron anemia", "eiffel tower", "statins heart", "deficiency", "cholesterol risk"]

    def run(q: str) -> list[tuple[str, float]]:
        return [(h.doc_id, h.score) for h in r.search(q, k=3)]

    serial = [run(q) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, queries * 4))
    assert parallel == serial * 4
    assert CORES.free == CORES.cores  # every model run gave its cores back


def test_one_setting_sizes_every_thread_pool(minilm_dir: Path) -> None:
    """rapidrag.set_cores (or $RAPIDRAG_CORES) sizes the model sessions and tokenizers made afterwards, FAISS
    builds, and the budget model runs share; a bad value is refused with the setting's name."""
    import os
    import subprocess
    import sys

    from rapidrag._onnx import CORES

    before = CORES.cores
    try:
        rapidrag.set_cores(1)
        assert CORES.cores == 1 and CORES.free == 1
        emb = rapidrag.Embedder(minilm_dir, quantized=True)
        assert emb.session.get_session_options().intra_op_num_threads == 1 and emb.tokenizer.n_threads == 1
        with pytest.raises(ValueError, match="positive int"):
            rapidrag.set_cores(0)
    finally:
        rapidrag.set_cores(before)
    assert CORES.free == CORES.cores == before
    code = "import rapidrag._onnx as o; print(o.CORES.cores)"
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RAPIDRAG_CORES": "1"}, capture_output=True)
    assert run.stdout.strip() == b"1"
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RAPIDRAG_CORES": "two"}, capture_output=True)
    assert run.returncode != 0 and b"RAPIDRAG_CORES must be a positive int" in run.stderr


def test_metadata_lists_empty_metadata_and_json() -> None:
    """An explicit empty metadata stays empty (BEIR's "metadata": {}), list metadata is filtered element-wise,
    what cannot be filtered is refused before anything is stored, and Hit.to_dict is plain JSON."""
    from datetime import date

    r = Retriever()
    r.add(
        [
            {"_id": "b1", "title": "T", "text": "bone and vitamin", "metadata": {}},
            {"id": "b2", "text": "bone and iron", "tags": ["nutrition", "history"], "when": date(2024, 1, 31)},
        ]
    )
    assert r.get("b1").metadata == {}  # type: ignore[union-attr]
    assert [h.doc_id for h in r.search("bone", filter={"tags": "history"})] == ["b2"]
    assert [h.doc_id for h in r.search("bone", filter={"tags": {"$in": ["nutrition"]}})] == ["b2"]
    with pytest.raises(TypeError, match=r"documents\[0\] \('b3'\): metadata 'people'\[0\] is a dict"):
        r.add([{"id": "b3", "text": "x", "metadata": {"people": [{"name": "a"}]}}])
    assert r.get("b3") is None and len(r) == 2
    (hit,) = r.search("iron")
    body = hit.to_dict()
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["metadata"] == {"tags": ["nutrition", "history"], "when": "2024-01-31"}


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00\x00", " \x1b\u200b\ufeff\n", "\ufffd"])
def test_blank_queries_are_refused(retriever: Retriever, query: str) -> None:
    """Nothing to search for (the tokenizers drop control and format characters) is refused, not answered."""
    with pytest.raises(ValueError, match="give the words to search for"):
        retriever.search(query)


@pytest.mark.parametrize("query", ["bone\x00", "\u200bbone", "é\tbone", "¿?"])
def test_queries_with_a_word_or_a_sign_are_searched(retriever: Retriever, query: str) -> None:
    assert list(retriever.search(query, mode="dense", k=2))


def test_reranking_fuses_by_default(
    embedder: rapidrag.Embedder, reranker_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unless a weight is set or tuned, the reranker's share comes from its folder's rapidrag.json, else the
    default, so its score is fused with the first stage's instead of replacing it; an index saved before this
    (rerank_weight 1.0 recorded without tuning) loads with the default too."""
    import shutil

    from rapidrag.persist import read_snapshot, write_snapshot
    from rapidrag.retriever import DEFAULT_RERANK_WEIGHT

    folder = tmp_path / "reranker"
    folder.mkdir()
    for name in ("model_int8.onnx", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "config.json"):
        if (reranker_dir / name).exists():
            shutil.copy(reranker_dir / name, folder / name)
    reranker = rapidrag.Reranker(folder, quantized=True, max_length=128)
    r = Retriever(embedder, reranker)
    assert r.rerank_weight is None and r.effective_rerank_weight == DEFAULT_RERANK_WEIGHT < 1.0
    r.add(DOCS)
    calls = []
    import rapidrag.search as module  # the stages of a search, the rerank mix among them

    real = module.rerank_mix
    monkeypatch.setattr(module, "rerank_mix", lambda raw, first, w: calls.append(w) or real(raw, first, w))
    r.search("vitamin and bone", k=2)
    assert calls == [DEFAULT_RERANK_WEIGHT]
    (folder / "rapidrag.json").write_text(json.dumps({"recommended_fusion_weight": 0.7}))
    recommended = rapidrag.Reranker(folder, quantized=True, max_length=128)
    assert recommended.recommended_weight == 0.7
    assert Retriever(embedder, recommended).effective_rerank_weight == 0.7
    assert Retriever(embedder, recommended, rerank_weight=0.2).effective_rerank_weight == 0.2
    (folder / "rapidrag.json").write_text(json.dumps({"recommended_fusion_weight": 3}))
    with pytest.raises(rapidrag.errors.ModelError, match="recommended_fusion_weight must be a number in"):
        rapidrag.Reranker(folder, quantized=True, max_length=128)
    # An index saved with the old default (1.0, untuned) loads with the new one; a tuned 1.0 stays.
    r.save(tmp_path / "ix")
    snap = read_snapshot(tmp_path / "ix", version=FORMAT_VERSION)
    config = snap.config
    config["retriever"]["rerank_weight"] = 1.0
    files = {n: snap.read(n) for n in snap.files}
    write_snapshot(tmp_path / "ix", files, config, version=FORMAT_VERSION)
    assert Retriever.load(tmp_path / "ix", reranker=None).rerank_weight is None
    config["tuned_on"] = {"qrels": "train.tsv"}
    write_snapshot(tmp_path / "ix", files, config, version=FORMAT_VERSION)
    assert Retriever.load(tmp_path / "ix", reranker=None).rerank_weight == 1.0


def test_a_tuned_rerank_weight_is_kept_for_its_reranker_only(
    embedder: rapidrag.Embedder, reranker_dir: Path, tmp_path: Path
) -> None:
    """``tune`` records which reranker chose the weight; loaded with another reranker folder, the index uses that
    folder's recommended weight (chosen for it) instead of one chosen for a different model, and a weight you set
    yourself is always used."""
    import shutil

    from rapidrag.tuning import tune

    folders = {}
    for name, recommended in (("reranker-a", None), ("reranker-b", 0.15)):
        folder = folders[name] = tmp_path / name
        folder.mkdir()
        for file in ("model_int8.onnx", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "config.json"):
            if (reranker_dir / file).exists():
                shutil.copy(reranker_dir / file, folder / file)
        if recommended is not None:
            (folder / "rapidrag.json").write_text(json.dumps({"recommended_fusion_weight": recommended}))
    r = Retriever(embedder, rapidrag.Reranker(folders["reranker-a"], quantized=True, max_length=128))
    r.add(DOCS)
    queries = {"q1": "vitamin and bone loss", "q2": "anemia and iron", "q3": "the tower in Paris"}
    qrels = {"q1": {"vit": 1}, "q2": {"iron": 1}, "q3": {"paris": 1}}
    tune(r, queries, qrels, rerank_depths=(3,))
    tuned = r.rerank_weight
    assert tuned is not None and tuned != 0.15
    assert r.tuned_on is not None and r.tuned_on["reranker"] == "reranker-a" and r.tuned_on["queries"] == 3
    assert r.effective_rerank_weight == tuned
    r.save(tmp_path / "ix")
    assert Retriever.load(tmp_path / "ix").effective_rerank_weight == tuned
    other = Retriever.load(tmp_path / "ix", reranker=folders["reranker-b"])
    assert other.rerank_weight == tuned and other.effective_rerank_weight == 0.15
    other.rerank_weight = 0.35  # set by hand: used with any reranker
    assert other.effective_rerank_weight == 0.35
    # A folder without the recorded int8 file name (a trained one has model_fused_int8.onnx): its int8 file is
    # taken, not its fp32 model.onnx.
    trained = tmp_path / "trained"
    shutil.copytree(folders["reranker-b"], trained)
    (trained / "model_int8.onnx").rename(trained / "model_fused_int8.onnx")
    shutil.copy(trained / "model_fused_int8.onnx", trained / "model.onnx")
    swapped = Retriever.load(tmp_path / "ix", reranker=trained)
    assert swapped.reranker.model_path.name == "model_fused_int8.onnx"


def test_configure_checks_settings_as_the_constructor_does(scifact_texts: list[str]) -> None:
    """Settings changed after indexing (what tuning tries) are checked, and take effect in the next search."""
    r = Retriever()
    r.add([Document(f"d{i}", t) for i, t in enumerate(scifact_texts[:50])])
    before = [h.score for h in r.search("cells", k=3)]
    r.configure(k1=1.5, b=0.75)
    assert r.bm25.k1 == 1.5 and r.bm25.b == 0.75
    assert [h.score for h in r.search("cells", k=3)] != before
    r.configure(rerank_weight=None, rerank_depth=5, fusion="weighted", weights=(0.3, 0.7))
    assert r.rerank_weight is None and r.rerank_depth == 5 and r.fusion == "weighted" and r.weights == (0.3, 0.7)
    for bad, match in (
        ({"k1": 0}, "k1 must be"),
        ({"b": 2}, "b must be"),
        ({"fusion": "max"}, "fusion must be"),
        ({"weights": (1.0,)}, "weights must be"),
        ({"rerank_weight": 1.5}, "rerank_weight must be"),
        ({"rerank_depth": 0}, "rerank_depth must be"),
        ({"title_weight": 0.5}, "no title field"),
    ):
        with pytest.raises(ValueError, match=match):
            r.configure(**bad)  # type: ignore[arg-type]
    assert r.bm25.k1 == 1.5 and r.rerank_depth == 5  # nothing changed by a refused call


def _chunked(retriever: Retriever, docs: list[Any]) -> tuple[list[Document], np.ndarray, np.ndarray, list[str]]:
    """``docs`` chunked elsewhere (as a pipeline's worker does): the documents, spans, row splits, chunk texts."""
    from rapidrag.chunks import document_spans
    from rapidrag.documents import check_documents

    checked = check_documents(docs)
    spans, row_splits = document_spans(retriever.chunker, [d.text for d in checked])
    owner = np.repeat(np.arange(len(checked)), np.diff(row_splits))
    texts = [checked[o].text[a:b] for o, (a, b) in zip(owner.tolist(), spans[:, :2].tolist(), strict=True)]
    return checked, spans, row_splits, texts


def test_add_embedded_equals_add(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """Documents chunked and embedded elsewhere (other batches, fp32), then stored by ``add_embedded`` in two bulk
    adds, make the index ``add`` makes: the same rows and spans, BM25 (text and title fields), metadata and
    vectors (1e-6), and the same answers; lexical only too."""
    docs = [*shard_corpus[:90], {"id": "empty", "text": ""}, {"id": "blank", "text": " \n "}]
    want = Retriever(shard_embedder, title_weight=0.5)
    want.add(docs)
    got = Retriever(shard_embedder, title_weight=0.5)
    checked, spans, row_splits, texts = _chunked(got, docs)
    assert (np.diff(row_splits) >= 1).all() and len(spans) > len(docs)  # some documents in several chunks
    vectors = shard_embedder.embed(texts[::-1], batch_size=7)[::-1].copy()  # other batches than add's
    cut = int(row_splits[50])
    assert got.add_embedded(checked[:50], spans[:cut], row_splits[:51], vectors[:cut]) == cut
    got.add_embedded(checked[50:], spans[cut:, :2].copy(), row_splits[50:] - cut, vectors[cut:])
    assert len(got) == len(want) and got.n_chunks == want.n_chunks == len(spans)
    for name in ("doc", "chunk", "start", "end"):
        np.testing.assert_array_equal(getattr(got._chunks, name), getattr(want._chunks, name))
    for field in ("bm25", "bm25_title"):
        (info, arrays), (info_want, arrays_want) = getattr(got, field).state(), getattr(want, field).state()
        assert info == info_want and arrays.keys() == arrays_want.keys()
        for key in arrays:
            np.testing.assert_array_equal(arrays[key], arrays_want[key])
    assert [got.get(d.id) for d in checked] == [want.get(d.id) for d in checked]
    keys = [(d.id, 0) for d in checked]
    np.testing.assert_allclose(got.chunk_vectors(keys), want.chunk_vectors(keys), atol=1e-6)
    for mode in ("lexical", "dense", "hybrid"):
        for where in (None, {"tags": "t3"}):
            ours, theirs = (results(r, shard_queries[:8], mode=mode, filter=where) for r in (got, want))
            same(ours, theirs, atol=1e-5)
    lexical, lexical_want = Retriever(), Retriever()
    lexical_want.add(docs)
    checked, spans, row_splits, _ = _chunked(lexical, docs)
    lexical.add_embedded(checked, spans, row_splits)
    same(results(lexical, shard_queries[:8]), results(lexical_want, shard_queries[:8]))


def test_add_embedded_refuses_bad_input(shard_embedder: rapidrag.Embedder) -> None:
    """Each wrong argument is refused with an error that names it, and nothing is indexed."""
    r = Retriever(shard_embedder)
    r.add([{"id": "a", "text": "already here"}])
    docs = [{"id": "b", "text": "Vitamin D and bone."}, {"id": "c", "text": "Iron and blood."}]
    checked, spans, row_splits, texts = _chunked(r, docs)
    vectors = shard_embedder.embed(texts)
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"spans": spans.astype(np.int32)}, TypeError, "spans must be int64"),
        ({"spans": spans.tolist()}, TypeError, "spans must be a numpy array"),
        ({"spans": spans[:, :1].copy()}, ValueError, r"spans must be \[n_chunks, 2\]"),
        ({"row_splits": row_splits.astype(np.float64)}, TypeError, "row_splits must be int64"),
        ({"row_splits": row_splits[:-1].copy()}, ValueError, r"row_splits must be \[3\]"),
        ({"row_splits": np.asarray([0, 0, 2])}, ValueError, "at least one chunk"),
        ({"row_splits": np.asarray([0, 1, 1])}, ValueError, "from 0 to the 2 spans"),
        ({"spans": spans + np.asarray([0, 100, 0])}, ValueError, r"spans\[0\] = \(0, 1\d\d\) is not within"),
        ({"spans": spans[:, [1, 0, 2]].copy()}, ValueError, "0 <= start <= end"),
        ({"vectors": vectors.astype(np.float64)}, TypeError, "vectors must be float32"),
        ({"vectors": None}, TypeError, "vectors must be a float32 numpy array"),
        ({"vectors": vectors[:, :10].copy()}, ValueError, r"vectors must be \[2, 384\]"),
        ({"vectors": np.full_like(vectors, np.nan)}, ValueError, "NaN"),
        ({"documents": [{"id": "a", "text": "Vitamin D and bone."}, docs[1]]}, ValueError, "already indexed"),
        ({"documents": [docs[0], docs[0]]}, ValueError, "twice"),
    ]
    good: dict[str, Any] = {"documents": checked, "spans": spans, "row_splits": row_splits, "vectors": vectors}
    for change, error, message in bad:
        with pytest.raises(error, match=message):
            r.add_embedded(**{**good, **change})
        assert len(r) == 1 and r.n_chunks == 1 and len(r._chunks) == 1
    with pytest.raises(ValueError, match="lexical only: vectors must be None"):
        Retriever().add_embedded(**good)
    assert r.add_embedded(**good) == 2 and len(r) == 3
