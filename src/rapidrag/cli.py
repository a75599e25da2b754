"""The ``rapidrag`` command line.

``rapidrag index``: index a folder of documents or a BEIR corpus into a saved index.
``rapidrag query``: search a saved index; a table of hits with citation spans and stage times, or JSON.
``rapidrag eval``: nDCG@10, recall@100 and MRR@10 of a saved index on BEIR queries and judgements.
``rapidrag tune``: choose an index's weights on judged queries and save them with it.
``rapidrag bench``: latency percentiles of each stage and end to end, a JSON report and a PNG plot.
``rapidrag context``: the generator's context for a question, packed to a token budget with citations and cost.
``rapidrag ground``: an answer's sentences checked against its context (supported, weak or unverified).
``rapidrag chunk``: tokenize and chunk a corpus, with a throughput report.
``rapidrag quantize``: make an int8 model (attention fused) from an fp32 ONNX model.
``rapidrag train reranker|embedder``: fine-tune a cross-encoder or an embedder on judged queries ([train] extra).
``rapidrag export``: a Hugging Face checkpoint to a model folder rapidrag loads, checked ([export] extra).

The module runs to about 1,350 lines because it is one short function per subcommand (reading its arguments,
calling the library, printing its report) and the one argument parser they share; the work itself lives in the
library's modules (ingest, retriever, store, metrics, tuning, bench, train, export).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import RapidragError

DEFAULT_TOKENIZER = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_RERANKER = "minilm-l6-reranker"
MAX_WARNINGS = 50  # of the skipped files and lines, printed one by one; the rest are counted


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _resolve_tokenizer(arg: str | None) -> Path:
    if arg:
        path = Path(arg)
        if not path.exists():
            raise CliError(f"tokenizer not found: {path}")
        return path
    models = os.environ.get("RAPIDRAG_MODELS")
    if models and (Path(models) / DEFAULT_TOKENIZER).is_dir():
        return Path(models) / DEFAULT_TOKENIZER
    looked = f"{Path(models) / DEFAULT_TOKENIZER}" if models else "RAPIDRAG_MODELS (not set)"
    raise CliError(
        f"no tokenizer: looked in {looked}; pass --tokenizer PATH (a vocab.txt, tokenizer.json or model folder) "
        "or set RAPIDRAG_MODELS to a folder holding all-MiniLM-L6-v2/"
    )


def _read(src: str) -> tuple[list[Any], Any]:
    """The documents of ``src`` as ``rapidrag index`` reads them (each id once), and the ``Ingest`` that read them;
    what was skipped or dropped is printed as warnings."""
    from .ingest import Ingest

    ingest = Ingest(Path(src))
    docs = list(ingest.unique())  # a repeated id skipped and reported
    for problem in ingest.problems[:MAX_WARNINGS]:
        print(f"warning: {problem}", file=sys.stderr)
    if len(ingest.problems) > MAX_WARNINGS:
        print(f"warning: ... and {len(ingest.problems) - MAX_WARNINGS:,} more", file=sys.stderr)
    if not docs:
        raise CliError(f"no documents in {src}")
    return docs, ingest


def cmd_chunk(args: argparse.Namespace) -> int:
    from .chunker import Chunker
    from .tokenizer import Tokenizer

    if not Path(args.src).exists():
        raise CliError(f"no such file or folder: {args.src}")
    tok = Tokenizer.from_file(_resolve_tokenizer(args.tokenizer), n_threads=args.threads)
    chunker = Chunker(tok, max_tokens=args.max_tokens, overlap=args.overlap)
    t_load = time.perf_counter()
    docs, ingest = _read(args.src)  # as rapidrag index reads them, so that the spans are the index's
    load_s = time.perf_counter() - t_load
    ids = [d.id for d in docs]
    texts = [d.text for d in docs]
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)

    t0 = time.perf_counter()
    counts = tok.count_tokens(texts)
    tokenize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunks = chunker.split_batch(texts)
    chunk_s = time.perf_counter() - t0

    n_chunks = sum(len(c) for c in chunks)
    n_tokens = int(counts.sum())
    chunk_tokens = [c.n_tokens for cs in chunks for c in cs]
    mb = n_bytes / 1e6
    print(f"source      {args.src}")
    print(f"tokenizer   {tok!r}")
    print(f"documents   {len(texts):,}  ({mb:.1f} MB of UTF-8, {ingest.skipped:,} skipped, read in {load_s:.2f} s)")
    print(
        f"tokens      {n_tokens:,}  tokenized in {tokenize_s:.3f} s: {mb / tokenize_s:.1f} MB/s, "
        f"{n_tokens / tokenize_s / 1e6:.2f} M tokens/s"
    )
    print(
        f"chunks      {n_chunks:,}  (max_tokens {args.max_tokens}, overlap {args.overlap}; "
        f"largest {max(chunk_tokens, default=0)}, mean {sum(chunk_tokens) / max(n_chunks, 1):.0f} tokens)"
    )
    print(f"chunking    {chunk_s:.3f} s: {mb / chunk_s:.1f} MB/s  (threads: {args.threads or os.cpu_count()})")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for doc_id, cs in zip(ids, chunks, strict=True):
                for k, c in enumerate(cs):
                    row = {
                        "doc_id": doc_id,
                        "chunk": k,
                        "start": c.start,
                        "end": c.end,
                        "n_tokens": c.n_tokens,
                        "text": c.text,
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote       {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from .export import export_model
    except ImportError as e:
        raise CliError(
            f"rapidrag export needs the [export] extra ({e.name} is missing): pip install 'rapidrag[export]'"
        ) from None
    report = export_model(
        args.checkpoint,
        args.out,
        task=args.task,
        int8=args.int8,
        force=args.force,
        max_length=args.max_length,
        log=lambda line: print(line, file=sys.stderr),
    )
    record = report.record
    print(
        f"wrote {report.path}: {record['architecture']} for {record['task']}, inputs {record['inputs']}, "
        f"within {record['onnx_check_max_abs_diff']:.1e} of transformers"
    )
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from ._onnx import QUANTIZED_BY_RAPIDRAG, resolve_model
    from .quantization import fuse_attention, quantize

    src = Path(args.src)
    folder = src if src.suffix == ".onnx" else resolve_model(src)
    if args.fp32 and args.no_fuse:
        raise CliError("--fp32 with --no-fuse would only copy the model")
    default_name = "model_fused.onnx" if args.fp32 else QUANTIZED_BY_RAPIDRAG
    out = Path(args.out) if args.out else (folder.parent if folder.suffix == ".onnx" else folder) / default_name
    start = time.perf_counter()
    if args.fp32:
        report = fuse_attention(folder, out)
        weights = "fp32 weights (same outputs)"
    else:
        report = quantize(
            folder, out, fuse=not args.no_fuse, per_channel=not args.per_tensor, per_token=not args.no_per_token
        )
        weights = f"int8 weights ({'per tensor' if args.per_tensor else 'per channel'})"
        if report.per_token:
            weights += f", per-token activations in {report.per_token} down-projections"
    print(
        f"wrote {report.path} in {time.perf_counter() - start:.1f} s: "
        f"{report.attention_fused} of {report.attention_blocks} attention blocks fused, {weights}"
    )
    if not args.fp32 and out.name == QUANTIZED_BY_RAPIDRAG and folder.is_dir() and out.parent == folder:
        print("Reranker(folder, quantized=True), Embedder(folder, quantized=True) and `rapidrag index --int8` load it")
    else:
        print(f"load it with: Reranker(folder, model_file={out.name!r}) or Embedder(folder, model_file={out.name!r})")
    return 0


def _model(arg: str | None, default: str, role: str, int8: bool) -> Any:
    """The model given by path, else the default name under $RAPIDRAG_MODELS, else None (with a note)."""
    if arg:
        path = Path(arg)
        if not path.exists():
            raise CliError(f"{role} not found: {path}")
    else:
        models = os.environ.get("RAPIDRAG_MODELS")
        path = Path(models) / default if models else Path()
        if not models or not path.is_dir():
            where = f"{path}" if models else "$RAPIDRAG_MODELS (not set)"
            print(
                f"note: no {role} ({default} not found in {where}); pass --{role} PATH or set RAPIDRAG_MODELS",
                file=sys.stderr,
            )
            return None
    folder = path.parent if path.suffix == ".onnx" else path
    model_file = path.resolve() if path.suffix == ".onnx" else None
    if role == "embedder":
        from .embedder import Embedder

        return Embedder(folder, quantized=int8, model_file=model_file)
    from .reranker import Reranker

    return Reranker(folder, quantized=int8, model_file=model_file)


def cmd_index(args: argparse.Namespace) -> int:
    from .persist import check_destination
    from .retriever import Retriever

    if args.update:
        return _update(args)
    for flag, given in (("--prune", args.prune), ("--dry-run", args.dry_run)):
        if given:
            raise CliError(f"{flag} goes with --update (an update of the index at --out from SRC)")
    out = Path(args.out)
    if (out / "MANIFEST.json").exists() and not args.force:
        raise CliError(f"{out} already holds an index; pass --force to replace it")
    try:
        check_destination(out)  # before the work, not after it
    except FileExistsError as e:
        raise CliError(f"--out {e}") from None
    from .dense import OPTIONS

    options = _name_values("--index-option", args.index_option, dict(OPTIONS), {})
    if options and args.lexical:
        raise CliError("--index-option sets the dense index, and a --lexical index has none")
    if args.replicas > 1 and not args.ray:
        raise CliError("--replicas needs --ray ADDRESS (a shard's replicas are Ray actors on different nodes)")
    start = time.perf_counter()
    if args.lexical:
        embedder = reranker = None
    else:
        embedder = _model(args.embedder, DEFAULT_EMBEDDER, "embedder", args.int8)
        reranker = _model(args.reranker, DEFAULT_RERANKER, "reranker", args.int8) if embedder else None
    docs, ingest = _read(args.src)
    read_s = time.perf_counter() - start
    if args.shards > 1 or args.ray:
        from .distributed import ShardedRetriever

        retriever: Any = ShardedRetriever(
            embedder, reranker, n_shards=args.shards, replicas=args.replicas, backend="ray" if args.ray else "local",
            address=args.ray, index=args.index, index_options=options,
        )  # fmt: skip
    else:
        retriever = Retriever(embedder, reranker, index=args.index, index_options=options)
    start = time.perf_counter()
    pipeline = None
    if args.ray:  # a Ray Data pipeline: chunked and embedded on an actor pool, added to the shards in bulk, saved
        pipeline = retriever.ingest(docs, out=out, progress=True if sys.stderr.isatty() else None)
        chunks, index_s = pipeline.chunks, pipeline.seconds - pipeline.stages["save"]
    else:
        chunks = retriever.add(docs, progress=True if sys.stderr.isatty() else None)
        index_s = time.perf_counter() - start
        retriever.save(out)
    tokens = int(embedder.tokenizer.count_tokens([d.text for d in docs]).sum()) if embedder else None
    kind = f"hybrid ({args.index}, {embedder.dim}-d)" if embedder else "lexical only"
    if args.shards > 1 or args.ray:
        copies = f" x {args.replicas} replicas" if args.replicas > 1 else ""
        kind += f", {args.shards} shards{copies}" + (f" on Ray at {args.ray}" if args.ray else "")
    print(f"indexed     {args.src} -> {out} ({kind})")
    n_dropped = len(ingest.problems) - ingest.skipped  # (parts of documents left out: a front matter, a field)
    dropped = f", {n_dropped:,} with a part dropped" if n_dropped else ""
    print(
        f"documents   {len(docs):,} from {ingest.files:,} file{'s' if ingest.files != 1 else ''} "
        f"({ingest.skipped:,} skipped{dropped}, read in {read_s:.1f} s)"
    )
    print(f"chunks      {chunks:,}" + (f"  ({tokens:,} tokens)" if tokens is not None else ""))
    print(f"time        {index_s:.1f} s ({len(docs) / max(index_s, 1e-9):,.0f} documents/s)")
    if pipeline is not None:
        st = pipeline.stages
        print(
            f"pipeline    {pipeline.actors} actors: chunk {st['chunk']:.1f}, embed {st['embed']:.1f} actor-s; "
            f"coordinator: route {st['route']:.1f}, bulk add {st['add']:.1f}, save {st['save']:.1f} s"
        )
    return 0


def _save_again(index: Any, folder: str | os.PathLike[str], command: str) -> None:
    """Save ``index``, loaded from ``folder``, back there; if another writer (a service, another command) saved it
    while this command ran, say so and keep that writer's snapshot."""
    from .errors import IndexConflictError

    try:
        index.save(folder)
    except IndexConflictError:
        raise CliError(
            f"{folder}: saved by another writer (a service, another rapidrag command) while this command ran; its "
            f"snapshot is kept and nothing was written: run rapidrag {command} again to start from it"
        ) from None


