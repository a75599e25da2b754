#include "rapidrag/normalize.hpp"

#include <algorithm>
#include <cstdint>

#include "rapidrag/unicode.hpp"

namespace rapidrag {

size_t utf8_encode(char32_t c, uint8_t* buf) {
  if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;  // a lone surrogate cannot be UTF-8: U+FFFD, as Python's replace
  if (c < 0x80) {
    buf[0] = static_cast<uint8_t>(c);
    return 1;
  }
  if (c < 0x800) {
    buf[0] = static_cast<uint8_t>(0xC0 | (c >> 6));
    buf[1] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    buf[0] = static_cast<uint8_t>(0xE0 | (c >> 12));
    buf[1] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
    buf[2] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    return 3;
  }
  buf[0] = static_cast<uint8_t>(0xF0 | (c >> 18));
  buf[1] = static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F));
  buf[2] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
  buf[3] = static_cast<uint8_t>(0x80 | (c & 0x3F));
  return 4;
}

void utf8_append(char32_t c, Span owner, std::vector<uint8_t>& bytes, std::vector<Span>& owners) {
  if (c < 0x80) {  // the hot path: a range insert per byte cost BPE a third of its speed
    bytes.push_back(static_cast<uint8_t>(c));
    owners.push_back(owner);
    return;
  }
  uint8_t buf[4];
  const size_t len = utf8_encode(c, buf);
  for (size_t k = 0; k < len; ++k) {
    bytes.push_back(buf[k]);
    owners.push_back(owner);
  }
}

void nfc(const char32_t* cps, const Span* spans, size_t n, std::vector<char32_t>& out, std::vector<Span>& out_spans,
         NfcScratch& scratch, bool compat) {
  auto& ccc = scratch.ccc;
  auto& change = scratch.change;
  out.clear();
  ccc.clear();
  change.clear();
  auto push = [&](char32_t c, uint8_t cc, int32_t ch) {
    out.push_back(c);
    ccc.push_back(cc);
    change.push_back(ch);
  };
  for (size_t i = 0; i < n; ++i) {  // decompose
    const char32_t c = cps[i];
    char32_t hangul[3];
    if (unicode::is_hangul_syllable(c)) {
      const int k = unicode::decompose_hangul(c, hangul);
      for (int j = 0; j < k; ++j) push(hangul[j], 0, j > 0 ? 1 : 0);
      continue;
    }
    const auto& rec = unicode::record(c);
    const uint16_t off = compat ? rec.compat_off : rec.decomp_off;
    const size_t len = compat ? rec.compat_len : rec.decomp_len;
    if (off == unicode::kSelf) {
      push(c, rec.ccc, 0);
      continue;
    }
    for (size_t j = 0; j < len; ++j) {
      const char32_t d = unicode::pool()[off + j];
      push(d, unicode::record(d).ccc, j > 0 ? 1 : 0);
    }
  }
  for (size_t i = 1; i < out.size(); ++i) {  // canonical order: marks sorted by class, stably
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(out[j], out[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
      std::swap(change[j], change[j - 1]);
    }
  }
  size_t kept = 0;
  size_t starter = SIZE_MAX;
  for (size_t i = 0; i < out.size(); ++i) {  // compose, in place
    const char32_t c = out[i];
    const uint8_t cc = ccc[i];
    if (starter != SIZE_MAX) {
      const bool adjacent = kept == starter + 1;
      const uint8_t last = ccc[kept - 1];
      const bool blocked = !adjacent && (last == 0 || last >= cc);
      const char32_t composite = blocked ? 0 : unicode::compose(out[starter], c);
      if (composite != 0) {
        out[starter] = composite;
        change[starter] += change[i] - 1;
        continue;
      }
    }
    out[kept] = c;
    ccc[kept] = cc;
    change[kept] = change[i];
    if (cc == 0) starter = kept;
    ++kept;
  }
  out.resize(kept);
  change.resize(kept);
  align(spans, n, change, out_spans);
}

void align(const Span* spans, size_t n, const std::vector<int32_t>& change, std::vector<Span>& out_spans,
           size_t removed_first) {
  out_spans.resize(change.size());
  if (n == 0) {
    std::fill(out_spans.begin(), out_spans.end(), Span{0, 0});
    return;
  }
  size_t next = removed_first;  // the next input character
  for (size_t k = 0; k < change.size(); ++k) {
    if (change[k] > 0) {
      out_spans[k] = spans[next > 0 ? std::min(next, n) - 1 : 0];
    } else {
      out_spans[k] = spans[std::min(next, n - 1)];
      next += 1 + static_cast<size_t>(-change[k]);
    }
  }
}

namespace {

// A darts-clone unit: a node's label, its children's offset, whether a key ends there, and a leaf's value.
inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
inline uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
inline bool unit_has_leaf(uint32_t u) { return ((u >> 8) & 1u) == 1u; }
inline uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1u); }

