"""Reranking latency: rapidrag.Reranker against the naive pipeline on the same cross-encoder, and the GEMM peak.

One SciFact test query and N SciFact documents as candidates (a fixed random draw, so that pair lengths are those
of the corpus: most pairs reach the 256-token limit). N = 10 and 20 by default; 10, 20, 50 and 100 with
``RAPIDRAG_BENCH_FULL=1``. Each benchmark records p50 and p95 over its rounds (``RAPIDRAG_BENCH_RERANK_ROUNDS``,
3 by default, 20 with FULL) and pairs/s in extra_info.

- naive: what a user assembles by hand, and what FlashRank does: HF ``tokenizers`` with truncation (passage only)
  and padding to ``max_length`` = 256, all N pairs in one ONNX Runtime run, same threads.
- rapidrag: ``Reranker.score``: unpadded pairs sorted by length, batches of at most 1024 padded tokens. Models: the
  shipped fp32 and dynamic int8 files, the fp32 file with fused attention (``fuse_attention``: same scores), and
  the int8 file made by ``rapidrag.quantize`` (attention fused, per-token ranges in the down-projections), the same
  with one range per batch (``per_token=False``), also at shorter pair lengths and with a passage window (quality of
  each: benchmarks/rerank_quality.py and benchmarks/int8_fidelity.py).
- GEMM peak: one ONNX Runtime MatMul (fp32) and MatMulInteger (uint8 x int8) of the model's FFN shape,
  [2048, 384] x [384, 1536]; the rerank benchmarks report their pairs/s as a fraction of it, with the FLOPs of a
  pair computed from the model's shape (config.json) and the actual pair lengths.

Every rapidrag fp32 benchmark checks its scores against the naive fp32 scores (within 1e-4).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _common import FULL, env_int, run_timed
from _naive import naive_reranker

import rapidrag
from rapidrag.quantization import fuse_attention

SIZES = [10, 20, 50, 100] if FULL else [10, 20]
ROUNDS = env_int("RAPIDRAG_BENCH_RERANK_ROUNDS", 20 if FULL else 3)
MAX_LENGTH = 256
THREADS = os.cpu_count() or 1
PEAK: dict[str, float] = {}  # GFLOP/s (GOP/s for int8), best round
NAIVE_FP32: dict[int, np.ndarray] = {}


@pytest.fixture(scope="module")
def query(scifact_dir: Path) -> str:
    from rapidrag.beir import load_qrels, load_queries

    queries = load_queries(scifact_dir)
    first_test = next(iter(load_qrels(scifact_dir / "qrels/test.tsv")))
    return queries[first_test]


@pytest.fixture(scope="module")
def pool(scifact_texts: list[str]) -> list[str]:
    pick = np.random.default_rng(0).choice(len(scifact_texts), size=max(SIZES), replace=False)
    return [scifact_texts[i] for i in pick]


@pytest.fixture(scope="module")
def fused_fp32(tmp_path_factory: pytest.TempPathFactory, reranker_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("reranker") / "model_fused.onnx"
    fuse_attention(reranker_dir, path)
    return path


@pytest.fixture(scope="module")
def fused_int8(tmp_path_factory: pytest.TempPathFactory, reranker_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("reranker") / "model_fused_int8.onnx"
    rapidrag.quantize(reranker_dir, path)
    return path


@pytest.fixture(scope="module")
def fused_int8_batch_range(tmp_path_factory: pytest.TempPathFactory, reranker_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("reranker") / "model_fused_int8_batch_range.onnx"
    rapidrag.quantize(reranker_dir, path, per_token=False)
    return path


def _percentiles(benchmark: Any, n_pairs: int, tokens: int, reranker_dir: Path, precision: str) -> None:
    """p50, p95 and pairs/s into extra_info, and the fraction of the GEMM peak."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is None or not stats.data:
        return
    data = np.array(stats.data) * 1000
    p50, p95 = float(np.percentile(data, 50)), float(np.percentile(data, 95))
    info = benchmark.extra_info
    info.update({"p50 ms": round(p50, 1), "p95 ms": round(p95, 1), "pairs/s (p50)": round(n_pairs / p50 * 1000, 1)})
    info["tokens"] = tokens
    peak = PEAK.get(precision)
    if peak:
        flops = pair_flops(reranker_dir, tokens, n_pairs)
        info["fraction of GEMM peak"] = round(flops / (p50 / 1000) / (peak * 1e9), 3)


