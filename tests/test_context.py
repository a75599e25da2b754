"""Context packing (rapidrag.context), the grounding check (rapidrag.grounding) and the sentence splitter they share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rapidrag
from rapidrag import Chunker, Retriever, Tokenizer
from rapidrag.context import Context, pack
from rapidrag.grounding import ground
from rapidrag.sentences import sentence_spans

# Three documents of several sentences, chunked small so that a document has several chunks; "twin" repeats "cells".
CELLS = (
    "Stem cells renew themselves for the whole life of the organism. They divide asymmetrically, keeping one "
    "daughter as a stem cell. In the bone marrow, about 1 in 10,000 cells is a hematopoietic stem cell. Their "
    "niche is kept by osteoblasts and endothelial cells. Ageing lowers their number and their output of B cells."
)
VOLCANO = (
    "Mount Etna is an active volcano on the east coast of Sicily. It erupted 17 times between 2000 and 2020. "
    "Its summit is 3,357 m high, and it changes with each eruption. Lava flows have reached the town of Catania."
)
TEA = (
    "Green tea is made from unoxidised leaves of Camellia sinensis. It contains catechins such as EGCG. Brewing "
    "at 80 degrees keeps the taste mild. Japan and China produce most of the world's green tea."
)
DOCS = [
    {"id": "cells", "text": CELLS, "metadata": {"topic": "biology"}},
    {"id": "twin", "text": CELLS, "metadata": {"topic": "biology"}},
    {"id": "etna", "text": VOLCANO},
    {"id": "tea", "text": TEA},
]


@pytest.fixture(scope="module")
def embedder(minilm_dir: Path) -> rapidrag.Embedder:
    return rapidrag.Embedder(minilm_dir, max_length=128)


@pytest.fixture(scope="module")
def index(embedder: rapidrag.Embedder) -> Retriever:
    r = Retriever(embedder, chunker=Chunker(embedder.tokenizer, max_tokens=24))
    r.add(DOCS)
    return r


def _check(ctx: Context, index: Retriever, budget: int, tokenizer: Tokenizer) -> None:
    """What every context must hold: items are exact spans of their documents, counted as written, numbered in
    prompt order, and the whole text is within the budget by the tokenizer's own count."""
    assert ctx.tokens == (tokenizer.count_tokens(ctx.text) if ctx.text else 0)
    assert ctx.tokens <= budget
    assert [item.citation for item in ctx.items] == list(range(1, len(ctx.items) + 1))
    for item in ctx.items:
        assert index.get(item.doc_id).text[item.start : item.end] == item.text
        assert f"[{item.citation}] {item.text}" in ctx.text
        assert item.tokens == tokenizer.count_tokens(f"[{item.citation}] {item.text}")
    assert ctx.text == "\n\n".join(f"[{i.citation}] {i.text}" for i in ctx.items)


@pytest.mark.parametrize("strategy", ["chunks", "window", "sentences"])
@pytest.mark.parametrize("budget", [0, 5, 40, 120, 1000])
def test_every_strategy_fits_the_budget_with_exact_citations(index: Retriever, strategy: str, budget: int) -> None:
    query = "how many hematopoietic stem cells are in the bone marrow"
    ctx = index.context(query, budget, strategy=strategy, k=10)
    _check(ctx, index, budget, index.embedder.tokenizer)  # type: ignore[union-attr]
    if budget >= 120:
        assert ctx.items and ctx.items[0].doc_id in ("cells", "twin")
        assert "1 in 10,000" in ctx.text
    if budget == 0:
        assert ctx.items == [] and ctx.text == "" and ctx.tokens == 0
        assert {d.reason for d in ctx.dropped} == {"budget", "duplicate"}  # "twin" repeats "cells"


def test_a_budget_below_the_smallest_item_gives_an_empty_context_and_the_reason(index: Retriever) -> None:
    ctx = index.context("Etna eruptions", 3, strategy="chunks", dedupe=None)
    assert ctx.items == [] and ctx.text == ""
    assert {d.reason for d in ctx.dropped} == {"budget"}
    assert all(d.tokens is not None and d.tokens > 3 for d in ctx.dropped)


