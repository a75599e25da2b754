"""Benchmark fixtures: the corpus prefixes the suites run on, and the end-of-session throughput table.

The data fixtures themselves (``scifact_texts``, ``gcide_texts``, ``hf_tokenizer``, ...) come from the root
conftest.py; sizes and helpers are in _common.py (see its docstring for RAPIDRAG_BENCH_FULL and friends).
"""

from __future__ import annotations

from typing import Any

import pytest
from _common import CHUNK_GCIDE_DOCS, GCIDE_DOCS, REPORT, SCIFACT_DOCS, Corpus, prefix


@pytest.fixture(scope="session")
def scifact_bench(scifact_texts: list[str]) -> Corpus:
    """SciFact documents (title + text) for the tokenizer and chunker benchmarks."""
    return prefix("scifact", scifact_texts, SCIFACT_DOCS)


@pytest.fixture(scope="session")
def gcide_bench(gcide_texts: list[str]) -> Corpus:
    """gcide passages for the tokenizer benchmarks."""
    return prefix("gcide", gcide_texts, GCIDE_DOCS)


@pytest.fixture(scope="session")
def gcide_chunk_bench(gcide_texts: list[str]) -> Corpus:
    """gcide passages for the chunker benchmarks (a smaller prefix than the tokenizer's under FULL)."""
    return prefix("gcide", gcide_texts, CHUNK_GCIDE_DOCS)


_SHOWN = (
    "MB/s (median)",
    "MB/s (best)",
    "Mtokens/s (median)",
    "docs",
    "docs/s (median)",
    "chunks",
    "mismatched_docs",
    "over_limit_chunks",
    "peak_rss_mb",
    "delta_rss_mb",
)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    tr = terminalreporter
    tr.write_sep("-", "rapidrag benchmarks: throughput and result checks (MB/s only when timed)")
    for row in sorted(REPORT, key=lambda r: (r["group"], -(r.get("MB/s (median)") or 0), r["name"])):
        parts = [f"{k}={row[k]}" for k in _SHOWN if row.get(k) is not None]
        note = row.get("note")
        tr.write_line(f"{row['group']:<36} {row['name']:<52} " + "  ".join(parts) + (f"  [{note}]" if note else ""))
