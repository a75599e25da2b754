"""A rapidrag ``Retriever`` as a LangChain retriever (``pip install 'rapidrag[langchain]'``).

    from rapidrag.integrations.langchain import RapidragRetriever
    lc = RapidragRetriever(retriever=rapidrag.Retriever.load("scifact.idx"), k=4)
    docs = lc.invoke("vitamin D and bone loss")            # also ainvoke, batch, invoke(query, k=2, filter=...)

Each ``Document`` holds the passage (the chunk's text) and, in its metadata, the document's own metadata plus
``doc_id``, ``chunk_id``, the character span ``start``/``end`` in the document text, ``score`` and ``scores``
(each stage's score). ``Document.id`` is the rapidrag document id.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any, Literal

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import BeforeValidator, ConfigDict, Field
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain adapter needs langchain-core: pip install 'rapidrag[langchain]'") from e

from ..search import Searcher, check_index
from . import hit_metadata, search, search_params

__all__ = ["RapidragRetriever"]


class RapidragRetriever(BaseRetriever):
    """LangChain ``BaseRetriever`` over a ``rapidrag.Retriever`` (or a ``ShardedRetriever``).

    ``k``, ``filter`` (a Mongo-style metadata filter), ``mode``, ``rerank``, ``candidates`` and ``budget_ms`` are
    the defaults of every search; ``invoke(query, **options)`` overrides any of them for one call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Annotated[Searcher, BeforeValidator(check_index)]
    k: int = Field(default=4, ge=1)
    filter: dict[str, Any] | None = None
    mode: Literal["hybrid", "dense", "lexical"] | None = None  # None: the index's (hybrid when it has vectors)
    rerank: bool | None = None
    candidates: int = Field(default=100, ge=1)
    budget_ms: float | None = Field(default=None, gt=0)

    def _defaults(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "filter": self.filter,
            "mode": self.mode,
            "rerank": self.rerank,
            "candidates": self.candidates,
            "budget_ms": self.budget_ms,
        }

    def _search(self, query: str, options: dict[str, Any]) -> list[Document]:
        hits = search(self.retriever, query, search_params(self._defaults(), options))
        return [Document(page_content=h.text, metadata=hit_metadata(h), id=h.doc_id) for h in hits]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **options: Any
    ) -> list[Document]:
        return self._search(query, options)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **options: Any
    ) -> list[Document]:
        # The search releases the GIL in its native and ONNX Runtime stages; run it off the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self._search, query, options))