// Appends `replacement` (UTF-8) for `replaced` characters as the reference's Precompiled does: each new
// character a change of 0; then the last `diff` of them marked as inserted when it is longer, or the last
// character written so far absorbing the removed ones when it is shorter.
void replace_chars(const char* replacement, size_t len, size_t replaced, std::vector<char32_t>& out,
                   std::vector<int32_t>& change, size_t& removed_first) {
  thread_local std::vector<char32_t> decoded;
  decoded.resize(len);
  size_t count = 0;
  unicode::decode_utf8(replacement, len, decoded.data(), &count);
  for (size_t k = 0; k < count; ++k) {
    out.push_back(decoded[k]);
    change.push_back(0);
  }
  const auto diff = static_cast<int64_t>(count) - static_cast<int64_t>(replaced);
  if (diff > 0) {
    for (size_t k = 0; k < static_cast<size_t>(diff); ++k) change[change.size() - 1 - k] = 1;
  } else if (diff < 0 && !change.empty()) {
    change.back() += static_cast<int32_t>(diff);
  } else if (diff < 0) {
    // Characters removed before any is written: the reference records nothing here, so its later spans lag
    // behind the text by as many characters (its offsets point before the tokens' text). rapidrag skips them,
    // and its spans are where the text is.
    removed_first += static_cast<size_t>(-diff);
  }
}

// The Precompiled step: the character map applied to each grapheme cluster shorter than 6 bytes as a whole (its
// shortest mapped prefix replacing all of it, as the reference does), else to each of its characters. Returns
// how many characters were removed before the first one written.
// (The number of characters removed before the first one written, or -1 when the map changed nothing.)
int64_t precompiled(const CharsMap& map, const char32_t* cps, size_t n, std::vector<char32_t>& out,
                    std::vector<int32_t>& change) {
  out.clear();
  change.clear();
  size_t removed_first = 0;
  bool modified = false;
  uint8_t buf[64];
  const char* rep = nullptr;
  size_t rep_len = 0;
  size_t i = 0;
  while (i < n) {
    const char32_t c = cps[i];
    // An ASCII character before another (or at the end) is a grapheme of its own, CR before LF excepted.
    if (c < 0x80 && c != U'\r' && (i + 1 == n || cps[i + 1] < 0x80)) {
      if (map.ascii(static_cast<uint8_t>(c), &rep, &rep_len)) {
        replace_chars(rep, rep_len, 1, out, change, removed_first);
        modified = true;
      } else {
        out.push_back(c);
        change.push_back(0);
      }
      ++i;
      continue;
    }
    const size_t end = unicode::grapheme_end(cps, n, i);
    size_t len = 0;
    for (size_t k = i; k < end && len < 6; ++k) len += utf8_encode(cps[k], buf + len);
    if (len < 6 && map.shortest(buf, len, &rep, &rep_len)) {
      replace_chars(rep, rep_len, end - i, out, change, removed_first);
      modified = true;
      i = end;
      continue;
    }
    for (; i < end; ++i) {
      const size_t clen = utf8_encode(cps[i], buf);
      if (map.shortest(buf, clen, &rep, &rep_len)) {
        replace_chars(rep, rep_len, 1, out, change, removed_first);
        modified = true;
      } else {
        out.push_back(cps[i]);
        change.push_back(0);
      }
    }
  }
  return modified ? static_cast<int64_t>(removed_first) : -1;
}

