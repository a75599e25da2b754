"""Evidence coverage of context packing (issue 20): how much of the relevant documents' text a context packed to a
token budget holds, for each strategy, against plain top-k whole chunks; the default strategy chosen on SciFact
*train* only; the time of ``pack``.

For each query of the split that has judgements, the index searches once (``index.search(q, 20, per_document=False,
rerank=False)``: the index's default mode, hybrid; no reranker even where the index has one) and
``rapidrag.context.pack(hits, budget, source=index, query=q, ...)`` packs the 20 hits at every budget of a sweep
(200 to 2,000 tokens, step 100; the tables show 500, 1,000 and 2,000) with each configuration: ``chunks``;
``window`` with ``window_tokens`` 128, 256 and 512 (a SciFact abstract whole, about); ``sentences`` with
``sentence_window`` 0, 1 and 2; all else at pack's defaults (merge on, dedupe 0.95, diversity 0, order by score).
``--rerank``: every search (the baselines' too) reranked with the index's reranker, for a look at what a better
ranking gives. One extra row per configuration with ``diversity=0.3`` (the tables print the chosen configuration's).
The baseline is plain top-k whole chunks: the first k hits of ``index.search(q, k, per_document=False,
rerank=False)`` for k = 3, 5, 10, written as pack writes them (``"[n] text"`` joined by blank lines) and counted
with the same tokenizer (the index's embedder's).

SciFact judges documents, not sentences (BEIR has no evidence sentences), so coverage is measured two ways:

- **cited**: the share of queries whose context holds text of at least one relevant document;
- **share of text**: the mean over queries of the largest fraction of a relevant document's characters (the
  indexed text, title and abstract) that the context holds (0 when it holds none).

"reach" is the share of queries with a relevant document among the 20 hits: the most any budget can cite.

The default strategy is chosen on train only: of the configurations whose "cited" reaches top-5 chunks' in 60% of
their tokens or fewer (the goal below), the one holding the most of the relevant text ("share of text") at 1,000
tokens; within 0.005 of the best counts as a tie, and ties go to the simpler, in the order chunks, window 128,
window 256, window 512, sentences 0, 1, 2 (no neighbours cites more, but holds a fifth of the text). Test figures
are reported only. The goal (issue 20): the "cited" coverage of top-5 chunks at 60% of their tokens or fewer: for
each configuration the smallest budget of the sweep at which its "cited" reaches top-5's, and the mean tokens there
as a share of top-5's mean tokens (the same for "share of text" beside it).

Time: after all coverage work, ``pack`` alone (not the search) at 1,000 tokens for every query of the last split
and every configuration (configurations interleaved query by query), after an untimed warm-up of 20 queries; p50
and p99 in ms.

    python benchmarks/context_coverage.py --shared ../shared --index /work/scifact.idx --split both
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS: dict[str, dict[str, Any]] = {  # simplest first: ties go to the earlier
    "chunks": {"strategy": "chunks"},
    "window 128": {"strategy": "window", "window_tokens": 128},
    "window 256": {"strategy": "window", "window_tokens": 256},
    "window 512": {"strategy": "window", "window_tokens": 512},
    "sentences 0": {"strategy": "sentences", "sentence_window": 0},
    "sentences 1": {"strategy": "sentences", "sentence_window": 1},
    "sentences 2": {"strategy": "sentences", "sentence_window": 2},
}
TABLE_BUDGETS = (500, 1000, 2000)
SWEEP = tuple(range(200, 2001, 100))
TOP_K = (3, 5, 10)
DIVERSITY = 0.3
TIE = 0.005
GOAL_RATIO = 0.60
WARMUP = 20


def covered(spans: list[tuple[str, int, int]], relevant: set[str], lengths: dict[str, int]) -> tuple[bool, float]:
    """(whether any span is of a relevant document, the largest fraction of a relevant document's characters that
    the spans cover together)."""
    by_doc: dict[str, list[tuple[int, int]]] = {}
    for doc, a, b in spans:
        if doc in relevant:
            by_doc.setdefault(doc, []).append((a, b))
    best = 0.0
    for doc, parts in by_doc.items():
        total, reach = 0, 0
        for a, b in sorted(parts):
            a = max(a, reach)
            if b > a:
                total += b - a
                reach = b
        best = max(best, total / max(lengths[doc], 1))
    return bool(by_doc), best


def summarise(rows: list[tuple[bool, float, int]]) -> dict[str, float]:
    cited = np.array([r[0] for r in rows], dtype=np.float64)
    share = np.array([r[1] for r in rows], dtype=np.float64)
    tokens = np.array([r[2] for r in rows], dtype=np.float64)
    return {
        "cited": float(cited.mean()),
        "share_of_text": float(share.mean()),
        "mean_tokens": float(tokens.mean()),
        "p95_tokens": float(np.percentile(tokens, 95)),
    }


def measure(
    index: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], ids: list[str], rerank: bool = False
) -> dict[str, Any]:
    """Coverage of every configuration at every budget of the sweep, of the diversity rows and of the baselines,
    over ``ids``; also the searched hits, kept for timing."""
    from rapidrag.context import pack

    tok = index.embedder.tokenizer
    rows: dict[str, list[tuple[bool, float, int]]] = {}
    hits_of: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    reach = []
    started = time.perf_counter()
    for n, q in enumerate(ids):
        text = queries[q]
        relevant = {d for d, rel in qrels[q].items() if rel > 0}
        for d in relevant:
            document = index.get(d)
            lengths[d] = len(document.text) if document is not None else 0
        hits = index.search(text, 20, per_document=False, rerank=rerank)
        hits_of[q] = hits
        reach.append(any(h.doc_id in relevant for h in hits))
        for k in TOP_K:
            top = index.search(text, k, per_document=False, rerank=rerank)
            joined = "\n\n".join(f"[{i}] {h.text}" for i, h in enumerate(top, 1))
            tokens = int(tok.count_tokens(joined)) if joined else 0
            cited, share = covered([(h.doc_id, h.start, h.end) for h in top], relevant, lengths)
            rows.setdefault(f"top-{k} chunks", []).append((cited, share, tokens))
        for name, kwargs in CONFIGS.items():
            for budget in SWEEP:
                ctx = pack(hits, budget, source=index, query=text, **kwargs)
                cited, share = covered([(i.doc_id, i.start, i.end) for i in ctx.items], relevant, lengths)
                rows.setdefault(f"{name} @{budget}", []).append((cited, share, ctx.tokens))
            for budget in TABLE_BUDGETS:
                ctx = pack(hits, budget, source=index, query=text, diversity=DIVERSITY, **kwargs)
                cited, share = covered([(i.doc_id, i.start, i.end) for i in ctx.items], relevant, lengths)
                rows.setdefault(f"{name}, diversity {DIVERSITY} @{budget}", []).append((cited, share, ctx.tokens))
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} of {len(ids)} queries, {time.perf_counter() - started:.0f} s", flush=True)
    return {
        "queries": len(ids),
        "reach": float(np.mean(reach)),
        "rows": {key: summarise(value) for key, value in rows.items()},
        "seconds": time.perf_counter() - started,
        "_hits": hits_of,
    }


def choose(result: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """Of the configurations that cite as often as top-5 chunks in GOAL_RATIO of their tokens or fewer, the one
    whose contexts hold the most of the relevant text at 1,000 tokens, ties (within TIE) to the simpler; with none
    that qualifies, the best "cited" at 1,000 tokens. Returns it and the "share of text" at 1,000 of each."""
    rows, goals = result["rows"], result["goal"]
    share = {name: rows[f"{name} @1000"]["share_of_text"] for name in CONFIGS}
    ratio = {name: goals[name]["cited"]["ratio"] for name in CONFIGS}
    qualified = [name for name in CONFIGS if ratio[name] is not None and ratio[name] <= GOAL_RATIO]
    if not qualified:
        cited = {name: rows[f"{name} @1000"]["cited"] for name in CONFIGS}
        return max(CONFIGS, key=lambda name: cited[name]), share
    best = max(share[name] for name in qualified)
    return next(name for name in qualified if share[name] >= best - TIE), share


def goal(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per configuration: the smallest budget of the sweep at which "cited" (and apart, "share of text") reaches
    top-5 chunks', with the mean tokens there as a share of top-5's mean tokens."""
    rows = result["rows"]
    top5 = rows["top-5 chunks"]
    out = {}
    for name in CONFIGS:
        entry: dict[str, Any] = {}
        for measure_name in ("cited", "share_of_text"):
            found = next((b for b in SWEEP if rows[f"{name} @{b}"][measure_name] >= top5[measure_name]), None)
            entry[measure_name] = {
                "budget": found,
                "mean_tokens": rows[f"{name} @{found}"]["mean_tokens"] if found else None,
                "ratio": rows[f"{name} @{found}"]["mean_tokens"] / top5["mean_tokens"] if found else None,
            }
        out[name] = entry
    return out