def test_adjacent_chunks_of_one_document_merge_into_one_item(index: Retriever) -> None:
    result = index.search("stem cells bone marrow niche osteoblasts divide", 10, per_document=False)
    cells = sorted((h for h in result if h.doc_id == "cells"), key=lambda h: h.start)
    assert len(cells) >= 2, "the test needs two chunks of one document"
    ctx = pack(result, 1000, source=index, strategy="chunks", dedupe=None)
    merged = [item for item in ctx.items if item.doc_id == "cells"]
    assert len(merged) == 1
    assert set(merged[0].chunk_ids) == {h.chunk_id for h in cells}
    assert merged[0].start == cells[0].start and merged[0].end >= cells[-1].end
    apart = pack(result, 1000, source=index, strategy="chunks", dedupe=None, merge=False)
    assert len([i for i in apart.items if i.doc_id == "cells"]) == len(cells)


def test_window_grows_a_hit_to_about_the_window_within_its_document(index: Retriever) -> None:
    result = index.search("Catania lava", 1, mode="lexical")
    hit = result[0]
    tok = index.embedder.tokenizer  # type: ignore[union-attr]
    ctx = pack(result, 1000, source=index, strategy="window", window_tokens=40)
    (item,) = ctx.items
    assert item.start <= hit.start and item.end >= hit.end
    assert tok.count_tokens(item.text) >= min(40, tok.count_tokens(VOLCANO)) - 2
    assert tok.count_tokens(item.text) <= 40 + 4  # ends moved out to whole words
    assert item.text == VOLCANO[item.start : item.end]


def test_sentences_keep_the_best_matching_sentence_and_its_neighbours(index: Retriever) -> None:
    query = "summit height of Etna"
    result = index.search(query, 1, mode="lexical", per_document=False)
    ctx = pack(result, 1000, source=index, query=query, strategy="sentences", sentence_window=0)
    (item,) = ctx.items
    assert item.text == "Its summit is 3,357 m high, and it changes with each eruption."
    wider = pack(result, 1000, source=index, query=query, strategy="sentences", sentence_window=1)
    assert wider.items[0].text.startswith("It erupted 17 times") and wider.items[0].text.endswith("Catania.")


def test_a_sentence_window_is_placed_where_it_holds_the_most_of_the_query(embedder: rapidrag.Embedder) -> None:
    """The title and the first sentence tie on "vitamin D"; the window around the first sentence also holds
    "fractures", so it is the one kept (around the title it would leave the dose out)."""
    text = (
        "Vitamin D and bones\n\nVitamin D deficiency leads to bone loss in older adults. Supplements of 800 IU per"
        " day reduce fractures by 20%. Calcium intake matters too. Most adults get enough sun in summer."
    )
    r = Retriever(embedder)
    r.add([{"id": "d", "text": text}, {"id": "e", "text": "Iron deficiency causes anaemia."}])
    query = "how much vitamin D prevents fractures"
    result = r.search(query, 1, mode="lexical")
    (item,) = pack(result, 1000, source=r, query=query, strategy="sentences", sentence_window=1).items
    assert item.text == text[: text.index(" Calcium")]  # the first sentence and one each side
    (alone,) = pack(result, 1000, source=r, query=query, strategy="sentences", sentence_window=0).items
    assert alone.text == "Vitamin D and bones"  # one sentence: the first of the two that match best


def test_near_duplicates_are_dropped_and_say_of_which_item(index: Retriever) -> None:
    query = "stem cells renew themselves"
    ctx = index.context(query, 1000, strategy="chunks", per_document=True)
    assert {i.doc_id for i in ctx.items} & {"cells", "twin"} != {"cells", "twin"}
    (dup,) = [d for d in ctx.dropped if d.reason == "duplicate"]
    kept = next(i for i in ctx.items if i.doc_id in ("cells", "twin"))
    assert dup.doc_id != kept.doc_id and dup.of == kept.citation and dup.similarity is not None
    assert dup.similarity > 0.95
    both = index.context(query, 1000, strategy="chunks", per_document=True, dedupe=None)
    assert {"cells", "twin"} <= {i.doc_id for i in both.items}


