"""What the reranker and embedder trainers share: input checks, the training loop with dev evaluations,
checkpoints and resumption, and writing the model folder whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RapidragError
from ..persist import default_file_mode

__all__ = [
    "CHECKPOINT",
    "Loop",
    "TrainReport",
    "TrainingError",
    "attention_dropout_setting",
    "check_init",
    "check_ints",
    "check_output",
    "dev_record",
    "finish",
    "gain_interval",
    "start_torch",
    "write_folder",
]

CHECKPOINT = "checkpoint.pt"


class TrainingError(RapidragError, ValueError):
    """Training cannot start or finish: a bad --init folder, an existing output, an export that disagrees."""


@dataclass
class TrainReport:
    """What a trainer did. ``accepted`` is False when the trained model scored below its starting point on dev;
    then ``path`` is None unless ``keep_worse`` was given."""

    path: Path | None
    accepted: bool
    record: dict[str, Any] = field(default_factory=dict)


def check_init(init: Path, what: str = "--init") -> None:
    """A Hugging Face checkpoint folder: config.json, weights and a tokenizer, each named when missing (the
    message begins with ``what``, the argument that gave the folder)."""
    if not init.is_dir():
        raise TrainingError(f"{what} {init}: not a folder (a Hugging Face checkpoint folder)")
    missing = []
    if not (init / "config.json").is_file():
        missing.append("config.json")
    if not any((init / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any((init / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer (tokenizer.json or vocab.txt)")
    if missing:
        raise TrainingError(f"{what} {init}: no {', no '.join(missing)}")


def check_output(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise TrainingError(f"{out} exists; pass --force (force=True) to replace it")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out} exists and is not a folder")


def check_ints(**bounds: tuple[Any, int]) -> None:
    """Each ``name=(value, lowest)``: a ValueError naming it unless the value is an int of at least ``lowest``."""
    for name, (value, low) in bounds.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def attention_dropout_setting(init: Path, attention_dropout: float | None) -> dict[str, Any]:
    """The config override that sets a checkpoint's dropout on the attention weights for training, for
    ``from_pretrained`` (its key differs by architecture); None keeps the checkpoint's. At 0 a step runs about
    twice as fast on CPU: PyTorch's fused attention kernel takes no dropout, so with it every layer's attention
    falls back to a slower path, forward and backward (``benchmarks/train_dropout.py``)."""
    if attention_dropout is None:
        return {}
    number = isinstance(attention_dropout, (int, float)) and not isinstance(attention_dropout, bool)
    if not number or not 0 <= attention_dropout < 1:
        raise ValueError(f"attention_dropout must be from 0 to below 1, got {attention_dropout!r}")
    config = json.loads((init / "config.json").read_text(encoding="utf-8"))
    for key in ("attention_probs_dropout_prob", "attention_dropout"):
        if key in config:
            return {key: float(attention_dropout)}
    raise TrainingError(
        f"{init}/config.json names no attention dropout (attention_probs_dropout_prob or attention_dropout): "
        "leave attention_dropout unset for this model"
    )


def start_torch(seed: int, bf16: bool | None) -> bool:
    """Seed torch, give it rapidrag's cores, and say whether to autocast to bf16 (None: where the CPU has it)."""
    import torch

    from .._onnx import CORES

    torch.manual_seed(seed)
    torch.set_num_threads(CORES.cores)
    return bf16_available() if bf16 is None else bool(bf16)


def bf16_available() -> bool:
    """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    import torch

    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return (" avx512_bf16" in flags or " amx_bf16" in flags) and bool(torch.backends.mkldnn.is_available())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers' and ONNX Runtime's notes and progress bars off: rapidrag reports what matters itself."""
    import logging

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization warns through the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
        root.setLevel(root_level)


