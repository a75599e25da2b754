// A parallel loop over indices with dynamic scheduling; exceptions in workers are re-thrown on the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace rapidrag {

// 0 means one thread per hardware thread.
inline size_t resolve_threads(size_t n_threads) {
  if (n_threads > 0) return n_threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw;
}

// Calls f(i) for i in [0, n). Work is handed out in blocks of `grain` indices.
template <class F>
void parallel_for(size_t n, size_t n_threads, size_t grain, F&& f) {
  n_threads = std::min(resolve_threads(n_threads), (n + grain - 1) / std::max<size_t>(grain, 1));
  if (n_threads <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    try {
      while (!failed.load(std::memory_order_relaxed)) {
        const size_t begin = next.fetch_add(grain);
        if (begin >= n) break;
        const size_t end = std::min(n, begin + grain);
        for (size_t i = begin; i < end; ++i) f(i);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(n_threads - 1);
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace rapidrag
