// BERT WordPiece tokenizer: BERT normalization, pre-tokenization and greedy longest-match-first WordPiece,
// giving the same ids and offsets as the reference (Hugging Face tokenizers) implementation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "rapidrag/double_array.hpp"
#include "rapidrag/encoder.hpp"
#include "rapidrag/text.hpp"

namespace rapidrag {

struct WordPieceOptions {
  bool lowercase = true;
  bool strip_accents = true;  // BERT's default: follow lowercase
  bool handle_chinese_chars = true;
  bool clean_text = true;
  size_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  // Tokens matched verbatim in the raw text before normalization (the special tokens).
  std::vector<std::string> special_tokens;
};

struct Piece;  // a matched word piece, internal to the implementation

class WordPiece : public TextEncoder {
 public:
  // vocab[i] is the UTF-8 text of token id i.
  WordPiece(const std::vector<std::string>& vocab, WordPieceOptions options);

  // Appends the tokens of `text` to `out`. Thread-safe (const, no shared mutable state).
  void encode(const TextRef& text, Encoding& out) const override;
  // Number of tokens encode() would produce, without storing them.
  size_t count(const TextRef& text) const override;
  bool splits_at_whitespace() const override;

  int32_t token_to_id(const std::string& token) const override;  // -1 when absent
  const std::string& id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  int32_t unk_id() const { return unk_id_; }
  const WordPieceOptions& options() const { return options_; }

 private:
  template <class Sink, class CharT>
  void run(const CharT* text, size_t n, Sink& sink) const;
  template <class Sink>
  void emit_word(const char32_t* chars, const uint32_t* src, size_t n, Sink& sink, std::vector<Piece>& pieces) const;

  WordPieceOptions options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> token_ids_;
  int32_t unk_id_ = -1;
  DoubleArray word_trie_;    // every token, for the first piece of a word
  DoubleArray suffix_trie_;  // tokens with the continuation prefix, prefix removed, for the later pieces
  enum : uint8_t { kAsciiWord, kAsciiSpace, kAsciiPunct, kAsciiDrop };
  uint8_t ascii_[128] = {};  // what each ASCII character is, under these options

  std::vector<std::u32string> specials_;
  std::vector<int32_t> special_ids_;
  bool special_first_[128] = {};  // ASCII first characters of special tokens
  bool special_first_non_ascii_ = false;
};

}  // namespace rapidrag
