// Byte-pair encoding, byte-level (GPT-2 and its descendants) and SentencePiece's (characters, byte fallback): the
// pre-tokenizer's patterns read without a regex engine, the merges by rank over linked symbols, and the offsets of
// every token in the original text. One file of about 520 lines because these steps share the symbol list and
// its scratch buffers, reused across calls, and are one concern: a piece of text to its BPE tokens.
#include "rapidrag/bpe.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "rapidrag/normalize.hpp"
#include "rapidrag/unicode.hpp"

namespace rapidrag {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others take 256 + n in order.
struct ByteChars {
  char32_t of[256];
  std::string utf8[256];
  ByteChars() {
    bool printable[256] = {};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      of[b] = printable[b] ? static_cast<char32_t>(b) : next++;
      const char32_t c = of[b];
      std::string& s = utf8[b];
      if (c < 0x80) {
        s.push_back(static_cast<char>(c));
      } else {  // all below 0x800
        s.push_back(static_cast<char>(0xC0 | (c >> 6)));
        s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    }
  }
};
const ByteChars kByteChars;

// A token of the byte-level alphabet back to its raw bytes; false when a character is not in the alphabet.
bool token_bytes(const std::string& token, std::string& out) {
  static const auto inverse = [] {
    std::unordered_map<char32_t, uint8_t> m;
    for (int b = 0; b < 256; ++b) m[kByteChars.of[b]] = static_cast<uint8_t>(b);
    return m;
  }();
  out.clear();
  for (char32_t c : unicode::utf8_to_u32(token)) {
    const auto it = inverse.find(c);
    if (it == inverse.end()) return false;
    out.push_back(static_cast<char>(it->second));
  }
  return true;
}

// The ASCII classes, read without the two-stage lookup on the hot path.
struct AsciiClasses {
  uint8_t of[128];
  AsciiClasses() {
    for (char32_t c = 0; c < 128; ++c) of[c] = unicode::classes(c);
  }
};
const AsciiClasses kAsciiClasses;

inline uint8_t cls(char32_t c) { return c < 128 ? kAsciiClasses.of[c] : unicode::classes(c); }
inline bool is_space(char32_t c) { return (cls(c) & unicode::kWhiteSpace) != 0; }
inline bool is_letter(char32_t c) { return (cls(c) & unicode::kLetter) != 0; }
inline bool is_number(char32_t c) { return (cls(c) & unicode::kNumber) != 0; }
inline bool is_other(char32_t c) { return cls(c) == 0; }  // [^\s\p{L}\p{N}]
inline bool is_newline(char32_t c) { return c == U'\r' || c == U'\n'; }

inline char32_t fold(char32_t c) {
  if (c >= U'A' && c <= U'Z') return c + 32;
  if (c == 0x017F) return U's';  // LATIN SMALL LETTER LONG S folds to s
  return c;
}

// The contractions 's 't 're 've 'm 'll 'd at i: the end of the match, or i.
size_t contraction(const char32_t* c, size_t i, size_t n, bool ignore_case) {
  if (c[i] != U'\'' || i + 1 >= n) return i;
  auto at = [&](size_t k) { return ignore_case ? fold(c[k]) : c[k]; };
  const char32_t a = at(i + 1);
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return i + 2;
  if (i + 2 < n) {
    const char32_t b = at(i + 2);
    if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return i + 3;
  }
  return i;
}

template <class Pred>
size_t run(const char32_t* c, size_t i, size_t n, Pred pred) {
  while (i < n && pred(c[i])) ++i;
  return i;
}

// ` ?X+` at i: the end of the match, or i.
template <class Pred>
size_t space_then_run(const char32_t* c, size_t i, size_t n, Pred pred) {
  const size_t j = (c[i] == U' ') ? i + 1 : i;
  if (j < n && pred(c[j])) return run(c, j + 1, n, pred);
  return i;
}

// `\s+(?!\S)` then `\s+` at a whitespace character i.
size_t spaces(const char32_t* c, size_t i, size_t n) {
  const size_t j = run(c, i, n, is_space);
  if (j == n || j - i == 1) return j;  // at the end, or one space: \s+ (the look-ahead form fails or agrees)
  return j - 1;                        // leave the last space to the next piece
}

struct Merge {
  uint32_t rank;
  uint32_t pos;
  bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

constexpr size_t kCacheSlots = 1 << 18;  // at most half used: 131,072 pieces per thread, then it starts over
constexpr size_t kCacheMaxBytes = 64;    // longer pieces are rare: not kept
std::atomic<uint64_t> next_model_serial{1};
}  // namespace

struct BPE::Scratch {
  PartScratch part;
  std::vector<char32_t> cps;  // a part with a prefix space
  std::vector<Span> owners;
  std::vector<uint8_t> bytes;
  std::vector<Span> byte_owners;
  std::string key;
  // A piece's symbols as a linked list over byte positions.
  std::vector<int32_t> ids;
  std::vector<int32_t> prev, next;
  std::vector<uint32_t> end;  // byte end of the symbol starting here
  std::vector<Merge> heap;
  std::vector<std::pair<int32_t, uint32_t>> tokens;
  // Pieces seen on this thread, and their tokens as (id, byte end): words repeat, merges are dear. One flat
  // open-addressing table over two arenas (piece bytes, tokens) for every model on the thread, each entry tagged
  // with its model's serial, so that models used in turn (an embedder and a reranker) keep their pieces; it is
  // emptied whole when half full.
  struct Slot {
    uint64_t hash = 0;  // 0: empty
    uint64_t model = 0;
    uint32_t key = 0, tokens = 0;
    uint16_t key_len = 0, n_tokens = 0;
  };
  std::vector<Slot> slots;
  std::vector<uint8_t> keys;
  std::vector<std::pair<int32_t, uint32_t>> cached;
  size_t used = 0;

