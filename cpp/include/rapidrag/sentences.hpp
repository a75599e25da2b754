// Where sentences may end in a text: the scan behind rapidrag.sentences, whose rule-based splitter then decides
// with the rules that need Python's str predicates (a lowercase start continues a sentence; abbreviations and
// initials do not end one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rapidrag/text.hpp"

namespace rapidrag {

struct SentenceMarks {
  // Candidate ends, in order: a run of terminal punctuation (. ! ? U+2026) at puncts[i], then any closing quotes
  // or brackets up to ends[i], then whitespace, then (after any opening quotes or brackets) the first character
  // of what follows at firsts[i] (the last opening one when only whitespace follows them). Runs followed by
  // whitespace alone up to the range's end are left out: the range's end closes that sentence.
  // words[i]: where the word that the punctuation ends begins (after whitespace; before start if the word does).
  std::vector<int64_t> words, puncts, ends, firsts;
  // Where a blank line begins: a line break, spaces or tabs, a line break.
  std::vector<int64_t> paragraphs;
};

// The marks of text[start, stop) (code point indices, as Python str indices), found as Python's re.finditer
// finds them with the patterns of rapidrag.sentences; whitespace is what str.isspace() says it is.
SentenceMarks sentence_marks(const TextRef& text, size_t start, size_t stop);

}  // namespace rapidrag
