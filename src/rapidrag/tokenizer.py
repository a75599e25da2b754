"""Tokenizers on the native core (BERT WordPiece; byte-level BPE of GPT-2, RoBERTa, Llama 3 and Qwen2; SentencePiece
Unigram): ids and offsets identical to Hugging Face ``tokenizers``.

The module runs to about 650 lines: one ``Tokenizer`` class for every model type (a constructor per kind of file,
encode, batches, pairs, counts, each with the checks of its arguments) and the batch types it returns; reading the
files themselves lives in ``tokenizer_spec``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from . import _core
from .errors import VocabularyError
from .tokenizer_spec import (
    Layout,
    read_bpe_pre_tokenizer,
    read_metaspace,
    read_normalizer,
    read_post_processor,
    read_special_tokens,
    read_vocab_txt,
    reference_float,
    template_layout,
    tokens_by_id,
)

__all__ = ["BatchEncoding", "Ragged", "Tokenizer"]

IntArray = npt.NDArray[np.int64]
PathLike = str | os.PathLike[str]


class Ragged(Sequence[IntArray]):
    """Rows of different lengths stored one after another: row ``i`` is ``flat[row_splits[i]:row_splits[i + 1]]``.

    Indexing gives a view of one row; nothing is copied or created until a row is asked for.
    """

    __slots__ = ("flat", "row_splits")

    def __init__(self, flat: IntArray, row_splits: IntArray) -> None:
        self.flat = flat
        self.row_splits = row_splits

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    @overload
    def __getitem__(self, i: int) -> IntArray: ...
    @overload
    def __getitem__(self, i: slice) -> list[IntArray]: ...

    def __getitem__(self, i: int | slice) -> IntArray | list[IntArray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return self.flat[self.row_splits[i] : self.row_splits[i + 1]]

    def __repr__(self) -> str:
        return f"Ragged({len(self)} rows, {len(self.flat)} values)"


@dataclass(frozen=True)
class BatchEncoding:
    """Model inputs for a batch, row ``i`` for text ``i``.

    Attributes
    ----------
    input_ids, attention_mask, token_type_ids : int64 [n, L]
        Ready for ONNX Runtime. With ``padding=False`` each is a Ragged sequence of int64 [length_i] rows instead.
    offsets : int64 [n, L, 2]
        (start, end) indices into the original ``str`` of each token; (0, 0) for special and padding tokens.
        In pairs, a passage token's offsets index the passage.
    lengths : int64 [n]
        Tokens in each row, special tokens included.
    """

    input_ids: Any
    attention_mask: Any
    token_type_ids: Any
    offsets: Any
    lengths: IntArray

    def __len__(self) -> int:
        return len(self.lengths)

    def model_inputs(self) -> dict[str, Any]:
        """The three arrays by the input names BERT-family ONNX models use."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }


