#pragma once
// Bump allocation of 64-byte aligned blocks, rewound (not freed) by reset(): the memory of the
// coarse nodes on a tape (tensor values, gradients, op records). After a reset the blocks are
// merged into one, so a repeated sequence of allocations needs no new memory.

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace autodiff {

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  void* allocate(std::size_t bytes);
  template <class T>
  T* allocate_array(std::size_t count) {
    return static_cast<T*>(allocate(count * sizeof(T)));
  }
  /// Rewinds to empty, keeping the memory; inline, as Tape::clear() calls it every step.
  void reset() {
    if (blocks_.size() > 1) merge_blocks();
    current_ = 0;
    offset_ = 0;
    used_before_ = 0;
  }
  std::size_t bytes_used() const { return used_before_ + offset_; }
  std::size_t bytes_reserved() const;

 private:
  static constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{kAlignment}); }
  };
  struct Block {
    std::unique_ptr<std::byte[], AlignedDelete> memory;
    std::size_t size;
  };
  static Block make_block(std::size_t size);
  void merge_blocks();
  std::vector<Block> blocks_;
  std::size_t current_ = 0, offset_ = 0, used_before_ = 0;
};

}  // namespace autodiff
