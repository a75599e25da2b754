"""Fine-tuning rapidrag's models on your own judged queries (``pip install 'rapidrag[train]'``).

``train_reranker`` (``rapidrag train reranker``) turns a Hugging Face checkpoint folder into a cross-encoder model
folder that ``Reranker``, ``rapidrag index`` and ``rapidrag quantize`` load as they are, or distils a smaller
student from such a folder; ``train_embedder`` (``rapidrag train embedder``) does the same for a sentence embedder.
Training data are a corpus, queries and training qrels in the formats ``rapidrag index`` reads; a dev split carved
out of those qrels chooses the number of steps (and a reranker's fusion weight), and hard negatives come from
rapidrag's own hybrid retriever.

Importing this package imports no framework; torch and transformers are imported when training starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainReport", "train_embedder", "train_reranker"]


def __getattr__(name: str) -> Any:
    if name == "train_reranker":
        from .reranker import train_reranker

        return train_reranker
    if name == "train_embedder":
        from .embedder import train_embedder

        return train_embedder
    if name == "TrainReport":
        from .common import TrainReport

        return TrainReport
    raise AttributeError(f"module 'rapidrag.train' has no attribute {name!r}")
