"""rapidrag.Embedder: parity with HF tokenizers + ONNX Runtime, batching, model resolution and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import rapidrag
from rapidrag.embedder import resolve_model
from rapidrag.errors import ModelError


@pytest.fixture(scope="module")
def embedder(minilm_dir: Path) -> rapidrag.Embedder:
    return rapidrag.Embedder(minilm_dir, n_threads=2)


def reference_embeddings(minilm_dir: Path, hf_tokenizer: object, texts: list[str]) -> np.ndarray:
    """HF tokenizers + ONNX Runtime, one text per run (no padding at all), truncated to 256 tokens."""
    session = ort.InferenceSession(str(minilm_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for text in texts:
        enc = hf_tokenizer.encode(text)  # type: ignore[attr-defined]
        kept = enc.ids if len(enc.ids) <= 256 else enc.ids[:255] + enc.ids[-1:]  # keep [SEP], as truncation does
        ids = np.array([kept], dtype=np.int64)
        mask = np.ones_like(ids)
        types = np.zeros_like(ids)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out.append(session.run(["sentence_embedding"], feed)[0][0])
    return np.array(out, dtype=np.float32)


def test_parity_with_reference_on_scifact(
    embedder: rapidrag.Embedder, minilm_dir: Path, hf_tokenizer: object, scifact_texts: list[str]
) -> None:
    texts = scifact_texts[:120]
    ours = embedder.embed(texts, batch_size=16)
    ref = reference_embeddings(minilm_dir, hf_tokenizer, texts)
    cos = (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert ours.shape == (120, 384) and ours.dtype == np.float32
    assert cos.min() >= 0.99999, f"lowest cosine {cos.min()} at text {int(cos.argmin())}"
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_order_and_batch_size_do_not_change_results(embedder: rapidrag.Embedder, scifact_texts: list[str]) -> None:
    texts = scifact_texts[200:240] + ["", "short", "x " * 400]
    base = embedder.embed(texts, batch_size=7)
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = embedder.embed([texts[i] for i in perm], batch_size=32)
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-5)
    single = np.vstack([embedder.embed([t]) for t in texts[:5]])
    np.testing.assert_allclose(single, base[:5], atol=1e-5)
    # Token counts given by the caller (a chunker's) only order the batches: the same vectors, in the same order.
    counts = embedder.tokenizer.count_tokens(texts)
    np.testing.assert_allclose(embedder.embed(texts, batch_size=7, lengths=counts), base, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(texts, batch_size=7, lengths=counts[::-1].copy()), base, atol=1e-5)
    with pytest.raises(ValueError, match="one token count per text"):
        embedder.embed(texts, lengths=counts[:3])


def test_mean_pooling_of_last_hidden_state_matches_model_pooling(minilm_dir: Path, scifact_texts: list[str]) -> None:
    model = rapidrag.Embedder(minilm_dir, n_threads=1)
    mean = rapidrag.Embedder(minilm_dir, pooling="mean", n_threads=1)
    assert model.pooling == "model" and mean.pooling == "mean"
    a, b = model.embed(scifact_texts[:10]), mean.embed(scifact_texts[:10])
    assert (a * b).sum(axis=1).min() > 0.99999


def test_threads_that_stop_spinning_when_a_run_returns_embed_alike(
    minilm_dir: Path, embedder: rapidrag.Embedder, scifact_texts: list[str]
) -> None:
    # spin_between_runs=False asks ONNX Runtime to stop the pool's spinning as each run returns (for a sharded
    # index's coordinator); the default leaves its setting alone. Same vectors either way.
    stopping = rapidrag.Embedder(minilm_dir, spin_between_runs=False)
    config = "session.force_spinning_stop"
    assert stopping.session.get_session_options().get_session_config_entry(config) == "1"
    quiet = rapidrag.Embedder(minilm_dir, allow_spinning=False, spin_between_runs=False)  # nothing to stop
    for session in (embedder.session, quiet.session):
        with pytest.raises(RuntimeError, match="does not have configuration"):
            session.get_session_options().get_session_config_entry(config)
    np.testing.assert_allclose(stopping.embed(scifact_texts[:8]), embedder.embed(scifact_texts[:8]), atol=1e-6)


def test_quantized_model_loads_and_agrees(minilm_dir: Path, embedder: rapidrag.Embedder) -> None:
    int8 = rapidrag.Embedder(minilm_dir, quantized=True, n_threads=1)
    texts = ["Vitamin D deficiency is associated with bone loss.", "The Eiffel tower is in Paris."]
    cos = (int8.embed(texts) * embedder.embed(texts)).sum(axis=1)
    assert cos.min() > 0.98  # dynamic int8 drifts from fp32 (the model's SOURCE.md measured >= 0.99)


def test_empty_input_and_bad_input(embedder: rapidrag.Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError, match="texts must be a sequence of str"):
        embedder.embed("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(["ok"], batch_size=0)


def test_model_resolution(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPIDRAG_MODELS", str(minilm_dir.parent))
    assert resolve_model("all-MiniLM-L6-v2") == minilm_dir.parent / "all-MiniLM-L6-v2"
    with pytest.raises(FileNotFoundError, match="looked in .*no-such-model.*RAPIDRAG_MODELS"):
        resolve_model("no-such-model")
    monkeypatch.delenv("RAPIDRAG_MODELS")
    with pytest.raises(FileNotFoundError, match="RAPIDRAG_MODELS is not set"):
        resolve_model("no-such-model")


def test_missing_and_corrupt_model_files(tmp_path: Path, minilm_dir: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    with pytest.raises(FileNotFoundError, match=r"no model file .*model.onnx"):
        rapidrag.Embedder(folder)
    (folder / "model.onnx").write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(ModelError, match="model.onnx: ONNX Runtime cannot load it"):
        rapidrag.Embedder(folder)
    with pytest.raises(ValueError, match="pooling"):
        rapidrag.Embedder(minilm_dir, pooling="max")  # type: ignore[arg-type]
