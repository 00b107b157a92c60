#pragma once
// Linear algebra: matmul through BLAS (sgemm / dgemm). C = A·B; dA += dC·Bᵀ, dB += Aᵀ·dC.
// Tangent mode (tangent.hpp), the product rule on each: Ċ = Ȧ·B + A·Ḃ;
// (dA)˙ += (dC)˙·Bᵀ + dC·Ḃᵀ, (dB)˙ += Ȧᵀ·dC + Aᵀ·(dC)˙ — a product only where a tangent is not 0.

#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {
/// C = A·B (+ C when accumulate), row-major, through BLAS; a and b transposed when asked.
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const float* a, const float* b, bool accumulate, float* c);
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const double* a, const double* b, bool accumulate, double* c);
}  // namespace detail

struct MatMul {
  static constexpr const char* name = "matmul";
  Shape output_shape(const Shape& a, const Shape& b) const {
    if (a.rank() != 2 || b.rank() != 2 || a[1] != b[0])
      throw std::invalid_argument(fmt::format(
          "matmul: shapes {} and {} do not fit: expected (m, k) and (k, n)", a.str(), b.str()));
    constexpr std::int64_t kBlasMax = std::numeric_limits<int>::max();  // CBLAS takes int sizes
    if (a.size() > kBlasMax || b.size() > kBlasMax || a[0] > kBlasMax || b[1] > kBlasMax ||
        a[0] * b[1] > kBlasMax)  // each ≤ 2³¹: the product cannot overflow
      throw std::invalid_argument(
          fmt::format("matmul: shapes {} and {} exceed the {} elements per matrix that BLAS "
                      "addresses with int",
                      a.str(), b.str(), kBlasMax));
    return {a[0], b[1]};
  }
  template <class T>
  void forward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto c = ctx.output();
    detail::gemm(false, false, a.shape[0], b.shape[1], a.shape[1], a.data, b.data, false, c.data);
  }
  template <class T>
  void backward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto g = ctx.output_grad();
    const std::int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
    if (const auto ga = ctx.input_grad(0))
      detail::gemm(false, true, m, k, n, g.data, b.data, true, ga.data);
    if (const auto gb = ctx.input_grad(1))
      detail::gemm(true, false, k, n, m, a.data, g.data, true, gb.data);
  }
  template <class T>
  void jvp(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto da = ctx.input_tangent(0), db = ctx.input_tangent(1);
    const auto dc = ctx.output_tangent();
    const std::int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
    if (da) detail::gemm(false, false, m, n, k, da.data, b.data, false, dc.data);
    if (db) detail::gemm(false, false, m, n, k, a.data, db.data, bool(da), dc.data);
  }
  template <class T>
  void backward_jvp(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto da = ctx.input_tangent(0), db = ctx.input_tangent(1);
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const std::int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
    if (const auto d_ga = ctx.input_grad_tangent(0)) {
      detail::gemm(false, true, m, k, n, dg.data, b.data, true, d_ga.data);
      if (db) detail::gemm(false, true, m, k, n, g.data, db.data, true, d_ga.data);
    }
    if (const auto d_gb = ctx.input_grad_tangent(1)) {
      detail::gemm(true, false, k, n, m, a.data, dg.data, true, d_gb.data);
      if (da) detail::gemm(true, false, k, n, m, da.data, g.data, true, d_gb.data);
    }
  }
};

/// (m, k) · (k, n) → (m, n).
template <TensorElement T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  return apply(MatMul{}, a, b);
}

/// The number of threads the BLAS behind matmul may use (OpenBLAS's own pool). The default is 1:
/// the GEMMs of small batches are too short for threads to pay, and a second pool on top of
/// another one (a user's, or the data loader's) oversubscribes the cores.
void set_blas_threads(int threads);
int blas_threads();

}  // namespace autodiff
