// Batched matmul at attention's shapes: 64 matrices (8 heads × a batch of 8) of a sequence of 64
// steps, Q·Kᵀ with a head width of 32: (64, 64, 32) · (64, 32, 64) → (64, 64, 64).
//   BatchedMatMul:       ours, recorded on the tape — the product, its sum to a scalar, and the
//                        reverse sweep (dA and dB) — on 1 and 2 threads.
//   BatchedMatMul_forward: the product alone, not recorded (inference), on 1 and 2 threads: what
//                        splitting the matrices over the pool gains (the sum above is serial).
//   BatchedMatMul_floor: the same work by hand: the three products per matrix (C = A·B,
//                        dA = G·Bᵀ, dB = Aᵀ·G) as loops of single-threaded BLAS calls, and the
//                        sum's own work (C summed in double as the library's sum does, and its
//                        gradient G filled with ones), with nothing else.
// Compare the two in one run (scripts/bench_ratios.py).
#include <cblas.h>

#include <algorithm>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "autodiff/parallel.hpp"
#include "autodiff/tensor.hpp"

namespace {

constexpr std::int64_t kMatrices = 64, kSteps = 64, kWidth = 32;

std::vector<float> filled(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

void BatchedMatMul(benchmark::State& state) {
  using F = autodiff::Tensor<float>;
  autodiff::set_blas_threads(1);
  autodiff::set_threads(static_cast<int>(state.range(0)));
  auto a_values = filled(kMatrices * kSteps * kWidth, 1),
       b_values = filled(kMatrices * kWidth * kSteps, 2);
  std::vector<float> a_grad(a_values.size()), b_grad(b_values.size());
  autodiff::Tape& tape = autodiff::Tape::active();
  for (auto _ : state) {
    tape.clear();
    const F a = F::parameter(a_values.data(), a_grad.data(), {kMatrices, kSteps, kWidth});
    const F b = F::parameter(b_values.data(), b_grad.data(), {kMatrices, kWidth, kSteps});
    autodiff::sum(autodiff::matmul(a, b)).backward();
    benchmark::DoNotOptimize(a_grad.data());
    benchmark::DoNotOptimize(b_grad.data());
  }
  tape.clear();
  autodiff::set_threads(1);
}
BENCHMARK(BatchedMatMul)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void BatchedMatMul_forward(benchmark::State& state) {
  using F = autodiff::Tensor<float>;
  autodiff::set_blas_threads(1);
  autodiff::set_threads(static_cast<int>(state.range(0)));
  auto a_values = filled(kMatrices * kSteps * kWidth, 1),
       b_values = filled(kMatrices * kWidth * kSteps, 2);
  std::vector<float> a_grad(a_values.size()), b_grad(b_values.size());  // untouched: not recorded
  autodiff::Tape& tape = autodiff::Tape::active();
  const autodiff::NoGradGuard inference;
  for (auto _ : state) {
    tape.clear();
    const F a = F::parameter(a_values.data(), a_grad.data(), {kMatrices, kSteps, kWidth});
    const F b = F::parameter(b_values.data(), b_grad.data(), {kMatrices, kWidth, kSteps});
    benchmark::DoNotOptimize(autodiff::matmul(a, b).data().data());
  }
  tape.clear();
  autodiff::set_threads(1);
}
BENCHMARK(BatchedMatMul_forward)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void BatchedMatMul_floor(benchmark::State& state) {
  openblas_set_num_threads(1);
  const auto a = filled(kMatrices * kSteps * kWidth, 1), b = filled(kMatrices * kWidth * kSteps, 2);
  std::vector<float> g(kMatrices * kSteps * kSteps), c(g.size()), da(a.size()), db(b.size());
  const std::int64_t mk = kSteps * kWidth, kn = kWidth * kSteps, mn = kSteps * kSteps;
  const auto S = CblasRowMajor;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kMatrices; ++i)
      cblas_sgemm(S, CblasNoTrans, CblasNoTrans, kSteps, kSteps, kWidth, 1, &a[i * mk], kWidth,
                  &b[i * kn], kSteps, 0, &c[i * mn], kSteps);
    double total = 0;
    for (const float x : c) total += x;
    benchmark::DoNotOptimize(total);
    std::fill(g.begin(), g.end(), 1.0f);
    benchmark::ClobberMemory();
    for (std::int64_t i = 0; i < kMatrices; ++i)
      cblas_sgemm(S, CblasNoTrans, CblasTrans, kSteps, kWidth, kSteps, 1, &g[i * mn], kSteps,
                  &b[i * kn], kSteps, 1, &da[i * mk], kWidth);
    for (std::int64_t i = 0; i < kMatrices; ++i)
      cblas_sgemm(S, CblasTrans, CblasNoTrans, kWidth, kSteps, kSteps, 1, &a[i * mk], kWidth,
                  &g[i * mn], kSteps, 1, &db[i * kn], kSteps);
    benchmark::DoNotOptimize(c.data());
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
  }
}
BENCHMARK(BatchedMatMul_floor)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
