"""Helpers of the tokenizer parity tests: the reference encodings and a compact report of mismatches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

Encoded = tuple[np.ndarray, np.ndarray]  # ids int64 [n], offsets int64 [n, 2]


def hf_encode_all(hf: Any, texts: Sequence[str], add_special_tokens: bool = True, batch: int = 4096) -> list[Encoded]:
    """Reference ids and offsets of each text, as NumPy arrays."""
    out: list[Encoded] = []
    for i in range(0, len(texts), batch):
        for e in hf.encode_batch(list(texts[i : i + batch]), add_special_tokens=add_special_tokens):
            ids = np.asarray(e.ids, dtype=np.int32)  # int32: the references of a whole corpus stay small
            offs = np.asarray(e.offsets, dtype=np.int32).reshape(len(e.ids), 2)
            out.append((ids, offs))
    return out


def hf_copy(hf: Any) -> Any:
    """An independent copy, so truncation settings never leak into the session-wide reference."""
    import tokenizers

    return tokenizers.Tokenizer.from_str(hf.to_str())


def build_hf_wordpiece(
    vocab_path: str | Path,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    handle_chinese_chars: bool = True,
    clean_text: bool = True,
    max_input_chars_per_word: int = 100,
) -> Any:
    """HF tokenizers' BERT pipeline built by hand on a vocab.txt, for options the shipped tokenizer.json lacks."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = models.WordPiece.read_file(str(vocab_path))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=max_input_chars_per_word))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=clean_text,
        handle_chinese_chars=handle_chinese_chars,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    # As in the shipped tokenizer.json: the special tokens are matched in the raw text, before normalisation.
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.no_padding()
    tok.no_truncation()
    return tok


def _snippet(text: str, limit: int = 160) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[:limit] + f"...' ({len(text)} chars)"


def _tokens_around(ids: np.ndarray, offs: np.ndarray | None, at: int, id_to_token: Callable[[int], Any]) -> str:
    lo, hi = max(0, at - 3), min(len(ids), at + 5)
    parts = []
    for j in range(lo, hi):
        tok = id_to_token(int(ids[j]))
        parts.append(f"{tok}{tuple(int(x) for x in offs[j]) if offs is not None else ''}")
    more = f" ... ({len(ids)} tokens)" if hi < len(ids) or lo > 0 else ""
    return ("... " if lo > 0 else "") + " ".join(parts) + more


def first_difference(
    a_ids: np.ndarray, a_offs: np.ndarray | None, b_ids: np.ndarray, b_offs: np.ndarray | None
) -> int | None:
    """Index of the first token whose id or offsets differ, or None when both encodings are equal."""
    if len(a_ids) == len(b_ids) and np.array_equal(a_ids, b_ids):
        if a_offs is None or b_offs is None or np.array_equal(a_offs, b_offs):
            return None
    n = min(len(a_ids), len(b_ids))
    for j in range(n):
        if a_ids[j] != b_ids[j] or (a_offs is not None and b_offs is not None and tuple(a_offs[j]) != tuple(b_offs[j])):
            return j
    if len(a_ids) != len(b_ids):
        return n
    return None


def compare_encodings(
    texts: Sequence[str],
    expected: Iterable[tuple[np.ndarray, np.ndarray | None]],
    got: Iterable[tuple[np.ndarray, np.ndarray | None]],
    id_to_token: Callable[[int], Any],
    what: str,
    limit: int = 5,
) -> str | None:
    """None when every pair is equal; otherwise a compact report of the first ``limit`` mismatches."""
    bad: list[str] = []
    n_bad = 0
    n = 0
    for i, ((e_ids, e_offs), (g_ids, g_offs)) in enumerate(zip(expected, got, strict=True)):
        n += 1
        g_ids = np.asarray(g_ids)
        g_offs = None if g_offs is None else np.asarray(g_offs)
        if g_offs is not None and g_offs.shape != (len(g_ids), 2):
            raise AssertionError(f"{what}: #{i} offsets of shape {g_offs.shape} for {len(g_ids)} ids")
        at = first_difference(e_ids, e_offs, g_ids, g_offs)
        if at is None:
            continue
        n_bad += 1
        if len(bad) < limit:
            bad.append(
                f"  #{i} {_snippet(texts[i])}\n"
                f"     first difference at token {at}\n"
                f"     reference: {_tokens_around(e_ids, e_offs, at, id_to_token)}\n"
                f"     rapidrag:  {_tokens_around(g_ids, g_offs, at, id_to_token)}"
            )
    if not n_bad:
        return None
    return f"{what}: {n_bad} of {n} texts differ from the reference; first {len(bad)}:\n" + "\n".join(bad)


def check_offsets_valid(text: str, offs: np.ndarray) -> str | None:
    """None when every (start, end) lies in [0, len(text)], start <= end and starts never decrease."""
    offs = np.asarray(offs)
    if offs.ndim != 2 or offs.shape[1] != 2:
        return f"offsets shape {offs.shape}"
    if len(offs) == 0:
        return None
    s, e = offs[:, 0], offs[:, 1]
    if (s < 0).any() or (e > len(text)).any() or (s > e).any():
        return f"offset out of range for a text of {len(text)} chars: {offs.tolist()}"
    if (np.diff(s) < 0).any():
        return f"starts decrease: {offs.tolist()}"
    return None
