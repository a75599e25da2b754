#include "rapidrag/merge.hpp"

#include <vector>

namespace rapidrag::shards {

int64_t merge(const float* scores, const int64_t* rows, const int64_t* docs, const int64_t* row_splits,
              const int64_t* shards, size_t n_lists, int64_t n_shards, int64_t* out_rows, int64_t* out_docs,
              float* out_scores, size_t n_out) {
  for (size_t i = 0; i < n_lists; ++i) {
    for (int64_t j = row_splits[i] + 1; j < row_splits[i + 1]; ++j) {
      if (scores[j] > scores[j - 1] || (scores[j] == scores[j - 1] && rows[j] < rows[j - 1])) return -1;
    }
  }
  std::vector<int64_t> heads(row_splits, row_splits + n_lists);
  size_t n = 0;
  while (n < n_out) {
    size_t best = n_lists;  // none yet
    int64_t best_key = 0;
    for (size_t i = 0; i < n_lists; ++i) {
      const int64_t h = heads[i];
      if (h < row_splits[i + 1]) {
        const int64_t key = rows[h] * n_shards + shards[i];
        if (best == n_lists || scores[h] > scores[heads[best]] ||
            (scores[h] == scores[heads[best]] && key < best_key)) {
          best = i;
          best_key = key;
        }
      }
    }
    if (best == n_lists) break;
    const int64_t h = heads[best]++;
    out_rows[n] = best_key;
    out_docs[n] = docs[h] * n_shards + shards[best];
    out_scores[n] = scores[h];
    ++n;
  }
  return static_cast<int64_t>(n);
}

}  // namespace rapidrag::shards
