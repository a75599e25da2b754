"""Tokenizer throughput: rapidrag against Hugging Face ``tokenizers``, ``tokie`` and ``flash-tokenizer``.

Data: SciFact documents (title + " " + text) and gcide passages, first N in file order (see benchmarks/_common.py:
300 SciFact documents and 2,000 gcide passages by default; with ``RAPIDRAG_BENCH_FULL=1`` all 5,183 and all
125,984). Vocabulary: all-MiniLM-L6-v2 (uncased BERT WordPiece), ``[CLS] ... [SEP]`` added, padding and
truncation off for every library.

How each library is set up (and why this is fair):

* HF ``tokenizers``: ``Tokenizer.from_file(tokenizer.json)`` with ``no_padding()`` and ``no_truncation()`` (the file
  has padding and truncation to 128 baked in). It is also the reference: every benchmark compares the ids it
  timed with HF's, document by document.
* ``tokie``: ``tokie.Tokenizer.from_json(tokenizer.json)``, then ``no_padding()`` / ``no_truncation()``
  (tokie does not apply the baked-in settings anyway; checked: ``padding`` and ``truncation`` are None).
* ``flash-tokenizer``: ``BertTokenizerFlash(vocab.txt, do_lower_case=True, model_max_length=2**31 - 1,
  tokenize_chinese_chars=True)`` and its core's ``batch_encode(texts, "do_not_pad", -1, parallel)``: any padding
  other than "max_length" leaves rows unpadded, and ``max_length=-1`` means ``model_max_length``, so the huge
  ``model_max_length`` turns truncation off. (The public ``__call__`` cannot: it forwards ``max_length=None``.)
  Known difference from HF: the soft hyphen U+00AD (a format character that BERT text cleaning drops) is kept, so
  ``shrink\\xad ing`` gives ``[UNK]``; SciFact document 4420 differs for that reason. Mismatches are counted and
  reported (``mismatched_docs`` in extra_info and the end-of-session table), not hidden.
* rapidrag: ``Tokenizer.from_file(tokenizer.json)``, ``encode_batch(texts, padding=False, truncation=False)``;
  it must equal HF on every document.

Single-threaded group (``tokenize-<corpus>-1thread``): one core of work per library.
HF: ``encode_batch`` with ``TOKENIZERS_PARALLELISM=false`` set for the call (tokenizers reads it on every call and
then encodes serially on the calling thread; wall time equals CPU time), which avoids a Python loop without using
rayon. rapidrag: ``encode_batch(..., n_threads=1)`` and, like for like with tokie, a loop of ``encode``. tokie has no
thread setting (its ``encode_batch`` spawns one thread per core), so it is timed as a loop of ``encode``.
flash-tokenizer: ``batch_encode(..., parallel=False)``.

Batched group (``tokenize-<corpus>-batched``): every library's batch call on all cores (2 in CI): HF
``encode_batch`` (rayon), tokie ``encode_batch``, flash ``batch_encode(parallel=True)`` (OpenMP), rapidrag
``encode_batch(n_threads=None)`` (the tokenizer's default, one thread per core).

Each library returns its own natural result (HF/tokie ``Encoding`` objects, flash lists, rapidrag int64 arrays); the
time covers producing it, the comparison with HF happens after timing.

Single string (``tokenize-single-string``): one string of ``RAPIDRAG_BENCH_BIG_MB`` MB (100 with FULL, 2 by
default) and one of a quarter of that, made of gcide passages joined by blank lines; equal MB/s for both sizes
shows linear time. The expected ids are the HF ids of the passages concatenated (BERT pre-tokenization splits on
whitespace, so joining passages with blank lines concatenates their tokens). HF itself is left out of this group:
at its measured ~2.6 MB/s one 100 MB ``encode`` takes ~40 s a round, and its ``Encoding`` keeps a token string per
token (GBs); its speed is the per-document figure above. tokie splits one long text across threads internally, and
so does rapidrag (its tokenizer's ``n_threads``, here one per core; texts over half a million characters are cut at
whitespace); that is both libraries' normal behaviour and is noted in extra_info.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import BIG_MB, Corpus, record, run_timed

CORPORA = ("scifact", "gcide")
FLASH_NO_TRUNCATION = 2**31 - 1


def _params(kind: str) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.benchmark(group=f"tokenize-{name}-{kind}"), id=name) for name in CORPORA
    ]


SINGLE = _params("1thread")
BATCHED = _params("batched")


# ---------------------------------------------------------------------------------------------------------------
# Libraries


@pytest.fixture(scope="module")
def rr_tokenizer(minilm_dir: Path) -> Any:
    import rapidrag

    return rapidrag.Tokenizer.from_file(minilm_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def tokie_tokenizer(minilm_dir: Path) -> Any:
    tokie = pytest.importorskip("tokie")
    tok = tokie.Tokenizer.from_json(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    assert tok.padding is None and tok.truncation is None
    return tok


@pytest.fixture(scope="module")
def flash_tokenizer(minilm_dir: Path) -> Any:
    flash = pytest.importorskip("flash_tokenizer")
    tok = flash.BertTokenizerFlash(
        str(minilm_dir / "vocab.txt"),
        do_lower_case=True,
        model_max_length=FLASH_NO_TRUNCATION,
        tokenize_chinese_chars=True,
    )
    return tok.tokenizer  # the native FlashBertTokenizer: encode / batch_encode(texts, padding, max_length, parallel)


# ---------------------------------------------------------------------------------------------------------------
# The HF reference and the comparison


@dataclass(frozen=True)
class Reference:
    """HF ids of a corpus, specials included: row i is ``flat[starts[i]:starts[i] + lengths[i]]``."""

    flat: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())

    def row(self, i: int) -> np.ndarray:
        return self.flat[self.starts[i] : self.starts[i] + self.lengths[i]]


_REFERENCES: dict[tuple[str, int], Reference] = {}


def reference(corpus: Corpus, hf: Any) -> Reference:
    key = (corpus.name, len(corpus.texts))
    if key not in _REFERENCES:
        rows = [e.ids for e in hf.encode_batch(corpus.texts)]
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        _REFERENCES[key] = Reference(flat, lengths, starts)
    return _REFERENCES[key]


def mismatched_docs(rows: Sequence[Any], ref: Reference) -> list[int]:
    """Indices of the documents whose ids differ from HF's (all of them if the row count is wrong)."""
    if len(rows) != len(ref.lengths):
        return list(range(max(len(rows), len(ref.lengths))))
    if hasattr(rows, "flat") and hasattr(rows, "row_splits"):  # rapidrag.Ragged: one flat array and row bounds
        lengths = np.diff(np.asarray(rows.row_splits, dtype=np.int64))
        flat = np.asarray(rows.flat, dtype=np.int64)
    else:
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        if rows and isinstance(rows[0], np.ndarray):
            flat = np.concatenate(list(rows)).astype(np.int64, copy=False)
        else:
            flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, int(lengths.sum()))
    if np.array_equal(lengths, ref.lengths) and np.array_equal(flat, ref.flat):
        return []
    return [i for i, r in enumerate(rows) if not np.array_equal(np.asarray(r, dtype=np.int64), ref.row(i))]


