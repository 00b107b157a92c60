#pragma once
// Probabilities along the last axis, numerically stable: softmax, log_softmax, and the fused
// cross-entropy with logits (fused so that it is exact for any logits); one_hot for targets.
// Each has the rules of tangent mode (tangent.hpp) beside its backward, with s = softmax and
// ṡ = s·(ẋ − Σ s·ẋ).

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"
#include "autodiff/tensor/reductions.hpp"  // extreme_position

namespace autodiff {

namespace detail {
/// y = log_softmax(x) for one row: x − max − log Σ exp(x − max), with log Σ = log1p(Σ′), Σ′ the
/// sum without the max's own 1: accurate when Σ′ ≪ 1 (one entry dominates), where log of the
/// rounded 1 + Σ′ would lose all of Σ′ below 1's last bit (Blanchard, Higham and Higham,
/// "Accurately computing the log-sum-exp and softmax functions", 2021).
template <class T>
void log_softmax_row(const T* x, T* y, std::int64_t cols) {
  const std::int64_t top = extreme_position<true>(x, cols, 1);
  const T m = x[top];
  if (!std::isfinite(m)) {  // NaN, as softmax gives (x − m is NaN for an infinite max)
    std::fill_n(y, cols, std::numeric_limits<T>::quiet_NaN());
    return;
  }
  T rest = 0;
  for (std::int64_t j = 0; j < cols; ++j)
    if (j != top) rest += std::exp(x[j] - m);
  const T log_total = std::log1p(rest);
  for (std::int64_t j = 0; j < cols; ++j) y[j] = x[j] - m - log_total;
}
/// y = softmax(x) for one row: exp(x − max) / Σ exp(x − max). Not exp(log_softmax): that rounds
/// x − max − log Σ, an error of u·|log y| in y (60 ulps at y = e⁻¹⁶⁰).
template <class T>
void softmax_row(const T* x, T* y, std::int64_t cols) {
  const T m = x[extreme_position<true>(x, cols, 1)];
  T total = 0;
  for (std::int64_t j = 0; j < cols; ++j) total += y[j] = std::exp(x[j] - m);
  for (std::int64_t j = 0; j < cols; ++j) y[j] /= total;
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
    for (std::int64_t r = 0; r < x.size() / cols; ++r)
      detail::softmax_row(x.data + r * cols, y.data + r * cols, cols);
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
  // ẏ = y·(ẋ − Σ y·ẋ); (dx)˙ += ẏ·(g − Σ g·y) + y·(ġ − Σ (ġ·y + g·ẏ)).
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto dx = ctx.input_tangent(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t at = 0; at < y.size(); at += cols) {
      T dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) dot += y[at + j] * dx[at + j];
      for (std::int64_t j = 0; j < cols; ++j) dy[at + j] = y[at + j] * (dx[at + j] - dot);
    }
  }
  template <class T>
  void backward_jvp(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_gx = ctx.input_grad_tangent(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t at = 0; at < y.size(); at += cols) {
      T dot = 0, d_dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) {
        dot += g[at + j] * y[at + j];
        d_dot += dg[at + j] * y[at + j] + (dy ? g[at + j] * dy[at + j] : T(0));
      }
      for (std::int64_t j = 0; j < cols; ++j)
        d_gx[at + j] +=
            (dy ? dy[at + j] * (g[at + j] - dot) : T(0)) + y[at + j] * (dg[at + j] - d_dot);
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
  // ẏ = ẋ − Σ s·ẋ; (dx)˙ += ġ − s·Σġ − ṡ·Σg, where ṡ = s·ẏ.
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto dx = ctx.input_tangent(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t at = 0; at < y.size(); at += cols) {
      T dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) dot += std::exp(y[at + j]) * dx[at + j];
      for (std::int64_t j = 0; j < cols; ++j) dy[at + j] = dx[at + j] - dot;
    }
  }
  template <class T>
  void backward_jvp(OpContext<T, 1>& ctx) const {
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_gx = ctx.input_grad_tangent(0);
    const std::int64_t cols = detail::last_axis(y.shape, name);
    for (std::int64_t at = 0; at < y.size(); at += cols) {
      T total = 0, d_total = 0;
      for (std::int64_t j = 0; j < cols; ++j) {
        total += g[at + j];
        d_total += dg[at + j];
      }
      for (std::int64_t j = 0; j < cols; ++j) {
        const T s = std::exp(y[at + j]);
        d_gx[at + j] += dg[at + j] - s * d_total - (dy ? s * dy[at + j] * total : T(0));
      }
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
  // Tangent mode, with p = softmax(z) and (log p)˙ = ż − Σ p·ż:
  // L̇ = −(1/rows) Σ (ẏ·log p + y·(log p)˙);
  // (dz)˙ += ṡcale·(p·Σy − y) + scale·(ṗ·Σy + p·Σẏ − ẏ),  (dy)˙ −= ṡcale·log p + scale·(log p)˙.
  template <class T>
  void jvp(OpContext<T, 2>& ctx) const {
    const auto z = ctx.input(0), y = ctx.input(1), dz = ctx.input_tangent(0),
               dy = ctx.input_tangent(1);
    const std::int64_t rows = z.shape[0], cols = z.shape[1];
    T* logp = ctx.template scratch<T>(cols);
    double total = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t at = r * cols;
      detail::log_softmax_row(z.data + at, logp, cols);
      const T mean_dz = dz ? softmax_dot(logp, dz.data + at, cols) : T(0);
      for (std::int64_t j = 0; j < cols; ++j) {
        if (dy) total -= double(dy[at + j]) * double(logp[j]);
        if (dz) total -= double(y[at + j]) * double(dz[at + j] - mean_dz);
      }
    }
    ctx.output_tangent()[0] = rows > 0 ? static_cast<T>(total / double(rows)) : T(0);
  }
  template <class T>
  void backward_jvp(OpContext<T, 2>& ctx) const {
    const auto z = ctx.input(0), y = ctx.input(1), dz = ctx.input_tangent(0),
               dy = ctx.input_tangent(1);
    const auto d_gz = ctx.input_grad_tangent(0), d_gy = ctx.input_grad_tangent(1);
    const std::int64_t rows = z.shape[0], cols = z.shape[1];
    const T scale = ctx.output_grad()[0] / static_cast<T>(rows);
    const T d_scale = ctx.output_grad_tangent()[0] / static_cast<T>(rows);
    T* logp = ctx.template scratch<T>(cols);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t at = r * cols;
      detail::log_softmax_row(z.data + at, logp, cols);
      const T mean_dz = dz ? softmax_dot(logp, dz.data + at, cols) : T(0);
      T y_total = 0, dy_total = 0;
      for (std::int64_t j = 0; j < cols; ++j) {
        y_total += y[at + j];
        if (dy) dy_total += dy[at + j];
      }
      for (std::int64_t j = 0; j < cols; ++j) {
        const T p = std::exp(logp[j]);
        const T d_logp = dz ? dz[at + j] - mean_dz : T(0);  // (log p)˙, and ṗ = p·(log p)˙
        const T d_target = dy ? dy[at + j] : T(0);
        if (d_gz)
          d_gz[at + j] += d_scale * (p * y_total - y[at + j]) +
                          scale * (p * d_logp * y_total + p * dy_total - d_target);
        if (d_gy) d_gy[at + j] -= d_scale * logp[j] + scale * d_logp;
      }
    }
  }

 private:
  // Σ p·v over a row, p = exp(log p).
  template <class T>
  static T softmax_dot(const T* logp, const T* v, std::int64_t cols) {
    T total = 0;
    for (std::int64_t j = 0; j < cols; ++j) total += std::exp(logp[j]) * v[j];
    return total;
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
