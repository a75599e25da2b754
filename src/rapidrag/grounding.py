"""A grounding check of a generated answer against the context it was given: for each sentence of the answer, the
span of the context that best supports it, a score, and a status (supported, weak or unverified), with the numbers
and names of the sentence that its support does not contain.

The signals are those rapidrag already has: the words of the sentence found in a context sentence (or two
adjacent ones), weighted by BM25's idf over the index, and the cosine between the sentence's embedding and the
stored embeddings of the context item's chunks. An NLI cross-encoder of your own can replace the score
(``nli=``). Similarity cannot tell support from contradiction: a low score says "unverified", never "false".
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .context import Context
from .sentences import sentence_spans

if TYPE_CHECKING:
    from .search import EmbedderLike

__all__ = ["DENSE_SHARE", "THRESHOLDS", "GroundedSentence", "Grounding", "Support", "ground"]

Status = Literal["supported", "weak", "unverified"]
# The score's mix and the status thresholds, chosen on SciFact *train* claims by benchmarks/grounding_eval.py
# (BENCHMARKS.md, "Context packing and grounding (issue 20)").
DENSE_SHARE = 0.5
THRESHOLDS = (0.75, 0.44)  # score >= first: supported; >= second: weak; below: unverified

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\s?%)?")
# A name: a capitalised word not opening the sentence, an acronym, or a word of letters and digits ("IL-6").
_NAME = re.compile(r"\b(?:[A-Z][a-z]+(?:[-\s][A-Z][a-z]+)*|[A-Z]{2,}[\w-]*|[A-Za-z]+-?\d[\w-]*)\b")


@dataclass(frozen=True)
class Support:
    """The context span that best supports a sentence: its citation, document and character span in that
    document (``text == document.text[start:end]``)."""

    citation: int
    doc_id: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"citation": self.citation, "doc_id": self.doc_id, "start": self.start, "end": self.end,
                "text": self.text}  # fmt: skip


@dataclass(frozen=True)
class GroundedSentence:
    """One sentence of the answer (``start``, ``end``: its span in the answer), its status and score, its best
    ``support`` (None for an empty context), and the numbers and names it has that the support lacks."""

    text: str
    start: int
    end: int
    status: Status
    score: float
    support: Support | None
    missing: tuple[str, ...]
    signals: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "score": self.score,
            "support": self.support.to_dict() if self.support is not None else None,
            "missing": list(self.missing),
            "signals": self.signals,
        }


@dataclass(frozen=True)
class Grounding:
    """The sentences of an answer, each checked; ``ground_ms`` the time it took."""

    answer: str
    sentences: list[GroundedSentence]
    thresholds: tuple[float, float]
    ground_ms: float

    def count(self, status: Status) -> int:
        return sum(s.status == status for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentences": [s.to_dict() for s in self.sentences],
            "supported": self.count("supported"),
            "weak": self.count("weak"),
            "unverified": self.count("unverified"),
            "thresholds": list(self.thresholds),
            "ground_ms": self.ground_ms,
        }

    def to_markdown(self) -> str:
        """The answer with each sentence marked: ``[supported: 2]``, ``[weak: 1]`` or ``[unverified]``, and what
        its support lacks."""
        out = []
        for s in self.sentences:
            mark = (
                f"{s.status}: {s.support.citation}" if s.support is not None and s.status != "unverified" else s.status
            )
            lacks = f"; not in its source: {', '.join(s.missing)}" if s.missing else ""
            out.append(f"{s.text} [{mark}, {s.score:.2f}{lacks}]")
        return "\n".join(out)


def ground(
    answer: str,
    context: Context,
    *,
    source: Any = None,
    embedder: EmbedderLike | None = None,
    nli: Any = None,
    thresholds: tuple[float, float] = THRESHOLDS,
) -> Grounding:
    """Check each sentence of ``answer`` against ``context`` (see the module's docstring).

    Parameters
    ----------
    source : Retriever or ShardedRetriever, optional
        The index the context was packed from: BM25's idf for the words, the stored embeddings of the items'
        chunks, its embedder. The context's items are checked against it (a context from another index is
        refused).
    embedder : optional
        Embeds the answer's sentences (default: the source's); without one, the words alone score.
    nli : optional
        An NLI or entailment cross-encoder (anything with ``score(hypothesis, premises) -> logits``, such as a
        ``rapidrag.Reranker`` over an ONNX folder of such a model): its probability that the best spans entail
        the sentence becomes the score.
    thresholds : (supported, weak)
        Scores at or above the first are "supported", at or above the second "weak", the rest "unverified".
    """
    started = time.perf_counter()
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, not {type(answer).__name__}")
    if not answer.strip():
        raise ValueError("answer is empty: there is nothing to check")
    if not isinstance(context, Context):
        raise TypeError(
            f"context must be a rapidrag Context (from pack or Retriever.context), not {type(context).__name__}"
        )
    high, low = _check_thresholds(thresholds)
    if source is not None:
        _check_source(context, source)
    embedder = embedder if embedder is not None else getattr(source, "embedder", None)
    spans = sentence_spans(answer)
    texts = [answer[a:b] for a, b in spans]
    candidates = _candidates(context)
    analyzer = _analyzer(source)
    idf = _idf(texts, candidates, analyzer, source)
    lexical = _lexical(texts, candidates, analyzer, idf)  # [sentences, candidates]
    dense = _dense(texts, context, candidates, embedder, source)  # [sentences, candidates] or None
    out = []
    for i, ((a, b), text) in enumerate(zip(spans, texts, strict=True)):
        if not candidates:
            out.append(GroundedSentence(text, a, b, "unverified", 0.0, None, (), {}))
            continue
        mixed = lexical[i] if dense is None else (1 - DENSE_SHARE) * lexical[i] + DENSE_SHARE * dense[i]
        best = int(np.argmax(mixed))
        signals = {"lexical": float(lexical[i, best])}
        if dense is not None:
            signals["dense"] = float(dense[i, best])
        score = float(mixed[best])
        if nli is not None:
            top = np.argsort(-mixed, kind="stable")[:3]
            logits = np.asarray(nli.score(text, [candidates[j].text for j in top]), dtype=np.float64)
            probs = 1 / (1 + np.exp(-logits))
            best = int(top[int(np.argmax(probs))])
            score = signals["nli"] = float(probs.max())
        support = candidates[best]
        missing = _missing(text, support.text)
        status: Status = "supported" if score >= high else "weak" if score >= low else "unverified"
        if status == "supported" and any(_NUMBER.fullmatch(m) for m in missing):
            status = "weak"  # a number its source does not state is the commonest unsupported detail
        out.append(GroundedSentence(text, a, b, status, score, support, missing, signals))
    return Grounding(answer, out, (high, low), (time.perf_counter() - started) * 1000)


def _check_thresholds(thresholds: Any) -> tuple[float, float]:
    try:
        high, low = (float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be two numbers (supported, weak), got {thresholds!r}") from None
    if not (math.isfinite(high) and math.isfinite(low) and high >= low):
        raise ValueError(f"thresholds must be finite with supported >= weak, got {thresholds!r}")
    return high, low


def _check_source(context: Context, source: Any) -> None:
    for item in context.items:
        document = source.get(item.doc_id)
        if document is None or document.text[item.start : item.end] != item.text:
            raise ValueError(
                f"context item [{item.citation}] ({item.doc_id!r}, characters {item.start}-{item.end}) is not in this "
                "index: the context was packed from another index (or the document changed since)"
            )


def _candidates(context: Context) -> list[Support]:
    """Each item's sentences, and each pair of adjacent ones, as spans of their documents."""
    out = []
    for item in context.items:
        spans = sentence_spans(item.text)
        for j, (a, b) in enumerate(spans):
            out.append(Support(item.citation, item.doc_id, item.start + a, item.start + b, item.text[a:b]))
            if j + 1 < len(spans):
                c = spans[j + 1][1]
                out.append(Support(item.citation, item.doc_id, item.start + a, item.start + c, item.text[a:c]))
    return out


