"""What rapidrag does to the Python process a long-lived index lives in: ``freeze_loaded`` keeps the garbage
collector's full collections off what was loaded (``rapidrag serve`` and the shard actors of an index split over
Ray call it; a service of your own can too)."""

from __future__ import annotations

import gc

__all__ = ["freeze_loaded"]


def freeze_loaded() -> None:
    """Collect the garbage there is, then move every object the collector tracks out of its reach (``gc.freeze``).

    What a service has loaded (the index, its models, the modules of numpy, ONNX Runtime and the web stack;
    some 133,000 objects with SciFact) lives as long as the process, yet each full collection walked it all, 70-72
    ms here, while a request waited. Frozen, collections walk what requests make: ``benchmarks/gc_pauses.py``, the
    work of /context over 1,200 requests, p99.9 9-10 ms against 55 as loaded (BENCHMARKS.md). Objects made later
    are collected as usual; call it again after loading more (it is cheap: one collection)."""
    gc.collect()
    gc.freeze()
