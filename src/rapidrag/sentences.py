"""Sentence boundaries of a text as character spans: what context packing cuts windows at and what grounding
checks one by one. A rule-based splitter (no model): a sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any
closing quotes or brackets) followed by whitespace and the start of a new sentence, or at a line break after a
blank line; common abbreviations, initials and decimal numbers do not end one."""

from __future__ import annotations

from . import _core

__all__ = ["sentence_spans"]

# Abbreviations after which a period does not end a sentence (lowercased, without the period).
_ABBREVIATIONS = frozenset(
    "al approx ca cf dept dr e.g eg esp etc fig figs i.e ie inc jr ltd mr mrs ms no nos prof sr st vs viz vol "
    "jan feb mar apr jun jul aug sep sept oct nov dec ref refs eq eqs ed eds p pp".split()
)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The sentences of ``text[start:end]`` as ``(start, end)`` character spans into ``text``, in order, each
    without its surrounding whitespace; together they cover every non-whitespace character of the range."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    stop = len(text) if end is None else end
    if not 0 <= start <= stop <= len(text):
        raise ValueError(f"span ({start}, {end}) is outside a text of {len(text)} characters")
    # The native scan finds the candidate ends (terminal punctuation, closing quotes or brackets, whitespace, then
    # something) and the blank lines; the rules that need str's own predicates are applied here.
    candidates, paragraphs = _core.sentence_marks(text, start, stop)
    cuts = set(paragraphs)
    for begin, punct, after, first in candidates:
        if text[first].islower():
            continue  # "e.g. the", "approx. two": a lowercase word continues the sentence
        if text[punct] != "." or not _abbreviated(text[begin:punct]):
            cuts.add(after)
    spans = []
    begin = start
    for cut in sorted(cuts) + [stop]:
        a, b = _strip(text, begin, cut)
        if a < b:
            spans.append((a, b))
        begin = cut
    return spans


def _abbreviated(word: str) -> bool:
    """Whether ``word``, before a period, is an abbreviation or an initial ("J. Smith")."""
    if not word:
        return False
    before = word.lstrip("\"'(\u201c\u2018[")
    return before.lower().rstrip(".") in _ABBREVIATIONS or (len(before) == 1 and before.isupper())


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b
