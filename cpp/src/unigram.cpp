#include "rapidrag/unigram.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "rapidrag/unicode.hpp"

namespace rapidrag {
namespace {

constexpr double kUnkPenalty = 10.0;  // the unknown token scores this much below the lowest piece

inline size_t utf8_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

struct Node {
  double score;
  int32_t starts_at;  // -1: not reached
  int32_t id;
};

struct Piece {
  uint32_t begin, end;
  int32_t id;
};

}  // namespace

struct Unigram::Scratch {
  PartScratch part;
  std::vector<char32_t> cps;  // after Metaspace
  std::vector<Span> owners;
  std::vector<uint8_t> bytes;
  std::vector<Span> byte_owners;
  std::vector<Node> lattice;
  std::vector<Piece> pieces;
  std::string text;
};

Unigram::Unigram(const std::vector<std::pair<std::string, double>>& vocab, int32_t unk_id, UnigramOptions options)
    : options_(std::move(options)), unk_id_(unk_id) {
  if (vocab.empty()) throw InvalidArgument("the vocabulary is empty");
  if (unk_id < 0 || static_cast<size_t>(unk_id) >= vocab.size()) {
    throw InvalidArgument("unk_id " + std::to_string(unk_id) + " is not a token of the vocabulary");
  }
  std::vector<std::pair<std::string, int32_t>> keys;
  keys.reserve(vocab.size());
  double min_score = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < vocab.size(); ++i) {
    const auto& [piece, score] = vocab[i];
    pieces_.push_back(piece);
    scores_.push_back(score);
    token_ids_[piece] = static_cast<int32_t>(i);  // a repeated piece: the last id, as the reference keeps
    min_score = std::min(min_score, score);
  }
  for (const auto& [piece, id] : token_ids_) keys.emplace_back(piece, id);
  trie_ = DoubleArray(std::move(keys));
  unk_score_ = min_score - kUnkPenalty;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = token_ids_.find(name);
    byte_ids_[b] = it == token_ids_.end() ? -1 : it->second;
  }
  for (const auto& sp : options_.special_tokens) {
    const auto it = token_ids_.find(sp);
    if (it == token_ids_.end()) throw InvalidArgument("special token '" + sp + "' is not in the vocabulary");
    specials_.add(unicode::utf8_to_u32(sp), it->second);
  }
}

int32_t Unigram::token_to_id(const std::string& token) const {
  const auto it = token_ids_.find(token);
  return it == token_ids_.end() ? -1 : it->second;
}

const std::string& Unigram::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) {
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(pieces_.size()));
  }
  return pieces_[static_cast<size_t>(id)];
}

void Unigram::encode(const TextRef& text, Encoding& out) const {
  thread_local Scratch scratch;
  for_each_part(text, specials_, options_.normalizer, scratch.part, out,
                [&](const char32_t* cps, const Span* owners, size_t n, size_t begin) {
                  encode_segment(cps, owners, n, begin == 0, out, scratch);
                });
}

void Unigram::encode_segment(const char32_t* cps, const Span* owners, size_t n, bool text_start, Encoding& out,
                             Scratch& s) const {
  options_.metaspace.pieces(cps, owners, n, text_start, s.cps, s.owners, [&](const char32_t* p, const Span* o, size_t m) {
    s.bytes.clear();
    s.byte_owners.clear();
    for (size_t k = 0; k < m; ++k) utf8_append(p[k], o[k], s.bytes, s.byte_owners);
    encode_piece(s.bytes.data(), s.byte_owners.data(), s.bytes.size(), out, s);
  });
}

void Unigram::encode_piece(const uint8_t* bytes, const Span* owners, size_t n, Encoding& out, Scratch& s) const {
  if (n == 0) return;
  // The best segmentation (Viterbi): the highest total score, the shorter piece first among equal scores, and
  // the unknown token for a character no piece starts with.
  s.lattice.assign(n + 1, Node{0.0, -1, -1});
  s.lattice[0].starts_at = 0;
  for (size_t at = 0; at < n;) {
    const double here = s.lattice[at].score;
    const size_t char_len = std::min(utf8_length(bytes[at]), n - at);
    bool single = false;
    int32_t node = DoubleArray::root();
    for (size_t k = at; k < n; ++k) {
      node = trie_.step(node, bytes[k]);
      if (node == DoubleArray::kNone) break;
      const int32_t id = trie_.value(node);
      if (id == DoubleArray::kNone) continue;
      Node& target = s.lattice[k + 1];
      const double score = here + scores_[static_cast<size_t>(id)];
      if (target.starts_at < 0 || score > target.score) target = {score, static_cast<int32_t>(at), id};
      if (k + 1 - at == char_len) single = true;
    }
    if (!single) {
      Node& target = s.lattice[at + char_len];
      const double score = here + unk_score_;
      if (target.starts_at < 0 || score > target.score) target = {score, static_cast<int32_t>(at), unk_id_};
    }
    at += char_len;
  }
  // Back from the end; runs of unknown tokens are fused into one.
  s.pieces.clear();
  for (size_t end = n; end > 0;) {
    const Node& node = s.lattice[end];
    const auto start = static_cast<uint32_t>(node.starts_at);
    if (node.id == unk_id_ && !s.pieces.empty() && s.pieces.back().id == unk_id_ && s.pieces.back().begin == end) {
      s.pieces.back().begin = start;
    } else {
      s.pieces.push_back({start, static_cast<uint32_t>(end), node.id});
    }
    end = start;
  }
  std::reverse(s.pieces.begin(), s.pieces.end());
  for (const Piece& piece : s.pieces) {
    int32_t id = piece.id;
    if (id == unk_id_) {  // the fused run, looked up as a string as the reference does
      s.text.assign(reinterpret_cast<const char*>(bytes + piece.begin), piece.end - piece.begin);
      const auto it = token_ids_.find(s.text);
      if (it != token_ids_.end()) {
        id = it->second;
      } else if (options_.byte_fallback &&
                 std::all_of(bytes + piece.begin, bytes + piece.end, [&](uint8_t b) { return byte_ids_[b] >= 0; })) {
        for (uint32_t k = piece.begin; k < piece.end; ++k) {
          out.ids.push_back(byte_ids_[bytes[k]]);
          out.starts.push_back(owners[piece.begin].start);
          out.ends.push_back(owners[piece.end - 1].end);
          if (out.track_words) out.word_starts.push_back(k == 0 ? 1 : 0);
        }
        continue;
      }
    }
    out.ids.push_back(id);
    out.starts.push_back(owners[piece.begin].start);
    out.ends.push_back(owners[piece.end - 1].end);
    if (out.track_words) out.word_starts.push_back(piece.begin == 0 ? 1 : 0);
  }
}

}  // namespace rapidrag
