"""The saved index: its format (a snapshot folder of ``rapidrag.persist``: documents, the chunk table, the BM25 and
FAISS indexes, the settings) and the models recorded in it, found again at load by path, by name under
``RAPIDRAG_MODELS`` and by fingerprint.

Format versions: 1, the first; 2, the same files, but the BM25 indexes of an index keep no string ids (``"ids":
null``): they are keyed by the chunk table's rows, as every index is; 3, a flat or HNSW dense index saves
its vectors once, in FAISS's file (versions 1 and 2 also saved them by row in ``dense.npz``, about doubling its
size; IVF-PQ, whose codes are lossy, still does); 4 (current), the metadata index's columns are saved
(``metadata.json``, ``metadata.npz``), so that a load does not rebuild them from every document's metadata (on a
126k-passage index that rebuild was half of the load). Versions 1 to 3 are still read (version 1's ids, the
rows' numbers written as strings, are checked and dropped; the vectors by row are not kept; the metadata index is
rebuilt from the documents).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .chunks import ChunkTable
from .dense import DenseIndex, check_options
from .documents import DocumentList
from .errors import IndexFormatError, IndexOptionError, ModelMismatchWarning, RapidragError
from .filters import MetadataIndex
from .lexical import BM25
from .persist import read_snapshot, save_arrays, write_snapshot

__all__ = ["FORMAT_VERSION", "MODELS_ENV", "build_model", "load", "model_name", "model_spec", "open_model", "save"]

FORMAT_VERSION = 4
READS_VERSIONS = (1, 2, 3, 4)
MODELS_ENV = "RAPIDRAG_MODELS"


def save(retriever: Any, path: str | os.PathLike[str], *, force: bool = False, after_file: Any = None) -> Path:
    """Write ``retriever`` to the folder ``path`` atomically (``rapidrag.persist``): the documents, the chunk table,
    the BM25 and FAISS indexes, the settings and which models built it. A folder it loaded or saved, saved by
    another writer since, is refused (IndexConflictError) unless ``force``; ``after_file`` is a test hook."""
    with retriever._lineage.saving(path, force=force) as expect:  # (one save of a copy at a time)
        return _save(retriever, path, expect, after_file)


def _save(retriever: Any, path: str | os.PathLike[str], expect: str | None, after_file: Any) -> Path:
    with retriever._lock.read():
        changes = retriever._changes  # (what this save holds)
        bm25_info, bm25_arrays = retriever.bm25.state()
        title_state = retriever.bm25_title.state() if retriever.bm25_title is not None else None
        dense_state = retriever.dense.state() if retriever.dense is not None else None
        metadata_info, metadata_arrays = retriever.metadata.state()
        table = retriever._chunks
        number = table.doc.copy()  # deletes change it in place: take it as it is now
        chunk, span = table.chunk, np.stack([table.start, table.end], axis=1)
        documents = retriever._documents.copy()
        numbered = sorted((d, doc_id) for doc_id, d in retriever._docs.items())
    # The file numbers the live documents 0, 1, ... in the order they were added.
    live, ids = [d for d, _ in numbered], [doc_id for _, doc_id in numbered]
    position = np.full(len(documents), -1, dtype=np.int64)
    position[live] = np.arange(len(live))
    owner = np.full(len(number), -1, dtype=np.int64)
    alive = number >= 0
    owner[alive] = position[number[alive]]
    lines = [documents.line(d) for d in live]
    files = {
        "documents.jsonl": ("\n".join(lines) + "\n").encode("utf-8") if lines else b"",
        "ids.json": json.dumps(ids).encode("utf-8"),
        "rows.npz": save_arrays(document=owner, chunk=chunk, span=span),
        "bm25.json": json.dumps(bm25_info).encode("utf-8"),
        "bm25.npz": save_arrays(**bm25_arrays),
        "metadata.json": json.dumps(metadata_info).encode("utf-8"),
        "metadata.npz": save_arrays(**metadata_arrays),
    }
    if title_state is not None:
        files["bm25_title.json"] = json.dumps(title_state[0]).encode("utf-8")
        files["bm25_title.npz"] = save_arrays(**title_state[1])
    if dense_state is not None:
        files["dense.npz"] = save_arrays(**dense_state[1])
    config = {
        "retriever": {
            "index": retriever.index_kind,
            "k1": retriever.bm25.k1,
            "b": retriever.bm25.b,
            "title_weight": retriever.title_weight,
            "fusion": retriever.fusion,
            "weights": list(retriever.weights),
            "rrf_k": retriever.rrf_k,
            "rerank_weight": retriever.rerank_weight,
            "rerank_depth": retriever.rerank_depth,
        },
        "chunker": {"max_tokens": retriever.chunker.max_tokens, "overlap": retriever.chunker.overlap}
        if retriever.chunker is not None
        else retriever._model_specs.get("chunker"),
        "embedder": model_spec(retriever.embedder) or retriever._model_specs.get("embedder"),
        "reranker": model_spec(retriever.reranker) or retriever._model_specs.get("reranker"),
        "dense": dense_state[0] if dense_state is not None else None,
        "documents": len(lines),
        "rows": len(owner),
        "tuned_on": retriever.tuned_on,
    }
    written = write_snapshot(path, files, config, version=FORMAT_VERSION, expect=expect, after_file=after_file)
    retriever._lineage.seen(written.path, written.generation)
    retriever._saved_changes = max(retriever._saved_changes, changes)
    return written.path


def load(
    cls: Any,
    path: str | os.PathLike[str],
    *,
    embedder: Any = "auto",
    reranker: Any = "auto",
    chunker: Any = "auto",
    index_options: Mapping[str, Any] | None = None,
    contents: bool = True,
) -> Any:
    """Open an index written by ``save`` as an instance of ``cls`` (see ``Retriever.load``). ``contents``: False
    opens its models and settings only, its indexes left empty (a sharded index's coordinator on Ray, whose shard
    actors open the parts)."""
    options = check_options(index_options)
    snap = read_snapshot(path, version=READS_VERSIONS)
    if isinstance(snap.config.get("sharded"), dict):
        n = snap.config["sharded"].get("n_shards")
        raise IndexFormatError(
            f"{path}: an index sharded in {n} parts: open it with rapidrag.distributed.ShardedRetriever.load"
        )
    try:
        cfg = snap.config
        settings = dict(cfg["retriever"])
        asked = {"embedder": embedder, "reranker": reranker}
        embedder = open_model(cfg["embedder"], embedder, "embedder")
        reranker = open_model(cfg["reranker"], reranker, "reranker")
        opened = {"embedder": embedder, "reranker": reranker}
        if cfg["dense"] is not None and embedder is not None and embedder.dim != cfg["dense"]["dim"]:
            raise ValueError(f"the index holds {cfg['dense']['dim']}-d vectors; the embedder gives {embedder.dim}-d")
        chunker_asked = chunker
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
        out._lineage.seen(path, snap.generation)
        given = "auto" if isinstance(chunker_asked, str) else "given"
        out._opened_with = {**asked, "chunker": given, "index_options": options}
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
        if cfg["dense"] is not None:
            dense = cfg["dense"]
            out.dense = DenseIndex.from_state(dense, snap.arrays("dense.npz")) if contents else DenseIndex.empty(dense)
        if options:
            if out.dense is None:
                raise IndexOptionError(f"index_options set the dense index, and {path} is lexical only")
            out.dense.set_options(**options)
        if not contents:
            return out
        out.bm25 = _bm25(snap, "bm25")
        if out.title_weight > 0:
            out.bm25_title = _bm25(snap, "bm25_title")
        rows = snap.arrays("rows.npz")
        owner, chunk, span = rows["document"], rows["chunk"], rows["span"]
        n_rows = int(cfg["rows"])
        if owner.shape != (n_rows,) or chunk.shape != (n_rows,) or span.shape != (n_rows, 2):
            raise ValueError("chunk table does not match the recorded number of rows")
        lines = _lines(snap.read("documents.jsonl"))
        if len(lines) != cfg["documents"]:
            raise ValueError(f"{len(lines)} documents where {cfg['documents']} were saved")
        if snap.version >= 4:  # the documents parsed as they are read; their ids saved apart
            ids = snap.json("ids.json")
            if not isinstance(ids, list) or len(ids) != cfg["documents"]:
                raise ValueError(f"ids.json does not list the {cfg['documents']} documents saved")
            docs = DocumentList.saved(lines, ids)
        else:
            docs = DocumentList.saved(lines)  # (every document parsed now)
            ids = [doc.id for doc in docs.held]  # type: ignore[union-attr]
        if len(owner) and owner.max() >= len(docs):
            raise ValueError(f"a row belongs to document {int(owner.max())} of {len(docs)}")
        out._chunks = ChunkTable.from_arrays(owner, chunk, span[:, 0], span[:, 1])
        out._documents = docs
        out._doc_rows = _document_rows(owner, len(docs))
        out._docs = {doc_id: d for d, doc_id in enumerate(ids)}
        if len(out._docs) != len(ids):
            raise ValueError("a document id is saved twice")
        if snap.version >= 4:
            out.metadata = MetadataIndex.from_state(snap.json("metadata.json"), snap.arrays("metadata.npz"))
            if out.metadata.n != n_rows:
                raise ValueError(f"the metadata index holds {out.metadata.n} rows where the table has {n_rows}")
        else:
            out.metadata.add([docs.held[d].metadata if d >= 0 else None for d in owner.tolist()])
        if out.bm25.n_rows != n_rows or len(out.bm25) != int(np.count_nonzero(owner >= 0)):
            raise ValueError("the BM25 index does not match the chunk table")
        if out.dense is not None:  # (every live row has a vector but those of chunks with no text)
            held = out.dense.held_rows()
            if len(held) and (held[-1] >= n_rows or (owner[held] < 0).any()):
                raise ValueError("the dense index holds vectors of rows the chunk table does not have")
    except IndexFormatError:
        raise
    except (KeyError, TypeError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        if isinstance(e, RapidragError):
            raise
        raise IndexFormatError(f"{path}: the saved index is inconsistent ({type(e).__name__}: {e})") from None
    return out


LINES_BLOCK = 1 << 20  # bytes of documents.jsonl decoded and split in one call


def _lines(data: bytes) -> list[str]:
    """The lines of ``documents.jsonl`` (JSON lines, every character beyond ASCII escaped), decoded and split a
    block of about ``LINES_BLOCK`` bytes at a time: one call over a 126k-passage index's 49 MB held the GIL for 50
    to 80 ms, which searches running beside a ``reload`` waited out."""
    out: list[str] = []
    start, end = 0, len(data)
    while start < end:
        stop = data.find(b"\n", min(start + LINES_BLOCK, end - 1))
        stop = end if stop < 0 else stop + 1
        out += data[start:stop].decode("utf-8").splitlines()
        start = stop
    return out


def _bm25(snap: Any, name: str) -> BM25:
    """A BM25 index of the snapshot, keyed by rows (format 1 wrote the rows' numbers as string ids)."""
    info = snap.json(f"{name}.json")
    if snap.version == 1:
        ids = info.get("ids")
        if ids != [str(r) for r in range(len(ids or []))]:
            raise ValueError(f"{name}: the ids of a format-1 index must be its rows' numbers")
        info["ids"] = None
    out = BM25.from_state(info, snap.arrays(f"{name}.npz"))
    out.prepare()
    return out


def _document_rows(owner: np.ndarray, n_docs: int) -> list[range]:
    """Each document's rows, from the document number of every row (-1: deleted); a document's rows are
    contiguous (they were added together)."""
    rows = np.flatnonzero(owner >= 0)
    numbers = owner[rows]
    counts = np.bincount(numbers, minlength=n_docs)
    first = np.full(n_docs, len(owner), dtype=np.int64)
    last = np.full(n_docs, -1, dtype=np.int64)
    np.minimum.at(first, numbers, rows)
    np.maximum.at(last, numbers, rows)
    has = counts > 0
    if np.any(last[has] - first[has] + 1 != counts[has]):
        raise ValueError("a document's rows are not contiguous")
    first[~has] = 0
    last[~has] = -1
    return [range(a, b + 1) for a, b in zip(first.tolist(), last.tolist(), strict=True)]


def model_spec(model: Any) -> dict[str, Any] | None:
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


def open_model(spec: dict[str, Any] | None, given: Any, role: str) -> Any:
    """The model for a loaded index: ``given`` (a model object, or a path or name to open with the recorded
    settings), None, or for "auto" the one recorded in ``spec`` (None, with a warning, when it cannot be found)."""
    if given is None:
        return None
    if isinstance(given, (str, os.PathLike)) and given != "auto":
        return _warn_if_other(build_model(role, spec, *_model_at(Path(given), spec)), spec, role)
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
    model = build_model(role, spec, *found)
    if spec.get("sha256") and found[1] != Path(spec["model_file"]):
        model._fingerprint = spec["sha256"]  # found by name and checked against it: no second hash at save
    return model


def _warn_if_other(model: Any, spec: dict[str, Any] | None, role: str) -> Any:
    """``model``, with a warning when its weights are not the file that built the index."""
    if spec is not None and spec.get("sha256") and getattr(model, "model_path", None) is not None:
        if _fingerprint(model) != spec["sha256"]:
            message = (
                f"the {role} given ({model.model_path}) is not the model file that built this index "
                f"({spec.get('model_file')})"
            )
            warnings.warn(ModelMismatchWarning(message, role), stacklevel=4)
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


def build_model(role: str, spec: dict[str, Any] | None, folder: Path, model_file: Path, **options: Any) -> Any:
    """An Embedder or Reranker on ``model_file`` with the settings the index recorded; ``options``: settings of
    this process that change no result (``n_threads``)."""
    spec = spec or {}
    if role == "embedder":
        from .embedder import Embedder

        pooling: Any = "auto" if spec.get("pooling", "model") == "model" else spec["pooling"]
        kwargs: dict[str, Any] = {"pooling": pooling, **options}
        for name in ("max_length", "normalize"):
            if name in spec:
                kwargs[name] = spec[name]
        return Embedder(folder, model_file=model_file, **kwargs)
    from .reranker import Reranker

    return Reranker(folder, model_file=model_file, max_length=spec.get("max_length"), **options)
