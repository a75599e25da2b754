"""The HTTP retrieval service: ``rapidrag serve DIR`` (``pip install 'rapidrag[serve]'``: FastAPI on uvicorn).

Routes (JSON): ``POST /search``, ``POST /documents`` (add or replace), ``DELETE /documents/{id}``, ``POST /save``,
``GET /stats`` and ``GET /healthz``; the OpenAPI schema at ``/openapi.json``.

- Searches run in parallel on the server's thread pool (the native and ONNX Runtime stages release the GIL, and
  ``rapidrag._onnx.CORES`` keeps their threads within the cores). Writes go through the retriever's lock: a
  request's documents (at most ``max_batch``, within one of the retriever's atomic batches) become visible to
  searches all at once, replacing their old versions in the same step.
- With an API key (``--api-key`` or ``RAPIDRAG_API_KEY``), every route but ``/healthz`` needs it, as
  ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in constant time.
- Limits: the body size (413), ``k``, ``candidates``, the query's length and the documents per request (422),
  each answered with a message saying which. Errors are ``{"detail": message}``, never a traceback or a path.
"""

# No "from __future__ import annotations": FastAPI reads the route signatures' annotations at run time, and the
# request models are local to create_app (their limits come from its arguments).
import collections
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

try:
    from fastapi import Depends, FastAPI, HTTPException, Request, status
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the server needs FastAPI and uvicorn: pip install 'rapidrag[serve]'") from e

from .documents import Hit
from .errors import RapidragError
from .metrics import percentiles
from .retriever import Retriever

__all__ = ["Limits", "create_app", "serve"]

log = logging.getLogger("rapidrag.server")

API_KEY_ENV = "RAPIDRAG_API_KEY"
STATS_WINDOW = 10_000  # searches whose stage times /stats summarises
RETRIEVER_BATCH = 1024  # documents the retriever makes visible in one step (Retriever.add)
# What the retriever raises for input it refuses (a bad filter, document or value): answered 422 with its message.
BAD_INPUT = (RapidragError, ValueError, TypeError, OverflowError)

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

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_k", "max_candidates", "max_query_chars", "max_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {getattr(self, name)!r}")
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


def create_app(
    retriever: Retriever,
    *,
    index_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """The service over ``retriever``; ``POST /save`` writes to ``index_dir`` (409 without one)."""
    if not isinstance(retriever, Retriever):
        raise TypeError(f"retriever must be a rapidrag.Retriever, not {type(retriever).__name__}")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ValueError("api_key must be a non-empty str (or None for no key)")
    lim = limits or Limits()
    save_dir = Path(index_dir) if index_dir is not None else None
    stats = _Stats()
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

    class DocumentIn(BaseModel):
        model_config = ConfigDict(extra="forbid")

        id: str = Field(min_length=1, max_length=1024)
        text: str
        title: str = ""
        metadata: dict[str, Any] = Field(default_factory=dict)

    class DocumentsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        documents: list[DocumentIn] = Field(min_length=1, max_length=lim.max_batch)

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

    guarded = [Depends(authorize)]
    app = FastAPI(
        title="rapidrag",
        summary="Retrieval for RAG: hybrid search with citations, within a latency budget",
        openapi_url=None,  # served below, behind the API key
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged by the server)"}, status_code=500)

    def _unprocessable(e: Exception) -> HTTPException:
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e))

    @app.get("/healthz", summary="liveness: the index is loaded")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.post("/search", response_model=SearchResponse, dependencies=guarded, summary="search the index")
    def search(body: SearchRequest) -> dict[str, Any]:
        params = body.model_dump(exclude={"query"})
        try:
            hits = retriever.search(body.query, **params)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        stats.record(hits.timings)
        return {
            "hits": [h.to_dict() for h in hits],  # the CLI's encoding too
            "timings_ms": {stage.removesuffix("_ms"): ms for stage, ms in hits.timings.items()},
        }

    @app.post("/documents", dependencies=guarded, summary="add documents, replacing those of the same id")
    def upsert(body: DocumentsRequest) -> dict[str, int]:
        docs = [d.model_dump() for d in body.documents]
        try:
            chunks = retriever.upsert(docs, progress=False)
        except BAD_INPUT as e:
            raise _unprocessable(e) from None
        return {"documents": len(docs), "chunks": chunks}

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
        except (RapidragError, OSError) as e:
            log.error("save failed: %s", e)
            failed = "the save failed (logged by the server)"
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, failed) from None
        return {"saved": True, "seconds": time.perf_counter() - started}

    @app.get("/stats", dependencies=guarded, summary="counts and stage latency percentiles (ms)")
    def get_stats() -> dict[str, Any]:
        return {
            "documents": len(retriever),
            "chunks": retriever.n_chunks,
            "searches": stats.searches,
            "uptime_s": time.time() - stats.started,
            "latency_ms": stats.percentiles(),
        }

    app.add_middleware(_BodyLimit, limit=lim.max_body_bytes)
    return app


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def serve(
    retriever: Retriever,
    *,
    index_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``retriever`` until interrupted (uvicorn, one process; searches in parallel on its thread pool)."""
    import uvicorn

    app = create_app(retriever, index_dir=index_dir, api_key=api_key, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
