// SentencePiece Unigram (XLM-RoBERTa, multilingual-e5, bge-m3 and the like): the Metaspace pre-tokenizer and the
// Viterbi segmentation of the reference (Hugging Face tokenizers), with its unknown-token fusion and byte fallback,
// giving the same ids and offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rapidrag/double_array.hpp"
#include "rapidrag/encoder.hpp"
#include "rapidrag/normalize.hpp"
#include "rapidrag/text.hpp"

namespace rapidrag {

struct UnigramOptions {
  Normalizer normalizer;  // applied to each part between special tokens, before pre-tokenization
  Metaspace metaspace;         // the pre-tokenizer
  bool byte_fallback = false;  // an unknown run becomes <0xXX> tokens when the vocabulary has them
  // Tokens matched verbatim in the raw text (the special tokens).
  std::vector<std::string> special_tokens;
};

class Unigram : public TextEncoder {
 public:
  // vocab[i] = (piece, log probability) of token id i; unk_id: the unknown token (-1: none).
  Unigram(const std::vector<std::pair<std::string, double>>& vocab, int32_t unk_id, UnigramOptions options);

  void encode(const TextRef& text, Encoding& out) const override;
  int32_t token_to_id(const std::string& token) const override;
  const std::string& id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return pieces_.size(); }

 private:
  struct Scratch;
  void encode_segment(const char32_t* cps, const Span* owners, size_t n, bool text_start, Encoding& out,
                      Scratch& scratch) const;
  void encode_piece(const uint8_t* bytes, const Span* owners, size_t n, Encoding& out, Scratch& scratch) const;

  UnigramOptions options_;
  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  std::unordered_map<std::string, int32_t> token_ids_;
  DoubleArray trie_;
  int32_t unk_id_ = -1;
  double unk_score_ = 0.0;
  int32_t byte_ids_[256];  // <0xXX> tokens for byte fallback, -1 where absent
  SpecialTokens specials_;
};

}  // namespace rapidrag
