"""Unit tests of rapidrag.Tokenizer: happy path, threads, bad input, vocabulary errors, options and properties."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tok_helpers import build_hf_wordpiece, check_offsets_valid, compare_encodings, hf_encode_all
from unicode_stress import SPECIAL_TOKENS, replace_surrogates

import rapidrag
from rapidrag.errors import RapidragError, VocabularyError

HELLO = "Hello, world!"
HELLO_IDS = [101, 7592, 1010, 2088, 999, 102]
HELLO_OFFSETS = [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13], [0, 0]]


# ------------------------------------------------------------------------------------------- happy path


def test_encode_happy_path(rr_tokenizer: Any) -> None:
    ids = rr_tokenizer.encode(HELLO)
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64 and ids.shape == (6,)
    assert ids.tolist() == HELLO_IDS
    ids2, offs = rr_tokenizer.encode(HELLO, return_offsets=True)
    assert ids2.tolist() == HELLO_IDS
    assert isinstance(offs, np.ndarray) and offs.dtype == np.int64 and offs.shape == (6, 2)
    assert offs.tolist() == HELLO_OFFSETS
    assert rr_tokenizer.encode(HELLO, add_special_tokens=False).tolist() == HELLO_IDS[1:-1]
    ids3, offs3 = rr_tokenizer.encode(HELLO, add_special_tokens=False, return_offsets=True)
    assert ids3.tolist() == HELLO_IDS[1:-1] and offs3.tolist() == HELLO_OFFSETS[1:-1]


def test_vocabulary_accessors(rr_tokenizer: Any) -> None:
    assert rr_tokenizer.vocab_size == 30522
    for token, i in [("[PAD]", 0), ("[UNK]", 100), ("[CLS]", 101), ("[SEP]", 102), ("[MASK]", 103), ("hello", 7592)]:
        assert rr_tokenizer.token_to_id(token) == i
        assert rr_tokenizer.id_to_token(i) == token
    assert rr_tokenizer.id_to_token(2088) == "world"


def test_loading_variants_agree(minilm_dir: Path, vocab_path: Path, rr_tokenizer: Any, stress_texts: list[str]) -> None:
    """A folder, vocab.txt, tokenizer.json, str or Path, the class or from_file: all the same tokenizer."""
    toks = [
        rr_tokenizer,  # from_file(str of vocab.txt)
        rapidrag.Tokenizer.from_file(str(minilm_dir)),
        rapidrag.Tokenizer.from_file(minilm_dir / "tokenizer.json"),
        rapidrag.Tokenizer(vocab_path),
    ]
    texts = stress_texts[:500] + [HELLO]
    ref = rr_tokenizer.count_tokens(texts)
    for t in toks:
        assert t.vocab_size == 30522
        assert t.encode(HELLO).tolist() == HELLO_IDS
        assert np.array_equal(t.count_tokens(texts), ref)


def test_count_tokens_happy_path(rr_tokenizer: Any) -> None:
    n = rr_tokenizer.count_tokens(HELLO)
    assert type(n) is int and n == 4
    counts = rr_tokenizer.count_tokens([HELLO, "", "a b", "[CLS]"])
    assert isinstance(counts, np.ndarray) and counts.dtype == np.int64
    assert counts.tolist() == [4, 0, 2, 1]


def test_encode_batch_happy_path(rr_tokenizer: Any) -> None:
    enc = rr_tokenizer.encode_batch([HELLO, "a", ""])
    assert enc.lengths.tolist() == [6, 3, 2]
    assert enc.input_ids.tolist() == [HELLO_IDS, [101, 1037, 102, 0, 0, 0], [101, 102, 0, 0, 0, 0]]
    assert enc.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]
    assert enc.token_type_ids.tolist() == [[0] * 6] * 3
    assert enc.offsets[0].tolist() == HELLO_OFFSETS
    assert enc.offsets[1].tolist() == [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]]
    enc = rr_tokenizer.encode_batch([HELLO, "a"], max_length=4)
    assert enc.input_ids.tolist() == [[101, 7592, 1010, 102], [101, 1037, 102, 0]]
    assert enc.lengths.tolist() == [4, 3]
    enc = rr_tokenizer.encode_batch([HELLO, "a"], max_length=10, padding="max_length")
    assert enc.input_ids.shape == (2, 10) and enc.lengths.tolist() == [6, 3]
    enc = rr_tokenizer.encode_batch([HELLO], add_special_tokens=False)
    assert enc.input_ids.tolist() == [HELLO_IDS[1:-1]]
    assert enc.offsets[0].tolist() == HELLO_OFFSETS[1:-1]


def test_encode_pairs_happy_path(rr_tokenizer: Any) -> None:
    enc = rr_tokenizer.encode_pairs(["what is this", "hi"], ["a passage here", "hello world"])
    assert enc.input_ids[0].tolist() == [101, 2054, 2003, 2023, 102, 1037, 6019, 2182, 102]
    assert enc.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert enc.lengths.tolist() == [9, 6]
    assert enc.input_ids[1].tolist() == [101, 7632, 102, 7592, 2088, 102, 0, 0, 0]
    assert enc.token_type_ids[1].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert enc.attention_mask[1].tolist() == [1] * 6 + [0] * 3
    enc = rr_tokenizer.encode_pairs(["what is this"], ["a passage here that is long"], max_length=8)
    assert enc.input_ids[0].tolist() == [101, 2054, 2003, 2023, 102, 1037, 6019, 102]
    assert enc.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_empty_string(rr_tokenizer: Any) -> None:
    assert rr_tokenizer.encode("").tolist() == [101, 102]
    ids, offs = rr_tokenizer.encode("", return_offsets=True)
    assert ids.tolist() == [101, 102] and offs.tolist() == [[0, 0], [0, 0]]
    ids = rr_tokenizer.encode("", add_special_tokens=False)
    assert ids.dtype == np.int64 and ids.shape == (0,)
    ids, offs = rr_tokenizer.encode("", add_special_tokens=False, return_offsets=True)
    assert ids.shape == (0,) and offs.shape == (0, 2) and offs.dtype == np.int64
    # text that cleaning removes entirely behaves the same
    for text in [" ", "\x00", "\u200b\ufeff", "\t\r\n\u3000"]:
        assert rr_tokenizer.encode(text).tolist() == [101, 102]
        assert rr_tokenizer.count_tokens(text) == 0


def test_empty_batches(rr_tokenizer: Any) -> None:
    enc = rr_tokenizer.encode_batch([])
    assert enc.lengths.shape == (0,) and enc.input_ids.shape[0] == 0 and enc.offsets.shape[0] == 0
    counts = rr_tokenizer.count_tokens([])
    assert isinstance(counts, np.ndarray) and counts.shape == (0,) and counts.dtype == np.int64
    enc = rr_tokenizer.encode_pairs([], [])
    assert enc.lengths.shape == (0,) and enc.input_ids.shape[0] == 0


# ------------------------------------------------------------------------------------------- threads


def _batch_rows(enc: Any) -> list[tuple[list[int], list[list[int]]]]:
    return [(enc.input_ids[i, :n].tolist(), enc.offsets[i, :n].tolist()) for i, n in enumerate(enc.lengths)]


def test_concurrent_python_threads_equal_serial(
    rr_tokenizer: Any, stress_texts: list[str], scifact_texts: list[str]
) -> None:
    texts = stress_texts[:1500] + scifact_texts[:500]
    serial_single = [rr_tokenizer.encode(t, return_offsets=True) for t in texts]
    batches = [texts[i : i + 100] for i in range(0, len(texts), 100)]
    serial_batches = [_batch_rows(rr_tokenizer.encode_batch(b)) for b in batches]
    serial_counts = rr_tokenizer.count_tokens(texts)
    barrier = threading.Barrier(6)

    def single(k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        barrier.wait()
        order = list(range(len(texts)))[k::2] + list(range(len(texts)))[1 - k :: 2]
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i in order:
            out[i] = rr_tokenizer.encode(texts[i], return_offsets=True)
        return [out[i] for i in range(len(texts))]

    def batched(k: int) -> list[list[tuple[list[int], list[list[int]]]]]:
        barrier.wait()
        return [_batch_rows(rr_tokenizer.encode_batch(b, n_threads=k + 1)) for b in batches]

    def counted(_: int) -> np.ndarray:
        barrier.wait()
        return rr_tokenizer.count_tokens(texts)

    with ThreadPoolExecutor(6) as pool:
        futs = [
            pool.submit(single, 0),
            pool.submit(single, 1),
            pool.submit(batched, 0),
            pool.submit(batched, 1),
            pool.submit(counted, 0),
            pool.submit(counted, 1),
        ]
        results = [f.result(timeout=300) for f in futs]
    for res in results[:2]:
        for (a_ids, a_offs), (b_ids, b_offs) in zip(serial_single, res, strict=True):
            assert np.array_equal(a_ids, b_ids) and np.array_equal(a_offs, b_offs)
    for res in results[2:4]:
        assert res == serial_batches
    for res in results[4:]:
        assert np.array_equal(res, serial_counts)


def test_n_threads_do_not_change_results(
    vocab_path: Path, rr_tokenizer: Any, stress_texts: list[str], scifact_texts: list[str]
) -> None:
    texts = stress_texts + scifact_texts[:500]
    auto = rr_tokenizer  # n_threads=0 (auto) by default
    one = rapidrag.Tokenizer(vocab_path, n_threads=1)
    ref = _batch_rows(auto.encode_batch(texts, n_threads=1))
    assert _batch_rows(auto.encode_batch(texts, n_threads=2)) == ref
    assert _batch_rows(auto.encode_batch(texts)) == ref
    assert _batch_rows(one.encode_batch(texts)) == ref
    assert _batch_rows(one.encode_batch(texts, n_threads=2)) == ref
    assert np.array_equal(one.count_tokens(texts), auto.count_tokens(texts))
    q, p = texts[:1500], texts[1500:3000]  # short stress strings as queries
    e1, e2 = auto.encode_pairs(q, p, max_length=512), one.encode_pairs(q, p, max_length=512)
    for name in ("input_ids", "token_type_ids", "attention_mask", "offsets", "lengths"):
        assert np.array_equal(getattr(e1, name), getattr(e2, name)), name


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [123, None, b"bytes", ["a list"], 1.5])
def test_encode_non_str_raises_type_error_naming_text(rr_tokenizer: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match="text"):
        rr_tokenizer.encode(bad)
    with pytest.raises(TypeError, match="text"):
        rr_tokenizer.encode(bad, return_offsets=True)


@pytest.mark.parametrize("bad", [["ok", 1], ["ok", None], [b"bytes"], ["ok", ["nested"]]])
def test_batch_with_non_str_raises_type_error(rr_tokenizer: Any, bad: list[Any]) -> None:
    with pytest.raises(TypeError):
        rr_tokenizer.encode_batch(bad)
    with pytest.raises(TypeError):
        rr_tokenizer.count_tokens(bad)
    with pytest.raises(TypeError):
        rr_tokenizer.encode_pairs(bad, ["p"] * len(bad))
    with pytest.raises(TypeError):
        rr_tokenizer.encode_pairs(["q"] * len(bad), bad)


def test_count_tokens_non_str_raises_type_error(rr_tokenizer: Any) -> None:
    with pytest.raises(TypeError):
        rr_tokenizer.count_tokens(42)
    with pytest.raises(TypeError):
        rr_tokenizer.count_tokens(None)


def test_encode_pairs_length_mismatch_raises_value_error(rr_tokenizer: Any) -> None:
    with pytest.raises(ValueError):
        rr_tokenizer.encode_pairs(["a", "b"], ["c"])


@pytest.mark.parametrize("max_length", [1, 0, -1])
def test_max_length_too_small_for_special_tokens(rr_tokenizer: Any, max_length: int) -> None:
    with pytest.raises(ValueError, match="max_length"):
        rr_tokenizer.encode_batch(["some text"], max_length=max_length)
    with pytest.raises(ValueError, match="max_length"):
        rr_tokenizer.encode_pairs(["q"], ["p"], max_length=max_length)


def test_lone_surrogates_like_replacement_char(
    rr_tokenizer: Any, surrogate_texts: list[str], hf_tokenizer: Any
) -> None:
    """A lone surrogate is dropped by text cleaning like U+FFFD; offsets still index the original str."""
    replaced = [replace_surrogates(t) for t in surrogate_texts]
    ref = hf_encode_all(hf_tokenizer, replaced)
    got = []
    for t in surrogate_texts:
        ids, offs = rr_tokenizer.encode(t, return_offsets=True)
        problem = check_offsets_valid(t, offs[1:-1])
        assert problem is None, f"{t!r}: {problem}"
        got.append((ids, offs))
    msg = compare_encodings(surrogate_texts, ref, got, hf_tokenizer.id_to_token, "encode with lone surrogates")
    assert msg is None, msg
    enc = rr_tokenizer.encode_batch(surrogate_texts)
    rows = [(enc.input_ids[i, :n], enc.offsets[i, :n]) for i, n in enumerate(enc.lengths)]
    msg = compare_encodings(surrogate_texts, ref, rows, hf_tokenizer.id_to_token, "encode_batch with lone surrogates")
    assert msg is None, msg
    assert rr_tokenizer.count_tokens(surrogate_texts).tolist() == [len(i) - 2 for i, _ in ref]
    assert [rr_tokenizer.count_tokens(t) for t in surrogate_texts] == [len(i) - 2 for i, _ in ref]
    e1 = rr_tokenizer.encode_pairs(surrogate_texts, surrogate_texts[::-1])
    e2 = rr_tokenizer.encode_pairs(replaced, replaced[::-1])
    assert np.array_equal(e1.input_ids, e2.input_ids) and np.array_equal(e1.offsets, e2.offsets)


# ------------------------------------------------------------------------------------------- vocabulary files


def _write_vocab(path: Path, tokens: list[str]) -> Path:
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


MINI_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", ",", "!"]


def test_small_custom_vocab(tmp_path: Path) -> None:
    tok = rapidrag.Tokenizer(_write_vocab(tmp_path / "vocab.txt", MINI_VOCAB))
    assert tok.vocab_size == len(MINI_VOCAB)
    assert tok.encode("Hello, worlds! Bye").tolist() == [2, 5, 8, 6, 7, 9, 1, 3]


@pytest.mark.parametrize("how", ["class", "from_file"])
def test_missing_vocab_file(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nowhere" / "vocab.txt"
    make = rapidrag.Tokenizer if how == "class" else rapidrag.Tokenizer.from_file
    with pytest.raises(FileNotFoundError) as err:
        make(str(missing))
    assert str(missing) in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        make(missing)
    assert str(missing) in str(err.value)


def test_missing_tokenizer_json_and_empty_folder(tmp_path: Path) -> None:
    missing = tmp_path / "tokenizer.json"
    with pytest.raises(FileNotFoundError) as err:
        rapidrag.Tokenizer.from_file(missing)
    assert str(missing) in str(err.value)
    empty = tmp_path / "model"
    empty.mkdir()
    with pytest.raises((FileNotFoundError, VocabularyError)) as err2:
        rapidrag.Tokenizer.from_file(empty)
    assert str(empty) in str(err2.value)


@pytest.mark.parametrize("how", ["class", "from_file"])
def test_vocab_invalid_utf8_names_file_and_line(tmp_path: Path, how: str) -> None:
    path = tmp_path / "vocab.txt"
    lines = [t.encode() for t in MINI_VOCAB]
    lines.insert(6, b"caf\xe9")  # Latin-1, not UTF-8: line 7
    path.write_bytes(b"\n".join(lines) + b"\n")
    make = rapidrag.Tokenizer if how == "class" else rapidrag.Tokenizer.from_file
    with pytest.raises(VocabularyError) as err:
        make(path)
    msg = str(err.value)
    assert str(path) in msg or path.name in msg, msg
    assert "7" in msg, msg
    assert isinstance(err.value, ValueError) and isinstance(err.value, RapidragError)


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", "\n".join(t for t in MINI_VOCAB if t != "[UNK]").encode()],
    ids=["empty", "blank-lines", "no-unk"],
)
def test_malformed_vocab_raises_vocabulary_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(VocabularyError) as err:
        rapidrag.Tokenizer(path)
    assert str(path) in str(err.value) or path.name in str(err.value)
    with pytest.raises(VocabularyError):
        rapidrag.Tokenizer.from_file(path)


def test_tokenizer_json_with_a_bare_bpe_model_tokenizes_as_the_reference(tmp_path: Path) -> None:
    """A BPE model without pre-tokenizer or normalizer merges the characters of the whole text, as the reference
    does (once refused: it is SentencePiece-style BPE, now in the core)."""
    from tokenizers import Tokenizer, models

    path = tmp_path / "tokenizer.json"
    ref = Tokenizer(models.BPE(vocab={"[UNK]": 0, "a": 1, "b": 2, "ab": 3}, merges=[("a", "b")], unk_token="[UNK]"))
    ref.save(str(path))
    ours = rapidrag.Tokenizer.from_file(path)
    for text in ("ab", "abba", "a b", "xyab", ""):
        ids, offsets = ours.encode(text, add_special_tokens=False, return_offsets=True)
        expected = ref.encode(text, add_special_tokens=False)
        assert ids.tolist() == expected.ids and [tuple(o) for o in offsets.tolist()] == expected.offsets, text


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"model": {"type": "WordPiece"}}', '{"version": "1.0"}'],
    ids=["invalid-json", "array", "no-vocab", "no-model"],
)
def test_malformed_tokenizer_json_raises_vocabulary_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabularyError):
        rapidrag.Tokenizer.from_file(path)


def test_tokenizer_json_options_are_read(tmp_path: Path, minilm_dir: Path) -> None:
    """A cased tokenizer.json (lowercase false) must give cased results, not the default uncased ones."""
    data = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    data["normalizer"]["lowercase"] = False
    data["normalizer"]["strip_accents"] = False
    data["model"]["max_input_chars_per_word"] = 7
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    import tokenizers

    hf = tokenizers.Tokenizer.from_file(str(path))
    hf.no_padding()
    hf.no_truncation()
    tok = rapidrag.Tokenizer.from_file(path)
    texts = ["Hello World", "Café résumé", "abcdefgh abcdefg", "ΣΊΣΥΦΟΣ Straße"]
    for t in texts:
        assert tok.encode(t).tolist() == hf.encode(t).ids, t


# ------------------------------------------------------------------------------------------- options


OPTION_SETS = [
    dict(lowercase=False, strip_accents=False),  # cased
    dict(lowercase=False, strip_accents=True),
    dict(lowercase=True, strip_accents=False),
    dict(lowercase=True, strip_accents=True),
    dict(lowercase=False, strip_accents=None),
    dict(handle_chinese_chars=False),
    dict(clean_text=False),
    dict(lowercase=False, clean_text=False, handle_chinese_chars=False),
    dict(max_input_chars_per_word=10),
    dict(lowercase=False, strip_accents=True, max_input_chars_per_word=5),
]


def test_reference_builder_reproduces_shipped_tokenizer(
    vocab_path: Path, hf_tokenizer: Any, stress_texts: list[str]
) -> None:
    """Guard of the option tests below: the hand-built HF pipeline with defaults equals tokenizer.json."""
    built = build_hf_wordpiece(vocab_path)
    a = hf_encode_all(built, stress_texts)
    b = hf_encode_all(hf_tokenizer, stress_texts)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_options_match_hf_pipeline(
    vocab_path: Path, stress_texts: list[str], scifact_texts: list[str], options: dict[str, Any]
) -> None:
    hf = build_hf_wordpiece(vocab_path, **options)
    tok = rapidrag.Tokenizer(vocab_path, **options)
    texts = stress_texts + scifact_texts[:300]
    ref = hf_encode_all(hf, texts)
    got = [tok.encode(t, return_offsets=True) for t in texts]
    msg = compare_encodings(texts, ref, got, hf.id_to_token, f"Tokenizer({options}).encode")
    assert msg is None, msg
    enc = tok.encode_batch(texts[:1000])
    rows = [(enc.input_ids[i, :n], enc.offsets[i, :n]) for i, n in enumerate(enc.lengths)]
    msg = compare_encodings(texts[:1000], ref[:1000], rows, hf.id_to_token, f"Tokenizer({options}).encode_batch")
    assert msg is None, msg


def test_cased_configuration_differs_from_uncased(vocab_path: Path, rr_tokenizer: Any) -> None:
    cased = rapidrag.Tokenizer(vocab_path, lowercase=False, strip_accents=False)
    uncased = rr_tokenizer
    assert (
        cased.encode("Hello", add_special_tokens=False).tolist()
        != uncased.encode("Hello", add_special_tokens=False).tolist()
    )
    assert uncased.encode("Héllo", add_special_tokens=False).tolist() == [7592]
    no_strip = rapidrag.Tokenizer(vocab_path, strip_accents=False)
    assert no_strip.encode("Héllo", add_special_tokens=False).tolist() != [7592]


def test_max_input_chars_per_word(vocab_path: Path, rr_tokenizer: Any) -> None:
    default = rr_tokenizer
    assert 100 not in default.encode("x" * 100).tolist()
    assert default.encode("x" * 101).tolist() == [101, 100, 102]
    assert default.encode("y " + "x" * 101 + " y", return_offsets=True)[1].tolist() == [
        [0, 0],
        [0, 1],
        [2, 103],
        [104, 105],
        [0, 0],
    ]
    five = rapidrag.Tokenizer(vocab_path, max_input_chars_per_word=5)
    assert five.encode("hello", add_special_tokens=False).tolist() == [7592]
    assert five.encode("hellos", add_special_tokens=False).tolist() == [100]
    assert five.encode("Héllo", add_special_tokens=False).tolist() == [7592]  # counted after accent stripping
    assert five.encode("hello, world", add_special_tokens=False).tolist() == [7592, 1010, 2088]


# ------------------------------------------------------------------------------------------- properties

ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates included
NO_SURROGATE = st.characters(codec="utf-8")
PIECES = st.sampled_from(
    list(SPECIAL_TOKENS)
    + [
        " ",
        "\n",
        "\r\n",
        "\t",
        "\u3000",
        "\xa0",
        "\u200b",
        "\u00ad",
        "\x00",
        "\ufffd",
        "é",
        "e\u0301",
        "İ",
        "ß",
        "ς",
        "中",
        "한",
        "👍🏽",
        "\u200d",
        "a",
        "Z",
        "1",
        ".",
        "'",
        "[",
        "]",
        "##",
        "x" * 100,
        # combining marks of different classes, out of canonical order: NFD reorders them
        "\u0301",
        "\u0316",
        "\u0333",
        "\u1dfb",
        "\u1df8",
        "\u1dfa",
        "\u302c",
        "\u302f",
        "\u05b0",
        "\u0651",
    ]
)
CATEGORY_TEXT = st.text(
    st.characters(
        categories=["Mn", "Mc", "Me", "Lo", "Lu", "Ll", "Lt", "Lm", "Nd", "No", "P", "S", "Zs", "Cc", "Cf", "Co", "Cn"]
    ),
    max_size=60,
)


# Base letters, spaces and combining marks of several combining classes: canonical reordering and accent stripping.
MARK_TEXT = st.text(
    st.sampled_from(
        list("aeIİ 中[")
        + [
            "\u0301",
            "\u0316",
            "\u0333",
            "\u0345",
            "\u1dfb",
            "\u1df8",
            "\u1dfa",
            "\u302c",
            "\u302f",
            "\u05b0",
            "\u0651",
            "\u20dd",
        ]
    ),
    max_size=12,
)


def _texts(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(chars, max_size=80),
        CATEGORY_TEXT,
        MARK_TEXT,
        st.lists(st.one_of(PIECES, st.text(chars, max_size=5)), max_size=25).map("".join),
    )


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts(ANY_CHAR))
def test_property_any_text_never_crashes_and_offsets_are_valid(rr_tokenizer: Any, text: str) -> None:
    ids, offs = rr_tokenizer.encode(text, return_offsets=True)
    assert ids.dtype == np.int64 and offs.shape == (len(ids), 2)
    assert len(ids) >= 2 and ids[0] == 101 and ids[-1] == 102
    assert offs[0].tolist() == [0, 0] and offs[-1].tolist() == [0, 0]
    assert ((ids >= 0) & (ids < rr_tokenizer.vocab_size)).all()
    problem = check_offsets_valid(text, offs[1:-1])
    assert problem is None, problem
    bare, bare_offs = rr_tokenizer.encode(text, add_special_tokens=False, return_offsets=True)
    assert np.array_equal(bare, ids[1:-1]) and np.array_equal(bare_offs, offs[1:-1])
    assert rr_tokenizer.count_tokens(text) == len(ids) - 2
    fixed_ids, fixed_offs = rr_tokenizer.encode(replace_surrogates(text), return_offsets=True)
    assert np.array_equal(ids, fixed_ids) and np.array_equal(offs, fixed_offs)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts(NO_SURROGATE))
def test_property_parity_with_hf(rr_tokenizer: Any, hf_ref: Any, text: str) -> None:
    e = hf_ref.encode(text)
    ids, offs = rr_tokenizer.encode(text, return_offsets=True)
    assert ids.tolist() == e.ids, (text, [hf_ref.id_to_token(int(i)) for i in ids], e.tokens)
    assert [tuple(o) for o in offs.tolist()] == e.offsets, (text, e.tokens, offs.tolist(), e.offsets)
    enc = rr_tokenizer.encode_batch([text, text[: len(text) // 2]])
    assert enc.input_ids[0, : enc.lengths[0]].tolist() == e.ids


def test_long_text_on_threads_equals_one_thread(vocab_path: Path) -> None:
    """A text long enough to be cut at whitespace and encoded on several threads gives the same tokens."""
    pieces = ["caf\u00e9 na\u0308ive [SEP] \u6771\u4eac", "x\u0301\u0328 y\u302e\u302d", "plain words here.", "\n\n\t"]
    text = " ".join(pieces[i % len(pieces)] for i in range(100_000))
    assert len(text) > 1_000_000
    one = rapidrag.Tokenizer(vocab_path, n_threads=1)
    two = rapidrag.Tokenizer(vocab_path, n_threads=2)
    ids1, off1 = one.encode(text, return_offsets=True)
    ids2, off2 = two.encode(text, return_offsets=True)
    np.testing.assert_array_equal(ids1, ids2)
    np.testing.assert_array_equal(off1, off2)
    assert one.count_tokens(text) == len(ids1) - 2