  void reset() {
    slots.assign(kCacheSlots, Slot{});
    keys.clear();
    cached.clear();
    used = 0;
  }
  static uint64_t hash_of(uint64_t model, const uint8_t* b, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (model * 0x9e3779b97f4a7c15ULL);  // FNV-1a, then a final mix; never 0
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h | 1;
  }
  const Slot* find(uint64_t model, const uint8_t* b, size_t n, uint64_t h) const {
    for (size_t i = h & (kCacheSlots - 1);; i = (i + 1) & (kCacheSlots - 1)) {
      const Slot& slot = slots[i];
      if (slot.hash == 0) return nullptr;
      if (slot.hash == h && slot.model == model && slot.key_len == n &&
          std::memcmp(keys.data() + slot.key, b, n) == 0) {
        return &slot;
      }
    }
  }
  void insert(uint64_t model, const uint8_t* b, size_t n, uint64_t h) {
    if (2 * (used + 1) > kCacheSlots) reset();
    size_t i = h & (kCacheSlots - 1);
    while (slots[i].hash != 0) i = (i + 1) & (kCacheSlots - 1);
    slots[i] = {h, model, static_cast<uint32_t>(keys.size()), static_cast<uint32_t>(cached.size()),
                static_cast<uint16_t>(n), static_cast<uint16_t>(tokens.size())};
    keys.insert(keys.end(), b, b + n);
    cached.insert(cached.end(), tokens.begin(), tokens.end());
    ++used;
  }
};

const std::string& BPE::byte_char(uint8_t b) { return kByteChars.utf8[b]; }

BPE::BPE(const std::vector<std::string>& vocab,
                           const std::vector<std::pair<std::string, std::string>>& merges, BPEOptions options)
    : options_(std::move(options)), vocab_(vocab), serial_(next_model_serial.fetch_add(1)) {
  if (vocab_.empty()) throw InvalidArgument("the vocabulary is empty");
  if (options_.pattern == SplitPattern::kLlama3 && options_.max_digits == 0) {
    throw InvalidArgument("max_digits must be at least 1");
  }
  token_ids_.reserve(vocab_.size() * 2);
  std::string raw;
  for (size_t i = 0; i < vocab_.size(); ++i) {
    if (!token_ids_.emplace(vocab_[i], static_cast<int32_t>(i)).second) {
      throw InvalidArgument("token " + std::to_string(i) + " repeats an earlier token: '" + vocab_[i] + "'");
    }
    if (options_.ignore_merges && !options_.byte_level) {
      byte_token_ids_.emplace(vocab_[i], static_cast<int32_t>(i));
    } else if (options_.ignore_merges && token_bytes(vocab_[i], raw)) {
      byte_token_ids_.emplace(raw, static_cast<int32_t>(i));
    }
  }
  if (!options_.unk_token.empty()) {
    const auto it = token_ids_.find(options_.unk_token);
    if (it == token_ids_.end()) throw InvalidArgument("the unknown token '" + options_.unk_token + "' is not in the vocabulary");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = token_ids_.find(options_.byte_level ? kByteChars.utf8[b] : std::string(name));
    byte_ids_[b] = it == token_ids_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = token_ids_.find(left), r = token_ids_.find(right), m = token_ids_.find(left + right);
    if (l == token_ids_.end() || r == token_ids_.end() || m == token_ids_.end()) {
      throw InvalidArgument("merge " + std::to_string(rank) + " ('" + left + "', '" + right +
                            "') names a token that is not in the vocabulary");
    }
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l->second)) << 32) | static_cast<uint32_t>(r->second);
    merges_.emplace(key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(m->second));  // first rank wins
  }
  for (const auto& sp : options_.special_tokens) {
    const auto it = token_ids_.find(sp);
    if (it == token_ids_.end()) throw InvalidArgument("special token '" + sp + "' is not in the vocabulary");
    if (sp.empty()) continue;
    specials_.add(unicode::utf8_to_u32(sp), it->second);
  }
  if (!options_.byte_level) {
    // Words merged apart: when the word mark is a token and no token holds it after its first character, no
    // merge can join the symbols on either side of a mark (the result would hold it inside), so merging each
    // word on its own (and caching it) gives what merging the whole text gives.
    word_mark_ = options_.pattern == SplitPattern::kMetaspace ? options_.metaspace.replacement : U'\u2581';
    std::vector<uint8_t> mark_bytes;
    std::vector<Span> unused;
    utf8_append(word_mark_, Span{0, 0}, mark_bytes, unused);
    const std::string mark(mark_bytes.begin(), mark_bytes.end());
    split_words_ = token_ids_.count(mark) > 0 &&
                   std::none_of(vocab_.begin(), vocab_.end(),
                                [&](const std::string& t) { return t.find(mark, 1) != std::string::npos; });
  }
}

