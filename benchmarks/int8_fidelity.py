"""How far each int8 variant of the shared cross-encoder scores from fp32, and what it costs in time.

    python benchmarks/int8_fidelity.py [--shared ../shared] [--queries 200] [--cache DIR]

Pairs: the first ``--queries`` SciFact *train* queries, each with its top 20 documents by the dense first stage
(rapidrag's int8 Embedder, exact search), so that the choice among variants is made without the test queries.
For every variant: the mean and largest absolute difference of its scores from the fp32 model's, the fraction of
candidate pairs of a query it orders as fp32 does, nDCG@10 of the reranker alone on the train qrels, and the median
time per query (20 pairs) in this run. Variants:

- the shipped ``model_int8.onnx`` (ONNX Runtime ``quantize_dynamic``, no fusion);
- ``rapidrag.quantize`` with one activation range per batch (``per_token=False``);
- ``rapidrag.quantize`` as shipped: per-token ranges in the down-projections;
- per-token ranges in every projection outside attention (attention output, both FFN projections);
- the FFN down-projections left in fp32 (the rest int8), the other way to remove their error.

The three ``rapidrag.quantize`` files also run with one pair per run (``batch_tokens=1``, so that no other pair sets
a pair's ranges); for those rows, ``*_from_batched`` says how far the scores are from the same file batched as usual:
how much a pair's int8 score depends on the other pairs of its batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCH_CACHE, quantized
from rerank_quality import load_scifact, ndcg_at_10

import rapidrag
from rapidrag.quantization import _projections, _quantize, fuse_attention

ROOT = Path(__file__).resolve().parent.parent


def down_projections_fp32(model_dir: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp) / "fused.onnx"
        fuse_attention(model_dir, fused)
        down = [node.name for node, _ in _projections(onnx, onnx.load(str(fused)))]
        quantize_dynamic(
            str(fused),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=down,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cache", default=str(BENCH_CACHE))
    parser.add_argument("--out", default="int8_fidelity.json")
    args = parser.parse_args()

    model_dir = Path(args.shared) / "models/minilm-l6-reranker"
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    scifact = load_scifact(args.shared, args.queries)
    ids, texts = scifact.doc_ids, scifact.texts
    qrels, queries = scifact.qrels["train"], scifact.queries["train"]

    embedder = rapidrag.Embedder(Path(args.shared) / "models/all-MiniLM-L6-v2", quantized=True)
    doc_vectors = embedder.embed(texts)
    sims = embedder.embed(list(queries.values())) @ doc_vectors.T
    top = {q: np.argsort(-sims[i])[:20] for i, q in enumerate(queries)}

    files = {
        "batch": quantized(model_dir, cache, per_token=False),
        "token": quantized(model_dir, cache),
        "down": cache / "reranker_fused_int8_down_fp32.onnx",
    }
    if not files["down"].exists():
        down_projections_fp32(model_dir, files["down"])
    files["every"] = cache / "reranker_fused_int8_every_projection_per_token.onnx"
    if not files["every"].exists():
        _quantize(model_dir, files["every"], down_only=False)
    variants: dict[str, dict[str, Any]] = {
        "fp32": dict(model_file="model.onnx"),
        "shipped model_int8.onnx": dict(model_file="model_int8.onnx"),
        "rapidrag.quantize, one range per batch": dict(model_file=files["batch"]),
        "one range per batch, one pair per run": dict(model_file=files["batch"], batch_tokens=1),
        "rapidrag.quantize, per-token down-projections": dict(model_file=files["token"]),
        "per-token down-projections, one pair per run": dict(model_file=files["token"], batch_tokens=1),
        "per-token in every projection but QKV": dict(model_file=files["every"]),
        "every projection but QKV, one pair per run": dict(model_file=files["every"], batch_tokens=1),
        "down-projections left fp32": dict(model_file=files["down"]),
    }
    # How much a pair's score depends on the other pairs of its batch: each file batched as usual against the
    # same file with one pair per run.
    batched_twin = {
        "one range per batch, one pair per run": "rapidrag.quantize, one range per batch",
        "per-token down-projections, one pair per run": "rapidrag.quantize, per-token down-projections",
        "every projection but QKV, one pair per run": "per-token in every projection but QKV",
    }

    def compare(scores: dict[str, np.ndarray], against: dict[str, np.ndarray]) -> dict[str, float]:
        diff = np.concatenate([scores[q] - against[q] for q in queries])
        agree = []
        for q in queries:
            a, b = scores[q], against[q]
            same = np.sign(a[:, None] - a[None, :]) == np.sign(b[:, None] - b[None, :])
            agree.append(same[np.triu_indices(len(a), 1)].mean())
        return {
            "mean_abs_diff": float(np.abs(diff).mean()),
            "max_abs_diff": float(np.abs(diff).max()),
            "pair_order_agreement": float(np.mean(agree)),
        }

    results: dict[str, Any] = {}
    all_scores: dict[str, dict[str, np.ndarray]] = {}
    for name, kwargs in variants.items():
        reranker = rapidrag.Reranker(model_dir, **kwargs)
        scores, times = {}, []
        for q, text in queries.items():
            start = time.perf_counter()
            scores[q] = reranker.score(text, [texts[i] for i in top[q]])
            times.append(time.perf_counter() - start)
        all_scores[name] = scores
        ndcg = np.mean(
            [ndcg_at_10([ids[top[q][i]] for i in np.argsort(-scores[q], kind="stable")], qrels[q]) for q in queries]
        )
        results[name] = {
            **compare(scores, all_scores["fp32"]),
            "ndcg10_alone_train": float(ndcg),
            "median_ms_per_query": float(np.median(times) * 1000),
        }
        if name in batched_twin:
            twin = compare(scores, all_scores[batched_twin[name]])
            results[name].update({f"{key}_from_batched": value for key, value in twin.items()})
        print(f"{name:48s} " + "  ".join(f"{k} {v:.4f}" for k, v in results[name].items()), file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps({"queries": len(queries), "variants": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
