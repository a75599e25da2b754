#include "rapidrag/fusion.hpp"

#include <algorithm>
#include <cmath>

namespace rapidrag::fusion {

namespace {

// The distinct rows, ascending.
void distinct(const int64_t* rows, size_t n, std::vector<int64_t>& out) {
  out.assign(rows, rows + n);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

size_t position(const std::vector<int64_t>& sorted, int64_t row) {
  return static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), row) - sorted.begin());
}

}  // namespace

void reciprocal_rank(const int64_t* rows, const int64_t* row_splits, size_t n_lists, const double* weights,
                     double rrf_k, std::vector<int64_t>& fused_rows, std::vector<double>& fused) {
  distinct(rows, static_cast<size_t>(row_splits[n_lists]), fused_rows);
  fused.assign(fused_rows.size(), 0.0);
  for (size_t j = 0; j < n_lists; ++j) {
    for (int64_t r = row_splits[j]; r < row_splits[j + 1]; ++r) {
      fused[position(fused_rows, rows[r])] += weights[j] / (rrf_k + static_cast<double>(r - row_splits[j]) + 1.0);
    }
  }
}

void weighted(const int64_t* rows, const double* scores, const int64_t* row_splits, size_t n_lists,
              const double* weights, bool zscore, std::vector<int64_t>& fused_rows, std::vector<double>& fused) {
  distinct(rows, static_cast<size_t>(row_splits[n_lists]), fused_rows);
  fused.assign(fused_rows.size(), 0.0);
  std::vector<double> norm;
  for (size_t j = 0; j < n_lists; ++j) {
    const int64_t lo = row_splits[j], hi = row_splits[j + 1];
    if (hi == lo) continue;
    const double* s = scores + lo;
    const size_t n = static_cast<size_t>(hi - lo);
    norm.resize(n);
    double floor = 0.0;
    if (zscore) {
      double sum = 0.0;
      for (size_t i = 0; i < n; ++i) sum += s[i];
      const double mean = sum / static_cast<double>(n);
      double squares = 0.0;
      for (size_t i = 0; i < n; ++i) squares += (s[i] - mean) * (s[i] - mean);
      const double sd = std::sqrt(squares / static_cast<double>(n));
      for (size_t i = 0; i < n; ++i) norm[i] = sd > 0 ? (s[i] - mean) / sd : 0.0;
      floor = *std::min_element(norm.begin(), norm.end());
    } else {
      const auto [lowest, highest] = std::minmax_element(s, s + n);
      const double span = *highest - *lowest;
      for (size_t i = 0; i < n; ++i) norm[i] = span > 0 ? (s[i] - *lowest) / span : 1.0;
    }
    // Every fused row starts at this list's floor, then its own rows raise it.
    for (double& f : fused) f += weights[j] * floor;
    for (size_t i = 0; i < n; ++i) fused[position(fused_rows, rows[lo + static_cast<int64_t>(i)])] += weights[j] * (norm[i] - floor);
  }
}

}  // namespace rapidrag::fusion
