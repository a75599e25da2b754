// Core test program, no Python: checks the tokenizers and chunker on a small built-in vocabulary, and on
// random text for the chunker's invariants; the search kernels (BM25, exact inner products, fusion, the shards'
// merge) against sorts and sums written out. Built with -DRAPIDRAG_BUILD_TESTS=ON, and run under
// AddressSanitizer and UndefinedBehaviorSanitizer in CI (-DRAPIDRAG_SANITIZE=ON).
// Optional argument: a vocab.txt, to run the random-text checks on a real vocabulary too.
// One program of about 600 lines: every check of the core's parts, each a short function, run by main.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rapidrag/batch.hpp"
#include "rapidrag/bm25.hpp"
#include "rapidrag/exact.hpp"
#include "rapidrag/fusion.hpp"
#include "rapidrag/merge.hpp"
#include "rapidrag/bpe.hpp"
#include "rapidrag/chunker.hpp"
#include "rapidrag/unicode.hpp"
#include "rapidrag/unigram.hpp"
#include "rapidrag/wordpiece.hpp"
#include "rapidrag/sentences.hpp"
#include "rapidrag/words.hpp"

using namespace rapidrag;

namespace {

int failures = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond) && ++failures <= 20) {                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                    \
  } while (0)

std::u32string u32(const std::string& s) { return unicode::utf8_to_u32(s); }

TextRef view(const std::u32string& s) { return TextRef::ucs4(s.data(), s.size()); }

std::vector<std::string> small_vocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", ".", "un", "##aff", "##able",
          "cafe", "東", "京", "a", "##a", "b", "##b", "\xe1\x84\x92"};
}

std::shared_ptr<WordPiece> make(std::vector<std::string> vocab) {
  WordPieceOptions o;
  o.special_tokens = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
  return std::make_shared<WordPiece>(vocab, o);
}

std::vector<int32_t> ids(const WordPiece& wp, const std::string& text) {
  Encoding e;
  const std::u32string t = u32(text);
  wp.encode(view(t), e);
  CHECK(e.size() == wp.count(view(t)));
  return e.ids;
}

void test_tokenizer() {
  auto wp = make(small_vocab());
  CHECK((ids(*wp, "Hello, WORLD!") == std::vector<int32_t>{5, 7, 6, 8}));
  CHECK((ids(*wp, "unaffable") == std::vector<int32_t>{10, 11, 12}));
  CHECK((ids(*wp, "Caf\xc3\xa9") == std::vector<int32_t>{13}));          // precomposed accent stripped
  CHECK((ids(*wp, "cafe\xcc\x81") == std::vector<int32_t>{13}));         // combining accent dropped
  CHECK((ids(*wp, "\xe6\x9d\xb1\xe4\xba\xac") == std::vector<int32_t>{14, 15}));  // CJK split
  CHECK((ids(*wp, "xyz") == std::vector<int32_t>{1}));                    // unknown word
  CHECK((ids(*wp, "hello[SEP]world") == std::vector<int32_t>{5, 3, 6}));  // special token matched raw
  CHECK((ids(*wp, "a\xe2\x80\x8b" "b") == std::vector<int32_t>{16, 19}));  // zero-width space dropped
  CHECK(ids(*wp, "").empty());
  CHECK(ids(*wp, " \t\r\n").empty());
  std::string long_word(101, 'a');
  CHECK((ids(*wp, long_word) == std::vector<int32_t>{1}));
  CHECK(ids(*wp, std::string(100, 'a')).size() == 100);
  // Invalid UTF-8 decodes to U+FFFD, which cleaning drops.
  CHECK((ids(*wp, std::string("a\xff\xfe" "b")) == std::vector<int32_t>{16, 19}));

  // Offsets index code points of the original text.
  Encoding e;
  const std::u32string t = u32("Caf\xc3\xa9 unaffable");
  wp->encode(view(t), e);
  CHECK(e.size() == 4);
  CHECK(e.starts[0] == 0 && e.ends[0] == 4);
  CHECK(e.starts[1] == 5 && e.ends[1] == 7);

  bool threw = false;
  try {
    WordPiece bad({"a", "b"}, WordPieceOptions{});
  } catch (const InvalidArgument&) {
    threw = true;
  }
  CHECK(threw);

  // Batches: padding, truncation, pairs.
  std::vector<std::u32string> texts = {u32("hello world"), u32("unaffable hello , world !"), u32("")};
  std::vector<TextRef> refs;
  for (auto& s : texts) refs.push_back(view(s));
  auto encs = encode_all(*wp, refs, 2);
  std::vector<RowPlan> plans;
  size_t width = 0;
  for (size_t i = 0; i < encs.size(); ++i) {
    plans.push_back(plan_single(encs.length(i), 5, true, 2));
    width = std::max(width, row_width(plans.back(), 2));
  }
  CHECK(width == 5);
  std::vector<int64_t> a(3 * width), b(3 * width), c(3 * width), d(3 * width * 2), len(3);
  fill_rows(encs, nullptr, false, plans, Layout::bert(2, 3, 0), true, {a.data(), b.data(), c.data(), d.data(), len.data(), width}, 2);
  CHECK(a[0] == 2 && a[1] == 5 && a[2] == 6 && a[3] == 3 && a[4] == 0);
  CHECK(len[0] == 4 && len[1] == 5 && len[2] == 2);
  CHECK(a[5 + 4] == 3);  // truncated row still ends with [SEP]
  const RowPlan pp = plan_pair(10, 50, 32, 3);
  CHECK(pp.first == 10 && pp.second == 19);
  const RowPlan pq = plan_pair(40, 50, 32, 3);
  CHECK(pq.first == 28 && pq.second == 1);
}

