"""The Retriever: chunked documents in a BM25 index and a FAISS index, searched with in-search metadata filters,
fused, and optionally reranked within a time budget.

Every indexed unit is a chunk of a document (a "row"); a document that fits the chunk size is one chunk. Searches
return one hit per document (its best chunk) unless ``per_document=False``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .dense import DenseIndex
from .filters import MetadataIndex
from .fusion import reciprocal_rank_fusion, weighted_fusion
from .lexical import BM25

__all__ = ["Document", "Hit", "Retriever", "SearchResult", "evaluate"]

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class Document:
    """A document to index: ``text`` (a BEIR title is prepended by ``from_dict``) and metadata for filters."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], index: int = 0) -> Document:
        """``{"id", "text", "metadata"}`` or a BEIR ``{"_id", "title", "text", ...}``."""
        doc_id = raw.get("id", raw.get("_id"))
        text = raw.get("text")
        if doc_id is None or not isinstance(text, str):
            raise ValueError(f"documents[{index}]: needs an 'id' (or '_id') and a str 'text', got keys {sorted(raw)}")
        title = raw.get("title")
        if isinstance(title, str) and title:
            text = f"{title} {text}" if text else title
        metadata = raw.get("metadata") or {k: v for k, v in raw.items() if k not in ("id", "_id", "text", "title")}
        if not isinstance(metadata, Mapping):
            raise ValueError(f"documents[{index}]: metadata must be a dict, got {type(metadata).__name__}")
        return cls(str(doc_id), text, dict(metadata))


@dataclass(frozen=True)
class Hit:
    """One result: the document, the chunk, its character span in the document text, and each stage's score."""

    doc_id: str
    chunk_id: int
    text: str
    start: int
    end: int
    score: float
    scores: dict[str, float]
    metadata: Mapping[str, Any]


class SearchResult(list[Hit]):
    """The hits, best first, and ``timings``: milliseconds per stage."""

    def __init__(self, hits: Iterable[Hit], timings: dict[str, float]) -> None:
        super().__init__(hits)
        self.timings = timings


@dataclass
class _Row:
    doc_id: str
    chunk_id: int
    start: int
    end: int


