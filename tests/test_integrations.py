"""The LangChain and LlamaIndex adapters: LangChain's standard retriever suite, citations in the metadata, filters
(Mongo-style and LlamaIndex MetadataFilters) applied by the search, and clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import rapidrag
from rapidrag.retriever import Retriever

pytest.importorskip("langchain_core")  # the test extra installs both frameworks; skip only outside it
pytest.importorskip("llama_index.core")

from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402

from rapidrag.integrations import langchain as rr_langchain  # noqa: E402
from rapidrag.integrations import llama_index as rr_llama  # noqa: E402

DOCS = [
    {"id": "vit", "text": "Vitamin D deficiency causes bone loss in older adults.", "metadata": {"year": 2019}},
    {"id": "calc", "text": "Calcium and vitamin D supplements slow bone loss.", "metadata": {"year": 2022}},
    {"id": "iron", "text": "Iron deficiency causes anemia; iron supplements help.", "metadata": {"year": 2021}},
    {"id": "paris", "text": "Paris.\n\nThe Eiffel tower, far from any bone.", "metadata": {"year": 2020}},
    {"id": "heart", "text": "Statins lower cholesterol and the risk of heart attack.", "metadata": {"year": 2024}},
]


@pytest.fixture(scope="module")
def store(minilm_dir: Path) -> Retriever:
    r = Retriever(embedder=rapidrag.Embedder(minilm_dir, quantized=True))
    r.add(DOCS)
    return r


class TestLangChainStandardRetriever(RetrieversIntegrationTests):
    """langchain-tests' own suite: invoke, ainvoke, k as constructor argument and as a call option."""

    @pytest.fixture(autouse=True)
    def _store(self, store: Retriever) -> None:
        self.store = store

    @property
    def retriever_constructor(self) -> type[rr_langchain.RapidragRetriever]:
        return rr_langchain.RapidragRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self.store}

    @property
    def retriever_query_example(self) -> str:
        return "vitamin D and bone loss"


def test_langchain_documents_carry_citations(store: Retriever) -> None:
    lc = rr_langchain.RapidragRetriever(retriever=store, k=3)
    docs = lc.invoke("vitamin D and bone loss")
    assert [d.id for d in docs][:2] == ["vit", "calc"] or {d.id for d in docs[:2]} == {"vit", "calc"}
    for d in docs:
        source = store.get(d.id)
        assert source is not None and source.text[d.metadata["start"] : d.metadata["end"]] == d.page_content
        assert d.metadata["doc_id"] == d.id and {"bm25", "dense", "fused"} <= set(d.metadata["scores"])
        assert d.metadata["year"] == source.metadata["year"]
    # Options per call override the adapter's; batch and ainvoke give the same documents as invoke.
    assert [d.id for d in lc.invoke("bone loss", k=1, mode="lexical")] == [lc.invoke("bone loss", mode="lexical")[0].id]
    filtered = lc.invoke("bone loss", filter={"year": {"$gte": 2021}})
    assert filtered and all(d.metadata["year"] >= 2021 for d in filtered)
    batched = lc.batch(["bone loss", "heart attack"])
    assert [[d.id for d in b] for b in batched] == [[d.id for d in lc.invoke(q)] for q in ("bone loss", "heart attack")]
    assert [d.id for d in asyncio.run(lc.ainvoke("heart attack"))] == [d.id for d in lc.invoke("heart attack")]


def test_langchain_bad_options(store: Retriever) -> None:
    lc = rr_langchain.RapidragRetriever(retriever=store)
    with pytest.raises(TypeError, match="unknown search option.*top_n"):
        lc.invoke("bone", top_n=3)
    with pytest.raises(ValueError, match="unknown operator|\\$regex"):
        lc.invoke("bone", filter={"year": {"$regex": "20"}})
    with pytest.raises(ValueError):  # pydantic validates the adapter's own settings
        rr_langchain.RapidragRetriever(retriever=store, k=0)
    with pytest.raises(ValueError):
        rr_langchain.RapidragRetriever(retriever=store, mode="fuzzy")


def test_llama_index_nodes_carry_citations(store: Retriever) -> None:
    li = rr_llama.RapidragRetriever(store, k=3)
    nodes = li.retrieve("vitamin D and bone loss")
    assert len(nodes) == 3 and {n.node.ref_doc_id for n in nodes[:2]} == {"vit", "calc"}
    for n in nodes:
        source = store.get(n.node.ref_doc_id)
        assert source is not None
        assert source.text[n.node.start_char_idx : n.node.end_char_idx] == n.node.get_content()
        assert n.score == pytest.approx(n.node.metadata["score"]) and "fused" in n.node.metadata["scores"]
    again = asyncio.run(li.aretrieve("vitamin D and bone loss"))
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]


