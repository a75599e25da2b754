"""The Ray cases of rapidrag.distributed, on a real cluster of three processes on this machine. They run inside a
private network namespace: ``tests/test_distributed.py::test_on_a_ray_cluster_in_a_private_network`` starts them
(``unshare --net``); run alone, outside one, they refuse to start a cluster."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from shard_helpers import results, same

import rapidrag
from rapidrag.distributed import ShardedRetriever


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("localhost", "::1")


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    """A real cluster of three processes (a head and two worker nodes, one CPU each, object stores of 256 MiB),
    every node on 127.0.0.1."""
    if os.environ.get("RAPIDRAG_IN_PRIVATE_NETWORK") != "1":
        pytest.fail("run through test_distributed.py (it makes the private network these cases need)")
    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    store = 256 * 1024 * 1024
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store, "node_ip_address": "127.0.0.1"},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=store, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_the_cluster_stays_on_loopback(ray_cluster: Any) -> None:
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 3
    assert all(_loopback(n["NodeManagerAddress"]) for n in nodes), [n["NodeManagerAddress"] for n in nodes]
    assert _loopback(ray_cluster.address.rsplit(":", 1)[0]), ray_cluster.address


def test_ray_shards_answer_as_the_local_ones(
    ray_cluster: Any,
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    tmp_path: Path,
) -> None:
    docs = shard_corpus[:150]
    local = ShardedRetriever(shard_embedder, n_shards=3, title_weight=0.5)
    local.add(docs)
    remote = ShardedRetriever(shard_embedder, n_shards=3, title_weight=0.5, backend="ray", address=ray_cluster.address)
    remote.add(docs)
    remote.delete([docs[0]["id"]])
    local.delete([docs[0]["id"]])
    remote.compact()  # (on each shard actor; results unchanged)
    assert len(remote) == len(local) == 149 and remote.get(docs[1]["id"]) == local.get(docs[1]["id"])
    for mode in ("lexical", "hybrid"):
        same(results(remote, shard_queries[:8], mode=mode), results(local, shard_queries[:8], mode=mode))
    remote.save(tmp_path / "ix")
    again = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None, backend="ray")
    same(results(again, shard_queries[:8]), results(local, shard_queries[:8]))
    # Each actor froze what it loaded: a full collection walks only what came after (the searches' objects).
    import ray

    for group in again._shards:
        state = ray.get(group[0].call.remote("collector"))
        assert state["frozen"] > 10 * state["tracked"] > 0, state
    # Search settings given at the load reach every shard actor (a restored one opens its part with them too).
    tuned = ShardedRetriever.load(
        tmp_path / "ix", embedder=shard_embedder, reranker=None, backend="ray", index_options={"n_threads": 2}
    )
    assert tuned._all("index_options") == [{"n_threads": 2}] * 3
    same(results(tuned, shard_queries[:8]), results(local, shard_queries[:8]))
    # The coordinator opens the first part's models and settings only (the actors open the parts): a setting the
    # index refuses, or a damaged part, is still an error that names it, raised before any actor starts.
    with pytest.raises(rapidrag.errors.IndexOptionError, match="ef_search is not used by a flat index"):
        ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, backend="ray", index_options={"ef_search": 8})
    manifest = sorted((tmp_path / "ix").glob("part-002*"))[0] / "MANIFEST.json"
    manifest.write_text(manifest.read_text().replace('"documents": ', '"documents": 1', 1))  # (a count changed)
    with pytest.raises(rapidrag.errors.IndexFormatError, match="part-002.*checksum mismatch"):
        ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None, backend="ray")


def test_searches_read_over_the_shard_actors_channels(
    ray_cluster: Any, shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """A search's reads go over each shard actor's channel (``rapidrag.channels``, on the actor's loopback node
    address) and give the answers Ray calls give; an error a shard raises comes back as itself."""
    import ray

    from rapidrag.errors import FilterError

    index = ShardedRetriever(shard_embedder, n_shards=2, title_weight=0.5, backend="ray", address=ray_cluster.address)
    index.add(shard_corpus[:80])
    assert index.channels
    modes = ("lexical", "hybrid")
    over_channels = {mode: results(index, shard_queries[:6], mode=mode) for mode in modes}
    assert index.channel_reads >= 2 * 12  # each search: both shards' stage lists
    for group in index._shards:
        host, port = ray.get(group[0].call.remote("channel"))
        assert _loopback(host) and port > 0
    index.channels = False
    read = index.channel_reads
    for mode in modes:
        same(results(index, shard_queries[:6], mode=mode), over_channels[mode], atol=0.0)
    assert index.channel_reads == read
    index.channels = True
    with pytest.raises(FilterError, match="unknown operator"):
        index.search(shard_queries[0], filter={"year": {"$bogus": 1}})
    same(results(index, shard_queries[:2]), results(index, shard_queries[:2]))  # the channels still answer
    assert index.channel_reads > read


def test_a_replica_killed_mid_load_loses_no_query(
    ray_cluster: Any, shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """Two replicas per shard: one killed while another thread searches, every answer stays the same and none is
    partial. With the last replica of a shard gone, a search answers from the others and names the missing shard,
    and a change for that shard is refused."""
    import threading

    import ray

    from rapidrag.distributed import ShardUnavailableError, shard_of

    docs = shard_corpus[:120]
    index = ShardedRetriever(shard_embedder, n_shards=2, replicas=2, backend="ray", address=ray_cluster.address)
    index.add(docs)
    want = results(index, shard_queries[:6])
    assert index.missing_shards() == []
    seen: list[Any] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            for q in shard_queries[:6]:
                r = index.search(q, k=10)
                seen.append((q, [(h.doc_id, h.chunk_id, h.start, h.end, h.score) for h in r], r.missing_shards))

    worker = threading.Thread(target=search)
    worker.start()
    try:
        while len(seen) < 6:
            pass
        assert index.channel_reads > 0  # the searches read over channels: the kill breaks one
        ray.kill(index._shards[0][0])
        count = len(seen)
        while len(seen) < count + 12:
            pass
    finally:
        stop.set()
        worker.join()
    expected = dict(zip(shard_queries[:6], want, strict=True))
    for q, got, missing in seen:
        assert missing == []
        same([got], [expected[q]])
    assert len(index._shards[0]) == 1  # the dead replica left the set
    ray.kill(index._shards[0][0])
    # ray.kill returns before the actor dies: until then it answers, in full (a search made in that moment failed
    # this test now and then); from its death on, the answers name the missing shard.
    deadline = time.monotonic() + 60
    while not (partial := index.search(shard_queries[0], k=10)).missing_shards:
        same([[(h.doc_id, h.chunk_id, h.start, h.end, h.score) for h in partial]], [expected[shard_queries[0]]])
        assert time.monotonic() < deadline, "a replica killed 60 s ago still answers"
        time.sleep(0.05)
    assert partial.missing_shards == [0] and partial
    assert all(shard_of(h.doc_id, 2) == 1 for h in partial)
    # What is made of a partial answer says so: a context, an evaluation, the service's answers.
    context = index.context(shard_queries[0], 200)
    assert context.missing_shards == [0] and "shards 0 of the index did not answer" in context.to_markdown()
    judged = {"q": {partial[0].doc_id: 1}}
    assert rapidrag.evaluate(index, {"q": shard_queries[0]}, judged)["partial_answers"] == 1
    from fastapi.testclient import TestClient

    from rapidrag.server import create_app

    with TestClient(create_app(index)) as app:
        answer = app.post("/search", json={"query": shard_queries[0], "k": 10}).json()
        assert answer["missing_shards"] == [0] and [h["doc_id"] for h in answer["hits"]] == [h.doc_id for h in partial]
        assert app.post("/context", json={"query": shard_queries[0]}).json()["context"]["missing_shards"] == [0]
        lost = next(d for d in ("x1", "x2", "x3", "x4") if shard_of(d, 2) == 0)
        refused = app.post("/documents", json={"documents": [{"id": lost, "text": "more"}]})
        assert refused.status_code == 503 and "no replica took the change" in refused.json()["detail"]
        assert app.get("/stats").status_code == 503
        assert app.get("/readyz").json() == {"status": "degraded", "missing_shards": [0]}
    assert index.missing_shards() == [0]
    with pytest.raises(ShardUnavailableError, match="shard"):
        index.add([{"id": d, "text": "more"} for d in ("x1", "x2", "x3", "x4") if shard_of(d, 2) == 0][:1])


def _local_twin(shard_embedder: rapidrag.Embedder, n_shards: int) -> ShardedRetriever:
    return ShardedRetriever(shard_embedder, n_shards=n_shards, title_weight=0.5)


def test_a_shard_killed_mid_load_comes_back_with_every_write(
    ray_cluster: Any,
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    tmp_path: Path,
) -> None:
    """One replica per shard. A shard actor killed (Ray restarts it) while documents are being added: the add
    completes, and the restarted actor, restored from the last snapshot plus the writes logged since (each applied
    once, a change of settings too), answers as an index that never failed."""
    import threading
    import time

    import ray

    docs = shard_corpus[:160]
    index = ShardedRetriever(shard_embedder, n_shards=2, title_weight=0.5, backend="ray", address=ray_cluster.address)
    twin = _local_twin(shard_embedder, 2)
    for r in (index, twin):
        r.add(docs[:40])
    index.save(tmp_path / "ix")  # the snapshot a restarted shard starts from
    for r in (index, twin):
        r.upsert([{**d, "text": d["text"] + " logged after the snapshot"} for d in docs[30:45]])
        r.delete([docs[1]["id"], docs[41]["id"]])
        r.compact()  # (logged with the writes: the restarted shard replays it too)
        r.configure(k1=1.5, b=0.6, fusion="weighted", weights=(0.6, 0.4))  # (what rapidrag tune tries; logged too)
        r.set_index_options(n_threads=2)  # (POST /index-options; logged too)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            for start in range(45, 160, 23):
                index.add(docs[start : start + 23])
        except BaseException as e:  # re-raised below, on the test's thread
            errors.append(e)

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(0.3)
    ray.kill(index._shards[0][0], no_restart=False)
    worker.join()
    assert errors == []
    for start in range(45, 160, 23):
        twin.add(docs[start : start + 23])
    assert len(index) == len(twin) == 158
    for mode in ("lexical", "hybrid"):
        same(results(index, shard_queries[:8], mode=mode), results(twin, shard_queries[:8], mode=mode))
    assert index.statistics(shard_queries[0]) == twin.statistics(shard_queries[0])
    ray.kill(index._shards[1][0], no_restart=False)  # killed between changes: the next search restores it
    same(results(index, shard_queries[:4]), results(twin, shard_queries[:4]))
    assert index._all("index_options") == twin._all("index_options") and index.index_options["n_threads"] == 2
    assert index.recovered >= 2


def test_a_slow_replica_is_hedged(
    ray_cluster: Any, shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """Two replicas per shard, one of shard 0 made slow (2 s per search): with ``hedge_ms`` the search also asks
    the other replica and takes the first answer, the same answer."""
    import ray

    docs = shard_corpus[:80]
    index = ShardedRetriever(
        shard_embedder, n_shards=2, replicas=2, title_weight=0.5, backend="ray", address=ray_cluster.address
    )
    index.add(docs)
    twin = _local_twin(shard_embedder, 2)
    twin.add(docs)
    ray.get(index._shards[0][0].call.remote("fault", 2.0))
    index.hedge_ms = 50.0
    same(results(index, shard_queries[:3]), results(twin, shard_queries[:3]))
    assert index.hedged >= 3  # at least one hedge per search (shard 0; shard 1 too when slower than 50 ms)
    ray.get(index._shards[0][0].call.remote("fault", 0.0))


def test_a_node_removed_with_two_replicas_loses_no_query(
    ray_cluster: Any, shard_embedder: rapidrag.Embedder, shard_corpus: list[dict[str, Any]], shard_queries: list[str]
) -> None:
    """Two replicas per shard on different nodes; a worker node holding replicas is removed while another thread
    searches: no search fails or comes back partial, every answer is the same; a node is added back after."""
    import threading

    import ray

    docs = shard_corpus[:100]
    index = ShardedRetriever(
        shard_embedder, n_shards=2, replicas=2, title_weight=0.5, backend="ray", address=ray_cluster.address
    )
    index.add(docs)
    want = results(index, shard_queries[:5])
    hosts = {ray.get(r.call.remote("node")) for group in index._shards for r in group}
    for i, group in enumerate(index._shards):
        nodes = [ray.get(r.call.remote("node")) for r in group]
        assert len(set(nodes)) == 2, f"shard {i}: its replicas share a node"
    victim = next(n for n in ray_cluster.worker_nodes if n.node_id in hosts)
    seen: list[Any] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            for q in shard_queries[:5]:
                try:
                    r = index.search(q, k=10)
                except BaseException as e:  # counted: no search may fail
                    failures.append(e)
                    continue
                seen.append((q, [(h.doc_id, h.chunk_id, h.start, h.end, h.score) for h in r], r.missing_shards))

    worker = threading.Thread(target=search)
    worker.start()
    try:
        while len(seen) < 5:
            pass
        ray_cluster.remove_node(victim)
        count = len(seen)
        while len(seen) < count + 10 and not failures:
            pass
    finally:
        stop.set()
        worker.join()
    assert failures == []
    expected = dict(zip(shard_queries[:5], want, strict=True))
    for q, got, missing in seen:
        assert missing == []
        same([got], [expected[q]])
    # The cluster gets its third node back for the cases after this one.
    ray_cluster.add_node(num_cpus=1, object_store_memory=256 * 1024 * 1024, node_ip_address="127.0.0.1")
    ray_cluster.wait_for_nodes()


def test_ingestion_through_ray_data_equals_add(
    ray_cluster: Any,
    shard_embedder: rapidrag.Embedder,
    shard_corpus: list[dict[str, Any]],
    shard_queries: list[str],
    tmp_path: Path,
) -> None:
    """The Ray Data pipeline (chunk and embed on a pool of two actors, route, bulk add, save) fills a two-shard
    index on the cluster with what ``Retriever.add`` makes of the same documents: the same ids and chunk spans,
    BM25 statistics, answers and scores (1e-5) in every mode; the saved index reopens with them."""
    from rapidrag.retriever import Retriever

    docs = [*shard_corpus[:150], {"id": "empty", "text": ""}]
    one = Retriever(shard_embedder, title_weight=0.5)
    one.add(docs)
    index = ShardedRetriever(shard_embedder, n_shards=2, title_weight=0.5, backend="ray", address=ray_cluster.address)
    # Small tasks and bulk adds: ten tasks over the two actors, several bulk adds per shard.
    report = index.ingest(docs, out=tmp_path / "ix", actors=2, task_documents=16, add_documents=30)
    assert (report.documents, report.chunks, report.actors) == (151, one.n_chunks, 2)
    assert len(index) == 151 and index.n_chunks == one.n_chunks
    assert all(report.stages[s] > 0 for s in ("open", "chunk", "embed", "add", "save")), report.stages
    for q in shard_queries[:3]:
        assert index.statistics(q) == one.statistics(q)
    for mode in ("lexical", "dense", "hybrid"):
        same(results(index, shard_queries[:8], mode=mode), results(one, shard_queries[:8], mode=mode), atol=1e-5)
    same(
        results(index, shard_queries[:8], per_document=False),
        results(one, shard_queries[:8], per_document=False),
        atol=1e-5,
    )

    def spans(r: Retriever) -> dict[str, list[tuple[int, int]]]:
        table = r._chunks
        return {
            doc.id: [(int(table.start[row]), int(table.end[row])) for row in r._doc_rows[number]]
            for doc, number in ((r.get(i), n) for i, n in r._docs.items())
            if doc is not None
        }

    from rapidrag.distributed import SHARDED_VERSION
    from rapidrag.persist import read_snapshot

    parts = read_snapshot(tmp_path / "ix", version=SHARDED_VERSION).config["sharded"]["parts"]
    saved: dict[str, list[tuple[int, int]]] = {}
    for part in parts:
        saved.update(spans(Retriever.load(tmp_path / "ix" / part, embedder=shard_embedder, reranker=None)))
    assert saved == spans(one)
    again = ShardedRetriever.load(tmp_path / "ix", embedder=shard_embedder, reranker=None, backend="ray")
    same(results(again, shard_queries[:8]), results(one, shard_queries[:8]), atol=1e-5)
    with pytest.raises(ValueError, match="already indexed"):
        index.ingest(docs[:3], actors=1)


def test_rapidrag_index_with_ray_ingests_through_the_pipeline(
    ray_cluster: Any, shard_corpus: list[dict[str, Any]], shard_queries: list[str], tmp_path: Path, capsys: Any
) -> None:
    """``rapidrag index SRC --shards 2 --ray ADDRESS --replicas 2`` reads SRC as without Ray (a repeated id skipped
    and reported), ingests through the pipeline into two replicas of each shard, and writes the sharded folder
    that ``rapidrag query`` opens (also with two replicas, hedged); it answers as one index of the same file."""
    import json

    from rapidrag.cli import main
    from rapidrag.ingest import Ingest
    from rapidrag.retriever import Retriever

    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) for d in shard_corpus[:120]]
    source.write_text("\n".join([*lines, lines[7]]) + "\n")
    argv = ["index", str(source), "--out", str(tmp_path / "ix"), "--lexical", "--shards", "2"]
    assert main([*argv, "--ray", ray_cluster.address, "--replicas", "2"]) == 0
    printed = capsys.readouterr()
    assert "2 shards x 2 replicas on Ray" in printed.out and "pipeline" in printed.out
    assert "duplicate id" in printed.err
    one = Retriever()
    one.add(Ingest(source).unique())
    loaded = ShardedRetriever.load(tmp_path / "ix")
    assert loaded.n_shards == 2 and len(loaded) == 120
    same(results(loaded, shard_queries[:8]), results(one, shard_queries[:8]))
    # rapidrag query joins the running cluster with --ray: the shards open as actors there, with the same answers.
    query = shard_queries[0]
    assert main(["query", str(tmp_path / "ix"), query, "--json", "-k", "5", "--ray", ray_cluster.address]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["doc_id"] for h in hits] == [h.doc_id for h in one.search(query, k=5)]
    # With two replicas of each shard and hedged reads (--replicas, --hedge-ms): the same answer.
    copies = ["--ray", ray_cluster.address, "--replicas", "2", "--hedge-ms", "50"]
    assert main(["query", str(tmp_path / "ix"), query, "--json", "-k", "5", *copies]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == [h["doc_id"] for h in hits]
    assert main(["query", str(tmp_path / "ix" / "nothing"), query, "--ray", ray_cluster.address]) == 2
    capsys.readouterr()
    # --update on the cluster: ten lines gone (every later line's source moves: metadata alone), one text edited,
    # five documents new; the shards then answer as one index made afresh from the edited file.
    edited = [json.loads(line) for line in lines[10:]]
    edited[5]["text"] += " An edit."
    edited += [{"_id": f"new-{d['id']}", "title": d["title"], "text": d["text"]} for d in shard_corpus[120:125]]
    source.write_text("".join(json.dumps(d) + "\n" for d in edited))
    argv = ["index", str(source), "--out", str(tmp_path / "ix"), "--update", "--prune", "--ray", ray_cluster.address]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "5 added, 1 changed, 109 with new metadata only, 0 unchanged" in printed.out, printed
    assert "10 in the index but not in" in printed.out and "removed (--prune)" in printed.out
    fresh = Retriever()
    fresh.add(Ingest(source).unique())
    updated = ShardedRetriever.load(tmp_path / "ix")
    assert len(updated) == 115 and updated.get(edited[0]["_id"]).metadata["source"] == "docs.jsonl:1"
    same(results(updated, shard_queries[:8]), results(fresh, shard_queries[:8]))


def test_shards_on_ray_reload_a_snapshot_saved_by_another_writer(
    ray_cluster: Any, shard_corpus: list[dict[str, Any]], shard_queries: list[str], tmp_path: Path
) -> None:
    """A sharded index served from Ray actors moves to the folder's newer snapshot (new actors opened with it, the
    old ones stopped), and its own save over that snapshot would have been refused."""
    import ray

    from rapidrag.errors import IndexConflictError

    writer = ShardedRetriever(n_shards=2)
    writer.add(shard_corpus[:80])
    folder = writer.save(tmp_path / "ix")
    served = ShardedRetriever.load(folder, backend="ray", address=ray_cluster.address, replicas=2)
    old = [r for group in served._shards for r in group]
    writer.add(shard_corpus[80:100])
    writer.delete([shard_corpus[0]["id"]])
    writer.save(folder)
    served.delete([shard_corpus[1]["id"]])
    with pytest.raises(IndexConflictError):
        served.save(folder)
    assert served.reload(discard=True) and len(served) == 99 and served.backend == "ray" and served.replicas == 2
    same(results(served, shard_queries[:8]), results(writer, shard_queries[:8]))
    for replica in old:  # (stopped: their handles answer no more)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(replica.call.remote("index_options"), timeout=60)
    served.delete([shard_corpus[2]["id"]])
    served.save(folder)  # (the snapshot it holds: no conflict)
    assert len(ShardedRetriever.load(folder)) == 98