std::u32string random_text(std::mt19937& rng, size_t n) {
  static const char32_t alphabet[] = {char32_t{0xD800}, U'a', U'b', U'a', U'b', U' ', U' ', U'\n', U'.', U',', U'!', U'\t', U'\u00e9',
                                      U'\u0301', U'\u200b', U'\u6771', U'\uac00', U'\U0001F600', U'\u3002', U'\r',
                                      U'\u00a0', U'\u0000', U'[', U'S', U'E', U'P', U']'};
  std::uniform_int_distribution<size_t> pick(0, sizeof(alphabet) / sizeof(alphabet[0]) - 1);
  std::u32string s;
  for (size_t i = 0; i < n; ++i) s.push_back(alphabet[pick(rng)]);
  return s;
}

void check_chunks(const WordPiece& wp, const Chunker& ch, const std::u32string& text) {
  const auto spans = ch.split(view(text));
  std::vector<bool> covered(text.size(), false);
  size_t prev_start = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    const ChunkSpan& s = spans[k];
    CHECK(s.start < s.end && s.end <= text.size());
    if (k > 0) CHECK(s.start > prev_start);
    prev_start = s.start;
    const size_t count = wp.count(view(text).slice(s.start, s.end));
    CHECK(count == s.n_tokens);
    if (count > ch.max_tokens()) {
      // Allowed only for a single character that alone gives more tokens than max_tokens.
      Encoding e;
      wp.encode(view(text).slice(s.start, s.end), e);
      bool one_char = true;
      for (size_t t = 1; t < e.size(); ++t) one_char = one_char && e.starts[t] == e.starts[0];
      CHECK(one_char);
      if (!one_char && failures < 3) {
        std::fprintf(stderr, "max %zu ov %zu chunk %u-%u n %u:", ch.max_tokens(), ch.overlap(), s.start, s.end, s.n_tokens);
        for (size_t i = s.start; i < s.end; ++i) std::fprintf(stderr, " %x", static_cast<unsigned>(text[i]));
        std::fprintf(stderr, "\n");
      }
    }
    for (size_t i = s.start; i < s.end; ++i) covered[i] = true;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (!covered[i]) CHECK(unicode::record(text[i]).flags & unicode::kSpace);
  }
}

void test_chunker(const std::shared_ptr<WordPiece>& wp, int rounds) {
  std::mt19937 rng(1234);
  for (size_t max_tokens : {1, 2, 8, 16, 64}) {
    for (size_t overlap : {0, 1, 4}) {
      if (overlap >= max_tokens) continue;
      Chunker ch(wp, max_tokens, overlap);
      for (int r = 0; r < rounds; ++r) check_chunks(*wp, ch, random_text(rng, rng() % 400));
    }
  }
  Chunker ch(wp, 8, 0);
  CHECK(ch.split(view(u32(""))).empty());
  CHECK(ch.split(view(u32("  \n\t "))).empty());
  const auto only_removed = ch.split(view(u32(" \xe2\x80\x8b ")));
  CHECK(only_removed.size() == 1 && only_removed[0].n_tokens == 0);
  // Two paragraphs that fit apart but not together are cut at the blank line.
  const std::u32string paras = u32("hello world hello world.\n\nhello world hello world");
  Chunker ch6(wp, 6, 0);
  const auto spans = ch6.split(view(paras));
  CHECK(spans.size() == 2 && spans[0].end == 24 && spans[1].start == 26);
  bool threw = false;
  try {
    Chunker bad(wp, 4, 4);
  } catch (const InvalidArgument&) {
    threw = true;
  }
  CHECK(threw);
}

