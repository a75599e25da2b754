// Token-aware chunker: splits text into chunks of at most max_tokens tokens of any of the core's tokenizers at the
// best boundary (blank line, line break, sentence end, whitespace; inside a word only when the word alone is too
// long).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "rapidrag/text.hpp"
#include "rapidrag/encoder.hpp"

namespace rapidrag {

struct ChunkSpan {
  uint32_t start;     // code point offsets into the text
  uint32_t end;
  uint32_t n_tokens;  // tokens of text[start:end], special tokens not counted
};

class Chunker {
 public:
  Chunker(std::shared_ptr<const TextEncoder> tokenizer, size_t max_tokens, size_t overlap);

  std::vector<ChunkSpan> split(const TextRef& text) const;

  size_t max_tokens() const { return max_tokens_; }
  size_t overlap() const { return overlap_; }
  const std::shared_ptr<const TextEncoder>& tokenizer() const { return tokenizer_; }

 private:
  template <class CharT>
  std::vector<ChunkSpan> split_impl(const CharT* text, const TextRef& ref) const;

  std::shared_ptr<const TextEncoder> tokenizer_;
  // WordPiece: a chunk cut at a word boundary has the document's tokens, so its count is known without encoding
  // it again; other models fold the space before a word into its token, so every chunk is counted again.
  bool additive_ = false;
  bool clean_text_ = false;  // WordPiece's text cleaning: which characters it drops instead of reading as spaces
  size_t max_tokens_;
  size_t overlap_;
};

}  // namespace rapidrag
