#include "rapidrag/exact.hpp"

namespace rapidrag::exact {

namespace {

// (Inlined into each of the clones of `dots` below, so compiled for the instruction set of each.)
#if defined(__GNUC__)
#define RAPIDRAG_INLINE inline __attribute__((always_inline))
#else
#define RAPIDRAG_INLINE inline
#endif

// Eight rows' dot products with the query, in step: their loads in flight at once (rows scattered over the matrix
// make the scan wait on memory) and eight independent sums, so that the fused multiply-adds do not wait on one
// another (1.05-1.4x four rows at a time on SciFact's vectors). Each sum's additions may be reordered (an OpenMP
// SIMD reduction: a vector accumulator a row, as a BLAS does), so that the compiler vectorises it.
RAPIDRAG_INLINE void dots_of_eight(const float* query, const float* vectors, const int64_t* rows, size_t dim,
                                   float* out) {
  const float* v0 = vectors + static_cast<size_t>(rows[0]) * dim;
  const float* v1 = vectors + static_cast<size_t>(rows[1]) * dim;
  const float* v2 = vectors + static_cast<size_t>(rows[2]) * dim;
  const float* v3 = vectors + static_cast<size_t>(rows[3]) * dim;
  const float* v4 = vectors + static_cast<size_t>(rows[4]) * dim;
  const float* v5 = vectors + static_cast<size_t>(rows[5]) * dim;
  const float* v6 = vectors + static_cast<size_t>(rows[6]) * dim;
  const float* v7 = vectors + static_cast<size_t>(rows[7]) * dim;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7)
  for (size_t t = 0; t < dim; ++t) {
    const float q = query[t];
    a0 += q * v0[t];
    a1 += q * v1[t];
    a2 += q * v2[t];
    a3 += q * v3[t];
    a4 += q * v4[t];
    a5 += q * v5[t];
    a6 += q * v6[t];
    a7 += q * v7[t];
  }
  out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3, out[4] = a4, out[5] = a5, out[6] = a6, out[7] = a7;
}

RAPIDRAG_INLINE float dot(const float* query, const float* v, size_t dim) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (size_t t = 0; t < dim; ++t) acc += query[t] * v[t];
  return acc;
}

// Eight rows at a time, then the rest one at a time. Built for AVX-512, AVX2 and the baseline, one chosen at load
// where the compiler can (GCC's target_clones on x86-64 Linux).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void dots(const float* query, const float* vectors, const int64_t* rows, size_t n_rows, size_t dim, float* out) {
  size_t j = 0;
  for (; j + 8 <= n_rows; j += 8) dots_of_eight(query, vectors, rows + j, dim, out + j);
  for (; j < n_rows; ++j) out[j] = dot(query, vectors + static_cast<size_t>(rows[j]) * dim, dim);
}

}  // namespace

bool inner_products(const float* queries, size_t n_queries, const float* vectors, size_t n_vectors,
                    const int64_t* rows, size_t n_rows, size_t dim, float* out) {
  for (size_t j = 0; j < n_rows; ++j) {
    if (rows[j] < 0 || static_cast<size_t>(rows[j]) >= n_vectors) return false;
  }
  for (size_t i = 0; i < n_queries; ++i) dots(queries + i * dim, vectors, rows, n_rows, dim, out + i * n_rows);
  return true;
}

}  // namespace rapidrag::exact
