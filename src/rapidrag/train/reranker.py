"""``rapidrag train reranker``: fine-tune a cross-encoder on judged queries, choose its steps and fusion weight on a
dev split, and write a model folder that ``Reranker``, ``rapidrag index`` and ``rapidrag quantize`` load as it is.

Training is a plain PyTorch loop over ``transformers``' model classes: groups of one relevant document and
``negatives`` hard negatives from rapidrag's hybrid retriever, a listwise softmax cross-entropy over each group
(the loss the shared cross-encoder was trained with), AdamW with linear warm-up and decay, bf16 autocast where the
CPU has bf16 instructions, groups batched by length so that padding stays small, a checkpoint at every dev
evaluation (resumed when the same command runs again), and the step with the best dev nDCG@10 kept. The loop is
written here rather than taken from sentence-transformers' trainer so that checkpoints, resumption and the progress
line are rapidrag's own and no ``datasets``/``accelerate`` stack is needed on a CPU box, and it measured 1.24x
faster per step than ``CrossEncoderTrainer`` on the same groups (``benchmarks/train_loop.py``); the model classes,
the tokenizer and the ONNX export are the libraries'.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from .data import TrainingData, load_unlabelled_queries, prepare
from .mining import Candidates, hard_negatives, mine

__all__ = ["TrainReport", "TrainingError", "dev_metrics", "train_reranker"]

WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # fusion weights tried on dev (0 = first stage alone)
ONNX_TOLERANCE = 1e-4
# What a student learns of its teacher's scores over each group (the relevant passage and its negatives).
DISTIL_LOSSES = {"kl": "listwise KL to the teacher", "margin-mse": "Margin-MSE to the teacher"}
# What the dev split maximises to choose the step kept: nDCG@10 fused with the first stage at the best weight
# (what an index that fuses gets), or the reranker's own order (what a student is held to against its teacher).
SELECT_BY = ("fused", "alone")
LOSSES = {
    "listwise": "listwise softmax cross-entropy",
    "bce": "binary cross-entropy per pair (relevant 1, negatives 0)",
}


@dataclass
class _Setup:
    """Everything the loop needs, built once."""

    model: Any
    tokenizer: Any
    max_length: int
    autocast: bool


def _score(setup: _Setup, query: str, passages: Sequence[str], batch: int = 32) -> np.ndarray:
    import torch

    out = []
    setup.model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.autocast):
        for i in range(0, len(passages), batch):
            chunk = list(passages[i : i + batch])
            enc = setup.tokenizer(
                [query] * len(chunk),
                chunk,
                truncation="only_second",
                max_length=setup.max_length,
                padding="longest",
                return_tensors="pt",
            )
            out.append(setup.model(**enc).logits.float().view(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def dev_metrics(
    scores: dict[str, np.ndarray], mined: Candidates, data: TrainingData, dev_ids: Sequence[str]
) -> dict[str, Any]:
    """nDCG@10 on dev of the first stage, of the reranker's order alone over the scored candidates, and fused with
    the first-stage score at each weight of ``WEIGHT_GRID`` (``rapidrag.fusion.rerank_mix``, as searches mix);
    ``fused_gain``: the best weight's gain over the first stage, with its 95% bootstrap interval."""
    from ..fusion import rerank_mix
    from ..metrics import query_metrics

    def ndcg(weight: float | None) -> list[float]:
        values = []
        for qid in dev_ids:
            docs = mined.ranked[qid]
            order = np.arange(len(docs))
            if weight is not None:
                order, _ = rerank_mix(scores[qid], mined.scores[qid], weight)
            values.append(query_metrics([docs[i] for i in order], data.qrels[qid])["ndcg@10"])
        return values

    per_query = {f"{w:g}": ndcg(w) for w in WEIGHT_GRID}
    fused = {w: float(np.mean(v)) for w, v in per_query.items()}
    best = max(fused, key=lambda w: (round(fused[w], 6), -float(w)))
    return {
        "first_stage": fused["0"],
        "alone": fused["1"],
        "fused": fused,
        "best_weight": float(best),
        "fused_gain": gain_interval(per_query["0"], per_query[best]),
    }


