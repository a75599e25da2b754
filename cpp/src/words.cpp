#include "rapidrag/words.hpp"

#include <algorithm>

#include "rapidrag/unicode.hpp"

namespace rapidrag {
namespace {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Feeds one lowercased code point of the text's code point i: extends the current word (which begins at i if it
// was empty) or ends it.
template <class Emit>
inline void feed(char32_t cp, size_t i, std::string& word, size_t& start, Emit& emit) {
  if (unicode::record(cp).flags & unicode::kWord) {
    if (word.empty()) start = i;
    append_utf8(word, cp);
  } else if (!word.empty()) {
    emit(word, start);
    word.clear();
  }
}

// Calls emit(word, start) for each lowercased word and the code point where it begins in the text.
template <class Emit>
void words_of(const TextRef& text, std::string& word, Emit&& emit) {
  word.clear();
  size_t start = 0;
  const char32_t* pool = unicode::pool();
  visit_text(text, [&](const auto* p) {
    for (size_t i = 0; i < text.length; ++i) {
      const char32_t c = static_cast<char32_t>(p[i]);
      if (c < 0x80) {  // ASCII: A-Z lowercase to a-z, word characters are [0-9A-Za-z_]
        const bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        if (alpha || (c >= '0' && c <= '9') || c == '_') {
          if (word.empty()) start = i;
          word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
        } else if (!word.empty()) {
          emit(word, start);
          word.clear();
        }
        continue;
      }
      if (c == 0x03A3) {  // capital sigma: final form at the end of a word, as str.lower() does
        const bool next_word = i + 1 < text.length &&
                               (unicode::record(static_cast<char32_t>(p[i + 1])).flags & unicode::kWord);
        if (word.empty()) start = i;
        append_utf8(word, !word.empty() && !next_word ? 0x03C2 : 0x03C3);
        continue;
      }
      const unicode::Record& r = unicode::record(c);
      if (r.lower_off == unicode::kSelf) {
        feed(c, i, word, start, emit);
      } else {
        for (int k = 0; k < r.lower_len; ++k) feed(pool[r.lower_off + k], i, word, start, emit);
      }
    }
  });
  if (!word.empty()) emit(word, start);
}

}  // namespace

std::vector<std::string> split_words(const TextRef& text) {
  std::vector<std::string> out;
  std::string word;
  words_of(text, word, [&](const std::string& w, size_t) { out.push_back(w); });
  return out;
}

void word_prefixes(const TextRef& text, const std::vector<std::string>& terms, std::vector<int64_t>& starts,
                   std::vector<int64_t>& term_ids) {
  // The terms by their first byte, longest first: a word is compared with the few that could begin it.
  std::vector<std::vector<size_t>> by_first(256);
  for (size_t t = 0; t < terms.size(); ++t) {
    if (!terms[t].empty()) by_first[static_cast<uint8_t>(terms[t][0])].push_back(t);
  }
  for (auto& bucket : by_first) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](size_t a, size_t b) { return terms[a].size() > terms[b].size(); });
  }
  std::string word;
  words_of(text, word, [&](const std::string& w, size_t start) {
    for (const size_t t : by_first[static_cast<uint8_t>(w[0])]) {
      if (w.compare(0, terms[t].size(), terms[t]) == 0) {
        starts.push_back(static_cast<int64_t>(start));
        term_ids.push_back(static_cast<int64_t>(t));
        return;
      }
    }
  });
}

void WordDictionary::add_batch(const std::vector<TextRef>& texts, std::vector<int64_t>& ids,
                               std::vector<int64_t>& row_splits) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string word;
  if (row_splits.empty()) row_splits.push_back(static_cast<int64_t>(ids.size()));
  for (const TextRef& text : texts) {
    words_of(text, word, [&](const std::string& w, size_t) {
      auto [it, inserted] = index_.try_emplace(w, static_cast<int64_t>(words_.size()));
      if (inserted) words_.push_back(w);
      ids.push_back(it->second);
    });
    row_splits.push_back(static_cast<int64_t>(ids.size()));
  }
}

}  // namespace rapidrag
