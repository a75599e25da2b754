"""The HTTP service: a real uvicorn server on loopback and a real HTTP client (httpx).

Authentication, validation and limits (4xx with a message, never 5xx, never a traceback or a path), the routes'
behaviour, saves, a consistency test with searches running while another thread writes, and schemathesis against
the server's own OpenAPI schema (bounded)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rapidrag
from rapidrag.retriever import Retriever

pytest.importorskip("fastapi")  # the test extra installs the serve extra; skip only outside it
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from rapidrag.server import Limits, create_app  # noqa: E402

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCS = [
    {"id": "vit", "text": "Vitamin D deficiency causes bone loss in older adults.", "metadata": {"year": 2019}},
    {"id": "calc", "text": "Calcium and vitamin D supplements slow bone loss.", "metadata": {"year": 2022}},
    {"id": "iron", "text": "Iron deficiency causes anemia; iron supplements help.", "metadata": {"year": 2021}},
    {"id": "heart", "text": "Statins lower cholesterol and the risk of heart attack.", "metadata": {"year": 2024}},
]
LIMITS = Limits(max_body_bytes=64 * 1024, max_k=50, max_query_chars=500, max_batch=20)


class Server:
    """uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def store(minilm_dir: Path, reranker_dir: Path) -> Retriever:
    r = Retriever(embedder=rapidrag.Embedder(minilm_dir, quantized=True), reranker=rapidrag.Reranker(reranker_dir))
    r.add(DOCS)
    return r


@pytest.fixture(scope="module")
def index_dir(store: Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "index"
    store.save(path)
    return path


@pytest.fixture(scope="module")
def server(store: Retriever, index_dir: Path) -> Iterator[Server]:
    s = Server(create_app(store, index_dir=index_dir, api_key=KEY, limits=LIMITS))
    yield s
    s.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        yield c


def assert_clean_error(response: httpx.Response, code: int, *needles: str) -> None:
    """The status, a JSON ``{"detail": str}`` naming the problem, and nothing of the server's insides."""
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for needle in needles:
        assert needle in detail, detail
    assert "Traceback" not in response.text and "site-packages" not in response.text and "/work" not in response.text


def test_api_key_on_every_route_but_healthz(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready", "missing_shards": []}  # (one index: always)
        for method, path, body in [
            ("POST", "/search", {"query": "bone"}),
            ("POST", "/documents", {"documents": [{"id": "x", "text": "x"}]}),
            ("DELETE", "/documents/vit", None),
            ("GET", "/documents/vit", None),
            ("POST", "/save", None),
            ("POST", "/compact", None),
            ("GET", "/stats", None),
            ("GET", "/openapi.json", None),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"}, {"X-API-Key": ""}):
                r = anonymous.request(method, path, json=body, headers=headers)
                assert_clean_error(r, 401, "API key")
        # Either header carries the key.
        assert anonymous.post("/search", json={"query": "bone"}, headers={"X-API-Key": KEY}).status_code == 200
        assert anonymous.post("/search", json={"query": "bone"}, headers=AUTH).status_code == 200
        assert anonymous.get("/openapi.json", headers=AUTH).json()["info"]["title"] == "rapidrag"


def test_search_returns_cited_hits_and_stage_times(client: httpx.Client, store: Retriever) -> None:
    body = client.post("/search", json={"query": "vitamin D and bone loss", "k": 3, "rerank": False}).json()
    hits = body["hits"]
    assert len(hits) == 3 and {h["doc_id"] for h in hits[:2]} == {"vit", "calc"}
    for h in hits:
        source = store.get(h["doc_id"])
        assert source is not None and source.text[h["start"] : h["end"]] == h["text"]
        assert "fused" in h["scores"] and {"bm25", "dense"} & set(h["scores"])
        assert h["metadata"]["year"] == source.metadata["year"]
    assert {"embed", "lexical", "dense", "fusion", "total"} <= set(body["timings_ms"])
    # The same answer as the library gives, filters applied, the reranker within a budget.
    direct = store.search("vitamin D and bone loss", k=3, rerank=False)
    assert [h["doc_id"] for h in hits] == [h.doc_id for h in direct]
    filtered = client.post("/search", json={"query": "bone", "filter": {"year": {"$gte": 2021}}}).json()
    assert filtered["hits"] and all(h["metadata"]["year"] >= 2021 for h in filtered["hits"])
    assert filtered["filter_notes"] == []
    # A filtered search that finds fewer hits than asked says why the filter may select less than meant.
    misspelt = client.post("/search", json={"query": "bone", "filter": {"yaer": 2021}}).json()
    assert misspelt["hits"] == [] and misspelt["filter_notes"][0].startswith("no document has the field 'yaer'")
    typed = client.post("/search", json={"query": "bone", "filter": {"year": "2021"}}).json()
    assert typed["filter_notes"] == ["the field 'year' holds numbers, so '2021' matches nothing"]
    reranked = client.post("/search", json={"query": "bone loss", "budget_ms": 500, "mode": "hybrid"}).json()
    assert "rerank" in reranked["hits"][0]["scores"] and "rerank" in reranked["timings_ms"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "bone", "k": 51}, "body.k"),
        ({"query": "bone", "k": 0}, "body.k"),
        ({"query": "b" * 501}, "body.query"),
        ({"query": ""}, "body.query"),
        ({"query": "   "}, "the query is blank: give the words to search for"),
        ({"k": 3}, "body.query: Field required"),
        ({"query": "bone", "mode": "fuzzy"}, "body.mode"),
        ({"query": "bone", "budget_ms": -1}, "body.budget_ms"),
        ({"query": "bone", "candidates": 10**6}, "body.candidates"),
        ({"query": "bone", "top_n": 3}, "body.top_n: Extra inputs are not permitted"),
        ({"query": "bone", "filter": {"year": {"$regex": "20"}}}, "unknown operator '$regex'"),
        ({"query": "bone", "filter": {"$or": []}}, "$or takes a non-empty list"),
        ({"query": "bone", "filter": {"year": {"$gt": [1]}}}, "filter['year']['$gt']: values are"),
        ({"query": ["bone"]}, "body.query"),
    ],
)
def test_bad_search_requests_get_422_with_the_problem(client: httpx.Client, body: Any, needle: str) -> None:
    assert_clean_error(client.post("/search", json=body), 422, needle)


