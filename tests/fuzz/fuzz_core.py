"""Coverage-guided fuzzing (atheris) of Tokenizer.encode, encode_batch, Chunker.split and the BM25 word splitter.

Each input picks a tokenizer (WordPiece with its options, or byte-level BPE with and without NFC, or Unigram,
those two trained at start-up with the ``tokenizers`` trainers), a chunk size and an overlap, and a text of
arbitrary code points (lone surrogates included); the checks are the documented invariants, not only "no crash":
ids inside the vocabulary, offsets inside the text and non-decreasing, batch rows equal to single encodes,
count_tokens equal to the encoded length, and for chunks: text == original[start:end], starts strictly
increasing, every non-whitespace character covered, n_tokens equal to the tokenizer's count of the chunk and
at most max_tokens (unless one character alone gives more tokens).

Run: python tests/fuzz/fuzz_core.py [VOCAB] -max_total_time=60
(VOCAB defaults to the shared embedder's vocab.txt, or to a small built-in vocabulary.)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import numpy as np

    import rapidrag

SMALL_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "##a",
    "b",
    "##b",
    "ab",
    "##ab",
    ".",
    ",",
    "!",
    "the",
    "##s",
    "e",
    "##e",
    "東",
    "\u1100",
    "##\u1161",
    "x",
]


def _vocab() -> list[str] | Path:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if args:
        return Path(args[0])
    shared = Path(os.environ.get("RAPIDRAG_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    path = shared / "models" / "all-MiniLM-L6-v2" / "vocab.txt"
    return path if path.is_file() else SMALL_VOCAB


VOCAB = _vocab()
TOKENIZERS = {
    (lower, strip, clean, chinese): rapidrag.Tokenizer(
        VOCAB, lowercase=lower, strip_accents=strip, clean_text=clean, handle_chinese_chars=chinese
    )
    for lower in (True, False)
    for strip in (True, False)
    for clean in (True, False)
    for chinese in (True, False)
}


def _other_models() -> list[rapidrag.Tokenizer]:
    """Byte-level BPE (GPT-2 split; Qwen2 split with NFC), Unigram, and SentencePiece's Unigram and BPE, trained on
    a few sentences."""
    try:
        import tokenizers
        from tokenizers import Regex, models, normalizers, pre_tokenizers, processors, trainers
    except ImportError:  # pragma: no cover - the [test] extra has it
        return []
    texts = ["the cat sat on the mat.", "Café au lait, 東京! 123 4567", "a b ab abc\nthe end\r\n  x"] * 20
    qwen = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
        r"|\s+(?!\S)|\s+"
    )
    out = []
    for kind in ("gpt2", "qwen2", "unigram"):
        if kind == "unigram":
            tok = tokenizers.Tokenizer(models.Unigram())
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            trainer = trainers.UnigramTrainer(vocab_size=80, special_tokens=["<unk>", "<s>"], unk_token="<unk>")
        else:
            tok = tokenizers.Tokenizer(models.BPE())
            if kind == "qwen2":
                tok.normalizer = normalizers.NFC()
                split = pre_tokenizers.Split(Regex(qwen), behavior="isolated")
                tok.pre_tokenizer = pre_tokenizers.Sequence(
                    [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
                )
            else:
                tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
                tok.post_processor = processors.ByteLevel(trim_offsets=True)
            trainer = trainers.BpeTrainer(
                vocab_size=300, special_tokens=["<s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
            )
        trainer.show_progress = False
        tok.train_from_iterator(texts, trainer)
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rapidrag-fuzz-{os.getpid()}-{kind}.json"
        tok.save(str(path))
        out.append(rapidrag.Tokenizer.from_file(path))
        path.unlink()
    return out + _sentencepiece(texts)


def _sentencepiece(texts: list[str]) -> list[rapidrag.Tokenizer]:
    """Models trained by sentencepiece and converted by transformers, when both are installed: Unigram (nmt_nfkc:
    the precompiled character map, then Strip and Replace) and BPE with byte fallback (as Llama 2 ships it)."""
    try:
        import sentencepiece
        from transformers import LlamaTokenizer
        from transformers.convert_slow_tokenizer import SpmConverter
    except ImportError:  # pragma: no cover - the [test] and [train] extras have them
        return []
    import io
    import shutil
    import tempfile
    import types

    out = []
    with tempfile.TemporaryDirectory(prefix="rapidrag-fuzz-") as tmp:
        folder = Path(tmp)
        for kind in ("unigram", "bpe"):
            model = io.BytesIO()
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                model_type=kind,
                vocab_size=400 if kind == "bpe" else 60,  # byte fallback needs its 256 byte pieces
                hard_vocab_limit=False,
                byte_fallback=kind == "bpe",
                minloglevel=2,
            )
            (folder / kind).mkdir()
            (folder / kind / "tokenizer.model").write_bytes(model.getvalue())
            if kind == "bpe":
                LlamaTokenizer.from_pretrained(folder / kind, legacy=False).save_pretrained(folder / kind)
            else:
                options = types.SimpleNamespace(
                    vocab_file=str(folder / kind / "tokenizer.model"),
                    add_prefix_space=True,
                    legacy=True,
                    handle_byte_fallback=False,
                )
                SpmConverter(options).converted().save(str(folder / kind / "tokenizer.json"))
            out.append(rapidrag.Tokenizer.from_file(folder / kind / "tokenizer.json"))
            shutil.rmtree(folder / kind)
    return out


OTHER_MODELS = _other_models()


def check_encode(tok: rapidrag.Tokenizer, text: str) -> None:
    ids, offsets = tok.encode(text, add_special_tokens=False, return_offsets=True)
    if ids.dtype != np.int64 or offsets.shape != (len(ids), 2):
        raise AssertionError("encode returned the wrong dtype or shape")
    if len(ids) and (ids.min() < 0 or ids.max() >= tok.vocab_size):
        raise AssertionError(f"id outside the vocabulary for {text!r}")
    wordpiece = tok._layout.name == "bert"
    if len(ids):
        # BPE trims a token of spaces alone to an empty span; WordPiece tokens always hold a character.
        if offsets.min() < 0 or offsets.max() > len(text) or np.any(offsets[:, 0] > offsets[:, 1]):
            raise AssertionError(f"offsets outside the text or reversed for {text!r}: {offsets.tolist()}")
        if wordpiece and np.any(offsets[:, 0] == offsets[:, 1]):
            raise AssertionError(f"empty offsets for {text!r}: {offsets.tolist()}")
        if wordpiece and np.any(np.diff(offsets[:, 0]) < 0):
            raise AssertionError(f"offsets go backwards for {text!r}")
    if tok.count_tokens(text) != len(ids):
        raise AssertionError(f"count_tokens differs from encode for {text!r}")
    batch = tok.encode_batch([text, "", text], padding=False, add_special_tokens=False, n_threads=2)
    for row in (0, 2):
        if not np.array_equal(batch.input_ids[row], ids) or not np.array_equal(batch.offsets[row], offsets):
            raise AssertionError(f"encode_batch row differs from encode for {text!r}")


def check_chunks(chunker: rapidrag.Chunker, text: str) -> None:
    tok = chunker.tokenizer
    chunks = chunker.split(text)
    covered = bytearray(len(text))
    previous = -1
    for ch in chunks:
        if ch.text != text[ch.start : ch.end] or not ch.start < ch.end or ch.start <= previous:
            raise AssertionError(f"bad chunk {ch} for {text!r}")
        previous = ch.start
        n = tok.count_tokens(ch.text)
        if n != ch.n_tokens:
            raise AssertionError(f"n_tokens {ch.n_tokens} != count {n} for chunk {ch.text!r} of {text!r}")
        if n > chunker.max_tokens:
            # Allowed only where one character of the chunk alone gives more tokens than the limit (a prefix
            # space a normalizer or Metaspace adds counts with it).
            _, offsets = tok.encode(ch.text, add_special_tokens=False, return_offsets=True)
            if len(set(offsets[:, 0].tolist())) != 1 and max(tok.count_tokens(list(ch.text))) <= chunker.max_tokens:
                raise AssertionError(f"chunk over max_tokens: {ch} of {text!r}")
        covered[ch.start : ch.end] = b"\x01" * (ch.end - ch.start)
    for i, c in enumerate(text):
        if not covered[i] and not c.isspace():
            raise AssertionError(f"character {i} ({c!r}) not covered in {text!r}: {chunks}")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    key = tuple(fdp.ConsumeBool() for _ in range(4))
    other = fdp.ConsumeIntInRange(0, 2 * len(OTHER_MODELS))  # half the inputs go to WordPiece
    max_tokens = fdp.ConsumeIntInRange(1, 64)
    overlap = fdp.ConsumeIntInRange(0, max_tokens - 1)
    text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    tok = OTHER_MODELS[other - 1] if 0 < other <= len(OTHER_MODELS) else TOKENIZERS[key]  # type: ignore[index]
    check_encode(tok, text)
    check_chunks(rapidrag.Chunker(tok, max_tokens=max_tokens, overlap=overlap), text)
    check_words(text)
    check_sentences(text)


WORD = re.compile(r"\w+")
# Characters the native word splitter is documented to lowercase differently from str.lower().
WORD_EXCEPTIONS = set("\u03a3\ua7cb\ua7d2\ua7d4\ua7dc")


def check_words(text: str) -> None:
    words = rapidrag._core.split_words(text)
    if WORD_EXCEPTIONS.isdisjoint(text) and words != WORD.findall(text.lower()):
        raise AssertionError(f"split_words({text!r}) = {words}, regex gives {WORD.findall(text.lower())}")
    starts, ids = rapidrag._core.word_prefixes(text, sorted({w[:2] for w in words}))
    if len(starts) != len(words) or (len(starts) and (starts.min() < 0 or starts.max() >= len(text))):
        raise AssertionError(f"word_prefixes({text!r}): {starts.tolist()} for the words {words}")


END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
NEXT_START = re.compile(r"\s+([\"'\u2018\u201c(\[]*)(\S)")
PARAGRAPH = re.compile(r"\n[ \t]*\n")


def check_sentences(text: str) -> None:
    """The native scan of sentence marks finds what the splitter's regular expressions find."""
    candidates, paragraphs = rapidrag._core.sentence_marks(text, 0, len(text))
    expected = []
    for m in END.finditer(text):
        nxt = NEXT_START.match(text, m.end())
        if nxt is not None:
            begin = m.start()
            while begin > 0 and not text[begin - 1].isspace():
                begin -= 1
            expected.append((begin, m.start(), m.end(), nxt.start(2)))
    if candidates != expected or paragraphs != [m.start() for m in PARAGRAPH.finditer(text)]:
        raise AssertionError(f"sentence_marks({text!r}) = {candidates}, {paragraphs}; the patterns give {expected}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
