"""rapidrag.distributed: an index split in shards answers as one index over the same documents (exact global
BM25, exact merge of the shards' lists), in this process and across Ray actors on a local cluster."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shard_helpers import results, same

import rapidrag
from conftest import SHARD_DOCS
from rapidrag.distributed import ShardedRetriever, shard_of
from rapidrag.grounding import ground
from rapidrag.retriever import Retriever


@pytest.fixture(scope="module")
def single(shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]]) -> Retriever:
    r = Retriever(shard_embedder, title_weight=0.5)
    r.add(shard_corpus)
    r.delete([shard_corpus[3]["id"], shard_corpus[10]["id"]])
    r.upsert([{**shard_corpus[5], "text": shard_corpus[5]["text"] + " Upserted with new words about insulin."}])
    return r


def sharded(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], n: int, **kw: Any
) -> ShardedRetriever:
    s = ShardedRetriever(shard_embedder, n_shards=n, title_weight=0.5, **kw)
    s.add(shard_corpus)
    s.delete([shard_corpus[3]["id"], shard_corpus[10]["id"]])
    s.upsert([{**shard_corpus[5], "text": shard_corpus[5]["text"] + " Upserted with new words about insulin."}])
    return s


@pytest.mark.parametrize("n_shards", [1, 2, 4])
def test_a_sharded_index_answers_as_one_index(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    single: Retriever,
    n_shards: int,
) -> None:
    s = sharded(shard_embedder, shard_corpus, n_shards)
    assert len(s) == len(single) == SHARD_DOCS - 2 and s.n_chunks == single.n_chunks
    assert s.get(shard_corpus[5]["id"]) == single.get(shard_corpus[5]["id"]) and s.get(shard_corpus[3]["id"]) is None
    counts = np.bincount([shard_of(d["id"], n_shards) for d in shard_corpus], minlength=n_shards)
    assert (counts > 0).all()  # every shard holds documents
    for mode in ("lexical", "dense", "hybrid"):
        for where in (None, {"year": {"$gte": 2005}}, {"tags": "t3"}):
            same(
                results(s, shard_queries, mode=mode, filter=where),
                results(single, shard_queries, mode=mode, filter=where),
            )
        same(
            results(s, shard_queries, mode=mode, per_document=False),
            results(single, shard_queries, mode=mode, per_document=False),
        )
    # What a filter may miss: the same from either kind of index (the fields and kinds of every shard).
    assert s.metadata_kinds() == single.metadata_kinds()
    for where in ({"year": "2005"}, {"yeer": 2005}, {"year": 2005, "tags": 3}):
        assert s.filter_notes(where) == single.filter_notes(where) != []
    # The generator's context and the grounding check: the same from either kind of index.
    for q in shard_queries[:5]:
        ours, theirs = s.context(q, 400), single.context(q, 400)
        assert ours.text == theirs.text and ours.tokens == theirs.tokens
        assert [(i.doc_id, i.chunk_ids, i.start, i.end) for i in ours.items] == [
            (i.doc_id, i.chunk_ids, i.start, i.end) for i in theirs.items
        ]
        assert [(d.doc_id, d.reason, d.of) for d in ours.dropped] == [
            (d.doc_id, d.reason, d.of) for d in theirs.dropped
        ]
        answer = ours.items[0].text
        mine, one = ground(answer, ours, source=s), ground(answer, theirs, source=single)
        assert [g.status for g in mine.sentences] == [g.status for g in one.sentences]
        assert [g.score for g in mine.sentences] == pytest.approx([g.score for g in one.sentences], abs=1e-5)


def test_hits_beyond_the_rows_sent_ahead_are_read_in_a_second_round(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    single: Retriever,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rapidrag.distributed as distributed

    # Each stage's texts sent ahead: twice a shard's share of the whole index's margin, at most all of it.
    assert [distributed.found_ahead(10, n) for n in (1, 2, 3, 4, 8)] == [20, 20, 14, 10, 5]
    assert distributed.found_ahead(0, 4) == 0
    monkeypatch.setattr(distributed, "FOUND_MARGIN", 1)  # 5 rows a stage over 4 shards: hits fall beyond them
    s = sharded(shard_embedder, shard_corpus, 4)
    read_after: list[int] = []
    found = s._found
    monkeypatch.setattr(s, "_found", lambda rows: read_after.append(len(rows)) or found(rows))
    for mode in ("lexical", "dense", "hybrid"):
        same(results(s, shard_queries, mode=mode), results(single, shard_queries, mode=mode))
    assert read_after and sum(read_after) > 0  # some searches read hits in a second round, with the same answers


def test_the_merge_of_the_shards_lists_keeps_their_order_at_a_cut_through_ties(
    shard_embedder: rapidrag.Embedder,
) -> None:
    # The merge equals sorting all the shards' rows (score down, then the row number across shards up), also where
    # the cut falls inside a run of equal scores, with lists of different lengths, an empty one, a shard missing,
    # and a list whose equal scores are not in row order (FAISS's order of equal dense scores).
    from rapidrag import _core

    s = ShardedRetriever(shard_embedder, n_shards=4)
    rng = np.random.default_rng(7)
    for fetch in (1, 5, 17, 40, 200):
        for shuffled in (False, True):
            parts = []
            for i, size in ((0, 40), (1, 25), (3, 0), (2, 40)):  # (lists in the order the shards answered)
                if i == 1 and fetch == 17:
                    continue  # (a shard without a live replica sends nothing)
                scores = np.sort(rng.choice(np.float32([0.5, 1.0, 1.5, 2.0, 2.5]), size=size))[::-1].copy()
                rows = rng.permutation(60)[:size]
                rows = rows[np.lexsort((rows, -scores))]  # (a shard's list: score down, then row up)
                if shuffled and i == 2:  # equal scores in another order
                    rows = rows[np.lexsort((-rows, -scores))]
                parts.append((i, (rows, rows + 1000, scores)))
            got_rows, got_docs, got_scores = s._merge(parts, fetch)
            numbers = np.concatenate([r * 4 + i for i, (r, _, _) in parts])
            every = np.concatenate([sc for _, (_, _, sc) in parts])
            order = np.lexsort((numbers, -every))[:fetch]
            assert got_rows.tolist() == numbers[order].tolist() and got_scores.tolist() == every[order].tolist()
            assert got_docs.tolist() == (np.concatenate([d * 4 + i for i, (_, d, _) in parts])[order]).tolist()
            # The kernel merges lists in order itself, and leaves a list out of order to the sort.
            flat = [np.concatenate([p[j] for _, p in parts]).astype(np.int64) for j in (0, 1)]
            splits = np.cumsum([0] + [len(p[0]) for _, p in parts])
            n = min(fetch, len(every))
            keys, out = np.empty((2, n), dtype=np.int64), np.empty(n, dtype=np.float32)
            shards = np.array([i for i, _ in parts])
            merged = _core.merge_shard_lists(every, *flat, splits, shards, 4, keys[0], keys[1], out)
            assert merged == (-1 if shuffled else n)
            if not shuffled:
                assert keys[0].tolist() == got_rows.tolist() and out.tolist() == got_scores.tolist()


def test_per_shard_statistics_would_rank_differently(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    single: Retriever,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: scored with each shard's own statistics (not the whole index's, which the
    coordinator keeps), the shards' BM25 lists differ from one index's."""
    import rapidrag.distributed

    s = sharded(shard_embedder, shard_corpus, 4)
    monkeypatch.setattr(rapidrag.distributed._GlobalStatistics, "of", lambda self, terms: None)
    local = results(s, shard_queries, mode="lexical")
    want = results(single, shard_queries, mode="lexical")
    assert any([x[:4] for x in g] != [x[:4] for x in w] for g, w in zip(local, want, strict=True))
    assert any(abs(g[0][4] - w[0][4]) > 1e-3 for g, w in zip(local, want, strict=True) if g and w)


