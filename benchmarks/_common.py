"""Settings and helpers shared by the benchmark suites (imported by conftest.py and the bench_*.py files).

Sizes. By default the benchmarks run on small prefixes of the corpora, so that the CI smoke run
(``pytest benchmarks --benchmark-disable``, every benchmark executed once) takes a couple of minutes on two
cores. ``RAPIDRAG_BENCH_FULL=1`` selects the sizes for a real measurement; each size can also be set alone:

====================================  ==============  ==================================================
setting (environment variable)        default         with RAPIDRAG_BENCH_FULL=1
====================================  ==============  ==================================================
RAPIDRAG_BENCH_SCIFACT_DOCS           300             0 = all 5,183 documents
RAPIDRAG_BENCH_GCIDE_DOCS             2,000           0 = all 125,984 passages (tokenizer benchmarks)
RAPIDRAG_BENCH_CHUNK_GCIDE_DOCS       1,000           20,000 (chunker benchmarks: the pure-Python peers run
                                                      at about 0.3-1.5 MB/s on this machine, so the full
                                                      30 MB would take up to 100 s per round and peer)
RAPIDRAG_BENCH_PEAK_GCIDE_DOCS        1,000           0 = all 125,984 passages (peak-memory subprocesses)
RAPIDRAG_BENCH_BIG_MB                 2               100 (the single-string tokenize benchmark)
RAPIDRAG_BENCH_ROUNDS                 5               3 (timed rounds per benchmark, after one warm-up
                                                      call; 1 when the warm-up took over
                                                      RAPIDRAG_BENCH_SLOW_CALL_S, default 3 s)
====================================  ==============  ==================================================

A subset is always the first N documents in file order (deterministic); 0 means all. Every benchmark records in
``benchmark.extra_info`` the bytes (UTF-8) it processed and, when timed, MB/s on the median and on the fastest
round; conftest.py prints them in a table at the end of the session, and they are part of ``--benchmark-json``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


FULL = os.environ.get("RAPIDRAG_BENCH_FULL") == "1"
SCIFACT_DOCS = env_int("RAPIDRAG_BENCH_SCIFACT_DOCS", 0 if FULL else 300)
GCIDE_DOCS = env_int("RAPIDRAG_BENCH_GCIDE_DOCS", 0 if FULL else 2_000)
CHUNK_GCIDE_DOCS = env_int("RAPIDRAG_BENCH_CHUNK_GCIDE_DOCS", 20_000 if FULL else 1_000)
PEAK_GCIDE_DOCS = env_int("RAPIDRAG_BENCH_PEAK_GCIDE_DOCS", 0 if FULL else 1_000)
BIG_MB = float(os.environ.get("RAPIDRAG_BENCH_BIG_MB", "").strip() or (100 if FULL else 2))
ROUNDS = env_int("RAPIDRAG_BENCH_ROUNDS", 3 if FULL else 5)
SLOW_CALL_S = float(os.environ.get("RAPIDRAG_BENCH_SLOW_CALL_S", "").strip() or 3.0)


BENCH_CACHE = Path(os.environ.get("RAPIDRAG_BENCH_CACHE", Path.home() / ".cache/rapidrag-bench"))


def quantized(model_dir: Path, cache: Path = BENCH_CACHE, *, per_token: bool = True) -> Path:
    """The int8 file ``rapidrag.quantize`` makes from ``model_dir/model.onnx``, made once and kept in ``cache`` under
    a name that says how (``<model>_fused_int8_per_token.onnx`` or ``..._batch_range.onnx``)."""
    import rapidrag

    path = Path(cache) / f"{model_dir.name}_fused_int8_{'per_token' if per_token else 'batch_range'}.onnx"
    if not path.is_file():
        rapidrag.quantize(model_dir, path, per_token=per_token)
    return path


@dataclass(frozen=True)
class Corpus:
    """A deterministic prefix of a corpus: ``texts`` and their total UTF-8 size."""

    name: str
    texts: list[str]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", sum(len(t.encode("utf-8", "surrogatepass")) for t in self.texts))


def prefix(name: str, texts: list[str], n: int) -> Corpus:
    """The first ``n`` texts (all when ``n`` <= 0)."""
    return Corpus(name, texts if n <= 0 else texts[:n])


def run_timed(benchmark: Any, fn: Any, *, setup: Any = None, rounds: int | None = None, warmup: bool = True) -> Any:
    """Time ``fn()`` with pytest-benchmark and return its last result.

    One untimed warm-up call first; if it took longer than SLOW_CALL_S, a single timed round follows (a call of
    several seconds is its own average, and the pure-Python chunkers on the FULL corpora would otherwise take most
    of an hour), else ROUNDS rounds. ``setup()`` runs untimed before every call (e.g. to clear a peer's cache).
    Under ``--benchmark-disable`` this calls ``setup()`` and ``fn()`` once, as pytest-benchmark does.
    """
    n = rounds or ROUNDS
    if warmup and not benchmark.disabled:
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        if time.perf_counter() - start > SLOW_CALL_S:
            n = 1
    return benchmark.pedantic(fn, setup=setup, rounds=n, warmup_rounds=0, iterations=1)


REPORT: list[dict[str, Any]] = []


def record(
    benchmark: Any, library: str, nbytes: int, *, tokens: int | None = None, timed: bool = True, **extra: Any
) -> None:
    """Write bytes, MB/s (median and best round) and ``extra`` to extra_info and to the end-of-session table.

    ``timed=False``: the benchmark's time is not the work on ``nbytes`` (e.g. a whole subprocess), so no MB/s.
    """
    info = benchmark.extra_info
    info["library"] = library
    info["bytes"] = nbytes
    info["cpu_count"] = os.cpu_count()
    if tokens is not None:
        info["tokens"] = tokens
    info.update({k: v for k, v in extra.items() if v is not None})
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if timed and stats is not None and stats.median > 0:
        info["MB/s (median)"] = round(nbytes / 1e6 / stats.median, 3)
        info["MB/s (best)"] = round(nbytes / 1e6 / stats.min, 3)
        if tokens is not None:
            info["Mtokens/s (median)"] = round(tokens / 1e6 / stats.median, 3)
    REPORT.append({"group": benchmark.group or "", "name": benchmark.name, **info})


def stand_in_index(embedder: Any, docs: list[Any], step: int = 1024) -> tuple[Any, float]:
    """A ``Retriever`` holding ``docs``, chunked by its chunker and stored with stand-in unit vectors (storing does
    not look at them) in bulk adds of ``step`` documents, as ``Retriever.add`` stores; and the seconds the adds
    took (the chunking left out)."""
    import numpy as np

    from rapidrag.chunks import document_spans
    from rapidrag.retriever import Retriever

    retriever = Retriever(embedder)
    spans, row_splits = document_spans(retriever.chunker, [d.text for d in docs])
    vectors = np.random.default_rng(0).standard_normal((len(spans), embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    clock = time.perf_counter()
    for a in range(0, len(docs), step):
        lo, hi = int(row_splits[a]), int(row_splits[min(a + step, len(docs))])
        retriever.add_embedded(docs[a : a + step], spans[lo:hi], row_splits[a : a + step + 1] - lo, vectors[lo:hi])
    return retriever, time.perf_counter() - clock


def local_ray(num_cpus: int = 2) -> Any:
    """Start a local Ray cluster of ``num_cpus`` CPUs on 127.0.0.1 (usage statistics off) and return the ``ray``
    module; exits if a node advertises another address (run the script inside a private network namespace:
    ``unshare --net sh -c 'ip link set lo up && python ...'``)."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # address="local": a new cluster, never one already running on this machine (which ray.init() would join)
    ray.init(
        address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, num_cpus=num_cpus
    )
    nodes = [n["NodeManagerAddress"] for n in ray.nodes()]  # type: ignore[no-untyped-call]
    if not all(a.startswith("127.") for a in nodes):
        ray.shutdown()
        raise SystemExit(f"Ray is not on loopback ({nodes}): run this inside a private network namespace")
    return ray


def use_code_copy() -> None:
    """In a side-by-side worker: import ``rapidrag`` from the copy in ``$RAPIDRAG_CODE`` (a folder holding the
    package with its built ``_core``), not from an editable install's redirect."""
    import sys

    code = os.environ.get("RAPIDRAG_CODE")
    if code:
        sys.meta_path[:] = [f for f in sys.meta_path if not any(x in type(f).__module__ for x in ("editable", "skbc"))]
        sys.path.insert(0, code)


def side_by_side_options(parser: Any, rounds: int, out: str) -> None:
    """The options of a side-by-side script: ``--code NAME=FOLDER`` (repeated), ``--rounds``, ``--out``, and the
    hidden ``--worker`` its processes run with."""
    import argparse

    parser.add_argument("--code", action="append", default=[], help="NAME=FOLDER holding the rapidrag package")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", default=out)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def side_by_side(script: str, code: list[str], rounds: int, argv: list[str], rate: str, out: str) -> dict[str, Any]:
    """Run ``script --worker *argv`` for each copy of the code (``code``: NAME=FOLDER items; none: the installed
    one), each in its own process, in turn, ``rounds`` times; each prints one JSON line of results (``{"rapidrag":
    path, key: {rate: ..., ...}}``). Keeps, per copy and key, the round with the highest ``rate`` (entries without
    it: the last round's), writes them with the date and machine to the JSON file ``out``, and returns them."""
    import json
    import platform
    import subprocess
    import sys

    trees = dict(item.split("=", 1) for item in code) or {"current": ""}

    best: dict[str, dict[str, Any]] = {name: {} for name in trees}
    for _ in range(rounds):
        for name, folder in trees.items():
            env = dict(os.environ)
            if folder:
                env["RAPIDRAG_CODE"] = str(Path(folder).resolve())
            env["RAPIDRAG_CODE_NAME"] = name  # (a worker may pick its own input by it)
            cmd = [sys.executable, script, "--worker", *argv]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not done.stdout.strip():  # (say why: the worker's own error)
                raise SystemExit(f"{name}: the worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            line = done.stdout.splitlines()[-1]
            result = json.loads(line)
            if folder and not result["rapidrag"].startswith(str(Path(folder).resolve())):
                raise SystemExit(f"{name}: ran {result['rapidrag']}, not the copy in {folder}")
            for key, value in result.items():
                if key != "rapidrag" and value.get(rate, 0) >= best[name].get(key, {}).get(rate, 0):
                    best[name][key] = value
            print(name, json.dumps({k: v.get(rate, v) for k, v in result.items() if k != "rapidrag"}), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rounds": rounds,
        "best": best,
    }
    Path(out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return best


class GivenVectors:
    """An embedder that returns the vectors computed beforehand for each query (so that a timing leaves out the
    model's run, which every path compared would pay alike)."""

    def __init__(self, inner: Any, vectors: dict[str, Any]) -> None:
        self.dim, self.max_length, self.tokenizer = inner.dim, inner.max_length, inner.tokenizer
        self.vectors = vectors

    def embed(self, texts: list[str], **_: Any) -> Any:
        import numpy as np

        return np.stack([self.vectors[t] for t in texts])


def report_stamp() -> dict[str, str]:
    """What a report script writes first: the machine and the date."""
    import platform

    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def emit(report: dict[str, Any], out: Path | None) -> None:
    """Print a report script's ``report`` as JSON, and write it to ``out`` when given."""
    import json

    text = json.dumps(report, indent=1)
    print(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")


def status_kb(field: str) -> int | None:
    """A field of ``/proc/self/status`` in kB (``VmRSS``, ``VmHWM``); None where there is none (not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Start ``VmHWM`` (the peak resident size) again from now (Linux ``clear_refs``); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False
