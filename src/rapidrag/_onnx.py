"""What the Embedder and the Reranker share: finding a model folder and opening an ONNX Runtime session."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .cores import CORES, CORES_ENV, CoreBudget, set_cores
from .errors import ModelError

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = [
    "CORES",
    "CORES_ENV",
    "CoreBudget",
    "RunCanceller",
    "WATCHDOG",
    "GraphLevel",
    "find_model_file",
    "load_model",
    "open_session",
    "require_inputs",
    "resolve_model",
    "set_cores",
]

GraphLevel = Literal["disable", "basic", "extended", "all"]

# ONNX Runtime fuses Add + LayerNormalization into SkipLayerNormalization at level "all". On the int8 cross-encoder
# here (AMD EPYC, AVX-512 VNNI, ONNX Runtime 1.32) the fused kernel made a 256-token pair 15% slower (16.2 -> 13.7 ms
# without it, best of 30 runs, benchmarks/bench_reranker.py records the session settings), so it is left out.
DEFAULT_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


class RunCanceller:
    """Stops ONNX Runtime runs at their deadlines: one daemon thread sets ``RunOptions.terminate`` when a deadline
    passes, and ONNX Runtime then leaves the run before its next node (measured here: within 3-7 ms on a 4 x 256
    token int8 cross-encoder batch). Arming and disarming cost a lock, not a thread (a ``threading.Timer`` per run
    cost 0.3 ms)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Any]] = []
        self._armed: set[int] = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextlib.contextmanager
    def deadline(self, run_options: Any, when: float) -> Iterator[None]:
        """Terminate runs given ``run_options`` once ``time.perf_counter()`` passes ``when``, until the block ends."""
        with self._cv:
            if self._thread is None or self._pid != os.getpid():  # started lazily, and again in a forked child
                self._heap, self._armed, self._pid = [], set(), os.getpid()
                self._thread = threading.Thread(target=self._loop, name="rapidrag-run-canceller", daemon=True)
                self._thread.start()
            token = next(self._seq)
            heapq.heappush(self._heap, (when, token, run_options))
            self._armed.add(token)
            if self._heap[0][1] == token:
                self._cv.notify()
        try:
            yield
        finally:
            with self._cv:
                self._armed.discard(token)

    def _loop(self) -> None:
        with self._cv:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                when, token, run_options = self._heap[0]
                left = when - time.perf_counter()
                if left > 0:
                    self._cv.wait(left)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(token)
                run_options.terminate = True


WATCHDOG = RunCanceller()


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


QUANTIZED_BY_RAPIDRAG = "model_fused_int8.onnx"  # the default output name of ``rapidrag quantize``


def find_model_file(folder: Path, quantized: bool, model_file: str | os.PathLike[str] | None) -> Path:
    """The .onnx file to load: ``model_file`` (relative to the folder unless absolute), else the default name.

    ``quantized`` takes ``model_fused_int8.onnx`` (what ``rapidrag quantize`` writes beside the model: fused
    attention, per-token ranges; faster and closer to fp32) when the folder has it, else ``model_int8.onnx``.
    """
    if model_file is not None:
        path = Path(model_file)
        path = path if path.is_absolute() else folder / path
    elif quantized:
        path = folder / QUANTIZED_BY_RAPIDRAG
        if not path.is_file():
            path = folder / "model_int8.onnx"
    else:
        path = folder / "model.onnx"
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.onnx"))
        raise FileNotFoundError(f"no model file {path} (.onnx files in {folder}: {present or 'none'})")
    return path


def open_session(
    path: Path,
    *,
    n_threads: int,
    graph_optimization_level: GraphLevel,
    enable_mem_arena: bool,
    allow_spinning: bool,
    spin_between_runs: bool = True,
    disabled_optimizers: Sequence[str] = DEFAULT_DISABLED_OPTIMIZERS,
) -> Any:
    """An ONNX Runtime CPU session with one inter-op thread and ``n_threads`` intra-op threads (0 = one per core).
    ``spin_between_runs`` False (with ``allow_spinning``): the threads spin during a run and stop as soon as it
    returns."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if graph_optimization_level not in levels:
        raise ValueError(f"graph_optimization_level must be one of {sorted(levels)}, got {graph_optimization_level!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[graph_optimization_level]
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = enable_mem_arena
    # Spinning keeps idle pool threads busy-waiting for the next op: lowest latency when the model owns the
    # cores, wasted cycles when tokenizing, FAISS or other requests share them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    if allow_spinning and not spin_between_runs:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
        )
    except Exception as e:  # ONNX Runtime raises its own exception types for corrupt or invalid files
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({e})") from None


def require_inputs(session: Any, path: Path, required: Sequence[str]) -> list[str]:
    """The BERT inputs the model has, in the order input_ids, attention_mask, token_type_ids; checks ``required``."""
    inputs = {i.name for i in session.get_inputs()}
    missing = [name for name in required if name not in inputs]
    if missing:
        raise ModelError(f"{path}: the model has no input {missing[0]!r} (inputs: {sorted(inputs)})")
    extra = inputs - {"input_ids", "attention_mask", "token_type_ids"}
    if extra:
        raise ModelError(f"{path}: the model needs inputs rapidrag does not provide: {sorted(extra)}")
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in inputs]


def load_model(
    folder: Path,
    onnx_file: Path,
    *,
    required_inputs: Sequence[str],
    n_threads: int,
    graph_optimization_level: GraphLevel,
    enable_mem_arena: bool,
    allow_spinning: bool,
    spin_between_runs: bool = True,
) -> tuple[Tokenizer, Any, list[str]]:
    """The folder's tokenizer, a session on ``onnx_file``, and the model inputs to feed (checked)."""
    from .tokenizer import Tokenizer

    threads = n_threads or CORES.cores  # 0: the cores rapidrag may use (set_cores), not every core
    tokenizer = Tokenizer.from_file(folder, n_threads=threads)
    session = open_session(
        onnx_file,
        n_threads=threads,
        graph_optimization_level=graph_optimization_level,
        enable_mem_arena=enable_mem_arena,
        allow_spinning=allow_spinning,
        spin_between_runs=spin_between_runs,
    )
    return tokenizer, session, require_inputs(session, onnx_file, required_inputs)
