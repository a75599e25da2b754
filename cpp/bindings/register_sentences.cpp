#include <vector>

#include "common.hpp"
#include "rapidrag/sentences.hpp"

namespace rapidrag::bindings {

void register_sentences(py::module_& m) {
  m.def(
      "sentence_marks",
      [](const py::object& text, size_t start, size_t stop) {
        const TextRef ref = text_ref(text, "text");
        if (start > stop || stop > ref.length) throw py::value_error("start and stop must satisfy start <= stop <= len(text)");
        SentenceMarks marks;
        {
          py::gil_scoped_release release;
          marks = sentence_marks(ref, start, stop);
        }
        py::list candidates(marks.puncts.size()), paragraphs(marks.paragraphs.size());
        for (size_t i = 0; i < marks.puncts.size(); ++i) {
          candidates[i] = py::make_tuple(marks.words[i], marks.puncts[i], marks.ends[i], marks.firsts[i]);
        }
        for (size_t i = 0; i < marks.paragraphs.size(); ++i) paragraphs[i] = py::int_(marks.paragraphs[i]);
        return py::make_tuple(candidates, paragraphs);
      },
      py::arg("text"), py::arg("start"), py::arg("stop"),
      "Where sentences may end in text[start:stop]: (words, puncts, ends, firsts, paragraphs), int64 arrays (see "
      "rapidrag.sentences).");
}

}  // namespace rapidrag::bindings
