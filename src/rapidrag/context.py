"""From hits to the generator's prompt: ``pack`` fits a search's hits into a token budget as numbered, citable
passages (exact character spans of the indexed documents), says what it left out and why, and ``Context.cost``
prices a query from the tokens it injects.

A hit becomes a *piece* of its document: the chunk as found (``strategy="chunks"``), a window of ``window_tokens``
tokens around it ("small to big": small chunks find, larger windows inform; ``"window"``), or a run of the hit's
sentences, one and ``sentence_window`` neighbours each side, placed where it holds the most of the query
(``"sentences"``). Pieces of one document
that overlap or touch are merged (``merge``); a piece too similar to one already kept is dropped (``dedupe``, the
cosine of the embeddings the index already stores, else the overlap of their words), optionally choosing by MMR
(``diversity``); pieces are taken best first while they fit, a piece that does not fit whole is cut to the
sentences around its best one that do; the kept pieces are ordered by score or with the best at both ends
(``order="edges"``, against "lost in the middle").

One module of about 1,000 lines because packing is one pipeline whose steps (pieces, merge, dedupe, fit, cut,
assemble) share the piece, the document cache that keeps sentences, token offsets and counts across packs, and
the token counter; the sentence rules (``sentences``) and the grounding check (``grounding``) live apart.
"""

from __future__ import annotations

import bisect
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import _core
from .documents import Hit, _json_value
from .sentences import sentence_spans

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = ["DEFAULT_STRATEGY", "Context", "ContextItem", "Cost", "Dropped", "pack"]

Strategy = Literal["chunks", "window", "sentences"]
Order = Literal["score", "edges"]
# The defaults (sentences, one neighbour each side) were chosen on SciFact train (BENCHMARKS.md, "Context packing
# and grounding"): of the settings that cite a relevant document as often as the top 5 chunks in 60% of their
# tokens or fewer, the one that holds the most of the relevant text (no neighbours cites more, with a fifth of it).
DEFAULT_STRATEGY: Strategy = "sentences"
DEFAULT_TEMPLATE = "[{citation}] {text}"
MIN_CUT_TOKENS = 16  # a piece is not cut to fewer tokens than this: the room left is given up instead


@dataclass(frozen=True)
class ContextItem:
    """One passage of the prompt: its citation number, where it comes from (document, chunks, the character span
    ``text == document.text[start:end]``), its tokens (as formatted in the prompt) and its best hit's score."""

    citation: int
    doc_id: str
    chunk_ids: tuple[int, ...]
    start: int
    end: int
    text: str
    tokens: int
    score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "citation": self.citation,
            "doc_id": self.doc_id,
            "chunk_ids": list(self.chunk_ids),
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "tokens": self.tokens,
            "score": _json_value(self.score),
            "metadata": {str(k): _json_value(v) for k, v in self.metadata.items()},
        }


@dataclass(frozen=True)
class Dropped:
    """A hit left out of the prompt, and why: ``"budget"`` (no room left), ``"duplicate"`` (too similar to the
    item ``of``, with that ``similarity``) or ``"missing"`` (its document is no longer in the index)."""

    doc_id: str
    chunk_ids: tuple[int, ...]
    score: float
    reason: Literal["budget", "duplicate", "missing"]
    tokens: int | None = None
    of: int | None = None
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"doc_id": self.doc_id, "chunk_ids": list(self.chunk_ids)}
        out["score"], out["reason"] = _json_value(self.score), self.reason
        for name in ("tokens", "of", "similarity"):
            value = getattr(self, name)
            if value is not None:
                out[name] = _json_value(value)
        return out


@dataclass(frozen=True)
class Cost:
    """What a query costs: tokens in and out, and money at the given prices (per million tokens, in any
    currency), per query and per 1,000 queries."""

    input_tokens: int
    output_tokens: int
    input_price: float
    output_price: float

    @property
    def per_query(self) -> float:
        return (self.input_tokens * self.input_price + self.output_tokens * self.output_price) / 1e6

    @property
    def per_1000_queries(self) -> float:
        return self.per_query * 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_price_per_million": self.input_price,
            "output_price_per_million": self.output_price,
            "per_query": self.per_query,
            "per_1000_queries": self.per_1000_queries,
        }


