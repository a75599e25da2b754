"""rapidrag.Reranker: parity with HF tokenizers + ONNX Runtime, ordering, time budgets, windows and bad input."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tokenizers

import rapidrag
from rapidrag.errors import ModelError

QUERY = "vitamin d deficiency causes bone loss"


@pytest.fixture(scope="module")
def reranker(reranker_dir: Path) -> rapidrag.Reranker:
    return rapidrag.Reranker(reranker_dir, n_threads=2)


def reference_scores(model_dir: Path, query: str, passages: list[str], max_length: int = 256) -> np.ndarray:
    """HF tokenizers (pairs, only the passage truncated) + ONNX Runtime, one unpadded pair per run."""
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length, strategy="only_second")
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for passage in passages:
        enc = tok.encode(query, passage)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        out.append(session.run(None, feed)[0][0, 0])
    return np.array(out, dtype=np.float32)


def test_scores_match_reference_on_scifact(
    reranker: rapidrag.Reranker, reranker_dir: Path, scifact_texts: list[str]
) -> None:
    passages = scifact_texts[:40] + ["", "bone", "x " * 600]
    ours = reranker.score(QUERY, passages)
    ref = reference_scores(reranker_dir, QUERY, passages)
    assert ours.shape == (len(passages),) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_model_limit_comes_from_the_model_folder(reranker: rapidrag.Reranker, reranker_dir: Path) -> None:
    assert reranker.model_limit == 256 and reranker.max_length == 256  # tokenizer_config.json model_max_length
    with pytest.raises(ValueError, match="from 4 to 256"):
        rapidrag.Reranker(reranker_dir, max_length=300)
    with pytest.raises(ValueError, match="max_length"):
        reranker.score(QUERY, ["a"], max_length=3)


def test_batching_and_order_do_not_change_scores(
    reranker_dir: Path, reranker: rapidrag.Reranker, scifact_texts: list[str]
) -> None:
    passages = scifact_texts[100:130] + ["short one", "two words"]
    base = reranker.score(QUERY, passages)
    one_per_run = rapidrag.Reranker(reranker_dir, batch_tokens=1).score(QUERY, passages)
    np.testing.assert_allclose(one_per_run, base, atol=1e-4)
    perm = np.random.default_rng(0).permutation(len(passages))
    np.testing.assert_allclose(reranker.score(QUERY, [passages[i] for i in perm]), base[perm], atol=1e-4)


def test_rerank_orders_hits_and_keeps_the_items(reranker: rapidrag.Reranker) -> None:
    class Hit:
        def __init__(self, text: str) -> None:
            self.text = text

    relevant = "Vitamin D deficiency is associated with reduced bone mineral density in older adults."
    obj = Hit("The Eiffel tower is located in Paris.")
    hits: list[Any] = [obj, {"text": relevant, "id": 7}, "Bread is made from flour, water and yeast."]
    result = reranker.rerank(QUERY, hits)
    assert result.n_scored == result.n_candidates == 3 and result.complete
    assert result[0].item == {"text": relevant, "id": 7} and result[0].input_index == 1
    assert [r.score for r in result] == sorted((r.score for r in result), reverse=True)
    assert any(r.item is obj for r in result)
    assert [r.input_index for r in reranker.rerank(QUERY, hits, top_k=1)] == [1]
    assert len(reranker.rerank(QUERY, [])) == 0
    # An empty or blank passage is not run through the model: last of the scored, -inf.
    blank = reranker.rerank(QUERY, ["", relevant, " \n", obj], budget_ms=60_000)
    assert [r.input_index for r in blank] == [1, 3, 0, 2] and blank.complete
    assert [r.score for r in blank][2:] == [-np.inf, -np.inf] and np.isfinite(blank[1].score)
    assert [r.input_index for r in reranker.rerank(QUERY, [" ", ""])] == [0, 1]
    with pytest.raises(TypeError, match=r"hits\[1\]"):
        reranker.rerank(QUERY, ["fine", {"title": "no text"}])
    with pytest.raises(ValueError, match="top_k"):
        reranker.rerank(QUERY, ["a"], top_k=-1)


def test_time_budget_scores_a_prefix_in_the_given_order(reranker: rapidrag.Reranker, scifact_texts: list[str]) -> None:
    passages = scifact_texts[:60]
    full = reranker.score(QUERY, passages)
    # A budget far too small for all 60 pairs: a prefix is scored, the rest are NaN.
    result = reranker.rerank(QUERY, passages, budget_ms=1.0)
    partial = reranker.score(QUERY, passages, budget_ms=1.0)
    scored = ~np.isnan(partial)
    n = int(scored.sum())
    assert n < len(passages) and scored[:n].all() and not scored[n:].any()
    np.testing.assert_allclose(partial[:n], full[:n], atol=1e-4)
    assert result.n_scored < len(passages) and not result.complete
    tail = [r.input_index for r in result.items[result.n_scored :]]
    assert tail == sorted(tail) and all(np.isnan(r.score) for r in result.items[result.n_scored :])
    # A generous budget scores everything.
    roomy = reranker.rerank(QUERY, passages[:5], budget_ms=60_000)
    assert roomy.complete
    with pytest.raises(ValueError, match="budget_ms"):
        reranker.score(QUERY, ["a"], budget_ms=0)


def test_a_batch_running_at_the_deadline_is_cancelled(
    reranker_dir: Path, scifact_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is a hard deadline: with a cost model that believes every batch is nearly free (as a cold or
    suddenly slower machine would), the batch still running at the deadline is cancelled and its candidates are
    left unscored, where before it ran to its end; the scored ones keep their exact scores."""
    reranker = rapidrag.Reranker(reranker_dir, n_threads=1, batch_tokens=4096)
    passages = scifact_texts[:64]
    full = reranker.score(QUERY, passages)
    monkeypatch.setattr(reranker, "_update_cost", lambda *args: None)  # keep the estimate wrong
    reranker._ms_per_token = 1e-9
    partial = reranker.score(QUERY, passages, budget_ms=20.0)  # 64 long pairs take far longer than 20 ms
    scored = ~np.isnan(partial)
    assert not scored.all()  # without the cancel, the one batch of 16 pairs and then the rest would all run
    np.testing.assert_allclose(partial[scored], full[scored], atol=1e-4)
    # Unbudgeted runs are never cancelled, whatever the estimate.
    np.testing.assert_allclose(reranker.score(QUERY, passages), full, atol=1e-4)


