#include <pybind11/stl.h>

#include <memory>

#include "common.hpp"
#include "rapidrag/unigram.hpp"

namespace rapidrag::bindings {

void register_unigram(py::module_& m) {
  py::class_<Unigram, TextEncoder, std::shared_ptr<Unigram>>(m, "Unigram")
      .def(py::init([](const std::vector<std::pair<std::string, double>>& vocab, int32_t unk_id, const Normalizer& normalizer,
                       const std::string& replacement, const std::string& prepend_scheme, bool split,
                       bool byte_fallback, const std::vector<std::string>& special_tokens) {
             UnigramOptions o;
             o.normalizer = normalizer;
             o.metaspace = metaspace(replacement, prepend_scheme, split);
             o.byte_fallback = byte_fallback;
             o.special_tokens = special_tokens;
             return std::make_shared<Unigram>(vocab, unk_id, std::move(o));
           }),
           py::arg("vocab"), py::arg("unk_id"), py::arg("normalizer"), py::arg("replacement"), py::arg("prepend_scheme"),
           py::arg("split"), py::arg("byte_fallback"), py::arg("special_tokens"),
           "SentencePiece Unigram with the Metaspace pre-tokenizer: vocab[i] = (piece, score) of token i.");
}

}  // namespace rapidrag::bindings
