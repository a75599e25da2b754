"""Type stubs of the native module; the public API is in rapidrag.tokenizer and rapidrag.chunker."""

import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]
_I32 = npt.NDArray[np.int32]
_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
_Bool = npt.NDArray[np.bool_]

class Layout:
    def __init__(
        self,
        single_prefix: list[tuple[int, int]],
        single_suffix: list[tuple[int, int]],
        pair_prefix: list[tuple[int, int]],
        pair_middle: list[tuple[int, int]],
        pair_suffix: list[tuple[int, int]],
        type_a: int,
        type_b: int,
        pad: int,
    ) -> None: ...

class TextEncoder:
    @property
    def vocab_size(self) -> int: ...
    @property
    def splits_at_whitespace(self) -> bool: ...
    def token_to_id(self, token: str) -> int: ...
    def id_to_token(self, id: int) -> str: ...
    def encode(
        self, text: str, layout: Layout, add_special_tokens: bool, with_offsets: bool, n_threads: int
    ) -> _I64 | tuple[_I64, _I64]: ...
    def count(self, texts: list[str], n_threads: int) -> _I64: ...
    def encode_batch(
        self,
        texts: list[str],
        max_length: int,
        truncation: bool,
        min_width: int,
        add_special_tokens: bool,
        layout: Layout,
        flat: bool,
        n_threads: int,
    ) -> tuple[_I64, ...]: ...
    def encode_pairs(
        self,
        queries: list[str],
        passages: list[str],
        max_length: int,
        min_width: int,
        layout: Layout,
        flat: bool,
        n_threads: int,
    ) -> tuple[_I64, ...]: ...

class BPE(TextEncoder):
    def __init__(
        self,
        vocab: list[str],
        merges: list[tuple[str, str]],
        pattern: str,
        max_digits: int,
        add_prefix_space: bool,
        trim_offsets: bool,
        trim_keeps_prefix_space: bool,
        ignore_merges: bool,
        unk_token: str,
        special_tokens: list[str],
        normalizer: Normalizer,
        byte_level: bool = True,
        byte_fallback: bool = False,
        fuse_unk: bool = False,
        replacement: str = "\u2581",
        prepend_scheme: str = "always",
        split: bool = True,
    ) -> None: ...

class Normalizer:
    def __init__(self) -> None: ...
    @property
    def empty(self) -> bool: ...
    def nfc(self) -> Normalizer: ...
    def nfkc(self) -> Normalizer: ...
    def lowercase(self) -> Normalizer: ...
    def strip(self, left: bool, right: bool) -> Normalizer: ...
    def replace(self, pattern: str, content: str) -> Normalizer: ...
    def replace_run(self, character: str, min_run: int, content: str) -> Normalizer: ...
    def prepend(self, content: str) -> Normalizer: ...
    def precompiled(self, charsmap: bytes) -> Normalizer: ...
    def normalize(self, text: str) -> tuple[str, list[tuple[int, int]]]: ...

class Unigram(TextEncoder):
    def __init__(
        self,
        vocab: list[tuple[str, float]],
        unk_id: int,
        normalizer: Normalizer,
        replacement: str,
        prepend_scheme: str,
        split: bool,
        byte_fallback: bool,
        special_tokens: list[str],
    ) -> None: ...

class WordPiece(TextEncoder):
    def __init__(
        self,
        vocab: list[str],
        unk_token: str,
        continuing_subword_prefix: str,
        max_input_chars_per_word: int,
        lowercase: bool,
        strip_accents: bool,
        handle_chinese_chars: bool,
        clean_text: bool,
        special_tokens: list[str],
    ) -> None: ...

class Chunker:
    def __init__(self, tokenizer: TextEncoder, max_tokens: int, overlap: int) -> None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def overlap(self) -> int: ...
    def split(self, text: str) -> _I64: ...
    def split_batch(self, texts: list[str], n_threads: int) -> tuple[_I64, _I64]: ...

def split_words(text: str) -> list[str]: ...
def word_prefixes(text: str, terms: list[str]) -> tuple[_I64, _I64]: ...
def sentence_marks(text: str, start: int, stop: int) -> tuple[list[tuple[int, int, int, int]], list[int]]: ...

# The search path's kernels (arrays pass as they are: C-contiguous, of exactly these dtypes).
def bm25_accumulate(
    scores: _F32,
    norms: _F32,
    terms: _I64,
    weights: _F32,
    segment_terms: _I64 | None,
    term_ptr: _I64,
    docs: _I32,
    tfs: _F32,
    k1: float,
) -> None: ...
def bm25_select(scores: _F32, allowed: _Bool, rows: _I64, best: _F32) -> int: ...
def bm25_select_many(scores: _F32, allowed: _Bool, rows: _I64, best: _F32) -> int: ...
def bm25_select_grouped(scores: _F32, allowed: _Bool, groups: _I64, rows: _I64, best: _F32) -> int: ...
def exact_inner_products(queries: _F32, vectors: _F32, rows: _I64, out: _F32) -> None: ...
def fuse_reciprocal_rank(rows: _I64, row_splits: _I64, weights: _F64, rrf_k: float) -> tuple[_I64, _F64]: ...
def fuse_weighted(rows: _I64, scores: _F64, row_splits: _I64, weights: _F64, zscore: bool) -> tuple[_I64, _F64]: ...
def merge_shard_lists(
    scores: _F32,
    rows: _I64,
    docs: _I64,
    row_splits: _I64,
    shards: _I64,
    n_shards: int,
    out_rows: _I64,
    out_docs: _I64,
    out_scores: _F32,
) -> int: ...

class WordDictionary:
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def add_batch(self, texts: list[str]) -> tuple[_I64, _I64]: ...
    def words(self, start: int = 0) -> list[str]: ...
