#include "rapidrag/bm25.hpp"

#include <algorithm>
#include <functional>
#include <numeric>
#include <vector>

namespace rapidrag::bm25 {

bool accumulate(float* scores, size_t n_rows, const float* norms, const int64_t* terms, const float* weights,
                size_t n_terms, const Segment& segment, float k1) {
  const int64_t* ptr = segment.term_ptr;
  for (size_t j = 0; j < n_terms; ++j) {
    const int64_t t = terms[j];
    size_t i;
    if (segment.terms == nullptr) {
      if (t < 0 || static_cast<size_t>(t) >= segment.n_held) continue;
      i = static_cast<size_t>(t);
    } else {
      const int64_t* end = segment.terms + segment.n_held;
      const int64_t* at = std::lower_bound(segment.terms, end, t);
      if (at == end || *at != t) continue;
      i = static_cast<size_t>(at - segment.terms);
    }
    const int64_t lo = ptr[i], hi = ptr[i + 1];
    if (lo < 0 || hi < lo || static_cast<size_t>(hi) > segment.n_postings) return false;
    const float w = weights[j];
    for (int64_t p = lo; p < hi; ++p) {
      const int32_t d = segment.docs[p];
      if (d < 0 || static_cast<size_t>(d) >= n_rows) return false;
      const float tf = segment.tfs[p];
      scores[d] += w * tf / (tf + k1 * norms[d]);
    }
  }
  return true;
}

size_t select(const float* scores, const bool* allowed, size_t n, int64_t* rows, float* best, size_t k) {
  // Once the list is full a row must beat its last score to enter: a test almost always false, so predicted
  // well (testing "score > 0" first is not: it is mispredicted on about half the rows).
  if (k == 0) return 0;
  size_t m = 0;
  float floor = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float s = scores[i];
    if (s > floor && allowed[i]) {
      size_t j = m < k ? m : k - 1;
      m = std::min(m + 1, k);
      while (j > 0 && best[j - 1] < s) {  // past the rows of equal score: ties stay in row order
        best[j] = best[j - 1];
        rows[j] = rows[j - 1];
        --j;
      }
      best[j] = s;
      rows[j] = static_cast<int64_t>(i);
      if (m == k) floor = best[k - 1];
    }
  }
  return m;
}

namespace {

// The k best of the first n entries of rows/best (in row order), ties to the earlier row, moved to the front
// in row order; returns k and sets floor to the k-th best score.
size_t keep_best(int64_t* rows, float* best, size_t n, size_t k, std::vector<float>& work, float& floor) {
  work.assign(best, best + n);
  std::nth_element(work.begin(), work.begin() + static_cast<std::ptrdiff_t>(k - 1), work.end(), std::greater<float>());
  const float cut = work[k - 1];
  size_t ties = k;  // how many rows scoring the cut itself may stay
  for (size_t j = 0; j < n; ++j) {
    if (best[j] > cut) --ties;
  }
  size_t m = 0;
  for (size_t j = 0; j < n; ++j) {
    const float s = best[j];
    if (s > cut || (s == cut && ties > 0)) {
      if (s == cut) --ties;
      rows[m] = rows[j];
      best[m] = s;
      ++m;
    }
  }
  floor = cut;
  return m;
}

}  // namespace

size_t select_many(const float* scores, const bool* allowed, size_t n, int64_t* rows, float* best, size_t k) {
  if (k == 0) return 0;
  std::vector<int64_t> buffer_rows(2 * k);
  std::vector<float> buffer_best(2 * k), work;
  size_t m = 0;
  float floor = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float s = scores[i];
    if (s > floor && allowed[i]) {
      buffer_rows[m] = static_cast<int64_t>(i);
      buffer_best[m] = s;
      if (++m == 2 * k) m = keep_best(buffer_rows.data(), buffer_best.data(), m, k, work, floor);
    }
  }
  if (m > k) m = keep_best(buffer_rows.data(), buffer_best.data(), m, k, work, floor);
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffer_best[a] > buffer_best[b]; });
  for (size_t j = 0; j < m; ++j) {
    rows[j] = buffer_rows[order[j]];
    best[j] = buffer_best[order[j]];
  }
  return m;
}

size_t select_grouped(const float* scores, const bool* allowed, const int64_t* groups, size_t n, int64_t* rows,
                      float* best, size_t k) {
  // The list's groups are kept beside it, scanned for each row that enters (a lookup through rows was slower).
  if (k == 0) return 0;
  std::vector<int64_t> listed(k);
  size_t m = 0;
  float floor = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float s = scores[i];
    if (s > floor && allowed[i]) {
      const int64_t g = groups[i];
      size_t j = m;  // the place of the row's group in the list, or m if the list has none of it
      for (size_t p = 0; p < m; ++p) {
        if (listed[p] == g) {
          j = p;
          break;
        }
      }
      if (j < m) {
        if (best[j] >= s) continue;  // its group's row there scores as well, and came first
      } else {                       // a new group: it takes the last place when the list is full
        j = m < k ? m : k - 1;
        m = std::min(m + 1, k);
      }
      while (j > 0 && best[j - 1] < s) {  // (over the group's old place, if it had one)
        best[j] = best[j - 1];
        rows[j] = rows[j - 1];
        listed[j] = listed[j - 1];
        --j;
      }
      best[j] = s;
      rows[j] = static_cast<int64_t>(i);
      listed[j] = g;
      if (m == k) floor = best[k - 1];
    }
  }
  return m;
}

}  // namespace rapidrag::bm25