void test_words(int rounds) {
  CHECK((split_words(view(u32("Hello, WORLD_x 42 caf\xc3\xa9!"))) ==
         std::vector<std::string>{"hello", "world_x", "42", "caf\xc3\xa9"}));
  CHECK(split_words(view(u32(""))).empty() && split_words(view(u32(" ,. "))).empty());
  {  // word_prefixes: the longest term beginning each word, where the word begins (code points of the text)
    std::vector<int64_t> starts, ids;
    const std::u32string t = u32("Stem cells, \xc3\x89t\xc3\xa9 cellular stems x-cell");
    word_prefixes(view(t), {"cell", "stem", "cellu", "\xc3\xa9t", ""}, starts, ids);
    CHECK((starts == std::vector<int64_t>{0, 5, 12, 16, 25, 33}));
    CHECK((ids == std::vector<int64_t>{1, 0, 3, 2, 1, 0}));
    starts.clear();
    ids.clear();
    word_prefixes(view(t), {}, starts, ids);
    CHECK(starts.empty() && ids.empty());
  }
  WordDictionary dict;
  std::vector<int64_t> word_ids, row_splits;
  const std::u32string a = u32("b a b"), b = u32(""), c = u32("A c");
  dict.add_batch({view(a), view(b), view(c)}, word_ids, row_splits);
  CHECK((word_ids == std::vector<int64_t>{0, 1, 0, 1, 2}));
  CHECK((row_splits == std::vector<int64_t>{0, 3, 3, 5}));
  CHECK(dict.size() == 3 && dict.word(2) == "c");
  // Random text, lone surrogates and every plane included: words are non-empty, and splitting is stable.
  std::mt19937 rng(99);
  for (int r = 0; r < rounds; ++r) {
    const std::u32string t = random_text(rng, rng() % 300);
    const auto words = split_words(view(t));
    for (const auto& w : words) CHECK(!w.empty());
    std::vector<int64_t> starts, ids;  // every word begins with its own first byte...
    std::vector<std::string> firsts;
    for (int b = 1; b < 256; ++b) firsts.push_back(std::string(1, static_cast<char>(b)));
    word_prefixes(view(t), firsts, starts, ids);
    CHECK(starts.size() == words.size());  // ...so each word is found once, in order, inside the text
    for (size_t i = 0; i < starts.size(); ++i) {
      CHECK(static_cast<uint8_t>(firsts[static_cast<size_t>(ids[i])][0]) == static_cast<uint8_t>(words[i][0]));
      CHECK(starts[i] >= 0 && static_cast<size_t>(starts[i]) < t.size() && (i == 0 || starts[i] > starts[i - 1]));
    }
    std::vector<int64_t> ids2, splits2;
    dict.add_batch({view(t)}, ids2, splits2);
    CHECK(ids2.size() == words.size());
    for (size_t i = 0; i < words.size(); ++i) CHECK(dict.word(static_cast<size_t>(ids2[i])) == words[i]);
  }
}