int32_t BPE::token_to_id(const std::string& token) const {
  const auto it = token_ids_.find(token);
  return it == token_ids_.end() ? -1 : it->second;
}

const std::string& BPE::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) {
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_.size()));
  }
  return vocab_[static_cast<size_t>(id)];
}

void BPE::encode(const TextRef& text, Encoding& out) const {
  thread_local Scratch scratch;
  if (scratch.slots.empty()) scratch.reset();
  const size_t first = out.size();
  // The parts between special tokens are encoded on their own.
  for_each_part(text, specials_, options_.normalizer, scratch.part, out,
                [&](const char32_t* cps, const Span* owners, size_t n, size_t begin) {
                  encode_segment(cps, owners, n, begin == 0, out, first, scratch);
                });
}

void BPE::encode_segment(const char32_t* cps, const Span* owners, size_t n, bool text_start, Encoding& out,
                         size_t first, Scratch& scratch) const {
  if (n == 0) return;
  if (options_.pattern == SplitPattern::kMetaspace) {
    options_.metaspace.pieces(cps, owners, n, text_start, scratch.cps, scratch.owners,
                              [&](const char32_t* p, const Span* o, size_t m) {
                                encode_words(p, o, m, out, first, scratch);
                              });
    return;
  }
  if (!options_.byte_level) {
    encode_words(cps, owners, n, out, first, scratch);
    return;
  }
  if (options_.add_prefix_space && cps[0] != U' ') {
    // The added space stands where the segment's first character does.
    scratch.cps.assign(1, U' ');
    scratch.cps.insert(scratch.cps.end(), cps, cps + n);
    scratch.owners.assign(1, owners[0]);
    scratch.owners.insert(scratch.owners.end(), owners, owners + n);
    cps = scratch.cps.data();
    owners = scratch.owners.data();
    ++n;
  }
  size_t i = 0;
  while (i < n) {
    const size_t end = options_.pattern == SplitPattern::kNone ? n : match(cps, i, n);
    scratch.bytes.clear();
    scratch.byte_owners.clear();
    for (size_t k = i; k < end; ++k) utf8_append(cps[k], owners[k], scratch.bytes, scratch.byte_owners);
    encode_piece(scratch.bytes.data(), scratch.byte_owners.data(), scratch.bytes.size(), out, first, scratch);
    i = end;
  }
}

