#pragma once
// The shape of a dense, row-major tensor: up to four dimensions.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace autodiff {

class Shape {
 public:
  static constexpr int kMaxRank = 4;
  /// The most elements a tensor may have: its bytes (8 per element at most) never overflow.
  static constexpr std::int64_t kMaxSize = INT64_MAX / 8;

  /// The shape of a scalar: rank 0, one element.
  Shape() = default;
  /// Throws std::invalid_argument for more than kMaxRank dimensions, a negative one, or more than
  /// kMaxSize elements in all.
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);

  int rank() const { return rank_; }
  std::int64_t operator[](int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t size() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  std::span<const std::int64_t> dims() const {
    return {dims_.data(), static_cast<std::size_t>(rank_)};
  }
  bool operator==(const Shape& other) const;

  /// Resolves a possibly negative axis (−1 is the last); throws if it is out of range.
  int axis(int axis, const char* op) const;
  /// "(2, 3)"; "()" for a scalar.
  std::string str() const;

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

/// NumPy broadcasting: dimensions are aligned from the right, and each pair must be equal or
/// contain a 1. Throws std::invalid_argument naming the op and both shapes otherwise.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace autodiff