// Sentence marks: candidate ends with the word before and what follows, blank lines; then random text (marks are
// in order, inside the range, and each candidate is terminal punctuation, closers, whitespace, something).
void test_sentence_marks(int rounds) {
  const std::u32string t = u32("Dr. Smith left.  (\"Why?\") Yes...\n \nEnd. ( ");
  SentenceMarks m = sentence_marks(view(t), 0, t.size());
  CHECK((m.puncts == std::vector<int64_t>{2, 14, 22, 29, 38}));
  CHECK((m.ends == std::vector<int64_t>{3, 15, 25, 32, 39}));
  CHECK((m.words == std::vector<int64_t>{0, 10, 17, 26, 35}));
  CHECK((m.firsts == std::vector<int64_t>{4, 19, 26, 35, 40}));  // the last: an opening bracket alone
  CHECK((m.paragraphs == std::vector<int64_t>{32}));
  m = sentence_marks(view(t), 5, 20);  // a range: nothing past its end is looked at
  CHECK((m.puncts == std::vector<int64_t>{14}) && (m.firsts == std::vector<int64_t>{19}));
  std::mt19937 rng(7);
  for (int r = 0; r < rounds; ++r) {
    const std::u32string s = random_text(rng, rng() % 200);
    const size_t a = s.empty() ? 0 : rng() % s.size(), b = a + (s.size() > a ? rng() % (s.size() - a + 1) : 0);
    const SentenceMarks k = sentence_marks(view(s), a, b);
    CHECK(k.puncts.size() == k.ends.size() && k.ends.size() == k.firsts.size() && k.firsts.size() == k.words.size());
    for (size_t i = 0; i < k.puncts.size(); ++i) {
      CHECK(k.words[i] <= k.puncts[i] && k.puncts[i] < k.ends[i] && k.ends[i] < k.firsts[i]);
      CHECK(k.puncts[i] >= static_cast<int64_t>(a) && k.firsts[i] < static_cast<int64_t>(b));
      CHECK(i == 0 || k.puncts[i] >= k.ends[i - 1]);
    }
    for (const int64_t p : k.paragraphs) CHECK(p >= static_cast<int64_t>(a) && p < static_cast<int64_t>(b) && s[p] == U'\n');
  }
}

// Byte-level BPE: every byte's character, merges that build "Ġthe" and "é" (two bytes), then random text
// (invariants: every byte is covered once, in order; offsets within the text and non-decreasing).
void test_bpe(int rounds) {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back(BPE::byte_char(static_cast<uint8_t>(b)));
  const std::string sp = BPE::byte_char(' ');
  const std::string e1 = BPE::byte_char(0xC3), e2 = BPE::byte_char(0xA9);
  vocab.push_back("th");
  vocab.push_back(sp + "th");
  vocab.push_back(sp + "the");
  vocab.push_back(e1 + e2);
  vocab.push_back("<s>");
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {sp, "th"}, {sp + "th", "e"}, {e1, e2}};
  BPEOptions o;
  o.pattern = SplitPattern::kGpt2;
  o.trim_offsets = true;
  o.special_tokens = {"<s>"};
  const BPE bpe(vocab, merges, o);
  Encoding enc;
  const std::u32string text = u32("the theme <s>caf\xc3\xa9");
  bpe.encode(view(text), enc);
  // "the" -> t,h,e -> th,e ; " theme" -> Ġthe,m,e ; " " -> Ġ ; "<s>" ; "café" -> c,a,f,é
  const std::vector<int32_t> expect = {bpe.token_to_id("th"), bpe.token_to_id("e"), bpe.token_to_id(sp + "the"),
                                       bpe.token_to_id("m"),  bpe.token_to_id("e"), bpe.token_to_id(sp),
                                       bpe.token_to_id("<s>"), bpe.token_to_id("c"), bpe.token_to_id("a"),
                                       bpe.token_to_id("f"),  bpe.token_to_id(e1 + e2)};
  CHECK(enc.ids == expect);
  CHECK(enc.size() == expect.size() && enc.starts[2] == 4 && enc.ends[2] == 7);  // trimmed: "the" of " theme"
  CHECK(enc.size() == expect.size() && enc.starts[10] == 16 && enc.ends[10] == 17);  // é: one code point
  std::mt19937 rng(7);
  const char32_t alphabet[] = {U'a', U't', U'h', U'e', U' ', U' ', U'\n', U'\'', U'1', U'\u00e9', U'\u6771', U'!',
                               U'\U0001F600', U'<', U's', U'>'};
  for (int r = 0; r < rounds; ++r) {
    std::u32string t;
    const size_t n = rng() % 60;
    for (size_t k = 0; k < n; ++k) t.push_back(alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))]);
    for (SplitPattern pattern : {SplitPattern::kGpt2, SplitPattern::kLlama3, SplitPattern::kNone}) {
      BPEOptions opt;
      opt.pattern = pattern;
      opt.add_prefix_space = r % 2 == 0;
      const BPE model(vocab, merges, opt);
      Encoding e;
      model.encode(view(t), e);
      for (size_t k = 0; k < e.size(); ++k) {
        CHECK(e.starts[k] <= e.ends[k] && e.ends[k] <= t.size());
        if (k) CHECK(e.starts[k - 1] <= e.starts[k]);
      }
      CHECK(model.count(view(t)) == e.size());
    }
  }
}

