// Normalization with alignment: what a normalized character stands for in the original text, as the reference
// (Hugging Face tokenizers) aligns it; shared by the subword models that normalize before splitting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rapidrag/encoder.hpp"
#include "rapidrag/text.hpp"

namespace rapidrag {

// The characters of the original text a normalized character came from: [start, end) code point offsets.
struct Span {
  uint32_t start;
  uint32_t end;
};

// Writes the UTF-8 bytes of c to buf (room for 4) and returns their count (a lone surrogate becomes U+FFFD).
size_t utf8_encode(char32_t c, uint8_t* buf);

// Appends the UTF-8 bytes of c to bytes, each with the span `owner` (a lone surrogate becomes U+FFFD).
void utf8_append(char32_t c, Span owner, std::vector<uint8_t>& bytes, std::vector<Span>& owners);

// Special tokens matched verbatim in the raw text, longest first at each position.
class SpecialTokens {
 public:
  void add(std::u32string text, int32_t id) {
    if (text.empty()) return;
    const char32_t first = text[0];
    if (first < 128) {
      first_[first] = true;
    } else {
      first_non_ascii_ = true;
    }
    texts_.push_back(std::move(text));
    ids_.push_back(id);
  }
  bool empty() const { return texts_.empty(); }
  // Calls segment(begin, end) for each run of text between special tokens (empty runs left out) and
  // special(id, begin, end) for each special token, in text order.
  template <class CharT, class Segment, class Special>
  void split(const CharT* p, size_t n, Segment&& segment, Special&& special) const {
    size_t seg = 0, i = 0;
    while (i < n && !texts_.empty()) {
      const char32_t c = static_cast<char32_t>(p[i]);
      if (c < 128 ? !first_[c] : !first_non_ascii_) {
        ++i;
        continue;
      }
      size_t best = 0, best_k = 0;
      for (size_t k = 0; k < texts_.size(); ++k) {
        const std::u32string& sp = texts_[k];
        if (sp.size() <= best || i + sp.size() > n) continue;
        size_t m = 0;
        while (m < sp.size() && static_cast<char32_t>(p[i + m]) == sp[m]) ++m;
        if (m == sp.size()) best = m, best_k = k;
      }
      if (best == 0) {
        ++i;
        continue;
      }
      if (i > seg) segment(seg, i);
      special(ids_[best_k], i, i + best);
      i += best;
      seg = i;
    }
    if (n > seg) segment(seg, n);
  }

 private:
  std::vector<std::u32string> texts_;
  std::vector<int32_t> ids_;
  bool first_[128] = {};  // ASCII first characters of the special tokens
  bool first_non_ascii_ = false;
};

// Scratch space of nfc(), reused between calls.
struct NfcScratch {
  std::vector<uint8_t> ccc;
  std::vector<int32_t> change;
};

// Canonical composition (NFC) of cps, with the span of the original text each output character comes from, as
// the reference aligns them: each character of the decomposed stream carries a change (0: it stands for the
// next input character; +1: a decomposition inserted it), reordering moves changes with their characters, a
// composite adds its absorbed characters' changes less one each, and the output then takes input spans in
// order by those changes (0: the next one; +n: the last one taken; -n: the next one, skipping n more).
// With `compat`, NFKC: compatibility decompositions instead of canonical ones, composed the same way.
void nfc(const char32_t* cps, const Span* spans, size_t n, std::vector<char32_t>& out, std::vector<Span>& out_spans,
         NfcScratch& scratch, bool compat = false);

// The spans of a normalized text from its change stream, as the reference's NormalizedString::transform aligns
// them: each character takes the span of the next input character (change 0, or -k: k more input characters
// removed after it) or, inserted (change > 0), the span of the last one taken; the first `removed_first` input
// characters are skipped.
void align(const Span* spans, size_t n, const std::vector<int32_t>& change, std::vector<Span>& out_spans,
           size_t removed_first = 0);

// The SentencePiece precompiled character map: a darts-clone double-array trie of UTF-8 keys whose values index a
// block of NUL-terminated replacements (the layout of a tokenizer.json "Precompiled" normalizer's blob).
class CharsMap {
 public:
  // blob: a little-endian uint32 trie size in bytes, the trie's units, then the replacements.
  explicit CharsMap(const std::string& blob);
  // The replacement of the shortest key that is a prefix of bytes[0, n): true and (out, out_len), else false.
  bool shortest(const uint8_t* bytes, size_t n, const char** out, size_t* out_len) const;
  // shortest() of one ASCII byte, from a table made at construction.
  bool ascii(uint8_t c, const char** out, size_t* out_len) const {
    const auto [at, len] = ascii_[c];
    if (at < 0) return false;
    *out = replacements_.data() + at;
    *out_len = static_cast<size_t>(len);
    return true;
  }

