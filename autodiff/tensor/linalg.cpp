#include "autodiff/tensor/linalg.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "autodiff/parallel.hpp"

namespace autodiff {

namespace {
std::once_flag g_blas_policy;
// Applied once, at the first matmul: one BLAS thread unless the user chose otherwise (with
// set_blas_threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the environment).
void apply_blas_thread_policy() {
  std::call_once(g_blas_policy, [] {
    if (!std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("OMP_NUM_THREADS"))
      openblas_set_num_threads(1);
  });
}

// C (m × n, row stride ldc) = A·B (+ C), one BLAS call; sizes were checked against int by
// MatMulPlan.
template <class T, class Gemm>
void blas_call(Gemm blas, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
               const T* a, std::int64_t lda, const T* b, std::int64_t ldb, bool accumulate, T* c,
               std::int64_t ldc) {
  blas(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
       int(n), int(k), T(1), a, int(lda), b, int(ldb), accumulate ? T(1) : T(0), c, int(ldc));
}

// The parts' edges fall on multiples of this many rows or columns (the kernels' tile width).
constexpr std::int64_t kSplitAlign = 16;

// A product much deeper than it is wide or tall (a small batch through a wide layer: X·W with
// X 32 × 784) splits along k instead: part p multiplies A's columns and B's rows [k_p, k_p+1)
// into its own m × n sum, and the sums are added to C in part order. Each part then reads only
// its share of B, the rows of a weight that the optimizer's update, split the same way, has
// just written on that core: splitting by C's columns would read half of B from the other
// core's cache. The extra sums are m × n each, small when k dominates.
constexpr std::int64_t kSplitDepthRatio = 4;

template <class T>
std::vector<T>& depth_sums() {  // per calling thread; grows to the largest product, then stays
  thread_local std::vector<T> sums;
  return sums;
}

template <class T, class Gemm>
void gemm_split_depth(Gemm blas, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                      const T* a, std::int64_t lda, const T* b, std::int64_t ldb, bool accumulate,
                      T* c) {
  const std::int64_t parts = std::min<std::int64_t>(available_threads(), k / kSplitAlign);
  std::vector<T>& sums = depth_sums<T>();
  if (sums.size() < static_cast<std::size_t>((parts - 1) * m * n))
    sums.resize(static_cast<std::size_t>((parts - 1) * m * n));
  T* extra = sums.data();
  const std::int64_t tiles = (k + kSplitAlign - 1) / kSplitAlign;
  parallel_parts(parts, [&](int, std::int64_t first_part, std::int64_t last_part) {
    for (std::int64_t p = first_part; p < last_part; ++p) {
      const std::int64_t begin = std::min(k, tiles * p / parts * kSplitAlign),
                         end = std::min(k, tiles * (p + 1) / parts * kSplitAlign);
      const T* a_part = a + (ta ? begin * m : begin);
      const T* b_part = b + (tb ? begin : begin * n);
      if (p == 0)
        blas_call(blas, ta, tb, m, n, end - begin, a_part, lda, b_part, ldb, accumulate, c, n);
      else
        blas_call(blas, ta, tb, m, n, end - begin, a_part, lda, b_part, ldb, false,
                  extra + (p - 1) * m * n, n);
    }
  });
  for (std::int64_t p = 1; p < parts; ++p) {
    const T* __restrict sum = extra + (p - 1) * m * n;
    for (std::int64_t i = 0; i < m * n; ++i) c[i] += sum[i];
  }
}

template <class T, class Gemm>
void gemm_with(Gemm blas, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
               const T* a, const T* b, bool accumulate, T* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C alone; the product of empty matrices is 0
    if (!accumulate) std::fill_n(c, m * n, T(0));
    return;
  }
  apply_blas_thread_policy();
  const std::int64_t lda = ta ? m : k, ldb = tb ? k : n;
  // On the pool, each part its own rows or columns of C through single-threaded BLAS (OpenBLAS's
  // own threads do not pay at these sizes). The parts are fixed by the sizes and the thread
  // count, so a result repeats exactly on the same count, and differs from one thread only where
  // BLAS picks another kernel (summation order) for a narrower part. Split along C's longer side:
  // each part then repacks only the smaller operand whole.
  const std::int64_t side = std::max(m, n);
  const bool split = m * n * k >= detail::kGemmSplitWork && available_threads() > 1 &&
                     openblas_get_num_threads() == 1;
  if (split && k >= kSplitDepthRatio * side) {
    gemm_split_depth(blas, ta, tb, m, n, k, a, lda, b, ldb, accumulate, c);
    return;
  }
  if (split && side >= 2 * kSplitAlign) {
    const std::int64_t tiles = (side + kSplitAlign - 1) / kSplitAlign;
    parallel_for(tiles, [&](std::int64_t first, std::int64_t last) {
      const std::int64_t begin = first * kSplitAlign, end = std::min(side, last * kSplitAlign);
      if (n >= m)  // columns [begin, end): B's columns, C's columns
        blas_call(blas, ta, tb, m, end - begin, k, a, lda, b + (tb ? begin * k : begin), ldb,
                  accumulate, c + begin, n);
      else  // rows [begin, end): A's rows, C's rows
        blas_call(blas, ta, tb, end - begin, n, k, a + (ta ? begin : begin * k), lda, b, ldb,
                  accumulate, c + begin * n, n);
    });
    return;
  }
  blas_call(blas, ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, n);
}
}  // namespace

