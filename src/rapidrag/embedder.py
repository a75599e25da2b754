"""Sentence embeddings with ONNX Runtime on the native tokenizer, in length-bucketed batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import ModelError
from .tokenizer import Tokenizer, _check_texts, _check_threads

__all__ = ["Embedder", "resolve_model"]

F32Array = npt.NDArray[np.float32]
REQUIRED_INPUTS = ("input_ids", "attention_mask")


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A model folder: an existing path, or a name looked up under the folder in ``RAPIDRAG_MODELS``."""
    path = Path(name_or_path)
    looked = [str(path)]
    if path.is_dir():
        return path
    root = os.environ.get("RAPIDRAG_MODELS")
    if root and not path.is_absolute():
        candidate = Path(root) / path
        looked.append(str(candidate))
        if candidate.is_dir():
            return candidate
    where = ", ".join(looked) + ("" if root else " (RAPIDRAG_MODELS is not set)")
    raise FileNotFoundError(
        f"model {str(name_or_path)!r} not found; looked in {where}. Pass the path of a model folder "
        "(model.onnx, vocab.txt or tokenizer.json) or set RAPIDRAG_MODELS to a folder that holds it."
    )


class Embedder:
    """Embed texts with a BERT-family ONNX model (for example all-MiniLM-L6-v2).

    Parameters
    ----------
    path : str or path
        A model folder with ``model.onnx`` (or ``model_int8.onnx`` when ``quantized``) and ``tokenizer.json`` or
        ``vocab.txt``; or a name under ``RAPIDRAG_MODELS``.
    quantized : bool
        Load ``model_int8.onnx``.
    max_length : int
        Tokens per text, special tokens included; longer texts are truncated.
    normalize : bool
        L2-normalise the embeddings (inner product is then cosine similarity).
    pooling : "auto", "mean" or "cls"
        "auto" uses the model's ``sentence_embedding`` output when it has one, else masked mean pooling of
        ``last_hidden_state``.
    n_threads : int
        ONNX Runtime intra-op threads and tokenizer threads; 0 = one per core.
    graph_optimization_level : str
        "disable", "basic", "extended" or "all" (ONNX Runtime's levels).
    enable_mem_arena : bool
        ONNX Runtime's CPU memory arena.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quantized: bool = False,
        max_length: int = 256,
        normalize: bool = True,
        pooling: Literal["auto", "mean", "cls"] = "auto",
        n_threads: int = 0,
        graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all",
        enable_mem_arena: bool = True,
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        folder = resolve_model(path)
        model_file = folder / ("model_int8.onnx" if quantized else "model.onnx")
        if not model_file.is_file():
            raise FileNotFoundError(f"no {model_file.name} in {folder}")
        if pooling not in ("auto", "mean", "cls"):
            raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        self.n_threads = _check_threads(n_threads, 0)
        self.tokenizer = Tokenizer.from_file(folder, n_threads=self.n_threads)
        self.max_length = max_length
        self.normalize = normalize

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if graph_optimization_level not in levels:
            raise ValueError(
                f"graph_optimization_level must be one of {sorted(levels)}, got {graph_optimization_level!r}"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[graph_optimization_level]
        options.intra_op_num_threads = self.n_threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = enable_mem_arena
        try:
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own exception types for corrupt or invalid files
            raise ModelError(f"{model_file}: ONNX Runtime cannot load it ({e})") from None
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        missing = [name for name in REQUIRED_INPUTS if name not in inputs]
        if missing:
            raise ModelError(f"{model_file}: the model has no input {missing[0]!r} (inputs: {sorted(inputs)})")
        self._input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in inputs]
        if pooling == "auto" and "sentence_embedding" in outputs:
            self._output, self.pooling = "sentence_embedding", "model"
        elif "last_hidden_state" in outputs:
            self._output, self.pooling = "last_hidden_state", "mean" if pooling == "auto" else pooling
        else:
            raise ModelError(
                f"{model_file}: need a 'last_hidden_state' or 'sentence_embedding' output, has {sorted(outputs)}"
            )
        self.dim = int(self.embed(["warm-up"]).shape[1])  # also warms the session

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> F32Array:
        """Embeddings of ``texts``: float32 [n, dim], in the order given.

        Texts are sorted by token count and batched so that each batch is padded only to its own longest text;
        an empty list gives an empty [0, dim] array.
        """
        items = _check_texts(texts, "texts")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not items:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        lengths = self.tokenizer.count_tokens(items)
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
        (result,) = self.session.run([self._output], feed)
        if self.pooling == "model":
            vectors = np.asarray(result, dtype=np.float32)
        else:
            hidden = np.asarray(result, dtype=np.float32)
            if self.pooling == "cls":
                vectors = hidden[:, 0, :]
            else:
                mask = inputs["attention_mask"].astype(np.float32)[:, :, None]
                vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Embedder(dim={getattr(self, 'dim', '?')}, pooling={self.pooling!r}, max_length={self.max_length})"
