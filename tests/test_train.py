"""rapidrag.train: a tiny cross-encoder trained for a few steps on short SciFact pairs, exported, loaded by
Reranker and checked against torch; resumption, the guard, and bad input. Needs the [train] extra (torch and
transformers); under RAPIDRAG_REQUIRE_DATA=1 (CI) a missing extra fails instead of skipping."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    import torch
    import transformers
except ImportError as e:  # pragma: no cover - depends on the environment
    if os.environ.get("RAPIDRAG_REQUIRE_DATA") == "1":
        raise ImportError(f"the training tests need the [train] extra: {e}") from e
    pytest.skip(f"the [train] extra is not installed ({e.name})", allow_module_level=True)

import rapidrag
from rapidrag.persist import default_file_mode
from rapidrag.train.data import TrainingDataError
from rapidrag.train.reranker import TrainingError, train_reranker

TINY_EMBEDDER: dict[str, Any] = {"max_length": 64, "batch_size": 8, "max_steps": 4, "eval_every": 2, "keep_worse": True}
SMALL = {"max_length": 64, "negatives": 3, "epochs": 1, "groups_per_batch": 4, "eval_every": 3, "candidates": 12}


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A 2-layer BERT with random weights and the MiniLM vocabulary: fast to train, real in every other way."""
    folder = tmp_path_factory.mktemp("tiny") / "init"
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm_dir / name).is_file():
            shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, scifact_dir: Path) -> dict[str, Path]:
    """40 SciFact train queries, their relevant abstracts and 160 others."""
    from rapidrag.beir import iter_jsonl, load_qrels, load_queries

    folder = tmp_path_factory.mktemp("data")
    qrels = load_qrels(scifact_dir / "qrels/train.tsv")
    queries = load_queries(scifact_dir)
    kept = list(qrels)[:40]
    relevant = {d for q in kept for d in qrels[q]}
    docs = list(iter_jsonl(scifact_dir / "corpus.jsonl.gz"))
    chosen = [d for d in docs if d["_id"] in relevant] + [d for d in docs if d["_id"] not in relevant][:160]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in chosen))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in kept))
    lines = [f"{q}\t{d}\t{g}\n" for q in kept for d, g in qrels[q].items()]
    (folder / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines))
    return {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl", "qrels": folder / "train.tsv"}


def run(data: dict[str, Path], init: Path | None, out: Path, **kwargs: Any) -> Any:
    options = {**SMALL, "max_steps": 6, "keep_worse": True, "quantize": False, **kwargs}
    return train_reranker(data["corpus"], data["queries"], data["qrels"], init=init, out=out, **options)


def test_trains_exports_and_loads(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    out = tmp_path / "reranker"
    report = run(tiny_data, tiny_init, out, quantize=True)
    assert report.path == out
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model_fused_int8.onnx", "rapidrag.json", "config.json", "model.safetensors"} <= names
    assert {"tokenizer.json", "vocab.txt"} & names
    # Every file with the mode a new file gets (temporary files and safetensors leave 0600: others could not read).
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {default_file_mode()}
    record = json.loads((out / "rapidrag.json").read_text())
    assert (
        record["settings"]["data"]["qrels"]["sha256"] and record["steps_run"] == 6 and record["settings"]["seed"] == 0
    )
    assert "dev split" in record["qrels_chose"] and "less the dev split" in record["qrels_trained"]
    assert set(record["dev"]) == {"before", "after"} and 0 <= record["recommended_fusion_weight"] <= 1
    assert record["onnx_check_max_abs_diff"] <= 1e-4
    # rapidrag's Reranker on the exported folder gives the torch model's scores, and its recommended weight.
    reranker = rapidrag.Reranker(out, max_length=64)
    assert reranker.recommended_weight == record["recommended_fusion_weight"]
    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    query, passages = "vitamin d and bone loss", ["Vitamin D deficiency causes bone loss.", "Iron and anemia.", ""]
    with torch.no_grad():
        enc = tok([query] * 3, passages, truncation="only_second", max_length=64, padding=True, return_tensors="pt")
        expected = model(**enc).logits.view(-1).numpy()
    np.testing.assert_allclose(reranker.score(query, passages), expected, atol=1e-4)
    assert rapidrag.Reranker(out, quantized=True, max_length=64).model_path.name == "model_fused_int8.onnx"
    # An existing output is refused without force, before any work.
    with pytest.raises(TrainingError, match="exists; pass --force"):
        run(tiny_data, tiny_init, out)


def test_an_interrupted_run_resumes_and_never_half_writes(
    tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "reranker"
    calls = {"n": 0}
    real = torch.nn.functional.cross_entropy

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint of step 3
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_data, tiny_init, out)
    assert not out.exists() and (tmp_path / ".reranker.training" / "checkpoint.pt").is_file()
    interrupted_seconds = torch.load(tmp_path / ".reranker.training" / "checkpoint.pt", weights_only=False)["seconds"]
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", real)
    said: list[str] = []
    report = run(tiny_data, tiny_init, out, log=said.append)
    assert any("resumed from" in line and "at step 3 of 6" in line for line in said), said
    assert report.path == out and report.record["steps_run"] == 6
    # The record counts the interrupted session's time and losses too, and says where it resumed.
    assert report.record["resumed_at_steps"] == [3] and report.record["final_loss"] is not None
    assert report.record["seconds"]["training"] > interrupted_seconds > 0
    assert not (tmp_path / ".reranker.training").exists()


def test_a_model_worse_than_its_start_is_not_the_result(
    tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rapidrag.train import reranker as module

    real = module.dev_metrics
    seen = {"n": 0}

    def worse_after(*args: Any) -> dict[str, Any]:
        metrics = real(*args)
        seen["n"] += 1
        if seen["n"] > 1:  # every evaluation after the starting point's
            metrics["alone"] -= 0.5
            metrics["fused"] = {w: v - 0.5 for w, v in metrics["fused"].items()}
        return metrics

    monkeypatch.setattr(module, "dev_metrics", worse_after)
    said: list[str] = []
    report = run(tiny_data, tiny_init, tmp_path / "out", keep_worse=False, log=said.append)
    assert report.path is None and not report.accepted and not (tmp_path / "out").exists()
    assert any("BELOW its starting point" in line and "nothing written" in line for line in said)


def test_a_gain_within_noise_is_said_plainly(
    tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model no worse than its start is written, but a fused gain whose 95% interval on dev holds zero is
    recorded as within noise and said, so a user does not take a lucky dev split for a better model."""
    from rapidrag.train import reranker as module

    real = module.dev_metrics

    def noisy(*args: Any) -> dict[str, Any]:
        metrics = real(*args)
        metrics["alone"] = 0.5  # the same before and after: no worse than the start
        metrics["fused"] = {w: 0.6 for w in metrics["fused"]}
        metrics["fused_gain"] = {"mean": 0.01, "low": -0.01, "high": 0.03}
        return metrics

    monkeypatch.setattr(module, "dev_metrics", noisy)
    said: list[str] = []
    report = run(tiny_data, tiny_init, tmp_path / "out", keep_worse=False, log=said.append)
    assert report.accepted and report.path == tmp_path / "out"
    assert json.loads((report.path / "rapidrag.json").read_text())["gain_within_noise"] is True
    assert any("within noise: +0.0100 nDCG@10, 95% interval -0.0100 to +0.0300" in line for line in said)


@pytest.mark.parametrize(("select_by", "kept"), [("fused", 4), ("alone", 2)])
def test_the_step_kept_is_the_best_on_dev_by_the_measure_chosen(
    tiny_data: dict[str, Path],
    tiny_init: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    select_by: str,
    kept: int,
) -> None:
    """``select_by`` chooses what dev maximises to keep a step: the fused nDCG@10 (the default) or the reranker's
    order alone; here the two peak at different steps (dev's figures set per evaluation), and the record names the
    measure. An unknown measure is refused, and the embedder's CLI refuses the option."""
    from rapidrag.train import reranker as module

    real = module.dev_metrics
    alone = [0.3, 0.1, 0.5, 0.2, 0.2, 0.2, 0.2]  # before training, then after steps 1 to 6
    fused = [0.3, 0.1, 0.2, 0.2, 0.6, 0.2, 0.2]
    calls = {"n": 0}

    def scripted(*args: Any) -> dict[str, Any]:
        metrics = real(*args)
        i = min(calls["n"], len(alone) - 1)
        calls["n"] += 1
        metrics["alone"], metrics["fused"] = alone[i], {w: fused[i] for w in metrics["fused"]}
        return metrics

    monkeypatch.setattr(module, "dev_metrics", scripted)
    record = run(tiny_data, tiny_init, tmp_path / select_by, eval_every=1, select_by=select_by).record
    assert record["settings"]["select_by"] == select_by
    assert [h["step"] for h in record["history"]] == [1, 2, 3, 4, 5, 6]
    assert record["best_step"] == kept
    with pytest.raises(ValueError, match=r"select_by must be one of \['fused', 'alone'\]"):
        run(tiny_data, tiny_init, tmp_path / "unknown", select_by="best")
    from rapidrag.cli import main

    argv = ["train", "embedder", str(tiny_data["corpus"]), "--queries", str(tiny_data["queries"]), "--qrels"]
    argv += [str(tiny_data["qrels"]), "--init", str(tiny_init), "--out", str(tmp_path / "e"), "--lexical-mining"]
    assert main([*argv, "--select-by", "alone"]) == 2 and not (tmp_path / "e").exists()
    assert "--select-by are for rapidrag train reranker" in capsys.readouterr().err


def test_gain_interval() -> None:
    """The paired bootstrap interval: a constant gain is its own interval; a gain that is zero on average holds
    zero; and the sequences must pair up."""
    from rapidrag.train.common import gain_interval

    base = np.linspace(0.2, 0.9, 100)
    assert gain_interval(base, base + 0.05) == pytest.approx({"mean": 0.05, "low": 0.05, "high": 0.05})
    noise = np.where(np.arange(100) % 2 == 0, 0.1, -0.1)
    wide = gain_interval(base, base + noise)
    assert wide["low"] < 0.0 < wide["high"] and wide["mean"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="equal-length"):
        gain_interval([], [])


def test_binary_cross_entropy_per_pair(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    """``loss="bce"`` trains each pair on its own (relevant 1, negatives 0); the record names the loss. It is a loss
    on judgements, so a student (which learns its teacher's scores) refuses it, and an unknown loss is refused."""
    report = run(tiny_data, tiny_init, tmp_path / "bce", loss="bce")
    record = report.record
    assert record["settings"]["loss"] == "binary cross-entropy per pair (relevant 1, negatives 0)"
    # From a head that starts near 0, a pair's binary cross-entropy is near ln 2 (the listwise loss: ln 4 here).
    assert abs(record["history"][0]["loss"] - np.log(2)) < 0.25 and 0 < record["final_loss"] < 1.0
    with pytest.raises(ValueError, match="loss must be one of"):
        run(tiny_data, tiny_init, tmp_path / "unknown", loss="hinge")
    with pytest.raises(TrainingError, match="a student learns its teacher's scores"):
        run(tiny_data, None, tmp_path / "student", teacher=report.path, loss="bce")


def test_bad_input(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(tiny_init / "config.json", no_weights / "config.json")
    with pytest.raises(
        TrainingError, match=r"^--init .*: no weights .*, no tokenizer \(tokenizer.json or vocab.txt\)$"
    ):
        run(tiny_data, no_weights, tmp_path / "o1")
    with pytest.raises(TrainingError, match="not a folder"):
        run(tiny_data, tmp_path / "missing", tmp_path / "o2")
    with pytest.raises(TrainingError, match=r"^--teacher .*no_weights: no weights"):  # named by the argument given
        run(tiny_data, tiny_init, tmp_path / "o3", teacher=no_weights)
    # Judgements of unknown queries and documents are counted; with none left, or too few, an error.
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nnope\tx\t1\n" + tiny_data["qrels"].read_text().split("\n", 1)[1])
    with pytest.raises(TrainingDataError, match="training needs at least 100"):
        run({**tiny_data, "qrels": bad}, tiny_init, tmp_path / "o3", min_queries=100)
    report = run({**tiny_data, "qrels": bad}, tiny_init, tmp_path / "o4", max_steps=1)
    assert report.record["dropped"]["unknown queries"] == 1
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("query-id\tcorpus-id\tscore\nnope\tx\t1\n")
    with pytest.raises(TrainingDataError, match="no judged query is left"):
        run({**tiny_data, "qrels": unknown}, tiny_init, tmp_path / "o5")


def test_cli_train_reranker(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path, capsys: Any) -> None:
    from rapidrag.cli import main

    out = tmp_path / "cli"
    argv = ["train", "reranker", str(tiny_data["corpus"]), "--queries", str(tiny_data["queries"])]
    argv += ["--qrels", str(tiny_data["qrels"]), "--init", str(tiny_init), "--out", str(out), "--lexical-mining"]
    argv += ["--max-length", "64", "--negatives", "3", "--max-steps", "4", "--eval-every", "2", "--no-int8"]
    code = main([*argv, "--keep-worse"])
    printed = capsys.readouterr()
    assert code in (0, 1) and "dev nDCG@10 before" in printed.out and "recommended fusion weight" in printed.out
    assert (out / "model.onnx").is_file()
    assert main(argv) == 2 and "--force" in capsys.readouterr().err


def test_distil_a_smaller_student(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    """A student of one layer learns a teacher's scores; it starts from the teacher's layers and loads as any
    model folder does. A teacher whose vocabulary differs from the student's is refused."""
    teacher = run(tiny_data, tiny_init, tmp_path / "teacher").path
    student = run(tiny_data, None, tmp_path / "student", teacher=teacher, layers=1)
    record = student.record
    assert record["settings"]["teacher"] == str(teacher.resolve()) and record["settings"]["layers"] == 1
    assert record["settings"]["loss"] == "listwise KL to the teacher"
    assert json.loads((student.path / "config.json").read_text())["num_hidden_layers"] == 1
    assert record["onnx_check_max_abs_diff"] <= 1e-4
    assert rapidrag.Reranker(student.path, max_length=64).score("bone", ["bone loss"]).shape == (1,)
    other = tmp_path / "other_vocab"
    shutil.copytree(tiny_init, other)
    (other / "tokenizer.json").unlink()
    words = (other / "vocab.txt").read_text().splitlines()
    (other / "vocab.txt").write_text("\n".join(words[:-1] + ["zzzunseen"]) + "\n")
    with pytest.raises(TrainingError, match="different vocabularies"):
        run(tiny_data, other, tmp_path / "mixed", teacher=teacher)
    with pytest.raises(TrainingError, match="has 2 encoder layers"):
        run(tiny_data, None, tmp_path / "too_many", teacher=teacher, layers=3)
    margins = run(tiny_data, None, tmp_path / "margin", teacher=teacher, layers=1, distil_loss="margin-mse").record
    assert margins["settings"]["loss"] == "Margin-MSE to the teacher" and np.isfinite(margins["final_loss"])
    with pytest.raises(ValueError, match="distil_loss must be one of"):
        run(tiny_data, None, tmp_path / "unknown_loss", teacher=teacher, distil_loss="mse")
    # Unlabelled queries: the teacher labels their candidates; a judged query's text, a blank and a repeat are
    # left out (so that no dev query is trained on), and without a teacher they are refused.
    from rapidrag.beir import iter_jsonl, load_queries

    titles = [d["title"] for d in iter_jsonl(tiny_data["corpus"]) if len(d["title"].split()) >= 4][:10]
    judged = next(iter(load_queries(tiny_data["queries"]).values()))
    (tmp_path / "titles.txt").write_text("\n".join([*titles, f"  {judged.upper()} ", "", titles[0]]) + "\n")
    student = run(
        tiny_data, None, tmp_path / "unlabelled", teacher=teacher, layers=1, distil_queries=tmp_path / "titles.txt"
    ).record
    assert student["settings"]["unlabelled_queries"] == 10
    assert student["dropped"]["unlabelled queries blank, repeated or judged"] == 3
    assert student["settings"]["data"]["unlabelled_queries"]["sha256"]
    plain = run(tiny_data, None, tmp_path / "plain", teacher=teacher, layers=1, max_steps=None).record
    more = run(
        tiny_data,
        None,
        tmp_path / "more",
        teacher=teacher,
        layers=1,
        max_steps=None,
        distil_queries=tmp_path / "titles.txt",
    ).record
    assert more["settings"]["steps"] > plain["settings"]["steps"]
    with pytest.raises(TrainingError, match="pass --teacher"):
        run(tiny_data, tiny_init, tmp_path / "no_teacher", distil_queries=tmp_path / "titles.txt")
    with pytest.raises(TrainingDataError, match="no such file"):
        run(tiny_data, None, tmp_path / "missing", teacher=teacher, distil_queries=tmp_path / "none.txt")


def test_a_student_keeps_the_layers_it_lists(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    """``layers`` as indices: the student starts from exactly those layers of its teacher (a count spaces them
    evenly from the first to the last); indices out of range, unordered, repeated or negative are refused, and the
    CLI reads ``--layers 0,1`` as indices and ``--layers 2`` as a count."""
    from rapidrag.cli import _layers
    from rapidrag.train.reranker import _keep_layers

    def layers_of(model: Any) -> list[Any]:
        return list(model.base_model.encoder.layer)

    def six_layers() -> Any:
        config = transformers.BertConfig(
            vocab_size=64, hidden_size=8, num_hidden_layers=6, num_attention_heads=2, intermediate_size=16, num_labels=1
        )
        return transformers.BertForSequenceClassification(config)

    model = six_layers()
    originals = layers_of(model)
    assert _keep_layers(model, [0, 1]) == [0, 1] and layers_of(model) == originals[:2]
    assert model.config.num_hidden_layers == 2
    model = six_layers()
    originals = layers_of(model)
    assert _keep_layers(model, 2) == [0, 5] and layers_of(model) == [originals[0], originals[5]]
    teacher = run(tiny_data, tiny_init, tmp_path / "teacher").path
    student = run(tiny_data, None, tmp_path / "student", teacher=teacher, layers=[1], max_steps=1)
    assert student.record["settings"]["layers"] == [1]
    assert json.loads((student.path / "config.json").read_text())["num_hidden_layers"] == 1
    with pytest.raises(TrainingError, match="names layer 2, but the model has 2 encoder layers"):
        run(tiny_data, None, tmp_path / "out_of_range", teacher=teacher, layers=[0, 2])
    for bad in ([1, 0], [0, 0], [-1], [], 0, "0,1"):
        with pytest.raises(ValueError, match="layers must"):
            run(tiny_data, None, tmp_path / "bad", teacher=teacher, layers=bad)
    assert not (tmp_path / "bad").exists()
    assert _layers("0,1") == [0, 1] and _layers("2") == 2
    for bad_text in ("1,0", "0,x", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            _layers(bad_text)


def test_distil_the_teachers_hidden_states(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    """``distil_hidden``: a student also learns the teacher's hidden states, layers mapped uniformly; trained with
    it, a student's hidden states end closer to its teacher's than without it, from the same start and batches."""
    from types import SimpleNamespace

    from rapidrag.train.reranker import _hidden_loss, _hidden_pairs

    def model(layers: int, hidden: int = 32) -> Any:
        return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=layers, hidden_size=hidden))

    assert _hidden_pairs(model(2), model(6)) == [(0, 0), (1, 3), (2, 6)]
    assert _hidden_pairs(model(4), model(6)) == [(0, 0), (1, 1), (2, 3), (3, 4), (4, 6)]
    assert _hidden_pairs(model(2), model(2)) == [(0, 0), (1, 1), (2, 2)]
    with pytest.raises(TrainingError, match="equal hidden sizes: the student's is 16, the teacher's 32"):
        _hidden_pairs(model(1, 16), model(2))
    # Padding is left out of the mean: states that differ only there count as equal.
    a, b = torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
    b[0, 2] = 5.0
    mask = torch.tensor([[1, 1, 0]])
    assert float(_hidden_loss([a], [b], [(0, 0)], mask)) == 0.0
    b[0, 1] = 2.0
    assert float(_hidden_loss([a], [b], [(0, 0)], mask)) == pytest.approx(4.0 / 2)

    teacher = run(tiny_data, tiny_init, tmp_path / "teacher").path
    with pytest.raises(TrainingError, match="pass --teacher too"):
        run(tiny_data, tiny_init, tmp_path / "no_teacher", distil_hidden=1.0)
    with pytest.raises(ValueError, match="distil_hidden must be a finite weight"):
        run(tiny_data, None, tmp_path / "negative", teacher=teacher, distil_hidden=-1.0)

    def gap(student: Path) -> float:
        """The student's hidden states against the teacher's on a few training pairs."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        s = AutoModelForSequenceClassification.from_pretrained(student, num_labels=1).eval()
        t = AutoModelForSequenceClassification.from_pretrained(teacher, num_labels=1).eval()
        enc = AutoTokenizer.from_pretrained(teacher)(
            ["bone density", "vitamin d", "cancer risk"],
            ["bone loss in mice", "sunlight", "smoking"],
            padding="longest",
            return_tensors="pt",
        )
        with torch.no_grad():
            hs, ht = s(**enc, output_hidden_states=True), t(**enc, output_hidden_states=True)
        return float(_hidden_loss(hs.hidden_states, ht.hidden_states, _hidden_pairs(s, t), enc["attention_mask"]))

    fast = {"layers": 1, "lr": 1e-2, "max_steps": None, "teacher": teacher}
    without = run(tiny_data, None, tmp_path / "without", **fast)
    with_hidden = run(tiny_data, None, tmp_path / "with", distil_hidden=10.0, **fast)
    assert with_hidden.record["settings"]["distil_hidden"] == 10.0
    assert without.record["settings"]["distil_hidden"] == 0.0
    assert gap(with_hidden.path) < gap(without.path)
    assert rapidrag.Reranker(with_hidden.path, max_length=64).score("bone", ["bone loss"]).shape == (1,)


def test_attention_dropout_is_a_setting(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    """``attention_dropout`` sets the dropout on the attention weights of the model trained, reranker and
    embedder (the written config says what it trained with); unset, the checkpoint's stays; bad values and a config
    without the setting are refused before any work, naming them."""
    import shutil

    def config(folder: Path) -> dict[str, Any]:
        return dict(json.loads((folder / "config.json").read_text()))

    assert config(tiny_init)["attention_probs_dropout_prob"] == 0.1
    off = run(tiny_data, tiny_init, tmp_path / "off", attention_dropout=0.0)
    assert off.record["settings"]["attention_dropout"] == 0.0
    assert config(off.path)["attention_probs_dropout_prob"] == 0.0
    assert config(off.path)["hidden_dropout_prob"] == 0.1  # only the attention's dropout changes
    kept = run(tiny_data, tiny_init, tmp_path / "kept")
    assert kept.record["settings"]["attention_dropout"] is None
    assert config(kept.path)["attention_probs_dropout_prob"] == 0.1
    assert rapidrag.Reranker(off.path, max_length=64).score("bone", ["bone loss"]).shape == (1,)
    from rapidrag.train import train_embedder

    embedder = train_embedder(
        *tiny_data.values(), init=tiny_init, out=tmp_path / "embedder", attention_dropout=0.0, **TINY_EMBEDDER
    )
    assert embedder.record["settings"]["attention_dropout"] == 0.0
    assert config(tmp_path / "embedder")["attention_probs_dropout_prob"] == 0.0

    for bad in (-0.1, 1.0, "0.1", float("nan"), True, False):  # a bool is no probability, not even False
        with pytest.raises(ValueError, match="attention_dropout must be from 0 to below 1"):
            run(tiny_data, tiny_init, tmp_path / "bad", attention_dropout=bad)
    other = tmp_path / "other_init"
    shutil.copytree(tiny_init, other)
    settings = config(other)
    del settings["attention_probs_dropout_prob"]
    (other / "config.json").write_text(json.dumps(settings))
    with pytest.raises(TrainingError, match="config.json names no attention dropout"):
        run(tiny_data, other, tmp_path / "bad", attention_dropout=0.0)
    with pytest.raises(TrainingError, match="config.json names no attention dropout"):
        train_embedder(*tiny_data.values(), init=other, out=tmp_path / "bad", attention_dropout=0.0, **TINY_EMBEDDER)
    assert not (tmp_path / "bad").exists()

    from rapidrag.cli import main

    argv = ["train", "reranker", str(tiny_data["corpus"]), "--queries", str(tiny_data["queries"]), "--qrels"]
    argv += [str(tiny_data["qrels"]), "--init", str(tiny_init), "--lexical-mining", "--max-length", "64"]
    argv += ["--epochs", "1", "--max-steps", "2", "--keep-worse", "--no-int8", "--attention-dropout", "0"]
    assert main([*argv, "--out", str(tmp_path / "cli")]) in (0, 1)  # 1: worse on dev after 2 steps, kept as asked
    assert config(tmp_path / "cli")["attention_probs_dropout_prob"] == 0.0


def test_embedder_trains_exports_and_loads(tiny_data: dict[str, Path], tiny_init: Path, tmp_path: Path) -> None:
    from rapidrag.train import train_embedder

    out = tmp_path / "embedder"
    report = train_embedder(*tiny_data.values(), init=tiny_init, out=out, **TINY_EMBEDDER)
    assert report.path == out and {"model.onnx", "model_fused_int8.onnx", "rapidrag.json"} <= {
        p.name for p in out.iterdir()
    }
    record = json.loads((out / "rapidrag.json").read_text())
    assert record["task"] == "embed" and record["onnx_check_max_abs_diff"] <= 1e-4 and record["steps_run"] == 4
    assert set(record["dev"]["after"]) == {"dense"}
    # rapidrag's Embedder gives the torch model's mean-pooled, normalised embeddings.
    embedder = rapidrag.Embedder(out, max_length=64)
    model = transformers.AutoModel.from_pretrained(out).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    texts = ["vitamin d and bone loss", "Iron deficiency causes anemia in children."]
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(embedder.embed(texts), expected, atol=1e-4)
    # A Retriever indexes with it.
    retriever = rapidrag.Retriever(embedder)
    retriever.add([{"id": "a", "text": texts[1]}])
    assert retriever.search("anemia", mode="dense")[0].doc_id == "a"
