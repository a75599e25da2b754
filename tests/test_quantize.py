"""rapidrag.quantize and fuse_attention: the fused graph gives the same outputs, int8 agrees with the shipped file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import rapidrag
from rapidrag.errors import ModelError
from rapidrag.quantization import _quantize, fuse_attention

QUERY = "vitamin d deficiency causes bone loss"


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


@pytest.mark.parametrize("model", ["minilm-l6-reranker", "all-MiniLM-L6-v2"])
def test_fusion_replaces_every_attention_block(tmp_path: Path, reranker_dir: Path, model: str) -> None:
    report = fuse_attention(reranker_dir.parent / model, tmp_path / "fused.onnx")
    assert report.attention_fused == report.attention_blocks == 6
    assert report.max_abs_diff < 1e-5
    ops = op_types(tmp_path / "fused.onnx")
    assert "Attention" in ops and "Softmax" not in ops and "IsNaN" not in ops


def test_fused_reranker_scores_match_the_original(tmp_path: Path, reranker_dir: Path, scifact_texts: list[str]) -> None:
    fuse_attention(reranker_dir / "model.onnx", tmp_path / "fused.onnx")
    passages = scifact_texts[:25] + ["", "bone"]
    fused = rapidrag.Reranker(reranker_dir, model_file=tmp_path / "fused.onnx", batch_tokens=2048)
    plain = rapidrag.Reranker(reranker_dir, batch_tokens=2048)  # padded batches: the mask path is exercised
    np.testing.assert_allclose(fused.score(QUERY, passages), plain.score(QUERY, passages), atol=1e-4)


def test_fused_embedder_matches_the_original(tmp_path: Path, minilm_dir: Path, scifact_texts: list[str]) -> None:
    fuse_attention(minilm_dir, tmp_path / "fused.onnx")
    texts = scifact_texts[:20] + ["short"]
    fused = rapidrag.Embedder(minilm_dir, model_file=tmp_path / "fused.onnx").embed(texts)
    plain = rapidrag.Embedder(minilm_dir).embed(texts)
    assert float((fused * plain).sum(axis=1).min()) > 0.99999


def test_quantize_makes_an_int8_model_close_to_fp32(
    tmp_path: Path, reranker_dir: Path, scifact_texts: list[str]
) -> None:
    report = rapidrag.quantize(reranker_dir, tmp_path / "int8.onnx")
    assert report.attention_fused == 6 and report.path == tmp_path / "int8.onnx"
    ops = op_types(tmp_path / "int8.onnx")
    assert "QAttention" in ops and "Attention" not in ops
    passages = scifact_texts[:40]
    int8 = rapidrag.Reranker(reranker_dir, model_file=tmp_path / "int8.onnx").score(QUERY, passages)
    fp32 = rapidrag.Reranker(reranker_dir).score(QUERY, passages)
    assert np.corrcoef(int8, fp32)[0, 1] > 0.95 and np.abs(int8 - fp32).mean() < 0.3
    assert (tmp_path / "int8.onnx").stat().st_size < (reranker_dir / "model.onnx").stat().st_size / 3
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_per_token_ranges_bring_int8_closer_to_fp32(
    tmp_path: Path, reranker_dir: Path, scifact_texts: list[str]
) -> None:
    per_token = rapidrag.quantize(reranker_dir, tmp_path / "per_token.onnx")
    batch = rapidrag.quantize(reranker_dir, tmp_path / "batch.onnx", per_token=False)
    assert per_token.per_token == 6 and batch.per_token == 0  # the FFN output dense of each of the 6 layers
    assert "QuantizeLinear" in op_types(tmp_path / "per_token.onnx")  # per token, along axis 0
    assert "QuantizeLinear" not in op_types(tmp_path / "batch.onnx")
    passages = scifact_texts[:40]
    fp32 = rapidrag.Reranker(reranker_dir).score(QUERY, passages)
    errors = {
        name: np.abs(rapidrag.Reranker(reranker_dir, model_file=tmp_path / name).score(QUERY, passages) - fp32).mean()
        for name in ("per_token.onnx", "batch.onnx")
    }
    assert errors["per_token.onnx"] < 0.8 * errors["batch.onnx"], errors


def tiny_model(path: Path, weight: np.ndarray, opset: int, rank: int = 2) -> Path:
    helper = onnx.helper
    shape: list[str | int] = ["n", weight.shape[0]] if rank == 2 else ["b", "n", weight.shape[0]]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [*shape[:-1], weight.shape[1]])],
        [onnx.numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_per_token_matmul_keeps_small_tokens_exact(tmp_path: Path, opset: int) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(64, 16))
    src = tiny_model(tmp_path / "tiny.onnx", weight, opset, rank=3)
    x = rng.normal(size=(2, 5, 64)).astype(np.float32)
    x[0, 0] *= 100.0  # one outlier token, as [SEP] is in BERT after the GELU
    x[1, 2] = 0.0  # an all-zero token
    exact = x @ weight.astype(np.float32)
    outputs = {}
    for per_token in (True, False):
        dst = tmp_path / f"int8_{per_token}.onnx"
        assert rapidrag.quantize(src, dst, per_token=per_token).per_token == (1 if per_token else 0)
        session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
        (outputs[per_token],) = session.run(None, {"x": x})
        assert outputs[per_token].shape == exact.shape
    small = np.ones((2, 5), dtype=bool)
    small[0, 0] = False

    def error(y: np.ndarray) -> float:
        return float(np.abs(y - exact)[small].max() / np.abs(exact[small]).max())

    assert error(outputs[True]) < 0.02  # each token keeps 8 bits of its own range
    assert error(outputs[False]) > 5 * error(outputs[True])  # one range for all: the outlier takes the levels
    np.testing.assert_array_equal(outputs[True][1, 2], 0.0)
    np.testing.assert_allclose(outputs[True][0, 0], exact[0, 0], rtol=0.02, atol=0.02 * np.abs(exact[0, 0]).max())


def test_old_opsets_and_up_projections_are_left_to_dynamic_quantization(tmp_path: Path) -> None:
    up = tiny_model(tmp_path / "up.onnx", np.ones((4, 8)), 17)
    assert rapidrag.quantize(up, tmp_path / "up_int8.onnx").per_token == 0
    # The variant measured in benchmarks/int8_fidelity.py takes every projection of more than one column.
    assert _quantize(up, tmp_path / "up_all.onnx", down_only=False).per_token == 1
    head = tiny_model(tmp_path / "head.onnx", np.ones((8, 1)), 17)
    assert _quantize(head, tmp_path / "head_all.onnx", down_only=False).per_token == 0
    old = tiny_model(tmp_path / "old.onnx", np.ones((8, 4)), 12)
    assert rapidrag.quantize(old, tmp_path / "old_int8.onnx").per_token == 0


def test_a_graph_without_attention_is_quantized_unfused(tmp_path: Path) -> None:
    import onnxruntime as ort

    src = tiny_model(tmp_path / "tiny.onnx", np.arange(32, dtype=np.float32).reshape(8, 4) / 32, 17)  # rank-2 x
    report = rapidrag.quantize(src, tmp_path / "tiny_int8.onnx")
    assert report.attention_fused == 0 and report.per_token == 1
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "tiny_int8.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    exact = x @ (np.arange(32, dtype=np.float32).reshape(8, 4) / 32)
    assert y.shape == (3, 4) and np.abs(y - exact).max() < 0.02 * np.abs(exact).max()


def test_missing_and_corrupt_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        rapidrag.quantize(tmp_path, tmp_path / "out.onnx")
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        rapidrag.quantize(tmp_path, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_cli_quantize(tmp_path: Path, reranker_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rapidrag.cli import main

    out = tmp_path / "q.onnx"
    assert main(["quantize", str(reranker_dir / "model.onnx"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 of 6 attention blocks fused" in printed and out.is_file()
    assert "per-token activations in 6 down-projections" in printed
    assert main(["quantize", str(reranker_dir / "model.onnx"), "--out", str(out), "--no-per-token"]) == 0
    assert "per-token" not in capsys.readouterr().out and "QuantizeLinear" not in op_types(out)
    assert main(["quantize", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rapidrag: error: model") and "RAPIDRAG_MODELS" in err and err.count("\n") == 1


def test_quantized_prefers_the_file_rapidrag_quantize_wrote(
    tmp_path: Path, reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rapidrag.cli import main

    folder = tmp_path / "reranker"
    folder.mkdir()
    for f in reranker_dir.iterdir():
        (folder / f.name).symlink_to(f)
    assert rapidrag.Reranker(folder, quantized=True).model_path.name == "model_int8.onnx"
    assert main(["quantize", str(folder)]) == 0
    assert "quantized=True" in capsys.readouterr().out
    assert rapidrag.Reranker(folder, quantized=True).model_path == folder / "model_fused_int8.onnx"
    assert rapidrag.Reranker(folder, quantized=True, model_file="model_int8.onnx").model_path.name == "model_int8.onnx"
    assert rapidrag.Reranker(folder).model_path.name == "model.onnx"


def test_cli_fuse_only(tmp_path: Path, reranker_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rapidrag.cli import main

    out = tmp_path / "fused.onnx"
    assert main(["quantize", str(reranker_dir), "--fp32", "--out", str(out)]) == 0
    assert "fp32 weights" in capsys.readouterr().out and "Attention" in op_types(out)
    assert main(["quantize", str(reranker_dir), "--fp32", "--no-fuse", "--out", str(out)]) == 2
