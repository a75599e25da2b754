#include "rapidrag/chunker.hpp"

#include <algorithm>
#include <deque>

#include "rapidrag/unicode.hpp"
#include "rapidrag/wordpiece.hpp"

namespace rapidrag {
namespace {

// Boundary levels: the chunker cuts at the highest level available in its window, the latest one on ties.
enum Level : int8_t {
  kShared = -1,     // two tokens from one character: cut only when nothing else fits
  kInWord = 0,      // between the pieces of a word
  kWordPart = 1,    // between words not separated by whitespace (punctuation, CJK)
  kSpaceGap = 2,    // whitespace
  kSentence = 3,    // after a sentence end
  kLine = 4,        // a line break
  kParagraph = 5,   // a blank line
};

// Whitespace as the tokenizer sees it: text cleaning drops controls such as U+000B and U+0085 instead.
inline bool is_space_cp(char32_t c, bool clean) {
  const uint8_t f = unicode::record(c).flags;
  return (f & unicode::kSpace) && !(clean && (f & unicode::kRemove));
}

inline bool is_closer(char32_t c) {
  switch (c) {
    case U'"': case U'\'': case U')': case U']': case U'}': case U'\u201D': case U'\u2019': case U'\u00BB':
    case U'\u300D': case U'\u300F': case U'\uFF09':
      return true;
    default:
      return false;
  }
}

inline bool is_cjk_terminal(char32_t c) { return c == U'\u3002' || c == U'\uFF01' || c == U'\uFF1F'; }

inline bool is_terminal(char32_t c) {
  switch (c) {
    case U'.': case U'!': case U'?': case U'\u2026': case U'\u203C': case U'\u2047': case U'\u2048': case U'\u2049':
      return true;
    default:
      return is_cjk_terminal(c);
  }
}

}  // namespace

Chunker::Chunker(std::shared_ptr<const TextEncoder> tokenizer, size_t max_tokens, size_t overlap)
    : tokenizer_(std::move(tokenizer)), max_tokens_(max_tokens), overlap_(overlap) {
  if (!tokenizer_) throw InvalidArgument("tokenizer must not be null");
  if (const auto* wp = dynamic_cast<const WordPiece*>(tokenizer_.get())) {
    additive_ = true;
    clean_text_ = wp->options().clean_text;
  }
  if (max_tokens_ == 0) throw InvalidArgument("max_tokens must be positive");
  if (overlap_ >= max_tokens_) {
    throw InvalidArgument("overlap (" + std::to_string(overlap_) + ") must be smaller than max_tokens (" +
                          std::to_string(max_tokens_) + ")");
  }
}

std::vector<ChunkSpan> Chunker::split(const TextRef& text) const {
  return visit_text(text, [&](const auto* p) { return split_impl(p, text); });
}

template <class CharT>
std::vector<ChunkSpan> Chunker::split_impl(const CharT* text, const TextRef& ref) const {
  const size_t len = ref.length;
  auto cp = [&](size_t i) { return static_cast<char32_t>(text[i]); };
  const bool clean = clean_text_;
  auto is_space = [&](size_t i) { return is_space_cp(cp(i), clean); };
  // Chunks leave out only what Python calls whitespace; it includes all the tokenizer's whitespace.
  auto is_blank = [&](size_t i) { return (unicode::record(cp(i)).flags & unicode::kPySpace) != 0; };
  std::vector<ChunkSpan> out;
  size_t first = 0;
  while (first < len && is_blank(first)) ++first;
  if (first == len) return out;
  size_t last = len;
  while (last > first && is_blank(last - 1)) --last;

  Encoding enc;
  enc.track_words = true;
  tokenizer_->encode(ref, enc);
  const size_t n = enc.size();
  if (n == 0) {
    // Only characters that normalization drops here: one chunk keeps them covered, with the count of its own
    // text, which can differ (a combining mark cut from the space it followed has tokens of its own).
    out.push_back({static_cast<uint32_t>(first), static_cast<uint32_t>(last),
                   static_cast<uint32_t>(tokenizer_->count(ref.slice(first, last)))});
    return out;
  }
  const auto& starts = enc.starts;
  const auto& ends = enc.ends;
  // Where each token's text begins after the whitespace it carries (BPE and Metaspace tokens hold the space
  // before their word; WordPiece tokens none), and the last token before it with text of its own.
  std::vector<size_t> content(n);
  std::vector<int64_t> before(n, -1);
  int64_t last_content = -1;
  size_t first_token = n;  // the first token with text
  for (size_t t = 0; t < n; ++t) {
    size_t i = starts[t];
    while (i < ends[t] && is_space(i)) ++i;
    content[t] = i;
    before[t] = last_content;
    if (i < ends[t]) {
      last_content = static_cast<int64_t>(t);
      first_token = std::min(first_token, t);
    }
  }
  if (first_token == n) {  // tokens of the tokenizer's whitespace only: one chunk keeps the text covered
    out.push_back({static_cast<uint32_t>(first), static_cast<uint32_t>(last),
                   static_cast<uint32_t>(tokenizer_->count(ref.slice(first, last)))});
    return out;
  }
  // Python whitespace that the tokenizer keeps (U+001C with clean_text off, say) stays inside the chunks.
  first = std::min<size_t>(first, content[first_token]);
  last = std::max<size_t>(last, ends[static_cast<size_t>(last_content)]);
  auto has_text = [&](size_t t) { return content[t] < ends[t]; };

  std::vector<int8_t> level(n, kInWord);
  for (size_t t = 1; t < n; ++t) {
    if (!has_text(t) || before[t] < 0) continue;  // a token of whitespace only: cut after it, not before
    const auto prev = static_cast<size_t>(before[t]);
    const size_t gs = ends[prev], ge = content[t];
    if (ge < gs) {
      level[t] = kShared;
      continue;
    }
    if (additive_ && !enc.word_starts[t]) {
      level[t] = kInWord;  // the tokenizer saw no word boundary here, whatever the gap holds
      continue;
    }  // (other models' chunks are counted again, so the gap alone decides)
    int breaks = 0;
    bool space = false;
    for (size_t i = gs; i < ge; ++i) {
      if (!is_space(i)) continue;
      const char32_t c = cp(i);
      space = true;
      if (c == U'\n' || c == U'\u0085' || c == U'\u2028' || c == U'\u2029') {
        ++breaks;
      } else if (c == U'\r' && !(i + 1 < ge && cp(i + 1) == U'\n')) {
        ++breaks;
      }
    }
    // Sentence end: terminal punctuation, possibly followed by closing quotes or brackets.
    size_t p = ends[prev] - 1;
    for (int k = 0; k < 3 && p > 0 && is_closer(cp(p)); ++k) --p;
    const char32_t term = cp(p);
    if (breaks >= 2) {
      level[t] = kParagraph;
    } else if (breaks == 1) {
      level[t] = kLine;
    } else if ((space && is_terminal(term)) || is_cjk_terminal(term)) {
      level[t] = kSentence;
    } else if (space) {
      level[t] = kSpaceGap;
    } else {
      level[t] = kWordPart;
    }
  }

  // The characters normalization dropped (soft hyphens, marks, controls) in the gap before token t belong to
  // the word they touch: those right after the previous token with text to its chunk, the rest to token t's.
  auto gap_begin = [&](size_t t) -> size_t { return before[t] < 0 ? first : ends[static_cast<size_t>(before[t])]; };
  auto gap_split = [&](size_t t) -> size_t {
    size_t i = gap_begin(t);
    while (i < content[t] && !is_blank(i)) ++i;
    return i;
  };
  auto chunk_end = [&](size_t c) -> size_t {
    if (c == n) return last;
    return std::max<size_t>(gap_split(c), before[c] < 0 ? first : ends[static_cast<size_t>(before[c])]);
  };
  auto chunk_start = [&](size_t t) -> size_t {
    if (t <= first_token) return first;
    size_t i = gap_split(t);
    while (i < content[t] && is_blank(i)) ++i;
    return std::min<size_t>(i, content[t]);
  };
  // Tokens of text[a:b] when a cut falls inside a word, where the pieces may differ from the document's.
  auto recount = [&](size_t a, size_t b) -> size_t { return b > a ? tokenizer_->count(ref.slice(a, b)) : 0; };
  // A gap that holds characters normalization dropped (marks, controls) may join its neighbours in ways a
  // cut changes (canonical reordering), so a cut there is counted again too.
  auto clean_gap = [&](size_t t) {
    for (size_t i = gap_begin(t); i < content[t]; ++i) {
      if (!is_space(i)) return false;
    }
    return true;
  };

  std::deque<size_t> window;  // candidate cuts, levels decreasing from front to back
  size_t next_candidate = 1;
  size_t s = first_token;  // first token of the chunk
  size_t a = first;   // first character of the chunk
  auto push = [&](size_t begin, size_t end, size_t count) {
    out.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(end), static_cast<uint32_t>(count)});
  };
  while (true) {
    size_t c = n;  // cut before token c
    if (n - s > max_tokens_) {
      const size_t lo = s + overlap_ + 1, hi = s + max_tokens_;
      for (; next_candidate <= hi; ++next_candidate) {
        if (level[next_candidate] == kShared) continue;  // never cut between the tokens of one character
        while (!window.empty() && level[window.back()] <= level[next_candidate]) window.pop_back();
        window.push_back(next_candidate);
      }
      while (!window.empty() && window.front() < lo) window.pop_front();
      if (!window.empty()) {
        c = window.front();
      } else {
        // One character gives more tokens than the window holds: the chunk ends after it, over the limit.
        c = hi + 1;
        while (c < n && level[c] == kShared) ++c;
      }
    }
    size_t b = chunk_end(c);
    size_t count = c - s;
    // Cuts at word boundaries keep the document's tokens; a cut inside a word may change them: count again.
    const bool exact_start = additive_ && (s == 0 || (a == chunk_start(s) && level[s] > kInWord && clean_gap(s)));
    const bool exact_end = additive_ && (c == n || (level[c] > kInWord && clean_gap(c)));
    if (!exact_start || !exact_end || count > max_tokens_) {
      count = recount(a, b);
      while (count > max_tokens_ && c > s + 1) {
        // An earlier cut: the best one the window allows before c (the highest level, the latest on ties), so
        // that a chunk whose text counts more tokens than the document's (it starts inside a word) still ends
        // at a word; else the token before c.
        size_t prev = 0;
        for (size_t t = s + overlap_ + 1; t < c; ++t) {
          if (level[t] != kShared && (prev == 0 || level[t] >= level[prev])) prev = t;
        }
        if (prev == 0) {
          prev = c - 1;
          while (prev > s && level[prev] == kShared) --prev;
        }
        if (prev <= s) break;
        c = prev;
        b = chunk_end(c);
        count = recount(a, b);
      }
      if (count > max_tokens_) {
        // A single word piece that tokenizes to more than max_tokens on its own: cut it by characters
        // and let the next chunk take the rest of it.
        size_t cut = b;
        while (count > max_tokens_ && cut > a + 1) count = recount(a, --cut);
        if (cut < b && count > 0) {
          push(a, cut, count);
          a = cut;
          continue;
        }
        count = recount(a, b);
      }
    }
    push(a, b, count);
    if (c >= n) break;
    size_t next = c > s + overlap_ ? c - overlap_ : s + 1;
    while (next < c && level[next] == kShared) ++next;
    while (next < n && !has_text(next)) ++next;  // a chunk begins at a word, not at a token of spaces alone
    if (next >= n) {
      // Offsets that lag behind the text (the reference's alignment after a normalizer drops characters at the
      // start) can leave text after the last token with text of its own: a last chunk keeps it covered.
      size_t rest = b;
      while (rest < last && is_blank(rest)) ++rest;
      if (rest < last) push(rest, last, recount(rest, last));
      break;
    }
    s = next;
    a = chunk_start(s);
  }
  return out;
}

}  // namespace rapidrag
