#pragma once
// Sets the pool's thread count for a scope, and restores it however the scope ends.
#include "autodiff/parallel.hpp"

struct ThreadCount {
  explicit ThreadCount(int n) : saved(autodiff::threads()) { autodiff::set_threads(n); }
  ~ThreadCount() { autodiff::set_threads(saved); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
  int saved;
};
