"""rapidrag.dense: exactness of flat, recall of HNSW and IVF-PQ, deletes, in-search filters, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rapidrag.dense import DenseIndex

DIM = 32


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    # Clustered vectors, as embeddings are: graph and IVF indexes are tested on the structure they are built for.
    centers = rng.normal(size=(20, DIM))
    x = centers[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return unit(rng, 6000), unit(rng, 50)


def exact(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[set[int]]:
    scores = queries @ vectors.T
    scores[:, ~allowed] = -np.inf
    return [set(np.argsort(-s)[:k].tolist()) for s in scores]


def recall(found: np.ndarray, truth: list[set[int]]) -> float:
    return float(np.mean([len(set(f.tolist()) & t) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_search_recall_and_deletes(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = DenseIndex(DIM, kind, nprobe=32, pq_m=8 if kind == "ivfpq" else None)
    index.add(np.arange(len(vectors)), vectors)
    everything = np.ones(len(vectors), dtype=bool)
    rows, scores = index.search(queries, 10)
    floor = {"flat": 1.0, "hnsw": 0.95, "ivfpq": 0.9}[kind]
    assert recall(rows, exact(vectors, queries, 10, everything)) >= floor
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    # Delete the best hit of every query: it never comes back.
    gone = np.unique(rows[:, 0])
    assert index.remove(gone) == len(gone) and index.remove(gone) == 0
    alive = everything.copy()
    alive[gone] = False
    rows2, _ = index.search(queries, 10)
    assert not np.isin(rows2, gone).any()
    assert recall(rows2, exact(vectors, queries, 10, alive)) >= floor
    assert len(index) == len(vectors) - len(gone)
    if kind == "hnsw":
        assert index.dead == len(gone)
        index.compact()
        assert index.dead == 0 and not np.isin(index.search(queries, 10)[0], gone).any()


@pytest.mark.parametrize("selectivity", [0.5, 0.1, 0.01, 0.001])
def test_filtered_hnsw_recall_against_exact_filtered_search(
    selectivity: float, data: tuple[np.ndarray, np.ndarray]
) -> None:
    vectors, queries = data
    index = DenseIndex(DIM, "hnsw", exact_rows=0, exact_fraction=0.005)  # 0.1% goes exact, the rest through HNSW
    index.add(np.arange(len(vectors)), vectors)
    mask = np.random.default_rng(1).random(len(vectors)) < selectivity
    mask[:3] = True  # at least a few allowed rows
    rows, _ = index.search(queries, 10, mask=mask)
    assert np.isin(rows[rows >= 0], np.flatnonzero(mask)).all()
    k = min(10, int(mask.sum()))
    assert recall(rows[:, :k], exact(vectors, queries, k, mask)) >= 0.99


@pytest.mark.parametrize("removed", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("exact_rows", [0, 20_000])  # 0: through the graph down to 1% of it; else exact earlier
def test_hnsw_recall_holds_with_most_rows_removed(
    removed: float, filtered: bool, exact_rows: int, data: tuple[np.ndarray, np.ndarray]
) -> None:
    # Removed rows stay in HNSW's graph until compact(): a search that looks for k rows among all the graph's
    # nodes finds few live ones when most are removed (recall 0.73 at 99% removed with the beam left as it was),
    # so the beam widens with the share of the graph that may be returned, as it does for a filter.
    vectors, queries = data
    index = DenseIndex(DIM, "hnsw", exact_rows=exact_rows, exact_fraction=0.01)
    index.add(np.arange(len(vectors)), vectors)
    rng = np.random.default_rng(2)
    gone = rng.choice(len(vectors), int(removed * len(vectors)), replace=False)
    index.remove(gone)
    assert index.dead == len(gone)
    allowed = np.ones(len(vectors), dtype=bool)
    allowed[gone] = False
    mask = None
    if filtered:  # a filter keeping half the rows, removed ones included: the share of the graph is smaller still
        mask = rng.random(len(vectors)) < 0.5
        allowed &= mask
    rows, _ = index.search(queries, 10, mask=mask)
    assert np.isin(rows[rows >= 0], np.flatnonzero(allowed)).all()
    k = min(10, int(allowed.sum()))
    assert recall(rows[:, :k], exact(vectors, queries, k, allowed)) >= 0.99


def test_bad_input_and_edges() -> None:
    index = DenseIndex(4)
    with pytest.raises(TypeError, match="float32"):
        index.add([0], np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        index.add([0], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add([0], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="1 rows for 2 vectors"):
        index.add([0], np.ones((2, 4), dtype=np.float32))
    index.add([5, 2], np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(ValueError, match="already in the index"):
        index.add([2], np.ones((1, 4), dtype=np.float32))
    rows, scores = index.search(np.eye(4, dtype=np.float32)[:1], 3)
    assert rows[0].tolist() == [5, 2, -1] and scores[0, 2] == -np.inf
    rows, _ = index.search(np.eye(4, dtype=np.float32)[:1], 2, mask=np.zeros(6, dtype=bool))
    assert (rows == -1).all()
    with pytest.raises(ValueError, match="IVF-PQ"):
        DenseIndex(4, "ivfpq").add(np.arange(10), np.ones((10, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="kind"):
        DenseIndex(4, "annoy")  # type: ignore[arg-type]


def test_flat_filters_are_exact_on_every_path() -> None:
    """Broad filters go through an over-fetched unfiltered scan, narrow ones through exact scoring of the allowed
    rows; both equal brute force, including when the allowed rows are exactly the ones the scan ranks last."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((4000, 16)).astype(np.float32)
    index = DenseIndex(16, "flat")
    index.add(np.arange(4000), vectors)
    q = rng.standard_normal((2, 16)).astype(np.float32)
    scores = q @ vectors.T
    worst_half = np.zeros(4000, dtype=bool)
    worst_half[np.argsort(scores[0])[:2000]] = True  # the bottom half for query 0: over-fetching finds none
    for mask in [rng.random(4000) < f for f in (0.95, 0.5, 0.2, 0.05, 0.001)] + [worst_half]:
        rows, got = index.search(q, 10, mask=mask)
        masked = np.where(mask, scores, -np.inf)
        expected = np.argsort(-masked, axis=1, kind="stable")[:, :10]
        n = min(10, int(mask.sum()))
        assert (rows[:, :n] == expected[:, :n]).all() and (rows[:, n:] == -1).all()
        assert np.allclose(got[:, :n], np.take_along_axis(masked, expected, axis=1)[:, :n], atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_rows_added_a_few_at_a_time_equal_rows_added_at_once(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    # Small adds lengthen views over buffers that grow when full (no copy of every vector per add): the stored
    # vectors, the live rows, searches (filtered ones score the stored vectors) and the saved state are those of one
    # add of everything, across many growths of the buffers, with rows skipped and some removed on the way.
    vectors, queries = data
    rows = np.arange(0, 2 * 900, 2)  # every other row: rows never given stay dead
    once, steps = DenseIndex(DIM, kind), DenseIndex(DIM, kind)
    once.add(rows, vectors[: len(rows)])
    for a in range(0, len(rows), 7):
        steps.add(rows[a : a + 7], vectors[a : min(a + 7, len(rows))])
        if a == 350:  # a remove between adds
            for index in (once, steps):
                index.remove(rows[:40])
    once.remove(rows[:40])
    assert len(steps) == len(once) == len(rows) - 40
    assert np.array_equal(steps.vectors(rows), once.vectors(rows))
    allowed = np.zeros(rows[-1] + 1, dtype=bool)
    allowed[rows[::3]] = True
    for mask in (None, allowed):
        found_steps, scores_steps = steps.search(queries, 10, mask=mask)
        found_once, scores_once = once.search(queries, 10, mask=mask)
        assert np.array_equal(found_steps, found_once) and np.allclose(scores_steps, scores_once)
        assert not np.isin(found_steps, rows[:40]).any()
    info, arrays = steps.state()
    _, arrays_once = once.state()
    assert arrays["alive"].shape == (rows[-1] + 1,)  # the rows in use, not the buffer's room
    assert np.array_equal(arrays["alive"], arrays_once["alive"])
    assert "vectors" not in arrays  # the vectors once, in FAISS's file (index format 3): about their own size
    assert len(arrays["faiss"]) < 1.1 * (len(rows) - 40) * DIM * 4 + 10**6
    loaded = DenseIndex.from_state(info, arrays)
    loaded.add([rows[-1] + 5], vectors[-1:])  # a load's exact-size arrays grow as well
    assert np.array_equal(loaded.vectors(rows[40:]), once.vectors(rows[40:]))
    assert np.array_equal(loaded.vectors([rows[-1] + 5]), vectors[-1:]) and len(loaded) == len(once) + 1


def test_a_flat_index_skips_its_removed_rows_until_it_drops_them(data: tuple[np.ndarray, np.ndarray]) -> None:
    # Removed rows of a flat index stay in FAISS until there are enough to be worth FAISS's removal; every search
    # (unfiltered, filtered, one whose best rows were all removed) answers as an index of the live rows alone,
    # the saved state holds no removed row, and a removed row can be added again.
    from rapidrag.dense import FLAT_TOMBSTONE_ROWS

    vectors, queries = data
    n = 3000
    index = DenseIndex(DIM)
    index.add(np.arange(n), vectors[:n])
    best = np.unique(index.search(queries, 4)[0])  # every query's best 4 gone: at k 1 the over-fetch falls short
    alive = np.ones(n, dtype=bool)

    def check() -> None:
        live = np.flatnonzero(alive)
        reference = DenseIndex(DIM)
        reference.add(live, vectors[live])
        some, few = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        some[::3] = True  # (an over-fetched scan)
        few[::10] = True  # (the allowed rows' stored vectors scored: read from FAISS's storage by slot)
        for mask in (None, some, few):
            for k in (1, 10, 40):
                rows, scores = index.search(queries, k, mask=mask)
                want_rows, want_scores = reference.search(queries, k, mask=mask)
                assert np.array_equal(rows, want_rows) and np.allclose(scores, want_scores)
        assert len(index) == int(alive.sum())
        assert np.array_equal(index.vectors(live), vectors[live])

    for row in best.tolist():  # one at a time, as single documents are deleted
        index.remove([row])
        alive[row] = False
    assert 0 < index.dead == len(best) <= FLAT_TOMBSTONE_ROWS
    check()
    info, arrays = index.state()
    loaded = DenseIndex.from_state(info, arrays)
    assert loaded.dead == 0 and np.array_equal(loaded.search(queries, 10)[0], index.search(queries, 10)[0])
    index.add(best[:3], vectors[best[:3]])  # removed rows added again
    alive[best[:3]] = True
    check()
    more = np.setdiff1d(np.arange(n), best)[: FLAT_TOMBSTONE_ROWS + 50]
    index.remove(more)
    alive[more] = False
    assert index.dead < FLAT_TOMBSTONE_ROWS  # past the limit: dropped from FAISS
    check()
    index.remove(best[3:10])
    alive[best[3:10]] = False
    index.compact()
    assert index.dead == 0
    check()
    # A small index whose removed rows outnumber its live ones: an over-fetch as long as the live rows still
    # falls short (FAISS holds the removed ones too), and the search scores the live rows instead.
    small = DenseIndex(DIM)
    small.add(np.arange(40), vectors[:40])
    gone = small.search(queries[:1], 30)[0][0]
    small.remove(gone)
    reference = DenseIndex(DIM)
    live = np.setdiff1d(np.arange(40), gone)
    reference.add(live, vectors[live])
    assert np.array_equal(small.search(queries[:1], 3)[0], reference.search(queries[:1], 3)[0])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_flat_and_hnsw_indexes_hold_their_vectors_once(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    # The vectors are FAISS's, read through a view by slot: no array of the index's own holds another copy, and
    # the view follows FAISS's storage through adds, removals that renumber it, compaction and a load.
    vectors, queries = data
    n = 2000
    index = DenseIndex(DIM, kind)
    index.add(np.arange(n), vectors[:n])

    def own_bytes(x: DenseIndex) -> int:
        arrays = [a for a in vars(x).values() if isinstance(a, np.ndarray)]
        arrays += [a for t in vars(x).values() if isinstance(t, tuple) for a in t if isinstance(a, np.ndarray)]
        return sum({id(a): a.nbytes for a in arrays if a.flags.owndata}.values())

    assert own_bytes(index) < vectors[:n].nbytes // 4  # (a slot and a live flag a row)
    gone = np.arange(0, n, 3)
    index.remove(gone)
    index.compact()  # flat: FAISS renumbers its vectors; HNSW: a new graph over the live ones
    kept = np.setdiff1d(np.arange(n), gone)
    assert np.array_equal(index.vectors(kept), vectors[kept])
    index.add(np.arange(n, n + 500), vectors[n : n + 500])
    live = np.setdiff1d(np.arange(n + 500), gone)
    assert np.array_equal(index.vectors(live), vectors[live])
    assert not index.vectors(gone).any()  # removed rows: zeros
    loaded = DenseIndex.from_state(*index.state())
    assert own_bytes(loaded) < vectors[:n].nbytes // 4
    assert np.array_equal(loaded.vectors(live), vectors[live])
    few = np.zeros(n + 500, dtype=bool)
    few[live[::20]] = True  # narrow: exact scores of the allowed rows' stored vectors
    for x in (index, loaded):
        rows, scores = x.search(queries, 5, mask=few)
        want = np.where(few, queries @ vectors[: n + 500].T, -np.inf)
        assert np.array_equal(rows, np.argsort(-want, axis=1, kind="stable")[:, :5])
        assert np.allclose(scores, np.take_along_axis(want, rows, axis=1), atol=1e-5)


def test_the_exact_kernel_refuses_rows_outside_the_vectors() -> None:
    from rapidrag import _core

    vectors = np.eye(4, dtype=np.float32)
    out = np.empty((1, 2), dtype=np.float32)
    _core.exact_inner_products(vectors[1:2], vectors, np.asarray([1, 2], dtype=np.int64), out)
    assert out.tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="rows must be rows of vectors"):
        _core.exact_inner_products(vectors[1:2], vectors, np.asarray([1, 4], dtype=np.int64), out)
    with pytest.raises(ValueError, match="out must have shape"):
        _core.exact_inner_products(vectors[1:2], vectors, np.asarray([1], dtype=np.int64), out)
    with pytest.raises(TypeError):
        _core.exact_inner_products(vectors[1:2].astype(np.float64), vectors, np.asarray([1, 2], dtype=np.int64), out)


def _scores_are_of_current_vectors(
    index: DenseIndex, queries: np.ndarray, current: np.ndarray, alive: np.ndarray, **search: object
) -> None:
    # Every hit is a live row, scored with the vector it holds now (an old node of a row added again would give
    # the old vector's score); and a graph search still finds the exact top 10 of the live rows.
    rows, scores = index.search(queries, 10, **search)  # type: ignore[arg-type]
    assert (rows >= 0).all() and alive[rows].all()
    want = np.einsum("qd,qkd->qk", queries, current[rows])
    assert np.allclose(scores, want, atol=1e-5)
    allowed = alive & search["mask"] if "mask" in search else alive  # type: ignore[operator]
    assert recall(rows, exact(current, queries, 10, allowed)) >= 0.95


@pytest.mark.parametrize("exact_rows", [20_000, 0])  # the live rows searched exactly; through the graph
def test_hnsw_row_removed_and_added_again_is_searched_with_its_new_vector(
    data: tuple[np.ndarray, np.ndarray], exact_rows: int
) -> None:
    vectors, queries = data
    n = 2000
    index = DenseIndex(DIM, "hnsw", exact_rows=exact_rows)
    index.add(np.arange(n), vectors[:n])
    current, alive = vectors[:n].copy(), np.ones(n, dtype=bool)
    best = np.unique(index.search(queries, 1)[0][:, 0])
    index.remove(best)
    # Each best row comes back as a vector far from its queries: its old node, still in the graph, must not answer.
    moved = -vectors[best]
    index.add(best, moved)
    current[best] = moved
    assert index.dead == len(best)  # (the old nodes, until compacted)
    half = np.arange(n) % 2 == 0
    for load in (False, True):
        x = DenseIndex.from_state(*index.state()) if load else index
        _scores_are_of_current_vectors(x, queries, current, alive)
        _scores_are_of_current_vectors(x, queries, current, alive, mask=half)
        assert np.array_equal(x.vectors(best), moved)
    index.compact()
    assert index.dead == 0
    _scores_are_of_current_vectors(index, queries, current, alive)
    # A row added again twice after the last row was added: an unlinked node (id -1) now comes after the last
    # row's in the graph, and a load must not take it for any row's.
    index.add([n], vectors[n : n + 1])
    current, alive = np.concatenate([current, vectors[n : n + 1]]), np.append(alive, True)
    for _ in range(2):
        index.remove([7])
        index.add([7], -current[7:8])
        current[7] = -current[7]
    loaded = DenseIndex.from_state(*index.state())
    assert loaded.dead == 2 and np.array_equal(loaded.vectors(np.arange(n + 1)), current)
    _scores_are_of_current_vectors(loaded, queries, current, alive)


def test_an_hnsw_index_saved_with_a_row_held_twice_loads_with_its_newest_vector(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    # Versions before the fix above added a removed row again as a second node under the same id, and saved it so.
    import faiss

    vectors, queries = data
    n = 500
    graph = faiss.IndexIDMap2(faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT))
    graph.add_with_ids(vectors[:n], np.arange(n, dtype=np.int64))
    best = np.arange(5)
    graph.add_with_ids(-vectors[best], best.astype(np.int64))
    info, _ = DenseIndex(DIM, "hnsw", exact_rows=0).state()
    arrays = {"alive": np.ones(n, dtype=bool), "faiss": faiss.serialize_index(graph)}
    loaded = DenseIndex.from_state(info, arrays)
    current = vectors[:n].copy()
    current[best] = -vectors[best]
    assert loaded.dead == len(best) and np.array_equal(loaded.vectors(best), current[best])
    _scores_are_of_current_vectors(loaded, current[best], current, np.ones(n, dtype=bool))


def test_hnsw_compaction_runs_beside_searches_and_writes(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The graph is rebuilt under no lock: a search from another thread finishes while it is built, and the writes
    # made meanwhile (rows added, removed, removed and added again with a new vector), during the rebuild and
    # during the rounds that add the rows added meanwhile, are all in the new graph.
    import threading

    vectors, queries = data
    n = 3000
    index = DenseIndex(DIM, "hnsw", exact_rows=0)
    index.add(np.arange(n), vectors[:n])
    current, alive = vectors[: n + 520].copy(), np.zeros(n + 520, dtype=bool)
    alive[:n] = True
    index.remove(np.arange(0, n, 4))  # the rows the rebuild drops
    alive[:n:4] = False
    build, add_to = DenseIndex._build, DenseIndex._add_to
    searched: list[np.ndarray] = []

    def add_again(x: DenseIndex, rows: np.ndarray) -> None:  # removed, then added with new vectors
        x.remove(rows)
        x.add(rows, -vectors[rows])
        current[rows] = -vectors[rows]

    def build_while_others_work(self: DenseIndex, rows: np.ndarray, vecs: np.ndarray) -> object:
        reader = threading.Thread(target=lambda: searched.append(self.search(queries, 10)[0]))
        reader.start()
        reader.join(timeout=120)
        assert not reader.is_alive(), "a search waited for the graph's rebuild"
        assert len(searched) == 1 and alive[searched[0]].all()
        self.add(np.arange(n, n + 500), vectors[n : n + 500])  # added meanwhile
        alive[n : n + 500] = True
        self.remove(np.arange(1, 200, 4))  # removed meanwhile
        alive[1:200:4] = False
        add_again(self, np.arange(2, 200, 4))  # rows of the copy
        return build(self, rows, vecs)

    rounds: list[int] = []

    def add_while_others_write(self: DenseIndex, fresh: object, rows: np.ndarray, vecs: np.ndarray) -> None:
        rounds.append(len(rows))
        if len(rounds) == 1:  # (the first round, beside writes: 10 more rows, one of the round's added again)
            self.add(np.arange(n + 500, n + 510), vectors[n + 500 : n + 510])
            add_again(self, np.array([n]))
        elif len(rounds) == 2:  # (the second, of 11 rows: the last beside writes; the rest under the write lock)
            self.add(np.arange(n + 510, n + 520), vectors[n + 510 : n + 520])
            add_again(self, np.array([n + 500]))
        alive[n : n + 500 + 10 * min(len(rounds), 2)] = True
        add_to(self, fresh, rows, vecs)

    monkeypatch.setattr(DenseIndex, "_build", build_while_others_work)
    monkeypatch.setattr(DenseIndex, "_add_to", add_while_others_write)
    assert index.compact() == len(range(0, n, 4))  # (the rows removed when it began)
    assert len(searched) == 1 and rounds == [500 + 50, 10 + 1, 10 + 1]
    # Held and skipped: the rows removed during the rebuild, and the nodes of rows added again (50 of the copy, one
    # of each round).
    assert len(index) == alive.sum() and index.dead == 50 + 50 + 2
    live = np.flatnonzero(alive)
    assert np.array_equal(index.vectors(live), current[live])
    _scores_are_of_current_vectors(index, queries, current, alive)
    monkeypatch.undo()
    assert index.compact() == 50 + 50 + 2 and index.dead == 0
    _scores_are_of_current_vectors(index, queries, current, alive)

    def no_build(*_: object) -> None:
        raise AssertionError("a graph without removed rows was rebuilt")

    monkeypatch.setattr(DenseIndex, "_build", no_build)
    assert index.compact() == 0  # nothing to drop: no rebuild


class _HnswWrites(RuleBasedStateMachine):
    """Random adds, removals, rows removed and added again with new vectors, compactions and loads of an HNSW
    index, against a model of which rows are live and the vector each holds now: every hit is a live row scored
    with its current vector, and ``dead`` counts the nodes not linked to a live row."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(7)
        self.index = DenseIndex(DIM, "hnsw", exact_rows=0)  # (through the graph, never exact over the live rows)
        self.current = np.zeros((0, DIM), dtype=np.float32)
        self.alive = np.zeros(0, dtype=bool)
        self.replaced = np.zeros((0, DIM), dtype=np.float32)  # vectors rows held before they were added again

    def _vectors(self, n: int) -> np.ndarray:
        return unit(self.rng, n)

    @rule(n=st.integers(1, 40))
    def add_new(self, n: int) -> None:
        rows = np.arange(len(self.alive), len(self.alive) + n)
        vectors = self._vectors(n)
        self.index.add(rows, vectors)
        self.current = np.concatenate([self.current, vectors])
        self.alive = np.concatenate([self.alive, np.ones(n, dtype=bool)])

    @rule(share=st.floats(0.05, 0.6))
    def remove(self, share: float) -> None:
        live = np.flatnonzero(self.alive)
        gone = live[self.rng.random(len(live)) < share]
        assert self.index.remove(gone) == len(gone)
        self.alive[gone] = False

    @rule(share=st.floats(0.1, 1.0))
    def add_again(self, share: float) -> None:
        removed = np.flatnonzero(~self.alive)
        back = removed[self.rng.random(len(removed)) < share]
        vectors = self._vectors(len(back))
        self.index.add(back, vectors)
        self.replaced = np.concatenate([self.replaced, self.current[back]])[-20:]
        self.current[back] = vectors
        self.alive[back] = True

    @rule()
    def compact(self) -> None:
        dead = self.index.dead
        assert self.index.compact() == dead and self.index.dead == 0

    @rule()
    def save_and_load(self) -> None:
        dead = self.index.dead
        self.index = DenseIndex.from_state(*self.index.state())
        assert self.index.dead == dead

    @invariant()
    def answers_are_of_current_vectors(self) -> None:
        assert len(self.index) == int(self.alive.sum())
        if not self.alive.any():
            return
        # The current vectors of a few live rows, and old vectors of rows added again (their old nodes must not
        # answer for them).
        queries = np.concatenate([self.current[np.flatnonzero(self.alive)[:5]], self.replaced])
        k = min(5, int(self.alive.sum()))
        rows, scores = self.index.search(queries, k)
        assert (rows >= 0).all() and self.alive[rows].all()
        assert np.allclose(scores, np.einsum("qd,qkd->qk", queries, self.current[rows]), atol=1e-5)
        assert recall(rows, exact(self.current, queries, k, self.alive)) >= 0.9
        assert np.array_equal(self.index.vectors(np.flatnonzero(self.alive)), self.current[self.alive])


test_hnsw_writes_against_a_model = _HnswWrites.TestCase
test_hnsw_writes_against_a_model.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ef_search": 0}, ValueError, r"ef_search must be an int >= 1, got 0"),
        ({"hnsw_m": 1}, ValueError, r"hnsw_m must be an int >= 2"),
        ({"nprobe": 2.5}, ValueError, r"nprobe must be an int >= 1 or None, got 2.5"),
        ({"refine": True}, ValueError, r"refine must be an int >= 1"),
        ({"exact_fraction": 1.5}, ValueError, r"exact_fraction must be a number from 0 to 1"),
        ({"exact_rows": -1}, ValueError, r"exact_rows must be an int >= 0"),
        ({"n_threads": -2}, ValueError, r"n_threads must be an int >= 0 or None"),
        ({"pq_m": 5}, ValueError, r"pq_m \(5\) must divide dim \(32\)"),
    ],
)
def test_bad_settings_are_refused_by_name(options: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        DenseIndex(DIM, "hnsw", **options)  # type: ignore[arg-type]


def test_index_options_are_checked_by_name_and_kept() -> None:
    from rapidrag.dense import check_options

    with pytest.raises(ValueError, match=r"unknown index option 'beam': known are hnsw_m, ef_construction"):
        check_options({"beam": 3, "ef_search": 64})
    with pytest.raises(TypeError, match="index_options must be a dict"):
        check_options([("ef_search", 64)])  # type: ignore[arg-type]
    index = DenseIndex(DIM, "hnsw", **check_options({"ef_search": np.int64(300), "hnsw_m": 16}))
    assert (index.ef_search, index.hnsw_m) == (300, 16) and type(index.ef_search) is int
    loaded = DenseIndex.from_state(*index.state())
    assert (loaded.ef_search, loaded.hnsw_m) == (300, 16)


@pytest.mark.parametrize(("kind", "name"), [("hnsw", "ef_search"), ("ivfpq", "nprobe")])
def test_search_settings_change_on_a_built_index(kind: str, name: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    """``set_options`` changes what the next searches read (the beam, the lists probed), and a save keeps it."""
    vectors, queries = data
    index = DenseIndex(DIM, kind, hnsw_m=8, ef_search=1, nprobe=1, pq_m=8 if kind == "ivfpq" else None)
    index.add(np.arange(len(vectors)), vectors)
    truth = exact(vectors, queries, 10, np.ones(len(vectors), dtype=bool))
    low = recall(index.search(queries, 10)[0], truth)
    assert low < 0.9  # (so the check below can fail)
    index.set_options(**{name: 256 if kind == "hnsw" else index.nlist})
    high = recall(index.search(queries, 10)[0], truth)
    assert high >= (0.95 if kind == "hnsw" else 0.9) and high > low
    loaded = DenseIndex.from_state(*index.state())
    assert getattr(loaded, name) == getattr(index, name)
    assert (loaded.search(queries, 10)[0] == index.search(queries, 10)[0]).all()


def test_set_options_refuses_what_a_built_index_cannot_change() -> None:
    from rapidrag.errors import IndexOptionError

    flat, hnsw = DenseIndex(DIM, "flat"), DenseIndex(DIM, "hnsw", ef_search=64)
    with pytest.raises(IndexOptionError, match="index option ef_search is not used by a flat index; a built flat "
                       "index takes n_threads"):  # fmt: skip
        flat.set_options(ef_search=128)
    with pytest.raises(IndexOptionError, match=r"index option hnsw_m fixes how the index is built: rebuild it"):
        hnsw.set_options(hnsw_m=16)
    with pytest.raises(IndexOptionError, match="unknown index option 'beam'"):
        hnsw.set_options(beam=3)
    with pytest.raises(IndexOptionError, match=r"exact_rows must be an int >= 0, got -1"):
        hnsw.set_options(ef_search=256, exact_rows=-1)
    assert hnsw.ef_search == 64  # nothing changed by a refused call
    hnsw.set_options(ef_search=np.int64(256), exact_fraction=0, n_threads=None)
    assert (hnsw.ef_search, hnsw.exact_fraction, hnsw.n_threads) == (256, 0.0, None) and type(hnsw.ef_search) is int


def test_ivfpq_lists_probed_are_checked_against_its_lists(data: tuple[np.ndarray, np.ndarray]) -> None:
    from rapidrag.errors import IndexOptionError

    vectors, _ = data
    index = DenseIndex(DIM, "ivfpq", nlist=40, nprobe=2, pq_m=8)
    index.set_options(nprobe=None)  # before training: chosen then
    index.add(np.arange(len(vectors)), vectors)
    assert index.nprobe == 30  # three quarters of the 40 lists
    index.set_options(nprobe=4, refine=8)
    assert (index.nprobe, index.refine) == (4, 8)
    with pytest.raises(IndexOptionError, match="nprobe must be at most the index's 40 lists, got 41"):
        index.set_options(nprobe=41)
    index.set_options(nprobe=None)  # trained: the default again
    assert index.nprobe == 30


def test_hnsw_compaction_holds_back_writes_not_searches_for_its_last_rows(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a rebuild adds the last rows written meanwhile, a search answers and a write waits: a write that went
    on then would land in the old graph only, after the rows were taken, and be lost with it at the swap."""
    import threading

    vectors, queries = data
    n = 2000
    index = DenseIndex(DIM, "hnsw", exact_rows=0)
    index.add(np.arange(n), vectors[:n])
    index.remove(np.arange(0, n, 3))
    add_to = DenseIndex._add_to
    calls: list[int] = []
    searched: list[np.ndarray] = []
    writer = threading.Thread(target=lambda: index.add(np.array([n]), vectors[n : n + 1]))

    def last_round_beside_others(self: DenseIndex, fresh: object, rows: np.ndarray, vecs: np.ndarray) -> None:
        calls.append(len(rows))
        if len(calls) == 2:  # the last rows (none were written meanwhile: the first round found none either)
            reader = threading.Thread(target=lambda: searched.append(self.search(queries, 10)[0]))
            reader.start()
            reader.join(timeout=120)
            assert not reader.is_alive(), "a search waited for the last rows of the rebuild"
            writer.start()
            writer.join(timeout=1.0)  # (given the time to land in the old graph, if it is not held back)
        add_to(self, fresh, rows, vecs)

    monkeypatch.setattr(DenseIndex, "_add_to", last_round_beside_others)
    index.compact()
    writer.join(timeout=120)
    assert calls == [0, 0] and len(searched) == 1
    assert index.dead == 0 and len(index) == n - len(range(0, n, 3)) + 1
    rows, scores = index.search(vectors[n : n + 1], 1)
    assert rows[0, 0] == n and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_ivfpq_compaction_trains_beside_searches_with_writes_held_back(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IVF-PQ's ``compact`` trains its lists again on the live vectors while searches answer from the old index
    and writes wait (one that went on would miss the new index); the result is the index a fresh build over the
    live rows gives. With too few live vectors to train its lists, it is kept as it is."""
    import threading

    vectors, queries = data
    n = 4000
    index = DenseIndex(DIM, "ivfpq", nlist=40, nprobe=40, pq_m=8)
    index.add(np.arange(n), vectors[:n])
    index.remove(np.arange(0, n, 2))
    before = index.search(queries, 10)[0]
    new_index = DenseIndex._new_index
    searched: list[np.ndarray] = []
    writer = threading.Thread(target=lambda: index.add(np.array([n]), vectors[n : n + 1]))

    def training_beside_others(self: DenseIndex, train: np.ndarray | None = None) -> object:
        if train is not None and not searched:  # (the compaction's training, not the first add's)
            reader = threading.Thread(target=lambda: searched.append(self.search(queries, 10)[0]))
            reader.start()
            reader.join(timeout=120)
            assert not reader.is_alive(), "a search waited for the training"
            writer.start()
            writer.join(timeout=1.0)
            assert writer.is_alive(), "a write went on during the training"
        return new_index(self, train)

    monkeypatch.setattr(DenseIndex, "_new_index", training_beside_others)
    assert index.compact() == 0  # (IVF-PQ holds no removed vectors: nothing dropped, its lists trained anew)
    writer.join(timeout=120)
    monkeypatch.undo()
    assert np.array_equal(searched[0], before)
    live = np.append(np.arange(1, n, 2), n)
    fresh = DenseIndex(DIM, "ivfpq", nlist=40, nprobe=40, pq_m=8)
    fresh.add(np.arange(1, n, 2), vectors[1:n:2])
    fresh.add(np.array([n]), vectors[n : n + 1])
    assert len(index) == len(live)
    assert np.array_equal(index.search(queries, 10)[0], fresh.search(queries, 10)[0])
    # Too few live vectors for 40 lists (39 each): kept, and still answering from the live rows alone.
    index.remove(live[:-100])
    kept = index._index
    assert index.compact() == 0 and index._index is kept
    rows = index.search(queries, 10)[0]
    assert set(rows.ravel().tolist()) <= set(live[-100:].tolist())


def test_hnsw_compacts_by_itself_past_compact_fraction(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``compact_fraction``, the writes that leave that share of the graph removed (removals, re-adds) start
    ``compact`` in a background thread, one at a time; searches see only live rows throughout."""
    import rapidrag.dense

    monkeypatch.setattr(rapidrag.dense, "COMPACT_MIN_ROWS", 100)
    vectors, queries = data
    n = 2000
    index = DenseIndex(DIM, "hnsw", compact_fraction=0.25)
    index.add(np.arange(n), vectors[:n])
    index.remove(np.arange(0, 400))  # 20% of the graph: not due
    assert index.compacting is None and index.dead == 400
    index.remove(np.arange(400, 600))  # 30%: due
    thread = index._background  # (the thread started; ``compacting`` is it while it runs)
    assert thread is not None and thread.name == "rapidrag-compact"
    thread.join(timeout=120)
    assert index.compacting is None and index.dead == 0 and len(index) == n - 600
    alive = np.zeros(len(vectors), dtype=bool)
    alive[600:n] = True
    assert recall(index.search(queries, 10)[0], exact(vectors, queries, 10, alive)) >= 0.95
    # Rows added again leave their old nodes behind: those count too (460 of 1,860 nodes, 25%).
    index.remove(np.arange(600, 1060))
    index.add(np.arange(600, 700), vectors[600:700])
    assert index._background is not None and index._background is not thread
    thread = index._background
    thread.join(timeout=120)
    assert index.dead == 0 and len(index) == n - 600 - 360
    # Below COMPACT_MIN_ROWS nothing is due, whatever the share; None turns it off.
    monkeypatch.setattr(rapidrag.dense, "COMPACT_MIN_ROWS", 10_000)
    index.remove(np.arange(1060, 1600))
    assert index._background is thread and index.dead == 540
    monkeypatch.setattr(rapidrag.dense, "COMPACT_MIN_ROWS", 100)
    index.set_options(compact_fraction=None)
    index.remove(np.arange(1600, 1700))
    assert index._background is thread and index.dead == 640
    index.set_options(compact_fraction=0.5)  # (a change of the setting looks again: 640 of 1,040 nodes is due)
    assert index._background is not None and index._background is not thread
    index._background.join(timeout=120)
    assert index.dead == 0 and len(index) == 400


def test_compact_fraction_is_checked_saved_and_read_from_older_saves() -> None:
    from rapidrag.errors import IndexOptionError

    with pytest.raises(IndexOptionError, match="compact_fraction must be a number above 0 and at most 1, or None"):
        DenseIndex(DIM, "hnsw", compact_fraction=0)
    with pytest.raises(IndexOptionError, match="index option compact_fraction is not used by a flat index"):
        DenseIndex(DIM, "flat").set_options(compact_fraction=0.2)
    index = DenseIndex(DIM, "hnsw", compact_fraction=0.3)
    index.add(np.arange(3), unit(np.random.default_rng(2), 3))
    info, arrays = index.state()
    assert DenseIndex.from_state(info, arrays).compact_fraction == 0.3
    del info["compact_fraction"]  # as versions before the setting saved it
    assert DenseIndex.from_state(info, arrays).compact_fraction is None
