"""The service's routes in the shapes of hosted model APIs, spoken to by those APIs' own clients from PyPI (cohere,
openai) and by httpx (text-embeddings-inference), against a real uvicorn server on loopback; and GET /metrics,
parsed with prometheus_client's parser (the reference) and counted while threads send requests side by side.

The answers equal the library's: rerank scores are the sigmoid of ``Reranker.score`` (the logit itself where TEI's
``raw_scores`` asks), embeddings ``Embedder.embed`` to 1e-6, token counts the tokenizer's."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rapidrag
from rapidrag.retriever import Retriever

pytest.importorskip("fastapi")  # the test extra installs the serve extra; skip only outside it
httpx = pytest.importorskip("httpx")
cohere = pytest.importorskip("cohere")
openai = pytest.importorskip("openai")

from test_server import AUTH, KEY, Server, assert_clean_error  # noqa: E402  (the server tests' helpers)

from rapidrag.server import PROMETHEUS_CONTENT_TYPE, Limits, create_app  # noqa: E402

QUERY = "does vitamin D deficiency cause bone loss"
PASSAGES = [
    "Iron deficiency causes anemia; iron supplements help.",
    "Vitamin D deficiency causes bone loss in older adults.",
    "Statins lower cholesterol and the risk of heart attack.",
    "Calcium and vitamin D supplements slow bone loss.",
    "Scurvy comes from a lack of vitamin C.",
]
INDEXED = [{"id": f"d{i}", "text": text} for i, text in enumerate(PASSAGES)]
LIMITS = Limits(
    max_body_bytes=64 * 1024, max_query_chars=300, max_rerank_documents=8, max_embed_inputs=8, max_text_chars=2000
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


@pytest.fixture(scope="module")
def reranker(reranker_dir: Path) -> rapidrag.Reranker:
    return rapidrag.Reranker(reranker_dir)  # fp32: a pair's score does not depend on its batch


@pytest.fixture(scope="module")
def store(shard_embedder: rapidrag.Embedder, reranker: rapidrag.Reranker) -> Retriever:
    """An index with both models; the embedder is conftest's fp32 one, whose vectors do not depend on the batch."""
    r = Retriever(embedder=shard_embedder, reranker=reranker)
    r.add(INDEXED)
    return r


@pytest.fixture(scope="module")
def server(store: Retriever) -> Iterator[Server]:
    s = Server(create_app(store, api_key=KEY, limits=LIMITS))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lexical_server() -> Iterator[Server]:
    """An index without models: the rerank and embeddings routes have nothing to answer with."""
    r = Retriever()
    r.add(INDEXED)
    s = Server(create_app(r, api_key=KEY, limits=LIMITS))
    yield s
    s.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        yield c


def expected_ranking(reranker: rapidrag.Reranker, query: str, texts: list[str]) -> tuple[list[int], np.ndarray]:
    """The positions best first and the logits, as the library gives them."""
    logits = reranker.score(query, texts)
    return np.argsort(-logits, kind="stable").tolist(), logits


def pair_tokens(reranker: rapidrag.Reranker, query: str, texts: list[str]) -> int:
    return int(
        reranker.tokenizer.encode_pairs(query, texts, max_length=reranker.max_length, padding=False).lengths.sum()
    )


# -- rerank -----------------------------------------------------------------------------------------------------


def test_cohere_v2_client_reranks_as_the_library_does(server: Server, reranker: rapidrag.Reranker) -> None:
    with cohere.ClientV2(api_key=KEY, base_url=server.url, max_retries=0) as co:
        order, logits = expected_ranking(reranker, QUERY, PASSAGES)
        response = co.rerank(model="rerank-v3.5", query=QUERY, documents=PASSAGES)  # any model name is accepted
        assert [r.index for r in response.results] == order
        scores = [r.relevance_score for r in response.results]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        np.testing.assert_allclose(scores, sigmoid(logits[order]), rtol=0, atol=1e-6)
        assert response.id and response.meta.api_version.version == "2"
        assert response.meta.tokens.input_tokens == pair_tokens(reranker, QUERY, PASSAGES)
        top = co.rerank(model="anything", query=QUERY, documents=PASSAGES, top_n=2)
        assert [r.index for r in top.results] == order[:2]
        assert all(getattr(r, "document", None) is None for r in top.results)  # not asked for
        assert len(co.rerank(model="m", query=QUERY, documents=PASSAGES, top_n=50).results) == len(PASSAGES)


