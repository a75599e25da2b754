#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "rapidrag/normalize.hpp"
#include "rapidrag/unicode.hpp"

namespace rapidrag::bindings {

namespace {

std::u32string u32(const std::string& utf8) { return unicode::utf8_to_u32(utf8); }

Normalizer& add(Normalizer& n, NormalizerStep step) {
  n.add(std::move(step));
  return n;
}

}  // namespace

void register_normalizer(py::module_& m) {
  using Kind = NormalizerStep::Kind;
  py::class_<Normalizer>(m, "Normalizer",
                         "The steps of a tokenizer.json normalizer, applied in order; each keeps the original span of "
                         "every character it writes, as Hugging Face tokenizers aligns it.")
      .def(py::init<>())
      .def_property_readonly("empty", &Normalizer::empty)
      .def("nfc", [](Normalizer& n) { return add(n, {Kind::kNfc}); }, py::return_value_policy::reference_internal)
      .def("nfkc", [](Normalizer& n) { return add(n, {Kind::kNfkc}); }, py::return_value_policy::reference_internal)
      .def(
          "lowercase", [](Normalizer& n) { return add(n, {Kind::kLowercase}); },
          py::return_value_policy::reference_internal)
      .def(
          "strip",
          [](Normalizer& n, bool left, bool right) {
            NormalizerStep s{Kind::kStrip};
            s.left = left;
            s.right = right;
            return add(n, std::move(s));
          },
          py::arg("left"), py::arg("right"), py::return_value_policy::reference_internal)
      .def(
          "replace",
          [](Normalizer& n, const std::string& pattern, const std::string& content) {
            if (pattern.empty()) throw py::value_error("Replace: the pattern is empty");
            NormalizerStep s{Kind::kReplace};
            s.pattern = u32(pattern);
            s.content = u32(content);
            return add(n, std::move(s));
          },
          py::arg("pattern"), py::arg("content"), py::return_value_policy::reference_internal,
          "Replace every literal `pattern` (left to right, without overlaps) by `content`.")
      .def(
          "replace_run",
          [](Normalizer& n, const std::string& character, uint32_t min_run, const std::string& content) {
            NormalizerStep s{Kind::kReplaceRun};
            s.pattern = u32(character);
            if (s.pattern.size() != 1) throw py::value_error("Replace: a run is of one character");
            if (min_run < 1) throw py::value_error("Replace: min_run must be at least 1");
            s.min_run = min_run;
            s.content = u32(content);
            return add(n, std::move(s));
          },
          py::arg("character"), py::arg("min_run"), py::arg("content"), py::return_value_policy::reference_internal,
          "Replace every run of `character` at least `min_run` long (the regex c{n,}) by `content`.")
      .def(
          "prepend",
          [](Normalizer& n, const std::string& content) {
            NormalizerStep s{Kind::kPrepend};
            s.content = u32(content);
            return add(n, std::move(s));
          },
          py::arg("content"), py::return_value_policy::reference_internal)
      .def(
          "precompiled",
          [](Normalizer& n, const py::bytes& blob) {
            NormalizerStep s{Kind::kPrecompiled};
            s.charsmap = std::make_shared<const CharsMap>(std::string(blob));
            return add(n, std::move(s));
          },
          py::arg("charsmap"), py::return_value_policy::reference_internal,
          "The SentencePiece precompiled character map (the decoded precompiled_charsmap blob).")
      .def(
          "normalize",
          [](const Normalizer& n, const py::str& text) {
            // Through the str's code points (a str <-> std::u32string conversion would take a leading U+FEFF for
            // a byte-order mark).
            const TextRef ref = text_ref(text, "text");
            std::vector<char32_t> cps;
            visit_text(ref, [&](const auto* p) { cps.assign(p, p + ref.length); });
            std::vector<Span> spans(cps.size());
            for (size_t k = 0; k < cps.size(); ++k) {
              spans[k] = {static_cast<uint32_t>(k), static_cast<uint32_t>(k + 1)};
            }
            NormalizeScratch scratch;
            if (!n.empty()) n.apply(cps, spans, scratch);
            std::vector<std::pair<uint32_t, uint32_t>> out;
            out.reserve(spans.size());
            for (const Span& s : spans) out.emplace_back(s.start, s.end);
            for (char32_t& c : cps) {
              if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
            }
            PyObject* normalized = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cps.data(),
                                                             static_cast<Py_ssize_t>(cps.size()));
            if (normalized == nullptr) throw py::error_already_set();
            return py::make_tuple(py::reinterpret_steal<py::str>(normalized), out);
          },
          "(normalized text, the original [start, end) character span of each of its characters).",
          py::arg("text"));
}

}  // namespace rapidrag::bindings
