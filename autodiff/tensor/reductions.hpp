#pragma once
// Reductions: over all elements, or along one axis (−1 is the last), with keepdims.
// An axis splits the input into (outer, n, inner); all elements is (1, size, 1).

#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"

namespace autodiff {

enum class Reduction { Sum, Mean, Max, Min, LogSumExp, Argmax, Argmin };

namespace detail {

struct ReductionPlan {
  std::int64_t outer, n, inner;
  ReductionPlan(const Shape& shape, int axis) : outer(1), n(shape.size()), inner(1) {
    if (axis < 0) return;
    n = shape[axis];
    for (int i = 0; i < axis; ++i) outer *= shape[i];
    for (int i = axis + 1; i < shape.rank(); ++i) inner *= shape[i];
  }
  /// f(output index, pointer to the first of the n elements, their stride) for each output.
  template <class T, class F>
  void for_each(T* x, F&& f) const {
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t i = 0; i < inner; ++i) f(o * inner + i, x + o * n * inner + i, inner);
  }
};

// The position of the first maximal (or, with Less, minimal) element; NaN wins, as in NumPy.
template <bool kMax, class T>
std::int64_t extreme_position(const T* row, std::int64_t n, std::int64_t stride) {
  std::int64_t best = 0;
  for (std::int64_t k = 1; k < n; ++k) {
    const T v = row[k * stride], b = row[best * stride];
    if (std::isnan(b)) break;
    if (std::isnan(v) || (kMax ? v > b : v < b)) best = k;
  }
  return best;
}

}  // namespace detail

template <Reduction kHow>
struct Reduce {
  static constexpr bool kIndex = kHow == Reduction::Argmax || kHow == Reduction::Argmin;
  const char* name;
  int axis;  // resolved, or −1 for all elements
  bool keepdims;

