// Helpers shared by the register_*.cpp translation units: str views, int64 arrays and argument checks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "rapidrag/normalize.hpp"
#include "rapidrag/text.hpp"
#include "rapidrag/unicode.hpp"

namespace rapidrag::bindings {

namespace py = pybind11;

// A view of a str's code points. The caller keeps the str alive (it holds a reference), and str data is
// immutable, so the view stays valid while the GIL is released.
inline TextRef text_ref(const py::handle& obj, const std::string& name) {
  PyObject* o = obj.ptr();
  if (!PyUnicode_Check(o)) {
    throw py::type_error(name + " must be str, not " + std::string(Py_TYPE(o)->tp_name));
  }
#if PY_VERSION_HEX < 0x030C0000
  if (PyUnicode_READY(o) != 0) throw py::error_already_set();
#endif
  return {PyUnicode_DATA(o), static_cast<size_t>(PyUnicode_GET_LENGTH(o)), static_cast<int>(PyUnicode_KIND(o))};
}

inline std::vector<TextRef> text_refs(const py::list& texts, const std::string& name) {
  std::vector<TextRef> refs;
  refs.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) refs.push_back(text_ref(texts[i], name + "[" + std::to_string(i) + "]"));
  return refs;
}

// The GIL released around a call only when its work is large (kReleaseGilFrom rows, postings or characters and
// more). Released around a call of a few µs, it lets another thread take the GIL, and the caller then waits to take
// it back: two threads searching a small index handed it over several times a search.
constexpr size_t kReleaseGilFrom = size_t{1} << 16;

class ReleaseGilIf {
 public:
  explicit ReleaseGilIf(bool release) {
    if (release) released_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> released_;
};

// A copy of v as a numpy array.
template <typename T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

inline size_t threads_arg(long n_threads) {
  if (n_threads < 0) throw py::value_error("n_threads must be >= 0 (0 = one per core), got " + std::to_string(n_threads));
  return static_cast<size_t>(n_threads);
}

// The Metaspace pre-tokenizer from its tokenizer.json settings.
inline Metaspace metaspace(const std::string& replacement, const std::string& prepend_scheme, bool split) {
  Metaspace m;
  const std::u32string r = unicode::utf8_to_u32(replacement);
  if (r.size() != 1) throw py::value_error("the Metaspace replacement must be one character, got '" + replacement + "'");
  m.replacement = r[0];
  if (prepend_scheme == "always") {
    m.prepend = PrependScheme::kAlways;
  } else if (prepend_scheme == "first") {
    m.prepend = PrependScheme::kFirst;
  } else if (prepend_scheme == "never") {
    m.prepend = PrependScheme::kNever;
  } else {
    throw py::value_error("prepend_scheme must be 'always', 'first' or 'never', got '" + prepend_scheme + "'");
  }
  m.split = split;
  return m;
}

}  // namespace rapidrag::bindings
