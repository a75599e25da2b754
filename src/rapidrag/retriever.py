"""The Retriever: chunked documents in a BM25 index and a FAISS index, searched with in-search metadata filters,
fused, and optionally reranked within a time budget.

Every indexed unit is a chunk of a document (a "row"); a document that fits the chunk size is one chunk. Searches
return one hit per document (its best chunk) unless ``per_document=False``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .dense import DenseIndex
from .errors import RapidragError
from .filters import MetadataIndex, check_metadata
from .fusion import reciprocal_rank_fusion, rerank_mix, weighted_fusion
from .lexical import BM25
from .progress import Progress

__all__ = ["Document", "Hit", "Retriever", "SearchResult", "evaluate"]

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class Document:
    """A document to index: ``text``, metadata for filters, and an optional ``title``.

    The title is a separate BM25 field when the retriever gives it a weight (``title_weight``); for a BEIR
    document ``from_dict`` also prepends it to ``text`` (the BEIR protocol indexes and embeds "title text"), so
    spans always point into ``text``.
    """

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], index: int = 0) -> Document:
        """``{"id", "text", "metadata"}`` or a BEIR ``{"_id", "title", "text", ...}``."""
        doc_id = raw.get("id", raw.get("_id"))
        text = raw.get("text")
        if doc_id is None or not isinstance(text, str):
            raise ValueError(f"documents[{index}]: needs an 'id' (or '_id') and a str 'text', got keys {sorted(raw)}")
        title = raw.get("title")
        if not isinstance(title, str):
            title = ""
        if title:
            text = f"{title} {text}" if text else title
        # An explicit "metadata" (BEIR's is often {}) is the metadata; without one, the other fields are.
        if raw.get("metadata") is not None:
            metadata = raw["metadata"]
        else:
            metadata = {k: v for k, v in raw.items() if k not in ("id", "_id", "text", "title", "metadata")}
        if not isinstance(metadata, Mapping):
            raise ValueError(f"documents[{index}]: metadata must be a dict, got {type(metadata).__name__}")
        return cls(str(doc_id), text, dict(metadata), title)


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

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready values, the one encoding of the CLI's ``--json`` and the HTTP service: metadata
        keeps its lists and dicts, dates become ISO 8601 strings, non-finite numbers null."""
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": _json_value(self.score),
            "scores": {name: _json_value(v) for name, v in self.scores.items()},
            "metadata": {str(key): _json_value(v) for key, v in self.metadata.items()},
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


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


_DEAD_ROW = _Row("", 0, 0, 0)
FORMAT_VERSION = 1
# The reranker's share when nothing chose one: fused with the first-stage score, since a reranker's order alone
# can be worse than the first stage's (the shared cross-encoder's is, on SciFact). Chosen on SciFact train by
# benchmarks/rerank_default.py: of the shares that gain over hybrid whatever number of candidates a budget lets
# the reranker score, the one with the largest mean gain (BENCHMARKS.md, "The default rerank share").
DEFAULT_RERANK_WEIGHT = 0.5
PROGRESS_MIN_DOCUMENTS = 5_000
BUDGET_RESERVE_MS = 1.0  # of a search's budget_ms, kept for the work after the reranker


MODELS_ENV = "RAPIDRAG_MODELS"