def test_malformed_bodies_and_size_limits(client: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    assert_clean_error(client.post("/search", content=b"{not json", headers=headers), 422, "JSON")
    assert_clean_error(client.post("/search", content=b"[1, 2]", headers=headers), 422)
    assert_clean_error(client.post("/search", content=b"\xff\xfe{}", headers=headers), 422)
    # A lone surrogate (valid JSON escape, invalid Unicode) is refused by the retriever with a message.
    lone = client.post("/search", content=b'{"query": "bone \\ud800 loss"}', headers=headers)
    assert lone.status_code in (200, 422) and "Traceback" not in lone.text
    big = json.dumps({"query": "bone", "filter": {"pad": "x" * 70_000}}).encode()
    assert_clean_error(client.post("/search", content=big, headers=headers), 413, "over the limit of 65536 bytes")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"query": "bone", "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    assert_clean_error(client.post("/search", content=chunked(), headers=headers), 413, "over the limit")
    too_many = {"documents": [{"id": str(i), "text": "t"} for i in range(21)]}
    assert_clean_error(client.post("/documents", json=too_many), 422, "body.documents")


def test_documents_upsert_delete_and_save(client: httpx.Client, store: Retriever, index_dir: Path) -> None:
    new = [{"id": "scurvy", "text": "Scurvy comes from a lack of vitamin C.", "metadata": {"year": 1753}}]
    assert client.post("/documents", json={"documents": new}).json() == {"documents": 1, "chunks": 1}
    hits = client.post("/search", json={"query": "what causes scurvy", "k": 1, "rerank": False}).json()["hits"]
    assert hits[0]["doc_id"] == "scurvy" and hits[0]["metadata"] == {"year": 1753}
    new[0]["text"] = "Scurvy is cured by citrus fruit."
    assert client.post("/documents", json={"documents": new}).status_code == 200
    assert store.get("scurvy").text == "Scurvy is cured by citrus fruit."
    # Bad documents: 422 naming the problem, nothing stored.
    before = len(store)
    for docs, needle in [
        ([{"id": "a", "text": "t"}, {"id": "a", "text": "u"}], "twice"),
        ([{"id": "a", "text": "t", "metadata": {"n": 10**400}}], "int too large"),
        ([{"id": "a", "text": 5}], "body.documents.0.text"),
        ([{"text": "t"}], "body.documents.0.id"),
        ([{"id": "a", "text": "t", "metadata": [1]}], "body.documents.0.metadata"),
    ]:
        assert_clean_error(client.post("/documents", json={"documents": docs}), 422, needle)
        assert len(store) == before and store.get("a") is None
    # A document as indexed: the text its hits' spans point into.
    hit = client.post("/search", json={"query": "scurvy", "k": 1}).json()["hits"][0]
    doc = client.get(f"/documents/{hit['doc_id']}").json()
    assert doc == store.get(hit["doc_id"]).to_dict()  # type: ignore[union-attr]
    assert doc["text"][hit["start"] : hit["end"]] == hit["text"]
    # Delete, then 404; ids with a slash work too.
    assert client.delete("/documents/scurvy").json() == {"deleted": 1}
    assert_clean_error(client.delete("/documents/scurvy"), 404, "no document 'scurvy'")
    assert_clean_error(client.get("/documents/scurvy"), 404, "no document 'scurvy'")
    dated = {"id": "a/b", "text": "slashed id", "title": "T", "metadata": {"n": 1, "tags": ["x"]}}
    assert client.post("/documents", json={"documents": [dated]}).status_code == 200
    assert client.get("/documents/a/b").json() == {**dated, "text": "T slashed id"}  # the title leads the text
    assert client.delete("/documents/a/b").json() == {"deleted": 1}
    # Save: atomic, to the folder the server was started with; the saved index answers the same.
    assert client.post("/save").json()["saved"] is True
    reloaded = Retriever.load(index_dir)
    assert len(reloaded) == len(store)
    expect = [h.doc_id for h in store.search("bone loss", rerank=False)]
    assert [h.doc_id for h in reloaded.search("bone loss", rerank=False)] == expect


def test_stats_and_save_without_a_folder(client: httpx.Client, store: Retriever) -> None:
    client.post("/search", json={"query": "heart attack", "rerank": False})
    stats = client.get("/stats").json()
    assert stats["documents"] == len(store) and stats["chunks"] == store.n_chunks and stats["searches"] >= 1
    assert stats["dense_index"] == {"kind": "flat", "n_threads": 1}
    total = stats["latency_ms"]["total"]
    assert 0 < total["p50"] <= total["p95"] <= total["p99"] and total["count"] >= 1
    bare = Server(create_app(store))
    try:
        with httpx.Client(base_url=bare.url, timeout=60) as c:
            assert_clean_error(c.post("/save"), 409, "without an index folder")
            assert c.post("/search", json={"query": "bone"}).status_code == 200  # no key configured: open
    finally:
        bare.stop()


def test_compact_drops_the_vectors_of_deleted_documents(minilm_dir: Path) -> None:
    # An HNSW index keeps a deleted document's vectors in its graph (skipped by searches) until compacted: /stats
    # counts them, POST /compact drops them, and the answers stay those of the index.
    hnsw = Retriever(embedder=rapidrag.Embedder(minilm_dir, quantized=True), index="hnsw")
    hnsw.add(DOCS)
    served = Server(create_app(hnsw, api_key=KEY, limits=LIMITS))
    try:
        with httpx.Client(base_url=served.url, headers=AUTH, timeout=60) as c:
            stats = c.get("/stats").json()
            assert stats["removed_vectors"] == 0 and stats["dense_index"] == {"kind": "hnsw", **hnsw.index_options}
            assert stats["dense_index"]["ef_search"] == 128 and stats["dense_index"]["compact_fraction"] is None
            assert c.delete("/documents/vit").json() == {"deleted": 1}
            assert c.get("/stats").json()["removed_vectors"] == 1 and hnsw.dense is not None and hnsw.dense.dead == 1
            body = {"query": "vitamin D and bone loss", "mode": "dense", "k": 3}
            before = [h["doc_id"] for h in c.post("/search", json=body).json()["hits"]]
            assert "vit" not in before and len(before) == 3
            done = c.post("/compact").json()
            assert done["dropped_vectors"] == 1 and done["seconds"] >= 0
            assert c.get("/stats").json()["removed_vectors"] == 0 and hnsw.dense.dead == 0
            assert [h["doc_id"] for h in c.post("/search", json=body).json()["hits"]] == before
            assert c.post("/compact").json()["dropped_vectors"] == 0
            # The search settings change while it serves: checked (422 naming the problem, nothing changed).
            changed = c.post("/index-options", json={"ef_search": 16, "compact_fraction": 0.25}).json()["dense_index"]
            assert changed == {**stats["dense_index"], "ef_search": 16, "compact_fraction": 0.25}
            assert hnsw.dense.ef_search == 16 and c.get("/stats").json()["dense_index"] == changed
            assert [h["doc_id"] for h in c.post("/search", json=body).json()["hits"]] == before
            for bad, needle in [
                ({"hnsw_m": 8}, "hnsw_m fixes how the index is built"),
                ({"ef_search": 32, "nprobe": 4}, "nprobe is not used by a hnsw index"),
                ({"ef_search": 0}, "ef_search must be an int >= 1"),
                ({"n_threads": 10**6}, "n_threads must be at most 1024"),
                ({"ef_search": "many"}, "body.ef_search"),
                ({}, "give the settings to change"),
            ]:
                assert_clean_error(c.post("/index-options", json=bad), 422, needle)
            assert c.get("/stats").json()["dense_index"] == changed
            assert (
                c.post("/index-options", json={"compact_fraction": None}).json()["dense_index"]["compact_fraction"]
                is None
            )
        with httpx.Client(base_url=served.url, timeout=60) as anonymous:
            assert_clean_error(anonymous.post("/compact"), 401, "API key")
            assert_clean_error(anonymous.post("/index-options", json={"ef_search": 8}), 401, "API key")
    finally:
        served.stop()


def test_an_index_split_in_shards_is_served_as_one(
    minilm_dir: Path, reranker_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``ShardedRetriever`` behind the same routes: searches, contexts and grounding answer as the library does
    (the answers say no shard is missing), writes reach the owning shards, ``/save`` writes a sharded folder that
    opens as one, ``/stats`` gives the layout, an index that cannot answer is a 503; and ``rapidrag serve`` opens a
    sharded folder."""
    from rapidrag.cli import main
    from rapidrag.distributed import MISSING, ShardedRetriever

    embedder = rapidrag.Embedder(minilm_dir, quantized=True)
    index = ShardedRetriever(embedder, rapidrag.Reranker(reranker_dir, quantized=True), n_shards=2)
    index.add(DOCS)
    folder = tmp_path / "sharded"
    served = Server(create_app(index, index_dir=folder, api_key=KEY, limits=LIMITS))
    try:
        with httpx.Client(base_url=served.url, headers=AUTH, timeout=60) as c:
            for body in (
                {"query": "vitamin D and bone loss", "k": 3, "rerank": False},
                {"query": "iron", "mode": "lexical"},
            ):
                answer = c.post("/search", json=body).json()
                direct = index.search(**body)
                assert [(h["doc_id"], h["start"], h["end"]) for h in answer["hits"]] == [
                    (h.doc_id, h.start, h.end) for h in direct
                ]
                assert [h["score"] for h in answer["hits"]] == pytest.approx([h.score for h in direct], abs=1e-6)
                assert answer["missing_shards"] == []
            reranked = c.post("/search", json={"query": "bone loss", "budget_ms": 500}).json()
            assert "rerank" in reranked["hits"][0]["scores"] and reranked["missing_shards"] == []
            packed = c.post("/context", json={"query": "what causes anemia", "budget_tokens": 60}).json()["context"]
            assert packed["items"][0]["doc_id"] == "iron" and packed["missing_shards"] == []
            assert packed["tokens"] <= 60
            grounded = c.post(
                "/ground", json={"answer": "Iron deficiency causes anemia.", "query": "what causes anemia"}
            ).json()
            assert grounded["grounding"]["sentences"][0]["status"] == "supported"
            stats = c.get("/stats").json()
            assert stats["shards"] == {"n_shards": 2, "replicas": 1, "backend": "local"}
            assert stats["documents"] == len(DOCS) and stats["chunks"] == index.n_chunks
            # A change of search settings reaches every shard; a refused one none.
            assert c.post("/index-options", json={"n_threads": 2}).json()["dense_index"]["n_threads"] == 2
            assert [shard[0].retriever.dense.n_threads for shard in index._shards] == [2, 2]
            assert_clean_error(
                c.post("/index-options", json={"n_threads": 1, "ef_search": 8}), 422, "not used by a flat"
            )
            assert [shard[0].retriever.dense.n_threads for shard in index._shards] == [2, 2]
            new = [{"id": "scurvy", "text": "Scurvy comes from a lack of vitamin C.", "metadata": {"year": 1753}}]
            assert c.post("/documents", json={"documents": new}).json() == {"documents": 1, "chunks": 1}
            assert c.post("/search", json={"query": "scurvy", "k": 1}).json()["hits"][0]["doc_id"] == "scurvy"
            assert c.get("/documents/scurvy").json() == {**new[0], "title": ""}  # from the shard that owns it
            assert c.delete("/documents/heart").json() == {"deleted": 1} and index.get("heart") is None
            assert_clean_error(c.get("/documents/heart"), 404, "no document 'heart'")
            assert_clean_error(c.delete("/documents/heart"), 404, "no document 'heart'")
            assert c.post("/save").json()["saved"] is True
            # No shard with a live replica (the coordinator's mark for each, as a Ray index whose actors all died
            # gives): 503 with Retry-After, naming it, for a search and for a count over every shard.
            assert c.get("/readyz").json() == {"status": "ready", "missing_shards": []}
            real = ShardedRetriever._all
            with monkeypatch.context() as m:
                m.setattr(
                    ShardedRetriever, "_all", lambda self, method, *args: [MISSING] * len(real(self, method, *args))
                )
                for response in (c.post("/search", json={"query": "bone"}), c.get("/stats")):
                    assert_clean_error(response, 503, "live replica")
                    assert response.headers["retry-after"] == "1"
                not_ready = c.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json() == {"status": "degraded", "missing_shards": [0, 1]}
        reopened = ShardedRetriever.load(folder)
        assert reopened.n_shards == 2 and len(reopened) == len(index) == len(DOCS)
        query = "vitamin D and bone loss"
        assert [h.doc_id for h in reopened.search(query, rerank=False)] == [
            h.doc_id for h in index.search(query, rerank=False)
        ]
    finally:
        served.stop()
    # The command line opens the sharded folder and serves it (uvicorn's run replaced, the app built as serve does).
    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr("rapidrag.server.freeze_loaded", lambda: None)
    assert main(["serve", str(folder), "--port", "8123"]) == 0
    from fastapi.testclient import TestClient

    with TestClient(apps[0]) as app:
        stats = app.get("/stats").json()
        assert stats["shards"] == {"n_shards": 2, "replicas": 1, "backend": "local"}
        assert stats["documents"] == len(DOCS)
        hits = app.post("/search", json={"query": "scurvy vitamin C", "k": 1}).json()["hits"]
        assert hits[0]["doc_id"] == "scurvy"


def test_searches_see_whole_updates(client: httpx.Client, server: Server) -> None:
    """Readers search while a writer replaces a pair of documents version by version (one request each) and adds
    and deletes other documents: every search sees both documents of the pair, at one version, and every hit's
    text agrees with its metadata."""
    errors: list[str] = []
    stop = threading.Event()
    searches = []

    def pair(version: int) -> list[dict[str, Any]]:
        return [
            {"id": f"pair-{side}", "text": f"zebra marker version {version} {side}", "metadata": {"v": version}}
            for side in ("a", "b")
        ]

    def read() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
            while not stop.is_set():
                r = c.post("/search", json={"query": "zebra marker", "k": 10, "mode": "lexical", "rerank": False})
                if r.status_code != 200:
                    errors.append(f"search: {r.status_code} {r.text}")
                    return
                searches.append(1)
                hits = r.json()["hits"]
                pairs = [h for h in hits if h["doc_id"].startswith("pair-")]
                if len(pairs) != 2 or len({h["metadata"]["v"] for h in pairs}) != 1:
                    errors.append(f"half-applied update seen: {pairs}")
                for h in hits:
                    if f"version {h['metadata']['v']} " not in h["text"]:
                        errors.append(f"text and metadata disagree: {h}")

    assert client.post("/documents", json={"documents": pair(0)}).status_code == 200
    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for version in range(1, 40):
            assert client.post("/documents", json={"documents": pair(version)}).status_code == 200
            text = f"zebra marker version {version} churn"
            churn = {"id": f"churn-{version}", "text": text, "metadata": {"v": version}}
            assert client.post("/documents", json={"documents": [churn]}).status_code == 200
            if version > 1:
                assert client.delete(f"/documents/churn-{version - 1}").status_code == 200
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert errors == [] and len(searches) > 10
    for doc in ("pair-a", "pair-b", "churn-39"):
        assert client.delete(f"/documents/{doc}").status_code == 200


def test_schemathesis_finds_no_server_error(server: Server) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        schema = schemathesis.openapi.from_dict(c.get("/openapi.json").json())
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/save":
            continue  # writes the module's index folder; covered above

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=server.url, headers=AUTH, checks=[not_a_server_error])

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert {
        "POST /search",
        "POST /documents",
        "GET /documents/{doc_id}",
        "DELETE /documents/{doc_id}",
        "GET /stats",
    } <= set(tested)


def test_cli_serve_binds_loopback_and_reads_the_key_from_the_environment(
    index_dir: Path, tmp_path: Path, serve_index: Callable[..., Any]
) -> None:
    from rapidrag.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    with serve_index(index_dir, tmp_path / "serve.log", {"RAPIDRAG_API_KEY": KEY}) as served:
        assert httpx.post(f"{served.url}/search", json={"query": "bone"}, timeout=30).status_code == 401
        r = httpx.post(f"{served.url}/search", json={"query": "bone", "k": 2}, headers=AUTH, timeout=30)
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
        port = served.url.rsplit(":", 1)[1]
        listening = [c for c in _listening_sockets(served.pid) if c.endswith(f":{port}")]
        assert listening and all(c.startswith("127.0.0.1:") for c in listening)
    log = (tmp_path / "serve.log").read_text()
    assert f"serving {len(DOCS)} documents" in log and f"at http://127.0.0.1:{port}" in log, log[:2000]


def test_changes_not_saved_are_saved_or_named_as_the_server_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``/stats`` counts the changes the last save does not hold; as the server stops, ``save_on_exit`` saves them
    to its folder, and without it a warning says how many are lost (the folder keeps its last save)."""
    from fastapi.testclient import TestClient

    for save_on_exit in (True, False):
        index = Retriever()
        index.add(DOCS)
        folder = index.save(tmp_path / f"saved-{save_on_exit}")
        served = create_app(index, index_dir=folder, save_on_exit=save_on_exit)
        with caplog.at_level("INFO", logger="rapidrag.server"), TestClient(served) as app:  # (the log as it stops too)
            assert app.get("/stats").json()["unsaved_changes"] == 0
            new = {"documents": [{"id": "scurvy", "text": "Scurvy comes from a lack of vitamin C."}]}
            assert app.post("/documents", json=new).status_code == 200
            assert app.delete("/documents/heart").status_code == 200
            assert app.get("/stats").json()["unsaved_changes"] == 2
        reopened = Retriever.load(folder)
        said = [r.getMessage() for r in caplog.records if r.name == "rapidrag.server"]
        if save_on_exit:
            assert reopened.get("scurvy") is not None and reopened.get("heart") is None
            assert said == [f"saved 2 changes to {folder} as the server stops"]
        else:
            assert reopened.get("scurvy") is None and reopened.get("heart") is not None
            assert len(said) == 1 and said[0].startswith("2 changes since the last save are not saved and are lost")
        caplog.clear()
    saved = Retriever()
    with TestClient(create_app(saved)):  # nothing changed: nothing to say
        pass
    assert not [r for r in caplog.records if r.name == "rapidrag.server"]
    with pytest.raises(ValueError, match="save_on_exit needs index_dir"):
        create_app(saved, save_on_exit=True)


def test_serve_freezes_what_it_loaded_before_it_runs(store: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    """The garbage there is is collected, then what is loaded frozen out of full collections, then the server runs."""
    import gc

    from rapidrag import server

    calls: list[Any] = []
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(("run", kwargs["host"], kwargs["port"])))
    server.serve(store, port=8123)
    assert calls == ["collect", "freeze", ("run", "127.0.0.1", 8123)]


def test_cli_serve_takes_search_settings_for_the_index(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rapidrag serve DIR --index-option NAME=VALUE`` serves the index with that search setting, and says so."""
    from rapidrag import server
    from rapidrag.cli import main

    served: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda retriever, **kwargs: served.append(retriever))
    assert main(["serve", str(index_dir), "--index-option", "n_threads=2"]) == 0
    assert served[0].index_options == {"n_threads": 2}
    assert "dense index flat: n_threads=2\n" in capsys.readouterr().out
    assert main(["serve", str(index_dir), "--index-option", "ef_search=64"]) == 2
    assert "--index-option: index option ef_search is not used by a flat index" in capsys.readouterr().err


def test_cli_serve_saves_on_exit_when_asked(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rapidrag import server
    from rapidrag.cli import main

    asked: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda retriever, **kwargs: asked.append(kwargs["save_on_exit"]))
    assert main(["serve", str(index_dir)]) == 0 and main(["serve", str(index_dir), "--save-on-exit"]) == 0
    assert asked == [False, True]


def test_metadata_has_one_json_encoding(
    client: httpx.Client, store: Retriever, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lists, nested dicts and dates in metadata come out of the server as they come out of `rapidrag query
    --json`: the same JSON values (Hit.to_dict), never Python reprs."""
    import json
    from datetime import datetime, timezone

    from rapidrag.cli import main

    doc = {
        "id": "meta",
        "text": "zirconium isotopes in meteorites",
        "metadata": {"tags": ["geo", "space"], "who": {"name": "Urey"}, "seen": "2024-02-01"},
    }
    assert client.post("/documents", json={"documents": [doc]}).status_code == 200
    store.upsert([{**doc, "metadata": {**doc["metadata"], "at": datetime(2024, 2, 1, 8, tzinfo=timezone.utc)}}])
    served = client.post("/search", json={"query": "zirconium meteorites", "k": 1, "rerank": False}).json()
    direct = store.search("zirconium meteorites", k=1, rerank=False)[0].to_dict()
    assert served["hits"][0]["metadata"] == direct["metadata"]
    assert direct["metadata"]["tags"] == ["geo", "space"] and direct["metadata"]["at"] == "2024-02-01T08:00:00+00:00"
    path = store.save(tmp_path / "index")
    assert main(["query", str(path), "zirconium meteorites", "-k", "1", "--json", "--no-rerank"]) == 0
    printed = json.loads(capsys.readouterr().out)["hits"][0]
    assert printed["metadata"] == direct["metadata"]
    assert client.delete("/documents/meta").status_code == 200


def _listening_sockets(pid: int) -> list[str]:
    """Addresses ("ip:port") of the TCP sockets ``pid`` listens on, from /proc (Linux)."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and inode in inodes:  # 0A: LISTEN
            ip_hex, port_hex = local.split(":")
            ip = ".".join(str(int(ip_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            out.append(f"{ip}:{int(port_hex, 16)}")
    return out


def test_another_writer_of_the_folder_loses_nothing_and_reload_serves_its_snapshot(tmp_path: Path) -> None:
    """``POST /save`` over a snapshot another writer saved since answers 409 and leaves it; ``POST /reload`` serves
    it (409 while the service has unsaved changes, unless ``discard``); ``/stats`` names the snapshot served."""
    from fastapi.testclient import TestClient

    index = Retriever()
    index.add(DOCS)
    folder = index.save(tmp_path / "ix")
    with TestClient(create_app(index, index_dir=folder)) as app:
        assert app.post("/reload").json()["reloaded"] is False
        assert app.get("/stats").json()["generation"] == index.generation
        writer = Retriever.load(folder)
        writer.add([{"id": "scurvy", "text": "Scurvy comes from a lack of vitamin C."}])
        writer.save(folder)
        assert app.delete("/documents/heart").status_code == 200
        refused = app.post("/save")
        assert_clean_error(refused, 409, "saved by another writer since", "the index folder")
        assert "pytest-of" not in refused.text
        assert Retriever.load(folder).get("heart") is not None  # (the writer's snapshot stays)
        assert_clean_error(app.post("/reload"), 409, "1 change that no save holds", "discard")
        answer = app.post("/reload", json={"discard": True}).json()
        assert answer["reloaded"] is True and answer["documents"] == 5 and answer["generation"] == writer.generation
        assert app.get("/documents/scurvy").status_code == 200 and app.get("/documents/heart").status_code == 200
        assert app.post("/search", json={"query": "scurvy vitamin C", "k": 1}).json()["hits"][0]["doc_id"] == "scurvy"
        assert app.post("/documents", json={"documents": [DOCS[0]]}).status_code == 200
        saved = app.post("/save").json()  # (its own snapshot now: no conflict)
        assert saved["saved"] is True and saved["generation"] == index.generation == Retriever.load(folder).generation
        assert_clean_error(app.post("/reload", json={"discard": "maybe"}), 422, "discard")
    with TestClient(create_app(Retriever())) as app:
        assert_clean_error(app.post("/reload"), 409, "without an index folder")
    with pytest.raises(ValueError, match="watch_s must be a number of seconds > 0"):
        create_app(index, index_dir=folder, watch_s=0)
    with pytest.raises(ValueError, match="watch_s needs index_dir"):
        create_app(index, watch_s=1.0)


def test_a_watching_server_serves_each_new_snapshot(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With ``watch_s`` the service looks at its folder and serves each snapshot another writer saves; while it has
    unsaved changes it does not (a warning, once); as it stops, those changes are saved beside the folder (the
    other writer's snapshot stays)."""
    from fastapi.testclient import TestClient

    index = Retriever()
    index.add(DOCS)
    folder = index.save(tmp_path / "ix")
    writer = Retriever.load(folder)

    def served_generation(app: Any, want: str | None) -> str | None:
        deadline = time.monotonic() + 30  # (bounded: it looks every 0.05 s)
        while time.monotonic() < deadline:
            now = app.get("/stats").json()["generation"]
            if now == want:
                return str(now)
            time.sleep(0.05)
        return app.get("/stats").json()["generation"]  # type: ignore[no-any-return]

    with (
        caplog.at_level("INFO", logger="rapidrag.server"),
        TestClient(create_app(index, index_dir=folder, watch_s=0.05, save_on_exit=True)) as app,
    ):
        for k in range(3):
            writer.add([{"id": f"new-{k}", "text": f"A new document number {k}."}])
            writer.save(folder)
            assert served_generation(app, writer.generation) == writer.generation
            assert app.get(f"/documents/new-{k}").status_code == 200
        assert app.post("/documents", json={"documents": [{"id": "mine", "text": "Sent to the service."}]}).is_success
        writer.add([{"id": "theirs", "text": "Saved by the other writer."}])
        writer.save(folder)
        time.sleep(0.5)  # (ten looks at the folder)
        assert (
            app.get("/stats").json()["generation"] != writer.generation
            and app.get("/documents/theirs").status_code == 404
        )
    said = [r.getMessage() for r in caplog.records if r.name == "rapidrag.server"]
    assert sum(m.startswith(f"reloaded {folder}") for m in said) == 3
    assert sum("changed on disk and is not reloaded" in m for m in said) == 1, said
    assert Retriever.load(folder).get("theirs") is not None and Retriever.load(folder).get("mine") is None
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("ix.unsaved-")]
    assert len(aside) == 1 and Retriever.load(aside[0]).get("mine") is not None
    assert any(str(aside[0]) in m and "saved by another writer" in m for m in said), said


def test_cli_serve_watches_when_asked(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rapidrag import server
    from rapidrag.cli import main

    asked: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda retriever, **kwargs: asked.append(kwargs["watch_s"]))
    assert main(["serve", str(index_dir)]) == 0 and main(["serve", str(index_dir), "--watch", "2.5"]) == 0
    assert asked == [None, 2.5]
    with pytest.raises(SystemExit):
        main(["serve", str(index_dir), "--watch", "0"])


def test_the_watch_outlives_a_reload_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that raises whatever error leaves the index served as it was, is logged once for that snapshot,
    and the watch goes on: the next snapshot is served."""
    from fastapi.testclient import TestClient

    index = Retriever()
    index.add(DOCS)
    folder = index.save(tmp_path / "ix")
    writer = Retriever.load(folder)
    failing = [True]
    reload = Retriever.reload

    def flaky(self: Retriever, *args: Any, **kwargs: Any) -> bool:
        if failing[0] and writer.generation != self.generation:
            raise RuntimeError("the disk went away")
        return reload(self, *args, **kwargs)

    monkeypatch.setattr(Retriever, "reload", flaky)
    with (
        caplog.at_level("INFO", logger="rapidrag.server"),
        TestClient(create_app(index, index_dir=folder, watch_s=0.02)) as app,
    ):
        writer.add([{"id": "one", "text": "The first snapshot after the start."}])
        writer.save(folder)
        deadline = time.monotonic() + 30
        while not any("the disk went away" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # (ten more looks: said once)
        assert app.get("/documents/one").status_code == 404
        failing[0] = False
        while app.get("/stats").json()["generation"] != writer.generation and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.get("/documents/one").status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "rapidrag.server"]
    assert sum("the disk went away" in m for m in said) == 1, said


def test_documents_sent_again_are_left_alone_with_skip_unchanged(tmp_path: Path) -> None:
    """``POST /documents`` with ``skip_unchanged``: a document the index holds as it is is not indexed again, one
    with new metadata alone gets it without being indexed again, an edited one is, a new one is added; without the
    flag every document is indexed again, as before."""
    from fastapi.testclient import TestClient

    index = Retriever()
    index.add(DOCS)
    titled = {"id": "t", "text": "slashed id", "title": "T", "metadata": {"n": 1}}
    with TestClient(create_app(index)) as app:
        assert app.post("/documents", json={"documents": [titled]}).json() == {"documents": 1, "chunks": 1}
        changes = app.get("/stats").json()["unsaved_changes"]
        again = {"documents": [*DOCS, titled], "skip_unchanged": True}
        assert app.post("/documents", json=again).json() == {
            "documents": 5, "chunks": 0, "added": 0, "changed": 0, "metadata_changed": 0, "unchanged": 5,
        }  # fmt: skip
        assert app.get("/stats").json()["unsaved_changes"] == changes  # (nothing changed)
        edited = [
            {**DOCS[0], "text": DOCS[0]["text"] + " Sunlight helps."},
            {**DOCS[1], "metadata": {"year": 1999}},
            DOCS[2],
            {"id": "new", "text": "A new document."},
        ]
        answer = app.post("/documents", json={"documents": edited, "skip_unchanged": True}).json()
        assert answer == {
            "documents": 4, "chunks": 2, "added": 1, "changed": 1, "metadata_changed": 1, "unchanged": 1,
        }  # fmt: skip
        assert index.get("vit").text.endswith("Sunlight helps.") and index.get("calc").metadata == {"year": 1999}
        hits = app.post("/search", json={"query": "calcium", "filter": {"year": 1999}}).json()["hits"]
        assert [h["doc_id"] for h in hits] == ["calc"]
        assert app.post("/documents", json={"documents": DOCS[2:3]}).json() == {"documents": 1, "chunks": 1}
        assert_clean_error(
            app.post("/documents", json={"documents": DOCS, "skip_unchanged": "maybe"}), 422, "skip_unchanged"
        )