def test_the_cancel_lead_learns_how_late_cancelled_runs_return(
    reranker_dir: Path, scifact_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose runs return well after the cancel flag (a long node) makes the reranker cancel that much
    earlier next time, so that its late return still falls within the budget; the lead is bounded, and loading
    seeds it with one cancelled warm-up run."""
    from rapidrag.reranker import CANCEL_LEAD_MAX_MS, CANCEL_LEAD_MS

    reranker = rapidrag.Reranker(reranker_dir, n_threads=1)
    assert len(reranker._cancel_late_ms) == 1  # loading cancelled a warm-up run a millisecond in: the first lead
    reranker._cancel_late_ms.clear()
    assert reranker._cancel_lead_ms() == CANCEL_LEAD_MS
    late_s = 0.015

    def slow_to_stop(enc: object, idx: np.ndarray, run_options: object = None) -> np.ndarray:
        while not run_options.terminate:  # type: ignore[attr-defined]
            time.sleep(0.0005)
        time.sleep(late_s)  # the node running at the flag ends this much later
        raise RuntimeError("Exiting due to terminate flag being set to true.")

    monkeypatch.setattr(reranker, "_run", slow_to_stop)
    monkeypatch.setattr(reranker, "_update_cost", lambda *args: None)
    reranker._ms_per_token = 1e-9  # every batch looks free, so each one runs into the deadline
    assert np.isnan(reranker.score(QUERY, scifact_texts[:4], budget_ms=100.0)).all()
    assert reranker._cancel_lead_ms() >= late_s * 1000
    reranker._cancel_late_ms.append(10_000.0)  # one stalled run does not take the whole budget
    assert reranker._cancel_lead_ms() == CANCEL_LEAD_MAX_MS


def test_the_cost_model_is_measured_on_a_full_batch_at_load(
    reranker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At load the cost model is measured on full-length pairs filling a batch (the dearest tokens, and the shape
    ONNX Runtime must allocate for), not on one short pair, so a fresh process starts from a safe estimate."""
    shapes = []
    run = rapidrag.Reranker._run

    def recording(self: rapidrag.Reranker, enc: object, idx: np.ndarray, *args: object) -> np.ndarray:
        shapes.append((len(idx), int(enc.lengths[idx].max())))  # type: ignore[attr-defined]
        return run(self, enc, idx, *args)

    monkeypatch.setattr(rapidrag.Reranker, "_run", recording)
    reranker = rapidrag.Reranker(reranker_dir, n_threads=1, max_length=256, batch_tokens=1024)
    # Two warm-up runs (the second one timed), then a third cancelled a millisecond in to seed the cancel lead.
    assert shapes == [(4, 256), (4, 256), (4, 256)] and reranker._ms_per_token > 0


def test_time_budget_counts_waiting_for_busy_cores(reranker: rapidrag.Reranker) -> None:
    """While other threads' model runs hold every core, a budgeted call waits at most its budget for them and then
    returns what it scored (here nothing), instead of running late; unbudgeted calls wait as long as it takes."""
    import threading

    from rapidrag._onnx import CORES, CoreBudget

    budget = CoreBudget(2)
    with budget.use(0) as held:  # all cores
        assert held and budget.free == 0
        with budget.use(1, deadline=0.0) as late:  # a deadline already past: no wait, nothing held
            assert not late and budget.free == 0
    assert budget.free == 2
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with CORES.use(0):
            holding.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        holding.wait(timeout=60)
        result = reranker.rerank(QUERY, ["Vitamin D deficiency causes bone loss."] * 4, budget_ms=30)
        assert result.n_scored == 0 and not result.complete and all(np.isnan(r.score) for r in result.items)
    finally:
        release.set()
        holder.join(timeout=60)
    assert CORES.free == CORES.cores
    assert reranker.rerank(QUERY, ["Vitamin D deficiency causes bone loss."] * 4, budget_ms=60_000).complete


def test_window_scores_the_part_that_matches(reranker: rapidrag.Reranker) -> None:
    filler = "The committee discussed the agenda and the schedule of the next meeting. " * 30
    key = "Vitamin D deficiency causes bone loss in older adults. "
    passage = filler + key + filler
    cut = reranker._windows(QUERY, [passage, "short text"], 32)
    assert "Vitamin D deficiency causes bone loss" in cut[0] and cut[1] == "short text"
    assert cut[0] in passage and reranker.tokenizer.count_tokens(cut[0]) <= 32
    windowed, plain = reranker.score(QUERY, [passage], window=32)[0], reranker.score(QUERY, [passage])[0]
    assert windowed > plain  # the relevant sentence lies beyond the first 256 tokens
    with pytest.raises(ValueError, match="window"):
        reranker.score(QUERY, ["a"], window=0)


def test_bad_input(reranker: rapidrag.Reranker) -> None:
    assert reranker.score(QUERY, []).shape == (0,)
    assert np.isfinite(reranker.score("", [""])).all()
    with pytest.raises(TypeError, match="single str"):
        reranker.score(QUERY, "one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query"):
        reranker.score(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reranker.score(QUERY, ["ok", 3])  # type: ignore[list-item]
    long = reranker.score(QUERY, ["bone " * 100_000])
    assert np.isfinite(long).all()


def test_quantized_model_agrees(reranker_dir: Path, reranker: rapidrag.Reranker, scifact_texts: list[str]) -> None:
    passages = scifact_texts[:30]
    int8 = rapidrag.Reranker(reranker_dir, quantized=True).score(QUERY, passages)
    fp32 = reranker.score(QUERY, passages)
    # Dynamic int8 moves logits by about 0.2 on average (0.99 correlation over 200 SciFact pairs of 10 queries);
    # thirty unrelated passages of one query span a narrow range, so the bound here is looser.
    assert np.corrcoef(int8, fp32)[0, 1] > 0.95 and np.abs(int8 - fp32).mean() < 0.3


def test_two_logit_models_use_the_relevant_column(tmp_path: Path, reranker_dir: Path) -> None:
    import onnx

    model = onnx.load(str(reranker_dir / "model.onnx"))
    # Append a [1 -> 2] head: logits2 = [-x, x]; the relevance is column 1 = x.
    graph = model.graph
    old = graph.output[0].name
    weight = onnx.numpy_helper.from_array(np.array([[-1.0, 1.0]], dtype=np.float32), "two_col")
    graph.initializer.append(weight)
    graph.node.append(onnx.helper.make_node("MatMul", [old, "two_col"], ["logits2"]))
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info("logits2", onnx.TensorProto.FLOAT, ["batch", 2]))
    folder = tmp_path / "two"
    shutil.copytree(reranker_dir, folder, ignore=shutil.ignore_patterns("*.onnx"))
    onnx.save(model, str(folder / "model.onnx"))
    passages = ["bone loss and vitamin d", "paris"]
    two = rapidrag.Reranker(folder).score(QUERY, passages)
    one = rapidrag.Reranker(reranker_dir).score(QUERY, passages)
    np.testing.assert_allclose(two, one, atol=1e-5)


def test_missing_and_corrupt_models(tmp_path: Path, reranker_dir: Path, minilm_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RAPIDRAG_MODELS"):
        rapidrag.Reranker(tmp_path / "nowhere")
    folder = tmp_path / "broken"
    shutil.copytree(reranker_dir, folder, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(FileNotFoundError, match="model_int8.onnx"):
        rapidrag.Reranker(folder, quantized=True)
    (folder / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load"):
        rapidrag.Reranker(folder)
    # The embedder has no token_type_ids-free problem but a [batch, L, 384] first output: not a cross-encoder.
    with pytest.raises(ModelError, match=r"\[batch, 1\] or \[batch, 2\]"):
        rapidrag.Reranker(minilm_dir)
    # A config.json that is not JSON is ignored for the limit (512 positions at most), not a crash.
    (folder / "model.onnx").unlink()
    shutil.copy(reranker_dir / "model_int8.onnx", folder / "model.onnx")
    (folder / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    assert rapidrag.Reranker(folder).model_limit == 512


def test_model_name_under_rapidrag_models(monkeypatch: pytest.MonkeyPatch, reranker_dir: Path) -> None:
    monkeypatch.setenv("RAPIDRAG_MODELS", str(reranker_dir.parent))
    assert rapidrag.Reranker("minilm-l6-reranker", quantized=True).model_limit == 256
    config = json.loads((reranker_dir / "config.json").read_text())
    assert config["max_position_embeddings"] == 512


def test_a_model_without_the_bert_inputs_is_refused(tmp_path: Path, reranker_dir: Path) -> None:
    import onnx

    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not-bert",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 2])],
    )
    folder = tmp_path / "odd"
    shutil.copytree(reranker_dir, folder, ignore=shutil.ignore_patterns("*.onnx"))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    with pytest.raises(ModelError, match="no input 'input_ids'"):
        rapidrag.Reranker(folder)