def _update(args: argparse.Namespace) -> int:
    """``rapidrag index SRC --out DIR --update``: the index at DIR brought in line with SRC (``rapidrag.update``),
    with the index's own models and settings, and saved (atomically) if anything changed."""
    from .update import update

    out = Path(args.out)
    if not (out / "MANIFEST.json").is_file():
        raise CliError(f"--update: no index at {out} (leave out --update to make one)")
    settings = {
        "--force": args.force, "--lexical": args.lexical, "--int8": args.int8, "--index": args.index != "flat",
        "--index-option": bool(args.index_option), "--shards": args.shards != 1, "--replicas": args.replicas != 1,
    }  # fmt: skip
    given = [flag for flag, on in settings.items() if on]
    if given:
        raise CliError(f"--update keeps the index's own models and settings: leave out {', '.join(given)}")
    start = time.perf_counter()
    where = argparse.Namespace(index_dir=out, embedder=args.embedder, reranker=args.reranker, ray=args.ray)
    retriever = _load(where, adding=True)  # (the reranker too: a save without it would no longer record it)
    docs, ingest = _read(args.src)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        show = True if sys.stderr.isatty() else None
        done = update(retriever, docs, prune=args.prune, unread=ingest.unread, dry_run=args.dry_run, progress=show)
    except ValueError as e:
        raise CliError(str(e)) from None
    changes = retriever.unsaved_changes
    if changes:
        _save_again(retriever, out, "index --update")
    index_s = time.perf_counter() - start
    verb = "would update" if args.dry_run else "updated    "
    print(f"{verb} {out} from {args.src} ({len(retriever):,} documents, {retriever.n_chunks:,} chunks)")
    print(
        f"documents   {len(docs):,} read from {ingest.files:,} file{'s' if ingest.files != 1 else ''} "
        f"({ingest.skipped:,} skipped, read in {read_s:.1f} s): {len(done.added):,} added, "
        f"{len(done.changed):,} changed, {len(done.metadata_changed):,} with new metadata only, "
        f"{done.unchanged:,} unchanged"
    )
    if done.gone:
        fate = "removed (--prune)" if done.removed else "kept (--prune removes them)"
        if args.dry_run:
            fate = "would be removed (--prune)" if args.prune else "would be kept (--prune removes them)"
        print(f"gone        {len(done.gone):,} in the index but not in {args.src}: {_some(done.gone)}, {fate}")
    if done.spared:
        print(
            f"unread      {len(done.spared):,} in the index from files not read in full this time (see the "
            f"warnings): {_some(done.spared)}, kept"
        )
    if args.dry_run:
        print("dry run     nothing changed (leave out --dry-run to update)")
        return 0
    saved = "saved" if changes else "nothing to save"
    print(f"time        {index_s:.1f} s ({done.chunks:,} chunk{'s' if done.chunks != 1 else ''} indexed, {saved})")
    return 0