def _analyzer(source: Any) -> Any:
    analyzer = getattr(source, "analyzer", None)
    if analyzer is None:
        from .lexical import WordAnalyzer

        analyzer = WordAnalyzer(stemmer=None)
    return analyzer


def _idf(texts: list[str], candidates: list[Support], analyzer: Any, source: Any) -> dict[str, float]:
    """BM25's idf of the answer's words: over the source index, else over the context's sentences."""
    words = sorted({w for t in texts for w in analyzer(t)})
    statistics = getattr(source, "statistics", None)
    if callable(statistics) and words:
        stats = statistics(" ".join(words)).get("bm25")
        if stats is not None and stats.documents > 0:
            n = stats.documents
            return {w: math.log(1 + (n - stats.df.get(w, 0) + 0.5) / (stats.df.get(w, 0) + 0.5)) for w in words}
    bags = [set(analyzer(c.text)) for c in candidates]
    n = len(bags)
    return {w: math.log(1 + (n - sum(w in b for b in bags) + 0.5) / (sum(w in b for b in bags) + 0.5)) for w in words}


def _lexical(texts: list[str], candidates: list[Support], analyzer: Any, idf: dict[str, float]) -> np.ndarray:
    """The idf-weighted share of each sentence's words found in each candidate: [sentences, candidates]."""
    bags = [set(analyzer(c.text)) for c in candidates]
    out = np.zeros((len(texts), len(candidates)))
    for i, text in enumerate(texts):
        words = set(analyzer(text))
        total = sum(idf.get(w, 0.0) for w in words)
        if total <= 0:
            continue
        for j, bag in enumerate(bags):
            out[i, j] = sum(idf.get(w, 0.0) for w in words & bag) / total
    return out


