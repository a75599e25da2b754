"""Package-level behaviour: a light import, the command line, and the BEIR readers."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rapidrag.beir import load_corpus, load_qrels, load_queries
from rapidrag.cli import main
from rapidrag.errors import DataFormatError, RapidragError
from rapidrag.ingest import Ingest


def test_import_is_light() -> None:
    code = (
        "import sys, rapidrag; "
        "heavy = ('faiss', 'onnxruntime', 'onnx', 'numba', 'rapidrag._core', 'numpy'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_search_process_compiles_nothing(tmp_path: Path) -> None:
    # The kernels of search (BM25's scoring and selection, fusion, exact dense scores, the shards' merge) are in
    # the native core: a fresh process loads an index and searches in every path without a JIT (numba's import
    # and its cached kernels had cost about 0.9 s of every start).
    code = f"""
import sys
import numpy as np
from rapidrag import Retriever, _core
from rapidrag.dense import DenseIndex
from rapidrag.fusion import reciprocal_rank_fusion, weighted_fusion
r = Retriever(None, chunker=None)
r.add([{{"id": f"d{{i}}", "text": f"word{{i % 7}} common text {{i}}", "metadata": {{"n": i}}}} for i in range(50)])
r.save({str(tmp_path / "idx")!r})
r = Retriever.load({str(tmp_path / "idx")!r})
hits = r.search("word3 common", k=5, mode="lexical")
assert [h.doc_id for h in hits][:1] == ["d3"], hits
assert len(r.search("word3", k=5, mode="lexical", filter={{"n": {{"$gte": 10}}}})) == 5
rng = np.random.default_rng(0)
vectors = rng.standard_normal((200, 8)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
d = DenseIndex(8, exact_rows=1000)
d.add(np.arange(200), vectors)
ids, _ = d.search(vectors[:1], k=3, mask=np.arange(200) < 100)  # the exact fallback
assert ids[0][0] == 0, ids
assert reciprocal_rank_fusion([[1, 2], [2, 3]])[0].tolist()[0] == 2
assert weighted_fusion([([1, 2, 3], [1.0, 0.9, 0.0]), ([2], [3.0])])[0].tolist()[0] == 2
out = np.empty(2, np.int64), np.empty(2, np.int64), np.empty(2, np.float32)
rows = np.int64([0, 1])
_core.merge_shard_lists(np.float32([2, 1]), rows, rows, np.int64([0, 2]), np.int64([1]), 2, *out)
assert out[0].tolist() == [1, 3]
print(",".join(m for m in ("numba", "llvmlite") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_the_training_package_imports_no_framework() -> None:
    code = (
        "import sys, rapidrag.train, rapidrag.train.data, rapidrag.train.mining; "
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_attributes() -> None:
    import rapidrag

    assert rapidrag.Tokenizer.__name__ == "Tokenizer"
    assert rapidrag.Chunk.__name__ == "Chunk"
    assert rapidrag.Reranker.__name__ == "Reranker" and rapidrag.RerankResult.__name__ == "RerankResult"
    assert callable(rapidrag.quantize)  # the function, not the module it lives in
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        rapidrag.Nope  # noqa: B018


def test_errors_are_builtin_subclasses() -> None:
    assert issubclass(DataFormatError, ValueError)
    assert issubclass(DataFormatError, RapidragError)


def test_cli_chunk_folder(tmp_path: Path, minilm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("First paragraph. It has two sentences.\n\nSecond paragraph here.", encoding="utf-8")
    (docs / "b.md").write_text("---\ntags: [x]\n---\n# Title\n\nSome *markdown* text.", encoding="utf-8")
    (docs / "c.txt").write_bytes(b"\xff\xfe not utf-8")
    (docs / "d.html").write_text("<html><title>T</title><p>An <b>HTML</b> page.</p></html>", encoding="utf-8")
    out = tmp_path / "chunks.jsonl"
    code = main(["chunk", str(docs), "--tokenizer", str(minilm_dir), "--max-tokens", "8", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "documents   3" in captured.out and "1 skipped" in captured.out
    assert "c.txt: not UTF-8 text" in captured.err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # the spans are of each document's text as rapidrag index reads it, so they are the index's citations
    texts = {d.id: d.text for d in Ingest(docs)}
    assert set(texts) == {"a.txt", "b.md", "d.html"} and "tags" not in texts["b.md"] and "<b>" not in texts["d.html"]
    assert {r["doc_id"] for r in rows} == set(texts)
    assert rows and all(r["n_tokens"] <= 8 for r in rows)
    for r in rows:
        assert texts[r["doc_id"]][r["start"] : r["end"]] == r["text"]


def test_cli_beir_corpus(tmp_path: Path, minilm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "d1", "title": "Vitamin D", "text": "Bone loss in older adults."}) + "\n")
    assert main(["chunk", str(corpus), "--tokenizer", str(minilm_dir / "vocab.txt")]) == 0
    assert "documents   1" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"  # a malformed line is skipped and named, as rapidrag index does
    bad.write_text(json.dumps({"_id": "1", "text": "ok"}) + "\n{not json\n", encoding="utf-8")
    assert main(["chunk", str(bad), "--tokenizer", str(minilm_dir / "vocab.txt")]) == 0
    captured = capsys.readouterr()
    assert "documents   1" in captured.out and "1 skipped" in captured.out
    assert "bad.jsonl:2: not valid JSON" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chunk", "/no/such/corpus.jsonl"], "no such file or folder"),
        (["chunk", "{src}", "--tokenizer", "/no/such/vocab.txt"], "tokenizer not found"),
        (["chunk", "{empty}", "--tokenizer", "{vocab}"], "no .txt, .md"),
        (["chunk", "{blank}", "--tokenizer", "{vocab}"], "no documents in"),
        (["chunk", "{src}", "--tokenizer", "{vocab}", "--overlap", "300"], "overlap must satisfy"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, minilm_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    src = tmp_path / "corpus.jsonl"
    src.write_text(json.dumps({"_id": "1", "text": "hello"}) + "\n", encoding="utf-8")
    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps({"_id": "1", "text": " "}) + "\n", encoding="utf-8")
    fmt = {
        "src": str(src),
        "empty": str(tmp_path / "empty"),
        "blank": str(blank),
        "vocab": str(minilm_dir / "vocab.txt"),
    }
    code = main([a.format(**fmt) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 + err.count("warning: ") and "Traceback" not in err  # one line, after any warnings


def test_cli_without_tokenizer_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAPIDRAG_MODELS", raising=False)
    src = tmp_path / "corpus.jsonl"
    src.write_text(json.dumps({"_id": "1", "text": "hello"}) + "\n", encoding="utf-8")
    assert main(["chunk", str(src)]) == 2
    err = capsys.readouterr().err
    assert "--tokenizer" in err and "RAPIDRAG_MODELS" in err


def test_beir_readers(scifact_dir: Path) -> None:
    corpus = load_corpus(scifact_dir)
    queries = load_queries(scifact_dir)
    qrels = load_qrels(scifact_dir / "qrels" / "test.tsv")
    assert len(corpus) == 5183 and len(queries) == 1109
    assert len(qrels) == 300 and sum(len(v) for v in qrels.values()) == 339
    ids = {d["_id"] for d in corpus}
    assert all(doc in ids for rel in qrels.values() for doc in rel)


def test_one_jsonl_reader_raises_or_reports(tmp_path: Path) -> None:
    """``beir.read_jsonl`` reads every JSON-lines file (corpora, queries, index sources): it raises on the first
    malformed line naming it, or, given ``on_error``, reports each and reads on; gzip by suffix."""
    import gzip

    from rapidrag.beir import iter_jsonl, read_jsonl

    body = '{"_id": "a", "text": "one"}\n\n[1, 2]\n{not json\n{"_id": "b", "text": "two"}\n'
    plain = tmp_path / "c.jsonl"
    plain.write_text(body, encoding="utf-8")
    packed = tmp_path / "c.JSONL.GZ"
    packed.write_bytes(gzip.compress(body.encode()))
    for path in (plain, packed):
        with pytest.raises(DataFormatError, match=r":3: expected a JSON object, got list"):
            list(iter_jsonl(path))
        problems: list[str] = []
        got = list(read_jsonl(path, label="src", on_error=problems.append))
        assert [(n, o["_id"]) for n, o in got] == [(1, "a"), (5, "b")]
        assert problems == [
            "src:3: expected a JSON object, got list",
            "src:4: not valid JSON (Expecting property name enclosed in double quotes)",
        ]
    broken = tmp_path / "d.jsonl.gz"
    broken.write_bytes(gzip.compress(body.encode())[:-12])  # a truncated archive: the rest of the file is lost
    problems = []
    assert [o["_id"] for _, o in read_jsonl(broken, on_error=problems.append)][:1] == ["a"]
    assert len(problems) == 3 and "unreadable after line" in problems[-1]


def test_qrels_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "q.tsv"
    p.write_text("query-id\tcorpus-id\tscore\r\n1\t2\t1\r\n1\t3\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"q.tsv:3: expected 3"):
        load_qrels(p)
    p.write_text("1\t2\tx\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"q.tsv:1: score 'x'"):
        load_qrels(p)