def test_cohere_v2_documents_and_tokens_per_document(client: httpx.Client, reranker: rapidrag.Reranker) -> None:
    """Fields the current SDK does not send, in the shape Cohere's v2 API takes them."""
    body = {"model": "m", "query": QUERY, "documents": PASSAGES, "top_n": 3, "return_documents": True}
    results = client.post("/v2/rerank", json=body).json()["results"]
    assert [r["index"] for r in results] == expected_ranking(reranker, QUERY, PASSAGES)[0][:3]
    assert all(r["document"] == {"text": PASSAGES[r["index"]]} for r in results)
    # max_tokens_per_doc: each document scored on its first n tokens, as the reranker scores pairs cut there.
    n = 4
    body = {"query": QUERY, "documents": PASSAGES, "max_tokens_per_doc": n}
    answer = client.post("/v2/rerank", json=body).json()
    query_and_specials = int(reranker.tokenizer.encode_pairs(QUERY, [""], padding=False).lengths[0])
    cut = reranker.score(QUERY, PASSAGES, max_length=query_and_specials + n)
    by_index = {r["index"]: r["relevance_score"] for r in answer["results"]}
    np.testing.assert_allclose([by_index[i] for i in range(len(PASSAGES))], sigmoid(cut), rtol=0, atol=1e-6)
    assert answer["meta"]["tokens"]["input_tokens"] == len(PASSAGES) * (query_and_specials + n)


def test_cohere_v1_client_takes_strings_and_objects(server: Server, reranker: rapidrag.Reranker) -> None:
    with cohere.Client(api_key=KEY, base_url=server.url, max_retries=0) as co:
        documents: list[Any] = [PASSAGES[0], {"text": PASSAGES[1], "title": "vitamin"}, *PASSAGES[2:]]
        order, logits = expected_ranking(reranker, QUERY, PASSAGES)
        response = co.rerank(model="rerank-english-v3.0", query=QUERY, documents=documents, return_documents=True)
        assert [r.index for r in response.results] == order
        np.testing.assert_allclose([r.relevance_score for r in response.results], sigmoid(logits[order]), atol=1e-6)
        for r in response.results:
            assert r.document is not None and r.document.text == PASSAGES[r.index]
        titled = next(r for r in response.results if r.index == 1)
        assert titled.document is not None and titled.document.model_extra == {
            "title": "vitamin"
        }  # kept, as Cohere does
        bare = co.rerank(query=QUERY, documents=documents, top_n=2, return_documents=False)
        assert [r.index for r in bare.results] == order[:2] and all(r.document is None for r in bare.results)


def test_jina_shape_on_v1(client: httpx.Client, reranker: rapidrag.Reranker) -> None:
    """Jina's clients send no return_documents and read the documents back (its default), with model and usage."""
    body = {"model": "jina-reranker-v2-base-multilingual", "query": QUERY, "documents": PASSAGES, "top_n": 3}
    answer = client.post("/v1/rerank", json=body).json()
    assert answer["model"] == "minilm-l6-reranker"  # the model that answered, whatever was asked for
    assert answer["usage"] == {"total_tokens": pair_tokens(reranker, QUERY, PASSAGES)}
    order = expected_ranking(reranker, QUERY, PASSAGES)[0]
    assert [r["index"] for r in answer["results"]] == order[:3]
    assert [r["document"] for r in answer["results"]] == [{"text": PASSAGES[i]} for i in order[:3]]