void BPE::encode_words(const char32_t* cps, const Span* owners, size_t n, Encoding& out, size_t first,
                       Scratch& scratch) const {
  size_t begin = 0;
  for (size_t i = 1; i <= n; ++i) {
    if (i < n && !(split_words_ && cps[i] == word_mark_)) continue;
    scratch.bytes.clear();
    scratch.byte_owners.clear();
    for (size_t k = begin; k < i; ++k) utf8_append(cps[k], owners[k], scratch.bytes, scratch.byte_owners);
    encode_piece(scratch.bytes.data(), scratch.byte_owners.data(), scratch.bytes.size(), out, first, scratch);
    begin = i;
  }
}

size_t BPE::match(const char32_t* c, size_t i, size_t n) const {
  if (options_.pattern == SplitPattern::kGpt2) {
    size_t e = contraction(c, i, n, false);
    if (e > i) return e;
    if ((e = space_then_run(c, i, n, is_letter)) > i) return e;
    if ((e = space_then_run(c, i, n, is_number)) > i) return e;
    if ((e = space_then_run(c, i, n, is_other)) > i) return e;
    return spaces(c, i, n);
  }
  // kLlama3
  size_t e = contraction(c, i, n, true);
  if (e > i) return e;
  if (!is_newline(c[i]) && !is_letter(c[i]) && !is_number(c[i]) && i + 1 < n && is_letter(c[i + 1])) {
    return run(c, i + 2, n, is_letter);
  }
  if (is_letter(c[i])) return run(c, i + 1, n, is_letter);
  if (is_number(c[i])) {
    size_t j = i + 1;
    while (j < n && j - i < options_.max_digits && is_number(c[j])) ++j;
    return j;
  }
  if ((e = space_then_run(c, i, n, is_other)) > i) return run(c, e, n, is_newline);
  // \s*[\r\n]+ : through the last line break of the whitespace run
  const size_t j = run(c, i, n, is_space);
  size_t last = j;
  for (size_t k = i; k < j; ++k) {
    if (is_newline(c[k])) last = k;
  }
  if (last < j) return last + 1;
  return spaces(c, i, n);
}