def test_llama_index_filters_are_mapped(store: Retriever, caplog: pytest.LogCaptureFixture) -> None:
    from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

    eq = MetadataFilters(filters=[MetadataFilter(key="year", value=2022)])
    assert rr_llama.to_mongo_filter(eq) == {"year": 2022}
    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="year", value=2019, operator=FilterOperator.GT),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="year", value=[2021], operator=FilterOperator.IN),
                    MetadataFilter(key="year", value=2024, operator=FilterOperator.GTE),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert rr_llama.to_mongo_filter(nested) == {
        "$and": [{"year": {"$gt": 2019}}, {"$or": [{"year": {"$in": [2021]}}, {"year": {"$gte": 2024}}]}]
    }
    nodes = rr_llama.RapidragRetriever(store, k=5, filter=nested).retrieve("deficiency supplements heart")
    assert {n.node.ref_doc_id for n in nodes} == {"iron", "heart"}
    # A Mongo-style dict passes as is; an operator rapidrag cannot apply is an error that names it.
    nodes = rr_llama.RapidragRetriever(store, k=5, filter={"year": {"$lt": 2020}}).retrieve("bone")
    assert [n.node.ref_doc_id for n in nodes] == ["vit"]
    # A filter that finds too little says why in the log (the frameworks' lists have no place for it).
    lc = rr_langchain.RapidragRetriever(retriever=store, filter={"yeer": 2020})
    li = rr_llama.RapidragRetriever(store, filter=MetadataFilters(filters=[MetadataFilter(key="year", value="2020")]))
    with caplog.at_level("WARNING", logger="rapidrag.integrations"):
        assert lc.invoke("bone") == [] and li.retrieve("bone") == []
    warned = [r.getMessage() for r in caplog.records if r.name == "rapidrag.integrations"]
    assert len(warned) == 2 and "no document has the field 'yeer'" in warned[0]
    assert warned[1] == "the filter of the search for 'bone': the field 'year' holds numbers, so '2020' matches nothing"
    unsupported = MetadataFilters(filters=[MetadataFilter(key="year", value="20", operator=FilterOperator.CONTAINS)])
    with pytest.raises(ValueError, match="'contains' on 'year' is not supported"):
        rr_llama.RapidragRetriever(store, filter=unsupported)
    with pytest.raises(TypeError, match="rapidrag.Retriever"):
        rr_llama.RapidragRetriever("not a retriever")  # type: ignore[arg-type]


def test_both_adapters_search_in_the_index_s_own_mode_by_default() -> None:
    """Without ``mode``, an adapter searches as the index does by default (``Retriever.default_mode``): a lexical
    index answers (it was a 'needs an embedder' error), and ``mode`` still picks one."""
    lexical = Retriever()
    lexical.add(DOCS)
    assert [d.id for d in rr_langchain.RapidragRetriever(retriever=lexical, k=2).invoke("iron anemia")] == ["iron"]
    assert [n.node.ref_doc_id for n in rr_llama.RapidragRetriever(lexical, k=2).retrieve("iron anemia")] == ["iron"]
    with pytest.raises(ValueError, match="needs an embedder"):
        rr_langchain.RapidragRetriever(retriever=lexical, mode="dense").invoke("iron")


def test_both_adapters_take_an_index_split_in_shards(
    minilm_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``ShardedRetriever`` (the same documents in 3 shards) behind either adapter gives the documents, spans
    and scores of one index; a partial answer (a shard without a live replica, as the coordinator marks it) is
    logged; anything else is refused by name."""
    from rapidrag.distributed import MISSING, ShardedRetriever

    embedder = rapidrag.Embedder(minilm_dir)  # (fp32: int8's per-batch ranges would move each shard's vectors)
    store, sharded = Retriever(embedder), ShardedRetriever(embedder, n_shards=3)
    store.add(DOCS)
    sharded.add(DOCS)
    for query in ("vitamin D and bone loss", "heart attack"):
        one = rr_langchain.RapidragRetriever(retriever=store, k=3).invoke(query)
        split = rr_langchain.RapidragRetriever(retriever=sharded, k=3).invoke(query)
        assert [(d.id, d.metadata["start"], d.metadata["end"]) for d in split] == [
            (d.id, d.metadata["start"], d.metadata["end"]) for d in one
        ]
        assert [d.metadata["score"] for d in split] == pytest.approx([d.metadata["score"] for d in one], abs=1e-5)
        nodes = rr_llama.RapidragRetriever(sharded, k=3).retrieve(query)
        assert [n.node.ref_doc_id for n in nodes] == [d.id for d in one]
    assert not [r for r in caplog.records if r.name == "rapidrag.integrations"]
    real = ShardedRetriever._all

    def shard_lost(self: ShardedRetriever, method: str, *args: Any) -> list[Any]:
        answers = real(self, method, *args)
        return [MISSING if method == "shard_stages" and i == 0 else a for i, a in enumerate(answers)]

    monkeypatch.setattr(ShardedRetriever, "_all", shard_lost)
    with caplog.at_level("WARNING", logger="rapidrag.integrations"):
        rr_langchain.RapidragRetriever(retriever=sharded, mode="lexical").invoke("bone loss")
        rr_llama.RapidragRetriever(sharded, mode="lexical").retrieve("bone loss")
    warned = [r.getMessage() for r in caplog.records if r.name == "rapidrag.integrations"]
    assert warned == ["a partial answer to 'bone loss': shards [0] of the index did not answer"] * 2
    for adapter in (lambda r: rr_langchain.RapidragRetriever(retriever=r), rr_llama.RapidragRetriever):
        with pytest.raises(TypeError, match="rapidrag.Retriever or a rapidrag.distributed.ShardedRetriever, not dict"):
            adapter({"id": "x"})


def test_import_rapidrag_stays_light() -> None:
    """The frameworks and the server stack load only with their own modules."""
    import subprocess
    import sys

    code = (
        "import sys, rapidrag, rapidrag.retriever, rapidrag.cli\n"
        "heavy = ('langchain', 'llama_index', 'fastapi', 'uvicorn', 'starlette', 'pydantic', 'torch')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