def test_near_duplicates_without_vectors_by_word_overlap(index: Retriever) -> None:
    result = index.search("stem cells renew themselves", 4, mode="lexical")
    tok = index.embedder.tokenizer  # type: ignore[union-attr]
    ctx = pack(result, 1000, tokenizer=tok, strategy="chunks")  # no source: no stored vectors
    assert any(d.reason == "duplicate" and d.similarity == 1.0 for d in ctx.dropped)


def test_order_edges_puts_the_best_first_and_the_second_last(index: Retriever) -> None:
    query = "volcano eruptions Sicily green tea stem cells"
    by_score = index.context(query, 1000, strategy="chunks", dedupe=None)
    edges = index.context(query, 1000, strategy="chunks", dedupe=None, order="edges")
    assert len(by_score.items) >= 3
    assert edges.items[0].text == by_score.items[0].text
    assert edges.items[-1].text == by_score.items[1].text
    assert [i.citation for i in edges.items] == list(range(1, len(edges.items) + 1))


def _generator_tokenizer(folder: Path) -> Any:
    """A small byte-level BPE trained on the test documents, saved as ``folder / "tokenizer.json"``: a generator's
    tokenizer unlike the index's (it splits "10" in two, where it keeps "9" whole)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE(unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.train_from_iterator([CELLS, VOLCANO, TEA] * 5, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]))
    hf.save(str(folder / "tokenizer.json"))
    return hf


def test_the_generator_tokenizer_counts_the_budget(index: Retriever, tmp_path: Path) -> None:
    hf = _generator_tokenizer(tmp_path)
    generator = Tokenizer.from_file(tmp_path / "tokenizer.json")
    ctx = index.context("stem cells", 60, tokenizer=tmp_path / "tokenizer.json")
    assert ctx.tokens == generator.count_tokens(ctx.text) <= 60
    assert ctx.tokens == len(hf.encode(ctx.text, add_special_tokens=False).ids)


@pytest.mark.parametrize("order", ["score", "edges"])
def test_each_item_counts_its_tokens_with_its_own_citation_number(index: Retriever, tmp_path: Path, order: str) -> None:
    """Pieces are counted before they get their place; where "[9]" and "[10]" tokenize differently, an item that
    moved (the "edges" order, a piece dropped before it) must be counted again as written."""
    _generator_tokenizer(tmp_path)
    generator = Tokenizer.from_file(tmp_path / "tokenizer.json")
    assert generator.count_tokens("[9] x") != generator.count_tokens("[10] x")  # the premise
    ctx = index.context("stem cells", 2000, k=20, strategy="chunks", merge=False, dedupe=None, order=order,
                        tokenizer=tmp_path / "tokenizer.json")  # fmt: skip
    assert len(ctx.items) >= 10
    for item in ctx.items:
        assert item.tokens == generator.count_tokens(f"[{item.citation}] {item.text}")


def test_without_a_source_the_hits_own_text_is_packed(index: Retriever) -> None:
    result = index.search("green tea catechins", 3, per_document=False)
    with pytest.raises(ValueError, match="tokenizer"):
        pack(result, 100)
    ctx = pack(result, 100, tokenizer=index.embedder.tokenizer)  # type: ignore[union-attr]
    _check(ctx, index, 100, index.embedder.tokenizer)  # type: ignore[union-attr]


def test_a_hit_whose_document_was_deleted_is_dropped_as_missing(embedder: rapidrag.Embedder) -> None:
    r = Retriever(embedder, chunker=Chunker(embedder.tokenizer, max_tokens=24))
    r.add(DOCS)
    result = r.search("green tea", 3)
    r.delete(["tea"])
    ctx = pack(result, 500, source=r)
    assert "tea" not in {i.doc_id for i in ctx.items}
    assert any(d.doc_id == "tea" and d.reason == "missing" for d in ctx.dropped)


def test_cost_per_query_and_per_thousand(index: Retriever) -> None:
    ctx = index.context("Etna", 200)
    cost = ctx.cost(2.5, 10.0, output_tokens=300, prompt_tokens=50)
    assert cost.input_tokens == ctx.tokens + 50 and cost.output_tokens == 300
    assert cost.per_query == pytest.approx(((ctx.tokens + 50) * 2.5 + 300 * 10.0) / 1e6)
    assert cost.per_1000_queries == pytest.approx(cost.per_query * 1000)
    assert ctx.cost(0.0).per_query == 0.0
    for bad in (-1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="input_price"):
            ctx.cost(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_price"):
        ctx.cost(1.0, -0.5)
    with pytest.raises(ValueError, match="output_tokens"):
        ctx.cost(1.0, output_tokens=-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_tokens": -1}, "budget_tokens"),
        ({"budget_tokens": 1.5}, "budget_tokens"),
        ({"strategy": "paragraphs"}, "strategy"),
        ({"window_tokens": 0}, "window_tokens"),
        ({"sentence_window": -1}, "sentence_window"),
        ({"dedupe": 0.0}, "dedupe"),
        ({"dedupe": 1.5}, "dedupe"),
        ({"diversity": 2}, "diversity"),
        ({"order": "random"}, "order"),
        ({"template": "[{citation}]"}, "template"),
        ({"template": "{text} {page}"}, "template"),
    ],
)
def test_bad_settings_are_refused_by_name(index: Retriever, kwargs: dict[str, object], message: str) -> None:
    result = index.search("Etna", 2)
    args = {"budget_tokens": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        pack(result, args.pop("budget_tokens"), source=index, **args)  # type: ignore[arg-type]


def test_a_result_that_is_not_hits_is_refused(index: Retriever) -> None:
    with pytest.raises(TypeError, match="result"):
        pack("some text", 100, source=index)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"result\[0\]"):
        pack([{"doc_id": "x"}], 100, source=index)  # type: ignore[list-item]


def test_the_context_serialises(index: Retriever) -> None:
    ctx = index.context("hematopoietic stem cells", 120)
    data = ctx.to_dict()
    assert data["tokens"] == ctx.tokens and data["budget_tokens"] == 120
    assert [i["citation"] for i in data["items"]] == [i.citation for i in ctx.items]
    assert data["items"][0]["metadata"] == {"topic": "biology"}
    md = ctx.to_markdown()
    assert md.startswith(ctx.text) and "of 120 tokens" in md


@settings(max_examples=40, deadline=None)
@given(budget=st.integers(0, 400), strategy=st.sampled_from(["chunks", "window", "sentences"]), k=st.integers(1, 12))
def test_property_any_budget(index: Retriever, budget: int, strategy: str, k: int) -> None:
    ctx = index.context("stem cells volcano tea", budget, strategy=strategy, k=k, window_tokens=30)
    _check(ctx, index, budget, index.embedder.tokenizer)  # type: ignore[union-attr]
    covered = {(i.doc_id, c) for i in ctx.items for c in i.chunk_ids}
    dropped = {(d.doc_id, c) for d in ctx.dropped for c in d.chunk_ids}
    assert covered.isdisjoint(dropped)


# -- grounding ---------------------------------------------------------------------------------------------------


def test_grounding_marks_copied_paraphrased_and_unrelated_sentences(index: Retriever) -> None:
    ctx = index.context("Etna volcano eruptions and height", 300, strategy="chunks")
    answer = (
        "Mount Etna is an active volcano on the east coast of Sicily. "
        "It erupted 17 times between 2000 and 2020. "
        "Bananas are rich in potassium."
    )
    g = ground(answer, ctx, source=index)
    copied, counted, unrelated = g.sentences
    assert [s.text for s in g.sentences] == [answer[s.start : s.end] for s in g.sentences]
    assert copied.status == "supported" and copied.support is not None
    assert copied.support.doc_id == "etna" and "east coast of Sicily" in copied.support.text
    item = next(i for i in ctx.items if i.citation == copied.support.citation)
    assert item.doc_id == "etna"
    assert index.get("etna").text[copied.support.start : copied.support.end] == copied.support.text  # type: ignore[union-attr]
    assert counted.status == "supported" and counted.missing == ()
    assert unrelated.status == "unverified" and unrelated.score < copied.score
    assert g.count("supported") == 2 and g.count("unverified") == 1
    assert "unverified" in g.to_markdown() and "false" not in g.to_markdown().lower()


def test_grounding_reports_numbers_and_names_its_support_lacks(index: Retriever) -> None:
    ctx = index.context("Etna eruptions", 300, strategy="chunks")
    g = ground("Mount Etna erupted 23 times between 2000 and 2020 according to Vesuvius Institute.", ctx, source=index)
    (s,) = g.sentences
    assert "23" in s.missing and "Vesuvius Institute" in s.missing
    assert "2000" not in s.missing and "Etna" not in s.missing
    assert s.status != "supported"  # a number its source does not state is not "supported"


def test_grounding_without_a_source_uses_the_context_alone(index: Retriever) -> None:
    ctx = index.context("green tea", 300)
    g = ground("Green tea contains catechins such as EGCG.", ctx)
    assert g.sentences[0].support is not None and g.sentences[0].support.doc_id == "tea"
    assert set(g.sentences[0].signals) == {"lexical"}


def test_grounding_an_empty_context_leaves_every_sentence_unverified(index: Retriever) -> None:
    ctx = index.context("Etna", 0)
    g = ground("Etna is a volcano. It is in Sicily.", ctx, source=index)
    assert [s.status for s in g.sentences] == ["unverified", "unverified"]
    assert all(s.support is None for s in g.sentences)


def test_grounding_with_an_nli_model_plugged_in(index: Retriever, reranker_dir: Path) -> None:
    nli = rapidrag.Reranker(reranker_dir)
    ctx = index.context("Etna eruptions", 300)
    sentence = "Etna erupted 17 times between 2000 and 2020."
    g = ground(sentence, ctx, source=index, nli=nli)
    (s,) = g.sentences
    assert s.support is not None and "nli" in s.signals
    expected = 1 / (1 + np.exp(-float(nli.score(sentence, [s.support.text])[0])))
    assert s.score == pytest.approx(expected, abs=1e-5)


def test_grounding_bad_input(index: Retriever, embedder: rapidrag.Embedder) -> None:
    ctx = index.context("Etna", 200)
    with pytest.raises(ValueError, match="answer is empty"):
        ground("  \n", ctx)
    with pytest.raises(TypeError, match="answer must be a str"):
        ground(b"bytes", ctx)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context must be a rapidrag Context"):
        ground("Etna.", {"text": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thresholds"):
        ground("Etna.", ctx, thresholds=(0.2, 0.5))
    other = Retriever(embedder, chunker=Chunker(embedder.tokenizer, max_tokens=24))
    other.add([{"id": "etna", "text": "Etna is a volcano. " + VOLCANO}])
    with pytest.raises(ValueError, match="another index"):
        ground("Etna is a volcano.", ctx, source=other)


# -- sentences ---------------------------------------------------------------------------------------------------


def test_sentences_respect_abbreviations_initials_and_decimals() -> None:
    text = (
        "Levels rose by 2.5 percent (Smith et al. 2020), e.g. in mice. J. R. Tolkien wrote it in approx. three "
        "years! Was it true? Yes.\n\nA new paragraph follows\n\nwithout a stop"
    )
    got = [text[a:b] for a, b in sentence_spans(text)]
    assert got == [
        "Levels rose by 2.5 percent (Smith et al. 2020), e.g. in mice.",
        "J. R. Tolkien wrote it in approx. three years!",
        "Was it true?",
        "Yes.",
        "A new paragraph follows",
        "without a stop",
    ]


def test_sentences_of_a_range_and_bad_input() -> None:
    text = "One. Two. Three."
    assert [text[a:b] for a, b in sentence_spans(text, 5, 16)] == ["Two.", "Three."]
    with pytest.raises(ValueError, match="outside"):
        sentence_spans(text, 3, 40)
    with pytest.raises(TypeError, match="text must be a str"):
        sentence_spans(None)  # type: ignore[arg-type]


_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
_NEXT_START = re.compile(r"\s+([\"'\u2018\u201c(\[]*)(\S)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def _reference_sentence_spans(text: str, start: int, stop: int) -> list[tuple[int, int]]:
    """The splitter's rules written plainly with regular expressions (its first implementation): the oracle
    for the native scan (the abbreviations are the splitter's own list: data, not a rule)."""
    from rapidrag.sentences import _ABBREVIATIONS

    cuts = set()
    for m in _END.finditer(text, start, stop):
        nxt = _NEXT_START.match(text, m.end(), stop)
        if nxt is None or nxt.group(2).islower():
            continue
        if text[m.start()] == ".":
            begin = m.start()
            while begin > 0 and not text[begin - 1].isspace():
                begin -= 1
            before = text[begin : m.start()].lstrip("\"'(\u201c\u2018[")
            if begin < m.start() and (
                before.lower().rstrip(".") in _ABBREVIATIONS or (len(before) == 1 and before.isupper())
            ):
                continue
        cuts.add(m.end())
    cuts |= {m.start() for m in _PARAGRAPH.finditer(text, start, stop)}
    spans, begin = [], start
    for cut in sorted(cuts) + [stop]:
        a, b = begin, cut
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
        begin = cut
    return spans


_SENTENCE_ALPHABET = " \n\t\u00a0\u2003.!?\u2026\"'\u2019\u201d)]\u2018\u201c([aAbBzZJIe.g0123\u0130\u03a3"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_SENTENCE_ALPHABET, max_size=60) | st.text(max_size=60), st.data())
def test_property_sentences_follow_the_rules_written_plainly(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    stop = data.draw(st.integers(start, len(text)))
    assert sentence_spans(text, start, stop) == _reference_sentence_spans(text, start, stop)


@given(st.text(max_size=300))
def test_property_sentences_cover_every_visible_character_in_order(text: str) -> None:
    spans = sentence_spans(text)
    assert all(a < b for a, b in spans)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    inside = np.zeros(len(text), dtype=bool)
    for a, b in spans:
        inside[a:b] = True
        assert not text[a].isspace() and not text[b - 1].isspace()
    visible = np.array([not ch.isspace() for ch in text], dtype=bool)
    assert (inside | ~visible).all()


_WORDS = st.sampled_from(["stem", "stems", "cell", "cells", "studi", "study", "studies", "st", "İstanbul", "x_1", "é"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(_WORDS, st.text(alphabet="abcsty .!?\n-İ", max_size=12)), max_size=40),
    st.lists(st.sampled_from(["stem", "cell", "studi", "st", "istanbul", "x_1"]), min_size=1, max_size=4),
)
@example(words=["İstanbul", "stems."], terms=["istanbul"])  # a case-blind match whose lowercase is not the term
def test_property_sentence_scores_hold_the_longest_term_beginning_each_word(words: list[str], terms: list[str]) -> None:
    """Each sentence scores the summed weight of the query terms that begin its words (at each word the longest
    term that begins it; "y" for a stem's final "i"), as a plain word-by-word reading finds them."""
    from rapidrag.context import _SentenceMatcher

    text = " ".join(words)
    matcher = _SentenceMatcher(" ".join(terms), None)
    spans = sentence_spans(text)
    scores = [matcher.weight(h) for h in matcher.held(text, spans)]
    assert len(scores) == len(spans)
    if len(text.lower()) != len(text):
        return  # lowercasing moves characters: the case-blind search, checked by the example above not to fail
    alternatives = {t: t for t in matcher.terms} | {t[:-1] + "y": t for t in matcher.terms if t.endswith("i")}
    for (a, b), score in zip(spans, scores, strict=True):
        held = set()
        for word in re.findall(r"\w+", text[a:b].lower()):
            begins = [alt for alt in alternatives if word.startswith(alt)]
            if begins:
                held.add(alternatives[max(begins, key=len)])
        assert score == sum(sorted(matcher.terms[t] for t in held))


def test_what_packing_keeps_of_a_document_is_what_it_would_compute(index: Retriever) -> None:
    """The cache of documents gives the spans, token offsets and span counts computed afresh, keeps one entry per
    text by identity, and keeps token offsets within its bound."""
    from rapidrag.context import _DocumentCache

    tok = index.embedder.tokenizer
    cache = _DocumentCache(capacity=2, offset_tokens=64)
    whole = (0, len(CELLS))
    spans = cache.spans(CELLS, whole)
    assert spans == sentence_spans(CELLS) and cache.spans(CELLS, whole) is spans
    assert cache.counts(tok, [(CELLS, a, b) for a, b in spans]) == [tok.count_tokens(CELLS[a:b]) for a, b in spans]
    _, offsets = tok.encode(VOLCANO, add_special_tokens=False, return_offsets=True)
    assert np.array_equal(cache.offsets(VOLCANO, tok, (0, len(VOLCANO))), offsets)
    assert cache._offset_total == 0  # over a quarter of the bound: not kept
    short = "Etna erupted."
    assert np.array_equal(
        cache.offsets(short, tok, (0, len(short))), tok.encode(short, add_special_tokens=False, return_offsets=True)[1]
    )
    assert 0 < cache._offset_total <= 64
    stretch = cache.offsets(VOLCANO, tok, (13, 40))  # a stretch: offsets into the whole text
    assert np.array_equal(stretch, tok.encode(VOLCANO[13:40], add_special_tokens=False, return_offsets=True)[1] + 13)
    cache.spans(TEA, (0, len(TEA)))
    assert len(cache._entries) == 2  # the oldest (CELLS) went


def _long_document(sentences: int) -> str:
    """A long text of numbered sentences, a blank line every fifth (so that every cut can be checked)."""
    out = []
    for i in range(sentences):
        topic = "volcano lava erupted" if i % 97 == 41 else "tea leaves were brewed"
        out.append(f"Sentence {i} says the {topic} on day {i}." + ("\n\n" if i % 5 == 4 else " "))
    return "".join(out)


@pytest.mark.parametrize(
    ("template", "separator"),
    [
        ("[{citation}] {text}", "\n\n"),
        ("Source {citation} ({doc_id}):\n{text}\n", "\n---\n"),
        ("Passage{citation}:{text}End", "and"),  # letters against the text: counts do not add up here
        ("{text}", "x"),
    ],
)
@pytest.mark.parametrize("strategy", ["chunks", "window", "sentences"])
def test_counts_are_exact_whatever_the_template_and_separator(
    index: Retriever, template: str, separator: str, strategy: str
) -> None:
    """Each item counts its text as written, and the context its whole text, by the tokenizer's own count, whether
    counts add up (whitespace around the text and in the separator) or not."""
    tok = index.embedder.tokenizer  # type: ignore[union-attr]
    for budget in (60, 200, 1000):
        ctx = index.context(
            "stem cells volcano tea", budget, strategy=strategy, k=8, window_tokens=30, template=template,
            separator=separator, order="edges",
        )  # fmt: skip
        assert ctx.tokens == (tok.count_tokens(ctx.text) if ctx.text else 0) <= budget
        written = [template.format(citation=i.citation, doc_id=i.doc_id, text=i.text) for i in ctx.items]
        assert ctx.text == separator.join(written)
        assert [i.tokens for i in ctx.items] == [tok.count_tokens(w) for w in written]


def test_counts_do_not_add_up_where_the_template_joins_the_text_to_a_word(index: Retriever) -> None:
    """A template with letters against the text is counted as written: "z" + "ebra" is one word, "zebra"."""
    from rapidrag.documents import Hit

    tok = index.embedder.tokenizer  # type: ignore[union-attr]
    hits = [Hit("a", 0, "ebra crossing", 0, 13, 1.0, {}, {}), Hit("b", 0, "ebra", 0, 4, 0.5, {}, {})]
    ctx = pack(hits, 100, tokenizer=tok, template="z{text}", separator=" ", dedupe=None)
    assert [i.tokens for i in ctx.items] == [2, 1]  # not 1 + 3 and 1 + 2
    assert ctx.text == "zebra crossing zebra" and ctx.tokens == tok.count_tokens(ctx.text) == 3


def test_spans_counted_from_a_windows_token_offsets_count_as_the_tokenizer_does(
    index: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tokenizer that splits at whitespace, a span whose ends are at whitespace is counted from the token
    offsets a window kept (the tokenizer is not called for it); any other span is counted. Every count equals the
    tokenizer's own, over words that WordPiece splits, accents, CJK, punctuation, a special token, control
    characters and a word past its longest."""
    from rapidrag.context import _DocumentCache

    tok = index.embedder.tokenizer  # type: ignore[union-attr]
    assert tok.splits_at_whitespace
    text = (
        "Ünïcode naïve café [SEP] tokenization\tof 東京タワー and x\x1cy, unbelievably"
        " " + "z" * 120 + " \u00a0 ends (here).\r\nNext line:\x00 done  "
    ) * 3
    cache = _DocumentCache(capacity=4, offset_tokens=1 << 16)
    cache.offsets(text, tok, (0, len(text)))
    rng = np.random.default_rng(0)
    spaces = [i for i, c in enumerate(text) if c in " \t\n\r"]
    starts, ends = np.asarray([0] + [i + 1 for i in spaces]), np.asarray([*spaces, len(text)])
    pairs = zip(rng.choice(starts, 900), rng.choice(ends, 900), strict=True)
    spans = [(int(a), int(b)) for a, b in pairs if a <= b][:300]
    spans += [(int(min(a, b)), int(max(a, b))) for a, b in rng.integers(0, len(text) + 1, (300, 2))]
    counted: list[str] = []
    count_tokens = tok.count_tokens

    def spy(texts: list[str], **kwargs: object) -> object:
        counted.extend(texts)
        return count_tokens(texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tok, "count_tokens", spy)
    got = cache.counts(tok, [(text, a, b) for a, b in spans])
    monkeypatch.undo()
    assert got == [tok.count_tokens(text[a:b]) for a, b in spans]
    at_spaces = {
        (a, b) for a, b in spans if (a == 0 or text[a - 1] in " \t\n\r") and (b == len(text) or text[b] in " \t\n\r")
    }  # the 300 chosen so, and a few of the random ones
    assert len(at_spaces) > 200 and sorted(counted) == sorted(text[a:b] for a, b in set(spans) - at_spaces)


@pytest.mark.parametrize("strategy", ["chunks", "window", "sentences"])
def test_a_long_document_is_read_near_its_hits_with_the_same_pieces(embedder: rapidrag.Embedder, strategy: str) -> None:
    """A document over ``LONG_TEXT`` characters is read in stretches around its hits (bounded work per hit), and
    the pieces are those of reading it whole: the same sentences, the same windows."""
    import rapidrag.context as context

    text = _long_document(3000)  # some 150,000 characters
    assert len(text) > 5 * context.LONG_TEXT
    r = Retriever(None, None, Chunker(embedder.tokenizer, max_tokens=48))
    r.add([{"id": "long", "text": text}, {"id": "short", "text": VOLCANO}])
    hits = r.search("volcano lava erupted", 8, mode="lexical", per_document=False)
    assert {h.doc_id for h in hits} >= {"long"}
    near = pack(hits, 400, source=r, query="volcano lava erupted", strategy=strategy, tokenizer=embedder.tokenizer)
    _check(near, r, 400, embedder.tokenizer)
    saved = context.LONG_TEXT
    try:
        context.LONG_TEXT = 10**9  # every document read whole
        context._DOCUMENTS.__init__(4096, offset_tokens=1 << 21)
        whole = pack(hits, 400, source=r, query="volcano lava erupted", strategy=strategy, tokenizer=embedder.tokenizer)
    finally:
        context.LONG_TEXT = saved
        context._DOCUMENTS.__init__(4096, offset_tokens=1 << 21)
    assert [(i.doc_id, i.start, i.end) for i in near.items] == [(i.doc_id, i.start, i.end) for i in whole.items]
    assert any(i.doc_id == "long" for i in near.items)


def test_top_level_names_are_lazy() -> None:
    assert rapidrag.pack is pack and rapidrag.ground is ground and rapidrag.Context is Context
    assert re.search(r"\bground\b", " ".join(dir(rapidrag)))
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(dir(rapidrag))  # typing's names are not the package's


def test_a_lexical_index_without_a_tokenizer_says_how_to_give_one() -> None:
    lexical = Retriever()
    lexical.add([{"id": "a", "text": "Etna is a volcano in Sicily."}])
    with pytest.raises(ValueError, match=r"no tokenizer to count the budget with.*tokenizer=, or --tokenizer PATH"):
        pack(lexical.search("Etna", 1), 100, source=lexical)
