"""``rapidrag train embedder``: fine-tune a sentence embedder on judged queries with in-batch and mined hard
negatives, choose the step on a dev split by dense retrieval over the whole corpus, and write a model folder that
``Embedder`` and ``rapidrag index`` load as it is.

The loss is the multiple-negatives ranking loss (sentence-transformers' ``MultipleNegativesRankingLoss``: each
query against every positive and hard negative of its batch, scaled cosine similarities, cross-entropy toward its
own positive), over mean-pooled, normalised token embeddings, in the same plain PyTorch loop as the reranker
trainer (``rapidrag.train.common.Loop``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..export import export_onnx
from .common import (
    Loop,
    TrainingError,
    TrainReport,
    attention_dropout_setting,
    check_init,
    check_ints,
    check_output,
    dev_record,
    finish,
    gain_interval,
    quiet,
    start_torch,
)
from .data import TrainingData, prepare
from .mining import hard_negatives, mine

__all__ = ["train_embedder"]

SCALE = 20.0  # sentence-transformers' default scale of the cosine similarities in the loss
ONNX_TOLERANCE = 1e-4


def _embed(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, autocast: bool) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings: float32 [n, dim], in batches sorted by length."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for i in range(0, len(texts), 64):
            idx = order[i : i + 64]
            enc = tokenizer(
                [texts[j] for j in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            out[idx] = _pool(model(**enc).last_hidden_state, enc["attention_mask"]).float().numpy()
    return out


def _pool(hidden: Any, mask: Any) -> Any:
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean.float(), dim=-1)


def dense_ndcg(
    model: Any, tokenizer: Any, data: TrainingData, query_ids: Sequence[str], max_length: int, autocast: bool
) -> list[float]:
    """Dense nDCG@10 of each of ``query_ids`` over the whole corpus (each document's first ``max_length`` tokens)."""
    from ..metrics import query_metrics

    ids = list(data.documents)
    docs = _embed(model, tokenizer, [data.documents[d] for d in ids], max_length, autocast)
    queries = _embed(model, tokenizer, [data.queries[q] for q in query_ids], max_length, autocast)
    top = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    return [
        query_metrics([ids[j] for j in row], data.qrels[q])["ndcg@10"] for q, row in zip(query_ids, top, strict=True)
    ]


def train_embedder(
    corpus: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str],
    *,
    init: str | os.PathLike[str],
    out: str | os.PathLike[str],
    embedder: Any = None,
    index: str | os.PathLike[str] | None = None,
    max_length: int = 256,
    negatives: int = 1,
    skip_window: int = 2,
    candidates: int = 30,
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 2e-5,
    warmup: float = 0.1,
    eval_every: int = 50,
    max_steps: int | None = None,
    dev_fraction: float = 0.2,
    seed: int = 0,
    bf16: bool | None = None,
    quantize: bool = True,
    force: bool = False,
    keep_worse: bool = False,
    min_queries: int | None = None,
    attention_dropout: float | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainReport:
    """Fine-tune the checkpoint ``init`` as a sentence embedder on ``qrels`` and write the model folder ``out``.

    Each batch holds ``batch_size`` (query, relevant document, ``negatives`` mined hard negatives) triples; every
    other document of the batch is a negative too. Mining, the dev split, checkpoints, resumption, the guard and
    the output folder work as in ``train_reranker``; the dev metric is dense nDCG@10 over the whole corpus.
    ``attention_dropout``: as in ``train_reranker`` (None keeps the checkpoint's).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    say = log or (lambda _: None)
    started = time.perf_counter()
    init_dir, out_dir = Path(init), Path(out)
    check_init(init_dir)
    dropout = attention_dropout_setting(init_dir, attention_dropout)
    check_output(out_dir, force)
    check_ints(negatives=(negatives, 0), epochs=(epochs, 1), batch_size=(batch_size, 2))
    data, train_ids, dev_ids = prepare(
        corpus, queries, qrels, min_queries=min_queries, dev_fraction=dev_fraction, seed=seed
    )
    say(f"data: {len(data.documents):,} documents, {len(train_ids)} train and {len(dev_ids)} dev queries")
    mined, _, mining_s = mine(data, embedder, index, train_ids, candidates, progress=progress)
    autocast = start_torch(seed, bf16)
    with quiet():
        tokenizer = AutoTokenizer.from_pretrained(init_dir)
        model = AutoModel.from_pretrained(init_dir, **dropout)

    rng = random.Random(seed)
    batches: list[list[tuple[str, str, list[str]]]] = []
    for _ in range(epochs):
        triples = [
            (qid, pos, hard_negatives(mined, data, qid, negatives, skip_window, rng))
            for qid in train_ids
            for pos in data.positives(qid)
        ]
        rng.shuffle(triples)
        batches += [triples[i : i + batch_size] for i in range(0, len(triples) - 1, batch_size)]
    batches = [b for b in batches if len(b) >= 2]
    total = len(batches) if max_steps is None else min(max_steps, len(batches))
    if total < 1:
        raise TrainingError("no training batch: too few training queries with a relevant document")
    work = out_dir.parent / f".{out_dir.name}.training"
    settings = {
        "task": "embed",
        "init": str(init_dir.resolve()),
        "loss": "multiple negatives ranking (in-batch and mined negatives)",
        "data": data.sources,
        "max_length": max_length,
        "negatives": negatives,
        "skip_window": skip_window,
        "candidates": candidates,
        "epochs": epochs,
        "batch_size": batch_size,
        "attention_dropout": attention_dropout,
        "lr": lr,
        "warmup": warmup,
        "steps": total,
        "dev_fraction": dev_fraction,
        "seed": seed,
        "bf16": autocast,
    }
    before_per_query = dense_ndcg(model, tokenizer, data, dev_ids, max_length, autocast)
    before = float(np.mean(before_per_query))
    say(f"dev dense nDCG@10 before: {before:.4f}")
    loop = Loop(model, total=total, lr=lr, warmup=warmup, work=work, settings=settings, say=say)

    def encode(texts: list[str]) -> Any:
        enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return _pool(model(**enc).last_hidden_state, enc["attention_mask"])

    def loss_of(step: int) -> Any:
        batch = batches[step]
        documents = [data.documents[pos] for _, pos, _ in batch] + [
            data.documents[n] for _, _, negs in batch for n in negs
        ]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            q = encode([data.queries[qid] for qid, _, _ in batch])
            d = encode(documents)
        scores = SCALE * (q.float() @ d.float().T)
        return torch.nn.functional.cross_entropy(scores, torch.arange(len(batch)))

    def evaluate() -> tuple[float, dict[str, Any]]:
        value = float(np.mean(dense_ndcg(model, tokenizer, data, dev_ids, max_length, autocast)))
        return value, {"dense nDCG@10": value}

    training_s = loop.run(loss_of, evaluate, eval_every=eval_every, progress=progress)
    after_per_query = dense_ndcg(model, tokenizer, data, dev_ids, max_length, autocast)
    after = float(np.mean(after_per_query))
    gain = gain_interval(before_per_query, after_per_query)
    record: dict[str, Any] = {
        "task": "embed",
        "made_by": "rapidrag train embedder",
        "settings": settings,
        "dropped": data.dropped,
        **dev_record(data, train_ids, dev_ids, dev_fraction, seed, "the step kept"),
        "steps_run": loop.step,
        "best_step": loop.best_step,
        "final_loss": loop.final_loss,
        "resumed_at_steps": loop.resumed,
        "history": loop.history,
        "seconds": {"mining": mining_s, "training": training_s, "total": time.perf_counter() - started},
        "dev": {"before": {"dense": before}, "after": {"dense": after}, "dense_gain": gain},
    }
    return finish(
        record,
        out=out_dir,
        work=work,
        worse=None if after >= before else f"dense {after:.4f} against {before:.4f}",
        keep_worse=keep_worse,
        fill=lambda folder: _write_folder(model, tokenizer, folder, data, dev_ids, max_length, quantize, say),
        say=say,
        gain=("dense gain over the starting checkpoint", gain),
    )


def _write_folder(
    model: Any,
    tokenizer: Any,
    folder: Path,
    data: TrainingData,
    dev_ids: Sequence[str],
    max_length: int,
    quantize: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Weights, config and tokenizer; ``model.onnx`` (``last_hidden_state``; rapidrag mean-pools and normalises)
    checked against torch on dev texts through rapidrag's Embedder; ``model_fused_int8.onnx``."""

    model = model.float().eval()
    with quiet():
        model.save_pretrained(folder)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)
    sample = tokenizer(["a query", "a longer passage of text"], padding="longest", return_tensors="pt")
    export_onnx(model, sample, folder / "model.onnx", "last_hidden_state")
    from ..embedder import Embedder

    texts = [data.queries[q] for q in dev_ids[:20]] + [data.documents[d] for q in dev_ids[:10] for d in data.qrels[q]]
    ours = Embedder(folder, max_length=max_length, pooling="mean").embed(texts)
    reference = _embed(model, tokenizer, texts, max_length, autocast=False)
    worst = float(np.abs(ours - reference).max())
    if worst > ONNX_TOLERANCE:
        raise TrainingError(f"the ONNX export differs from the torch model by {worst:.2e} (tolerance {ONNX_TOLERANCE})")
    say(f"model.onnx: within {worst:.1e} of the torch model on dev texts")
    extra: dict[str, Any] = {"onnx_check_max_abs_diff": worst}
    if quantize:
        from ..quantization import quantize as make_int8

        with quiet():
            report = make_int8(folder, folder / "model_fused_int8.onnx")
        extra["int8"] = {"file": report.path.name, "attention_fused": report.attention_fused}
    return extra