def test_the_coordinator_statistics_follow_every_change(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The whole index's BM25 statistics, kept by the coordinator from each change's report, equal those summed
    afresh from the shards (what loading does) after adds, upserts and deletes, and equal one index's."""
    s = ShardedRetriever(shard_embedder, n_shards=3, title_weight=0.5)
    one = Retriever(shard_embedder, title_weight=0.5)
    docs = shard_corpus[:120]
    for index in (s, one):
        index.add(docs[:80])
        index.upsert([{**d, "text": d["text"] + " zebrafish mitochondria"} for d in docs[70:100]])
        index.delete([d["id"] for d in docs[::7]] + ["no-such-id"])
    query = "zebrafish mitochondria insulin cells " + docs[1]["title"]
    kept = s.statistics(query)
    assert kept == one.statistics(query)
    s.save(tmp_path / "ix")
    reopened = ShardedRetriever.load(tmp_path / "ix")
    assert reopened.statistics(query) == kept
    assert kept["bm25"].df["zebrafish"] > 0 and kept["bm25"].documents == one.n_chunks


def test_reranking_runs_once_on_the_merged_candidates(
    shard_embedder: rapidrag.Embedder, reranker_dir: Path, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    reranker = rapidrag.Reranker(reranker_dir, max_length=128)  # fp32, as the shard_embedder (see its fixture)
    calls: list[int] = []
    real = reranker.score

    def counting(query: str, passages: Any, **kw: Any) -> Any:
        calls.append(len(passages))
        return real(query, passages, **kw)

    reranker.score = counting  # type: ignore[method-assign]
    one = Retriever(shard_embedder, reranker, title_weight=0.5)
    one.add(shard_corpus[:200])
    s = ShardedRetriever(shard_embedder, reranker, n_shards=3, title_weight=0.5)
    s.add(shard_corpus[:200])
    calls.clear()
    got = results(s, shard_queries[:5])
    assert calls == [20] * 5  # one call per search, on the rerank_depth best merged candidates
    # The same hits; scores to 1e-3: passages embedded in other batches (another shard's) differ by about 1e-6,
    # which can swap near-tied ranks deep in the dense list, moving RRF scores by about 1e-5 and their z-scores in
    # the rerank mix by about 1e-4.
    same(got, results(one, shard_queries[:5]), atol=1e-3)


def test_compact_drops_the_removed_rows_of_every_shard(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    s = sharded(shard_embedder, shard_corpus, 3)
    s.delete([d["id"] for d in shard_corpus[::5]])
    held = [group[0].retriever.dense.dead for group in s._shards]
    assert all(n > 0 for n in held), held  # (a flat index holds removed rows until they are many)
    assert s.removed_vectors == sum(held)
    before = {mode: results(s, shard_queries, mode=mode) for mode in ("dense", "hybrid")}
    # Searches go on while the shards compact (the coordinator holds its read lock, not its write lock).
    compact, searched = Retriever.compact, []

    def compact_while_searched(self: Retriever) -> int:
        reader = threading.Thread(target=lambda: searched.append(results(s, shard_queries, mode="hybrid")))
        reader.start()
        reader.join(timeout=120)
        assert not reader.is_alive(), "a search waited for a shard's compaction"
        return compact(self)

    monkeypatch.setattr(Retriever, "compact", compact_while_searched)
    assert s.compact() == sum(held)
    assert searched == [before["hybrid"]] * 3
    assert [group[0].retriever.dense.dead for group in s._shards] == [0, 0, 0] and s.removed_vectors == 0
    for mode, want in before.items():
        same(results(s, shard_queries, mode=mode), want, atol=0)


def test_save_and_load(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str], tmp_path: Path
) -> None:
    s = sharded(shard_embedder, shard_corpus[:200], 3)
    s.save(tmp_path / "ix")
    parts = sorted(p.name for p in (tmp_path / "ix").iterdir() if p.name.startswith("part-"))
    assert [p[:8] for p in parts] == ["part-000", "part-001", "part-002"]
    loaded = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None)
    assert loaded.n_shards == 3 and len(loaded) == len(s)
    same(results(loaded, shard_queries[:8]), results(s, shard_queries[:8]))
    loaded.add([{"id": "new-doc", "text": "A new document about insulin resistance after loading."}])
    assert loaded.get("new-doc") is not None
    loaded.save(tmp_path / "ix")  # the next save writes new parts and removes the old ones
    again = sorted(p.name for p in (tmp_path / "ix").iterdir() if p.name.startswith("part-"))
    assert len(again) == 3 and not set(again) & set(parts)
    with pytest.raises(rapidrag.errors.IndexFormatError, match="sharded"):
        Retriever.load(tmp_path / "ix")
    (tmp_path / "ix" / again[1]).rename(tmp_path / "gone")
    with pytest.raises(rapidrag.errors.IndexFormatError, match="missing"):
        ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder)


