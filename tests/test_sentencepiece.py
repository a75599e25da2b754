"""Models trained with the ``sentencepiece`` package and converted to ``tokenizer.json`` by ``transformers``: ids and
offsets identical to Hugging Face ``tokenizers`` on SciFact, the gcide corpus and the Unicode stress set.

- Unigram with SentencePiece's default normalisation (nmt_nfkc, which carries a precompiled character map), in the
  converter's layout (Precompiled, Strip, Replace " {2,}" -> "▁") and in XLM-RoBERTa's published one (Precompiled,
  Replace " {2,}" -> " ").
- SentencePiece-style BPE with byte fallback, as Llama 2 and Mistral ship it: Metaspace (prepend first, no split),
  and the older layout whose normalizer prepends and replaces the spaces (Prepend, Replace " " -> "▁").

The normalizer steps on their own against the reference's normalizers.

Needs ``sentencepiece`` (the [test] extra) and ``transformers`` (the [train] extra); under RAPIDRAG_REQUIRE_DATA=1
(CI) a missing one fails instead of skipping."""

from __future__ import annotations

import base64
import io
import json
import os
import types
from pathlib import Path

import pytest
import tokenizers

import rapidrag
from rapidrag.errors import VocabularyError

try:
    import sentencepiece
    from transformers.convert_slow_tokenizer import SpmConverter
except ImportError as e:  # pragma: no cover - depends on the environment
    if os.environ.get("RAPIDRAG_REQUIRE_DATA") == "1":
        raise ImportError(f"the SentencePiece tests need sentencepiece and transformers: {e}") from e
    pytest.skip(f"{e.name} is not installed", allow_module_level=True)

EDGE = [
    "",
    " ",
    "a   b",
    "  two leading spaces",
    "trailing   ",
    "ﬁne ﬂow ½ ① ™ ＡＢＣ１２３ ﾊﾝｶｸ",
    "Ａ\u0301 e\u0301 a\u0328\u0301 \u212b \u1100\u1161\u11a8",
    "zero\u200bwidth \u200bstart soft\u00adhyphen",
    "a\r\nb\tc\u3000d\u00a0e",
    "👨\u200d👩\u200d👧 🇯🇵🇺🇸 👍🏽",
    "<s>special</s> inside",
    "\x7f\x01control first",
    "\ufeffa document that starts with a byte-order mark",
]


