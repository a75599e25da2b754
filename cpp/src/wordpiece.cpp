#include "rapidrag/wordpiece.hpp"

#include <algorithm>

#include "rapidrag/unicode.hpp"

namespace rapidrag {

struct Piece {
  int32_t id;
  uint32_t start, end;
};

namespace {

// ASCII part of the tables, read without the two-stage lookup on the hot path.
struct AsciiTable {
  uint8_t flags[128];
  AsciiTable() {
    for (char32_t c = 0; c < 128; ++c) flags[c] = unicode::record(c).flags;
  }
};
const AsciiTable kAscii;

inline uint8_t flags_of(char32_t c) { return c < 128 ? kAscii.flags[c] : unicode::record(c).flags; }

struct EncodeSink {
  Encoding& out;
  void token(int32_t id, uint32_t start, uint32_t end, bool word_start) {
    out.ids.push_back(id);
    out.starts.push_back(start);
    out.ends.push_back(end);
    if (out.track_words) out.word_starts.push_back(word_start ? 1 : 0);
  }
};

struct CountSink {
  size_t n = 0;
  void token(int32_t, uint32_t, uint32_t, bool) { ++n; }
};

// Per-thread scratch space, so that encoding allocates nothing once warm.
struct Scratch {
  std::vector<char32_t> word;
  std::vector<uint32_t> word_src;
  // Pending combining marks, in canonical order, marks to drop included. As in the reference, reordered
  // characters take source positions by position: each mark that begins a decomposition takes the next one
  // of marks_src (arrival order); a mark that a decomposition inserted takes the previous one.
  std::vector<char32_t> marks;
  std::vector<uint8_t> marks_ccc;
  std::vector<uint8_t> marks_drop;
  std::vector<uint8_t> marks_inserted;
  std::vector<uint32_t> marks_src;
  std::vector<Piece> pieces;
};

// Not inlined: the compiler would otherwise recompute the thread-local address (a call into the dynamic
// loader, in a shared library) inside the per-character loop instead of keeping the pointer.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

WordPiece::WordPiece(const std::vector<std::string>& vocab, WordPieceOptions options)
    : options_(std::move(options)), vocab_(vocab) {
  if (vocab_.empty()) throw InvalidArgument("the vocabulary is empty");
  if (vocab_.size() >= static_cast<size_t>(INT32_MAX)) throw InvalidArgument("the vocabulary is too large");
  if (options_.max_input_chars_per_word == 0) throw InvalidArgument("max_input_chars_per_word must be positive");
  const std::string& prefix = options_.continuing_subword_prefix;
  std::vector<std::pair<std::string, int32_t>> words, suffixes;
  words.reserve(vocab_.size());
  token_ids_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const std::string& token = vocab_[i];
    token_ids_[token] = id;  // a duplicated token keeps its last id, as the reference does
    words.emplace_back(token, id);
    if (prefix.empty()) {
      suffixes.emplace_back(token, id);  // without a prefix, later pieces are looked up among all tokens
    } else if (token.size() > prefix.size() && token.compare(0, prefix.size(), prefix) == 0) {
      suffixes.emplace_back(token.substr(prefix.size()), id);
    }
  }
  word_trie_ = DoubleArray(std::move(words));
  for (char32_t c = 0; c < 128; ++c) {
    const uint8_t f = kAscii.flags[c];
    if (options_.clean_text && (f & unicode::kRemove)) {
      ascii_[c] = kAsciiDrop;
    } else if (f & unicode::kSpace) {
      ascii_[c] = kAsciiSpace;
    } else if (f & unicode::kPunct) {
      ascii_[c] = kAsciiPunct;
    } else {
      ascii_[c] = kAsciiWord;
    }
  }
  suffix_trie_ = DoubleArray(std::move(suffixes));
  unk_id_ = token_to_id(options_.unk_token);
  if (unk_id_ < 0) throw InvalidArgument("the unknown token '" + options_.unk_token + "' is not in the vocabulary");
  for (const auto& s : options_.special_tokens) {
    const int32_t id = token_to_id(s);
    if (id < 0) throw InvalidArgument("the special token '" + s + "' is not in the vocabulary");
    std::u32string key = unicode::utf8_to_u32(s);
    if (key.empty()) continue;
    specials_.push_back(std::move(key));
    special_ids_.push_back(id);
    const char32_t first = specials_.back()[0];
    if (first < 128) {
      special_first_[first] = true;
    } else {
      special_first_non_ascii_ = true;
    }
  }
}

int32_t WordPiece::token_to_id(const std::string& token) const {
  auto it = token_ids_.find(token);
  return it == token_ids_.end() ? -1 : it->second;
}

const std::string& WordPiece::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) {
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_.size()));
  }
  return vocab_[static_cast<size_t>(id)];
}