def test_tei_rerank(client: httpx.Client, reranker: rapidrag.Reranker) -> None:
    order, logits = expected_ranking(reranker, QUERY, PASSAGES)
    ranks = client.post("/rerank", json={"query": QUERY, "texts": PASSAGES}).json()
    assert isinstance(ranks, list) and [r["index"] for r in ranks] == order
    assert all(set(r) == {"index", "score"} for r in ranks)
    np.testing.assert_allclose([r["score"] for r in ranks], sigmoid(logits[order]), rtol=0, atol=1e-6)
    raw = client.post("/rerank", json={"query": QUERY, "texts": PASSAGES, "raw_scores": True, "return_text": True})
    np.testing.assert_allclose([r["score"] for r in raw.json()], logits[order], rtol=0, atol=1e-6)
    assert [r["text"] for r in raw.json()] == [PASSAGES[i] for i in order]
    # truncate: false refuses a pair over the reranker's length (TEI's behaviour); true (the default) cuts it.
    long = ["bone loss " * 150, PASSAGES[1]]  # within the character limit, over the token one
    refused = client.post("/rerank", json={"query": QUERY, "texts": long, "truncate": False})
    assert_clean_error(refused, 422, "texts[0]", f"limit of {reranker.max_length}", "truncate: true")
    cut = client.post("/rerank", json={"query": QUERY, "texts": long}).json()
    by_index = {r["index"]: r["score"] for r in cut}
    np.testing.assert_allclose([by_index[0], by_index[1]], sigmoid(reranker.score(QUERY, long)), atol=1e-6)
    left = client.post("/rerank", json={"query": QUERY, "texts": long, "truncation_direction": "left"})
    assert_clean_error(left, 422, "body.truncation_direction")
    # A long text not first: the error names it by its place in the request.
    refused = client.post("/rerank", json={"query": QUERY, "texts": ["", PASSAGES[1], long[0]], "truncate": False})
    assert_clean_error(refused, 422, "texts[2]")


def test_empty_or_blank_documents_come_last_unscored(client: httpx.Client, reranker: rapidrag.Reranker) -> None:
    """A model's score for no text means nothing (the shared reranker ranked "" first): empty or blank documents
    among others are not scored and come last, relevance 0; all of them empty is a 422, as Cohere answers."""
    from rapidrag.server import BLANK_LOGIT

    texts = ["", PASSAGES[0], " \n ", PASSAGES[1]]
    order, logits = expected_ranking(reranker, QUERY, [PASSAGES[0], PASSAGES[1]])
    want = [[1, 3][i] for i in order] + [0, 2]
    v2 = client.post("/v2/rerank", json={"query": QUERY, "documents": texts}).json()["results"]
    assert [r["index"] for r in v2] == want and [r["relevance_score"] for r in v2[2:]] == [0.0, 0.0]
    np.testing.assert_allclose([r["relevance_score"] for r in v2[:2]], sigmoid(logits[order]), atol=1e-6)
    v1 = client.post("/v1/rerank", json={"query": QUERY, "documents": texts, "top_n": 3}).json()["results"]
    assert [r["index"] for r in v1] == want[:3]
    tei = client.post("/rerank", json={"query": QUERY, "texts": texts, "raw_scores": True}).json()
    assert [r["index"] for r in tei] == want and [r["score"] for r in tei[2:]] == [BLANK_LOGIT, BLANK_LOGIT]
    for path, field in (("/v2/rerank", "documents"), ("/v1/rerank", "documents"), ("/rerank", "texts")):
        assert_clean_error(client.post(path, json={"query": QUERY, field: ["", "  "]}), 422, "empty or blank")


# -- embeddings -------------------------------------------------------------------------------------------------


