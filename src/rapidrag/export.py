"""A Hugging Face checkpoint to a model folder rapidrag loads (``rapidrag export``, ``pip install 'rapidrag[export]'``).

``export_model`` writes ``model.onnx`` (dynamic batch and sequence axes), the tokenizer files and a
``rapidrag.json``, after checking the ONNX model through rapidrag's own ``Embedder`` or ``Reranker`` against
``transformers``' outputs on sample texts, and rapidrag's tokenizer against the checkpoint's; optionally the int8
file of ``rapidrag quantize`` with its score error. The folder is written whole or not at all. torch and
transformers are imported when an export starts.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ModelError

__all__ = ["EXPORT_TOLERANCE", "ExportReport", "export_model", "export_onnx"]

EXPORT_TOLERANCE = 1e-4  # max abs difference of scores or normalised embeddings, fp32 ONNX against transformers
# Texts the export is checked on: short and long, punctuation, digits, accents, CJK, emoji.
SAMPLE_QUERIES = ["what does vitamin D do to bone density?", "Who wrote the 1905 papers on relativity"]
SAMPLE_TEXTS = [
    "Vitamin D deficiency is associated with lower bone mineral density in older adults.",
    "In 1905 Albert Einstein published four papers: the photoelectric effect, Brownian motion, special "
    "relativity and mass-energy equivalence (E = mc²).",
    "Café, naïve, Ångström; 東京 and 北京; emoji 😀 — and a very long sentence " + "that goes on " * 40 + ".",
    "short",
]


@dataclass
class ExportReport:
    """Where the folder went and what its rapidrag.json says (the checks included)."""

    path: Path
    record: dict[str, Any] = field(default_factory=dict)


def export_onnx(model: Any, sample: Mapping[str, Any], path: Path, output: str) -> None:
    """``model`` to ONNX (opset 17, dynamic batch and sequence axes), called with its inputs by name so that the
    graph's inputs are whichever of input_ids, attention_mask and token_type_ids ``sample`` holds; ``output``: the
    model output to export (``logits`` or ``last_hidden_state``)."""
    import torch

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class ByName(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *inputs: Any) -> Any:
            return getattr(self.inner(**dict(zip(names, inputs, strict=True))), output)

    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # plain ops trace to a graph of dynamic shapes; SDPA's masks do not
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output] = {0: "batch"} if output == "logits" else {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        torch.onnx.export(
            ByName().eval(),
            tuple(sample[n] for n in names),
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def export_model(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    task: Literal["embed", "rerank"],
    int8: bool = False,
    force: bool = False,
    max_length: int = 512,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export the checkpoint folder ``checkpoint`` as a ``task`` model ("embed": the encoder's last hidden state,
    pooled as the checkpoint's sentence-transformers configuration says; "rerank": a sequence classifier's
    logits) into the folder ``out``. An existing ``out`` is refused unless ``force``. Raises ModelError when the
    tokenizer is not one rapidrag reads exactly, or when the ONNX model's outputs differ from transformers' by more
    than ``EXPORT_TOLERANCE``; nothing is written then."""
    from .train.common import check_init, check_output, quiet, write_folder

    say = log or (lambda _: None)
    started = time.perf_counter()
    if task not in ("embed", "rerank"):
        raise ValueError(f"task must be 'embed' or 'rerank', got {task!r}")
    source, target = Path(checkpoint), Path(out)
    check_init(source, "checkpoint")
    check_output(target, force)
    from .tokenizer import Tokenizer

    try:
        ours = Tokenizer.from_file(source)
    except Exception as e:
        raise ModelError(f"{source}: rapidrag cannot read this tokenizer yet ({e})") from None
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    with quiet():
        tokenizer = AutoTokenizer.from_pretrained(source)
        loader = AutoModel if task == "embed" else AutoModelForSequenceClassification
        model = loader.from_pretrained(source, torch_dtype=torch.float32).eval()
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    _check_tokenizer(source, ours, tokenizer)
    from .embedder import _folder_pooling

    pooling = _folder_pooling(source) if task == "embed" else None
    record: dict[str, Any] = {
        "task": task,
        "made_by": "rapidrag export",
        "source": str(source.resolve()),
        "architecture": type(model).__name__,
        "inputs": [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")],
    }
    if pooling is not None:
        record["pooling"] = pooling

    def fill(folder: Path) -> None:
        with quiet():
            tokenizer.model_max_length = min(int(getattr(tokenizer, "model_max_length", max_length)), max_length)
            tokenizer.save_pretrained(folder)
            model.config.save_pretrained(folder)
        for name in ("special_tokens_map.json", "vocab.txt", "merges.txt"):
            if (source / name).is_file() and not (folder / name).is_file():
                (folder / name).write_bytes((source / name).read_bytes())
        sample = _model_inputs(tokenizer, task, record["inputs"])
        export_onnx(model, sample, folder / "model.onnx", "last_hidden_state" if task == "embed" else "logits")
        (folder / "rapidrag.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        record["onnx_check_max_abs_diff"] = diff = _check(folder, model, tokenizer, task, pooling, max_length)
        if not diff <= EXPORT_TOLERANCE:
            raise ModelError(
                f"{source}: the ONNX model differs from transformers by {diff:.2e} on the sample texts (tolerance "
                f"{EXPORT_TOLERANCE}); not exported"
            )
        say(f"model.onnx: within {record['onnx_check_max_abs_diff']:.1e} of transformers on the sample texts")
        if int8:
            from .quantization import quantize

            with quiet():
                report = quantize(folder, folder / "model_fused_int8.onnx")
            record["int8"] = {
                "file": report.path.name,
                "attention_fused": report.attention_fused,
                "max_abs_score_diff": _check(folder, model, tokenizer, task, pooling, max_length, report.path.name),
            }
            say(
                f"{report.path.name}: int8, {report.attention_fused} attention blocks fused, "
                f"max abs difference {record['int8']['max_abs_score_diff']:.3g} against transformers"
            )
        record["seconds"] = time.perf_counter() - started
        (folder / "rapidrag.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    write_folder(target, fill)
    say(f"wrote {target}")
    return ExportReport(target, record)


def _check_tokenizer(source: Path, ours: Any, theirs: Any) -> None:
    """rapidrag's tokenizer must give the checkpoint tokenizer's ids on the sample texts, pairs included."""
    for text in SAMPLE_TEXTS + SAMPLE_QUERIES:
        expected = theirs(text)["input_ids"]
        got = ours.encode(text).tolist()
        if got != expected:
            raise ModelError(
                f"{source}: rapidrag's tokenizer gives {got[:12]}... for {text[:40]!r}, "
                f"transformers {expected[:12]}...; not exported"
            )
    query, passage = SAMPLE_QUERIES[0], SAMPLE_TEXTS[0]
    expected = theirs(query, passage)["input_ids"]
    got = ours.encode_pairs(query, [passage], padding=False).input_ids[0].tolist()
    if got != expected:
        raise ModelError(
            f"{source}: rapidrag lays out a (query, passage) pair as {got[:12]}..., transformers as "
            f"{expected[:12]}...; not exported"
        )


def _model_inputs(tokenizer: Any, task: str, names: list[str]) -> dict[str, Any]:
    if task == "embed":
        enc = tokenizer(SAMPLE_TEXTS[:2], padding="longest", return_tensors="pt")
    else:
        enc = tokenizer(SAMPLE_QUERIES[:1] * 2, SAMPLE_TEXTS[:2], padding="longest", return_tensors="pt")
    return {n: enc[n] for n in names if n in enc}


def _check(
    folder: Path, model: Any, tokenizer: Any, task: str, pooling: str | None, max_length: int, file: str | None = None
) -> float:
    """The largest difference between rapidrag's outputs on ``file`` (default model.onnx) and transformers'."""
    import torch

    if task == "embed":
        from .embedder import Embedder

        embedder = Embedder(folder, model_file=file, max_length=max_length)
        got = embedder.embed(SAMPLE_TEXTS + SAMPLE_QUERIES)
        want = []
        for text in SAMPLE_TEXTS + SAMPLE_QUERIES:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**enc).last_hidden_state[0].float().numpy()
            vector = hidden[0] if pooling == "cls" else hidden[-1] if pooling == "last" else hidden.mean(axis=0)
            want.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
        return float(np.abs(got - np.array(want)).max())
    from .reranker import Reranker

    reranker = Reranker(folder, model_file=file, max_length=min(max_length, 512), activation="none")
    worst = 0.0
    for query in SAMPLE_QUERIES:
        got = reranker.score(query, SAMPLE_TEXTS)
        enc = tokenizer(
            [query] * len(SAMPLE_TEXTS),
            SAMPLE_TEXTS,
            truncation="only_second",
            max_length=reranker.max_length,
            padding="longest",
            return_tensors="pt",
        )
        with torch.no_grad():
            logits = model(**enc).logits.float().numpy()
        worst = max(worst, float(np.abs(got - logits[:, -1]).max()))
    return worst
