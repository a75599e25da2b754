// A read-only view of text as code points of 1, 2 or 4 bytes (the layouts of a Python str).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rapidrag {

// Offsets everywhere in the core are code point indices into the text, which are Python str indices.
struct TextRef {
  const void* data = nullptr;
  size_t length = 0;  // in code points
  int kind = 1;       // bytes per code point: 1 (Latin-1), 2 (UCS-2) or 4 (UCS-4)

  static TextRef latin1(const uint8_t* d, size_t n) { return {d, n, 1}; }
  static TextRef ucs2(const uint16_t* d, size_t n) { return {d, n, 2}; }
  static TextRef ucs4(const char32_t* d, size_t n) { return {d, n, 4}; }

  TextRef slice(size_t start, size_t end) const {
    return {static_cast<const char*>(data) + start * static_cast<size_t>(kind), end - start, kind};
  }
};

// Calls f(ptr) with ptr typed by the text's layout.
template <class F>
decltype(auto) visit_text(const TextRef& t, F&& f) {
  switch (t.kind) {
    case 1:
      return f(static_cast<const uint8_t*>(t.data));
    case 2:
      return f(static_cast<const uint16_t*>(t.data));
    default:
      return f(static_cast<const char32_t*>(t.data));
  }
}

}  // namespace rapidrag
