"""The three hybrid retrieval pipelines that bench_pipeline.py compares, built on the same models and inputs.

- ``rapidrag``: ``rapidrag.Retriever`` with the int8 embedder (and the int8 reranker for the rerank variant).
- ``by-hand``: what a user assembles from the usual parts: bm25s (PyStemmer English stemmer, English stopwords),
  FAISS ``IndexFlatIP`` over embeddings from HF ``tokenizers`` + ONNX Runtime running the same ``model_int8.onnx``
  (batches padded to their longest text, the model's own ``sentence_embedding`` output: masked mean pooling and L2
  norm), reciprocal-rank fusion (k = 60) of the top 100 of each; reranking with the cross-encoder's
  ``model_int8.onnx``, its 20 pairs in one batch padded to the longest.
- ``rapidrag-q`` and ``by-hand-q``: the same two pipelines reranking with the int8 file ``rapidrag.quantize`` makes
  from the cross-encoder's fp32 ``model.onnx`` (fused attention, per-token ranges in the down-projections) instead
  of the shipped ``model_int8.onnx``: the same model weights, quantized by rapidrag; the pair shows what the file
  gives each pipeline.
- ``langchain``: ``EnsembleRetriever`` (weights 0.5 / 0.5) over ``BM25Retriever`` (rank_bm25) and a LangChain
  ``FAISS`` vector store, each asked for 100 documents, over an ``Embeddings`` class wrapping the same ONNX
  embedder; reranking through ``ContextualCompressionRetriever`` with ``CrossEncoderReranker`` over a
  ``BaseCrossEncoder`` wrapping the same ONNX cross-encoder, on the fused top 20.

Every pipeline indexes whole documents (title + text) and truncates what the models see at 256 tokens (the
reranker: the passage of each pair), so all three embed and rerank the same token sequences. BM25: k1 = 0.9,
b = 0.4 everywhere. LangChain's ``BM25Retriever`` splits on whitespace unless given a ``preprocess_func``; it gets
the same word analysis as rapidrag (lowercase, English stopwords, Snowball English stemmer), as rank_bm25 does in
bench_bm25.py, so that the comparison is of pipelines and not of tokenization.

Each pipeline object has ``index(ids, texts)`` and ``search(query, rerank) -> top-10 ids``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import quantized

K = 10
CANDIDATES = 100
RERANK_DEPTH = 20
RRF_K = 60
MAX_LENGTH = 256
BATCH_SIZE = 32
K1, B = 0.9, 0.4
PIPELINES = ["rapidrag", "by-hand", "langchain"]
# What each pipeline needs beyond rapidrag's own dependencies (checked with pytest.importorskip).
NEEDS = {
    "rapidrag": [],
    "rapidrag-q": ["onnx"],
    "by-hand": ["tokenizers", "bm25s", "Stemmer", "faiss"],
    "by-hand-q": ["tokenizers", "bm25s", "Stemmer", "faiss", "onnx"],
    "langchain": ["tokenizers", "rank_bm25", "langchain_core", "langchain_community", "langchain_classic"],
}


def import_quietly(name: str) -> Any:
    """Import a peer module, ignoring the deprecation warnings LangChain emits on import (pytest turns warnings
    into errors)."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return importlib.import_module(name)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """HF tokenizers + ONNX Runtime sentence embeddings: float32 [n, 384], unit length (the model's output)."""

    def __init__(self, model_dir: Path, model_file: str = "model_int8.onnx") -> None:
        import tokenizers

        self.tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_LENGTH)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of each batch
        self.session = _session(model_dir / model_file)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for first in range(0, len(texts), BATCH_SIZE):
            encs = self.tok.encode_batch(list(texts[first : first + BATCH_SIZE]))
            feed = {
                "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            }
            out.append(self.session.run(["sentence_embedding"], feed)[0])
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


class OnnxCrossEncoder:
    """HF tokenizers pairs (passage truncated, padded to the longest pair) + ONNX Runtime: one logit per pair."""

    def __init__(self, model_dir: Path, model_file: str | Path = "model_int8.onnx") -> None:
        import tokenizers

        self.tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_LENGTH, strategy="only_second")
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = _session(model_dir / model_file)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        encs = self.tok.encode_batch([(query, p) for p in passages])
        feed = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
        }
        return np.asarray(self.session.run(["logits"], feed)[0][:, 0], dtype=np.float32)


