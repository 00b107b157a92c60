// The tutorial's MNIST MLP (784 → 128 ReLU → 10 softmax, batch 32), one training step:
//   MLP_step:  ours — batch to tensor, forward, loss, backward, Adam update — on 1 and 2 threads
//              (autodiff::set_threads: the GEMMs and Adam split over the pool, BLAS on one thread).
//   MLP_floor: what no implementation can beat — the step's five GEMMs through BLAS
//              (X·W1, H·W2, Xᵀ·dH, Hᵀ·dO, dO·W2ᵀ) and one vectorised Adam pass over the 101,770
//              parameters, with the cheap elementwise work in between left out.
//   MLP_gradient: MLP_step's forward and backward alone (the batch, the network, the loss, the
//              reverse sweep), without the optimizer.
//   MLP_hvp:   H·v of the same loss with respect to the 101,770 parameters, and its gradient,
//              through the tensor ops in tangent mode (nn::parameter_hvp).
// Compare MLP_step with MLP_floor, and MLP_hvp with MLP_gradient, in the same run
// (scripts/bench_ratios.py).
#include <cblas.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "autodiff/parallel.hpp"
#include "nn/model.hpp"
#include "nn/second_order.hpp"

namespace {

constexpr std::int64_t kBatch = 32, kInputs = 784, kHidden = 128, kClasses = 10;

nn::Dataset random_images(std::int64_t count) {
  std::mt19937 rng(3);
  std::vector<std::uint8_t> images(static_cast<std::size_t>(count * kInputs));
  for (auto& b : images) b = static_cast<std::uint8_t>(rng() % 256);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(count));
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % kClasses);
  return nn::Dataset(std::move(images), std::move(labels), kInputs, kClasses);
}

void MLP_step(benchmark::State& state) {
  autodiff::set_blas_threads(1);  // the GEMMs are split over the pool's threads instead
  autodiff::set_threads(static_cast<int>(state.range(0)));
  const nn::Dataset data = random_images(1024);
  nn::Sequential network;
  network.add(nn::Dense(kInputs, kHidden, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(kHidden, kClasses, nn::Activation::Softmax, {.seed = 2}));
  nn::Model model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  std::vector<std::int64_t> rows(kBatch);
  std::int64_t start = 0;
  for (auto _ : state) {
    std::iota(rows.begin(), rows.end(), start);
    start = (start + kBatch) % (data.size() - kBatch);
    benchmark::DoNotOptimize(model.train_step(data, rows));
  }
  state.counters["bytes_of_tape"] = static_cast<double>(autodiff::Tape::active().bytes_reserved());
  autodiff::set_threads(1);
}
BENCHMARK(MLP_step)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

nn::Sequential mnist_mlp() {
  nn::Sequential network;
  network.add(nn::Dense(kInputs, kHidden, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(kHidden, kClasses, nn::Activation::Softmax, {.seed = 2}));
  return network;
}

void MLP_gradient(benchmark::State& state) {
  autodiff::set_blas_threads(static_cast<int>(state.range(0)));
  const nn::Dataset data = random_images(1024);
  const nn::LabelledImages images(data);
  nn::Sequential network = mnist_mlp();
  std::vector<std::int64_t> rows(kBatch);
  std::int64_t start = 0;
  autodiff::Tape& tape = autodiff::Tape::active();
  for (auto _ : state) {
    std::iota(rows.begin(), rows.end(), start);
    start = (start + kBatch) % (data.size() - kBatch);
    tape.clear();
    const autodiff::Tensor<float> y_true = images.targets(rows);
    const autodiff::Tensor<float> loss =
        nn::categorical_crossentropy(y_true, network(images.features(rows)));
    loss.backward();
    benchmark::DoNotOptimize(loss.item());
  }
}
BENCHMARK(MLP_gradient)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void MLP_hvp(benchmark::State& state) {
  autodiff::set_blas_threads(static_cast<int>(state.range(0)));
  const nn::Dataset data = random_images(1024);
  const nn::LabelledImages images(data);
  nn::Sequential network = mnist_mlp();
  const auto count = static_cast<std::size_t>(network.parameter_count());
  std::vector<float> v(count), gradient(count), hessian_vector(count);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (float& vi : v) vi = normal(rng);
  std::vector<std::int64_t> rows(kBatch);
  std::int64_t start = 0;
  autodiff::Tape& tape = autodiff::Tape::active();
  for (auto _ : state) {
    std::iota(rows.begin(), rows.end(), start);
    start = (start + kBatch) % (data.size() - kBatch);
    tape.clear();
    benchmark::DoNotOptimize(nn::parameter_hvp(network, nn::categorical_crossentropy,
                                               images.features(rows), images.targets(rows), v,
                                               gradient, hessian_vector));
    benchmark::DoNotOptimize(hessian_vector.data());
  }
}
BENCHMARK(MLP_hvp)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

void MLP_floor(benchmark::State& state) {
  openblas_set_num_threads(static_cast<int>(state.range(0)));
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  auto filled = [&](std::int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
  };
  auto x = filled(kBatch * kInputs), w1 = filled(kInputs * kHidden),
       w2 = filled(kHidden * kClasses);
  auto h = filled(kBatch * kHidden), o = filled(kBatch * kClasses), d_o = filled(kBatch * kClasses);
  auto d_h = filled(kBatch * kHidden), g1 = filled(kInputs * kHidden),
       g2 = filled(kHidden * kClasses);
  const std::int64_t count =
      kInputs * kHidden + kHidden + kHidden * kClasses + kClasses;  // 101,770
  auto params = filled(count), grads = filled(count), m = filled(count), v = filled(count);
  for (float& x2 : v) x2 = std::fabs(x2);
  const auto S = CblasRowMajor;
  for (auto _ : state) {
    cblas_sgemm(S, CblasNoTrans, CblasNoTrans, kBatch, kHidden, kInputs, 1, x.data(), kInputs,
                w1.data(), kHidden, 0, h.data(), kHidden);
    cblas_sgemm(S, CblasNoTrans, CblasNoTrans, kBatch, kClasses, kHidden, 1, h.data(), kHidden,
                w2.data(), kClasses, 0, o.data(), kClasses);
    cblas_sgemm(S, CblasTrans, CblasNoTrans, kHidden, kClasses, kBatch, 1, h.data(), kHidden,
                d_o.data(), kClasses, 0, g2.data(), kClasses);
    cblas_sgemm(S, CblasNoTrans, CblasTrans, kBatch, kHidden, kClasses, 1, d_o.data(), kClasses,
                w2.data(), kClasses, 0, d_h.data(), kHidden);
    cblas_sgemm(S, CblasTrans, CblasNoTrans, kInputs, kHidden, kBatch, 1, x.data(), kInputs,
                d_h.data(), kHidden, 0, g1.data(), kHidden);
    const float b1 = 0.9f, b2 = 0.999f, alpha = 1e-3f, eps = 1e-7f;
    float* __restrict p = params.data();
    float* __restrict g = grads.data();
    float* __restrict mm = m.data();
    float* __restrict vv = v.data();
    for (std::int64_t i = 0; i < count; ++i) {
      mm[i] = b1 * mm[i] + (1 - b1) * g[i];
      vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i];
      p[i] -= alpha * mm[i] / (std::sqrt(vv[i]) + eps);
    }
    benchmark::DoNotOptimize(p);
    benchmark::DoNotOptimize(g1.data());
  }
}
BENCHMARK(MLP_floor)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