def _load(args: argparse.Namespace, *, lexical: bool = False, rerank: bool = True, adding: bool = False) -> Any:
    """The index at ``args.index_dir`` with its models: ``--embedder`` / ``--reranker`` when given, else the
    recorded ones (found again under $RAPIDRAG_MODELS if moved). ``lexical``: no embedder needed; ``rerank``:
    False leaves the reranker out. A model that cannot be found is a note, and the searches that need it say so.
    ``adding``: documents will be embedded into the index, so an embedder other than the one that built it is an
    error (its vectors would not be comparable with the index's), not a note."""
    import warnings

    from .retriever import Retriever

    path = args.index_dir
    if not Path(path).is_dir():
        raise CliError(f"no index at {path} (make one with: rapidrag index SRC --out {path})")
    embedder = getattr(args, "embedder", None) or (None if lexical else "auto")
    reranker = getattr(args, "reranker", None) or ("auto" if rerank else None)
    opener: Any = Retriever
    where: dict[str, Any] = {}
    if (Path(path) / "MANIFEST.json").is_file():
        from .distributed import ShardedRetriever, is_sharded

        if is_sharded(path):  # a sharded folder says so in its manifest
            opener = ShardedRetriever
            if getattr(args, "ray", None):
                where = {"backend": "ray", "address": args.ray}
    if getattr(args, "ray", None) and not where:
        raise CliError(f"--ray: {path} is not a sharded index (made with rapidrag index --shards)")
    for flag, name in (("--replicas", "replicas"), ("--hedge-ms", "hedge_ms")):
        if getattr(args, name, None) is not None:
            if not where:
                raise CliError(f"{flag} needs --ray ADDRESS (a shard's replicas are Ray actors on different nodes)")
            where[name] = getattr(args, name)
    from .dense import OPTIONS
    from .errors import IndexOptionError, ModelMismatchWarning

    options = _name_values("--index-option", getattr(args, "index_option", []), dict(OPTIONS), {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            retriever = opener.load(path, embedder=embedder, reranker=reranker, index_options=options, **where)
        except IndexOptionError as e:
            raise CliError(f"--index-option: {e}") from None
    for w in caught:
        if adding and isinstance(w.message, ModelMismatchWarning) and w.message.role == "embedder":
            raise CliError(
                f"{w.message}: the vectors it makes would not be comparable with the index's (to change the "
                "embedder, index again with --force)"
            )
        print(f"note: {w.message}", file=sys.stderr)
    return retriever


def _whole(minimum: int) -> Any:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _whole(1)
_count = _whole(0)


def _layers(text: str) -> int | list[int]:
    """``--layers``: a count (``2``) or the layer indices to keep (``0,1``)."""
    if "," not in text:
        count: int = _positive_int(text)
        return count
    from .train.reranker import _check_layers  # the library's own check of the indices (light: no torch)

    try:
        kept = [int(part) for part in text.split(",")]
        _check_layers(kept)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a count or layer indices such as 0,1, got {text!r} ({e})") from None
    return kept


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a price (a number), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a price must be a finite number >= 0, got {text}")
    return value


def _filter(arg: str | None) -> Any:
    if arg is None:
        return None
    try:
        value = json.loads(arg)
    except json.JSONDecodeError as e:
        raise CliError(f"--filter is not valid JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(value, dict):
        raise CliError(f"--filter must be a JSON object, got {type(value).__name__}")
    return value


def cmd_query(args: argparse.Namespace) -> int:
    from .retriever import check_query

    query = args.query
    check_query(query)  # before loading the index and its models
    search_filter = _filter(args.filter)
    retriever = _load(args, lexical=args.mode == "lexical", rerank=not args.no_rerank)
    mode = args.mode or retriever.default_mode
    rerank = False if args.no_rerank else None
    hits = retriever.search(query, k=args.k, mode=mode, filter=search_filter, rerank=rerank, budget_ms=args.budget_ms)
    if hits.missing_shards:
        _partial(hits.missing_shards, retriever)
    notes = _filter_notes(retriever, search_filter, len(hits), args.k)
    if args.format == "json":
        body = {
            "query": query,
            "mode": mode,
            "hits": [h.to_dict() for h in hits],
            "timings_ms": hits.timings,
            "missing_shards": hits.missing_shards,
            "filter_notes": notes,
        }
        print(json.dumps(body, ensure_ascii=False, indent=1))
        return 0
    if not hits:
        print("no hits")
    width = max((len(h.doc_id) for h in hits), default=6)
    for rank, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())
        snippet = snippet[:100] + ("..." if len(snippet) > 100 else "")
        stages = " ".join(f"{k}={v:.3g}" for k, v in h.scores.items())
        print(f"{rank:>3}. {h.doc_id:<{width}} [{h.start}:{h.end}] {h.score:.4f}  {stages}")
        print(f"     {snippet}")
    times = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in hits.timings.items())
    print(f"ms: {times}")
    return 0


def _filter_notes(retriever: Any, search_filter: dict[str, Any] | None, found: int, k: int) -> list[str]:
    """A filtered search that found fewer than ``k`` hits: why the filter may select less than meant, printed to
    stderr and returned."""
    notes = retriever.filter_notes(search_filter) if search_filter and found < k else []
    for note in notes:
        print(f"note: the filter: {note}", file=sys.stderr)
    return list(notes)


def _check_judgements(args: argparse.Namespace, queries: dict[str, str], qrels: dict[str, Any], retriever: Any) -> None:
    """Refuse judgements of which no query is in the queries file, and warn of those that cannot count as written:
    judged queries missing from the queries file (left out), relevant documents missing from the index (counted
    as relevant and never found: recall cannot reach 1)."""
    missing = [q for q in qrels if q not in queries]
    if len(missing) == len(qrels):
        raise CliError(f"none of the {len(qrels)} judged queries of {args.qrels} is in {args.queries}")
    if missing:
        print(
            f"warning: {len(missing):,} of the {len(qrels):,} judged queries of {args.qrels} are not in "
            f"{args.queries} and are left out ({_some(missing)})",
            file=sys.stderr,
        )
    relevant = {d for q, judged in qrels.items() if q in queries for d, grade in judged.items() if grade > 0}
    absent = sorted(d for d in relevant if retriever.get(d) is None)
    if absent:
        print(
            f"warning: {len(absent):,} of the {len(relevant):,} relevant documents judged are not in this index "
            f"({_some(absent)}): they count as relevant and are never found",
            file=sys.stderr,
        )


def _some(ids: list[str], shown: int = 3) -> str:
    """A few of ``ids``, quoted, and how many more."""
    more = f" and {len(ids) - shown:,} more" if len(ids) > shown else ""
    return ", ".join(repr(i) for i in ids[:shown]) + more


def cmd_eval(args: argparse.Namespace) -> int:
    from .beir import load_qrels, load_queries
    from .metrics import evaluate
    from .persist import sha256_file

    queries = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    lexical = bool(args.mode) and set(args.mode) == {"lexical"}
    rerank_asked = args.rerank or (not args.mode and not args.no_rerank)
    retriever = _load(args, lexical=lexical, rerank=rerank_asked)
    _check_judgements(args, queries, qrels, retriever)
    judged = [q for q in qrels if q in queries]
    tuned = retriever.tuned_on or {}
    if tuned.get("sha256") and tuned["sha256"] == sha256_file(args.qrels):
        print(
            f"warning: this index was tuned on these judgements ({tuned.get('qrels')}): the figures below "
            "overstate what new queries will see; report on held-out queries",
            file=sys.stderr,
        )
    if args.rerank and retriever.reranker is None:
        raise CliError("--rerank needs a reranker: this index has none (pass --reranker PATH)")
    # The modes asked, in the order given; by default every mode the index can run, and hybrid + rerank.
    modes = list(dict.fromkeys(args.mode or ["lexical", "dense", "hybrid"]))
    if retriever.default_mode == "lexical":
        if args.mode and set(modes) - {"lexical"}:
            raise CliError(f"--mode {' / '.join(m for m in modes if m != 'lexical')} needs this index's embedder")
        modes = ["lexical"]
    rows = [(m, False) for m in modes]
    if retriever.reranker is not None and rerank_asked:
        rows += [(m, True) for m in (modes if args.mode else [retriever.default_mode])]
    print(f"{len(judged)} judged queries ({args.qrels})")
    print(f"{'mode':<18}{'nDCG@10':>9}{'recall@100':>12}{'MRR@10':>9}{'time':>9}")
    for mode, rerank in rows:
        start = time.perf_counter()
        label = mode + (" + rerank" if rerank else "")
        m = evaluate(retriever, queries, qrels, mode=mode, rerank=rerank, progress=label)
        seconds = time.perf_counter() - start
        print(f"{label:<18}{m['ndcg@10']:>9.4f}{m['recall@100']:>12.4f}{m['mrr@10']:>9.4f}{seconds:>8.1f}s")
        if m.get("partial_answers"):
            print(
                f"warning: {label}: {m['partial_answers']:.0f} of {len(judged)} queries were answered without some "
                "of the index's shards (no live replica): these figures are of partial answers",
                file=sys.stderr,
            )
    if not any(rerank for _, rerank in rows):
        print("(no reranked row: --rerank adds one for each mode asked)")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .beir import load_qrels, load_queries
    from .persist import sha256_file
    from .tuning import tune

    retriever = _load(args)
    queries = load_queries(args.queries)
    qrels_path = Path(args.qrels)
    qrels = load_qrels(qrels_path)
    _check_judgements(args, queries, qrels, retriever)
    result = tune(
        retriever,
        queries,
        qrels,
        max_queries=args.max_queries,
        log=(lambda line: print(line, file=sys.stderr)) if args.verbose else None,
        progress=None if not args.verbose else False,
    )
    retriever.tuned_on.update(qrels=str(qrels_path.resolve()), sha256=sha256_file(qrels_path))
    _save_again(retriever, args.index_dir, "tune")
    print(f"tuned on {result.queries} judged queries of {qrels_path} in {result.seconds:.0f} s")
    print(f"{'step':<8}{'nDCG@10 before':>16}{'after':>9}{'gain':>9}  chosen")
    for s in result.steps:
        chosen = ", ".join(f"{k}={v}" for k, v in s.chosen.items())
        print(f"{s.name:<8}{s.before:>16.4f}{s.after:>9.4f}{s.gain:>+9.4f}  {chosen}")
    print(f"saved the settings with the index in {args.index_dir}; report quality on other queries than these")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench
    from .beir import load_qrels, load_queries

    started = time.perf_counter()
    retriever = _load(args)
    loaded = time.perf_counter()
    queries = load_queries(args.queries)
    if not queries:
        raise CliError(f"no queries in {args.queries}")
    budgets = args.budget_ms or (100.0, 500.0)
    # The first search of a fresh process, as a service's first request: under the first budget when the index
    # reranks, since a budget is a promise from the first query on.
    first_budget = budgets[0] if retriever.reranker is not None else None
    searched = time.perf_counter()
    first_hits = retriever.search(next(iter(queries.values())), mode=retriever.default_mode, budget_ms=first_budget)
    done = time.perf_counter()
    cold = {
        "load_ms": (loaded - started) * 1000,
        "first_search_ms": (done - searched) * 1000,
        "first_answer_ms": (done - started) * 1000,
        "first_budget_ms": first_budget,
        "first_search_stages_ms": first_hits.timings,
    }
    qrels = load_qrels(args.qrels) if args.qrels else None
    if qrels is not None:
        _check_judgements(args, queries, qrels, retriever)
        queries = {q: queries[q] for q in qrels if q in queries}
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])
    configs = bench.default_configs(retriever, budgets=budgets)
    concurrency = args.concurrency or (1, 2, 4)
    if min(concurrency) < 1:
        raise CliError(f"--concurrency must be at least 1, got {min(concurrency)}")
    report = bench.run(
        retriever,
        queries,
        configs,
        qrels=qrels,
        k=args.k,
        candidates=args.candidates,
        concurrency=concurrency,
        progress=None,
        context_budget=args.context_budget,
        prices=(args.price_in, args.price_out),
        output_tokens=args.output_tokens,
    )
    report["cold_start"] = cold
    if args.compare_reranker:
        report["reranker_name"] = f"reranker of the index ({Path(retriever.reranker.folder).name})"
        report["other_rerankers"] = _compare_rerankers(args, retriever, queries, qrels, budgets)
    first = f"first search {cold['first_search_ms']:.1f} ms"
    if first_budget is not None:
        verdict = "within" if cold["first_search_ms"] <= first_budget else "OVER"
        first += f" ({verdict} its {first_budget:g} ms budget)"
    print(
        f"cold start: index and models loaded in {cold['load_ms']:.0f} ms, {first}, "
        f"first answer {cold['first_answer_ms']:.0f} ms after the start"
    )
    stage_names = ["embed", "lexical", "dense", "fusion", "rerank"]
    if any("shards" in entry["stages_ms"] for entry in report["configs"].values()):
        stage_names[1:3] = ["shards"]  # (a split index: the round to its shards, their stages in it)
    if report["dense_index"]:  # the settings the searches ran with (--index-option)
        print(_dense_settings(retriever))
    print(f"{report['queries']} queries, k={args.k}, {args.candidates} candidates; times in ms (p99 per stage)")
    header = f"{'configuration':<34}{'p50':>8}{'p95':>8}{'p99':>8}" + "".join(f"{s:>9}" for s in stage_names)
    print(header + ("  nDCG@10" if qrels is not None else ""))
    for name, entry in report["configs"].items():
        total = entry["stages_ms"]["total"]
        cells = "".join(
            f"{entry['stages_ms'][s]['p99']:>9.1f}" if s in entry["stages_ms"] else f"{'-':>9}" for s in stage_names
        )
        line = f"{name:<34}{total['p50']:>8.1f}{total['p95']:>8.1f}{total['p99']:>8.1f}{cells}"
        if "ndcg@10" in entry:
            line += f"  {entry['ndcg@10']:.4f}"
        print(line)
        if entry.get("partial_answers"):
            print(
                f"warning: {name}: {entry['partial_answers']} of {report['queries']} searches were answered without "
                "some of the index's shards (no live replica)",
                file=sys.stderr,
            )
    if args.context_budget is not None:
        print(
            f"context of at most {args.context_budget} tokens per query (prices per million tokens: "
            f"{args.price_in:g} in, {args.price_out:g} out; {args.output_tokens} tokens out)"
        )
        for name, entry in report["configs"].items():
            c = entry["context"]
            print(
                f"{name:<34}tokens p50 {c['tokens']['p50']:.0f} (mean {c['mean_tokens']:.0f}), packing p99 "
                f"{entry['stages_ms']['pack']['p99']:.2f} ms, cost {c['cost_per_query']:.6f} per query, "
                f"{c['cost_per_1000_queries']:.4f} per 1,000"
            )
    judged = qrels is not None
    what = "queries/s (p99 ms, nDCG@10)" if judged else "queries/s (p99 ms)"
    print(f"throughput, {what} with {', '.join(map(str, concurrency))} threads searching at once")
    for name, entry in report["configs"].items():
        cells = ""
        for t in entry.get("throughput", []):
            quality = f", {t['ndcg@10']:.4f}" if "ndcg@10" in t else ""
            cells += f"{t['queries_per_s']:>10.1f} ({t['latency_ms']['p99']:>6.1f}{quality})"
        if cells:
            print(f"{name:<34}{cells}")
    for name, other in report.get("other_rerankers", {}).items():
        cells = "  ".join(
            f"{c['budget_ms']:g} ms: p99 {c['stages_ms']['total']['p99']:.1f}"
            + (f", nDCG@10 {c['ndcg@10']:.4f}" if "ndcg@10" in c else "")
            for c in other["configs"].values()
        )
        print(f"reranker {name} (weight {other['weight']:g}): {cells}")
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if args.plot:
        try:
            bench.plot(report, args.plot)
            print(f"wrote {args.plot}")
        except ImportError as e:
            print(f"note: no plot: {e}", file=sys.stderr)
    if args.budget_plot:
        try:
            bench.plot_budget(report, args.budget_plot)
            print(f"wrote {args.budget_plot}")
        except (ImportError, ValueError) as e:
            print(f"note: no budget plot: {e}", file=sys.stderr)
    return 0