def check_query(query: str) -> None:
    """Refuse an empty or blank query (ValueError): searching for nothing returns arbitrary hits."""
    if not query.strip():
        raise ValueError(f"the query is {'empty' if not query else 'blank'}: give the words to search for")


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
    k1, b : BM25 parameters.
    title_weight : weight of the title field in BM25 (0 = no title field; the title still counts as part of
        the text for BEIR documents).
    fusion : "rrf" or "weighted"; ``weights``: (lexical, dense) for the fusion.
    rerank_weight : the reranker's share in the final score (z-scores over the reranked candidates); 1.0 = the
        reranker alone. None (the default): the weight ``rapidrag tune`` chose, else the one the reranker's folder
        recommends (``rapidrag.json`` of a model made by ``rapidrag train``), else ``DEFAULT_RERANK_WEIGHT``: the
        reranker's score is fused with the first-stage score, never left to replace it unasked.
    rerank_depth : how many fused candidates the reranker scores (at most; fewer within a ``budget_ms``).

    Thread safety: any number of threads may search while others add, upsert, delete or save. Each change
    becomes visible whole (an ``add`` batch by batch); embedding and reranking run outside the index lock.
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
        title_weight: float = 0.0,
        fusion: Literal["rrf", "weighted"] = "rrf",
        weights: tuple[float, float] = (1.0, 1.0),
        rrf_k: float = 60.0,
        rerank_weight: float | None = None,
        rerank_depth: int = 20,
    ) -> None:
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        if rerank_weight is not None and not (
            isinstance(rerank_weight, (int, float)) and not isinstance(rerank_weight, bool) and 0 <= rerank_weight <= 1
        ):
            raise ValueError(f"rerank_weight must be in [0, 1] or None (the default), got {rerank_weight!r}")
        if not (isinstance(title_weight, (int, float)) and title_weight >= 0):
            raise ValueError(f"title_weight must be a number >= 0, got {title_weight!r}")
        if len(weights) != 2 or any(not isinstance(w, (int, float)) or w < 0 for w in weights):
            raise ValueError(f"weights must be two numbers >= 0 (lexical, dense), got {weights!r}")
        if not isinstance(rerank_depth, int) or rerank_depth < 1:
            raise ValueError(f"rerank_depth must be a positive int, got {rerank_depth!r}")
        self.embedder, self.reranker = embedder, reranker
        if chunker is None and embedder is not None:
            from .chunker import Chunker

            chunker = Chunker(embedder.tokenizer, max_tokens=embedder.max_length - 2)
        elif chunker is not None and embedder is not None and chunker.max_tokens > embedder.max_length - 2:
            warnings.warn(
                f"chunks of {chunker.max_tokens} tokens are longer than the embedder's window "
                f"({embedder.max_length - 2}): their ends will be embedded truncated",
                stacklevel=2,
            )
        self.chunker = chunker
        self.index_kind = index
        self.bm25 = BM25(k1=k1, b=b)
        self.title_weight = float(title_weight)
        self.bm25_title = BM25(k1=k1, b=b) if self.title_weight > 0 else None
        self.dense = DenseIndex(embedder.dim, index) if embedder is not None else None
        self.metadata = MetadataIndex()
        self.fusion, self.weights, self.rrf_k = fusion, tuple(weights), rrf_k
        self.rerank_weight, self.rerank_depth = rerank_weight, rerank_depth
        self._rows: list[_Row] = []
        self._docs: dict[str, tuple[Document, list[int]]] = {}  # id -> (document, its rows)
        self._lock = threading.RLock()
        self._model_specs: dict[str, Any] = {}  # set by load: the models recorded in the index
        # Which judgements chose the weights (set by ``rapidrag tune``; kept by save): {"qrels", "sha256", ...}.
        self.tuned_on: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def effective_rerank_weight(self) -> float:
        """The reranker's share in use: ``rerank_weight`` if set (by you, or by ``rapidrag tune`` with the reranker
        loaded: a weight tuned with another one is not carried over to it), else the reranker folder's recommended
        weight, else ``DEFAULT_RERANK_WEIGHT``."""
        if self.rerank_weight is not None and not self._tuned_with_another_reranker():
            return float(self.rerank_weight)
        recommended = getattr(self.reranker, "recommended_weight", None)
        return float(recommended) if recommended is not None else DEFAULT_RERANK_WEIGHT

    def _tuned_with_another_reranker(self) -> bool:
        tuned = self.tuned_on or {}
        chosen = (tuned.get("settings") or {}).get("rerank_weight")
        name = tuned.get("reranker")
        current = model_name(self.reranker)
        return name is not None and chosen == self.rerank_weight and current is not None and current != name

    @property
    def default_mode(self) -> Mode:
        """What ``search`` does when asked for no mode: hybrid when the index has vectors and its embedder is
        loaded, else lexical."""
        return "hybrid" if self.dense is not None and self.embedder is not None else "lexical"

    def get(self, doc_id: str) -> Document | None:
        entry = self._docs.get(doc_id)
        return entry[0] if entry else None

    @property
    def n_chunks(self) -> int:
        """Indexed chunks of the live documents."""
        return len(self.bm25)

    # -- changes -------------------------------------------------------------------------------------------------

    def _documents(self, documents: Iterable[Any]) -> list[Document]:
        if isinstance(documents, (str, bytes, Mapping, Document)):
            raise TypeError("documents must be an iterable of documents (wrap a single one in a list)")
        out = []
        for i, d in enumerate(documents):
            if isinstance(d, Document):
                doc = d
            elif isinstance(d, Mapping):
                doc = Document.from_dict(d, i)
            else:
                raise TypeError(f"documents[{i}] must be a Document or a dict, not {type(d).__name__}")
            if not isinstance(doc.id, str) or not isinstance(doc.text, str) or not isinstance(doc.title, str):
                raise TypeError(f"documents[{i}]: id, text and title must be str")
            if not isinstance(doc.metadata, Mapping):
                raise TypeError(f"documents[{i}] ({doc.id!r}): metadata must be a dict")
            _encode_meta(doc)  # refuses, before anything is stored, a value that could not be saved
            try:
                check_metadata(doc.metadata)  # ... or not filtered
            except TypeError as e:
                raise TypeError(f"documents[{i}] ({doc.id!r}): {e}") from None
            for name, value in (("id", doc.id), ("text", doc.text), ("title", doc.title)):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise ValueError(
                        f"documents[{i}] ({doc.id!r}): {name} is not valid Unicode ({e.reason} at index {e.start})"
                    ) from None
            out.append(doc)
        ids = [d.id for d in out]
        if len(set(ids)) != len(ids):
            raise ValueError("the same document id appears twice in one add")
        return out

    def add(
        self, documents: Iterable[Any], *, batch_size: int = 32, progress: bool | None = None, _replace: bool = False
    ) -> int:
        """Index documents (Document, {"id", "text", "metadata"} or BEIR dicts); returns the chunks added.

        Every document is checked before any is indexed. Documents are then chunked, embedded and indexed in
        batches, each visible to searches once indexed. ``progress``: a progress bar on stderr (None: for adds
        of at least 5,000 documents when stderr is a terminal).
        """
        docs = self._documents(documents)
        if self.dense is not None and self.embedder is None:
            raise ValueError(
                "this index has vectors but its embedder was not loaded: pass embedder= to Retriever.load "
                "(CLI: --embedder PATH) before adding documents"
            )
        if not _replace:
            taken = [d.id for d in docs if d.id in self._docs]
            if taken:
                raise ValueError(f"documents already indexed: {taken[:5]}; use upsert to replace them")
        # None: a bar for large adds, when stderr is a terminal (Progress decides that).
        show = progress if progress is not None else (None if len(docs) >= PROGRESS_MIN_DOCUMENTS else False)
        added = 0
        step = 1024
        if self.dense is not None and self.dense.kind == "ivfpq" and len(self.dense) == 0:
            step = max(len(docs), 1)  # IVF-PQ trains on its first add: give it all of it
        with Progress(len(docs), "indexing", unit="documents", enabled=show) as bar:
            for first in range(0, len(docs), step):
                added += self._add_batch(docs[first : first + step], batch_size, _replace)
                bar.update(min(first + step, len(docs)), f"{added:,} chunks")
        return added

    def _add_batch(self, docs: list[Document], batch_size: int, replace: bool) -> int:
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
            if replace:
                self.delete([d.id for d in docs])
            else:
                taken = [d.id for d in docs if d.id in self._docs]
                if taken:
                    raise ValueError(f"documents already indexed (meanwhile, by another thread): {taken[:5]}")
            start = len(self._rows)
            row_ids = list(range(start, start + len(rows)))
            names = [str(r) for r in row_ids]
            self.bm25.add(names, texts)
            if self.bm25_title is not None:
                self.bm25_title.add(names, [docs[o].title for o in owners])
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
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        removed = 0
        with self._lock:
            for doc_id in ids:
                entry = self._docs.pop(doc_id, None)
                if entry is None:
                    continue
                rows = entry[1]
                names = [str(r) for r in rows]
                self.bm25.delete(names)
                if self.bm25_title is not None:
                    self.bm25_title.delete(names)
                if self.dense is not None:
                    self.dense.remove(rows)
                for r in rows:
                    self.metadata.clear(r)
                    self._rows[r] = _DEAD_ROW
                removed += 1
        return removed

    def upsert(self, documents: Iterable[Any], *, batch_size: int = 32, progress: bool | None = None) -> int:
        """Index documents, replacing those already indexed under the same id; returns the chunks added.

        Each batch's old versions are removed and new ones added under one lock: a search sees either."""
        return self.add(documents, batch_size=batch_size, progress=progress, _replace=True)

    def compact(self) -> None:
        """Rebuild the dense index without its deleted rows (HNSW keeps them as tombstones until then, which
        costs search time, not results); a no-op for flat and IVF-PQ, whose deletes remove the vectors."""
        if self.dense is not None and self.dense.dead:
            with self._lock:
                self.dense.compact()

    # -- search --------------------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode | None = None,
        filter: Mapping[str, Any] | None = None,
        rerank: bool | None = None,
        candidates: int = 100,
        budget_ms: float | None = None,
        per_document: bool = True,
    ) -> SearchResult:
        """The ``k`` best hits for ``query``. ``mode``: None = ``default_mode`` (hybrid when the index has vectors
        and its embedder, else lexical). ``rerank``: None = rerank when a reranker is set."""
        started = time.perf_counter()
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        check_query(query)
        mode = self.default_mode if mode is None else mode
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'lexical', got {mode!r}")
        if mode != "lexical" and self.dense is None:
            raise ValueError(f"mode {mode!r} needs an embedder; this retriever is lexical only")
        if mode != "lexical" and self.embedder is None:
            raise ValueError(
                f"mode {mode!r} needs the embedder that made this index's vectors, and it was not loaded: "
                "pass embedder= to Retriever.load (CLI: --embedder PATH), or search with mode='lexical'"
            )
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k (the number of hits) must be a positive int, got {k!r}")
        if not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1:
            raise ValueError(f"candidates must be a positive int, got {candidates!r}")
        if budget_ms is not None and not (isinstance(budget_ms, (int, float)) and budget_ms > 0):
            raise ValueError(f"budget_ms must be a positive number or None, got {budget_ms!r}")
        use_reranker = self.reranker is not None if rerank is None else bool(rerank)
        if use_reranker and self.reranker is None:
            raise ValueError("rerank=True needs a reranker")
        timings: dict[str, float] = {}
        qv = None
        if mode != "lexical":
            clock = time.perf_counter()
            qv = self.embedder.embed([query])
            timings["embed_ms"] = (time.perf_counter() - clock) * 1000
        scores: dict[str, dict[int, float]] = {}
        with self._lock:
            clock = time.perf_counter()
            mask = self.metadata.mask(filter) if filter is not None else None
            timings["filter_ms"] = (time.perf_counter() - clock) * 1000
            depth = max(candidates, k) * (4 if per_document else 1)
            lists: list[tuple[np.ndarray, np.ndarray]] = []
            if mode in ("lexical", "hybrid"):
                clock = time.perf_counter()
                rows, s = self._lexical(query, depth, mask)
                scores["bm25"] = dict(zip(rows.tolist(), s.tolist(), strict=True))
                lists.append((rows, s))
                timings["lexical_ms"] = (time.perf_counter() - clock) * 1000
            if qv is not None and self.dense is not None:
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
            # What the hits need, taken while the index cannot change; the rest runs without the lock.
            found = {int(r): (self._rows[r], self._docs[self._rows[r].doc_id][0]) for r in ranked_rows.tolist()}
            timings["fusion_ms"] = (time.perf_counter() - clock) * 1000
        if use_reranker:
            clock = time.perf_counter()
            depth_r = min(self.rerank_depth, len(ranked_rows))
            # What is left of the budget, less a reserve for building the hits after the reranker.
            left = None if budget_ms is None else budget_ms - (time.perf_counter() - started) * 1000 - BUDGET_RESERVE_MS
            if depth_r and (left is None or left > 0):
                texts = [_slice(*found[r]) for r in ranked_rows[:depth_r].tolist()]
                raw = self.reranker.score(query, texts, time_budget_ms=left)
                done = ~np.isnan(raw)
                scores["rerank"] = {
                    int(r): float(v) for r, v, ok in zip(ranked_rows[:depth_r], raw, done, strict=True) if ok
                }
                n = int(done.sum())
                if n:
                    if not done[:n].all():
                        raise AssertionError("the reranker scored candidates out of the order given")
                    order, final = rerank_mix(raw[:n], final, self.effective_rerank_weight)
                    ranked_rows = ranked_rows[order]
            timings["rerank_ms"] = (time.perf_counter() - clock) * 1000
        hits = [_hit(int(r), *found[int(r)], float(v), scores) for r, v in zip(ranked_rows[:k], final[:k], strict=True)]
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return SearchResult(hits, timings)

    def _lexical(self, query: str, depth: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 rows and scores: the text field, plus the title field times ``title_weight`` when there is one."""
        if self.bm25_title is None:
            return self.bm25.search_rows(query, k=depth, mask=mask)  # BM25 rows are the retriever's rows
        terms = self.bm25.analyzer(query)
        scores = self.bm25.score_rows(terms) + np.float32(self.title_weight) * self.bm25_title.score_rows(terms)
        return self.bm25.top_rows(scores, depth, mask=mask)

    def search_batch(self, queries: Sequence[str], k: int = 10, **kwargs: Any) -> list[SearchResult]:
        return [self.search(q, k, **kwargs) for q in queries]

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the folder ``path``, atomically (see ``rapidrag.persist``); returns the path.

        The folder holds the documents, chunk spans, the BM25 and FAISS indexes, the vectors, the settings and
        which models built it (``load`` reopens them). A save runs while searches continue.
        """
        return self._save(path)

    def _save(self, path: str | os.PathLike[str], after_file: Any = None) -> Path:
        from .persist import save_arrays, write_snapshot

        with self._lock:
            bm25_info, bm25_arrays = self.bm25.state()
            title_state = self.bm25_title.state() if self.bm25_title is not None else None
            dense_state = self.dense.state() if self.dense is not None else None
            docs = list(self._docs.values())
            row_info = list(self._rows)  # deletes replace entries: take them as they are now
            n_rows = len(row_info)
        owner = np.full(n_rows, -1, dtype=np.int64)
        chunk = np.zeros(n_rows, dtype=np.int64)
        bounds = np.zeros((n_rows, 2), dtype=np.int64)
        lines = []
        for d, (doc, rows) in enumerate(docs):
            lines.append(
                json.dumps({"id": doc.id, "text": doc.text, "title": doc.title, "metadata": _encode_meta(doc)})
            )
            for r in rows:
                info = row_info[r]
                owner[r], chunk[r], bounds[r] = d, info.chunk_id, (info.start, info.end)
        files = {
            "documents.jsonl": ("\n".join(lines) + "\n").encode("utf-8") if lines else b"",
            "rows.npz": save_arrays(document=owner, chunk=chunk, span=bounds),
            "bm25.json": json.dumps(bm25_info).encode("utf-8"),
            "bm25.npz": save_arrays(**bm25_arrays),
        }
        if title_state is not None:
            files["bm25_title.json"] = json.dumps(title_state[0]).encode("utf-8")
            files["bm25_title.npz"] = save_arrays(**title_state[1])
        if dense_state is not None:
            files["dense.npz"] = save_arrays(**dense_state[1])
        config = {
            "retriever": {
                "index": self.index_kind,
                "k1": self.bm25.k1,
                "b": self.bm25.b,
                "title_weight": self.title_weight,
                "fusion": self.fusion,
                "weights": list(self.weights),
                "rrf_k": self.rrf_k,
                "rerank_weight": self.rerank_weight,
                "rerank_depth": self.rerank_depth,
            },
            "chunker": {"max_tokens": self.chunker.max_tokens, "overlap": self.chunker.overlap}
            if self.chunker is not None
            else self._model_specs.get("chunker"),
            "embedder": _model_spec(self.embedder) or self._model_specs.get("embedder"),
            "reranker": _model_spec(self.reranker) or self._model_specs.get("reranker"),
            "dense": dense_state[0] if dense_state is not None else None,
            "documents": len(docs),
            "rows": n_rows,
            "tuned_on": self.tuned_on,
        }
        return write_snapshot(path, files, config, version=FORMAT_VERSION, after_file=after_file)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Any = "auto",
        reranker: Any = "auto",
        chunker: Any = "auto",
    ) -> Retriever:
        """Open an index written by ``save``; searches give the results they gave before the save.

        ``embedder``, ``reranker``: "auto" opens the models that built the index (from the paths it recorded),
        or pass the objects (a different model file gives a warning; a different dimension, an error); a
        reranker can be left out with None. ``chunker``: "auto" rebuilds the recorded chunk settings.
        """
        from .persist import IndexFormatError, read_snapshot

        snap = read_snapshot(path, version=FORMAT_VERSION)
        try:
            cfg = snap.config
            settings = dict(cfg["retriever"])
            asked = {"embedder": embedder, "reranker": reranker}
            embedder = _open_model(cfg["embedder"], embedder, "embedder")
            reranker = _open_model(cfg["reranker"], reranker, "reranker")
            opened = {"embedder": embedder, "reranker": reranker}
            if cfg["dense"] is not None and embedder is not None and embedder.dim != cfg["dense"]["dim"]:
                raise ValueError(
                    f"the index holds {cfg['dense']['dim']}-d vectors; the embedder gives {embedder.dim}-d"
                )
            if chunker == "auto":
                chunker = None
                if cfg["chunker"] is not None and embedder is not None:  # without it, no adds (see add)
                    from .chunker import Chunker

                    chunker = Chunker(embedder.tokenizer, cfg["chunker"]["max_tokens"], cfg["chunker"]["overlap"])
            settings["weights"] = tuple(settings["weights"])
            if settings.get("rerank_weight") == 1.0 and not cfg.get("tuned_on"):
                settings["rerank_weight"] = None  # the old default, saved before None meant "not chosen"
            out = cls(None, reranker, None, **settings)
            out.embedder, out.chunker = embedder, chunker
            # The recorded models that could not be found: a save without them keeps them recorded.
            out._model_specs = {
                role: cfg[role]
                for role in opened
                if opened[role] is None and cfg[role] and (asked[role] == "auto" or role == "embedder")
            }
            if out._model_specs.get("embedder") is not None:
                out._model_specs["chunker"] = cfg["chunker"]
            out.tuned_on = cfg.get("tuned_on")
            if out.tuned_on and "reranker" not in out.tuned_on and (cfg["reranker"] or {}).get("model_file"):
                out.tuned_on["reranker"] = _name_and_file(cfg["reranker"])[0]  # tuned before this was recorded
            out.bm25 = BM25.from_state(snap.json("bm25.json"), snap.arrays("bm25.npz"))
            if out.title_weight > 0:
                out.bm25_title = BM25.from_state(snap.json("bm25_title.json"), snap.arrays("bm25_title.npz"))
            if cfg["dense"] is not None:
                out.dense = DenseIndex.from_state(cfg["dense"], snap.arrays("dense.npz"))
            rows = snap.arrays("rows.npz")
            owner, chunk, span = rows["document"], rows["chunk"], rows["span"]
            n_rows = int(cfg["rows"])
            if owner.shape != (n_rows,) or chunk.shape != (n_rows,) or span.shape != (n_rows, 2):
                raise ValueError("chunk table does not match the recorded number of rows")
            raw_docs = snap.read("documents.jsonl").decode("utf-8").splitlines()
            if len(raw_docs) != cfg["documents"]:
                raise ValueError(f"{len(raw_docs)} documents where {cfg['documents']} were saved")
            docs = []
            for line in raw_docs:
                item = json.loads(line)
                docs.append(Document(item["id"], item["text"], _decode_meta(item["metadata"]), item["title"]))
            out._rows = [_DEAD_ROW] * n_rows
            members: list[list[int]] = [[] for _ in docs]
            for r in np.flatnonzero(owner >= 0).tolist():
                d = int(owner[r])
                if d >= len(docs):
                    raise ValueError(f"row {r} belongs to document {d} of {len(docs)}")
                out._rows[r] = _Row(docs[d].id, int(chunk[r]), int(span[r, 0]), int(span[r, 1]))
                members[d].append(r)
            out._docs = {doc.id: (doc, m) for doc, m in zip(docs, members, strict=True)}
            meta: list[Mapping[str, Any] | None] = [None] * n_rows
            for doc, m in zip(docs, members, strict=True):
                for r in m:
                    meta[r] = doc.metadata
            out.metadata.add(meta)
            if len(out.bm25.ids) != n_rows or len(out.bm25) != sum(map(len, members)):
                raise ValueError("the BM25 index does not match the chunk table")
            if out.dense is not None and len(out.dense) != len(out.bm25):
                raise ValueError("the dense index does not match the chunk table")
            _warm_up()
        except IndexFormatError:
            raise
        except (KeyError, TypeError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
            if isinstance(e, RapidragError):
                raise
            raise IndexFormatError(f"{path}: the saved index is inconsistent ({type(e).__name__}: {e})") from None
        return out

    def __repr__(self) -> str:
        kind = self.dense.kind if self.dense is not None else "lexical only"
        return f"Retriever({len(self)} documents, {len(self._rows)} chunks, {kind})"


def _warm_up() -> None:
    """Load the numba kernels of search and fusion now (about a second), so that the first search is as fast as
    the next ones."""
    from . import dense, lexical

    lexical.warm_up()
    dense.warm_up()
    reciprocal_rank_fusion([np.arange(2), np.arange(2)])
    weighted_fusion([(np.arange(2), np.ones(2, dtype=np.float32)), (np.arange(2), np.ones(2, dtype=np.float32))])


def _slice(info: _Row, doc: Document) -> str:
    return doc.text[info.start : info.end]


def _hit(row: int, info: _Row, doc: Document, score: float, scores: dict[str, dict[int, float]]) -> Hit:
    stage = {name: values[row] for name, values in scores.items() if row in values}
    return Hit(info.doc_id, info.chunk_id, _slice(info, doc), info.start, info.end, score, stage, doc.metadata)


def _model_spec(model: Any) -> dict[str, Any] | None:
    """How to reopen ``model`` (an Embedder or Reranker): its path, its folder's name and its file's name in it
    (to find it again under ``RAPIDRAG_MODELS`` after a move), and a fingerprint of its weights."""
    if model is None:
        return None
    spec: dict[str, Any] = {"type": type(model).__name__}
    model_path = getattr(model, "model_path", None)
    if model_path is not None:
        folder, model_file = Path(model.folder).resolve(), Path(model_path).resolve()
        spec.update(folder=str(folder), model_file=str(model_file), name=folder.name)
        spec["file"] = str(model_file.relative_to(folder)) if model_file.is_relative_to(folder) else model_file.name
        spec["sha256"] = _fingerprint(model)
    for name in ("max_length", "normalize", "pooling", "dim"):
        if hasattr(model, name):
            spec[name] = getattr(model, name)
    return spec


def model_name(model: Any) -> str | None:
    """The name of a model's folder (how an index refers to a model that moved), or None."""
    folder = getattr(model, "folder", None)
    return Path(folder).name if folder is not None else None


def _fingerprint(model: Any) -> str:
    fingerprint = getattr(model, "_fingerprint", None)
    if fingerprint is None:
        from .persist import sha256_file

        fingerprint = sha256_file(model.model_path)
        try:
            model._fingerprint = fingerprint
        except AttributeError:
            pass
    return str(fingerprint)


def _name_and_file(spec: dict[str, Any]) -> tuple[str, str]:
    """The model folder's name and the model file's path inside it (indexes saved before these were recorded
    derive them from the absolute paths)."""
    return spec.get("name") or Path(spec["folder"]).name, spec.get("file") or Path(spec["model_file"]).name


def _locate_model(spec: dict[str, Any], role: str) -> tuple[Path, Path] | str:
    """(folder, model file) of the model that built an index: at its recorded path, else under ``RAPIDRAG_MODELS``
    by its folder's name, checked by fingerprint; or, when neither holds it, what was looked at."""
    from .persist import sha256_file

    name, file = _name_and_file(spec)
    recorded = Path(spec["model_file"])
    if recorded.is_file():
        return Path(spec["folder"]), recorded
    looked = [str(recorded)]
    root = os.environ.get(MODELS_ENV)
    if root:
        candidate = Path(root) / name / file
        looked.append(str(candidate))
        if candidate.is_file():
            if not spec.get("sha256") or sha256_file(candidate) == spec["sha256"]:
                return Path(root) / name, candidate
            looked[-1] += " (a different model: its fingerprint differs)"
    where = " nor ".join(looked) + ("" if root else f" (${MODELS_ENV} is not set)")
    return (
        f"the {role} that built this index ({name}/{file}) is not at {where}: pass --{role} PATH "
        f"(Python: {role}=), or set {MODELS_ENV} to the folder that holds {name}/"
    )


def _open_model(spec: dict[str, Any] | None, given: Any, role: str) -> Any:
    """The model for a loaded index: ``given`` (a model object, or a path or name to open with the recorded
    settings), None, or for "auto" the one recorded in ``spec`` (None, with a warning, when it cannot be found)."""
    if given is None:
        return None
    if isinstance(given, (str, os.PathLike)) and given != "auto":
        return _warn_if_other(_build_model(role, spec, *_model_at(Path(given), spec)), spec, role)
    if given != "auto":
        return _warn_if_other(given, spec, role)
    if spec is None:
        return None
    if "model_file" not in spec:
        warnings.warn(f"this index was built with a custom {role} ({spec['type']}): pass {role}=", stacklevel=3)
        return None
    found = _locate_model(spec, role)
    if isinstance(found, str):
        warnings.warn(found + "; loaded without it", stacklevel=3)
        return None
    model = _build_model(role, spec, *found)
    if spec.get("sha256") and found[1] != Path(spec["model_file"]):
        model._fingerprint = spec["sha256"]  # found by name and checked against it: no second hash at save
    return model


def _warn_if_other(model: Any, spec: dict[str, Any] | None, role: str) -> Any:
    """``model``, with a warning when its weights are not the file that built the index."""
    if spec is not None and spec.get("sha256") and getattr(model, "model_path", None) is not None:
        if _fingerprint(model) != spec["sha256"]:
            warnings.warn(
                f"the {role} given ({model.model_path}) is not the model file that built this index "
                f"({spec.get('model_file')})",
                stacklevel=4,
            )
    return model


def _model_at(path: Path, spec: dict[str, Any] | None) -> tuple[Path, Path]:
    """(folder, model file) for a model given by path: a .onnx file, or a folder (or a name under
    ``RAPIDRAG_MODELS``) in which the recorded file name is taken if present, else the folder's int8 file when the
    recorded one was int8 (a trained folder has ``model_fused_int8.onnx`` where the shared one has
    ``model_int8.onnx``), else ``model.onnx``."""
    from ._onnx import find_model_file, resolve_model

    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"no model file {path}")
        return path.parent, path
    folder = resolve_model(path)
    recorded = folder / _name_and_file(spec)[1] if spec is not None and "model_file" in spec else None
    if recorded is not None and recorded.is_file():
        return folder, recorded
    if recorded is not None and "int8" in recorded.name:
        with contextlib.suppress(FileNotFoundError):
            return folder, find_model_file(folder, True, None)
    return folder, find_model_file(folder, False, None)


