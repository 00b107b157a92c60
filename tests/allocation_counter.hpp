#pragma once
// Counts heap allocations made by this thread through the global operator new (replaced in
// allocation_counter.cpp), and their bytes, so a test can assert that a piece of code allocates
// nothing, or how much it allocates at most.
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

namespace testing {
std::size_t allocations_on_this_thread();
std::size_t bytes_allocated_on_this_thread();
/// The largest single allocation on this thread since the last reset_largest_allocation().
std::size_t largest_allocation_on_this_thread();
void reset_largest_allocation();
/// Allocations of more than `bytes` on this thread throw std::bad_alloc from now on; returns the
/// previous limit.
std::size_t set_allocation_limit(std::size_t bytes);

/// Out of memory, on purpose, for a scope: larger allocations on this thread throw std::bad_alloc.
class AllocationLimit {
 public:
  explicit AllocationLimit(std::size_t bytes) : saved_(set_allocation_limit(bytes)) {}
  ~AllocationLimit() { set_allocation_limit(saved_); }
  AllocationLimit(const AllocationLimit&) = delete;
  AllocationLimit& operator=(const AllocationLimit&) = delete;

 private:
  std::size_t saved_;
};

/// Allocations made on this thread since construction.
class AllocationCounter {
 public:
  AllocationCounter() : start_(allocations_on_this_thread()) {}
  std::size_t count() const { return allocations_on_this_thread() - start_; }

 private:
  std::size_t start_;
};

/// Bytes allocated on this thread since construction (freed or not), and the largest single
/// allocation among them.
class ByteCounter {
 public:
  ByteCounter() : start_(bytes_allocated_on_this_thread()) { reset_largest_allocation(); }
  std::size_t total() const { return bytes_allocated_on_this_thread() - start_; }
  std::size_t largest() const { return largest_allocation_on_this_thread(); }

 private:
  std::size_t start_;
};

/// Heap allocations made by one training step of `model` once warm: three steps of `batch`
/// consecutive rows of `data`, then a fourth on the next rows, counted.
template <class Model, class Data>
std::size_t warm_step_allocations(Model& model, const Data& data, std::int64_t batch) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(batch));
  for (int step = 0; step < 3; ++step) {
    std::iota(rows.begin(), rows.end(), step * batch);
    model.train_step(data, rows);
  }
  std::iota(rows.begin(), rows.end(), 3 * batch);
  const AllocationCounter counter;
  model.train_step(data, rows);
  return counter.count();
}
}  // namespace testing
