// The merge of a sharded index's lists (behind rapidrag.distributed): each shard's list, best first by score
// then row, merged by their heads into one list numbered across the shards.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rapidrag::shards {

// The lists that row_splits cuts scores/rows/docs into (list i from shard shards[i]) merged best first by score,
// then by row key (row * n_shards + shard), into out_rows (row keys), out_docs (document keys, doc * n_shards +
// shard) and out_scores until n_out are written or the lists are spent; returns how many were written. Returns
// -1, having written nothing, when a list is not in that order itself.
int64_t merge(const float* scores, const int64_t* rows, const int64_t* docs, const int64_t* row_splits,
              const int64_t* shards, size_t n_lists, int64_t n_shards, int64_t* out_rows, int64_t* out_docs,
              float* out_scores, size_t n_out);

}  // namespace rapidrag::shards
