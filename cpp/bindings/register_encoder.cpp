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
                       const std::vector<RowPlan>& plans, const SpecialIds& special, bool add_special_tokens,
                       size_t min_width, bool flat, size_t n_threads) {
  const bool pair = seconds != nullptr;
  const auto n = static_cast<py::ssize_t>(plans.size());
  auto lengths = new_array({n});
  if (flat) {
    auto row_splits = new_array({n + 1});
    int64_t* rs = row_splits.mutable_data();
    rs[0] = 0;
    for (size_t i = 0; i < plans.size(); ++i) rs[i + 1] = rs[i] + static_cast<int64_t>(row_width(plans[i], pair, add_special_tokens));
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
      fill_rows(firsts, seconds, broadcast_first, plans, special, add_special_tokens, out, n_threads);
    }
    return py::make_tuple(ids, py::none(), types, offsets, lengths, row_splits);
  }
  size_t width = min_width;
  for (const auto& p : plans) width = std::max(width, row_width(p, pair, add_special_tokens));
  const auto w = static_cast<py::ssize_t>(width);
  auto ids = new_array({n, w});
  auto mask = new_array({n, w});
  auto types = new_array({n, w});
  auto offsets = new_array({n, w, 2});
  BatchArrays out{ids.mutable_data(), mask.mutable_data(), types.mutable_data(), offsets.mutable_data(),
                  lengths.mutable_data(), width};
  {
    py::gil_scoped_release release;
    fill_rows(firsts, seconds, broadcast_first, plans, special, add_special_tokens, out, n_threads);
  }
  return py::make_tuple(ids, mask, types, offsets, lengths);
}

}  // namespace

void register_encoder(py::module_& m) {
  py::class_<TextEncoder, std::shared_ptr<TextEncoder>>(m, "TextEncoder",
                                                       "A tokenizer model: encode texts, count tokens, batch rows.")
      .def_property_readonly("vocab_size", &TextEncoder::vocab_size)
      .def("token_to_id", &TextEncoder::token_to_id, py::arg("token"))
      .def("id_to_token", &TextEncoder::id_to_token, py::arg("id"))
      .def(
          "encode",
          [](const TextEncoder& model, const py::object& text, int32_t cls_id, int32_t sep_id, bool with_offsets,
             long n_threads) {
            const TextRef ref = text_ref(text, "text");
            const size_t threads = threads_arg(n_threads);
            // Reused between calls on this thread: no allocation once its buffers have grown.
            thread_local Encoding enc;
            enc.clear();
            {
              py::gil_scoped_release release;
              encode_long(model, ref, threads, enc);
            }
            const size_t head = cls_id >= 0 ? 1 : 0;
            const size_t n = enc.size() + head + (sep_id >= 0 ? 1 : 0);
            auto ids = new_array({static_cast<py::ssize_t>(n)});
            int64_t* pi = ids.mutable_data();
            if (cls_id >= 0) pi[0] = cls_id;
            if (sep_id >= 0) pi[n - 1] = sep_id;
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
          py::arg("text"), py::arg("cls_id"), py::arg("sep_id"), py::arg("with_offsets"), py::arg("n_threads"),
          "Tokens of one text between optional special tokens (id -1: none): ids int64 [n], and with_offsets "
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
             bool add_special_tokens, int32_t cls_id, int32_t sep_id, int32_t pad_id, bool flat, long n_threads) {
            const auto refs = text_refs(texts, "texts");
            const size_t threads = threads_arg(n_threads);
            EncodedTexts encs;
            std::vector<RowPlan> plans(refs.size());
            {
              py::gil_scoped_release release;
              encs = encode_all(model, refs, threads);
              for (size_t i = 0; i < encs.size(); ++i) {
                plans[i] = plan_single(encs.length(i), max_length, truncation, add_special_tokens);
              }
            }
            return batch_result(encs, nullptr, false, plans, {cls_id, sep_id, pad_id}, add_special_tokens,
                                min_width, flat, threads);
          },
          py::arg("texts"), py::arg("max_length"), py::arg("truncation"), py::arg("min_width"),
          py::arg("add_special_tokens"), py::arg("cls_id"), py::arg("sep_id"), py::arg("pad_id"), py::arg("flat"),
          py::arg("n_threads"),
          "(input_ids, attention_mask, token_type_ids, offsets, lengths) as int64 arrays, padded [n, L]; "
          "flat: unpadded rows one after another, and row_splits [n + 1] last.")
      .def(
          "encode_pairs",
          [](const TextEncoder& model, const py::list& queries, const py::list& passages, size_t max_length,
             size_t min_width, int32_t cls_id, int32_t sep_id, int32_t pad_id, bool flat, long n_threads) {
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
                plans[i] = plan_pair(qencs.length(broadcast ? 0 : i), pencs.length(i), max_length);
              }
            }
            return batch_result(qencs, &pencs, broadcast, plans, {cls_id, sep_id, pad_id}, true, min_width, flat,
                                threads);
          },
          py::arg("queries"), py::arg("passages"), py::arg("max_length"), py::arg("min_width"), py::arg("cls_id"),
          py::arg("sep_id"), py::arg("pad_id"), py::arg("flat"), py::arg("n_threads"));
}

}  // namespace rapidrag::bindings
