"""Ingestion as a Ray Data pipeline into a ``ShardedRetriever``: documents read at the coordinator (the sources
``rapidrag index`` reads), chunked and embedded by ``map_batches`` on an actor pool, each row routed to the shard
its id hashes to, added there in bulk (``Retriever.add_embedded``), and the index saved shard by shard.

The stages and where they run::

    read (coordinator)  ->  chunk + embed (actor pool, one model per actor: the parallel stage)
        ->  route (coordinator: complete documents grouped by shard)  ->  bulk add (each shard, side by side)
        ->  save (each shard writes its folder atomically; the manifest last)

A shard's bulk add goes through the index's write path (sequence numbers, the write log that a restarted shard
replays, the coordinator's BM25 statistics), so the index is the one ``ShardedRetriever.add`` makes of the same
documents: the same rows in each shard (the pipeline keeps the documents' order), the same BM25, and vectors equal
to the embedder's precision (fp32: about 1e-6; an int8 model's dynamic quantization scales each batch by its own
range). Progress is a ``rapidrag.progress.Progress`` bar of documents stored in their shards; Ray Data's own bars
are turned off for the pipeline, so that one line is drawn.

Import this module lazily (``ShardedRetriever.ingest`` does): it needs Ray with Ray Data (``rapidrag[ray]``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunks import document_spans
from .documents import Document, check_documents
from .progress import Progress

if TYPE_CHECKING:
    from .distributed import ShardedRetriever

__all__ = ["IngestReport", "ingest"]

PROGRESS_MIN_DOCUMENTS = 5_000  # as Retriever.add: a bar for large ingests, when stderr is a terminal
STAGES = ("read", "start", "open", "chunk", "embed", "wait", "route", "add", "save")


@dataclass
class IngestReport:
    """What an ``ingest`` did and where its time went.

    ``stages`` in seconds. At the coordinator: ``read`` (the source read and its documents checked), ``start``
    (the shards asked for ids they already hold, the rows handed to Ray Data), ``wait`` (waiting for the
    pipeline's next output), ``route`` (complete documents grouped by shard), ``add`` (waiting for the shards' bulk
    adds, transfer included), ``save``. In the actors, summed over them (actor-seconds, spent side by side):
    ``open`` (each actor opening the embedder), ``chunk``, ``embed``.
    """

    documents: int
    chunks: int
    seconds: float
    actors: int
    stages: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what the reader skipped or dropped (``Ingest.problems``)
    first_output_s: float = 0.0  # from the start to the pipeline's first output (actors started, models opened)

    @property
    def passages_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


def ingest(
    source: str | os.PathLike[str] | Iterable[Any],
    index: ShardedRetriever,
    *,
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    task_documents: int = 256,
    add_documents: int = 1024,
    actors: int | None = None,
    cpus_per_actor: int = 1,
    progress: bool | None = None,
) -> IngestReport:
    """Index documents into ``index`` through a Ray Data pipeline; save it to ``out`` when given.

    Parameters
    ----------
    source : a file or folder ``rapidrag index`` reads (``rapidrag.ingest.Ingest``: a repeated id is skipped and
        reported in ``IngestReport.problems``), or documents as ``Retriever.add`` takes them.
    index : the ``ShardedRetriever`` to fill (either backend); an id it already holds is refused before any work.
    out : a folder to save the index to at the end (``ShardedRetriever.save``: each shard atomically, the
        manifest last).
    batch_size : texts per embedder run, as for ``Retriever.add``. 8 (``add`` takes the embedder's 4): an actor's
        embedder runs on one thread and sorts only its task's documents by length; runs of 8 took 10.6 s against
        14.3 s for 32 there (BENCHMARKS.md, "Ray ingestion").
    task_documents : documents per ``map_batches`` call of an actor.
    add_documents : documents per bulk add to a shard.
    actors : size of the chunk-and-embed actor pool; None: the cluster's CPUs / ``cpus_per_actor``; at most one
        per task.
    cpus_per_actor : CPUs each actor reserves, and its embedder's threads.
    progress : a bar on stderr (None: for ingests of at least 5,000 documents when stderr is a terminal).
    """
    for name, value in (
        ("batch_size", batch_size),
        ("task_documents", task_documents),
        ("add_documents", add_documents),
        ("cpus_per_actor", cpus_per_actor),
        ("actors", 1 if actors is None else actors),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if index.embedder is None and index.chunker is not None:
        raise ValueError(
            "ingest through Ray chunks with the index's embedder's tokenizer: this index has a chunker but no "
            "embedder (use ShardedRetriever.add)"
        )
    if (
        index.embedder is not None
        and index.chunker is not None
        and index.chunker.tokenizer is not index.embedder.tokenizer
    ):
        raise ValueError("the index's chunker must count with its embedder's tokenizer (the pipeline's actors do)")
    if index._has_vectors and index.embedder is None:
        raise ValueError(
            "this index has vectors but its embedder was not loaded: pass embedder= to ShardedRetriever.load "
            "before adding documents"
        )
    ray, data = _ray(index)

    started = time.perf_counter()
    stages = dict.fromkeys(STAGES, 0.0)
    docs, problems = _read(source)
    stages["read"] = time.perf_counter() - started
    groups: list[list[str]] = [[] for _ in range(index.n_shards)]
    from .distributed import shard_of

    for d in docs:
        groups[shard_of(d.id, index.n_shards)].append(d.id)
    taken = [i for found in _to_shards(index, "taken", {i: (g,) for i, g in enumerate(groups)}) for i in found]
    if taken:
        raise ValueError(f"documents already indexed: {taken[:5]}; use upsert to replace them")
    report = IngestReport(len(docs), 0, 0.0, 0, stages, problems)
    if not docs:
        if out is not None:
            index.save(out)
        report.seconds = time.perf_counter() - started
        return report
    n_tasks = -(-len(docs) // task_documents)
    n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
    n_actors = report.actors = min(n_actors, n_tasks)  # no actor without a task
    rows = [{"pos": i, "id": d.id, "text": d.text} for i, d in enumerate(docs)]
    dataset = data.from_items(rows, override_num_blocks=n_tasks)
    del rows
    # The dataset's own copy of Ray Data's settings (from_items took it): blocks come out in the documents' order
    # (each shard then gets its documents in order, as ShardedRetriever.add gives them), and no bars of its own.
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = False
    spec, chunking = _models(index)
    dataset = dataset.map_batches(
        _ChunkEmbed,
        fn_constructor_kwargs={
            "spec": spec,
            "chunking": chunking,
            "n_shards": index.n_shards,
            "batch_size": batch_size,
            "n_threads": cpus_per_actor,
        },
        batch_size=-(-len(docs) // n_tasks),  # one block per task: Ray Data bundles blocks smaller than a batch
        batch_format="pyarrow",  # strings as Arrow gives them (a numpy batch could turn them into fixed-width)
        compute=data.ActorPoolStrategy(size=n_actors),
        num_cpus=cpus_per_actor,
    )
    stages["start"] = time.perf_counter() - started - stages["read"]

    router = _Router(index, docs, add_documents, stages)
    show = progress if progress is not None else (None if len(docs) >= PROGRESS_MIN_DOCUMENTS else False)
    with _quiet_console(), Progress(len(docs), "ingesting", unit="documents", enabled=show) as bar:
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        while True:
            clock = time.perf_counter()
            batch = next(batches, None)
            stages["wait"] += time.perf_counter() - clock
            if batch is None:
                break
            report.first_output_s = report.first_output_s or time.perf_counter() - started
            router.take(batch)
            bar.update(router.stored, f"{router.chunks:,} chunks")
        router.finish()
        bar.update(router.stored, f"{router.chunks:,} chunks")
    if router.stored != len(docs):
        raise AssertionError(f"the pipeline stored {router.stored} of {len(docs)} documents")
    report.chunks = router.chunks
    if out is not None:
        clock = time.perf_counter()
        index.save(out)
        stages["save"] = time.perf_counter() - clock
    report.seconds = time.perf_counter() - started
    return report


def _to_shards(index: ShardedRetriever, method: str, per_shard: dict[int, tuple[Any, ...]]) -> list[Any]:
    """The one place that uses ``ShardedRetriever``'s private names (adapt it if they change): ``taken`` (which of
    these ids each shard holds) or a bulk ``add_embedded`` per shard, through the index's write path, as
    ``ShardedRetriever._write`` does it (the write lock; each shard's report of what the change did to BM25's
    statistics applied to the coordinator's). ``per_shard``: shard -> the call's arguments."""
    shards = sorted(per_shard)
    args = [per_shard[i] for i in shards]
    if method == "taken":
        answers = index._each("taken", args, shards=shards)
        index._require_all(answers, "add")
        return answers
    with index._lock.write():
        answers = index._each(method, args, write=True, shards=shards)
        index._statistics.apply(answers)
    return answers


class _Router:
    """The coordinator's side of the pipeline: the chunk rows (one per chunk: its document's position, span and
    vector, the document's shard and chunk count) gathered into complete documents, per shard, and sent to the
    shard in bulk adds of ``add_documents`` documents."""

    def __init__(self, index: ShardedRetriever, docs: list[Document], add_documents: int, stages: dict[str, float]):
        self.index, self.docs, self.add_documents, self.stages = index, docs, add_documents, stages
        self.carry: dict[str, np.ndarray] | None = None  # rows of a document whose last chunks are still to come
        self.buffers: list[list[dict[str, np.ndarray]]] = [[] for _ in range(index.n_shards)]
        self.buffered = [0] * index.n_shards  # documents waiting per shard
        self.stored = self.chunks = 0

    def take(self, batch: dict[str, np.ndarray]) -> None:
        clock = time.perf_counter()
        for name in ("open_s", "chunk_s", "embed_s"):
            self.stages[name[:-2]] += float(batch[name].sum())
        if self.carry is not None:
            batch = {k: np.concatenate([self.carry[k], batch[k]]) for k in batch}
            self.carry = None
        pos = batch["pos"]
        if not len(pos):
            return
        first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
        counts = np.diff(np.r_[first, len(pos)])
        whole = counts == batch["n_chunks"][first]
        if not whole[:-1].all():
            raise AssertionError("a document's chunks came apart in the pipeline's output")
        if not whole[-1]:  # a block cut inside a document: its other chunks come next
            cut = int(first[-1])
            self.carry = {k: v[cut:] for k, v in batch.items()}
            batch = {k: v[:cut] for k, v in batch.items()}
            first = first[:-1]
        shard = batch["shard"]
        for i in np.unique(shard).tolist():
            keep = shard == i
            self.buffers[i].append({k: v[keep] for k, v in batch.items()})
            self.buffered[i] += int(np.count_nonzero(keep[first]))
        self.stages["route"] += time.perf_counter() - clock
        self._flush([i for i, n in enumerate(self.buffered) if n >= self.add_documents])

    def finish(self) -> None:
        if self.carry is not None:
            raise AssertionError("the pipeline's output ended inside a document")
        self._flush([i for i, n in enumerate(self.buffered) if n])

    def _flush(self, shards: list[int]) -> None:
        if not shards:
            return
        clock = time.perf_counter()
        per_shard: dict[int, tuple[Any, ...]] = {}
        for i in shards:
            parts = self.buffers[i]
            rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            self.buffers[i], self.buffered[i] = [], 0
            pos = rows["pos"]
            first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
            docs = [self.docs[p] for p in pos[first].tolist()]
            spans = np.ascontiguousarray(np.stack([rows["start"], rows["end"]], axis=1), dtype=np.int64)
            row_splits = np.r_[first, len(pos)].astype(np.int64)
            vectors = np.ascontiguousarray(rows["vector"], dtype=np.float32) if "vector" in rows else None
            per_shard[i] = (docs, spans, row_splits, vectors)
            self.stored += len(docs)
        self.stages["route"] += time.perf_counter() - clock
        clock = time.perf_counter()
        answers = _to_shards(self.index, "add_embedded", per_shard)
        self.chunks += sum(int(count) for count, _ in answers)
        self.stages["add"] += time.perf_counter() - clock


class _ChunkEmbed:
    """``map_batches``'s callable class: each actor of the pool opens the index's embedder once (from the spec the
    index records, as a shard actor does) with its chunker, then chunks and embeds batches of documents. One output
    row per chunk; ``chunk_s`` and ``embed_s`` carry the batch's times, spread over its rows, and ``open_s`` the
    time the actor took to open its models, in its first batch."""

    def __init__(
        self,
        spec: dict[str, Any] | None,
        chunking: dict[str, int] | None,
        n_shards: int,
        batch_size: int,
        n_threads: int,
    ) -> None:
        clock = time.perf_counter()
        self.embedder: Any = None
        self.chunker: Any = None
        self.n_shards, self.batch_size = n_shards, batch_size
        if spec is not None:
            from .store import build_model

            folder, model_file = Path(spec["folder"]), Path(spec["model_file"])
            self.embedder = build_model("embedder", spec, folder, model_file, n_threads=n_threads)
            if chunking is not None:
                from .chunker import Chunker

                self.chunker = Chunker(self.embedder.tokenizer, chunking["max_tokens"], chunking["overlap"])
        self.opened = time.perf_counter() - clock  # reported once, with the first batch

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        from .distributed import shard_of

        texts: list[str] = batch.column("text").to_pylist()
        ids: list[str] = batch.column("id").to_pylist()
        pos = np.asarray(batch.column("pos").to_numpy(), dtype=np.int64)
        clock = time.perf_counter()
        spans, row_splits = document_spans(self.chunker, texts)
        chunked = time.perf_counter()
        counts = np.diff(row_splits)
        n = len(spans)
        out = {
            "pos": np.repeat(pos, counts),
            "start": spans[:, 0].copy(),
            "end": spans[:, 1].copy(),
            "n_chunks": np.repeat(counts, counts),
            "shard": np.repeat(np.asarray([shard_of(i, self.n_shards) for i in ids], dtype=np.int64), counts),
        }
        embedded = chunked
        if self.embedder is not None:
            owner = np.repeat(np.arange(len(texts)), counts).tolist()
            chunk_texts = [
                texts[o][a:b] for o, a, b in zip(owner, spans[:, 0].tolist(), spans[:, 1].tolist(), strict=True)
            ]
            lengths = spans[:, 2] if self.chunker is not None else None
            out["vector"] = self.embedder.embed(chunk_texts, batch_size=self.batch_size, lengths=lengths)
            embedded = time.perf_counter()
        out["open_s"] = np.full(n, self.opened / max(n, 1))
        self.opened = 0.0
        out["chunk_s"] = np.full(n, (chunked - clock) / max(n, 1))
        out["embed_s"] = np.full(n, (embedded - chunked) / max(n, 1))
        return out


class _Console(logging.Filter):
    """Ray Data's console lines below WARNING, and its note that its bars are off (this module turns them off),
    left out: the progress is the one bar. Its log file still has everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and not record.getMessage().startswith("Progress bars disabled")


@contextlib.contextmanager
def _quiet_console() -> Iterator[None]:
    console = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)]
    quiet = _Console()
    for handler in console:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in console:
            handler.removeFilter(quiet)


