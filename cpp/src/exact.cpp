#include "rapidrag/exact.hpp"

namespace rapidrag::exact {

namespace {

// The rows' dot products with the query, four rows at a time: four rows' loads in flight at once (the rows are
// scattered over the matrix, so the scan waits on memory) and four sums in step. Each sum's additions may be
// reordered (an OpenMP SIMD reduction: several vector accumulators, as a BLAS does), so that the compiler
// vectorises it. Built for AVX-512, AVX2 and the baseline, one chosen at load where the compiler can (GCC's
// target_clones on x86-64 Linux).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void dots(const float* query, const float* vectors, const int64_t* rows, size_t n_rows, size_t dim, float* out) {
  size_t j = 0;
  for (; j + 4 <= n_rows; j += 4) {
    const float* v0 = vectors + static_cast<size_t>(rows[j]) * dim;
    const float* v1 = vectors + static_cast<size_t>(rows[j + 1]) * dim;
    const float* v2 = vectors + static_cast<size_t>(rows[j + 2]) * dim;
    const float* v3 = vectors + static_cast<size_t>(rows[j + 3]) * dim;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (size_t t = 0; t < dim; ++t) {
      const float q = query[t];
      a0 += q * v0[t];
      a1 += q * v1[t];
      a2 += q * v2[t];
      a3 += q * v3[t];
    }
    out[j] = a0;
    out[j + 1] = a1;
    out[j + 2] = a2;
    out[j + 3] = a3;
  }
  for (; j < n_rows; ++j) {
    const float* v = vectors + static_cast<size_t>(rows[j]) * dim;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (size_t t = 0; t < dim; ++t) acc += query[t] * v[t];
    out[j] = acc;
  }
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