// Runs to replace: [begin, end) ranges of literal matches (non-overlapping, left to right) or of runs of one
// character at least min_run long.
template <class F>
void for_each_match(const NormalizerStep& step, const char32_t* cps, size_t n, F&& f) {
  if (step.kind == NormalizerStep::Kind::kReplaceRun) {
    const char32_t c = step.pattern[0];
    for (size_t i = 0; i < n;) {
      if (cps[i] != c) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < n && cps[j] == c) ++j;
      if (j - i >= step.min_run) f(i, j);
      i = j;
    }
    return;
  }
  const size_t m = step.pattern.size();
  for (size_t i = 0; m > 0 && i + m <= n;) {
    if (std::equal(step.pattern.begin(), step.pattern.end(), cps + i)) {
      f(i, i + m);
      i += m;
    } else {
      ++i;
    }
  }
}

}  // namespace

CharsMap::CharsMap(const std::string& blob) {
  if (blob.size() < 4) throw InvalidArgument("the precompiled character map is shorter than its 4-byte header");
  const auto* b = reinterpret_cast<const uint8_t*>(blob.data());
  const uint32_t trie_bytes = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  if (trie_bytes % 4 != 0 || trie_bytes == 0 || 4 + static_cast<size_t>(trie_bytes) > blob.size()) {
    throw InvalidArgument("the precompiled character map's trie size (" + std::to_string(trie_bytes) +
                          " bytes) does not fit its " + std::to_string(blob.size()) + " bytes");
  }
  units_.resize(trie_bytes / 4);
  for (size_t k = 0; k < units_.size(); ++k) {
    const uint8_t* u = b + 4 + 4 * k;
    units_[k] = u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<uint32_t>(u[3]) << 24);
  }
  replacements_ = blob.substr(4 + trie_bytes);
  for (int c = 0; c < 128; ++c) {
    const uint8_t b = static_cast<uint8_t>(c);
    const char* rep = nullptr;
    size_t len = 0;
    ascii_[c] = shortest(&b, 1, &rep, &len) ? std::make_pair(static_cast<int32_t>(rep - replacements_.data()),
                                                             static_cast<int32_t>(len))
                                            : std::make_pair(-1, 0);
  }
}

bool CharsMap::shortest(const uint8_t* bytes, size_t n, const char** out, size_t* out_len) const {
  size_t pos = unit_offset(units_[0]);
  for (size_t i = 0; i < n; ++i) {
    pos ^= bytes[i];
    if (pos >= units_.size()) return false;
    const uint32_t u = units_[pos];
    if (unit_label(u) != bytes[i]) return false;
    pos ^= unit_offset(u);
    if (pos >= units_.size()) return false;
    if (unit_has_leaf(u)) {
      const size_t at = unit_value(units_[pos]);
      if (at > replacements_.size()) return false;
      const size_t stop = replacements_.find('\0', at);
      *out = replacements_.data() + at;
      *out_len = (stop == std::string::npos ? replacements_.size() : stop) - at;
      return true;
    }
  }
  return false;
}

