#include <pybind11/stl.h>

#include <memory>

#include "common.hpp"
#include "rapidrag/bpe.hpp"

namespace rapidrag::bindings {

void register_bpe(py::module_& m) {
  py::class_<ByteLevelBPE, TextEncoder, std::shared_ptr<ByteLevelBPE>>(m, "ByteLevelBPE")
      .def(py::init([](const std::vector<std::string>& vocab,
                       const std::vector<std::pair<std::string, std::string>>& merges, const std::string& pattern,
                       size_t max_digits, bool add_prefix_space, bool trim_offsets, bool trim_keeps_prefix_space, bool ignore_merges,
                       const std::string& unk_token, const std::vector<std::string>& special_tokens, const Normalizer& normalizer) {
             ByteLevelBPEOptions o;
             o.normalizer = normalizer;
             if (pattern == "gpt2") {
               o.pattern = SplitPattern::kGpt2;
             } else if (pattern == "llama3") {
               o.pattern = SplitPattern::kLlama3;
             } else if (pattern == "none") {
               o.pattern = SplitPattern::kNone;
             } else {
               throw py::value_error("pattern must be 'gpt2', 'llama3' or 'none', got '" + pattern + "'");
             }
             o.max_digits = max_digits;
             o.add_prefix_space = add_prefix_space;
             o.trim_offsets = trim_offsets;
             o.trim_keeps_prefix_space = trim_keeps_prefix_space;
             o.ignore_merges = ignore_merges;
             o.unk_token = unk_token;
             o.special_tokens = special_tokens;
             return std::make_shared<ByteLevelBPE>(vocab, merges, std::move(o));
           }),
           py::arg("vocab"), py::arg("merges"), py::arg("pattern"), py::arg("max_digits"), py::arg("add_prefix_space"),
           py::arg("trim_offsets"), py::arg("trim_keeps_prefix_space"), py::arg("ignore_merges"), py::arg("unk_token"), py::arg("special_tokens"), py::arg("normalizer"),
           "Byte-level BPE: vocab[i] is token i in the byte-level alphabet, merges are (left, right) by rank; "
           "pattern: the pre-tokenizer's split ('gpt2', 'llama3' with max_digits, or 'none').");
}

}  // namespace rapidrag::bindings
