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

  // Free cells form a doubly linked list, so the search for a base visits free cells only.
  std::vector<int32_t> next_free, prev_free;
  int32_t head = kNone, tail = kNone;
  auto extend = [&](size_t size) {
    const size_t old = units_.size();
    if (size <= old) return;
    units_.resize(size, Unit{});
    next_free.resize(size, kNone);
    prev_free.resize(size, kNone);
    for (size_t i = old; i < size; ++i) {
      const auto cell = static_cast<int32_t>(i);
      prev_free[i] = tail;
      if (tail == kNone) {
        head = cell;
      } else {
        next_free[static_cast<size_t>(tail)] = cell;
      }
      tail = cell;
    }
  };
  auto take = [&](size_t cell, int32_t parent) {
    units_[cell].check = parent;
    const int32_t p = prev_free[cell], q = next_free[cell];
    if (p == kNone) {
      head = q;
    } else {
      next_free[static_cast<size_t>(p)] = q;
    }
    if (q == kNone) {
      tail = p;
    } else {
      prev_free[static_cast<size_t>(q)] = p;
    }
  };

  extend(1024);
  take(0, 0);  // the root is its own parent, so it is never taken as free
  std::deque<std::pair<uint32_t, int32_t>> queue{{0u, 0}};  // (trie node, unit)
  while (!queue.empty()) {
    const auto [tnode, unit] = queue.front();
    queue.pop_front();
    units_[static_cast<size_t>(unit)].value = trie[tnode].value;
    const auto& kids = trie[tnode].children;
    if (kids.empty()) continue;
    // First base at which every child's cell is free, trying the free cells in order for the first child.
    const size_t first = kids.front().first;
    size_t base = 0;
    for (int32_t f = head;; f = next_free[static_cast<size_t>(f)]) {
      if (f == kNone) {
        const size_t old = units_.size();
        extend(old + 1024);
        f = static_cast<int32_t>(old);
      }
      if (static_cast<size_t>(f) <= first) continue;
      base = static_cast<size_t>(f) - first;
      extend(base + 256);
      bool fits = true;
      for (const auto& kid : kids) {
        if (units_[base + kid.first].check != kNone) {
          fits = false;
          break;
        }
      }
      if (fits) break;
    }
    units_[static_cast<size_t>(unit)].base = static_cast<int32_t>(base);
    for (const auto& [byte, child] : kids) {
      const size_t cell = base + byte;
      take(cell, unit);
      queue.emplace_back(child, static_cast<int32_t>(cell));
    }
  }
  while (units_.size() > 1 && units_.back().check == kNone) units_.pop_back();
  units_.shrink_to_fit();
}

}  // namespace rapidrag