void Normalizer::apply(std::vector<char32_t>& cps, std::vector<Span>& spans, NormalizeScratch& s) const {
  using Kind = NormalizerStep::Kind;
  for (const NormalizerStep& step : steps_) {
    const size_t n = cps.size();
    if (n == 0) return;
    s.out.clear();
    s.out_spans.clear();
    switch (step.kind) {
      case Kind::kNfc:
        if (std::none_of(cps.begin(), cps.end(), [](char32_t c) { return c >= 0x300; })) continue;
        nfc(cps.data(), spans.data(), n, s.out, s.out_spans, s.nfc);
        break;
      case Kind::kNfkc:  // below U+00A0 nothing has a compatibility decomposition
        if (std::none_of(cps.begin(), cps.end(), [](char32_t c) { return c >= 0xA0; })) continue;
        nfc(cps.data(), spans.data(), n, s.out, s.out_spans, s.nfc, true);
        break;
      case Kind::kLowercase: {
        s.change.clear();
        const char32_t* pool = unicode::pool();
        for (size_t i = 0; i < n; ++i) {
          const auto& r = unicode::record(cps[i]);
          if (r.lower_off == unicode::kSelf) {
            s.out.push_back(cps[i]);
            s.change.push_back(0);
            continue;
          }
          for (size_t k = 0; k < r.lower_len; ++k) {
            s.out.push_back(pool[r.lower_off + k]);
            s.change.push_back(k > 0 ? 1 : 0);
          }
        }
        align(spans.data(), n, s.change, s.out_spans);
        break;
      }
      case Kind::kStrip: {
        auto space = [](char32_t c) { return (unicode::classes(c) & unicode::kWhiteSpace) != 0; };
        size_t begin = 0, end = n;
        if (step.left) {
          while (begin < end && space(cps[begin])) ++begin;
        }
        if (step.right) {
          while (end > begin && space(cps[end - 1])) --end;
        }
        if (begin == 0 && end == n) continue;
        s.out.assign(cps.begin() + static_cast<std::ptrdiff_t>(begin), cps.begin() + static_cast<std::ptrdiff_t>(end));
        s.out_spans.assign(spans.begin() + static_cast<std::ptrdiff_t>(begin),
                           spans.begin() + static_cast<std::ptrdiff_t>(end));
        break;
      }
      case Kind::kReplace:
      case Kind::kReplaceRun: {
        // The replacement's characters all stand where the last replaced character does.
        size_t kept = 0;
        for_each_match(step, cps.data(), n, [&](size_t begin, size_t end) {
          s.out.insert(s.out.end(), cps.begin() + static_cast<std::ptrdiff_t>(kept),
                       cps.begin() + static_cast<std::ptrdiff_t>(begin));
          s.out_spans.insert(s.out_spans.end(), spans.begin() + static_cast<std::ptrdiff_t>(kept),
                             spans.begin() + static_cast<std::ptrdiff_t>(begin));
          for (char32_t c : step.content) {
            s.out.push_back(c);
            s.out_spans.push_back(spans[end - 1]);
          }
          kept = end;
        });
        if (kept == 0 && s.out.empty()) continue;
        s.out.insert(s.out.end(), cps.begin() + static_cast<std::ptrdiff_t>(kept), cps.end());
        s.out_spans.insert(s.out_spans.end(), spans.begin() + static_cast<std::ptrdiff_t>(kept), spans.end());
        break;
      }
      case Kind::kPrepend:
        s.out.assign(step.content.begin(), step.content.end());
        s.out_spans.assign(step.content.size(), spans[0]);
        s.out.insert(s.out.end(), cps.begin(), cps.end());
        s.out_spans.insert(s.out_spans.end(), spans.begin(), spans.end());
        break;
      case Kind::kPrecompiled: {
        const int64_t removed_first = precompiled(*step.charsmap, cps.data(), n, s.out, s.change);
        if (removed_first < 0) continue;  // nothing mapped
        align(spans.data(), n, s.change, s.out_spans, static_cast<size_t>(removed_first));
        break;
      }
    }
    cps.swap(s.out);
    spans.swap(s.out_spans);
  }
}

}  // namespace rapidrag
