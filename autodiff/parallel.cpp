#include "autodiff/parallel.hpp"

#include <atomic>
#include <chrono>
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
// How long a waiting thread spins before it sleeps: a training step runs its parallel kernels
// microseconds apart, and waking a sleeping thread costs tens of microseconds (more when the
// machine is busy). Bounded, so that idle workers leave the cores to others.
constexpr auto kSpinTime = std::chrono::microseconds(200);

void cpu_relax() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

// Spins until done() or kSpinTime has passed; returns done().
template <class Done>
bool spin_until(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) return done();
  }
}

thread_local bool t_inside_job = false;  // a worker, or the caller while it runs a job

// A job is `chunks` calls f(context, i, chunks). The caller and the workers claim chunks from
// one atomic word, so a worker that is slow to wake (the machine is shared) leaves its chunk to
// the caller instead of holding it up; which thread runs a chunk never changes what it computes.
// The caller claims from the front and the workers from the back: on two threads each core gets
// the same part of every job, so a core reads again the rows it wrote in the previous kernel (a
// weight's gradient, then its update, then the next forward product) from its own cache.
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
    // A worker waits for the job after this one, whenever it starts running.
    const std::uint64_t now = job_id(job_.load());
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, now] { work(now); });
  }

  void run(int chunks, detail::ChunkFunction f, const void* context) {
    std::unique_lock submit(submit_, std::try_to_lock);
    if (!submit.owns_lock() || t_inside_job || workers_.empty()) {  // busy: run it here
      for (int i = 0; i < chunks; ++i) f(context, i, chunks);
      return;
    }
    function_ = f;
    context_ = context;
    chunks_ = chunks;
    done_.store(0, std::memory_order_relaxed);
    const std::uint64_t id = job_id(job_.load(std::memory_order_relaxed)) + 1;
    job_.store(id << 32 | std::uint64_t(chunks));  // seq_cst: against sleepers_ below
    if (sleepers_.load() > 0) {
      { const std::lock_guard lock(mutex_); }
      wake_.notify_all();
    }
    t_inside_job = true;
    run_claimed_chunks(/*from_front=*/true);
    t_inside_job = false;
    const auto finished = [&] { return done_.load(std::memory_order_acquire) == chunks; };
    if (!spin_until(finished)) {
      std::unique_lock lock(mutex_);
      caller_waiting_.store(true);
      finished_.wait(lock, finished);
      caller_waiting_.store(false);
    }
  }

 private:
  // The job word: its number (32 bits), then the unclaimed chunks [front, back) (16 bits each).
  static std::uint64_t job_id(std::uint64_t word) { return word >> 32; }
  static int front_of(std::uint64_t word) { return static_cast<int>((word >> 16) & 0xffff); }
  static int back_of(std::uint64_t word) { return static_cast<int>(word & 0xffff); }

  void run_claimed_chunks(bool from_front) {
    for (;;) {
      std::uint64_t word = job_.load(std::memory_order_acquire);
      int chunk;
      std::uint64_t claimed;
      do {
        const int front = front_of(word), back = back_of(word);
        if (front >= back) return;
        chunk = from_front ? front : back - 1;
        claimed = from_front ? word + (std::uint64_t{1} << 16) : word - 1;
      } while (!job_.compare_exchange_weak(word, claimed, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
      // Claimed: the job cannot finish (nor its function and count change) before this chunk is
      // done.
      const int chunks = chunks_;
      function_(context_, chunk, chunks);
      if (done_.fetch_add(1) + 1 == chunks && caller_waiting_.load()) {
        { const std::lock_guard lock(mutex_); }
        finished_.notify_one();
      }
    }
  }

  void work(std::uint64_t seen) {
    t_inside_job = true;
    for (;;) {
      const auto new_job = [&] { return job_id(job_.load()) != seen; };
      if (!spin_until(new_job)) {
        std::unique_lock lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_ || new_job(); });
        sleepers_.fetch_sub(1);
        if (stop_) return;
      }
      seen = job_id(job_.load());
      run_claimed_chunks(/*from_front=*/false);
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
  std::condition_variable wake_, finished_;
  std::atomic<std::uint64_t> job_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  std::atomic<int> size_{1};
  // The current job: written before job_ is published, read by a thread after it claims a chunk.
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
bool inside_parallel_job() { return t_inside_job; }
}  // namespace detail

}  // namespace autodiff
