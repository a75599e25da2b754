"""BM25 lexical search: a word analyzer and an incremental inverted index scored by the native core.

Scoring is Lucene's BM25: for each query term t in document d,

    idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl)),   idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

with N, df and avgdl over the live documents. The index is a list of segments: each ``add`` writes one segment (an
inverted index of the new documents only), ``delete`` marks documents dead and updates the statistics, and the
newest segments of one size tier are merged once there are ``MERGE_FACTOR`` of them (a logarithmic merge, as
Lucene's): tier t holds segments of ``MERGE_UNIT * MERGE_FACTOR**(t-1)`` to ``MERGE_FACTOR`` times that many
postings, so a few segments per tier cover any size, most adds merge nothing or a few small segments, and a large
segment is merged again only when its tier fills, never every few adds.

The module runs to about 600 lines because BM25 is one concern here: the analyzer, the segments and their changes,
and the collection statistics (summed by an index split in shards); the kernels that score and select rows over
the index's own arrays are in the native core (``cpp/src/bm25.cpp``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from .growing import GrowingArray
from .locking import RWLock

__all__ = ["BM25", "ENGLISH_STOPWORDS", "Statistics", "WordAnalyzer"]

# Segments merge by size tier: MERGE_FACTOR of one tier at the end become one (module docstring). Before, every
# ninth add merged the whole index: one-document adds at 132,000 gcide chunks had a p99 of 66-72 ms (BENCHMARKS.md).
MERGE_FACTOR = 4
MERGE_UNIT = 4096  # postings: smaller segments are tier 0 (a passage has some 60)
MAX_SEGMENTS = 24  # more (only if segments come in sizes the tiers do not foresee) and all are merged
# From this many rows a top-k takes the buffered selection (select_many) rather than the sorted list: 400 of
# SciFact's 9,625 rows in 91 against 149 us, 400 of 941 (a shard's) in 25 against 30; even at 200, and 10 rows
# take 16 against 8 (benchmarks/select_top_rows.py, BENCHMARKS.md).
SELECT_MANY_FROM = 256
# The English stopword list of Lucene's EnglishAnalyzer (also Pyserini's default for BEIR).
ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)


class WordAnalyzer:
    """Words (runs of Unicode word characters, as regex ``\\w+`` finds them in ``text.lower()``), stopwords
    removed, Snowball-stemmed. Splitting and lowercasing run in the native core.

    Parameters
    ----------
    stopwords : "english", None or an iterable of words
        Words dropped after lowercasing.
    stemmer : str or None
        A Snowball language for PyStemmer (``pip install PyStemmer``), or None for no stemming.
    """

    def __init__(self, *, stopwords: str | Iterable[str] | None = "english", stemmer: str | None = "english") -> None:
        if stopwords == "english":
            self.stopwords = ENGLISH_STOPWORDS
        elif stopwords is None:
            self.stopwords = frozenset()
        elif isinstance(stopwords, str):
            raise ValueError(f"stopwords must be 'english', None or an iterable of words, got {stopwords!r}")
        else:
            self.stopwords = frozenset(w.lower() for w in stopwords)
        self.stemmer_name = stemmer
        self._stem: Any = None
        if stemmer is not None:
            try:
                import Stemmer  # type: ignore[import-not-found]
            except ImportError:
                raise ImportError("stemming needs PyStemmer: pip install PyStemmer (or stemmer=None)") from None
            try:
                self._stem = Stemmer.Stemmer(stemmer).stemWords
            except KeyError:
                raise ValueError(f"PyStemmer has no stemmer {stemmer!r}") from None

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return self.stem([w for w in _core.split_words(text) if w not in self.stopwords])

    def stem(self, words: list[str]) -> list[str]:
        """The stems of lowercased ``words`` (the words themselves without a stemmer)."""
        return list(self._stem(words)) if self._stem is not None else words

    def __repr__(self) -> str:
        return f"WordAnalyzer(stopwords={len(self.stopwords)} words, stemmer={self.stemmer_name!r})"


@dataclass(frozen=True)
class Statistics:
    """What BM25 scores depend on beyond a document's own terms: the live documents, their total length, and each
    query term's document frequency. Statistics of disjoint indexes add up to those of their union."""

    documents: int
    total_length: float
    df: dict[str, int]

    def __add__(self, other: Statistics) -> Statistics:
        df = dict(self.df)
        for term, n in other.df.items():
            df[term] = df.get(term, 0) + n
        return Statistics(self.documents + other.documents, self.total_length + other.total_length, df)


