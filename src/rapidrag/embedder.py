"""Sentence embeddings with ONNX Runtime on the native tokenizer, in length-bucketed batches."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._onnx import CORES, GraphLevel, find_model_file, load_model, open_session, resolve_model
from .errors import ModelError
from .tokenizer import _check_texts, _check_threads

__all__ = ["Embedder", "resolve_model"]

F32Array = npt.NDArray[np.float32]
REQUIRED_INPUTS = ("input_ids", "attention_mask")
# Texts per ONNX Runtime run. Small batches are faster on CPU: attention's [batch, heads, L, L] scores of 32
# full-length texts outgrow the caches. Measured on 2 cores (BENCHMARKS.md, "Embedding: the batch size"): 4 ran
# 1.26-1.58x the passages/s of 32 on SciFact's abstracts, 1.16-1.18x on gcide's short passages, each model file.
BATCH_SIZE = 4
SOLO_MAX_ROWS = 4  # batches up to this many texts may run on the one-thread session when the cores are busy
CONTENTION_MEMORY_S = 1.0  # after short batches found the cores busy, they use the one-thread session this long


# sentence-transformers' pooling modes, as its Pooling module's configuration names them.
_POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_lasttoken": "last"}


def _folder_pooling(folder: Path) -> str:
    """The pooling the folder declares: its ``rapidrag.json`` (``rapidrag export`` writes one), else its
    sentence-transformers configuration (``1_Pooling/config.json``), else mean; a mode rapidrag does not compute
    (max, weighted mean) is refused by name."""
    record = folder / "rapidrag.json"
    if record.is_file():
        try:
            declared = json.loads(record.read_text(encoding="utf-8")).get("pooling")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise ModelError(f"{record}: not valid JSON ({e})") from None
        if declared is not None:
            if declared not in _POOLING_MODES.values():
                raise ModelError(f"{record}: pooling {declared!r} is not one of {sorted(_POOLING_MODES.values())}")
            return str(declared)
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    try:
        spec = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{config}: not valid JSON ({e})") from None
    on = [key for key, value in spec.items() if key.startswith("pooling_mode_") and value]
    if len(on) != 1 or on[0] not in _POOLING_MODES:
        raise ModelError(f"{config}: pooling {on} is not supported; supported: one of {sorted(_POOLING_MODES)}")
    return _POOLING_MODES[on[0]]


class Embedder:
    """Embed texts with a BERT-family ONNX model (for example all-MiniLM-L6-v2).

    Parameters
    ----------
    path : str or path
        A model folder with ``model.onnx`` (or ``model_int8.onnx`` when ``quantized``) and ``tokenizer.json`` or
        ``vocab.txt``; or a name under ``RAPIDRAG_MODELS``.
    quantized : bool
        Load ``model_fused_int8.onnx`` (written by ``rapidrag quantize``) when the folder has it, else
        ``model_int8.onnx``.
    max_length : int
        Tokens per text, special tokens included; longer texts are truncated.
    normalize : bool
        L2-normalise the embeddings (inner product is then cosine similarity).
    pooling : "auto", "mean", "cls" or "last"
        "auto" uses the model's ``sentence_embedding`` output when it has one, else what the folder's
        sentence-transformers pooling configuration (``1_Pooling/config.json``) says, else masked mean pooling of
        ``last_hidden_state``. "last" takes the last token of each text (decoder embedders such as Qwen's).
    n_threads : int
        ONNX Runtime intra-op threads and tokenizer threads; 0 = one per core.
    graph_optimization_level : str
        "disable", "basic", "extended" or "all" (ONNX Runtime's levels).
    enable_mem_arena : bool
        ONNX Runtime's CPU memory arena.
    allow_spinning : bool
        Let idle ONNX Runtime threads spin for the next op (lowest latency; turn off when other work shares
        the cores).
    spin_between_runs : bool
        With ``allow_spinning``, the threads also spin for a while after a run returns (ONNX Runtime's default:
        the fastest for runs back to back). False: they stop as soon as it returns, which leaves the cores to what
        follows the run; for the coordinator of an index sharded over processes on the same machine, whose
        shards then search (BENCHMARKS.md, "Spinning between runs").
    model_file : str or path, optional
        The .onnx file to load instead of the default, relative to the folder or absolute (for example one made
        by ``rapidrag.quantize``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quantized: bool = False,
        max_length: int = 256,
        normalize: bool = True,
        pooling: Literal["auto", "mean", "cls", "last"] = "auto",
        n_threads: int = 0,
        graph_optimization_level: GraphLevel = "all",
        enable_mem_arena: bool = True,
        allow_spinning: bool = True,
        spin_between_runs: bool = True,
        model_file: str | os.PathLike[str] | None = None,
    ) -> None:
        folder = resolve_model(path)
        onnx_file = find_model_file(folder, quantized, model_file)
        if pooling not in ("auto", "mean", "cls", "last"):
            raise ValueError(f"pooling must be 'auto', 'mean', 'cls' or 'last', got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        self.n_threads = _check_threads(n_threads, 0)
        self.max_length = max_length
        self.folder, self.model_path = folder, onnx_file  # remembered by a saved index
        self.normalize = normalize
        self.tokenizer, self.session, self._input_names = load_model(
            folder,
            onnx_file,
            required_inputs=REQUIRED_INPUTS,
            n_threads=self.n_threads,
            graph_optimization_level=graph_optimization_level,
            enable_mem_arena=enable_mem_arena,
            allow_spinning=allow_spinning,
            spin_between_runs=spin_between_runs,
        )
        # A second session of one thread that does not spin, for short batches (a query) while searches run side
        # by side: they then embed their queries at once, one core each, instead of queueing for all the cores
        # (and a session's spinning threads would take the core another run needs: BENCHMARKS.md).
        self._solo = None
        self._contended_at = -math.inf  # when a short batch last found the cores busy
        if (self.n_threads or CORES.cores) > 1:
            self._solo = open_session(
                onnx_file,
                n_threads=1,
                graph_optimization_level=graph_optimization_level,
                enable_mem_arena=enable_mem_arena,
                allow_spinning=False,
            )
        outputs = {o.name for o in self.session.get_outputs()}
        if pooling == "auto" and "sentence_embedding" in outputs:
            self._output, self.pooling = "sentence_embedding", "model"
        elif "last_hidden_state" in outputs:
            self._output = "last_hidden_state"
            self.pooling = _folder_pooling(folder) if pooling == "auto" else pooling
        else:
            raise ModelError(
                f"{onnx_file}: need a 'last_hidden_state' or 'sentence_embedding' output, has {sorted(outputs)}"
            )
        self.dim = int(self.embed(["warm-up"]).shape[1])  # also warms the session

    def embed(self, texts: Sequence[str], *, batch_size: int = BATCH_SIZE, lengths: Any = None) -> F32Array:
        """Embeddings of ``texts``: float32 [n, dim], in the order given.

        Texts are sorted by token count and batched so that each batch is padded only to its own longest text;
        an empty list gives an empty [0, dim] array. ``batch_size``: texts per run (an int8 model scales each run's
        activations by the run's own range, so its vectors move a little with what shares the run; fp32 ones do
        not). ``lengths``: the texts' token counts when the caller has them
        (a chunker's), so that they are not counted again; they only order the batches.
        """
        items = _check_texts(texts, "texts")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not items:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        if lengths is None:
            lengths = self.tokenizer.count_tokens(items)
        elif np.shape(lengths) != (len(items),):
            raise ValueError(f"lengths must hold one token count per text ({len(items)}), got {np.shape(lengths)}")
        order = np.argsort(lengths, kind="stable")
        out: F32Array | None = None
        for start in range(0, len(items), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer.encode_batch([items[i] for i in idx], max_length=self.max_length)
            vectors = self._run(batch.model_inputs())
            if out is None:
                out = np.empty((len(items), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        if out is None:
            raise AssertionError("unreachable: at least one batch ran")
        return out

    def _run(self, inputs: dict[str, Any]) -> F32Array:
        feed = {name: inputs[name] for name in self._input_names}
        (result,) = self._session_run(feed)
        if self.pooling == "model":
            vectors = np.asarray(result, dtype=np.float32)
        else:
            hidden = np.asarray(result, dtype=np.float32)
            if self.pooling == "cls":
                vectors = hidden[:, 0, :]
            elif self.pooling == "last":  # rows are padded on the right: the last real token of each
                last = inputs["attention_mask"].sum(axis=1).astype(np.int64) - 1
                vectors = hidden[np.arange(len(hidden)), np.maximum(last, 0), :]
            else:
                mask = inputs["attention_mask"].astype(np.float32)[:, :, None]
                vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _session_run(self, feed: dict[str, Any]) -> Any:
        """The model's outputs for ``feed``. A short batch (a query) runs on all the session's threads when the
        cores are free and none was busy in the last ``CONTENTION_MEMORY_S``; otherwise on the one-thread session
        as soon as one core is (searches side by side then each use one core). Longer batches wait for all."""
        rows = len(next(iter(feed.values())))
        if self._solo is not None and rows <= SOLO_MAX_ROWS:
            now = time.perf_counter()
            if now - self._contended_at > CONTENTION_MEMORY_S:
                with CORES.use(self.n_threads, deadline=now) as granted:
                    if granted:
                        return self.session.run([self._output], feed)
                self._contended_at = now
            with CORES.use(1):
                return self._solo.run([self._output], feed)
        with CORES.use(self.n_threads):
            return self.session.run([self._output], feed)

    def __repr__(self) -> str:
        return f"Embedder(dim={getattr(self, 'dim', '?')}, pooling={self.pooling!r}, max_length={self.max_length})"