def check_and_record(
    benchmark: Any, library: str, corpus: Corpus, ref: Reference, rows: Sequence[Any], *, exact: bool, **extra: Any
) -> None:
    """Compare with HF; rapidrag (exact) must match on every document, a peer's mismatches are reported."""
    bad = mismatched_docs(rows, ref)
    note = None
    if bad:
        note = f"{len(bad)} of {len(ref.lengths)} docs differ from HF, first at doc indices {bad[:5]}"
    record(
        benchmark,
        library,
        corpus.nbytes,
        tokens=ref.tokens,
        docs=len(corpus.texts),
        mismatched_docs=len(bad),
        note=note,
        **extra,
    )
    if exact:
        assert not bad, f"{library}: {note}; doc {bad[0]}: {rows[bad[0]]!r} != HF {ref.row(bad[0]).tolist()!r}"
    else:
        # A peer may differ on a few documents (reported above), but a wholesale difference means a wrong setup.
        assert len(rows) == len(ref.lengths)
        assert len(bad) <= max(1, len(ref.lengths) // 100), note


def _corpus(request: pytest.FixtureRequest, name: str) -> Corpus:
    corpus: Corpus = request.getfixturevalue(f"{name}_bench")
    assert corpus.texts, f"{name}: empty corpus"
    return corpus


# ---------------------------------------------------------------------------------------------------------------
# Single-threaded


@pytest.mark.parametrize("corpus_name", SINGLE)
def test_hf_tokenizers_1thread(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # read on each call: encode_batch runs serially
    out = run_timed(benchmark, lambda: hf_tokenizer.encode_batch(corpus.texts))
    monkeypatch.delenv("TOKENIZERS_PARALLELISM")
    check_and_record(
        benchmark,
        "tokenizers",
        corpus,
        ref,
        [e.ids for e in out],
        exact=False,
        how="encode_batch, TOKENIZERS_PARALLELISM=false",
    )


@pytest.mark.parametrize("corpus_name", SINGLE)
def test_tokie_1thread(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, tokie_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    encode = tokie_tokenizer.encode
    out = run_timed(benchmark, lambda: [encode(t) for t in corpus.texts])
    check_and_record(benchmark, "tokie", corpus, ref, [e.ids for e in out], exact=False, how="loop of encode")


@pytest.mark.parametrize("corpus_name", SINGLE)
def test_flash_tokenizer_1thread(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, flash_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(benchmark, lambda: flash_tokenizer.batch_encode(corpus.texts, "do_not_pad", -1, False))
    check_and_record(benchmark, "flash-tokenizer", corpus, ref, out, exact=False, how="batch_encode(parallel=False)")


@pytest.mark.parametrize("corpus_name", SINGLE)
def test_rapidrag_1thread(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, rr_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(
        benchmark,
        lambda: rr_tokenizer.encode_batch(corpus.texts, padding=False, truncation=False, n_threads=1),
    )
    assert np.array_equal(out.lengths, ref.lengths)
    check_and_record(
        benchmark,
        "rapidrag",
        corpus,
        ref,
        out.input_ids,
        exact=True,
        how="encode_batch(padding=False, truncation=False, n_threads=1)",
    )


@pytest.mark.parametrize("corpus_name", SINGLE)
def test_rapidrag_encode_loop_1thread(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, rr_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    encode = rr_tokenizer.encode
    out = run_timed(benchmark, lambda: [encode(t) for t in corpus.texts])
    check_and_record(benchmark, "rapidrag", corpus, ref, out, exact=True, how="loop of encode")


# ---------------------------------------------------------------------------------------------------------------
# Batched, all cores


@pytest.mark.parametrize("corpus_name", BATCHED)
def test_hf_tokenizers_batched(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(benchmark, lambda: hf_tokenizer.encode_batch(corpus.texts))
    check_and_record(
        benchmark, "tokenizers", corpus, ref, [e.ids for e in out], exact=False, how="encode_batch (rayon, all cores)"
    )


@pytest.mark.parametrize("corpus_name", BATCHED)
def test_tokie_batched(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, tokie_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(benchmark, lambda: tokie_tokenizer.encode_batch(corpus.texts))
    check_and_record(benchmark, "tokie", corpus, ref, [e.ids for e in out], exact=False, how="encode_batch")


@pytest.mark.parametrize("corpus_name", BATCHED)
def test_flash_tokenizer_batched(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, flash_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(benchmark, lambda: flash_tokenizer.batch_encode(corpus.texts, "do_not_pad", -1, True))
    check_and_record(
        benchmark, "flash-tokenizer", corpus, ref, out, exact=False, how="batch_encode(parallel=True), OpenMP"
    )


@pytest.mark.parametrize("corpus_name", BATCHED)
def test_rapidrag_batched(
    benchmark: Any, request: pytest.FixtureRequest, corpus_name: str, hf_tokenizer: Any, rr_tokenizer: Any
) -> None:
    corpus = _corpus(request, corpus_name)
    ref = reference(corpus, hf_tokenizer)
    out = run_timed(
        benchmark,
        lambda: rr_tokenizer.encode_batch(corpus.texts, padding=False, truncation=False, n_threads=None),
    )
    assert np.array_equal(out.lengths, ref.lengths)
    check_and_record(
        benchmark,
        "rapidrag",
        corpus,
        ref,
        out.input_ids,
        exact=True,
        how=f"encode_batch(padding=False, truncation=False), n_threads={rr_tokenizer.n_threads} (0 = one per core)",
    )


# ---------------------------------------------------------------------------------------------------------------
# One long string


@dataclass(frozen=True)
class BigText:
    text: str
    nbytes: int
    expected: np.ndarray  # HF ids with [CLS] and [SEP]


_BIG: dict[float, BigText] = {}


def big_text(corpus: Corpus, ref: Reference, megabytes: float) -> BigText:
    """gcide passages joined by blank lines, cycling through the corpus until ``megabytes`` MB (UTF-8)."""
    if megabytes not in _BIG:
        target = int(megabytes * 1e6)
        sizes = [len(t.encode("utf-8")) + 2 for t in corpus.texts]
        order: list[int] = []
        total = 0
        for i in itertools.cycle(range(len(corpus.texts))):
            if total >= target:
                break
            order.append(i)
            total += sizes[i]
        text = "\n\n".join(corpus.texts[i] for i in order)
        body = np.concatenate([ref.row(i)[1:-1] for i in order])
        expected = np.concatenate([ref.row(0)[:1], body, ref.row(0)[-1:]])
        _BIG[megabytes] = BigText(text, len(text.encode("utf-8")), expected)
    return _BIG[megabytes]


BIG_SIZES = sorted({round(BIG_MB / 4, 3), BIG_MB})


def _big_params() -> list[Any]:
    return [
        pytest.param(mb, marks=pytest.mark.benchmark(group="tokenize-single-string"), id=f"{mb:g}MB")
        for mb in BIG_SIZES
    ]


@pytest.mark.parametrize("megabytes", _big_params())
def test_rapidrag_single_string(
    benchmark: Any, megabytes: float, gcide_bench: Corpus, hf_tokenizer: Any, rr_tokenizer: Any
) -> None:
    big = big_text(gcide_bench, reference(gcide_bench, hf_tokenizer), megabytes)
    out = run_timed(benchmark, lambda: rr_tokenizer.encode(big.text))
    record(
        benchmark,
        "rapidrag",
        big.nbytes,
        tokens=len(big.expected),
        how=f"encode(one str); n_threads={rr_tokenizer.n_threads} (0 = one per core), cut at whitespace",
    )
    assert len(out) == len(big.expected), f"{len(out)} ids, expected {len(big.expected)}"
    bad = np.flatnonzero(out != big.expected)
    assert bad.size == 0, f"ids differ from HF first at token {bad[0]} of {len(out)}"


def _check_peer_long(benchmark: Any, library: str, big: BigText, ids: np.ndarray, how: str) -> None:
    """Record how a peer's ids for the long string compare with HF's; only a wholesale difference fails."""
    n = min(len(ids), len(big.expected))
    diff = np.flatnonzero(ids[:n] != big.expected[:n])
    first = int(diff[0]) if diff.size else (n if len(ids) != len(big.expected) else None)
    note = None
    if first is not None:
        note = f"ids differ from HF: {len(ids)} ids vs {len(big.expected)}, first difference at token {first}"
    record(
        benchmark, library, big.nbytes, tokens=len(big.expected), how=how, note=note, first_difference_at_token=first
    )
    assert abs(len(ids) - len(big.expected)) <= len(big.expected) // 100, note


@pytest.mark.parametrize("megabytes", _big_params())
def test_tokie_single_string(
    benchmark: Any, megabytes: float, gcide_bench: Corpus, hf_tokenizer: Any, tokie_tokenizer: Any
) -> None:
    big = big_text(gcide_bench, reference(gcide_bench, hf_tokenizer), megabytes)
    out = run_timed(benchmark, lambda: tokie_tokenizer.encode(big.text))
    _check_peer_long(
        benchmark,
        "tokie",
        big,
        np.asarray(out.ids, dtype=np.int64),
        "encode(one str); tokie splits a long text across its own threads",
    )


@pytest.mark.parametrize("megabytes", _big_params())
def test_flash_tokenizer_single_string(
    benchmark: Any, megabytes: float, gcide_bench: Corpus, hf_tokenizer: Any, flash_tokenizer: Any
) -> None:
    big = big_text(gcide_bench, reference(gcide_bench, hf_tokenizer), megabytes)
    out = run_timed(benchmark, lambda: flash_tokenizer.encode(big.text, "do_not_pad", -1))
    _check_peer_long(benchmark, "flash-tokenizer", big, np.asarray(out, dtype=np.int64), "encode(one str)")