def _compare_rerankers(
    args: argparse.Namespace, retriever: Any, queries: Any, qrels: Any, budgets: Any
) -> dict[str, Any]:
    """The budgeted searches again with each --compare-reranker NAME=PATH in the index's place (its int8 file and
    its own recommended weight unless the index was tuned with it), for one budget/quality plot of them all."""
    from . import bench
    from .reranker import Reranker

    if retriever.reranker is None:
        raise CliError("--compare-reranker needs an index with a reranker to compare against")
    own, own_weight = retriever.reranker, retriever.rerank_weight
    out: dict[str, Any] = {}
    try:
        for spec in args.compare_reranker:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise CliError(f"--compare-reranker takes NAME=PATH, got {spec!r}")
            retriever.reranker = Reranker(path, quantized=True)
            configs = [bench.Config(f"{name}, {b:g} ms budget", retriever.default_mode, True, b) for b in budgets]
            report = bench.run(retriever, queries, configs, qrels=qrels, k=args.k, candidates=args.candidates)
            out[name] = {"path": path, "weight": retriever.effective_rerank_weight, "configs": report["configs"]}
    finally:
        retriever.reranker, retriever.rerank_weight = own, own_weight
    return out


def _context_options(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"strategy": args.strategy} if args.strategy else {}  # else rapidrag.context.DEFAULT_STRATEGY
    return {
        **chosen,
        "window_tokens": args.window_tokens,
        "sentence_window": args.sentence_window,
        "merge": not args.no_merge,
        "dedupe": args.dedupe or None,
        "order": args.order,
        "tokenizer": args.tokenizer,
    }


