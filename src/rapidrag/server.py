"""The HTTP retrieval service: ``rapidrag serve DIR`` (``pip install 'rapidrag[serve]'``: FastAPI on uvicorn).

Routes (JSON): ``POST /search``, ``POST /documents`` (add or replace; with ``skip_unchanged``, what the index holds
as it is left alone), ``DELETE /documents/{id}``, ``POST /save``,
``POST /compact`` (the dense index drops the vectors of deleted documents it still holds), ``POST /index-options``
(the dense index's search settings, such as ``ef_search``, changed while serving), ``GET /stats``,
``POST /reload`` (the index's folder opened again after another writer saved it), ``GET /healthz`` (liveness)
and ``GET /readyz`` (readiness: 503 while a shard of a split index has no live replica); ``POST /context`` (the
generator's context: hits packed to a token budget with citations, and the query's cost at given prices) and
``POST /ground`` (an answer's sentences checked against a context); the OpenAPI schema at ``/openapi.json``.
Routes in the shape of hosted model APIs, so that their clients can point here: ``POST /v2/rerank`` (Cohere v2),
``POST /v1/rerank`` (Cohere v1 and Jina), ``POST /rerank`` (Hugging Face text-embeddings-inference), all scored by
the index's reranker, and ``POST /v1/embeddings`` (OpenAI) by its embedder.
``GET /metrics``: Prometheus text format 0.0.4.

The index is one (``Retriever``) or split in shards (``rapidrag.distributed.ShardedRetriever``, in this process or
on a Ray cluster): the routes are the same, and a search's answer (and a context's) says which shards could not
answer (``missing_shards``, empty for a whole answer), so that a partial answer is never a silent one.

- Searches run in parallel on the server's thread pool (the native and ONNX Runtime stages release the GIL, and
  ``rapidrag._onnx.CORES`` keeps their threads within the cores). Writes go through the retriever's lock: a
  request's documents (at most ``max_batch``, within one of the retriever's atomic batches) become visible to
  searches all at once, replacing their old versions in the same step.
- With an API key (``--api-key`` or ``RAPIDRAG_API_KEY``), every route but ``/healthz`` and ``/readyz`` needs
  it, ``/metrics`` included (a Prometheus scrape sends it with ``authorization: {credentials: KEY}``), as
  ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in constant time.
- Changes made through the service are in memory until ``POST /save``; ``/stats`` counts those the last save
  does not hold (``unsaved_changes``), and as the service stops it saves them with ``save_on_exit`` (``serve
  --save-on-exit``), else logs a warning saying how many are lost.
- Another writer of the index folder (``rapidrag index --update``, ``rapidrag tune``, a second service) loses
  nothing to this one: ``POST /save`` over a snapshot saved since this service loaded or saved its own answers 409
  (``rapidrag.persist``), and as the service stops such changes are saved beside the folder instead. ``POST
  /reload``, or ``watch_s`` (``serve --watch SECONDS``), moves the service to the folder's newest snapshot while
  searches go on (409 while it has changes no save holds); ``/stats`` names the snapshot served (``generation``).
- An index split in shards that cannot do what was asked (a shard with no live replica left: a change for it, or
  a search with none at all) answers 503 with ``Retry-After``; a search that some shards answered is a 200 that
  names the others (``missing_shards``).
- Limits: the body size (413), ``k``, ``candidates``, the query's length, the documents per request, the texts per
  rerank or embeddings request and each text's length (422), each answered with a message saying which. Errors
  are ``{"detail": message}`` (on ``/v1/embeddings`` with OpenAI's ``{"error": {"message", ...}}`` beside it, the
  field its clients show), never a traceback or a path.
- The rerank and embeddings routes accept any ``model``: an index has one reranker and one embedder, so there is
  nothing to choose, and a client configured for a hosted model name works unchanged; the response's ``model``
  (where the reference API has one) names the folder of the model that answered. An index without the model
  answers 404 naming it (404, not 409: the OpenAI and Cohere clients retry a 409).

One module because it is one concern, the service: its routes, their request schemas (built from the limits
``create_app`` is given) and the request metrics its middleware keeps; the model routes only translate between the
reference APIs' shapes and the Reranker's and Embedder's calls.
"""

# No "from __future__ import annotations": FastAPI reads the route signatures' annotations at run time, and the
# request models are local to create_app (their limits come from its arguments).
import asyncio
import base64
import bisect
import collections
import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

try:
    from fastapi import Depends, FastAPI, HTTPException, Request, status
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Match
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the server needs FastAPI and uvicorn: pip install 'rapidrag[serve]'") from e

import numpy as np
import numpy.typing as npt

from .documents import Hit
from .embedder import Embedder
from .errors import IndexConflictError, ModelError, RapidragError, ShardUnavailableError
from .metrics import percentiles
from .process import freeze_loaded
from .reranker import Reranker
from .retriever import Retriever, check_query
from .search import check_index
from .update import upsert_changed

if TYPE_CHECKING:
    from .distributed import ShardedRetriever

__all__ = ["Limits", "create_app", "serve"]

log = logging.getLogger("rapidrag.server")

