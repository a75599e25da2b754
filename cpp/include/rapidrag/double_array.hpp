// A double-array trie over UTF-8 bytes: one array access per byte when matching word pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rapidrag {

class DoubleArray {
 public:
  static constexpr int32_t kNone = -1;

  DoubleArray() = default;
  // keys: (UTF-8 bytes, value); a repeated key keeps its last value. Empty keys are ignored.
  explicit DoubleArray(std::vector<std::pair<std::string, int32_t>> keys);

  static constexpr int32_t root() { return 0; }
  // The node reached from `node` by `byte`, or kNone.
  int32_t step(int32_t node, uint8_t byte) const {
    const int32_t next = units_[static_cast<size_t>(node)].base + byte;
    if (static_cast<size_t>(next) < units_.size() && units_[static_cast<size_t>(next)].check == node) return next;
    return kNone;
  }
  // The value of the key that ends at `node`, or kNone.
  int32_t value(int32_t node) const { return units_[static_cast<size_t>(node)].value; }
  size_t size() const { return units_.size(); }

 private:
  struct Unit {
    int32_t base = 0;
    int32_t check = kNone;  // parent node; kNone = free
    int32_t value = kNone;
  };
  std::vector<Unit> units_;
};

// Steps through the UTF-8 bytes of one code point; kNone when the trie has no such path.
inline int32_t step_code_point(const DoubleArray& trie, int32_t node, char32_t c) {
  if (c < 0x80) return trie.step(node, static_cast<uint8_t>(c));
  uint8_t buf[4];
  int len;
  if (c < 0x800) {
    buf[0] = static_cast<uint8_t>(0xC0 | (c >> 6));
    buf[1] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    len = 2;
  } else if (c < 0x10000) {
    buf[0] = static_cast<uint8_t>(0xE0 | (c >> 12));
    buf[1] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
    buf[2] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    len = 3;
  } else {
    buf[0] = static_cast<uint8_t>(0xF0 | (c >> 18));
    buf[1] = static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F));
    buf[2] = static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F));
    buf[3] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    len = 4;
  }
  for (int i = 0; i < len && node != DoubleArray::kNone; ++i) node = trie.step(node, buf[i]);
  return node;
}

}  // namespace rapidrag