def _build_model(role: str, spec: dict[str, Any] | None, folder: Path, model_file: Path) -> Any:
    """An Embedder or Reranker on ``model_file`` with the settings the index recorded."""
    spec = spec or {}
    if role == "embedder":
        from .embedder import Embedder

        pooling: Any = "auto" if spec.get("pooling", "model") == "model" else spec["pooling"]
        kwargs: dict[str, Any] = {"pooling": pooling}
        for name in ("max_length", "normalize"):
            if name in spec:
                kwargs[name] = spec[name]
        return Embedder(folder, model_file=model_file, **kwargs)
    from .reranker import Reranker

    return Reranker(folder, model_file=model_file, max_length=spec.get("max_length"))


def _encode_meta(doc: Document) -> dict[str, Any]:
    """Metadata as JSON: dates and datetimes tagged, numpy scalars as Python numbers; other types refused."""
    out = {}
    for key, value in doc.metadata.items():
        out[str(key)] = _encode_value(value, doc.id, str(key))
    return out


def _encode_value(value: Any, doc_id: str, key: str) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if abs(value) > sys.float_info.max:  # filters compare numbers as float64
            bits = value.bit_length()
            raise ValueError(f"document {doc_id!r}: metadata {key!r} is an int too large for a float64 ({bits} bits)")
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__rapidrag__": "float", "value": repr(value)}
    if isinstance(value, datetime):
        return {"__rapidrag__": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"__rapidrag__": "date", "value": value.isoformat()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, doc_id, key) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode_value(v, doc_id, key) for k, v in value.items()}
    raise TypeError(
        f"document {doc_id!r}: metadata {key!r} is a {type(value).__name__}, which cannot be saved "
        "(use str, numbers, bools, None, dates, lists or dicts)"
    )


