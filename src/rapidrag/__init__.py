"""rapidrag: latency-optimized retrieval for retrieval-augmented generation, with a native core.

Importing the package is light: the native core loads on first use of a component, and nothing heavy
(FAISS, ONNX Runtime) is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BM25",
    "BatchEncoding",
    "Chunk",
    "Chunker",
    "Context",
    "Document",
    "Embedder",
    "Hit",
    "RerankResult",
    "Reranker",
    "Retriever",
    "Tokenizer",
    "__version__",
    "evaluate",
    "ground",
    "pack",
    "quantize",
    "set_cores",
]

if TYPE_CHECKING:
    from .chunker import Chunk, Chunker
    from .context import Context, pack
    from .embedder import Embedder
    from .grounding import ground
    from .lexical import BM25
    from .quantization import quantize
    from .reranker import Reranker, RerankResult
    from .tokenizer import BatchEncoding, Tokenizer

_LAZY = {
    "Tokenizer": "tokenizer",
    "BatchEncoding": "tokenizer",
    "Chunker": "chunker",
    "Chunk": "chunker",
    "Embedder": "embedder",
    "BM25": "lexical",
    "Reranker": "reranker",
    "RerankResult": "reranker",
    "quantize": "quantization",
    "Retriever": "retriever",
    "Document": "retriever",
    "Hit": "retriever",
    "evaluate": "retriever",
    "set_cores": "cores",
    "Context": "context",
    "pack": "context",
    "ground": "grounding",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rapidrag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the submodules loaded so far (not the names this file imports for typing)."""
    return sorted(
        {n for n in globals() if not n.startswith("_")} - {"Any", "TYPE_CHECKING", "annotations"} | set(__all__)
    )