def test_openai_client_embeds_as_the_library_does(server: Server, shard_embedder: rapidrag.Embedder) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
        texts = [*PASSAGES, "a short one", "bone"]
        direct = shard_embedder.embed(texts)
        # The client asks for base64 unless told otherwise, and decodes it itself.
        response = client.embeddings.create(input=texts, model="text-embedding-3-small")
        assert response.object == "list" and response.model == "all-MiniLM-L6-v2"
        assert [d.index for d in response.data] == list(range(len(texts)))
        np.testing.assert_allclose(np.array([d.embedding for d in response.data]), direct, rtol=0, atol=1e-6)
        floats = client.embeddings.create(input=texts, model="m", encoding_format="float")
        np.testing.assert_allclose(np.array([d.embedding for d in floats.data]), direct, rtol=0, atol=1e-6)
        # Token counts: the tokenizer's, special tokens included, cut at the embedder's max_length.
        lengths = shard_embedder.tokenizer.encode_batch(
            texts, max_length=shard_embedder.max_length, padding=False
        ).lengths
        assert response.usage.prompt_tokens == response.usage.total_tokens == int(lengths.sum())
        one = client.embeddings.create(input="bone", model="m", encoding_format="float")
        assert len(one.data) == 1
        np.testing.assert_allclose(one.data[0].embedding, direct[-1], rtol=0, atol=1e-6)
        # dimensions: the first d values normalised again, as OpenAI shortens a vector.
        short = client.embeddings.create(input=texts, model="m", dimensions=16, encoding_format="float")
        cut = direct[:, :16] / np.linalg.norm(direct[:, :16], axis=1, keepdims=True)
        np.testing.assert_allclose(np.array([d.embedding for d in short.data]), cut, rtol=0, atol=1e-6)


