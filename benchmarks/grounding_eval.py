"""The grounding check's AUC and time (issue 20), on labelled sets built from SciFact; ``DENSE_SHARE`` and the two
status thresholds chosen on *train* only.

Contexts. For each judged query (a SciFact claim) of the split, the index searches once (``index.search(claim,
20, per_document=False, rerank=False)``: its default mode, hybrid, no reranker) and two contexts are packed at
1,000 tokens with pack's defaults (``pack(hits, 1000, source=index, query=claim)``): **with** evidence, from all 20
hits, and **without**, from the same hits after removing every hit of a relevant document. A query takes part only
when its "with" context holds text of a relevant document (the pairs are then matched: each positive has its
negative). SciFact's relevant documents support *or contradict* a claim (BEIR keeps both); similarity cannot tell
them apart, and neither do these labels.

Labelled sets:

- **A, claims**: positive = (the claim, the "with" context), negative = (the claim, the "without" context). The
  claim's score is the *minimum* over its sentences (a claim is supported only if each of its sentences is; few
  claims split into two).
- **B, sentences not copied** (hard): for each relevant document the "with" context holds, each of its sentences
  (``rapidrag.sentences.sentence_spans`` of the document's indexed text, title included; sentences under 30
  characters skipped) that overlaps none of the context's spans of that document and whose text is not in the
  context: positive against the "with" context (which holds *other* parts of the same abstract), negative against
  the "without" context. The label says "same source, not copied", a loose proxy for support.
- **B, sentences copied** (easy): the relevant document's sentences that lie inside the "with" context, against the
  "with" (positive) and "without" (negative) contexts.

Scores. ``ground``'s score of a sentence is ``max_j (1 - s) * lexical_j + s * dense_j`` over the context's
candidate spans j, with ``s = rapidrag.grounding.DENSE_SHARE``. This script calls ground's private helpers
(``_candidates``, ``_analyzer``, ``_idf``, ``_lexical``, ``_dense``) once per (text, context) and mixes the two
matrices for every share (0 = the lexical signal alone, 1 = the dense signal alone, and 0.25, 0.5, 0.75), instead
of calling ``ground`` once per share; the answer's sentences are embedded in one batch as ``ground`` embeds them
(a claim's sentences together, a set-B sentence alone). A check at the start compares the helpers' score at the
module's ``DENSE_SHARE`` with ``ground(...)``'s on 20 pairs and stops if they differ by more than 1e-6.

AUC: rank-based (Mann-Whitney, ties averaged), numpy only; a 95% interval from 1,000 bootstrap resamples of the
queries.

Choices (``--split train`` only): ``DENSE_SHARE`` = the share with the best AUC of set A (ties to the lower share);
at that share, on set A, "supported" = the lowest score at which the precision of score >= threshold is at least
0.90 (rounded up to 0.01), "weak" = the highest score at which the recall of positives is at least 0.90 (rounded
down to 0.01; no higher than "supported"). Positives and negatives are 1:1 here, so the precision is that of a
balanced set. ``--split test`` only reports: AUC at every share, the module's current ``DENSE_SHARE`` and
``THRESHOLDS`` (put there from the train run) and their precision and recall on test.

``--nli FOLDER`` (optional, report only) also scores sets A and B (not copied) with ``ground(...,
nli=rapidrag.Reranker(FOLDER))``: the probability of the folder's cross-encoder over the three best candidates
replaces the score. A folder trained on SciFact *train* claims (the shared ``minilm-l6-reranker``, or one from
``rapidrag train reranker``) may only be judged on test: its train figures are those of its own training data.

Time (at the end): ``ground(answer, context, source=index)`` with the module's settings, for 100 answers of five
sentences (the first five sentences of a relevant abstract, joined by a space, kept when they split into five
again) against their "with" 1,000-token contexts; 10 untimed warm-up calls, then 3 rounds over the 100; p50 and
p99 in ms per round. The time of embedding the five sentences alone is reported beside it.

    python benchmarks/grounding_eval.py --shared ../shared --index /work/scifact.idx --split train
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
BUDGET = 1000
MIN_CHARS = 30
PRECISION = 0.90
RECALL = 0.90
TIMED = 100
ROUNDS = 3
WARMUP = 10


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties given their average rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney U over n_pos * n_neg)."""
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(np.concatenate([pos, neg]))
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, n: int = 1000) -> tuple[float, float]:
    """A 95% interval of the AUC from resampling the queries (``groups``) with replacement."""
    rng = np.random.default_rng(20)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    values = []
    for _ in range(n):
        take = np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))])
        values.append(auc(scores[take][labels[take]], scores[take][~labels[take]]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


class CachedEmbedder:
    """The index's embedder, each list of texts embedded once (the same answer is scored against two contexts)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self.cache:
            self.cache[key] = np.asarray(self.inner.embed(list(texts)), dtype=np.float32)
        return self.cache[key]


def signals(texts: list[str], ctx: Any, index: Any, embedder: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """ground's two matrices [sentences, candidates] (lexical, dense) for ``texts`` against ``ctx``; None for an
    empty context."""
    from rapidrag import grounding as g

    candidates = g._candidates(ctx)
    if not candidates:
        return None
    analyzer = g._analyzer(index)
    idf = g._idf(texts, candidates, analyzer, index)
    lexical = g._lexical(texts, candidates, analyzer, idf)
    dense = g._dense(texts, ctx, candidates, embedder, index)
    return lexical, dense


def mixed(sig: tuple[np.ndarray, np.ndarray] | None, share: float) -> np.ndarray | None:
    """Each sentence's score at ``share``; None for an empty context (ground scores 0 there)."""
    if sig is None:
        return None
    lexical, dense = sig
    return ((1 - share) * lexical + share * dense).max(axis=1)


def build(index: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], ids: list[str]) -> dict[str, Any]:
    """The labelled pairs of sets A and B as their signal matrices, with the query of each pair."""
    from rapidrag.context import pack
    from rapidrag.sentences import sentence_spans

    embedder = CachedEmbedder(index.embedder)
    sets: dict[str, list[tuple[str, bool, Any]]] = {"A claims": [], "B not copied": [], "B copied": []}
    answers: dict[str, list[tuple[str, Any]]] = {name: [] for name in sets}  # each pair's (text, context)
    contexts: dict[str, tuple[Any, Any]] = {}
    claim_sentences = []
    started = time.perf_counter()
    skipped = 0
    for n, q in enumerate(ids):
        claim = queries[q]
        relevant = {d for d, rel in qrels[q].items() if rel > 0}
        hits = index.search(claim, 20, per_document=False, rerank=False)
        with_ctx = pack(hits, BUDGET, source=index, query=claim)
        held = {i.doc_id for i in with_ctx.items} & relevant
        if not held:
            skipped += 1
            continue
        without_ctx = pack([h for h in hits if h.doc_id not in relevant], BUDGET, source=index, query=claim)
        contexts[q] = (with_ctx, without_ctx)
        texts = [claim[a:b] for a, b in sentence_spans(claim)]
        claim_sentences.append(len(texts))
        sets["A claims"].append((q, True, signals(texts, with_ctx, index, embedder)))
        sets["A claims"].append((q, False, signals(texts, without_ctx, index, embedder)))
        answers["A claims"] += [(claim, with_ctx), (claim, without_ctx)]
        for d in sorted(held):
            text = index.get(d).text
            spans = [(i.start, i.end) for i in with_ctx.items if i.doc_id == d]
            for a, b in sentence_spans(text):
                sentence = text[a:b]
                if len(sentence) < MIN_CHARS:
                    continue
                inside = any(s <= a and b <= e for s, e in spans)
                apart = all(b <= s or e <= a for s, e in spans) and sentence not in with_ctx.text
                if not (inside or apart):
                    continue  # partly in the context: neither copied nor apart
                name = "B copied" if inside else "B not copied"
                sets[name].append((q, True, signals([sentence], with_ctx, index, embedder)))
                sets[name].append((q, False, signals([sentence], without_ctx, index, embedder)))
                answers[name] += [(sentence, with_ctx), (sentence, without_ctx)]
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} of {len(ids)} queries, {time.perf_counter() - started:.0f} s", flush=True)
    return {
        "sets": sets,
        "answers": answers,
        "contexts": contexts,
        "skipped": skipped,
        "claims_split": int(sum(c > 1 for c in claim_sentences)),
        "seconds": time.perf_counter() - started,
    }


