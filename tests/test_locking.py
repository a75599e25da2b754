"""rapidrag.locking.RWLock: readers together, a writer alone, writers not starved, reentrancy; and searches of
one Retriever that overlap while an add waits for them (behaviour, not timing)."""

from __future__ import annotations

import threading

import pytest

from rapidrag.locking import RWLock

TIMEOUT = 10.0


def test_readers_hold_the_lock_together() -> None:
    lock = RWLock()
    inside = threading.Barrier(3, timeout=TIMEOUT)  # both readers and the test meet while both hold it

    def reader() -> None:
        with lock.read():
            inside.wait()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # would time out (BrokenBarrierError) if one reader excluded the other
    for t in threads:
        t.join(TIMEOUT)


def test_a_writer_waits_for_readers_and_holds_new_ones_back() -> None:
    lock = RWLock()
    events: list[str] = []
    reading = threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            reading.set()
            release.wait(TIMEOUT)
            events.append("reader 1 out")

    def writer() -> None:
        with lock.write():
            events.append("writer")

    def late_reader() -> None:
        with lock.read():
            events.append("reader 2")

    r1 = threading.Thread(target=first_reader)
    r1.start()
    reading.wait(TIMEOUT)
    w = threading.Thread(target=writer)
    w.start()
    while not lock._waiting:  # the writer is queued behind reader 1
        threading.Event().wait(0.001)
    r2 = threading.Thread(target=late_reader)
    r2.start()
    release.set()
    for t in (r1, w, r2):
        t.join(TIMEOUT)
    assert events == ["reader 1 out", "writer", "reader 2"]


def test_reentrancy() -> None:
    lock = RWLock()
    with lock.write(), lock.write(), lock.read():
        pass
    with lock.read(), lock.read():
        pass
    with lock.read(), pytest.raises(RuntimeError, match="cannot start writing"):
        with lock.write():
            pass
    with lock.write():  # still usable after all that
        pass


def test_searches_overlap_and_an_add_is_seen_whole(scifact_texts: list[str]) -> None:
    """Two searches hold the retriever's lock together (a barrier inside the lexical stage would otherwise time
    out); an add waits for them and a search after it sees all of the added documents."""
    from rapidrag.retriever import Document, Retriever

    retriever = Retriever()
    retriever.add([Document(f"d{i}", t) for i, t in enumerate(scifact_texts[:200])])
    inside = threading.Barrier(2, timeout=TIMEOUT)
    real = retriever._lexical

    def meeting(*args: object, **kwargs: object) -> object:
        inside.wait()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    retriever._lexical = meeting  # type: ignore[method-assign]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda q=q: results.append(len(retriever.search(q, k=5))))
        for q in ("vitamin D and bone density", "cancer cells")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [5, 5]
    retriever._lexical = real  # type: ignore[method-assign]
    retriever.add([Document(f"new{i}", "zebrafish regeneration " * 3) for i in range(30)])
    hits = retriever.search("zebrafish regeneration", k=50)
    assert sum(h.doc_id.startswith("new") for h in hits) == 30
