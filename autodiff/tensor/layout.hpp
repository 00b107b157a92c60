#pragma once
// Layout: transpose, reshape, slice_rows, gather_rows. Reshape and slice_rows are views: they
// share their input's values, and their backward adds into a contiguous range of its gradient.
// All are linear: in tangent mode (tangent.hpp) their forward and backward move the tangents.

#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {
/// `shape` with its first dimension replaced by `rows`.
inline Shape with_rows(const Shape& shape, std::int64_t rows) {
  std::int64_t dims[Shape::kMaxRank];
  for (int i = 0; i < shape.rank(); ++i) dims[i] = shape[i];
  dims[0] = rows;
  return Shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(shape.rank())));
}
inline std::int64_t row_size(const Shape& shape) {
  return shape[0] == 0 ? 0 : shape.size() / shape[0];
}

/// Backward of a view at some offset into its input: gx[offset + i] += g[i].
struct ViewBackward {
  static constexpr bool linear = true;
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const T* __restrict g = ctx.output_grad().data;
    const std::int64_t count = ctx.output().size(), offset = ctx.output().data - ctx.input(0).data;
    // A reshape covers its whole input: the first gradient to reach it is copied, not added.
    bool fresh = false;
    T* __restrict gx = count == ctx.input(0).size() ? ctx.input_grad_to_write(0, &fresh).data
                                                    : ctx.input_grad(0).data + offset;
    if (fresh)
      std::copy_n(g, count, gx);
    else
      for (std::int64_t i = 0; i < count; ++i) gx[i] += g[i];
  }
};
}  // namespace detail

/// Rank 2: (m, n) → (n, m).
struct Transpose {
  static constexpr const char* name = "transpose";
  static constexpr bool linear = true;
  Shape output_shape(const Shape& x) const {
    if (x.rank() != 2)
      throw std::invalid_argument(fmt::format("transpose: shape {} is not of rank 2", x.str()));
    return {x[1], x[0]};
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t rows = x.shape[0], cols = x.shape[1];
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) y[j * rows + i] = x[i * cols + j];
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t rows = gx.shape[0], cols = gx.shape[1];
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) gx[i * cols + j] += g[j * rows + i];
  }
};

/// Same elements, new shape (same size), sharing the values.
struct Reshape : detail::ViewBackward {
  static constexpr const char* name = "reshape";
  Shape shape;
  Shape output_shape(const Shape& x) const {
    if (shape.size() != x.size())
      throw std::invalid_argument(
          fmt::format("reshape: cannot reshape shape {} ({} elements) into {}", x.str(), x.size(),
                      shape.str()));
    return shape;
  }
  std::int64_t view_offset(const Shape&) const { return 0; }
};

/// Rows [begin, end) along the first axis, sharing the values.
struct SliceRows : detail::ViewBackward {
  static constexpr const char* name = "slice_rows";
  std::int64_t begin, end;
  Shape output_shape(const Shape& x) const {
    if (x.rank() < 1 || begin < 0 || begin > end || end > x[0])
      throw std::invalid_argument(
          fmt::format("slice_rows: rows [{}, {}) of shape {}: expected 0 ≤ begin ≤ end ≤ rows",
                      begin, end, x.str()));
    return detail::with_rows(x, end - begin);
  }
  std::int64_t view_offset(const Shape& x) const { return begin * detail::row_size(x); }
};

/// The rows at the given indices along the first axis, in that order (repeats allowed).
struct GatherRows {
  static constexpr const char* name = "gather_rows";
  static constexpr bool linear = true;  // jvp written: forward keeps the indices, it runs once
  const std::int64_t* rows;             // the caller's indices in forward, then a copy on the tape
  std::int64_t count;
  Shape output_shape(const Shape& x) const {
    if (x.rank() < 1) throw std::invalid_argument("gather_rows: a scalar has no rows");
    for (std::int64_t i = 0; i < count; ++i)
      if (rows[i] < 0 || rows[i] >= x[0])
        throw std::invalid_argument(
            fmt::format("gather_rows: row {} is out of range for shape {}", rows[i], x.str()));
    return detail::with_rows(x, count);
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t row = detail::row_size(x.shape);
    for (std::int64_t i = 0; i < count; ++i)
      std::copy_n(x.data + rows[i] * row, row, y.data + i * row);
    if (ctx.recording()) {  // keep the indices for backward: the caller's may be gone by then
      std::int64_t* kept = ctx.template scratch<std::int64_t>(count);
      std::copy_n(rows, count, kept);
      rows = kept;
    }
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t row = detail::row_size(gx.shape);
    for (std::int64_t i = 0; i < count; ++i)
      for (std::int64_t j = 0; j < row; ++j) gx[rows[i] * row + j] += g[i * row + j];
  }
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto dx = ctx.input_tangent(0);
    const auto dy = ctx.output_tangent();
    const std::int64_t row = detail::row_size(dx.shape);
    for (std::int64_t i = 0; i < count; ++i)
      std::copy_n(dx.data + rows[i] * row, row, dy.data + i * row);
  }
};

template <TensorElement T>
Tensor<T> transpose(const Tensor<T>& x) {
  return apply(Transpose{}, x);
}
/// One dimension may be −1: it is inferred from the size.
template <TensorElement T>
Tensor<T> reshape(const Tensor<T>& x, std::span<const std::int64_t> dims) {
  if (dims.size() > Shape::kMaxRank)
    throw std::invalid_argument(
        fmt::format("reshape: {} dimensions, at most {}", dims.size(), Shape::kMaxRank));
  std::int64_t resolved[Shape::kMaxRank];
  int unknown = -1;
  std::int64_t known = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    resolved[i] = dims[i];
    if (dims[i] != -1) {
      if (__builtin_mul_overflow(known, dims[i], &known)) known = -1;  // Shape rejects it below
    } else if (unknown >= 0) {
      throw std::invalid_argument("reshape: at most one dimension may be -1");
    } else {
      unknown = static_cast<int>(i);
    }
  }
  if (unknown >= 0) resolved[unknown] = known > 0 ? x.size() / known : 0;
  return apply(Reshape{{}, Shape(std::span<const std::int64_t>(resolved, dims.size()))}, x);
}
template <TensorElement T>
Tensor<T> reshape(const Tensor<T>& x, std::initializer_list<std::int64_t> dims) {
  return reshape(x, std::span<const std::int64_t>(dims.begin(), dims.size()));
}
template <TensorElement T>
Tensor<T> slice_rows(const Tensor<T>& x, std::int64_t begin, std::int64_t end) {
  return apply(SliceRows{{}, begin, end}, x);
}
template <TensorElement T>
Tensor<T> gather_rows(const Tensor<T>& x, std::span<const std::int64_t> rows) {
  return apply(GatherRows{rows.data(), static_cast<std::int64_t>(rows.size())}, x);
}

}  // namespace autodiff
