"""Reading tokenizer files into the native core's settings: BERT's ``vocab.txt``, and ``tokenizer.json``'s
normalizer, pre-tokenizer, model vocabulary and post-processor (the pair layout), checked, with errors that name the
file and the part that rapidrag does not read. ``rapidrag.tokenizer`` builds its ``Tokenizer`` from them."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _core
from .errors import VocabularyError

__all__ = [
    "Layout",
    "read_bpe_pre_tokenizer",
    "read_metaspace",
    "read_normalizer",
    "read_post_processor",
    "read_special_tokens",
    "read_vocab_txt",
    "reference_float",
    "template_layout",
    "tokens_by_id",
]


def read_vocab_txt(path: Path) -> list[str]:
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise VocabularyError(f"{path}: the vocabulary file is empty")
    tokens = []
    for lineno, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VocabularyError(f"{path}:{lineno}: invalid UTF-8 at byte {e.start} of the line") from None
        tokens.append(line.rstrip())  # the reference trims trailing whitespace, '\r' included
    return tokens


# The pre-tokenizer patterns the native core matches by hand (bpe.hpp), as Hugging Face tokenizer.json files
# spell them: Llama 3's (digits in runs of up to 3) and Qwen2's (one digit at a time).
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_SPLIT_PATTERNS = {
    _LLAMA3_PATTERN: ("llama3", 3),
    _LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}"): ("llama3", 1),
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+": ("gpt2", 0),
}


_U64_MAX = 2**64 - 1


def reference_float(text: str) -> float:
    """A JSON number as the reference implementation reads it (serde_json without its float_roundtrip feature): the
    digits as an integer (digits past 64 bits dropped), then one multiplication or division by a power of ten.
    That is within an ulp of the correctly rounded value, but not always equal to it, and a Unigram model's
    equal-score segmentations are told apart by those ulps, so rapidrag reads the scores the same way."""
    body = text.lstrip("-")
    mantissa, _, exp_text = body.replace("E", "e").partition("e")
    whole, _, fraction = mantissa.partition(".")
    significand, exponent = 0, int(exp_text) if exp_text else 0
    for digit in whole:
        if significand * 10 + int(digit) > _U64_MAX:
            exponent += 1  # an integer part past 64 bits: the digit is dropped, its place kept
        else:
            significand = significand * 10 + int(digit)
    for digit in fraction:
        if significand * 10 + int(digit) > _U64_MAX:
            break  # further decimals are dropped
        significand = significand * 10 + int(digit)
        exponent -= 1
    value = float(significand)
    while abs(exponent) > 308 and value != 0.0:
        if exponent > 0:
            return float("-inf") if text.startswith("-") else float("inf")
        value /= 1e308
        exponent += 308
    if value != 0.0:
        value = value * float(f"1e{exponent}") if exponent >= 0 else value / float(f"1e{-exponent}")
    return -value if text.startswith("-") else value


def tokens_by_id(path: Path, vocab: dict[str, Any]) -> list[str]:
    size = max(vocab.values()) + 1
    tokens = [""] * size
    seen = [False] * size
    for tok, idx in vocab.items():
        if not isinstance(idx, int) or idx < 0:
            raise VocabularyError(f"{path}: model.vocab[{tok!r}] = {idx!r} is not a valid id")
        tokens[idx] = tok
        seen[idx] = True
    if not all(seen):
        raise VocabularyError(f"{path}: model.vocab ids are not contiguous (id {seen.index(False)} is missing)")
    return tokens


@dataclass(frozen=True)
class Layout:
    """Where special tokens go (ids with their token types) around one text and a pair: a post-processor."""

    name: str
    single_prefix: tuple[tuple[int, int], ...] = ()
    single_suffix: tuple[tuple[int, int], ...] = ()
    pair_prefix: tuple[tuple[int, int], ...] = ()
    pair_middle: tuple[tuple[int, int], ...] = ()
    pair_suffix: tuple[tuple[int, int], ...] = ()
    type_a: int = 0
    type_b: int = 1

    @classmethod
    def bert(cls, cls_id: int, sep_id: int) -> Layout:
        return cls("bert", ((cls_id, 0),), ((sep_id, 0),), ((cls_id, 0),), ((sep_id, 0),), ((sep_id, 1),))

    @classmethod
    def roberta(cls, cls_id: int, sep_id: int) -> Layout:
        c, s = ((cls_id, 0),), ((sep_id, 0),)
        return cls("roberta", c, s, c, s + s, s, 0, 0)

    def single_ids(self) -> list[int]:
        """The special token ids around one text, in order."""
        return [token_id for part in (self.single_prefix, self.single_suffix) for token_id, _ in part]

    def native(self, pad_id: int) -> Any:
        return _core.Layout(
            list(self.single_prefix),
            list(self.single_suffix),
            list(self.pair_prefix),
            list(self.pair_middle),
            list(self.pair_suffix),
            type_a=self.type_a,
            type_b=self.type_b,
            pad=pad_id,
        )


def template_layout(path: Path, post: dict[str, Any]) -> Layout:
    """A TemplateProcessing post-processor: special tokens before, between and after the sequences $A and $B."""
    specials = post.get("special_tokens") or {}

    def parts(template: Any, names: tuple[str, ...]) -> tuple[list[list[tuple[int, int]]], list[int]]:
        groups: list[list[tuple[int, int]]] = [[]]
        types = []
        seen = []
        for piece in template or []:
            if "Sequence" in piece:
                seen.append(piece["Sequence"]["id"])
                types.append(int(piece["Sequence"].get("type_id", 0)))
                groups.append([])
            elif "SpecialToken" in piece:
                name, type_id = piece["SpecialToken"]["id"], int(piece["SpecialToken"].get("type_id", 0))
                if name not in specials:
                    raise VocabularyError(f"{path}: post_processor template names an unknown special token {name!r}")
                groups[-1].extend((int(i), type_id) for i in specials[name]["ids"])
            else:
                raise VocabularyError(f"{path}: post_processor template piece {piece!r} is not supported")
        if tuple(seen) != names:
            raise VocabularyError(f"{path}: post_processor template has sequences {seen}; need {list(names)}, in order")
        return groups, types

    (before, after), (type_single,) = parts(post.get("single"), ("A",))
    (p_before, p_middle, p_after), (type_a, type_b) = parts(post.get("pair"), ("A", "B"))
    if type_single != type_a:
        raise VocabularyError(f"{path}: post_processor template gives $A type {type_single} alone, {type_a} in pairs")
    return Layout(
        "template", tuple(before), tuple(after), tuple(p_before), tuple(p_middle), tuple(p_after), type_a, type_b
    )


def read_post_processor(path: Path, post: Any, model: str) -> tuple[Layout, bool, bool]:
    """(layout, trim_offsets, trim keeps a prefix space) of a BPE or Unigram tokenizer.json post-processor."""
    post = post or {}
    trim, keep_prefix = False, False
    layout = Layout("none", type_b=1)
    steps = post.get("processors", []) if post.get("type") == "Sequence" else [post] if post else []
    for step in steps:
        kind = step.get("type")
        if kind in ("ByteLevel", "RobertaProcessing"):
            trim = bool(step.get("trim_offsets", True))
            keep_prefix = bool(step.get("add_prefix_space", True))
        if kind == "RobertaProcessing":
            layout = Layout.roberta(int(step["cls"][1]), int(step["sep"][1]))
        elif kind == "BertProcessing":
            layout = Layout.bert(int(step["cls"][1]), int(step["sep"][1]))
        elif kind == "TemplateProcessing":
            layout = template_layout(path, step)
        elif kind != "ByteLevel" or model != "BPE":
            raise VocabularyError(
                f"{path}: post_processor {kind!r} is not supported for {model}; supported: "
                + ("ByteLevel, " if model == "BPE" else "")
                + "BertProcessing, RobertaProcessing, TemplateProcessing"
            )
    return layout, trim, keep_prefix


def read_special_tokens(path: Path, spec: dict[str, Any], vocab: Any) -> list[str]:
    """The added tokens, matched verbatim in the text; each must be a special token of the vocabulary."""
    specials = []
    for added in spec.get("added_tokens") or []:
        if not added.get("special", False) or added.get("content") not in vocab:
            raise VocabularyError(
                f"{path}: added token {added.get('content')!r} is not a special token of the vocabulary; "
                "only special added tokens are supported"
            )
        specials.append(added["content"])
    return specials


_NORMALIZERS = (
    "NFC, NFKC, Lowercase, Strip, Replace (a literal, or one character repeated: c+ or c{n,}), Prepend, Precompiled"
)
_REGEX_RUN = re.compile(r"^(\\?.)(?:\+|\{(\d+),\})$", re.S)


def _regex_literal(regex: str) -> str | None:
    """The text a regex matches when it is a plain literal (metacharacters escaped), else None."""
    out, i = [], 0
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            out.append(regex[i + 1])
            i += 2
            continue
        if c in ".^$*+?{}[]|()\\":
            return None
        out.append(c)
        i += 1
    return "".join(out) or None


def _replace_step(path: Path, step: dict[str, Any], core: Any) -> None:
    """A Replace normalizer on ``core``: a literal String pattern, or a Regex that is one literal character
    repeated (``c+``, ``c{n,}``; the " {2,}" of SentencePiece conversions) or a plain literal; other regexes are
    refused by name."""
    pattern, content = step.get("pattern") or {}, step.get("content")
    if not isinstance(content, str):
        raise VocabularyError(f"{path}: normalizer Replace has no content string")
    if isinstance(pattern.get("String"), str) and pattern["String"]:
        core.replace(pattern["String"], content)
        return
    regex = pattern.get("Regex")
    if isinstance(regex, str):
        run = _REGEX_RUN.match(regex)
        if run and (len(run.group(1)) == 1 or not run.group(1)[1].isalnum()):
            core.replace_run(run.group(1)[-1], int(run.group(2) or 1), content)
            return
        literal = _regex_literal(regex)
        if literal:
            core.replace(literal, content)
            return
    raise VocabularyError(
        f"{path}: normalizer Replace with pattern {pattern!r} is not supported; supported: a String, or a Regex "
        "that is a literal or one character repeated (c+, c{n,})"
    )


def read_normalizer(path: Path, spec: dict[str, Any], model: str) -> tuple[Any, list[str]]:
    """The core Normalizer of a BPE or Unigram tokenizer.json and its step names; a step of another kind, or with
    settings the core does not have, is refused by name (never a silently different normalization)."""
    normalizer = spec.get("normalizer") or {}
    steps = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    core = _core.Normalizer()
    kinds: list[str] = []
    for step in steps:
        if not step:
            continue
        kind = str(step.get("type"))
        kinds.append(kind)
        if kind == "NFC":
            core.nfc()
        elif kind == "NFKC":
            core.nfkc()
        elif kind == "Lowercase":
            core.lowercase()
        elif kind == "Strip":
            core.strip(left=bool(step.get("strip_left", True)), right=bool(step.get("strip_right", True)))
        elif kind == "Replace":
            _replace_step(path, step, core)
        elif kind == "Prepend" and isinstance(step.get("prepend"), str):
            core.prepend(step["prepend"])
        elif kind == "Precompiled":
            blob = step.get("precompiled_charsmap")
            if blob:
                try:
                    core.precompiled(base64.b64decode(blob) if isinstance(blob, str) else bytes(blob))
                except (ValueError, TypeError) as e:
                    raise VocabularyError(f"{path}: normalizer Precompiled: {e}") from None
        else:
            raise VocabularyError(
                f"{path}: normalizer {kind!r} is not supported for {model}; supported: {_NORMALIZERS}, "
                "in a Sequence or alone"
            )
    return core, kinds


def read_metaspace(pre: dict[str, Any]) -> dict[str, Any]:
    """The core's Metaspace settings from a tokenizer.json Metaspace pre-tokenizer (older files say
    add_prefix_space instead of prepend_scheme)."""
    scheme = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space", True) else "never")
    return {
        "replacement": pre.get("replacement", "\u2581"),
        "prepend_scheme": scheme,
        "split": bool(pre.get("split", True)),
    }


def read_bpe_pre_tokenizer(path: Path, pre: Any) -> tuple[str, int, bool]:
    """(pattern, max digits, add_prefix_space) of a byte-level BPE pre-tokenizer: ByteLevel with its own GPT-2
    split, or a Split by a known pattern followed by ByteLevel without one."""
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    if not steps or not all(isinstance(x, dict) for x in steps) or steps[-1].get("type") != "ByteLevel":
        kinds = [x.get("type") if isinstance(x, dict) else x for x in steps]
        raise VocabularyError(
            f"{path}: pre_tokenizer {kinds} is not supported for BPE; supported: ByteLevel, or Split (the GPT-2, "
            "Llama 3 or Qwen2 pattern) then ByteLevel"
        )
    byte_level = steps[-1]
    add_prefix_space = bool(byte_level.get("add_prefix_space", True))
    uses_regex = bool(byte_level.get("use_regex", True))
    if len(steps) == 1:
        return ("gpt2" if uses_regex else "none"), 0, add_prefix_space
    split = steps[0]
    pattern = (split.get("pattern") or {}).get("Regex") if split.get("type") == "Split" else None
    if (
        len(steps) != 2
        or uses_regex
        or pattern not in _SPLIT_PATTERNS
        or split.get("behavior") != "Isolated"
        or split.get("invert")
    ):
        raise VocabularyError(
            f"{path}: pre_tokenizer Split {pattern!r} is not supported; supported: the GPT-2, Llama 3 and Qwen2 "
            "patterns, isolated, followed by ByteLevel without its own regex"
        )
    name, digits = _SPLIT_PATTERNS[pattern]
    return name, digits, add_prefix_space