namespace detail {
MatMulPlan::MatMulPlan(const Shape& a, const Shape& b) {
  const int ra = a.rank(), rb = b.rank();
  if (ra < 2 || rb < 2 || a[ra - 1] != b[rb - 2])
    throw std::invalid_argument(fmt::format(
        "matmul: shapes {} and {} do not fit: expected (…, m, k) and (…, k, n)", a.str(), b.str()));
  m = a[ra - 2];
  k = a[ra - 1];
  n = b[rb - 1];
  std::int64_t out[Shape::kMaxRank];
  const int batch_rank = std::max(ra, rb) - 2;
  for (int d = 0; d < kBatchRank; ++d) {
    const int at_a = d - kBatchRank + ra - 2, at_b = d - kBatchRank + rb - 2;
    std::int64_t& da = dims[kA][d] = at_a >= 0 ? a[at_a] : 1;
    std::int64_t& db = dims[kB][d] = at_b >= 0 ? b[at_b] : 1;
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(fmt::format(
          "matmul: shapes {} and {} do not fit: their batch dimensions do not broadcast ({} vs {})",
          a.str(), b.str(), da, db));
    dims[kC][d] = da == 1 ? db : da;
    if (d >= kBatchRank - batch_rank) out[d - (kBatchRank - batch_rank)] = dims[kC][d];
  }
  out[batch_rank] = m;
  out[batch_rank + 1] = n;
  output = Shape(std::span<const std::int64_t>(out, static_cast<std::size_t>(batch_rank + 2)));
  // CBLAS takes int sizes. m·k and k·n are within a.size() and b.size(); m, n ≤ 2³¹ before m·n.
  constexpr std::int64_t kBlasMax = std::numeric_limits<int>::max();
  const auto fits_blas = [&](std::int64_t rows) {
    return rows <= kBlasMax && n <= kBlasMax && k <= kBlasMax && rows * k <= kBlasMax &&
           k * n <= kBlasMax && rows * n <= kBlasMax;
  };
  if (!fits_blas(m))
    throw std::invalid_argument(
        fmt::format("matmul: shapes {} and {} exceed the {} elements per matrix that BLAS "
                    "addresses with int",
                    a.str(), b.str(), kBlasMax));
  // One product where A's matrices are consecutive rows of one (B has no batch), if BLAS takes it.
  // (m · batches ≤ a's elements, or 0 when m is: no overflow.)
  if (batches(kB) == 1 && batches(kA) > 1 && fits_blas(m * batches(kA))) {
    m *= batches(kA);
    for (auto* x : {dims[kA], dims[kC]}) x[0] = x[1] = 1;
  }
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          const float* b, bool accumulate, float* c) {
  gemm_with(cblas_sgemm, ta, tb, m, n, k, a, b, accumulate, c);
}
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          const double* b, bool accumulate, double* c) {
  gemm_with(cblas_dgemm, ta, tb, m, n, k, a, b, accumulate, c);
}
}  // namespace detail

void set_blas_threads(int threads) {
  if (threads < 1)
    throw std::invalid_argument(fmt::format("set_blas_threads: {} threads, expected ≥ 1", threads));
  std::call_once(g_blas_policy, [] {});
  openblas_set_num_threads(threads);
}
int blas_threads() {
  apply_blas_thread_policy();
  return openblas_get_num_threads();
}

}  // namespace autodiff
