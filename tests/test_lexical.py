"""rapidrag.lexical: BM25 against a direct implementation of Lucene's formula, incremental changes, masks, input."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from rapidrag.lexical import BM25, MAX_SEGMENTS, SELECT_MANY_FROM, WordAnalyzer

DOCS = {
    "a": "Vitamin D deficiency causes bone loss in older adults.",
    "b": "Bone density and vitamin D: a randomized trial of supplements.",
    "c": "The Eiffel tower is in Paris.",
    "d": "Deficiency of iron causes anemia; iron supplements help.",
    "e": "",
    "f": "bones bone boned BONE",
}


def reference_scores(analyzer: WordAnalyzer, docs: dict[str, str], query: str, k1: float, b: float) -> dict[str, float]:
    """Lucene BM25 written out term by term."""
    analyzed = {i: analyzer(t) for i, t in docs.items()}
    n = len(docs)
    avgdl = sum(len(t) for t in analyzed.values()) / n
    out = {}
    for doc_id, terms in analyzed.items():
        tf = Counter(terms)
        score = 0.0
        for q in analyzer(query):
            df = sum(1 for t in analyzed.values() if q in t)
            if tf[q] == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf[q] / (tf[q] + k1 * (1 - b + b * len(terms) / avgdl))
        if score > 0:
            out[doc_id] = score
    return out


def search_all(index: BM25, query: str) -> dict[str, float]:
    ids, scores = index.search(query, k=100)
    return dict(zip(ids, scores.tolist(), strict=True))


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.2, 0.75), (2.0, 1.0), (0.0, 0.0)])
def test_scores_match_lucene_formula(k1: float, b: float) -> None:
    index = BM25(k1=k1, b=b)
    index.add(list(DOCS), list(DOCS.values()))
    for query in ["vitamin d bone", "iron supplements", "paris", "bone bone", "nothing here", ""]:
        ref = reference_scores(index.analyzer, DOCS, query, k1, b)
        got = search_all(index, query)
        assert got.keys() == ref.keys(), query
        for doc_id, score in ref.items():
            assert got[doc_id] == pytest.approx(score, rel=1e-5)
        ids, scores = index.search(query, k=2)
        assert list(scores) == sorted(scores, reverse=True) and len(ids) <= 2


def test_analyzer_stems_lowercases_and_drops_stopwords() -> None:
    analyzer = WordAnalyzer()
    assert analyzer("The Bones of the RUNNING dogs") == ["bone", "run", "dog"]
    assert WordAnalyzer(stopwords=None, stemmer=None)("The Bones") == ["the", "bones"]
    assert WordAnalyzer(stopwords=["bones"], stemmer=None)("The Bones") == ["the"]
    with pytest.raises(ValueError, match="no stemmer"):
        WordAnalyzer(stemmer="klingon")
    with pytest.raises(TypeError, match="str"):
        analyzer(b"bytes")  # type: ignore[arg-type]


def test_incremental_changes_equal_a_fresh_index(scifact_texts: list[str]) -> None:
    texts = scifact_texts[:400]
    ids = [f"doc{i}" for i in range(len(texts))]
    grown = BM25()
    for start in range(0, 300, 20):  # more adds than MAX_SEGMENTS: merges happen
        grown.add(ids[start : start + 20], texts[start : start + 20])
    grown.delete(ids[10:60])
    grown.upsert(ids[100:110], ["replaced text about vitamin d and bone"] * 10)
    grown.add(ids[300:], texts[300:])
    assert len(grown._segments) <= MAX_SEGMENTS + 1

    live = {i: t for i, t in zip(ids, texts, strict=True)}
    for i in ids[10:60]:
        del live[i]
    for i in ids[100:110]:
        live[i] = "replaced text about vitamin d and bone"
    fresh = BM25()
    fresh.add(list(live), list(live.values()))
    assert len(grown) == len(fresh) == len(live)
    for query in ["vitamin d bone loss", "cancer cells", "randomized trial of aspirin"]:
        a, b = search_all(grown, query), search_all(fresh, query)
        assert a.keys() == b.keys()
        for doc_id in a:
            assert a[doc_id] == pytest.approx(b[doc_id], rel=1e-5)
    assert not set(search_all(grown, "vitamin")) & set(ids[10:60])


def test_single_adds_merge_small_segments_and_leave_large_ones(scifact_texts: list[str]) -> None:
    # Segments merge by size tier: documents added one at a time to a large index merge small segments among
    # themselves and never the large first one (which the whole-index merge every few adds did), the number of
    # segments stays bounded, and the index answers as one built in a single add, deletes included.
    texts = scifact_texts[:1200]
    ids = [f"doc{i}" for i in range(len(texts))]
    grown = BM25()
    grown.add(ids[:1000], texts[:1000])
    first = grown._segments[0]
    counts = []
    for i in range(1000, 1200):
        grown.add([ids[i]], [texts[i]])
        counts.append(len(grown._segments))
        if i == 1100:
            grown.delete(ids[1050:1060])
    assert grown._segments[0] is first  # never merged again
    assert max(counts) <= 3 * 4 and min(counts[100:]) < max(counts)  # merges happen, among the small ones
    assert sum(len(s.docs) for s in grown._segments[1:]) < len(first.docs) // 4
    live = [i for i in range(1200) if not 1050 <= i < 1060]
    fresh = BM25()
    fresh.add([ids[i] for i in live], [texts[i] for i in live])
    for query in ["vitamin d bone loss", "cancer cells", "randomized trial of aspirin", "protein expression"]:
        a, b = search_all(grown, query), search_all(fresh, query)
        assert a.keys() == b.keys()
        for doc_id in a:
            assert a[doc_id] == pytest.approx(b[doc_id], rel=1e-5)


def test_a_single_add_costs_what_its_document_holds(scifact_texts: list[str]) -> None:
    # Adding one document to a large index must not copy or allocate arrays the size of the index: its segment is
    # sized by its own postings (not by the vocabulary, as a term pointer per vocabulary term was), and the rows'
    # lengths, live flags and the document frequencies grow in place (moved to a larger buffer only now and then).
    # The saved form (a pointer per vocabulary term) and the answers stay those of one index built at once.
    texts = scifact_texts[:1300]
    ids = [f"doc{i}" for i in range(len(texts))]
    grown = BM25()
    grown.add(ids[:1000], texts[:1000])
    moves = 0
    for i in range(1000, 1300):
        before = (grown._lengths, grown._alive, grown._df)
        grown.add([ids[i]], [texts[i]])
        added = grown._segments[-1] if len(grown._segments[-1].docs) < 400 else None
        if added is not None and set(added.docs.tolist()) == {i}:
            postings = len(added.docs)
            assert len(added.terms) == postings and len(added.term_ptr) == postings + 1  # one posting per term
        after = (grown._lengths, grown._alive, grown._df)
        moves += sum(not np.shares_memory(a, b) for a, b in zip(before, after, strict=True))
        assert grown._lengths[i] > 0 and grown._alive[i]
    assert len(grown.vocab) > 5000 and moves <= 3 * 3  # each of the three arrays moved at most a few times
    assert {s.terms is None for s in grown._segments} == {True, False}  # pointers by term id and by term held
    grown.delete(ids[1100:1110])
    again = BM25.from_state(*grown.state())
    live = [i for i in range(1300) if not 1100 <= i < 1110]
    fresh = BM25()
    fresh.add([ids[i] for i in live], [texts[i] for i in live])
    saved = grown.state()[1]  # the saved form: a pointer per vocabulary term, over the merged postings
    assert saved["term_ptr"].shape == (len(grown.vocab) + 1,) and saved["term_ptr"][-1] == len(saved["docs"])
    for query in ["vitamin d bone loss", "cancer cells", "randomized trial of aspirin", "protein expression"]:
        a, b, c = search_all(grown, query), search_all(fresh, query), search_all(again, query)
        assert a.keys() == b.keys() == c.keys()
        for doc_id in a:
            assert a[doc_id] == pytest.approx(b[doc_id], rel=1e-5) and c[doc_id] == pytest.approx(b[doc_id], rel=1e-5)


def test_an_index_of_few_live_documents_saves_and_loads(scifact_texts: list[str]) -> None:
    # Most documents deleted: the merged segment holds few of the vocabulary's terms, so it keeps its pointers by
    # the terms it holds, and the saved form (a pointer per vocabulary term) must be made from those.
    texts, ids = scifact_texts[:500], [f"doc{i}" for i in range(500)]
    index = BM25()
    index.add(ids[:490], texts[:490])
    index.add(ids[490:], texts[490:])
    index.delete(ids[:490])  # (the save merges the two segments, dropping the deleted documents' postings)
    again = BM25.from_state(*index.state())
    assert index._segments[0].terms is not None and len(index._segments) == 1
    fresh = BM25()
    fresh.add(ids[490:], texts[490:])
    for query in [texts[495][:80], texts[491][:80], "vitamin d bone loss"]:
        a, b = search_all(again, query), search_all(fresh, query)
        assert a.keys() == b.keys() and len(a) > 0
        for doc_id in a:
            assert a[doc_id] == pytest.approx(b[doc_id], rel=1e-5)


def test_scores_follow_each_change_made_after_a_search() -> None:
    """The rows' length normalisation is kept from one query to the next (and made ahead by ``prepare``, as a load
    does): an add, a delete and a new ``b`` after a search must each be scored as the formula says, not with what
    was kept."""
    index = BM25()
    live = dict(list(DOCS.items())[:3])
    index.add(list(live), list(live.values()))
    query = "vitamin d bone supplements"
    for change in ("add", "delete", "b"):
        index.prepare()
        assert search_all(index, query) == pytest.approx(
            reference_scores(index.analyzer, live, query, index.k1, index.b), rel=1e-5
        )
        if change == "add":
            index.add(["d", "f"], [DOCS["d"], DOCS["f"]])
            live.update({"d": DOCS["d"], "f": DOCS["f"]})
        elif change == "delete":
            index.delete(["a"])
            del live["a"]
        else:
            index.b = 0.9
    assert search_all(index, query) == pytest.approx(
        reference_scores(index.analyzer, live, query, index.k1, 0.9), rel=1e-5
    )


def test_custom_analyzer() -> None:
    index = BM25(analyzer=str.split)
    index.add(["1", "2"], ["Bone LOSS", "bone gain"])
    assert index.search("bone")[0] == ["2"]  # str.split keeps case: "Bone" is another term
    assert index.search("LOSS")[0] == ["1"] and index.search("loss")[0] == []


def test_mask_restricts_the_results() -> None:
    index = BM25()
    index.add(list(DOCS), list(DOCS.values()))
    mask = np.zeros(len(DOCS), dtype=bool)
    mask[index.rows["b"]] = True
    ids, _ = index.search("vitamin bone", k=10, mask=mask)
    assert ids == ["b"]
    with pytest.raises(ValueError, match="mask"):
        index.search("bone", mask=np.ones(3, dtype=bool))


def test_an_index_without_ids_is_keyed_by_rows() -> None:
    """``keyed=False``: documents are rows only (the Retriever's chunk rows); the same scores as an index with
    ids, deletes by row, and the string-id methods refused by name (and the reverse)."""
    keyed, rows = BM25(), BM25(keyed=False)
    keyed.add(list(DOCS), list(DOCS.values()))
    assert rows.add_rows(list(DOCS.values())) == range(0, len(DOCS)) and rows.add_rows([]) == range(6, 6)
    np.testing.assert_array_equal(rows.score_rows(["bone"]), keyed.score_rows(["bone"]))
    assert rows.delete_rows([1, 1, 99, -1]) == 1 and keyed.delete(["b"]) == 1 and len(rows) == len(keyed) == 5
    got, scores = rows.search_rows("vitamin bone", k=10)
    want, want_scores = keyed.search("vitamin bone", k=10)
    assert [list(DOCS)[r] for r in got.tolist()] == want and scores.tolist() == want_scores.tolist()
    with pytest.raises(TypeError, match=r"BM25.add: this index has rows only \(keyed=False\); use add_rows"):
        rows.add(["x"], ["text"])
    with pytest.raises(TypeError, match=r"BM25.search: this index has rows only"):
        rows.search("bone")
    with pytest.raises(TypeError, match=r"BM25.delete_rows: this index has string ids; use add, delete, search"):
        keyed.delete_rows([0])
    info, arrays = rows.state()
    assert info["ids"] is None
    again = BM25.from_state(info, arrays)
    assert not again.keyed and len(again) == 5 and again.n_rows == 6
    assert again.search_rows("vitamin bone", k=10)[0].tolist() == got.tolist()
    assert again.add_rows(["more bone"]) == range(6, 7)


def test_equal_scores_come_in_row_order_so_short_lists_start_long_ones() -> None:
    """Top-k selection breaks ties by row: the first k of any longer list is the list of k (what lets a
    Retriever fetch few rows and fetch again when they run short)."""
    index = BM25(keyed=False)
    rng = np.random.default_rng(0)
    index.add_rows([" ".join(rng.choice(["bone", "iron", "pad"], size=int(rng.integers(1, 4)))) for _ in range(500)])
    full, full_scores = index.search_rows("bone iron", k=500)
    assert len(np.unique(full_scores)) < 20  # many ties
    for k in (1, 7, 40, 123, 400):
        rows, _ = index.search_rows("bone iron", k=k)
        assert rows.tolist() == full[:k].tolist(), k
    for score in np.unique(full_scores):
        tied = full[full_scores == score]
        assert (np.diff(tied) > 0).all()


def test_top_rows_equals_a_full_sort_by_score_then_row() -> None:
    """The selection kernels against the plain definition (every allowed row with a score above 0, sorted by score
    then row, cut at k; with groups, the first row of each group in that order), with many ties, dead rows, masks,
    few and many groups, and every k from 1 past the row count."""
    from rapidrag.chunks import first_of_each

    index = BM25(keyed=False)
    index.add_rows(["bone"] * 300)
    index.delete_rows(range(0, 300, 7))
    rng = np.random.default_rng(1)
    for trial in range(40):
        scores = rng.choice(np.float32([0, 0.5, 1, 1.5, 2.25, 3]), size=300).astype(np.float32)
        if trial % 3 == 0:
            scores = rng.random(300, dtype=np.float32) * (rng.random(300) < 0.6)
        mask = None if trial % 2 else rng.random(300) < 0.7
        allowed = index._alive if mask is None else index._alive & mask
        keep = np.flatnonzero((scores > 0) & allowed)
        expected = keep[np.lexsort((keep, -scores[keep]))]
        for k in (1, 2, 9, 10, 40, 299, 300, 1000):
            rows, got = index.top_rows(scores, k, mask=mask)
            assert rows.dtype == np.int64 and got.dtype == np.float32
            assert rows.tolist() == expected[:k].tolist(), (trial, k)
            assert got.tolist() == scores[expected[:k]].tolist()
        groups = rng.integers(0, (3, 40, 300)[trial % 3], 300).astype(np.int64)
        grouped = expected[first_of_each(groups[expected])]
        for k in (1, 2, 3, 9, 10, 40, 300, 1000):
            rows, got = index.top_rows(scores, k, mask=mask, groups=groups)
            assert rows.tolist() == grouped[:k].tolist(), (trial, k)
            assert got.tolist() == scores[grouped[:k]].tolist()
    # Long lists (k >= SELECT_MANY_FROM) over many more rows than 2 k: the buffered kernel keeps its best k several
    # times during the pass, with ties across each cut.
    large = BM25(keyed=False)
    large.add_rows(["bone"] * 3000)
    large.delete_rows(range(0, 3000, 11))
    for trial in range(6):
        scores = rng.choice(np.float32([0, 0.5, 1, 1.5, 2.25, 3]), size=3000).astype(np.float32)
        if trial % 2:
            scores = rng.random(3000, dtype=np.float32) * (rng.random(3000) < 0.6)
        mask = None if trial < 3 else rng.random(3000) < 0.8
        allowed = large._alive if mask is None else large._alive & mask
        keep = np.flatnonzero((scores > 0) & allowed)
        expected = keep[np.lexsort((keep, -scores[keep]))]
        for k in (SELECT_MANY_FROM - 1, SELECT_MANY_FROM, 300, 400, 1000, 2999):
            rows, got = large.top_rows(scores, k, mask=mask)
            assert rows.tolist() == expected[:k].tolist(), (trial, k)
            assert got.tolist() == scores[expected[:k]].tolist()
    with pytest.raises(ValueError, match="groups must be an int64 array"):
        index.top_rows(np.zeros(300, dtype=np.float32), 3, groups=np.zeros(300, dtype=np.int32))
    with pytest.raises(ValueError, match="one value per row"):
        index.top_rows(np.zeros(5, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.top_rows(np.zeros(300, dtype=np.float32), 0)
    assert BM25(keyed=False).top_rows(np.zeros(0, dtype=np.float32), 5)[0].tolist() == []


def test_bad_input_changes_nothing() -> None:
    index = BM25()
    index.add(["x"], ["some text"])
    with pytest.raises(ValueError, match="already indexed"):
        index.add(["y", "x"], ["other", "again"])
    with pytest.raises(ValueError, match="already indexed"):
        index.add(["z", "z"], ["one", "two"])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        index.add(["p", "q"], ["fine", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"ids\[0\]"):
        index.add([3], ["text"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="differ in length"):
        index.add(["p"], [])
    assert len(index) == 1 and index.search("text")[0] == ["x"]
    with pytest.raises(ValueError, match="k must be"):
        index.search("text", k=0)
    with pytest.raises(ValueError, match="k1"):
        BM25(k1=-1)
    assert index.delete(["nope"]) == 0
    index.add([], [])
    index.add(["blank"], [""])  # a document with no words is kept, and never matches
    assert len(index) == 2 and index.search("text")[0] == ["x"]
    empty = BM25()
    assert empty.search("anything")[0] == []


def test_native_word_split_matches_python_regex(stress_texts: list[str], surrogate_texts: list[str]) -> None:
    """The native splitter gives ``re.findall(r"\\w+", text.lower())``, except around the five characters it is
    documented to treat differently (capital sigma in rare contexts, and four letters of Unicode 14)."""
    import re

    from rapidrag import _core

    word = re.compile(r"\w+")
    known = set("\u03a3\ua7cb\ua7d2\ua7d4\ua7dc")
    checked = 0
    for text in stress_texts + surrogate_texts + ["Don't STOP_me now: 3.14 ΟΔΥΣΣΕΥΣ, Σ σ ΣΑ", ""]:
        if known.isdisjoint(text):
            assert _core.split_words(text) == word.findall(text.lower()), text
            checked += 1
    assert checked > 3000
    assert _core.split_words("ΟΔΥΣΣΕΥΣ ΣΑΣ.") == ["οδυσσευς", "σας"]
    with pytest.raises(TypeError, match="text must be str"):
        _core.split_words(b"bytes")  # type: ignore[arg-type]


def test_native_word_prefixes_find_the_longest_term_beginning_each_word(
    stress_texts: list[str], surrogate_texts: list[str]
) -> None:
    r"""``word_prefixes`` gives, for each word that one of the terms begins, where the word begins and the longest
    such term, as a word-by-word reading of ``re.finditer(r"\w+", text.lower())`` does (on texts whose
    lowercasing moves no character, so that the two agree on where a word begins)."""
    import random
    import re

    from rapidrag import _core

    word = re.compile(r"\w+")
    known = set("\u03a3\ua7cb\ua7d2\ua7d4\ua7dc")
    rng = random.Random(5)
    checked = 0
    for text in stress_texts + surrogate_texts + ["Stem cells, Été cellular stems x-cell", ""]:
        lowered = text.lower()
        if not known.isdisjoint(text) or len(lowered) != len(text):
            continue
        words = word.findall(lowered)
        terms = list({w[: rng.randint(1, len(w))] for w in rng.sample(words, min(len(words), 4))} | {"zq"})
        expected = []
        for m in word.finditer(lowered):
            begins = [i for i, t in enumerate(terms) if m.group().startswith(t)]
            if begins:
                expected.append((m.start(), max(begins, key=lambda i: len(terms[i]))))
        starts, ids = _core.word_prefixes(text, terms)
        assert list(zip(starts.tolist(), ids.tolist(), strict=True)) == expected, text
        checked += 1
    assert checked > 3000
    starts, ids = _core.word_prefixes("Stem cells, Été cellular stems", ["cell", "stem", "cellu", "ét"])
    assert starts.tolist() == [0, 5, 12, 16, 25] and ids.tolist() == [1, 0, 3, 2, 1]
    with pytest.raises(TypeError):
        _core.word_prefixes("text", "terms")  # type: ignore[arg-type]


def test_the_native_kernels_refuse_arrays_they_would_misread() -> None:
    # The kernels take arrays as they are (an output converted to another dtype would be written in a copy and
    # lost), and a damaged segment (a posting past the rows, a pointer past the postings) is refused, not followed.
    from rapidrag import _core

    index = BM25()
    index.add(["a", "b"], ["zebra stripes", "zebra"])
    seg = index._segments[0]
    q = np.asarray([index.vocab["zebra"]], dtype=np.int64)
    weights, norms = np.ones(1, dtype=np.float32), np.ones(2, dtype=np.float32)
    scores = np.zeros(2, dtype=np.float32)
    _core.bm25_accumulate(scores, norms, q, weights, seg.terms, seg.term_ptr, seg.docs, seg.tfs, 0.9)
    assert (scores > 0).all()
    with pytest.raises(TypeError):
        wide: Any = scores.astype(np.float64)
        _core.bm25_accumulate(wide, norms, q, weights, seg.terms, seg.term_ptr, seg.docs, seg.tfs, 0.9)
    with pytest.raises(ValueError, match="damaged"):
        _core.bm25_accumulate(scores[:1], norms[:1], q, weights, seg.terms, seg.term_ptr, seg.docs, seg.tfs, 0.9)
    with pytest.raises(ValueError, match="damaged"):
        bad_ptr = seg.term_ptr.copy()
        at = int(q[0]) if seg.terms is None else int(np.searchsorted(seg.terms, q[0]))
        bad_ptr[at + 1] = len(seg.docs) + 5  # the query term's postings would run past the segment's
        _core.bm25_accumulate(scores, norms, q, weights, seg.terms, bad_ptr, seg.docs, seg.tfs, 0.9)
    with pytest.raises(ValueError, match="norms"):
        _core.bm25_accumulate(scores, norms[:1], q, weights, seg.terms, seg.term_ptr, seg.docs, seg.tfs, 0.9)
    rows, best = np.empty(2, dtype=np.int64), np.empty(2, dtype=np.float32)
    with pytest.raises(TypeError):
        _core.bm25_select(scores, np.ones(2, dtype=np.int8), rows, best)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allowed"):
        _core.bm25_select(scores, np.ones(3, dtype=np.bool_), rows, best)
    with pytest.raises(ValueError, match="best"):
        _core.bm25_select(scores, np.ones(2, dtype=np.bool_), rows, best[:1])
    with pytest.raises(ValueError, match="row_splits"):
        _core.fuse_reciprocal_rank(np.arange(3), np.asarray([0, 2], dtype=np.int64), np.ones(1), 60.0)