  Shape output_shape(const Shape& x) const {
    const detail::ReductionPlan plan(x, axis);
    if (plan.n == 0 && kHow != Reduction::Sum && kHow != Reduction::Mean)
      throw std::invalid_argument(
          fmt::format("{}: cannot reduce an empty axis (shape {})", name, x.str()));
    std::int64_t dims[Shape::kMaxRank];
    int rank = 0;
    for (int i = 0; i < x.rank(); ++i) {
      if (axis < 0 || i == axis) {
        if (keepdims) dims[rank++] = 1;
      } else {
        dims[rank++] = x[i];
      }
    }
    return Shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(rank)));
  }

  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const detail::ReductionPlan plan(x.shape, axis);
    plan.for_each(x.data, [&](std::int64_t o, const T* row, std::int64_t stride) {
      y[o] = reduce(row, stride, plan.n);
    });
  }

  // Sum and Mean: dx += g (/ n). Max and Min: the first extreme element takes it all.
  // LogSumExp: dx += g · exp(x − y), the softmax (for_each_softmax).
  template <class T>
  void backward(OpContext<T, 1>& ctx) const requires(!kIndex) {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const auto g = ctx.output_grad();
    T* gx = ctx.input_grad(0).data;
    const detail::ReductionPlan plan(x.shape, axis);
    plan.for_each(x.data, [&](std::int64_t o, const T* row, std::int64_t stride) {
      T* grow = gx + (row - x.data);
      if constexpr (kHow == Reduction::Sum || kHow == Reduction::Mean) {
        const T share = kHow == Reduction::Mean ? g[o] / static_cast<T>(plan.n) : g[o];
        for (std::int64_t k = 0; k < plan.n; ++k) grow[k * stride] += share;
      } else if constexpr (kHow == Reduction::LogSumExp) {
        for_each_softmax(row, stride, plan.n, y[o],
                         [&](std::int64_t k, T s) { grow[k * stride] += g[o] * s; });
      } else {
        grow[detail::extreme_position<kHow == Reduction::Max>(row, plan.n, stride) * stride] +=
            g[o];
      }
    });
  }

  // Tangent mode. Sum and Mean are linear; Max and Min are where the extreme element stays: their
  // backward routes the gradient by its position. LogSumExp: ẏ = Σ s·ẋ with s = exp(x − y), the
  // softmax (for_each_softmax), and ġx += ġ·s + g·s·(ẋ − ẏ).
  static constexpr bool linear = kHow == Reduction::Sum || kHow == Reduction::Mean;
  static constexpr bool backward_reads_gradient_only =
      kHow == Reduction::Max || kHow == Reduction::Min;
  template <class T>
  void jvp(OpContext<T, 1>& ctx) const requires(!kIndex && !linear) {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const detail::ReductionPlan plan(x.shape, axis);
    plan.for_each(x.data, [&](std::int64_t o, const T* row, std::int64_t stride) {
      const T* drow = dx.data + (row - x.data);
      if constexpr (kHow == Reduction::LogSumExp) {
        T total = 0;
        for_each_softmax(row, stride, plan.n, y[o],
                         [&](std::int64_t k, T s) { total += s * drow[k * stride]; });
        dy[o] = total;
      } else {
        dy[o] =
            drow[detail::extreme_position<kHow == Reduction::Max>(row, plan.n, stride) * stride];
      }
    });
  }
  template <class T>
  void backward_jvp(OpContext<T, 1>& ctx) const requires(kHow == Reduction::LogSumExp) {
    const auto x = ctx.input(0), dx = ctx.input_tangent(0);
    const auto y = ctx.output(), dy = ctx.output_tangent();
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    T* d_gx = ctx.input_grad_tangent(0).data;
    const detail::ReductionPlan plan(x.shape, axis);
    plan.for_each(x.data, [&](std::int64_t o, const T* row, std::int64_t stride) {
      const std::int64_t at = row - x.data;
      for_each_softmax(row, stride, plan.n, y[o], [&](std::int64_t k, T s) {
        const T moved = dx ? dx[at + k * stride] - dy[o] : T(0);
        d_gx[at + k * stride] += dg[o] * s + g[o] * s * moved;
      });
    });
  }

 private:
  /// f(k, s_k) for the softmax of a row, s = exp(x − m)/Σ exp(x − m) with m its max: exp(x − y)
  /// would carry the rounding of y = logsumexp, an error of u·|y| (500 ulps at y = 1000). A row
  /// whose max is not finite takes exp(x − y) (its NaN or infinities, as the value has them).
  template <class T, class F>
  static void for_each_softmax(const T* row, std::int64_t stride, std::int64_t n, T y, F&& f) {
    const T m = row[detail::extreme_position<true>(row, n, stride) * stride];
    if (!std::isfinite(m)) {
      for (std::int64_t k = 0; k < n; ++k) f(k, static_cast<T>(std::exp(row[k * stride] - y)));
      return;
    }
    double total = 0;
    for (std::int64_t k = 0; k < n; ++k) total += std::exp(double(row[k * stride]) - double(m));
    for (std::int64_t k = 0; k < n; ++k)
      f(k, static_cast<T>(std::exp(double(row[k * stride]) - double(m)) / total));
  }

  template <class T>
  static T reduce(const T* x, std::int64_t stride, std::int64_t n) {
    if constexpr (kHow == Reduction::Sum || kHow == Reduction::Mean) {
      double total = 0;  // accumulate in double: float sums of many terms drift
      for (std::int64_t k = 0; k < n; ++k) total += x[k * stride];
      return static_cast<T>(kHow == Reduction::Mean ? total / double(n) : total);
    } else if constexpr (kHow == Reduction::LogSumExp) {
      // m + log1p(Σ′ exp(x − m)), Σ′ without the max's own 1: no overflow, and accurate when one
      // element dominates and m is near 0 (log of the rounded 1 + Σ′ would lose Σ′).
      const std::int64_t top = detail::extreme_position<true>(x, n, stride);
      const T m = x[top * stride];
      if (!std::isfinite(m)) return m;
      double rest = 0;
      for (std::int64_t k = 0; k < n; ++k)
        if (k != top) rest += std::exp(double(x[k * stride]) - double(m));
      return static_cast<T>(double(m) + std::log1p(rest));
    } else {
      constexpr bool kMax = kHow == Reduction::Max || kHow == Reduction::Argmax;
      const std::int64_t best = detail::extreme_position<kMax>(x, n, stride);
      return kIndex ? static_cast<T>(best) : x[best * stride];
    }
  }
};

namespace detail {
constexpr int kAllAxes = std::numeric_limits<int>::min();
template <Reduction kHow, TensorElement T>
Tensor<T> reduce(const char* name, const Tensor<T>& x, int axis, bool keepdims) {
  const int resolved = axis == kAllAxes ? -1 : x.shape().axis(axis, name);
  return apply(Reduce<kHow>{name, resolved, keepdims}, x);
}
}  // namespace detail

#define AUTODIFF_TENSOR_REDUCTION(function, How)                                  \
  template <TensorElement T>                                                      \
  Tensor<T> function(const Tensor<T>& x) {                                        \
    return detail::reduce<Reduction::How>(#function, x, detail::kAllAxes, false); \
  }                                                                               \
  template <TensorElement T>                                                      \
  Tensor<T> function(const Tensor<T>& x, int axis, bool keepdims = false) {       \
    return detail::reduce<Reduction::How>(#function, x, axis, keepdims);          \
  }
AUTODIFF_TENSOR_REDUCTION(sum, Sum)
AUTODIFF_TENSOR_REDUCTION(mean, Mean)
/// max and min: the gradient goes to the first extreme element.
AUTODIFF_TENSOR_REDUCTION(max, Max)
AUTODIFF_TENSOR_REDUCTION(min, Min)
/// log Σ exp(x), stable for any values.
AUTODIFF_TENSOR_REDUCTION(logsumexp, LogSumExp)
/// argmax and argmin: the index of the first extreme element, as values of T (a constant).
AUTODIFF_TENSOR_REDUCTION(argmax, Argmax)
AUTODIFF_TENSOR_REDUCTION(argmin, Argmin)
#undef AUTODIFF_TENSOR_REDUCTION

}  // namespace autodiff
