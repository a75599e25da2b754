// The rapidrag._core extension module: translation between Python and the C++ core, nothing more.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace rapidrag::bindings {
void register_encoder(py::module_& m);
void register_wordpiece(py::module_& m);
void register_normalizer(py::module_& m);
void register_bpe(py::module_& m);
void register_unigram(py::module_& m);
void register_chunker(py::module_& m);
void register_words(py::module_& m);
void register_sentences(py::module_& m);
void register_search(py::module_& m);
}  // namespace rapidrag::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "rapidrag native core: WordPiece, byte-level BPE and Unigram tokenizers, chunker, sentence marks, and the search path's kernels (BM25 word splitting, scoring and selection; fusion; the merge of shards' lists)";
  rapidrag::bindings::register_encoder(m);
  rapidrag::bindings::register_wordpiece(m);
  rapidrag::bindings::register_normalizer(m);
  rapidrag::bindings::register_bpe(m);
  rapidrag::bindings::register_unigram(m);
  rapidrag::bindings::register_chunker(m);
  rapidrag::bindings::register_words(m);
  rapidrag::bindings::register_sentences(m);
  rapidrag::bindings::register_search(m);
}