def _dev_scores(setup: _Setup, mined: Candidates, data: TrainingData, dev_ids: Sequence[str], rerank_depth: int) -> Any:
    return {
        qid: _score(setup, data.queries[qid], [data.documents[d] for d in mined.ranked[qid][:rerank_depth]])
        for qid in dev_ids
    }


def _batches(
    data: TrainingData,
    mined: Candidates,
    train_ids: Sequence[str],
    *,
    epochs: int,
    groups_per_batch: int,
    negatives: int,
    skip_window: int,
    seed: int,
    unlabelled_ids: Sequence[str] = (),
) -> list[list[tuple[str, str, list[str]]]]:
    """Every batch of every epoch, made up front from the seed (so that a resumed run skips exactly the batches it
    has done): groups (query, positive, negatives), shuffled, then sorted by length within pools of 16 batches so
    that a batch's pairs pad to similar lengths, and the batches shuffled again. An unlabelled query's group is
    its first-stage top candidate and ``negatives`` others drawn from its candidates (only a teacher's scores
    label them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(epochs):
        groups = []
        for qid in train_ids:
            for pos in data.positives(qid):
                groups.append((qid, pos, hard_negatives(mined, data, qid, negatives, skip_window, rng)))
        for qid in unlabelled_ids:
            ranked = mined.ranked[qid]
            groups.append((qid, ranked[0], rng.sample(ranked[1:], negatives)))
        rng.shuffle(groups)
        pool = 16 * groups_per_batch
        epoch = []
        for start in range(0, len(groups), pool):
            part = sorted(
                groups[start : start + pool], key=lambda g: sum(len(data.documents[d]) for d in (g[1], *g[2]))
            )
            epoch += [part[i : i + groups_per_batch] for i in range(0, len(part), groups_per_batch)]
        rng.shuffle(epoch)
        out += epoch
    return out


def train_reranker(
    corpus: str | os.PathLike[str],
    queries: str | os.PathLike[str],
    qrels: str | os.PathLike[str],
    *,
    init: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    teacher: str | os.PathLike[str] | None = None,
    layers: int | Sequence[int] | None = None,
    loss: str = "listwise",
    distil_loss: str = "kl",
    distil_queries: str | os.PathLike[str] | None = None,
    distil_hidden: float = 0.0,
    select_by: str = "fused",
    attention_dropout: float | None = None,
    embedder: Any = None,
    index: str | os.PathLike[str] | None = None,
    max_length: int = 256,
    negatives: int = 7,
    skip_window: int = 2,
    candidates: int = 30,
    rerank_depth: int = 20,
    epochs: int = 2,
    groups_per_batch: int = 4,
    lr: float = 5e-5,
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
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainReport:
    """Fine-tune the checkpoint ``init`` as a cross-encoder on ``qrels`` and write the model folder ``out``.

    ``embedder``: an Embedder (or its folder) for hybrid mining; None mines with BM25 alone. ``index``: a saved
    index of the same corpus to mine with instead (saves indexing it again). ``candidates``: first-stage
    candidates per query, from which negatives are drawn (``skip_window`` ranks around each relevant one are
    skipped); ``rerank_depth``: how many of them the dev evaluation reranks. ``bf16``: None uses bf16 autocast
    where the CPU has bf16 instructions. The dev split (``dev_fraction`` of the judged queries, seeded) chooses the
    step kept and the recommended fusion weight. Interrupted, the same call resumes from its last checkpoint (kept
    beside ``out`` until the run ends); ``out`` is written whole or not at all.

    ``loss``: on the judgements, "listwise" (softmax cross-entropy over each group of the relevant passage and its
    negatives: the order within a query) or "bce" (each pair on its own, relevant 1 and negatives 0: scores
    comparable across queries, as a check of support such as ``rapidrag.ground``'s ``nli=`` wants).

    Distillation: with ``teacher`` (a cross-encoder folder with torch weights, such as one this function wrote),
    the student learns the teacher's scores over the same groups (listwise KL divergence between the two softmax
    distributions of each group, ``distil_loss="kl"``, or Margin-MSE, ``"margin-mse"``: the squared difference
    between the student's and the teacher's margins of the relevant passage over each negative) instead of the
    judgements. ``layers`` keeps that many of the student's encoder layers, evenly spaced from the first to the
    last, so that it runs faster, or the ones it lists by index (0 the first; ``[0, 1]`` keeps the bottom two, as
    layer-dropping studies favour); ``init`` defaults to the teacher itself. ``distil_queries``: a file of
    unlabelled queries (one per line in a ``.txt``, or a queries JSONL) whose first-stage candidates the teacher
    labels too, since a teacher needs no judgements; dev still chooses on the judged dev queries, and a query
    whose text is a judged one is left out. ``distil_hidden``: the weight of a second distillation term (0, the
    default, leaves it out): the mean squared difference between the student's hidden states and the teacher's
    over the pairs' tokens, the embeddings to the embeddings and the student's layer j of S to the teacher's layer
    (j * T) // S of T (TinyBERT's uniform mapping), so that a student of few layers learns what the teacher's
    layers compute on the way and not only its scores. It needs equal hidden sizes.

    ``select_by``: what the dev split maximises to choose the step kept: "fused" (nDCG@10 fused with the first
    stage at its best weight, what an index gets by default) or "alone" (the reranker's own order). The
    recommended fusion weight is chosen on dev either way.

    ``attention_dropout``: the dropout on the attention weights while training (None keeps the checkpoint's, 0.1
    in BERT-style ones; see ``attention_dropout_setting``).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    say = log or (lambda _: None)
    started = time.perf_counter()
    if init is None and teacher is None:
        raise TrainingError("pass --init (a checkpoint to start from), or --teacher to distil from")
    init_dir, out_dir = Path(init if init is not None else teacher), Path(out)  # type: ignore[arg-type]
    check_init(init_dir, "--init" if init is not None else "--teacher")
    teacher_dir = Path(teacher) if teacher is not None else None
    if teacher_dir is not None:
        check_init(teacher_dir, "--teacher")
    layers = _check_layers(layers)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if loss != "listwise" and teacher_dir is not None:
        raise TrainingError("loss is the loss on judgements; a student learns its teacher's scores (distil_loss)")
    if distil_loss not in DISTIL_LOSSES:
        raise ValueError(f"distil_loss must be one of {sorted(DISTIL_LOSSES)}, got {distil_loss!r}")
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by must be one of {list(SELECT_BY)}, got {select_by!r}")
    if distil_queries is not None and teacher_dir is None:
        raise TrainingError("distil_queries are labelled by a teacher's scores: pass --teacher too")
    if not isinstance(distil_hidden, (int, float)) or not 0 <= distil_hidden < float("inf"):
        raise ValueError(f"distil_hidden must be a finite weight of 0 or more, got {distil_hidden!r}")
    if distil_hidden and teacher_dir is None:
        raise TrainingError("distil_hidden learns a teacher's hidden states: pass --teacher too")
    dropout = attention_dropout_setting(init_dir, attention_dropout)
    check_output(out_dir, force)
    check_ints(negatives=(negatives, 1), epochs=(epochs, 1), groups_per_batch=(groups_per_batch, 1))
    if not isinstance(max_length, int) or not 16 <= max_length <= 512:
        raise ValueError(f"max_length must be an int from 16 to 512, got {max_length!r}")
    data, train_ids, dev_ids = prepare(
        corpus, queries, qrels, min_queries=min_queries, dev_fraction=dev_fraction, seed=seed
    )
    say(
        f"data: {len(data.documents):,} documents, {len(train_ids)} train and {len(dev_ids)} dev queries "
        f"(dropped: {json.dumps(data.dropped)})"
    )
    unlabelled: list[str] = []
    if distil_queries is not None:
        extra, dropped = load_unlabelled_queries(distil_queries, data)
        data.queries.update(extra)
        data.dropped["unlabelled queries blank, repeated or judged"] = dropped
        unlabelled = list(extra)
        say(f"distillation: {len(unlabelled):,} unlabelled queries ({dropped} dropped)")
    query_ids = [*train_ids, *dev_ids, *unlabelled]
    mined, mined_with, mining_s = mine(
        data, embedder, index, query_ids, max(candidates, rerank_depth), progress=progress
    )
    say(f"mining: {mined_with} first stage in {mining_s:.0f} s")
    if unlabelled:
        short = [q for q in unlabelled if len(mined.ranked[q]) < 1 + negatives]
        if short:
            unlabelled = [q for q in unlabelled if len(mined.ranked[q]) >= 1 + negatives]
            data.dropped["unlabelled queries with too few candidates"] = len(short)
    autocast = start_torch(seed, bf16)
    with quiet():
        tokenizer = AutoTokenizer.from_pretrained(init_dir)
        # From an embedder's checkpoint the classifier head is new (transformers lists it as missing).
        model = AutoModelForSequenceClassification.from_pretrained(init_dir, num_labels=1, **dropout)
        teacher_model = None
        if teacher_dir is not None:
            teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=1).eval()
            if AutoTokenizer.from_pretrained(teacher_dir).get_vocab() != tokenizer.get_vocab():
                raise TrainingError(
                    f"the teacher {teacher_dir} and the student {init_dir} have different vocabularies: a student "
                    "learns from the teacher's scores of the same token ids (start it from the teacher)"
                )
    if layers is not None:
        kept = _keep_layers(model, layers)
        say(f"student: encoder layers {kept} of {init_dir}")
    hidden_pairs = _hidden_pairs(model, teacher_model) if distil_hidden else []
    hidden = bool(hidden_pairs)
    if hidden:
        say(f"hidden states distilled (student's, teacher's; 0 the embeddings): {hidden_pairs}")
    setup = _Setup(model, tokenizer, max_length, autocast)

    batches = _batches(
        data,
        mined,
        train_ids,
        epochs=epochs,
        groups_per_batch=groups_per_batch,
        negatives=negatives,
        skip_window=skip_window,
        seed=seed,
        unlabelled_ids=unlabelled,
    )
    total = len(batches) if max_steps is None else min(max_steps, len(batches))
    if total < 1:
        raise TrainingError("no training batch: too few training queries with a relevant document")
    work = out_dir.parent / f".{out_dir.name}.training"
    settings = {
        "init": str(init_dir.resolve()),
        "teacher": str(teacher_dir.resolve()) if teacher_dir is not None else None,
        "layers": layers,
        "unlabelled_queries": len(unlabelled),
        "loss": DISTIL_LOSSES[distil_loss] if teacher_dir is not None else LOSSES[loss],
        "distil_hidden": distil_hidden,
        "attention_dropout": attention_dropout,
        "data": data.sources,
        "max_length": max_length,
        "negatives": negatives,
        "skip_window": skip_window,
        "candidates": candidates,
        "epochs": epochs,
        "groups_per_batch": groups_per_batch,
        "lr": lr,
        "warmup": warmup,
        "steps": total,
        "dev_fraction": dev_fraction,
        "select_by": select_by,
        "seed": seed,
        "bf16": autocast,
        "mining": mined_with,
    }
    before = dev_metrics(_dev_scores(setup, mined, data, dev_ids, rerank_depth), mined, data, dev_ids)
    loop = Loop(model, total=total, lr=lr, warmup=warmup, work=work, settings=settings, say=say)

    def loss_of(step: int) -> Any:
        groups = batches[step]
        pairs_q, pairs_p = [], []
        for qid, pos, negs in groups:
            for doc in (pos, *negs):
                pairs_q.append(data.queries[qid])
                pairs_p.append(data.documents[doc])
        enc = tokenizer(
            pairs_q, pairs_p, truncation="only_second", max_length=max_length, padding="longest", return_tensors="pt"
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(**enc, output_hidden_states=hidden)
            logits = out.logits.float().view(len(groups), 1 + negatives)
            if teacher_model is not None:
                with torch.no_grad():
                    taught = teacher_model(**enc, output_hidden_states=hidden)
                target = taught.logits.float().view(len(groups), 1 + negatives)
        if teacher_model is None and loss == "bce":
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        if teacher_model is None:
            return torch.nn.functional.cross_entropy(logits, torch.zeros(len(groups), dtype=torch.long))
        if distil_loss == "margin-mse":
            scores = torch.nn.functional.mse_loss(logits[:, :1] - logits[:, 1:], target[:, :1] - target[:, 1:])
        else:
            scores = torch.nn.functional.kl_div(
                torch.log_softmax(logits, dim=1), torch.softmax(target, dim=1), reduction="batchmean"
            )
        if not hidden:
            return scores
        return scores + distil_hidden * _hidden_loss(
            out.hidden_states, taught.hidden_states, hidden_pairs, enc["attention_mask"]
        )

    def evaluate() -> tuple[float, dict[str, Any]]:
        metrics = dev_metrics(_dev_scores(setup, mined, data, dev_ids, rerank_depth), mined, data, dev_ids)
        fused = max(metrics["fused"].values())
        kept_by = fused if select_by == "fused" else metrics["alone"]
        return kept_by, {"nDCG@10 alone": metrics["alone"], "fused best": fused}

    training_s = loop.run(loss_of, evaluate, eval_every=eval_every, progress=progress)
    best_step = loop.best_step
    after_scores = _dev_scores(setup, mined, data, dev_ids, rerank_depth)
    after = dev_metrics(after_scores, mined, data, dev_ids)

    record = {
        "task": "rerank",
        "made_by": "rapidrag train reranker",
        "settings": settings,
        "dropped": data.dropped,
        **dev_record(data, train_ids, dev_ids, dev_fraction, seed, "the step kept and the fusion weight"),
        "steps_run": loop.step,
        "best_step": best_step,
        "final_loss": loop.final_loss,
        "resumed_at_steps": loop.resumed,
        "history": loop.history,
        "seconds": {"mining": mining_s, "training": training_s, "total": time.perf_counter() - started},
        "dev": {"before": before, "after": after},
        "recommended_fusion_weight": after["best_weight"],
    }
    worse = None
    if after["alone"] < before["alone"] or max(after["fused"].values()) < max(before["fused"].values()):
        worse = (
            f"alone {after['alone']:.4f} against {before['alone']:.4f}, fused {max(after['fused'].values()):.4f} "
            f"against {max(before['fused'].values()):.4f}"
        )
    return finish(
        record,
        out=out_dir,
        work=work,
        worse=worse,
        keep_worse=keep_worse,
        fill=lambda folder: _write_folder(setup, folder, mined, data, dev_ids, quantize, say),
        say=say,
        gain=("fused gain over the first stage", after["fused_gain"]),
    )


def _write_folder(
    setup: _Setup,
    folder: Path,
    mined: Candidates,
    data: TrainingData,
    dev_ids: Sequence[str],
    quantize: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The model folder: weights and config (to train further), tokenizer files, ``model.onnx`` checked against
    the torch model on dev pairs, and ``model_fused_int8.onnx`` from ``rapidrag.quantize``."""

    model = setup.model.float().eval()
    with quiet():
        model.save_pretrained(folder)
    setup.tokenizer.model_max_length = setup.max_length
    setup.tokenizer.save_pretrained(folder)
    sample = setup.tokenizer(["a query"] * 2, ["a passage", "another passage"], padding="longest", return_tensors="pt")
    export_onnx(model, sample, folder / "model.onnx", "logits")
    # The check: rapidrag's Reranker on the ONNX file against the torch model in fp32, on dev pairs.
    from ..reranker import Reranker

    reranker = Reranker(folder, max_length=setup.max_length)
    fp32 = _Setup(model, setup.tokenizer, setup.max_length, autocast=False)
    worst = 0.0
    for qid in dev_ids[:20]:
        passages = [data.documents[d] for d in mined.ranked[qid][:8]]
        diff = np.abs(reranker.score(data.queries[qid], passages) - _score(fp32, data.queries[qid], passages))
        worst = max(worst, float(diff.max()))
    if worst > ONNX_TOLERANCE:
        raise TrainingError(f"the ONNX export differs from the torch model by {worst:.2e} (tolerance {ONNX_TOLERANCE})")
    say(f"model.onnx: within {worst:.1e} of the torch model on dev pairs")
    extra: dict[str, Any] = {"onnx_check_max_abs_diff": worst}
    if quantize:
        from ..quantization import quantize as make_int8

        with quiet():
            report = make_int8(folder, folder / "model_fused_int8.onnx")
        extra["int8"] = {"file": report.path.name, "attention_fused": report.attention_fused}
        say(f"{report.path.name}: int8, {report.attention_fused} attention blocks fused")
    return extra


def _check_layers(layers: int | Sequence[int] | None) -> int | list[int] | None:
    """``layers`` as train_reranker takes it: None, a count of 1 or more, or distinct layer indices in order."""
    if layers is None or (isinstance(layers, int) and not isinstance(layers, bool) and layers >= 1):
        return layers
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(f"layers must be a positive int or a list of layer indices, got {layers!r}")
    kept = list(layers)
    if (
        not kept
        or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in kept)
        or kept != sorted(set(kept))
    ):
        raise ValueError(f"layers must list distinct layer indices of 0 or more in increasing order, got {layers!r}")
    return kept


def _keep_layers(model: Any, layers: int | list[int]) -> list[int]:
    """Keep ``layers`` of the model's encoder layers: that many, evenly spaced from the first to the last, or the
    listed indices; returns the indices kept."""
    import torch

    encoder = model.base_model.encoder
    total = len(encoder.layer)
    if isinstance(layers, int):
        if layers > total:
            raise TrainingError(f"layers={layers}, but the model has {total} encoder layers")
        kept = sorted({int(round(i)) for i in np.linspace(0, total - 1, layers)})
    elif layers[-1] >= total:
        raise TrainingError(f"layers={layers} names layer {layers[-1]}, but the model has {total} encoder layers")
    else:
        kept = layers
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in kept])
    model.config.num_hidden_layers = len(kept)
    return kept


def _hidden_pairs(student: Any, teacher: Any) -> list[tuple[int, int]]:
    """Which of the teacher's hidden states each of the student's learns: the embeddings the embeddings (0, 0),
    and the student's layer j of S (1-based) the teacher's layer (j * T) // S of T."""
    s, t = student.config, teacher.config
    if s.hidden_size != t.hidden_size:
        raise TrainingError(
            f"distil_hidden needs equal hidden sizes: the student's is {s.hidden_size}, the teacher's {t.hidden_size}"
        )
    n, total = s.num_hidden_layers, t.num_hidden_layers
    return [(0, 0), *((j, j * total // n) for j in range(1, n + 1))]


def _hidden_loss(student: Sequence[Any], teacher: Sequence[Any], pairs: Sequence[tuple[int, int]], mask: Any) -> Any:
    """Mean squared difference of the paired hidden states over the tokens that are not padding."""
    weights = mask.unsqueeze(-1).float()
    squares = sum((((student[i].float() - teacher[j].float()) ** 2) * weights).sum() for i, j in pairs)
    return squares / (len(pairs) * weights.sum() * student[0].shape[-1])
