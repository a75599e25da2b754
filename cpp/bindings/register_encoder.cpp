#include <pybind11/stl.h>

#include <memory>

#include "common.hpp"
#include "rapidrag/batch.hpp"
#include "rapidrag/encoder.hpp"

namespace rapidrag::bindings {
namespace {

py::array_t<int64_t> new_array(std::vector<py::ssize_t> shape) { return py::array_t<int64_t>(std::move(shape)); }

// Lays the rows out: padded to the widest row (at least min_width), or flat (ids, offsets, row_splits ...).
py::tuple batch_result(const EncodedTexts& firsts, const EncodedTexts* seconds, bool broadcast_first,
                       const std::vector<RowPlan>& plans, const Layout& layout, bool add_special_tokens,
                       size_t min_width, bool flat, size_t n_threads) {
  const bool pair = seconds != nullptr;
  const size_t extra = pair ? layout.pair_extra() : add_special_tokens ? layout.single_extra() : 0;
  const auto n = static_cast<py::ssize_t>(plans.size());
  auto lengths = new_array({n});
  if (flat) {
    auto row_splits = new_array({n + 1});
    int64_t* rs = row_splits.mutable_data();
    rs[0] = 0;
    for (size_t i = 0; i < plans.size(); ++i) rs[i + 1] = rs[i] + static_cast<int64_t>(row_width(plans[i], extra));
    const auto total = static_cast<py::ssize_t>(rs[plans.size()]);
    // Unpadded, the mask is all ones: the Python layer makes it without memory. Types only matter in pairs.
    auto ids = new_array({total});
    auto offsets = new_array({total, 2});
    py::object types = py::none();
    int64_t* types_data = nullptr;
    if (pair) {
      auto t = new_array({total});
      types_data = t.mutable_data();
      types = t;
    }
    BatchArrays out{ids.mutable_data(), nullptr, types_data, offsets.mutable_data(), lengths.mutable_data(), 0, rs};
    {
      py::gil_scoped_release release;
      fill_rows(firsts, seconds, broadcast_first, plans, layout, add_special_tokens, out, n_threads);
    }
    return py::make_tuple(ids, py::none(), types, offsets, lengths, row_splits);
  }
  size_t width = min_width;
  for (const auto& p : plans) width = std::max(width, row_width(p, extra));
  const auto w = static_cast<py::ssize_t>(width);
  auto ids = new_array({n, w});
  auto mask = new_array({n, w});
  auto types = new_array({n, w});
  auto offsets = new_array({n, w, 2});
  BatchArrays out{ids.mutable_data(), mask.mutable_data(), types.mutable_data(), offsets.mutable_data(),
                  lengths.mutable_data(), width};
  {
    py::gil_scoped_release release;
    fill_rows(firsts, seconds, broadcast_first, plans, layout, add_special_tokens, out, n_threads);
  }
  return py::make_tuple(ids, mask, types, offsets, lengths);
}

}  // namespace

void register_encoder(py::module_& m) {
  py::class_<Layout>(m, "Layout", "Where special tokens go around one text or a pair, and the token types.")
      .def(py::init([](const std::vector<std::pair<int32_t, int32_t>>& single_prefix,
                       const std::vector<std::pair<int32_t, int32_t>>& single_suffix,
                       const std::vector<std::pair<int32_t, int32_t>>& pair_prefix,
                       const std::vector<std::pair<int32_t, int32_t>>& pair_middle,
                       const std::vector<std::pair<int32_t, int32_t>>& pair_suffix, int32_t type_a, int32_t type_b,
                       int32_t pad) {
             auto specials = [](const std::vector<std::pair<int32_t, int32_t>>& v) {
               std::vector<Special> out;
               for (const auto& [id, type] : v) {
                 if (id < 0) throw py::value_error("a special token id must be >= 0, got " + std::to_string(id));
                 out.push_back({id, type});
               }
               return out;
             };
             Layout l;
             l.single_prefix = specials(single_prefix);
             l.single_suffix = specials(single_suffix);
             l.pair_prefix = specials(pair_prefix);
             l.pair_middle = specials(pair_middle);
             l.pair_suffix = specials(pair_suffix);
             l.type_a = type_a;
             l.type_b = type_b;
             l.pad = pad;
             return l;
           }),
           py::arg("single_prefix"), py::arg("single_suffix"), py::arg("pair_prefix"), py::arg("pair_middle"),
           py::arg("pair_suffix"), py::arg("type_a"), py::arg("type_b"), py::arg("pad"),
           "Special tokens as (id, token type) lists: before and after one text; before, between and after a pair.");
  py::class_<TextEncoder, std::shared_ptr<TextEncoder>>(m, "TextEncoder",
                                                       "A tokenizer model: encode texts, count tokens, batch rows.")
      .def_property_readonly("vocab_size", &TextEncoder::vocab_size)
      .def_property_readonly("splits_at_whitespace", &TextEncoder::splits_at_whitespace,
                             "True when a text cut at ASCII whitespace encodes as its parts do (no token, word or "
                             "special token spans whitespace).")
      .def("token_to_id", &TextEncoder::token_to_id, py::arg("token"))
      .def("id_to_token", &TextEncoder::id_to_token, py::arg("id"))
      .def(
          "encode",
          [](const TextEncoder& model, const py::object& text, const Layout& layout, bool add_special_tokens,
             bool with_offsets, long n_threads) {
            const TextRef ref = text_ref(text, "text");
            const size_t threads = threads_arg(n_threads);
            // Reused between calls on this thread: no allocation once its buffers have grown.
            thread_local Encoding enc;
            enc.clear();
            {
              py::gil_scoped_release release;
              encode_long(model, ref, threads, enc);
            }
            static const std::vector<Special> none;
            const auto& prefix = add_special_tokens ? layout.single_prefix : none;
            const auto& suffix = add_special_tokens ? layout.single_suffix : none;
            const size_t head = prefix.size();
            const size_t n = enc.size() + head + suffix.size();
            auto ids = new_array({static_cast<py::ssize_t>(n)});
            int64_t* pi = ids.mutable_data();
            for (size_t i = 0; i < head; ++i) pi[i] = prefix[i].id;
            for (size_t i = 0; i < suffix.size(); ++i) pi[head + enc.size() + i] = suffix[i].id;
            std::copy(enc.ids.begin(), enc.ids.end(), pi + head);
            if (!with_offsets) return py::object(std::move(ids));
            auto offsets = new_array({static_cast<py::ssize_t>(n), 2});
            int64_t* po = offsets.mutable_data();
            std::fill(po, po + 2 * n, 0);
            for (size_t i = 0; i < enc.size(); ++i) {
              po[2 * (head + i)] = enc.starts[i];
              po[2 * (head + i) + 1] = enc.ends[i];
            }
            return py::object(py::make_tuple(ids, offsets));
          },
          py::arg("text"), py::arg("layout"), py::arg("add_special_tokens"), py::arg("with_offsets"),
          py::arg("n_threads"),
          "Tokens of one text, between the layout's special tokens if asked: ids int64 [n], and with_offsets "
          "also offsets int64 [n, 2].")
      .def(
          "count",
          [](const TextEncoder& model, const py::list& texts, long n_threads) {
            const auto refs = text_refs(texts, "texts");
            const size_t threads = threads_arg(n_threads);
            std::vector<size_t> counts;
            {
              py::gil_scoped_release release;
              counts = count_all(model, refs, threads);
            }
            auto out = new_array({static_cast<py::ssize_t>(counts.size())});
            std::copy(counts.begin(), counts.end(), out.mutable_data());
            return out;
          },
          py::arg("texts"), py::arg("n_threads"))
      .def(
          "encode_batch",
          [](const TextEncoder& model, const py::list& texts, size_t max_length, bool truncation, size_t min_width,
             bool add_special_tokens, const Layout& layout, bool flat, long n_threads) {
            const auto refs = text_refs(texts, "texts");
            const size_t threads = threads_arg(n_threads);
            EncodedTexts encs;
            std::vector<RowPlan> plans(refs.size());
            {
              py::gil_scoped_release release;
              encs = encode_all(model, refs, threads);
              for (size_t i = 0; i < encs.size(); ++i) {
                plans[i] = plan_single(encs.length(i), max_length, truncation,
                                       add_special_tokens ? layout.single_extra() : 0);
              }
            }
            return batch_result(encs, nullptr, false, plans, layout, add_special_tokens, min_width, flat, threads);
          },
          py::arg("texts"), py::arg("max_length"), py::arg("truncation"), py::arg("min_width"),
          py::arg("add_special_tokens"), py::arg("layout"), py::arg("flat"), py::arg("n_threads"),
          "(input_ids, attention_mask, token_type_ids, offsets, lengths) as int64 arrays, padded [n, L]; "
          "flat: unpadded rows one after another, and row_splits [n + 1] last.")
      .def(
          "encode_pairs",
          [](const TextEncoder& model, const py::list& queries, const py::list& passages, size_t max_length,
             size_t min_width, const Layout& layout, bool flat, long n_threads) {
            const auto qrefs = text_refs(queries, "queries");
            const auto prefs = text_refs(passages, "passages");
            const bool broadcast = qrefs.size() == 1 && prefs.size() != 1;
            if (!broadcast && qrefs.size() != prefs.size()) {
              throw py::value_error("queries and passages differ in length: " + std::to_string(qrefs.size()) +
                                    " and " + std::to_string(prefs.size()));
            }
            const size_t threads = threads_arg(n_threads);
            EncodedTexts qencs, pencs;
            std::vector<RowPlan> plans(prefs.size());
            {
              py::gil_scoped_release release;
              qencs = encode_all(model, qrefs, threads);
              pencs = encode_all(model, prefs, threads);
              for (size_t i = 0; i < pencs.size(); ++i) {
                plans[i] = plan_pair(qencs.length(broadcast ? 0 : i), pencs.length(i), max_length, layout.pair_extra());
              }
            }
            return batch_result(qencs, &pencs, broadcast, plans, layout, true, min_width, flat, threads);
          },
          py::arg("queries"), py::arg("passages"), py::arg("max_length"), py::arg("min_width"), py::arg("layout"),
          py::arg("flat"), py::arg("n_threads"));
}

}  // namespace rapidrag::bindings
