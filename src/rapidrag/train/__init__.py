"""Fine-tuning rapidrag's models on your own judged queries (``pip install 'rapidrag[train]'``).

``train_reranker`` (``rapidrag train reranker``) turns a Hugging Face checkpoint folder into a cross-encoder model
folder that ``Reranker``, ``rapidrag index`` and ``rapidrag quantize`` load as they are. Training data are a corpus,
queries and training qrels in the formats ``rapidrag index`` reads; a dev split carved out of those qrels chooses
the number of steps and the fusion weight, and hard negatives come from rapidrag's own hybrid retriever.

Importing this package imports no framework; torch and transformers are imported when training starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainReport", "train_reranker"]


def __getattr__(name: str) -> Any:
    if name in ("train_reranker", "TrainReport"):
        from . import reranker

        return getattr(reranker, name)
    raise AttributeError(f"module 'rapidrag.train' has no attribute {name!r}")