def _make_context(args: argparse.Namespace, retriever: Any, question: str) -> Any:
    rerank = False if args.no_rerank else None
    search_filter = _filter(args.filter)
    context = retriever.context(
        question,
        args.budget,
        k=args.k,
        mode=args.mode,
        filter=search_filter,
        rerank=rerank,
        budget_ms=args.budget_ms,
        **_context_options(args),
    )
    found = sum(len(part.chunk_ids) for part in (*context.items, *context.dropped))  # the hits, kept or not
    _filter_notes(retriever, search_filter, found, args.k)
    return context


def cmd_context(args: argparse.Namespace) -> int:
    from .retriever import check_query

    check_query(args.query)
    retriever = _load(args, lexical=args.mode == "lexical", rerank=not args.no_rerank)
    context = _make_context(args, retriever, args.query)
    if context.missing_shards:
        _partial(context.missing_shards, retriever)
    cost = context.cost(args.price_in, args.price_out, output_tokens=args.output_tokens)
    if args.format == "json":
        body = {"query": args.query, "context": context.to_dict(), "cost": cost.to_dict()}
        print(json.dumps(body, ensure_ascii=False, indent=1))
        return 0
    print(context.to_markdown())
    if args.price_in or args.price_out:
        print(f"cost: {cost.per_query:.6f} per query, {cost.per_1000_queries:.4f} per 1,000 queries")
    return 0


def cmd_ground(args: argparse.Namespace) -> int:
    from .context import Context
    from .grounding import ground

    if args.answer == "-":
        answer = sys.stdin.read()
    else:
        try:
            answer = Path(args.answer).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"--answer {args.answer}: cannot read it as UTF-8 text ({e})") from None
    if not answer.strip():
        raise CliError(f"--answer {args.answer} is empty: there is nothing to check")
    if args.context is not None:
        try:
            data = json.loads(Path(args.context).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CliError(f"--context {args.context}: cannot read it as JSON ({e})") from None
        context = Context.from_dict(data.get("context", data) if isinstance(data, dict) else data)
        retriever = _load(args, rerank=False)
    else:
        if args.question is None:
            raise CliError("give --question (the context is packed for it) or --context FILE")
        retriever = _load(args, lexical=args.mode == "lexical", rerank=not args.no_rerank)
        context = _make_context(args, retriever, args.question)
    nli = None
    if args.nli:
        from .reranker import Reranker

        nli = Reranker(args.nli)
    result = ground(answer, context, source=retriever, nli=nli)
    if args.format == "json":
        print(json.dumps({"grounding": result.to_dict(), "context": context.to_dict()}, ensure_ascii=False, indent=1))
        return 0
    print(result.to_markdown())
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("supported", "weak", "unverified"))
    print(f"---\n{len(result.sentences)} sentences: {counts} ({result.ground_ms:.1f} ms)")
    for item in context.items:
        print(f"[{item.citation}] {item.doc_id} (characters {item.start}-{item.end})")
    return 0


def _partial(missing: list[int], retriever: Any) -> None:
    """Say on stderr that a search of an index split in shards was answered without ``missing``."""
    shards = ", ".join(map(str, missing))
    print(
        f"warning: a partial answer: shards {shards} of {retriever.n_shards} did not answer (no live replica)",
        file=sys.stderr,
    )


def _dense_settings(retriever: Any) -> str:
    """One line of the dense index's kind and the settings it searches with (``--index-option``)."""
    settings = ", ".join(f"{name}={value}" for name, value in retriever.index_options.items())
    return f"dense index {retriever.index_kind}: {settings}"


def _limits(args: argparse.Namespace, limits: Any) -> Any:
    """The server's ``Limits`` from ``--max-body-bytes``, ``--max-k``, ``--max-query-chars``, ``--max-batch`` and
    ``--limit NAME=VALUE`` (any field); a name given twice, unknown, or with a value of the wrong kind is refused."""
    import dataclasses

    kinds = {f.name: f.type for f in dataclasses.fields(limits)}
    chosen: dict[str, Any] = {}
    for name in ("max_body_bytes", "max_k", "max_query_chars", "max_batch"):
        if getattr(args, name) is not None:
            chosen[name] = getattr(args, name)
    try:
        return limits(**_name_values("--limit", args.limit, kinds, chosen))
    except ValueError as e:
        raise CliError(str(e)) from None