@dataclass(frozen=True)
class Context:
    """The prompt's context: ``text`` (the items, each behind its citation marker, in prompt order), the
    ``items``, the ``tokens`` of ``text`` (never more than ``budget_tokens``), what was ``dropped`` and why, and
    the settings that made it. An empty context (nothing fitted) is not an error: ``dropped`` says why.
    ``missing_shards``: the shards of an index split in shards that did not answer the search (its
    ``SearchResult.missing_shards``), so that a context packed from a partial answer says it is one."""

    text: str
    items: list[ContextItem]
    tokens: int
    budget_tokens: int
    dropped: list[Dropped]
    settings: dict[str, Any]
    pack_ms: float = 0.0
    missing_shards: list[int] = field(default_factory=list)

    def cost(
        self,
        input_price: float,
        output_price: float = 0.0,
        *,
        output_tokens: int = 0,
        prompt_tokens: int = 0,
    ) -> Cost:
        """The query's cost at ``input_price`` and ``output_price`` per million tokens: this context's tokens plus
        ``prompt_tokens`` (the question and instructions around it) in, ``output_tokens`` out."""
        for name, value in (("input_price", input_price), ("output_price", output_price)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (price per million tokens), got {value!r}")
        for name, count in (("output_tokens", output_tokens), ("prompt_tokens", prompt_tokens)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be an int >= 0, got {count!r}")
        return Cost(self.tokens + prompt_tokens, output_tokens, float(input_price), float(output_price))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": self.tokens,
            "budget_tokens": self.budget_tokens,
            "items": [item.to_dict() for item in self.items],
            "dropped": [d.to_dict() for d in self.dropped],
            "settings": self.settings,
            "pack_ms": self.pack_ms,
            "missing_shards": self.missing_shards,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Context:
        """A context from ``to_dict``'s JSON (``rapidrag context --format json``), checked for its fields."""
        try:
            items = [
                ContextItem(
                    int(i["citation"]),
                    str(i["doc_id"]),
                    tuple(int(c) for c in i["chunk_ids"]),
                    int(i["start"]),
                    int(i["end"]),
                    str(i["text"]),
                    int(i["tokens"]),
                    float("nan") if i["score"] is None else float(i["score"]),
                    dict(i.get("metadata") or {}),
                )
                for i in data["items"]
            ]
            dropped = [
                Dropped(
                    str(d["doc_id"]),
                    tuple(int(c) for c in d["chunk_ids"]),
                    float("nan") if d["score"] is None else float(d["score"]),
                    d["reason"],
                    d.get("tokens"),
                    d.get("of"),
                    d.get("similarity"),
                )
                for d in data.get("dropped", [])
            ]
            return cls(
                str(data["text"]),
                items,
                int(data["tokens"]),
                int(data["budget_tokens"]),
                dropped,
                dict(data.get("settings") or {}),
                float(data.get("pack_ms") or 0.0),
                [int(i) for i in data.get("missing_shards") or []],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a rapidrag context (as Context.to_dict writes it): {type(e).__name__} {e}") from None

    def to_markdown(self) -> str:
        """The prompt text, then one line per source: citation, document, span, tokens, score."""
        lines = [self.text, "", f"---\n{self.tokens} of {self.budget_tokens} tokens; sources:"]
        for item in self.items:
            chunks = ",".join(map(str, item.chunk_ids))
            lines.append(
                f"- [{item.citation}] {item.doc_id} (chunks {chunks}; characters {item.start}-{item.end}; "
                f"{item.tokens} tokens; score {item.score:.4g})"
            )
        budget = [f"{d.doc_id}#{','.join(map(str, d.chunk_ids))}" for d in self.dropped if d.reason == "budget"]
        if budget:
            lines.append(f"- left out for the budget ({len(budget)}): {' '.join(budget)}")
        for d in self.dropped:
            if d.reason == "duplicate":
                of = f"[{d.of}]" if d.of is not None else "a piece left out for the budget"
                lines.append(f"- left out as a near-duplicate of {of}: {d.doc_id} (similarity {d.similarity:.3f})")
            elif d.reason == "missing":
                lines.append(f"- left out, no longer in the index: {d.doc_id}")
        if self.missing_shards:
            shards = ", ".join(map(str, self.missing_shards))
            lines.append(f"- a partial search: shards {shards} of the index did not answer")
        return "\n".join(lines)


@dataclass
class _Piece:
    """A passage being packed: ``text_of[start:end]``, where ``text_of`` is the document's text (or, without a
    source index, the hit's own text, which begins at ``base`` in the document)."""

    doc_id: str
    text_of: str
    start: int
    end: int
    score: float
    rank: int  # of its best hit in the result
    chunk_ids: list[int]
    hit: Hit
    anchor: int  # a character of the hit the piece is built around (where a cut keeps its centre)
    base: int = 0

    @property
    def text(self) -> str:
        return self.text_of[self.start : self.end]


def pack(
    result: Sequence[Hit],
    budget_tokens: int,
    *,
    source: Any = None,
    query: str | None = None,
    tokenizer: Tokenizer | str | os.PathLike[str] | None = None,
    strategy: Strategy = DEFAULT_STRATEGY,
    window_tokens: int = 256,
    sentence_window: int = 1,
    merge: bool = True,
    dedupe: float | None = 0.95,
    diversity: float = 0.0,
    order: Order = "score",
    template: str = DEFAULT_TEMPLATE,
    separator: str = "\n\n",
) -> Context:
    """Fit ``result`` (hits, best first) into ``budget_tokens`` tokens of prompt; see the module's docstring.

    Parameters
    ----------
    source : Retriever or ShardedRetriever, optional
        The index the hits came from: the documents' full text (windows and sentences reach past a chunk), the
        stored embeddings (``dedupe``), BM25's statistics (which sentences match ``query``), its tokenizer.
        Without it, pieces stay within their hits' text.
    query : str, optional
        The question: ranks a hit's sentences (``"sentences"``, and cuts of pieces too long to fit whole).
    tokenizer : Tokenizer or path, optional
        The generator's tokenizer (any that ``rapidrag.Tokenizer.from_file`` loads), which counts the budget;
        default: the index's (its embedder's).
    dedupe : float or None
        Drop a piece whose similarity to a kept one is at least this (cosine of stored embeddings, else word
        overlap); None keeps all.
    diversity : float
        MMR's weight on novelty, 0 to 1 (0: by score alone).
    template, separator :
        How an item is written (``{citation}``, ``{doc_id}`` and ``{text}`` are filled in) and joined.
    """
    started = time.perf_counter()
    budget = _check_count(budget_tokens, "budget_tokens", minimum=0)
    _check_options(strategy, window_tokens, sentence_window, dedupe, diversity, order, template, separator, query)
    hits = _check_hits(result)
    tok = _tokenizer(tokenizer, source)
    matcher = _SentenceMatcher(query, source)
    dropped: list[Dropped] = []
    pieces: list[_Piece] = []
    for rank, hit in enumerate(hits):
        document = source.get(hit.doc_id) if source is not None else None
        if source is not None and document is None:
            dropped.append(Dropped(hit.doc_id, (hit.chunk_id,), hit.score, "missing"))
            continue
        text_of = document.text if document is not None else None
        pieces.append(_piece(hit, rank, text_of, strategy, window_tokens, sentence_window, tok, matcher))
    if merge:
        pieces = _merge(pieces)
    duplicates: list[tuple[_Piece, _Piece, float]] = []
    if dedupe is not None or diversity > 0:
        pieces, duplicates = _select(pieces, source, dedupe, diversity)
    counter = _Counter(tok, template, separator)
    kept = _fit(pieces, budget, counter, matcher, dropped)
    items, text, tokens = _assemble(kept, budget, counter, order, dropped, duplicates)
    settings = {
        "strategy": strategy,
        "window_tokens": window_tokens,
        "sentence_window": sentence_window,
        "merge": merge,
        "dedupe": dedupe,
        "diversity": diversity,
        "order": order,
        "tokenizer": getattr(tok, "name", None) or type(tok).__name__,
    }
    elapsed = (time.perf_counter() - started) * 1000
    missing = [int(i) for i in getattr(result, "missing_shards", ())]
    return Context(text, items, tokens, budget, dropped, settings, elapsed, missing)


# -- checks ------------------------------------------------------------------------------------------------------


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_options(
    strategy: Any,
    window_tokens: Any,
    sentence_window: Any,
    dedupe: Any,
    diversity: Any,
    order: Any,
    template: Any,
    separator: Any,
    query: Any,
) -> None:
    if strategy not in ("chunks", "window", "sentences"):
        raise ValueError(f"strategy must be 'chunks', 'window' or 'sentences', got {strategy!r}")
    _check_count(window_tokens, "window_tokens", minimum=1)
    _check_count(sentence_window, "sentence_window", minimum=0)
    if dedupe is not None and (isinstance(dedupe, bool) or not isinstance(dedupe, (int, float)) or not 0 < dedupe <= 1):
        raise ValueError(f"dedupe must be a similarity in (0, 1] or None, got {dedupe!r}")
    if isinstance(diversity, bool) or not isinstance(diversity, (int, float)) or not 0 <= diversity <= 1:
        raise ValueError(f"diversity must be a number from 0 to 1, got {diversity!r}")
    if order not in ("score", "edges"):
        raise ValueError(f"order must be 'score' or 'edges', got {order!r}")
    if not isinstance(template, str) or "{text}" not in template:
        raise ValueError(f"template must be a str with a {{text}} field, got {template!r}")
    try:
        template.format(citation=1, doc_id="", text="")
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(
            f"template {template!r}: only {{citation}}, {{doc_id}} and {{text}} can be filled ({e})"
        ) from None
    if not isinstance(separator, str):
        raise TypeError(f"separator must be a str, not {type(separator).__name__}")
    if query is not None and not isinstance(query, str):
        raise TypeError(f"query must be a str or None, not {type(query).__name__}")


def _check_hits(result: Any) -> list[Hit]:
    if isinstance(result, (str, bytes, Hit)):
        raise TypeError("result must be a sequence of hits (a SearchResult), not a single value")
    hits = list(result)
    for i, hit in enumerate(hits):
        if not isinstance(hit, Hit):
            raise TypeError(f"result[{i}] must be a rapidrag Hit, not {type(hit).__name__}")
    return hits


def _tokenizer(tokenizer: Any, source: Any) -> Any:
    if tokenizer is not None:
        if isinstance(tokenizer, (str, os.PathLike)):
            from .tokenizer import Tokenizer

            return Tokenizer.from_file(tokenizer)
        if not callable(getattr(tokenizer, "count_tokens", None)):
            raise TypeError(f"tokenizer must be a rapidrag.Tokenizer or a path, not {type(tokenizer).__name__}")
        return tokenizer
    for owner in (getattr(source, "embedder", None), getattr(source, "chunker", None)):
        found = getattr(owner, "tokenizer", None)
        if found is not None:
            return found
    raise ValueError(
        "no tokenizer to count the budget with: give one (tokenizer=, or --tokenizer PATH on the command line: the "
        "generator's, or any file rapidrag.Tokenizer.from_file loads), or pack from an index that has an embedder "
        "or a chunker"
    )


# -- pieces ------------------------------------------------------------------------------------------------------


class _Document:
    """What packing learns of one document's text, kept across packs: the sentence spans of its stretches read
    (the whole text, or stretches around hits of a long one; see ``_stretch``), and the token offsets and span
    token counts of each tokenizer used on it. Each is made on first use."""

    __slots__ = ("counts", "offsets", "spans", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: dict[tuple[int, int], list[tuple[int, int]]] = {}  # stretch -> its sentences
        self.offsets: dict[tuple[int, int, int], tuple[Any, np.ndarray]] = {}  # (id(tokenizer), stretch) -> ...
        self.counts: dict[int, tuple[Any, dict[tuple[int, int], int]]] = {}  # id(tokenizer) -> (it, span -> tokens)


class _DocumentCache:
    """``_Document``s of the texts packed lately (``capacity`` of them), by the identity of their text: a service
    packs the same documents again and again, and splitting, tokenizing and counting them is most of a pack's
    time. Token offsets are kept for at most ``offset_tokens`` tokens in all (the oldest documents' go first)."""

    def __init__(self, capacity: int, offset_tokens: int) -> None:
        import threading

        self.capacity, self.offset_tokens = capacity, offset_tokens
        self._entries: OrderedDict[int, _Document] = OrderedDict()
        self._offset_total = 0
        self._lock = threading.Lock()

    def _entry(self, text: str) -> _Document:
        with self._lock:
            found = self._entries.get(id(text))
            if found is not None and found.text is text:
                self._entries.move_to_end(id(text))
                return found
            entry = self._entries[id(text)] = _Document(text)  # the text is held, so its id is not reused meanwhile
            while len(self._entries) > self.capacity:
                self._forget_offsets(self._entries.popitem(last=False)[1])
            return entry

    def _forget_offsets(self, entry: _Document) -> None:
        """Let go of ``entry``'s token offsets (under the lock)."""
        self._offset_total -= sum(len(o) for _, o in entry.offsets.values())
        entry.offsets.clear()

    def spans(self, text: str, stretch: tuple[int, int]) -> list[tuple[int, int]]:
        """The sentences of ``text`` within ``stretch`` (from ``_stretch``): ``sentence_spans`` of the whole text, or
        of a stretch of a long one without its first and last sentences where the stretch cuts them."""
        entry = self._entry(text)
        found = entry.spans.get(stretch)
        if found is None:
            a, b = stretch
            found = sentence_spans(text, a, b)
            if a > 0 and len(found) > 1:
                found = found[1:]
            if b < len(text) and len(found) > 1:
                found = found[:-1]
            if len(entry.spans) >= STRETCHES_KEPT:
                entry.spans.pop(next(iter(entry.spans)))
            entry.spans[stretch] = found
        return found

    def offsets(self, text: str, tok: Any, stretch: tuple[int, int]) -> np.ndarray:
        """The character offsets in ``text`` (int [n, 2]) of ``tok``'s tokens of ``text[a:b]`` (``stretch``),
        without special tokens."""
        entry = self._entry(text)
        key = (id(tok), *stretch)
        known = entry.offsets.get(key)
        if known is not None and known[0] is tok:
            return known[1]
        a, b = stretch
        _, offsets = tok.encode(text[a:b], add_special_tokens=False, return_offsets=True)  # the whole: not a copy
        offsets = np.asarray(offsets, dtype=np.int64) + a
        if len(offsets) <= self.offset_tokens // 4:
            with self._lock:
                if self._entries.get(id(text)) is not entry:  # let go of meanwhile: not counted, not kept
                    return offsets
                entry.offsets[key] = (tok, offsets)
                self._offset_total += len(offsets)
                for old in list(self._entries.values()) if self._offset_total > self.offset_tokens else ():
                    if self._offset_total <= self.offset_tokens:
                        break
                    self._forget_offsets(old)
        return offsets

    def counts(self, tok: Any, spans: Sequence[tuple[str, int, int]]) -> list[int]:
        """``tok``'s token count of each ``text[a:b]`` (``spans`` of (text, a, b)), kept with the text's document
        across packs. With a tokenizer that splits at whitespace, a span whose ends are at whitespace (or the
        text's ends) is counted from the text's token offsets where a window already has them; the rest are
        counted all at once."""
        out: list[int] = []
        missing: dict[tuple[int, int, int], tuple[dict[tuple[int, int], int], str, list[int]]] = {}
        split = bool(getattr(tok, "splits_at_whitespace", False))
        for i, (text, a, b) in enumerate(spans):
            entry = self._entry(text)
            known = entry.counts.get(id(tok))
            if known is None or known[0] is not tok:
                known = entry.counts[id(tok)] = (tok, {})
            counted = known[1]
            n = counted.get((a, b))
            if n is None and split and entry.offsets:
                n = _tokens_within(entry, tok, a, b)
                if n is not None:
                    counted[(a, b)] = n
            if n is None:  # counted below, once however often it is asked for
                missing.setdefault((id(text), a, b), (counted, text, []))[2].append(i)
                n = -1
            out.append(n)
        if missing:
            fresh = _counts(tok, [text[a:b] for (_, a, b), (_, text, _) in missing.items()])
            for ((_, a, b), (counted, _, at)), n in zip(missing.items(), fresh, strict=True):
                counted[(a, b)] = n
                for i in at:
                    out[i] = n
        return out


def _tokens_within(entry: _Document, tok: Any, a: int, b: int) -> int | None:
    """The tokens of ``entry.text[a:b]`` read from token offsets kept for ``tok`` (one that splits at whitespace)
    over a stretch that holds the span, if the span's ends are at whitespace or the text's ends (no word crosses
    them, so the span's tokens are those of the whole within it); None otherwise."""
    text = entry.text
    if (a > 0 and text[a - 1] not in _CUT_SPACES) or (b < len(text) and text[b] not in _CUT_SPACES):
        return None
    for (_, first, stop), (kept_for, offsets) in entry.offsets.items():
        if kept_for is tok and first <= a and b <= stop:
            starts = offsets[:, 0]
            return int(np.searchsorted(starts, b)) - int(np.searchsorted(starts, a))
    return None


_DOCUMENTS = _DocumentCache(4096, offset_tokens=1 << 21)
LONG_TEXT = 20_000  # characters: a longer document is read in stretches around its hits, not whole
NEAR = 2_000  # characters read on each side of a hit in a long document (more for wider windows)
STRETCHES_KEPT = 64  # stretches of one long document whose sentences are kept
_SPACE = re.compile(r"\s")


def _stretch(text: str, start: int, end: int, margin: int) -> tuple[int, int]:
    """What of ``text`` is read for the span ``[start, end)``: all of it, unless it is longer than ``LONG_TEXT``
    characters; then ``margin`` characters each side of the span, moved out to whitespace (so that no word, nor
    sentence end, is cut), rounded out to a multiple of ``NEAR`` first (so that nearby hits share stretches). Work
    per hit stays bounded by the span's neighbourhood, whatever the document's length."""
    if len(text) <= LONG_TEXT:
        return 0, len(text)
    a = max(0, (start - margin) // NEAR * NEAR)
    b = min(len(text), -(-(end + margin) // NEAR) * NEAR)
    while a > 0 and not text[a - 1].isspace():
        a -= 1
    found = _SPACE.search(text, b)
    return a, (found.start() if found is not None else len(text))


class _SentenceMatcher:
    """How well a sentence matches the query: the summed idf of the query's words it holds (BM25's analyzer and,
    with a source index, its document frequencies)."""

    def __init__(self, query: str | None, source: Any) -> None:
        self.terms: dict[str, float] = {}
        self._by_text: dict[int, tuple[str, dict[tuple[int, int], int]]] = {}  # the terms each sentence holds
        self._weights: dict[int, float] = {0: 0.0}  # of sets of terms, as bit masks
        self._bounds: dict[int, tuple[list[tuple[int, int]], list[int], list[int]]] = {}
        if not query:
            return
        analyzer = getattr(source, "analyzer", None)
        if analyzer is None:
            from .lexical import WordAnalyzer

            analyzer = WordAnalyzer(stemmer=None)
        self.analyzer = analyzer
        terms = set(analyzer(query))
        stats = None
        statistics = getattr(source, "statistics", None)
        if callable(statistics):
            try:
                stats = statistics(query).get("bm25")
            except Exception:  # an index that cannot answer (a shard down) ranks sentences without idf
                stats = None
        for t in terms:
            if stats is not None and stats.documents > 0:
                df = stats.df.get(t, 0)
                self.terms[t] = math.log(1 + (stats.documents - df + 0.5) / (df + 0.5))
            else:
                self.terms[t] = 1.0
        self._idf = list(self.terms.values())  # term i is bit 1 << i of a set of terms
        bit = {t: 1 << i for i, t in enumerate(self.terms)}
        term_of = {t: t for t in self.terms}
        term_of.update({t[:-1] + "y": t for t in self.terms if t.endswith("i")})
        self._prefixes = list(term_of)  # what may begin a word, and the term each stands for
        self._bit_of_prefix = [bit[t] for t in term_of.values()]

    def weight(self, terms: int) -> float:
        """The summed idf of a set of the query's terms (a bit mask, as ``held`` gives), exact in any order."""
        w = self._weights.get(terms)
        if w is None:
            w = self._weights[terms] = math.fsum(idf for i, idf in enumerate(self._idf) if terms >> i & 1)
        return w

    def term_set(self, terms: int) -> set[str]:
        """The terms of a bit mask."""
        return {t for i, t in enumerate(self.terms) if terms >> i & 1}

    def held(self, text: str, spans: list[tuple[int, int]]) -> list[int]:
        """The query's terms each span of ``text`` (in order, not overlapping) holds, as bit masks (term ``i`` of
        ``terms`` is bit ``1 << i``). A term counts as held where a
        word begins with it (a stem, or a stem ending in "i" with "y" for it: "studi" for "study"; at each word the
        longest that begins it), the words as BM25's analyzer finds them (``_core.word_prefixes``): nothing is
        stemmed, which would cost most of a pack; it ranks a hit's sentences, not documents."""
        if not self.terms or not spans:
            return [0] * len(spans)
        starts = [a for a, _ in spans]
        held = [0] * len(spans)
        found, prefix = _core.word_prefixes(text, self._prefixes)
        bit_of = self._bit_of_prefix
        for at, k in zip(found.tolist(), prefix.tolist(), strict=True):
            j = bisect.bisect_right(starts, at) - 1
            if j >= 0 and at < spans[j][1]:
                held[j] |= bit_of[k]
        return held

    def spans(self, text: str, start: int, end: int, neighbours: int = 0) -> list[tuple[int, int]]:
        """The sentences around ``[start, end)`` of a document (all of them in a document of up to ``LONG_TEXT``
        characters; with ``neighbours`` more each side in a longer one), kept across packs (``_DOCUMENTS``)."""
        return _DOCUMENTS.spans(text, _stretch(text, start, end, NEAR + 500 * neighbours))

    def overlapping(self, spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
        """The run ``[first, stop)`` of ``spans`` (in order, not overlapping) that overlap ``[start, end)``, found by
        bisection on their ends and starts (kept for the pack: a document's sentences can number hundreds)."""
        bounds = self._bounds.get(id(spans))
        if bounds is None or bounds[0] is not spans:
            bounds = self._bounds[id(spans)] = (spans, [a for a, _ in spans], [b for _, b in spans])
        _, starts, ends = bounds
        return bisect.bisect_right(ends, start), bisect.bisect_left(starts, end)

    def held_of(self, text: str, spans: list[tuple[int, int]], first: int, stop: int) -> list[int]:
        """``held`` of the sentences ``spans[first:stop]`` of ``text``, each found once a pack: only the stretch
        they cover is scanned (a hit's sentences, not its whole document). They begin and end at whitespace, so
        the words of the stretch are the text's, and a sentence's terms depend on its own words only."""
        known = self._by_text.get(id(text))
        if known is None or known[0] is not text:
            known = self._by_text[id(text)] = (text, {})
        found = known[1]
        missing = [i for i in range(first, stop) if spans[i] not in found]
        if missing:
            run = spans[missing[0] : missing[-1] + 1]
            lo, hi = run[0][0], run[-1][1]
            found.update(zip(run, self.held(text[lo:hi], [(a - lo, b - lo) for a, b in run]), strict=True))
        return [found[spans[i]] for i in range(first, stop)]

    def scores_of(self, text: str, spans: list[tuple[int, int]], first: int, stop: int) -> list[float]:
        """How well each of the sentences ``spans[first:stop]`` matches the query: the summed idf of the query's
        terms it holds (``held_of``)."""
        return [self.weight(h) for h in self.held_of(text, spans, first, stop)]


def _piece(
    hit: Hit,
    rank: int,
    text_of: str | None,
    strategy: Strategy,
    window_tokens: int,
    sentence_window: int,
    tok: Any,
    matcher: _SentenceMatcher,
) -> _Piece:
    if text_of is not None and text_of[hit.start : hit.end] == hit.text:
        base, start, end = 0, hit.start, hit.end
    else:  # no source (or a hit that is not its document's span there): the hit's own text
        text_of, base, start, end = hit.text, hit.start, 0, len(hit.text)
    anchor = start
    if strategy == "window":
        start, end = _window(text_of, start, end, window_tokens, tok)
    elif strategy == "sentences":
        start, end = _sentences(text_of, start, end, sentence_window, matcher)
    return _Piece(hit.doc_id, text_of, start, end, hit.score, rank, [hit.chunk_id], hit, anchor, base)


def _window(text: str, start: int, end: int, window_tokens: int, tok: Any) -> tuple[int, int]:
    """The span grown to ``window_tokens`` tokens of ``tok`` around it (as evenly as the document allows), its
    ends moved out to whole words. A long document is tokenized in a stretch around the span, widened until it
    holds the window or reaches the document's ends."""
    margin = max(NEAR, 8 * window_tokens)  # characters; widened below when a side runs short
    while True:
        stretch = _stretch(text, start, end, margin)
        offsets = _DOCUMENTS.offsets(text, tok, stretch)
        if len(offsets) == 0:
            return start, end
        first = int(np.searchsorted(offsets[:, 1], start, side="right"))
        last = int(np.searchsorted(offsets[:, 0], end, side="left"))  # tokens [first, last) are the span's
        extra = window_tokens - (last - first)
        if extra <= 0:
            return start, end
        before = min(first, extra // 2)
        after = min(len(offsets) - last, extra - before)
        before = min(first, extra - after)
        short = (stretch[0] > 0 and before == first) or (stretch[1] < len(text) and after == len(offsets) - last)
        if not short:
            break
        margin *= 2  # the stretch ran out of tokens on a side that the document has more of
    a = int(offsets[first - before, 0]) if before else start
    b = int(offsets[last + after - 1, 1]) if after else end
    while a > 0 and a < start and not text[a - 1].isspace():
        a -= 1
    while b < len(text) and b > end and not text[b].isspace():
        b += 1
    return min(a, start), max(b, end)


def _sentences(text: str, start: int, end: int, sentence_window: int, matcher: _SentenceMatcher) -> tuple[int, int]:
    """``sentence_window`` sentences each side of one of the hit's sentences: the one whose run of sentences holds
    the most of the query (the summed idf of the query's terms the run holds, each term once), so that what the
    neighbours hold counts; ties go to the run whose own sentence matches best, then to the first (the first
    sentence without a query)."""
    spans = matcher.spans(text, start, end, sentence_window)
    first, stop = matcher.overlapping(spans, start, end)
    if first >= stop:
        return start, end
    w = sentence_window
    lo, hi = max(0, first - w), min(len(spans), stop + w)  # the sentences any run may take
    held = matcher.held_of(text, spans, lo, hi)
    weight = matcher.weight
    best, best_key = first, (-1.0, -1.0)
    for i in range(first - lo, stop - lo):  # ties keep the first
        terms = 0
        for t in held[max(0, i - w) : i + w + 1]:
            terms |= t
        key = (weight(terms), weight(held[i]))
        if key > best_key:
            best, best_key = i + lo, key
    return spans[max(0, best - w)][0], spans[min(len(spans) - 1, best + w)][1]


def _merge(pieces: list[_Piece]) -> list[_Piece]:
    """Pieces of one document that overlap or touch (only whitespace between) as one, at the rank of the best.
    Pieces made of the hits' own text (no source index) merge only where they overlap or meet exactly."""
    out: list[_Piece] = []
    for piece in pieces:
        i = 0
        while i < len(out):
            joined = _join(out[i], piece)
            if joined is None:
                i += 1
                continue
            del out[i]
            piece, i = joined, 0  # the grown piece may now reach another
        out.append(piece)
    out.sort(key=lambda p: p.rank)
    return out


def _join(a: _Piece, b: _Piece) -> _Piece | None:
    if a.doc_id != b.doc_id:
        return None
    best, other = (a, b) if (a.rank, a.score) <= (b.rank, b.score) else (b, a)
    if a.text_of is b.text_of or (a.base == b.base == 0 and a.text_of == b.text_of):
        text_of, base = a.text_of, a.base
        lo_end, hi_start = min(a.end, b.end), max(a.start, b.start)
        if hi_start > lo_end and text_of[lo_end:hi_start].strip():
            return None
        start, end = min(a.start, b.start), max(a.end, b.end)
    else:  # two hits' own texts: their union is known only when they overlap or meet
        (x, y) = (a, b) if a.base + a.start <= b.base + b.start else (b, a)
        x0, x1, y0, y1 = x.base + x.start, x.base + x.end, y.base + y.start, y.base + y.end
        if y0 > x1:
            return None
        text_of = x.text + y.text[x1 - y0 :] if y1 > x1 else x.text
        base, start, end = x0, 0, max(x1, y1) - x0
    anchor = best.anchor + best.base - base
    return _Piece(
        best.doc_id,
        text_of,
        start,
        end,
        max(a.score, b.score),
        min(a.rank, b.rank),
        sorted(set(a.chunk_ids) | set(b.chunk_ids)),
        best.hit,
        anchor,
        base,
    )


def _select(
    pieces: list[_Piece], source: Any, dedupe: float | None, diversity: float
) -> tuple[list[_Piece], list[tuple[_Piece, _Piece, float]]]:
    """Pieces by MMR (``diversity``: the weight on novelty), and those at least ``dedupe`` similar to a kept one
    apart as (piece, the kept one, similarity); similarity is the cosine of the index's stored embeddings, else the
    overlap of words."""
    if not pieces:
        return pieces, []
    vectors = _vectors(pieces, source)
    sims = vectors @ vectors.T if vectors is not None else _word_overlap([p.text for p in pieces])
    scores = np.array([p.score for p in pieces], dtype=np.float64)
    spread = scores.max() - scores.min()
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    left = list(range(len(pieces)))
    chosen: list[int] = []
    duplicates = []
    while left:
        if chosen and diversity > 0:
            novelty = sims[np.ix_(left, chosen)].max(axis=1)
            pick = left[int(np.argmax((1 - diversity) * relevance[left] - diversity * novelty))]
        else:
            pick = left[0]
        left.remove(pick)
        if chosen and dedupe is not None:
            nearest = chosen[int(np.argmax(sims[pick, chosen]))]
            if sims[pick, nearest] >= dedupe:
                duplicates.append((pieces[pick], pieces[nearest], float(sims[pick, nearest])))
                continue
        chosen.append(pick)
    return [pieces[i] for i in chosen], duplicates


def _vectors(pieces: list[_Piece], source: Any) -> np.ndarray | None:
    getter = getattr(source, "chunk_vectors", None)
    if not callable(getter):
        return None
    vectors = getter([(p.hit.doc_id, p.hit.chunk_id) for p in pieces])
    if vectors is None or np.isnan(vectors).any():
        return None
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float64)


def _word_overlap(texts: list[str]) -> np.ndarray:
    from .lexical import WordAnalyzer

    analyzer = WordAnalyzer(stemmer=None)
    sets = [set(analyzer(t)) for t in texts]
    n = len(sets)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            union = len(sets[i] | sets[j])
            out[i, j] = out[j, i] = len(sets[i] & sets[j]) / union if union else 0.0
    return out


# -- fitting and writing ---------------------------------------------------------------------------------------


def _fit(
    pieces: list[_Piece], budget: int, counter: _Counter, matcher: _SentenceMatcher, dropped: list[Dropped]
) -> list[tuple[_Piece, int, int]]:
    """Pieces best first while they fit, each with its tokens as written and the citation number they were counted
    with; one that does not fit whole is cut to the sentences around its best that do."""
    sep = counter.separator_tokens
    counts = counter.written(pieces, list(range(1, len(pieces) + 1)))
    kept: list[tuple[_Piece, int, int]] = []
    used = 0
    for i, (piece, count) in enumerate(zip(pieces, counts, strict=True)):
        counted_as = i + 1
        room = budget - used - (sep if kept else 0)
        if count > room:
            cut = _cut(piece, room, counter, len(kept) + 1, matcher)
            if cut is None:
                dropped.append(Dropped(piece.doc_id, tuple(piece.chunk_ids), piece.score, "budget", tokens=count))
                continue
            piece, count = cut
            counted_as = len(kept) + 1
        used += count + (sep if kept else 0)
        kept.append((piece, count, counted_as))
    return kept


class _Counter:
    """The tokens of a pack's pieces as written (``template`` around the text) and of its whole text.

    With a tokenizer whose tokens never span whitespace (``Tokenizer.splits_at_whitespace``: WordPiece), a template
    with whitespace (or nothing) on each side of its one ``{text}`` and a separator with whitespace at both ends,
    counts add up: a written piece counts its frame (the template without the text) plus its text's tokens, and the
    whole text its items and separators. A piece's tokens are then read from its document's token offsets where a
    window has them (its ends at whitespace), else counted once and kept with the document (``_DOCUMENTS``), so
    that a document packed again is not counted again. Otherwise every written text is counted."""

    def __init__(self, tok: Any, template: str, separator: str) -> None:
        self.tok, self.template, self.separator = tok, template, separator
        self.separator_tokens = int(tok.count_tokens(separator)) if separator else 0
        before, _, after = template.partition("{text}")
        framed = template.count("{text}") == 1 and _spaced_end(before, -1) and _spaced_end(after, 0)
        self.adds = bool(getattr(tok, "splits_at_whitespace", False)) and framed
        self.joins = self.adds and bool(separator) and _spaced_end(separator, 0) and _spaced_end(separator, -1)
        self._frames: dict[tuple[int, str], int] = {}

    def frame(self, citation: int, doc_id: str) -> int:
        """The tokens of the template around the text, for this citation and document."""
        return self.frames([citation], [doc_id])[0]

    def frames(self, citations: list[int], doc_ids: list[str]) -> list[int]:
        """``frame`` of each (citation, document), those not known yet counted at once."""
        by_id = "{doc_id}" in self.template
        keys = [(n, d if by_id else "") for n, d in zip(citations, doc_ids, strict=True)]
        new = [key for key in dict.fromkeys(keys) if key not in self._frames]
        if new:
            texts = [self.template.format(citation=n, doc_id=d, text="") for n, d in new]
            self._frames.update(zip(new, _counts(self.tok, texts), strict=True))
        return [self._frames[key] for key in keys]

    def written(self, pieces: list[_Piece], citations: list[int]) -> list[int]:
        """The tokens of each piece written with its citation number."""
        if not self.adds:
            return _counts(self.tok, [_written(self.template, n, p) for n, p in zip(citations, pieces, strict=True)])
        own = _DOCUMENTS.counts(self.tok, [(p.text_of, p.start, p.end) for p in pieces])
        frames = self.frames(citations, [p.doc_id for p in pieces])
        return [f + c for f, c in zip(frames, own, strict=True)]

    def whole(self, text: str, counts: list[int]) -> int:
        """The tokens of the pack's ``text``: its items' ``counts`` (each exact as written) joined."""
        if len(counts) == 1:
            return counts[0]
        if self.joins:
            return sum(counts) + self.separator_tokens * (len(counts) - 1)
        return int(self.tok.count_tokens(text)) if text else 0


def _spaced_end(text: str, at: int) -> bool:
    """Whether ``text`` is empty or its character ``at`` (0 or -1) is ASCII whitespace, where a tokenizer that
    splits at whitespace splits."""
    return not text or text[at] in _CUT_SPACES


_CUT_SPACES = frozenset(" \t\n\r")


def _counts(tok: Any, texts: list[str]) -> list[int]:
    """Tokens of each text, on this thread: a pack's few texts cost less than waking the tokenizer's threads."""
    from .tokenizer import Tokenizer

    if not texts:
        return []
    if isinstance(tok, Tokenizer):
        return [int(c) for c in tok.count_tokens(texts, n_threads=1)]
    return [int(c) for c in tok.count_tokens(texts)]


def _written(template: str, citation: int, piece: _Piece) -> str:
    return template.format(citation=citation, doc_id=piece.doc_id, text=piece.text)


def _cut(
    piece: _Piece, room: int, counter: _Counter, citation: int, matcher: _SentenceMatcher
) -> tuple[_Piece, int] | None:
    """``piece`` cut to the run of its sentences around its best that fits ``room`` tokens, with its tokens; None
    when not even one sentence fits."""
    if room < MIN_CUT_TOKENS:
        return None
    text = piece.text_of
    whole = matcher.spans(text, piece.start, piece.end)
    first, stop = matcher.overlapping(whole, piece.start, piece.end)
    held, spans = [], []  # the piece's sentences (those it holds in part, cut to it)
    for i in range(first, stop):
        a, b = max(whole[i][0], piece.start), min(whole[i][1], piece.end)
        if text[a:b].strip():
            held.append(i - first)
            spans.append((a, b))
    if not spans:
        return None
    counts = _DOCUMENTS.counts(counter.tok, [(text, a, b) for a, b in spans])  # kept across packs
    total = counter.frame(citation, piece.doc_id)
    if total + min(counts) > room:  # not even the shortest sentence fits: the sentences need no scores
        return None
    scored = matcher.scores_of(text, whole, first, stop)  # as whole sentences
    scores = [scored[i] for i in held]

    centre = max(range(len(spans)), key=lambda i: (scores[i], spans[i][0] <= piece.anchor < spans[i][1], -i))
    lo = hi = centre
    total += counts[centre]
    if total > room:
        return None
    grown = True
    while grown:
        grown = False
        for j in (hi + 1, lo - 1):
            if 0 <= j < len(spans) and total + counts[j] <= room:
                total += counts[j]
                lo, hi = min(lo, j), max(hi, j)
                grown = True
    cut = replace(piece, start=spans[lo][0], end=spans[hi][1])
    exact = counter.written([cut], [citation])[0]
    return (cut, exact) if exact <= room else None


def _assemble(
    kept: list[tuple[_Piece, int, int]],
    budget: int,
    counter: _Counter,
    order: Order,
    dropped: list[Dropped],
    duplicates: list[tuple[_Piece, _Piece, float]],
) -> tuple[list[ContextItem], str, int]:
    """The items in prompt order, numbered 1.. in that order, the text, and its exact token count (pieces are
    counted one by one; should the whole text count more than their sum, the last is dropped until it fits). An
    item whose number differs from the one it was counted with (a piece dropped before it, the "edges" order) is
    counted again: "[9]" and "[10]" can differ in tokens."""
    template = counter.template
    numbered = "{citation}" in template
    while True:
        placed = kept[0::2] + kept[1::2][::-1] if order == "edges" else list(kept)
        text = counter.separator.join(_written(template, n, p) for n, (p, _, _) in enumerate(placed, 1))
        counts = [count for _, count, _ in placed]
        renumbered = [i for i, (_, _, counted_as) in enumerate(placed) if counted_as != i + 1] if numbered else []
        if renumbered:
            again = counter.written([placed[i][0] for i in renumbered], [i + 1 for i in renumbered])
            for i, count in zip(renumbered, again, strict=True):
                counts[i] = count
        tokens = counter.whole(text, counts) if text else 0
        if tokens <= budget or not kept:
            break
        piece, count, _ = kept.pop()
        dropped.append(Dropped(piece.doc_id, tuple(piece.chunk_ids), piece.score, "budget", tokens=count))
    citation = {id(p): n for n, (p, _, _) in enumerate(placed, 1)}
    for piece, kept_one, similarity in duplicates:
        of = citation.get(id(kept_one))
        dropped.append(Dropped(piece.doc_id, tuple(piece.chunk_ids), piece.score, "duplicate", None, of, similarity))
    items = []
    for n, ((p, _, _), count) in enumerate(zip(placed, counts, strict=True), 1):
        items.append(
            ContextItem(
                citation=n,
                doc_id=p.doc_id,
                chunk_ids=tuple(p.chunk_ids),
                start=p.base + p.start,
                end=p.base + p.end,
                text=p.text,
                tokens=count,
                score=p.score,
                metadata=p.hit.metadata,
            )
        )
    return items, text, tokens