class Loop:
    """Steps over precomputed batches with AdamW and a linear schedule, a dev evaluation (and a checkpoint) every
    ``eval_every`` steps and at the end, the best evaluated weights restored at the end. The same call with the
    same ``settings`` resumes from the checkpoint in ``work``."""

    def __init__(
        self,
        model: Any,
        *,
        total: int,
        lr: float,
        warmup: float,
        work: Path,
        settings: Mapping[str, Any],
        say: Callable[[str], None],
    ) -> None:
        import torch
        from transformers import get_linear_schedule_with_warmup

        self.model, self.total, self.work, self.settings, self.say = model, total, work, dict(settings), say
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        self.schedule = get_linear_schedule_with_warmup(self.optimizer, int(warmup * total), total)
        self.step, self.best, self.best_state = 0, -np.inf, None
        self.history: list[dict[str, Any]] = []
        self.losses: list[float] = []
        self.seconds = 0.0  # training time of the sessions before this one (a resumed run counts them all)
        self.resumed: list[int] = []  # the steps at which a run was resumed
        self._session_start = time.perf_counter()
        checkpoint = work / CHECKPOINT
        if checkpoint.is_file():
            saved = torch.load(checkpoint, weights_only=False)
            if saved["settings"] == self.settings:
                model.load_state_dict(saved["model"])
                self.optimizer.load_state_dict(saved["optimizer"])
                self.schedule.load_state_dict(saved["schedule"])
                torch.set_rng_state(saved["torch_rng"])
                self.step, self.best, self.best_state = saved["step"], saved["best"], saved["best_state"]
                self.history = saved["history"]
                self.losses, self.seconds = list(saved.get("losses", [])), float(saved.get("seconds", 0.0))
                self.resumed = [*saved.get("resumed", []), self.step]
                say(f"resumed from {checkpoint} at step {self.step} of {total}")
            else:
                say(f"{checkpoint} is from other settings: starting over")
        work.mkdir(parents=True, exist_ok=True)

    def run(
        self,
        loss_of: Callable[[int], Any],
        evaluate: Callable[[], tuple[float, dict[str, Any]]],
        *,
        eval_every: int,
        progress: bool | None,
    ) -> float:
        """Train to ``total`` steps; ``loss_of(step)`` is the loss of that step's batch, ``evaluate()`` gives the
        dev value to maximise and what to log. Returns the seconds spent, those of resumed sessions included."""
        import torch

        from ..progress import Progress

        bar = Progress(self.total, "training", unit="steps", enabled=progress)
        self._session_start = time.perf_counter()
        while self.step < self.total:
            self.model.train()
            loss = loss_of(self.step)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.schedule.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.losses.append(loss.item())
            recent = float(np.mean(self.losses[-20:]))
            bar.update(self.step, f"loss {recent:.4f}")
            if self.step % eval_every == 0 or self.step == self.total:
                self._evaluate(evaluate, recent)
        bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self._elapsed()

    def _elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self._session_start

    @property
    def best_step(self) -> int:
        return int(max(self.history, key=lambda h: h["dev"])["step"]) if self.history else 0

    def _evaluate(self, evaluate: Callable[[], tuple[float, dict[str, Any]]], loss: float) -> None:
        import torch

        value, shown = evaluate()
        self.history.append({"step": self.step, "loss": loss, "dev": value, **shown})
        if value > self.best:
            self.best = value
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        details = ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
        self.say(f"step {self.step}/{self.total}: loss {loss:.4f}, dev {details}")
        state = {
            "settings": self.settings,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "best": self.best,
            "best_state": self.best_state,
            "history": self.history,
            "losses": self.losses[-20:],
            "seconds": self._elapsed(),
            "resumed": self.resumed,
        }
        staged = self.work / f"{CHECKPOINT}.tmp"
        torch.save(state, staged)
        os.replace(staged, self.work / CHECKPOINT)

    @property
    def final_loss(self) -> float | None:
        return float(np.mean(self.losses[-20:])) if self.losses else None


def write_folder(out: Path, fill: Callable[[Path], None]) -> None:
    """``fill(staging)`` writes the model into a staging folder beside ``out``, which then replaces ``out`` by
    renames: a reader sees the old folder or the new one, never half of one."""
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        fill(staging)
        mode = default_file_mode()  # some writers (safetensors, temporary files) leave 0600
        for file in staging.iterdir():
            file.chmod(mode)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finish(
    record: dict[str, Any],
    *,
    out: Path,
    work: Path,
    worse: str | None,
    keep_worse: bool,
    fill: Callable[[Path], dict[str, Any]],
    say: Callable[[str], None],
    gain: tuple[str, dict[str, float]] | None = None,
) -> TrainReport:
    """The guard and the output: ``worse`` (None when the model is no worse than its start on dev, else what
    shows it) keeps a worse model out of ``out`` unless ``keep_worse``; else ``fill(folder)`` writes the model and
    returns what to add to ``record``, saved as ``rapidrag.json``. The checkpoints in ``work`` go either way.
    ``gain``: (what it measures, ``gain_interval``) of the model's value on dev; an interval that holds zero is
    recorded (``gain_within_noise``) and said plainly, since such a gain may not hold on other queries."""
    import json

    record["accepted"] = worse is None
    if gain is not None:
        what, interval = gain
        record["gain_within_noise"] = interval["low"] <= 0.0
        if record["gain_within_noise"] and worse is None:
            say(
                f"the {what} on the dev split is within noise: {interval['mean']:+.4f} nDCG@10, 95% interval "
                f"{interval['low']:+.4f} to {interval['high']:+.4f}; measure the model on your own queries before "
                "relying on it"
            )
    if worse is not None:
        say(
            f"the trained model scores BELOW its starting point on the dev split ({worse}): it is not the result"
            + ("; kept as asked (keep_worse)" if keep_worse else "; nothing written")
        )
        if not keep_worse:
            shutil.rmtree(work, ignore_errors=True)
            return TrainReport(None, False, record)

    def write(folder: Path) -> None:
        record.update(fill(folder))
        (folder / "rapidrag.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    write_folder(out, write)
    shutil.rmtree(work, ignore_errors=True)
    say(f"wrote {out}")
    return TrainReport(out, worse is None, record)


def gain_interval(before: Any, after: Any, *, rounds: int = 10_000, seed: int = 0) -> dict[str, float]:
    """The mean per-query gain of ``after`` over ``before`` (paired per-query scores) with its 95% bootstrap
    interval: ``{"mean", "low", "high"}``. A dev split of a hundred or two queries resolves a gain of about 0.02 in
    nDCG@10, so an interval that holds zero says the gain is within noise."""
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError("gain_interval needs two equal-length, non-empty sequences of per-query scores")
    means = diff[np.random.default_rng(seed).integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high)}


def dev_record(data: Any, train_ids: Any, dev_ids: Any, dev_fraction: float, seed: int, chose: str) -> dict[str, str]:
    """Which qrels trained and which chose, for rapidrag.json."""
    path = data.sources["qrels"]["path"]
    return {
        "qrels_trained": f"{path} less the dev split ({len(train_ids)} queries)",
        "qrels_chose": (
            f"the dev split of {path}: {len(dev_ids)} queries ({dev_fraction:g} of them, seed {seed}), "
            f"which chose {chose}"
        ),
    }
