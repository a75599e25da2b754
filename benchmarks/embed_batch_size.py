"""Embedding throughput against the batch size, per model file and corpus, and how far a passage's vector moves
with its batch: what ``Embedder.embed``'s default ``batch_size`` (and so ``rapidrag index``'s) should be.

    python benchmarks/embed_batch_size.py --shared ../shared --passages 480 --rounds 2

Corpora: SciFact abstracts (title and text, most longer than the 256-token window) and gcide passages (short
dictionary entries). Models: the shared all-MiniLM-L6-v2 in fp32 (``model.onnx``) and dynamic int8
(``model_int8.onnx``), and the int8 file ``rapidrag.quantize`` makes (made into a scratch folder). Batch sizes and
models take turns within each round; the fastest round of each is kept. "moved": the smallest cosine between a
passage's vector embedded at that batch size and at batch size 1, over the passages (1.0: the vector does not
depend on what shares its batch).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def passages(path: Path, n: int, skip: int = 0) -> list[str]:
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in itertools.islice(f, skip, None):
            d = json.loads(line)
            out.append(f"{d.get('title') or ''} {d['text']}".strip())
            if len(out) == n:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--passages", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="1,2,4,8,16,32")
    parser.add_argument("--out", default="embed_batch_size.json")
    args = parser.parse_args()
    import rapidrag

    shared = Path(args.shared)
    folder = shared / "models" / "all-MiniLM-L6-v2"
    corpora = {
        "scifact": passages(shared / "data" / "beir" / "scifact" / "corpus.jsonl.gz", args.passages),
        "gcide": passages(shared / "data" / "corpora" / "gcide" / "corpus.jsonl.gz", args.passages, skip=5000),
    }
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp) / "fused"
        shutil.copytree(folder, fused)
        rapidrag.quantize(fused / "model.onnx", fused / "model_fused_int8.onnx")
        models = {
            "fp32": rapidrag.Embedder(folder),
            "int8 (model_int8.onnx)": rapidrag.Embedder(folder, quantized=True),
            "int8 (rapidrag quantize)": rapidrag.Embedder(fused, model_file=fused / "model_fused_int8.onnx"),
        }
        tokens = {name: int(models["fp32"].tokenizer.count_tokens(texts).sum()) for name, texts in corpora.items()}
        rates: dict[str, list[float]] = {}
        moved: dict[str, float] = {}
        for model in models.values():
            model.embed(corpora["scifact"][:64])  # warm-up
        for _ in range(args.rounds):
            for (corpus, texts), (name, model), size in itertools.product(corpora.items(), models.items(), sizes):
                start = time.perf_counter()
                vectors = model.embed(texts, batch_size=size)
                seconds = time.perf_counter() - start
                key = f"{corpus} | {name} | {size}"
                rates.setdefault(key, []).append(len(texts) / seconds)
                if key not in moved:
                    single = model.embed(texts, batch_size=1) if size != 1 else vectors
                    moved[key] = float(np.min(np.sum(vectors * single, axis=1)))
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "passages": args.passages,
        "tokens": tokens,
        "passages_per_s": rates,
        "moved_min_cosine": moved,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"passages per corpus: {args.passages} (tokens: {tokens})")
    print("| corpus | model | batch | passages/s (best) | rounds | vs batch 32 | moved (min cos to batch 1) |")
    print("|---|---|---|---|---|---|---|")
    for key, values in rates.items():
        corpus, name, size = key.split(" | ")
        base = max(rates[f"{corpus} | {name} | 32"]) if f"{corpus} | {name} | 32" in rates else float("nan")
        print(
            f"| {corpus} | {name} | {size} | {max(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
            f"{max(values) / base:.2f}x | {moved[key]:.4f} |"
        )


if __name__ == "__main__":
    main()
