// BM25's kernels: a query's postings scored into a score array, and the best rows selected from it (behind
// rapidrag.lexical). Plain loops over arrays the caller owns; nothing here allocates what outlives a call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rapidrag::bm25 {

// One segment of an inverted index: the postings of the term held at i are docs/tfs[term_ptr[i], term_ptr[i+1]).
// With terms null the entry of term id t is t itself (n_held = n_ptr - 1); else terms (ascending) names them.
struct Segment {
  const int64_t* terms;     // null: entries by term id
  const int64_t* term_ptr;  // n_held + 1 entries
  size_t n_held;
  const int32_t* docs;
  const float* tfs;
  size_t n_postings;
};

// scores[d] += weights[j] * tf / (tf + k1 * norms[d]) for each posting (d, tf) of each query term terms[j] the
// segment holds (float arithmetic, in posting order). Returns false, having stopped, at a posting whose row is
// not below n_rows or a pointer past the postings (a damaged segment); true otherwise.
bool accumulate(float* scores, size_t n_rows, const float* norms, const int64_t* terms, const float* weights,
                size_t n_terms, const Segment& segment, float k1);

// The k best rows i of [0, n) with allowed[i] and scores[i] > 0, best first by score, ties by row, into rows
// and best; returns how many (at most k). One pass in row order keeping a sorted list of k.
size_t select(const float* scores, const bool* allowed, size_t n, int64_t* rows, float* best, size_t k);

// The same, for long lists (a few hundred rows): rows above the floor are buffered (2k) in row order, a full
// buffer keeps its k best, and the k left are sorted once at the end (stable: ties stay in row order).
size_t select_many(const float* scores, const bool* allowed, size_t n, int64_t* rows, float* best, size_t k);

// As select, keeping at most one row of each group (groups[i]): its best, the first in row order on a tie.
size_t select_grouped(const float* scores, const bool* allowed, const int64_t* groups, size_t n, int64_t* rows,
                      float* best, size_t k);

}  // namespace rapidrag::bm25