def pair_flops(model_dir: Path, tokens: int, n_pairs: int) -> float:
    """FLOPs of ``n_pairs`` pairs holding ``tokens`` tokens: projections, FFN and attention of every layer."""
    config = json.loads((model_dir / "config.json").read_text())
    h, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_token = layers * 2 * (4 * h * h + 2 * h * inner)
    mean_len = tokens / n_pairs
    attention = layers * 2 * 2 * mean_len * h  # QK^T and PV, per token
    return float(tokens * (per_token + attention))


# -- the machine's GEMM peak through ONNX Runtime (runs first: the rerank benchmarks read it) --------------------


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.benchmark(group="gemm-peak")
def test_gemm_peak(benchmark: Any, tmp_path: Path, precision: str) -> None:
    m, k, n = 2048, 384, 1536
    rng = np.random.default_rng(0)
    helper = onnx.helper
    if precision == "fp32":
        w = onnx.numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type, a = (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.FLOAT,
            rng.standard_normal((m, k)).astype(np.float32),
        )
    else:
        w = onnx.numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type, a = onnx.TensorProto.UINT8, onnx.TensorProto.INT32, rng.integers(0, 256, (m, k), dtype=np.uint8)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("y", y_type, [m, n])],
        [w],
    )
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run() -> None:
        for _ in range(10):
            session.run(None, {"a": a})

    run_timed(benchmark, run, rounds=max(ROUNDS, 5))
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.min > 0:
        PEAK[precision] = 10 * 2 * m * k * n / stats.min / 1e9
        benchmark.extra_info["GFLOP/s (best)" if precision == "fp32" else "GOP/s (best)"] = round(PEAK[precision], 1)
    benchmark.extra_info.update(library=f"onnxruntime {precision} GEMM", shape=f"[{m},{k}]x[{k},{n}]", threads=THREADS)


# -- reranking ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_naive(benchmark: Any, reranker_dir: Path, query: str, pool: list[str], n: int, precision: str) -> None:
    benchmark.group = f"rerank-{n}"
    score = naive_reranker(reranker_dir, "model.onnx" if precision == "fp32" else "model_int8.onnx")
    passages = pool[:n]
    scores = run_timed(benchmark, lambda: score(query, passages), rounds=ROUNDS)
    if precision == "fp32":
        NAIVE_FP32[n] = scores
    benchmark.extra_info.update(library=f"naive {precision}", how=f"HF tokenizers, padded to {MAX_LENGTH}, one run")
    _percentiles(benchmark, n, n * MAX_LENGTH, reranker_dir, precision)
    assert scores.shape == (n,) and np.isfinite(scores).all()


