#include "rapidrag/batch.hpp"

#include <algorithm>

#include "rapidrag/parallel.hpp"

namespace rapidrag {
namespace {
// Texts per scheduling block: large enough to amortise the atomic, small enough to balance long documents.
constexpr size_t kGrain = 16;
}  // namespace

EncodedTexts encode_all(const TextEncoder& tokenizer, const std::vector<TextRef>& texts, size_t n_threads) {
  EncodedTexts out;
  const size_t n = texts.size();
  out.blocks_.resize((n + kGrain - 1) / kGrain);
  out.where_.resize(n);
  parallel_for(out.blocks_.size(), n_threads, 1, [&](size_t b) {
    Encoding& block = out.blocks_[b];
    for (size_t i = b * kGrain; i < std::min(n, (b + 1) * kGrain); ++i) {
      const size_t begin = block.size();
      tokenizer.encode(texts[i], block);
      out.where_[i] = {b, begin, block.size() - begin};
    }
  });
  return out;
}

void encode_long(const TextEncoder& tokenizer, const TextRef& text, size_t n_threads, Encoding& out) {
  constexpr size_t kMinSegment = 1 << 18;  // code points; below this, threads cost more than they save
  const size_t n = text.length;
  if (n < 2 * kMinSegment || n_threads == 1) {  // the common case, decided before anything costs
    tokenizer.encode(text, out);
    return;
  }
  const size_t threads = resolve_threads(n_threads);
  if (threads <= 1 || !tokenizer.splits_at_whitespace()) {
    tokenizer.encode(text, out);
    return;
  }
  const size_t n_segments = std::min(threads * 4, n / kMinSegment);
  std::vector<size_t> cuts{0};
  visit_text(text, [&](const auto* p) {
    for (size_t k = 1; k < n_segments; ++k) {
      size_t i = std::max(cuts.back() + 1, n * k / n_segments);
      while (i < n && p[i] != ' ' && p[i] != '\n' && p[i] != '\t' && p[i] != '\r') ++i;
      if (i >= n) break;
      cuts.push_back(i);
    }
  });
  cuts.push_back(n);
  std::vector<Encoding> parts(cuts.size() - 1);
  for (auto& part : parts) part.track_words = out.track_words;
  parallel_for(parts.size(), threads, 1, [&](size_t k) { tokenizer.encode(text.slice(cuts[k], cuts[k + 1]), parts[k]); });
  size_t total = out.size();
  for (const auto& part : parts) total += part.size();
  out.ids.reserve(total);
  out.starts.reserve(total);
  out.ends.reserve(total);
  for (size_t k = 0; k < parts.size(); ++k) {
    const auto shift = static_cast<uint32_t>(cuts[k]);
    const Encoding& part = parts[k];
    out.ids.insert(out.ids.end(), part.ids.begin(), part.ids.end());
    for (uint32_t v : part.starts) out.starts.push_back(v + shift);
    for (uint32_t v : part.ends) out.ends.push_back(v + shift);
    if (out.track_words) out.word_starts.insert(out.word_starts.end(), part.word_starts.begin(), part.word_starts.end());
  }
}

std::vector<size_t> count_all(const TextEncoder& tokenizer, const std::vector<TextRef>& texts, size_t n_threads) {
  std::vector<size_t> out(texts.size());
  parallel_for(texts.size(), n_threads, kGrain, [&](size_t i) { out[i] = tokenizer.count(texts[i]); });
  return out;
}

Layout Layout::bert(int32_t cls, int32_t sep, int32_t pad) {
  Layout l;
  l.single_prefix = {{cls, 0}};
  l.single_suffix = {{sep, 0}};
  l.pair_prefix = {{cls, 0}};
  l.pair_middle = {{sep, 0}};
  l.pair_suffix = {{sep, 1}};
  l.pad = pad;
  return l;
}

RowPlan plan_single(size_t length, size_t max_length, bool truncation, size_t extra) {
  if (truncation && max_length > 0 && length + extra > max_length) {
    return {max_length > extra ? max_length - extra : 0, 0};
  }
  return {length, 0};
}

RowPlan plan_pair(size_t first, size_t second, size_t max_length, size_t extra) {
  if (max_length == 0 || first + second + extra <= max_length) return {first, second};
  const size_t room = max_length > extra ? max_length - extra : 0;
  const size_t keep_first = std::min(first, second > 0 && room > 0 ? room - 1 : room);
  return {keep_first, std::min(second, room - keep_first)};
}

void fill_rows(const EncodedTexts& firsts, const EncodedTexts* seconds, bool broadcast_first,
               const std::vector<RowPlan>& plans, const Layout& layout, bool add_special_tokens,
               const BatchArrays& out, size_t n_threads) {
  const size_t width = out.width;
  parallel_for(plans.size(), n_threads, 64, [&](size_t i) {
    const size_t a = broadcast_first ? 0 : i;
    const RowPlan& plan = plans[i];
    const size_t base = out.row_starts ? static_cast<size_t>(out.row_starts[i]) : i * width;
    int64_t* ids = out.input_ids + base;
    int64_t* mask = out.attention_mask ? out.attention_mask + base : nullptr;
    int64_t* types = out.token_type_ids ? out.token_type_ids + base : nullptr;
    int64_t* offs = out.offsets ? out.offsets + base * 2 : nullptr;
    size_t k = 0;
    auto put = [&](int32_t id, int64_t type, int64_t start, int64_t end) {
      ids[k] = id;
      if (mask) mask[k] = 1;
      if (types) types[k] = type;
      if (offs) {
        offs[2 * k] = start;
        offs[2 * k + 1] = end;
      }
      ++k;
    };
    auto put_specials = [&](const std::vector<Special>& specials) {
      for (const Special& sp : specials) put(sp.id, sp.type, 0, 0);
    };
    auto put_sequence = [&](const EncodedTexts& e, size_t row, size_t keep, int64_t type) {
      const int32_t* tid = e.ids(row);
      const uint32_t* ts = e.starts(row);
      const uint32_t* te = e.ends(row);
      for (size_t t = 0; t < keep; ++t) put(tid[t], type, ts[t], te[t]);
    };
    if (seconds) {
      put_specials(layout.pair_prefix);
      put_sequence(firsts, a, plan.first, layout.type_a);
      put_specials(layout.pair_middle);
      put_sequence(*seconds, i, plan.second, layout.type_b);
      put_specials(layout.pair_suffix);
    } else {
      if (add_special_tokens) put_specials(layout.single_prefix);
      put_sequence(firsts, a, plan.first, layout.type_a);
      if (add_special_tokens) put_specials(layout.single_suffix);
    }
    out.lengths[i] = static_cast<int64_t>(k);
    if (out.row_starts) return;
    for (; k < width; ++k) {
      ids[k] = layout.pad;
      if (mask) mask[k] = 0;
      if (types) types[k] = 0;
      if (offs) offs[2 * k] = offs[2 * k + 1] = 0;
    }
  });
}

}  // namespace rapidrag