def test_base64_is_little_endian_float32_of_the_same_values(client: httpx.Client) -> None:
    body = {"input": PASSAGES[:3], "model": "m"}
    floats = client.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()["data"]
    coded = client.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()["data"]
    for f, c in zip(floats, coded, strict=True):
        decoded = np.frombuffer(base64.b64decode(c["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))  # the same float32, bit for bit
        assert c["object"] == "embedding" and c["index"] == f["index"]


# -- errors -----------------------------------------------------------------------------------------------------


def test_an_index_without_the_model_says_which(lexical_server: Server) -> None:
    with cohere.ClientV2(api_key=KEY, base_url=lexical_server.url, max_retries=0) as co:
        with pytest.raises(cohere.errors.NotFoundError) as caught:
            co.rerank(model="m", query=QUERY, documents=PASSAGES)
        assert "no reranker" in caught.value.body["detail"]
    with openai.OpenAI(base_url=f"{lexical_server.url}/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError, match="no embedder"):
            client.embeddings.create(input="bone", model="m")
    with httpx.Client(base_url=lexical_server.url, headers=AUTH, timeout=60) as c:
        for path, body in [
            ("/v1/rerank", {"query": QUERY, "documents": PASSAGES}),
            ("/rerank", {"query": QUERY, "texts": PASSAGES}),
        ]:
            assert_clean_error(c.post(path, json=body), 404, "no reranker", "--reranker")
        assert_clean_error(c.post("/v1/embeddings", json={"input": "bone"}), 404, "no embedder", "--embedder")


@pytest.mark.parametrize(
    ("path", "body", "needles"),
    [
        ("/v2/rerank", {"query": QUERY, "documents": PASSAGES * 2}, ["10 documents", "limit of 8 per request"]),
        ("/v1/rerank", {"query": QUERY, "documents": PASSAGES * 2}, ["10 documents", "limit of 8 per request"]),
        ("/rerank", {"query": QUERY, "texts": PASSAGES * 2}, ["10 texts", "limit of 8 per request"]),
        ("/v2/rerank", {"query": QUERY, "documents": ["x" * 2001]}, ["documents[0]", "2001 characters", "of 2000"]),
        ("/v2/rerank", {"query": "", "documents": PASSAGES}, ["body.query"]),
        ("/v2/rerank", {"query": "q" * 301, "documents": PASSAGES}, ["body.query", "300"]),
        ("/v1/rerank", {"query": "  ", "documents": PASSAGES}, ["the query is blank"]),
        ("/rerank", {"query": "\t", "texts": PASSAGES}, ["the query is blank"]),
        ("/v2/rerank", {"query": QUERY, "documents": []}, ["documents is empty"]),
        ("/v2/rerank", {"query": QUERY, "documents": ["a", 5]}, ["documents[1] is a number", "must be a string"]),
        ("/v2/rerank", {"query": QUERY, "documents": [{"text": "a"}]}, ["documents[0] is an object", "/v1/rerank"]),
        ("/v1/rerank", {"query": QUERY, "documents": ["a", {"title": "t"}]}, ["documents[1]", "string 'text'"]),
        ("/v1/rerank", {"query": QUERY, "documents": [{"text": None}]}, ["documents[0]", "string 'text'"]),
        ("/v1/rerank", {"query": QUERY, "documents": [None]}, ["documents[0] is null"]),
        ("/v1/rerank", {"query": QUERY, "documents": ["a"], "rank_fields": ["title"]}, ["only ['text']"]),
        ("/rerank", {"query": QUERY, "texts": [["a"]]}, ["texts[0] is a list"]),
        ("/v2/rerank", {"query": QUERY, "documents": PASSAGES, "top_n": 0}, ["body.top_n"]),
        ("/v2/rerank", {"query": QUERY, "documents": PASSAGES, "relevant_spans": {}}, ["body.relevant_spans"]),
        ("/v1/embeddings", {"input": [1, 2, 3]}, ["token ids", "send a string or a list of strings"]),
        ("/v1/embeddings", {"input": [[1, 2], [3]]}, ["token ids"]),
        ("/v1/embeddings", {"input": ["a"] * 9}, ["9 inputs", "limit of 8 per request"]),
        ("/v1/embeddings", {"input": "x" * 2001}, ["input has 2001 characters", "of 2000"]),
        ("/v1/embeddings", {"input": ["a", ""]}, ["input[1] is an empty string"]),
        ("/v1/embeddings", {"input": ""}, ["input is an empty string"]),
        ("/v1/embeddings", {"input": []}, ["input is an empty list"]),
        ("/v1/embeddings", {"input": ["a", {"text": "b"}]}, ["input[1] is an object"]),
        ("/v1/embeddings", {"input": "a", "dimensions": 385}, ["dimensions 385", "gives 384"]),
        ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, ["body.encoding_format"]),
    ],
)
def test_bad_requests_get_422_naming_the_problem(
    client: httpx.Client, path: str, body: dict[str, Any], needles: list[str]
) -> None:
    assert_clean_error(client.post(path, json=body), 422, *needles)


def test_client_libraries_surface_the_message(server: Server) -> None:
    with cohere.ClientV2(api_key=KEY, base_url=server.url, max_retries=0) as co:
        with pytest.raises(cohere.errors.UnprocessableEntityError) as caught:
            co.rerank(model="m", query=QUERY, documents=PASSAGES * 2)
        assert "limit of 8 per request" in caught.value.body["detail"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.UnprocessableEntityError, match="token ids"):
            client.embeddings.create(input=[[101, 2054]], model="m")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError, match="API key"):
            wrong.embeddings.create(input="bone", model="m")


def test_api_key_on_the_new_routes(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        for method, path, body in [
            ("POST", "/v2/rerank", {"query": QUERY, "documents": PASSAGES}),
            ("POST", "/v1/rerank", {"query": QUERY, "documents": PASSAGES}),
            ("POST", "/rerank", {"query": QUERY, "texts": PASSAGES}),
            ("POST", "/v1/embeddings", {"input": "bone"}),
            ("GET", "/metrics", None),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"}):
                assert_clean_error(anonymous.request(method, path, json=body, headers=headers), 401, "API key")
        assert anonymous.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
        paths = anonymous.get("/openapi.json", headers=AUTH).json()["paths"]
        assert {"/v2/rerank", "/v1/rerank", "/rerank", "/v1/embeddings", "/metrics"} <= set(paths)


# -- metrics ----------------------------------------------------------------------------------------------------

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? \S+$')


def scrape(client: httpx.Client) -> dict[str, Any]:
    """GET /metrics parsed by prometheus_client's parser: {family name: family}, after checking the content type
    and that every line is a comment or a sample in the text format's grammar."""
    parser = pytest.importorskip("prometheus_client.parser")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == PROMETHEUS_CONTENT_TYPE
    assert r.text.endswith("\n")
    for line in r.text.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line
    return {f.name: f for f in parser.text_string_to_metric_families(r.text)}


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in families[family].samples if s.name == sample and s.labels == labels]
    return found[0] if found else 0.0


def test_metrics_parse_and_count(client: httpx.Client, store: Retriever) -> None:
    before = scrape(client)
    assert before["rapidrag_requests"].type == "counter"
    assert before["rapidrag_request_duration_seconds"].type == "histogram"
    assert value(before, "rapidrag_documents", "rapidrag_documents") == len(store)
    assert value(before, "rapidrag_chunks", "rapidrag_chunks") == store.n_chunks
    ok = {"route": "/v2/rerank", "method": "POST", "code": "200"}
    refused = {"route": "/v2/rerank", "method": "POST", "code": "422"}
    assert client.post("/v2/rerank", json={"query": QUERY, "documents": PASSAGES}).status_code == 200
    assert client.post("/v2/rerank", json={"query": "", "documents": PASSAGES}).status_code == 422
    assert client.post("/search", json={"query": QUERY, "k": 2}).status_code == 200
    too_big = client.post("/v1/embeddings", content=b"x" * (LIMITS.max_body_bytes + 1))
    assert too_big.status_code == 413
    assert client.get("/no/such/route").status_code == 404
    with httpx.Client(base_url=client.base_url, timeout=60) as anonymous:
        assert anonymous.post("/rerank", json={"query": QUERY, "texts": PASSAGES}).status_code == 401
    after = scrape(client)
    total = "rapidrag_requests_total"
    assert value(after, "rapidrag_requests", total, **ok) == value(before, "rapidrag_requests", total, **ok) + 1
    assert (
        value(after, "rapidrag_requests", total, **refused) == value(before, "rapidrag_requests", total, **refused) + 1
    )
    for labels in [
        {"route": "/search", "method": "POST", "code": "200"},
        {"route": "/v1/embeddings", "method": "POST", "code": "413"},  # refused before routing, counted by route
        {"route": "unmatched", "method": "GET", "code": "404"},
        {"route": "/rerank", "method": "POST", "code": "401"},
        {"route": "/metrics", "method": "GET", "code": "200"},
    ]:
        assert value(after, "rapidrag_requests", total, **labels) >= 1, labels
    # Histograms: cumulative buckets ending in +Inf = count, per route and per search stage.
    name = "rapidrag_request_duration_seconds"
    count = value(after, name, f"{name}_count", route="/v2/rerank")
    assert count >= 2 and value(after, name, f"{name}_bucket", route="/v2/rerank", le="+Inf") == count
    buckets = [s.value for s in after[name].samples if s.name.endswith("_bucket") and s.labels["route"] == "/search"]
    assert buckets == sorted(buckets) and value(after, name, f"{name}_sum", route="/search") > 0
    stages = after["rapidrag_search_stage_seconds"]
    seen = {s.labels["stage"] for s in stages.samples}
    assert {"lexical", "dense", "rerank", "total"} <= seen


def test_metrics_count_every_request_from_parallel_threads(server: Server) -> None:
    """Threads rerank, embed and search side by side: the counts and the stage histograms go up by exactly the
    requests sent."""
    per_thread, threads = 6, 4
    calls = [
        ("/v1/rerank", {"query": QUERY, "documents": PASSAGES[:2]}),
        ("/v1/embeddings", {"input": PASSAGES[:2]}),
        ("/search", {"query": QUERY, "k": 2, "rerank": False}),
    ]
    errors: list[str] = []

    def work() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
            for _ in range(per_thread):
                for path, body in calls:
                    r = c.post(path, json=body)
                    if r.status_code != 200:
                        errors.append(f"{path}: {r.status_code} {r.text}")

    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        before = scrape(c)
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=120)
        after = scrape(c)
    assert errors == []
    total = "rapidrag_requests_total"
    for path, _ in calls:
        labels = {"route": path, "method": "POST", "code": "200"}
        added = value(after, "rapidrag_requests", total, **labels) - value(before, "rapidrag_requests", total, **labels)
        assert added == per_thread * threads, path
    stage = "rapidrag_search_stage_seconds"
    added = value(after, stage, f"{stage}_count", stage="lexical") - value(
        before, stage, f"{stage}_count", stage="lexical"
    )
    assert added == per_thread * threads
