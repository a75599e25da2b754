"""POST /context and POST /ground on a real uvicorn server on loopback: the same context and grounding as the
library's, the cost at given prices, and bad input answered 422 with a message that names it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import rapidrag
from rapidrag.context import pack
from rapidrag.grounding import ground
from rapidrag.retriever import Retriever

pytest.importorskip("fastapi")  # the test extra installs the serve extra; skip only outside it
httpx = pytest.importorskip("httpx")

from test_server import AUTH, KEY, Server, assert_clean_error  # noqa: E402  (the server tests' helpers)

from rapidrag.server import Limits, create_app  # noqa: E402

DOCS = [
    {"id": "scurvy", "text": "Scurvy comes from a lack of vitamin C. Sailors on long voyages ate limes to prevent it."},
    {"id": "bones", "text": "Vitamin D deficiency causes bone loss in older adults. Calcium helps as well."},
    {"id": "iron", "text": "Iron deficiency causes anemia. Iron supplements help most patients within weeks."},
]


@pytest.fixture(scope="module")
def store(shard_embedder: rapidrag.Embedder) -> Retriever:
    r = Retriever(embedder=shard_embedder)
    r.add(DOCS)
    return r


@pytest.fixture(scope="module")
def client(store: Retriever) -> Iterator[httpx.Client]:
    server = Server(create_app(store, api_key=KEY, limits=Limits(max_context_tokens=4096)))
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        yield c
    server.stop()


def test_context_equals_the_library_and_prices_the_query(client: httpx.Client, store: Retriever) -> None:
    query = "what prevents scurvy on ships"
    body = {"query": query, "budget_tokens": 40, "prices": {"input": 3.0, "output": 15.0, "output_tokens": 100}}
    r = client.post("/context", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    want = pack(store.search(query, 20, per_document=False), 40, source=store, query=query)
    assert data["context"]["text"] == want.text and data["context"]["tokens"] == want.tokens <= 40
    assert [i["doc_id"] for i in data["context"]["items"]] == [i.doc_id for i in want.items]
    assert data["context"]["items"][0]["doc_id"] == "scurvy"
    assert data["cost"]["per_query"] == pytest.approx((want.tokens * 3.0 + 100 * 15.0) / 1e6)
    assert {"embed", "pack", "total"} <= set(data["timings_ms"])
    chunks = client.post("/context", json={"query": query, "strategy": "chunks", "order": "edges"}).json()
    assert chunks["context"]["settings"]["strategy"] == "chunks" and "cost" not in chunks
    assert chunks["filter_notes"] == []
    misspelt = client.post("/context", json={"query": query, "filter": {"yaer": 1753}}).json()
    assert misspelt["context"]["items"] == [] and misspelt["filter_notes"][0].startswith("no document has the field")
    metrics = client.get("/metrics").text
    assert 'rapidrag_search_stage_seconds_count{stage="pack"}' in metrics
    assert 'route="/context"' in metrics


def test_ground_a_saved_context_or_one_packed_for_a_query(client: httpx.Client, store: Retriever) -> None:
    context = client.post("/context", json={"query": "vitamin D and bones", "budget_tokens": 200}).json()["context"]
    answer = "Vitamin D deficiency causes bone loss in older adults. The moon is made of 42 cheeses."
    r = client.post("/ground", json={"answer": answer, "context": context})
    assert r.status_code == 200, r.text
    sentences = r.json()["grounding"]["sentences"]
    library = ground(answer, rapidrag.Context.from_dict(context), source=store)
    assert [s["status"] for s in sentences] == [s.status for s in library.sentences] == ["supported", "unverified"]
    assert sentences[0]["support"]["doc_id"] == "bones" and "42" in sentences[1]["missing"]
    packed = client.post("/ground", json={"answer": answer, "query": "vitamin D and bones"}).json()
    assert packed["context"]["items"] and packed["grounding"]["sentences"][0]["status"] == "supported"


@pytest.mark.parametrize(
    ("route", "body", "needles"),
    [
        ("/context", {"query": "x", "budget_tokens": -1}, ("budget_tokens",)),
        ("/context", {"query": "x", "budget_tokens": 10_000}, ("budget_tokens", "4096")),
        ("/context", {"query": "x", "strategy": "pages"}, ("strategy",)),
        ("/context", {"query": "x", "prices": {"input": -2}}, ("input",)),
        ("/context", {"query": "x", "dedupe": 0}, ("dedupe",)),
        ("/context", {"query": "  "}, ("query",)),
        ("/ground", {"answer": "", "query": "x"}, ("answer",)),
        ("/ground", {"answer": "Text.", "query": "x", "context": {"text": ""}}, ("either context",)),
        ("/ground", {"answer": "Text."}, ("either context",)),
        ("/ground", {"answer": "Text.", "context": {"text": "x"}}, ("not a rapidrag context",)),
        ("/ground", {"answer": 42, "query": "x"}, ("answer",)),
    ],
)
def test_bad_input_is_422_naming_it(
    client: httpx.Client, route: str, body: dict[str, object], needles: tuple[str, ...]
) -> None:
    assert_clean_error(client.post(route, json=body), 422, *needles)


def test_a_context_from_another_index_is_refused(client: httpx.Client, shard_embedder: rapidrag.Embedder) -> None:
    other = Retriever(embedder=shard_embedder)
    other.add([{"id": "bones", "text": "A different text about bones and vitamin D."}])
    foreign = other.context("vitamin D bones", 100)
    r = client.post("/ground", json={"answer": "Vitamin D helps bones.", "context": foreign.to_dict()})
    assert_clean_error(r, 422, "another index")


def test_routes_need_the_key(store: Retriever, tmp_path: Path) -> None:
    server = Server(create_app(store, api_key=KEY))
    try:
        for route, body in (("/context", {"query": "x"}), ("/ground", {"answer": "x.", "query": "x"})):
            assert httpx.post(server.url + route, json=body, timeout=30).status_code == 401
    finally:
        server.stop()
