"""The stages of a search over chunk rows, shared by every kind of index: the arguments checked, the query embedded,
the first stages (lexical, dense) asked of the index, fused, the best row of each document, the reranker within
the time budget, the hits with their citations.

``Searcher`` holds these stages and the search settings; an index supplies its rows through four hooks:
``_has_vectors`` and ``_dense_is_exact`` (what it holds), ``_select`` (a metadata filter made ready to apply),
``_first_stages`` (each stage's best rows and scores, with the document of each row) and ``_found`` (what the
reranker and the hits need of some rows). ``Retriever`` is one index in this process; an index split in shards
answers the same hooks from its shards.

The module runs past 500 lines because it also holds what every kind of index shares around a search: the
search settings and their checks, ``context``, and ``reload`` (a copy moved to its folder's newest snapshot).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol
from unicodedata import category

import numpy as np

from .chunks import first_of_each
from .documents import Hit, SearchResult
from .errors import IndexConflictError, IndexOptionError
from .fusion import reciprocal_rank_fusion, rerank_mix, weighted_fusion
from .locking import RWLock
from .persist import Lineage, current_generation
from .store import model_name

__all__ = [
    "BUDGET_RESERVE_MS",
    "DEFAULT_RERANK_WEIGHT",
    "EmbedderLike",
    "Found",
    "Mode",
    "RerankerLike",
    "Searcher",
    "Stages",
    "check_index",
    "check_query",
]

if TYPE_CHECKING:
    from .context import Context
    from .tokenizer import Tokenizer

Mode = Literal["hybrid", "dense", "lexical"]


class EmbedderLike(Protocol):
    """What the retriever needs of an embedder: ``rapidrag.Embedder``, or one of your own."""

    dim: int
    max_length: int
    tokenizer: Tokenizer

    def embed(self, texts: list[str], *, batch_size: int = ...) -> np.ndarray: ...


class RerankerLike(Protocol):
    """What the retriever needs of a reranker: ``rapidrag.Reranker``, or one of your own (``budget_ms``: the
    scores it had no time for are NaN, after those it gave, in the order given)."""

    def score(self, query: str, passages: list[str], *, budget_ms: float | None = ...) -> np.ndarray: ...


class Found(NamedTuple):
    """A candidate row as the reranker and the hits see it: its document's id and metadata, its chunk number, span
    and text (what a shard sends of a row: a chunk's text, not its whole document)."""

    doc_id: str
    metadata: dict[str, Any]
    chunk: int
    start: int
    end: int
    text: str


# A Found as the plain tuple of its fields, as a shard sends it: a plain tuple pickles about 6x faster than a named
# one (whose pickling calls back into Python for each), and the coordinator names only the few rows it uses.
FoundFields = tuple[str, dict[str, Any], int, int, int, str]


# The reranker's share when nothing chose one: fused with the first-stage score, since a reranker's order alone
# can be worse than the first stage's (the shared cross-encoder's is, on SciFact). Chosen on SciFact train by
# benchmarks/rerank_default.py: of the shares that gain over hybrid whatever number of candidates a budget lets
# the reranker score, the one with the largest mean gain (BENCHMARKS.md, "The default rerank share").
DEFAULT_RERANK_WEIGHT = 0.5
BUDGET_RESERVE_MS = 1.0  # of a search's budget_ms, kept for the work after the reranker


def check_query(query: str) -> None:
    """Refuse an empty or blank query, or one of only control and format characters (ValueError): the tokenizers
    drop those, and searching for nothing returns arbitrary hits."""
    if not query.strip():
        raise ValueError(f"the query is {'empty' if not query else 'blank'}: give the words to search for")
    if (not query.isprintable() or "\ufffd" in query) and all(
        c.isspace() or c == "\ufffd" or category(c) in ("Cc", "Cf") for c in query
    ):
        raise ValueError("the query has only control or format characters: give the words to search for")


@dataclass
class Stages:
    """The first stages of one search: each stage's rows and scores, best first, by name ("bm25", "dense"; the
    search adds "fused" and "rerank"), and the document of each row (a number shared by a document's rows)."""

    lists: dict[str, tuple[np.ndarray, np.ndarray]]
    document_of: Callable[[np.ndarray], np.ndarray]
    per_document: bool = False  # each list holds at most one row of a document (its best)
    missing: list[int] = field(default_factory=list)  # shards of a split index that could not answer
    found: dict[int, FoundFields] = field(default_factory=dict)  # rows whose Found came with the stages (a split index)


class Searcher:
    """The stages of a search (see the module's docstring); subclasses set the settings below in their
    constructor and implement the hooks."""

    embedder: EmbedderLike | None
    reranker: RerankerLike | None
    fusion: Literal["rrf", "weighted"]
    weights: tuple[float, float]
    rrf_k: float
    rerank_weight: float | None
    rerank_depth: int
    tuned_on: dict[str, Any] | None
    _lock: RWLock
    _changes: int  # changes made (a batch added or replaced, a delete that removed documents, a change of settings)
    _saved_changes: int  # how many of them the last save holds
    # What a reload keeps of this copy: its locks, the generations it knows (the rest comes from the new snapshot).
    _KEPT_BY_RELOAD = frozenset({"_lock", "_lineage", "_reloading"})

    def __init__(self) -> None:
        self._lineage = Lineage()  # the generations of the folders this copy loaded or saved (``rapidrag.persist``)
        self._opened_with: dict[str, Any] = {}  # set by load: what it was given (a reload opens as it did)
        # Reloads take turns: two at once would both open the snapshot, and the one that opened an older snapshot
        # could take it after the other took a newer one.
        self._reloading = threading.Lock()

    @property
    def unsaved_changes(self) -> int:
        """Changes (a batch added or replaced, a delete that removed documents, a change of settings) since the
        index was made, loaded or last saved: 0 when its last save holds all of it."""
        return self._changes - self._saved_changes

    @property
    def generation(self) -> str | None:
        """The saved snapshot this copy holds, as the generation its folder's manifest names (the folder it was
        last loaded from or saved to); None for an index never loaded or saved."""
        return self._lineage.generation

    def reload(self, path: str | os.PathLike[str] | None = None, *, discard: bool = False) -> bool:
        """Open again the folder this index was loaded from or last saved to (or ``path``) if another writer has
        saved a newer snapshot there since (``rapidrag index --update``, ``rapidrag tune``, another service), and
        search that from now on; returns whether it did (False: this copy holds that snapshot already).

        The models and the search settings this copy was opened with are kept (``index_options`` given to
        ``load``); the documents, indexes and tuned weights are the snapshot's. Searches go on with the old
        snapshot while the new one loads, and move to it at once. Refused with IndexConflictError while this copy
        has changes no save holds (``unsaved_changes``), which a reload would drop, unless ``discard``; a
        snapshot built with another embedder is refused (ModelError): open it anew. Reloads of one copy take turns:
        one asked for during another waits for it, then takes a snapshot saved meanwhile or returns False.
        """
        where = Path(path) if path is not None else self._lineage.origin
        if where is None:
            raise ValueError("this index was never loaded or saved: pass the folder to reload from")
        with self._reloading:  # (a reload beside it waits, then finds the snapshot it took already held)
            return self._reload(where, discard)

    def _reload(self, where: Path, discard: bool) -> bool:
        now = current_generation(where)
        if now is None:
            raise FileNotFoundError(f"{where}: no saved index to reload")
        if self._lineage.holds(where, now):
            return False
        changes = self._changes
        if changes != self._saved_changes and not discard:
            raise self._reload_conflict(where, changes - self._saved_changes)
        from .process import freeze_reloaded, prompt_switching

        with prompt_switching():  # (searches beside it get the GIL back sooner)
            fresh = self._reopen(where)  # (a corrupted snapshot is an error here, before anything changes)
            with self._lineage.swapping():  # (a save of this copy waits, then expects the new generation)
                self._adopt(fresh, where, changes, discard)
                generation = fresh._lineage.known(where)
                if generation is not None:
                    self._lineage.seen(where, generation)
        freeze_reloaded()
        return True

    @staticmethod
    def _reload_conflict(where: Path, count: int) -> IndexConflictError:
        return IndexConflictError(
            f"{where}: a newer snapshot was saved there, and this index has {count} change{'s' * (count != 1)} that "
            "no save holds, which a reload would drop. Save them to another folder first, or reload with "
            "discard=True"
        )

    def _reopen(self, path: Path) -> Searcher:
        """The snapshot at ``path`` opened as ``load`` opened this copy: the same models, the same options."""
        raise NotImplementedError

    def _reopened(self, load: Callable[..., Searcher], path: Path, **options: Any) -> Searcher:
        """``load(path, embedder=..., reranker=..., **options)`` given this copy's models (a model it was opened
        without, None, stays out; one it could not find is looked for again); a snapshot whose embedder is not
        this copy's is refused, since the vectors it holds would not compare with this copy's queries."""
        import warnings

        from .errors import ModelError, ModelMismatchWarning

        asked = self._opened_with
        models: dict[str, Any] = {}
        for role in ("embedder", "reranker"):
            mine = getattr(self, role)
            models[role] = None if asked.get(role, "auto") is None else mine if mine is not None else "auto"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fresh = load(path, **models, **options)
        for w in caught:
            if isinstance(w.message, ModelMismatchWarning) and w.message.role == "embedder":
                raise ModelError(f"{path}: the snapshot was built by another embedder ({w.message}); open it anew")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return fresh

    def _adopt(self, fresh: Searcher, where: Path, changes: int, discard: bool) -> None:
        """Take the state of ``fresh`` (a copy of ``where`` just opened by ``_reopen``) in one step under the write
        lock; refused if a change was made since ``changes`` were counted, unless ``discard``."""
        taken = {name: value for name, value in vars(fresh).items() if name not in self._KEPT_BY_RELOAD}
        with self._lock.write():
            if self._changes != changes and not discard:
                raise self._reload_conflict(where, self._changes - self._saved_changes)
            # The old state is let go after the lock, one part at a time: freeing a 126k-passage index's documents,
            # ids and indexes takes about 20 ms, the GIL held throughout if it went in one piece.
            old = {name: getattr(self, name, None) for name in taken}
            for name, value in taken.items():
                setattr(self, name, value)
        for name in list(old):
            del old[name]

    def missing_shards(self) -> list[int]:
        """The shards of a split index that have no live replica now (``ShardedRetriever``); one index: none."""
        return []

    @staticmethod
    def _no_dense_index() -> IndexOptionError:
        """What ``set_index_options`` raises on a lexical-only index: index options set the dense index."""
        return IndexOptionError("index options set the dense index, and this index is lexical only")

    def filter_notes(self, filter: Mapping[str, Any]) -> list[str]:
        """Why ``filter`` may select less than meant (``rapidrag.filters.filter_notes``): a field that no document
        has, a value of a kind its field never holds. Empty when neither. ``rapidrag query`` and the HTTP service
        give them with a filtered search that found fewer hits than asked."""
        from .filters import filter_notes

        return filter_notes(filter, self.metadata_kinds())

    # -- hooks ---------------------------------------------------------------------------------------------------

    def metadata_kinds(self) -> dict[str, set[str]]:
        """Each metadata field's kinds of value ever given (``MetadataIndex.kinds``)."""
        raise NotImplementedError

    @property
    def _has_vectors(self) -> bool:
        raise NotImplementedError

    @property
    def _dense_is_exact(self) -> bool:
        """Whether dense search is exact (a flat index), so that a short list of it is the start of a long one."""
        raise NotImplementedError

    @property
    def _one_row_per_document(self) -> bool:
        """Whether no document has more than one row, so that a ranked list of rows is one per document (read
        under the read lock; an index that does not know says False)."""
        return False

    def _select(self, filter: Mapping[str, Any] | None) -> Any:
        """``filter`` made ready for ``_first_stages`` (under the read lock)."""
        raise NotImplementedError

    def _first_stages(
        self,
        query: str,
        qv: np.ndarray | None,
        mode: Mode,
        selection: Any,
        fetch: int,
        timings: dict[str, float],
        *,
        want: int = 0,
        per_document: bool = False,
    ) -> Stages:
        """Each first stage's ``fetch`` best rows allowed by ``selection`` (under the read lock). ``want``: the hits
        will need ``_found`` of about this many best rows; an index whose rows are far away may send theirs along
        (``Stages.found``). ``per_document`` (asked of a lexical search only): the best row of each document, the
        ``fetch`` best of those (``Stages.per_document`` says whether it was done)."""
        raise NotImplementedError

    def _found(self, rows: np.ndarray) -> dict[int, Found]:
        """What the reranker and the hits need of ``rows`` (under the read lock)."""
        raise NotImplementedError

    def _use_settings(self, settings: Mapping[str, Any]) -> None:
        """(``configure``, under the write lock, the values checked) keep the search settings ``settings`` names:
        ``title_weight``, ``fusion``, ``weights``, ``rerank_weight`` (None too) and ``rerank_depth``; BM25's ``k1``
        and ``b`` are the index's own to place."""
        for name, value in settings.items():
            if name == "weights":
                value = (float(value[0]), float(value[1]))
            elif name in ("title_weight", "rerank_weight") and value is not None:
                value = float(value)
            if name not in ("k1", "b"):
                setattr(self, name, value)

    # -- the stages ----------------------------------------------------------------------------------------------

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
        return "hybrid" if self._has_vectors and self.embedder is not None else "lexical"

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
        and its embedder, else lexical). ``rerank``: None = rerank when a reranker is set.

        The stages: the query embedded (outside the lock); the first stages and their fusion under the read lock
        (other searches run alongside, a change waits); the reranker within what is left of ``budget_ms``; the
        hits."""
        started = time.perf_counter()
        mode, use_reranker = self._check_search(query, k, mode, rerank, candidates, budget_ms)
        timings: dict[str, float] = {}
        qv = None
        if mode != "lexical" and self.embedder is not None:  # (_check_search refused the mode without one)
            clock = time.perf_counter()
            qv = self.embedder.embed([query])
            timings["embed_ms"] = (time.perf_counter() - clock) * 1000
        # Rows each first stage fetches: enough for ``candidates`` documents of a few chunks each. One exact stage
        # without a reranker (BM25, whose lists are by score then row, or a flat dense index) needs only ``k``
        # documents: a short list is the start of a long one, and it is fetched again longer if they run short
        # (``k`` rows are ``k`` documents when BM25 keeps the best row of each, or each has one row).
        exact = mode == "lexical" or (mode == "dense" and self._dense_is_exact)
        shallow = exact and not use_reranker
        wanted = min(k, candidates) if shallow else max(candidates, k)
        grouped = shallow and per_document and mode == "lexical"
        one_each = grouped or (shallow and self._one_row_per_document)
        fetch = wanted * (4 if per_document and not one_each else 1)
        needed = max(k, self.rerank_depth if use_reranker else 0)
        with self._lock.read():
            clock = time.perf_counter()
            selection = self._select(filter)
            timings["filter_ms"] = (time.perf_counter() - clock) * 1000
            while True:
                stages = self._first_stages(
                    query, qv, mode, selection, fetch, timings, want=needed, per_document=grouped
                )
                clock = time.perf_counter()
                ranked, final = self._fuse(stages, candidates, per_document)
                if not shallow or len(ranked) >= wanted or len(next(iter(stages.lists.values()))[0]) < fetch:
                    break
                fetch *= 4
            # What the hits (and the reranker) need, taken while the index cannot change.
            found = self._found_of(ranked[:needed], stages.found)
            timings["fusion_ms"] = (time.perf_counter() - clock) * 1000
        if use_reranker:
            clock = time.perf_counter()
            ranked, final = self._rerank(query, ranked, final, found, stages, started, budget_ms)
            timings["rerank_ms"] = (time.perf_counter() - clock) * 1000
        hits = self._hits(ranked[:k], final[:k], found, stages.lists)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return SearchResult(hits, timings, missing_shards=stages.missing)

    def context(
        self,
        query: str,
        budget_tokens: int,
        *,
        k: int = 20,
        mode: Mode | None = None,
        filter: Mapping[str, Any] | None = None,
        rerank: bool | None = None,
        candidates: int = 100,
        budget_ms: float | None = None,
        per_document: bool = False,
        **options: Any,
    ) -> Context:
        """The generator's context for ``query``: the ``k`` best hits of a search (several chunks of one document
        allowed, so that neighbours merge), packed into ``budget_tokens`` tokens with citations by
        ``rapidrag.context.pack`` (``options`` are its settings: ``strategy``, ``tokenizer``, ``order`` ...)."""
        from .context import pack

        result = self.search(
            query,
            k,
            mode=mode,
            filter=filter,
            rerank=rerank,
            candidates=candidates,
            budget_ms=budget_ms,
            per_document=per_document,
        )
        return pack(result, budget_tokens, source=self, query=query, **options)

    def _found_of(self, rows: np.ndarray, known: dict[int, FoundFields]) -> dict[int, Found]:
        """``_found`` of ``rows``, those that came with the stages taken from there."""
        if not known:
            return self._found(rows)
        found = {r: Found._make(known[r]) for r in rows.tolist() if r in known}
        rest = np.asarray([r for r in rows.tolist() if r not in found], dtype=np.int64)
        if len(rest):
            found.update(self._found(rest))
        return found

    def _check_search(
        self, query: Any, k: Any, mode: Any, rerank: Any, candidates: Any, budget_ms: Any
    ) -> tuple[Mode, bool]:
        """The arguments of ``search`` checked: (the mode, whether to rerank)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        check_query(query)
        mode = self.default_mode if mode is None else mode
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'lexical', got {mode!r}")
        if mode != "lexical" and not self._has_vectors:
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
        return mode, use_reranker

    def _fuse(self, stages: Stages, candidates: int, per_document: bool) -> tuple[np.ndarray, np.ndarray]:
        """The candidates, best first, as (rows, float64 scores): the first stages fused (or the one there is;
        the fusion goes into ``stages.lists["fused"]``), the best row of each document unless ``per_document`` is
        False, the first ``candidates``."""
        lists = list(stages.lists.values())
        if len(lists) == 2:
            if self.fusion == "rrf":
                rows, fused = reciprocal_rank_fusion([lists[0][0], lists[1][0]], rrf_k=self.rrf_k, weights=self.weights)
            else:
                rows, fused = weighted_fusion(lists, weights=self.weights)
            stages.lists["fused"] = (rows, fused)
        else:
            rows, fused = lists[0]
        if per_document and not (stages.per_document or self._one_row_per_document):
            order = first_of_each(stages.document_of(rows))[:candidates]
            return rows[order], fused[order].astype(np.float64)
        return rows[:candidates], fused[:candidates].astype(np.float64)

    def _rerank(
        self,
        query: str,
        ranked: np.ndarray,
        final: np.ndarray,
        found: dict[int, Found],
        stages: Stages,
        started: float,
        budget_ms: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The candidates reordered by the reranker's scores of the first ``rerank_depth`` of them mixed with the
        first-stage scores (``fusion.rerank_mix``), within what is left of ``budget_ms``; its scores go into
        ``stages.lists["rerank"]``. Out of time, the reranker scores a prefix of the candidates, or none."""
        n_rerank = min(self.rerank_depth, len(ranked))
        # What is left of the budget, less a reserve for building the hits after the reranker.
        left = None if budget_ms is None else budget_ms - (time.perf_counter() - started) * 1000 - BUDGET_RESERVE_MS
        if not n_rerank or (left is not None and left <= 0) or self.reranker is None:
            return ranked, final
        texts = [found[r].text for r in ranked[:n_rerank].tolist()]
        raw = self.reranker.score(query, texts, budget_ms=left)
        done = ~np.isnan(raw)
        n = int(done.sum())
        if not done[:n].all():
            raise AssertionError("the reranker scored candidates out of the order given")
        if not n:
            return ranked, final
        stages.lists["rerank"] = (ranked[:n], raw[:n])
        order, final = rerank_mix(raw[:n], final, self.effective_rerank_weight)
        return ranked[order], final

    def _hits(
        self,
        rows: np.ndarray,
        scores: np.ndarray,
        found: dict[int, Found],
        stages: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> list[Hit]:
        """The hits of ``rows``, each with the score of every stage that ranked it."""
        if len(stages) == 1:  # one stage, not reranked: its scores are the hits' scores
            name = next(iter(stages))
            return [
                Hit._new(f.doc_id, f.chunk, f.text, f.start, f.end, score, {name: score}, f.metadata)
                for f, score in zip([found[r] for r in rows.tolist()], scores.tolist(), strict=True)
            ]
        by_stage: list[tuple[str, list[bool], list[float]]] = []
        for name, (stage_rows, stage_values) in stages.items():
            if len(stage_rows):
                match = stage_rows[None, :] == rows[:, None]  # a few hits against a few hundred rows
                found_at = stage_values[match.argmax(axis=1)].tolist()
                by_stage.append((name, match.any(axis=1).tolist(), found_at))
        hits = []
        for i, (r, score) in enumerate(zip(rows.tolist(), scores.tolist(), strict=True)):
            f = found[r]
            stage = {name: values[i] for name, has, values in by_stage if has[i]}
            hits.append(Hit._new(f.doc_id, f.chunk, f.text, f.start, f.end, score, stage, f.metadata))
        return hits


def check_index(retriever: Any) -> Any:
    """``retriever`` if it is an index to search (a ``rapidrag.Retriever``, or a
    ``rapidrag.distributed.ShardedRetriever``: the same search), else a TypeError naming what was given."""
    if not isinstance(retriever, Searcher):
        raise TypeError(
            "retriever must be a rapidrag.Retriever or a rapidrag.distributed.ShardedRetriever, not "
            f"{type(retriever).__name__}"
        )
    return retriever