class RapidragPipeline:
    """``rapidrag.Retriever``: hybrid (RRF, k = 60), candidates = 100; reranking the fused top 20.

    ``whole_documents``: one chunk per document, as the peers index (the embedder truncates at 256 tokens as they
    do); False keeps rapidrag's default chunks of 254 tokens.
    """

    name = "rapidrag"

    def __init__(
        self,
        embedder_dir: Path,
        reranker_dir: Path | None,
        *,
        whole_documents: bool = True,
        reranker_file: str | Path = "model_int8.onnx",
    ) -> None:
        import rapidrag

        self.embedder = rapidrag.Embedder(embedder_dir, quantized=True, max_length=MAX_LENGTH)
        self.reranker = rapidrag.Reranker(reranker_dir, model_file=reranker_file) if reranker_dir is not None else None
        self.whole_documents = whole_documents
        self.retriever: Any = None

    def index(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        import rapidrag

        chunker = None
        with warnings.catch_warnings():
            # Chunks longer than the embedder's window warn (their ends are embedded truncated): intended here.
            warnings.simplefilter("ignore", UserWarning)
            if self.whole_documents:
                chunker = rapidrag.Chunker(self.embedder.tokenizer, max_tokens=1_000_000)
            self.retriever = rapidrag.Retriever(
                self.embedder, self.reranker, chunker, rerank_depth=RERANK_DEPTH, rrf_k=RRF_K, k1=K1, b=B
            )
        self.retriever.add([{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)], progress=False)

    def search(self, query: str, rerank: bool = False) -> list[str]:
        # With one chunk per document, per_document=False keeps each list at 100 rows as in the peers (per
        # document, the retriever reads 4 x candidates rows of each list so that enough documents survive).
        hits = self.retriever.search(
            query, K, mode="hybrid", rerank=rerank, candidates=CANDIDATES, per_document=not self.whole_documents
        )
        return [h.doc_id for h in hits]


def rrf(lists: Sequence[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal-rank fusion: rows by sum of 1 / (k + rank), rank from 1; ties by first appearance."""
    scores: dict[int, float] = {}
    for rows in lists:
        for rank, row in enumerate(rows, 1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda r: -scores[r])


class ByHandPipeline:
    """bm25s + FAISS IndexFlatIP + ONNX Runtime embedder, RRF; ONNX cross-encoder over the fused top 20."""

    name = "by-hand"

    def __init__(
        self, embedder_dir: Path, reranker_dir: Path | None, reranker_file: str | Path = "model_int8.onnx"
    ) -> None:
        import Stemmer

        self.embedder = OnnxEmbedder(embedder_dir)
        self.reranker = OnnxCrossEncoder(reranker_dir, reranker_file) if reranker_dir is not None else None
        self.stemmer = Stemmer.Stemmer("english")

    def index(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        import bm25s
        import faiss

        self.ids, self.texts = list(ids), list(texts)
        self.bm25 = bm25s.BM25(k1=K1, b=B)
        tokens = bm25s.tokenize(self.texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.bm25.index(tokens, show_progress=False)
        vectors = self.embedder.embed(self.texts)
        self.faiss = faiss.IndexFlatIP(vectors.shape[1])
        self.faiss.add(vectors)

    def search(self, query: str, rerank: bool = False) -> list[str]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, show_progress=False)
        depth = min(CANDIDATES, len(self.ids))
        lexical = []
        if tokens.ids[0]:  # bm25s cannot retrieve for a query made of stopwords only
            rows, scores = self.bm25.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
            lexical = [int(r) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
        _, rows = self.faiss.search(self.embedder.embed([query]), depth)
        fused = rrf([lexical, [int(r) for r in rows[0] if r >= 0]])
        if rerank and self.reranker is not None:
            head = fused[:RERANK_DEPTH]
            logits = self.reranker.score(query, [self.texts[r] for r in head])
            fused = [head[i] for i in np.argsort(-logits, kind="stable")] + fused[RERANK_DEPTH:]
        return [self.ids[r] for r in fused[:K]]


class LangChainPipeline:
    """EnsembleRetriever (BM25Retriever + FAISS vector store, 0.5 / 0.5, k = 100 each); reranking through
    ContextualCompressionRetriever + CrossEncoderReranker on the fused top 20."""

    name = "langchain"

    def __init__(self, embedder_dir: Path, reranker_dir: Path | None) -> None:
        self.embedder_dir, self.reranker_dir = embedder_dir, reranker_dir

    def index(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        core_embeddings = import_quietly("langchain_core.embeddings")
        core_docs = import_quietly("langchain_core.documents")
        core_cross = import_quietly("langchain_core.cross_encoders")
        bm25_mod = import_quietly("langchain_community.retrievers")
        faiss_mod = import_quietly("langchain_community.vectorstores")
        ensemble_mod = import_quietly("langchain_classic.retrievers")
        compressors = import_quietly("langchain_classic.retrievers.document_compressors")
        from rapidrag.lexical import WordAnalyzer

        embedder = OnnxEmbedder(self.embedder_dir)

        class OnnxEmbeddings(core_embeddings.Embeddings):  # type: ignore[misc,name-defined]
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return embedder.embed(texts).tolist()  # type: ignore[no-any-return]

            def embed_query(self, text: str) -> list[float]:
                return embedder.embed([text])[0].tolist()  # type: ignore[no-any-return]

        metadatas = [{"id": i} for i in ids]
        bm25 = bm25_mod.BM25Retriever.from_texts(
            list(texts), metadatas=metadatas, bm25_params={"k1": K1, "b": B}, preprocess_func=WordAnalyzer()
        )
        bm25.k = CANDIDATES
        store = faiss_mod.FAISS.from_texts(list(texts), OnnxEmbeddings(), metadatas=metadatas)
        dense = store.as_retriever(search_kwargs={"k": CANDIDATES})
        self.ensemble = ensemble_mod.EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5], id_key="id")
        self.reranking = None
        if self.reranker_dir is not None:
            cross = OnnxCrossEncoder(self.reranker_dir)

            class OnnxCrossEncoderLC(core_cross.BaseCrossEncoder):  # type: ignore[misc,name-defined]
                def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
                    if not text_pairs:
                        return []
                    return cross.score(text_pairs[0][0], [p for _, p in text_pairs]).tolist()  # type: ignore

            class FirstN(core_docs.BaseDocumentCompressor):  # type: ignore[misc,name-defined]
                n: int = RERANK_DEPTH

                def compress_documents(self, documents: Any, query: str, callbacks: Any = None) -> Any:
                    return list(documents)[: self.n]

            pipeline = compressors.DocumentCompressorPipeline(
                transformers=[FirstN(), compressors.CrossEncoderReranker(model=OnnxCrossEncoderLC(), top_n=K)]
            )
            self.reranking = ensemble_mod.ContextualCompressionRetriever(
                base_compressor=pipeline, base_retriever=self.ensemble
            )

    def search(self, query: str, rerank: bool = False) -> list[str]:
        retriever = self.reranking if rerank and self.reranking is not None else self.ensemble
        return [d.metadata["id"] for d in retriever.invoke(query)[:K]]


def make(name: str, embedder_dir: Path, reranker_dir: Path | None) -> Any:
    if name == "rapidrag":
        return RapidragPipeline(embedder_dir, reranker_dir)
    if name == "rapidrag-chunked":
        return RapidragPipeline(embedder_dir, reranker_dir, whole_documents=False)
    if name in ("rapidrag-q", "by-hand-q"):
        # The same pipeline reranking with the file rapidrag.quantize makes ($RAPIDRAG_BENCH_CACHE).
        file = quantized(reranker_dir) if reranker_dir is not None else "model_int8.onnx"
        pipeline = (RapidragPipeline if name == "rapidrag-q" else ByHandPipeline)(
            embedder_dir, reranker_dir, reranker_file=file
        )
        pipeline.name = name
        return pipeline
    if name == "by-hand":
        return ByHandPipeline(embedder_dir, reranker_dir)
    if name == "langchain":
        return LangChainPipeline(embedder_dir, reranker_dir)
    raise ValueError(f"unknown pipeline {name!r}")