API_KEY_ENV = "RAPIDRAG_API_KEY"
STATS_WINDOW = 10_000  # searches whose stage times /stats summarises
RETRIEVER_BATCH = 1024  # documents the retriever makes visible in one step (Retriever.add)
# What the retriever raises for input it refuses (a bad filter, document or value): answered 422 with its message.
# A request's bad input (422): every input error of rapidrag is a ValueError; ShardUnavailableError, the index unable
# to answer now, is not, and goes on to its 503 handler.
BAD_INPUT = (ValueError, TypeError, OverflowError)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """What one request may ask; beyond it the server answers 413 (body) or 422 (the rest) with a message."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_k: int = 100
    max_candidates: int = 1000
    max_query_chars: int = 2000
    max_batch: int = 1000
    max_budget_ms: float = 60_000.0
    max_rerank_documents: int = 1000  # per rerank request (Cohere's advice: no more than 1,000)
    max_embed_inputs: int = 2048  # per embeddings request (OpenAI's limit)
    max_text_chars: int = 100_000  # per document of a rerank request, per text of an embeddings request, per answer
    max_context_tokens: int = 32_768  # the budget of a POST /context

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_k",
            "max_candidates",
            "max_query_chars",
            "max_batch",
            "max_rerank_documents",
            "max_embed_inputs",
            "max_text_chars",
            "max_context_tokens",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {getattr(self, name)!r}")
        budget = self.max_budget_ms
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < float("inf"):
            raise ValueError(f"Limits.max_budget_ms must be a positive number, got {budget!r}")
        if self.max_batch > RETRIEVER_BATCH:
            raise ValueError(f"Limits.max_batch is at most {RETRIEVER_BATCH} (one atomic step of the retriever)")


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the application reads any of it.

    A declared Content-Length over the limit is refused at once; a body without one (chunked) is read up to the
    limit and refused as soon as it exceeds it; a body within the limit is passed on as it was received."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                await self._refuse(send, 400, "Content-Length is not a number")
                return
            if too_big:
                await self._refuse(send, 413, f"the request body is over the limit of {self.limit} bytes")
                return
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send, 413, f"the request body is over the limit of {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break
        replay = iter(received)

        async def replayed() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, replayed, send)

    @staticmethod
    async def _refuse(send: Send, code: int, message: str) -> None:
        response = JSONResponse({"detail": message}, status_code=code, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _Stats:
    """Counts and the stage times of the last ``STATS_WINDOW`` searches, for ``GET /stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, collections.deque[float]] = {}
        self.searches = 0
        self.started = time.time()

    def record(self, timings: dict[str, float]) -> None:
        with self._lock:
            self.searches += 1
            for stage, ms in timings.items():
                window = self._stages.setdefault(stage.removesuffix("_ms"), collections.deque(maxlen=STATS_WINDOW))
                window.append(ms)

    def percentiles(self) -> dict[str, dict[str, float]]:
        with self._lock:
            windows = {stage: list(values) for stage, values in self._stages.items()}
        return {stage: {**percentiles(values), "count": len(values)} for stage, values in windows.items()}


# Prometheus: the text exposition format 0.0.4, written here (no dependency; a registry per app, so that several
# apps in one process, as in the tests, keep their own counts). Latencies in seconds, as Prometheus names them.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OPENAI_SHAPED = frozenset({"/v1/embeddings"})  # routes whose errors also carry OpenAI's error object
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})  # others count as "other"


