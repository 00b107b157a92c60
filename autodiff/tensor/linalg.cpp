#include "autodiff/tensor/linalg.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

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

// Sizes were checked against int by MatMul::output_shape.
template <class T, class Gemm>
void gemm_with(Gemm blas, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
               const T* a, const T* b, bool accumulate, T* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C alone; the product of empty matrices is 0
    if (!accumulate) std::fill_n(c, m * n, T(0));
    return;
  }
  apply_blas_thread_policy();
  blas(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
       int(n), int(k), T(1), a, int(ta ? m : k), b, int(tb ? k : n), accumulate ? T(1) : T(0), c,
       int(n));
}
}  // namespace

namespace detail {
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
