// Exact inner products over chosen rows of a matrix of vectors (behind rapidrag.dense: a filter's few allowed rows
// searched exactly, IVF-PQ's candidates re-scored with the stored vectors).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rapidrag::exact {

// out[i * n_rows + j] = <queries[i], vectors[rows[j]]> over dim floats, for n_queries queries. The vectors are read
// where they are (no copy of the rows). Returns false, having written nothing, when a row is outside [0, n_vectors).
bool inner_products(const float* queries, size_t n_queries, const float* vectors, size_t n_vectors,
                    const int64_t* rows, size_t n_rows, size_t dim, float* out);

}  // namespace rapidrag::exact