def test_a_sharded_index_reopens_with_its_reranker(
    shard_embedder: rapidrag.Embedder,
    reranker_dir: Path,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The coordinator reranks, so its manifest records the reranker (the parts, the shards', have none): opened
    as it was saved, a sharded index reranks as one index does (it used to come back without its reranker);
    reranker=None leaves it out; when it cannot be found the load says so, and a save keeps it recorded."""
    import warnings

    reranker = rapidrag.Reranker(reranker_dir, max_length=128)
    s = ShardedRetriever(shard_embedder, reranker, n_shards=2, title_weight=0.5)
    s.add(shard_corpus[:60])
    s.save(tmp_path / "ix")
    loaded = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder)
    assert loaded.reranker is not None and loaded.reranker.folder == reranker.folder
    assert loaded.reranker.max_length == 128  # (with the settings it was saved with)
    hits = loaded.search(shard_queries[0], k=5)
    assert all("rerank" in h.scores for h in hits)
    same(results(loaded, shard_queries[:3]), results(s, shard_queries[:3]), atol=1e-4)
    assert ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None).reranker is None
    moved = tmp_path / "models-moved"  # the reranker's folder gone, and not under RAPIDRAG_MODELS
    monkeypatch.setenv("RAPIDRAG_MODELS", str(moved))
    spec = json.loads((tmp_path / "ix" / "MANIFEST.json").read_text())["config"]["reranker"]
    assert spec["folder"] == str(Path(reranker_dir).resolve())
    text = (tmp_path / "ix" / "MANIFEST.json").read_text().replace(spec["folder"], str(moved / "gone"))
    manifest = json.loads(text)
    from rapidrag.distributed import SHARDED_VERSION
    from rapidrag.persist import write_snapshot

    write_snapshot(tmp_path / "ix", {}, manifest["config"], version=SHARDED_VERSION)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blind = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder)
    assert blind.reranker is None and any("reranker" in str(w.message) for w in caught)
    blind.save(tmp_path / "again")
    kept = json.loads((tmp_path / "again" / "MANIFEST.json").read_text())["config"]["reranker"]
    assert kept["folder"] == str(moved / "gone") and kept["sha256"] == spec["sha256"]


def test_a_loaded_sharded_index_takes_search_settings(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str], tmp_path: Path
) -> None:
    """``index_options`` given to ``ShardedRetriever.load`` set every shard's dense index (``Retriever.load``'s)."""
    s = ShardedRetriever(shard_embedder, n_shards=2, index="hnsw", index_options={"ef_search": 200})
    s.add(shard_corpus[:120])
    s.save(tmp_path / "ix")
    assert ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder).index_options["ef_search"] == 200
    loaded = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, index_options={"ef_search": 64})
    assert loaded.index_options["ef_search"] == 64
    assert [shard.retriever.dense.ef_search for (shard,) in loaded._shards] == [64, 64]
    same(results(loaded, shard_queries[:4], mode="dense"), results(s, shard_queries[:4], mode="dense"))
    with pytest.raises(rapidrag.errors.IndexOptionError, match="ef_construction fixes how the index is built"):
        ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, index_options={"ef_construction": 8})


def test_a_save_stopped_half_way_leaves_the_previous_index(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A save that dies after some shards wrote their parts (here: the second shard's save fails): the folder still
    opens as the index saved before, whole; the next save succeeds and leaves only its own parts."""
    s = sharded(shard_embedder, shard_corpus[:120], 3)
    s.save(tmp_path / "ix")
    want = results(s, shard_queries[:6])
    s.add([{"id": "after", "text": "Written after the first save, about zebrafish fins."}])
    real = Retriever.save
    calls: list[str] = []

    def dies_on_the_second(self: Retriever, path: Any) -> Any:
        calls.append(str(path))
        if len(calls) == 2:
            raise OSError("the process was killed here")
        return real(self, path)

    monkeypatch.setattr(Retriever, "save", dies_on_the_second)
    with pytest.raises(OSError, match="killed"):
        s.save(tmp_path / "ix")
    monkeypatch.setattr(Retriever, "save", real)
    before = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None)
    assert before.get("after") is None and len(before) == len(s) - 1
    same(results(before, shard_queries[:6]), want)
    s.save(tmp_path / "ix")
    after = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None)
    assert after.get("after") is not None
    assert len([p for p in (tmp_path / "ix").iterdir() if p.name.startswith("part-")]) == 3