class _Histogram:
    """Observations (seconds) by bucket, their sum and count; cumulated into ``le`` buckets when rendered."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last: over the largest bound
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1  # the first bound >= seconds
        self.sum += seconds
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, total = [], 0
        bounds = [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]
        for bound, n in zip(bounds, self.counts, strict=True):
            total += n
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{bound}"}} {total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum!r}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class _Metrics:
    """Request counts and latencies per route, and search stage latencies, for ``GET /metrics``; thread-safe
    (requests are counted on the event loop, stages recorded from the thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._stages: dict[str, _Histogram] = {}

    def request(self, route: str, method: str, code: int, seconds: float) -> None:
        key = (route, method if method in _METHODS else "other", str(code))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault(route, _Histogram()).observe(seconds)

    def stages(self, timings: dict[str, float]) -> None:
        with self._lock:
            for stage, ms in timings.items():
                self._stages.setdefault(stage.removesuffix("_ms"), _Histogram()).observe(ms / 1000.0)

    def render(self, documents: int, chunks: int) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, text: str) -> None:
            lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])

        with self._lock:
            family("rapidrag_requests_total", "counter", "HTTP requests answered, by route, method and status code.")
            for (route, method, code), n in sorted(self._requests.items()):
                lines.append(f'rapidrag_requests_total{{route="{_label(route)}",method="{method}",code="{code}"}} {n}')
            name = "rapidrag_request_duration_seconds"
            family(name, "histogram", "Time from a request's arrival to the end of its response, by route.")
            for route, hist in sorted(self._latency.items()):
                lines.extend(hist.lines(name, f'route="{_label(route)}"'))
            name = "rapidrag_search_stage_seconds"
            family(name, "histogram", "Time of each stage of the searches of POST /search (their timings).")
            for stage, hist in sorted(self._stages.items()):
                lines.extend(hist.lines(name, f'stage="{_label(stage)}"'))
        family("rapidrag_documents", "gauge", "Documents in the index.")
        lines.append(f"rapidrag_documents {documents}")
        family("rapidrag_chunks", "gauge", "Chunks in the index.")
        lines.append(f"rapidrag_chunks {chunks}")
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A label value escaped as the text format requires (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Instrument:
    """ASGI middleware, outermost: counts every response (the body limit's 413s too) by its route's template and
    status code, and times it to the end of its body; an exception that escapes counts as a 500."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500
        finished: float | None = None

        async def sending(message: Message) -> None:
            nonlocal code, finished
            if message["type"] == "http.response.start":
                code = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            end = finished if finished is not None else time.perf_counter()
            self.metrics.request(self._route(scope), str(scope.get("method", "")), code, end - started)

    def _route(self, scope: Scope) -> str:
        """The template of the route that answered (``/documents/{doc_id:path}``, never the raw path, which would
        make a series per document), else of the route the path matches (a request refused before routing),
        else "unmatched"."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        partial = None
        for route in self.routes():
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(route.path)
            if match is Match.PARTIAL and partial is None:
                partial = str(route.path)
        return partial or "unmatched"


# The reference APIs' responses, for the OpenAPI schema (the routes build them as dicts: fields a request did not
# ask for are left out, as the references leave them out).
class RerankedDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str


class RerankResult(BaseModel):
    index: int = Field(description="the document's position in the request")
    relevance_score: float = Field(description="sigmoid of the reranker's logit, in [0, 1]")
    document: RerankedDocument | None = Field(default=None, description="when return_documents")


class CohereV2RerankResponse(BaseModel):
    id: str
    results: list[RerankResult] = Field(description="by descending relevance_score")
    meta: dict[str, Any] = Field(description='{"api_version": {"version"}, "tokens": {"input_tokens", ...}}')


class CohereV1RerankResponse(CohereV2RerankResponse):
    model: str = Field(description="the reranker that answered (its folder's name)")
    usage: dict[str, int] = Field(description='{"total_tokens"}, as Jina gives it')


class TeiRank(BaseModel):
    index: int
    score: float = Field(description="sigmoid of the logit, or the logit with raw_scores")
    text: str | None = Field(default=None, description="when return_text")


class EmbeddingOut(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingOut]
    model: str = Field(description="the embedder that answered (its folder's name)")
    usage: EmbeddingsUsage


@dataclass(frozen=True)
class _Ranked:
    """A rerank request's answer: the documents' positions best first, their scores both ways, the tokens run."""

    order: list[int]
    logits: npt.NDArray[np.float64]
    probabilities: npt.NDArray[np.float64]
    tokens: int | None  # None for a reranker that is not a rapidrag.Reranker (no tokenizer to count with)
    model: str


def _model_name(model: object) -> str:
    folder = getattr(model, "folder", None)
    return folder.name if isinstance(folder, Path) else type(model).__name__


BLANK_LOGIT = -100.0  # the logit given an empty or blank document by the rerank routes (relevance 0), ranked last


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow for large |x|


def _texts_check(field: str, limit: int, max_chars: int, *, objects: bool) -> Callable[[Any], Any]:
    """A validator of a list of texts (``objects``: or of objects with a str "text"), run before the type
    check, so that a non-text, an empty list or a limit gets one message naming the item and the limit."""
    expected = "a string or an object with a string 'text'" if objects else "a string"
    if not objects and field == "documents":
        expected += " (objects with a 'text' go to POST /v1/rerank)"

    def check(value: Any) -> Any:
        if not isinstance(value, list):
            return value  # the type check says what was expected
        if not value:
            raise ValueError(f"{field} is empty: send at least one")
        if len(value) > limit:
            raise ValueError(f"{len(value)} {field}: over this server's limit of {limit} per request")
        for i, item in enumerate(value):
            text = item.get("text") if objects and isinstance(item, dict) else item
            if not isinstance(text, str):
                raise ValueError(f"{field}[{i}] is {_kind(item, objects)}: each must be {expected}")
            _check_text(f"{field}[{i}]", text, max_chars)
        return value

    return check


def _kind(value: object, objects: bool) -> str:
    if isinstance(value, dict):
        return "an object without a string 'text'" if objects else "an object"
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(type(value), "null")


def _check_text(where: str, text: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise ValueError(f"{where} has {len(text)} characters: over this server's limit of {max_chars}")


def _input_check(max_inputs: int, max_chars: int) -> Callable[[Any], Any]:
    """The validator of an embeddings request's ``input``: a non-empty str or list of them; token ids refused."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("input is an empty string: give the text to embed")
            _check_text("input", value, max_chars)
            return value
        if not isinstance(value, list):
            return value  # the type check says what was expected
        if not value:
            raise ValueError("input is an empty list: give at least one text")
        if any(isinstance(v, (int, list)) and not isinstance(v, bool) for v in value):
            raise ValueError("input holds token ids: this server embeds text, send a string or a list of strings")
        if len(value) > max_inputs:
            raise ValueError(f"{len(value)} inputs: over this server's limit of {max_inputs} per request")
        for i, text in enumerate(value):
            if not isinstance(text, str):
                raise ValueError(f"input[{i}] is {_kind(text, False)}: each must be a string")
            if not text:
                raise ValueError(f"input[{i}] is an empty string: give the text to embed")
            _check_text(f"input[{i}]", text, max_chars)
        return value

    return check


def _meta(version: str, tokens: int | None) -> dict[str, Any]:
    """Cohere's ``meta`` of a rerank response: its API version, and the tokens the reranker ran when counted."""
    meta: dict[str, Any] = {"api_version": {"version": version}}
    if tokens is not None:
        meta["tokens"] = {"input_tokens": tokens, "output_tokens": 0}
    return meta


class _JSON(JSONResponse):
    """JSONResponse, except that a lone surrogate (a client's ``\\ud800`` escape, echoed back in a document) is
    written as its escape instead of failing the response."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def create_app(
    retriever: "Retriever | ShardedRetriever",
    *,
    index_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    limits: Limits | None = None,
    save_on_exit: bool = False,
    watch_s: float | None = None,
) -> FastAPI:
    """The service over ``retriever`` (one index, or one split in shards); ``POST /save`` writes to ``index_dir``
    and ``POST /reload`` reads it again (409 without one). When the service stops with changes its last save does
    not hold (``unsaved_changes``), it saves them to ``index_dir`` with ``save_on_exit``, else logs a warning that
    they are lost. ``watch_s``: look at ``index_dir`` every ``watch_s`` seconds and reload it when another writer
    has saved it (``Retriever.reload``; skipped, with a warning, while the service has unsaved changes)."""
    check_index(retriever)
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ValueError("api_key must be a non-empty str (or None for no key)")
    lim = limits or Limits()
    save_dir = Path(index_dir) if index_dir is not None else None
    if save_on_exit and save_dir is None:
        raise ValueError("save_on_exit needs index_dir: the folder to save to")
    if watch_s is not None:
        if isinstance(watch_s, bool) or not isinstance(watch_s, (int, float)) or not 0 < watch_s < float("inf"):
            raise ValueError(f"watch_s must be a number of seconds > 0, got {watch_s!r}")
        if save_dir is None:
            raise ValueError("watch_s needs index_dir: the folder to watch")
    stats = _Stats()
    metrics = _Metrics()
    default_mode = retriever.default_mode

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        query: str = Field(min_length=1, max_length=lim.max_query_chars)
        k: int = Field(default=10, ge=1, le=lim.max_k)
        filter: dict[str, Any] | None = Field(default=None, description="a Mongo-style metadata filter")
        mode: Literal["hybrid", "dense", "lexical"] | None = Field(default=None, description=f"default {default_mode}")
        rerank: bool | None = Field(default=None, description="default: rerank when the index has a reranker")
        budget_ms: float | None = Field(default=None, gt=0, le=lim.max_budget_ms)
        candidates: int = Field(default=100, ge=1, le=lim.max_candidates)
        per_document: bool = True

    class SearchResponse(BaseModel):
        hits: list[Hit]
        timings_ms: dict[str, float]
        missing_shards: list[int] = Field(
            default_factory=list,
            description="an index split in shards: those that could not answer, so the hits are a partial answer",
        )
        filter_notes: list[str] = Field(
            default_factory=list,
            description="a filtered search that found fewer hits than asked: why the filter may select less than "
            "meant (a field no document has, a value of a kind its field never holds)",
        )

    class Prices(BaseModel):
        model_config = ConfigDict(extra="forbid")

        input: float = Field(ge=0, allow_inf_nan=False, description="per million input tokens")
        output: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="per million output tokens")
        output_tokens: int = Field(default=0, ge=0, description="tokens of an answer")

    class ContextRequest(SearchRequest):
        k: int = Field(default=20, ge=1, le=lim.max_k, description="hits to pack from")
        per_document: bool = False  # several chunks of a document, so that neighbours merge
        budget_tokens: int = Field(default=1000, ge=0, le=lim.max_context_tokens)
        strategy: Literal["chunks", "window", "sentences"] | None = Field(default=None, description="default: best")
        window_tokens: int = Field(default=256, ge=1, le=lim.max_context_tokens)
        sentence_window: int = Field(default=1, ge=0, le=50)
        merge: bool = True
        dedupe: float | None = Field(default=0.95, gt=0, le=1)
        diversity: float = Field(default=0.0, ge=0, le=1)
        order: Literal["score", "edges"] = "score"
        prices: Prices | None = Field(default=None, description="to report the query's cost")

    class GroundRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        answer: str = Field(min_length=1, max_length=lim.max_text_chars)
        context: dict[str, Any] | None = Field(default=None, description="a context as POST /context returned it")
        query: str | None = Field(
            default=None, min_length=1, max_length=lim.max_query_chars, description="or: pack a context for it"
        )
        budget_tokens: int = Field(default=1000, ge=0, le=lim.max_context_tokens)

    class DocumentIn(BaseModel):
        model_config = ConfigDict(extra="forbid")

        id: str = Field(min_length=1, max_length=1024)
        text: str
        title: str = ""
        metadata: dict[str, Any] = Field(default_factory=dict)

    class DocumentsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        documents: list[DocumentIn] = Field(min_length=1, max_length=lim.max_batch)
        skip_unchanged: bool = Field(
            default=False,
            description="leave alone the documents the index holds as they are, and give those whose metadata alone "
            "changed their metadata without embedding them again (rapidrag.update.upsert_changed); else every "
            "document is indexed again",
        )

    any_model = "accepted, any value: the index's one model answers"
    texts_schema: dict[str, Any] = {"minItems": 1, "maxItems": lim.max_rerank_documents}  # checked by the validators
    strings = BeforeValidator(_texts_check("documents", lim.max_rerank_documents, lim.max_text_chars, objects=False))
    strings_or_objects = BeforeValidator(
        _texts_check("documents", lim.max_rerank_documents, lim.max_text_chars, objects=True)
    )
    tei_texts = BeforeValidator(_texts_check("texts", lim.max_rerank_documents, lim.max_text_chars, objects=False))

    class CohereV2RerankRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str | None = Field(default=None, description=any_model)
        query: str = Field(min_length=1, max_length=lim.max_query_chars)
        documents: Annotated[list[str], strings] = Field(json_schema_extra=texts_schema)
        top_n: int | None = Field(default=None, ge=1, description="return the best top_n; default: all")
        return_documents: bool = Field(default=False, description="each result's document as {text}")
        max_tokens_per_doc: int | None = Field(default=None, ge=1, description="score each document's first tokens")
        priority: int | None = Field(default=None, description="accepted, no effect")

    class CohereV1RerankRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str | None = Field(default=None, description=any_model)
        query: str = Field(min_length=1, max_length=lim.max_query_chars)
        documents: Annotated[list[str | dict[str, Any]], strings_or_objects] = Field(json_schema_extra=texts_schema)
        top_n: int | None = Field(default=None, ge=1, description="return the best top_n; default: all")
        return_documents: bool | None = Field(
            default=None, description="each result's document (an object as given, a string as {text}); default true"
        )
        rank_fields: list[str] | None = Field(default=None, description="only ['text']")
        max_chunks_per_doc: int | None = Field(default=None, ge=1, description="accepted; long documents are cut")

    class TeiRerankRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        query: str = Field(min_length=1, max_length=lim.max_query_chars)
        texts: Annotated[list[str], tei_texts] = Field(json_schema_extra=texts_schema)
        truncate: bool | None = Field(default=None, description="false: a pair over the reranker's length is 422")
        truncation_direction: Literal["right", "Right"] = "right"
        raw_scores: bool = Field(default=False, description="the logit instead of its sigmoid")
        return_text: bool = False

    class EmbeddingsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        input: Annotated[str | list[str], BeforeValidator(_input_check(lim.max_embed_inputs, lim.max_text_chars))]
        model: str | None = Field(default=None, description=any_model)
        encoding_format: Literal["float", "base64"] = Field(
            default="float", description="base64: of the little-endian float32 values"
        )
        dimensions: int | None = Field(default=None, ge=1, description="the first d, normalised again")
        user: str | None = Field(default=None, description="accepted, no effect")

    bearer = HTTPBearer(auto_error=False, description="the API key as a bearer token")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
    expected = _digest(api_key) if api_key is not None else None

    def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        key: Annotated[str | None, Depends(header_key)],
    ) -> None:
        if expected is None:
            return
        given = credentials.credentials if credentials is not None else key
        # compare_digest takes the same time wherever the two differ; hashing both first hides the key's length.
        if given is None or not hmac.compare_digest(_digest(given), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"}
            )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watching = None
        if watch_s is not None and save_dir is not None:
            watching = asyncio.create_task(_watch(retriever, save_dir, watch_s))
        try:
            yield
        finally:
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            _on_exit(retriever, save_dir if save_on_exit else None)

    guarded = [Depends(authorize)]
    app = FastAPI(
        title="rapidrag",
        summary="Retrieval for RAG: hybrid search with citations, within a latency budget",
        openapi_url=None,  # served below, behind the API key
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return _error(request, 422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path in OPENAI_SHAPED:
            return _error(request, exc.status_code, str(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(ShardUnavailableError)
    async def unavailable(request: Request, exc: ShardUnavailableError) -> JSONResponse:
        # A shard of a split index with no live replica: the index cannot answer this now (503, try again).
        return _error(request, 503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s %s", request.method, request.url.path)
        return _error(request, 500, "internal error (logged by the server)")

    def _unprocessable(e: Exception) -> HTTPException:
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e))

    @app.get("/healthz", summary="liveness: the index is loaded")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="readiness: every shard of the index can answer (503 naming those that cannot)")
    def readyz() -> JSONResponse:
        missing = retriever.missing_shards()
        if missing:  # (searches answer from the other shards, partial answers that say so)
            return JSONResponse({"status": "degraded", "missing_shards": missing}, status_code=503)
        return JSONResponse({"status": "ready", "missing_shards": []})

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    def notes_of(body: SearchRequest, found: int) -> list[str]:
        """A filtered search that found fewer than ``body.k`` hits: why the filter may select less than meant."""
        return retriever.filter_notes(body.filter) if body.filter and found < body.k else []

    @app.post("/search", response_model=SearchResponse, dependencies=guarded, summary="search the index")
    def search(body: SearchRequest) -> dict[str, Any]:
        params = body.model_dump(exclude={"query"})
        try:
            hits = retriever.search(body.query, **params)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        stats.record(hits.timings)
        metrics.stages(hits.timings)
        return {
            "hits": [h.to_dict() for h in hits],  # the CLI's encoding too
            "timings_ms": {stage.removesuffix("_ms"): ms for stage, ms in hits.timings.items()},
            "missing_shards": hits.missing_shards,
            "filter_notes": notes_of(body, len(hits)),
        }

    def packed(body: ContextRequest) -> tuple[Any, dict[str, float], list[str]]:
        """The search, then its hits packed (both timed for /stats and /metrics)."""
        from .context import pack

        search_params = body.model_dump(include=set(SearchRequest.model_fields) - {"query"})
        packing = body.model_dump(exclude=set(SearchRequest.model_fields) | {"budget_tokens", "prices", "strategy"})
        if body.strategy is not None:
            packing["strategy"] = body.strategy
        try:
            hits = retriever.search(body.query, **search_params)
            context = pack(hits, body.budget_tokens, source=retriever, query=body.query, **packing)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        timings = {**hits.timings, "pack_ms": context.pack_ms}
        stats.record(timings)
        metrics.stages(timings)
        return context, timings, notes_of(body, len(hits))

    @app.post("/context", dependencies=guarded, summary="the generator's context: hits packed to a token budget")
    def context_route(body: ContextRequest) -> dict[str, Any]:
        context, timings, notes = packed(body)
        out: dict[str, Any] = {"context": context.to_dict(), "filter_notes": notes}
        if body.prices is not None:
            p = body.prices
            out["cost"] = context.cost(p.input, p.output, output_tokens=p.output_tokens).to_dict()
        out["timings_ms"] = {stage.removesuffix("_ms"): ms for stage, ms in timings.items()}
        return out

    @app.post("/ground", dependencies=guarded, summary="check an answer's sentences against its context")
    def ground_route(body: GroundRequest) -> dict[str, Any]:
        from .context import Context
        from .grounding import ground

        if (body.context is None) == (body.query is None):
            raise _unprocessable(
                ValueError("give either context (as POST /context returned it) or query (a context is packed for it)")
            )
        try:
            if body.context is not None:
                context = Context.from_dict(body.context)
            else:
                context, _, _ = packed(ContextRequest(query=body.query or "", budget_tokens=body.budget_tokens))
            result = ground(body.answer, context, source=retriever)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        out = {"grounding": result.to_dict()}
        if body.context is None:
            out["context"] = context.to_dict()
        return out

    @app.post("/documents", dependencies=guarded, summary="add documents, replacing those of the same id")
    def upsert(body: DocumentsRequest) -> dict[str, int]:
        docs = [d.model_dump() for d in body.documents]
        try:
            if not body.skip_unchanged:
                return {"documents": len(docs), "chunks": retriever.upsert(docs, progress=False)}
            done = upsert_changed(retriever, docs, progress=False)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        return {
            "documents": len(docs),
            "chunks": done.chunks,
            "added": len(done.added),
            "changed": len(done.changed),
            "metadata_changed": len(done.metadata_changed),
            "unchanged": done.unchanged,
        }

    @app.get(
        "/documents/{doc_id:path}",
        dependencies=guarded,
        summary="a document as indexed: its text (what hits' start and end point into), title and metadata",
    )
    def document(doc_id: str) -> dict[str, Any]:
        doc = retriever.get(doc_id)
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r}")
        return doc.to_dict()

    @app.delete("/documents/{doc_id:path}", dependencies=guarded, summary="delete a document")
    def delete(doc_id: str) -> dict[str, int]:
        if not retriever.delete([doc_id]):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r}")
        return {"deleted": 1}

    @app.post("/save", dependencies=guarded, summary="save the index where it was loaded from, atomically")
    def save() -> dict[str, Any]:
        if save_dir is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this server was started without an index folder to save to")
        started = time.perf_counter()
        try:
            retriever.save(save_dir)
        except ShardUnavailableError:
            raise
        except IndexConflictError as e:  # another writer saved the folder since: its snapshot stays
            raise HTTPException(status.HTTP_409_CONFLICT, _public(str(e), save_dir)) from None
        except (RapidragError, OSError) as e:
            log.error("save failed: %s", e)
            failed = "the save failed (logged by the server)"
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, failed) from None
        return {"saved": True, "generation": retriever.generation, "seconds": time.perf_counter() - started}

    class ReloadRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        discard: bool = Field(default=False, description="drop the changes no save holds (else 409 while any)")

    @app.post("/reload", dependencies=guarded, summary="search the index folder's newest snapshot (saved by another)")
    def reload(body: ReloadRequest | None = None) -> dict[str, Any]:
        if save_dir is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this server was started without an index folder to read")
        started = time.perf_counter()
        try:
            reloaded = retriever.reload(save_dir, discard=body is not None and body.discard)
        except ShardUnavailableError:
            raise
        except (IndexConflictError, ModelError) as e:  # unsaved changes; a snapshot of another embedder
            raise HTTPException(status.HTTP_409_CONFLICT, _public(str(e), save_dir)) from None
        except (RapidragError, OSError) as e:  # (an unreadable snapshot: the one served stays)
            log.error("reload failed: %s", e)
            failed = "the reload failed (logged by the server); the index served is unchanged"
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, failed) from None
        if reloaded:
            log.info("reloaded %s: generation %s, %d documents", save_dir, retriever.generation, len(retriever))
        return {
            "reloaded": reloaded,
            "generation": retriever.generation,
            "documents": len(retriever),
            "chunks": retriever.n_chunks,
            "seconds": time.perf_counter() - started,
        }

    @app.post("/compact", dependencies=guarded, summary="drop the vectors of deleted documents still held")
    def compact() -> dict[str, Any]:
        # An HNSW index keeps deleted rows in its graph until compacted (searches skip them, at a cost in time and
        # memory); a flat one drops them by itself in batches. Searches go on while the graph is rebuilt.
        started = time.perf_counter()
        dropped = retriever.compact()
        return {"dropped_vectors": dropped, "seconds": time.perf_counter() - started}

    @app.post("/index-options", dependencies=guarded, summary="change the dense index's search settings")
    def set_index_options(body: dict[str, int | float | None]) -> dict[str, Any]:
        # The settings searches read (ef_search, compact_fraction, nprobe, refine, exact_fraction, exact_rows,
        # n_threads): all checked before any changes; the next searches use them, and POST /save keeps them.
        if not body:
            raise _unprocessable(ValueError('give the settings to change, such as {"ef_search": 64}'))
        try:
            options = retriever.set_index_options(**body)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        return {"dense_index": {"kind": retriever.index_kind, **options}}

    @app.get("/stats", dependencies=guarded, summary="counts, the dense index's settings, stage latency (ms)")
    def get_stats() -> dict[str, Any]:
        options = retriever.index_options  # (those it serves with: the saved ones, or serve's --index-option)
        return {
            "documents": len(retriever),
            "chunks": retriever.n_chunks,
            "removed_vectors": retriever.removed_vectors,
            "unsaved_changes": retriever.unsaved_changes,
            "generation": retriever.generation,
            "dense_index": {"kind": retriever.index_kind, **options} if options else None,
            "shards": _layout(retriever),
            "searches": stats.searches,
            "uptime_s": time.time() - stats.started,
            "latency_ms": stats.percentiles(),
        }

    def rank(query: str, texts: list[str], *, doc_tokens: int | None = None, truncate: bool = True) -> _Ranked:
        """The index's reranker on (query, text) pairs: 404 without one, 422 for a blank query, for documents all
        empty or blank (or a pair over the reranker's length when not ``truncate``). An empty or blank document
        among others is not scored (a model's score for no text means nothing; the shared reranker's ranked ""
        first): it comes last, relevance 0 and logit ``BLANK_LOGIT``."""
        reranker = retriever.reranker
        if reranker is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "this index has no reranker, so the rerank routes cannot answer: serve an index built or loaded "
                "with one (rapidrag index --reranker FOLDER)",
            )
        kept = [i for i, text in enumerate(texts) if text.strip()]
        try:
            check_query(query)
            if not kept:
                raise ValueError("every document is empty or blank: give the texts to rank")
            scored = [texts[i] for i in kept]
            tokens = None
            if isinstance(reranker, Reranker):
                # Tokens counted as the reranker runs them: [CLS] query [SEP] text [SEP], the text cut to fit.
                tokenizer = reranker.tokenizer
                counts = tokenizer.count_tokens([query, *scored])
                base = int(counts[0]) + int(tokenizer.encode_pairs("", [""], padding=False).lengths[0])
                lengths = base + counts[1:]
                if not truncate and (over := np.flatnonzero(lengths > reranker.max_length)).size:
                    i = int(over[0])
                    raise ValueError(
                        f"texts[{kept[i]}] and the query come to {int(lengths[i])} tokens: over the reranker's limit "
                        f"of {reranker.max_length} (send truncate: true to score the text's beginning)"
                    )
                limit = reranker.max_length
                if doc_tokens is not None:
                    limit = max(4, min(limit, base + doc_tokens))  # the query is the same in every pair
                tokens = int(np.minimum(lengths, limit).sum())
                raw = reranker.score(query, scored, max_length=limit)
            else:
                raw = reranker.score(query, scored)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != (len(scored),) or np.isnan(scores).any():
            raise RuntimeError(f"the reranker gave scores of shape {scores.shape} or NaN for {len(scored)} texts")
        logits = np.full(len(texts), BLANK_LOGIT)
        probabilities = np.zeros(len(texts))
        if getattr(reranker, "activation", "none") == "sigmoid":  # its scores are probabilities already
            p = np.clip(scores, 1e-12, 1.0 - 1e-12)
            logits[kept], probabilities[kept] = np.log(p) - np.log1p(-p), scores
        else:
            logits[kept], probabilities[kept] = scores, _sigmoid(scores)
        order = [kept[j] for j in np.argsort(-scores, kind="stable").tolist()]  # best first; ties in the order given
        order += sorted(set(range(len(texts))).difference(kept))  # the empty or blank, in the order given
        return _Ranked(order, logits, probabilities, tokens, _model_name(reranker))

    @app.post(
        "/v2/rerank",
        dependencies=guarded,
        summary="rerank documents (Cohere v2 rerank)",
        responses={200: {"model": CohereV2RerankResponse}},
    )
    def rerank_v2(body: CohereV2RerankRequest) -> JSONResponse:
        ranked = rank(body.query, body.documents, doc_tokens=body.max_tokens_per_doc)
        results = []
        for i in ranked.order[: body.top_n]:
            result: dict[str, Any] = {"index": i, "relevance_score": float(ranked.probabilities[i])}
            if body.return_documents:
                result["document"] = {"text": body.documents[i]}
            results.append(result)
        return _JSON({"id": str(uuid.uuid4()), "results": results, "meta": _meta("2", ranked.tokens)})

    @app.post(
        "/v1/rerank",
        dependencies=guarded,
        summary="rerank documents (Cohere v1 and Jina rerank)",
        responses={200: {"model": CohereV1RerankResponse}},
    )
    def rerank_v1(body: CohereV1RerankRequest) -> JSONResponse:
        if body.rank_fields is not None and body.rank_fields != ["text"]:
            raise _unprocessable(
                ValueError(f"rank_fields {body.rank_fields}: only ['text'] is supported (put what to rank in 'text')")
            )
        texts = [d if isinstance(d, str) else str(d["text"]) for d in body.documents]
        ranked = rank(body.query, texts)
        results = []
        for i in ranked.order[: body.top_n]:
            result: dict[str, Any] = {"index": i, "relevance_score": float(ranked.probabilities[i])}
            # Returned unless refused: Jina's default, and Cohere's clients take a document they did not ask for.
            if body.return_documents is not False:
                given = body.documents[i]
                result["document"] = {"text": given} if isinstance(given, str) else given
            results.append(result)
        out: dict[str, Any] = {"id": str(uuid.uuid4()), "model": ranked.model, "results": results}
        out["meta"] = _meta("1", ranked.tokens)
        if ranked.tokens is not None:
            out["usage"] = {"total_tokens": ranked.tokens}
        return _JSON(out)

    @app.post(
        "/rerank",
        dependencies=guarded,
        summary="rerank texts (text-embeddings-inference rerank)",
        responses={200: {"model": list[TeiRank]}},
    )
    def rerank_tei(body: TeiRerankRequest) -> JSONResponse:
        ranked = rank(body.query, body.texts, truncate=body.truncate is not False)  # TEI truncates by default
        scores = ranked.logits if body.raw_scores else ranked.probabilities
        out = []
        for i in ranked.order:
            rank_: dict[str, Any] = {"index": i, "score": float(scores[i])}
            if body.return_text:
                rank_["text"] = body.texts[i]
            out.append(rank_)
        return _JSON(out)

    @app.post(
        "/v1/embeddings",
        dependencies=guarded,
        summary="embed texts (OpenAI embeddings)",
        responses={200: {"model": EmbeddingsResponse}},
    )
    def embeddings(body: EmbeddingsRequest) -> JSONResponse:
        embedder = retriever.embedder
        if embedder is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "this index has no embedder (it is lexical only), so POST /v1/embeddings cannot answer: serve an "
                "index built with one (rapidrag index --embedder FOLDER)",
            )
        texts = [body.input] if isinstance(body.input, str) else body.input
        width = int(embedder.dim)
        if body.dimensions is not None and body.dimensions > width:
            raise _unprocessable(ValueError(f"dimensions {body.dimensions}: this server's embedder gives {width}"))
        try:
            # Tokens counted as the embedder runs them: special tokens in, cut at its max_length.
            counts = embedder.tokenizer.count_tokens(texts)
            special = int(embedder.tokenizer.encode_batch([""], padding=False).lengths[0])
            tokens = int(np.minimum(counts + special, embedder.max_length).sum())
            if isinstance(embedder, Embedder):
                vectors = embedder.embed(texts, lengths=counts)  # counted once
            else:
                vectors = embedder.embed(texts)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if body.dimensions is not None and body.dimensions < width:
            # As OpenAI and text-embeddings-inference shorten a vector: its first values, normalised again. Only a
            # model trained for it (Matryoshka) keeps its quality so.
            vectors = vectors[:, : body.dimensions]
            if getattr(embedder, "normalize", True):
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if body.encoding_format == "base64":
            encoded: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            encoded = vectors.tolist()
        return _JSON(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
                "model": _model_name(embedder),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @app.get(
        "/metrics",
        dependencies=guarded,
        summary="Prometheus metrics: requests, latencies, index size (text format 0.0.4)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def get_metrics() -> Response:
        return Response(metrics.render(len(retriever), retriever.n_chunks), media_type=PROMETHEUS_CONTENT_TYPE)

    app.add_middleware(_BodyLimit, limit=lim.max_body_bytes)
    app.add_middleware(_Instrument, metrics=metrics, routes=lambda: app.router.routes)  # outermost: sees the 413s
    return app


def _error(request: Request, code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``{"detail": message}``; on the routes in OpenAI's shape also OpenAI's ``{"error": {"message", ...}}``, the
    field its clients put in the exception they raise (without it they say only "Error code: 422")."""
    content: dict[str, Any] = {"detail": message}
    if request.url.path in OPENAI_SHAPED:
        content["error"] = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse(content, status_code=code, headers=headers)


def _on_exit(retriever: Any, save_dir: Path | None) -> None:
    """(As the service stops) save the changes the last save does not hold to ``save_dir``, or with None say on
    the log that they are lost. If another writer saved ``save_dir`` since, its snapshot stays and the changes are
    saved beside it, in a new folder the log names."""
    count = retriever.unsaved_changes
    if not count:
        return
    changes = f"{count} change{'s' if count != 1 else ''}"
    if save_dir is None:
        log.warning(
            "%s since the last save are not saved and are lost as the server stops (POST /save first, or serve "
            "with --save-on-exit)",
            changes,
        )
        return
    try:
        retriever.save(save_dir)
    except IndexConflictError:
        aside = save_dir.with_name(f"{save_dir.name}.unsaved-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        try:
            retriever.save(aside)
        except (RapidragError, OSError):
            log.exception(
                "saving %s as the server stops failed (%s was saved by another writer since)", changes, save_dir
            )
            return
        log.warning(
            "%s was saved by another writer since this server loaded or saved it: its snapshot stays, and the %s "
            "made through this server are saved to %s instead",
            save_dir,
            changes,
            aside,
        )
        return
    except (RapidragError, OSError):
        log.exception("saving %s to %s as the server stops failed: the last save stays", changes, save_dir)
        return
    log.info("saved %s to %s as the server stops", changes, save_dir)


async def _watch(retriever: Any, folder: Path, every_s: float) -> None:
    """Every ``every_s`` seconds, reload ``retriever`` from ``folder`` if another writer has saved it since
    (``reload``, on a worker thread: searches go on). What stops a reload is logged once per snapshot."""
    import anyio.to_thread

    refused: str | None = None  # the generation a reload was refused for (said once)
    while True:
        await asyncio.sleep(every_s)
        try:
            reloaded = await anyio.to_thread.run_sync(retriever.reload, folder)
        except Exception as e:  # (whatever it is, the index served stays, and the watch goes on)
            from .persist import current_generation

            now = current_generation(folder)
            if now != refused:
                refused = now
                log.warning("%s changed on disk and is not reloaded: %s", folder, e)
            continue
        if reloaded:
            refused = None
            log.info("reloaded %s: generation %s, %d documents", folder, retriever.generation, len(retriever))


def _public(message: str, folder: Path) -> str:
    """``message`` with the index folder's path left out (the service's answers name no path)."""
    for form in {str(folder.resolve()), str(folder)}:
        message = message.replace(form, "the index folder")
    return message


def _layout(retriever: Any) -> dict[str, Any] | None:
    """An index split in shards: how many, their replicas and where they run (None for one index)."""
    if isinstance(retriever, Retriever):
        return None
    return {"n_shards": retriever.n_shards, "replicas": retriever.replicas, "backend": retriever.backend}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def serve(
    retriever: "Retriever | ShardedRetriever",
    *,
    index_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
    save_on_exit: bool = False,
    watch_s: float | None = None,
) -> None:
    """Serve ``retriever`` until interrupted (uvicorn, one process; searches in parallel on its thread pool).
    What is loaded by then is frozen out of the garbage collector's full collections (``process.freeze_loaded``).
    ``save_on_exit``, ``watch_s``: as in ``create_app``."""
    import uvicorn

    app = create_app(
        retriever, index_dir=index_dir, api_key=api_key, limits=limits, save_on_exit=save_on_exit, watch_s=watch_s
    )
    freeze_loaded()
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
