"""What rapidrag does to the Python process a long-lived index lives in: ``freeze_loaded`` keeps the garbage
collector's full collections off what was loaded (``rapidrag serve`` and the shard actors of an index split over
Ray call it; a service of your own can too; a ``reload`` freezes what it loads in a process that did), and
``prompt_switching`` has the interpreter hand the GIL over more often while a ``reload`` parses beside searches."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Iterator

__all__ = ["PROMPT_SWITCH_S", "freeze_loaded", "freeze_reloaded", "prompt_switching"]

# The GIL's switch interval while a reload runs beside searches (Python's default: 5 ms).
PROMPT_SWITCH_S = 0.0005
_switching = threading.Lock()
_prompt = [0, 0.0]  # reloads running, the interval before the first


def freeze_loaded() -> None:
    """Collect the garbage there is, then move every object the collector tracks out of its reach (``gc.freeze``).

    What a service has loaded (the index, its models, the modules of numpy, ONNX Runtime and the web stack;
    some 133,000 objects with SciFact) lives as long as the process, yet each full collection walked it all, 70-72
    ms here, while a request waited. Frozen, collections walk what requests make: ``benchmarks/gc_pauses.py``, the
    work of /context over 1,200 requests, p99.9 9-10 ms against 55 as loaded (BENCHMARKS.md). Objects made later
    are collected as usual; call it again after loading more (it is cheap: one collection)."""
    gc.collect()
    gc.freeze()


def freeze_reloaded() -> None:
    """``freeze_loaded`` again after a reload, in a process that froze what it loaded (none frozen: nothing done),
    so that full collections do not walk the snapshot just loaded (10 ms on a 126k-passage index)."""
    if gc.get_freeze_count():
        freeze_loaded()


@contextlib.contextmanager
def prompt_switching(interval_s: float = PROMPT_SWITCH_S) -> Iterator[None]:
    """While the block runs, the interpreter hands the GIL to a waiting thread every ``interval_s`` seconds rather
    than every 5 ms (``sys.setswitchinterval``; restored after the last of such blocks running at once). A reload
    parses a snapshot in Python beside searches that take the GIL back several times each, and waited up to 5 ms
    for each turn: the p99 of the searches during reloads went from 10.6 to 2.7-2.8 ms on a 126k-passage lexical
    index (0.35 quiet), from 31-35 to 17 ms hybrid on SciFact (4.3-4.8 quiet), the reloads as fast
    (``benchmarks/reload_cost.py``, BENCHMARKS.md)."""
    with _switching:
        if _prompt[0] == 0:
            _prompt[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(interval_s, _prompt[1]))
        _prompt[0] += 1
    try:
        yield
    finally:
        with _switching:
            _prompt[0] -= 1
            if _prompt[0] == 0:
                sys.setswitchinterval(_prompt[1])