def _check_texts(texts: object, name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of str, not a single str (wrap it in a list)")
    if isinstance(texts, list):
        return texts  # items are type-checked by the core, with the index in the message
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a sequence of str, not {type(texts).__name__}")
    return list(texts)


def _check_threads(n_threads: int | None, default: int) -> int:
    if n_threads is None:
        return default
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 0:
        raise ValueError(f"n_threads must be an int >= 0 (0 = one per core), got {n_threads!r}")
    return n_threads


class Tokenizer:
    """A tokenizer on the native core. The constructor builds BERT WordPiece (normalization, pre-tokenization and
    WordPiece in C++); ``Tokenizer.from_file`` also reads byte-level BPE (GPT-2, RoBERTa, Llama 3 and Qwen2 layouts)
    and SentencePiece Unigram ``tokenizer.json`` files.

    Parameters
    ----------
    vocab : path or sequence of str
        A ``vocab.txt`` (one token per line, the line number is the id) or the tokens themselves.
    lowercase : bool
        Lowercase the text (uncased models).
    strip_accents : bool or None
        Remove accents (NFD, then drop nonspacing marks). None follows ``lowercase``, as BERT does.
    handle_chinese_chars : bool
        Make every CJK ideograph a word of its own.
    clean_text : bool
        Drop control and format characters (and U+FFFD, NUL, lone surrogates); every whitespace becomes a space.
    max_input_chars_per_word : int
        A longer word becomes the unknown token.
    unk_token, cls_token, sep_token, pad_token, mask_token : str
        Special tokens. Those in the vocabulary are matched verbatim in the text (as the reference does),
        unless ``split_special_tokens``.
    n_threads : int
        Threads for batch calls; 0 = one per core.

    Notes
    -----
    Offsets are indices into the Python ``str``. A lone surrogate (which cannot be encoded in UTF-8) is treated
    like U+FFFD: text cleaning drops it; with ``clean_text=False`` it becomes the unknown token. Encoding releases
    the GIL, so several Python threads can encode at once.
    """

    # The special tokens of the layout; None where the model has none (a byte-level BPE without a post-processor).
    unk_token: str | None
    cls_token: str | None
    sep_token: str | None
    pad_token: str | None
    _layout: Layout  # how special tokens surround a text or a pair

    def __init__(
        self,
        vocab: PathLike | Sequence[str],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        clean_text: bool = True,
        max_input_chars_per_word: int = 100,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        continuing_subword_prefix: str = "##",
        split_special_tokens: bool = False,
        n_threads: int = 0,
    ) -> None:
        source = "vocabulary"
        if isinstance(vocab, (str, os.PathLike)):
            path = Path(vocab)
            if not path.is_file():
                raise FileNotFoundError(f"vocabulary file not found: {path}")
            tokens = read_vocab_txt(path)
            source = str(path)
        elif isinstance(vocab, Sequence):
            tokens = list(vocab)
            for i, t in enumerate(tokens):
                if not isinstance(t, str):
                    raise TypeError(f"vocab[{i}] must be str, not {type(t).__name__}")
        else:
            raise TypeError(f"vocab must be a path or a sequence of str, not {type(vocab).__name__}")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word <= 0:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}")
        self.n_threads = _check_threads(n_threads, 0)
        if strip_accents is None:
            strip_accents = lowercase
        self._options = {
            "lowercase": bool(lowercase),
            "strip_accents": bool(strip_accents),
            "handle_chinese_chars": bool(handle_chinese_chars),
            "clean_text": bool(clean_text),
            "max_input_chars_per_word": max_input_chars_per_word,
        }
        present = set(tokens)
        specials = [t for t in (unk_token, cls_token, sep_token, pad_token, mask_token) if t in present]
        if unk_token not in present:
            raise VocabularyError(f"{source}: the unknown token {unk_token!r} is not in the vocabulary")
        for name, tok in (("cls_token", cls_token), ("sep_token", sep_token), ("pad_token", pad_token)):
            if tok not in present:
                raise VocabularyError(f"{source}: {name} {tok!r} is not in the vocabulary")
        for i, t in enumerate(tokens):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise VocabularyError(f"{source}: token {i} is not valid Unicode (lone surrogate)") from None
        try:
            self._core = _core.WordPiece(
                tokens,
                unk_token=unk_token,
                continuing_subword_prefix=continuing_subword_prefix,
                max_input_chars_per_word=max_input_chars_per_word,
                lowercase=bool(lowercase),
                strip_accents=bool(strip_accents),
                handle_chinese_chars=bool(handle_chinese_chars),
                clean_text=bool(clean_text),
                special_tokens=[] if split_special_tokens else specials,
            )
        except ValueError as e:
            raise VocabularyError(f"{source}: {e}") from None
        core = self._core
        bert = Layout.bert(core.token_to_id(cls_token), core.token_to_id(sep_token))
        self._init_core(
            core,
            self.n_threads,
            self._options,
            bert,
            unk_token=unk_token,
            cls_token=cls_token,
            sep_token=sep_token,
            pad_token=pad_token,
        )

    @classmethod
    def from_file(cls, path: PathLike, *, n_threads: int = 0) -> Tokenizer:
        """Load ``vocab.txt``, a Hugging Face ``tokenizer.json`` (WordPiece, byte-level BPE, Unigram), or a folder.

        A folder's ``tokenizer.json`` is preferred (it carries the normalizer options); ``vocab.txt`` is read as
        an uncased BERT vocabulary unless ``tokenizer_config.json`` says ``do_lower_case: false``.
        """
        p = Path(path)
        if p.is_dir():
            for name in ("tokenizer.json", "vocab.txt"):
                if (p / name).is_file():
                    return cls.from_file(p / name, n_threads=n_threads)
            raise FileNotFoundError(f"no tokenizer.json or vocab.txt in {p}")
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {p}")
        if p.suffix == ".json":
            return cls._from_tokenizer_json(p, n_threads)
        lowercase = True
        config = p.parent / "tokenizer_config.json"
        if config.is_file():
            try:
                lowercase = bool(json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", True))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
                raise VocabularyError(f"{config}: not a valid tokenizer config ({e})") from None
        return cls(p, lowercase=lowercase, n_threads=n_threads)

    @classmethod
    def _from_tokenizer_json(cls, path: Path, n_threads: int) -> Tokenizer:
        try:
            spec = json.loads(path.read_text(encoding="utf-8"), parse_float=reference_float)
        except UnicodeDecodeError as e:
            raise VocabularyError(f"{path}: invalid UTF-8 at byte {e.start}") from None
        except json.JSONDecodeError as e:
            raise VocabularyError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise VocabularyError(f"{path}: no 'model' object; is this a Hugging Face tokenizer.json?")
        model = spec["model"]
        if model.get("type") == "BPE":
            return cls._from_bpe_spec(path, spec, n_threads)
        if model.get("type") == "Unigram":
            return cls._from_unigram_spec(path, spec, n_threads)
        if model.get("type") != "WordPiece":
            raise VocabularyError(
                f"{path}: model type {model.get('type')!r} is not supported; need 'WordPiece', 'BPE' (byte-level) "
                "or 'Unigram'"
            )
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise VocabularyError(f"{path}: model.vocab must be a non-empty object of token -> id")
        tokens = tokens_by_id(path, vocab)
        norm = spec.get("normalizer") or {}
        if norm and norm.get("type") != "BertNormalizer":
            raise VocabularyError(f"{path}: normalizer {norm.get('type')!r} is not supported; need 'BertNormalizer'")
        pre = spec.get("pre_tokenizer") or {}
        if pre and pre.get("type") != "BertPreTokenizer":
            raise VocabularyError(
                f"{path}: pre_tokenizer {pre.get('type')!r} is not supported; need 'BertPreTokenizer'"
            )
        cls_token, sep_token = "[CLS]", "[SEP]"
        post = spec.get("post_processor") or {}
        template = None
        if post.get("type") == "BertProcessing":
            cls_token, sep_token = post["cls"][0], post["sep"][0]
        elif post.get("type") == "TemplateProcessing":
            template = template_layout(path, post)
            ids = template.single_ids()
            if len(ids) == 2:
                cls_token, sep_token = tokens[ids[0]], tokens[ids[1]]
        elif post:
            raise VocabularyError(
                f"{path}: post_processor {post.get('type')!r} is not supported for WordPiece; supported: "
                "BertProcessing, TemplateProcessing"
            )
        pad_token = ((spec.get("padding") or {}).get("pad_token")) or "[PAD]"
        read_special_tokens(path, spec, vocab)  # refuses an added token that is not a special token of the vocabulary
        lowercase = bool(norm.get("lowercase", True)) if norm else False
        strip = norm.get("strip_accents") if norm else False
        tokenizer = cls(
            tokens,
            lowercase=lowercase,
            strip_accents=strip,
            handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)) if norm else False,
            clean_text=bool(norm.get("clean_text", True)) if norm else False,
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            unk_token=model.get("unk_token", "[UNK]"),
            cls_token=cls_token,
            sep_token=sep_token,
            pad_token=pad_token,
            continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
            n_threads=n_threads,
        )
        if template is not None:
            tokenizer._set_layout(template)
        return tokenizer

    @classmethod
    def _from_bpe_spec(cls, path: Path, spec: dict[str, Any], n_threads: int) -> Tokenizer:
        """A byte-level BPE tokenizer.json (GPT-2, RoBERTa, Llama 3, Qwen2 layouts); anything else is refused by
        name, never tokenized differently."""
        model = spec["model"]
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise VocabularyError(f"{path}: model.vocab must be a non-empty object of token -> id")
        tokens = tokens_by_id(path, vocab)
        merges = []
        for i, m in enumerate(model.get("merges") or []):
            pair = m.split(" ") if isinstance(m, str) else m
            if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise VocabularyError(f"{path}: model.merges[{i}] = {m!r} is not a pair of tokens")
            merges.append((pair[0], pair[1]))
        for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise VocabularyError(f"{path}: BPE with {key}={model[key]!r} is not supported")
        normalizer, kinds = read_normalizer(path, spec, "BPE")
        pre = spec.get("pre_tokenizer")
        # SentencePiece-style BPE (Llama 2, Mistral): characters as symbols, byte fallback, and the Metaspace
        # pre-tokenizer or none (the normalizer then prepends and replaces the spaces).
        byte_level = not (pre is None or (isinstance(pre, dict) and pre.get("type") == "Metaspace"))
        metaspace: dict[str, Any] = {}
        if byte_level:
            if model.get("byte_fallback"):
                raise VocabularyError(f"{path}: byte_fallback with a byte-level pre-tokenizer is not supported")
            pattern, max_digits, add_prefix_space = read_bpe_pre_tokenizer(path, pre)
        else:
            pattern, max_digits, add_prefix_space = ("none" if pre is None else "metaspace"), 0, False
            if pre is not None:
                metaspace = read_metaspace(pre)
        layout, trim, keep_prefix = read_post_processor(path, spec.get("post_processor"), "BPE")
        specials = read_special_tokens(path, spec, vocab)
        unk = model.get("unk_token") or ""
        try:
            core = _core.BPE(
                tokens,
                merges,
                pattern=pattern,
                max_digits=max_digits,
                add_prefix_space=add_prefix_space,
                trim_offsets=trim,
                trim_keeps_prefix_space=keep_prefix,
                ignore_merges=bool(model.get("ignore_merges", False)),
                unk_token=unk,
                special_tokens=specials,
                normalizer=normalizer,
                byte_level=byte_level,
                byte_fallback=bool(model.get("byte_fallback", False)),
                fuse_unk=bool(model.get("fuse_unk", False)),
                **metaspace,
            )
        except ValueError as e:
            raise VocabularyError(f"{path}: {e}") from None
        options = {
            "model": "byte-level BPE" if byte_level else "SentencePiece-style BPE",
            "normalizer": kinds,
            "pattern": pattern,
            "add_prefix_space": add_prefix_space,
        }
        pad_token = ((spec.get("padding") or {}).get("pad_token")) or None
        return cls._from_core(core, n_threads, options, layout, tokens, unk or None, pad_token)

    @classmethod
    def _from_unigram_spec(cls, path: Path, spec: dict[str, Any], n_threads: int) -> Tokenizer:
        """A SentencePiece Unigram tokenizer.json with the Metaspace pre-tokenizer; anything else is refused by
        name, never tokenized differently."""
        model = spec["model"]
        entries = model.get("vocab")
        if not isinstance(entries, list) or not entries:
            raise VocabularyError(f"{path}: model.vocab must be a non-empty list of [piece, score]")
        vocab = []
        for i, entry in enumerate(entries):
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or not isinstance(entry[1], (int, float))
            ):
                raise VocabularyError(f"{path}: model.vocab[{i}] = {entry!r} is not [piece, score]")
            vocab.append((entry[0], float(entry[1])))
        unk_id = model.get("unk_id")
        if not isinstance(unk_id, int) or not 0 <= unk_id < len(vocab):
            raise VocabularyError(f"{path}: model.unk_id {unk_id!r} is not a token of the vocabulary")
        normalizer, kinds = read_normalizer(path, spec, "Unigram")
        pre = spec.get("pre_tokenizer") or {}
        if pre.get("type") != "Metaspace":
            raise VocabularyError(
                f"{path}: pre_tokenizer {pre.get('type')!r} is not supported for Unigram; supported: Metaspace"
            )
        metaspace = read_metaspace(pre)
        scheme = metaspace["prepend_scheme"]
        layout, _, _ = read_post_processor(path, spec.get("post_processor"), "Unigram")
        pieces = {piece for piece, _ in vocab}
        try:
            core = _core.Unigram(
                vocab,
                unk_id,
                normalizer=normalizer,
                byte_fallback=bool(model.get("byte_fallback", False)),
                special_tokens=read_special_tokens(path, spec, pieces),
                **metaspace,
            )
        except ValueError as e:
            raise VocabularyError(f"{path}: {e}") from None
        tokens = [piece for piece, _ in vocab]
        options = {"model": "Unigram", "normalizer": kinds, "prepend_scheme": scheme}
        pad_token = ((spec.get("padding") or {}).get("pad_token")) or ("<pad>" if "<pad>" in pieces else None)
        return cls._from_core(core, n_threads, options, layout, tokens, tokens[unk_id], pad_token)

    @classmethod
    def _from_core(
        cls,
        core: Any,
        n_threads: int,
        options: dict[str, Any],
        layout: Layout,
        tokens: list[str],
        unk_token: str | None,
        pad_token: str | None,
    ) -> Tokenizer:
        """A tokenizer read from a tokenizer.json: its special tokens are the first and last of its layout."""
        ids = layout.single_ids()
        self = cls.__new__(cls)
        self._init_core(
            core,
            n_threads,
            options,
            layout,
            unk_token=unk_token,
            cls_token=tokens[ids[0]] if ids else None,
            sep_token=tokens[ids[-1]] if len(ids) > 1 else None,
            pad_token=pad_token,
        )
        return self

    def _init_core(
        self,
        core: Any,
        n_threads: int,
        options: dict[str, Any],
        layout: Layout,
        *,
        unk_token: str | None,
        cls_token: str | None,
        sep_token: str | None,
        pad_token: str | None,
    ) -> None:
        """The attributes every tokenizer has, from its native model and its layout of special tokens; a special
        token that is None is absent (id -1; the pad id is then 0, which the attention mask hides)."""
        self._core = core
        self.n_threads = _check_threads(n_threads, 0)
        self._options = options
        self.unk_token, self.cls_token, self.sep_token, self.pad_token = unk_token, cls_token, sep_token, pad_token
        self.cls_id = core.token_to_id(cls_token) if cls_token is not None else -1
        self.sep_id = core.token_to_id(sep_token) if sep_token is not None else -1
        self.pad_id = max(core.token_to_id(pad_token), 0) if pad_token is not None else 0
        self.unk_id = core.token_to_id(unk_token) if unk_token is not None else -1
        self._set_layout(layout)

    def _set_layout(self, layout: Layout) -> None:
        self._layout = layout
        self._native_layout = layout.native(self.pad_id)

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    @property
    def splits_at_whitespace(self) -> bool:
        """True when a text cut at ASCII whitespace (space, tab, newline, carriage return) has the tokens of its
        parts: no token, word or special token spans whitespace, and whitespace makes none (WordPiece's BERT
        pre-tokenization; byte-level BPE and SentencePiece carry a space into the next token, so they are False).
        Counts then add up: text joined at whitespace counts the sum of its parts."""
        return bool(self._core.splits_at_whitespace)

    def token_to_id(self, token: str) -> int | None:
        """Id of a token, or None when it is not in the vocabulary."""
        i = self._core.token_to_id(token)
        return None if i < 0 else i

    def id_to_token(self, id: int) -> str:
        return self._core.id_to_token(id)

    @overload
    def encode(
        self, text: str, *, add_special_tokens: bool = ..., return_offsets: Literal[False] = ...
    ) -> IntArray: ...
    @overload
    def encode(
        self, text: str, *, add_special_tokens: bool = ..., return_offsets: Literal[True]
    ) -> tuple[IntArray, IntArray]: ...

    def encode(
        self, text: str, *, add_special_tokens: bool = True, return_offsets: bool = False
    ) -> IntArray | tuple[IntArray, IntArray]:
        """Token ids of one text: int64 [n]; with ``return_offsets``, also int64 [n, 2] (start, end) str indices.

        A text of more than half a million characters is encoded on ``n_threads`` threads, cut at whitespace
        (which gives the same tokens).
        """
        return self._core.encode(
            text, self._native_layout, bool(add_special_tokens), bool(return_offsets), self.n_threads
        )

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        truncation: bool = True,
        padding: bool | Literal["longest", "max_length"] = True,
        add_special_tokens: bool = True,
        n_threads: int | None = None,
    ) -> BatchEncoding:
        """Encode many texts in parallel into padded int64 arrays (see BatchEncoding).

        ``max_length`` counts special tokens; with ``truncation`` longer rows keep their first tokens.
        ``padding``: True or "longest" pads to the longest row, "max_length" to ``max_length``, False returns
        one unpadded array per row.
        """
        items = _check_texts(texts, "texts")
        extra = len(self._layout.single_prefix) + len(self._layout.single_suffix) if add_special_tokens else 0
        limit = self._check_max_length(max_length, extra or 1)
        min_width = self._min_width(padding, limit)
        arrays = self._core.encode_batch(
            items,
            max_length=limit,
            truncation=bool(truncation),
            min_width=min_width,
            add_special_tokens=bool(add_special_tokens),
            layout=self._native_layout,
            flat=padding is False,
            n_threads=_check_threads(n_threads, self.n_threads),
        )
        return self._result(arrays, padding)

    def encode_pairs(
        self,
        queries: str | Sequence[str],
        passages: Sequence[str],
        *,
        max_length: int | None = None,
        padding: bool | Literal["longest", "max_length"] = True,
        n_threads: int | None = None,
    ) -> BatchEncoding:
        """Cross-encoder inputs ``[CLS] query [SEP] passage [SEP]`` (token types 0 then 1).

        ``queries`` is one str for all passages or one per passage. Only the passage is truncated to fit
        ``max_length``; a query that alone leaves no room for a passage token is cut to ``max_length - 4``.
        """
        q = [queries] if isinstance(queries, str) else _check_texts(queries, "queries")
        p = _check_texts(passages, "passages")
        if len(q) != 1 and len(q) != len(p):
            raise ValueError(f"queries and passages differ in length: {len(q)} and {len(p)}")
        layout = self._layout
        limit = self._check_max_length(
            max_length, len(layout.pair_prefix + layout.pair_middle + layout.pair_suffix) + 1
        )
        arrays = self._core.encode_pairs(
            q,
            p,
            max_length=limit,
            min_width=self._min_width(padding, limit),
            layout=self._native_layout,
            flat=padding is False,
            n_threads=_check_threads(n_threads, self.n_threads),
        )
        return self._result(arrays, padding)

    @overload
    def count_tokens(self, texts: str, *, n_threads: int | None = ...) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def count_tokens(self, texts: Sequence[str], *, n_threads: int | None = ...) -> IntArray: ...

    def count_tokens(self, texts: str | Sequence[str], *, n_threads: int | None = None) -> int | IntArray:
        """Tokens of each text without special tokens: int for a str, int64 [n] for a sequence."""
        threads = _check_threads(n_threads, self.n_threads)
        if isinstance(texts, str):
            return int(self._core.count([texts], 1)[0])
        return self._core.count(_check_texts(texts, "texts"), threads)

    @staticmethod
    def _check_max_length(max_length: int | None, minimum: int) -> int:
        if max_length is None:
            return 0
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < minimum:
            raise ValueError(
                f"max_length must be an int >= {minimum} (room for the special tokens), got {max_length!r}"
            )
        return max_length

    @staticmethod
    def _min_width(padding: object, limit: int) -> int:
        if padding == "max_length":
            if limit == 0:
                raise ValueError("padding='max_length' needs max_length")
            return limit
        if padding in (True, False, "longest"):
            return 0
        raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")

    @staticmethod
    def _result(arrays: tuple[IntArray, ...], padding: object) -> BatchEncoding:
        if padding is False:
            ids, mask, types, offsets, lengths, row_splits = arrays
            # Unpadded rows: the mask is all ones and single sequences are all type 0, so both are read-only
            # broadcast views that take no memory.
            mask = np.broadcast_to(np.int64(1), ids.shape)
            if types is None:
                types = np.broadcast_to(np.int64(0), ids.shape)
            return BatchEncoding(
                Ragged(ids, row_splits),
                Ragged(mask, row_splits),
                Ragged(types, row_splits),
                Ragged(offsets, row_splits),
                lengths,
            )
        ids, mask, types, offsets, lengths = arrays
        return BatchEncoding(ids, mask, types, offsets, lengths)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self._options.items())
        return f"Tokenizer(vocab_size={self.vocab_size}, {opts})"
