"""The machine's cores as one budget: how many rapidrag uses (``set_cores``, ``$RAPIDRAG_CORES``), shared by every
model run in the process so that concurrent searches never oversubscribe them. The dense index sizes FAISS's
threads from it too, which is why it lives apart from the model sessions."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

__all__ = ["CORES", "CORES_ENV", "CoreBudget", "set_cores"]


class CoreBudget:
    """The machine's cores, shared by every model run in the process.

    Each ONNX Runtime session runs with ``n_threads`` intra-op threads (0 = one per core). When several threads
    call ``search`` at once, their model runs would each start that many threads and oversubscribe the cores
    (spinning threads make it worse); a run instead waits here until its threads' worth of cores is free. With
    sessions of one thread, that many runs go in parallel; with sessions of all cores, one at a time.
    """

    def __init__(self, cores: int | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.free = self.cores
        self._cv = threading.Condition()

    def resize(self, cores: int) -> None:
        """Budget ``cores`` from now on; runs holding cores keep them until they finish."""
        with self._cv:
            self.free += cores - self.cores
            self.cores = cores
            self._cv.notify_all()

    @contextlib.contextmanager
    def use(self, n_threads: int, deadline: float | None = None) -> Iterator[bool]:
        """Hold ``n_threads`` cores (0 = all) for the block; yields True once they are held. With ``deadline`` (a
        ``time.perf_counter()`` value) it gives up waiting then and yields False, holding nothing."""
        need = min(self.cores, n_threads or self.cores)
        with self._cv:
            while self.free < need:
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and left <= 0:
                    break
                self._cv.wait(left)
            granted = self.free >= need
            if granted:
                self.free -= need
        try:
            yield granted
        finally:
            if granted:
                with self._cv:
                    self.free += need
                    self._cv.notify_all()


CORES_ENV = "RAPIDRAG_CORES"


def _cores_from_env() -> int | None:
    raw = os.environ.get(CORES_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{CORES_ENV} must be a positive int (the cores rapidrag may use), got {raw!r}")
    return int(raw)


CORES = CoreBudget(_cores_from_env())


def set_cores(n: int) -> None:
    """The one thread setting: how many cores rapidrag uses (default: all, or ``$RAPIDRAG_CORES``).

    It sizes what is created afterwards (ONNX Runtime sessions and tokenizers asked for ``n_threads=0``, FAISS
    index builds) and, at once, the budget that every model run takes its threads from, so that searches running
    in several threads never use more than ``n`` cores for models together. FAISS searches use one OpenMP thread
    per calling thread and the native search kernels run single-threaded in the calling thread, so neither adds
    threads.
    Set it before loading models: a session keeps the intra-op threads it was created with.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"cores must be a positive int, got {n!r}")
    CORES.resize(n)
