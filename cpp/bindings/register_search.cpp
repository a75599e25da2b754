// The search path's kernels: BM25's scoring and selection, exact inner products, fusion, the merge of a sharded
// index's lists. Arrays pass without conversion (a wrong dtype or layout is a TypeError, so an output array is never
// silently copied). BM25's kernels and the exact products run without the GIL over large inputs (ReleaseGilIf);
// fusion and the merge, over a few hundred rows each, keep it.
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "rapidrag/bm25.hpp"
#include "rapidrag/exact.hpp"
#include "rapidrag/fusion.hpp"
#include "rapidrag/merge.hpp"

namespace rapidrag::bindings {

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

template <typename T>
void check_length(const Array<T>& a, py::ssize_t n, const char* name, const char* of) {
  if (a.ndim() != 1 || a.shape(0) != n) {
    throw py::value_error(std::string(name) + " must be 1-D with " + std::to_string(n) + " entries (" + of +
                          "), got shape of " + std::to_string(a.ndim() == 1 ? a.shape(0) : -1));
  }
}

// row_splits of n_lists + 1 entries, from 0, not decreasing, ending at n.
size_t check_row_splits(const Array<int64_t>& row_splits, py::ssize_t n) {
  if (row_splits.ndim() != 1 || row_splits.shape(0) < 1) throw py::value_error("row_splits must be 1-D and not empty");
  const int64_t* s = row_splits.data();
  const size_t n_lists = static_cast<size_t>(row_splits.shape(0) - 1);
  if (s[0] != 0 || s[n_lists] != n) throw py::value_error("row_splits must run from 0 to the number of rows");
  for (size_t j = 0; j < n_lists; ++j) {
    if (s[j + 1] < s[j]) throw py::value_error("row_splits must not decrease");
  }
  return n_lists;
}

// A selection's arrays: scores and allowed of n rows, rows and best of k; returns (n, k).
std::pair<size_t, size_t> check_selection(const Array<float>& scores, const Array<bool>& allowed,
                                          const Array<int64_t>& rows, const Array<float>& best) {
  const py::ssize_t n = scores.ndim() == 1 ? scores.shape(0) : -1;
  check_length(scores, n, "scores", "one per row");
  check_length(allowed, n, "allowed", "one per row");
  const py::ssize_t k = rows.ndim() == 1 ? rows.shape(0) : -1;
  check_length(rows, k, "rows", "k");
  check_length(best, k, "best", "as many as rows");
  return {static_cast<size_t>(n), static_cast<size_t>(k)};
}

using Select = size_t (*)(const float*, const bool*, size_t, int64_t*, float*, size_t);

void bind_select(py::module_& m, const char* name, Select kernel, const char* doc) {
  m.def(
      name,
      [kernel](const Array<float>& scores, const Array<bool>& allowed, Array<int64_t> rows, Array<float> best) {
        const auto [n, k] = check_selection(scores, allowed, rows, best);
        const ReleaseGilIf release(n >= kReleaseGilFrom);
        return kernel(scores.data(), allowed.data(), n, rows.mutable_data(), best.mutable_data(), k);
      },
      py::arg("scores").noconvert(), py::arg("allowed").noconvert(), py::arg("rows").noconvert(),
      py::arg("best").noconvert(), doc);
}

}  // namespace