template <class Sink>
void WordPiece::emit_word(const char32_t* chars, const uint32_t* src, size_t n, Sink& sink,
                          std::vector<Piece>& pieces) const {
  if (n > options_.max_input_chars_per_word) {
    sink.token(unk_id_, src[0], src[n - 1] + 1, true);
    return;
  }
  pieces.clear();
  size_t start = 0;
  while (start < n) {
    // Greedy longest match: walk the trie as far as the word allows, remembering the last token passed.
    const DoubleArray& trie = start == 0 ? word_trie_ : suffix_trie_;
    int32_t node = DoubleArray::root();
    int32_t best = -1;
    size_t best_end = start;
    for (size_t j = start; j < n; ++j) {
      node = step_code_point(trie, node, chars[j]);
      if (node == DoubleArray::kNone) break;
      const int32_t id = trie.value(node);
      if (id >= 0) {
        best = id;
        best_end = j + 1;
      }
    }
    if (best < 0) {
      sink.token(unk_id_, src[0], src[n - 1] + 1, true);
      return;
    }
    pieces.push_back({best, src[start], src[best_end - 1] + 1});
    start = best_end;
  }
  bool first = true;
  for (const Piece& p : pieces) {
    sink.token(p.id, p.start, p.end, first);
    first = false;
  }
}

