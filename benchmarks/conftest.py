"""Settings, corpora and the throughput report shared by the benchmark suites.

The root conftest.py provides the data fixtures (``scifact_texts``, ``gcide_texts``, ``hf_tokenizer``, ...); this
file only picks the deterministic subsets the benchmarks run on and reports throughput in MB/s.

Sizes. By default the benchmarks run on small prefixes of the corpora, so that the CI smoke run
(``pytest benchmarks --benchmark-disable``, every benchmark executed once) takes a couple of minutes on two
cores. ``RAPIDRAG_BENCH_FULL=1`` selects the sizes for a real measurement:

====================================  ==============  ==================================================
setting (environment variable)        default         with RAPIDRAG_BENCH_FULL=1
====================================  ==============  ==================================================
RAPIDRAG_BENCH_SCIFACT_DOCS           300             0 = all 5,183 documents
RAPIDRAG_BENCH_GCIDE_DOCS             2,000           0 = all 125,984 passages (tokenizer benchmarks)
RAPIDRAG_BENCH_CHUNK_GCIDE_DOCS       1,000           20,000 (chunker benchmarks: the Python peers run at
                                                      about 1 MB/s here, the full 30 MB would take minutes
                                                      per round)
RAPIDRAG_BENCH_PEAK_GCIDE_DOCS        1,000           0 = all 125,984 passages (peak-memory subprocesses)
RAPIDRAG_BENCH_BIG_MB                 2               100 (the single-string tokenize benchmark)
RAPIDRAG_BENCH_ROUNDS                 5               3 (timed rounds per benchmark, after one warm-up)
====================================  ==============  ==================================================

A subset is always the first N documents in file order (deterministic). Every benchmark records in
``benchmark.extra_info`` the bytes (UTF-8) it processed and, when timed, MB/s (on the median and on the fastest
round); the table is printed at the end of the session and is part of ``--benchmark-json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


FULL = os.environ.get("RAPIDRAG_BENCH_FULL") == "1"
SCIFACT_DOCS = _env_int("RAPIDRAG_BENCH_SCIFACT_DOCS", 0 if FULL else 300)
GCIDE_DOCS = _env_int("RAPIDRAG_BENCH_GCIDE_DOCS", 0 if FULL else 2_000)
CHUNK_GCIDE_DOCS = _env_int("RAPIDRAG_BENCH_CHUNK_GCIDE_DOCS", 20_000 if FULL else 1_000)
PEAK_GCIDE_DOCS = _env_int("RAPIDRAG_BENCH_PEAK_GCIDE_DOCS", 0 if FULL else 1_000)
BIG_MB = float(os.environ.get("RAPIDRAG_BENCH_BIG_MB", "").strip() or (100 if FULL else 2))
ROUNDS = _env_int("RAPIDRAG_BENCH_ROUNDS", 3 if FULL else 5)
WARMUP_ROUNDS = 1


@dataclass(frozen=True)
class Corpus:
    """A deterministic prefix of a corpus: ``texts``, their total UTF-8 size and a display label."""

    name: str
    texts: list[str]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", sum(len(t.encode("utf-8", "surrogatepass")) for t in self.texts))

    @property
    def label(self) -> str:
        return f"{self.name}[:{len(self.texts)}] {self.nbytes / 1e6:.2f} MB"


def prefix(name: str, texts: list[str], n: int) -> Corpus:
    return Corpus(name, texts if n <= 0 else texts[:n])


@pytest.fixture(scope="session")
def scifact_bench(scifact_texts: list[str]) -> Corpus:
    return prefix("scifact", scifact_texts, SCIFACT_DOCS)


@pytest.fixture(scope="session")
def gcide_bench(gcide_texts: list[str]) -> Corpus:
    return prefix("gcide", gcide_texts, GCIDE_DOCS)


@pytest.fixture(scope="session")
def gcide_chunk_bench(gcide_texts: list[str]) -> Corpus:
    return prefix("gcide", gcide_texts, CHUNK_GCIDE_DOCS)


# ---------------------------------------------------------------------------------------------------------------
# Throughput report

_REPORT: list[dict[str, Any]] = []


def run_timed(benchmark: Any, fn: Any, *, setup: Any = None, rounds: int | None = None) -> Any:
    """Time ``fn()`` with pytest-benchmark (one warm-up round, then ROUNDS rounds); return its last result.

    Under ``--benchmark-disable`` this calls ``fn()`` once (after ``setup()``), as pytest-benchmark does.
    """
    return benchmark.pedantic(
        fn,
        setup=setup,
        rounds=rounds or ROUNDS,
        warmup_rounds=WARMUP_ROUNDS,
        iterations=1,
    )


def record(benchmark: Any, library: str, nbytes: int, *, tokens: int | None = None, **extra: Any) -> None:
    """Write bytes, MB/s (median and best round) and ``extra`` to extra_info and to the end-of-session table."""
    info = benchmark.extra_info
    info["library"] = library
    info["bytes"] = nbytes
    info["threads_available"] = os.cpu_count()
    if tokens is not None:
        info["tokens"] = tokens
    info.update(extra)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.median > 0:
        info["MB/s (median)"] = round(nbytes / 1e6 / stats.median, 3)
        info["MB/s (best)"] = round(nbytes / 1e6 / stats.min, 3)
        if tokens is not None:
            info["Mtokens/s (median)"] = round(tokens / 1e6 / stats.median, 3)
    _REPORT.append({"group": benchmark.group or "", "name": benchmark.name, **info})


_SHOWN = ("MB/s (median)", "MB/s (best)", "Mtokens/s (median)", "chunks", "mismatched_docs", "over_limit_chunks",
          "peak_rss_mb", "delta_rss_mb")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REPORT:
        return
    tr = terminalreporter
    tr.write_sep("-", "rapidrag benchmarks: throughput and checks (benchmarks/conftest.py)")
    for row in sorted(_REPORT, key=lambda r: (r["group"], -(r.get("MB/s (median)") or 0))):
        parts = [f"{k}={row[k]}" for k in _SHOWN if row.get(k) is not None]
        note = row.get("note")
        tr.write_line(f"{row['group']:<34} {row['name']:<48} " + "  ".join(parts) + (f"  [{note}]" if note else ""))