// SentencePiece-style BPE: characters as symbols merged by rank, byte fallback for a character outside the
// vocabulary, unknown characters fused into one token without it, under Metaspace; then random text.
void test_sentencepiece_bpe(int rounds) {
  const std::string meta = "\xe2\x96\x81";
  std::vector<std::string> vocab = {"<unk>", meta, "t", "h", "e", "th", meta + "th", meta + "the", "a"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab.push_back(name);
  }
  const std::vector<std::pair<std::string, std::string>> merges = {{"t", "h"}, {meta, "th"}, {meta + "th", "e"}};
  BPEOptions o;
  o.byte_level = false;
  o.pattern = SplitPattern::kMetaspace;
  o.metaspace.prepend = PrependScheme::kFirst;
  o.metaspace.split = false;
  o.byte_fallback = true;
  o.unk_token = "<unk>";
  o.fuse_unk = true;
  const BPE bpe(vocab, merges, o);
  Encoding enc;
  bpe.encode(view(u32("the \xc3\xa9")), enc);  // ▁the ▁ <0xC3> <0xA9>
  CHECK((enc.ids == std::vector<int32_t>{bpe.token_to_id(meta + "the"), bpe.token_to_id(meta),
                                         bpe.token_to_id("<0xC3>"), bpe.token_to_id("<0xA9>")}));
  CHECK(enc.starts[2] == 4 && enc.ends[2] == 5 && enc.starts[3] == 4 && enc.ends[3] == 5);
  BPEOptions no_bytes = o;
  no_bytes.byte_fallback = false;
  const BPE unk(vocab, merges, no_bytes);
  Encoding fused;
  unk.encode(view(u32("a\xc3\xa9\xc3\xa9" "a")), fused);  // ▁ a <unk: éé> a
  CHECK((fused.ids == std::vector<int32_t>{1, 8, 0, 8}) && fused.starts[2] == 1 && fused.ends[2] == 3);
  std::mt19937 rng(17);
  const char32_t alphabet[] = {U'a', U't', U'h', U'e', U' ', U'\u2581', U'\u00e9', U'\U0001F600', U'x'};
  for (int r = 0; r < rounds; ++r) {
    std::u32string t;
    const size_t n = rng() % 50;
    for (size_t k = 0; k < n; ++k) t.push_back(alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))]);
    BPEOptions opt = o;
    opt.byte_fallback = r % 2 == 0;
    opt.fuse_unk = r % 3 != 0;
    opt.metaspace.split = r % 5 == 0;
    const BPE model(vocab, merges, opt);
    Encoding e;
    model.encode(view(t), e);
    for (size_t k = 0; k < e.size(); ++k) CHECK(e.starts[k] <= e.ends[k] && e.ends[k] <= t.size());
    CHECK(model.count(view(t)) == e.size());
  }
}

