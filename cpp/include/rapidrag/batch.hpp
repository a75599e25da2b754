// Batches for model inputs: encode many texts in parallel, then lay rows out with special tokens,
// truncation and padding into caller-allocated [n, width] arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "rapidrag/text.hpp"
#include "rapidrag/encoder.hpp"

namespace rapidrag {

// A special token of a layout and its token type.
struct Special {
  int32_t id;
  int32_t type;
};

// Where special tokens go around one text (single) or two (pair), and the token types of the texts: the
// post-processor of a tokenizer. BERT: [CLS] A [SEP] and [CLS] A [SEP] B [SEP] with B and its [SEP] of type 1;
// RoBERTa: <s> A </s> and <s> A </s></s> B </s>, all of type 0; a model without special tokens: A alone.
struct Layout {
  std::vector<Special> single_prefix, single_suffix;
  std::vector<Special> pair_prefix, pair_middle, pair_suffix;
  int32_t type_a = 0;
  int32_t type_b = 1;
  int32_t pad = 0;

  size_t single_extra() const { return single_prefix.size() + single_suffix.size(); }
  size_t pair_extra() const { return pair_prefix.size() + pair_middle.size() + pair_suffix.size(); }
  static Layout bert(int32_t cls, int32_t sep, int32_t pad);
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

// Single sequences with `extra` special tokens around them; truncation keeps the first max_length tokens in all
// (0 = no limit).
RowPlan plan_single(size_t length, size_t max_length, bool truncation, size_t extra);
// Pairs with `extra` special tokens: only the second is truncated, unless the first alone leaves no room for
// one token of the second, in which case the first is cut to max_length - extra - 1.
RowPlan plan_pair(size_t first, size_t second, size_t max_length, size_t extra);
inline size_t row_width(const RowPlan& plan, size_t extra) { return plan.first + plan.second + extra; }

// Rows i of the outputs from firsts[i] (and seconds[i], or seconds[0] broadcast, or none), with the layout's
// special tokens (pairs always; single texts when add_special_tokens).
void fill_rows(const EncodedTexts& firsts, const EncodedTexts* seconds, bool broadcast_first,
               const std::vector<RowPlan>& plans, const Layout& layout, bool add_special_tokens,
               const BatchArrays& out, size_t n_threads);

}  // namespace rapidrag
