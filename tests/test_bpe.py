"""Byte-level BPE (GPT-2, RoBERTa, Llama 3 and Qwen2 layouts) on the native core: ids and offsets identical to
Hugging Face ``tokenizers`` for tokenizers trained here with its trainers, and clear errors for what is not
supported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

import rapidrag
from rapidrag.errors import VocabularyError

LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
Trained = dict[str, tuple[tokenizers.Tokenizer, Path]]
SPECIALS = ["<s>", "</s>", "<pad>", "<|endoftext|>"]


def train(texts: list[str], layout: str, vocab_size: int = 2000) -> tokenizers.Tokenizer:
    """A byte-level BPE tokenizer in one of the layouts of today's models, trained on ``texts``."""
    tok = tokenizers.Tokenizer(models.BPE(ignore_merges=layout == "llama3"))
    if layout == "qwen2":
        tok.normalizer = normalizers.NFC()
    if layout in ("gpt2", "roberta"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=layout == "roberta")
    else:
        pattern = LLAMA3 if layout == "llama3" else QWEN2
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    if layout == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", 1), ("<s>", 0))
    elif layout == "gpt2":
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    elif layout == "qwen2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:  # Llama 3: a begin-of-text token before each text, and a template for pairs
        template = processors.TemplateProcessing(
            single="<|endoftext|> $A",
            pair="<|endoftext|> $A <|endoftext|>:1 $B:1",
            special_tokens=[("<|endoftext|>", 3)],
        )
        tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return tok


LAYOUTS = ("gpt2", "roberta", "llama3", "qwen2")


@pytest.fixture(scope="module")
def trained(scifact_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    out = {}
    folder = tmp_path_factory.mktemp("bpe")
    for layout in LAYOUTS:
        path = folder / f"{layout}.json"
        train(scifact_texts[:400], layout).save(str(path))
        out[layout] = (tokenizers.Tokenizer.from_file(str(path)), path)  # the file as Hugging Face loads it
    return out


def same(ref: tokenizers.Tokenizer, ours: rapidrag.Tokenizer, texts: list[str], special: bool) -> None:
    for text in texts:
        expected = ref.encode(text, add_special_tokens=special)
        ids, offsets = ours.encode(text, add_special_tokens=special, return_offsets=True)
        assert ids.tolist() == expected.ids, text
        assert [tuple(o) for o in offsets.tolist()] == [tuple(o) for o in expected.offsets], text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ids_and_offsets_match_the_reference(
    trained: Trained,
    scifact_texts: list[str],
    gcide_texts: list[str],
    stress_texts: list[str],
    layout: str,
) -> None:
    """Held-out SciFact passages, the Unicode stress set and edge cases of the split patterns (contractions,
    digit runs, runs of spaces and line breaks, special tokens in the text) give the reference's ids and
    offsets, with and without special tokens."""
    ref, path = trained[layout]
    ours = rapidrag.Tokenizer.from_file(path)
    edge = [
        "",
        " ",
        "  leading spaces",
        "trailing spaces   ",
        "It's they'RE we'Ve I'M you'LL he'D 'x ſ'S",
        "12345678 1,000,000.5 ²³ ½ Ⅻ ٣٤٥",
        "a\tb\r\nc\n\n\n  d \r\n e\u3000f\u00a0g\u2028h",
        "<s>special</s> inside <|endoftext|>text<pad>",
        "!!! ??? ... --- (a) [b] {c} \"q\" 'q'",
        "日本語のテキスト 한국어 텍스트 😀👍🏽 e\u0301 ﬁ",
        "Composed: e\u0301 a\u0328\u0301 o\u0308\u0304 \u212b \u1100\u1161\u11a8 q\u0307\u0323 A\u030a\u0301",
        "x" * 300,
        " " * 40 + "y",
    ]
    texts = scifact_texts[400:700] + gcide_texts[:300] + stress_texts + edge
    same(ref, ours, texts, special=False)
    same(ref, ours, texts[:200] + edge, special=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batches_and_counts_match_single_encodes(trained: Trained, scifact_texts: list[str], layout: str) -> None:
    ref, path = trained[layout]
    ours = rapidrag.Tokenizer.from_file(path, n_threads=2)
    texts = scifact_texts[700:800]
    batch = ours.encode_batch(texts, padding=False)
    expected = ref.encode_batch(texts)
    assert [row.tolist() for row in batch.input_ids] == [e.ids for e in expected]
    counts = ours.count_tokens(texts)
    assert counts.tolist() == [len(ref.encode(t, add_special_tokens=False).ids) for t in texts]
    padded = ours.encode_batch(texts[:5], max_length=16)
    assert padded.input_ids.shape == (5, 16)
    np.testing.assert_array_equal(padded.input_ids[:, :5], np.array([e.ids[:5] for e in expected[:5]]))


def test_what_is_not_supported_is_refused_by_name(trained: Trained, tmp_path: Path) -> None:
    """Never a silently different tokenization: an unknown split pattern or pre-tokenizer, a normalizer, a
    post-processor or byte fallback on byte-level symbols is named in the error; pairs in a layout the core cannot
    build yet are refused. (SentencePiece-style BPE: test_sentencepiece.py.)"""
    _, path = trained["gpt2"]
    spec = json.loads(path.read_text())

    def refused(change: dict[str, object], match: str) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**spec, **change}))
        with pytest.raises(VocabularyError, match=match):
            rapidrag.Tokenizer.from_file(bad)

    split = {"type": "Split", "pattern": {"Regex": r"\w+"}, "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    refused({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, byte_level]}}, r"Split '\\\\w\+'")
    refused({"pre_tokenizer": {"type": "Whitespace"}}, r"pre_tokenizer \['Whitespace'\] is not supported")
    refused({"normalizer": {"type": "NFKD"}}, "normalizer 'NFKD' is not supported for BPE")
    refused({"post_processor": {"type": "Future"}}, "post_processor 'Future' is not supported for BPE")
    refused({"model": {**spec["model"], "byte_fallback": True}}, "byte_fallback with a byte-level pre-tokenizer")
    refused({"model": {**spec["model"], "merges": [["nope", "nah"]]}}, "merge 0")
    backwards = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "B", "type_id": 1}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {},
    }
    refused({"post_processor": backwards}, r"sequences \['B', 'A'\]")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pairs_follow_each_layout(trained: Trained, scifact_texts: list[str], layout: str) -> None:
    """encode_pairs lays out query and passage as the post-processor does: BERT-style types for a template, the
    RoBERTa <s> A </s></s> B </s> (all type 0), or the two texts alone; the ids, types and offsets are the
    reference's, and a max_length cuts the passage first."""
    ref, path = trained[layout]
    ours = rapidrag.Tokenizer.from_file(path)
    query = "what does vitamin D do to bone density?"
    passages = scifact_texts[800:830]
    batch = ours.encode_pairs(query, passages, padding=False)
    for i, passage in enumerate(passages):
        expected = ref.encode(query, passage)
        assert batch.input_ids[i].tolist() == expected.ids
        assert batch.token_type_ids[i].tolist() == expected.type_ids
        assert [tuple(o) for o in batch.offsets[i].tolist()] == [tuple(o) for o in expected.offsets]
    cut = ours.encode_pairs(query, passages[:3], max_length=32)
    assert cut.input_ids.shape == (3, 32) and (cut.lengths == 32).all()
    ref.enable_truncation(32, strategy="only_second")
    assert cut.input_ids.tolist() == [ref.encode(query, p).ids for p in passages[:3]]
    ref.no_truncation()
