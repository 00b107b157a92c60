#pragma once
// Linear algebra: matmul through BLAS (sgemm / dgemm), of matrices or batches of them.
// C = A·B; dA += dC·Bᵀ, dB += Aᵀ·dC.
// Tangent mode (tangent.hpp), the product rule on each: Ċ = Ȧ·B + A·Ḃ;
// (dA)˙ += (dC)˙·Bᵀ + dC·Ḃᵀ, (dB)˙ += Ȧᵀ·dC + Aᵀ·(dC)˙ — a product only where a tangent is not 0.

#include <algorithm>
#include <cstdint>

#include "autodiff/parallel.hpp"
#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {
/// C = A·B (+ C when accumulate), row-major, through BLAS; a and b transposed when asked.
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const float* a, const float* b, bool accumulate, float* c);
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const double* a, const double* b, bool accumulate, double* c);

/// Below this many multiply-adds a product stays on one thread: waking the pool costs a few
/// microseconds, the product itself less than that.
inline constexpr std::int64_t kGemmSplitWork = std::int64_t{1} << 18;

/// How the matrices of C = A·B map onto A's and B's (NumPy's matmul): the dimensions before the
/// last two are batches of matrices, and broadcast; rank 4 leaves two of them at most. A batch
/// of A's times one B is folded into one product of B·m rows, exactly what reshaping A to
/// (B·m, k) would do. Each operand's batch dimensions are padded with 1 on the left.
struct MatMulPlan {
  static constexpr int kBatchRank = Shape::kMaxRank - 2;
  enum Matrix { kA, kB, kC };
  std::int64_t m = 0, k = 0, n = 0;
  std::int64_t dims[3][kBatchRank] = {{1, 1}, {1, 1}, {1, 1}};  // A's, B's and C's batches
  Shape output;                                                 // before folding

  /// Throws std::invalid_argument naming both shapes unless they multiply.
  MatMulPlan(const Shape& a, const Shape& b);
  std::int64_t batches(Matrix x) const { return dims[x][0] * dims[x][1]; }

  /// f(c, a, b) for every matrix of C, with the indices of the matrices of A and B it multiplies,
  /// grouped by the matrix of `target` that the call writes: the groups run in parallel (groups
  /// of small products together on one thread), and a group's calls run in order (a broadcast
  /// operand's gradient sums over C's matrices). Nothing to write, nothing called: empty matrices
  /// under 2⁵⁹ broadcast batches must not cost 2⁵⁹ calls. With k = 0, C is still zeroed (its
  /// matrices are allocated, so they are few).
  template <class F>
  void for_each_product(Matrix target, F&& f) const {
    if (m == 0 || n == 0 || (k == 0 && target != kC)) return;
    const std::int64_t per_group = batches(kC) / std::max<std::int64_t>(batches(target), 1);
    const std::int64_t work = std::max<std::int64_t>(m * n * k * per_group, 1);
    parallel_for(
        batches(target),
        [&](std::int64_t first, std::int64_t last) {
          for (std::int64_t t = first; t < last; ++t) {
            const std::int64_t at[kBatchRank] = {t / dims[target][1], t % dims[target][1]};
            std::int64_t lo[kBatchRank], hi[kBatchRank];  // C's batch indices that write to t
            for (int d = 0; d < kBatchRank; ++d) {
              const bool all = dims[target][d] == 1;
              lo[d] = all ? 0 : at[d];
              hi[d] = all ? dims[kC][d] : at[d] + 1;
            }
            for (std::int64_t c0 = lo[0]; c0 < hi[0]; ++c0)
              for (std::int64_t c1 = lo[1]; c1 < hi[1]; ++c1)
                f(c0 * dims[kC][1] + c1, index(kA, c0, c1), index(kB, c0, c1));
          }
        },
        std::max<std::int64_t>(1, kGemmSplitWork / work));
  }