void register_search(py::module_& m) {
  m.def(
      "bm25_accumulate",
      [](Array<float> scores, const Array<float>& norms, const Array<int64_t>& terms, const Array<float>& weights,
         const std::optional<Array<int64_t>>& segment_terms, const Array<int64_t>& term_ptr,
         const Array<int32_t>& docs, const Array<float>& tfs, float k1) {
        const py::ssize_t n_rows = scores.ndim() == 1 ? scores.shape(0) : -1;
        check_length(scores, n_rows, "scores", "one per row");
        check_length(norms, n_rows, "norms", "one per row");
        check_length(terms, terms.ndim() == 1 ? terms.shape(0) : -1, "terms", "the query's");
        check_length(weights, terms.shape(0), "weights", "one per query term");
        if (term_ptr.ndim() != 1 || term_ptr.shape(0) < 1) throw py::value_error("term_ptr must be 1-D and not empty");
        const size_t n_held = static_cast<size_t>(term_ptr.shape(0) - 1);
        if (segment_terms) check_length(*segment_terms, static_cast<py::ssize_t>(n_held), "segment_terms", "one per term_ptr entry but the last");
        check_length(docs, docs.ndim() == 1 ? docs.shape(0) : -1, "docs", "the postings'");
        check_length(tfs, docs.shape(0), "tfs", "one per posting");
        const bm25::Segment segment{segment_terms ? segment_terms->data() : nullptr, term_ptr.data(), n_held,
                                    docs.data(), tfs.data(), static_cast<size_t>(docs.shape(0))};
        bool ok;
        {
          const ReleaseGilIf release(static_cast<size_t>(n_rows) >= kReleaseGilFrom);
          ok = bm25::accumulate(scores.mutable_data(), static_cast<size_t>(n_rows), norms.data(), terms.data(),
                                weights.data(), static_cast<size_t>(terms.shape(0)), segment, k1);
        }
        if (!ok) throw py::value_error("a BM25 segment is damaged: a posting or pointer is past the index's rows");
      },
      py::arg("scores").noconvert(), py::arg("norms").noconvert(), py::arg("terms").noconvert(),
      py::arg("weights").noconvert(), py::arg("segment_terms").noconvert(), py::arg("term_ptr").noconvert(),
      py::arg("docs").noconvert(), py::arg("tfs").noconvert(), py::arg("k1"),
      "scores[d] += weights[j] * tf / (tf + k1 * norms[d]) over the segment's postings (d, tf) of each query term "
      "terms[j]; segment_terms None: the segment's entries are by term id.");
  bind_select(m, "bm25_select", bm25::select,
              "The len(rows) best rows allowed with a score above 0 into rows/best, best first, ties by row; "
              "returns how many.");
  bind_select(m, "bm25_select_many", bm25::select_many, "As bm25_select, for long lists (a few hundred rows).");
  m.def(
      "bm25_select_grouped",
      [](const Array<float>& scores, const Array<bool>& allowed, const Array<int64_t>& groups, Array<int64_t> rows,
         Array<float> best) {
        const auto [n, k] = check_selection(scores, allowed, rows, best);
        check_length(groups, static_cast<py::ssize_t>(n), "groups", "one per row");
        const ReleaseGilIf release(n >= kReleaseGilFrom);
        return bm25::select_grouped(scores.data(), allowed.data(), groups.data(), n, rows.mutable_data(),
                                    best.mutable_data(), k);
      },
      py::arg("scores").noconvert(), py::arg("allowed").noconvert(), py::arg("groups").noconvert(),
      py::arg("rows").noconvert(), py::arg("best").noconvert(),
      "As bm25_select, keeping at most one row of each group (its best; the first in row order on a tie).");
  m.def(
      "exact_inner_products",
      [](const py::array_t<float, py::array::c_style>& queries, const py::array_t<float, py::array::c_style>& vectors,
         const Array<int64_t>& rows, py::array_t<float, py::array::c_style> out) {
        if (queries.ndim() != 2 || vectors.ndim() != 2 || queries.shape(1) != vectors.shape(1)) {
          throw py::value_error("queries and vectors must be 2-D with the same number of columns");
        }
        check_length(rows, rows.ndim() == 1 ? rows.shape(0) : -1, "rows", "the rows to score");
        if (out.ndim() != 2 || out.shape(0) != queries.shape(0) || out.shape(1) != rows.shape(0)) {
          throw py::value_error("out must have shape (len(queries), len(rows))");
        }
        const size_t n_rows = static_cast<size_t>(rows.shape(0)), dim = static_cast<size_t>(queries.shape(1));
        bool ok;
        {
          const ReleaseGilIf release(n_rows * dim >= kReleaseGilFrom);
          ok = exact::inner_products(queries.data(), static_cast<size_t>(queries.shape(0)), vectors.data(),
                                     static_cast<size_t>(vectors.shape(0)), rows.data(), n_rows, dim,
                                     out.mutable_data());
        }
        if (!ok) throw py::value_error("rows must be rows of vectors (0 <= row < len(vectors))");
      },
      py::arg("queries").noconvert(), py::arg("vectors").noconvert(), py::arg("rows").noconvert(),
      py::arg("out").noconvert(),
      "out[i, j] = queries[i] . vectors[rows[j]] (float32; the vectors read where they are).");
  m.def(
      "fuse_reciprocal_rank",
      [](const Array<int64_t>& rows, const Array<int64_t>& row_splits, const Array<double>& weights, double rrf_k) {
        const size_t n_lists = check_row_splits(row_splits, rows.ndim() == 1 ? rows.shape(0) : -1);
        check_length(weights, static_cast<py::ssize_t>(n_lists), "weights", "one per list");
        std::vector<int64_t> fused_rows;
        std::vector<double> fused;
        {
          fusion::reciprocal_rank(rows.data(), row_splits.data(), n_lists, weights.data(), rrf_k, fused_rows, fused);
        }
        return py::make_tuple(to_array(fused_rows), to_array(fused));
      },
      py::arg("rows").noconvert(), py::arg("row_splits").noconvert(), py::arg("weights").noconvert(),
      py::arg("rrf_k"), "(each fused row ascending, its RRF score) of the lists row_splits cuts rows into.");
  m.def(
      "fuse_weighted",
      [](const Array<int64_t>& rows, const Array<double>& scores, const Array<int64_t>& row_splits,
         const Array<double>& weights, bool zscore) {
        const size_t n_lists = check_row_splits(row_splits, rows.ndim() == 1 ? rows.shape(0) : -1);
        check_length(scores, rows.shape(0), "scores", "one per row");
        check_length(weights, static_cast<py::ssize_t>(n_lists), "weights", "one per list");
        std::vector<int64_t> fused_rows;
        std::vector<double> fused;
        {
          fusion::weighted(rows.data(), scores.data(), row_splits.data(), n_lists, weights.data(), zscore, fused_rows,
                           fused);
        }
        return py::make_tuple(to_array(fused_rows), to_array(fused));
      },
      py::arg("rows").noconvert(), py::arg("scores").noconvert(), py::arg("row_splits").noconvert(),
      py::arg("weights").noconvert(), py::arg("zscore"),
      "(each fused row ascending, its weighted sum of normalised scores; zscore or min-max).");
  m.def(
      "merge_shard_lists",
      [](const Array<float>& scores, const Array<int64_t>& rows, const Array<int64_t>& docs,
         const Array<int64_t>& row_splits, const Array<int64_t>& shards, int64_t n_shards, Array<int64_t> out_rows,
         Array<int64_t> out_docs, Array<float> out_scores) {
        const py::ssize_t n = scores.ndim() == 1 ? scores.shape(0) : -1;
        check_length(scores, n, "scores", "one per row");
        check_length(rows, n, "rows", "one per score");
        check_length(docs, n, "docs", "one per score");
        const size_t n_lists = check_row_splits(row_splits, n);
        check_length(shards, static_cast<py::ssize_t>(n_lists), "shards", "one per list");
        if (n_shards < 1) throw py::value_error("n_shards must be at least 1");
        const py::ssize_t n_out = out_scores.ndim() == 1 ? out_scores.shape(0) : -1;
        check_length(out_scores, n_out, "out_scores", "the merged list's");
        check_length(out_rows, n_out, "out_rows", "as many as out_scores");
        check_length(out_docs, n_out, "out_docs", "as many as out_scores");
        return shards::merge(scores.data(), rows.data(), docs.data(), row_splits.data(), shards.data(), n_lists,
                             n_shards, out_rows.mutable_data(), out_docs.mutable_data(), out_scores.mutable_data(),
                             static_cast<size_t>(n_out));
      },
      py::arg("scores").noconvert(), py::arg("rows").noconvert(), py::arg("docs").noconvert(),
      py::arg("row_splits").noconvert(), py::arg("shards").noconvert(), py::arg("n_shards"),
      py::arg("out_rows").noconvert(), py::arg("out_docs").noconvert(), py::arg("out_scores").noconvert(),
      "The shards' lists (each best first by score, then row) merged by their heads into out_*, row and document "
      "keys x * n_shards + shard; returns how many were written, or -1 (nothing written) for a list out of order.");
}

}  // namespace rapidrag::bindings
