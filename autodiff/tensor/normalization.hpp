#pragma once
// Dropout and batch normalisation, the two layers whose training pass differs from inference.
// Both split their work over threads (parallel.hpp); neither keeps more than a few numbers per
// channel for backward.

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/parallel.hpp"
#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {
/// SplitMix64: a 64-bit hash good enough to be a counter-based random stream (element i of the
/// stream seeded s is mix(s + i·γ)), so that any part of a mask can be drawn on any thread.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
/// The 53-bit threshold below which dropout drops an element: rate · 2⁵³.
inline std::uint64_t dropout_threshold(double rate) {
  return static_cast<std::uint64_t>(rate * 0x1.0p53);
}
/// Whether dropout keeps element i of the mask seeded `seed` (probability 1 − rate).
inline bool dropout_keeps(std::uint64_t seed, std::int64_t i, std::uint64_t threshold) {
  const std::uint64_t bits = mix64(seed + static_cast<std::uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
  return (bits >> 11) >= threshold;
}
}  // namespace detail

/// Inverted dropout: each element is kept with probability 1 − rate and scaled by 1/(1 − rate),
/// or set to 0; backward masks the gradient the same way. The mask is a function of the seed and
/// the element's index alone, so backward draws it again instead of storing it, and it does not
/// depend on the thread count. The index is counted from `first_element`: a part of a larger
/// tensor (a rank's rows of a data-parallel batch) gets the mask the whole would give those rows.
struct Dropout {
  static constexpr const char* name = "dropout";
  static constexpr bool linear = true;  // tangent mode: the same mask on the tangents
  double rate = 0.5;
  std::uint64_t seed = 0;
  std::int64_t first_element = 0;
  Shape output_shape(const Shape& x) const {
    if (!(rate >= 0.0 && rate < 1.0))
      throw std::invalid_argument(fmt::format("dropout: rate {}, expected in [0, 1)", rate));
    return x;
  }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const T* x = ctx.input(0).data;
    T* y = ctx.output().data;
    parallel_for(
        ctx.output().size(),
        [&](std::int64_t first, std::int64_t last) { masked<T, false>(x, y, first, last); },
        kGrain);
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const T* g = ctx.output_grad().data;
    bool fresh = false;  // no gradient in gx yet: write it, no zeroing pass first
    T* gx = ctx.input_grad_to_write(0, &fresh).data;
    parallel_for(
        ctx.output().size(),
        [&](std::int64_t first, std::int64_t last) {
          if (fresh)
            masked<T, false>(g, gx, first, last);
          else
            masked<T, true>(g, gx, first, last);
        },
        kGrain);
  }
  /// to[i] = (or +=) from[i]·scale where the mask keeps element i, 0 where it drops it: a select,
  /// not a branch (the mask is random: a branch would be mispredicted half the time).
  template <class T, bool kAdd>
  void masked(const T* __restrict from, T* __restrict to, std::int64_t first,
              std::int64_t last) const {
    const T scale = T(1.0 / (1.0 - rate));
    const std::uint64_t threshold = detail::dropout_threshold(rate);
    for (std::int64_t i = first; i < last; ++i) {
      const T v =
          detail::dropout_keeps(seed, first_element + i, threshold) ? from[i] * scale : T(0);
      if constexpr (kAdd)
        to[i] += v;
      else
        to[i] = v;
    }
  }
  static constexpr std::int64_t kGrain = 16'384;  // below this, one thread is faster
};

namespace detail {
/// Batch normalisation's per-channel statistics, saved by forward for backward and the tangent
/// rules: 1/√(σ² + ε), and μ in two parts, μ = hi + lo with hi the nearest T. x − μ is taken as
/// (x − hi) − lo: x − hi is exact near μ, so x̂ keeps μ's digits below T's precision (μ rounded
/// to float shifts x̂ by u·|μ|/σ: 6e-3 for a channel at 1000 ± 0.01).
template <class T>
struct BatchStats {
  const T *hi, *inv_std, *lo;
  BatchStats(const void* saved, std::int64_t c)
      : hi(static_cast<const T*>(saved)), inv_std(hi + c), lo(hi + 2 * c) {}
  T x_hat(T x, std::int64_t k) const { return ((x - hi[k]) - lo[k]) * inv_std[k]; }
};
}  // namespace detail