def _dense(
    texts: list[str], context: Context, candidates: list[Support], embedder: Any, source: Any
) -> np.ndarray | None:
    """The cosine of each sentence's embedding with its candidates' items (the mean of the stored embeddings of
    the item's chunks; without stored ones, the item's text embedded): [sentences, candidates]."""
    if embedder is None or not candidates:
        return None
    items = context.items
    vectors = None
    getter = getattr(source, "chunk_vectors", None)
    if callable(getter):
        keys = [(item.doc_id, c) for item in items for c in item.chunk_ids]
        stored = getter(keys)
        if stored is not None and not np.isnan(stored).any():
            sizes = [len(item.chunk_ids) for item in items]
            bounds = np.cumsum([0, *sizes])
            vectors = np.stack([stored[bounds[i] : bounds[i + 1]].mean(axis=0) for i in range(len(items))])
    if vectors is None:
        vectors = np.asarray(embedder.embed([item.text for item in items]), dtype=np.float32)
    queries = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    by_item = queries @ vectors.T  # [sentences, items]
    column = {item.citation: i for i, item in enumerate(items)}
    return np.asarray(by_item[:, [column[c.citation] for c in candidates]], dtype=np.float64)


def _missing(sentence: str, support: str) -> tuple[str, ...]:
    """Numbers and names of ``sentence`` that ``support`` does not contain (case-insensitive; numbers as written
    without thousands separators)."""
    haystack = support.lower().replace(",", "")
    found = []
    spans = sentence_spans(sentence)
    first_word_end = re.match(r"\s*\S+", sentence)
    opening = first_word_end.end() if first_word_end and spans else 0
    for m in _NUMBER.finditer(sentence):
        value = m.group(0).replace(",", "").replace(" ", "").lower()
        if value.rstrip("%") not in haystack:
            found.append(m.group(0))
    for m in _NAME.finditer(sentence):
        name = m.group(0)
        if m.start() < opening and name[:1].isupper() and not any(ch.isdigit() for ch in name) and not name.isupper():
            continue  # the sentence's first word is capitalised anyway
        if name.lower() not in support.lower() and name not in found:
            found.append(name)
    return tuple(dict.fromkeys(found))
