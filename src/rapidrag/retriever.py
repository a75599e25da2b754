"""The Retriever: chunked documents in a BM25 index and a FAISS index, searched with in-search metadata filters,
fused, and optionally reranked within a time budget.

Every indexed unit is a chunk of a document (a "row"); a document that fits the chunk size is one chunk. Searches
return one hit per document (its best chunk) unless ``per_document=False``.

This module is one index in this process: the ``Retriever`` (adding and deleting documents around one
readers-writer lock, and the rows its searches start from: the hooks of ``search.Searcher``, which holds the
stages of a search) and the checks of its settings. What it uses lives in documents, chunks, lexical, dense,
filters, store and metrics. It runs to about 700 lines with the calls a shard of a split index answers
(``statistics``, ``shard_stages``, ``shard_found``), which read the same rows under the same lock.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import store
from .chunks import ChunkTable, check_spans, document_spans
from .dense import DenseIndex, check_options
from .documents import Document, DocumentList, Hit, SearchResult, check_documents, check_same_text
from .errors import IndexOptionError
from .filters import MetadataIndex
from .lexical import BM25, Statistics
from .locking import RWLock
from .metrics import evaluate, query_metrics
from .progress import Progress
from .search import (
    DEFAULT_RERANK_WEIGHT,
    EmbedderLike,
    Found,
    FoundFields,
    Mode,
    RerankerLike,
    Searcher,
    Stages,
    check_query,
)
from .store import FORMAT_VERSION, MODELS_ENV, model_name

if TYPE_CHECKING:
    from .chunker import Chunker

# Document, Hit, SearchResult, evaluate, query_metrics, check_query and DEFAULT_RERANK_WEIGHT are imported here
# too, for code written against this module.
__all__ = [
    "check_query",
    "DEFAULT_RERANK_WEIGHT",
    "FORMAT_VERSION",
    "MODELS_ENV",
    "Document",
    "Hit",
    "Retriever",
    "SearchResult",
    "evaluate",
    "model_name",
    "query_metrics",
]

PROGRESS_MIN_DOCUMENTS = 5_000


class Retriever(Searcher):
    """Lexical, dense and hybrid search over chunked documents.

    Parameters
    ----------
    embedder : rapidrag.Embedder, optional
        Without one the retriever is lexical only.
    reranker : rapidrag.Reranker, optional
    chunker : rapidrag.Chunker, optional
        Default: chunks of the embedder's window (``max_length`` - 2 tokens); without an embedder, no chunking.
    index : "flat", "hnsw" or "ivfpq"
    index_options : settings of the dense index (``rapidrag.dense.OPTIONS``: ``ef_search``, ``hnsw_m``,
        ``ef_construction``, ``nprobe``, ``nlist``, ``pq_m``, ``refine``, ``exact_fraction``, ``exact_rows``,
        ``n_threads``; see ``DenseIndex``), saved with the index. A search-time one (``ef_search``, ``nprobe``,
        ``refine``, ``exact_*``) can be changed later on ``retriever.dense``.
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
        embedder: EmbedderLike | None = None,
        reranker: RerankerLike | None = None,
        chunker: Chunker | None = None,
        *,
        index: Literal["flat", "hnsw", "ivfpq"] = "flat",
        index_options: Mapping[str, Any] | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        title_weight: float = 0.0,
        fusion: Literal["rrf", "weighted"] = "rrf",
        weights: tuple[float, float] = (1.0, 1.0),
        rrf_k: float = 60.0,
        rerank_weight: float | None = None,
        rerank_depth: int = 20,
    ) -> None:
        super().__init__()
        _check_settings(
            title_weight=title_weight,
            fusion=fusion,
            weights=weights,
            rerank_weight=rerank_weight,
            rerank_depth=rerank_depth,
        )
        self.embedder: EmbedderLike | None = embedder
        self.reranker: RerankerLike | None = reranker
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
        self.bm25 = BM25(k1=k1, b=b, keyed=False)  # every index is keyed by the chunk table's rows
        self.title_weight = float(title_weight)
        self.bm25_title = BM25(k1=k1, b=b, keyed=False) if self.title_weight > 0 else None
        options = check_options(index_options)
        if options and embedder is None:
            raise IndexOptionError("index_options set the dense index: a retriever without an embedder has none")
        self.dense = DenseIndex(embedder.dim, index, **options) if embedder is not None else None
        self.metadata = MetadataIndex()
        self.fusion, self.weights, self.rrf_k = fusion, (float(weights[0]), float(weights[1])), rrf_k
        self.rerank_weight, self.rerank_depth = rerank_weight, rerank_depth
        self._chunks = ChunkTable()  # per row: its document's number (-1: deleted), chunk number, span
        self._documents = DocumentList()  # by number (None: deleted)
        self._doc_rows: list[range] = []  # by number: the document's rows (added together, so contiguous)
        self._docs: dict[str, int] = {}  # id -> number, of the live documents
        self._lock = RWLock()
        self._changes = self._saved_changes = 0  # changes made, and how many of them the last save holds
        self._model_specs: dict[str, Any] = {}  # set by load: the models recorded in the index
        # Which judgements chose the weights (set by ``rapidrag tune``; kept by save): {"qrels", "sha256", ...}.
        self.tuned_on: dict[str, Any] | None = None

    _UNSET: Any = object()

    def configure(
        self,
        *,
        k1: float | None = None,
        b: float | None = None,
        title_weight: float | None = None,
        fusion: Literal["rrf", "weighted"] | None = None,
        weights: tuple[float, float] | None = None,
        rerank_weight: Any = _UNSET,
        rerank_depth: int | None = None,
    ) -> None:
        """Change search settings after indexing (what ``rapidrag tune`` tries), checked as the constructor checks
        them; None (for ``rerank_weight``: left out) keeps a setting. The title field's weight can change (0 turns
        it off), not whether the index has one (that is fixed when documents are indexed)."""
        settings: dict[str, Any] = {
            "k1": k1, "b": b, "title_weight": title_weight, "fusion": fusion, "weights": weights,
            "rerank_depth": rerank_depth,
        }  # fmt: skip
        if rerank_weight is not Retriever._UNSET:
            settings["rerank_weight"] = rerank_weight
        given = checked_configure(self, settings)
        with self._lock.write():
            self._changes += 1
            for index in (self.bm25, self.bm25_title):
                if index is not None:
                    index.k1 = float(given.get("k1", index.k1))
                    index.b = float(given.get("b", index.b))
            self._use_settings(given)

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        with self._lock.read():  # (a reload replaces both tables)
            return self._get(doc_id)

    def _get(self, doc_id: str) -> Document | None:
        number = self._docs.get(doc_id)
        return self._documents[number] if number is not None else None

    def get_many(self, ids: Iterable[str]) -> list[Document | None]:
        """``get`` for each of ``ids``, in their order (None for an id not indexed)."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        with self._lock.read():
            return [self._get(doc_id) for doc_id in ids]

    def ids(self) -> list[str]:
        """The ids of the indexed documents, in the order they were indexed."""
        with self._lock.read():
            return list(self._docs)

    @property
    def n_chunks(self) -> int:
        """Indexed chunks of the live documents."""
        return len(self.bm25)

    @property
    def has_title_field(self) -> bool:
        """Whether BM25 has a title field (made when the documents are indexed with ``title_weight`` > 0)."""
        return self.bm25_title is not None

    def metadata_kinds(self) -> dict[str, set[str]]:
        with self._lock.read():
            return self.metadata.kinds()

    @property
    def removed_vectors(self) -> int:
        """Vectors of deleted chunks that the dense index still holds and skips (an HNSW index's until
        ``compact()``, a flat index's until it drops them in a batch); 0 without vectors."""
        return int(self.dense.dead) if self.dense is not None else 0

    @property
    def index_options(self) -> dict[str, Any]:
        """The dense index's settings, those its kind uses (``DenseIndex.options``); empty without vectors."""
        return self.dense.options() if self.dense is not None else {}

    def set_index_options(self, **options: Any) -> dict[str, Any]:
        """Change the dense index's search settings while it serves (``DenseIndex.set_options``: ``ef_search``,
        ``compact_fraction``, ``nprobe``, ``refine``, ``exact_fraction``, ``exact_rows``, ``n_threads``; all
        checked before any changes, a build setting refused by name); a save keeps them. Returns the settings
        now in use (``index_options``)."""
        if self.dense is None:
            raise self._no_dense_index()
        self.dense.set_options(**options)
        with self._lock.write():
            self._changes += 1
        return self.index_options

    # -- changes -------------------------------------------------------------------------------------------------

    def add(
        self,
        documents: Iterable[Any],
        *,
        batch_size: int | None = None,
        progress: bool | None = None,
        _replace: bool = False,
    ) -> int:
        """Index documents (Document, {"id", "text", "metadata"} or BEIR dicts); returns the chunks added.

        Every document is checked before any is indexed. Documents are then chunked, embedded and indexed in
        batches, each visible to searches once indexed. ``batch_size``: texts per embedder run (None: the
        embedder's default, ``rapidrag.embedder.BATCH_SIZE``). ``progress``: a progress bar on stderr (None: for adds
        of at least 5,000 documents when stderr is a terminal).
        """
        docs = check_documents(documents)
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

    def add_embedded(
        self, documents: Iterable[Any], spans: np.ndarray, row_splits: np.ndarray, vectors: Any = None
    ) -> int:
        """Index documents chunked and embedded elsewhere (a pipeline's workers: ``rapidrag.ray_ingest``); returns
        the chunks added. The index is then what ``add`` makes of the same documents with the same chunker and
        embedder: the same rows, BM25 and metadata, and these vectors.

        Parameters
        ----------
        documents : as for ``add``; every one checked, and an id already indexed refused (nothing is indexed).
        spans : int64 [n_chunks, 2] (start, end: ``str`` indices into the document's text), or [n_chunks, 3] as
            ``Chunker.spans_batch`` gives them (the token counts are not needed once embedded).
        row_splits : int64 [len(documents) + 1]: document i's chunks are ``spans[row_splits[i]:row_splits[i+1]]``;
            each document has at least one chunk (an empty text is one empty chunk, as ``add`` indexes it).
        vectors : float32 [n_chunks, dim], the chunks' embeddings; required when the index has vectors, None when
            it is lexical only.
        """
        docs = check_documents(documents)
        checked, splits = check_spans([d.text for d in docs], spans, row_splits)
        if self.dense is None:
            if vectors is not None:
                raise ValueError("this index is lexical only: vectors must be None")
        else:
            if not isinstance(vectors, np.ndarray):
                raise TypeError(f"vectors must be a float32 numpy array [n_chunks, dim], not {type(vectors).__name__}")
            if vectors.dtype != np.float32:
                raise TypeError(f"vectors must be float32, got {vectors.dtype} (convert with .astype(np.float32))")
            if vectors.shape != (len(checked), self.dense.dim):
                raise ValueError(
                    f"vectors must be [{len(checked)}, {self.dense.dim}] (chunks, dim), got {vectors.shape}"
                )
            if not np.isfinite(vectors).all():
                raise ValueError("vectors hold NaN or infinite values")
            vectors = np.ascontiguousarray(vectors)
        taken = [d.id for d in docs if d.id in self._docs]
        if taken:
            raise ValueError(f"documents already indexed: {taken[:5]}; use upsert to replace them")
        return self._store(docs, checked, splits, vectors, replace=False)

    def _add_batch(self, docs: list[Document], batch_size: int | None, replace: bool) -> int:
        spans, row_splits = document_spans(self.chunker, [d.text for d in docs])
        vectors = None
        if self.embedder is not None:
            texts = _chunk_texts(docs, spans, row_splits)
            # The chunker's token counts order the batches (no second count), for an embedder that takes them.
            given: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
            if self.chunker is not None and "lengths" in inspect.signature(self.embedder.embed).parameters:
                given["lengths"] = spans[:, 2]
            vectors = self.embedder.embed(texts, **given)
        return self._store(docs, spans, row_splits, vectors, replace)

    def _store(
        self, docs: list[Document], spans: np.ndarray, row_splits: np.ndarray, vectors: np.ndarray | None, replace: bool
    ) -> int:
        """Index ``docs`` whose chunks (``spans`` [n_chunks, >= 2], ``row_splits``) and their ``vectors`` are
        known, under the write lock: the one path by which rows enter the index (``add`` and ``add_embedded``)."""
        counts = np.diff(row_splits)
        owner = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
        chunk = np.arange(len(owner), dtype=np.int64) - np.repeat(row_splits[:-1], counts)
        start, end = spans[:, 0], spans[:, 1]
        texts = _chunk_texts(docs, spans, row_splits)
        with self._lock.write():
            changes = self._changes  # (a batch replaced is one change, its delete included)
            if replace:
                self.delete([d.id for d in docs])
            else:
                taken = [d.id for d in docs if d.id in self._docs]
                if taken:
                    raise ValueError(f"documents already indexed (meanwhile, by another thread): {taken[:5]}")
            first_number = len(self._documents)
            rows = self._chunks.append(owner + first_number, chunk, start, end)
            if self.bm25.add_rows(texts) != rows:
                raise AssertionError("BM25 rows out of step with the chunk table")
            if self.bm25_title is not None:
                self.bm25_title.add_rows([docs[o].title for o in owner.tolist()])
            if self.dense is not None and vectors is not None:
                # A chunk with no text (an empty document) gets no vector: the embedding of nothing would come up
                # in dense searches as a hit with no text. ``get`` still returns its document.
                texted = np.fromiter((not t.isspace() and t != "" for t in texts), dtype=bool, count=len(texts))
                if texted.all():
                    self.dense.add(np.asarray(rows), vectors)
                else:
                    self.dense.add(np.asarray(rows)[texted], vectors[texted])
            self.metadata.add([docs[o].metadata for o in owner.tolist()])
            bounds = (row_splits + rows.start).tolist()
            for k, doc in enumerate(docs):
                self._docs[doc.id] = first_number + k
                self._documents.append(doc)
                self._doc_rows.append(range(bounds[k], bounds[k + 1]))
            self._changes = changes + 1
        return len(rows)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        removed = 0
        with self._lock.write():
            for doc_id in ids:
                number = self._docs.pop(doc_id, None)
                if number is None:
                    continue
                rows = self._doc_rows[number]
                self.bm25.delete_rows(rows)
                if self.bm25_title is not None:
                    self.bm25_title.delete_rows(rows)
                if self.dense is not None:
                    self.dense.remove(np.asarray(rows))
                for r in rows:
                    self.metadata.clear(r)
                self._chunks.kill(rows)
                self._documents[number] = None
                removed += 1
            self._changes += bool(removed)
        return removed

    def replace_metadata(self, documents: Iterable[Any]) -> int:
        """Give indexed documents new metadata without indexing their text again (no chunking, no embedding):
        filters and hits see it at once. Each document's id must be indexed with the same text and title (else
        ValueError, and nothing changes; ``upsert`` replaces a text). Returns how many documents changed."""
        docs = check_documents(documents)
        with self._lock.write():
            numbers: list[int] = []
            for doc in docs:
                number = self._docs.get(doc.id, -1)
                check_same_text(doc, self._documents[number] if number >= 0 else None)
                numbers.append(number)
            for doc, number in zip(docs, numbers, strict=True):
                self.metadata.replace(self._doc_rows[number], doc.metadata)
                self._documents[number] = doc
            self._changes += bool(docs)
        return len(docs)

    def upsert(self, documents: Iterable[Any], *, batch_size: int | None = None, progress: bool | None = None) -> int:
        """Index documents, replacing those already indexed under the same id; returns the chunks added.

        Each batch's old versions are removed and new ones added under one lock: a search sees either."""
        return self.add(documents, batch_size=batch_size, progress=progress, _replace=True)

    def compact(self) -> int:
        """Drop the dense index's deleted rows that it still holds and skips (HNSW keeps them in its graph until
        then, which costs memory and search time, a wider beam or an exact search of the live rows, not results;
        a flat index drops them by itself in batches); a no-op for IVF-PQ, whose deletes remove the vectors.
        Searches and writes go on while HNSW's graph is rebuilt (``DenseIndex.compact``). Returns how many vectors
        it dropped."""
        if self.dense is None or not self.dense.dead:
            return 0
        return self.dense.compact()  # (under the dense index's own lock: the retriever's would hold searches back)

    @property
    def analyzer(self) -> Any:
        """BM25's word analyzer: how the index splits, filters and stems words."""
        return self.bm25.analyzer

    def chunk_vectors(self, keys: Iterable[tuple[str, int]]) -> np.ndarray | None:
        """The stored embeddings of chunks given as (document id, chunk number): float32 [n, dim], a row of NaN
        for a chunk not in the index or without a vector (a chunk with no text has none); None when the index has
        no vectors."""
        if self.dense is None:
            return None
        wanted = list(keys)
        rows = np.full(len(wanted), -1, dtype=np.int64)
        with self._lock.read():
            for i, (doc_id, chunk_id) in enumerate(wanted):
                number = self._docs.get(doc_id)
                if number is not None and 0 <= chunk_id < len(self._doc_rows[number]):
                    rows[i] = self._doc_rows[number][chunk_id]
            out = self.dense.vectors(np.where(rows >= 0, rows, 0), missing=np.nan)  # (a chunk with no text has none)
        out[rows < 0] = np.nan
        return out

    # -- search --------------------------------------------------------------------------------------------------

    # -- the hooks of a search (search.Searcher) -------------------------------------------------------------------

    @property
    def _has_vectors(self) -> bool:
        return self.dense is not None

    @property
    def _dense_is_exact(self) -> bool:
        return self.dense is not None and self.dense.kind == "flat"

    @property
    def _one_row_per_document(self) -> bool:
        return self._chunks.one_per_document

    def _select(self, filter: Mapping[str, Any] | None) -> np.ndarray | None:
        return self.metadata.mask(filter) if filter is not None else None

    def _first_stages(
        self,
        query: str,
        qv: np.ndarray | None,
        mode: Mode,
        selection: np.ndarray | None,
        fetch: int,
        timings: dict[str, float],
        statistics: Mapping[str, Statistics] | None = None,
        *,
        want: int = 0,
        per_document: bool = False,
        terms: list[str] | None = None,
    ) -> Stages:
        """Each first stage's ``fetch`` best rows and their scores, best first, among the rows the mask
        ``selection`` allows ("bm25", "dense"). ``statistics``: BM25's collection statistics to score with, per
        field (a shard's searches use those of the whole index); None: this index's own. ``per_document``: BM25's
        best row of each document only (a lexical search). ``terms``: the query as BM25's analyzer gives it, when
        analysed already (a shard's searches: once by the coordinator)."""
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        per_document = per_document and mode == "lexical"
        if mode in ("lexical", "hybrid"):
            clock = time.perf_counter()
            if terms is None:
                terms = self.bm25.analyzer(query)
            lists["bm25"] = self._lexical(terms, fetch, selection, statistics, per_document)
            timings["lexical_ms"] = (time.perf_counter() - clock) * 1000
        if qv is not None and self.dense is not None:
            clock = time.perf_counter()
            r, sc = self.dense.search(qv, fetch, mask=selection)
            if r[0, -1] >= 0:  # k rows found (FAISS pads the end with -1)
                lists["dense"] = (r[0], sc[0])
            else:
                keep = r[0] >= 0
                lists["dense"] = (r[0][keep], sc[0][keep])
            timings["dense_ms"] = (time.perf_counter() - clock) * 1000
        return Stages(lists, self._chunks.doc.__getitem__, per_document)

    def _found(self, rows: np.ndarray) -> dict[int, Found]:
        """What the reranker and the hits need of ``rows``, read from the chunk table (under the read lock)."""
        new = tuple.__new__  # (a Found from its fields' tuple, past the named tuple's Python-level __new__)
        return {r: new(Found, f) for r, f in self._found_fields(rows).items()}

    def _found_fields(self, rows: np.ndarray) -> dict[int, FoundFields]:
        """``_found`` of ``rows`` as plain tuples (what a shard sends: about half the time of named ones)."""
        table, documents = self._chunks, self._documents
        held = documents.held  # (a list lookup a hit; a document still a saved line is parsed once, here)
        found = {}
        for r, d, c, a, b in zip(
            rows.tolist(),
            table.doc[rows].tolist(),
            table.chunk[rows].tolist(),
            table.start[rows].tolist(),
            table.end[rows].tolist(),
            strict=True,
        ):
            doc = held[d]
            if type(doc) is str:
                doc = documents[d]
            found[r] = (doc.id, doc.metadata, c, a, b, doc.text[a:b])
        return found

    def _lexical(
        self,
        terms: list[str],
        fetch: int,
        mask: np.ndarray | None,
        statistics: Mapping[str, Statistics] | None = None,
        per_document: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 rows and scores for the analysed query ``terms``: the text field, plus the title field times
        ``title_weight`` when there is one (``per_document``: the best row of each document only)."""
        # The retriever's read lock keeps BM25's writers out: its score and top-k methods run without BM25's lock.
        stats = statistics or {}
        scores = self.bm25.score_rows(terms, stats.get("bm25"))
        if self.bm25_title is not None:
            title = self.bm25_title.score_rows(terms, stats.get("bm25_title"))
            title *= np.float32(self.title_weight)  # (both arrays are this search's own)
            scores += title
        return self.bm25.top_rows(scores, fetch, mask=mask, groups=self._chunks.doc if per_document else None)

    # -- as a shard of an index split across processes (rapidrag.distributed) -------------------------------------

    def statistics(self, query: str) -> dict[str, Statistics]:
        """BM25's collection statistics for ``query``, per field ("bm25", and "bm25_title" when the index has a
        title field): summed over the shards of an index, they score each shard as one index over all of them."""
        terms = self.bm25.analyzer(query)
        with self._lock.read():
            out = {"bm25": self.bm25.statistics(terms)}
            if self.bm25_title is not None:
                out["bm25_title"] = self.bm25_title.statistics(terms)
            return out

    def shard_stages(
        self,
        terms: list[str],
        query_vector: np.ndarray | None,
        mode: Mode,
        filter: Mapping[str, Any] | None,
        fetch: int,
        statistics: Mapping[str, Statistics] | None,
        want: int = 0,
        per_document: bool = False,
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], dict[int, FoundFields]]:
        """The first stages of a search as a shard runs them, for the query as BM25's analyzer gives it (``terms``)
        and its vector: per stage, its ``fetch`` best rows, their documents' numbers and their scores (BM25's with
        the whole index's ``statistics``), the filter applied inside; and ``_found`` of each stage's ``want`` best
        rows as plain tuples, which the hits will most likely need (sent along, it saves the coordinator a second
        round trip)."""
        with self._lock.read():
            selection = self._select(filter)
            stages = self._first_stages(
                "", query_vector, mode, selection, fetch, {}, statistics, per_document=per_document, terms=terms
            )
            # Row and document numbers travel as int32 where they fit: 8 bytes a row less in every answer.
            narrow = np.int32 if len(self._chunks) < 2**31 else np.int64
            lists = {
                name: (rows.astype(narrow), self._chunks.doc[rows].astype(narrow), scores)
                for name, (rows, scores) in stages.lists.items()
            }
            if not want:
                return lists, {}
            best = sorted({r for rows, _ in stages.lists.values() for r in rows[:want].tolist()})
            return lists, self._found_fields(np.asarray(best, dtype=np.int64))

    def shard_found(self, rows: np.ndarray) -> list[FoundFields]:
        """What the reranker and the hits need of ``rows`` (rows of a ``shard_stages`` answer), in that order, as
        plain tuples."""
        with self._lock.read():
            found = self._found_fields(np.asarray(rows, dtype=np.int64))
        return [found[r] for r in np.asarray(rows).tolist()]

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the index to the folder ``path``, atomically (see ``rapidrag.persist``); returns the path.

        The folder holds the documents, chunk spans, the BM25 and FAISS indexes, the vectors, the settings and
        which models built it (``load`` reopens them). A save runs while searches continue. A folder this index
        was loaded from or saved to, and that another writer has saved since, is not replaced (IndexConflictError:
        that writer's changes would be lost; ``reload`` takes them) unless ``force``.
        """
        return store.save(self, path, force=force)

    def _save(self, path: str | os.PathLike[str], after_file: Any = None) -> Path:
        return store.save(self, path, after_file=after_file)

    def _reopen(self, path: Path) -> Retriever:
        asked = self._opened_with
        chunker = self.chunker if asked.get("chunker", "auto") != "auto" else "auto"
        out = self._reopened(Retriever.load, path, chunker=chunker, index_options=asked.get("index_options"))
        return out  # type: ignore[return-value]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Any = "auto",
        reranker: Any = "auto",
        chunker: Any = "auto",
        index_options: Mapping[str, Any] | None = None,
    ) -> Retriever:
        """Open an index written by ``save``; searches give the results they gave before the save.

        ``embedder``, ``reranker``: "auto" opens the models that built the index (from the paths it recorded),
        or pass the objects (a different model file gives a warning; a different dimension, an error); a
        reranker can be left out with None. ``chunker``: "auto" rebuilds the recorded chunk settings.
        ``index_options``: search settings of the dense index to use instead of the saved ones (``ef_search``,
        ``nprobe``, ``refine``, ``exact_fraction``, ``exact_rows``, ``n_threads``: ``DenseIndex.set_options``).
        """
        out: Retriever = store.load(
            cls, path, embedder=embedder, reranker=reranker, chunker=chunker, index_options=index_options
        )
        return out

    def __repr__(self) -> str:
        kind = self.dense.kind if self.dense is not None else "lexical only"
        return f"Retriever({len(self)} documents, {len(self._chunks)} chunks, {kind})"


