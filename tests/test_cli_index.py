"""rapidrag index / query / eval on a small folder of mixed files, and their errors."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from rapidrag.cli import main
from rapidrag.store import FORMAT_VERSION


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("cli") / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "scurvy.txt").write_text("Scurvy is caused by a lack of vitamin C in the diet.\n\nSailors ate limes.")
    (src / "sub" / "bones.md").write_text(
        '---\ntitle: Bone health\ncategory: nutrition\nyear: 2021\ntags: ["bone", "vitamin"]\n---\n'
        "Vitamin D deficiency causes bone loss in older adults."
    )
    (src / "heart.html").write_text(
        "<html><head><title>Statins</title><style>p {color: red}</style></head>"
        "<body><h1>Heart</h1><p>Statins lower cholesterol &amp; the risk of heart attack.</p>"
        "<script>var x = 'vitamin';</script></body></html>"
    )
    lines = [
        json.dumps({"id": "j1", "text": "Iron deficiency causes anemia.", "category": "blood", "year": 2019}),
        "{not json",
        json.dumps({"_id": "j2", "title": "Paris", "text": "The Eiffel tower stands in Paris."}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "j3"}),
    ]
    (src / "more.jsonl").write_text("\n".join(lines) + "\n")
    (src / "image.txt").write_bytes(b"\x89PNG\x00\x00binary")
    (src / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (src / "ignored.pdf").write_bytes(b"%PDF")
    return src


@pytest.fixture(scope="module")
def built(folder: Path, minilm_dir: Path, reranker_dir: Path) -> tuple[Path, int, str, str]:
    """A hybrid index of ``folder`` made by ``rapidrag index``: (path, exit code, stdout, stderr)."""
    import contextlib
    import io

    out = folder.parent / "built"
    args = ["index", str(folder), "--out", str(out), "--embedder", str(minilm_dir), "--reranker", str(reranker_dir)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([*args, "--int8"])
    return out, code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture()
def hybrid_index(built: tuple[Path, int, str, str], tmp_path: Path) -> Path:
    """A copy of the built index, for a test to change."""
    import shutil

    assert built[1] == 0, built[3]
    return Path(shutil.copytree(built[0], tmp_path / "ix"))


def test_index_query_eval(
    built: tuple[Path, int, str, str],
    hybrid_index: Path,
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, code, stdout, stderr = built
    assert code == 0 and "documents   5 from 7 files (6 skipped" in stdout
    assert "ignored.pdf: not a type rapidrag reads (.pdf)" in stderr  # every skipped file is counted and named
    for problem in ("more.jsonl:2: not valid JSON", "more.jsonl:4: expected a JSON object", "more.jsonl:5:"):
        assert problem in stderr
    assert "image.txt: binary file" in stderr and "latin1.txt: not UTF-8" in stderr
    out = hybrid_index
    assert main(["index", str(folder), "--out", str(out), "--lexical"]) == 2  # never overwrites silently
    assert "--force" in capsys.readouterr().err

    assert main(["query", str(out), "scurvy and vitamin C in the diet of sailors", "-k", "2"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[1] == "scurvy.txt" and "ms: embed" in table and "rerank" in table

    assert main(["query", str(out), "bone vitamin", "--json", "--filter", '{"category": "nutrition"}']) == 0
    body = json.loads(capsys.readouterr().out)
    (hit,) = body["hits"]
    assert hit["doc_id"] == "sub/bones.md" and hit["metadata"]["year"] == 2021
    assert hit["text"].startswith("Bone health") and hit["metadata"]["source"] == "sub/bones.md"
    assert {"bm25", "dense", "fused", "rerank"} <= set(hit["scores"]) and "total_ms" in body["timings_ms"]

    assert main(["query", str(out), "statins cholesterol", "--json", "--mode", "lexical", "--no-rerank"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["doc_id"] == "heart.html" and "var x" not in hits[0]["text"] and "color" not in hits[0]["text"]
    assert set(hits[0]["scores"]) == {"bm25"}

    queries = tmp_path / "queries.jsonl.gz"
    with gzip.open(queries, "wt") as f:
        f.write(json.dumps({"_id": "q1", "text": "scurvy from a lack of vitamin C"}) + "\n")
        f.write(json.dumps({"_id": "q2", "text": "anemia from iron deficiency"}) + "\n")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tscurvy.txt\t1\nq2\tj1\t1\n")
    assert main(["eval", str(out), "--queries", str(queries), "--qrels", str(qrels)]) == 0
    report = capsys.readouterr().out
    assert "2 judged queries" in report
    for row in ("lexical", "dense", "hybrid", "hybrid + rerank"):
        line = next(x for x in report.splitlines() if x.startswith(row + "  "))
        assert float(line.split()[-4]) >= 0.6, line  # nDCG@10: each found in the top two at least


def test_models_from_relative_paths(
    folder: Path, tmp_path: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RAPIDRAG_MODELS and --int8 with a relative path, as in the README's first command."""
    import os

    from rapidrag.retriever import Retriever

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAPIDRAG_MODELS", os.path.relpath(minilm_dir.parent, tmp_path))
    out = tmp_path / "ix"
    assert main(["index", str(folder), "--out", "ix", "--int8"]) == 0, capsys.readouterr().err
    loaded = Retriever.load(out)
    assert loaded.embedder.model_path.name == "model_int8.onnx" and loaded.reranker is not None
    assert loaded.reranker.model_path.name == "model_int8.onnx"
    capsys.readouterr()
    monkeypatch.chdir(folder)  # the index records absolute model paths: it loads from anywhere
    assert main(["query", str(out), "the eiffel tower in paris", "-k", "1", "--json", "--no-rerank"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["doc_id"] == "j2"


def test_lexical_index_without_models(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAPIDRAG_MODELS", raising=False)
    assert main(["index", str(folder), "--out", str(tmp_path / "ix")]) == 0
    printed = capsys.readouterr()
    assert "note: no embedder" in printed.err and "lexical only" in printed.out
    assert main(["query", str(tmp_path / "ix"), "eiffel tower", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["doc_id"] == "j2"
    assert main(["query", str(tmp_path / "ix"), "eiffel tower", "--format", "json"]) == 0  # as context takes it
    assert json.loads(capsys.readouterr().out)["hits"][0]["doc_id"] == "j2"
    assert main(["query", str(tmp_path / "ix"), "eiffel tower", "--format", "text"]) == 0
    assert "j2" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "{tmp}/nothing", "--out", "{tmp}/ix2", "--lexical"], "no such file or folder"),
        (["index", "{tmp}/empty", "--out", "{tmp}/ix2", "--lexical"], "no .txt"),
        (["query", "{tmp}/nothing", "x"], "no index at"),
        (["query", "{tmp}/ix", "x", "--filter", "{bad"], "--filter is not valid JSON"),
        (["query", "{tmp}/ix", "x", "--filter", '{"year": {"$bogus": 1}}'], "$bogus"),
        (["query", "{tmp}/ix", "x", "--mode", "dense"], "needs an embedder"),
        (["eval", "{tmp}/ix", "--queries", "{tmp}/nothing.jsonl", "--qrels", "{tmp}/q.tsv"], "does not exist"),
        (["index", "{tmp}/x", "--out", "{tmp}/ix2", "--lexical", "--index-option", "ef_search=64"], "--lexical"),
        (
            ["index", "{tmp}/x", "--out", "{tmp}/ix2", "--index-option", "beam=64"],
            "NAME one of compact_fraction, ef_construction",
        ),
        (["index", "{tmp}/x", "--out", "{tmp}/ix2", "--index-option", "ef_search=wide"], "a whole number"),
    ],
)
def test_errors_are_one_line(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--lexical"]) == 0
    capsys.readouterr()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_tune_saves_settings_and_eval_warns(
    hybrid_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rapidrag.retriever import Retriever

    out = hybrid_index
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps({"_id": q, "text": t})
            for q, t in [("q1", "vitamin C and scurvy"), ("q2", "iron and anemia"), ("q3", "tower in Paris")]
        )
    )
    qrels = tmp_path / "train.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tscurvy.txt\t1\nq2\tj1\t1\nq3\tj2\t1\n")
    capsys.readouterr()
    assert main(["tune", str(out), "--queries", str(queries), "--qrels", str(qrels)]) == 0
    printed = capsys.readouterr().out
    assert "tuned on 3 judged queries" in printed
    for name in ("bm25", "fusion", "rerank"):
        assert any(line.startswith(name) for line in printed.splitlines()), name
    loaded = Retriever.load(out)
    assert loaded.tuned_on is not None and loaded.tuned_on["queries"] == 3
    settings = loaded.tuned_on["settings"]
    assert loaded.rerank_weight == settings["rerank_weight"] and loaded.fusion == settings["fusion"]
    assert loaded.bm25.k1 == settings["k1"] and loaded.rerank_depth == settings["rerank_depth"]
    assert main(["eval", str(out), "--queries", str(queries), "--qrels", str(qrels), "--mode", "lexical"]) == 0
    assert "tuned on these judgements" in capsys.readouterr().err
    other = tmp_path / "test.tsv"
    other.write_text("query-id\tcorpus-id\tscore\nq1\tscurvy.txt\t1\n")
    assert main(["eval", str(out), "--queries", str(queries), "--qrels", str(other), "--mode", "lexical"]) == 0
    assert "tuned on" not in capsys.readouterr().err
    # Judgements that cannot count as written are named: a query not in the queries file, a document not indexed.
    odd = tmp_path / "odd.tsv"
    odd.write_text("query-id\tcorpus-id\tscore\nq1\tscurvy.txt\t1\nq1\tgone\t1\nq1\tj1\t0\nq9\tj1\t1\n")
    assert main(["eval", str(out), "--queries", str(queries), "--qrels", str(odd), "--mode", "lexical"]) == 0
    err = capsys.readouterr().err
    assert f"1 of the 2 judged queries of {odd} are not in {queries} and are left out ('q9')" in err
    assert "1 of the 2 relevant documents judged are not in this index ('gone')" in err
    assert main(["eval", str(out), "--queries", str(queries), "--qrels", str(other), "--mode", "lexical"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_bench_report_and_plot(
    hybrid_index: Path, tmp_path: Path, reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = hybrid_index
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": f"q{i}", "text": f"vitamin {i} and iron"}) for i in range(8)))
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tj1\t1\n" for i in range(8)))
    report, png, curve = tmp_path / "bench.json", tmp_path / "bench.png", tmp_path / "budget.png"
    argv = ["bench", str(out), "--queries", str(queries), "--qrels", str(qrels), "--out", str(report)]
    argv += ["--concurrency", "1", "--concurrency", "3"]
    compare = ["--compare-reranker", f"fp32={reranker_dir}"]
    assert main([*argv, "--plot", str(png), "--budget-ms", "50", "--budget-plot", str(curve), *compare]) == 0
    table = capsys.readouterr().out
    assert "hybrid + rerank, 50 ms budget" in table and "nDCG@10" in table and "cold start" in table
    assert "throughput, queries/s" in table
    body = json.loads(report.read_text())
    assert body["cold_start"]["first_answer_ms"] >= body["cold_start"]["load_ms"] > 0
    assert body["dense_index"] == {"kind": "flat", "n_threads": 1} and "dense index flat: n_threads=1\n" in table
    # The first search of the fresh process ran under the first budget, and the report says how it did.
    cold = body["cold_start"]
    assert cold["first_budget_ms"] == 50 and "rerank_ms" in cold["first_search_stages_ms"]
    assert f"first search {cold['first_search_ms']:.1f} ms (" in table and "its 50 ms budget)" in table
    assert body["queries"] == 8 and set(body["configs"]) == {
        "lexical",
        "dense",
        "hybrid",
        "hybrid + rerank",
        "hybrid + rerank, 50 ms budget",
    }
    hybrid = body["configs"]["hybrid + rerank"]
    assert len(hybrid["total_ms_all"]) == 8 and hybrid["judged"] == 8 and 0 <= hybrid["ndcg@10"] <= 1
    stats = hybrid["stages_ms"]["total"]
    assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert {"embed", "lexical", "dense", "fusion", "rerank"} <= set(hybrid["stages_ms"])
    for image in (png, curve):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Another reranker over the same budgets, for the one plot of them all.
    other = body["other_rerankers"]["fp32"]
    assert list(other["configs"]) == ["fp32, 50 ms budget"] and other["configs"]["fp32, 50 ms budget"]["judged"] == 8
    assert "reranker fp32 (weight" in table
    # Throughput: every query once at each concurrency, for all but the unbudgeted rerank.
    assert "throughput" not in hybrid
    for name in ("lexical", "hybrid", "hybrid + rerank, 50 ms budget"):
        runs = body["configs"][name]["throughput"]
        assert [r["concurrency"] for r in runs] == [1, 3]
        assert all(r["queries"] == 8 and r["queries_per_s"] > 0 and r["latency_ms"]["p50"] > 0 for r in runs)
    assert main([*argv[:-4], "--concurrency", "0"]) == 2
    assert "--concurrency must be at least 1" in capsys.readouterr().err


def test_front_matter_lists_filter_and_print_as_json(
    built: tuple[Path, int, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML front matter gives real lists and dates; a list matches when any element does; --json prints the
    metadata as JSON values (the server's encoding), not Python reprs."""
    out = built[0]
    assert main(["query", str(out), "vitamin", "--json", "--no-rerank", "--filter", '{"tags": "bone"}']) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["doc_id"] for h in hits] == ["sub/bones.md"]
    assert hits[0]["metadata"]["tags"] == ["bone", "vitamin"] and hits[0]["metadata"]["year"] == 2021
    flt = '{"tags": {"$in": ["iron", "vitamin"]}}'
    assert main(["query", str(out), "vitamin", "--json", "--no-rerank", "--filter", flt]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["sub/bones.md"]
    flt = '{"tags": {"$nin": ["bone"]}}'
    assert main(["query", str(out), "vitamin", "--json", "--no-rerank", "--filter", flt]) == 0
    assert "sub/bones.md" not in [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]]
    # A filter that finds too little says why it may: a misspelt field, a year given as a str.
    assert main(["query", str(out), "vitamin", "--no-rerank", "--filter", '{"tag": "bone", "year": "2021"}']) == 0
    captured = capsys.readouterr()
    assert "no hits" in captured.out
    assert "note: the filter: no document has the field 'tag' (fields: " in captured.err
    assert "note: the filter: the field 'year' holds numbers, so '2021' matches nothing" in captured.err
    assert main(["query", str(out), "vitamin", "--json", "--no-rerank", "--filter", '{"tag": "bone"}']) == 0
    assert json.loads(capsys.readouterr().out)["filter_notes"][0].startswith("no document has the field 'tag'")


def test_yaml_front_matter_types_and_bad_front_matter(tmp_path: Path) -> None:
    from datetime import date

    from rapidrag.ingest import Ingest

    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.md").write_text("---\ntags: [nutrition, history]\ndate: 2024-01-31\nauthor: {name: Curie}\n---\nText.")
    (src / "b.md").write_text("---\ntags: [unclosed\n---\nStill indexed.")
    (src / "c.md").write_text("---\nrows: [[1, 2], [3]]\nkept: yes\n---\nNested lists cannot be filtered.")
    ingest = Ingest(src)
    docs = {d.id: d for d in ingest}
    assert docs["a.md"].metadata["tags"] == ["nutrition", "history"]
    assert docs["a.md"].metadata["date"] == date(2024, 1, 31) and docs["a.md"].metadata["author"] == {"name": "Curie"}
    assert docs["b.md"].text == "Still indexed." and "tags" not in docs["b.md"].metadata
    assert "rows" not in docs["c.md"].metadata and docs["c.md"].metadata["kept"] is True
    problems = " | ".join(ingest.problems)
    assert "b.md: front matter ignored: not valid YAML" in problems
    assert "c.md: metadata 'rows'[0] is a list" in problems and "that field dropped" in problems


def test_documents_with_no_text_are_skipped_and_counted_apart_from_parts_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty file, a blank one, a front matter with nothing under it and a jsonl line with no text are skipped
    and named (an empty document would come up in dense searches as a hit with no text); a document ingested with
    a part dropped (a front matter that is not YAML) is not counted as skipped; a title alone is text."""
    from rapidrag.ingest import Ingest

    src = tmp_path / "notes"
    src.mkdir()
    (src / "empty.txt").write_text("")
    (src / "blank.md").write_text("  \n\t\n")
    (src / "only-tags.md").write_text("---\ntags: [a]\n---\n\n")
    (src / "titled.md").write_text("---\ntitle: A title alone\n---\n")
    (src / "bad-yaml.md").write_text("---\ntags: [unclosed\n---\nStill indexed.")
    (src / "text.txt").write_text("Words to find.")
    lines = [{"id": "j1", "text": "Some words."}, {"id": "j2", "text": " "}, {"_id": "j3", "title": "", "text": ""}]
    (src / "docs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    ingest = Ingest(src)
    assert sorted(d.id for d in ingest) == ["bad-yaml.md", "j1", "text.txt", "titled.md"]
    assert ingest.skipped == 5 and len(ingest.problems) == 6
    problems = " | ".join(ingest.problems)
    for name in ("empty.txt: no text", "blank.md: no text", "only-tags.md: no text", "docs.jsonl:2: no text"):
        assert name in problems
    assert "docs.jsonl:3: no text (document 'j3')" in problems
    assert main(["index", str(src), "--out", str(tmp_path / "ix"), "--lexical"]) == 0
    out, err = capsys.readouterr()
    assert "documents   4 from 7 files (5 skipped, 1 with a part dropped, read in" in out
    assert "warning: empty.txt: no text" in err and "warning: bad-yaml.md: front matter ignored" in err


def test_blank_queries_and_bad_k_are_refused(
    built: tuple[Path, int, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(built[0])
    for query in ("", "   "):
        assert main(["query", out, query]) == 2
        err = capsys.readouterr().err
        assert "the query is" in err and "give the words to search for" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["query", out, "vitamin", "-k", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument -k: must be at least 1, got 0" in err and "candidates" not in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    import rapidrag

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"rapidrag {rapidrag.__version__}"
    for command in ("query", "serve", "eval", "bench"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "DIR an index folder made by rapidrag index" in text and "--embedder PATH" in text
        if command == "query":
            assert "query the question or words to search for" in text
        if command == "serve":
            assert "(default 8000)" in text


def test_index_refuses_a_wrong_destination_before_the_work(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rapidrag.retriever import Retriever

    def no_work(*args: object, **kwargs: object) -> int:
        raise AssertionError("indexed before checking the destination")

    monkeypatch.setattr(Retriever, "add", no_work)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    assert main(["index", str(folder), "--out", str(notes), "--lexical"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "holds other files" in err and (notes / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    assert main(["index", str(folder), "--out", str(tmp_path / "file"), "--lexical"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_runs_only_the_modes_asked(hybrid_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": "scurvy from a lack of vitamin C"}) + "\n")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tscurvy.txt\t1\n")
    base = ["eval", str(hybrid_index), "--queries", str(queries), "--qrels", str(qrels)]
    capsys.readouterr()
    assert main([*base, "--mode", "hybrid"]) == 0
    rows = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["hybrid", "(no reranked row: --rerank adds one for each mode asked)"]
    assert main([*base, "--mode", "hybrid", "--mode", "lexical", "--rerank"]) == 0
    rows = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["hybrid", "lexical", "hybrid + rerank", "lexical + rerank"]


def test_moved_models_from_the_cli(
    hybrid_index: Path,
    minilm_dir: Path,
    reranker_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An index whose models are not where it recorded them: lexical queries run without them, with a note
    that names the flags; --embedder / --reranker (or RAPIDRAG_MODELS) bring the other modes back."""
    import shutil

    from rapidrag.persist import read_snapshot, write_snapshot

    snap = read_snapshot(hybrid_index, version=FORMAT_VERSION)
    config = snap.config
    for role in ("embedder", "reranker"):  # as if the models folder had moved since the index was built
        spec = config[role]
        spec["folder"] = str(tmp_path / "gone" / Path(spec["folder"]).name)
        spec["model_file"] = str(tmp_path / "gone" / Path(spec["folder"]).name / Path(spec["model_file"]).name)
    files = {name: snap.read(name) for name in snap.files}
    write_snapshot(hybrid_index, files, config, version=FORMAT_VERSION)
    monkeypatch.delenv("RAPIDRAG_MODELS", raising=False)
    capsys.readouterr()
    assert main(["query", str(hybrid_index), "eiffel tower", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["mode"] == "lexical" and json.loads(printed.out)["hits"][0]["doc_id"] == "j2"
    assert "note: the embedder that built this index" in printed.err and "--embedder PATH" in printed.err
    assert main(["query", str(hybrid_index), "eiffel tower", "--mode", "hybrid"]) == 2
    assert "--embedder PATH" in capsys.readouterr().err
    argv = ["query", str(hybrid_index), "eiffel tower", "--json", "--embedder", str(minilm_dir)]
    assert main([*argv, "--reranker", str(reranker_dir)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["mode"] == "hybrid" and "rerank" in body["hits"][0]["scores"]
    models = tmp_path / "models"
    models.mkdir()
    for src in (minilm_dir, reranker_dir):
        shutil.copytree(src, models / src.name)
    monkeypatch.setenv("RAPIDRAG_MODELS", str(models))
    assert main(["query", str(hybrid_index), "eiffel tower", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["mode"] == "hybrid" and "note:" not in printed.err


def test_context_and_ground_from_the_command_line(
    hybrid_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = hybrid_index
    question = "which vitamin prevents scurvy"
    argv = ["context", str(out), question, "--budget", "60", "--price-in", "3", "--price-out", "15"]
    assert main([*argv, "--output-tokens", "100"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("[1] ") and "of 60 tokens; sources:" in text and "cost: " in text
    assert main([*argv, "--output-tokens", "100", "--format", "json", "--strategy", "chunks"]) == 0
    body = json.loads(capsys.readouterr().out)
    context = body["context"]
    assert 0 < context["tokens"] <= 60 and context["settings"]["strategy"] == "chunks"
    assert context["items"][0]["doc_id"] == "scurvy.txt"
    assert body["cost"]["per_query"] == pytest.approx((context["tokens"] * 3 + 100 * 15) / 1e6)
    assert main([*argv, "--filter", '{"year": "1753"}']) == 0  # years are numbers here
    assert "note: the filter: the field 'year' holds numbers, so '1753' matches nothing" in capsys.readouterr().err
    saved = tmp_path / "context.json"
    saved.write_text(json.dumps(body))
    answer = tmp_path / "answer.txt"
    answer.write_text("Scurvy is caused by a lack of vitamin C in the diet. Sailors in 1753 ate bananas in Peru.")
    assert main(["ground", str(out), "--answer", str(answer), "--context", str(saved)]) == 0
    marked = capsys.readouterr().out
    first, second = marked.splitlines()[:2]
    assert first.startswith("Scurvy is caused") and "[supported: 1" in first
    assert "unverified" in second and "1753" in second and "Peru" in second
    assert main(["ground", str(out), "--answer", str(answer), "--question", question, "--format", "json"]) == 0
    grounding = json.loads(capsys.readouterr().out)["grounding"]
    assert [s["status"] for s in grounding["sentences"]][0] == "supported"
    # bad input: one line on stderr, exit status 2
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    for args, message in [
        (["ground", str(out), "--answer", str(empty), "--question", question], "is empty"),
        (["ground", str(out), "--answer", str(tmp_path / "none.txt"), "--question", question], "cannot read"),
        (["ground", str(out), "--answer", str(answer)], "--question"),
        (["ground", str(out), "--answer", str(answer), "--context", str(answer)], "cannot read it as JSON"),
    ]:
        assert main(args) == 2, args
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["context", str(out), question, "--price-in", "-1"])
    assert "a price must be" in capsys.readouterr().err


def test_bench_reports_context_tokens_and_cost(
    hybrid_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": f"q{i}", "text": f"vitamin {i} and iron"}) for i in range(6)))
    report = tmp_path / "bench.json"
    argv = ["bench", str(hybrid_index), "--queries", str(queries), "--out", str(report), "--concurrency", "1"]
    assert main([*argv, "--context-budget", "50", "--price-in", "2", "--output-tokens", "10"]) == 0
    assert "context of at most 50 tokens per query" in capsys.readouterr().out
    body = json.loads(report.read_text())
    for entry in body["configs"].values():
        context = entry["context"]
        assert 0 < context["tokens"]["max"] <= 50 and context["budget_tokens"] == 50
        assert context["cost_per_query"] == pytest.approx(context["mean_tokens"] * 2 / 1e6)
        assert len(entry["total_ms_all"]) == 6 and "pack" in entry["stages_ms"]


def test_serve_takes_every_request_limit_by_name() -> None:
    """``rapidrag serve`` sets any field of ``rapidrag.server.Limits`` with ``--limit NAME=VALUE`` beside its four
    named flags; an unknown name, a name given twice or a value of the wrong kind is refused by name."""
    from rapidrag import server
    from rapidrag.cli import CliError, _limits, build_parser

    def limits(*flags: str) -> server.Limits:
        return _limits(build_parser().parse_args(["serve", "idx", *flags]), server.Limits)  # type: ignore[no-any-return]

    assert limits() == server.Limits()
    chosen = limits("--max-k", "20", "--limit", "max_context_tokens=8192", "--limit", "max-budget-ms=250.5")
    assert (chosen.max_k, chosen.max_context_tokens, chosen.max_budget_ms) == (20, 8192, 250.5)
    assert chosen.max_candidates == server.Limits().max_candidates
    for flags, message in (
        (["--limit", "max_toys=3"], "NAME one of max_batch, max_body_bytes"),
        (["--limit", "max_k"], "give NAME=VALUE"),
        (["--max-k", "5", "--limit", "max_k=6"], "max_k is given twice"),
        (["--limit", "max_candidates=many"], "max_candidates must be a whole number"),
        (["--limit", "max_budget_ms=x"], "max_budget_ms must be a number"),
        (["--limit", "max_candidates=0"], "Limits.max_candidates must be a positive int"),
        (["--limit", "max_budget_ms=-1"], "Limits.max_budget_ms must be a positive number"),
    ):
        with pytest.raises(CliError, match=message):
            limits(*flags)


def test_index_options_from_the_command_line(
    folder: Path, minilm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rapidrag index --index-option NAME=VALUE`` sets the FAISS index's settings, which the saved index keeps; a
    value the index refuses is one line naming it."""
    from rapidrag.retriever import Retriever

    out = tmp_path / "ix"
    base = ["index", str(folder), "--out", str(out), "--embedder", str(minilm_dir), "--index", "hnsw"]
    assert main([*base, "--index-option", "ef_search=300", "--index-option", "hnsw-m=16"]) == 0
    loaded = Retriever.load(out, reranker=None)
    assert loaded.dense is not None and (loaded.dense.ef_search, loaded.dense.hnsw_m) == (300, 16)
    capsys.readouterr()
    assert main([*base, "--force", "--index-option", "ef_search=0"]) == 2
    assert "ef_search must be an int >= 1, got 0" in capsys.readouterr().err


def test_search_settings_of_a_loaded_index_from_the_command_line(
    folder: Path, minilm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--index-option`` on the commands that open an index sets its search settings for that run (the saved
    index is unchanged); settings that fix how the index is built, or an index without vectors, are refused."""
    from rapidrag.cli import _load, build_parser
    from rapidrag.retriever import Retriever

    out = tmp_path / "ix"
    assert main(["index", str(folder), "--out", str(out), "--embedder", str(minilm_dir), "--index", "hnsw"]) == 0
    opened = _load(build_parser().parse_args(["query", str(out), "q", "--index-option", "ef_search=40"]))
    assert opened.index_options["ef_search"] == 40 and opened.dense.ef_search == 40
    assert Retriever.load(out, reranker=None).index_options["ef_search"] == 128  # the saved setting
    capsys.readouterr()
    assert main(["query", str(out), "vitamin and iron", "--index-option", "ef_search=40", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and hits == json.loads(_query_json(out, "vitamin and iron", capsys))["hits"]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": f"q{i}", "text": f"vitamin {i} and iron"}) for i in range(3)))
    bench = ["bench", str(out), "--queries", str(queries), "--concurrency", "1", "--out", str(tmp_path / "b.json")]
    assert main([*bench, "--index-option", "ef_search=40", "--index-option", "n_threads=2"]) == 0
    settings = "hnsw_m=32, ef_construction=200, ef_search=40, exact_fraction=0.1, exact_rows=20000, n_threads=2, "
    settings += "compact_fraction=None"
    assert f"dense index hnsw: {settings}\n" in capsys.readouterr().out
    report = json.loads((tmp_path / "b.json").read_text())["dense_index"]
    assert report == {"kind": "hnsw", "hnsw_m": 32, "ef_construction": 200, "ef_search": 40, "exact_fraction": 0.1,
                      "exact_rows": 20000, "n_threads": 2, "compact_fraction": None}  # fmt: skip
    for flags, message in (
        (["--index-option", "hnsw_m=8"], "--index-option: index option hnsw_m fixes how the index is built"),
        (["--index-option", "nprobe=8"], "index option nprobe is not used by a hnsw index; a built hnsw index takes"),
        (["--index-option", "ef_search=0"], "--index-option: ef_search must be an int >= 1, got 0"),
        (["--index-option", "beam=3"], "--index-option 'beam=3': give NAME=VALUE with NAME one of"),
    ):
        assert main(["query", str(out), "vitamin", *flags]) == 2
        assert message in capsys.readouterr().err
    lexical = tmp_path / "lexical"
    assert main(["index", str(folder), "--out", str(lexical), "--lexical"]) == 0
    capsys.readouterr()
    assert main(["query", str(lexical), "vitamin", "--index-option", "ef_search=64"]) == 2
    assert f"--index-option: index_options set the dense index, and {lexical} is lexical only" in (
        capsys.readouterr().err
    )


def _query_json(index: Path, query: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["query", str(index), query, "--json"]) == 0
    return capsys.readouterr().out


def test_index_update_indexes_what_changed(
    folder: Path, hybrid_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from rapidrag.retriever import Retriever

    src = Path(shutil.copytree(folder, tmp_path / "docs"))
    before = Retriever.load(hybrid_index, reranker=None)
    assert main(["index", str(src), "--out", str(hybrid_index), "--update"]) == 0
    out = capsys.readouterr().out
    # Read again from the files, every document equals its indexed self (front matter dates, HTML titles, jsonl).
    assert f"0 added, 0 changed, 0 with new metadata only, {len(before)} unchanged" in out
    assert "nothing to save" in out
    (src / "scurvy.txt").write_text("Scurvy is caused by a lack of vitamin C. Sailors ate limes and lemons.")
    (src / "sub" / "bones.md").unlink()
    (src / "coffee.txt").write_text("Coffee holds caffeine, which keeps people awake.")
    os.utime(src / "heart.html", (1_700_000_000, 1_700_000_000))  # touched: its modified date alone changes
    assert main(["index", str(src), "--out", str(hybrid_index), "--update"]) == 0
    out = capsys.readouterr().out
    assert (
        "1 added, 1 changed, 1 with new metadata only" in out and "'sub/bones.md', kept (--prune removes them)" in out
    )
    # --dry-run says what --prune would do and changes nothing.
    files = sorted((p.name, p.read_bytes()) for p in hybrid_index.rglob("*") if p.is_file())
    assert main(["index", str(src), "--out", str(hybrid_index), "--update", "--prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would update" in out and "'sub/bones.md', would be removed (--prune)" in out and "nothing changed" in out
    assert sorted((p.name, p.read_bytes()) for p in hybrid_index.rglob("*") if p.is_file()) == files
    assert main(["index", str(src), "--out", str(hybrid_index), "--update", "--prune"]) == 0
    assert "removed (--prune)" in capsys.readouterr().out
    after = Retriever.load(hybrid_index)  # saved with its models still recorded, the reranker too
    assert after.reranker is not None and after.embedder is not None
    assert sorted(after.ids()) == sorted(set(before.ids()) - {"sub/bones.md"} | {"coffee.txt"})
    assert after.get("scurvy.txt").text.endswith("lemons.")  # type: ignore[union-attr]
    assert after.get("heart.html").metadata["modified"].startswith("2023-11-14")  # type: ignore[union-attr]
    assert after.search("what keeps you awake", k=1, mode="dense")[0].doc_id == "coffee.txt"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shards", "2"], "--update keeps the index's own models and settings: leave out --shards"),
        (["--force", "--lexical"], "leave out --force, --lexical"),
        (["--index", "hnsw"], "leave out --index"),
    ],
)
def test_index_update_refuses_settings(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--lexical"]) == 0
    capsys.readouterr()
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--update", *extra]) == 2
    assert message in capsys.readouterr().err


def test_index_update_errors(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(folder), "--out", str(tmp_path / "none"), "--update"]) == 2
    assert "--update: no index at" in capsys.readouterr().err
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--lexical", "--prune"]) == 2
    assert "--prune goes with --update" in capsys.readouterr().err
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--lexical", "--dry-run"]) == 2
    assert "--dry-run goes with --update" in capsys.readouterr().err
    assert main(["index", str(folder), "--out", str(tmp_path / "ix"), "--lexical"]) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("something else entirely")
    capsys.readouterr()
    assert main(["index", str(other), "--out", str(tmp_path / "ix"), "--update", "--prune"]) == 2
    assert "prune would remove all" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "ix"), "eiffel tower", "--json"]) == 0  # the index as it was
    assert json.loads(capsys.readouterr().out)["hits"][0]["doc_id"] == "j2"


def test_index_update_refuses_another_embedder(
    folder: Path, hybrid_index: Path, minilm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index was built with the int8 file: the fp32 one's vectors would not be comparable with its own."""
    from rapidrag.retriever import Retriever

    before = Retriever.load(hybrid_index, reranker=None).ids()
    argv = ["index", str(folder), "--out", str(hybrid_index), "--update", "--embedder", str(minilm_dir / "model.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is not the model file that built this index" in err and "index again with --force" in err
    assert Retriever.load(hybrid_index, reranker=None).ids() == before
    assert main(["query", str(hybrid_index), "eiffel", "--embedder", str(minilm_dir / "model.onnx"), "--json"]) == 0
    assert "note: the embedder given" in capsys.readouterr().err  # searching with it stays a note


def test_index_update_prune_keeps_what_could_not_be_read(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file unreadable this time (not UTF-8 now) or a jsonl line being written is not taken for gone: --prune
    keeps its documents and says so; an emptied file is read in full, and its document goes."""
    import shutil

    from rapidrag.retriever import Retriever

    src = Path(shutil.copytree(folder, tmp_path / "docs"))
    assert main(["index", str(src), "--out", str(tmp_path / "ix"), "--lexical"]) == 0
    (src / "scurvy.txt").write_bytes("caf\xe9 scurvy".encode("latin-1"))
    lines = (src / "more.jsonl").read_text().splitlines()
    (src / "more.jsonl").write_text("\n".join([*lines[:2], '{"_id": "j2", "text": "The Eiffel', *lines[3:]]) + "\n")
    (src / "sub" / "bones.md").write_text("")
    capsys.readouterr()
    assert main(["index", str(src), "--out", str(tmp_path / "ix"), "--update", "--prune"]) == 0
    printed = capsys.readouterr()
    assert "scurvy.txt: not UTF-8 text" in printed.err and "more.jsonl:3" in printed.err
    assert "gone        1 in the index but not in" in printed.out and "'sub/bones.md', removed (--prune)" in printed.out
    assert "unread      2 in the index from files not read in full" in printed.out
    after = Retriever.load(tmp_path / "ix")
    assert after.get("scurvy.txt") is not None and after.get("j2") is not None and after.get("sub/bones.md") is None
