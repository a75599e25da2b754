#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "common.hpp"
#include "rapidrag/words.hpp"

namespace rapidrag::bindings {

void register_words(py::module_& m) {
  m.def(
      "split_words",
      [](const py::object& text) {
        const TextRef ref = text_ref(text, "text");
        std::vector<std::string> words;
        {
          const ReleaseGilIf release(ref.length >= kReleaseGilFrom);
          words = split_words(ref);
        }
        py::list out(words.size());
        for (size_t i = 0; i < words.size(); ++i) out[i] = py::str(words[i]);
        return out;
      },
      py::arg("text"), "The lowercased words (runs of \\w characters) of a text.");

  m.def(
      "word_prefixes",
      [](const py::object& text, const std::vector<std::string>& terms) {
        const TextRef ref = text_ref(text, "text");
        std::vector<int64_t> starts, term_ids;
        {
          py::gil_scoped_release release;
          word_prefixes(ref, terms, starts, term_ids);
        }
        return py::make_tuple(to_array(starts), to_array(term_ids));
      },
      py::arg("text"), py::arg("terms"),
      "Where each word of a text that begins with one of the lowercase terms begins, and the longest such term: "
      "(starts int64 [n], term_ids int64 [n]), in the text's order.");

  py::class_<WordDictionary>(m, "WordDictionary")
      .def(py::init<>())
      .def("__len__", &WordDictionary::size)
      .def(
          "add_batch",
          [](WordDictionary& d, const py::list& texts) {
            const auto refs = text_refs(texts, "texts");
            std::vector<int64_t> ids, row_splits;
            {
              py::gil_scoped_release release;
              d.add_batch(refs, ids, row_splits);
            }
            return py::make_tuple(to_array(ids), to_array(row_splits));
          },
          py::arg("texts"),
          "Word ids of many texts: (ids int64 [total], row_splits int64 [n + 1]); new words get the next ids.")
      .def(
          "words",
          [](const WordDictionary& d, size_t start) {
            if (start > d.size()) throw py::value_error("start is past the end of the dictionary");
            py::list out(d.size() - start);
            for (size_t i = start; i < d.size(); ++i) out[i - start] = py::str(d.word(i));
            return out;
          },
          py::arg("start") = 0, "The words with ids start, start + 1, ..., as str.");
}

}  // namespace rapidrag::bindings
