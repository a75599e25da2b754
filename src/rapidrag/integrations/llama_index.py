"""A rapidrag ``Retriever`` as a LlamaIndex retriever (``pip install 'rapidrag[llama-index]'``).

    from rapidrag.integrations.llama_index import RapidragRetriever
    li = RapidragRetriever(retriever=rapidrag.Retriever.load("scifact.idx"), k=4)
    nodes = li.retrieve("vitamin D and bone loss")         # also aretrieve; a query engine takes it as is

Each ``NodeWithScore`` holds a ``TextNode`` with the passage, its character span in the document text
(``start_char_idx``/``end_char_idx``), the document as its source (``node.ref_doc_id``), and in its metadata the
document's metadata plus ``doc_id``, ``chunk_id``, ``start``, ``end`` and ``scores`` (each stage's score).

``filter`` takes a Mongo-style dict, as ``Retriever.search`` does, or LlamaIndex ``MetadataFilters``, mapped
operator by operator (==, !=, >, >=, <, <=, in, nin; AND and OR, nested); any other operator is an error that
names it, never a filter silently dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilters
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the LlamaIndex adapter needs llama-index-core: pip install 'rapidrag[llama-index]'") from e

from ..search import Searcher, check_index
from . import hit_metadata, search, search_params

__all__ = ["RapidragRetriever", "to_mongo_filter"]

_OPERATORS = {
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
_CONDITIONS = {FilterCondition.AND: "$and", FilterCondition.OR: "$or"}


def to_mongo_filter(filters: MetadataFilters | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A LlamaIndex ``MetadataFilters`` as the Mongo-style filter ``Retriever.search`` takes (a dict passes as is)."""
    if filters is None or isinstance(filters, Mapping):
        return None if filters is None else dict(filters)
    if not isinstance(filters, MetadataFilters):
        raise TypeError(f"filter must be a dict or llama_index MetadataFilters, not {type(filters).__name__}")
    given = filters.condition or FilterCondition.AND
    condition = _CONDITIONS.get(given)
    if condition is None:
        raise ValueError(f"filter condition {given.value!r} is not supported (only 'and' and 'or')")
    parts: list[dict[str, Any]] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(to_mongo_filter(f) or {})
        elif f.operator == FilterOperator.EQ:
            parts.append({f.key: f.value})
        elif f.operator in _OPERATORS:
            parts.append({f.key: {_OPERATORS[f.operator]: f.value}})
        else:
            supported = ", ".join(["==", *(op.value for op in _OPERATORS)])
            raise ValueError(f"filter operator {f.operator.value!r} on {f.key!r} is not supported ({supported})")
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {condition: parts}


class RapidragRetriever(BaseRetriever):
    """LlamaIndex ``BaseRetriever`` over a ``rapidrag.Retriever`` (or a ``ShardedRetriever``); ``k``, ``filter``,
    ``mode`` (None: the index's, hybrid when it has vectors), ``rerank``, ``candidates`` and ``budget_ms`` are the
    settings of every search."""

    def __init__(
        self,
        retriever: Searcher,
        k: int = 4,
        filter: MetadataFilters | Mapping[str, Any] | None = None,
        mode: str | None = None,
        rerank: bool | None = None,
        candidates: int = 100,
        budget_ms: float | None = None,
        **kwargs: Any,
    ) -> None:
        check_index(retriever)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.retriever = retriever
        self.k = k
        self.filter = filter
        self.mode = mode
        self.rerank = rerank
        self.candidates = candidates
        self.budget_ms = budget_ms
        self._mongo_filter = to_mongo_filter(filter)  # a bad filter fails here, not at the first query
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        defaults = {
            "k": self.k,
            "filter": self._mongo_filter,
            "mode": self.mode,
            "rerank": self.rerank,
            "candidates": self.candidates,
            "budget_ms": self.budget_ms,
        }
        hits = search(self.retriever, query_bundle.query_str, search_params(defaults, {}))
        return [
            NodeWithScore(
                node=TextNode(
                    id_=f"{h.doc_id}#{h.chunk_id}",
                    text=h.text,
                    metadata=hit_metadata(h),
                    start_char_idx=h.start,
                    end_char_idx=h.end,
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=h.doc_id)},
                ),
                score=h.score,
            )
            for h in hits
        ]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.get_running_loop().run_in_executor(None, self._retrieve, query_bundle)
