// Unicode properties for the BERT normalizer and pre-tokenizer, from generated tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rapidrag::unicode {

// Flag bits of a code point; the generator (scripts/gen_unicode_tables.py) uses the same values.
enum Flag : uint8_t {
  kRemove = 1,  // dropped by text cleaning: controls, format characters, private use, surrogates, NUL, U+FFFD
  kSpace = 2,   // White_Space, plus tab, CR and LF
  kPunct = 4,   // punctuation: a word of its own
  kMark = 8,    // nonspacing mark: dropped when stripping accents
  kPySpace = 16,  // str.isspace() in Python: characters a chunk may leave out
  kWord = 32,     // Python's regex \w (str.isalnum() or '_'): the characters of a BM25 word
};

struct Record {
  uint8_t flags;
  uint8_t ccc;            // canonical combining class
  uint16_t decomp_off;    // into pool(); 0xFFFF when the code point decomposes to itself
  uint8_t decomp_len;
  uint16_t lower_off;     // into pool(); 0xFFFF when the code point lowercases to itself
  uint8_t lower_len;
  uint16_t compat_off;    // into pool(): the compatibility decomposition (NFKD); 0xFFFF when itself
  uint8_t compat_len;
};

// Character classes of the byte-level BPE pre-tokenizer patterns (scripts/gen_regex_classes.py).
enum Class : uint8_t {
  kLetter = 1,      // \p{L}
  kNumber = 2,      // \p{N}
  kWhiteSpace = 4,  // \s: the White_Space property
};
uint8_t classes(char32_t cp) noexcept;

constexpr uint16_t kSelf = 0xFFFF;
constexpr char32_t kMaxCodePoint = 0x10FFFF;

const Record& record(char32_t cp) noexcept;
const char32_t* pool() noexcept;

inline bool is_hangul_syllable(char32_t cp) noexcept { return cp >= 0xAC00 && cp <= 0xD7A3; }

// The CJK Unified Ideograph blocks that BERT surrounds with spaces (as the reference tokenizer does).
inline bool is_cjk(char32_t cp) noexcept {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Canonical decomposition of a Hangul syllable into 2 or 3 jamo; returns the count written to out.
inline int decompose_hangul(char32_t cp, char32_t* out) noexcept {
  const char32_t s = cp - 0xAC00;
  out[0] = 0x1100 + s / 588;
  out[1] = 0x1161 + (s % 588) / 28;
  const char32_t t = s % 28;
  if (t == 0) return 2;
  out[2] = 0x11A7 + t;
  return 3;
}

// The canonical composite of a starter and the next character (NFC's primary composites, Hangul included), or
// 0 when they do not compose.
char32_t compose(char32_t first, char32_t second) noexcept;

// The end of the extended grapheme cluster (UAX #29) that starts at cps[i]: the index of the first character
// after it (n at the end).
size_t grapheme_end(const char32_t* cps, size_t n, size_t i) noexcept;

// UTF-8 -> code points; invalid sequences become U+FFFD. For C++ callers; Python passes str data directly.
void decode_utf8(const char* data, size_t size, char32_t* out, size_t* out_len) noexcept;

inline std::u32string utf8_to_u32(const std::string& s) {
  std::u32string out(s.size(), U'\0');
  size_t n = 0;
  decode_utf8(s.data(), s.size(), out.data(), &n);
  out.resize(n);
  return out;
}

}  // namespace rapidrag::unicode