def test_the_command_line_opens_a_sharded_folder(
    shard_corpus: list[dict[str, Any]], scifact_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rapidrag index --shards`` writes a sharded index; ``rapidrag query``, ``eval``, ``bench`` and ``tune``
    read its manifest and open it as they open one index."""
    import json

    from rapidrag.cli import main

    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n" for d in shard_corpus[:120])
    )
    assert main(["index", str(source), "--out", str(tmp_path / "ix"), "--lexical", "--shards", "3"]) == 0
    assert "3 shards" in capsys.readouterr().out
    s = ShardedRetriever.load(tmp_path / "ix")
    assert s.n_shards == 3 and len(s) == 120
    assert main(["query", str(tmp_path / "ix"), "insulin and glucose in diabetes", "--json", "-k", "5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    want = s.search("insulin and glucose in diabetes", k=5)
    assert [h["doc_id"] for h in printed["hits"]] == [h.doc_id for h in want] and len(want) == 5
    judged = ["--queries", str(scifact_dir), "--qrels", str(scifact_dir / "qrels" / "test.tsv")]
    assert main(["eval", str(tmp_path / "ix"), *judged]) == 0
    assert "lexical" in capsys.readouterr().out
    report = tmp_path / "bench.json"
    assert main(["bench", str(tmp_path / "ix"), *judged, "--out", str(report), "--concurrency", "1"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("configuration"))
    assert header.split()[4:6] == ["embed", "shards"]  # (the round to the shards in place of their stages)
    assert list(json.loads(report.read_text())["configs"]) == ["lexical"]
    assert main(["tune", str(tmp_path / "ix"), *judged, "--max-queries", "20"]) == 0
    assert "bm25" in capsys.readouterr().out
    assert ShardedRetriever.load(tmp_path / "ix").tuned_on is not None
    one = tmp_path / "one"
    assert main(["index", str(source), "--out", str(one), "--lexical"]) == 0
    capsys.readouterr()
    assert main(["query", str(one), "insulin", "--ray", "127.0.0.1:1"]) == 2  # refused before any connection
    assert "is not a sharded index" in capsys.readouterr().err
    from rapidrag.errors import IndexFormatError

    with pytest.raises(IndexFormatError, match="one index, not split in shards: open it with"):
        ShardedRetriever.load(one)
    for argv in (
        ["query", str(tmp_path / "ix"), "insulin", "--replicas", "2"],
        ["index", str(source), "--out", str(tmp_path / "r"), "--lexical", "--shards", "2", "--replicas", "2"],
    ):
        assert main(argv) == 2
        assert "--replicas needs --ray ADDRESS" in capsys.readouterr().err


def test_the_command_line_says_when_an_answer_is_partial(
    shard_corpus: list[dict[str, Any]],
    vocab_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shard left without a live replica (here: its answers to searches replaced by the coordinator's MISSING,
    as a Ray shard whose replicas all died gives): ``query`` and ``context`` answer from the other shards, and say
    on stderr and in their JSON which shard is missing."""
    import json

    from rapidrag.cli import main
    from rapidrag.distributed import MISSING

    s = ShardedRetriever(None, n_shards=2)
    s.add(shard_corpus[:120])
    s.save(tmp_path / "ix")
    whole = s.search("insulin and glucose in diabetes", k=5)
    real = ShardedRetriever._all

    def shard_one_lost(self: ShardedRetriever, method: str, *args: Any) -> list[Any]:
        answers = real(self, method, *args)
        return [MISSING if method == "shard_stages" and i == 1 else a for i, a in enumerate(answers)]

    monkeypatch.setattr(ShardedRetriever, "_all", shard_one_lost)
    assert main(["query", str(tmp_path / "ix"), "insulin and glucose in diabetes", "--json", "-k", "5"]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["missing_shards"] == [1] and printed["hits"]
    assert "a partial answer: shards 1 of 2 did not answer" in err
    assert {h["doc_id"] for h in printed["hits"]} != {h.doc_id for h in whole}  # (the lost shard held some)
    argv = [
        "context",
        str(tmp_path / "ix"),
        "insulin and glucose in diabetes",
        "--budget",
        "200",
        "--tokenizer",
        str(vocab_path),
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "shards 1 of the index did not answer" in out and "a partial answer: shards 1 of 2" in err


def test_tuning_a_sharded_index_chooses_what_one_index_chooses(
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    single: Retriever,
    scifact_dir: Path,
    tmp_path: Path,
) -> None:
    """``tune`` (and ``configure``, which it calls) on a sharded index: the settings reach every shard, each
    setting tried scores what it scores on one index over the same documents, so the same settings are chosen;
    the tuned index saves and reopens with them. Bad settings are refused before anything changes."""
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.tuning import tune

    one = Retriever.load(single.save(tmp_path / "one"), embedder=shard_embedder, reranker=None)
    split = sharded(shard_embedder, shard_corpus, 2)
    queries = load_queries(scifact_dir)
    qrels = dict(list(load_qrels(scifact_dir / "qrels" / "test.tsv").items())[:25])
    want, got = tune(one, queries, qrels), tune(split, queries, qrels)
    assert [s.name for s in got.steps] == ["bm25", "fusion"] and got.settings == want.settings
    for g, w in zip(got.steps, want.steps, strict=True):
        assert [setting for setting, _ in g.tried] == [setting for setting, _ in w.tried]
        np.testing.assert_allclose([v for _, v in g.tried], [v for _, v in w.tried], rtol=0, atol=1e-12)
    assert len({v for s in got.steps for _, v in s.tried}) > 2  # (the grid moves the score: the check can fail)
    assert (split.fusion, split.weights, split.title_weight) == (one.fusion, one.weights, one.title_weight)
    for shard in split._shards:
        assert shard[0].retriever.bm25.k1 == one.bm25.k1 and shard[0].retriever.bm25.b == one.bm25.b
    reopened = ShardedRetriever.load(split.save(tmp_path / "split"), embedder=shard_embedder, reranker=None)
    assert reopened.tuned_on is not None and reopened.tuned_on["settings"] == want.settings
    assert (reopened.fusion, reopened.weights) == (one.fusion, one.weights)
    asked = [queries[q] for q in qrels][:8]
    same(results(reopened, asked), results(one, asked))
    # Refused by name, nothing changed.
    before = results(split, asked[:2], mode="lexical")
    for bad, error, needle in [
        ({"k1": -1}, ValueError, "k1 must be a number > 0"),
        ({"weights": (1.0,)}, ValueError, "weights must be two numbers"),
        ({"top_k": 3}, TypeError, "unknown setting.*top_k"),
    ]:
        with pytest.raises(error, match=needle):
            split.configure(**bad)
    assert results(split, asked[:2], mode="lexical") == before
    plain = ShardedRetriever(None, n_shards=2)
    plain.add([{"id": "a", "text": "alpha"}])
    assert not plain.has_title_field and split.has_title_field
    with pytest.raises(ValueError, match="no title field"):
        plain.configure(title_weight=1.0)


def test_without_an_address_ray_starts_a_cluster_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """``address=None`` starts a new local cluster on 127.0.0.1 (``address="local"``), never joining one that runs
    on this machine, which ``ray.init()`` without an address would find (``RAY_ADDRESS``, or the file of the last
    cluster started; a benchmark in CI joined the test session's cluster that way); an address is joined, and one
    that does not answer is a ConnectionError naming it."""
    ray = pytest.importorskip("ray")
    from rapidrag.distributed import init_ray

    calls: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> None:
        calls.append(kwargs)
        if kwargs["address"] == "127.0.0.1:1":
            raise ConnectionError("could not connect")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # (what ray.init() without an address would join)
    init_ray(None)
    assert calls[-1]["address"] == "local" and calls[-1]["_node_ip_address"] == "127.0.0.1"
    init_ray("10.0.0.1:6379")
    assert calls[-1]["address"] == "10.0.0.1:6379"
    with pytest.raises(ConnectionError, match="no Ray cluster answers at '127.0.0.1:1'"):
        init_ray("127.0.0.1:1")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    init_ray(None)  # (Ray running in this process already: used as it is)
    assert len(calls) == 3


def test_bad_input(shard_embedder: rapidrag.Embedder) -> None:
    with pytest.raises(ValueError, match="n_shards"):
        ShardedRetriever(shard_embedder, n_shards=0)
    with pytest.raises(ValueError, match="backend"):
        ShardedRetriever(shard_embedder, backend="spark")  # type: ignore[arg-type]
    s = ShardedRetriever(shard_embedder, n_shards=2)
    s.add([{"id": "a", "text": "alpha beta"}])
    with pytest.raises(ValueError, match="already indexed"):
        s.add([{"id": "b", "text": "gamma"}, {"id": "a", "text": "again"}])
    assert len(s) == 1 and s.get("b") is None  # nothing of a refused batch is indexed
    with pytest.raises(TypeError, match="iterable of str"):
        s.delete("a")


def test_the_ingest_pipeline_stages_in_this_process(
    shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """The Ray Data pipeline's stages without Ray: an actor's chunk-and-embed step on batches of documents, its
    output cut into blocks at awkward rows (inside a document, one row alone, none), routed and added in bulk to a
    local sharded index: each shard holds the rows ``ShardedRetriever.add`` gives it, and the index answers as
    one index (``Retriever.add``) of the same documents."""
    pa = pytest.importorskip("pyarrow")  # Ray Data's (the [ray] extra)
    from rapidrag.documents import check_documents
    from rapidrag.ray_ingest import STAGES, _ChunkEmbed, _models, _Router

    docs = check_documents([*shard_corpus[:40], {"id": "empty", "text": ""}])
    index = ShardedRetriever(shard_embedder, n_shards=3, title_weight=0.5)
    step = _ChunkEmbed(*_models(index), n_shards=3, batch_size=32, n_threads=1)
    outputs = [
        step(pa.table({"pos": list(range(a, a + 16)[: len(docs) - a]), "id": [d.id for d in docs[a : a + 16]],
                       "text": [d.text for d in docs[a : a + 16]]}))
        for a in range(0, len(docs), 16)
    ]  # fmt: skip
    rows = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
    inside = int(np.flatnonzero(rows["n_chunks"] > 1)[0]) + 1  # a cut after a document's first chunk
    cuts = [0, inside, inside, inside + 1, inside + 9, len(rows["pos"])]
    stages = dict.fromkeys(STAGES, 0.0)
    router = _Router(index, docs, 7, stages)
    for a, b in zip(cuts, cuts[1:], strict=False):
        router.take({k: v[a:b] for k, v in rows.items()})
    router.finish()
    assert router.stored == len(index) == len(docs) and stages["embed"] > 0 and stages["add"] > 0
    added = ShardedRetriever(shard_embedder, n_shards=3, title_weight=0.5)
    assert added.add(docs) == router.chunks == index.n_chunks
    for ours, theirs in zip(index._shards, added._shards, strict=True):
        mine, want = ours[0].retriever, theirs[0].retriever
        assert [d.id for d in mine._documents if d] == [d.id for d in want._documents if d]
        for name in ("doc", "chunk", "start", "end"):
            np.testing.assert_array_equal(getattr(mine._chunks, name), getattr(want._chunks, name))
        np.testing.assert_allclose(mine.dense.vectors(np.arange(mine.n_chunks)),
                                   want.dense.vectors(np.arange(want.n_chunks)), atol=1e-6)  # fmt: skip
    one = Retriever(shard_embedder, title_weight=0.5)
    one.add(docs)
    assert index.statistics(shard_queries[0]) == one.statistics(shard_queries[0])
    for mode in ("lexical", "dense", "hybrid"):
        same(results(index, shard_queries[:8], mode=mode), results(added, shard_queries[:8], mode=mode))
    # (Hybrid against one index: three shards of these 41 documents break a tie of equal BM25 scores otherwise
    # than one index does, as ShardedRetriever.add's do; the Ray case checks hybrid against one index, two shards.)
    for mode in ("lexical", "dense"):
        same(results(index, shard_queries[:8], mode=mode), results(one, shard_queries[:8], mode=mode), atol=1e-5)


# -- on a Ray cluster --------------------------------------------------------------------------------------------


def test_on_a_ray_cluster_in_a_private_network() -> None:
    """The Ray tests (``ray_cluster_cases.py``) run in a pytest of their own inside a private network namespace
    (``unshare --net``, only ``lo`` up): Ray finds its node address by probing a public one and would advertise
    this machine's outside address, and nothing here may reach off the machine. In the namespace there is nothing
    to reach; the cases also check that every node of the cluster is on 127.0.0.1."""
    import subprocess
    import sys

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("the Ray tests need unshare and ip (util-linux, iproute2) to make a private network")
    cases = Path(__file__).parent / "ray_cluster_cases.py"
    inner = (
        f"ip link set lo up && {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider {shlex.quote(str(cases))}"
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAPIDRAG_IN_PRIVATE_NETWORK": "1"}
    run = subprocess.run(["unshare", "--net", "sh", "-c", inner], env=env, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
