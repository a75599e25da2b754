"""The chunker with byte-level BPE and Unigram tokenizers, whose tokens carry the space before their word: every
chunk is its text's exact slice, counts its own tokens exactly (counted again, not summed), stays within
max_tokens, begins at a word, and together the chunks cover every non-space character."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bpe import train as train_bpe
from test_unigram import train as train_unigram

import rapidrag

MODELS = {"gpt2": ("bpe", "gpt2"), "qwen2": ("bpe", "qwen2"), "xlmr": ("unigram", "xlmr")}


@pytest.fixture(scope="module")
def tokenizers_by_name(scifact_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chunk_models")
    out = {}
    for name, (kind, layout) in MODELS.items():
        tok = train_bpe(scifact_texts[:300], layout) if kind == "bpe" else train_unigram(scifact_texts[:300], layout)
        out[name] = folder / f"{name}.json"
        tok.save(str(out[name]))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_chunks_count_their_own_tokens(
    tokenizers_by_name: dict[str, Path], scifact_texts: list[str], gcide_texts: list[str], name: str
) -> None:
    tok = rapidrag.Tokenizer.from_file(tokenizers_by_name[name])
    chunker = rapidrag.Chunker(tok, max_tokens=48, overlap=8)
    texts = scifact_texts[300:360] + [t for t in gcide_texts[:400] if len(t) > 200][:40]
    texts.append("First paragraph ends here.\n\nSecond one, after a blank line.\nA line.  Spaces   inside.")
    for text, chunks in zip(texts, chunker.split_batch(texts), strict=True):
        assert chunks, text[:60]
        covered = [False] * len(text)
        for c in chunks:
            assert c.start < c.end and c.text == text[c.start : c.end]
            assert c.n_tokens == tok.count_tokens(c.text) <= 48
            assert not c.text[0].isspace() and not c.text[-1].isspace()
            for i in range(c.start, c.end):
                covered[i] = True
        assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))
    # The best boundary in the window wins: here the blank line after the first paragraph.
    first = "First paragraph ends here."
    roomy = rapidrag.Chunker(tok, max_tokens=tok.count_tokens(first) + 3).split(texts[-1])
    assert roomy[0].text == first and roomy[1].text.startswith("Second")
