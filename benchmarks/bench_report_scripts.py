"""The report scripts of benchmarks/ that are not pytest suites, run once on tiny inputs so that they do not rot.

Only those that take seconds: attention_core.py, dense_report.py on 2,000 vectors (random ones unless the gcide
cache of dense_vectors.py is present), dense_memory.py on 2,000, metadata_index.py on 2,000 rows, and
spin_between_runs.py on 5 queries, start_up.py on an index of 20 documents, hnsw_removed.py, hnsw_compact.py and
exact_scores.py on 4,000 random vectors, hnsw_churn.py on 2,800 of them, search_settings.py on 2,000,
sharded_load.py on a lexical index of 20 documents in 2 shards (Ray, in a private network namespace).
rerank_quality.py, rerank_cascade.py and int8_fidelity.py embed all of SciFact and quantize the cross-encoder before
their first figure, minutes on two cores; they are run by hand for BENCHMARKS.md. small_writes.py runs on an index
of 300 gcide passages, update_cost.py on 60 SciFact abstracts, embed_batch_size.py on 8 passages a corpus,
reload_cost.py on a lexical index of 40, resend_cost.py on one of 30, reranker_compare.py on a hybrid index of 40
and 4 queries, index_compare.py on lexical indexes of 200 and 100.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    ("script", "args", "keys"),
    [
        (
            "attention_core.py",
            ["--pairs", "1", "--length", "16", "--rounds", "1"],
            {"ms_per_layer", "core_fraction_of_fp32_peak", "int8_core_relative_error"},
        ),
        ("dense_report.py", ["--docs", "2000", "--queries", "5", "--reps", "1"], {"kinds", "mask_ms"}),
        ("dense_memory.py", ["--rows", "2000", "--rounds", "1"], {"best", "rounds"}),
        ("search_settings.py", ["--kind", "hnsw", "--docs", "2000", "--queries", "5"], {"kind", "results"}),
        (
            "metadata_index.py",
            ["--rows", "2000", "--writes", "20", "--rounds", "1"],
            {"bulk add s (best)", "single add ms p50 / p99 (best round)", "mask ms (best)"},
        ),
    ],
)
def test_report_script_runs(tmp_path: Path, script: str, args: list[str], keys: set[str]) -> None:
    out = tmp_path / "report.json"
    subprocess.run([sys.executable, str(HERE / script), *args, "--out", str(out)], check=True, cwd=HERE, timeout=600)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert keys <= set(report), sorted(report)


def test_update_cost_and_embed_batch_size_run(tmp_path: Path, minilm_dir: Path) -> None:
    shared = str(minilm_dir.parent.parent)
    out = tmp_path / "update.json"
    args = ["--shared", shared, "--docs", "60", "--edit", "5", "--rounds", "1", "--out", str(out)]
    subprocess.run([sys.executable, str(HERE / "update_cost.py"), *args], check=True, cwd=HERE, timeout=600)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["documents"] == 60 and set(report["best_s"]) == {
        "update (edited source)",
        "update (nothing changed)",
        "rebuild",
    }
    assert report["update_printed"].count("5 added, 5 changed") == 1
    out = tmp_path / "batch.json"
    args = ["--shared", shared, "--passages", "8", "--rounds", "1", "--sizes", "1,4", "--out", str(out)]
    subprocess.run([sys.executable, str(HERE / "embed_batch_size.py"), *args], check=True, cwd=HERE, timeout=600)
    rates = json.loads(out.read_text(encoding="utf-8"))["passages_per_s"]
    assert len(rates) == 2 * 3 * 2 and all(r[0] > 0 for r in rates.values())


def test_spin_between_runs_reports_each_embedder(tmp_path: Path, minilm_dir: Path) -> None:
    out = tmp_path / "report.json"
    shared = minilm_dir.parent.parent
    args = ["--shared", str(shared), "--queries", "5", "--rounds", "1", "--out", str(out)]
    subprocess.run([sys.executable, str(HERE / "spin_between_runs.py"), *args], check=True, cwd=HERE, timeout=600)
    best = json.loads(out.read_text(encoding="utf-8"))["best"]
    assert len(best) == 3
    for cases in best.values():
        assert len(cases) == 5 and all(0 < c["p50_ms"] <= c["p99_ms"] for c in cases.values())


def test_small_writes_reports_each_kind_of_write(tmp_path: Path, minilm_dir: Path) -> None:
    out = tmp_path / "report.json"
    shared = minilm_dir.parent.parent
    args = ["--shared", str(shared), "--docs", "300", "--writes", "3", "--out", str(out)]
    subprocess.run([sys.executable, str(HERE / "small_writes.py"), *args], check=True, cwd=HERE, timeout=600)
    result = json.loads(out.read_text(encoding="utf-8"))["results"]["300"]
    assert result["chunks"] >= 300
    writes = {k: v for k, v in result.items() if k != "chunks"}
    assert len(writes) == 3 and all(w["n"] == 3 and 0 < w["p50_ms"] <= w["p99_ms"] for w in writes.values())


def test_start_up_times_each_phase_of_a_new_process(tmp_path: Path, minilm_dir: Path) -> None:
    from rapidrag import Embedder
    from rapidrag.retriever import Retriever

    index = Retriever(Embedder(minilm_dir))
    index.add([{"id": f"d{i}", "text": f"vitamin D deficiency and bone loss, note {i}."} for i in range(20)])
    index.save(tmp_path / "tiny.idx")
    out = tmp_path / "report.json"
    args = ["--index", str(tmp_path / "tiny.idx"), "--rounds", "1", "--out", str(out)]
    subprocess.run([sys.executable, str(HERE / "start_up.py"), *args], check=True, cwd=HERE, timeout=600)
    start = json.loads(out.read_text(encoding="utf-8"))["best"]["current"]["start"]
    phases = ("import_ms", "load_ms", "first_lexical_ms", "first_hybrid_ms")
    assert all(start[p] > 0 for p in phases)
    assert abs(sum(start[p] for p in phases) - start["total_ms"]) < 1e-6 * start["total_ms"] + 1e-3
    assert start["resident_mib"] > 0 and start["steady_lexical_us"] > 0


@pytest.fixture
def small_vectors(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32))
    x = centers[rng.integers(0, 20, 4020)] + 0.5 * rng.normal(size=(4020, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", x[:4000])
    np.save(tmp_path / "queries.npy", x[4000:])
    return tmp_path / "vectors.npy", tmp_path / "queries.npy"


def test_hnsw_removed_reports_recall_at_each_share(tmp_path: Path, small_vectors: tuple[Path, Path]) -> None:
    out = tmp_path / "report.json"
    args = ["--vectors", str(small_vectors[0]), "--query-vectors", str(small_vectors[1]), "--rounds", "1"]
    subprocess.run([sys.executable, str(HERE / "hnsw_removed.py"), *args, "--out", str(out)], check=True, cwd=HERE)
    cases = json.loads(out.read_text(encoding="utf-8"))["best"]["current"]
    assert len(cases) == 10 and cases["removed 99%"]["live_rows"] == 40
    assert all(0.9 <= c["recall_at_10"] <= 1 and 0 < c["p50_us"] <= c["p99_us"] for c in cases.values())


def test_hnsw_compact_reports_what_waited(tmp_path: Path, small_vectors: tuple[Path, Path]) -> None:
    out = tmp_path / "report.json"
    args = ["--vectors", str(small_vectors[0]), "--query-vectors", str(small_vectors[1]), "--rows", "3000"]
    subprocess.run(
        [sys.executable, str(HERE / "hnsw_compact.py"), *args, "--rounds", "1", "--out", str(out)], check=True, cwd=HERE
    )
    (case,) = json.loads(out.read_text(encoding="utf-8"))["best"]["current"].values()
    assert case["removed_rows_before"] == 1500 and case["removed_rows_after"] == 0
    assert case["compact_s"] > 0 and case["search_p50_ms_before"] > 0 and case["search_p50_ms_after"] > 0
    assert case["search_max_ms_during"] >= case["search_p50_ms_during"] >= 0


def test_exact_scores_reports_each_size(tmp_path: Path, small_vectors: tuple[Path, Path]) -> None:
    out = tmp_path / "report.json"
    args = ["--vectors", str(small_vectors[0]), "--query-vectors", str(small_vectors[1]), "--rounds", "1"]
    subprocess.run([sys.executable, str(HERE / "exact_scores.py"), *args, "--out", str(out)], check=True, cwd=HERE)
    cases = json.loads(out.read_text(encoding="utf-8"))["best"]["current"]
    assert set(cases) == {"scores of 126 rows", "scores of 1,260 rows", "flat search, 1% kept", "flat search, 10% kept"}
    assert all(c["us"] > 0 for c in cases.values())


def test_sharded_load_reports_the_coordinators_memory(tmp_path: Path) -> None:
    import shlex
    import shutil

    from rapidrag.cli import main

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("sharded_load.py runs Ray inside a private network: it needs unshare and ip")
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": f"passage {i} about an animal"}) + "\n" for i in range(20))
    )
    assert main(["index", str(source), "--out", str(tmp_path / "ix"), "--lexical", "--shards", "2"]) == 0
    out = tmp_path / "report.json"
    script = [sys.executable, str(HERE / "sharded_load.py"), "--index", str(tmp_path / "ix"), "--query", "animal"]
    inner = f"ip link set lo up && {shlex.join([*script, '--rounds', '1', '--out', str(out)])}"
    subprocess.run(["unshare", "--net", "sh", "-c", inner], check=True, cwd=HERE, timeout=600)
    load = json.loads(out.read_text(encoding="utf-8"))["best"]["current"]["load"]
    assert load["shards"] == 2 and load["documents"] == 20 and load["load_s"] > 0
    assert load["coordinator_peak_mib"] > 0 and load["first_lexical_ms"] > 0


def test_hnsw_churn_reports_each_setting(tmp_path: Path, small_vectors: tuple[Path, Path]) -> None:
    out = tmp_path / "report.json"
    args = ["--vectors", str(small_vectors[0]), "--query-vectors", str(small_vectors[1]), "--rows", "2000"]
    args += ["--rounds", "4", "--per-round", "200", "--queries", "5", "--setting", "none", "--setting", "0.2"]
    subprocess.run([sys.executable, str(HERE / "hnsw_churn.py"), *args, "--out", str(out)], check=True, cwd=HERE)
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [r["compact_fraction"] for r in results] == [None, 0.2]
    assert all(len(r["trace"]) == 4 and r["search_ms"]["p50"] > 0 for r in results)
    assert results[0]["largest_removed_share"] == pytest.approx(800 / 2800)


def _lexical_scifact(folder: Path, scifact_dir: Path, n: int) -> Path:
    """A lexical index of SciFact's first ``n`` abstracts, saved to ``folder``."""
    from rapidrag import Retriever
    from rapidrag.beir import load_corpus

    index = Retriever()
    index.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in load_corpus(scifact_dir)[:n]])
    return index.save(folder)


