"""What ``rapidrag index --update`` costs against indexing the whole source again, on SciFact's corpus:

1. the corpus (5,183 abstracts) as one jsonl file, indexed by ``rapidrag index`` (int8 models);
2. the source edited: ``--edit`` of its documents get a sentence appended, as many new documents are added and as
   many removed;
3. timed in turns, ``--rounds`` times each, on copies of the index from step 1: ``rapidrag index --update
   --prune`` of the edited source, the same with nothing changed, and ``rapidrag index --force`` of the edited
   source (what an update saves a user from);
4. compared: the updated index's hybrid top 10 (no reranker) against the rebuilt one's for the 300 test queries
   (the same ids in the same order, the mean overlap, nDCG@10), and lexical top 10s. The int8 embedder scales each
   batch by its own range, so a passage embedded in another batch moves a little (cosine about 0.99): dense ranks
   may differ where scores are close.

    python benchmarks/update_cost.py --shared ../shared --edit 50 --rounds 2

Each command runs in this process through ``rapidrag.cli.main`` (the models loaded by each, as a user's command
would); the wall time of each is reported, the fastest round kept.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def run(args: list[str]) -> tuple[float, str]:
    from rapidrag.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"rapidrag {' '.join(args)} failed: {err.getvalue()}")
    return seconds, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--edit", type=int, default=50, help="documents edited, added and removed (each)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--docs", type=int, help="the first N abstracts only (default: all 5,183)")
    parser.add_argument("--out", default="update_cost.json")
    args = parser.parse_args()
    shared = Path(args.shared)
    scifact = shared / "data" / "beir" / "scifact"
    os.environ["RAPIDRAG_MODELS"] = str((shared / "models").resolve())

    with gzip.open(scifact / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f][: args.docs]
    n = args.edit
    edited = [dict(d) for d in corpus[n:]]  # the first n removed
    for d in edited[:: len(edited) // n][:n]:
        d["text"] += " This sentence was added by an edit."
    edited += [{**d, "_id": f"new-{d['_id']}", "text": d["text"] + " A new version."} for d in corpus[n : 2 * n]]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "src"
        source.mkdir()
        first = source / "corpus.jsonl"
        first.write_text("".join(json.dumps(d) + "\n" for d in corpus))
        build_s, _ = run(["index", str(source), "--out", str(work / "base"), "--int8"])
        first.write_text("".join(json.dumps(d) + "\n" for d in edited))

        times: dict[str, list[float]] = {"update (edited source)": [], "update (nothing changed)": [], "rebuild": []}
        printed = ""
        for _ in range(args.rounds):
            for name in times:
                target = work / "ix"
                shutil.rmtree(target, ignore_errors=True)
                if name == "update (nothing changed)":
                    shutil.copytree(work / "updated", target)
                else:
                    shutil.copytree(work / "base", target)
                flags = ["--force", "--int8"] if name == "rebuild" else ["--update", "--prune"]
                seconds, out = run(["index", str(source), "--out", str(target), *flags])
                times[name].append(seconds)
                if name == "update (edited source)":
                    printed = out
                    shutil.rmtree(work / "updated", ignore_errors=True)
                    shutil.copytree(target, work / "updated")
                if name == "rebuild":
                    shutil.rmtree(work / "rebuilt", ignore_errors=True)
                    shutil.copytree(target, work / "rebuilt")

        from rapidrag import Retriever
        from rapidrag.beir import load_qrels, load_queries
        from rapidrag.metrics import query_metrics

        queries = load_queries(scifact)
        qrels = load_qrels(scifact / "qrels" / "test.tsv")
        updated = Retriever.load(work / "updated", reranker=None)
        rebuilt = Retriever.load(work / "rebuilt", reranker=None)
        runs: dict[str, dict[str, list[str]]] = {"updated": {}, "rebuilt": {}}
        for qid in qrels:
            for name, index in (("updated", updated), ("rebuilt", rebuilt)):
                runs[name][qid] = [h.doc_id for h in index.search(queries[qid], k=10, mode="hybrid", rerank=False)]
        same = sum(runs["updated"][q] == runs["rebuilt"][q] for q in qrels)
        overlap = sum(len(set(runs["updated"][q]) & set(runs["rebuilt"][q])) / 10 for q in qrels) / len(qrels)
        ndcg = {
            name: float(np.mean([query_metrics(run[q], qrels[q])["ndcg@10"] for q in qrels]))
            for name, run in runs.items()
        }
        lexical_same = sum(
            [h.doc_id for h in updated.search(queries[q], k=10, mode="lexical")]
            == [h.doc_id for h in rebuilt.search(queries[q], k=10, mode="lexical")]
            for q in qrels
        )
        test = list(qrels)

    best = {name: min(values) for name, values in times.items()}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "documents": len(corpus),
        "edited_added_removed": n,
        "first_build_s": build_s,
        "seconds": times,
        "best_s": best,
        "rebuild_over_update": best["rebuild"] / best["update (edited source)"],
        "same_top10_queries": f"{same}/{len(test)}",
        "lexical_same_top10_queries": f"{lexical_same}/{len(test)}",
        "mean_top10_overlap": overlap,
        "ndcg10": ndcg,
        "update_printed": printed,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(printed)
    print(f"first build {build_s:.1f} s")
    for name, values in times.items():
        print(f"{name:<26} best {best[name]:6.1f} s   rounds: {', '.join(f'{v:.1f}' for v in values)}")
    print(f"rebuild / update: {report['rebuild_over_update']:.1f}x")
    print(
        f"hybrid: same top-10 ids for {same}/{len(test)} queries, mean overlap {overlap:.3f}, nDCG@10 updated "
        f"{ndcg['updated']:.4f} rebuilt {ndcg['rebuilt']:.4f}; lexical: same top-10 for {lexical_same}/{len(test)}"
    )


if __name__ == "__main__":
    main()