// Unigram: the best segmentation by score, unknown characters fused into one token, byte fallback, then random
// text (invariants as for BPE) under every prepend scheme.
void test_unigram(int rounds) {
  const std::string m = "\xe2\x96\x81";  // U+2581
  const std::vector<std::pair<std::string, double>> vocab = {
      {"<unk>", 0.0}, {"<s>", 0.0}, {m, -2.0},      {m + "the", -1.0}, {"t", -3.0},  {"h", -3.0}, {"e", -3.0},
      {"he", -2.5},   {"a", -3.0},  {m + "a", -2.0}, {"<0x21>", -5.0},  {"<0xC3>", -5.0}, {"<0xA9>", -5.0}};
  UnigramOptions o;
  o.special_tokens = {"<s>"};
  const Unigram uni(vocab, 0, o);
  Encoding enc;
  const std::u32string text = u32("the hea<s>");
  uni.encode(view(text), enc);
  // "▁the" | "▁" "he" "a" | <s>
  const std::vector<int32_t> expect = {3, 2, 7, 8, 1};
  CHECK(enc.ids == expect);
  CHECK(enc.size() == 5 && enc.starts[0] == 0 && enc.ends[0] == 3 && enc.starts[1] == 3 && enc.ends[1] == 4);
  Encoding unk;
  uni.encode(view(u32("the x\xc3\xa9!")), unk);  // "x", "é" and "!" unknown: one fused token
  CHECK(unk.ids.size() == 3 && unk.ids[2] == 0 && unk.starts[2] == 4 && unk.ends[2] == 7);
  o.byte_fallback = true;
  const Unigram bytes(vocab, 0, o);
  Encoding fallback;
  bytes.encode(view(u32("the \xc3\xa9!")), fallback);  // "é!" falls back to <0xC3> <0xA9> <0x21>
  CHECK(fallback.ids.size() == 5 && fallback.ids[2] == 11 && fallback.ids[3] == 12 && fallback.ids[4] == 10);
  std::mt19937 rng(11);
  const char32_t alphabet[] = {U'a', U't', U'h', U'e', U' ', U' ', U'\n', U'x', U'\u00e9', U'\u6771', U'!',
                               U'\U0001F600', U'<', U's', U'>', U'\u2581', U'e', U'\u0301'};
  for (int r = 0; r < rounds; ++r) {
    std::u32string t;
    const size_t n = rng() % 60;
    for (size_t k = 0; k < n; ++k) t.push_back(alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))]);
    for (PrependScheme scheme : {PrependScheme::kAlways, PrependScheme::kFirst, PrependScheme::kNever}) {
      UnigramOptions opt;
      opt.metaspace.prepend = scheme;
      opt.metaspace.split = r % 2 == 0;
      if (r % 3 == 0) opt.normalizer.add({NormalizerStep::Kind::kNfc});
      opt.byte_fallback = r % 5 == 0;
      opt.special_tokens = {"<s>"};
      const Unigram model(vocab, 0, opt);
      Encoding e;
      model.encode(view(t), e);
      for (size_t k = 0; k < e.size(); ++k) CHECK(e.starts[k] <= e.ends[k] && e.ends[k] <= t.size());
      CHECK(model.count(view(t)) == e.size());
    }
  }
}

// A character map of one key, "x" -> "yy", laid out as darts-clone lays out a trie.
std::string one_key_charsmap() {
  std::vector<uint32_t> units(122, 0);
  units[0] = 1u << 10;                                 // the root: its children at offset 1
  units[121] = (1u << 10) | (1u << 8) | 0x78u;         // 'x' at 1 ^ 0x78, a key ends here, its leaf at 121 ^ 1
  units[120] = 0x80000000u;                            // the leaf: replacement at offset 0
  std::string blob(4, '\0');
  const uint32_t bytes = static_cast<uint32_t>(units.size() * 4);
  for (int k = 0; k < 4; ++k) blob[static_cast<size_t>(k)] = static_cast<char>((bytes >> (8 * k)) & 0xFF);
  for (uint32_t u : units) {
    for (int k = 0; k < 4; ++k) blob.push_back(static_cast<char>((u >> (8 * k)) & 0xFF));
  }
  return blob + std::string("yy\0", 3);
}

void test_normalizer(int rounds) {
  using Kind = NormalizerStep::Kind;
  Normalizer map;
  NormalizerStep pre{Kind::kPrecompiled};
  pre.charsmap = std::make_shared<const CharsMap>(one_key_charsmap());
  map.add(pre);
  std::vector<char32_t> cps = {U'a', U'x', U'b'};
  std::vector<Span> spans = {{0, 1}, {1, 2}, {2, 3}};
  NormalizeScratch scratch;
  map.apply(cps, spans, scratch);
  CHECK((cps == std::vector<char32_t>{U'a', U'y', U'y', U'b'}));
  CHECK(spans[1].start == 1 && spans[2].start == 1 && spans[2].end == 2 && spans[3].start == 2);
  bool refused = false;
  try {
    CharsMap bad(std::string("\x08\0\0\0ab", 6));
  } catch (const InvalidArgument&) {
    refused = true;
  }
  CHECK(refused);
  // Every step in one sequence, on random text, and character maps of random units: spans stay in the text.
  std::mt19937 rng(13);
  Normalizer all = map;
  NormalizerStep strip{Kind::kStrip};
  strip.left = strip.right = true;
  NormalizerStep run{Kind::kReplaceRun};
  run.pattern = U" ";
  run.min_run = 2;
  run.content = U"\u2581";
  NormalizerStep literal{Kind::kReplace};
  literal.pattern = U"ab";
  NormalizerStep prepend{Kind::kPrepend};
  prepend.content = U"\u2581";
  for (const auto& step : {strip, run, literal, NormalizerStep{Kind::kLowercase}, NormalizerStep{Kind::kNfc}, prepend}) {
    all.add(step);
  }
  const char32_t alphabet[] = {U'a', U'b', U'x', U' ', U' ', U'\n', U'A', U'\u0130', U'e', U'\u0301', U'\uFB01',
                               U'\U0001F468', U'\u200D', U'\U0001F1EF', U'\u1100', U'\u1161', U'\r', U'\u0915',
                               U'\u094D'};
  for (int r = 0; r < rounds; ++r) {
    const size_t n = rng() % 40;
    cps.clear();
    spans.clear();
    for (size_t k = 0; k < n; ++k) {
      cps.push_back(alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))]);
      spans.push_back({static_cast<uint32_t>(k), static_cast<uint32_t>(k + 1)});
    }
    std::string blob(4, '\0');
    const uint32_t units = 1 + rng() % 300;
    for (int k = 0; k < 4; ++k) blob[static_cast<size_t>(k)] = static_cast<char>(((units * 4) >> (8 * k)) & 0xFF);
    for (uint32_t k = 0; k < units * 4 + rng() % 16; ++k) blob.push_back(static_cast<char>(rng() & 0xFF));
    Normalizer random = all;
    NormalizerStep noise{Kind::kPrecompiled};
    noise.charsmap = std::make_shared<const CharsMap>(blob);
    random.add(noise);
    random.apply(cps, spans, scratch);
    CHECK(cps.size() == spans.size());
    for (const Span& sp : spans) CHECK(sp.start < sp.end && sp.end <= n);
  }
}

