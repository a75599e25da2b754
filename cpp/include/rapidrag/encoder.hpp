// What every tokenizer model of the core gives the batch layer: the tokens of one text with their offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "rapidrag/text.hpp"

namespace rapidrag {

// A user error in the arguments (bad vocabulary, bad option); bindings map it to ValueError.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Tokens of one text, without the special tokens around it.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<uint32_t> starts;  // code point offsets into the text
  std::vector<uint32_t> ends;
  std::vector<uint8_t> word_starts;  // 1 where a token begins a pre-tokenized word; only if track_words
  bool track_words = false;

  size_t size() const { return ids.size(); }
  void clear() {
    ids.clear();
    starts.clear();
    ends.clear();
    word_starts.clear();
  }
};

// A tokenizer model: normalization, pre-tokenization and the subword model, as one const, thread-safe object.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // Appends the tokens of `text` to `out`.
  virtual void encode(const TextRef& text, Encoding& out) const = 0;
  // Number of tokens encode() would produce.
  virtual size_t count(const TextRef& text) const {
    Encoding enc;
    encode(text, enc);
    return enc.size();
  }
  // True when cutting a text at ASCII whitespace and encoding the parts gives the same tokens (no token, word
  // or special token spans whitespace), so that a long text may be encoded on several threads.
  virtual bool splits_at_whitespace() const { return false; }
  virtual int32_t token_to_id(const std::string& token) const = 0;  // -1 when absent
  virtual const std::string& id_to_token(int32_t id) const = 0;
  virtual size_t vocab_size() const = 0;
};

}  // namespace rapidrag
