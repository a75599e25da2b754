// Words for the BM25 analyzer: lowercased runs of word characters (Python's regex \w+ over str.lower()), and a
// growing dictionary that gives each distinct word an id, so that Python stems and stopword-checks each distinct
// word once instead of every running word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "rapidrag/text.hpp"

namespace rapidrag {

// The words of one text as UTF-8 strings. Lowercasing uses the core's per-character tables: the mapping of
// Python's str.lower() except where the reference tokenizer differs (4 letters added in Unicode 14, which its
// newer tables lowercase). Capital sigma becomes final sigma at the end of a word; Python's full rule also looks
// through case-ignorable characters around it, which this does not.
std::vector<std::string> split_words(const TextRef& text);

// For each word of the text (as split_words finds them) that begins with one of the terms (UTF-8, lowercase), the
// code point where the word begins (appended to starts) and the longest such term (its index, to term_ids).
void word_prefixes(const TextRef& text, const std::vector<std::string>& terms, std::vector<int64_t>& starts,
                   std::vector<int64_t>& term_ids);

class WordDictionary {
 public:
  // Appends each text's word ids to ids and the running count to row_splits (row_splits starts with 0 and gets
  // one entry per text). Words not seen before get the next ids. One call at a time changes the dictionary
  // (a mutex); reads through word() are safe while no call runs.
  void add_batch(const std::vector<TextRef>& texts, std::vector<int64_t>& ids, std::vector<int64_t>& row_splits);

  size_t size() const { return words_.size(); }
  const std::string& word(size_t id) const { return words_.at(id); }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, int64_t> index_;
  std::vector<std::string> words_;
};

}  // namespace rapidrag