def train(texts: list[str], kind: str, vocab_size: int = 2000, **options: object) -> bytes:
    """A SentencePiece model of ``kind`` (unigram, bpe) with its default normalisation (nmt_nfkc)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=kind,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def convert(model: bytes, kind: str, folder: Path) -> Path:
    """``tokenizer.json`` of a SentencePiece model as transformers converts it: Unigram with its converter
    (Precompiled, Strip, Replace; Metaspace), BPE as LlamaTokenizer does (Metaspace, prepend first, byte
    fallback)."""
    from transformers import LlamaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model)
    if kind == "bpe":
        LlamaTokenizer.from_pretrained(folder, legacy=False).save_pretrained(folder)
    else:
        options = types.SimpleNamespace(
            vocab_file=str(folder / "tokenizer.model"), add_prefix_space=True, legacy=True, handle_byte_fallback=False
        )
        SpmConverter(options).converted().save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


@pytest.fixture(scope="module")
def converted(scifact_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The converter's tokenizer.json, and the same model with XLM-RoBERTa's normalizer."""
    folder = tmp_path_factory.mktemp("sentencepiece")
    path = convert(train(scifact_texts[:400], "unigram"), "unigram", folder / "converter")
    spec = json.loads(path.read_text())
    steps = spec["normalizer"]["normalizers"]
    assert [s["type"] for s in steps] == ["Precompiled", "Strip", "Replace"]
    assert steps[0]["precompiled_charsmap"]  # nmt_nfkc carries a character map
    spec["normalizer"]["normalizers"] = [steps[0], {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    (folder / "xlmr.json").write_text(json.dumps(spec))
    return {"converter": path, "xlmr": folder / "xlmr.json"}


@pytest.fixture(scope="module")
def converted_bpe(scifact_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SentencePiece BPE model with byte fallback, converted as transformers' LlamaTokenizer converts it, and the
    same model in the older layout (no pre-tokenizer; the normalizer prepends "▁" and replaces the spaces)."""
    folder = tmp_path_factory.mktemp("sentencepiece_bpe")
    path = convert(train(scifact_texts[:400], "bpe", byte_fallback=True), "bpe", folder / "llama")
    spec = json.loads(path.read_text())
    assert spec["model"]["byte_fallback"] and spec["pre_tokenizer"]["type"] == "Metaspace"
    assert len(spec["model"]["vocab"]) == 2000 and len(spec["model"]["merges"]) > 1000
    spec["pre_tokenizer"] = None
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    (folder / "legacy.json").write_text(json.dumps(spec))
    # Without byte fallback: characters outside the vocabulary become one <unk> per run (fuse_unk).
    spec["model"] = {**spec["model"], "byte_fallback": False, "unk_token": "<unk>", "fuse_unk": True}
    (folder / "unk.json").write_text(json.dumps(spec))
    # A token with "▁" inside ("s▁the", by a merge of high rank): merges may then cross words, so the core merges
    # the whole text at once instead of word by word.
    inner = json.loads(path.read_text())
    vocab = inner["model"]["vocab"]
    vocab["s\u2581the"] = len(vocab)
    inner["model"]["merges"].insert(0, ["s", "\u2581the"])
    (folder / "inner.json").write_text(json.dumps(inner))
    return {"llama": path, "legacy": folder / "legacy.json", "unk": folder / "unk.json", "inner": folder / "inner.json"}


def _both(path: Path) -> tuple[tokenizers.Tokenizer, rapidrag.Tokenizer]:
    """The reference's tokenizer of ``path`` and rapidrag's."""
    return tokenizers.Tokenizer.from_file(str(path)), rapidrag.Tokenizer.from_file(path)


def _same_batches(ref: tokenizers.Tokenizer, ours: rapidrag.Tokenizer, texts: list[str]) -> None:
    batch = ours.encode_batch(texts, padding=False)
    assert [row.tolist() for row in batch.input_ids] == [e.ids for e in ref.encode_batch(texts)]


@pytest.mark.parametrize("layout", ["llama", "legacy", "unk", "inner"])
def test_bpe_ids_and_offsets_match_the_reference(
    converted_bpe: dict[str, Path],
    scifact_texts: list[str],
    gcide_texts: list[str],
    stress_texts: list[str],
    layout: str,
) -> None:
    ref, ours = _both(converted_bpe[layout])
    texts = scifact_texts[400:700] + gcide_texts[:300] + stress_texts + EDGE
    for special in (True, False):
        for text in texts:
            expected = ref.encode(text, add_special_tokens=special)
            ids, offsets = ours.encode(text, add_special_tokens=special, return_offsets=True)
            assert ids.tolist() == expected.ids, text
            assert [tuple(o) for o in offsets.tolist()] == [tuple(o) for o in expected.offsets], text
    if layout == "inner":  # the merge across words is taken
        assert "s\u2581the" in ref.encode("this is the end").tokens
    # Characters outside the vocabulary: <0xXX> tokens with byte fallback, else one <unk> per run.
    tokens = ref.encode("日本語 😀").tokens
    assert tokens.count("<unk>") == 2 if layout == "unk" else any(t.startswith("<0x") for t in tokens)
    _same_batches(ref, ours, texts[:200])


@pytest.mark.parametrize("layout", ["converter", "xlmr"])
def test_ids_and_offsets_match_the_reference(
    converted: dict[str, Path],
    scifact_texts: list[str],
    gcide_texts: list[str],
    stress_texts: list[str],
    layout: str,
) -> None:
    ref, ours = _both(converted[layout])
    texts = scifact_texts[400:700] + gcide_texts[:300] + stress_texts + EDGE
    spec = json.loads(converted[layout].read_text())
    spec["normalizer"] = spec["normalizer"]["normalizers"][0]
    charsmap = tokenizers.Tokenizer.from_str(json.dumps(spec))
    lagging = 0
    for text in texts:
        expected = ref.encode(text)
        ids, offsets = ours.encode(text, return_offsets=True)
        assert ids.tolist() == expected.ids, text
        # Where the character map drops the first characters of a text, the reference's spans lag behind the text
        # by as many characters; rapidrag's are where the text is.
        lag = _dropped_first(charsmap, text)
        lagging += lag > 0
        shifted = [(a + lag, b + lag) if b > 0 else (a, b) for a, b in expected.offsets]
        assert [tuple(o) for o in offsets.tolist()] == shifted, text
        assert all(b == 0 or a < b <= len(text) for a, b in offsets.tolist()), text
    assert lagging >= 2  # the check above is exercised
    _same_batches(ref, ours, texts[:200])


def _dropped_first(charsmap: tokenizers.Tokenizer, text: str) -> int:
    """How many characters at the start of ``text`` the reference's character map drops (0 if the first is kept)."""
    k = 0
    while k < len(text) and charsmap.normalizer.normalize_str(text[: k + 1]) == "":
        k += 1
    return k


def _ours(steps: list[dict[str, object]]) -> object:
    from rapidrag.tokenizer_spec import read_normalizer as _normalizer

    core, _ = _normalizer(Path("steps"), {"normalizer": {"type": "Sequence", "normalizers": steps}}, "Unigram")
    return core


def test_normalizer_steps_match_the_reference(converted: dict[str, Path], stress_texts: list[str]) -> None:
    """Each step and a sequence of them give the reference's normalized text; the spans are checked through the
    offsets above and, for the characters a step keeps, here (each kept character stands for itself)."""
    charsmap = json.loads(converted["converter"].read_text())["normalizer"]["normalizers"][0]
    steps: list[dict[str, object]] = [
        charsmap,
        {"type": "Lowercase"},
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Strip", "strip_left": False, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"},
        {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
        {"type": "Replace", "pattern": {"Regex": "\\."}, "content": ""},
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "NFC"},
        {"type": "NFKC"},
    ]
    texts = stress_texts[:400] + EDGE + ["``quoted''  and. dots.", "İstanbul ΣΑΣ ǅ", "   "]
    spec = json.loads(converted["converter"].read_text())
    for step in [*([s] for s in steps), steps]:
        spec["normalizer"] = {"type": "Sequence", "normalizers": step}
        reference = tokenizers.Tokenizer.from_str(json.dumps(spec)).normalizer
        core = _ours(step)
        for text in texts:
            normalized, spans = core.normalize(text)  # type: ignore[attr-defined]
            assert normalized == reference.normalize_str(text), (step, text)
            assert len(spans) == len(normalized)
            assert all(0 <= a < b <= len(text) for a, b in spans) or not text, (step, text)


def test_what_is_not_supported_is_refused_by_name(converted: dict[str, Path], tmp_path: Path) -> None:
    spec = json.loads(converted["converter"].read_text())

    def refused(normalizer: dict[str, object], match: str) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**spec, "normalizer": normalizer}))
        with pytest.raises(VocabularyError, match=match):
            rapidrag.Tokenizer.from_file(bad)

    refused({"type": "NFKD"}, "normalizer 'NFKD' is not supported for Unigram; supported: NFC, NFKC, Lowercase")
    refused({"type": "Replace", "pattern": {"Regex": "[0-9]+"}, "content": "0"}, r"Replace with pattern .*\[0-9\]\+")
    refused({"type": "Precompiled", "precompiled_charsmap": "AAAA"}, "Precompiled: .*shorter than its 4-byte header")
    blob = base64.b64decode(spec["normalizer"]["normalizers"][0]["precompiled_charsmap"])
    cut = base64.b64encode(blob[:100]).decode()
    refused(
        {"type": "Precompiled", "precompiled_charsmap": cut}, r"Precompiled: .*trie size \(\d+ bytes\) does not fit"
    )


def test_a_chunk_of_text_that_normalizes_away_counts_its_own_tokens(converted: dict[str, Path]) -> None:
    """'\u2000\u2000\u0300' with the converter's normalizer (character map, Strip): the map turns the spaces into
    one and the grave accent after it into nothing, so the whole text has no tokens; alone, the accent has two (the
    fuzzer found it). The chunk that keeps it covered counts its own text, as every chunk does."""
    text = "\u2000\u2000\u0300"
    for name, path in converted.items():
        tok = rapidrag.Tokenizer.from_file(path)
        if name == "converter":
            assert tok.count_tokens(text) == 0 and tok.count_tokens("\u0300") > 0
        for max_tokens in (1, 4):
            chunks = rapidrag.Chunker(tok, max_tokens=max_tokens).split(text)
            assert chunks and chunks[-1].end == len(text), (name, chunks)
            assert all(c.n_tokens == tok.count_tokens(c.text) for c in chunks), (name, chunks)
