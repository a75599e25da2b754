"""Set A of ``grounding_eval.py`` (SciFact claims against their 1,000-token contexts with and without their evidence)
scored by cross-encoders at the level they were trained on: the claim against each whole item of the context (a
chunk or a window, as a reranker sees passages), the context's score the highest logit. ``grounding_eval.py --nli``
scores sentence spans instead, as ``ground(..., nli=)`` does; this asks whether the span level is what holds such a
model back.

    python benchmarks/grounding_nli_items.py --shared ../shared --index scifact.idx --split test \\
        --reranker ../shared/models/minilm-l6-reranker --reranker my-reranker

Reported per folder: the AUC (with a 95% interval from resampling the queries), the matched-pair accuracy (the
share of claims whose "with" context scores above their own "without" one), and, as a report only (nothing here is
chosen), the AUC of the logit's z-score mixed with ``ground``'s similarity score (z-scored) at weights 0.25 and 0.5.
A folder trained on SciFact train claims may only be judged on test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import grounding_eval as ge
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(ge.HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True)
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--reranker", action="append", required=True, help="a cross-encoder folder (repeatable)")
    parser.add_argument("--out", default="grounding_nli_items.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries

    data = Path(args.shared) / "data/beir/scifact"
    queries = load_queries(data)
    qrels = load_qrels(data / f"qrels/{args.split}.tsv")
    index = rapidrag.Retriever.load(args.index)
    built = ge.build(index, queries, qrels, [q for q in qrels if q in queries])
    pairs, answers = built["sets"]["A claims"], built["answers"]["A claims"]
    labels = np.array([label for _, label, _ in pairs], dtype=bool)
    groups = np.array([q for q, _, _ in pairs])
    similarity = ge.scores_of(pairs, ge.SHARES[2])[0]  # ground's default mix (share 0.5)
    report: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "split": args.split, "pairs": len(pairs) // 2}
    print(f"{args.split}: {len(pairs) // 2} claims, each against its context with and without its evidence")
    print(f"ground's similarity: AUC {ge.auc(similarity[labels], similarity[~labels]):.3f}, matched-pair accuracy "
          f"{np.mean(similarity[labels] > similarity[~labels]):.3f}")  # fmt: skip
    for folder in args.reranker:
        model = rapidrag.Reranker(folder)
        best = np.array([float(model.score(text, [i.text for i in ctx.items]).max()) for text, ctx in answers])
        value = ge.auc(best[labels], best[~labels])
        row: dict[str, object] = {
            "auc": value,
            "interval": ge.bootstrap_auc(best, labels, groups),
            "matched_pair_accuracy": float(np.mean(best[labels] > best[~labels])),
        }
        z, s = (best - best.mean()) / best.std(), (similarity - similarity.mean()) / similarity.std()
        for weight in (0.25, 0.5):
            mixed = weight * z + (1 - weight) * s
            row[f"mixed_{weight}"] = ge.auc(mixed[labels], mixed[~labels])
        report[folder] = row
        print(json.dumps({Path(folder).name: row}))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
