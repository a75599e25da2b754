"""One index split in shards: ``ShardedRetriever``, a drop-in for ``Retriever`` whose documents are spread over
``n_shards`` single-node indexes (each a ``Retriever``) by a hash of their id, in this process or in Ray actors.

A search is one ``Retriever`` search whose first stages are scattered and gathered (``search.Searcher``'s hooks):

1. exact global BM25: the coordinator keeps BM25's collection statistics of the whole index (live documents,
   their total length, each term's document frequency, per field): summed over the shards when the index is
   opened, then kept up to date by every change, whose shard reports what it did to them. Each shard scores with
   the whole index's figures for the query's terms, as Elasticsearch's DFS mode does, so the scores are those of
   one index over all the documents, and a search needs no round trip to gather them;
2. each shard returns its own best ``fetch`` rows per stage (not fetch / S), the metadata filter applied inside;
   the coordinator merges them by score into the lists one index would have ranked;
3. fusion, the best row per document, the reranker (once, on the merged candidates; the query is embedded once)
   and the hits run in the coordinator, on rows numbered across shards (row * S + shard).

Dense search is exact across shards on flat indexes (HNSW and IVF-PQ are approximate per shard). Scores equal a
single index's; the order of rows of exactly equal score may differ (each index breaks ties by its own rows).

Backends: ``backend="local"`` keeps the shards in this process (tests, and the reference the Ray backend is held
to); ``backend="ray"`` makes each shard a Ray actor (the ``[ray]`` extra), on an existing cluster (``address``) or
a local one started for the caller on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .documents import Document, check_documents
from .errors import IndexFormatError, RapidragError
from .lexical import Statistics
from .locking import RWLock
from .persist import PART_PREFIX, check_destination, read_snapshot, write_snapshot
from .retriever import Retriever
from .search import EmbedderLike, Found, Mode, RerankerLike, Searcher, Stages

__all__ = ["ShardUnavailableError", "ShardedRetriever", "is_sharded", "shard_of"]

SHARDED_VERSION = 1
MISSING: Any = object()  # a shard's answer when none of its replicas is alive


class ShardUnavailableError(RapidragError):
    """A shard has no live replica left for what was asked (a change, or a search with no shard at all)."""


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard that owns ``doc_id``: CRC-32 of its UTF-8 bytes modulo ``n_shards`` (stable across processes and
    runs, unlike Python's ``hash``)."""
    return zlib.crc32(doc_id.encode("utf-8", "surrogatepass")) % n_shards