_MISSING: Any = object()
# The search settings ``configure`` changes after indexing (what ``rapidrag tune`` tries).
CONFIGURABLE = frozenset({"k1", "b", "title_weight", "fusion", "weights", "rerank_weight", "rerank_depth"})


def _check_settings(
    *,
    k1: Any = None,
    b: Any = None,
    title_weight: Any = None,
    fusion: Any = None,
    weights: Any = None,
    rerank_weight: Any = _MISSING,
    rerank_depth: Any = None,
) -> None:
    """Refuse a search setting out of range (ValueError naming it); None skips a check."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if k1 is not None and not (number(k1) and k1 > 0):
        raise ValueError(f"k1 must be a number > 0, got {k1!r}")
    if b is not None and not (number(b) and 0 <= b <= 1):
        raise ValueError(f"b must be a number in [0, 1], got {b!r}")
    if fusion is not None and fusion not in ("rrf", "weighted"):
        raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
    if (
        rerank_weight is not _MISSING
        and rerank_weight is not None
        and not (number(rerank_weight) and 0 <= rerank_weight <= 1)
    ):
        raise ValueError(f"rerank_weight must be in [0, 1] or None (the default), got {rerank_weight!r}")
    if title_weight is not None and not (number(title_weight) and title_weight >= 0):
        raise ValueError(f"title_weight must be a number >= 0, got {title_weight!r}")
    if weights is not None and (len(weights) != 2 or any(not number(w) or w < 0 for w in weights)):
        raise ValueError(f"weights must be two numbers >= 0 (lexical, dense), got {weights!r}")
    if rerank_depth is not None and (not isinstance(rerank_depth, int) or rerank_depth < 1):
        raise ValueError(f"rerank_depth must be a positive int, got {rerank_depth!r}")


def checked_configure(index: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a ``configure`` of ``index`` (one index, or one split in shards) is given, checked as the
    constructor checks them: those to change (None keeps a setting; ``rerank_weight=None`` sets it to None). A title
    weight above 0 is refused on an index without a title field, which only indexing makes."""
    given = {name: value for name, value in settings.items() if value is not None or name == "rerank_weight"}
    _check_settings(**given)
    title = given.get("title_weight")
    if title is not None and title > 0 and not index.has_title_field:
        raise ValueError(
            f"title_weight {title!r}: this index has no title field (it is made when indexing, with title_weight > 0)"
        )
    return given


def _chunk_texts(docs: list[Document], spans: np.ndarray, row_splits: np.ndarray) -> list[str]:
    """The chunks' texts: each span sliced from its document's text."""
    owner = np.repeat(np.arange(len(docs), dtype=np.int64), np.diff(row_splits))
    return [
        docs[o].text[a:b] for o, a, b in zip(owner.tolist(), spans[:, 0].tolist(), spans[:, 1].tolist(), strict=True)
    ]