def _name_values(flag: str, items: list[str], kinds: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """``chosen`` with the ``NAME=VALUE`` items of a repeated ``flag`` added, each NAME one of ``kinds`` (its value
    an int, or a float where the kind is float; "none" for None); a name given twice, unknown, or with a value
    of the wrong kind is refused by name."""
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in kinds:
            raise CliError(f"{flag} {item!r}: give NAME=VALUE with NAME one of {', '.join(sorted(kinds))}")
        if name in chosen:
            raise CliError(f"{flag} {item!r}: {name} is given twice")
        number = float if kinds[name] in (float, "float") else int
        try:
            chosen[name] = None if value.strip().lower() == "none" else number(value)
        except ValueError:
            kind = "number" if number is float else "whole number"
            raise CliError(f"{flag} {item!r}: {name} must be a {kind}") from None
    return chosen


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from . import server
    except ImportError as e:
        raise CliError(str(e)) from None
    api_key = args.api_key if args.api_key is not None else os.environ.get(server.API_KEY_ENV) or None
    limits = _limits(args, server.Limits)
    retriever = _load(args)
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"rapidrag: warning: serving on {args.host} without an API key", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    search = retriever.default_mode + (" + rerank" if retriever.reranker is not None else "")
    if args.index_option:
        print(_dense_settings(retriever))
    # rapidrag's own log lines (an error's traceback, what happens to unsaved changes as it stops) beside uvicorn's
    logger = logging.getLogger("rapidrag")
    if not any(getattr(h, "rapidrag_serve", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        handler.rapidrag_serve = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(args.log_level.upper())
    print(
        f"serving {len(retriever):,} documents ({retriever.n_chunks:,} chunks, {search}) of {args.index_dir} "
        f"at http://{host}:{args.port} (POST /search, GET /healthz; Ctrl-C stops)",
        flush=True,
    )
    server.serve(
        retriever,
        index_dir=args.index_dir,
        host=args.host,
        port=args.port,
        api_key=api_key,
        limits=limits,
        log_level=args.log_level,
        save_on_exit=args.save_on_exit,
        watch_s=args.watch,
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from .train import train_embedder, train_reranker
    except ImportError as e:
        raise CliError(
            f"training needs the [train] extra ({e.name} is missing): pip install 'rapidrag[train]'"
        ) from None
    # The embedder that mines with the hybrid first stage, found as `rapidrag index` finds it (None: BM25 mines).
    mining = args.lexical_mining or args.index is not None
    embedder = None if mining else _model(args.embedder, DEFAULT_EMBEDDER, "embedder", int8=True)
    common: dict[str, Any] = {
        "init": args.init,
        "out": args.out,
        "embedder": embedder,
        "index": args.index,
        "max_length": args.max_length,
        "skip_window": args.skip_window,
        "candidates": args.candidates,
        "eval_every": args.eval_every,
        "max_steps": args.max_steps,
        "dev_fraction": args.dev_fraction,
        "seed": args.seed,
        "bf16": False if args.no_bf16 else None,
        "quantize": not args.no_int8,
        "force": args.force,
        "keep_worse": args.keep_worse,
        "attention_dropout": args.attention_dropout,
        "progress": None,
        "log": lambda line: print(line, file=sys.stderr),
    }
    # Options left unset take each trainer's own defaults (an embedder wants fewer negatives and a lower rate).
    for name in ("negatives", "epochs", "lr"):
        if getattr(args, name) is not None:
            common[name] = getattr(args, name)
    if args.what == "embedder":
        reranker_only = (
            args.teacher,
            args.layers,
            args.loss != "listwise",
            args.distil_loss != "kl",
            args.distil_queries,
            args.distil_hidden,
            args.select_by != "fused",
        )
        if any(reranker_only):
            raise CliError(
                "--teacher, --layers, --loss, --distil-loss, --distil-queries, --distil-hidden and --select-by are "
                "for rapidrag train reranker"
            )
        if args.init is None:
            raise CliError("rapidrag train embedder needs --init (a checkpoint folder to start from)")
        report = train_embedder(args.src, args.queries, args.qrels, batch_size=args.batch_size, **common)
        dev = report.record["dev"]
        print(f"dev dense nDCG@10: before {dev['before']['dense']:.4f}, after {dev['after']['dense']:.4f}")
    else:
        report = train_reranker(
            args.src,
            args.queries,
            args.qrels,
            teacher=args.teacher,
            layers=args.layers,
            loss=args.loss,
            distil_loss=args.distil_loss,
            distil_queries=args.distil_queries,
            distil_hidden=args.distil_hidden,
            select_by=args.select_by,
            groups_per_batch=args.groups_per_batch,
            **common,
        )
        for when in ("before", "after"):
            d = report.record["dev"][when]
            fused = max(d["fused"].values())
            print(
                f"dev nDCG@10 {when:<6}: first stage {d['first_stage']:.4f}, reranker alone {d['alone']:.4f}, "
                f"fused {fused:.4f} (weight {d['best_weight']:g})"
            )
        print(f"recommended fusion weight {report.record['recommended_fusion_weight']:g} (chosen on the dev split)")
    if not report.accepted:
        if report.path is None:
            print("the trained model is worse than its starting point on dev: not written")
        else:
            print(f"the trained model is worse than its starting point on dev; kept at {report.path} as asked")
        return 1
    print(f"wrote {report.path} in {report.record['seconds']['total']:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="rapidrag", description="rapidrag: fast retrieval for RAG")
    parser.add_argument("--version", action="version", version=f"rapidrag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def index_dir(command: argparse.ArgumentParser) -> None:
        command.add_argument("index_dir", metavar="DIR", help="an index folder made by rapidrag index")

    def models(command: argparse.ArgumentParser) -> None:
        recorded = "default: the one that built the index, found again under $RAPIDRAG_MODELS if it moved"
        command.add_argument("--embedder", metavar="PATH", help=f"embedding model folder or .onnx file ({recorded})")
        command.add_argument("--reranker", metavar="PATH", help=f"reranker model folder or .onnx file ({recorded})")
        command.add_argument(
            "--ray", metavar="ADDRESS", help="a sharded index: open its shards as actors on the Ray cluster at ADDRESS"
        )
        command.add_argument(
            "--replicas", type=_positive_int, help="with --ray: copies of each shard, on different nodes (default 1)"
        )
        command.add_argument(
            "--hedge-ms",
            type=_positive_float,
            metavar="MS",
            help="with --ray and --replicas 2 or more: a shard's read not answered within MS goes to a second replica",
        )
        command.add_argument(
            "--index-option",
            metavar="NAME=VALUE",
            action="append",
            default=[],
            help="a setting of the FAISS index instead of the saved one, repeatable: ef_search, compact_fraction "
            "(HNSW), nprobe, refine (IVF-PQ), exact_fraction, exact_rows (filters), n_threads",
        )

    def prices(command: argparse.ArgumentParser) -> None:
        command.add_argument("--price-in", type=_price, default=0.0, help="input price per million tokens")
        command.add_argument("--price-out", type=_price, default=0.0, help="output price per million tokens")
        command.add_argument(
            "--output-tokens", type=_count, default=0, help="tokens of an answer, for its cost (default 0)"
        )

    i = sub.add_parser("index", help="index a folder of documents or a BEIR corpus")
    i.add_argument("src", help="a folder of .txt, .md, .html and .jsonl files, or a corpus.jsonl[.gz]")
    i.add_argument("--out", required=True, help="the index folder to write")
    i.add_argument("--embedder", help=f"embedding model folder (default: $RAPIDRAG_MODELS/{DEFAULT_EMBEDDER})")
    i.add_argument("--reranker", help=f"reranker model folder (default: $RAPIDRAG_MODELS/{DEFAULT_RERANKER})")
    i.add_argument(
        "--int8",
        action="store_true",
        help="the models' int8 files: model_fused_int8.onnx (by `rapidrag quantize`) if there, else model_int8.onnx",
    )
    i.add_argument("--lexical", action="store_true", help="BM25 only, no models")
    i.add_argument("--index", default="flat", choices=("flat", "hnsw", "ivfpq"), help="FAISS index (default flat)")
    i.add_argument(
        "--index-option",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a setting of the FAISS index, repeatable: ef_search, hnsw_m, ef_construction, compact_fraction (HNSW), "
        "nprobe, nlist, pq_m, refine (IVF-PQ), exact_fraction, exact_rows (filters), n_threads",
    )
    i.add_argument("--force", action="store_true", help="replace an index already at --out")
    i.add_argument(
        "--update",
        action="store_true",
        help="bring the index at --out in line with SRC: add new documents, index changed ones again, leave the rest",
    )
    i.add_argument("--prune", action="store_true", help="with --update: remove the documents no longer in SRC")
    i.add_argument("--dry-run", action="store_true", help="with --update: say what it would do, change nothing")
    i.add_argument(
        "--shards", type=_positive_int, default=1, help="split the index in this many shards (default 1: one index)"
    )
    i.add_argument("--ray", metavar="ADDRESS", help="put the shards in Ray actors on the cluster at ADDRESS ('auto')")
    i.add_argument(
        "--replicas", type=_positive_int, default=1, help="with --ray: copies of each shard, on different nodes"
    )
    i.set_defaults(func=cmd_index)
    q = sub.add_parser("query", help="search an index")
    index_dir(q)
    q.add_argument("query", help="the question or words to search for (quote it)")
    q.add_argument("-k", type=_positive_int, default=10, help="hits to show (default 10)")
    q.add_argument("--filter", help='a metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
    q.add_argument("--mode", choices=("hybrid", "dense", "lexical"), help="default: hybrid when the index has vectors")
    q.add_argument("--no-rerank", action="store_true", help="skip the reranker")
    q.add_argument("--budget-ms", type=float, help="time budget of the whole search, in ms")
    q.add_argument("--format", choices=("text", "json"), default="text", help="output (default text)")
    q.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
    models(q)
    q.set_defaults(func=cmd_query)
    e = sub.add_parser("eval", help="nDCG@10, recall@100 and MRR@10 on BEIR queries and qrels")
    index_dir(e)
    e.add_argument("--queries", required=True, help="queries.jsonl[.gz] or a BEIR data set folder")
    e.add_argument("--qrels", required=True, help="a qrels .tsv file")
    e.add_argument(
        "--mode",
        action="append",
        choices=("hybrid", "dense", "lexical"),
        help="repeatable; only the modes given run (default: every mode of the index, and hybrid + rerank)",
    )
    rr = e.add_mutually_exclusive_group()
    rr.add_argument("--rerank", action="store_true", help="add a reranked row for each --mode given")
    rr.add_argument("--no-rerank", action="store_true", help="no reranked row (by default there is one, hybrid)")
    models(e)
    e.set_defaults(func=cmd_eval)
    t = sub.add_parser("tune", help="choose the BM25, fusion and rerank weights on judged queries")
    index_dir(t)
    t.add_argument("--queries", required=True, help="queries.jsonl[.gz] or a BEIR data set folder")
    t.add_argument("--qrels", required=True, help="a qrels .tsv file of tuning queries (e.g. SciFact train)")
    t.add_argument("--max-queries", type=_positive_int, help="tune on the first N judged queries only")
    t.add_argument("-v", "--verbose", action="store_true", help="print every setting tried")
    models(t)
    t.set_defaults(func=cmd_tune)
    b = sub.add_parser("bench", help="latency of each stage and end to end (p50/p95/p99), with nDCG@10")
    index_dir(b)
    b.add_argument("--queries", required=True, help="queries.jsonl[.gz] or a BEIR data set folder")
    b.add_argument("--qrels", help="a qrels .tsv file: only its queries run, and nDCG@10 is reported")
    b.add_argument("--max-queries", type=_positive_int, help="run the first N queries only")
    b.add_argument("--budget-ms", type=float, action="append", help="a budget to measure (repeatable; 100 and 500)")
    b.add_argument("-k", type=_positive_int, default=10, help="hits per search (default 10)")
    b.add_argument("--candidates", type=_positive_int, default=100, help="first-stage candidates (default 100)")
    b.add_argument("--out", default="rapidrag-bench.json", help="the JSON report (default rapidrag-bench.json)")
    b.add_argument("--concurrency", type=int, action="append", help="threads searching at once (repeatable; 1, 2, 4)")
    b.add_argument("--plot", help="a PNG of the latency distributions (needs matplotlib)")
    b.add_argument("--budget-plot", help="a PNG of nDCG@10 and latency against the budget (needs --qrels)")
    b.add_argument(
        "--compare-reranker",
        action="append",
        metavar="NAME=PATH",
        help="also run the budgets with this reranker folder in place of the index's (repeatable; one plot)",
    )
    b.add_argument(
        "--context-budget",
        type=_positive_int,
        metavar="TOKENS",
        help="also pack each search's hits into a context of this many tokens and report its tokens and cost",
    )
    prices(b)
    models(b)
    b.set_defaults(func=cmd_bench)

    def packing(command: argparse.ArgumentParser) -> None:
        command.add_argument("--budget", type=_count, default=1000, help="context tokens at most (default 1000)")
        command.add_argument("-k", type=_positive_int, default=20, help="hits to pack from (default 20)")
        command.add_argument("--filter", help="a metadata filter as JSON")
        command.add_argument("--mode", choices=("hybrid", "dense", "lexical"), help="default: the index's")
        command.add_argument("--no-rerank", action="store_true", help="skip the reranker")
        command.add_argument("--budget-ms", type=float, help="time budget of the search, in ms")
        command.add_argument(
            "--strategy", choices=("chunks", "window", "sentences"), help="what a hit becomes (default: measured best)"
        )
        command.add_argument("--window-tokens", type=_positive_int, default=256, help="window size (default 256)")
        command.add_argument("--sentence-window", type=_count, default=1, help="sentences each side (default 1)")
        command.add_argument("--no-merge", action="store_true", help="keep touching pieces of a document apart")
        command.add_argument("--dedupe", type=float, default=0.95, help="similarity that drops a piece (0: off)")
        command.add_argument("--order", choices=("score", "edges"), default="score", help="edges: best at both ends")
        command.add_argument("--tokenizer", metavar="PATH", help="the generator's tokenizer (default: the index's)")
        command.add_argument("--format", choices=("md", "json"), default="md", help="output (default md)")

    c = sub.add_parser("context", help="the generator's context for a question: hits packed to a token budget")
    index_dir(c)
    c.add_argument("query", help="the question (quote it)")
    packing(c)
    prices(c)
    models(c)
    c.set_defaults(func=cmd_context)
    g = sub.add_parser("ground", help="check each sentence of an answer against the context it was given")
    index_dir(g)
    g.add_argument("--answer", required=True, metavar="FILE", help="the answer, a UTF-8 text file ('-': stdin)")
    g.add_argument("--question", help="the question: its context is packed as rapidrag context packs it")
    g.add_argument("--context", metavar="FILE", help="or a context saved by rapidrag context --format json")
    g.add_argument("--nli", metavar="DIR", help="an NLI cross-encoder folder (ONNX) to score with")
    packing(g)
    models(g)
    g.set_defaults(func=cmd_ground)
    sv = sub.add_parser("serve", help="serve an index over HTTP (JSON; needs rapidrag[serve])")
    index_dir(sv)
    sv.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000)")
    sv.add_argument("--api-key", help="require this key on every route but /healthz (default: $RAPIDRAG_API_KEY)")
    sv.add_argument("--max-body-bytes", type=int, help="larger bodies get 413 (default 8 MiB)")
    sv.add_argument("--max-k", type=int, help="the largest k a search may ask (default 100)")
    sv.add_argument("--max-query-chars", type=int, help="the longest query (default 2000 characters)")
    sv.add_argument("--max-batch", type=int, help="documents per POST /documents (default 1000)")
    sv.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any request limit of rapidrag.server.Limits, e.g. max_context_tokens=8192, max_candidates=500, "
        "max_budget_ms=2000, max_rerank_documents=100 (repeatable)",
    )
    sv.add_argument(
        "--save-on-exit",
        action="store_true",
        help="as the server stops, save the changes made through it since the last save (POST /save) to DIR",
    )
    sv.add_argument(
        "--watch",
        type=_positive_float,
        metavar="SECONDS",
        help="look at DIR every SECONDS and serve its newest snapshot when another writer saved it (rapidrag index "
        "--update, tune; POST /reload does it on demand)",
    )
    sv.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="the server's log level (default info; warning: no access log)",
    )
    models(sv)
    sv.set_defaults(func=cmd_serve)
    p = sub.add_parser("chunk", help="tokenize and chunk a corpus and report throughput")
    p.add_argument("src", help="a folder of .txt, .md, .html and .jsonl files, or a corpus.jsonl[.gz], as index reads")
    p.add_argument(
        "--tokenizer", help=f"vocab.txt, tokenizer.json or model folder (default: $RAPIDRAG_MODELS/{DEFAULT_TOKENIZER})"
    )
    p.add_argument("--max-tokens", type=int, default=256, help="chunk size in tokens (default 256)")
    p.add_argument("--overlap", type=int, default=0, help="tokens shared by consecutive chunks (default 0)")
    p.add_argument("--threads", type=int, default=0, help="threads, 0 = one per core (default)")
    p.add_argument("--out", help="write the chunks to this .jsonl file")
    p.set_defaults(func=cmd_chunk)
    tr = sub.add_parser("train", help="fine-tune a reranker or an embedder on judged queries (rapidrag[train])")
    tr.add_argument("what", choices=("reranker", "embedder"), help="the model to train")
    tr.add_argument("src", help="the corpus: a folder of documents or a corpus.jsonl[.gz], as rapidrag index reads")
    tr.add_argument("--queries", required=True, help="queries.jsonl[.gz] or a BEIR data set folder")
    tr.add_argument("--qrels", required=True, help="the training qrels .tsv (a dev split is carved out of it)")
    tr.add_argument("--init", help="a Hugging Face checkpoint folder to start from (default: the --teacher)")
    tr.add_argument("--teacher", help="distil: a cross-encoder folder (from rapidrag train) whose scores to learn")
    tr.add_argument(
        "--layers",
        type=_layers,
        help="a smaller, faster student: keep this many encoder layers, evenly spaced (2), or these ones (0,1)",
    )
    tr.add_argument(
        "--loss",
        choices=("listwise", "bce"),
        default="listwise",
        help="reranker, on the judgements: listwise softmax over each group (default), or binary cross-entropy per "
        "pair (scores comparable across queries, for a check of support)",
    )
    tr.add_argument(
        "--distil-loss",
        choices=("kl", "margin-mse"),
        default="kl",
        help="with --teacher: listwise KL over each group (default) or Margin-MSE of relevant-minus-negative margins",
    )
    tr.add_argument(
        "--distil-queries",
        metavar="FILE",
        help="with --teacher: unlabelled queries (.txt, one per line, or queries.jsonl) the teacher labels too",
    )
    tr.add_argument(
        "--distil-hidden",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="with --teacher: also learn the teacher's hidden states (mean squared difference, layers mapped "
        "uniformly), at this weight beside the scores' loss (default 0: off)",
    )
    tr.add_argument(
        "--select-by",
        choices=("fused", "alone"),
        default="fused",
        help="reranker: what dev maximises to choose the step kept: nDCG@10 fused with the first stage (default) "
        "or the reranker's order alone",
    )
    tr.add_argument(
        "--attention-dropout",
        type=float,
        metavar="P",
        help="dropout on the attention weights while training (default: the checkpoint's); 0 trains about twice "
        "as fast on CPU",
    )
    tr.add_argument("--out", required=True, help="the model folder to write")
    tr.add_argument("--embedder", metavar="PATH", help="embedder for hybrid mining (default $RAPIDRAG_MODELS/...)")
    tr.add_argument("--lexical-mining", action="store_true", help="mine negatives with BM25 alone")
    tr.add_argument("--index", metavar="DIR", help="mine with this saved index of the same corpus (no re-indexing)")
    tr.add_argument("--max-length", type=_positive_int, default=256, help="tokens per pair (default 256)")
    tr.add_argument("--negatives", type=int, help="hard negatives per positive (reranker 7, embedder 1)")
    tr.add_argument(
        "--skip-window", type=int, default=2, help="ranks skipped around each relevant one when mining (default 2)"
    )
    tr.add_argument(
        "--candidates",
        "--depth",  # the name it had first
        dest="candidates",
        type=_positive_int,
        default=30,
        help="first-stage candidates mined per query (default 30)",
    )
    tr.add_argument("--epochs", type=_positive_int, help="passes over the training queries (reranker 2, embedder 1)")
    tr.add_argument("--groups-per-batch", type=_positive_int, default=4, help="reranker: query groups per step (4)")
    tr.add_argument("--batch-size", type=_positive_int, default=32, help="embedder: queries per step (32)")
    tr.add_argument("--lr", type=float, help="peak learning rate (reranker 5e-5, embedder 2e-5)")
    tr.add_argument("--eval-every", type=_positive_int, default=50, help="steps between dev evaluations (50)")
    tr.add_argument("--max-steps", type=_positive_int, help="stop after this many steps")
    tr.add_argument("--dev-fraction", type=float, default=0.2, help="share of the judged queries for dev (0.2)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--no-bf16", action="store_true", help="fp32 training even where the CPU has bf16")
    tr.add_argument("--no-int8", action="store_true", help="do not write model_fused_int8.onnx")
    tr.add_argument("--force", action="store_true", help="replace --out if it exists")
    tr.add_argument("--keep-worse", action="store_true", help="write the model even if dev says it got worse")
    tr.set_defaults(func=cmd_train)
    ex = sub.add_parser("export", help="a Hugging Face checkpoint folder to a model folder rapidrag loads")
    ex.add_argument("checkpoint", help="a Hugging Face checkpoint folder (config.json, weights, tokenizer)")
    ex.add_argument("--out", required=True, help="the model folder to write")
    ex.add_argument("--task", required=True, choices=("embed", "rerank"), help="an embedder or a cross-encoder")
    ex.add_argument("--int8", action="store_true", help="also write model_fused_int8.onnx (rapidrag quantize)")
    ex.add_argument("--max-length", type=_positive_int, default=512, help="tokens per text or pair (512)")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists")
    ex.set_defaults(func=cmd_export)
    qz = sub.add_parser("quantize", help="make an int8 model with fused attention from an fp32 ONNX model")
    qz.add_argument(
        "src", help="a model folder holding model.onnx, a model name under $RAPIDRAG_MODELS, or a .onnx file"
    )
    qz.add_argument("--out", help="the int8 .onnx file to write (default: model_fused_int8.onnx beside the source)")
    qz.add_argument("--no-fuse", action="store_true", help="quantize without fusing the attention blocks")
    qz.add_argument("--fp32", action="store_true", help="only fuse the attention blocks; keep fp32 weights")
    qz.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    qz.add_argument(
        "--no-per-token",
        action="store_true",
        help="one activation range per batch for the down-projections too (faster by about 4%%, less exact)",
    )
    qz.set_defaults(func=cmd_quantize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, RapidragError, OSError, ValueError, TypeError) as e:
        print(f"rapidrag: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rapidrag: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