void BPE::encode_piece(const uint8_t* bytes, const Span* owners, size_t n, Encoding& out, size_t first,
                                Scratch& s) const {
  if (n == 0) return;
  auto emit = [&](int32_t id, size_t b, size_t e) {
    uint32_t start = owners[b].start, stop = owners[e - 1].end;
    if (options_.trim_offsets) {
      size_t lead = 0, trail = 0;
      while (b + lead < e && bytes[b + lead] == ' ') ++lead;
      while (trail < e - b && bytes[e - 1 - trail] == ' ') ++trail;
      const bool is_first = out.size() == first || start == 0;
      if (lead > 0 && !(is_first && options_.trim_keeps_prefix_space && lead == 1)) {
        start = std::min<uint32_t>(start + static_cast<uint32_t>(lead), stop);
      }
      if (trail > 0 && stop >= trail) stop = std::max<uint32_t>(stop - static_cast<uint32_t>(trail), start);
    }
    out.ids.push_back(id);
    out.starts.push_back(start);
    out.ends.push_back(stop);
    if (out.track_words) out.word_starts.push_back(b == 0 ? 1 : 0);
  };
  const bool cacheable = n <= kCacheMaxBytes;
  const uint64_t h = cacheable ? Scratch::hash_of(serial_, bytes, n) : 0;
  if (cacheable) {  // the cache first: it also holds the pieces that are tokens of their own
    if (const Scratch::Slot* hit = s.find(serial_, bytes, n, h)) {
      uint32_t b = 0;
      for (size_t t = 0; t < hit->n_tokens; ++t) {
        const auto [id, e] = s.cached[hit->tokens + t];
        if (id >= 0) emit(id, b, e);
        b = e;
      }
      return;
    }
  }
  if (options_.ignore_merges) {
    s.key.assign(reinterpret_cast<const char*>(bytes), n);
    const auto it = byte_token_ids_.find(s.key);
    if (it != byte_token_ids_.end()) {
      emit(it->second, 0, n);
      if (cacheable) {
        s.tokens.assign(1, {it->second, static_cast<uint32_t>(n)});
        s.insert(serial_, bytes, n, h);
      }
      return;
    }
  }
  // Symbols linked in order, merged pairs by rank, leftmost first among equals.
  const size_t head = symbols(bytes, n, s);
  auto rank_of = [&](size_t k, uint64_t& merged) {
    const int32_t r = s.next[k];
    if (r < 0 || s.ids[k] < 0 || s.ids[static_cast<size_t>(r)] < 0) return false;
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(s.ids[k])) << 32) |
                         static_cast<uint32_t>(s.ids[static_cast<size_t>(r)]);
    const auto it = merges_.find(key);
    if (it == merges_.end()) return false;
    merged = it->second;
    return true;
  };
  s.heap.clear();
  uint64_t merged = 0;
  for (auto k = static_cast<int32_t>(head); k >= 0 && static_cast<size_t>(k) < n; k = s.next[static_cast<size_t>(k)]) {
    const auto kk = static_cast<size_t>(k);
    if (rank_of(kk, merged)) s.heap.push_back({static_cast<uint32_t>(merged >> 32), static_cast<uint32_t>(kk)});
  }
  std::make_heap(s.heap.begin(), s.heap.end(), std::greater<Merge>());
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), std::greater<Merge>());
    const Merge top = s.heap.back();
    s.heap.pop_back();
    const size_t k = top.pos;
    // Stale entries: the symbol was merged away, or its pair changed since it was queued.
    if (s.ids[k] < 0 && s.end[k] == 0) continue;
    if (!rank_of(k, merged) || static_cast<uint32_t>(merged >> 32) != top.rank) continue;
    const auto r = static_cast<size_t>(s.next[k]);
    s.ids[k] = static_cast<int32_t>(merged & 0xFFFFFFFFu);
    s.end[k] = s.end[r];
    s.next[k] = s.next[r];
    if (s.next[r] >= 0) s.prev[static_cast<size_t>(s.next[r])] = static_cast<int32_t>(k);
    s.ids[r] = -1;
    s.end[r] = 0;  // merged away
    if (s.prev[k] >= 0 && rank_of(static_cast<size_t>(s.prev[k]), merged)) {
      s.heap.push_back({static_cast<uint32_t>(merged >> 32), static_cast<uint32_t>(s.prev[k])});
      std::push_heap(s.heap.begin(), s.heap.end(), std::greater<Merge>());
    }
    if (rank_of(k, merged)) {
      s.heap.push_back({static_cast<uint32_t>(merged >> 32), static_cast<uint32_t>(k)});
      std::push_heap(s.heap.begin(), s.heap.end(), std::greater<Merge>());
    }
  }
  s.tokens.clear();
  for (auto k = static_cast<int32_t>(head); k >= 0 && static_cast<size_t>(k) < n; k = s.next[static_cast<size_t>(k)]) {
    const auto kk = static_cast<size_t>(k);
    int32_t id = s.ids[kk];
    if (id < 0) id = unk_id_;  // a byte missing from the vocabulary: the unknown token, or nothing (-1)
    s.tokens.emplace_back(id, s.end[kk]);
  }
  uint32_t b = 0;
  for (const auto& [id, e] : s.tokens) {
    if (id >= 0) emit(id, b, e);
    b = e;
  }
  if (cacheable) s.insert(serial_, bytes, n, h);
}