class Retriever:
    """Lexical, dense and hybrid search over chunked documents.

    Parameters
    ----------
    embedder : rapidrag.Embedder, optional
        Without one the retriever is lexical only.
    reranker : rapidrag.Reranker, optional
    chunker : rapidrag.Chunker, optional
        Default: chunks of the embedder's window (``max_length`` - 2 tokens); without an embedder, no chunking.
    index : "flat", "hnsw" or "ivfpq"
    fusion : "rrf" or "weighted"; ``weights``: (lexical, dense) for the fusion.
    rerank_weight : the reranker's share in the final score (z-scores over the reranked candidates); 1.0 = the
        reranker alone.
    """

    def __init__(
        self,
        embedder: Any = None,
        reranker: Any = None,
        chunker: Any = None,
        *,
        index: Literal["flat", "hnsw", "ivfpq"] = "flat",
        k1: float = 0.9,
        b: float = 0.4,
        fusion: Literal["rrf", "weighted"] = "rrf",
        weights: tuple[float, float] = (1.0, 1.0),
        rrf_k: float = 60.0,
        rerank_weight: float = 1.0,
        rerank_depth: int = 20,
    ) -> None:
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        if not 0.0 <= rerank_weight <= 1.0:
            raise ValueError(f"rerank_weight must be in [0, 1], got {rerank_weight!r}")
        self.embedder, self.reranker = embedder, reranker
        if chunker is None and embedder is not None:
            from .chunker import Chunker

            chunker = Chunker(embedder.tokenizer, max_tokens=embedder.max_length - 2)
        elif chunker is not None and embedder is not None and chunker.max_tokens > embedder.max_length - 2:
            import warnings

            warnings.warn(
                f"chunks of {chunker.max_tokens} tokens are longer than the embedder's window "
                f"({embedder.max_length - 2}): their ends will be embedded truncated",
                stacklevel=2,
            )
        self.chunker = chunker
        self.bm25 = BM25(k1=k1, b=b)
        self.dense = DenseIndex(embedder.dim, index) if embedder is not None else None
        self.metadata = MetadataIndex()
        self.fusion, self.weights, self.rrf_k = fusion, tuple(weights), rrf_k
        self.rerank_weight, self.rerank_depth = rerank_weight, rerank_depth
        self._rows: list[_Row] = []
        self._docs: dict[str, tuple[Document, list[int]]] = {}  # id -> (document, its rows)
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        entry = self._docs.get(doc_id)
        return entry[0] if entry else None

    # -- changes -------------------------------------------------------------------------------------------------

    def _documents(self, documents: Iterable[Any]) -> list[Document]:
        out = []
        for i, d in enumerate(documents):
            if isinstance(d, Document):
                doc = d
            elif isinstance(d, Mapping):
                doc = Document.from_dict(d, i)
            else:
                raise TypeError(f"documents[{i}] must be a Document or a dict, not {type(d).__name__}")
            if not isinstance(doc.text, str):
                raise TypeError(f"documents[{i}].text must be a str")
            out.append(doc)
        ids = [d.id for d in out]
        if len(set(ids)) != len(ids):
            raise ValueError("the same document id appears twice in one add")
        return out

    def add(self, documents: Iterable[Any], *, batch_size: int = 32) -> int:
        """Index documents (Document, {"id", "text", "metadata"} or BEIR dicts); returns the chunks added."""
        docs = self._documents(documents)
        taken = [d.id for d in docs if d.id in self._docs]
        if taken:
            raise ValueError(f"documents already indexed: {taken[:5]}; use upsert to replace them")
        spans = (
            self.chunker.split_batch([d.text for d in docs])
            if self.chunker is not None
            else [[_whole(d.text)] for d in docs]
        )
        rows: list[_Row] = []
        owners: list[int] = []
        for k, (doc, chunks) in enumerate(zip(docs, spans, strict=True)):
            if not chunks:  # an empty or blank text is still a document, with one empty chunk
                chunks = [_whole(doc.text)]
            for c, chunk in enumerate(chunks):
                rows.append(_Row(doc.id, c, chunk.start, chunk.end))
                owners.append(k)
        texts = [docs[o].text[r.start : r.end] for o, r in zip(owners, rows, strict=True)]
        vectors = self.embedder.embed(texts, batch_size=batch_size) if self.embedder is not None else None
        with self._lock:
            start = len(self._rows)
            row_ids = list(range(start, start + len(rows)))
            self.bm25.add([str(r) for r in row_ids], texts)
            if len(self.bm25.ids) != len(self._rows) + len(rows):
                raise AssertionError("BM25 rows out of step with the retriever's rows")
            if self.dense is not None and vectors is not None:
                self.dense.add(np.asarray(row_ids), vectors)
            self.metadata.add([docs[o].metadata for o in owners])
            self._rows.extend(rows)
            for k, doc in enumerate(docs):
                self._docs[doc.id] = (doc, [r for r, o in zip(row_ids, owners, strict=True) if o == k])
        return len(rows)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        removed = 0
        with self._lock:
            for doc_id in ids:
                entry = self._docs.pop(doc_id, None)
                if entry is None:
                    continue
                rows = entry[1]
                self.bm25.delete([str(r) for r in rows])
                if self.dense is not None:
                    self.dense.remove(rows)
                for r in rows:
                    self.metadata.clear(r)
                removed += 1
        return removed

    def upsert(self, documents: Iterable[Any]) -> int:
        docs = self._documents(documents)
        with self._lock:
            self.delete([d.id for d in docs])
            return self.add(docs)

    # -- search --------------------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        filter: Mapping[str, Any] | None = None,
        rerank: bool | None = None,
        candidates: int = 100,
        budget_ms: float | None = None,
        per_document: bool = True,
    ) -> SearchResult:
        """The ``k`` best hits for ``query``. ``rerank``: None = rerank when a reranker is set."""
        started = time.perf_counter()
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'lexical', got {mode!r}")
        if mode != "lexical" and self.dense is None:
            raise ValueError(f"mode {mode!r} needs an embedder; this retriever is lexical only")
        if not isinstance(k, int) or k < 1 or not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"k and candidates must be positive ints, got {k!r} and {candidates!r}")
        timings: dict[str, float] = {}
        with self._lock:
            clock = time.perf_counter()
            mask = self.metadata.mask(filter) if filter is not None else None
            timings["filter_ms"] = (time.perf_counter() - clock) * 1000
            depth = max(candidates, k) * (4 if per_document else 1)
            scores: dict[str, dict[int, float]] = {}
            lists: list[tuple[np.ndarray, np.ndarray]] = []
            if mode in ("lexical", "hybrid"):
                clock = time.perf_counter()
                rows, s = self.bm25.search_rows(query, k=depth, mask=mask)  # BM25 rows are the retriever's rows
                scores["bm25"] = dict(zip(rows.tolist(), s.tolist(), strict=True))
                lists.append((rows, s))
                timings["lexical_ms"] = (time.perf_counter() - clock) * 1000
            if mode in ("dense", "hybrid") and self.dense is not None:
                clock = time.perf_counter()
                qv = self.embedder.embed([query])
                timings["embed_ms"] = (time.perf_counter() - clock) * 1000
                clock = time.perf_counter()
                r, s = self.dense.search(qv, depth, mask=mask)
                keep = r[0] >= 0
                rows, s = r[0][keep], s[0][keep]
                scores["dense"] = dict(zip(rows.tolist(), s.tolist(), strict=True))
                lists.append((rows, s))
                timings["dense_ms"] = (time.perf_counter() - clock) * 1000
            clock = time.perf_counter()
            if len(lists) == 2:
                if self.fusion == "rrf":
                    fused_rows, fused = reciprocal_rank_fusion(
                        [lists[0][0], lists[1][0]], k=self.rrf_k, weights=self.weights
                    )
                else:
                    fused_rows, fused = weighted_fusion(lists, weights=self.weights)
                scores["fused"] = dict(zip(fused_rows.tolist(), fused.tolist(), strict=True))
            else:
                fused_rows, fused = lists[0][0], lists[0][1].astype(np.float32)
            order = _best_per_document(fused_rows, self._rows) if per_document else np.arange(len(fused_rows))
            order = order[:candidates]
            ranked_rows = fused_rows[order]
            final = fused[order].astype(np.float64)
            timings["fusion_ms"] = (time.perf_counter() - clock) * 1000
            use_reranker = self.reranker is not None if rerank is None else bool(rerank)
            if use_reranker:
                if self.reranker is None:
                    raise ValueError("rerank=True needs a reranker")
                clock = time.perf_counter()
                depth_r = min(self.rerank_depth, len(ranked_rows))
                left = None if budget_ms is None else budget_ms - (time.perf_counter() - started) * 1000
                texts = [self._text(r) for r in ranked_rows[:depth_r]]
                if depth_r and (left is None or left > 0):
                    raw = self.reranker.score(query, texts, time_budget_ms=left)
                    done = ~np.isnan(raw)
                    scores["rerank"] = {
                        int(r): float(v) for r, v, ok in zip(ranked_rows[:depth_r], raw, done, strict=True) if ok
                    }
                    n = int(done.sum())
                    if n:
                        first = final[:n]
                        mixed = self.rerank_weight * _z(raw[:n]) + (1 - self.rerank_weight) * _z(first)
                        top = np.argsort(-mixed, kind="stable")
                        ranked_rows = np.concatenate([ranked_rows[:n][top], ranked_rows[n:]])
                        # Unscored candidates keep their order, below every scored one.
                        tail = mixed.min() - 1.0 - 1e-3 * np.arange(len(final) - n)
                        final = np.concatenate([mixed[top], tail])
                timings["rerank_ms"] = (time.perf_counter() - clock) * 1000
            hits = [self._hit(int(r), float(v), scores) for r, v in zip(ranked_rows[:k], final[:k], strict=True)]
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return SearchResult(hits, timings)

    def search_batch(self, queries: Sequence[str], k: int = 10, **kwargs: Any) -> list[SearchResult]:
        return [self.search(q, k, **kwargs) for q in queries]

    def _text(self, row: int) -> str:
        info = self._rows[row]
        return self._docs[info.doc_id][0].text[info.start : info.end]

    def _hit(self, row: int, score: float, scores: dict[str, dict[int, float]]) -> Hit:
        info = self._rows[row]
        doc = self._docs[info.doc_id][0]
        stage = {name: values[row] for name, values in scores.items() if row in values}
        return Hit(
            info.doc_id,
            info.chunk_id,
            doc.text[info.start : info.end],
            info.start,
            info.end,
            score,
            stage,
            doc.metadata,
        )

    def __repr__(self) -> str:
        kind = self.dense.kind if self.dense is not None else "lexical only"
        return f"Retriever({len(self)} documents, {len(self._rows)} chunks, {kind})"


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


