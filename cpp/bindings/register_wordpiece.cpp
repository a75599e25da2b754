#include <pybind11/stl.h>

#include <memory>

#include "common.hpp"
#include "rapidrag/wordpiece.hpp"

namespace rapidrag::bindings {

void register_wordpiece(py::module_& m) {
  py::class_<WordPiece, TextEncoder, std::shared_ptr<WordPiece>>(m, "WordPiece")
      .def(py::init([](const std::vector<std::string>& vocab, const std::string& unk_token,
                       const std::string& continuing_subword_prefix, size_t max_input_chars_per_word, bool lowercase,
                       bool strip_accents, bool handle_chinese_chars, bool clean_text,
                       const std::vector<std::string>& special_tokens) {
             WordPieceOptions o;
             o.unk_token = unk_token;
             o.continuing_subword_prefix = continuing_subword_prefix;
             o.max_input_chars_per_word = max_input_chars_per_word;
             o.lowercase = lowercase;
             o.strip_accents = strip_accents;
             o.handle_chinese_chars = handle_chinese_chars;
             o.clean_text = clean_text;
             o.special_tokens = special_tokens;
             return std::make_shared<WordPiece>(vocab, std::move(o));
           }),
           py::arg("vocab"), py::arg("unk_token"), py::arg("continuing_subword_prefix"),
           py::arg("max_input_chars_per_word"), py::arg("lowercase"), py::arg("strip_accents"),
           py::arg("handle_chinese_chars"), py::arg("clean_text"), py::arg("special_tokens"));
}

}  // namespace rapidrag::bindings
