// Fusion of ranked lists (behind rapidrag.fusion): reciprocal rank fusion and a weighted sum of normalised
// scores. The lists come concatenated, list j at [row_splits[j], row_splits[j+1]); each fused row (ascending,
// once) gets its score in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rapidrag::fusion {

// Each row scores sum_j weights[j] / (rrf_k + rank_j), rank from 1.
void reciprocal_rank(const int64_t* rows, const int64_t* row_splits, size_t n_lists, const double* weights,
                     double rrf_k, std::vector<int64_t>& fused_rows, std::vector<double>& fused);

// Each row scores sum_j weights[j] * its normalised score in list j; a row absent from a list gets the list's
// lowest. Normalised by zscore ((s - mean) / std, all 0 when std is 0) or else by min-max (to [0, 1], all 1
// when the scores are equal).
void weighted(const int64_t* rows, const double* scores, const int64_t* row_splits, size_t n_lists,
              const double* weights, bool zscore, std::vector<int64_t>& fused_rows, std::vector<double>& fused);

}  // namespace rapidrag::fusion
