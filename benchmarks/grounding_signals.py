"""Would a sentence-level dense signal lift the grounding check's AUC (issue 20)? Set A of ``grounding_eval.py``
(a SciFact claim against the 1,000-token context packed with and without its evidence, the same pairs and the same
packing), scored by each signal alone and by mixes:

- ``lexical``: ground's idf-weighted share of the claim's words found in a candidate span;
- ``item dense``: ground's cosine of the claim with the mean stored embedding of the candidate's context item;
- ``sentence dense``: the cosine of the claim with the candidate span itself, embedded (what ground would need to
  embed at call time, or keep per document: some 80 spans for a 1,000-token context).

A claim's score is the max over the candidates, then the min over its sentences, as in ``grounding_eval.py``. AUC
is rank-based. Choose on ``--split train``; ``--split test`` reports.

    python benchmarks/grounding_signals.py --shared ../shared --index scifact.idx --split train
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from grounding_eval import BUDGET, auc

Mix = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def mixes() -> dict[str, Mix]:
    out: dict[str, Mix] = {
        "lexical": lambda lex, item, sent: lex,
        "item dense": lambda lex, item, sent: item,
        "sentence dense": lambda lex, item, sent: sent,
        "lexical 0.5 + item dense 0.5 (ground's)": lambda lex, item, sent: 0.5 * lex + 0.5 * item,
    }
    for a in (0.25, 0.5, 0.75):
        out[f"lexical {1 - a:g} + sentence dense {a:g}"] = lambda lex, item, sent, a=a: (1 - a) * lex + a * sent
    for a in (0.25, 0.33):
        for b in (0.25, 0.33, 0.5):
            name = f"lexical {1 - a - b:.2f} + item {a:g} + sentence {b:g}"
            out[name] = lambda lex, item, sent, a=a, b=b: (1 - a - b) * lex + a * item + b * sent
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parent.parent.parent / "shared"))
    parser.add_argument("--index", required=True)
    parser.add_argument("--split", choices=("train", "test"), required=True)
    parser.add_argument("--out", default="grounding_signals.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag import grounding as g
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.context import pack
    from rapidrag.sentences import sentence_spans

    data = Path(args.shared) / "data/beir/scifact"
    index = rapidrag.Retriever.load(args.index)
    queries = load_queries(data)
    qrels = load_qrels(data / f"qrels/{args.split}.tsv")
    unit: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in unit]
        if new:
            for t, v in zip(new, index.embedder.embed(new), strict=True):
                unit[t] = v / max(float(np.linalg.norm(v)), 1e-12)
        return np.stack([unit[t] for t in texts])

    rows: list[tuple[str, bool, Any]] = []
    started = time.perf_counter()
    for q in [q for q in qrels if q in queries]:
        claim = queries[q]
        relevant = {d for d, rel in qrels[q].items() if rel > 0}
        hits = index.search(claim, 20, per_document=False, rerank=False)
        with_ctx = pack(hits, BUDGET, source=index, query=claim)
        if not {i.doc_id for i in with_ctx.items} & relevant:
            continue
        without_ctx = pack([h for h in hits if h.doc_id not in relevant], BUDGET, source=index, query=claim)
        texts = [claim[a:b] for a, b in sentence_spans(claim)]
        claim_vectors = embed(texts)
        for label, ctx in ((True, with_ctx), (False, without_ctx)):
            candidates = g._candidates(ctx)
            if not candidates:
                rows.append((q, label, None))
                continue
            analyzer = g._analyzer(index)
            lexical = g._lexical(texts, candidates, analyzer, g._idf(texts, candidates, analyzer, index))
            item = g._dense(texts, ctx, candidates, index.embedder, index)
            sentence = claim_vectors @ embed([c.text for c in candidates]).T
            rows.append((q, label, (lexical, item, sentence)))
    labels = np.array([r[1] for r in rows])
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "split": args.split,
        "pairs": len(rows),
        "seconds": time.perf_counter() - started,
        "auc": {},
    }
    for name, mix in mixes().items():
        scores = np.array([0.0 if sig is None else float(mix(*sig).max(axis=1).min()) for _, _, sig in rows])
        report["auc"][name] = auc(scores[labels], scores[~labels])
        print(f"| {name} | {report['auc'][name]:.3f} |")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
