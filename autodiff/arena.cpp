#include "autodiff/arena.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace autodiff {

namespace {
constexpr std::size_t kMinBlock = std::size_t{1} << 20;
}  // namespace

Arena::Block Arena::make_block(std::size_t size) {
  auto* memory = static_cast<std::byte*>(::operator new[](size, std::align_val_t{kAlignment}));
  return {std::unique_ptr<std::byte[], AlignedDelete>(memory), size};
}

void* Arena::allocate(std::size_t bytes) {
  if (bytes > std::numeric_limits<std::size_t>::max() / 2)
    throw std::length_error(fmt::format("autodiff: the tape cannot allocate {} bytes", bytes));
  bytes = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  while (current_ < blocks_.size()) {
    Block& block = blocks_[current_];
    if (offset_ + bytes <= block.size) {
      void* p = block.memory.get() + offset_;
      offset_ += bytes;
      return p;
    }
    used_before_ += offset_;
    ++current_;
    offset_ = 0;
  }
  const std::size_t last = blocks_.empty() ? 0 : blocks_.back().size;
  const std::size_t size = std::max({bytes, 2 * last, kMinBlock});
  blocks_.push_back(make_block(size));
  current_ = blocks_.size() - 1;
  offset_ = bytes;
  return blocks_.back().memory.get();
}

// The next round of the same allocations then fits in one block.
void Arena::merge_blocks() {
  const std::size_t total = bytes_reserved();
  blocks_.clear();
  blocks_.push_back(make_block(total));
}

std::size_t Arena::bytes_reserved() const {
  std::size_t total = 0;
  for (const Block& block : blocks_) total += block.size;
  return total;
}

}  // namespace autodiff