def scores_of(pairs: list[tuple[str, bool, Any]], share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, labels, queries) of a set at ``share``; a claim's score is the min over its sentences."""
    scores = []
    for _, _, sig in pairs:
        values = mixed(sig, share)
        scores.append(0.0 if values is None else float(values.min()))
    labels = np.array([p[1] for p in pairs], dtype=bool)
    return np.array(scores), labels, np.array([p[0] for p in pairs])


def thresholds(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(supported, weak): the lowest score with precision >= PRECISION above it (rounded up to 0.01), the highest
    with recall >= RECALL (rounded down to 0.01), weak no higher than supported."""
    supported = math.inf
    for t in np.unique(scores):
        above = scores >= t
        if labels[above].mean() >= PRECISION:
            supported = float(t)
            break
    pos = np.sort(scores[labels])
    weak = float(pos[int(math.floor((1 - RECALL) * len(pos)))])  # at least RECALL of positives score >= weak
    supported = math.ceil(supported * 100 - 1e-9) / 100 if math.isfinite(supported) else 1.0
    weak = math.floor(weak * 100 + 1e-9) / 100
    return supported, min(weak, supported)


def precision_recall(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    above = scores >= t
    return (float(labels[above].mean()) if above.any() else float("nan")), float(above[labels].mean())


def check_helpers(built: dict[str, Any], index: Any, queries: dict[str, str]) -> float:
    """The largest difference between the helpers' score at the module's DENSE_SHARE and ground's, on 20 pairs."""
    from rapidrag import grounding

    worst = 0.0
    for q, (with_ctx, without_ctx) in list(built["contexts"].items())[:10]:
        for ctx in (with_ctx, without_ctx):
            claim = queries[q]
            g = grounding.ground(claim, ctx, source=index)
            texts = [s.text for s in g.sentences]
            values = mixed(signals(texts, ctx, index, index.embedder), grounding.DENSE_SHARE)
            expected = np.zeros(len(texts)) if values is None else values
            worst = max(worst, float(np.abs(expected - np.array([s.score for s in g.sentences])).max()))
    if worst > 1e-6:
        raise SystemExit(f"the helpers' scores differ from ground's by {worst}: this script is out of date")
    return worst


def time_ground(index: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], built: dict[str, Any]) -> dict:
    from rapidrag.grounding import ground
    from rapidrag.sentences import sentence_spans

    cases = []
    for q, (with_ctx, _) in built["contexts"].items():
        for d in sorted(d for d, rel in qrels[q].items() if rel > 0):
            document = index.get(d)
            if document is None:
                continue
            spans = sentence_spans(document.text)
            if len(spans) < 5:
                continue
            answer = " ".join(document.text[a:b] for a, b in spans[:5])
            if len(sentence_spans(answer)) == 5:
                cases.append((answer, with_ctx))
                break
        if len(cases) == TIMED:
            break
    for answer, ctx in cases[:WARMUP]:
        ground(answer, ctx, source=index)
    rounds = []
    for _ in range(ROUNDS):
        times = []
        for answer, ctx in cases:
            started = time.perf_counter()
            ground(answer, ctx, source=index)
            times.append((time.perf_counter() - started) * 1000)
        rounds.append({"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))})
    embed = []
    for answer, _ in cases:
        texts = [answer[a:b] for a, b in sentence_spans(answer)]
        started = time.perf_counter()
        index.embedder.embed(texts)
        embed.append((time.perf_counter() - started) * 1000)
    return {
        "answers": len(cases),
        "context_tokens_mean": float(np.mean([ctx.tokens for _, ctx in cases])),
        "rounds": rounds,
        "embed_5_sentences": {"p50_ms": float(np.percentile(embed, 50)), "p99_ms": float(np.percentile(embed, 99))},
    }


def score_nli(index: Any, built: dict[str, Any], folder: str) -> dict[str, Any]:
    """Sets A and B (not copied) scored with ``ground``'s ``nli=`` scorer over ``folder`` (a sentence's score: the
    scorer's probability for the best of its three most similar spans; a claim's: the min over its sentences),
    with the time of each ``ground`` call."""
    import rapidrag
    from rapidrag.grounding import ground

    nli = rapidrag.Reranker(folder)
    out: dict[str, Any] = {"folder": folder}
    for name in ("A claims", "B not copied"):
        scores, times = [], []
        for text, ctx in built["answers"][name]:
            started = time.perf_counter()
            g = ground(text, ctx, source=index, nli=nli)
            times.append((time.perf_counter() - started) * 1000)
            scores.append(min(s.score for s in g.sentences))
        x = np.array(scores)
        y = np.array([label for _, label, _ in built["sets"][name]], dtype=bool)
        groups = np.array([q for q, _, _ in built["sets"][name]])
        value, lo_hi = auc(x[y], x[~y]), bootstrap_auc(x, y, groups)
        out[name] = {
            "auc": value,
            "interval": lo_hi,
            "ms_p50": float(np.percentile(times, 50)),
            "ms_p99": float(np.percentile(times, 99)),
        }
        print(
            f"| {name}, nli={Path(folder).name} | {value:.3f} | {lo_hi[0]:.3f}-{lo_hi[1]:.3f} | "
            f"(ground with nli: p50 {out[name]['ms_p50']:.1f} ms, p99 {out[name]['ms_p99']:.1f} ms a call)",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True, help="a SciFact index (the README's default: untuned hybrid)")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--max-queries", type=int, default=0, help="the first N judged queries only (0: all)")
    parser.add_argument("--nli", default=None, help="a cross-encoder folder to score set A with as ground's nli=")
    parser.add_argument("--out", default=None, help="JSON report (default grounding_eval_<split>.json)")
    args = parser.parse_args()

    import rapidrag
    from rapidrag import grounding
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.context import DEFAULT_STRATEGY

    data = Path(args.shared) / "data/beir/scifact"
    queries = load_queries(data)
    qrels = load_qrels(data / f"qrels/{args.split}.tsv")
    ids = [q for q in qrels if q in queries]
    if args.max_queries:
        ids = ids[: args.max_queries]
    index = rapidrag.Retriever.load(args.index)
    if index.embedder is None:
        raise SystemExit("the index needs its embedder")
    module = {"DENSE_SHARE": grounding.DENSE_SHARE, "THRESHOLDS": list(grounding.THRESHOLDS)}
    print(
        f"{args.split}: {len(ids)} queries; contexts of {BUDGET} tokens, pack's default strategy "
        f"{DEFAULT_STRATEGY!r}; the module's DENSE_SHARE {module['DENSE_SHARE']}, THRESHOLDS {module['THRESHOLDS']}",
        flush=True,
    )
    built = build(index, queries, qrels, ids)
    worst = check_helpers(built, index, queries)
    sets = built["sets"]
    print(
        f"{len(built['contexts'])} queries with a relevant document in the context ({built['skipped']} without); "
        f"{built['claims_split']} claims split into more than one sentence; helpers against ground: max difference "
        f"{worst:.1e}; {built['seconds']:.0f} s"
    )
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "split": args.split,
        "index": args.index,
        "strategy": DEFAULT_STRATEGY,
        "module": module,
        "queries": len(ids),
        "queries_used": len(built["contexts"]),
        "claims_split": built["claims_split"],
        "pairs": {name: len(pairs) // 2 for name, pairs in sets.items()},
        "auc": {},
    }
    print("\n| set | pairs | " + " | ".join(f"share {s:g}" for s in SHARES) + " |")
    print("|---|---|" + "---|" * len(SHARES))
    for name, pairs in sets.items():
        row = {}
        for share in SHARES:
            scores, labels, _ = scores_of(pairs, share)
            row[f"{share:g}"] = auc(scores[labels], scores[~labels])
        report["auc"][name] = row
        print(f"| {name} | {len(pairs) // 2} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    print("(share 0: the lexical signal alone; share 1: the dense signal alone)")

    if args.split == "train":
        by_share = report["auc"]["A claims"]
        share = float(max(by_share, key=lambda s: (by_share[s], -float(s))))
        scores, labels, _ = scores_of(sets["A claims"], share)
        chosen = (share, *thresholds(scores, labels))
        report["chosen"] = {"DENSE_SHARE": chosen[0], "THRESHOLDS": [chosen[1], chosen[2]]}
        print(f"\nchosen on train: DENSE_SHARE {chosen[0]:g}, THRESHOLDS ({chosen[1]:.2f}, {chosen[2]:.2f})")
        settings = chosen
    else:
        settings = (module["DENSE_SHARE"], *module["THRESHOLDS"])
        print(f"\nthe module's values (chosen on train): DENSE_SHARE {settings[0]:g}, THRESHOLDS {settings[1:]}")
    share, high, low = settings
    report["at_settings"] = {}
    print(f"at share {share:g}: | set | AUC | 95% interval | precision / recall at supported {high} | at weak {low} |")
    for name, pairs in sets.items():
        scores, labels, groups = scores_of(pairs, share)
        lo_hi = bootstrap_auc(scores, labels, groups)
        p_high, r_high = precision_recall(scores, labels, high)
        p_low, r_low = precision_recall(scores, labels, low)
        value = auc(scores[labels], scores[~labels])
        report["at_settings"][name] = {
            "auc": value,
            "interval": lo_hi,
            "supported": [p_high, r_high],
            "weak": [p_low, r_low],
            "positives_mean": float(scores[labels].mean()),
            "negatives_mean": float(scores[~labels].mean()),
        }
        print(
            f"| {name} | {value:.3f} | {lo_hi[0]:.3f}-{lo_hi[1]:.3f} | {p_high:.3f} / {r_high:.3f} | "
            f"{p_low:.3f} / {r_low:.3f} | (mean score positives {scores[labels].mean():.3f}, "
            f"negatives {scores[~labels].mean():.3f})"
        )

    if args.nli:
        report["nli"] = score_nli(index, built, args.nli)

    print(f"\ntiming ground on {TIMED} five-sentence answers (module's settings)...", flush=True)
    load = os.getloadavg()
    timing = time_ground(index, queries, qrels, built)
    timing["load_average"] = load = (*load, *os.getloadavg())
    report["timing"] = timing
    print("load average (1, 5, 15 min) before timing, then after: " + " ".join(f"{x:.2f}" for x in load))
    for i, r in enumerate(timing["rounds"], 1):
        print(f"round {i}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    e = timing["embed_5_sentences"]
    print(
        f"{timing['answers']} answers, contexts {timing['context_tokens_mean']:.0f} tokens on average; embedding the "
        f"five sentences alone: p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms"
    )
    out = args.out or f"grounding_eval_{args.split}.json"
    Path(out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
