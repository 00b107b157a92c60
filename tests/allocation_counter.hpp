#pragma once
// Counts heap allocations made by this thread through the global operator new (replaced in
// allocation_counter.cpp), so a test can assert that a piece of code allocates nothing.
#include <cstddef>

namespace testing {
std::size_t allocations_on_this_thread();

/// Allocations made on this thread since construction.
class AllocationCounter {
 public:
  AllocationCounter() : start_(allocations_on_this_thread()) {}
  std::size_t count() const { return allocations_on_this_thread() - start_; }

 private:
  std::size_t start_;
};
}  // namespace testing
