"""Embedding throughput: rapidrag.Embedder against the naive pipeline on the same ONNX model.

The naive baseline is what a user assembles by hand (and what FlashRank does for its cross-encoders): HF
``tokenizers`` with padding and truncation to ``max_length`` (256), batches of 32 in corpus order, one ONNX Runtime
run per batch with the same session options, the model's ``sentence_embedding`` output. rapidrag sorts the texts by
token count and pads each batch of 32 only to its longest text. Both use the same thread count (one per core).

Each benchmark checks its result: the two pipelines agree to a cosine of at least 0.99999 on every document (fp32),
and the int8 model's vectors stay within a cosine of 0.98 of fp32. Sizes: SciFact documents, the first
``RAPIDRAG_BENCH_EMBED_DOCS`` (48 by default, 300 with ``RAPIDRAG_BENCH_FULL=1``); docs/s are in extra_info.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tokenizers
from _common import FULL, env_int, record, run_timed

import rapidrag

EMBED_DOCS = env_int("RAPIDRAG_BENCH_EMBED_DOCS", 300 if FULL else 48)
MAX_LENGTH = 256
BATCH = 32
_VECTORS: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def texts(scifact_texts: list[str]) -> list[str]:
    return scifact_texts[:EMBED_DOCS]


def naive_embed(model_dir: Path, quantized: bool) -> Any:
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    tok.enable_padding(length=MAX_LENGTH)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    model = model_dir / ("model_int8.onnx" if quantized else "model.onnx")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def embed(batch_texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(batch_texts), BATCH):
            encs = tok.encode_batch(batch_texts[start : start + BATCH])
            feed = {
                "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            }
            out.append(session.run(["sentence_embedding"], feed)[0])
        return np.vstack(out)

    return embed


def _nbytes(texts: list[str]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts)


@pytest.mark.parametrize("quantized", [False, True], ids=["fp32", "int8"])
@pytest.mark.benchmark(group="embed-scifact")
def test_naive_embed(benchmark: Any, minilm_dir: Path, texts: list[str], quantized: bool) -> None:
    embed = naive_embed(minilm_dir, quantized)
    embed(texts[:2])  # warm-up
    vectors = run_timed(benchmark, lambda: embed(texts), rounds=2)
    key = "naive-int8" if quantized else "naive-fp32"
    _VECTORS[key] = vectors
    _report_docs_per_s(benchmark, len(texts))
    how = f"HF tokenizers padded to {MAX_LENGTH}, batches of {BATCH}"
    record(benchmark, key, _nbytes(texts), docs=len(texts), how=how)
    assert vectors.shape == (len(texts), 384)


@pytest.fixture(scope="module")
def fused_int8(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("embedder") / "model_fused_int8.onnx"
    rapidrag.quantize(minilm_dir, path)
    return path


@pytest.mark.parametrize("model", ["fp32", "int8", "int8-fused"])
@pytest.mark.benchmark(group="embed-scifact")
def test_rapidrag_embed(benchmark: Any, minilm_dir: Path, fused_int8: Path, texts: list[str], model: str) -> None:
    quantized = model != "fp32"
    model_file = {"fp32": "model.onnx", "int8": "model_int8.onnx", "int8-fused": fused_int8}[model]
    embedder = rapidrag.Embedder(minilm_dir, model_file=model_file, max_length=MAX_LENGTH)
    vectors = run_timed(benchmark, lambda: embedder.embed(texts, batch_size=BATCH), rounds=2)
    _report_docs_per_s(benchmark, len(texts))
    record(benchmark, f"rapidrag-{model}", _nbytes(texts), docs=len(texts), how=f"length-bucketed batches of {BATCH}")
    assert vectors.shape == (len(texts), 384)
    reference = _VECTORS.get("naive-int8" if quantized else "naive-fp32")
    if reference is None:
        reference = naive_embed(minilm_dir, quantized)(texts)
    cos = (vectors * reference).sum(axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    # fp32: the same numbers up to padding; int8: dynamic quantization depends on the batch's padding too.
    assert cos.min() >= (0.98 if quantized else 0.99999), f"lowest cosine to the naive pipeline {cos.min()}"


def _report_docs_per_s(benchmark: Any, n_docs: int) -> None:
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.median > 0:
        benchmark.extra_info["docs/s (median)"] = round(n_docs / stats.median, 1)
