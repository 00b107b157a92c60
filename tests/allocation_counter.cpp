#include "allocation_counter.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t g_allocations = 0;
thread_local std::size_t g_bytes = 0;
thread_local std::size_t g_largest = 0;
thread_local std::size_t g_limit = static_cast<std::size_t>(-1);

void count(std::size_t size) {
  if (size > g_limit) throw std::bad_alloc();
  ++g_allocations;
  g_bytes += size;
  if (size > g_largest) g_largest = size;
}

void* allocate(std::size_t size) {
  count(size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* allocate_aligned(std::size_t size, std::align_val_t alignment) {
  count(size);
  const std::size_t a = static_cast<std::size_t>(alignment);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
}  // namespace

std::size_t testing::allocations_on_this_thread() { return g_allocations; }
std::size_t testing::bytes_allocated_on_this_thread() { return g_bytes; }
std::size_t testing::largest_allocation_on_this_thread() { return g_largest; }
void testing::reset_largest_allocation() { g_largest = 0; }
std::size_t testing::set_allocation_limit(std::size_t bytes) {
  const std::size_t old = g_limit;
  g_limit = bytes;
  return old;
}

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, std::align_val_t a) { return allocate_aligned(size, a); }
void* operator new[](std::size_t size, std::align_val_t a) { return allocate_aligned(size, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
