"""rapidrag's training loop against sentence-transformers' CrossEncoderTrainer: seconds per step on the same groups.

Both train the same checkpoint as a cross-encoder on the same SciFact train groups (one relevant document and 7
mined hard negatives per group, 4 groups per step, 256 tokens, lr 5e-5, bf16 autocast where the CPU has it) for
``--steps`` steps, one after the other in this process:

- rapidrag: ``rapidrag.train.train_reranker`` with ``max_steps`` (its listwise softmax cross-entropy); the time is
  its training loop's, less the dev evaluation the loop runs at its last step;
- sentence-transformers: ``CrossEncoderTrainer`` with ``ListNetLoss`` (a softmax cross-entropy over each group's
  labels, the same loss), its default batch sampler (shuffled, not bucketed by length).

    pip install datasets accelerate   # the sentence-transformers trainer needs them
    python benchmarks/train_loop.py --shared ../shared --index scifact.idx --init <checkpoint folder>
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def rapidrag_step_seconds(
    corpus: Path,
    queries: Path,
    qrels: Path,
    out: Path,
    *,
    index: str,
    steps: int,
    what: str = "reranker",
    **options: Any,
) -> float:
    """Seconds per step of ``train_reranker``'s (or with ``what="embedder"``, ``train_embedder``'s) loop over
    ``steps`` steps (``options`` passed on): its training time less the dev evaluation it runs at its last step,
    which every dev scoring is timed to take out."""
    from rapidrag.train import embedder as embedder_module
    from rapidrag.train import reranker as reranker_module
    from rapidrag.train import train_embedder, train_reranker

    # Each trainer's dev scoring, by the module-level name its loop calls.
    if what not in ("reranker", "embedder"):
        raise ValueError(f"what must be 'reranker' or 'embedder', got {what!r}")
    module, name = (reranker_module, "_dev_scores") if what == "reranker" else (embedder_module, "dense_ndcg")
    scoring: list[float] = []
    real_dev_scores = getattr(module, name)

    def timed_dev_scores(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        result = real_dev_scores(*a, **kw)
        scoring.append(time.perf_counter() - start)
        return result

    setattr(module, name, timed_dev_scores)
    try:
        common = {"out": out, "index": index, "epochs": 1, "max_steps": steps, "eval_every": steps}
        common |= {"quantize": False, "keep_worse": True, "force": True}
        if what == "reranker":
            trained = train_reranker(corpus, queries, qrels, rerank_depth=1, **common, **options)
        else:
            trained = train_embedder(corpus, queries, qrels, **common, **options)
    finally:
        setattr(module, name, real_dev_scores)
    if trained.path is None:
        raise RuntimeError("the timed training wrote no model folder")
    record = json.loads((trained.path / "rapidrag.json").read_text())
    # Dev scorings: before training, the one in the loop at its last step, after training. An epoch may hold fewer
    # than ``steps`` batches (SciFact train makes about 23 of the embedder's 32 queries): divide by the steps run.
    return float(record["seconds"]["training"] - scoring[1]) / int(record["steps_run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True)
    parser.add_argument("--init", required=True, help="a Hugging Face checkpoint folder")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="train_loop.json")
    args = parser.parse_args()

    import torch
    from datasets import Dataset  # type: ignore[import-untyped]
    from sentence_transformers.cross_encoder import (  # type: ignore[import-untyped]
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import ListNetLoss  # type: ignore[import-untyped]

    from rapidrag.train.common import bf16_available
    from rapidrag.train.data import prepare
    from rapidrag.train.mining import mine
    from rapidrag.train.reranker import _batches

    data_dir = Path(args.shared) / "data/beir/scifact"
    corpus, qrels = data_dir / "corpus.jsonl.gz", data_dir / "qrels/train.tsv"
    bf16 = bf16_available()
    report: dict[str, object] = {"steps": args.steps, "bf16": bf16, "torch_threads": torch.get_num_threads()}

    with tempfile.TemporaryDirectory() as tmp:
        report["rapidrag s/step"] = rapidrag_step_seconds(
            corpus, data_dir, qrels, Path(tmp) / "rapidrag", index=args.index, init=args.init, steps=args.steps
        )

        # The same groups, in the same order, for the sentence-transformers trainer.
        data, train_ids, _ = prepare(corpus, data_dir, qrels, min_queries=None, dev_fraction=0.2, seed=0)
        candidates, _, _ = mine(data, None, args.index, train_ids, 30)
        groups = [
            g
            for batch in _batches(
                data, candidates, train_ids, epochs=1, groups_per_batch=4, negatives=7, skip_window=2, seed=0
            )
            for g in batch
        ][: 4 * args.steps]
        dataset = Dataset.from_dict(
            {
                "query": [data.queries[q] for q, _, _ in groups],
                "docs": [[data.documents[d] for d in (pos, *negs)] for _, pos, negs in groups],
                "labels": [[1.0] + [0.0] * len(negs) for _, _, negs in groups],
            }
        )
        model = CrossEncoder(args.init, num_labels=1, max_length=256)
        training_args = CrossEncoderTrainingArguments(
            output_dir=str(Path(tmp) / "st"),
            max_steps=args.steps,
            per_device_train_batch_size=4,
            learning_rate=5e-5,
            warmup_ratio=0.1,
            bf16=bf16,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_steps=args.steps,
            seed=0,
        )
        trainer = CrossEncoderTrainer(
            model=model, args=training_args, train_dataset=dataset, loss=ListNetLoss(model, mini_batch_size=32)
        )
        start = time.perf_counter()
        trainer.train()
        report["sentence-transformers s/step"] = (time.perf_counter() - start) / args.steps
    report["ratio (sentence-transformers / rapidrag)"] = (
        report["sentence-transformers s/step"] / report["rapidrag s/step"]  # type: ignore[operator]
    )
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
