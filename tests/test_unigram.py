"""SentencePiece Unigram with the Metaspace pre-tokenizer on the native core: ids and offsets identical to Hugging
Face ``tokenizers`` for Unigram tokenizers trained here with its trainer (prepend schemes, split or not, NFC, NFKC,
the Strip, Replace and Lowercase steps, byte fallback, the XLM-RoBERTa layout), and clear errors for what is not
supported. The SentencePiece precompiled character map: test_sentencepiece.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, processors, trainers

import rapidrag
from rapidrag.errors import VocabularyError

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# name -> (prepend scheme, split, normalizer, byte fallback)
VARIANTS = {
    "xlmr": ("always", True, None, False),
    "first-nfc": ("first", True, "nfc", False),
    "never-nosplit": ("never", False, None, False),
    "byte-fallback": ("always", True, None, True),
    "steps": ("always", True, "steps", False),
    "nfkc": ("always", True, "nfkc", False),
}


def normalizer(name: str | None) -> normalizers.Normalizer | None:
    if name == "nfc":
        return normalizers.NFC()
    if name == "nfkc":  # as the tokenizers library's SentencePieceUnigramTokenizer normalizes
        return normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(tokenizers.Regex(" {2,}"), " ")])
    if name == "steps":  # the steps of SentencePiece conversions and uncased models, in one sequence
        return normalizers.Sequence(
            [
                normalizers.Strip(left=True, right=True),
                normalizers.Replace("``", '"'),
                normalizers.Replace(tokenizers.Regex(" {2,}"), " "),
                normalizers.Lowercase(),
                normalizers.NFC(),
            ]
        )
    return None


def train(texts: list[str], variant: str, vocab_size: int = 2000) -> tokenizers.Tokenizer:
    prepend, split, norm, byte_fallback = VARIANTS[variant]
    tok = tokenizers.Tokenizer(models.Unigram())
    if norm is not None:
        tok.normalizer = normalizer(norm)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=prepend, split=split)
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    if byte_fallback:  # the trainer here has no byte fallback: add the <0xXX> pieces and turn it on
        spec = json.loads(tok.to_str())
        spec["model"]["vocab"] += [[f"<0x{b:02X}>", -20.0] for b in range(256)]
        spec["model"]["byte_fallback"] = True
        tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(  # XLM-RoBERTa's layout
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


Trained = dict[str, tuple[tokenizers.Tokenizer, Path]]


@pytest.fixture(scope="module")
def trained(scifact_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    folder = tmp_path_factory.mktemp("unigram")
    out = {}
    for variant in VARIANTS:
        path = folder / f"{variant}.json"
        train(scifact_texts[:400], variant).save(str(path))
        # The reference is the file as Hugging Face loads it (its scores as read from JSON), not the trainer's
        # object in memory, whose scores can differ in the last bit.
        out[variant] = (tokenizers.Tokenizer.from_file(str(path)), path)
    return out


EDGE = [
    "",
    " ",
    "  two leading spaces",
    "trailing   ",
    "a  b   c\t\td\ne",
    "<s>special</s> inside <pad>text<unk>",
    "\u2581already\u2581metaspace",
    "日本語のテキスト 한국어 텍스트 😀👍🏽 e\u0301 ﬁ ǅ",
    "Composed: e\u0301 a\u0328\u0301 o\u0308\u0304 \u212b \u1100\u1161\u11a8 q\u0307\u0323",
    "unseen: ᚠᚢᚦ ꙮ 𓀀𓀁 ∰",
    "x" * 300,
]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ids_and_offsets_match_the_reference(
    trained: Trained, scifact_texts: list[str], gcide_texts: list[str], stress_texts: list[str], variant: str
) -> None:
    ref, path = trained[variant]
    ours = rapidrag.Tokenizer.from_file(path)
    texts = scifact_texts[400:700] + gcide_texts[:300] + stress_texts + EDGE
    for special in (False, True):
        for text in texts if not special else texts[:100] + EDGE:
            expected = ref.encode(text, add_special_tokens=special)
            ids, offsets = ours.encode(text, add_special_tokens=special, return_offsets=True)
            assert ids.tolist() == expected.ids, text
            assert [tuple(o) for o in offsets.tolist()] == [tuple(o) for o in expected.offsets], text


def test_batches_pairs_and_counts(trained: Trained, scifact_texts: list[str]) -> None:
    """The XLM-RoBERTa pair layout <s> A </s></s> B </s>, batched rows and counts follow the single encodes."""
    ref, path = trained["xlmr"]
    ours = rapidrag.Tokenizer.from_file(path, n_threads=2)
    texts = scifact_texts[700:760]
    batch = ours.encode_batch(texts, padding=False)
    assert [row.tolist() for row in batch.input_ids] == [e.ids for e in ref.encode_batch(texts)]
    assert ours.count_tokens(texts).tolist() == [len(ref.encode(t, add_special_tokens=False).ids) for t in texts]
    query = "what does vitamin D do to bone density?"
    pairs = ours.encode_pairs(query, texts[:10], padding=False)
    for i, passage in enumerate(texts[:10]):
        expected = ref.encode(query, passage)
        assert pairs.input_ids[i].tolist() == expected.ids
        assert [tuple(o) for o in pairs.offsets[i].tolist()] == [tuple(o) for o in expected.offsets]


def test_what_is_not_supported_is_refused_by_name(trained: Trained, tmp_path: Path) -> None:
    """A normalizer and a pre-tokenizer the core does not have are named in the error, never tokenized
    differently; a vocabulary entry that is not [piece, score] is named too."""
    _, path = trained["xlmr"]
    spec = json.loads(path.read_text())

    def refused(change: dict[str, object], match: str) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**spec, **change}))
        with pytest.raises(VocabularyError, match=match):
            rapidrag.Tokenizer.from_file(bad)

    refused({"normalizer": {"type": "NFKD"}}, "normalizer 'NFKD' is not supported for Unigram")
    refused({"pre_tokenizer": {"type": "Whitespace"}}, "pre_tokenizer 'Whitespace'")
    refused({"model": {**spec["model"], "vocab": [["a", "high"]]}}, r"model.vocab\[0\]")
    refused({"model": {**spec["model"], "unk_id": None}}, "unk_id None")


def test_scores_are_read_as_the_reference_reads_them(scifact_texts: list[str], tmp_path: Path) -> None:
    """The reference reads a JSON number as its digits times a power of ten, within an ulp of the correctly
    rounded value; a Unigram model's equal-score segmentations ("33" "3" against "3" "33") are told apart by
    those ulps, so rapidrag reads the scores the same way. A model large enough to have such ties (vocabulary
    4,000, all of SciFact) gives the reference's ids on every document."""
    from rapidrag.tokenizer_spec import reference_float as _reference_float

    assert _reference_float("-3.6538774200310797") == -3.65387742003108 != float("-3.6538774200310797")
    assert _reference_float("-1.5E+3") == -1500.0 and _reference_float("0.0") == 0.0
    train(scifact_texts, "xlmr", vocab_size=4000).save(str(tmp_path / "large.json"))
    ref = tokenizers.Tokenizer.from_file(str(tmp_path / "large.json"))
    ours = rapidrag.Tokenizer.from_file(tmp_path / "large.json")
    mismatched = [t for t in scifact_texts if ours.encode(t).tolist() != ref.encode(t).ids]
    assert not mismatched, mismatched[0][:80]
