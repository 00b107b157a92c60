#pragma once
// Probabilities along the last axis, numerically stable: softmax, log_softmax, and the fused
// cross-entropy with logits (fused so that it is exact for any logits); one_hot for targets.

#include <cmath>
#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {
/// y = log_softmax(x) for one row: x − max − log Σ exp(x − max).
template <class T>
void log_softmax_row(const T* x, T* y, std::int64_t cols) {
  T top = x[0];
  for (std::int64_t j = 1; j < cols; ++j) top = std::max(top, x[j]);
  T total = 0;
  for (std::int64_t j = 0; j < cols; ++j) total += std::exp(x[j] - top);
  const T log_total = std::log(total);
  for (std::int64_t j = 0; j < cols; ++j) y[j] = x[j] - top - log_total;
}
inline std::int64_t last_axis(const Shape& x, const char* name) {
  if (x.rank() < 1 || x[x.rank() - 1] == 0)
    throw std::invalid_argument(
        fmt::format("{}: needs a non-empty last axis, got shape {}", name, x.str()));
  return x[x.rank() - 1];
}
}  // namespace detail

/// softmax: dx = y·(g − Σ g·y).
struct Softmax {
  static constexpr const char* name = "softmax";
  Shape output_shape(const Shape& x) const { return detail::last_axis(x, name), x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t cols = detail::last_axis(x.shape, name);
    for (std::int64_t r = 0; r < x.size() / cols; ++r) {
      detail::log_softmax_row(x.data + r * cols, y.data + r * cols, cols);
      for (std::int64_t j = 0; j < cols; ++j) y[r * cols + j] = std::exp(y[r * cols + j]);
    }
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output();
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t r = 0; r < y.size() / cols; ++r) {
      const T *yr = y.data + r * cols, *gr = g.data + r * cols;
      T dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) dot += gr[j] * yr[j];
      for (std::int64_t j = 0; j < cols; ++j) gx[r * cols + j] += yr[j] * (gr[j] - dot);
    }
  }
};

/// log_softmax: dx = g − softmax·Σ g.
struct LogSoftmax {
  static constexpr const char* name = "log_softmax";
  Shape output_shape(const Shape& x) const { return detail::last_axis(x, name), x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t cols = detail::last_axis(x.shape, name);
    for (std::int64_t r = 0; r < x.size() / cols; ++r)
      detail::log_softmax_row(x.data + r * cols, y.data + r * cols, cols);
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output();
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t r = 0; r < y.size() / cols; ++r) {
      const T *yr = y.data + r * cols, *gr = g.data + r * cols;
      T total = 0;
      for (std::int64_t j = 0; j < cols; ++j) total += gr[j];
      for (std::int64_t j = 0; j < cols; ++j) gx[r * cols + j] += gr[j] - std::exp(yr[j]) * total;
    }
  }
};

/// Mean over rows of −Σ_j y_ij · log_softmax(z)_ij.
/// d/dz = (g/rows)·(softmax(z)·Σ_j y_j − y);  d/dy = −(g/rows)·log_softmax(z).
struct CrossEntropyWithLogits {
  static constexpr const char* name = "cross_entropy_with_logits";
  Shape output_shape(const Shape& z, const Shape& y) const {
    if (!(z == y) || z.rank() != 2 || z[1] == 0)
      throw std::invalid_argument(
          fmt::format("cross_entropy_with_logits: logits {} and targets {}: expected the same "
                      "shape (batch, classes)",
                      z.str(), y.str()));
    return {};
  }
  template <class T>
  void forward(OpContext<T, 2>& ctx) const {
    const auto z = ctx.input(0), y = ctx.input(1);
    const std::int64_t rows = z.shape[0], cols = z.shape[1];
    T* logp = ctx.template scratch<T>(cols);  // one row of log-probabilities, reused
    double total = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      detail::log_softmax_row(z.data + r * cols, logp, cols);
      for (std::int64_t j = 0; j < cols; ++j)
        if (y[r * cols + j] != T(0)) total -= double(y[r * cols + j]) * double(logp[j]);
    }
    ctx.output()[0] = rows > 0 ? static_cast<T>(total / double(rows)) : T(0);
  }
  template <class T>
  void backward(OpContext<T, 2>& ctx) const {
    const auto z = ctx.input(0), y = ctx.input(1);
    const auto gz = ctx.input_grad(0), gy = ctx.input_grad(1);
    const std::int64_t rows = z.shape[0], cols = z.shape[1];
    const T scale = ctx.output_grad()[0] / static_cast<T>(rows);
    T* logp = ctx.template scratch<T>(cols);
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* yr = y.data + r * cols;
      detail::log_softmax_row(z.data + r * cols, logp, cols);
      if (gz) {
        T y_total = 0;
        for (std::int64_t j = 0; j < cols; ++j) y_total += yr[j];
        for (std::int64_t j = 0; j < cols; ++j)
          gz[r * cols + j] += scale * (std::exp(logp[j]) * y_total - yr[j]);
      }
      if (gy)
        for (std::int64_t j = 0; j < cols; ++j) gy[r * cols + j] -= scale * logp[j];
    }
  }
};

template <TensorElement T>
Tensor<T> softmax(const Tensor<T>& x) {
  return apply(Softmax{}, x);
}
template <TensorElement T>
Tensor<T> log_softmax(const Tensor<T>& x) {
  return apply(LogSoftmax{}, x);
}
template <TensorElement T>
Tensor<T> cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& y_true) {
  return apply(CrossEntropyWithLogits{}, logits, y_true);
}
/// Whether `a` is the output of softmax, and if so its input (the logits).
template <TensorElement T>
bool is_softmax_output(const Tensor<T>& a, Tensor<T>* logits) {
  return is_output_of<Softmax>(a, logits);
}

/// (n,) labels in [0, classes) → (n, classes) of 0 and 1. Throws for a label out of range.
template <TensorElement T>
Tensor<T> one_hot(std::span<const std::int32_t> labels, std::int64_t classes) {
  if (classes <= 0)
    throw std::invalid_argument(fmt::format("one_hot: {} classes, expected > 0", classes));
  const auto count = static_cast<std::int64_t>(labels.size());
  for (std::int64_t i = 0; i < count; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw std::invalid_argument(fmt::format("one_hot: label {} at position {} is outside [0, {})",
                                              labels[i], i, classes));
  T* out;
  Tensor<T> t = detail::new_data<T>({count, classes}, &out);
  std::fill_n(out, count * classes, T(0));
  for (std::int64_t i = 0; i < count; ++i) out[i * classes + labels[i]] = T(1);
  return t;
}

}  // namespace autodiff
