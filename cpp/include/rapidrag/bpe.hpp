// BPE: byte-level (GPT-2, RoBERTa, Llama 3, Qwen2: the pre-tokenizer pattern, the byte-to-character mapping) and
// SentencePiece-style (Llama 2, Mistral: characters as symbols, byte fallback, the Metaspace pre-tokenizer or
// none), merges by rank, giving the same ids and offsets as the reference (Hugging Face tokenizers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rapidrag/encoder.hpp"
#include "rapidrag/normalize.hpp"
#include "rapidrag/text.hpp"

namespace rapidrag {

// The pre-tokenizer patterns of byte-level models, matched by hand (no regex engine):
//   kGpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//            \s*[\r\n]+|\s+(?!\S)|\s+   (max_digits 3 is Llama 3's pattern, 1 is Qwen2's)
//   kNone:   the whole text is one piece.
//   kMetaspace: the Metaspace pre-tokenizer (SentencePiece-style models).
enum class SplitPattern : uint8_t { kNone, kGpt2, kLlama3, kMetaspace };

struct BPEOptions {
  Normalizer normalizer;  // applied to each part between special tokens (NFC for Qwen2), before pre-tokenization
  // true: the symbols are bytes in GPT-2's byte-to-character alphabet; false: characters (SentencePiece-style).
  bool byte_level = true;
  SplitPattern pattern = SplitPattern::kGpt2;
  Metaspace metaspace;            // kMetaspace only
  bool byte_fallback = false;     // not byte-level: a character missing from the vocabulary becomes <0xXX> tokens
  bool fuse_unk = false;          // not byte-level: unknown characters in a row become one unknown token
  size_t max_digits = 3;          // kLlama3 only
  bool add_prefix_space = false;  // a space before a text (or a part between special tokens) not starting with one
  bool trim_offsets = false;      // the offsets of a token leave out its leading and trailing spaces
  // ... except one leading space of a text's first token (the post-processor's add_prefix_space, which the
  // reference reads apart from the pre-tokenizer's)
  bool trim_keeps_prefix_space = false;
  bool ignore_merges = false;     // a piece that is a token of the vocabulary is that token (Llama 3)
  std::string unk_token;          // empty: none
  // Tokens matched verbatim in the raw text (the special tokens).
  std::vector<std::string> special_tokens;
};

class BPE : public TextEncoder {
 public:
  // vocab[i] is token id i (in the byte-level alphabet, e.g. "Ġthe", when byte_level); merges are (left, right)
  // pairs by rank.
  BPE(const std::vector<std::string>& vocab, const std::vector<std::pair<std::string, std::string>>& merges,
               BPEOptions options);

  void encode(const TextRef& text, Encoding& out) const override;
  int32_t token_to_id(const std::string& token) const override;
  const std::string& id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  const BPEOptions& options() const { return options_; }

  // The byte-level character of each byte (GPT-2's bytes_to_unicode), as UTF-8.
  static const std::string& byte_char(uint8_t b);

 private:
  struct Scratch;
  void encode_segment(const char32_t* cps, const Span* owners, size_t n, bool text_start, Encoding& out,
                      size_t first, Scratch& scratch) const;
  size_t symbols(const uint8_t* bytes, size_t n, Scratch& scratch) const;
  // Not byte-level: the piece cps[0, n) merged word by word (split before each word mark) when split_words_.
  void encode_words(const char32_t* cps, const Span* owners, size_t n, Encoding& out, size_t first,
                    Scratch& scratch) const;
  void encode_piece(const uint8_t* bytes, const Span* owners, size_t n, Encoding& out, size_t first,
                    Scratch& scratch) const;
  size_t match(const char32_t* c, size_t i, size_t n) const;

  BPEOptions options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<std::string, int32_t> byte_token_ids_;  // tokens as raw bytes, for ignore_merges
  int32_t byte_ids_[256];  // byte-level: each byte's character; else the <0xXX> tokens of byte fallback (-1: none)
  int32_t unk_id_ = -1;
  // (left id << 32 | right id) -> (rank << 32 | merged id)
  std::unordered_map<uint64_t, uint64_t> merges_;
  SpecialTokens specials_;
  bool split_words_ = false;      // not byte-level: each word (from a word mark to the next) merged on its own
  char32_t word_mark_ = U'\u2581';
  uint64_t serial_;  // tells this model's pieces in the per-thread cache from another model's
};

}  // namespace rapidrag