template <class Sink, class CharT>
void WordPiece::run(const CharT* text, size_t n, Sink& sink) const {
  Scratch& s = scratch();
  auto& pieces = s.pieces;
  auto& word = s.word;
  auto& word_src = s.word_src;
  auto& marks = s.marks;
  auto& marks_src = s.marks_src;
  auto& marks_ccc = s.marks_ccc;
  auto& marks_drop = s.marks_drop;
  auto& marks_inserted = s.marks_inserted;
  uint32_t last_src = 0;  // source position of the last character that took one
  word.clear();
  word_src.clear();
  marks.clear();
  marks_src.clear();
  marks_ccc.clear();
  marks_drop.clear();
  marks_inserted.clear();
  const bool lowercase = options_.lowercase;
  const bool strip = options_.strip_accents;
  const bool clean = options_.clean_text;
  const bool chinese = options_.handle_chinese_chars;
  const char32_t* pool = unicode::pool();

  auto end_word = [&] {
    if (!word.empty()) {
      // The scratch pieces buffer is separate from the word buffers, so passing them is safe.
      emit_word(word.data(), word_src.data(), word.size(), sink, pieces);
      word.clear();
      word_src.clear();
    }
  };
  // Pre-tokenization of one fully normalized character.
  auto put = [&](char32_t c, uint32_t src) {
    const uint8_t f = flags_of(c);
    if (f & unicode::kSpace) {
      end_word();
    } else if (f & unicode::kPunct) {
      end_word();
      emit_word(&c, &src, 1, sink, pieces);
    } else {
      word.push_back(c);
      word_src.push_back(src);
    }
  };
  // Lowercasing, the last normalization step.
  auto finish = [&](char32_t c, uint32_t src) {
    if (!lowercase) {
      put(c, src);
    } else if (c < 128) {
      put(c >= 'A' && c <= 'Z' ? c + 32 : c, src);
    } else {
      const unicode::Record& r = unicode::record(c);
      if (r.lower_off == unicode::kSelf) {
        put(c, src);
      } else {
        for (int k = 0; k < r.lower_len; ++k) put(pool[r.lower_off + k], src);
      }
    }
  };
  auto flush_marks = [&] {
    size_t next = 0;
    for (size_t k = 0; k < marks.size(); ++k) {
      if (!marks_inserted[k]) last_src = marks_src[next++];
      if (!marks_drop[k]) finish(marks[k], last_src);
    }
    marks.clear();
    marks_src.clear();
    marks_ccc.clear();
    marks_drop.clear();
    marks_inserted.clear();
  };
  // Accent stripping: canonical decomposition and reordering, then nonspacing marks dropped.
  auto feed = [&](char32_t c, uint32_t src) {
    if (!strip || c < 128) {
      if (!marks.empty()) flush_marks();
      last_src = src;
      finish(c, src);
      return;
    }
    char32_t buf[4];
    const char32_t* d = &c;
    int len = 1;
    if (unicode::is_hangul_syllable(c)) {
      len = unicode::decompose_hangul(c, buf);
      d = buf;
    } else {
      const unicode::Record& r = unicode::record(c);
      if (r.decomp_off != unicode::kSelf) {
        d = pool + r.decomp_off;
        len = r.decomp_len;
      }
    }
    for (int k = 0; k < len; ++k) {
      const char32_t x = d[k];
      const unicode::Record& rx = unicode::record(x);
      if (rx.ccc == 0) {
        if (!marks.empty()) flush_marks();
        last_src = src;
        if (!(rx.flags & unicode::kMark)) finish(x, src);
      } else {
        size_t j = marks.size();
        while (j > 0 && marks_ccc[j - 1] > rx.ccc) --j;
        const auto at = static_cast<std::ptrdiff_t>(j);
        marks.insert(marks.begin() + at, x);
        marks_ccc.insert(marks_ccc.begin() + at, rx.ccc);
        marks_drop.insert(marks_drop.begin() + at, (rx.flags & unicode::kMark) ? 1 : 0);
        marks_inserted.insert(marks_inserted.begin() + at, k > 0 ? 1 : 0);
        if (k == 0) marks_src.push_back(src);
      }
    }
  };

  const bool have_specials = !specials_.empty();
  for (size_t i = 0; i < n; ++i) {
    char32_t c = static_cast<char32_t>(text[i]);
    const auto src = static_cast<uint32_t>(i);
    if (have_specials && (c < 128 ? special_first_[c] : special_first_non_ascii_)) {
      size_t best = 0;
      int32_t best_id = -1;
      for (size_t k = 0; k < specials_.size(); ++k) {
        const std::u32string& sp = specials_[k];
        if (sp.size() <= best || sp.size() > n - i) continue;
        size_t m = 0;
        while (m < sp.size() && static_cast<char32_t>(text[i + m]) == sp[m]) ++m;
        if (m == sp.size()) {
          best = m;
          best_id = special_ids_[k];
        }
      }
      if (best_id >= 0) {
        flush_marks();
        end_word();
        sink.token(best_id, src, static_cast<uint32_t>(i + best), true);
        i += best - 1;
        continue;
      }
    }
    if (c < 128 && marks.empty()) {
      // ASCII: one table lookup decides, with the options applied at construction.
      const uint8_t a = ascii_[c];
      last_src = src;
      if (a == kAsciiWord) {
        word.push_back(lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
        word_src.push_back(src);
      } else if (a == kAsciiSpace) {
        end_word();
      } else if (a == kAsciiPunct) {
        end_word();
        emit_word(&c, &src, 1, sink, pieces);
      }
      continue;
    }
    if (clean) {
      const uint8_t f = flags_of(c);
      if (f & unicode::kRemove) continue;
      if (f & unicode::kSpace) c = U' ';
    }
    if (chinese && c >= 0x3400 && unicode::is_cjk(c)) {
      feed(U' ', src);
      feed(c, src);
      feed(U' ', src);
    } else {
      feed(c, src);
    }
  }
  flush_marks();
  end_word();
}

void WordPiece::encode(const TextRef& text, Encoding& out) const {
  // About one token per 4.5 characters of English; reserving avoids most regrowth. Grow at least
  // geometrically, since encode() also appends many texts to one Encoding.
  const size_t need = out.size() + text.length / 4 + 4;
  if (out.ids.capacity() < need) {
    const size_t cap = std::max(need, 2 * out.ids.capacity());
    out.ids.reserve(cap);
    out.starts.reserve(cap);
    out.ends.reserve(cap);
    if (out.track_words) out.word_starts.reserve(cap);
  }
  EncodeSink sink{out};
  visit_text(text, [&](const auto* p) { run(p, text.length, sink); });
}

bool WordPiece::splits_at_whitespace() const {
  for (const auto& sp : options_.special_tokens) {
    if (sp.find_first_of(" \t\n\r") != std::string::npos) return false;
  }
  return true;
}

size_t WordPiece::count(const TextRef& text) const {
  CountSink sink;
  visit_text(text, [&](const auto* p) { run(p, text.length, sink); });
  return sink.n;
}

}  // namespace rapidrag
