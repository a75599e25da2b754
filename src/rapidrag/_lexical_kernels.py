"""BM25's numba kernels: scoring postings into a score array and selecting the best rows from it. Imported by
``rapidrag.lexical`` on first use (so that ``import rapidrag`` does not import numba); at module level so that
numba's on-disk cache serves every process (a kernel that calls another through a closure was compiled anew in
each process: about 2 s at the first search).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def accumulate(
    scores: Any,
    terms: Any,
    weights: Any,
    segment_terms: Any,
    term_ptr: Any,
    docs: Any,
    tfs: Any,
    norms: Any,
    k1: float,
    by_id: bool,
) -> None:
    n_terms = term_ptr.shape[0] - 1
    for j in range(terms.shape[0]):
        t = terms[j]
        if by_id:
            i = t
            if i >= n_terms:
                continue
        else:
            i = np.searchsorted(segment_terms, t)
            if i == n_terms or segment_terms[i] != t:
                continue
        w = weights[j]
        for p in range(term_ptr[i], term_ptr[i + 1]):
            d = docs[p]
            tf = tfs[p]
            scores[d] += w * tf / (tf + k1 * norms[d])


@numba.njit(cache=True, nogil=True)
def select(scores: Any, allowed: Any, rows: Any, best: Any) -> int:
    # The len(rows) best allowed rows with a score above 0 into rows/best, by score then row; returns how many.
    # One pass in row order keeping a sorted list: once it is full, a row must beat its last score to enter,
    # a test that is almost always false and so predicted well (testing "score > 0" first is not: the CPU
    # mispredicts it on about half the rows, which made an earlier kernel slower than numpy's partition).
    k = rows.shape[0]
    n = 0
    floor = np.float32(0.0)
    for i in range(scores.shape[0]):
        s = scores[i]
        if s > floor and allowed[i]:
            j = n if n < k else k - 1
            n = min(n + 1, k)
            while j > 0 and best[j - 1] < s:  # after the rows of equal score: ties stay in row order
                best[j] = best[j - 1]
                rows[j] = rows[j - 1]
                j -= 1
            best[j] = s
            rows[j] = i
            if n == k:
                floor = best[k - 1]
    return n


@numba.njit(cache=True, nogil=True)
def keep_best(rows: Any, best: Any, n: int, k: int) -> tuple[int, Any]:
    # The k best of the first n rows/best (in row order), ties to the earlier row, moved to the front in row
    # order; returns k and the k-th best score.
    cut = -np.partition(-best[:n], k - 1)[k - 1]
    ties = k
    for j in range(n):
        if best[j] > cut:
            ties -= 1
    m = 0
    for j in range(n):
        s = best[j]
        if s > cut or (s == cut and ties > 0):
            if s == cut:
                ties -= 1
            rows[m] = rows[j]
            best[m] = s
            m += 1
    return m, cut


@numba.njit(cache=True, nogil=True)
def select_many(scores: Any, allowed: Any, rows: Any, best: Any) -> int:
    # As select, for a long list (a few hundred rows): the sorted list's insertions cost about k / 2 moves
    # each while it fills. Rows above the floor go into a buffer of 2k in row order; a full buffer keeps its
    # k best (a partition), whose last score becomes the floor; the k left are sorted once at the end (a
    # stable sort: ties stay in row order).
    k = rows.shape[0]
    buffer_rows = np.empty(2 * k, dtype=np.int64)
    buffer_best = np.empty(2 * k, dtype=np.float32)
    n = 0
    floor = np.float32(0.0)
    for i in range(scores.shape[0]):
        s = scores[i]
        if s > floor and allowed[i]:
            buffer_rows[n] = i
            buffer_best[n] = s
            n += 1
            if n == 2 * k:
                n, floor = keep_best(buffer_rows, buffer_best, n, k)
    if n > k:
        n, floor = keep_best(buffer_rows, buffer_best, n, k)
    order = np.argsort(-buffer_best[:n], kind="mergesort")
    for j in range(n):
        rows[j] = buffer_rows[order[j]]
        best[j] = buffer_best[order[j]]
    return n


@numba.njit(cache=True, nogil=True)
def select_grouped(scores: Any, allowed: Any, groups: Any, rows: Any, best: Any) -> int:
    # As select, keeping at most one row of each group: its best (by score, then the first in row order). The
    # list's groups are kept beside it (a scan of them for each row that enters: 4.7 against 3.9 µs for 10 of
    # SciFact's 9,625 rows; looked up through rows, 6.8).
    k = rows.shape[0]
    listed = np.empty(k, dtype=np.int64)
    n = 0
    floor = np.float32(0.0)
    for i in range(scores.shape[0]):
        s = scores[i]
        if s > floor and allowed[i]:
            g = groups[i]
            j = n  # the position of the row's group in the list, or n if it has none there
            for p in range(n):
                if listed[p] == g:
                    j = p
                    break
            if j < n:
                if best[j] >= s:  # its group's row there scores as well, and came first
                    continue
            else:  # a new group: it takes the last place when the list is full
                j = n if n < k else k - 1
                n = min(n + 1, k)
            while j > 0 and best[j - 1] < s:  # (over the group's old place, if it had one)
                best[j] = best[j - 1]
                rows[j] = rows[j - 1]
                listed[j] = listed[j - 1]
                j -= 1
            best[j] = s
            rows[j] = i
            listed[j] = g
            if n == k:
                floor = best[k - 1]
    return n