 private:
  std::int64_t index(Matrix x, std::int64_t c0, std::int64_t c1) const {
    return (dims[x][0] == 1 ? 0 : c0) * dims[x][1] + (dims[x][1] == 1 ? 0 : c1);
  }
};
}  // namespace detail

/// C = A·B, for matrices or batches of them: (…, m, k) · (…, k, n) → (…, m, n). Each product
/// through BLAS; dA += dC·Bᵀ, dB += Aᵀ·dC, summed over the batches where A or B broadcasts.
struct MatMul {
  static constexpr const char* name = "matmul";
  using Plan = detail::MatMulPlan;
  Shape output_shape(const Shape& a, const Shape& b) const { return Plan(a, b).output; }

  template <class T>
  void forward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto c = ctx.output();
    const Plan p(a.shape, b.shape);
    p.for_each_product(Plan::kC, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
      detail::gemm(false, false, p.m, p.n, p.k, a.data + ia * p.m * p.k, b.data + ib * p.k * p.n,
                   false, c.data + ic * p.m * p.n);
    });
  }
  template <class T>
  void backward(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto g = ctx.output_grad();
    const Plan p(a.shape, b.shape);
    const std::int64_t mk = p.m * p.k, kn = p.k * p.n, mn = p.m * p.n;
    if (const auto ga = ctx.input_grad(0))
      p.for_each_product(Plan::kA, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
        detail::gemm(false, true, p.m, p.k, p.n, g.data + ic * mn, b.data + ib * kn, true,
                     ga.data + ia * mk);
      });
    if (const auto gb = ctx.input_grad(1))
      p.for_each_product(Plan::kB, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
        detail::gemm(true, false, p.k, p.n, p.m, a.data + ia * mk, g.data + ic * mn, true,
                     gb.data + ib * kn);
      });
  }
  template <class T>
  void jvp(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto da = ctx.input_tangent(0), db = ctx.input_tangent(1);
    const auto dc = ctx.output_tangent();
    const Plan p(a.shape, b.shape);
    const std::int64_t mk = p.m * p.k, kn = p.k * p.n, mn = p.m * p.n;
    p.for_each_product(Plan::kC, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
      if (da)
        detail::gemm(false, false, p.m, p.n, p.k, da.data + ia * mk, b.data + ib * kn, false,
                     dc.data + ic * mn);
      if (db)
        detail::gemm(false, false, p.m, p.n, p.k, a.data + ia * mk, db.data + ib * kn, bool(da),
                     dc.data + ic * mn);
    });
  }
  template <class T>
  void backward_jvp(OpContext<T, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto da = ctx.input_tangent(0), db = ctx.input_tangent(1);
    const auto g = ctx.output_grad(), dg = ctx.output_grad_tangent();
    const Plan p(a.shape, b.shape);
    const std::int64_t mk = p.m * p.k, kn = p.k * p.n, mn = p.m * p.n;
    if (const auto d_ga = ctx.input_grad_tangent(0))
      p.for_each_product(Plan::kA, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
        detail::gemm(false, true, p.m, p.k, p.n, dg.data + ic * mn, b.data + ib * kn, true,
                     d_ga.data + ia * mk);
        if (db)
          detail::gemm(false, true, p.m, p.k, p.n, g.data + ic * mn, db.data + ib * kn, true,
                       d_ga.data + ia * mk);
      });
    if (const auto d_gb = ctx.input_grad_tangent(1))
      p.for_each_product(Plan::kB, [&](std::int64_t ic, std::int64_t ia, std::int64_t ib) {
        detail::gemm(true, false, p.k, p.n, p.m, a.data + ia * mk, dg.data + ic * mn, true,
                     d_gb.data + ib * kn);
        if (da)
          detail::gemm(true, false, p.k, p.n, p.m, da.data + ia * mk, g.data + ic * mn, true,
                       d_gb.data + ib * kn);
      });
  }
};

/// (m, k) · (k, n) → (m, n); with batches, (…, m, k) · (…, k, n) → (…, m, n), the batch
/// dimensions broadcasting as NumPy's matmul does (a (k, n) weight applies to every matrix).
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