/// Batch normalisation in training mode over the last axis (channels): with the batch's mean μ
/// and biased variance σ² per channel, taken over every other axis (m values each),
/// x̂ = (x − μ)/√(σ² + ε) and y = γ·x̂ + β. Backward (per channel, sums over the m values):
/// dγ += Σ g·x̂, dβ += Σ g, dx += γ/√(σ² + ε) · (g − Σg/m − x̂·Σ(g·x̂)/m).
/// When `mean_out` / `variance_out` are set (arrays of the channels, of the tensor's element
/// type), forward writes μ and σ² there, for the moving averages of a layer.
struct BatchNorm {
  static constexpr const char* name = "batch_norm";
  double epsilon = 1e-3;
  void* mean_out = nullptr;
  void* variance_out = nullptr;
  const void* saved = nullptr;          // forward's statistics per channel (detail::BatchStats)
  const void* saved_tangent = nullptr;  // tangent mode: jvp's μ̇ and mean(x̂·ẋ), per channel

  Shape output_shape(const Shape& x, const Shape& gamma, const Shape& beta) const {
    if (x.rank() < 2 || gamma.rank() != 1 || !(gamma == beta) || gamma[0] != x[x.rank() - 1] ||
        x.size() == 0)
      throw std::invalid_argument(fmt::format(
          "batch_norm: input {}, gamma {}, beta {}: expected a non-empty input (…, channels) and "
          "gamma and beta of shape (channels,)",
          x.str(), gamma.str(), beta.str()));
    if (!(epsilon > 0.0))
      throw std::invalid_argument(fmt::format("batch_norm: epsilon {}, expected > 0", epsilon));
    return x;
  }

