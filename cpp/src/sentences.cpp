#include "rapidrag/sentences.hpp"

#include "rapidrag/unicode.hpp"

namespace rapidrag {
namespace {

inline bool terminal(char32_t c) { return c == '.' || c == '!' || c == '?' || c == 0x2026; }
inline bool closing(char32_t c) { return c == '"' || c == '\'' || c == 0x2019 || c == 0x201D || c == ')' || c == ']'; }
inline bool opening(char32_t c) { return c == '"' || c == '\'' || c == 0x2018 || c == 0x201C || c == '(' || c == '['; }
inline bool space(char32_t c) { return (unicode::record(c).flags & unicode::kPySpace) != 0; }

}  // namespace

SentenceMarks sentence_marks(const TextRef& text, size_t start, size_t stop) {
  SentenceMarks out;
  if (stop > text.length) stop = text.length;
  visit_text(text, [&](const auto* p) {
    auto at = [&](size_t i) { return static_cast<char32_t>(p[i]); };
    size_t i = start;
    while (i < stop) {
      if (!terminal(at(i))) {
        ++i;
        continue;
      }
      size_t run = i;
      while (run < stop && terminal(at(run))) ++run;
      size_t end = run;
      while (end < stop && closing(at(end))) ++end;
      if (end >= stop || !space(at(end))) {
        i = run;  // no end here, nor anywhere later in the run (the same follows it); closers start none
        continue;
      }
      size_t word = end;
      while (word < stop && space(at(word))) ++word;
      size_t first = word;
      while (first < stop && opening(at(first))) ++first;
      if (first >= stop || space(at(first))) {
        if (first == word) {  // only whitespace follows: the range's end closes the sentence
          i = end;
          continue;
        }
        --first;  // only opening quotes or brackets follow: the last of them is what follows
      }
      size_t begin = i;  // the word the punctuation ends: back to whitespace (past the range's start, if need be)
      while (begin > 0 && !space(at(begin - 1))) --begin;
      out.words.push_back(static_cast<int64_t>(begin));
      out.puncts.push_back(static_cast<int64_t>(i));
      out.ends.push_back(static_cast<int64_t>(end));
      out.firsts.push_back(static_cast<int64_t>(first));
      i = end;
    }
    i = start;
    while (i < stop) {
      if (at(i) == '\n') {
        size_t j = i + 1;
        while (j < stop && (at(j) == ' ' || at(j) == '\t')) ++j;
        if (j < stop && at(j) == '\n') {
          out.paragraphs.push_back(static_cast<int64_t>(i));
          i = j + 1;
          continue;
        }
      }
      ++i;
    }
  });
  return out;
}

}  // namespace rapidrag
