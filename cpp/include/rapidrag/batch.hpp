// Batches for model inputs: encode many texts in parallel, then lay rows out with special tokens,
// truncation and padding into caller-allocated [n, width] arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rapidrag/text.hpp"
#include "rapidrag/encoder.hpp"

namespace rapidrag {

struct SpecialIds {
  int32_t cls = -1;
  int32_t sep = -1;
  int32_t pad = 0;
};

// How many tokens of each sequence a row keeps.
struct RowPlan {
  size_t first = 0;
  size_t second = 0;
};

// Tokens of many texts, kept in blocks of consecutive texts: one set of buffers per block, not per text.
class EncodedTexts {
 public:
  size_t size() const { return where_.size(); }
  size_t length(size_t i) const { return where_[i].length; }
  const int32_t* ids(size_t i) const { return block(i).ids.data() + where_[i].begin; }
  const uint32_t* starts(size_t i) const { return block(i).starts.data() + where_[i].begin; }
  const uint32_t* ends(size_t i) const { return block(i).ends.data() + where_[i].begin; }

 private:
  friend EncodedTexts encode_all(const TextEncoder&, const std::vector<TextRef>&, size_t);
  struct Where {
    size_t block;
    size_t begin;
    size_t length;
  };
  const Encoding& block(size_t i) const { return blocks_[where_[i].block]; }
  std::vector<Encoding> blocks_;
  std::vector<Where> where_;
};

// Caller-owned outputs of fill_rows; offsets, attention_mask and token_type_ids may be null. Padded layout: rows of `width` tokens
// ([n, width], offsets [n, width, 2]). Flat layout when row_starts is given: row i at row_starts[i], unpadded.
struct BatchArrays {
  int64_t* input_ids;
  int64_t* attention_mask;
  int64_t* token_type_ids;
  int64_t* offsets;
  int64_t* lengths;
  size_t width;
  const int64_t* row_starts = nullptr;
};

EncodedTexts encode_all(const TextEncoder& tokenizer, const std::vector<TextRef>& texts, size_t n_threads);

// Encodes one long text on several threads: it is cut at ASCII whitespace into segments encoded in parallel,
// which gives the same tokens, since no word, combining sequence or special token spans whitespace. Short
// texts, one thread, or special tokens that contain whitespace: a plain encode.
void encode_long(const TextEncoder& tokenizer, const TextRef& text, size_t n_threads, Encoding& out);
std::vector<size_t> count_all(const TextEncoder& tokenizer, const std::vector<TextRef>& texts, size_t n_threads);

// Single sequences: [CLS] text [SEP]; truncation keeps the first max_length tokens in all (0 = no limit).
RowPlan plan_single(size_t length, size_t max_length, bool truncation, bool add_special_tokens);
// Pairs: [CLS] first [SEP] second [SEP]; only the second is truncated, unless the first alone leaves
// no room for one token of the second, in which case the first is cut to max_length - 4.
RowPlan plan_pair(size_t first, size_t second, size_t max_length);
size_t row_width(const RowPlan& plan, bool pair, bool add_special_tokens);

// Rows i of the outputs from firsts[i] (and seconds[i], or seconds[0] broadcast, or none).
void fill_rows(const EncodedTexts& firsts, const EncodedTexts* seconds, bool broadcast_first,
               const std::vector<RowPlan>& plans, const SpecialIds& special, bool add_special_tokens,
               const BatchArrays& out, size_t n_threads);

}  // namespace rapidrag