def _report(tmp_path: Path, script: str, args: list[str]) -> dict[str, Any]:
    out = tmp_path / "report.json"
    subprocess.run([sys.executable, str(HERE / script), *args, "--out", str(out)], check=True, cwd=HERE, timeout=600)
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_reload_cost_runs(tmp_path: Path, scifact_dir: Path) -> None:
    from rapidrag import Retriever

    folder = _lexical_scifact(tmp_path / "ix", scifact_dir, 40)
    saved = Retriever.load(folder).generation
    args = ["--index", str(folder), "--queries", str(scifact_dir), "--rounds", "1", "--reloads", "2"]
    report = _report(tmp_path, "reload_cost.py", [*args, "--delete", "5", "--quiet-s", "0.2"])
    assert report["documents"] == 40 and len(report["swap_ms"]["all"]) == 3
    assert report["searches_quiet_ms"]["searches"] > 0 and report["searches_during_reloads_ms"]["searches"] > 0
    assert Retriever.load(folder).generation == saved  # (the index given is copied, not changed)


def test_resend_cost_runs(tmp_path: Path, scifact_dir: Path) -> None:
    folder = _lexical_scifact(tmp_path / "ix", scifact_dir, 30)
    args = ["--index", str(folder), "--docs", "20", "--edit", "2", "--rounds", "1"]
    chunks = _report(tmp_path, "resend_cost.py", args)["chunks_indexed"]
    assert chunks == {"upsert, 0 edited": 20, "upsert_changed, 0 edited": 0, "upsert, 2 edited": 20,
                      "upsert_changed, 2 edited": 2}  # fmt: skip


