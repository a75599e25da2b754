"""Sentence boundaries of a text as character spans: what context packing cuts windows at and what grounding
checks one by one. A rule-based splitter (no model): a sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any
closing quotes or brackets) followed by whitespace and the start of a new sentence, or at a line break after a
blank line; common abbreviations, initials and decimal numbers do not end one."""

from __future__ import annotations

import re

__all__ = ["sentence_spans"]

# Abbreviations after which a period does not end a sentence (lowercased, without the period).
_ABBREVIATIONS = frozenset(
    "al approx ca cf dept dr e.g eg esp etc fig figs i.e ie inc jr ltd mr mrs ms no nos prof sr st vs viz vol "
    "jan feb mar apr jun jul aug sep sept oct nov dec ref refs eq eqs ed eds p pp".split()
)
# A candidate end: terminal punctuation, then closing quotes or brackets, then whitespace.
_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_NEXT_START = re.compile(r"\s+([\"'\u2018\u201c(\[]*)(\S)")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The sentences of ``text[start:end]`` as ``(start, end)`` character spans into ``text``, in order, each
    without its surrounding whitespace; together they cover every non-whitespace character of the range."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    stop = len(text) if end is None else end
    if not 0 <= start <= stop <= len(text):
        raise ValueError(f"span ({start}, {end}) is outside a text of {len(text)} characters")
    cuts = set()
    for m in _END.finditer(text, start, stop):
        if _ends_sentence(text, m.start(), m.end(), stop):
            cuts.add(m.end())
    for m in _PARAGRAPH.finditer(text, start, stop):
        cuts.add(m.start())
    spans = []
    begin = start
    for cut in sorted(cuts) + [stop]:
        a, b = _strip(text, begin, cut)
        if a < b:
            spans.append((a, b))
        begin = cut
    return spans


def _ends_sentence(text: str, punct: int, after: int, stop: int) -> bool:
    nxt = _NEXT_START.match(text, after, stop)
    if nxt is None:
        return False  # only whitespace follows: the range's end closes the sentence
    first = nxt.group(2)
    if first.islower():
        return False  # "e.g. the", "approx. two": a lowercase word continues the sentence
    if text[punct] != ".":
        return True
    begin = punct
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    if begin == punct:
        return True
    before = text[begin:punct].lstrip("\"'(\u201c\u2018[")
    if before.lower().rstrip(".") in _ABBREVIATIONS:
        return False
    if len(before) == 1 and before.isupper():
        return False  # an initial: "J. Smith"
    return True


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b
