#include "rapidrag/unicode.hpp"

#include <cstdint>

#include "composition.inc"
#include "regex_classes.inc"
#include "unicode_tables.inc"

namespace rapidrag::unicode {

const Record& record(char32_t cp) noexcept {
  if (cp > kMaxCodePoint) cp = 0xFFFD;
  const unsigned block = data::kStage1[cp >> 8];
  return data::kRecords[data::kStage2[block * 256u + (cp & 0xFFu)]];
}

const char32_t* pool() noexcept { return data::kPool; }

char32_t compose(char32_t first, char32_t second) noexcept {
  // Hangul: L + V -> LV, LV + T -> LVT.
  if (first >= 0x1100 && first < 0x1113 && second >= 0x1161 && second < 0x1176) {
    return 0xAC00 + ((first - 0x1100) * 21 + (second - 0x1161)) * 28;
  }
  if (is_hangul_syllable(first) && (first - 0xAC00) % 28 == 0 && second > 0x11A7 && second < 0x11C3) {
    return first + (second - 0x11A7);
  }
  const auto* pairs = composition_data::kPairs;
  size_t lo = 0, hi = composition_data::kCount;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    const char32_t a = pairs[mid][0], b = pairs[mid][1];
    if (a < first || (a == first && b < second)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < composition_data::kCount && pairs[lo][0] == first && pairs[lo][1] == second) return pairs[lo][2];
  return 0;
}

uint8_t classes(char32_t cp) noexcept {
  if (cp > kMaxCodePoint) return 0;
  return class_data::kStage2[class_data::kStage1[cp >> 8] * 256u + (cp & 0xFFu)];
}

void decode_utf8(const char* bytes, size_t size, char32_t* out, size_t* out_len) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes);
  size_t i = 0, n = 0;
  while (i < size) {
    const unsigned c = s[i];
    char32_t cp = 0xFFFD;
    size_t len = 1;
    auto cont = [&](size_t k) { return i + k < size && (s[i + k] & 0xC0) == 0x80; };
    if (c < 0x80) {
      cp = c;
    } else if (c >= 0xC2 && c < 0xE0 && cont(1)) {
      cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
      len = 2;
    } else if (c >= 0xE0 && c < 0xF0 && cont(1) && cont(2)) {
      cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
      len = 3;
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    } else if (c >= 0xF0 && c < 0xF5 && cont(1) && cont(2) && cont(3)) {
      cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
      len = 4;
      if (cp < 0x10000 || cp > kMaxCodePoint) cp = 0xFFFD;
    }
    out[n++] = cp;
    i += len;
  }
  *out_len = n;
}

}  // namespace rapidrag::unicode
