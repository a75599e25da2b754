"""Token-aware chunker on the native core: chunks of at most ``max_tokens`` tokens with offsets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import _core
from .tokenizer import Tokenizer, _check_texts, _check_threads

__all__ = ["Chunk", "Chunker"]


class Chunk(NamedTuple):
    """A chunk of a text: ``text == original[start:end]``, ``n_tokens`` counted without special tokens.

    A named tuple: immutable, and several times cheaper to create than a frozen dataclass, which matters
    when a corpus gives millions of chunks.
    """

    text: str
    start: int
    end: int
    n_tokens: int


class Chunker:
    """Split texts into chunks of at most ``max_tokens`` tokens of ``tokenizer``.

    Cuts go to the best boundary the window allows, in this order: a blank line, a line break, a sentence
    end, whitespace; a word is cut only when it alone exceeds ``max_tokens`` (then between its word pieces).
    Together the chunks cover every non-whitespace character of the text. With ``overlap`` > 0 each chunk
    starts ``overlap`` tokens (of the text's token sequence) before the end of the previous one, so every chunk
    but the last has more than ``overlap`` tokens (with BPE and Unigram tokenizers a chunk never starts at a token
    of spaces alone, which can shorten an overlap by such tokens). With WordPiece a chunk's count is the
    document's tokens it holds; with BPE and Unigram, whose tokens carry the space before their word, each chunk
    is counted again on its own text.

    Parameters
    ----------
    tokenizer : Tokenizer
        Counts the tokens; chunk sizes are exact for it.
    max_tokens : int
        Largest chunk, in tokens without special tokens. For an embedding model, its window less its special
        tokens (2 for BERT).
    overlap : int
        Tokens shared by consecutive chunks, ``0 <= overlap < max_tokens``.
    n_threads : int or None
        Threads for ``split_batch``; None uses the tokenizer's setting.
    """

    def __init__(
        self, tokenizer: Tokenizer, max_tokens: int = 512, overlap: int = 0, *, n_threads: int | None = None
    ) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a rapidrag.Tokenizer, not {type(tokenizer).__name__}")
        for name, value in (("max_tokens", max_tokens), ("overlap", overlap)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise ValueError(f"overlap must satisfy 0 <= overlap < max_tokens ({max_tokens}), got {overlap}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.n_threads = _check_threads(n_threads, tokenizer.n_threads)
        self._core = _core.Chunker(tokenizer._core, max_tokens, overlap)

    def split(self, text: str) -> list[Chunk]:
        """Chunks of one text, in order."""
        spans = self._core.split(text)
        return [Chunk(text[s:e], s, e, n) for s, e, n in spans.tolist()]

    def spans_batch(
        self, texts: Sequence[str], *, n_threads: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The chunks of many texts as arrays, without their strings: ``spans`` [n_chunks, 3] (start, end, token
        count) and ``row_splits``, text i's chunks being ``spans[row_splits[i]:row_splits[i + 1]]``."""
        items = _check_texts(texts, "texts")
        spans, row_splits = self._core.split_batch(items, _check_threads(n_threads, self.n_threads))
        return spans, row_splits

    def split_batch(self, texts: Sequence[str], *, n_threads: int | None = None) -> list[list[Chunk]]:
        """Chunks of many texts, split in parallel across texts."""
        items = _check_texts(texts, "texts")
        spans, row_splits = self._core.split_batch(items, _check_threads(n_threads, self.n_threads))
        rows = spans.tolist()
        bounds = row_splits.tolist()
        out = []
        for i, text in enumerate(items):
            out.append([Chunk(text[s:e], s, e, n) for s, e, n in rows[bounds[i] : bounds[i + 1]]])
        return out

    def __repr__(self) -> str:
        return f"Chunker(max_tokens={self.max_tokens}, overlap={self.overlap})"