@dataclass
class _Segment:
    """An inverted index of some documents: the postings of term ``terms[i]`` (global term ids, ascending: those the
    documents hold) are ``docs/tfs[term_ptr[i]:term_ptr[i+1]]``; or, with ``terms`` None, those of term ``t`` are
    at ``term_ptr[t]:term_ptr[t+1]`` (none for ``t`` past its end). A segment's arrays grow with its postings, not
    with the vocabulary: the small segment of one added document costs what the document does. Pointers by term id
    are kept where they cost no more than four times the terms held (large segments: no search to find a term)."""

    terms: npt.NDArray[np.int64] | None
    term_ptr: npt.NDArray[np.int64]
    docs: npt.NDArray[np.int32]  # global document rows
    tfs: npt.NDArray[np.float32]

    def term_ids(self) -> npt.NDArray[np.int64]:
        """The term id of each entry of ``term_ptr``."""
        return np.arange(len(self.term_ptr) - 1, dtype=np.int64) if self.terms is None else self.terms

    def dense_term_ptr(self, n_terms: int) -> npt.NDArray[np.int64]:
        """``term_ptr`` with an entry for each of the ``n_terms`` terms of the vocabulary (the saved form)."""
        counts = np.zeros(n_terms, dtype=np.int64)
        counts[self.term_ids()] = np.diff(self.term_ptr)
        out = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        return out