  template <class T>
  void forward(OpContext<T, 3>& ctx) {
    const auto x = ctx.input(0), gamma = ctx.input(1), beta = ctx.input(2);
    const auto y = ctx.output();
    const std::int64_t c = gamma.shape[0], rows = x.size() / c;
    // Per thread: its sums for the mean, then for the variance (double: m can be large).
    const int parts = threads();
    double* sums = ctx.template scratch<double>(parts * c);
    std::fill_n(sums, parts * c, 0.0);
    parallel_parts(rows, [&](int part, std::int64_t first, std::int64_t last) {
      double* s = sums + part * c;
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) s[k] += double(x[r * c + k]);
    });
    T* stats = ctx.template scratch<T>(3 * c);  // μ's hi, 1/√(σ² + ε), μ's lo: BatchStats
    double* mean = ctx.template scratch<double>(c);
    for (std::int64_t k = 0; k < c; ++k) {
      double total = 0;
      for (int p = 0; p < parts; ++p) total += sums[p * c + k];
      mean[k] = total / double(rows);
      stats[k] = T(mean[k]);
      stats[2 * c + k] = T(mean[k] - double(stats[k]));
    }
    std::fill_n(sums, parts * c, 0.0);
    parallel_parts(rows, [&](int part, std::int64_t first, std::int64_t last) {
      double* s = sums + part * c;
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          const double d = double(x[r * c + k]) - mean[k];
          s[k] += d * d;
        }
    });
    for (std::int64_t k = 0; k < c; ++k) {
      double total = 0;
      for (int p = 0; p < parts; ++p) total += sums[p * c + k];
      const double variance = total / double(rows);
      stats[c + k] = T(1.0 / std::sqrt(variance + epsilon));
      if (mean_out) static_cast<T*>(mean_out)[k] = stats[k];
      if (variance_out) static_cast<T*>(variance_out)[k] = T(variance);
    }
    saved = stats;
    const detail::BatchStats<T> batch(saved, c);
    parallel_for(rows, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k)
          y[r * c + k] = gamma[k] * batch.x_hat(x[r * c + k], k) + beta[k];
    });
  }

  template <class T>
  void backward(OpContext<T, 3>& ctx) const {
    const auto x = ctx.input(0), gamma = ctx.input(1);
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0), g_gamma = ctx.input_grad(1), g_beta = ctx.input_grad(2);
    const std::int64_t c = gamma.shape[0], rows = x.size() / c;
    const detail::BatchStats<T> batch(saved, c);
    const T* inv_std = batch.inv_std;
    const int parts = threads();
    T* sums = ctx.template scratch<T>(2 * parts * c + 2 * c);  // per part Σg, Σg·x̂; then totals
    std::fill_n(sums, 2 * parts * c, T(0));
    parallel_parts(rows, [&](int part, std::int64_t first, std::int64_t last) {
      T* s = sums + 2 * part * c;
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          s[k] += g[r * c + k];
          s[c + k] += g[r * c + k] * batch.x_hat(x[r * c + k], k);
        }
    });
    T* sum_g = sums + 2 * parts * c;
    T* sum_gx = sum_g + c;
    for (std::int64_t k = 0; k < c; ++k) {
      sum_g[k] = sum_gx[k] = T(0);
      for (int p = 0; p < parts; ++p) {
        sum_g[k] += sums[2 * p * c + k];
        sum_gx[k] += sums[2 * p * c + c + k];
      }
      if (g_gamma) g_gamma[k] += sum_gx[k];
      if (g_beta) g_beta[k] += sum_g[k];
    }
    if (!gx) return;
    const T m = T(rows);
    parallel_for(rows, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          const T x_hat = batch.x_hat(x[r * c + k], k);
          gx[r * c + k] +=
              gamma[k] * inv_std[k] * (g[r * c + k] - sum_g[k] / m - x_hat * sum_gx[k] / m);
        }
    });
  }

  // Tangent mode (tangent.hpp), with r = 1/√(σ² + ε): μ̇ = mean(ẋ), ṙ = −r²·mean(x̂·ẋ),
  // x̂̇ = r·(ẋ − μ̇ − x̂·mean(x̂·ẋ)), ẏ = γ̇·x̂ + γ·x̂̇ + β̇; backward's formula moved along all of
  // them (its sums Σg and Σg·x̂ by Σġ and Σ(ġ·x̂ + g·x̂̇)).
  template <class T>
  void jvp(OpContext<T, 3>& ctx) {
    const auto x = ctx.input(0), gamma = ctx.input(1);
    const auto dx = ctx.input_tangent(0), d_gamma = ctx.input_tangent(1),
               d_beta = ctx.input_tangent(2);
    const auto dy = ctx.output_tangent();
    const std::int64_t c = gamma.shape[0], rows = x.size() / c;
    const detail::BatchStats<T> batch(saved, c);
    const T* inv_std = batch.inv_std;
    T* moved = ctx.template scratch<T>(2 * c);  // μ̇, then mean(x̂·ẋ)
    std::fill_n(moved, 2 * c, T(0));
    if (dx) {
      double* sums = ctx.template scratch<double>(2 * c);
      std::fill_n(sums, 2 * c, 0.0);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          sums[k] += double(dx[r * c + k]);
          sums[c + k] += double(batch.x_hat(x[r * c + k], k)) * double(dx[r * c + k]);
        }
      for (std::int64_t k = 0; k < 2 * c; ++k) moved[k] = T(sums[k] / double(rows));
    }
    saved_tangent = moved;
    parallel_for(rows, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          const std::int64_t i = r * c + k;
          const T x_hat = batch.x_hat(x[i], k);
          T d = dx ? gamma[k] * inv_std[k] * (dx[i] - moved[k] - x_hat * moved[c + k]) : T(0);
          if (d_gamma) d += d_gamma[k] * x_hat;
          if (d_beta) d += d_beta[k];
          dy[i] = d;
        }
    });
  }

  template <class T>
  void backward_jvp(OpContext<T, 3>& ctx) const {
    const auto x = ctx.input(0), gamma = ctx.input(1);
    const auto dx = ctx.input_tangent(0), d_gamma = ctx.input_tangent(1);
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const auto d_gx = ctx.input_grad_tangent(0), d_g_gamma = ctx.input_grad_tangent(1),
               d_g_beta = ctx.input_grad_tangent(2);
    const std::int64_t c = gamma.shape[0], rows = x.size() / c;
    const detail::BatchStats<T> batch(saved, c);
    const T* inv_std = batch.inv_std;
    const T* moved = static_cast<const T*>(saved_tangent);  // null: jvp did not run, ẋ = 0
    auto x_hat_at = [&](std::int64_t i, std::int64_t k) { return batch.x_hat(x[i], k); };
    auto d_x_hat_at = [&](std::int64_t i, std::int64_t k, T x_hat) {
      return dx ? inv_std[k] * (dx[i] - moved[k] - x_hat * moved[c + k]) : T(0);
    };
    // Per channel: Σg, Σg·x̂, Σġ, Σ(ġ·x̂ + g·x̂̇).
    double* sums = ctx.template scratch<double>(4 * c);
    std::fill_n(sums, 4 * c, 0.0);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t k = 0; k < c; ++k) {
        const std::int64_t i = r * c + k;
        const T x_hat = x_hat_at(i, k);
        sums[k] += double(g[i]);
        sums[c + k] += double(g[i] * x_hat);
        sums[2 * c + k] += double(dg[i]);
        sums[3 * c + k] += double(dg[i] * x_hat + g[i] * d_x_hat_at(i, k, x_hat));
      }
    T* totals = ctx.template scratch<T>(4 * c);
    for (std::int64_t k = 0; k < 4 * c; ++k) totals[k] = T(sums[k]);
    const T *sum_g = totals, *sum_gx = totals + c, *d_sum_g = totals + 2 * c,
            *d_sum_gx = totals + 3 * c;
    for (std::int64_t k = 0; k < c; ++k) {
      if (d_g_gamma) d_g_gamma[k] += d_sum_gx[k];
      if (d_g_beta) d_g_beta[k] += d_sum_g[k];
    }
    if (!d_gx) return;
    const T m = T(rows);
    parallel_for(rows, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t r = first; r < last; ++r)
        for (std::int64_t k = 0; k < c; ++k) {
          const std::int64_t i = r * c + k;
          const T x_hat = x_hat_at(i, k), d_x_hat = d_x_hat_at(i, k, x_hat);
          const T d_inv_std = moved ? -inv_std[k] * inv_std[k] * moved[c + k] : T(0);
          const T d_scale = (d_gamma ? d_gamma[k] * inv_std[k] : T(0)) + gamma[k] * d_inv_std;
          const T base = g[i] - sum_g[k] / m - x_hat * sum_gx[k] / m;
          d_gx[i] += d_scale * base + gamma[k] * inv_std[k] *
                                          (dg[i] - d_sum_g[k] / m - d_x_hat * sum_gx[k] / m -
                                           x_hat * d_sum_gx[k] / m);
        }
    });
  }
};

/// Dropout with probability `rate` from the mask seeded `seed` (training mode: a layer passes a
/// fresh seed each step). `first_row`: the index of x's first row (axis 0) in the batch the mask
/// is drawn for, when x is a share of it (data-parallel training); each row's mask is then the one
/// the whole batch gives that row.
template <TensorElement T>
Tensor<T> dropout(const Tensor<T>& x, double rate, std::uint64_t seed, std::int64_t first_row = 0) {
  if (first_row < 0)
    throw std::invalid_argument(fmt::format("dropout: first_row {}, expected ≥ 0", first_row));
  const std::int64_t row_elements =
      x.rank() == 0 || x.shape()[0] == 0 ? 0 : x.size() / x.shape()[0];
  return apply(Dropout{rate, seed, first_row * row_elements}, x);
}
/// Batch normalisation with the batch's statistics, over the last axis.
template <TensorElement T>
Tensor<T> batch_norm(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                     double epsilon = 1e-3, T* mean_out = nullptr, T* variance_out = nullptr) {
  return apply(BatchNorm{epsilon, mean_out, variance_out}, x, gamma, beta);
}

}  // namespace autodiff
