"""How each chunker is configured, shared by bench_chunker.py and peak_memory.py.

Every library sizes chunks with the same tokenizer, all-MiniLM-L6-v2's ``tokenizer.json`` (HF ``tokenizers``, padding
and truncation off, special tokens not counted), with ``max_tokens`` as its limit and no overlap:

* rapidrag: ``Chunker(Tokenizer.from_file(tokenizer.json), max_tokens, overlap=0).split_batch(texts, n_threads=...)``.
* langchain-text-splitters: ``RecursiveCharacterTextSplitter(chunk_size=max_tokens, chunk_overlap=0,
  length_function=<HF count without special tokens>)`` and ``split_text`` per text. Not
  ``from_huggingface_tokenizer``: that one insists on a ``transformers`` tokenizer object and counts with
  ``len(tokenizer.tokenize(text))``, the same count through a slower Python layer, so the direct length function is
  the faster (kinder) setup for langchain and needs no ``transformers``.
* chonkie ``TokenChunker(tokenizer=<HF Tokenizer>, chunk_size=max_tokens, chunk_overlap=0)``: fixed windows of token
  ids, decoded back to text (so its chunk texts are normalized, lower-cased BERT text, not slices of the input, and
  its ``start_index`` values do not index the input).
* chonkie ``RecursiveChunker(tokenizer=<HF Tokenizer>, chunk_size=max_tokens)`` with its default rules. Its token
  counts are memoized in a class-wide ``functools.lru_cache``; it is cleared before every timed round (cold cache).
  When no delimiter or whitespace split fits, it falls back to decoded token windows (normalized text), after which
  its offsets no longer index the input; such chunks are counted and reported, not failed.
* semchunk ``chunkerify(<HF Tokenizer>, max_tokens, memoize=False)`` called with ``offsets=True`` (it passes
  ``add_special_tokens=False`` to ``encode`` itself); ``processes=cpu_count`` for the batched variant.
* semantic-text-splitter ``TextSplitter.from_huggingface_tokenizer(<HF Tokenizer>, max_tokens)`` (trim on, the
  default), ``chunk_indices`` per text, or ``chunk_all_indices`` (rayon) for the batched variant.

Results are normalized to ``DocChunks`` (texts, start offsets when the library gives true ones, and the library's own
token counts when it reports them) for the checks in bench_chunker.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SINGLE_THREAD = ("rapidrag", "langchain", "chonkie-token", "chonkie-recursive", "semchunk", "semantic-text-splitter")
BATCHED = ("rapidrag", "chonkie-token", "semchunk", "semantic-text-splitter")
PEER_MODULES = {
    "langchain": "langchain_text_splitters",
    "chonkie-token": "chonkie",
    "chonkie-recursive": "chonkie",
    "semchunk": "semchunk",
    "semantic-text-splitter": "semantic_text_splitter",
}


@dataclass
class DocChunks:
    texts: list[str]
    starts: list[int] | None  # None when the library gives no (valid) offsets into the input
    n_tokens: list[int] | None  # the library's own token counts, when it reports them


@dataclass
class Setup:
    library: str
    how: str
    run: Callable[[list[str]], Any]
    normalize: Callable[[Any], list[DocChunks]]
    setup: Callable[[], None] | None = None  # untimed, before every round (cold caches)
    offsets: bool = True  # chunk texts are slices of the input at ``starts``
    limit_by_hf_count: bool = True  # the library promises HF count of every chunk text <= max_tokens
    slices_promised: bool = True  # every chunk text is the input at its offset (else differences are only reported)


def hf_counter(hf: Any) -> Callable[[str], int]:
    def count(text: str) -> int:
        return len(hf.encode(text, add_special_tokens=False).ids)

    return count


def make(library: str, max_tokens: int, hf: Any, model_dir: Path, *, batched: bool) -> Setup:
    """The configured chunker of ``library``; ``batched`` = its all-cores batch call (see BATCHED)."""
    threads = os.cpu_count() or 1
    if library == "rapidrag":
        import rapidrag

        chunker = rapidrag.Chunker(rapidrag.Tokenizer.from_file(model_dir / "tokenizer.json"), max_tokens, 0)
        n_threads = None if batched else 1
        return Setup(
            library,
            f"Chunker.split_batch(n_threads={n_threads})",
            lambda texts: chunker.split_batch(texts, n_threads=n_threads),
            lambda out: [DocChunks([c.text for c in d], [c.start for c in d], [c.n_tokens for c in d]) for d in out],
        )
    if library == "langchain":
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        assert not batched
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=max_tokens, chunk_overlap=0, length_function=hf_counter(hf)
        )
        return Setup(
            library,
            "RecursiveCharacterTextSplitter(length_function=HF count).split_text per text",
            lambda texts: [splitter.split_text(t) for t in texts],
            lambda out: [DocChunks(list(d), None, None) for d in out],
            offsets=False,
        )
    if library == "chonkie-token":
        from chonkie import TokenChunker

        token_chunker = TokenChunker(tokenizer=hf, chunk_size=max_tokens, chunk_overlap=0)
        if batched:
            run = lambda texts: token_chunker.chunk_batch(texts, batch_size=len(texts), show_progress_bar=False)  # noqa: E731
            how = "TokenChunker.chunk_batch(batch_size=all): HF encode_batch on all cores"
        else:
            run = lambda texts: [token_chunker.chunk(t) for t in texts]  # noqa: E731
            how = "TokenChunker.chunk per text"
        return Setup(
            library,
            how,
            run,
            lambda out: [DocChunks([c.text for c in d], None, [c.token_count for c in d]) for d in out],
            offsets=False,  # decoded token windows: normalized text, start_index counts decoded characters
            limit_by_hf_count=False,  # re-encoding decoded text is not always the same ids; its own count is
        )
    if library == "chonkie-recursive":
        from chonkie import RecursiveChunker

        assert not batched
        recursive = RecursiveChunker(tokenizer=hf, chunk_size=max_tokens)
        return Setup(
            library,
            "RecursiveChunker.chunk per text, lru_cache cleared before each round",
            lambda texts: [recursive.chunk(t) for t in texts],
            lambda out: [
                DocChunks([c.text for c in d], [c.start_index for c in d], [c.token_count for c in d]) for d in out
            ],
            setup=RecursiveChunker._estimate_token_count.cache_clear,
            # its last level (a piece with no whitespace split left under the limit) decodes token windows, so
            # those chunks are normalized text and the offsets after them drift (SciFact doc 3407 at 256 tokens)
            slices_promised=False,
        )
    if library == "semchunk":
        import semchunk

        chunk = semchunk.chunkerify(hf, max_tokens, memoize=False)
        processes = threads if batched else 1
        return Setup(
            library,
            f"chunkerify(memoize=False)(texts, offsets=True, processes={processes})",
            lambda texts: chunk(texts, offsets=True, processes=processes),
            lambda out: [DocChunks(list(c), [s for s, _ in o], None) for c, o in zip(*out, strict=True)],
        )
    if library == "semantic-text-splitter":
        from semantic_text_splitter import TextSplitter

        splitter = TextSplitter.from_huggingface_tokenizer(hf, max_tokens)
        if batched:
            run = lambda texts: splitter.chunk_all_indices(texts)  # noqa: E731
            how = "TextSplitter.chunk_all_indices (rayon, all cores)"
        else:
            run = lambda texts: [splitter.chunk_indices(t) for t in texts]  # noqa: E731
            how = "TextSplitter.chunk_indices per text"
        return Setup(
            library,
            how,
            run,
            lambda out: [DocChunks([c for _, c in d], [i for i, _ in d], None) for d in out],
        )
    raise ValueError(f"unknown library {library!r}")
