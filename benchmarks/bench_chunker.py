"""Chunker throughput (MB/s) and peak memory: rapidrag against langchain-text-splitters, chonkie, semchunk and
semantic-text-splitter, all sized by the same HF tokenizer (all-MiniLM-L6-v2 ``tokenizer.json``, padding and
truncation off, special tokens not counted) at ``max_tokens`` 256 and 512, no overlap.

How each library is configured: see _chunkers.py. Caches are cold: semchunk runs with ``memoize=False``, chonkie's
RecursiveChunker token-count ``lru_cache`` is cleared before every round, the others keep nothing between calls.

Data (first N in file order; see _common.py): SciFact documents, title + " " + text (300 by default, all 5,183 with
``RAPIDRAG_BENCH_FULL=1``), and gcide passages (1,000 by default, the first 20,000 with FULL: the pure-Python peers
run at about 0.3-1.5 MB/s here, and the full 30 MB corpus would take up to 100 s per round and peer).

Groups: ``chunk-<corpus>-<max_tokens>-1thread`` (one core: rapidrag ``split_batch(n_threads=1)``, the peers'
sequential calls with ``TOKENIZERS_PARALLELISM=false`` so that no HF batch call uses rayon) and
``chunk-<corpus>-<max_tokens>-batched`` (all cores: rapidrag ``split_batch()``, semantic-text-splitter
``chunk_all_indices``, semchunk with ``processes=cpu_count``, chonkie TokenChunker ``chunk_batch`` over one batch).

Checks after timing, on the chunks of the last round, for every document:
* at least one chunk for every text with a non-whitespace character;
* every chunk within ``max_tokens`` by the HF count of its text (chonkie TokenChunker: by its own count, since its
  chunk texts are decoded ids; re-encoding them can differ);
* chunk texts are the input at their start offsets (where the library gives offsets), and together they cover
  every non-whitespace character (checked on offsets, or on the non-whitespace characters in order); chonkie
  RecursiveChunker breaks this where it falls back to decoded token windows (see _chunkers.py): reported only;
* rapidrag in full: offsets strictly increasing and not overlapping, ``n_tokens`` equal to HF's count.
Counts of violations go to extra_info (``over_limit_chunks``, ``bad_offset_chunks``, ``uncovered_docs``).

Peak memory (group ``chunk-peak-memory-gcide-512``): peak_memory.py runs each library in a subprocess on the gcide
passages (1,000 by default, all 125,984 with FULL) at 512 tokens and reports the process's peak RSS while chunking,
above the RSS after loading data and library (Linux ``/proc/self/clear_refs`` + ``VmHWM``): subprocess RSS is the
honest figure for native libraries. The time of that benchmark is the whole subprocess (start-up and loading
included); its MB/s comes from the chunking call alone, measured inside the subprocess, one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _chunkers import BATCHED, PEER_MODULES, SINGLE_THREAD, DocChunks, Setup, make
from _common import PEAK_GCIDE_DOCS, Corpus, record, run_timed

HERE = Path(__file__).resolve().parent
CORPORA = ("scifact", "gcide")
MAX_TOKENS = (256, 512)


def _params(libraries: tuple[str, ...], kind: str) -> list[Any]:
    return [
        pytest.param(
            library,
            name,
            max_tokens,
            marks=pytest.mark.benchmark(group=f"chunk-{name}-{max_tokens}-{kind}"),
            id=f"{library}-{name}-{max_tokens}",
        )
        for name in CORPORA
        for max_tokens in MAX_TOKENS
        for library in libraries
    ]


def _require(library: str) -> None:
    if library in PEER_MODULES:
        pytest.importorskip(PEER_MODULES[library])


def _corpus(request: pytest.FixtureRequest, name: str) -> Corpus:
    corpus: Corpus = request.getfixturevalue("scifact_bench" if name == "scifact" else "gcide_chunk_bench")
    assert corpus.texts, f"{name}: empty corpus"
    return corpus


def _uncovered(text: str, spans: list[tuple[int, int]]) -> bool:
    """True when a non-whitespace character of ``text`` lies outside every span."""
    covered_to = 0
    for start, end in sorted(spans):
        if start > covered_to and not text[covered_to:start].isspace():
            return True
        covered_to = max(covered_to, end)
    rest = text[covered_to:]
    return bool(rest) and not rest.isspace()


def _nonspace(text: str) -> str:
    return "".join(text.split())


def check_chunks(setup: Setup, corpus: Corpus, docs: list[DocChunks], max_tokens: int, hf: Any) -> dict[str, Any]:
    """Check the chunks (see the module docstring); returns the counts for extra_info, asserts what must hold."""
    library = setup.library
    assert len(docs) == len(corpus.texts), f"{library}: {len(docs)} results for {len(corpus.texts)} texts"
    all_texts = [t for d in docs for t in d.texts]
    n_chunks = len(all_texts)
    assert n_chunks > 0, f"{library}: no chunks"
    empty = [i for i, (t, d) in enumerate(zip(corpus.texts, docs, strict=True)) if t.strip() and not d.texts]
    assert not empty, f"{library}: no chunk for non-blank texts {empty[:5]}"

    hf_counts = np.fromiter(
        (len(e.ids) for e in hf.encode_batch(all_texts, add_special_tokens=False)), np.int64, n_chunks
    )
    own = [n for d in docs for n in d.n_tokens] if docs and docs[0].n_tokens is not None else None
    over_hf = int((hf_counts > max_tokens).sum())
    over_own = int((np.asarray(own) > max_tokens).sum()) if own is not None else None

    bad_offsets = uncovered_docs = 0
    for text, d in zip(corpus.texts, docs, strict=True):
        if setup.offsets:
            assert d.starts is not None
            spans = [(s, s + len(c)) for s, c in zip(d.starts, d.texts, strict=True)]
            bad_offsets += sum(text[s:e] != c for (s, e), c in zip(spans, d.texts, strict=True))
            uncovered_docs += _uncovered(text, spans)
        elif setup.library != "chonkie-token":
            uncovered_docs += _nonspace(text) != "".join(_nonspace(c) for c in d.texts)

    info: dict[str, Any] = {
        "chunks": n_chunks,
        "max_chunk_tokens_hf": int(hf_counts.max()),
        "mean_chunk_tokens_hf": round(float(hf_counts.mean()), 1),
        "over_limit_chunks": over_hf if setup.limit_by_hf_count else over_own,
        "over_limit_chunks_by_hf_count": over_hf,
        "bad_offset_chunks": bad_offsets if setup.offsets else None,
        "uncovered_docs": uncovered_docs if setup.library != "chonkie-token" else None,
    }
    notes = []
    if not setup.slices_promised and (bad_offsets or uncovered_docs):
        notes.append(f"{bad_offsets} chunks not the input at their offsets, {uncovered_docs} docs not covered")
    if over_hf and not setup.limit_by_hf_count:
        notes.append(f"{over_hf} decoded chunks re-encode to > {max_tokens} tokens")
    if library == "chonkie-token":
        notes.append("chunk texts are decoded ids (normalized text), no valid offsets")
        tokens = hf.encode_batch(corpus.texts, add_special_tokens=False)
        lost = sum(len(e.ids) != sum(d.n_tokens or []) for e, d in zip(tokens, docs, strict=True))
        info["docs_with_token_total_not_hf"] = lost
        assert lost == 0, f"{library}: {lost} docs whose chunk token counts do not add up to the HF count"
    info["note"] = "; ".join(notes) or None

    assert info["over_limit_chunks"] == 0, f"{library}: {info['over_limit_chunks']} chunks over {max_tokens} tokens"
    if setup.slices_promised:
        assert not bad_offsets, f"{library}: {bad_offsets} chunks are not the input at their offsets"
        assert not uncovered_docs, f"{library}: {uncovered_docs} docs with non-whitespace text outside every chunk"
    if library == "rapidrag":
        assert np.array_equal(hf_counts, np.asarray(own)), "rapidrag: n_tokens differ from the HF count"
        for i, d in enumerate(docs):
            starts = d.starts or []
            ends = [s + len(c) for s, c in zip(starts, d.texts, strict=True)]
            assert all(a < b for a, b in pairwise(starts)), f"rapidrag: doc {i}: starts not increasing"
            assert all(e <= s for e, s in zip(ends[:-1], starts[1:], strict=True)), f"rapidrag: doc {i}: chunks overlap"
    return info


def _bench(
    benchmark: Any,
    request: pytest.FixtureRequest,
    library: str,
    corpus_name: str,
    max_tokens: int,
    hf_tokenizer: Any,
    minilm_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    batched: bool,
) -> None:
    _require(library)
    corpus = _corpus(request, corpus_name)
    setup = make(library, max_tokens, hf_tokenizer, minilm_dir, batched=batched)
    if not batched:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # HF batch calls inside peers run serially
    out = run_timed(benchmark, lambda: setup.run(corpus.texts), setup=setup.setup)
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    info = check_chunks(setup, corpus, setup.normalize(out), max_tokens, hf_tokenizer)
    record(benchmark, library, corpus.nbytes, docs=len(corpus.texts), max_tokens=max_tokens, how=setup.how, **info)


@pytest.mark.parametrize(("library", "corpus_name", "max_tokens"), _params(SINGLE_THREAD, "1thread"))
def test_chunk_1thread(
    benchmark: Any,
    request: pytest.FixtureRequest,
    library: str,
    corpus_name: str,
    max_tokens: int,
    hf_tokenizer: Any,
    minilm_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bench(benchmark, request, library, corpus_name, max_tokens, hf_tokenizer, minilm_dir, monkeypatch, batched=False)


# semchunk forks worker processes; Python >= 3.12 warns when a multi-threaded process forks (HF's rayon pool)
@pytest.mark.filterwarnings("ignore:This process .*is multi-threaded, use of fork:DeprecationWarning")
@pytest.mark.parametrize(("library", "corpus_name", "max_tokens"), _params(BATCHED, "batched"))
def test_chunk_batched(
    benchmark: Any,
    request: pytest.FixtureRequest,
    library: str,
    corpus_name: str,
    max_tokens: int,
    hf_tokenizer: Any,
    minilm_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bench(benchmark, request, library, corpus_name, max_tokens, hf_tokenizer, minilm_dir, monkeypatch, batched=True)


# ---------------------------------------------------------------------------------------------------------------
# Peak memory, one subprocess per library

PEAK_MAX_TOKENS = 512
PEAK_RUNS = [(library, False) for library in SINGLE_THREAD] + [("rapidrag", True), ("semantic-text-splitter", True)]


@pytest.mark.parametrize(
    ("library", "batched"),
    [
        pytest.param(
            lib,
            b,
            marks=pytest.mark.benchmark(group=f"chunk-peak-memory-gcide-{PEAK_MAX_TOKENS}"),
            id=f"{lib}-{'batched' if b else '1thread'}",
        )
        for lib, b in PEAK_RUNS
    ],
)
def test_chunk_peak_memory(benchmark: Any, library: str, batched: bool, gcide_corpus: Path, minilm_dir: Path) -> None:
    _require(library)
    command = [
        sys.executable,
        str(HERE / "peak_memory.py"),
        library,
        "--corpus",
        str(gcide_corpus),
        "--model",
        str(minilm_dir),
        "--max-tokens",
        str(PEAK_MAX_TOKENS),
        "--docs",
        str(PEAK_GCIDE_DOCS),
    ] + (["--batched"] if batched else [])

    def run() -> dict[str, Any]:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=os.environ.copy())
        assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = run_timed(benchmark, run, rounds=1, warmup=False)
    assert result["chunks"] > 0 and result["peak_rss_mb"] > 0
    benchmark.extra_info.update(result)
    record(
        benchmark,
        library,
        result["bytes"],
        timed=False,
        docs=result["docs"],
        max_tokens=PEAK_MAX_TOKENS,
        how=result["how"],
        chunks=result["chunks"],
        peak_rss_mb=result["peak_rss_mb"],
        delta_rss_mb=result["delta_rss_mb"],
        note=f"chunking alone {result['mb_per_s']} MB/s in the subprocess; time column = whole subprocess",
    )