def time_pack(index: Any, queries: dict[str, str], hits_of: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    from rapidrag.context import pack

    names = list(CONFIGS)
    for q in ids[:WARMUP]:
        for name in names:
            pack(hits_of[q], 1000, source=index, query=queries[q], **CONFIGS[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for n, q in enumerate(ids):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            started = time.perf_counter()
            pack(hits_of[q], 1000, source=index, query=queries[q], **CONFIGS[name])
            times[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {
            "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)),
            "mean_ms": float(np.mean(t)),
            "calls": len(t),
        }
        for name, t in times.items()
    }


def print_tables(split: str, result: dict[str, Any], chosen: str) -> None:
    rows = result["rows"]
    print(f"\n{split}: {result['queries']} queries; a relevant document among the 20 hits: {result['reach']:.3f}")
    print("| context | budget | cited | share of text | mean tokens | p95 tokens |")
    print("|---|---|---|---|---|---|")
    for k in TOP_K:
        r = rows[f"top-{k} chunks"]
        cells = f"{r['cited']:.3f} | {r['share_of_text']:.3f} | {r['mean_tokens']:.0f} | {r['p95_tokens']:.0f}"
        print(f"| top-{k} chunks | - | {cells} |")
    for name in [*CONFIGS, f"{chosen}, diversity {DIVERSITY}"]:
        for budget in TABLE_BUDGETS:
            r = rows[f"{name} @{budget}"]
            cells = f"{r['cited']:.3f} | {r['share_of_text']:.3f} | {r['mean_tokens']:.0f} | {r['p95_tokens']:.0f}"
            print(f"| {name} | {budget} | {cells} |")
    top5 = rows["top-5 chunks"]
    print(
        f"\n{split}: smallest budget (sweep {SWEEP[0]}-{SWEEP[-1]} step 100) reaching top-5 chunks "
        f"(cited {top5['cited']:.3f}, share of text {top5['share_of_text']:.3f}, {top5['mean_tokens']:.0f} tokens)"
    )
    print("| strategy | budget (cited) | mean tokens | ÷ top-5 | budget (share of text) | mean tokens | ÷ top-5 |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in result["goal"].items():
        cells = []
        for m in ("cited", "share_of_text"):
            e = entry[m]
            if e["budget"] is None:
                cells.append(f"not reached by {SWEEP[-1]} | - | -")
            else:
                cells.append(f"{e['budget']} | {e['mean_tokens']:.0f} | {e['ratio']:.2f}")
        print(f"| {name} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    parser.add_argument("--index", required=True, help="a SciFact index (the README's default: untuned hybrid)")
    parser.add_argument("--split", choices=("train", "test", "both"), default="both")
    parser.add_argument("--max-queries", type=int, default=0, help="the first N judged queries only (0: all)")
    parser.add_argument(
        "--rerank", action="store_true", help="search with the index's reranker (fused at its weight), baselines too"
    )
    parser.add_argument("--out", default="context_coverage.json")
    args = parser.parse_args()

    import rapidrag
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.context import DEFAULT_STRATEGY

    data = Path(args.shared) / "data/beir/scifact"
    queries = load_queries(data)
    index = rapidrag.Retriever.load(args.index)
    if index.embedder is None:
        raise SystemExit("the index needs its embedder (hybrid search and its tokenizer)")
    splits = ["train", "test"] if args.split == "both" else [args.split]
    reranker = ("used" if args.rerank else "present, not used") if index.reranker is not None else "none"
    print(
        f"index {args.index}: default mode {index.default_mode}, reranker {reranker}; "
        f"pack's DEFAULT_STRATEGY {DEFAULT_STRATEGY!r}"
    )
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "index": args.index, "splits": {}}
    chosen = None
    results = {}
    for split in splits:
        qrels = load_qrels(data / f"qrels/{split}.tsv")
        ids = [q for q in qrels if q in queries]
        if args.max_queries:
            ids = ids[: args.max_queries]
        print(f"{split}: {len(ids)} queries", flush=True)
        result = measure(index, queries, qrels, ids, rerank=args.rerank)
        result["goal"] = goal(result)
        result["_ids"] = ids
        results[split] = result
        if split == "train":
            chosen, shares = choose(result)
            report["chosen"] = {"configuration": chosen, "share_of_text_at_1000": shares, "tie": TIE}
            listed = ", ".join(f"{k} {v:.3f}" for k, v in shares.items())
            print(f"chosen on train: {chosen} (share of text at 1000 tokens: {listed})")
    shown = chosen or {"chunks": "chunks", "window": "window 256", "sentences": "sentences 1"}[DEFAULT_STRATEGY]
    for split, result in results.items():
        print_tables(split, result, shown)
    last = splits[-1]
    print(f"\ntiming pack at 1000 tokens on the {last} queries (after {WARMUP} warm-up queries)...", flush=True)
    load = os.getloadavg()
    timing = time_pack(index, queries, results[last]["_hits"], results[last]["_ids"])
    load = (*load, *os.getloadavg())
    print("load average (1, 5, 15 min) before timing, then after: " + " ".join(f"{x:.2f}" for x in load))
    print(f"| strategy | p50 ms | p99 ms | mean ms | calls ({last}) |")
    print("|---|---|---|---|---|")
    for name, t in timing.items():
        print(f"| {name} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | {t['mean_ms']:.2f} | {t['calls']} |")
    if chosen:
        print(f"\nchosen on train: {chosen} (pack's DEFAULT_STRATEGY in this run: {DEFAULT_STRATEGY!r})")
    for split, result in results.items():
        report["splits"][split] = {k: v for k, v in result.items() if not k.startswith("_")}
    report["timing_split"], report["timing_1000"], report["timing_load_average"] = last, timing, load
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
