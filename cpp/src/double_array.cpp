#include "rapidrag/double_array.hpp"

#include <algorithm>
#include <deque>

namespace rapidrag {
namespace {

// A pointer trie, the intermediate form from which the double array is laid out.
struct TrieNode {
  std::vector<std::pair<uint8_t, uint32_t>> children;  // sorted by byte
  int32_t value = DoubleArray::kNone;
};

}  // namespace

DoubleArray::DoubleArray(std::vector<std::pair<std::string, int32_t>> keys) {
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TrieNode> trie(1);
  for (const auto& [key, value] : keys) {
    if (key.empty()) continue;
    uint32_t node = 0;
    for (char ch : key) {
      const auto byte = static_cast<uint8_t>(ch);
      auto& kids = trie[node].children;
      // Keys are sorted, so a child for this byte, if any, is the last one added.
      if (!kids.empty() && kids.back().first == byte) {
        node = kids.back().second;
      } else {
        const auto child = static_cast<uint32_t>(trie.size());
        trie[node].children.emplace_back(byte, child);
        trie.emplace_back();
        node = child;
      }
    }
    trie[node].value = value;  // the later of equal keys wins
  }

  units_.assign(256 + 1, Unit{});
  units_[0].check = 0;  // the root is its own parent, so it is never taken as free
  size_t search_from = 1;
  std::deque<std::pair<uint32_t, int32_t>> queue{{0u, 0}};  // (trie node, unit)
  while (!queue.empty()) {
    const auto [tnode, unit] = queue.front();
    queue.pop_front();
    units_[static_cast<size_t>(unit)].value = trie[tnode].value;
    const auto& kids = trie[tnode].children;
    if (kids.empty()) continue;
    while (search_from < units_.size() && units_[search_from].check != kNone) ++search_from;
    // First base at which every child's cell is free.
    size_t base = search_from > kids.front().first ? search_from - kids.front().first : 1;
    if (base < 1) base = 1;
    while (true) {
      const size_t need = base + kids.back().first + 1;
      if (units_.size() < need) units_.resize(need + 256, Unit{});
      bool fits = true;
      for (const auto& kid : kids) {
        if (units_[base + kid.first].check != kNone) {
          fits = false;
          break;
        }
      }
      if (fits) break;
      ++base;
    }
    units_[static_cast<size_t>(unit)].base = static_cast<int32_t>(base);
    for (const auto& [byte, child] : kids) {
      const size_t cell = base + byte;
      units_[cell].check = unit;
      queue.emplace_back(child, static_cast<int32_t>(cell));
    }
  }
  while (units_.size() > 1 && units_.back().check == kNone) units_.pop_back();
  units_.shrink_to_fit();
}

}  // namespace rapidrag
