#pragma once
// Every core for the tensor kernels: one persistent pool of worker threads (made by set_threads,
// never per step), and parallel_for, which splits a range into one contiguous part per thread and
// runs the first part on the calling thread. The kernels that use it (convolution, pooling,
// dropout, batch normalisation) split over the batch, so that each part writes its own rows and
// the results do not depend on the thread count beyond the order of a few final sums.
//
// Nothing is allocated per call. A parallel_for inside a worker, or while another thread has the
// pool, runs its parts one after the other on the calling thread (same results, no deadlock).

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace autodiff {

/// The number of threads the tensor kernels use: the caller plus threads − 1 pool workers.
/// The default is 1 (a library starts no thread unasked); the examples' --threads sets it, by
/// default to the machine's cores. Throws std::invalid_argument unless 1 ≤ threads ≤ 256.
/// Not to be called while another thread runs a parallel_for.
void set_threads(int threads);
int threads();
/// The machine's cores (std::thread::hardware_concurrency, at least 1).
int hardware_threads();

namespace detail {
using ChunkFunction = void (*)(const void* context, int chunk, int chunks);
/// Runs f(context, i, chunks) for i in [0, chunks), chunks ≤ threads(), in parallel.
void run_chunks(int chunks, ChunkFunction f, const void* context);
/// Whether this thread is running a part of a parallel_for (a nested one would run serially).
bool inside_parallel_job();
}  // namespace detail

/// The threads a parallel_for started here would get: threads(), or 1 inside a parallel_for.
inline int available_threads() { return detail::inside_parallel_job() ? 1 : threads(); }

/// Calls f(part, begin, end) on up to threads() contiguous parts of [0, count), numbered from 0,
/// in parallel, each part at least `grain` long (so that tiny ranges stay on one thread); returns
/// when all are done. The part number lets a kernel use per-thread scratch (threads() of them).
/// f must not throw (the kernels it runs only read and write memory prepared beforehand).
template <class F>
void parallel_parts(std::int64_t count, F&& f, std::int64_t grain = 1) {
  if (count <= 0) return;
  const std::int64_t most = std::max<std::int64_t>(1, count / std::max<std::int64_t>(grain, 1));
  const int parts = static_cast<int>(std::min<std::int64_t>(available_threads(), most));
  if (parts <= 1) {
    f(0, std::int64_t{0}, count);
    return;
  }
  struct Context {
    std::remove_reference_t<F>* f;
    std::int64_t count;
  } context{&f, count};
  detail::run_chunks(
      parts,
      [](const void* c, int part, int total) {
        const auto& [fn, n] = *static_cast<const Context*>(c);
        (*fn)(part, n * part / total, n * (part + 1) / total);
      },
      &context);
}

/// The same without the part number: f(begin, end).
template <class F>
void parallel_for(std::int64_t count, F&& f, std::int64_t grain = 1) {
  parallel_parts(
      count, [&f](int, std::int64_t begin, std::int64_t end) { f(begin, end); }, grain);
}

}  // namespace autodiff
