"""The naive cross-encoder pipeline that the reranker benchmarks compare against.

What a user assembles by hand, and what FlashRank does: HF ``tokenizers`` with truncation of the passage only and
padding of every pair to ``max_length``, all candidates in one ONNX Runtime run, one intra-op thread per core.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers


def naive_reranker(model_dir: Path, model_file: str, max_length: int = 256) -> Callable[[str, list[str]], np.ndarray]:
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length, strategy="only_second")
    tok.enable_padding(length=max_length)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(model_dir / model_file), options, providers=["CPUExecutionProvider"])

    def score(query: str, passages: list[str]) -> np.ndarray:
        encs = tok.encode_batch([(query, p) for p in passages])
        feed = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
        }
        return np.asarray(session.run(None, feed)[0][:, 0], dtype=np.float32)

    return score
