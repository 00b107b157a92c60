#include "autodiff/parallel.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fmt/format.h>

namespace autodiff {
namespace {

constexpr int kMaxThreads = 256;
// How long a worker spins for the next job before sleeping: a training step runs its parallel
// kernels microseconds apart, and waking a sleeping thread costs tens of microseconds.
constexpr int kSpinIterations = 20'000;

void cpu_relax() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

thread_local bool t_inside_job = false;  // a worker, or the caller while it runs a job

class Pool {
 public:
  ~Pool() { resize(1); }

  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int threads) {
    const std::lock_guard submit(submit_);
    stop_workers();
    size_.store(threads, std::memory_order_relaxed);
    stop_ = false;
    workers_.reserve(static_cast<std::size_t>(threads - 1));
    // A worker waits for the generation after this one, whenever it starts running.
    const std::uint64_t now = generation_.load(std::memory_order_relaxed);
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, now] { work(i, now); });
  }

  void run(int chunks, detail::ChunkFunction f, const void* context) {
    std::unique_lock submit(submit_, std::try_to_lock);
    if (!submit.owns_lock() || t_inside_job || workers_.empty()) {  // busy: run it here
      for (int i = 0; i < chunks; ++i) f(context, i, chunks);
      return;
    }
    chunks = std::min(chunks, static_cast<int>(workers_.size()) + 1);
    function_ = f;
    context_ = context;
    chunks_ = chunks;
    remaining_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      const std::lock_guard lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    t_inside_job = true;
    f(context, 0, chunks);
    t_inside_job = false;
    for (int s = 0; s < kSpinIterations && remaining_.load(std::memory_order_acquire) > 0; ++s)
      cpu_relax();
    if (remaining_.load(std::memory_order_acquire) > 0) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return remaining_.load(std::memory_order_acquire) == 0; });
    }
  }

 private:
  void work(int index, std::uint64_t seen) {
    t_inside_job = true;
    for (;;) {
      std::uint64_t now = generation_.load(std::memory_order_acquire);
      for (int s = 0; s < kSpinIterations && now == seen; ++s) {
        cpu_relax();
        now = generation_.load(std::memory_order_acquire);
      }
      if (now == seen) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock,
                   [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (index < chunks_) function_(context_, index, chunks_);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        const std::lock_guard lock(mutex_);
        done_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex submit_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<int> size_{1};
  // The current job: written before generation_ is advanced, read by workers after they see it.
  detail::ChunkFunction function_ = nullptr;
  const void* context_ = nullptr;
  int chunks_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

void set_threads(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw std::invalid_argument(
        fmt::format("set_threads: {} threads, expected 1 to {}", threads, kMaxThreads));
  if (threads != pool().size()) pool().resize(threads);
}

int threads() { return pool().size(); }

int hardware_threads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

namespace detail {
void run_chunks(int chunks, ChunkFunction f, const void* context) {
  pool().run(chunks, f, context);
}
}  // namespace detail

}  // namespace autodiff