 private:
  std::vector<uint32_t> units_;
  std::string replacements_;
  std::pair<int32_t, int32_t> ascii_[128];  // (offset into replacements_, length), or (-1, 0): not mapped
};

// One step of a normalizer, as tokenizer.json names them.
struct NormalizerStep {
  enum class Kind : uint8_t { kNfc, kNfkc, kLowercase, kStrip, kReplace, kReplaceRun, kPrepend, kPrecompiled };
  Kind kind = Kind::kNfc;
  bool left = false, right = false;  // kStrip: the sides stripped of white space
  std::u32string pattern;            // kReplace: the literal replaced; kReplaceRun: the repeated character
  uint32_t min_run = 1;              // kReplaceRun: runs of at least this many are replaced
  std::u32string content;            // kReplace, kReplaceRun: the replacement; kPrepend: what is put before
  std::shared_ptr<const CharsMap> charsmap;  // kPrecompiled
};

// Scratch space of Normalizer::apply, reused between calls.
struct NormalizeScratch {
  std::vector<char32_t> out;
  std::vector<Span> out_spans;
  std::vector<int32_t> change;
  NfcScratch nfc;
};

// A sequence of normalizer steps. Each keeps, for every character it writes, the span of the original text it
// stands for, as the reference (Hugging Face tokenizers) aligns it.
class Normalizer {
 public:
  void add(NormalizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  // Normalizes cps in place; spans[i] is the original span of cps[i].
  void apply(std::vector<char32_t>& cps, std::vector<Span>& spans, NormalizeScratch& s) const;

 private:
  std::vector<NormalizerStep> steps_;
};

// Where Metaspace puts the replacement character before a text: always, only before the text's first part
// (not after a special token), or never.
enum class PrependScheme : uint8_t { kAlways, kFirst, kNever };

// The Metaspace pre-tokenizer (SentencePiece models): spaces become the replacement, which is put before a part
// as the scheme says and, with `split`, starts each piece.
struct Metaspace {
  char32_t replacement = U'\u2581';
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = true;

  // Calls f(cps, owners, n) for each piece of the part cps[0, n); `text_start`: the part begins the text.
  // The prepended replacement stands where the part's first character does.
  template <class F>
  void pieces(const char32_t* cps, const Span* owners, size_t n, bool text_start, std::vector<char32_t>& buf,
              std::vector<Span>& buf_owners, F&& f) const {
    if (n == 0) return;
    buf.clear();
    buf_owners.clear();
    const bool add = prepend == PrependScheme::kAlways || (prepend == PrependScheme::kFirst && text_start);
    if (add && cps[0] != U' ' && cps[0] != replacement) {
      buf.push_back(replacement);
      buf_owners.push_back(owners[0]);
    }
    for (size_t i = 0; i < n; ++i) {
      buf.push_back(cps[i] == U' ' ? replacement : cps[i]);
      buf_owners.push_back(owners[i]);
    }
    const size_t m = buf.size();
    size_t begin = 0;
    for (size_t i = 1; i <= m; ++i) {
      if (i < m && !(split && buf[i] == replacement)) continue;
      f(buf.data() + begin, buf_owners.data() + begin, i - begin);
      begin = i;
    }
  }
};

// The buffers of for_each_part, reused between calls.
struct PartScratch {
  std::vector<char32_t> segment;
  std::vector<Span> owners;
  NormalizeScratch normalize;
};

// Splits `text` at the special tokens (appended to `out` as they come) and calls f(cps, owners, n, begin) for
// each part between them, its characters with their spans in the text, after `normalizer`; `begin` is the part's
// first code point in the text.
template <class F>
void for_each_part(const TextRef& text, const SpecialTokens& specials, const Normalizer& normalizer, PartScratch& s,
                   Encoding& out, F&& f) {
  visit_text(text, [&](const auto* p) {
    specials.split(
        p, text.length,
        [&](size_t begin, size_t end) {
          s.segment.assign(p + begin, p + end);
          s.owners.resize(end - begin);
          for (size_t k = 0; k < end - begin; ++k) {
            s.owners[k] = {static_cast<uint32_t>(begin + k), static_cast<uint32_t>(begin + k + 1)};
          }
          if (!normalizer.empty()) normalizer.apply(s.segment, s.owners, s.normalize);
          f(s.segment.data(), s.owners.data(), s.segment.size(), begin);
        },
        [&](int32_t id, size_t begin, size_t end) {
          out.ids.push_back(id);
          out.starts.push_back(static_cast<uint32_t>(begin));
          out.ends.push_back(static_cast<uint32_t>(end));
          if (out.track_words) out.word_starts.push_back(1);
        });
  });
}

}  // namespace rapidrag