def _read(source: Any) -> tuple[list[Document], list[str]]:
    """The documents of ``source`` (a path read as ``rapidrag index`` reads it, or documents), and what the reader
    skipped."""
    if isinstance(source, (str, os.PathLike)):
        from .ingest import Ingest

        reader = Ingest(Path(source))
        return list(reader.unique()), reader.problems
    return check_documents(source), []


def _models(index: ShardedRetriever) -> tuple[dict[str, Any] | None, dict[str, int] | None]:
    """How an actor opens the index's embedder (its recorded spec, as JSON would carry it) and chunker."""
    from .store import model_spec

    spec = json.loads(json.dumps(model_spec(index.embedder))) if index.embedder is not None else None
    chunker = index.chunker
    chunking = {"max_tokens": chunker.max_tokens, "overlap": chunker.overlap} if chunker is not None else None
    return spec, chunking


def _ray(index: ShardedRetriever) -> tuple[Any, Any]:
    """Ray and Ray Data, connected: to the cluster the index's shards run on, or, for an index in this process, to
    ``index.address`` or a local cluster started on 127.0.0.1 (as ``ShardedRetriever`` starts one)."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError(f"ingest through Ray needs Ray with Ray Data: pip install 'rapidrag[ray]' ({e})") from None
    from .distributed import init_ray

    init_ray(index.address)
    with warnings.catch_warnings():
        # Ray Data's settings object, made on first use, sets fields that Ray itself deprecates (and so warns
        # whatever the caller does): made here, once, with those warnings of its own left out.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        ray.data.DataContext.get_current()
    return ray, ray.data
