"""Tests of rapidrag.Chunker against its contract (API.md): properties, boundary preference, threads, bad input, data.

Contract: chunk.text == text[start:end]; n_tokens == count_tokens(chunk.text) <= max_tokens; starts strictly
increase; every char outside all chunks is whitespace; overlap=0: chunks do not overlap; overlap=k>0:
consecutive chunks share exactly k tokens of the document's token sequence; boundaries preferred in order blank
line, line break, sentence end, whitespace; a word is split only when it alone exceeds max_tokens;
empty or whitespace-only text gives [].
"""

from __future__ import annotations

import bisect
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from unicode_stress import SPECIAL_TOKENS, replace_surrogates

import rapidrag

MAX_TOKENS = [8, 16, 64, 256]
OVERLAPS = [0, 1, 4]
# Words that are one token each in the uncased BERT vocabulary (checked in test_crafted_words_are_single_tokens).
W = (
    "the cat sat on a mat with red hat and big dog ran far away from home over hill under tree into town near lake"
).split()


def _bert_space(c: str) -> bool:
    """Whitespace as BERT's normalizer sees it (other Python-whitespace controls are dropped, not separators)."""
    return c in " \t\n\r\u2028\u2029" or unicodedata.category(c) == "Zs"


def _clean_boundary(text: str, p: int) -> bool:
    """True when a cut at p cannot change the tokens on either side: text edge or BERT whitespace next to it."""
    return p == 0 or p == len(text) or _bert_space(text[p - 1]) or _bert_space(text[p])


