"""What the attention core costs inside ONNX Runtime, and whether standard int8 ops can make it cheaper.

    python benchmarks/attention_core.py [--pairs 4] [--length 256] [--rounds 20] [--out attention_core.json]

One self-attention layer of the shared cross-encoder's shape (hidden 384, 12 heads of 32), ``--pairs`` unpadded pairs
of ``--length`` tokens, two threads; each graph is timed in three blocks of ``--rounds`` runs (median of all), the
blocks in a random order. The graphs:

- ``QAttention`` as ``rapidrag.quantize`` leaves it (after ``DynamicQuantizeLinear``): the int8 QKV projection and
  the softmax(QK^T)V core, which ONNX Runtime computes in fp32;
- the same QKV projection alone (``DynamicQuantizeLinear`` + ``MatMulIntegerToFloat``), so that the difference is
  the core's time;
- the core written as separate fp32 ops (MatMul, Add of the mask, Softmax, MatMul);
- the core with both products in int8 (``MatMulIntegerToFloat``; Q, K and V with one dynamic range per tensor, the
  probabilities as uint8 steps of 1/255): the cheapest int8 form standard ops allow, with its relative error
  against fp32. Finer ranges (per token or per head) add elementwise passes over the [pairs, heads, L, L] scores.

Also the fp32 GEMM peak ([2048, 384] x [384, 1536]), to put the core's FLOPs (4 L^2 h per pair) against it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

HIDDEN, HEADS = 384, 12
THREADS = 2


def session(nodes: list[Any], inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray]) -> Any:
    dtype = {np.dtype(np.float32): T.FLOAT, np.dtype(np.int32): T.INT32, np.dtype(np.uint8): T.UINT8}
    graph = h.make_graph(
        nodes,
        "layer",
        [h.make_tensor_value_info(k, dtype[v.dtype], list(v.shape)) for k, v in inputs.items()],
        [h.make_tensor_value_info("out", T.FLOAT, None)],
        [onnx.numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def blocks(cases: dict[str, tuple[Any, dict[str, np.ndarray]]], rounds: int, repeats: int = 3) -> dict[str, float]:
    """Median ms per run of each (session, feed). Each case runs in blocks of ``rounds`` runs after three untimed
    ones, the blocks ``repeats`` times in a new random order: run by run interleaving would time each session
    against the previous one's ONNX Runtime threads, still spinning on the two cores."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for name in rng.permutation(list(cases)).tolist():
            s, feed = cases[name]
            for _ in range(3):
                s.run(None, feed)
            for _ in range(rounds):
                start = time.perf_counter()
                s.run(None, feed)
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default="attention_core.json")
    args = parser.parse_args()
    b, n, d = args.pairs, args.length, HIDDEN // HEADS
    rng = np.random.default_rng(0)
    x = {"x": rng.standard_normal((b, n, HIDDEN)).astype(np.float32)}
    weights: dict[str, np.ndarray] = {
        "w": rng.integers(-127, 128, (HIDDEN, 3 * HIDDEN), dtype=np.int8),
        "w_scale": np.float32(0.02 / 127),
        "bias": np.zeros(3 * HIDDEN, np.float32),
    }
    quantize_x = h.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"])
    qattention = h.make_node(
        "QAttention",
        ["xq", "w", "bias", "xs", "w_scale", "mask", "xz"],
        ["out"],
        domain="com.microsoft",
        num_heads=HEADS,
    )
    qkv = h.make_node(
        "MatMulIntegerToFloat", ["xq", "w", "xs", "w_scale", "xz", "", "bias"], ["out"], domain="com.microsoft"
    )
    # The core on its own: Q pre-scaled by 1/sqrt(d), K transposed, an additive key mask of zeros.
    heads = {
        "q": (rng.standard_normal((b, HEADS, n, d)) * 0.3).astype(np.float32),
        "kt": (rng.standard_normal((b, HEADS, d, n)) * 0.3).astype(np.float32),
        "v": rng.standard_normal((b, HEADS, n, d)).astype(np.float32),
        "key_mask": np.zeros((b, 1, 1, n), np.float32),
    }
    softmax = [h.make_node("Add", ["s", "key_mask"], ["sm"]), h.make_node("Softmax", ["sm"], ["p"], axis=-1)]
    fp32_core = [h.make_node("MatMul", ["q", "kt"], ["s"]), *softmax, h.make_node("MatMul", ["p", "v"], ["out"])]
    int8_core = [
        h.make_node("DynamicQuantizeLinear", ["q"], ["qq", "qs", "qz"]),
        h.make_node("DynamicQuantizeLinear", ["kt"], ["kq", "ks", "kz"]),
        h.make_node("MatMulIntegerToFloat", ["qq", "kq", "qs", "ks", "qz", "kz"], ["s"], domain="com.microsoft"),
        *softmax,
        h.make_node("QuantizeLinear", ["p", "inv255", "zero"], ["pq"]),
        h.make_node("DynamicQuantizeLinear", ["v"], ["vq", "vs", "vz"]),
        h.make_node(
            "MatMulIntegerToFloat", ["pq", "vq", "inv255", "vs", "zero", "vz"], ["out"], domain="com.microsoft"
        ),
    ]
    m, k, cols = 2048, 384, 1536
    gemm = {"a": rng.standard_normal((m, k)).astype(np.float32)}
    step = {"inv255": np.float32(1 / 255), "zero": np.uint8(0)}
    cases = {
        "QAttention (QKV projection + core)": (
            session([quantize_x, qattention], x, {**weights, "mask": np.ones((b, n), np.int32)}),
            x,
        ),
        "QKV projection alone": (session([quantize_x, qkv], x, weights), x),
        "core as fp32 ops": (session(fp32_core, heads, {}), heads),
        "core with int8 products (one range per tensor)": (session(int8_core, heads, step), heads),
        "fp32 GEMM [2048, 384] x [384, 1536]": (
            session(
                [h.make_node("MatMul", ["a", "wf"], ["out"])],
                gemm,
                {"wf": rng.standard_normal((k, cols)).astype(np.float32)},
            ),
            gemm,
        ),
    }
    ms = blocks(cases, args.rounds)
    reference = cases["core as fp32 ops"][0].run(None, heads)[0]
    approx = cases["core with int8 products (one range per tensor)"][0].run(None, heads)[0]
    peak = 2 * m * k * cols / ms.pop("fp32 GEMM [2048, 384] x [384, 1536]") / 1e6
    core = ms["QAttention (QKV projection + core)"] - ms["QKV projection alone"]
    core_gflop = 4 * n * n * HIDDEN * b / 1e9
    results = {
        "pairs": b,
        "length": n,
        "threads": THREADS,
        "rounds": args.rounds,
        "ms_per_layer": ms,
        "core_ms_in_QAttention": core,
        "fp32_peak_gflops": peak,
        "core_fraction_of_fp32_peak": {
            "in QAttention": core_gflop / (core / 1000) / peak,
            "as fp32 ops": core_gflop / (ms["core as fp32 ops"] / 1000) / peak,
        },
        "int8_core_relative_error": float(np.abs(approx - reference).max() / np.abs(reference).max()),
    }
    for name, value in ms.items():
        print(f"{name:50s} {value:7.2f} ms")
    print(f"{'core inside QAttention (difference)':50s} {core:7.2f} ms")
    print(json.dumps({k: v for k, v in results.items() if k != "ms_per_layer"}, indent=1))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
