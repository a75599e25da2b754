"""Adapters for the frameworks people build RAG applications with; each is an optional extra, imported only when
its module is: ``rapidrag.integrations.langchain`` (``pip install 'rapidrag[langchain]'``) and
``rapidrag.integrations.llama_index`` (``pip install 'rapidrag[llama-index]'``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["hit_metadata", "search", "search_params"]

log = logging.getLogger("rapidrag.integrations")

SEARCH_OPTIONS = frozenset({"k", "filter", "mode", "rerank", "candidates", "budget_ms", "per_document"})


def search_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Retriever.search`` keyword arguments: the adapter's settings, then the call's; an unknown name is an
    error that lists the known ones."""
    unknown = sorted(set(overrides) - SEARCH_OPTIONS)
    if unknown:
        raise TypeError(f"unknown search option(s) {', '.join(unknown)}; known: {', '.join(sorted(SEARCH_OPTIONS))}")
    return {name: value for name, value in {**defaults, **overrides}.items() if value is not None}


def hit_metadata(hit: Any) -> dict[str, Any]:
    """The document's metadata plus where the passage comes from (doc id, chunk, character span) and each stage's
    score; the citation fields win over metadata keys of the same name."""
    return {
        **hit.metadata,
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "start": hit.start,
        "end": hit.end,
        "score": hit.score,
        "scores": dict(hit.scores),
    }


def search(retriever: Any, query: str, params: Mapping[str, Any]) -> Any:
    """``retriever.search(query, **params)``, logging as warnings what the frameworks' document lists have no place
    to say: a partial answer of an index split in shards (``missing_shards``), and why a filter that found fewer
    hits than asked may select less than meant (``filter_notes``)."""
    hits = retriever.search(query, **params)
    missing = getattr(hits, "missing_shards", None)
    if missing:
        log.warning("a partial answer to %r: shards %s of the index did not answer", query, missing)
    if params.get("filter") and len(hits) < params.get("k", 10):
        for note in retriever.filter_notes(params["filter"]):
            log.warning("the filter of the search for %r: %s", query, note)
    return hits