// The symbols of a piece before merging, linked by their first byte (ids, prev, next, end); returns the first
// one's position (n when there is none). Byte-level: one per byte. Otherwise one per character in the vocabulary;
// a character missing from it becomes its <0xXX> tokens (byte fallback, when they all exist) or the unknown
// token, unknown characters in a row one token with fuse_unk, as the reference builds its words. (Where a
// vocabulary has some byte tokens but not all, the reference puts a pending unknown token after the byte tokens
// that follow it; rapidrag keeps the text's order.)
size_t BPE::symbols(const uint8_t* bytes, size_t n, Scratch& s) const {
  s.ids.assign(n, -1);
  s.prev.resize(n);
  s.next.resize(n);
  s.end.assign(n, 0);
  if (options_.byte_level) {
    for (size_t k = 0; k < n; ++k) {
      s.ids[k] = byte_ids_[bytes[k]];
      s.prev[k] = static_cast<int32_t>(k) - 1;
      s.next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
      s.end[k] = static_cast<uint32_t>(k + 1);
    }
    return 0;
  }
  int32_t last = -1;
  size_t head = n;
  auto add = [&](int32_t id, size_t b, size_t e) {
    s.ids[b] = id;
    s.end[b] = static_cast<uint32_t>(e);
    s.prev[b] = last;
    s.next[b] = -1;
    if (last >= 0) s.next[static_cast<size_t>(last)] = static_cast<int32_t>(b);
    if (head == n) head = b;
    last = static_cast<int32_t>(b);
  };
  size_t unk_begin = n, unk_end = n;  // a pending unknown token
  auto flush = [&] {
    if (unk_begin < n) add(unk_id_, unk_begin, unk_end);
    unk_begin = unk_end = n;
  };
  for (size_t k = 0; k < n;) {
    const uint8_t lead = bytes[k];
    size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    len = std::min(len, n - k);
    s.key.assign(reinterpret_cast<const char*>(bytes + k), len);
    const auto it = token_ids_.find(s.key);
    if (it != token_ids_.end()) {
      flush();
      add(it->second, k, k + len);
    } else if (options_.byte_fallback &&
               std::all_of(bytes + k, bytes + k + len, [&](uint8_t b) { return byte_ids_[b] >= 0; })) {
      flush();
      for (size_t j = k; j < k + len; ++j) add(byte_ids_[bytes[j]], j, j + 1);
    } else if (unk_id_ >= 0) {
      if (unk_begin < n && options_.fuse_unk) {
        unk_end = k + len;
      } else {
        flush();
        unk_begin = k;
        unk_end = k + len;
      }
    }  // no unknown token: the character is left out, as the reference leaves it
    k += len;
  }
  flush();
  return head;
}

}  // namespace rapidrag