// The rows a selection must give: allowed, above 0, best first by score then row; at most one per group.
std::vector<int64_t> sorted_best(const std::vector<float>& scores, const std::vector<char>& allowed,
                                 const std::vector<int64_t>* groups, size_t k) {
  std::vector<int64_t> order;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (allowed[i] && scores[i] > 0) order.push_back(static_cast<int64_t>(i));
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<int64_t> out, seen;
  for (int64_t r : order) {
    if (groups && std::find(seen.begin(), seen.end(), (*groups)[r]) != seen.end()) continue;
    if (groups) seen.push_back((*groups)[r]);
    out.push_back(r);
    if (out.size() == k) break;
  }
  return out;
}

void test_search_kernels(int rounds) {
  std::mt19937 rng(11);
  for (int round = 0; round < rounds; ++round) {
    const size_t n = 1 + rng() % 700, k = 1 + rng() % 300;
    std::vector<float> scores(n);
    std::vector<char> allowed(n);
    std::vector<int64_t> groups(n);
    for (size_t i = 0; i < n; ++i) {
      scores[i] = static_cast<float>(rng() % 6) * 0.5f;  // many ties, and zeros
      allowed[i] = rng() % 5 != 0;
      groups[i] = static_cast<int64_t>(rng() % (1 + n / 3));
    }
    const bool* ok = reinterpret_cast<const bool*>(allowed.data());
    std::vector<int64_t> rows(k);
    std::vector<float> best(k);
    CHECK(sorted_best(scores, allowed, nullptr, k) ==
          std::vector<int64_t>(rows.begin(), rows.begin() + bm25::select(scores.data(), ok, n, rows.data(), best.data(), k)));
    CHECK(sorted_best(scores, allowed, nullptr, k) ==
          std::vector<int64_t>(rows.begin(), rows.begin() + bm25::select_many(scores.data(), ok, n, rows.data(), best.data(), k)));
    const size_t m = bm25::select_grouped(scores.data(), ok, groups.data(), n, rows.data(), best.data(), k);
    CHECK(sorted_best(scores, allowed, &groups, k) == std::vector<int64_t>(rows.begin(), rows.begin() + m));
  }
  // Scoring: a posting past the rows or a pointer past the postings is refused, not written.
  const int64_t terms[] = {0, 2}, ptr[] = {0, 2, 3, 4}, bad_ptr[] = {0, 2, 3, 9};
  const int32_t docs[] = {0, 1, 1, 2}, bad_docs[] = {0, 1, 1, 5};
  const float tfs[] = {1, 2, 1, 3}, weights[] = {1.0f, 0.5f}, norms[] = {1, 1, 1};
  float got[3] = {0, 0, 0};
  CHECK(bm25::accumulate(got, 3, norms, terms, weights, 2, {nullptr, ptr, 3, docs, tfs, 4}, 1.0f));
  CHECK(got[0] == 0.5f && got[1] == 2.0f / 3.0f && got[2] == 0.5f * 3.0f / 4.0f);
  CHECK(!bm25::accumulate(got, 3, norms, terms, weights, 2, {nullptr, ptr, 3, bad_docs, tfs, 4}, 1.0f));
  CHECK(!bm25::accumulate(got, 3, norms, terms, weights, 2, {nullptr, bad_ptr, 3, docs, tfs, 4}, 1.0f));
  const int64_t held[] = {0, 1, 2};  // the same segment with its terms named: the same scores
  float named[3] = {0, 0, 0};
  CHECK(bm25::accumulate(named, 3, norms, terms, weights, 2, {held, ptr, 3, docs, tfs, 4}, 1.0f));
  CHECK(std::equal(named, named + 3, std::vector<float>{0.5f, 2.0f / 3.0f, 0.375f}.begin()));
  // Exact inner products: every row count around the kernel's groups of eight, dimensions with and without a tail.
  for (size_t dim : {1u, 7u, 16u, 384u}) {
    std::vector<float> vectors(50 * dim), queries(2 * dim);
    for (float& x : vectors) x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;  // sums exact in float
    for (float& x : queries) x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.5f;
    for (size_t n_rows = 0; n_rows <= 21; ++n_rows) {
      std::vector<int64_t> picked(n_rows);
      for (int64_t& r : picked) r = static_cast<int64_t>(rng() % 50);
      std::vector<float> got(2 * n_rows, -1.0f);
      CHECK(exact::inner_products(queries.data(), 2, vectors.data(), 50, picked.data(), n_rows, dim, got.data()));
      for (size_t i = 0; i < 2; ++i) {
        for (size_t j = 0; j < n_rows; ++j) {
          float want = 0.0f;
          for (size_t t = 0; t < dim; ++t) want += queries[i * dim + t] * vectors[static_cast<size_t>(picked[j]) * dim + t];
          CHECK(got[i * n_rows + j] == want);
        }
      }
    }
    const int64_t outside[] = {3, 50};
    float untouched[2] = {-1.0f, -1.0f};
    CHECK(!exact::inner_products(queries.data(), 1, vectors.data(), 50, outside, 2, dim, untouched));
    CHECK(untouched[0] == -1.0f);
  }
  // Fusion: RRF sums weight / (rrf_k + rank); rows come back ascending, once.
  const int64_t lists[] = {5, 3, 3, 9}, splits[] = {0, 2, 4};
  const double w[] = {1.0, 2.0};
  std::vector<int64_t> fused_rows;
  std::vector<double> fused;
  fusion::reciprocal_rank(lists, splits, 2, w, 0.0, fused_rows, fused);
  CHECK((fused_rows == std::vector<int64_t>{3, 5, 9}) && (fused == std::vector<double>{0.5 + 2.0, 1.0, 1.0}));
  const double raw[] = {2.0, 1.0, 7.0, 7.0};
  fusion::weighted(lists, raw, splits, 2, w, false, fused_rows, fused);  // the second list's scores are equal: 1
  CHECK((fused == std::vector<double>{0.0 + 2.0, 1.0 + 0.0, 0.0 + 2.0}));
  // The merge: heads by score, then by row key; a list out of order is refused.
  const float s[] = {3, 1, 3, 2};
  const int64_t r[] = {4, 1, 2, 0}, d[] = {0, 1, 2, 3}, sp[] = {0, 2, 4}, sh[] = {1, 0};
  int64_t out_rows[4], out_docs[4];
  float out_scores[4];
  CHECK(shards::merge(s, r, d, sp, sh, 2, 2, out_rows, out_docs, out_scores, 4) == 4);
  CHECK((std::vector<int64_t>(out_rows, out_rows + 4) == std::vector<int64_t>{4, 9, 0, 3}));
  const float unordered[] = {1, 3, 3, 2};
  CHECK(shards::merge(unordered, r, d, sp, sh, 2, 2, out_rows, out_docs, out_scores, 4) == -1);
}

std::vector<std::string> read_vocab(const char* path) {
  std::ifstream f(path);
  std::vector<std::string> v;
  std::string line;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    v.push_back(line);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  test_tokenizer();
  test_chunker(make(small_vocab()), 200);
  test_words(500);
  test_sentence_marks(500);
  test_bpe(300);
  test_sentencepiece_bpe(300);
  test_unigram(300);
  test_normalizer(2000);
  test_search_kernels(400);
  if (argc > 1) test_chunker(make(read_vocab(argv[1])), 50);
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("test_core: all checks passed\n");
  return 0;
}
