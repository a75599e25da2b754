"""What the tests of rapidrag.distributed share beside their fixtures (in conftest.py): the answers of an index to
queries, and their comparison (used by test_distributed.py and ray_cluster_cases.py)."""

from __future__ import annotations

from typing import Any

import numpy as np


def results(r: Any, queries: list[str], **kw: Any) -> list[list[tuple[str, int, int, int, float]]]:
    return [[(h.doc_id, h.chunk_id, h.start, h.end, h.score) for h in r.search(q, k=10, **kw)] for q in queries]


def same(got: list[list[tuple[Any, ...]]], want: list[list[tuple[Any, ...]]], atol: float = 1e-6) -> None:
    for g, w in zip(got, want, strict=True):
        assert [x[:4] for x in g] == [x[:4] for x in w]
        np.testing.assert_allclose([x[4] for x in g], [x[4] for x in w], rtol=1e-5, atol=atol)