def test_corpus_queries_writes_titles_or_statements(tmp_path: Path, scifact_dir: Path) -> None:
    out = {}
    for kind in ("titles", "sentences"):
        out[kind] = tmp_path / f"{kind}.txt"
        args = [str(scifact_dir), "--kind", kind, "--limit", "300", "--out", str(out[kind])]
        subprocess.run([sys.executable, str(HERE / "corpus_queries.py"), *args], check=True, cwd=HERE, timeout=600)
    titles = out["titles"].read_text(encoding="utf-8").splitlines()
    statements = out["sentences"].read_text(encoding="utf-8").splitlines()
    assert len(titles) == len(statements) == 300 and not set(titles) & set(statements)
    assert all(4 <= len(s.split()) <= 40 and s[0].isupper() and s.endswith(".") for s in statements)
    assert not any(s.startswith(("RESULTS ", "BACKGROUND ", "METHODS ", "CONCLUSIONS ")) for s in statements)


def test_index_compare_sets_each_index_against_the_first(tmp_path: Path, scifact_dir: Path) -> None:
    """Lexical indexes of SciFact's first 200 abstracts and of the first 100, on the test queries: each figure is
    the one ``rapidrag.metrics.evaluate`` (``rapidrag eval``) gives, the second index's difference is the difference
    of the two means, and the first index named again differs from itself by zero."""
    from rapidrag import Retriever
    from rapidrag.beir import load_qrels, load_queries
    from rapidrag.metrics import evaluate

    big = _lexical_scifact(tmp_path / "big", scifact_dir, 200)
    small = _lexical_scifact(tmp_path / "small", scifact_dir, 100)
    qrels = scifact_dir / "qrels/test.tsv"
    args = ["--queries", str(scifact_dir), "--qrels", str(qrels), "--mode", "lexical"]
    args += ["--index", f"big={big}", "--index", f"small={small}", "--index", f"again={big}"]
    report = _report(tmp_path, "index_compare.py", args)
    queries, judged = load_queries(scifact_dir), load_qrels(qrels)
    for name, folder in (("big", big), ("small", small)):
        expected = evaluate(Retriever.load(folder), queries, judged, mode="lexical")["ndcg@10"]
        assert report["ndcg@10"][name]["lexical"] == pytest.approx(expected)
    assert report["ndcg@10"]["big"]["lexical"] > report["ndcg@10"]["small"]["lexical"]  # 9 queries against 4 judged
    gap = report["minus the reference"]["small"]["lexical"]
    assert gap["mean"] == pytest.approx(report["ndcg@10"]["small"]["lexical"] - report["ndcg@10"]["big"]["lexical"])
    assert gap["low"] <= gap["mean"] <= gap["high"]
    assert report["minus the reference"]["again"]["lexical"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    assert set(report["minus the reference"]) == {"small", "again"}


def test_reranker_compare_sets_each_reranker_against_the_first(
    tmp_path: Path, scifact_dir: Path, minilm_dir: Path, reranker_dir: Path
) -> None:
    """Over a hybrid index of 40 abstracts and 4 test queries, one reranker named twice at two weights: the second
    is set against the first per query, its order alone identical (a zero difference), fused the difference of the
    two means."""
    from rapidrag import Embedder, Retriever
    from rapidrag.beir import load_corpus

    index = Retriever(Embedder(minilm_dir))
    index.add([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in load_corpus(scifact_dir)[:40]])
    folder = index.save(tmp_path / "ix")
    args = ["--shared", str(scifact_dir.parents[2]), "--index", str(folder), "--max-queries", "4"]
    report = _report(tmp_path, "reranker_compare.py", [*args, "--reranker", f"a={reranker_dir}:0.4",
                                                        "--reranker", f"b={reranker_dir}:1.0"])  # fmt: skip
    a, b = report["rerankers"]["a"], report["rerankers"]["b"]
    assert report["queries"] == 4 and "minus_a" not in a
    assert set(b["minus_a"]) == {"top20 alone", "top20 fused", "top30 alone", "top30 fused"}
    assert b["minus_a"]["top20 alone"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    for n in (20, 30):
        gap = b["minus_a"][f"top{n} fused"]
        assert gap["mean"] == pytest.approx(b[f"top{n}"]["fused"] - a[f"top{n}"]["fused"])
        assert gap["low"] <= gap["mean"] <= gap["high"]
