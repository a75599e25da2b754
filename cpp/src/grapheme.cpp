// Extended grapheme cluster boundaries (Unicode UAX #29, rules GB3 to GB13), from generated property tables.
#include <cstddef>
#include <cstdint>

#include "rapidrag/unicode.hpp"

#include "grapheme_tables.inc"

namespace rapidrag::unicode {
namespace {

// Grapheme_Cluster_Break values; scripts/gen_graphemes.py writes the same numbers.
enum Gcb : uint8_t { kOther, kCR, kLF, kControl, kExtend, kZWJ, kRI, kPrepend, kSpacingMark, kL, kV, kT, kLV, kLVT };
enum Incb : uint8_t { kNone, kConsonant, kIncbExtend, kLinker };
constexpr uint8_t kExtPict = 64;

inline uint8_t props(char32_t cp) noexcept {
  if (cp > kMaxCodePoint) return 0;
  return grapheme_data::kStage2[grapheme_data::kStage1[cp >> 8] * 256u + (cp & 0xFFu)];
}

}  // namespace

size_t grapheme_end(const char32_t* cps, size_t n, size_t i) noexcept {
  if (i >= n) return n;
  uint8_t p = props(cps[i]);
  size_t ri = 0;       // regional indicators in a row, ending at the previous character
  int emoji = 0;       // 1: Extended_Pictographic Extend*; 2: ... then ZWJ (GB11)
  int conjunct = 0;    // 1: InCB Consonant [Extend Linker]*; 2: ... with a Linker seen (GB9c)
  auto track = [&](uint8_t q) {
    const uint8_t g = q & 15, c = (q >> 4) & 3;
    ri = g == kRI ? ri + 1 : 0;
    if (q & kExtPict) {
      emoji = 1;
    } else if (g == kExtend && emoji == 1) {
      emoji = 1;
    } else if (g == kZWJ && emoji == 1) {
      emoji = 2;
    } else {
      emoji = 0;
    }
    if (c == kConsonant) {
      conjunct = 1;
    } else if (c == kLinker && conjunct) {
      conjunct = 2;
    } else if (c != kIncbExtend) {
      conjunct = 0;
    }
  };
  track(p);
  for (size_t j = i + 1; j < n; ++j) {
    const uint8_t q = props(cps[j]);
    const uint8_t a = p & 15, b = q & 15;
    bool join;
    if (a == kCR && b == kLF) {
      join = true;  // GB3
    } else if (a == kCR || a == kLF || a == kControl || b == kCR || b == kLF || b == kControl) {
      join = false;  // GB4, GB5
    } else if (a == kL && (b == kL || b == kV || b == kLV || b == kLVT)) {
      join = true;  // GB6
    } else if ((a == kLV || a == kV) && (b == kV || b == kT)) {
      join = true;  // GB7
    } else if ((a == kLVT || a == kT) && b == kT) {
      join = true;  // GB8
    } else if (b == kExtend || b == kZWJ || b == kSpacingMark || a == kPrepend) {
      join = true;  // GB9, GB9a, GB9b
    } else if (conjunct == 2 && ((q >> 4) & 3) == kConsonant) {
      join = true;  // GB9c
    } else if (emoji == 2 && (q & kExtPict)) {
      join = true;  // GB11
    } else if (a == kRI && b == kRI) {
      join = ri % 2 == 1;  // GB12, GB13
    } else {
      join = false;  // GB999
    }
    if (!join) return j;
    track(q);
    p = q;
  }
  return n;
}

}  // namespace rapidrag::unicode