def _decode_meta(raw: Any) -> Any:
    if isinstance(raw, list):
        return [_decode_meta(v) for v in raw]
    if isinstance(raw, dict):
        tag = raw.get("__rapidrag__")
        if tag == "datetime":
            return datetime.fromisoformat(raw["value"])
        if tag == "date":
            return date.fromisoformat(raw["value"])
        if tag == "float":
            return float(raw["value"])
        return {k: _decode_meta(v) for k, v in raw.items()}
    return raw


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


def _whole(text: str) -> _Span:
    return _Span(0, len(text))


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
    progress: str | None = None,
    **search_kwargs: Any,
) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 over the queries that have judgements (BEIR protocol: graded gains,
    log2 discount, relevance > 0 counts as relevant). ``progress``: a label for a progress bar on stderr (drawn
    when it is a terminal)."""
    rows = []
    depth = max(100, k)
    judged = [(qid, rel) for qid, rel in qrels.items() if qid in queries]
    show = None if progress else False
    with Progress(len(judged), progress or "", unit="queries", enabled=show, erase=True) as bar:
        for done, (qid, rel) in enumerate(judged, 1):
            hits = retriever.search(queries[qid], k=depth, candidates=depth, **search_kwargs)
            rows.append(query_metrics([h.doc_id for h in hits], rel))
            bar.update(done)
    if not rows:
        raise ValueError("none of the judged queries is among the queries given")
    return {name: float(np.mean([r[name] for r in rows])) for name in ("ndcg@10", "recall@100", "mrr@10")}


def query_metrics(ranked: Sequence[str], rel: Mapping[str, int]) -> dict[str, float]:
    """nDCG@10, recall@100 and MRR@10 of one ranked list of document ids against its judgements."""
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
    relevant = {d for d, g in rel.items() if g > 0}
    return {
        "ndcg@10": dcg / ideal if ideal > 0 else 0.0,
        "recall@100": len(relevant & set(ranked[:100])) / len(relevant) if relevant else 0.0,
        "mrr@10": next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0),
    }
