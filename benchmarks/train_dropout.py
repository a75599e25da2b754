"""A training step's seconds with the checkpoint's attention dropout and without it (``attention_dropout=0``).

PyTorch's fused attention kernel on CPU takes no dropout: with dropout on the attention weights (0.1 in BERT-style
checkpoints) every layer's attention, forward and backward, runs a slower path. Three trainings, each timed at both
settings in alternating rounds in this process, with ``max_steps`` (the loop's time less its dev evaluation, as
``train_loop.py`` measures it):

- "reranker from the checkpoint": ``train_reranker``, the cross-encoder trained on the SciFact train groups from
  ``--init``;
- "2-layer student": ``train_reranker``, layers 0 and 1 of ``--teacher`` distilled from it (listwise KL and the
  hidden states, weight 10), on the train groups and the statements of ``--distil-queries`` (unlabelled, labelled
  by the teacher);
- "embedder from the checkpoint": ``train_embedder``, ``--init`` trained as a sentence embedder (32 queries a step,
  each with its relevant document and a mined hard negative); an epoch of SciFact train is about 23 steps, so it
  runs ``--embedder-steps``.

    python benchmarks/train_dropout.py --shared ../shared --index scifact.idx --init <checkpoint> \\
        --teacher <a cross-encoder folder from rapidrag train> --distil-queries claims.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from train_loop import rapidrag_step_seconds

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True, help="a saved index of SciFact (mining)")
    parser.add_argument("--init", required=True, help="a Hugging Face checkpoint folder")
    parser.add_argument("--teacher", required=True, help="a cross-encoder folder with torch weights")
    parser.add_argument("--distil-queries", required=True, help="unlabelled statements, one per line")
    parser.add_argument("--steps", type=int, default=30, help="steps a reranker run (default 30)")
    parser.add_argument("--embedder-steps", type=int, default=20, help="steps an embedder run (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both settings (default 2)")
    parser.add_argument("--out", default="train_dropout.json")
    args = parser.parse_args()

    data_dir = Path(args.shared) / "data/beir/scifact"
    corpus, qrels = data_dir / "corpus.jsonl.gz", data_dir / "qrels/train.tsv"
    trainings: dict[str, dict[str, Any]] = {
        "reranker from the checkpoint": {"init": args.init, "steps": args.steps},
        "2-layer student": {
            "teacher": args.teacher,
            "layers": [0, 1],
            "distil_hidden": 10.0,
            "distil_queries": args.distil_queries,
            "lr": 3e-4,
            "steps": args.steps,
        },
        "embedder from the checkpoint": {"what": "embedder", "init": args.init, "steps": args.embedder_steps},
    }
    settings: dict[str, float | None] = {"checkpoint's": None, "0": 0.0}
    seconds: dict[str, dict[str, list[float]]] = {t: {s: [] for s in settings} for t in trainings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for training, options in trainings.items():
                order = list(settings) if round_ % 2 == 0 else list(reversed(settings))
                for setting in order:
                    step = rapidrag_step_seconds(
                        corpus,
                        data_dir,
                        qrels,
                        Path(tmp) / "model",
                        index=args.index,
                        attention_dropout=settings[setting],
                        progress=False,
                        **options,
                    )
                    seconds[training][setting].append(step)
                    print(f"round {round_ + 1}, {training}, attention dropout {setting}: {step:.3f} s/step", flush=True)
    report: dict[str, Any] = {"steps": {t: o["steps"] for t, o in trainings.items()}, "rounds": args.rounds}
    report["s/step"] = seconds
    report["median s/step"] = {t: {s: statistics.median(v) for s, v in by.items()} for t, by in seconds.items()}
    report["speed-up at 0"] = {t: m["checkpoint's"] / m["0"] for t, m in report["median s/step"].items()}
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