class BM25:
    """An incremental BM25 index. Its documents are rows, numbered in the order they were added (a row number
    never changes); by default each also has a string id (``add``, ``delete``, ``search``), and with
    ``keyed=False`` rows are all there is (``add_rows``, ``delete_rows``, ``search_rows``): the Retriever's
    chunk rows, which its chunk table describes.

    Parameters
    ----------
    analyzer : callable, optional
        str -> list of terms; a ``WordAnalyzer()`` (English stopwords, Snowball stemming) by default.
    k1, b : float
        BM25 parameters. The defaults 0.9 and 0.4 are Pyserini's for BEIR.
    keyed : bool
        Whether documents have string ids (True) or rows only.
    """

    def __init__(self, analyzer: Any = None, *, k1: float = 0.9, b: float = 0.4, keyed: bool = True) -> None:
        if not (isinstance(k1, (int, float)) and k1 >= 0) or not (isinstance(b, (int, float)) and 0 <= b <= 1):
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1!r}, b={b!r}")
        self.analyzer = analyzer if analyzer is not None else WordAnalyzer()
        self.k1, self.b = float(k1), float(b)
        self.vocab: dict[str, int] = {}
        self._terms: list[str] = []  # term id -> term (the vocabulary in id order)
        self.keyed = bool(keyed)
        self.ids: list[str] = []  # row -> document id (keyed only)
        self.rows: dict[str, int] = {}  # live document id -> row (keyed only)
        self._n_live = 0
        # By row (length, live) and by term id (document frequency): views over GrowingArrays, so that adding a
        # document to a large index copies none of the rows or terms it holds.
        self._rows_of = (GrowingArray(np.zeros(0, dtype=np.float32)), GrowingArray(np.zeros(0, dtype=bool)))
        self._lengths, self._alive = (a.array for a in self._rows_of)
        self._df_of = GrowingArray(np.zeros(0, dtype=np.int64))
        self._df = self._df_of.array
        # Each row's distinct term ids (for df on delete), row after row, and the row pointers into them.
        self._doc_terms_of = GrowingArray(np.zeros(0, dtype=np.int64))
        self._doc_terms_row_splits = GrowingArray(np.zeros(1, dtype=np.int64))
        self._segments: list[_Segment] = []
        self._total_length = 0.0
        # Each row's length normalisation for the last (lengths, b, average length) scored with: the same from one
        # query to the next until the index changes (an add makes the lengths a new view; none is written to).
        self._norms: tuple[npt.NDArray[np.float32], float, float, npt.NDArray[np.float32]] | None = None
        # WordAnalyzer: the distinct surface words seen (native dictionary), and the term id of each (-1: stopword).
        self._words = _core.WordDictionary()
        self._surface_terms_of = GrowingArray(np.zeros(0, dtype=np.int64))
        self._surface_terms = self._surface_terms_of.array
        self._lock = RWLock()

    def __len__(self) -> int:
        """Live documents."""
        return self._n_live

    @property
    def n_rows(self) -> int:
        """Rows ever added, deleted ones included: the length of a search ``mask``."""
        return len(self._alive)

    def _require(self, keyed: bool, call: str) -> None:
        if self.keyed != keyed:
            other = "add, delete, search" if self.keyed else "add_rows, delete_rows, search_rows"
            kind = "string ids" if self.keyed else "rows only (keyed=False)"
            raise TypeError(f"BM25.{call}: this index has {kind}; use {other}")

    # -- changes -------------------------------------------------------------------------------------------------

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index new documents. An id already present raises ValueError (use ``upsert`` to replace)."""
        self._require(True, "add")
        ids, texts = list(ids), list(texts)
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} and {len(texts)}")
        seen: set[str] = set()
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str):
                raise TypeError(f"ids[{i}] must be a str, not {type(doc_id).__name__}")
            if doc_id in self.rows or doc_id in seen:
                raise ValueError(f"document id {doc_id!r} is already indexed (ids[{i}]); use upsert to replace it")
            seen.add(doc_id)
            if not isinstance(texts[i], str):
                raise TypeError(f"texts[{i}] must be a str, not {type(texts[i]).__name__}")
        if not ids:
            return
        with self._lock.write():
            doc_idx, terms = self._analyze(texts)  # before any change but new vocabulary entries
            start = self._append(len(texts), doc_idx, terms)
            self.ids.extend(ids)
            self.rows.update({doc_id: start + k for k, doc_id in enumerate(ids)})

    def add_rows(self, texts: Sequence[str]) -> range:
        """Index new documents of an index without ids (``keyed=False``); returns their rows."""
        self._require(False, "add_rows")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, not {type(text).__name__}")
        with self._lock.write():
            if not texts:
                return range(self.n_rows, self.n_rows)
            doc_idx, terms = self._analyze(texts)
            start = self._append(len(texts), doc_idx, terms)
            return range(start, start + len(texts))

    def upsert(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index documents, replacing those whose id is already indexed."""
        self._require(True, "upsert")
        ids = list(ids)
        with self._lock.write():
            self.delete([i for i in ids if i in self.rows])
            self.add(ids, texts)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents; unknown ids are ignored. Returns how many were removed."""
        self._require(True, "delete")
        with self._lock.write():
            rows = [self.rows.pop(doc_id) for doc_id in ids if doc_id in self.rows]
            return self._kill(rows)

    def delete_rows(self, rows: Iterable[int]) -> int:
        """Remove the documents of ``rows`` (of an index without ids); rows deleted before, or never added, are
        ignored. Returns how many were removed."""
        self._require(False, "delete_rows")
        with self._lock.write():
            return self._kill([r for r in rows if 0 <= r < self.n_rows])

    def _kill(self, rows: list[int]) -> int:
        removed = 0
        for row in rows:
            if not self._alive[row]:
                continue
            self._alive[row] = False
            splits = self._doc_terms_row_splits.array
            self._df[self._doc_terms_of.array[splits[row] : splits[row + 1]]] -= 1
            self._total_length -= float(self._lengths[row])
            removed += 1
        self._n_live -= removed
        return removed

    def _analyze(self, texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(document index, term id) of every indexed word of ``texts``, new terms added to the vocabulary.

        With a WordAnalyzer the native core splits and lowercases the words and numbers each distinct one; each
        distinct surface word is then stopword-checked and stemmed once, and remembered (a corpus has some
        10^4-10^5 distinct words for 10^6 or more running ones).
        """
        if isinstance(self.analyzer, WordAnalyzer):
            surface, splits = self._words.add_batch(texts)  # word ids in the native dictionary of surface words
            known = len(self._surface_terms)
            if len(self._words) > known:
                new = self._words.words(known)
                terms = np.full(len(new), -1, dtype=np.int64)
                kept = [i for i, w in enumerate(new) if w not in self.analyzer.stopwords]
                stems = self.analyzer.stem([new[i] for i in kept])
                for i, stem in zip(kept, stems, strict=True):
                    terms[i] = self._term_id(stem)
                self._surface_terms = self._surface_terms_of.append(terms)
            flat = self._surface_terms[surface]
            doc_idx = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(splits))
            keep = flat >= 0
            return doc_idx[keep], flat[keep]
        analyzed = [self.analyzer(t) for t in texts]
        flat = np.fromiter((self._term_id(t) for terms in analyzed for t in terms), dtype=np.int64)
        return np.repeat(np.arange(len(texts), dtype=np.int64), [len(a) for a in analyzed]), flat

    def _term_id(self, term: str) -> int:
        t = self.vocab.get(term)
        if t is None:
            t = self.vocab[term] = len(self.vocab)
            self._terms.append(term)
        return t

    def _append(self, n_docs: int, doc_idx: npt.NDArray[np.int64], terms: npt.NDArray[np.int64]) -> int:
        """Append ``n_docs`` analyzed documents as new rows; returns the first."""
        start = self.n_rows
        n_terms = len(self.vocab)
        keys, tfs = np.unique(doc_idx * n_terms + terms, return_counts=True)  # sorted by document, then term
        docs, term_arr = keys // n_terms, keys % n_terms
        lengths = np.bincount(doc_idx, minlength=n_docs).astype(np.float32)
        ends = np.searchsorted(docs, np.arange(1, n_docs + 1)) + len(self._doc_terms_of.array)
        self._doc_terms_of.append(term_arr)
        self._doc_terms_row_splits.append(ends)
        self._df = self._df_of.resize(n_terms)
        np.add.at(self._df, term_arr, 1)
        self._segments.append(_build_segment(term_arr, docs + start, tfs))
        self._lengths = self._rows_of[0].append(lengths)
        self._alive = self._rows_of[1].append(np.ones(n_docs, dtype=bool))
        self._n_live += n_docs
        self._total_length += float(lengths.sum())
        self._merge_tiers()
        return start

    def _merge_tiers(self) -> None:
        """Merge the newest segments while ``MERGE_FACTOR`` or more at the end are of the last one's tier or below
        (all of them past ``MAX_SEGMENTS``)."""
        segments = self._segments
        while len(segments) > 1:
            if len(segments) > MAX_SEGMENTS:
                self._merge()
                return
            tier = _tier(len(segments[-1].docs))
            first = len(segments) - 1
            while first > 0 and _tier(len(segments[first - 1].docs)) <= tier:
                first -= 1
            if len(segments) - first < MERGE_FACTOR:
                return
            self._merge(first)

    def _merge(self, first: int = 0) -> None:
        """Merge the segments from ``first`` on into one, dropping the postings of deleted documents."""
        if len(self._segments) - first < 2:
            return
        terms, docs, tfs = [], [], []
        for seg in self._segments[first:]:
            terms.append(np.repeat(seg.term_ids(), np.diff(seg.term_ptr)))
            docs.append(seg.docs)
            tfs.append(seg.tfs)
        all_docs = np.concatenate(docs)
        keep = self._alive[all_docs]
        self._segments[first:] = [
            _build_segment(np.concatenate(terms)[keep], all_docs[keep], np.concatenate(tfs)[keep])
        ]

    # -- search --------------------------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 10, *, mask: npt.NDArray[np.bool_] | None = None
    ) -> tuple[list[str], npt.NDArray[np.float32]]:
        """The ``k`` best documents for ``query``: (ids, scores), best first; documents with no query term are
        left out. ``mask``: a boolean array over rows (``self.rows``), True where a document may be returned."""
        self._require(True, "search")
        with self._lock.read():
            hits, scores = self.search_rows(query, k, mask=mask)
            return [self.ids[r] for r in hits], scores

    def search_rows(
        self, query: str, k: int = 10, *, mask: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """As ``search``, with rows (the order documents were added in) instead of ids. Rows of equal scores come
        in row order, so that the first ``k`` of a longer list are the list of ``k``."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        terms = self.analyzer(query)
        with self._lock.read():
            return self.top_rows(self.score_rows(terms), k, mask=mask)

    def top_rows(
        self,
        scores: npt.NDArray[np.float32],
        k: int,
        *,
        mask: npt.NDArray[np.bool_] | None = None,
        groups: npt.NDArray[np.int64] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The ``k`` best live rows of ``scores`` (one per row, as from ``score_rows``) with a score above 0, by
        score and then by row. ``groups``: int64, one per row; then at most one row of each group is kept, its
        first in that order (with the rows' documents: the best chunk of each document)."""
        n_rows = self.n_rows
        allowed = self._alive
        if mask is not None:
            if mask.dtype != np.bool_ or mask.shape != (n_rows,):
                raise ValueError(f"mask must be a bool array of shape ({n_rows},), got {mask.dtype} {mask.shape}")
            allowed = allowed & mask
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if scores.shape != (n_rows,):
            raise ValueError(f"scores must have one value per row ({n_rows}), got shape {scores.shape}")
        if groups is not None and (groups.dtype != np.int64 or groups.shape != (n_rows,)):
            raise ValueError(f"groups must be an int64 array of shape ({n_rows},), got {groups.dtype} {groups.shape}")
        k = min(k, n_rows)
        rows, best = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.float32)
        if not k:
            return rows, best
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if groups is None:
            n = (_core.bm25_select if k < SELECT_MANY_FROM else _core.bm25_select_many)(scores, allowed, rows, best)
        else:
            n = _core.bm25_select_grouped(scores, allowed, np.ascontiguousarray(groups), rows, best)
        return rows[:n], best[:n]

    def statistics(self, terms: list[str]) -> Statistics:
        """The collection statistics that scores of analyzed query ``terms`` depend on, over the live documents."""
        df = {t: int(self._df[self.vocab[t]]) if t in self.vocab else 0 for t in terms}
        return Statistics(self._n_live, self._total_length, df)

    def all_statistics(self) -> Statistics:
        """The collection statistics of every term with a live document (what an index split in shards sums once,
        then keeps up to date with ``statistics_since``)."""
        with self._lock.read():
            present = np.flatnonzero(self._df)
            df = {self._terms[i]: int(self._df[i]) for i in present.tolist()}
            return Statistics(self._n_live, self._total_length, df)

    def mark(self) -> tuple[npt.NDArray[np.int64], int, float]:
        """The collection statistics now, for a later ``statistics_since``."""
        with self._lock.read():
            return self._df.copy(), self._n_live, self._total_length

    def statistics_since(self, mark: tuple[npt.NDArray[np.int64], int, float]) -> Statistics:
        """What the changes since ``mark`` did to the collection statistics: documents, total length and each
        changed term's document frequency as differences (negative for removals)."""
        df0, n0, total0 = mark
        with self._lock.read():
            diff = self._df.copy()
            diff[: len(df0)] -= df0
            changed = np.flatnonzero(diff).tolist()
            df = {self._terms[i]: int(diff[i]) for i in changed}
            return Statistics(self._n_live - n0, self._total_length - total0, df)

    def score_rows(self, terms: list[str], stats: Statistics | None = None) -> npt.NDArray[np.float32]:
        """BM25 scores of every row (dead rows included, as garbage) for analyzed query ``terms``. ``stats``: the
        collection statistics to score with (an index split in shards scores each with the sum of theirs, so that
        its scores are those of one index over all the documents); None: this index's own."""
        scores = np.zeros(self.n_rows, dtype=np.float32)
        n_live = self._n_live if stats is None else stats.documents
        total_length = self._total_length if stats is None else stats.total_length
        if n_live == 0 or self._n_live == 0:
            return scores
        known = [t for t in terms if t in self.vocab]
        if not known:
            return scores
        q = np.asarray([self.vocab[t] for t in known], dtype=np.int64)
        df = self._df[q].astype(np.float64) if stats is None else np.asarray([stats.df[t] for t in known], np.float64)
        weights = np.log1p((n_live - df + 0.5) / (df + 0.5)).astype(np.float32)
        norms = self._length_norms(total_length / n_live if total_length > 0 else 1.0)
        for seg in self._segments:
            _core.bm25_accumulate(scores, norms, q, weights, seg.terms, seg.term_ptr, seg.docs, seg.tfs, self.k1)
        return scores

    def _length_norms(self, avgdl: float) -> npt.NDArray[np.float32]:
        """Each row's length normalisation, 1 - b + b * length / avgdl, kept until the lengths, b or avgdl change
        (a query's scoring reads it; made again it costs a pass over every row)."""
        kept = self._norms
        if kept is not None and kept[0] is self._lengths and kept[1] == self.b and kept[2] == avgdl:
            return kept[3]
        norms = (1.0 - self.b + self.b * self._lengths / avgdl).astype(np.float32)
        self._norms = (self._lengths, self.b, avgdl, norms)
        return norms

    def prepare(self) -> None:
        """Make now what the first query would otherwise make: the length normalisation with this index's own
        statistics (0.5 ms over 126k rows: a load does it, so that the first search is as fast as the next)."""
        if self._n_live:
            self._length_norms(self._total_length / self._n_live if self._total_length > 0 else 1.0)

    # -- persistence -------------------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """The index as (a JSON-able dict, numpy arrays), for ``from_state``. Segments are merged first. The arrays
        stay valid while the index changes (they are copies, or arrays the index replaces rather than changes)."""
        if not isinstance(self.analyzer, WordAnalyzer):
            raise TypeError("only a BM25 with a WordAnalyzer can be saved; rebuild others from the texts")
        with self._lock.read():
            if len(self._segments) > 1:
                self._merge()
            seg = self._segments[0] if self._segments else _build_segment(*_empty_postings())
            stop = self.analyzer.stopwords
            info: dict[str, Any] = {
                "k1": self.k1,
                "b": self.b,
                "stopwords": "english" if stop == ENGLISH_STOPWORDS else sorted(stop),
                "stemmer": self.analyzer.stemmer_name,
                "vocab": list(self.vocab),  # in term-id order (dicts keep insertion order)
                "ids": self.ids if self.keyed else None,  # None: rows only
                "total_length": self._total_length,
            }
            arrays: dict[str, npt.NDArray[Any]] = {
                "term_ptr": seg.dense_term_ptr(len(self.vocab)),
                "docs": seg.docs,
                "tfs": seg.tfs,
                "lengths": self._lengths,
                "alive": self._alive.copy(),  # copies: deletes change these two in place
                "df": self._df.copy(),
                "doc_terms": self._doc_terms_of.array,  # (appended to, never changed)
                "doc_term_counts": np.diff(self._doc_terms_row_splits.array),
            }
            return info, arrays

    @classmethod
    def from_state(cls, info: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> BM25:
        """Rebuild an index saved by ``state``; inconsistent arrays raise ValueError."""
        stop = info["stopwords"]
        keyed = info["ids"] is not None
        out = cls(WordAnalyzer(stopwords=stop, stemmer=info["stemmer"]), k1=info["k1"], b=info["b"], keyed=keyed)
        ids, vocab = list(info["ids"] or []), list(info["vocab"])
        n_rows, n_terms = len(ids) if keyed else len(arrays["alive"]), len(vocab)
        term_ptr, docs, tfs = arrays["term_ptr"], arrays["docs"], arrays["tfs"]
        counts = arrays["doc_term_counts"]
        checks = [
            (term_ptr.shape == (n_terms + 1,) and term_ptr[0] == 0, "term pointers"),
            (len(docs) == len(tfs) == term_ptr[-1] and bool(np.all(np.diff(term_ptr) >= 0)), "postings"),
            (len(docs) == 0 or (docs.min() >= 0 and docs.max() < n_rows), "posting rows"),
            (arrays["lengths"].shape == arrays["alive"].shape == (n_rows,), "document arrays"),
            (arrays["df"].shape == (n_terms,) and counts.shape == (n_rows,), "term statistics"),
            (int(counts.sum()) == len(arrays["doc_terms"]), "document terms"),
        ]
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise ValueError(f"inconsistent BM25 index: {', '.join(bad)}")
        out.vocab = {t: i for i, t in enumerate(vocab)}
        out._terms = vocab
        out._rows_of = (GrowingArray(arrays["lengths"].astype(np.float32)), GrowingArray(arrays["alive"].astype(bool)))
        out._lengths, out._alive = (a.array for a in out._rows_of)
        out._n_live = int(np.count_nonzero(out._alive))
        if keyed:
            out.ids = ids
            out.rows = {ids[r]: r for r in np.flatnonzero(out._alive).tolist()}
        out._df_of = GrowingArray(arrays["df"].astype(np.int64))
        out._df = out._df_of.array
        out._doc_terms_of = GrowingArray(arrays["doc_terms"].astype(np.int64))
        out._doc_terms_row_splits = GrowingArray(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        out._segments = [_Segment(None, term_ptr.astype(np.int64), docs.astype(np.int32), tfs.astype(np.float32))]
        out._total_length = float(info["total_length"])
        return out

    def __repr__(self) -> str:
        rows = "" if self.keyed else ", rows only"
        return f"BM25({len(self)} documents, {len(self.vocab)} terms, k1={self.k1}, b={self.b}{rows})"


def _tier(postings: int) -> int:
    """A segment's size tier (``MERGE_UNIT``, ``MERGE_FACTOR``)."""
    if postings < MERGE_UNIT:
        return 0
    return int(math.log(postings / MERGE_UNIT) / math.log(MERGE_FACTOR)) + 1


def _build_segment(terms: npt.NDArray[np.int64], docs: npt.NDArray[Any], tfs: npt.NDArray[Any]) -> _Segment:
    """The segment of postings (term, doc, tf), each term's postings in the order given."""
    order = np.argsort(terms, kind="stable")
    by_term = terms[order].astype(np.int64)
    docs, tfs = docs[order].astype(np.int32), tfs[order].astype(np.float32)
    firsts = np.flatnonzero(by_term[1:] != by_term[:-1]) + 1  # where each term's postings start, past the first
    term_ptr = np.concatenate([[0], firsts, [len(by_term)]]).astype(np.int64) if len(by_term) else np.zeros(1, np.int64)
    held = by_term[term_ptr[:-1]]
    span = int(held[-1]) + 1 if len(held) else 0
    if span > 4 * len(held):
        return _Segment(held, term_ptr, docs, tfs)
    counts = np.zeros(span, dtype=np.int64)
    counts[held] = np.diff(term_ptr)
    by_id = np.zeros(span + 1, dtype=np.int64)
    np.cumsum(counts, out=by_id[1:])
    return _Segment(None, by_id, docs, tfs)


def _empty_postings() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