SETTINGS = {
    "fp32": dict(model="model.onnx"),
    "fp32-fused": dict(model="fused-fp32"),
    "int8": dict(model="model_int8.onnx"),
    "int8-fused": dict(model="fused"),
    "int8-fused-batch-range": dict(model="fused-batch-range"),
    "int8-fused-len160": dict(model="fused", max_length=160),
    "int8-fused-len128": dict(model="fused", max_length=128),
    "int8-fused-window96": dict(model="fused", window=96),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_rapidrag(
    benchmark: Any,
    reranker_dir: Path,
    fused_fp32: Path,
    fused_int8: Path,
    fused_int8_batch_range: Path,
    query: str,
    pool: list[str],
    n: int,
    setting: str,
) -> None:
    benchmark.group = f"rerank-{n}"
    spec = SETTINGS[setting]
    made = {"fused": fused_int8, "fused-fp32": fused_fp32, "fused-batch-range": fused_int8_batch_range}
    model_file = made.get(str(spec["model"]), spec["model"])
    reranker = rapidrag.Reranker(reranker_dir, model_file=model_file, n_threads=THREADS)
    passages = pool[:n]
    max_length, window = spec.get("max_length"), spec.get("window")
    scores = run_timed(
        benchmark, lambda: reranker.score(query, passages, max_length=max_length, window=window), rounds=ROUNDS
    )
    cut = reranker._windows(query, passages, window) if window else passages
    tokens = int(reranker.tokenizer.encode_pairs(query, cut, max_length=max_length or 256, padding=False).lengths.sum())
    benchmark.extra_info.update(library=f"rapidrag {setting}", how="unpadded pairs, length-bucketed batches")
    _percentiles(benchmark, n, tokens, reranker_dir, "fp32" if setting.startswith("fp32") else "int8")
    assert scores.shape == (n,) and np.isfinite(scores).all()
    if setting.startswith("fp32"):
        reference = NAIVE_FP32.get(n)
        if reference is None:
            reference = naive_reranker(reranker_dir, "model.onnx")(query, passages)
        np.testing.assert_allclose(scores, reference, atol=1e-4)


# -- session settings and the time budget ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting", ["default", "no-spinning", "one-thread", "no-arena", "batch-tokens-512", "batch-tokens-2048"]
)
@pytest.mark.benchmark(group="rerank-20-settings")
def test_session_settings(
    benchmark: Any, reranker_dir: Path, fused_int8: Path, query: str, pool: list[str], setting: str
) -> None:
    kwargs: dict[str, Any] = {
        "default": {},
        "no-spinning": {"allow_spinning": False},
        "one-thread": {"n_threads": 1},
        "no-arena": {"enable_mem_arena": False},
        "batch-tokens-512": {"batch_tokens": 512},
        "batch-tokens-2048": {"batch_tokens": 2048},
    }[setting]
    kwargs.setdefault("n_threads", THREADS)
    reranker = rapidrag.Reranker(reranker_dir, model_file=fused_int8, **kwargs)
    passages = pool[:20]
    scores = run_timed(benchmark, lambda: reranker.score(query, passages), rounds=ROUNDS)
    tokens = int(reranker.tokenizer.encode_pairs(query, passages, max_length=256, padding=False).lengths.sum())
    benchmark.extra_info.update(library=f"rapidrag int8-fused {setting}")
    _percentiles(benchmark, 20, tokens, reranker_dir, "int8")
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("budget_ms", [50, 100, 200])
@pytest.mark.benchmark(group="rerank-100-budget")
def test_time_budget(
    benchmark: Any, reranker_dir: Path, fused_int8: Path, query: str, scifact_texts: list[str], budget_ms: int
) -> None:
    """100 candidates (more than fit) under a budget: the latency stays near the budget, a prefix is scored."""
    pick = np.random.default_rng(0).choice(len(scifact_texts), size=100, replace=False)
    passages = [scifact_texts[i] for i in pick]
    reranker = rapidrag.Reranker(reranker_dir, model_file=fused_int8, n_threads=THREADS)
    scored: list[int] = []
    overruns: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        result = reranker.rerank(query, passages, budget_ms=budget_ms)
        overruns.append((time.perf_counter() - start) * 1000 - budget_ms)
        scored.append(result.n_scored)

    run_timed(benchmark, run, rounds=max(ROUNDS, 5))
    benchmark.extra_info.update(
        library=f"rapidrag int8-fused, budget {budget_ms} ms",
        **{"pairs scored (mean)": round(float(np.mean(scored)), 1), "worst overrun ms": round(max(overruns), 1)},
    )
    _percentiles(benchmark, 1, 1, reranker_dir, "none")
    assert max(scored) < 100  # on a loaded machine even the first pair may not fit 50 ms, so no lower bound


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc (Linux)")
@pytest.mark.parametrize("arena", ["arena", "no-arena"])
@pytest.mark.benchmark(group="rerank-memory")
def test_memory_stays_bounded(
    benchmark: Any, reranker_dir: Path, fused_int8: Path, query: str, scifact_texts: list[str], arena: str
) -> None:
    """Resident memory over many queries whose candidates vary in number and length: it must level off. The
    queries run twice, so that the second half asks for nothing the first did not (with 12 calls, the CI smoke
    run's, a batch larger than any before it in the second half of one pass grew it by 55 MB once)."""
    reranker = rapidrag.Reranker(reranker_dir, model_file=fused_int8, enable_mem_arena=arena == "arena")
    rng = np.random.default_rng(1)
    calls = 60 if FULL else 12
    batches = [
        [
            scifact_texts[i][: int(rng.integers(20, 2000))]
            for i in rng.choice(len(scifact_texts), int(rng.integers(1, 30)))
        ]
        for _ in range(calls)
    ]
    rss: list[float] = []

    def run() -> None:
        for passages in batches + batches:
            reranker.score(query, passages)
            rss.append(_rss_mb())

    benchmark.pedantic(run, rounds=1, iterations=1)
    half = len(rss) // 2
    benchmark.extra_info.update(
        library=f"rapidrag int8-fused {arena}",
        **{
            "RSS MB after first call": round(rss[0], 1),
            "RSS MB at half": round(rss[half - 1], 1),
            "RSS MB at end": round(rss[-1], 1),
            "calls": calls,
        },
    )
    # Growth in the second pass is what an unbounded arena would show; a few MB is allocator noise.
    assert rss[-1] - rss[half - 1] < 50, f"RSS grew from {rss[half - 1]:.0f} to {rss[-1]:.0f} MB"
