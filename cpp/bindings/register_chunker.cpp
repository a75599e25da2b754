#include <memory>

#include "common.hpp"
#include "rapidrag/chunker.hpp"
#include "rapidrag/parallel.hpp"

namespace rapidrag::bindings {
namespace {

void copy_spans(const std::vector<ChunkSpan>& spans, int64_t* out) {
  for (size_t i = 0; i < spans.size(); ++i) {
    out[3 * i] = spans[i].start;
    out[3 * i + 1] = spans[i].end;
    out[3 * i + 2] = spans[i].n_tokens;
  }
}

}  // namespace

void register_chunker(py::module_& m) {
  py::class_<Chunker, std::shared_ptr<Chunker>>(m, "Chunker")
      .def(py::init<std::shared_ptr<const TextEncoder>, size_t, size_t>(), py::arg("tokenizer"), py::arg("max_tokens"),
           py::arg("overlap"))
      .def_property_readonly("max_tokens", &Chunker::max_tokens)
      .def_property_readonly("overlap", &Chunker::overlap)
      .def(
          "split",
          [](const Chunker& c, const py::object& text) {
            const TextRef ref = text_ref(text, "text");
            std::vector<ChunkSpan> spans;
            {
              py::gil_scoped_release release;
              spans = c.split(ref);
            }
            py::array_t<int64_t> out({static_cast<py::ssize_t>(spans.size()), py::ssize_t{3}});
            copy_spans(spans, out.mutable_data());
            return out;
          },
          py::arg("text"), "Chunks as int64 [k, 3] rows of (start, end, n_tokens).")
      .def(
          "split_batch",
          [](const Chunker& c, const py::list& texts, long n_threads) {
            const auto refs = text_refs(texts, "texts");
            const size_t threads = threads_arg(n_threads);
            std::vector<std::vector<ChunkSpan>> spans(refs.size());
            py::array_t<int64_t> row_splits(static_cast<py::ssize_t>(refs.size() + 1));
            size_t total = 0;
            {
              py::gil_scoped_release release;
              parallel_for(refs.size(), threads, 4, [&](size_t i) { spans[i] = c.split(refs[i]); });
              int64_t* rs = row_splits.mutable_data();
              rs[0] = 0;
              for (size_t i = 0; i < spans.size(); ++i) {
                total += spans[i].size();
                rs[i + 1] = static_cast<int64_t>(total);
              }
            }
            py::array_t<int64_t> out({static_cast<py::ssize_t>(total), py::ssize_t{3}});
            int64_t* po = out.mutable_data();
            {
              py::gil_scoped_release release;
              size_t k = 0;
              for (const auto& s : spans) {
                copy_spans(s, po + 3 * k);
                k += s.size();
              }
            }
            return py::make_tuple(out, row_splits);
          },
          py::arg("texts"), py::arg("n_threads"),
          "Chunks of many texts: (spans int64 [total, 3], row_splits int64 [n + 1]).");
}

}  // namespace rapidrag::bindings
