#include "rapidrag/normalize.hpp"

#include <algorithm>
#include <cstdint>

#include "rapidrag/unicode.hpp"

namespace rapidrag {

void utf8_append(char32_t c, Span owner, std::vector<uint8_t>& bytes, std::vector<Span>& owners) {
  uint8_t buf[4];
  size_t len = 0;
  if (c < 0x80) {
    buf[len++] = static_cast<uint8_t>(c);
  } else if (c < 0x800) {
    buf[len++] = static_cast<uint8_t>(0xC0 | (c >> 6));
    buf[len++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;  // a lone surrogate cannot be UTF-8: U+FFFD, as Python's replace
    buf[len++] = static_cast<uint8_t>(0xE0 | (c >> 12));
    buf[len++] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
    buf[len++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
  } else {
    buf[len++] = static_cast<uint8_t>(0xF0 | (c >> 18));
    buf[len++] = static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F));
    buf[len++] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
    buf[len++] = static_cast<uint8_t>(0x80 | (c & 0x3F));
  }
  for (size_t k = 0; k < len; ++k) {
    bytes.push_back(buf[k]);
    owners.push_back(owner);
  }
}

void nfc(const char32_t* cps, const Span* spans, size_t n, std::vector<char32_t>& out, std::vector<Span>& out_spans,
         NfcScratch& scratch) {
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
    if (rec.decomp_off == unicode::kSelf) {
      push(c, rec.ccc, 0);
      continue;
    }
    for (size_t j = 0; j < rec.decomp_len; ++j) {
      const char32_t d = unicode::pool()[rec.decomp_off + j];
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
  out_spans.resize(kept);
  size_t next = 0;  // the next input character
  for (size_t k = 0; k < kept; ++k) {
    if (change[k] > 0) {
      out_spans[k] = spans[next > 0 ? next - 1 : 0];
    } else {
      out_spans[k] = spans[std::min(next, n - 1)];
      next += 1 + static_cast<size_t>(-change[k]);
    }
  }
}

}  // namespace rapidrag
