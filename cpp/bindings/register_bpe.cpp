#include <pybind11/stl.h>

#include <memory>

#include "common.hpp"
#include "rapidrag/bpe.hpp"

namespace rapidrag::bindings {

void register_bpe(py::module_& m) {
  py::class_<BPE, TextEncoder, std::shared_ptr<BPE>>(m, "BPE")
      .def(py::init([](const std::vector<std::string>& vocab,
                       const std::vector<std::pair<std::string, std::string>>& merges, const std::string& pattern,
                       size_t max_digits, bool add_prefix_space, bool trim_offsets, bool trim_keeps_prefix_space,
                       bool ignore_merges, const std::string& unk_token, const std::vector<std::string>& special_tokens,
                       const Normalizer& normalizer, bool byte_level, bool byte_fallback, bool fuse_unk,
                       const std::string& replacement, const std::string& prepend_scheme, bool split) {
             BPEOptions o;
             o.normalizer = normalizer;
             o.byte_level = byte_level;
             if (pattern == "gpt2") {
               o.pattern = SplitPattern::kGpt2;
             } else if (pattern == "llama3") {
               o.pattern = SplitPattern::kLlama3;
             } else if (pattern == "none") {
               o.pattern = SplitPattern::kNone;
             } else if (pattern == "metaspace") {
               o.pattern = SplitPattern::kMetaspace;
               o.metaspace = metaspace(replacement, prepend_scheme, split);
             } else {
               throw py::value_error("pattern must be 'gpt2', 'llama3', 'metaspace' or 'none', got '" + pattern + "'");
             }
             o.max_digits = max_digits;
             o.add_prefix_space = add_prefix_space;
             o.trim_offsets = trim_offsets;
             o.trim_keeps_prefix_space = trim_keeps_prefix_space;
             o.ignore_merges = ignore_merges;
             o.byte_fallback = byte_fallback;
             o.fuse_unk = fuse_unk;
             o.unk_token = unk_token;
             o.special_tokens = special_tokens;
             return std::make_shared<BPE>(vocab, merges, std::move(o));
           }),
           py::arg("vocab"), py::arg("merges"), py::arg("pattern"), py::arg("max_digits"), py::arg("add_prefix_space"),
           py::arg("trim_offsets"), py::arg("trim_keeps_prefix_space"), py::arg("ignore_merges"), py::arg("unk_token"),
           py::arg("special_tokens"), py::arg("normalizer"), py::arg("byte_level") = true,
           py::arg("byte_fallback") = false, py::arg("fuse_unk") = false, py::arg("replacement") = "\xe2\x96\x81",
           py::arg("prepend_scheme") = "always", py::arg("split") = true,
           "BPE: vocab[i] is token i (in the byte-level alphabet when byte_level), merges are (left, right) by rank; "
           "pattern: the pre-tokenizer ('gpt2', 'llama3' with max_digits, 'metaspace' with replacement, "
           "prepend_scheme and split, or 'none').");
}

}  // namespace rapidrag::bindings
