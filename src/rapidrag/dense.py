"""Dense vector search over FAISS: flat, HNSW and IVF-PQ by inner product, with deletes and in-search filters.

Rows (int64 document rows of the caller) are the FAISS ids (``IndexIDMap2`` for flat and HNSW; IVF-PQ stores ids
itself). The stored vectors serve exact search when a filter leaves few rows (graph and inverted-file search lose
recall when most of the collection is filtered out), rebuilding HNSW without its deleted rows (``compact``),
IVF-PQ's training and re-scoring, and ``vectors``. Flat and HNSW indexes hold them once: in FAISS's own storage,
read through a view with each row's slot there (a copy beside FAISS doubled the memory of a dense index). IVF-PQ
keeps a copy by row, since its codes are lossy.

- flat: exact; removed rows stay in FAISS, skipped by searches, until there are enough of them to be worth
  FAISS's removal (which moves every vector after the first removed one): ``FLAT_TOMBSTONE_ROWS``.
- hnsw: deletes are tombstones, excluded from every search by an ID selector, with the beam widened by the share
  of the graph still live (as for a filter) and the live rows searched exactly once few are left
  (``exact_fraction``, ``exact_rows``); a removed row added again gets a new node (the old one is unlinked from
  it); ``compact()`` rebuilds the graph from the live vectors beside searches and writes (call it when many rows
  are dead: tombstones cost search time and memory, not results).
- ivfpq: trained on the first ``add`` (at least 39 vectors per list); deletes remove the codes.

The module runs to about 820 lines because one index over FAISS's three kinds is one concern: its writes (adds,
removals, removed rows added again, the rebuild beside searches and writes), its searches (filters, the exact
fallback, removed rows), its settings and its saved state, all over the same row map and locks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .cores import CORES
from .errors import IndexOptionError
from .growing import GrowingArray
from .locking import RWLock

__all__ = ["BUILD_OPTIONS", "OPTIONS", "RUNTIME_OPTIONS", "DenseIndex", "check_options"]

Kind = Literal["flat", "hnsw", "ivfpq"]
# A flat index answers a filter that keeps at least this fraction of the rows by over-fetching from its unfiltered
# scan (exact); below it, by scoring the allowed rows alone.
FLAT_POST_FILTER_FRACTION = 0.2
# A flat index's removed rows stay in FAISS (searches skip them) until they are more than this many and more than
# a sixteenth of its vectors: FAISS's removal shifts every vector after the first removed one and rebuilds its id
# map (24 ms at 132,000 rows), so removing one document at a time paid that each time.
FLAT_TOMBSTONE_ROWS = 256
# HNSW's compaction adds the rows added during its rebuild in rounds beside searches while a round finds more than
# CATCH_UP_ROWS (at most CATCH_UP_ROUNDS rounds), and the rest with writes held back (searches go on).
CATCH_UP_ROWS, CATCH_UP_ROUNDS = 16, 8
# ``compact_fraction``: HNSW compacts by itself once its removed rows are that share of its graph and at least
# this many.
COMPACT_MIN_ROWS = 1000
F32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# DenseIndex's settings beyond its dimension and kind, and the type of each (``Retriever(index_options=...)``,
# ``rapidrag index --index-option NAME=VALUE``).
OPTIONS: dict[str, type] = {
    "hnsw_m": int, "ef_construction": int, "ef_search": int, "nlist": int, "pq_m": int, "nprobe": int,
    "exact_fraction": float, "exact_rows": int, "refine": int, "n_threads": int, "compact_fraction": float,
}  # fmt: skip
# The settings each kind uses: those it reads as it runs (its searches, its upkeep), which a built index can change
# (``DenseIndex.set_options``; ``Retriever.load(index_options=...)`` and ``--index-option`` on a loaded index), and
# those that fix how it is built.
RUNTIME_OPTIONS: dict[str, frozenset[str]] = {
    "flat": frozenset({"n_threads"}),
    "hnsw": frozenset({"ef_search", "exact_fraction", "exact_rows", "n_threads", "compact_fraction"}),
    "ivfpq": frozenset({"nprobe", "refine", "exact_fraction", "exact_rows", "n_threads"}),
}
BUILD_OPTIONS: dict[str, frozenset[str]] = {
    "flat": frozenset(), "hnsw": frozenset({"hnsw_m", "ef_construction"}), "ivfpq": frozenset({"nlist", "pq_m"}),
}  # fmt: skip
# Each whole-number setting's least value, and those that may be None (chosen when the index is trained, or FAISS's).
_LEAST = {"hnsw_m": 2, "ef_construction": 1, "ef_search": 1, "nlist": 1, "pq_m": 1, "nprobe": 1, "exact_rows": 0,
          "refine": 1, "n_threads": 0}  # fmt: skip
_OPTIONAL = frozenset({"nlist", "pq_m", "nprobe", "n_threads", "compact_fraction"})
MAX_THREADS = 1024  # n_threads above this is refused: OpenMP would start that many threads for each search
# The settings that are shares: whether 0 is refused, and how the error says the range.
_FRACTIONS = {"exact_fraction": (False, "from 0 to 1"), "compact_fraction": (True, "above 0 and at most 1, or None")}


class DenseIndex:
    """Inner-product search over float32 vectors of dimension ``dim`` (normalise them for cosine similarity).

    Parameters
    ----------
    kind : "flat", "hnsw" or "ivfpq"
    hnsw_m, ef_construction, ef_search : HNSW graph degree and beam widths.
    nlist, pq_m, nprobe : IVF lists (default: about the square root of the first batch, at most 1/39 of it),
        PQ sub-quantizers (default: dim / 8), lists probed per query (default: three quarters of the lists, at
        least 16). Chosen for recall@10 of at least 0.99 against exact search: on 126k gcide passages (354 lists,
        384 dimensions, k = 10, one thread; benchmarks/search_settings.py) 88 lists and ``refine`` 16 gave 0.933 in
        1.0 ms p50, 176 and 64 gave 0.989 in 2.0 ms, 264 and 64 gave 0.996 in 3.3 ms (exact flat search: 8.6 ms).
        Lower both for speed.
    exact_fraction, exact_rows : a filter that leaves at most this fraction of the rows the index holds (removed
        rows not yet compacted away included), or at most this many rows, is answered by exact search over those
        rows (a few ms for 20,000 rows of 384 dimensions) instead of the approximate index. Above that, HNSW
        widens its beam as the filter narrows (``ef_search`` / fraction, at most 1024), so that filtered recall
        stays that of unfiltered search. Removed rows narrow an HNSW search the same way (exact when they leave
        at most ``exact_fraction`` of it, or at most ``exact_rows`` rows and half of it).
    refine : IVF-PQ fetches ``refine * k`` candidates and re-scores them exactly with the stored vectors.
    n_threads : FAISS's OpenMP threads for searches (0 = ``rapidrag.set_cores``'s count, None = FAISS's setting). One:
        a search of one query gains nothing from more, and on a busy machine the parallel region FAISS opens for
        it (``IndexIDMap2`` translating ids) waited 16 ms for a descheduled thread where the search itself took
        0.12 ms (benchmarks/bench_pipeline.py). Raise it for large batches of queries. OpenMP keeps the setting
        per calling thread, so searches set it for themselves; building and adding use the cores of ``set_cores``.
    compact_fraction : HNSW compacts by itself (``compact`` in a background thread, beside searches and writes)
        once its removed rows are at least this share of its graph's nodes and at least ``COMPACT_MIN_ROWS``.
        None (the default): only when ``compact()`` is called. The rebuild holds both graphs in memory and takes
        the cores for as long as it runs (tens of seconds at 100,000 rows), so it is the caller's to choose.

    Exact scores (the filtered fallback, IVF-PQ re-scoring) come from the native core's inner products by row over
    the stored vectors (``cpp/src/exact.cpp``), single-threaded and without copying the rows it scores.
    """

    def __init__(
        self,
        dim: int,
        kind: Kind = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        pq_m: int | None = None,
        nprobe: int | None = None,
        exact_fraction: float = 0.1,
        exact_rows: int = 20_000,
        refine: int = 64,
        n_threads: int | None = 1,
        compact_fraction: float | None = None,
    ) -> None:
        import faiss

        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'hnsw' or 'ivfpq', got {kind!r}")
        self.faiss = faiss
        self.dim, self.kind = dim, kind
        self.hnsw_m = _option("hnsw_m", hnsw_m)
        self.ef_construction = _option("ef_construction", ef_construction)
        self.ef_search = _option("ef_search", ef_search)
        self.nlist = _option("nlist", nlist)
        self.pq_m = _option("pq_m", pq_m)
        self.nprobe = _option("nprobe", nprobe)
        self.exact_fraction = _option("exact_fraction", exact_fraction)
        self.exact_rows = _option("exact_rows", exact_rows)
        self.refine = _option("refine", refine)
        self.n_threads = _option("n_threads", n_threads)
        self.compact_fraction = _option("compact_fraction", compact_fraction)
        if self.pq_m is not None and dim % self.pq_m:
            raise ValueError(f"pq_m ({pq_m}) must divide dim ({dim})")
        # By row: views over GrowingArrays, so that adding a few rows to a large index copies none of its vectors
        # (``_grow``). ``_rowwise``: IVF-PQ's vectors, else each row's slot in FAISS's storage (-1: none), whose
        # vectors ``_stored`` views.
        self._by_row = self._new_by_row(np.zeros(0, dtype=bool), None)
        self._rowwise, self._alive = (a.array for a in self._by_row)
        self._stored: F32Array = np.zeros((0, dim), dtype=np.float32)
        self._tombstones: list[IntArray] = []  # flat: rows removed, still in FAISS
        self._n_live = 0  # kept with _alive: counting 10^5 flags on every search costs more than the search
        self._plain_params: tuple[Any, Any] | None = None
        self._index: Any = None
        self._inner: Any = None  # (flat, HNSW) the index the id map wraps, which holds the vectors
        if kind != "ivfpq":
            self._use(self._new_index())
        self._lock = RWLock()
        self._compacting = threading.Lock()  # one graph rebuild at a time
        # Held by each write (before the write lock), and by a rebuild while it adds the last rows written
        # meanwhile: writes wait for those, searches do not.
        self._writing = threading.Lock()
        self._added_since: list[IntArray] | None = None  # rows added while a rebuild runs (``compact``)
        self._background: threading.Thread | None = None  # a compaction started by ``compact_fraction``
        self._starting = threading.Lock()  # (one such thread at a time)

    def __len__(self) -> int:
        return self._n_live

    def options(self) -> dict[str, Any]:
        """The settings this kind of index uses (``BUILD_OPTIONS`` and ``RUNTIME_OPTIONS``), by name."""
        used = BUILD_OPTIONS[self.kind] | RUNTIME_OPTIONS[self.kind]
        return {name: getattr(self, name) for name in OPTIONS if name in used}

    def set_options(self, **options: Any) -> None:
        """Change settings the index reads as it runs (``RUNTIME_OPTIONS`` of its kind: ``ef_search`` and
        ``compact_fraction`` for HNSW, ``nprobe`` and ``refine`` for IVF-PQ, ``exact_fraction``, ``exact_rows``,
        ``n_threads``), checked as the constructor checks them; the next searches use them and a save keeps
        them. A setting that fixes how the index is built (``hnsw_m``, ``ef_construction``, ``nlist``, ``pq_m``)
        or that this kind does not use is refused by name (``IndexOptionError``, a ValueError), and then nothing
        is changed."""
        checked = runtime_options(self.kind, options, self.nlist)
        with self._lock.write():
            for name, value in checked.items():
                setattr(self, name, value)
        self._compact_when_due()

    def _threads(self, searching: bool) -> None:
        """Set the calling thread's OpenMP threads for the FAISS call that follows."""
        if searching and self.n_threads is None:
            return
        self.faiss.omp_set_num_threads((self.n_threads if searching else 0) or CORES.cores)

    def _new_index(self, train: F32Array | None = None) -> Any:
        faiss = self.faiss
        if self.kind == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        elif self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
        else:
            if train is None:
                raise AssertionError("IVF-PQ needs training vectors")
            nlist = self.nlist or int(np.clip(min(np.sqrt(len(train)), len(train) // 39), 1, 4096))
            pq_m = self.pq_m or next(
                m for m in (self.dim // 8, self.dim // 4, self.dim // 2, 1) if m and not self.dim % m
            )
            if len(train) < _ivf_minimum(nlist):
                raise ValueError(
                    f"IVF-PQ with {nlist} lists needs at least {_ivf_minimum(nlist)} vectors in the first add to "
                    f"train, got {len(train)}; add more at once, lower nlist, or use kind='flat' or 'hnsw'"
                )
            quantizer = faiss.IndexFlatIP(self.dim)
            # 8-bit codes need 39 * 256 training vectors for their codebooks; fewer get smaller codebooks.
            nbits = int(np.clip(np.log2(len(train) / 39), 4, 8))
            inner = faiss.IndexIVFPQ(quantizer, self.dim, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
            inner.train(train)
            self.nlist, self.pq_m = nlist, pq_m
            self.nprobe = self.nprobe or _default_nprobe(nlist)
            # IVF takes ids itself, and its remove_ids does not renumber: an IndexIDMap around it would map
            # results to the wrong ids after a removal.
            return inner
        return faiss.IndexIDMap2(inner)  # (FAISS's wrapper keeps ``inner`` alive with the map)

    def _use(self, index: Any) -> None:
        """(Flat, HNSW; under the write lock or before the index is shared) search ``index`` (an id map) from now."""
        self._index = index
        self._inner = self.faiss.downcast_index(index.index)

    # -- changes -------------------------------------------------------------------------------------------------

    def _check_vectors(self, vectors: Any, name: str) -> F32Array:
        if not isinstance(vectors, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, not {type(vectors).__name__}")
        if vectors.dtype != np.float32:
            raise TypeError(f"{name} must be float32, got {vectors.dtype}")
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape [n, {self.dim}], got {list(vectors.shape)}")
        if not np.isfinite(vectors).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return np.ascontiguousarray(vectors)

    def add(self, rows: Any, vectors: Any) -> None:
        """Add ``vectors`` (float32 [n, dim]) under the int ``rows`` (new rows, not already in the index)."""
        vectors = self._check_vectors(vectors, "vectors")
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows) != len(vectors):
            raise ValueError(f"{len(rows)} rows for {len(vectors)} vectors")
        if len(rows) == 0:
            return
        if rows.min() < 0 or len(np.unique(rows)) != len(rows):
            raise ValueError("rows must be distinct ints >= 0")
        with self._writing, self._lock.write():
            held, end = len(self._alive), int(rows.max()) + 1
            if end > held:
                self._grow(end)
            taken = rows[self._alive[rows]]
            if len(taken):
                raise ValueError(f"rows already in the index: {taken[:5].tolist()}; remove them first")
            # A removed row added again: FAISS must not hold its id twice. (Only rows below those held before can
            # be removed ones; a retriever's adds are all above, and skip the look-up.)
            if self._tombstones and rows.min() < held and np.isin(rows, np.concatenate(self._tombstones)).any():
                self._drop_tombstones()
            self._threads(searching=False)
            if self._index is None:
                self._index = self._new_index(train=vectors)
            if self.kind == "hnsw" and rows.min() < held:
                # A removed row added again: its old node stays in the graph until ``compact``, unlinked from
                # the row (searches never return it), and the row gets a new node.
                old = self._rowwise[rows]
                self._unlink(self._index, old[old >= 0])
            held_before = int(self._index.ntotal)
            self._index.add_with_ids(vectors, rows)
            if self.kind == "ivfpq":
                self._rowwise[rows] = vectors
            else:
                self._rowwise[rows] = np.arange(held_before, held_before + len(rows))
                self._view_storage()
            self._alive[rows] = True
            self._n_live += len(rows)
            if self._added_since is not None:
                self._added_since.append(rows)
            readded = self.kind == "hnsw" and rows.min() < held
        if readded:  # (a re-added row's old node is a removed one)
            self._compact_when_due()

    def _unlink(self, index: Any, slots: IntArray) -> None:
        """(HNSW; under the write lock if ``index`` is searched) give the nodes at ``slots`` of ``index`` no row:
        FAISS's id -1, which no ID selector admits and which a search reports as no hit (HNSW cannot take a node
        out of its graph)."""
        if len(slots):
            faiss = self.faiss
            ids = faiss.vector_to_array(index.id_map)
            ids[slots] = -1
            faiss.copy_array_to_vector(ids, index.id_map)

    def _new_by_row(self, alive: npt.NDArray[np.bool_], vectors: F32Array | None) -> tuple[GrowingArray, GrowingArray]:
        """The by-row arrays over ``alive``: IVF-PQ's ``vectors`` (or none), else slots to be set (-1: none)."""
        n = len(alive)
        if self.kind == "ivfpq":
            rowwise = GrowingArray(np.zeros((n, self.dim), np.float32) if vectors is None else vectors)
        else:
            rowwise = GrowingArray(np.full(n, -1, dtype=np.int64), fill=-1)
        return rowwise, GrowingArray(alive)

    def _grow(self, n_rows: int) -> None:
        """Make room for rows up to ``n_rows`` (new rows dead, without a vector or slot): a document added to a
        large index copies no vectors (a copy of them all took 8 ms at 21,000 rows). IVF-PQ's room ahead is
        zeroed memory that is not resident until rows are written to it; a load sizes the arrays exactly."""
        self._rowwise, self._alive = (a.resize(n_rows) for a in self._by_row)

    def _view_storage(self) -> None:
        """(Flat, HNSW; under the write lock, after FAISS's storage changed: it may have moved.) ``_stored``: a view
        of the vectors FAISS holds, by slot. Valid until the next change, which only a writer makes."""
        faiss = self.faiss
        flat = self._inner if self.kind == "flat" else faiss.downcast_index(self._inner.storage)
        n = int(flat.ntotal)
        if not n:
            self._stored = np.zeros((0, self.dim), dtype=np.float32)
            return
        self._stored = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)

    def _slots_from_map(self) -> None:
        """(Flat, HNSW; under the write lock, after FAISS renumbered its vectors) each row's slot, from the id map
        (HNSW's nodes unlinked from their row, id -1, have none)."""
        ids = self.faiss.vector_to_array(self._index.id_map).astype(np.int64)
        self._rowwise[:] = -1
        linked = ids >= 0
        self._rowwise[ids[linked]] = np.flatnonzero(linked)
        self._view_storage()

    def _vectors_of(self, rows: IntArray) -> F32Array:
        """(Under a lock) the stored vectors of held ``rows``: a copy."""
        out: F32Array = self._rowwise[rows] if self.kind == "ivfpq" else self._stored[self._rowwise[rows]]
        return out

    def vectors(self, rows: Any, *, missing: float = 0.0) -> F32Array:
        """The stored vectors of ``rows`` (int64 [n]): float32 [n, dim], a copy; ``missing`` (zeros by default) for
        a row without one (never added, or removed)."""
        picked = np.ascontiguousarray(rows, dtype=np.int64)
        if picked.ndim != 1 or (len(picked) and picked.min() < 0):
            raise IndexError("rows must be a 1-d array of rows (ints >= 0)")
        with self._lock.read():
            n = len(self._alive)
            held = picked < n
            held[held] = self._alive[picked[held]]
            out = np.full((len(picked), self.dim), missing, dtype=np.float32)
            out[held] = self._vectors_of(picked[held])
            return out

    def held_rows(self) -> IntArray:
        """The rows that have a vector, ascending."""
        with self._lock.read():
            return np.flatnonzero(self._alive).astype(np.int64)

    def remove(self, rows: Any) -> int:
        """Remove rows (unknown ones are ignored); returns how many were removed."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        with self._writing, self._lock.write():
            rows = rows[(rows >= 0) & (rows < len(self._alive))]
            rows = rows[self._alive[rows]]
            if not len(rows):
                return 0
            self._alive[rows] = False
            self._n_live -= len(rows)
            if self.kind == "flat":
                self._tombstones.append(rows)
                if self.dead > max(FLAT_TOMBSTONE_ROWS, int(self._index.ntotal) // 16):
                    self._drop_tombstones()
            elif self.kind == "ivfpq":
                self._index.remove_ids(self.faiss.IDSelectorBatch(rows))
        self._compact_when_due()
        return len(rows)

    def _retrain(self) -> None:
        """IVF-PQ's ``compact``: its lists and codebooks trained again on the live vectors (after many writes they
        fit the vectors better), with writes held back and searches going on over the old index until the new one
        is put in place under the write lock (training 100,000 vectors takes seconds). Too few live vectors to
        train its lists again: the index is kept as it is (it holds the live rows only)."""
        with self._writing:
            with self._lock.read():
                live = np.flatnonzero(self._alive).astype(np.int64)
                if 0 < len(live) < _ivf_minimum(self.nlist or 1):
                    return
                vectors = self._vectors_of(live)
            fresh = None
            if len(live):
                self._threads(searching=False)
                fresh = self._new_index(train=vectors)
                fresh.add_with_ids(vectors, live)
            with self._lock.write():
                self._index = fresh

    def _compact_when_due(self) -> None:
        """(HNSW, after a change) start ``compact`` in a background thread when ``compact_fraction`` says it is
        due and none is running. ``compacting`` is that thread while it runs."""
        fraction, index = self.compact_fraction, self._index
        if fraction is None or self.kind != "hnsw" or index is None:
            return
        dead = self.dead
        if dead < COMPACT_MIN_ROWS or dead < fraction * int(index.ntotal):
            return
        with self._starting:
            if self._background is not None and self._background.is_alive():
                return
            self._background = threading.Thread(target=self._compact_in_background, name="rapidrag-compact")
            self._background.daemon = True
            self._background.start()

    def _compact_in_background(self) -> None:
        try:
            self.compact()
        except Exception:  # (a thread's error reaches no caller: logged, and the next due write tries again)
            logging.getLogger("rapidrag.dense").exception("the background compaction of an HNSW index failed")

    @property
    def compacting(self) -> threading.Thread | None:
        """The compaction ``compact_fraction`` started, while it runs (``join()`` waits for it); else None."""
        thread = self._background
        return thread if thread is not None and thread.is_alive() else None

    def _drop_tombstones(self) -> None:
        """Remove a flat index's removed rows from FAISS (under the write lock)."""
        if self._tombstones:
            self._index.remove_ids(self.faiss.IDSelectorBatch(np.concatenate(self._tombstones)))
            self._tombstones = []
            self._slots_from_map()

    def compact(self) -> int:
        """Drop the removed rows that searches still skip: HNSW's graph rebuilt from the live rows, a flat index's
        removed vectors taken out of FAISS. IVF-PQ holds none (its removals take the vectors out): its lists and
        codebooks are trained again on the live vectors, beside searches (``_retrain``). Returns how many vectors
        it dropped.

        HNSW's rebuild (tens of seconds for 100,000 vectors) runs beside searches and writes: the live vectors
        are copied under the read lock and the new graph is built under no lock; the rows added meanwhile are
        added to it in rounds while they are many, then the last ones with writes held back (searches go on), and
        the write lock is taken only to put the new graph in place (rows removed meanwhile are skipped there as in
        the old one). Both graphs are in memory until then."""
        if self.kind == "flat":
            with self._lock.write():
                dropped = self.dead
                self._drop_tombstones()
                return dropped
        if self.kind == "ivfpq":
            self._retrain()
            return 0
        with self._compacting:
            with self._lock.read():
                dropped = self.dead
                if not dropped:  # (nothing to drop: none removed, or another call compacted it meanwhile)
                    return 0
                live = np.flatnonzero(self._alive).astype(np.int64)
                vectors = self._vectors_of(live)  # (a copy: the old graph's storage changes with its writes)
                self._added_since = []
            try:
                fresh = self._build(live, vectors)
                # The rows added meanwhile, in rounds beside searches and writes while they are many (adding a few
                # hundred rows to a large graph takes a few hundred ms); then the last ones with writes held back
                # (searches go on), and the write lock only to put the new graph in place.
                for _ in range(CATCH_UP_ROUNDS):
                    with self._lock.read():
                        rows, vectors = self._added_meanwhile()
                    self._add_to(fresh, rows, vectors)
                    if len(rows) <= CATCH_UP_ROWS:
                        break
                with self._writing:
                    with self._lock.read():
                        rows, vectors = self._added_meanwhile()
                    self._add_to(fresh, rows, vectors)
                    with self._lock.write():
                        self._use(fresh)
                        self._slots_from_map()
            finally:
                with self._lock.write():
                    self._added_since = None
            return dropped

    def _added_meanwhile(self) -> tuple[IntArray, F32Array]:
        """(Under a lock, during ``compact``) the rows added since the last call that are still live, and their
        vectors (a copy)."""
        added, self._added_since = self._added_since, []
        rows = np.unique(np.concatenate(added)) if added else np.zeros(0, dtype=np.int64)
        rows = rows[self._alive[rows]]
        return rows, self._vectors_of(rows)

    def _add_to(self, fresh: Any, rows: IntArray, vectors: F32Array) -> None:
        """(During ``compact``) add ``rows`` to the graph being made; a row it holds already (removed and added
        again meanwhile) has its node there unlinked first."""
        if len(rows):
            held = self.faiss.vector_to_array(fresh.id_map)
            self._unlink(fresh, np.flatnonzero(np.isin(held, rows)))
            fresh.add_with_ids(vectors, rows)

    def _build(self, rows: IntArray, vectors: F32Array) -> Any:
        """(HNSW, under no lock) a new graph of ``vectors`` under ``rows``, on ``set_cores``'s cores."""
        self._threads(searching=False)
        fresh = self._new_index()
        if len(rows):
            fresh.add_with_ids(vectors, rows)
        return fresh

    @property
    def dead(self) -> int:
        """Removed rows still in FAISS, which searches skip: HNSW's tombstones (until ``compact``), a flat index's
        (until they pass ``FLAT_TOMBSTONE_ROWS`` and a sixteenth of its vectors); 0 for IVF-PQ."""
        if self.kind == "ivfpq" or self._index is None:
            return 0
        return int(self._index.ntotal) - len(self)

    # -- search --------------------------------------------------------------------------------------------------

    def search(
        self, queries: Any, k: int = 10, *, mask: npt.NDArray[np.bool_] | None = None
    ) -> tuple[IntArray, F32Array]:
        """Top ``k`` rows per query: (rows int64 [q, k], scores float32 [q, k]); -1 / -inf pad missing hits.

        ``mask``: bool over rows, True where a row may be returned; it is applied inside the search (an ID
        selector), or by exact search over the allowed rows when they are few (``exact_fraction``).
        """
        queries = self._check_vectors(queries, "queries")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        with self._lock.read():
            n = len(self._alive)
            if self._n_live == 0:
                return _empty(len(queries), k)
            self._threads(searching=True)
            # Shares of the index are of what FAISS holds: removed rows still in it (a flat index's until dropped,
            # HNSW's until compacted) included. A graph search among few live nodes finds few of them (recall 0.77
            # with 99% of SciFact's rows removed, benchmarks/hnsw_removed.py): its beam widens with the live share,
            # as for a filter, and the live rows are searched exactly once they are at most ``exact_fraction`` of
            # the graph, or at most ``exact_rows`` and half of it (there a beam of twice the width or more took
            # longer than the exact search).
            held = int(self._index.ntotal)
            if mask is None and self.dead:
                live = self._n_live
                if (
                    self.kind == "hnsw"
                    and live > self.exact_fraction * held
                    and (live > self.exact_rows or 2 * live > held)
                ):
                    return self._approximate(queries, k, self._alive, live / held)
                mask = self._alive  # skipped as a filter's rows are
            if mask is None:
                if self.kind == "flat":
                    scores, rows = self._index.search(queries, k)
                    if rows[:, -1].min() >= 0:  # every query found k rows (FAISS pads the end with -1)
                        return rows.astype(np.int64, copy=False), scores
                    return rows.astype(np.int64, copy=False), np.where(rows < 0, -np.inf, scores).astype(np.float32)
                return self._approximate(queries, k, None, 1.0)
            if mask.dtype != np.bool_ or mask.ndim != 1:
                raise ValueError(f"mask must be a 1-D bool array, got {mask.dtype} with shape {mask.shape}")
            allowed = self._alive & (mask[:n] if len(mask) >= n else np.pad(mask, (0, n - len(mask))))
            n_allowed = int(np.count_nonzero(allowed))
            if n_allowed == 0:
                return _empty(len(queries), k)
            fraction = n_allowed / held
            if self.kind == "flat" and fraction >= FLAT_POST_FILTER_FRACTION:
                found = self._flat_post_filter(queries, k, allowed, fraction)
                if found is not None:
                    return found
            if self.kind == "flat" or n_allowed <= max(self.exact_fraction * held, self.exact_rows):
                return self._exact(queries, np.flatnonzero(allowed), k)
            return self._approximate(queries, k, allowed, fraction)

    def _flat_post_filter(
        self, queries: F32Array, k: int, allowed: npt.NDArray[np.bool_], fraction: float
    ) -> tuple[IntArray, F32Array] | None:
        """Exact filtered search on a flat index by over-fetching: FAISS's unfiltered scan (its fastest path)
        for about ``3 k / fraction`` rows, the disallowed dropped. The scan is exact, so when ``k`` allowed rows
        remain they are the filtered top ``k``; None when a query found fewer (then the caller scores the allowed
        rows). An ID selector in the scan instead took twice the unfiltered time at 50% kept."""
        held = int(self._index.ntotal)  # (live rows and removed ones not yet dropped)
        fetch = min(held, int(np.ceil(3 * k / fraction)) + k)
        scores, rows = self._index.search(queries, fetch)
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i in range(len(queries)):
            valid = rows[i] >= 0
            keep = np.flatnonzero(valid & allowed[np.where(valid, rows[i], 0)])[:k]
            if len(keep) < k and fetch < held:
                return None
            out_rows[i, : len(keep)] = rows[i, keep]
            out_scores[i, : len(keep)] = scores[i, keep]
        return out_rows, out_scores

    def _approximate(
        self, queries: F32Array, k: int, allowed: npt.NDArray[np.bool_] | None, fraction: float
    ) -> tuple[IntArray, F32Array]:
        """HNSW or IVF-PQ search, restricted to ``allowed`` rows (None: all rows, none deleted)."""
        params, keep_alive = self._params(allowed, fraction)
        fetch = k * self.refine if self.kind == "ivfpq" else k
        scores, rows = self._index.search(queries, fetch, params=params)
        del keep_alive
        if self.kind == "ivfpq":
            return self._rescore(queries, rows.astype(np.int64), k)
        return rows.astype(np.int64), np.where(rows < 0, -np.inf, scores).astype(np.float32)

    def _rescore(self, queries: F32Array, candidates: IntArray, k: int) -> tuple[IntArray, F32Array]:
        """Exact scores of each query's candidates (-1 = none), best ``k`` kept."""
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i in range(len(queries)):
            rows = candidates[i][candidates[i] >= 0]
            if len(rows):
                r, sc = self._exact(queries[i : i + 1], rows, k)
                out_rows[i], out_scores[i] = r[0], sc[0]
        return out_rows, out_scores

    def _params(self, allowed: npt.NDArray[np.bool_] | None, fraction: float = 1.0) -> tuple[Any, list[Any]]:
        """Search parameters, and the objects they point to (alive until the search is done)."""
        faiss = self.faiss
        kwargs: dict[str, Any] = {}
        keep: list[Any] = []
        if allowed is None:  # the common case: one parameter object, made once (SWIG objects cost ~20 us each)
            key = (self.ef_search, self.nprobe)
            if self._plain_params is None or self._plain_params[0] != key:
                setting = {"efSearch": self.ef_search} if self.kind == "hnsw" else {"nprobe": self.nprobe}
                made = (faiss.SearchParametersHNSW if self.kind == "hnsw" else faiss.SearchParametersIVF)(**setting)
                self._plain_params = (key, made)
            return self._plain_params[1], keep
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
            keep += [bits, selector]
            kwargs["sel"] = selector
        if self.kind == "hnsw":
            ef = int(min(max(self.ef_search, self.ef_search / max(fraction, 1e-6)), 1024))
            params = faiss.SearchParametersHNSW(efSearch=ef, **kwargs)
        elif self.kind == "ivfpq":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe, **kwargs)
        else:
            raise AssertionError("flat searches do not take FAISS parameters")
        return params, keep

    def _exact(self, queries: F32Array, rows: IntArray, k: int) -> tuple[IntArray, F32Array]:
        """The best ``k`` of ``rows`` for each query, by exact inner product."""
        scores = np.empty((len(queries), len(rows)), dtype=np.float32)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        vectors, at = (self._rowwise, rows) if self.kind == "ivfpq" else (self._stored, self._rowwise[rows])
        _core.exact_inner_products(np.ascontiguousarray(queries, dtype=np.float32), vectors, at, scores)
        take = min(k, len(rows))
        top = (
            np.argpartition(-scores, take - 1, axis=1)[:, :take]
            if take < len(rows)
            else np.tile(np.arange(len(rows)), (len(queries), 1))
        )
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_rows[:, :take] = rows[np.take_along_axis(top, order, axis=1)]
        out_scores[:, :take] = np.take_along_axis(top_scores, order, axis=1)
        return out_rows, out_scores

    # -- persistence -------------------------------------------------------------------------------------------

    # What a save keeps: the settings but the thread count, which belongs to the machine.
    _SETTINGS = ("dim", "kind", *(name for name in OPTIONS if name != "n_threads"))

    def state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """The index as (settings, arrays): the live rows, the serialized FAISS index, and for IVF-PQ (whose codes
        are lossy) the vectors by row (zeros for rows not in the index). A flat or HNSW index's vectors are those
        in FAISS's file, by the rows of its id map: saved once (index format 3; format 2 saved them by row too,
        which ``from_state`` still reads)."""
        with self._lock.read():
            info = {name: getattr(self, name) for name in self._SETTINGS}
            arrays = {"alive": self._alive.copy()}  # (a copy: it changes in place)
            if self.kind == "ivfpq":
                arrays["vectors"] = np.where(self._alive[:, None], self._rowwise, np.float32(0))
            if self._index is not None:
                index = self._index
                if self.kind == "flat" and self._tombstones:  # saved as if dropped (a read may not change it)
                    index = self.faiss.clone_index(self._index)
                    index.remove_ids(self.faiss.IDSelectorBatch(np.concatenate(self._tombstones)))
                arrays["faiss"] = self.faiss.serialize_index(index)
            return info, arrays

    @classmethod
    def empty(cls, info: dict[str, Any]) -> DenseIndex:
        """An empty index with the settings of one saved by ``state`` (``info``; a setting saved by none of the
        versions that wrote it, such as ``compact_fraction`` before it was one, takes its default)."""
        return cls(**{name: info[name] for name in cls._SETTINGS if name in info})

    @classmethod
    def from_state(cls, info: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> DenseIndex:
        """Rebuild an index saved by ``state``; inconsistent parts raise ValueError."""
        out = cls.empty(info)
        alive = arrays["alive"]
        if alive.dtype != np.bool_ or alive.ndim != 1:
            raise ValueError(f"saved live-row mask is {alive.dtype} {list(alive.shape)}, expected bool [n]")
        kept = None  # (flat, HNSW: FAISS holds the vectors; format 2's copy by row, if there, is not kept)
        if out.kind == "ivfpq" or "vectors" in arrays:
            vectors = arrays["vectors"]
            if vectors.dtype != np.float32 or vectors.shape != (len(alive), out.dim):
                raise ValueError(
                    f"saved vectors are {vectors.dtype} {list(vectors.shape)}, expected float32 [{len(alive)}, "
                    f"{out.dim}] (one per row of the live-row mask)"
                )
            if out.kind == "ivfpq":
                kept = np.ascontiguousarray(vectors)
        out._by_row = out._new_by_row(alive.astype(bool), kept)
        out._rowwise, out._alive = (a.array for a in out._by_row)
        out._n_live = int(np.count_nonzero(out._alive))
        if "faiss" in arrays:
            index = out.faiss.deserialize_index(np.ascontiguousarray(arrays["faiss"], dtype=np.uint8))
            if index.d != out.dim:
                raise ValueError(f"saved FAISS index has dimension {index.d}, expected {out.dim}")
            live = int(alive.sum())
            if index.ntotal < live or (out.kind != "hnsw" and index.ntotal != live):
                raise ValueError(f"saved FAISS index holds {index.ntotal} vectors for {live} live rows")
            out._index = index
            if out.kind != "ivfpq":  # the vectors are FAISS's: the saved copy by row is not kept
                out._use(index)
                ids = out.faiss.vector_to_array(index.id_map)
                if out.kind == "hnsw":
                    ids = out._unlink_stale(ids)
                if len(ids) and (ids.min() < 0 or ids.max() >= len(alive) or alive[ids].sum() != live):
                    raise ValueError("saved FAISS index holds rows that the live-row mask does not")
                out._slots_from_map()
        elif out.kind != "ivfpq" or alive.any():
            raise ValueError("the saved dense index has no FAISS index")
        return out

    def _unlink_stale(self, ids: IntArray) -> IntArray:
        """(HNSW, at load) the rows of the graph's linked nodes (``ids``: its id map). A row held by two nodes (a
        removed row added again, saved by versions that did not unlink its old node; their searches could return
        the old vector) keeps its last node, the newest: the others are unlinked here."""
        linked = np.flatnonzero(ids >= 0)
        newest_first = linked[::-1]
        _, first = np.unique(ids[newest_first], return_index=True)
        if len(first) < len(linked):
            self._unlink(self._index, np.setdiff1d(linked, newest_first[first]))
            linked = np.sort(newest_first[first])
        return ids[linked]

    def __repr__(self) -> str:
        return f"DenseIndex({self.kind}, dim={self.dim}, {len(self)} vectors)"


def runtime_options(kind: str, options: Mapping[str, Any], nlist: int | None = None) -> dict[str, Any]:
    """``options`` checked as ``DenseIndex.set_options`` takes them for a built index of ``kind`` (with ``nlist``
    lists, for IVF-PQ): the values to set, or IndexOptionError naming the first that cannot be set."""
    changeable = RUNTIME_OPTIONS[kind]
    checked = {}
    for name, value in check_options(options).items():
        if name not in changeable:
            why = (
                "fixes how the index is built: rebuild it (rapidrag index --index-option) to change it"
                if name in BUILD_OPTIONS[kind]
                else f"is not used by a {kind} index"
            )
            raise IndexOptionError(
                f"index option {name} {why}; a built {kind} index takes {', '.join(sorted(changeable))}"
            )
        checked[name] = _option(name, value)
    if nlist is not None and "nprobe" in checked:  # trained: None is the default again
        nprobe = checked["nprobe"] = checked["nprobe"] or _default_nprobe(nlist)
        if nprobe > nlist:
            raise IndexOptionError(f"nprobe must be at most the index's {nlist} lists, got {nprobe}")
    return checked


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` (None: none) as a dict of ``DenseIndex`` settings, their names checked against ``OPTIONS``;
    their values are checked by ``DenseIndex``."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"index_options must be a dict, not {type(options).__name__}")
    unknown = sorted(str(name) for name in options if name not in OPTIONS)
    if unknown:
        raise IndexOptionError(f"unknown index option {', '.join(map(repr, unknown))}: known are {', '.join(OPTIONS)}")
    return dict(options)


def _option(name: str, value: Any) -> Any:
    """``value`` of the setting ``name`` checked (``IndexOptionError`` naming it) and normalised: None where
    ``_OPTIONAL``, a share in the range ``_FRACTIONS`` gives, else an int of at least its ``_LEAST``."""
    if name in _OPTIONAL and value is None:
        return None
    if name in _FRACTIONS:
        above_zero, wording = _FRACTIONS[name]
        number = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        if not (number and (value > 0 if above_zero else value >= 0) and value <= 1):
            raise IndexOptionError(f"{name} must be a number {wording}, got {value!r}")
        return float(value)
    least, optional = _LEAST[name], name in _OPTIONAL
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise IndexOptionError(f"{name} must be an int >= {least}{' or None' if optional else ''}, got {value!r}")
    if name == "n_threads" and value > MAX_THREADS:
        raise IndexOptionError(f"n_threads must be at most {MAX_THREADS}, got {value!r}")
    return int(value)


def _ivf_minimum(nlist: int) -> int:
    """The vectors IVF-PQ needs to train ``nlist`` lists (FAISS's 39 a list) and 4-bit codebooks (256)."""
    return max(39 * nlist, 256)


def _default_nprobe(nlist: int) -> int:
    """IVF lists probed per query unless set: three quarters of ``nlist``, at least 16 (see ``DenseIndex``)."""
    return min(nlist, max(16, 3 * nlist // 4))


def _empty(n_queries: int, k: int) -> tuple[IntArray, F32Array]:
    return np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), -np.inf, dtype=np.float32)