class ShardedRetriever(Searcher):
    """Lexical, dense and hybrid search over documents spread across ``n_shards`` shards.

    Parameters
    ----------
    embedder, reranker, chunker : as for ``Retriever``. The reranker runs in the coordinator, once per search.
    n_shards : how many shards (at least 1).
    backend : "local" (shards in this process) or "ray" (each shard a Ray actor).
    address : with ``backend="ray"``, the cluster to join ("auto", "ray://..." or "host:port"); None starts a
        local one on 127.0.0.1 for this process (or uses the one ``ray.init`` already started).
    **settings : the ``Retriever``'s settings (``index``, ``k1``, ``b``, ``title_weight``, ``fusion``,
        ``weights``, ``rrf_k``, ``rerank_weight``, ``rerank_depth``), the same in every shard.
    """

    def __init__(
        self,
        embedder: EmbedderLike | None = None,
        reranker: RerankerLike | None = None,
        chunker: Any = None,
        *,
        n_shards: int = 2,
        replicas: int = 1,
        backend: Literal["local", "ray"] = "local",
        address: str | None = None,
        **settings: Any,
    ) -> None:
        if not isinstance(n_shards, int) or isinstance(n_shards, bool) or n_shards < 1:
            raise ValueError(f"n_shards must be a positive int, got {n_shards!r}")
        _check_layout(replicas, backend)
        # The first shard checks the settings (and is the model of the others).
        first = Retriever(embedder, None, chunker, **settings)
        self.embedder, self.reranker, self.chunker = embedder, reranker, first.chunker
        self.index_kind = first.index_kind
        self.title_weight = first.title_weight
        self.fusion, self.weights, self.rrf_k = first.fusion, first.weights, first.rrf_k
        self.rerank_weight, self.rerank_depth = first.rerank_weight, first.rerank_depth
        self.tuned_on: dict[str, Any] | None = None
        self.n_shards, self.replicas, self.backend, self.address = n_shards, replicas, backend, address
        self._settings = dict(settings)
        self._has_dense = first.dense is not None
        self._lock = RWLock()  # searches read; a change (which may span shards) writes
        self._statistics = _GlobalStatistics()
        if backend == "local":
            others = [Retriever(embedder, None, chunker, **settings) for _ in range(n_shards - 1)]
            self._shards: list[list[Any]] = [[_Shard(r)] for r in [first, *others]]
        else:
            self._shards = _ray_shards(n_shards, replicas, embedder, chunker, settings, address)

    # -- calls to the shards ---------------------------------------------------------------------------------------

    def _each(
        self,
        method: str,
        args: Sequence[tuple[Any, ...]],
        *,
        write: bool = False,
        shards: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """``method(*args[j], **kwargs)`` on the j-th of ``shards`` (None: every shard, in order); on Ray, all at
        once. A change (``write``) goes to
        every live replica of the shard; a read to the first, then to the next if that one has died. A replica that
        died leaves the set (it would come back without its documents). A shard with no live replica left: its
        entry is ``MISSING`` for a read, and a change raises ShardUnavailableError."""
        chosen = list(range(self.n_shards)) if shards is None else list(shards)
        groups = [self._shards[i] for i in chosen]
        if self.backend == "local":
            return [group[0].call(method, *a, **kwargs) for group, a in zip(groups, args, strict=True)]
        import ray
        from ray.exceptions import RayActorError

        targets = [list(group) if write else group[:1] for group in groups]
        refs = [[r.call.remote(method, *a, **kwargs) for r in t] for t, a in zip(targets, args, strict=True)]
        out: list[Any] = []
        for j, (i, a) in enumerate(zip(chosen, args, strict=True)):
            answers: list[Any] = []
            tried = list(targets[j])
            pending = list(zip(tried, refs[j], strict=True))
            while pending:
                replica, ref = pending.pop(0)
                try:
                    answers.append(ray.get(ref))
                except RayActorError:
                    if replica in self._shards[i]:
                        self._shards[i].remove(replica)
                    spare = [r for r in self._shards[i] if r not in tried]
                    if not write and spare:  # the next live replica not yet asked
                        tried.append(spare[0])
                        pending.append((spare[0], spare[0].call.remote(method, *a, **kwargs)))
                    continue
                if not write:
                    break
            if not answers and write:
                raise ShardUnavailableError(f"shard {i}: no live replica took the change ({method})")
            out.append(answers[0] if answers else MISSING)
        return out

    def _all(self, method: str, *args: Any) -> list[Any]:
        return self._each(method, [args] * self.n_shards)

    def _require_all(self, answers: list[Any], what: str) -> None:
        missing = [i for i, a in enumerate(answers) if a is MISSING]
        if missing:
            raise ShardUnavailableError(f"shards {missing} have no live replica: cannot {what}")

    def _route(self, ids: Iterable[str]) -> list[list[int]]:
        """Positions of ``ids`` per shard."""
        out: list[list[int]] = [[] for _ in range(self.n_shards)]
        for i, doc_id in enumerate(ids):
            out[shard_of(doc_id, self.n_shards)].append(i)
        return out

    # -- changes -----------------------------------------------------------------------------------------------------

    def add(self, documents: Iterable[Any], *, batch_size: int = 32, progress: bool | None = None) -> int:
        """Index documents, each in the shard its id hashes to; returns the chunks added. Every document is
        checked before any is indexed; an id already indexed is refused (use ``upsert``)."""
        return self._write("add", documents, batch_size)

    def upsert(self, documents: Iterable[Any], *, batch_size: int = 32, progress: bool | None = None) -> int:
        """Index documents, replacing those already indexed under the same id (in the same shard)."""
        return self._write("upsert", documents, batch_size)

    def _write(self, method: str, documents: Iterable[Any], batch_size: int) -> int:
        docs = check_documents(documents)
        groups = self._route(d.id for d in docs)
        with self._lock.write():
            if method == "add":  # refused before any shard changes
                answers = self._each("taken", [([docs[i].id for i in g],) for g in groups])
                self._require_all(answers, "add")
                taken = [i for found in answers for i in found]
                if taken:
                    raise ValueError(f"documents already indexed: {taken[:5]}; use upsert to replace them")
            added = self._each(method, [([docs[i] for i in g],) for g in groups], write=True, batch_size=batch_size)
            return self._statistics.apply(added)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        ids = list(ids)
        groups = self._route(ids)
        with self._lock.write():
            return self._statistics.apply(self._each("delete", [([ids[i] for i in g],) for g in groups], write=True))

    # -- reading -----------------------------------------------------------------------------------------------------

    def get(self, doc_id: str) -> Document | None:
        answers = self._each("get", [(doc_id,)], shards=[shard_of(doc_id, self.n_shards)])
        self._require_all(answers, f"get {doc_id!r}")
        return answers[0]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        answers = self._all("documents")
        self._require_all(answers, "count the documents")
        return int(sum(answers))

    @property
    def n_chunks(self) -> int:
        """Indexed chunks of the live documents, over all shards."""
        answers = self._all("chunks")
        self._require_all(answers, "count the chunks")
        return int(sum(answers))

    @property
    def analyzer(self) -> Any:
        """BM25's word analyzer, the shards' (each shard's BM25 has the default one)."""
        from .lexical import WordAnalyzer

        analyzer = getattr(self, "_analyzer", None)
        if analyzer is None:
            analyzer = self._analyzer = WordAnalyzer()
        return analyzer

    def statistics(self, query: str) -> dict[str, Statistics]:
        """BM25's collection statistics for ``query`` over every shard (as ``Retriever.statistics`` for one)."""
        terms = self.analyzer(query)
        with self._lock.read():
            return self._statistics.of(terms)

    def chunk_vectors(self, keys: Iterable[tuple[str, int]]) -> np.ndarray | None:
        """The stored embeddings of chunks given as (document id, chunk number), each asked of its shard (as
        ``Retriever.chunk_vectors``); None when the index has no vectors."""
        if not self._has_dense:
            return None
        wanted = list(keys)
        groups = self._route(doc_id for doc_id, _ in wanted)
        shards = [i for i, g in enumerate(groups) if g]
        answers = self._each("chunk_vectors", [([wanted[j] for j in groups[i]],) for i in shards], shards=shards)
        self._require_all(answers, "read stored vectors")
        out = np.full((len(wanted), self.embedder.dim if self.embedder is not None else 0), np.nan, dtype=np.float32)
        for i, vectors in zip(shards, answers, strict=True):
            if out.shape[1] == 0:
                out = np.full((len(wanted), vectors.shape[1]), np.nan, dtype=np.float32)
            out[groups[i]] = vectors
        return out

    # -- the hooks of a search (search.Searcher) -----------------------------------------------------------------------

    @property
    def _has_vectors(self) -> bool:
        return self._has_dense

    @property
    def _dense_is_exact(self) -> bool:
        return self._has_dense and self.index_kind == "flat"

    def _select(self, filter: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return filter  # each shard applies it inside its own search

    def _first_stages(
        self,
        query: str,
        qv: np.ndarray | None,
        mode: Mode,
        selection: Mapping[str, Any] | None,
        fetch: int,
        timings: dict[str, float],
    ) -> Stages:
        # (under the read lock: no change moves the statistics meanwhile)
        statistics = self._statistics.of(self.analyzer(query)) if mode in ("lexical", "hybrid") else None
        missing: set[int] = set()
        answers = self._all("shard_stages", query, qv, mode, selection, fetch, statistics)
        missing.update(i for i, a in enumerate(answers) if a is MISSING)
        if len(missing) == self.n_shards:
            raise ShardUnavailableError(f"no shard of the {self.n_shards} has a live replica")
        # A shard without a live replica is left out, and the result says so (SearchResult.missing_shards).
        parts = [(i, a) for i, a in enumerate(answers) if i not in missing]
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        keys_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in parts[0][1]:
            rows, docs, scores = self._merge([(i, a[name]) for i, a in parts], fetch)
            lists[name] = (rows, scores)
            keys_of[name] = (rows, docs)
        return Stages(lists, _document_lookup(list(keys_of.values())), sorted(missing))

    def _merge(
        self, parts: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]], fetch: int
    ) -> tuple[np.ndarray, ...]:
        """The shards' lists of one stage as one: rows and documents numbered across shards (x * S + shard), best
        first by score (then by that number), the first ``fetch``."""
        s = self.n_shards
        rows = np.concatenate([np.asarray(r, dtype=np.int64) * s + i for i, (r, _, _) in parts])
        docs = np.concatenate([np.asarray(d, dtype=np.int64) * s + i for i, (_, d, _) in parts])
        scores = np.concatenate([np.asarray(sc) for _, (_, _, sc) in parts])
        order = np.lexsort((rows, -scores))[:fetch]
        return rows[order], docs[order], scores[order]

    def _found(self, rows: np.ndarray) -> dict[int, Found]:
        s = self.n_shards
        keys = np.asarray(rows, dtype=np.int64)
        asked = [i for i in range(s) if np.any(keys % s == i)]  # only the shards that hold some of the rows
        groups = [keys[keys % s == i] for i in asked]
        answers = self._each("shard_found", [(g // s,) for g in groups], shards=asked)
        self._require_all(answers, "read the hits' texts")
        return {int(key): f for g, found in zip(groups, answers, strict=True) for key, f in zip(g, found, strict=True)}

    # -- persistence -------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the folder ``path``: each shard atomically into its own folder ``part-NNN`` (the
        ``Retriever`` format), then the index's manifest, last, which says it is sharded and how."""
        root = Path(path)
        check_destination(root)
        root.mkdir(parents=True, exist_ok=True)
        parts = [str((root / f"{PART_PREFIX}{i:03d}").resolve()) for i in range(self.n_shards)]
        with self._lock.read():
            self._require_all(self._each("save", [(p,) for p in parts]), "save")
        config = {
            "sharded": {"version": SHARDED_VERSION, "n_shards": self.n_shards, "parts": [Path(p).name for p in parts]},
            "settings": self._settings,
            "tuned_on": self.tuned_on,
        }
        out = write_snapshot(root, {}, config, version=SHARDED_VERSION)
        kept = {Path(p).name for p in parts}
        for old in root.iterdir():  # the parts of an earlier save with more shards, no longer in the manifest
            if old.name.startswith(PART_PREFIX) and old.name not in kept and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return out

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Any = "auto",
        reranker: Any = "auto",
        backend: Literal["local", "ray"] = "local",
        replicas: int = 1,
        address: str | None = None,
    ) -> ShardedRetriever:
        """Open an index written by ``save``; ``embedder`` and ``reranker`` as for ``Retriever.load``."""
        root = Path(path)
        _check_layout(replicas, backend)
        snap = read_snapshot(root, version=SHARDED_VERSION)
        info = snap.config.get("sharded")
        if not isinstance(info, dict):
            raise IndexFormatError(f"{root}: not a sharded index (open it with Retriever.load)")
        parts = [root / name for name in info["parts"]]
        missing = [str(p) for p in parts if not p.is_dir()]
        if len(parts) != info["n_shards"] or missing:
            raise IndexFormatError(f"{root}: the index has {info['n_shards']} shards; missing: {missing or parts}")
        # The models once: the first part opens them, the others share its embedder; the coordinator reranks.
        first = Retriever.load(parts[0], embedder=embedder, reranker=reranker)
        shared = first.embedder if first.embedder is not None else None
        shards = [first] + [Retriever.load(p, embedder=shared, reranker=None) for p in parts[1:]]
        out = cls.__new__(cls)
        Searcher.__init__(out)
        out.embedder, out.chunker, out.reranker = first.embedder, first.chunker, first.reranker
        first.reranker = None
        out.index_kind, out.title_weight = first.index_kind, first.title_weight
        out.fusion, out.weights, out.rrf_k = first.fusion, first.weights, first.rrf_k
        out.rerank_weight, out.rerank_depth = first.rerank_weight, first.rerank_depth
        out.tuned_on = snap.config.get("tuned_on")
        out.n_shards, out.replicas, out.backend, out.address = len(shards), replicas, backend, address
        out._settings = dict(snap.config.get("settings") or {})
        out._has_dense = first.dense is not None
        out._lock = RWLock()
        if backend == "local":
            out._shards = [[_Shard(r)] for r in shards]
        else:
            saved = [str(p) for p in parts]
            out._shards = _ray_shards(len(shards), replicas, None, None, out._settings, address, saved)
        answers = out._all("all_statistics")
        out._require_all(answers, "sum BM25's statistics")
        out._statistics = _GlobalStatistics()
        out._statistics.apply([(0, a) for a in answers])
        return out

    def __repr__(self) -> str:
        return f"ShardedRetriever({len(self)} documents in {self.n_shards} shards, {self.backend})"


def _check_layout(replicas: Any, backend: Any) -> None:
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise ValueError(f"replicas must be a positive int, got {replicas!r}")
    if replicas > 1 and backend != "ray":
        raise ValueError("replicas > 1 need backend='ray' (copies of a shard in one process would not help)")


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds an index saved by ``ShardedRetriever.save`` (False for anything else, which
    ``Retriever.load`` then judges)."""
    try:
        snap = read_snapshot(path, version=SHARDED_VERSION)
    except (OSError, IndexFormatError):
        return False
    return isinstance(snap.config.get("sharded"), dict)


class _GlobalStatistics:
    """BM25's collection statistics of the whole index, per field: documents, total length, and every term's
    document frequency, changed in place by each change's report (a dict of 10^5-10^6 terms is not copied)."""

    def __init__(self) -> None:
        self.fields: dict[str, tuple[list[float], dict[str, int]]] = {}  # field -> ([documents, length], df)

    def apply(self, answers: Iterable[tuple[int, Mapping[str, Statistics]]]) -> int:
        """Add each shard's (count, changes of the statistics) answer; returns the counts' sum."""
        total = 0
        for count, changes in answers:
            total += int(count)
            for name, change in changes.items():
                sizes, df = self.fields.setdefault(name, ([0.0, 0.0], {}))
                sizes[0] += change.documents
                sizes[1] += change.total_length
                for term, n in change.df.items():
                    now = df.get(term, 0) + n
                    if now:
                        df[term] = now
                    else:
                        df.pop(term, None)
        return total

    def of(self, terms: Iterable[str]) -> dict[str, Statistics]:
        """The statistics that scores of ``terms`` depend on, per field."""
        wanted = set(terms)
        return {
            name: Statistics(int(sizes[0]), float(sizes[1]), {t: df.get(t, 0) for t in wanted})
            for name, (sizes, df) in self.fields.items()
        }


def _document_lookup(pairs: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[np.ndarray], np.ndarray]:
    """A function from rows to their documents, over the (rows, documents) of the merged stage lists."""
    rows = np.concatenate([r for r, _ in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    docs = np.concatenate([d for _, d in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    rows, docs = rows[order], docs[order]

    def document_of(keys: np.ndarray) -> np.ndarray:
        return docs[np.searchsorted(rows, keys)]

    return document_of


def _ray_shards(
    n_shards: int,
    replicas: int,
    embedder: Any,
    chunker: Any,
    settings: dict[str, Any],
    address: str | None,
    parts: list[str] | None = None,
) -> list[list[Any]]:
    """Shard actors on a Ray cluster, ``replicas`` per shard (the cluster started on 127.0.0.1 when none is
    running and no ``address`` is given)."""
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'rapidrag[ray]'") from None
    from .store import _model_spec

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address is None:
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as e:
                raise ConnectionError(f"no Ray cluster answers at {address!r}: {e}") from None
    spec = json.loads(json.dumps(_model_spec(embedder))) if embedder is not None else None
    chunking = {"max_tokens": chunker.max_tokens, "overlap": chunker.overlap} if chunker is not None else None
    # A shard's replicas spread over the nodes where the cluster has several (SPREAD places them apart).
    actor = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(_ShardActor)
    return [
        [actor.remote(spec, chunking, settings, parts[i] if parts else None) for _ in range(replicas)]
        for i in range(n_shards)
    ]


class _Shard:
    """A shard: a ``Retriever``, called by method name (as a Ray actor is)."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "documents":
            return len(self.retriever)
        if method == "chunks":
            return self.retriever.n_chunks
        if method == "taken":  # which of these ids the shard holds
            return [doc_id for doc_id in args[0] if self.retriever.get(doc_id) is not None]
        fields = {"bm25": self.retriever.bm25}
        if self.retriever.bm25_title is not None:
            fields["bm25_title"] = self.retriever.bm25_title
        if method == "all_statistics":
            return {name: index.all_statistics() for name, index in fields.items()}
        if method in ("add", "upsert", "delete"):  # the count, and what the change did to BM25's statistics
            marks = {name: index.mark() for name, index in fields.items()}
            count = getattr(self.retriever, method)(*args, **kwargs)
            return count, {name: index.statistics_since(marks[name]) for name, index in fields.items()}
        return getattr(self.retriever, method)(*args, **kwargs)


class _ShardActor(_Shard):
    """A shard in a Ray actor: a ``Retriever`` with its own embedder (opened from the coordinator's model spec),
    or loaded from a saved part."""

    def __init__(
        self, spec: dict[str, Any] | None, chunking: dict[str, int] | None, settings: dict[str, Any], part: str | None
    ) -> None:
        if part is not None:
            super().__init__(Retriever.load(part, reranker=None))
            return
        embedder = chunker = None
        if spec is not None:
            from .store import _build_model

            embedder = _build_model("embedder", spec, Path(spec["folder"]), Path(spec["model_file"]))
            if chunking is not None:
                from .chunker import Chunker

                chunker = Chunker(embedder.tokenizer, chunking["max_tokens"], chunking["overlap"])
        super().__init__(Retriever(embedder, None, chunker, **settings))
