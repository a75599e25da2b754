"""A readers-writer lock: searches read side by side, a change waits for the searches in progress and holds new
ones back until it is done, so that no search sees half of it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["RWLock"]


class RWLock:
    """Any number of readers, or one writer. A waiting writer goes before readers that come after it (writers are
    not starved by a stream of searches). Reentrant: a thread that holds the lock, to read or to write, may take it
    again to read, and a writer may take it again to write."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._writes = 0  # the writer's depth
        self._waiting = 0  # writers waiting
        self._local = threading.local()  # this thread's read depth, and whether its outermost read counts
        self._reading = _Reading(self)

    def read(self) -> _Reading:
        """``with lock.read():`` reads (a plain context manager, not a generator: a search takes it several times)."""
        return self._reading

    def _enter_read(self) -> None:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth:  # already reading: never wait on ourselves
            local.depth = depth + 1
            return
        if self._writer == threading.get_ident():  # the writer reads what it is writing
            local.depth, local.counted = 1, False
            return
        with self._cv:
            while self._writer is not None or self._waiting:
                self._cv.wait()
            self._readers += 1
        local.depth, local.counted = 1, True

    def _exit_read(self) -> None:
        local = self._local
        local.depth -= 1
        if local.depth or not local.counted:
            return
        with self._cv:
            self._readers -= 1
            if not self._readers:
                self._cv.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cv:
            if self._writer == me:
                self._writes += 1
            else:
                if getattr(self._local, "depth", 0):
                    raise RuntimeError("a thread that reads cannot start writing (it would wait on itself)")
                self._waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cv.wait()
                finally:
                    self._waiting -= 1
                self._writer, self._writes = me, 1
        try:
            yield
        finally:
            with self._cv:
                self._writes -= 1
                if not self._writes:
                    self._writer = None
                    self._cv.notify_all()


class _Reading:
    """``RWLock.read()``'s context manager."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock._enter_read()

    def __exit__(self, *exc: object) -> None:
        self._lock._exit_read()
