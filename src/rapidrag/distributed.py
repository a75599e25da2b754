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
a local one started for the caller on 127.0.0.1, ``replicas`` per shard on different nodes.

On Ray, a search's reads (each shard's stage lists, the texts of hits) go over a direct connection to each shard
actor (``rapidrag.channels``: a sixteenth to a tenth of a Ray call's round here), everything else through Ray
calls. Failures: a read goes to one replica (and to a second when the first is slower than ``hedge_ms``); a
change goes to every replica with the index's next sequence number, which a shard applies once, and is logged until
the next save. Ray restarts a shard actor that dies; before it answers again the coordinator restores it to the
last snapshot and replays the logged changes (``_recover``). The module runs past 500 lines because the
coordinator's calls to the shards (scatter, failover, hedging, restore) and the search hooks over them are one
concern: what makes several processes answer as one index.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pickle
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import _core, store
from .dense import check_options, runtime_options
from .documents import Document, check_documents, check_same_text
from .errors import IndexFormatError, ShardUnavailableError
from .lexical import Statistics
from .locking import RWLock
from .persist import PART_PREFIX, check_destination, check_generation, read_snapshot, write_snapshot
from .process import freeze_loaded
from .retriever import CONFIGURABLE, Retriever, checked_configure
from .search import EmbedderLike, Found, Mode, RerankerLike, Searcher, Stages
from .store import READS_VERSIONS

__all__ = ["ShardUnavailableError", "ShardedRetriever", "is_sharded", "shard_of"]

if TYPE_CHECKING:
    from .channels import Channels

SHARDED_VERSION = 1
MISSING: Any = object()  # a shard's answer when none of its replicas is alive
RECOVER_S = 60.0  # how long a replica that died is waited for (Ray restarts its actor) before it counts as lost
# A shard sends the chunk texts of the rows the hits will most likely be with its lists (sent along, they save a
# second round). The hits are the best rows after fusion, within about a stage's first ``want * FOUND_MARGIN``
# rows of the whole index, of which a shard holds its share: so it sends each stage's best ``found_ahead(want, S)``
# rows, twice its share (never more than the whole index's margin). Over 2 shards (20 rows a stage for 10 hits),
# 16 of 300 hybrid searches on SciFact needed a second round for a hit (152 with 10 rows); over 4 shards (10 rows),
# 27 of 300 (none with 15), and the answers are half as large (benchmarks/sharded_overhead.py's index; BENCHMARKS.md).
FOUND_MARGIN = 2
CHANNEL_READS = frozenset({"shard_stages", "shard_found"})  # the reads a search makes, sent over a shard's channel
CHANNEL_WAIT_S = 30.0  # a read unanswered this long on a channel (no hedging) is asked again through Ray
CONNECT_S = 2.0  # how long opening a channel may take (a port that drops packets would hang for minutes)


def found_ahead(want: int, n_shards: int) -> int:
    """How many of each stage's best rows a shard sends the texts of with its lists, for ``want`` hits: twice its
    share of the whole index's ``want * FOUND_MARGIN`` (see FOUND_MARGIN), at most all of them; 0 for none."""
    return min(want * FOUND_MARGIN, -(-2 * want * FOUND_MARGIN // n_shards))


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
    hedge_ms : with ``replicas`` > 1, a read not answered within this many ms is sent to a second replica too.
    channels : with ``backend="ray"``, send a search's reads over direct connections to the shard actors
        (``rapidrag.channels``; a port of each actor's node must be reachable from this process, else the reads
        go through Ray calls as with False).
    **settings : the ``Retriever``'s settings (``index``, ``index_options``, ``k1``, ``b``, ``title_weight``,
        ``fusion``, ``weights``, ``rrf_k``, ``rerank_weight``, ``rerank_depth``), the same in every shard.
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
        hedge_ms: float | None = None,
        channels: bool = True,
        **settings: Any,
    ) -> None:
        if not isinstance(n_shards, int) or isinstance(n_shards, bool) or n_shards < 1:
            raise ValueError(f"n_shards must be a positive int, got {n_shards!r}")
        _check_layout(replicas, backend)
        super().__init__()
        # The first shard checks the settings (and is the model of the others).
        first = Retriever(embedder, None, chunker, **settings)
        self.embedder, self.reranker, self.chunker = embedder, reranker, first.chunker
        self.index_kind = first.index_kind
        self.title_weight = first.title_weight
        self.fusion, self.weights, self.rrf_k = first.fusion, first.weights, first.rrf_k
        self.rerank_weight, self.rerank_depth = first.rerank_weight, first.rerank_depth
        self.tuned_on: dict[str, Any] | None = None
        self.n_shards, self.replicas, self.backend, self.address = n_shards, replicas, backend, address
        self._reranker_spec: dict[str, Any] | None = None  # (loaded without the reranker it records: kept at a save)
        self._settings = dict(settings)
        self._has_dense = first.dense is not None
        self._lock = RWLock()  # searches read; a change (which may span shards) writes
        self._statistics = _GlobalStatistics()
        self._start_log(n_shards, None, 0)
        self.hedge_ms = _check_hedge(hedge_ms)
        self._open_channels(channels, backend)
        if backend == "local":
            others = [Retriever(embedder, None, chunker, **settings) for _ in range(n_shards - 1)]
            self._shards: list[list[Any]] = [[_Shard(r)] for r in [first, *others]]
        else:
            self._shards = _ray_shards(n_shards, replicas, embedder, chunker, settings, address, self._authkey)

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
        once. A change (``write``) gets the next sequence number, is logged (until the next save) and goes to every
        replica of the shard; a replica that died is restored (Ray restarts the actor; it reloads the last snapshot
        and the logged writes) and the change is answered from it if no other replica took it. A read goes to the
        first live replica; with ``hedge_ms`` set, to a second one as well if the first has not answered by then,
        and the first answer wins; a replica that died is left for a spare (and restored at the next change), or
        restored at once when it was the last. A shard with no replica left: its entry is ``MISSING`` for a read,
        and a change raises ShardUnavailableError."""
        chosen = list(range(self.n_shards)) if shards is None else list(shards)
        if write:
            self._seq += 1
            kwargs = {**kwargs, "seq": self._seq}
            if self.backend == "ray":  # (shards in this process die with it: nothing to replay)
                for i, a in zip(chosen, args, strict=True):
                    self._log[i].append((self._seq, method, a, kwargs))
        if self.backend == "local":
            return [self._shards[i][0].call(method, *a, **kwargs) for i, a in zip(chosen, args, strict=True)]
        if write:
            return self._write_ray(method, chosen, args, kwargs)
        return self._read_ray(method, chosen, args, kwargs)

    def _write_ray(self, method: str, chosen: list[int], args: Sequence[tuple[Any, ...]], kwargs: Any) -> list[Any]:
        import ray
        from ray.exceptions import ActorUnschedulableError, RayActorError

        lost = (RayActorError, ActorUnschedulableError)  # died, or pinned to a node that is gone

        for i in chosen:
            self._recover_suspects(i)
        refs = [
            [(r, r.call.remote(method, *a, **kwargs)) for r in self._shards[i]]
            for i, a in zip(chosen, args, strict=True)
        ]
        out: list[Any] = []
        for i, sent in zip(chosen, refs, strict=True):
            answers = []
            for replica, ref in sent:
                try:
                    answers.append(ray.get(ref))
                except lost:
                    self._suspect(i, replica)
            for replica in list(self._suspects[i]) if not answers else []:
                back = self._recover(i, replica, kwargs["seq"])  # every replica died: restore one, which replays
                if back is not None:  # this change too, and take its answer
                    answers.append(back[1])
                    break
            if not answers:
                raise ShardUnavailableError(f"shard {i}: no replica took the change ({method}), none came back")
            out.append(answers[0])
        return out

    def _read_ray(self, method: str, chosen: list[int], args: Sequence[tuple[Any, ...]], kwargs: Any) -> list[Any]:
        import ray
        from ray.exceptions import ActorUnschedulableError, RayActorError

        lost = (RayActorError, ActorUnschedulableError)  # died, or pinned to a node that is gone

        # A read's call and its answer travel as one pickled bytes object each: Ray serializes each argument of a
        # call on its own, and a search's eight took 0.27 ms more a round over 2 shards than one (BENCHMARKS.md).
        packed = {id(a): pickle.dumps((method, a, kwargs), protocol=5) for a in args}
        direct: dict[int, Any] = {}
        slow: dict[int, Any] = {}
        if self._channels is not None and method in CHANNEL_READS:
            direct, slow = self._read_direct(self._channels, chosen, args, packed)

        def ask(replica: Any, a: tuple[Any, ...]) -> tuple[Any, Any]:
            return replica, replica.packed.remote(packed[id(a)])

        # The shards the channels did not answer, asked through Ray: the first live replica, or (slower than
        # hedge_ms on its channel) the next one. (Each shard's replicas read once: another search may suspect one.)
        first = {i: next(iter(self._shards[i]), None) for i in chosen}
        sent: list[list[tuple[Any, Any]]] = [
            [] if i in direct or i in slow or first[i] is None else [ask(first[i], a)]
            for i, a in zip(chosen, args, strict=True)
        ]
        out: list[Any] = []
        for i, a, pending in zip(chosen, args, sent, strict=True):
            if i in direct:
                out.append(direct[i])
                continue
            asked = {id(r) for r, _ in pending} | ({id(slow[i])} if i in slow else set())
            self.hedged += i in slow
            answer: Any = MISSING
            restored = False
            while True:
                if not pending:  # the next live replica not asked yet; with none, one restored (once)
                    spare = next((r for r in self._shards[i] if id(r) not in asked), None)
                    if spare is None and not restored:
                        restored = True
                        spare = self._restore_one(i)
                    if spare is None:
                        break
                    pending.append(ask(spare, a))
                    asked.add(id(spare))
                if self.hedge_ms is not None and len(pending) == 1:
                    spare = next((r for r in self._shards[i] if id(r) not in asked), None)
                    if spare is not None and not ray.wait([pending[0][1]], timeout=self.hedge_ms / 1000)[0]:
                        self.hedged += 1  # slow: a second replica asked too, and the first answer taken
                        pending.append(ask(spare, a))
                        asked.add(id(spare))
                done, _ = ray.wait([ref for _, ref in pending], num_returns=1)
                replica, ref = next(p for p in pending if p[1] == done[0])
                pending.remove((replica, ref))
                try:
                    answer = pickle.loads(ray.get(ref))
                    break
                except lost:
                    self._suspect(i, replica)
            out.append(answer)
        return out

    def _open_channels(self, channels: bool, backend: str) -> None:
        """The direct connections of a search's reads (``rapidrag.channels``), with a new key for the actors."""
        from .channels import Channels

        self._authkey = os.urandom(32)
        self._channels = Channels(self._authkey) if channels and backend == "ray" else None
        self._addresses: dict[int, tuple[str, int] | None] = {}  # per replica; None: no channel reaches it

    @property
    def channels(self) -> bool:
        """Whether a search's reads go over direct connections to the shard actors (settable; Ray only)."""
        return self._channels is not None

    @channels.setter
    def channels(self, on: bool) -> None:
        from .channels import Channels

        if on and self.backend != "ray":
            raise ValueError("channels are for shards in Ray actors (backend='ray')")
        self._channels = Channels(self._authkey) if on else None

    def _read_direct(
        self, channels: Channels, chosen: list[int], args: Sequence[tuple[Any, ...]], packed: dict[int, bytes]
    ) -> tuple[dict[int, Any], dict[int, Any]]:
        """A read on each shard's first live replica over its channel, all at once. Returns the answers by shard,
        and by shard the replica that was slower than ``hedge_ms`` where the shard has another replica to ask (its
        connection is closed: the late answer is not waited for). A shard whose channel did not open, or that is
        not answered within ``CHANNEL_WAIT_S``, is left to Ray calls; a replica whose connection breaks (its
        process is gone) is suspected. An error the read raised in a shard is raised here."""
        from multiprocessing import AuthenticationError
        from multiprocessing.connection import wait

        from .channels import OK

        waiting: dict[Any, tuple[int, Any, float, bool]] = {}  # connection -> (shard, replica, deadline, hedged)
        now = time.monotonic()
        for i, a in zip(chosen, args, strict=True):
            live = list(self._shards[i])  # (a copy: another search may suspect a replica meanwhile)
            if not live:
                continue
            replica = live[0]
            address = self._channel_address(replica)
            if address is None:
                continue
            try:
                conn = channels.connection(id(replica), address, CONNECT_S)
            except (OSError, EOFError, AuthenticationError):
                self._addresses.pop(id(replica), None)  # asked again next time (the replica may have restarted)
                continue
            try:
                conn.send_bytes(packed[id(a)])
            except OSError:
                self._lost_channel(channels, i, replica)
                continue
            hedged = self.hedge_ms is not None and len(live) > 1
            wait_s = self.hedge_ms / 1000 if hedged and self.hedge_ms is not None else CHANNEL_WAIT_S
            waiting[conn] = (i, replica, now + wait_s, hedged)
        answers: dict[int, Any] = {}
        slow: dict[int, Any] = {}
        failure: BaseException | None = None
        while waiting:
            left = min(deadline for _, _, deadline, _ in waiting.values()) - time.monotonic()
            for ready in wait(list(waiting), timeout=max(0.0, left)):
                i, replica, _, _ = waiting.pop(ready)
                try:
                    reply = ready.recv_bytes()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    self._lost_channel(channels, i, replica)
                    continue
                if reply[:1] == OK:
                    answers[i] = pickle.loads(reply[1:])
                    self.channel_reads += 1
                else:  # (raised once every channel is read, so that none is left owing an answer)
                    failure = pickle.loads(reply[1:])
            now = time.monotonic()
            for conn in [c for c, (_, _, deadline, _) in waiting.items() if deadline <= now]:
                i, replica, _, hedged = waiting.pop(conn)
                channels.drop(id(replica))
                if hedged:
                    slow[i] = replica
        if failure is not None:
            raise failure
        return answers, slow

    def _channel_address(self, replica: Any) -> tuple[str, int] | None:
        """Where ``replica`` takes direct connections (asked of it once through Ray), or None."""
        key = id(replica)
        if key in self._addresses:
            return self._addresses[key]
        import ray
        from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError, RayTaskError

        try:
            host, port = ray.get(replica.call.remote("channel"), timeout=CONNECT_S * 5)
        except (RayActorError, ActorUnschedulableError, GetTimeoutError):  # dead, restarting or slow: Ray calls
            return None
        except RayTaskError:  # the actor could not listen: Ray calls for good
            self._addresses[key] = None
            return None
        address = self._addresses[key] = (str(host), int(port))
        return address

    def _lost_channel(self, channels: Channels, i: int, replica: Any) -> None:
        """A replica's connection broke: its process is gone (or unreachable); suspected until restored."""
        channels.drop(id(replica))
        self._suspect(i, replica)

    def _restore_one(self, i: int) -> Any:
        """A replica of shard ``i`` that died, brought back; None if none comes back."""
        for replica in list(self._suspects[i]):
            back = self._recover(i, replica, None)
            if back is not None:
                return back[0]
        return None

    def _suspect(self, i: int, replica: Any) -> None:
        """A replica whose call failed: out of the shard's set until it is restored (its channel's address asked
        again then: Ray restarts an actor in a new process)."""
        self._addresses.pop(id(replica), None)
        with self._replicas:
            if replica in self._shards[i]:
                self._shards[i].remove(replica)
                self._suspects[i].append(replica)

    def _recover_suspects(self, i: int) -> None:
        for replica in list(self._suspects[i]):
            self._recover(i, replica, None)

    def _recover(self, i: int, replica: Any, seq: int | None) -> tuple[Any, Any] | None:
        """Bring a replica of shard ``i`` that died back: Ray restarts its actor (fresh, from its first part); it is
        restored to the last snapshot, then given the writes logged since, in order. Returns (replica, its answer to
        the write ``seq``, or None), or None when the actor does not come back within ``RECOVER_S``."""
        with self._recovering:  # one recovery at a time (searches run side by side)
            if replica not in self._suspects[i]:
                return (replica, None) if replica in self._shards[i] else None
            return self._restore(i, replica, seq)

    def _restore(self, i: int, replica: Any, seq: int | None) -> tuple[Any, Any] | None:
        import ray
        from ray.exceptions import ActorUnavailableError, ActorUnschedulableError, GetTimeoutError, RayActorError

        lost = (RayActorError, ActorUnschedulableError)

        # A call to an actor that Ray is restarting waits for it (or fails as "unavailable" for a while); one that
        # died for good (killed without restart, its node gone for good) fails as "died" at once.
        deadline = time.monotonic() + RECOVER_S
        while True:
            try:
                applied = ray.get(replica.call.remote("applied"), timeout=max(0.1, deadline - time.monotonic()))
                break
            except (ActorUnavailableError, GetTimeoutError):
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.1)
            except lost:
                return None
        try:
            if applied < self._saved_seq:  # a fresh actor: back to the last snapshot
                applied = ray.get(replica.call.remote("restore", self._parts[i], self._saved_seq))
            answer = None
            for logged, method, args, kwargs in self._log[i]:
                if logged > applied:
                    got = ray.get(replica.call.remote(method, *args, **kwargs))
                    if logged == seq:
                        answer = got
        except lost:
            return None
        with self._replicas:
            self._suspects[i].remove(replica)
            self._shards[i].append(replica)
        self.recovered += 1
        return replica, answer

    def _start_log(self, n_shards: int, parts: list[str] | None, seq: int) -> None:
        """The writes' sequence numbers and log: the index's last number, the snapshot each shard restarts from
        (``parts``, at number ``seq``), the writes since (per shard), the replicas out until restored."""
        import threading

        self._seq = self._saved_seq = seq
        self._changes = self._saved_changes = 0  # changes made (unsaved_changes), and how many the last save holds
        self._parts: list[str | None] = list(parts) if parts is not None else [None] * n_shards
        self._log: list[list[tuple[int, str, tuple[Any, ...], dict[str, Any]]]] = [[] for _ in range(n_shards)]
        self._suspects: list[list[Any]] = [[] for _ in range(n_shards)]
        self._replicas = threading.Lock()  # guards the replica lists (searches fail over side by side)
        self._recovering = threading.Lock()
        # A compaction is logged as a write but runs under the read lock (searches go on): it and a save, which
        # resets the log under the read lock too, take turns.
        self._compacting = threading.Lock()
        self.hedged = 0  # reads sent to a second replica because the first was slow
        self.recovered = 0  # replicas brought back after dying
        self.channel_reads = 0  # reads answered over a shard actor's channel

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

    def add(self, documents: Iterable[Any], *, batch_size: int | None = None, progress: bool | None = None) -> int:
        """Index documents, each in the shard its id hashes to; returns the chunks added. Every document is
        checked before any is indexed; an id already indexed is refused (use ``upsert``)."""
        return self._write("add", documents, batch_size)

    def upsert(self, documents: Iterable[Any], *, batch_size: int | None = None, progress: bool | None = None) -> int:
        """Index documents, replacing those already indexed under the same id (in the same shard)."""
        return self._write("upsert", documents, batch_size)

    def _write(self, method: str, documents: Iterable[Any], batch_size: int | None) -> int:
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
            self._changes += bool(docs)
            return self._statistics.apply(added)

    def replace_metadata(self, documents: Iterable[Any]) -> int:
        """``Retriever.replace_metadata`` in the shards the documents' ids hash to: checked here first (each
        indexed, with the same text and title), so that a refused document changes no shard."""
        docs = check_documents(documents)
        groups = self._route(d.id for d in docs)
        with self._lock.write():
            for doc, old in zip(docs, self.get_many([d.id for d in docs]), strict=True):
                check_same_text(doc, old)
            answers = self._each("replace_metadata", [([docs[i] for i in g],) for g in groups], write=True)
            self._changes += bool(docs)
            return self._statistics.apply(answers)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        ids = list(ids)
        groups = self._route(ids)
        with self._lock.write():
            removed = self._statistics.apply(self._each("delete", [([ids[i] for i in g],) for g in groups], write=True))
            self._changes += bool(removed)
            return removed

    def compact(self) -> int:
        """``Retriever.compact`` in every shard, on each replica: the dense indexes drop the deleted rows they
        still hold (HNSW's tombstones); returns how many vectors were dropped (one replica's count a shard).
        Searches go on meanwhile, with the same results before and after; writes and saves wait (a compaction
        is logged as a write is, so that a replica restored later compacts too), for as long as the slowest
        shard's HNSW rebuild takes. An index that takes writes while it serves is better left to compact by
        itself: ``index_options={"compact_fraction": ...}`` has each shard rebuild in the background, beside its
        writes."""
        with self._compacting, self._lock.read():
            answers = self._each("compact", [()] * self.n_shards, write=True)
            self._require_all(answers, "compact")
            return sum(count for count, _ in answers)  # (a change's answer: its count, BM25's statistics since)

    def configure(self, **settings: Any) -> None:
        """``Retriever.configure`` for the whole index (what ``rapidrag tune`` tries; the same names, checked the
        same way before anything changes): BM25's ``k1``, ``b`` and ``title_weight`` in every shard, where the
        lexical stage scores; ``fusion``, ``weights``, ``rerank_weight`` and ``rerank_depth`` here, where they
        are used, and in the shards too, whose first part's settings a saved index reopens with. A change to every
        shard (each replica; logged, so that a restored replica has it too)."""
        unknown = sorted(set(settings) - CONFIGURABLE)
        if unknown:
            known = ", ".join(sorted(CONFIGURABLE))
            raise TypeError(f"configure() got unknown setting(s) {', '.join(unknown)} (known: {known})")
        given = checked_configure(self, settings)
        with self._compacting, self._lock.write():
            self._require_all(self._each("configure", [()] * self.n_shards, write=True, **given), "configure")
            self._changes += 1
            self._use_settings(given)  # (k1 and b live in the shards' BM25 alone)

    @property
    def has_title_field(self) -> bool:
        """Whether BM25 has a title field (``Retriever.has_title_field``; the same in every shard)."""
        answers = self._all("has_title_field")
        self._require_all(answers, "read the fields")
        return bool(answers[0])

    # -- reading -----------------------------------------------------------------------------------------------------

    def get(self, doc_id: str) -> Document | None:
        answers = self._each("get", [(doc_id,)], shards=[shard_of(doc_id, self.n_shards)])
        self._require_all(answers, f"get {doc_id!r}")
        return answers[0]  # type: ignore[no-any-return]

    def get_many(self, ids: Iterable[str]) -> list[Document | None]:
        """``get`` for each of ``ids``, in their order (None for an id not indexed): one call to each shard."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of str (wrap a single id in a list)")
        ids = list(ids)
        groups = self._route(ids)
        answers = self._each("get_many", [([ids[i] for i in g],) for g in groups])
        self._require_all(answers, "get the documents")
        out: list[Document | None] = [None] * len(ids)
        for group, docs in zip(groups, answers, strict=True):
            for i, doc in zip(group, docs, strict=True):
                out[i] = doc
        return out

    def ids(self) -> list[str]:
        """The ids of the indexed documents, shard by shard (each in the order it indexed them)."""
        answers = self._all("ids")
        self._require_all(answers, "list the documents")
        return [doc_id for answer in answers for doc_id in answer]

    def metadata_kinds(self) -> dict[str, set[str]]:
        """Each metadata field's kinds of value over the shards that answer (``Retriever.metadata_kinds``)."""
        out: dict[str, set[str]] = {}
        for answer in self._all("metadata_kinds"):
            for field, kinds in ({} if answer is MISSING else answer).items():
                out.setdefault(field, set()).update(kinds)
        return out

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
    def index_options(self) -> dict[str, Any]:
        """The shards' dense index settings (the same in every shard: ``Retriever.index_options``)."""
        answers = self._all("index_options")
        self._require_all(answers, "read the index options")
        return dict(answers[0])

    def set_index_options(self, **options: Any) -> dict[str, Any]:
        """``Retriever.set_index_options`` in every shard (each replica; logged, so that a restored replica has
        them too): checked here first, so that a refused setting changes no shard. Returns the settings now in
        use."""
        if not self._has_dense:
            raise self._no_dense_index()
        runtime_options(self.index_kind, options, self.index_options.get("nlist"))  # (the check alone)
        with self._compacting, self._lock.write():
            self._require_all(self._each("set_index_options", [()] * self.n_shards, write=True, **options), "set")
            self._changes += 1
        return self.index_options

    def missing_shards(self) -> list[int]:
        """The shards that have no live replica now (one round to every shard: a replica found dead is restored
        where Ray can restart it); empty when every shard answers. What ``SearchResult.missing_shards`` would
        name for a search now, and ``rapidrag serve``'s ``GET /readyz``."""
        with self._lock.read():
            return [i for i, answer in enumerate(self._all("applied")) if answer is MISSING]

    @property
    def removed_vectors(self) -> int:
        """Vectors of deleted chunks the shards' dense indexes still hold and skip (``Retriever.removed_vectors``),
        over all shards."""
        answers = self._all("removed_vectors")
        self._require_all(answers, "count the removed vectors")
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
        *,
        want: int = 0,
        per_document: bool = False,
    ) -> Stages:
        # (under the read lock: no change moves the statistics meanwhile)
        # The query analysed once, here: the shards get its terms (their analyzers are this one).
        lexical = mode in ("lexical", "hybrid")
        terms = self.analyzer(query) if lexical else []
        statistics = self._statistics.of(terms) if lexical else None
        missing: set[int] = set()
        per_document = per_document and mode == "lexical"  # (a document's rows are all in one shard)
        clock = time.perf_counter()
        ahead = found_ahead(want, self.n_shards)
        answers = self._all("shard_stages", terms, qv, mode, selection, fetch, statistics, ahead, per_document)
        timings["shards_ms"] = (time.perf_counter() - clock) * 1000  # the round to the shards, their stages in it
        missing.update(i for i, a in enumerate(answers) if a is MISSING)
        if len(missing) == self.n_shards:
            raise ShardUnavailableError(f"no shard of the {self.n_shards} has a live replica")
        # A shard without a live replica is left out, and the result says so (SearchResult.missing_shards).
        parts = [(i, a[0]) for i, a in enumerate(answers) if i not in missing]
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        keys_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in parts[0][1]:
            rows, docs, scores = self._merge([(i, a[name]) for i, a in parts], fetch)
            lists[name] = (rows, scores)
            keys_of[name] = (rows, docs)
        s = self.n_shards
        found = {r * s + i: f for i, a in enumerate(answers) if i not in missing for r, f in a[1].items()}
        return Stages(lists, _document_lookup(list(keys_of.values())), per_document, sorted(missing), found)

    def _merge(
        self, parts: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]], fetch: int
    ) -> tuple[np.ndarray, ...]:
        """The shards' lists of one stage as one: rows and documents numbered across shards (x * S + shard), best
        first by score (then by that number), the first ``fetch``."""
        s = self.n_shards
        # Each shard's list is best first, by score then row, as BM25's are: a merge of their heads (a few us
        # against about 50 for the sort below, for 4 lists of 400). A list out of that order (equal dense scores
        # in FAISS's order) is sorted instead.
        local_rows = np.concatenate([np.asarray(r, dtype=np.int64) for _, (r, _, _) in parts])
        local_docs = np.concatenate([np.asarray(d, dtype=np.int64) for _, (_, d, _) in parts])
        scores = np.concatenate([np.asarray(sc) for _, (_, _, sc) in parts])
        row_splits = np.fromiter(itertools.accumulate((len(r) for _, (r, _, _) in parts), initial=0), np.int64)
        shards = np.fromiter((i for i, _ in parts), np.int64)
        n = min(fetch, len(scores))
        merged = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float32)
        if (
            scores.dtype == np.float32
            and _core.merge_shard_lists(scores, local_rows, local_docs, row_splits, shards, s, *merged) == n
        ):
            return merged
        shard_of = np.repeat(shards, np.diff(row_splits))
        rows, docs = local_rows * s + shard_of, local_docs * s + shard_of
        if len(scores) > fetch:  # only the rows scoring at least the fetch-th best score are sorted
            cut = np.partition(scores, len(scores) - fetch)[len(scores) - fetch]
            keep = np.flatnonzero(scores >= cut)
            rows, docs, scores = rows[keep], docs[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:fetch]
        return rows[order], docs[order], scores[order]

    def _found(self, rows: np.ndarray) -> dict[int, Found]:
        s = self.n_shards
        keys = np.asarray(rows, dtype=np.int64)
        asked = [i for i in range(s) if np.any(keys % s == i)]  # only the shards that hold some of the rows
        groups = [keys[keys % s == i] for i in asked]
        answers = self._each("shard_found", [(g // s,) for g in groups], shards=asked)
        self._require_all(answers, "read the hits' texts")
        pairs = (zip(g.tolist(), found, strict=True) for g, found in zip(groups, answers, strict=True))
        return {key: Found._make(f) for each in pairs for key, f in each}

    # -- persistence -------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the index to the folder ``path``: each shard atomically into its own folder ``part-NNN`` (the
        ``Retriever`` format), then the index's manifest, last, which says it is sharded and how. A folder saved by
        another writer since this copy loaded or saved it is refused unless ``force`` (``Retriever.save``)."""
        with self._lineage.saving(path, force=force) as expect:
            return self._save(Path(path), expect)

    def _save(self, root: Path, expect: str | None) -> Path:
        check_destination(root)
        check_generation(root, expect)  # (before the shards write their parts; again under the folder's lock)
        root.mkdir(parents=True, exist_ok=True)
        # Each save writes new part folders; the manifest, written last, names them. A save stopped half-way leaves
        # the manifest naming the previous parts, untouched (the new ones are removed by the next save).
        stamp = f"{time.time_ns():x}"
        parts = [str((root / f"{PART_PREFIX}{i:03d}-{stamp}").resolve()) for i in range(self.n_shards)]
        with self._compacting, self._lock.read():
            self._require_all(self._each("save", [(p,) for p in parts]), "save")
            config = {
                "sharded": {
                    "version": SHARDED_VERSION,
                    "n_shards": self.n_shards,
                    "parts": [Path(p).name for p in parts],
                    "seq": self._seq,
                },
                "settings": self._settings,
                "tuned_on": self.tuned_on,
                # The coordinator reranks: its reranker is recorded here (the parts, the shards', have none).
                "reranker": store.model_spec(self.reranker) or self._reranker_spec,
            }
            written = write_snapshot(root, {}, config, version=SHARDED_VERSION, expect=expect)
            self._lineage.seen(written.path, written.generation)
            with self._recovering:  # a replica that dies from now on restarts from these parts
                self._parts, self._saved_seq = list(parts), self._seq
                self._saved_changes = self._changes
                self._log = [[] for _ in range(self.n_shards)]
        kept = {Path(p).name for p in parts}
        for old in root.iterdir():  # the parts of an earlier save with more shards, no longer in the manifest
            if old.name.startswith(PART_PREFIX) and old.name not in kept and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return written.path

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
        hedge_ms: float | None = None,
        channels: bool = True,
        index_options: Mapping[str, Any] | None = None,
    ) -> ShardedRetriever:
        """Open an index written by ``save``; ``embedder``, ``reranker`` and ``index_options`` (search settings of
        every shard's dense index) as for ``Retriever.load``, the others as for the constructor."""
        root = Path(path)
        _check_layout(replicas, backend)
        try:
            snap = read_snapshot(root, version=SHARDED_VERSION)
        except IndexFormatError:
            if _one_index(root):  # (say so, rather than name a format version)
                raise IndexFormatError(
                    f"{root}: one index, not split in shards: open it with rapidrag.Retriever.load"
                ) from None
            raise
        info = snap.config.get("sharded")
        if not isinstance(info, dict):
            raise IndexFormatError(f"{root}: not a sharded index (open it with Retriever.load)")
        parts = [root / name for name in info["parts"]]
        missing = [str(p) for p in parts if not p.is_dir()]
        if len(parts) != info["n_shards"] or missing:
            raise IndexFormatError(f"{root}: the index has {info['n_shards']} shards; missing: {missing or parts}")
        # The models once: the first part opens them, the others share its embedder; the coordinator reranks.
        # With Ray the actors open the parts: here the first part's models and settings only, and each part's
        # manifest checked (where its error can be read).
        options = check_options(index_options)
        local = backend == "local"
        first = store.load(Retriever, parts[0], embedder=embedder, reranker=None, index_options=options, contents=local)
        # The reranker the manifest records (an index saved before it did records none: then only one given).
        recorded = snap.config.get("reranker")
        opened = store.open_model(recorded, reranker, "reranker")
        shared = first.embedder if first.embedder is not None else None
        shards = [first]
        for part in parts[1:]:
            if local:
                shards.append(Retriever.load(part, embedder=shared, reranker=None, index_options=options))
            else:
                read_snapshot(part, version=READS_VERSIONS)
        out = cls.__new__(cls)
        Searcher.__init__(out)
        out._lineage.seen(root, snap.generation)
        out._opened_with = {"embedder": embedder, "reranker": reranker, "index_options": options}
        out.embedder, out.chunker, out.reranker = first.embedder, first.chunker, opened
        out._reranker_spec = recorded if opened is None and reranker == "auto" else None
        out.index_kind, out.title_weight = first.index_kind, first.title_weight
        out.fusion, out.weights, out.rrf_k = first.fusion, first.weights, first.rrf_k
        out.rerank_weight, out.rerank_depth = first.rerank_weight, first.rerank_depth
        out.tuned_on = snap.config.get("tuned_on")
        out.n_shards, out.replicas, out.backend, out.address = len(parts), replicas, backend, address
        out._settings = dict(snap.config.get("settings") or {})
        out._has_dense = first.dense is not None
        out._lock = RWLock()
        out._start_log(len(parts), [str(p) for p in parts], int(info.get("seq", 0)))
        out.hedge_ms = _check_hedge(hedge_ms)
        out._open_channels(channels, backend)
        if backend == "local":
            out._shards = [[_Shard(r)] for r in shards]
        else:
            saved = [str(p) for p in parts]
            out._shards = _ray_shards(
                len(parts), replicas, None, None, out._settings, address, out._authkey, saved, options
            )
        if backend == "ray":  # each replica is at the snapshot's number
            out._require_all(out._all("set_applied", out._saved_seq), "open the shards")
        answers = out._all("all_statistics")
        out._require_all(answers, "sum BM25's statistics")
        out._statistics = _GlobalStatistics()
        out._statistics.apply([(0, a) for a in answers])
        return out

    # A reload keeps this copy's locks as well (the rest, shards included, comes from the new snapshot).
    _KEPT_BY_RELOAD = Searcher._KEPT_BY_RELOAD | {"_replicas", "_recovering", "_compacting"}

    def _reopen(self, path: Path) -> ShardedRetriever:
        options = self._opened_with.get("index_options")
        out = self._reopened(
            ShardedRetriever.load, path, backend=self.backend, replicas=self.replicas, address=self.address,
            hedge_ms=self.hedge_ms, channels=self.channels, index_options=options,
        )  # fmt: skip
        return out  # type: ignore[return-value]

    def _adopt(self, fresh: Searcher, where: Path, changes: int, discard: bool) -> None:
        """``Searcher._adopt`` with compactions held back; the old shard actors are stopped after (Ray)."""
        with self._compacting:
            old = self._shards
            super()._adopt(fresh, where, changes, discard)
        if self.backend == "ray":
            import ray

            for replica in (r for replicas in old for r in replicas):
                with contextlib.suppress(Exception):  # (one already gone)
                    ray.kill(replica, no_restart=True)

    def __repr__(self) -> str:
        return f"ShardedRetriever({len(self)} documents in {self.n_shards} shards, {self.backend})"

    def ingest(self, source: Any, **options: Any) -> Any:
        """Index ``source`` (a file or folder ``rapidrag index`` reads, or documents) through a Ray Data pipeline:
        chunked and embedded on an actor pool, routed to the shards, added in bulk; saved to ``out`` when given.
        Returns a ``rapidrag.ray_ingest.IngestReport``; ``options`` as for ``rapidrag.ray_ingest.ingest``."""
        from .ray_ingest import ingest

        return ingest(source, self, **options)


def _resident_bytes() -> int:
    """This process's resident memory (Linux: /proc/self/statm; elsewhere its peak, from getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _check_hedge(hedge_ms: Any) -> float | None:
    if hedge_ms is None:
        return None
    if isinstance(hedge_ms, bool) or not isinstance(hedge_ms, (int, float)) or not 0 <= hedge_ms < float("inf"):
        raise ValueError(f"hedge_ms must be a number of milliseconds >= 0 or None, got {hedge_ms!r}")
    return float(hedge_ms)


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


def _one_index(path: Path) -> bool:
    """Whether ``path`` holds an index saved by ``Retriever.save``."""
    try:
        read_snapshot(path, version=READS_VERSIONS)
    except (OSError, IndexFormatError):
        return False
    return True


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


def init_ray(address: str | None) -> None:
    """Ray for this process, unless it runs already: joined to the cluster at ``address``, or with None a new
    local cluster on 127.0.0.1 (``address="local"``: ``ray.init()`` without one would join any cluster it finds
    on this machine, through ``RAY_ADDRESS`` or the file of the last one started)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        return
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as e:
        raise ConnectionError(f"no Ray cluster answers at {address!r}: {e}") from None


def _ray_shards(
    n_shards: int,
    replicas: int,
    embedder: Any,
    chunker: Any,
    settings: dict[str, Any],
    address: str | None,
    authkey: bytes,
    parts: list[str] | None = None,
    index_options: dict[str, Any] | None = None,
) -> list[list[Any]]:
    """Shard actors on a Ray cluster, ``replicas`` per shard (``init_ray``: a new one on 127.0.0.1 when this
    process has none and no ``address`` is given), opening the saved ``parts`` when given (with ``index_options``)."""
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'rapidrag[ray]'") from None
    from .store import model_spec

    init_ray(address)
    spec = json.loads(json.dumps(model_spec(embedder))) if embedder is not None else None
    chunking = {"max_tokens": chunker.max_tokens, "overlap": chunker.overlap} if chunker is not None else None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Ray restarts an actor that dies (its calls in flight fail; the coordinator restores it, see _recover).
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(_ShardActor)
    # With replicas, a shard's replicas on different nodes where the cluster has enough (replica j of shard i on
    # node i + j), pinned there: a soft placement lets Ray put two on one node (a node that joined a moment ago is
    # skipped), and replicas on one node are lost together. A replica whose node is gone is lost; the others answer.
    # One replica per shard: spread, and restarted anywhere.
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])  # type: ignore[no-untyped-call]

    def placed(i: int, j: int) -> Any:
        pinned = replicas > 1 and len(nodes) > 1
        where = NodeAffinitySchedulingStrategy(nodes[(i + j) % len(nodes)], soft=False) if pinned else "SPREAD"
        part = parts[i] if parts else None
        return actor.options(scheduling_strategy=where).remote(spec, chunking, settings, part, authkey, index_options)

    return [[placed(i, j) for j in range(replicas)] for i in range(n_shards)]


# The calls that change a shard (sequence-numbered, logged until the next save, replayed on a restored replica).
WRITES = frozenset(
    {"add", "upsert", "delete", "add_embedded", "replace_metadata", "compact", "configure", "set_index_options"}
)
KEPT_ANSWERS = 64  # a shard keeps the answers of its last writes, for a retried one (applied once, answered again)


class _Shard:
    """A shard: a ``Retriever``, called by method name (as a Ray actor is).

    Writes carry the index's sequence number: a shard applies each number once (a retried write gets the answer
    it gave) and says which it applied last (``applied``; -1 for a fresh actor, which the coordinator restores
    from the last snapshot and the writes logged since)."""

    def __init__(self, retriever: Retriever, applied: int = -1) -> None:
        self.retriever = retriever
        self.applied = applied
        self._answers: dict[int, Any] = {}

    def call(self, method: str, *args: Any, seq: int | None = None, **kwargs: Any) -> Any:
        if method == "applied":
            return self.applied
        if method == "set_applied":
            self.applied = int(args[0])
            return self.applied
        if method == "documents":
            return len(self.retriever)
        if method == "chunks":
            return self.retriever.n_chunks
        if method == "removed_vectors":
            return self.retriever.removed_vectors
        if method == "index_options":
            return self.retriever.index_options
        if method == "has_title_field":
            return self.retriever.has_title_field
        if method == "taken":  # which of these ids the shard holds
            return [doc_id for doc_id in args[0] if self.retriever.get(doc_id) is not None]
        fields = {"bm25": self.retriever.bm25}
        if self.retriever.bm25_title is not None:
            fields["bm25_title"] = self.retriever.bm25_title
        if method == "all_statistics":
            return {name: index.all_statistics() for name, index in fields.items()}
        if method in WRITES:  # the count, and what the change did to BM25's statistics
            if seq is not None and seq <= self.applied:
                return self._answers.get(seq)  # applied before: a retry
            marks = {name: index.mark() for name, index in fields.items()}
            count = getattr(self.retriever, method)(*args, **kwargs)
            answer = count, {name: index.statistics_since(marks[name]) for name, index in fields.items()}
            if seq is not None:
                self.applied = seq
                self._answers[seq] = answer
                for old in [k for k in self._answers if k <= seq - KEPT_ANSWERS]:
                    del self._answers[old]
            return answer
        return getattr(self.retriever, method)(*args, **kwargs)


class _ShardActor(_Shard):
    """A shard in a Ray actor: a ``Retriever`` with its own embedder (opened from the coordinator's model spec),
    or loaded from a saved part."""

    def packed(self, payload: bytes) -> bytes:
        """``call`` with its (method, args, kwargs) and its answer pickled: what the coordinator's reads send."""
        method, args, kwargs = pickle.loads(payload)
        return pickle.dumps(self.call(method, *args, **kwargs), protocol=5)

    def __init__(
        self,
        spec: dict[str, Any] | None,
        chunking: dict[str, int] | None,
        settings: dict[str, Any],
        part: str | None,
        authkey: bytes,
        index_options: dict[str, Any] | None = None,
    ) -> None:
        self._made = (spec, chunking, settings)
        self._index_options = index_options  # a loaded part's search settings (a restored one keeps them)
        self._authkey = authkey
        self._channel: Any = None  # a ChannelServer, once asked for
        super().__init__(self._open(part))
        freeze_loaded()  # the actor's process lives for the index: full collections need not walk what it loaded

    def call(self, method: str, *args: Any, seq: int | None = None, **kwargs: Any) -> Any:
        if method == "restore":  # (part or None, its sequence number): back to the last snapshot
            self.retriever, self.applied, self._answers = self._open(args[0]), int(args[1]), {}
            freeze_loaded()
            return self.applied
        if method == "channel":  # the address of this actor's direct connections (opened on the first ask)
            if self._channel is None:
                import ray

                from .channels import ChannelServer

                self._channel = ChannelServer(self.packed, self._authkey, ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
            return self._channel.address
        if method == "memory":  # the actor process's resident memory, in bytes
            return _resident_bytes()
        if method == "collector":  # objects frozen and still tracked, and two full collections' times (ms)
            import gc
            import time

            tracked, times = len(gc.get_objects()), []
            for _ in range(2):
                clock = time.perf_counter()
                gc.collect()
                times.append((time.perf_counter() - clock) * 1000)
            return {"frozen": gc.get_freeze_count(), "tracked": tracked, "full_ms": times}
        if method == "node":  # the Ray node the actor runs on
            import ray

            return ray.get_runtime_context().get_node_id()
        if method == "fault":  # fault injection for tests and drills: each later search waits this many seconds
            self._delay = float(args[0])
            return None
        if method == "shard_stages" and getattr(self, "_delay", 0.0) > 0:
            import time

            time.sleep(self._delay)
        return super().call(method, *args, seq=seq, **kwargs)

    def _open(self, part: str | None) -> Retriever:
        if part is not None:
            return Retriever.load(part, reranker=None, index_options=self._index_options)
        spec, chunking, settings = self._made
        embedder = chunker = None
        if spec is not None:
            from .store import build_model

            embedder = build_model("embedder", spec, Path(spec["folder"]), Path(spec["model_file"]))
            if chunking is not None:
                from .chunker import Chunker

                chunker = Chunker(embedder.tokenizer, chunking["max_tokens"], chunking["overlap"])
        return Retriever(embedder, None, chunker, **settings)