def _words(text: str) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of non-whitespace chars (str.isspace, as in the coverage contract)."""
    out, start = [], None
    for i, c in enumerate(text):
        if c.isspace():
            if start is not None:
                out.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        out.append((start, len(text)))
    return out


def check_chunks(
    text: str, chunks: Any, tok: Any, max_tokens: int, overlap: int, hf: Any | None = None, words: bool = False
) -> None:
    """Assert every clause of the chunker contract for one text (and the word clause when ``words``)."""
    assert isinstance(chunks, list), type(chunks)
    if not text.strip():  # str.strip removes exactly the str.isspace chars
        assert chunks == [], f"whitespace-only text {text!r} gave {chunks!r}"
        return
    assert chunks, f"no chunks for {text[:200]!r}"
    prev_start = -1
    for i, c in enumerate(chunks):
        assert isinstance(c, rapidrag.Chunk), type(c)
        assert all(type(v) is int for v in (c.start, c.end, c.n_tokens)), c
        assert 0 <= c.start < c.end <= len(text), f"chunk {i} span ({c.start}, {c.end}) in a text of {len(text)}"
        assert c.text == text[c.start : c.end], f"chunk {i}: text != original[start:end]"
        assert c.start > prev_start, f"chunk {i} start {c.start} not after {prev_start}"
        prev_start = c.start
        assert c.n_tokens <= max_tokens, f"chunk {i} has n_tokens {c.n_tokens} > {max_tokens}: {c.text[:200]!r}"
    counts = tok.count_tokens([c.text for c in chunks])
    for i, c in enumerate(chunks):
        assert c.n_tokens == counts[i], (
            f"chunk {i}: n_tokens {c.n_tokens} != count_tokens(text) {counts[i]}: {c.text[:200]!r}"
        )
    if hf is not None:
        hf_counts = [
            len(e.ids) for e in hf.encode_batch([replace_surrogates(c.text) for c in chunks], add_special_tokens=False)
        ]
        over = [(i, n) for i, n in enumerate(hf_counts) if n > max_tokens]
        assert not over, (
            f"chunks over {max_tokens} tokens by the HF count: {[(i, n, chunks[i].text[:120]) for i, n in over[:3]]}"
        )
    # Coverage: every char outside all chunks is whitespace.
    covered_to = 0
    for i, c in enumerate(chunks):
        gap = text[covered_to : c.start]
        assert all(ch.isspace() for ch in gap), (
            f"chars {covered_to}..{c.start} {gap[:80]!r} before chunk {i} not covered"
        )
        covered_to = max(covered_to, c.end)
    tail = text[covered_to:]
    assert all(ch.isspace() for ch in tail), f"tail {tail[:80]!r} from {covered_to} not covered"
    # Overlap.
    if overlap == 0:
        for i in range(len(chunks) - 1):
            assert chunks[i].end <= chunks[i + 1].start, f"chunks {i} and {i + 1} overlap with overlap=0"
    else:
        _, doc_offs = tok.encode(text, add_special_tokens=False, return_offsets=True)
        so, eo = doc_offs[:, 0], doc_offs[:, 1]
        for i in range(len(chunks) - 1):
            a, b = chunks[i], chunks[i + 1]
            in_a = np.nonzero((so >= a.start) & (eo <= a.end))[0]  # the document's tokens inside chunk i
            if len(in_a) <= overlap:  # cannot share `overlap` tokens and still start after chunk i
                continue
            j = in_a[-overlap]  # chunk i+1 must start with this token
            if j > 0 and eo[j - 1] > so[j]:
                continue  # token j shares its char with token j-1 (jamo of one Hangul syllable): no cut between them
            shared = int(((so >= b.start) & (eo <= a.end)).sum())
            assert shared == overlap, (
                f"chunks {i} and {i + 1} share {shared} document tokens, expected {overlap}: "
                f"chunk {i} = ({a.start}, {a.end}) ...{a.text[-80:]!r}, "
                f"chunk {i + 1} = ({b.start}, {b.end}) {b.text[:80]!r}..."
            )
            if _clean_boundary(text, b.start) and _clean_boundary(text, a.end):
                # cut where tokenization is context-free: the chunks' own tokens show the same overlap
                a_ids = tok.encode(a.text, add_special_tokens=False)
                b_ids = tok.encode(b.text, add_special_tokens=False)
                assert a_ids[-overlap:].tolist() == b_ids[:overlap].tolist(), (
                    f"last {overlap} tokens of chunk {i} {a_ids[-overlap:].tolist()} != first of chunk {i + 1} "
                    f"{b_ids[:overlap].tolist()}: {a.text[-80:]!r} / {b.text[:80]!r}"
                )
    if words:
        # A word that fits beside the overlap carried into a chunk must lie whole inside some chunk. Callers ask
        # for this with overlap > 0 only where words cannot grow when cut (single-token words): an overlap that
        # starts inside a word can take more tokens alone than inside the word, leaving less room after it.
        spans = _words(text)
        counts = tok.count_tokens([text[s:e] for s, e in spans])
        starts = [c.start for c in chunks]
        for (s, e), n in zip(spans, counts, strict=True):
            if n > max_tokens - overlap:
                continue
            j = bisect.bisect_right(starts, s) - 1  # the last chunk starting at or before the word
            inside = any(chunks[x].start <= s and e <= chunks[x].end for x in range(max(0, j - 3), j + 1))
            assert inside, f"word {text[s:e][:60]!r} ({n} tokens, at {s}..{e}) split though it fits in a chunk"


# ------------------------------------------------------------------------------------------- fixtures


class _Chunkers(dict):  # type: ignore[type-arg]
    def __repr__(self) -> str:  # hypothesis prints the fixtures of a failing example: keep that short
        return f"<Chunkers {sorted(self)}>"


@pytest.fixture(scope="module")
def chunkers(rr_tokenizer: Any) -> dict[tuple[int, int], Any]:
    return _Chunkers(
        {(m, k): rapidrag.Chunker(rr_tokenizer, max_tokens=m, overlap=k) for m in MAX_TOKENS for k in OVERLAPS}
    )


# ------------------------------------------------------------------------------------------- properties

_SEPARATORS = [
    " ",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\r\n",
    "\r\n\r\n",
    "\t",
    ". ",
    "! ",
    "? ",
    ".\n",
    ", ",
    "\u3000",
    "\xa0",
    " \n \n ",
]


def _word() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            W
            + [
                "unbelievable",
                "tokenization",
                "internationalization",
                "Straße",
                "naïve",
                "中文",
                "한국어",
                "don't",
                "e.g.",
                "3.14",
                "(a)",
                "end.",
                "x" * 30,
                "x" * 40,
                "ab" * 60,
                "👍🏽",
                "[CLS]",
            ]
            + list(SPECIAL_TOKENS)
        ),
        st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzé.,'-"), min_size=1, max_size=12),
        st.text(st.characters(codec="utf-8", exclude_categories=["Z", "Cc"]), min_size=1, max_size=6),
    )


def _doc() -> st.SearchStrategy[str]:
    """Word-and-separator documents: many chunks even at max_tokens 256, every kind of boundary."""
    piece = st.tuples(_word(), st.sampled_from(_SEPARATORS)).map("".join)
    return st.lists(piece, min_size=0, max_size=400).map("".join)


def _python_only_space(text: str) -> bool:
    """Whitespace to str.isspace but not all of it to BERT (\x1c-\x1f, \x85, ...): test_empty_or_whitespace_text
    checks that case on its own, so that hypothesis does not shrink every property failure down to it."""
    return bool(text) and text.isspace() and not all(_bert_space(c) for c in text)


# Python whitespace that BERT's text cleaning drops (so it joins words instead of separating them), and other
# invisible characters: chunk cuts there change the tokens on both sides.
_INVISIBLE = ["\x85", "\x0b", "\x0c", "\x1c", "\x1f", "\u200b", "\u00ad", "\ufeff", "\x00"]


def _invisible_separated() -> st.SearchStrategy[str]:
    piece = st.tuples(
        st.one_of(
            st.sampled_from(W + ["zzk", "qq", "xq", "unbelievable"]), st.text(st.sampled_from("abcxyzq"), max_size=6)
        ),
        st.sampled_from(_INVISIBLE + [" ", " ", "\n\n", ". "]),
    ).map("".join)
    return st.lists(piece, max_size=120).map("".join)


def _any_text() -> st.SearchStrategy[str]:
    return st.one_of(
        _invisible_separated(),
        st.text(st.characters(exclude_categories=()), max_size=300),  # every code point, lone surrogates included
        st.lists(
            st.one_of(
                _word(),
                st.sampled_from(_SEPARATORS + ["\x00", "\u200b", "\ufeff", "\x1c", "\x85"]),
                st.text(st.characters(exclude_categories=()), max_size=3),
            ),
            max_size=200,
        ).map("".join),
    ).filter(lambda t: not _python_only_space(t))


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("max_tokens", MAX_TOKENS)
@PROPERTY_SETTINGS
@given(text=_doc())
# Found by this test (2026-12-05): a chunk that starts inside a word ("bl", one piece of the document's word, two
# tokens alone) counts more tokens alone than in the document, and shrinking it cut inside the word "the.".
@example(text="bhbjbjbjbl the the. the. the. ")
def test_property_documents(
    chunkers: Any, rr_tokenizer: Any, hf_ref: Any, max_tokens: int, overlap: int, text: str
) -> None:
    chunks = chunkers[max_tokens, overlap].split(text)
    check_chunks(text, chunks, rr_tokenizer, max_tokens, overlap, hf=hf_ref, words=overlap == 0)


@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("max_tokens", MAX_TOKENS)
@PROPERTY_SETTINGS
@given(text=_any_text())
def test_property_any_text(
    chunkers: Any, rr_tokenizer: Any, hf_ref: Any, max_tokens: int, overlap: int, text: str
) -> None:
    chunks = chunkers[max_tokens, overlap].split(text)
    check_chunks(text, chunks, rr_tokenizer, max_tokens, overlap, hf=hf_ref)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(m, k) for m in MAX_TOKENS for k in OVERLAPS])
def test_stress_set(
    chunkers: Any,
    rr_tokenizer: Any,
    hf_tokenizer: Any,
    stress_texts: list[str],
    surrogate_texts: list[str],
    max_tokens: int,
    overlap: int,
) -> None:
    texts = stress_texts + surrogate_texts
    # Long ones too: the stress strings glued in groups, separated by every kind of boundary.
    texts += [_SEPARATORS[i % len(_SEPARATORS)].join(stress_texts[i : i + 40]) for i in range(0, len(stress_texts), 40)]
    results = chunkers[max_tokens, overlap].split_batch(texts)
    assert len(results) == len(texts)
    for text, chunks in zip(texts, results, strict=True):
        check_chunks(text, chunks, rr_tokenizer, max_tokens, overlap, hf=hf_tokenizer)


# ------------------------------------------------------------------------------------------- crafted texts


def _ws(n: int, start: int = 0) -> str:
    return " ".join(W[(start + i) % len(W)] for i in range(n))


def test_crafted_words_are_single_tokens(rr_tokenizer: Any, hf_tokenizer: Any) -> None:
    assert [len(hf_tokenizer.encode(w, add_special_tokens=False).ids) for w in W] == [1] * len(W)
    assert rr_tokenizer.count_tokens(W).tolist() == [1] * len(W)


def _stripped(chunks: list[Any]) -> list[str]:
    return [c.text.strip() for c in chunks]


@pytest.mark.parametrize("max_tokens", [16, 64])
def test_text_that_fits_is_one_chunk(rr_tokenizer: Any, max_tokens: int) -> None:
    text = "  " + _ws(3) + "\n\n" + _ws(3, 3) + ".\n" + _ws(4, 6) + "! " + _ws(2) + "  \n"
    assert rr_tokenizer.count_tokens(text) <= max_tokens
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=max_tokens).split(text)
    assert _stripped(chunks) == [text.strip()]
    check_chunks(text, chunks, rr_tokenizer, max_tokens, 0)


@pytest.mark.parametrize("blank", ["\n\n", "\r\n\r\n", "\n\n\n"])
def test_paragraphs_that_fit_separately_split_at_blank_line(rr_tokenizer: Any, blank: str) -> None:
    p1, p2 = _ws(10), _ws(10, 10)
    text = p1 + blank + p2
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    assert _stripped(chunks) == [p1, p2]
    check_chunks(text, chunks, rr_tokenizer, 16, 0)


def test_blank_line_preferred_over_line_break(rr_tokenizer: Any) -> None:
    first = _ws(9)
    text = first + "\n\n" + _ws(4, 9) + "\n" + _ws(12, 13)
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    assert _stripped(chunks)[0] == first
    check_chunks(text, chunks, rr_tokenizer, 16, 0)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("stop", [".", "!", "?"])
def test_line_break_preferred_over_sentence_end(rr_tokenizer: Any, newline: str, stop: str) -> None:
    first = _ws(9)
    text = first + newline + _ws(3, 9) + stop + " " + _ws(12, 12)
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    assert _stripped(chunks)[0] == first
    check_chunks(text, chunks, rr_tokenizer, 16, 0)


@pytest.mark.parametrize("stop", [".", "!", "?"])
def test_sentence_end_preferred_over_whitespace(rr_tokenizer: Any, stop: str) -> None:
    first = _ws(8) + stop
    text = first + " " + _ws(14, 8)
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    assert _stripped(chunks)[0] == first
    check_chunks(text, chunks, rr_tokenizer, 16, 0)


def test_whitespace_boundary_when_nothing_better(rr_tokenizer: Any) -> None:
    text = _ws(40)
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    assert [c.n_tokens for c in chunks] == [16, 16, 8]
    assert " ".join(_stripped(chunks)) == text
    check_chunks(text, chunks, rr_tokenizer, 16, 0, words=True)


def test_huge_word_split_only_because_it_exceeds_max_tokens(rr_tokenizer: Any, hf_tokenizer: Any) -> None:
    fits = "x" * 32  # exactly 16 tokens: fits alone, so never split
    huge = "x" * 34  # 17 tokens: must be split
    assert len(hf_tokenizer.encode(fits, add_special_tokens=False).ids) == 16
    assert len(hf_tokenizer.encode(huge, add_special_tokens=False).ids) == 17
    unk = "z" * 150  # over max_input_chars_per_word: one [UNK] token, nothing to split
    text = (
        _ws(3)
        + " "
        + fits
        + " "
        + _ws(3, 3)
        + " "
        + huge
        + " "
        + _ws(3, 6)
        + " "
        + "x" * 100
        + " "
        + unk
        + " "
        + _ws(2)
    )
    fits_at = text.index(" " + fits + " ") + 1
    huge_at = text.index(" " + huge + " ") + 1
    long_at = text.index("x" * 100)
    unk_at = text.index(unk)
    splittable = [(huge_at, huge_at + len(huge)), (long_at, long_at + 100)]
    for overlap in (0, 1, 4):
        chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16, overlap=overlap).split(text)
        check_chunks(text, chunks, rr_tokenizer, 16, overlap, hf=hf_tokenizer, words=True)
        assert not any(c.start <= huge_at and huge_at + len(huge) <= c.end for c in chunks), "17-token word not split"
        if overlap:
            # with overlap a chunk may start inside a word (the overlap), and a 16-token word cannot fit beside it
            continue
        assert any(c.start <= fits_at and fits_at + len(fits) <= c.end for c in chunks), "the 16-token word was split"
        assert any(c.start <= unk_at and unk_at + len(unk) <= c.end for c in chunks), "the [UNK] word was split"
        for c in chunks:
            for p in (c.start, c.end):
                if 0 < p < len(text) and not text[p - 1].isspace() and not text[p].isspace():
                    assert any(s < p < e for s, e in splittable), (
                        f"cut at {p} inside a word that fits: {text[p - 10 : p + 10]!r}"
                    )
    # the huge word alone: pieces of at most 16 tokens that put it back together
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split("x" * 100)
    check_chunks("x" * 100, chunks, rr_tokenizer, 16, 0, hf=hf_tokenizer)
    assert "".join(c.text for c in chunks) == "x" * 100
    assert [c.n_tokens for c in chunks] == [16, 16, 16, 2]  # 50 tokens, each cut where the budget runs out
    assert rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(unk) == [rapidrag.Chunk(unk, 0, 150, 1)]


@pytest.mark.parametrize("overlap", [1, 4])
def test_overlap_exact_on_single_token_words(rr_tokenizer: Any, overlap: int) -> None:
    text = _ws(100)
    word_starts = [s for s, _ in _words(text)]
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16, overlap=overlap).split(text)
    check_chunks(text, chunks, rr_tokenizer, 16, overlap, words=True)
    firsts = []  # index of the first word of each chunk
    for c in chunks:
        first_char = c.start + len(c.text) - len(c.text.lstrip())
        firsts.append(word_starts.index(first_char))
    step = 16 - overlap
    assert firsts == list(range(0, 100 - overlap, step)), firsts
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.text.split()[-overlap:] == b.text.split()[:overlap]
    assert [c.n_tokens for c in chunks[:-1]] == [16] * (len(chunks) - 1)


def test_overlap_zero_partitions_the_text(rr_tokenizer: Any) -> None:
    text = "\n\n".join(_ws(7 + i % 5, i) + ". " + _ws(5, i + 1) for i in range(20))
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=16).split(text)
    check_chunks(text, chunks, rr_tokenizer, 16, 0, words=True)
    assert sum(c.n_tokens for c in chunks) == rr_tokenizer.count_tokens(text)


# ------------------------------------------------------------------------------------------- batch, threads, bad input


def _tuples(chunks: list[Any]) -> list[tuple[str, int, int, int]]:
    return [(c.text, c.start, c.end, c.n_tokens) for c in chunks]


def _mixed_texts(stress_texts: list[str], scifact_texts: list[str]) -> list[str]:
    return scifact_texts[:300] + stress_texts[:700] + ["", "  ", "\n\n" + _ws(50) + "\n\n"]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(16, 0), (64, 4), (256, 1)])
def test_split_batch_equals_split(
    rr_tokenizer: Any, stress_texts: list[str], scifact_texts: list[str], max_tokens: int, overlap: int
) -> None:
    ch = rapidrag.Chunker(rr_tokenizer, max_tokens=max_tokens, overlap=overlap)
    texts = _mixed_texts(stress_texts, scifact_texts)
    serial = [_tuples(ch.split(t)) for t in texts]
    for n_threads in (None, 1, 2):
        batch = ch.split_batch(texts, n_threads=n_threads)
        assert isinstance(batch, list) and len(batch) == len(texts)
        assert [_tuples(b) for b in batch] == serial, f"n_threads={n_threads}"
    assert ch.split_batch([]) == []
    spans, row_splits = ch.spans_batch(texts)  # the same chunks as arrays, without their strings
    assert row_splits.tolist() == np.cumsum([0] + [len(c) for c in serial]).tolist()
    assert [tuple(x) for x in spans.tolist()] == [(s, e, n) for c in serial for (_, s, e, n) in c]


def test_concurrent_threads_equal_serial(rr_tokenizer: Any, stress_texts: list[str], scifact_texts: list[str]) -> None:
    ch = rapidrag.Chunker(rr_tokenizer, max_tokens=64, overlap=4)
    texts = _mixed_texts(stress_texts, scifact_texts)
    serial = [_tuples(ch.split(t)) for t in texts]
    barrier = threading.Barrier(4)

    def by_split(reverse: bool) -> list[list[tuple[str, int, int, int]]]:
        barrier.wait()
        idx = range(len(texts) - 1, -1, -1) if reverse else range(len(texts))
        out = {i: _tuples(ch.split(texts[i])) for i in idx}
        return [out[i] for i in range(len(texts))]

    def by_batch(n_threads: int) -> list[list[tuple[str, int, int, int]]]:
        barrier.wait()
        return [_tuples(b) for b in ch.split_batch(texts, n_threads=n_threads)]

    with ThreadPoolExecutor(4) as pool:
        futs = [
            pool.submit(by_split, False),
            pool.submit(by_split, True),
            pool.submit(by_batch, 1),
            pool.submit(by_batch, 2),
        ]
        for f in futs:
            assert f.result(timeout=300) == serial


@pytest.mark.parametrize("bad", [123, None, b"bytes", ["text"]])
def test_split_non_str_raises_type_error(rr_tokenizer: Any, bad: Any) -> None:
    ch = rapidrag.Chunker(rr_tokenizer, max_tokens=16)
    with pytest.raises(TypeError, match="text"):
        ch.split(bad)
    with pytest.raises(TypeError):
        ch.split_batch(["fine", bad])


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (-1, 0), (8, 8), (8, 9), (1, 1), (8, -1)])
def test_bad_parameters_raise_value_error(rr_tokenizer: Any, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="max_tokens|overlap"):
        rapidrag.Chunker(rr_tokenizer, max_tokens=max_tokens, overlap=overlap)


def test_smallest_valid_parameters(rr_tokenizer: Any) -> None:
    text = _ws(10) + ". " + "x" * 9
    for max_tokens, overlap in [(1, 0), (2, 1)]:
        chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=max_tokens, overlap=overlap).split(text)
        check_chunks(text, chunks, rr_tokenizer, max_tokens, overlap, words=True)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t", "\r\n", "\u3000\xa0\u2028", " \x85 \x1c "])
def test_empty_or_whitespace_text_gives_no_chunks(rr_tokenizer: Any, text: str) -> None:
    ch = rapidrag.Chunker(rr_tokenizer, max_tokens=16, overlap=4)
    assert ch.split(text) == []
    assert ch.split_batch([text, text]) == [[], []]


@pytest.mark.parametrize(
    ("text", "max_tokens"),
    [
        ("q\x0czzk", 2),  # \x0c is dropped by cleaning: one word q ##zz ##k, not two
        ("Vkj\x85JdKwJ n", 8),
        ("the cat\x85sat on the mat", 2),
        ("a \u302e\u302d", 1),  # marks out of canonical order: the [UNK]'s offsets do not start at the word
        ("x \u1dfb\u0333 y", 1),
        ("hello\u200bworld again", 1),
    ],
)
def test_cuts_where_tokenization_is_not_context_free(
    rr_tokenizer: Any, hf_tokenizer: Any, text: str, max_tokens: int
) -> None:
    for overlap in sorted({0, max_tokens - 1}):
        chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=max_tokens, overlap=overlap).split(text)
        check_chunks(text, chunks, rr_tokenizer, max_tokens, overlap, hf=hf_tokenizer)


@pytest.mark.parametrize(
    "text", ["\x00", "\u200b", "a\u200b b", "\ufeff\n\nword", "\ud800", "x\udfffy z", "[CLS] \x00"]
)
def test_invisible_text_is_still_covered(rr_tokenizer: Any, text: str) -> None:
    """Chars the tokenizer drops are not whitespace: they must still be inside some chunk."""
    chunks = rapidrag.Chunker(rr_tokenizer, max_tokens=8, overlap=1).split(text)
    check_chunks(text, chunks, rr_tokenizer, 8, 1)


# ------------------------------------------------------------------------------------------- data


def _check_corpus(texts: list[str], tok: Any, hf: Any, max_tokens: int, overlap: int) -> None:
    ch = rapidrag.Chunker(tok, max_tokens=max_tokens, overlap=overlap)
    results = ch.split_batch(texts)
    assert len(results) == len(texts)
    flat: list[str] = []
    n_tokens: list[int] = []
    for t, chunks in zip(texts, results, strict=True):
        assert bool(chunks) == bool(t.strip())
        pos = 0
        prev_start = -1
        for c in chunks:
            assert c.text == t[c.start : c.end] and c.start > prev_start
            assert not t[pos : c.start].strip(), f"uncovered text before a chunk: {t[pos : c.start][:100]!r}"
            if overlap == 0:
                assert c.start >= pos, f"chunks overlap with overlap=0 at {c.start}: {t[:100]!r}"
            pos = max(pos, c.end)
            prev_start = c.start
            flat.append(c.text)
            n_tokens.append(c.n_tokens)
        assert not t[pos:].strip(), t[:100]
    hf_counts = np.fromiter(
        (len(e.ids) for e in hf.encode_batch(flat, add_special_tokens=False)), dtype=np.int64, count=len(flat)
    )
    over = np.nonzero(hf_counts > max_tokens)[0]
    assert not len(over), f"{len(over)} chunks over {max_tokens} by HF count; first: " + "; ".join(
        f"{hf_counts[i]} tokens {flat[i][:100]!r}" for i in over[:3]
    )
    n = np.asarray(n_tokens, dtype=np.int64)
    assert (n <= max_tokens).all()
    diff = np.nonzero(n != hf_counts)[0]
    assert not len(diff), f"{len(diff)} chunks whose n_tokens differs from the HF count; first: " + "; ".join(
        f"n_tokens {n[i]} HF {hf_counts[i]} {flat[i][:100]!r}" for i in diff[:3]
    )


@pytest.mark.parametrize(("max_tokens", "overlap"), [(256, 0), (512, 0), (256, 16), (64, 4)])
def test_scifact_chunks_within_max_tokens(
    rr_tokenizer: Any, hf_tokenizer: Any, scifact_texts: list[str], max_tokens: int, overlap: int
) -> None:
    assert len(scifact_texts) == 5183
    _check_corpus(scifact_texts, rr_tokenizer, hf_tokenizer, max_tokens, overlap)


@pytest.mark.slow
@pytest.mark.parametrize("max_tokens", [256, 512])
def test_gcide_chunks_within_max_tokens(
    rr_tokenizer: Any, hf_tokenizer: Any, gcide_texts: list[str], max_tokens: int
) -> None:
    assert len(gcide_texts) == 125984
    _check_corpus(gcide_texts, rr_tokenizer, hf_tokenizer, max_tokens, 0)


def test_python_whitespace_that_the_tokenizer_keeps_stays_in_chunks(vocab_path: Path) -> None:
    """Found by the fuzzer: U+001C is whitespace to Python but a word character with clean_text off."""
    text = "\x1a\x00\x00\x00\x00\x00\n\x1c"
    tok = rapidrag.Tokenizer(vocab_path, clean_text=False)
    chunks = rapidrag.Chunker(tok, max_tokens=1).split(text)
    assert chunks and all(c.start < c.end and c.text == text[c.start : c.end] for c in chunks)
    assert [c.n_tokens for c in chunks] == [tok.count_tokens(c.text) for c in chunks]
    assert chunks[-1].end == len(text)