def _whole(text: str) -> _Span:
    return _Span(0, len(text))


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _best_per_document(rows: np.ndarray, info: list[_Row]) -> np.ndarray:
    """Positions of the first (best) row of each document, in order."""
    seen: set[str] = set()
    keep = []
    for pos, r in enumerate(rows.tolist()):
        doc = info[r].doc_id
        if doc not in seen:
            seen.add(doc)
            keep.append(pos)
    return np.asarray(keep, dtype=np.int64)


def evaluate(
    retriever: Retriever,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 10,
    **search_kwargs: Any,
) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 over the queries that have judgements (BEIR protocol: graded gains,
    log2 discount, relevance > 0 counts as relevant)."""
    ndcg, recall, mrr = [], [], []
    depth = max(100, k)
    for qid, rel in qrels.items():
        if qid not in queries:
            continue
        hits = retriever.search(queries[qid], k=depth, candidates=depth, **search_kwargs)
        ranked = [h.doc_id for h in hits]
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
        ndcg.append(dcg / ideal if ideal > 0 else 0.0)
        relevant = {d for d, g in rel.items() if g > 0}
        recall.append(len(relevant & set(ranked[:100])) / len(relevant) if relevant else 0.0)
        mrr.append(next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0))
    return {"ndcg@10": float(np.mean(ndcg)), "recall@100": float(np.mean(recall)), "mrr@10": float(np.mean(mrr))}
