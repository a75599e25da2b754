"""Parity of rapidrag.Tokenizer with Hugging Face tokenizers: ids and offsets on all of SciFact and the stress set.

The reference is the embedder's tokenizer.json loaded by HF ``tokenizers`` (root conftest ``hf_tokenizer``).
rapidrag is loaded from vocab.txt and from tokenizer.json, and each must give the reference's ids and offsets
for every text: single encode, padded batches, truncated batches, pairs and token counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from tok_helpers import Encoded, compare_encodings, hf_copy, hf_encode_all

import rapidrag

BATCH = 512  # rows per encode_batch call: keeps the padded arrays of long SciFact documents small


@pytest.fixture(scope="module", params=["vocab.txt", "tokenizer.json"])
def rr(request: pytest.FixtureRequest, minilm_dir: Any) -> Any:
    return rapidrag.Tokenizer.from_file(str(minilm_dir / request.param))


@pytest.fixture(scope="module", params=["scifact", "stress"])
def corpus(request: pytest.FixtureRequest, hf_tokenizer: Any) -> tuple[str, list[str], list[Encoded]]:
    """(name, texts, reference encodings with special tokens) for all of SciFact or all of the stress set."""
    name = request.param
    texts = request.getfixturevalue("scifact_texts" if name == "scifact" else "stress_texts")
    if name == "scifact":
        assert len(texts) == 5183, "SciFact corpus is incomplete"
    else:
        assert len(texts) >= 2000
    return name, texts, _reference(hf_tokenizer, name, texts)


_REFERENCE: dict[tuple[str, int | None, bool], list[Encoded]] = {}


@pytest.fixture(scope="module", autouse=True)
def _forget_references() -> Iterator[None]:
    yield
    _REFERENCE.clear()
    _PAIR_REFERENCE.clear()


def _reference(
    hf_tokenizer: Any, name: str, texts: list[str], max_length: int | None = None, add_special_tokens: bool = True
) -> list[Encoded]:
    """HF encodings of a corpus, computed once per setting for both rapidrag loaders."""
    key = (name, max_length, add_special_tokens)
    if key not in _REFERENCE:
        hf = hf_copy(hf_tokenizer)
        if max_length is not None:
            hf.enable_truncation(max_length)
        _REFERENCE[key] = hf_encode_all(hf, texts, add_special_tokens=add_special_tokens)
    return _REFERENCE[key]


def _chunks(seq: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _batch_layout_problems(enc: Any, n_rows: int, padded_to: int | None = None, pairs: bool = False) -> list[str]:
    """Everything wrong with the shapes, dtypes and padding of a batch encoding (empty list when all is right)."""
    problems = []
    arrays = {
        "input_ids": enc.input_ids,
        "attention_mask": enc.attention_mask,
        "token_type_ids": enc.token_type_ids,
        "offsets": enc.offsets,
        "lengths": enc.lengths,
    }
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype != np.int64:
            problems.append(
                f"{name} is {type(a).__name__} of dtype {getattr(a, 'dtype', None)}, expected int64 ndarray"
            )
    if problems:
        return problems
    lengths = enc.lengths
    if lengths.shape != (n_rows,):
        return [f"lengths shape {lengths.shape}, expected ({n_rows},)"]
    width = enc.input_ids.shape[1] if enc.input_ids.ndim == 2 else -1
    expected_width = padded_to if padded_to is not None else int(lengths.max(initial=0))
    if enc.input_ids.shape != (n_rows, expected_width):
        problems.append(f"input_ids shape {enc.input_ids.shape}, expected {(n_rows, expected_width)}")
    for name in ("attention_mask", "token_type_ids"):
        if arrays[name].shape != enc.input_ids.shape:
            problems.append(f"{name} shape {arrays[name].shape} != input_ids shape {enc.input_ids.shape}")
    if enc.offsets.shape != (*enc.input_ids.shape, 2):
        problems.append(f"offsets shape {enc.offsets.shape}, expected {(*enc.input_ids.shape, 2)}")
    if problems:
        return problems
    cols = np.arange(width)[None, :]
    real = cols < lengths[:, None]
    if not np.array_equal(enc.attention_mask, real.astype(np.int64)):
        rows = np.nonzero((enc.attention_mask != real).any(axis=1))[0][:5].tolist()
        problems.append(f"attention_mask is not 1 on the first `lengths` tokens and 0 after (rows {rows})")
    if (enc.input_ids[~real] != 0).any():
        problems.append("padding positions hold ids other than 0 ([PAD])")
    if (enc.offsets[~real] != 0).any():
        problems.append("padding positions hold offsets other than (0, 0)")
    if not pairs and (enc.token_type_ids != 0).any():
        problems.append("token_type_ids not all 0 for single sequences")
    if pairs and (enc.token_type_ids[~real] != 0).any():
        problems.append("token_type_ids not 0 on padding")
    return problems


def _rows(enc: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i, n in enumerate(enc.lengths):
        yield enc.input_ids[i, :n], enc.offsets[i, :n]


# ------------------------------------------------------------------------------------------- encode


def test_encode_ids_and_offsets_match_hf(rr: Any, corpus: Any, hf_tokenizer: Any) -> None:
    name, texts, ref = corpus
    got = []
    for t in texts:
        ids, offs = rr.encode(t, return_offsets=True)
        assert isinstance(ids, np.ndarray) and ids.dtype == np.int64 and ids.ndim == 1, (t, ids)
        assert isinstance(offs, np.ndarray) and offs.dtype == np.int64 and offs.shape == (len(ids), 2), (t, offs)
        got.append((ids, offs))
    msg = compare_encodings(texts, ref, got, hf_tokenizer.id_to_token, f"encode(return_offsets=True) on {name}")
    assert msg is None, msg


def test_encode_ids_only_match_hf(rr: Any, corpus: Any, hf_tokenizer: Any) -> None:
    name, texts, ref = corpus
    got = [(rr.encode(t), None) for t in texts]
    msg = compare_encodings(texts, [(i, None) for i, _ in ref], got, hf_tokenizer.id_to_token, f"encode on {name}")
    assert msg is None, msg


def test_encode_without_special_tokens_matches_hf(rr: Any, corpus: Any, hf_tokenizer: Any) -> None:
    name, texts, _ = corpus
    ref = _reference(hf_tokenizer, name, texts, add_special_tokens=False)
    got = [rr.encode(t, add_special_tokens=False, return_offsets=True) for t in texts]
    msg = compare_encodings(texts, ref, got, hf_tokenizer.id_to_token, f"encode(add_special_tokens=False) on {name}")
    assert msg is None, msg


# ------------------------------------------------------------------------------------------- batches


def test_encode_batch_matches_hf(rr: Any, corpus: Any, hf_tokenizer: Any) -> None:
    name, texts, ref = corpus
    got: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in _chunks(texts):
        enc = rr.encode_batch(list(batch))
        problems = _batch_layout_problems(enc, len(batch))
        assert not problems, f"encode_batch on {name}: " + "; ".join(problems)
        got.extend(_rows(enc))
    msg = compare_encodings(texts, ref, got, hf_tokenizer.id_to_token, f"encode_batch on {name}")
    assert msg is None, msg


@pytest.mark.parametrize("max_length", [2, 8, 64, 256])
def test_encode_batch_truncation_matches_hf(rr: Any, corpus: Any, hf_tokenizer: Any, max_length: int) -> None:
    name, texts, _ = corpus
    ref = _reference(hf_tokenizer, name, texts, max_length=max_length)
    longest = max(len(i) for i, _ in corpus[2])
    assert max(len(i) for i, _ in ref) == min(max_length, longest)  # the reference did truncate what is longer
    got: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in _chunks(texts):
        enc = rr.encode_batch(list(batch), max_length=max_length)
        problems = _batch_layout_problems(enc, len(batch))
        assert not problems, f"encode_batch(max_length={max_length}) on {name}: " + "; ".join(problems)
        got.extend(_rows(enc))
    msg = compare_encodings(
        texts, ref, got, hf_tokenizer.id_to_token, f"encode_batch(max_length={max_length}) on {name}"
    )
    assert msg is None, msg


def test_encode_batch_pad_to_max_length_matches_hf(rr: Any, corpus: Any, hf_tokenizer: Any) -> None:
    name, texts, _ = corpus
    max_length = 128
    ref = _reference(hf_tokenizer, name, texts, max_length=max_length)
    got: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in _chunks(texts):
        enc = rr.encode_batch(list(batch), max_length=max_length, padding="max_length")
        problems = _batch_layout_problems(enc, len(batch), padded_to=max_length)
        assert not problems, f"encode_batch(padding='max_length') on {name}: " + "; ".join(problems)
        got.extend(_rows(enc))
    msg = compare_encodings(texts, ref, got, hf_tokenizer.id_to_token, f"encode_batch(padding='max_length') on {name}")
    assert msg is None, msg


# ------------------------------------------------------------------------------------------- pairs


def _pairs(name: str, texts: list[str], request: pytest.FixtureRequest) -> tuple[list[str], list[str]]:
    """Deterministic (query, passage) pairs covering every text of the corpus as a passage."""
    if name == "scifact":
        from rapidrag.beir import load_queries

        queries = list(load_queries(request.getfixturevalue("scifact_dir")).values())
        return [queries[i % len(queries)] for i in range(len(texts))], list(texts)
    n = len(texts)
    return [texts[(7 * i + 3) % n] for i in range(n)], list(texts)


_PAIR_REFERENCE: dict[tuple[str, int | None], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}


def _pair_reference(
    hf_tokenizer: Any, name: str, queries: list[str], passages: list[str], max_length: int | None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """HF (ids, offsets, type_ids) of the pairs, truncating only the passage, computed once per setting."""
    key = (name, max_length)
    if key not in _PAIR_REFERENCE:
        hf = hf_copy(hf_tokenizer)
        if max_length is not None:
            hf.enable_truncation(max_length, strategy="only_second")
        _PAIR_REFERENCE[key] = [
            (
                np.asarray(e.ids, dtype=np.int32),
                np.asarray(e.offsets, dtype=np.int32).reshape(-1, 2),
                np.asarray(e.type_ids, dtype=np.int32),
            )
            for e in hf.encode_batch(list(zip(queries, passages, strict=True)))
        ]
    return _PAIR_REFERENCE[key]


def _compare_pairs(
    rr: Any,
    hf_tokenizer: Any,
    name: str,
    queries: list[str],
    passages: list[str],
    max_length: int | None,
    offsets: bool,
) -> None:
    what = f"encode_pairs(max_length={max_length}) on {name}"
    ref = _pair_reference(hf_tokenizer, name, queries, passages, max_length)
    texts = [f"{q!r} || {p!r}" for q, p in zip(queries, passages, strict=True)]
    got_ids: list[tuple[np.ndarray, np.ndarray | None]] = []
    got_types: list[np.ndarray] = []
    for lo in range(0, len(queries), BATCH):
        enc = rr.encode_pairs(queries[lo : lo + BATCH], passages[lo : lo + BATCH], max_length=max_length)
        n_rows = len(queries[lo : lo + BATCH])
        problems = _batch_layout_problems(enc, n_rows, pairs=True)
        assert not problems, f"{what}: " + "; ".join(problems)
        for i, n in enumerate(enc.lengths):
            got_ids.append((enc.input_ids[i, :n], enc.offsets[i, :n] if offsets else None))
            got_types.append(enc.token_type_ids[i, :n])
    expected = [(ids, offs if offsets else None) for ids, offs, _ in ref]
    msg = compare_encodings(
        texts, expected, got_ids, hf_tokenizer.id_to_token, what + (" with offsets" if offsets else "")
    )
    assert msg is None, msg
    bad_types = [
        (i, e[2].tolist(), g.tolist())
        for i, (e, g) in enumerate(zip(ref, got_types, strict=True))
        if not np.array_equal(e[2], g)
    ]
    assert not bad_types, f"{what}: token_type_ids differ for {len(bad_types)} pairs; first: " + "; ".join(
        f"#{i} {texts[i][:120]} reference {e} rapidrag {g}" for i, e, g in bad_types[:3]
    )


@pytest.mark.parametrize("offsets", [False, True], ids=["ids", "offsets"])
def test_encode_pairs_match_hf(
    rr: Any, corpus: Any, hf_tokenizer: Any, request: pytest.FixtureRequest, offsets: bool
) -> None:
    name, texts, _ = corpus
    queries, passages = _pairs(name, texts, request)
    _compare_pairs(rr, hf_tokenizer, name, queries, passages, None, offsets)


@pytest.mark.parametrize("max_length", [64, 256])
def test_encode_pairs_truncate_only_the_passage_like_hf(
    rr: Any, corpus: Any, hf_tokenizer: Any, request: pytest.FixtureRequest, max_length: int
) -> None:
    name, texts, _ = corpus
    queries, passages = _pairs(name, texts, request)
    # Only pairs whose query leaves room for at least one passage token: HF refuses the others.
    q_len = [len(e.ids) for e in hf_tokenizer.encode_batch(queries, add_special_tokens=False)]
    keep = [i for i, n in enumerate(q_len) if n + 4 <= max_length]
    assert len(keep) >= len(queries) // 2
    queries = [queries[i] for i in keep]
    passages = [passages[i] for i in keep]
    _compare_pairs(rr, hf_tokenizer, name, queries, passages, max_length, True)


# ------------------------------------------------------------------------------------------- counts


def test_count_tokens_matches_hf(rr: Any, corpus: Any) -> None:
    name, texts, ref = corpus
    expected = np.array([len(ids) - 2 for ids, _ in ref], dtype=np.int64)
    got = rr.count_tokens(texts)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64 and got.shape == (len(texts),)
    bad = np.nonzero(got != expected)[0]
    assert not len(bad), f"count_tokens(list) on {name}: {len(bad)} texts differ; first: " + "; ".join(
        f"#{i} {texts[i][:80]!r} reference {expected[i]} rapidrag {got[i]}" for i in bad[:5]
    )
    singles = [rr.count_tokens(t) for t in texts]
    assert all(isinstance(c, int) for c in singles)
    bad_single = [i for i, c in enumerate(singles) if c != expected[i]]
    assert not bad_single, f"count_tokens(str) on {name}: {len(bad_single)} texts differ; first: " + "; ".join(
        f"#{i} {texts[i][:80]!r} reference {expected[i]} rapidrag {singles[i]}" for i in bad_single[:5]
    )
