#include "autodiff/shape.hpp"

#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace autodiff {

Shape::Shape(std::initializer_list<std::int64_t> dims)
    : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > kMaxRank)
    throw std::invalid_argument(
        fmt::format("Shape: {} dimensions given, at most {} are supported", dims.size(), kMaxRank));
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0)
      throw std::invalid_argument(
          fmt::format("Shape: dimension {} is {}, expected ≥ 0", i, dims[i]));
    dims_[i] = dims[i];
  }
  rank_ = static_cast<int>(dims.size());
  // Checked here, once, so that size() and every byte count after it cannot overflow.
  // Zero dimensions are left out, so that every partial product of the others (the strides and
  // reduction plans compute them) is bounded too, even for an empty tensor.
  std::int64_t size = 1;
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (dims[i] != 0 && (__builtin_mul_overflow(size, dims[i], &size) || size > kMaxSize))
      throw std::invalid_argument(
          fmt::format("Shape: {} has more than {} elements", fmt::join(dims, " × "), kMaxSize));
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[static_cast<std::size_t>(i)] != other.dims_[static_cast<std::size_t>(i)])
      return false;
  return true;
}

int Shape::axis(int axis, const char* op) const {
  const int resolved = axis < 0 ? axis + rank_ : axis;
  if (resolved < 0 || resolved >= rank_)
    throw std::invalid_argument(
        fmt::format("{}: axis {} is out of range for a tensor of shape {}", op, axis, str()));
  return resolved;
}

std::string Shape::str() const {
  if (rank_ == 1) return fmt::format("({},)", dims_[0]);
  return fmt::format("({})", fmt::join(dims(), ", "));
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int rank = std::max(a.rank(), b.rank());
  std::array<std::int64_t, Shape::kMaxRank> dims{};
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(
          fmt::format("{}: shapes {} and {} cannot be broadcast together (dimension {}: {} vs {})",
                      op, a.str(), b.str(), i, da, db));
    dims[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::span<const std::int64_t>(dims.data(), static_cast<std::size_t>(rank)));
}

}  // namespace autodiff
