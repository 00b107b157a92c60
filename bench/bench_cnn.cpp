// Keras's simple MNIST convnet (examples/mnist_cnn.cpp), one training step at batch 128:
//   CNN_step:  ours — batch to tensor, forward, loss, backward, Adam update — on 1 and 2 threads
//              (autodiff::set_threads; each thread runs single-threaded BLAS on its images).
//   CNN_floor: what no implementation can beat — the step's GEMMs at the same shapes (the two
//              convolutions as im2col GEMMs, the dense layer), on OpenBLAS's own threads at the
//              same count, and one Adam pass over the 34,826 parameters; im2col, pooling,
//              dropout and the elementwise work left out.
// Compare CNN_step with CNN_floor at the same thread count (scripts/bench_ratios.py).
#include <cblas.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "autodiff/parallel.hpp"
#include "nn/model.hpp"

namespace {

constexpr std::int64_t kBatch = 128, kInputs = 784, kClasses = 10;

nn::Dataset random_images(std::int64_t count) {
  std::mt19937 rng(3);
  std::vector<std::uint8_t> images(static_cast<std::size_t>(count * kInputs));
  for (auto& b : images) b = static_cast<std::uint8_t>(rng() % 256);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(count));
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % kClasses);
  return nn::Dataset(std::move(images), std::move(labels), kInputs, kClasses);
}

nn::Sequential convnet() {
  using nn::Activation;
  nn::Sequential network;
  network.add(nn::Reshape({28, 28, 1}));
  network.add(nn::Conv2D(1, 32, {3, 3}, Activation::Relu, {.seed = 1}));
  network.add(nn::MaxPooling2D({2, 2}));
  network.add(nn::Conv2D(32, 64, {3, 3}, Activation::Relu, {.seed = 2}));
  network.add(nn::MaxPooling2D({2, 2}));
  network.add(nn::Flatten());
  network.add(nn::Dropout(0.5, {.seed = 3}));
  network.add(nn::Dense(1600, kClasses, Activation::Softmax, {.seed = 4}));
  return network;
}

void CNN_step(benchmark::State& state) {
  autodiff::set_blas_threads(1);
  autodiff::set_threads(static_cast<int>(state.range(0)));
  const nn::Dataset data = random_images(1024);
  nn::Model model(convnet(), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
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
BENCHMARK(CNN_step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void CNN_floor(benchmark::State& state) {
  openblas_set_num_threads(static_cast<int>(state.range(0)));
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  auto filled = [&](std::int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
  };
  // conv1: patches (128·26·26, 9) · (9, 32); conv2: (128·11·11, 288) · (288, 64);
  // dense: (128, 1600) · (1600, 10).
  constexpr int m1 = kBatch * 26 * 26, k1 = 9, n1 = 32;
  constexpr int m2 = kBatch * 11 * 11, k2 = 288, n2 = 64;
  constexpr int m3 = kBatch, k3 = 1600, n3 = kClasses;
  auto p1 = filled(m1 * k1), w1 = filled(k1 * n1), y1 = filled(m1 * n1), g1 = filled(k1 * n1);
  auto p2 = filled(m2 * k2), w2 = filled(k2 * n2), y2 = filled(m2 * n2), g2 = filled(k2 * n2);
  auto dp2 = filled(m2 * k2);
  auto x3 = filled(m3 * k3), w3 = filled(k3 * n3), y3 = filled(m3 * n3), g3 = filled(k3 * n3);
  auto dx3 = filled(m3 * k3);
  const std::int64_t count = k1 * n1 + n1 + k2 * n2 + n2 + k3 * n3 + n3;  // 34,826
  auto params = filled(count), grads = filled(count), m = filled(count), v = filled(count);
  for (float& x : v) x = std::fabs(x);
  const auto S = CblasRowMajor;
  const auto N = CblasNoTrans, T = CblasTrans;
  for (auto _ : state) {
    // Forward.
    cblas_sgemm(S, N, N, m1, n1, k1, 1, p1.data(), k1, w1.data(), n1, 0, y1.data(), n1);
    cblas_sgemm(S, N, N, m2, n2, k2, 1, p2.data(), k2, w2.data(), n2, 0, y2.data(), n2);
    cblas_sgemm(S, N, N, m3, n3, k3, 1, x3.data(), k3, w3.data(), n3, 0, y3.data(), n3);
    // Backward: each layer's weight gradient, and the input gradient of the two above the first.
    cblas_sgemm(S, T, N, k3, n3, m3, 1, x3.data(), k3, y3.data(), n3, 0, g3.data(), n3);
    cblas_sgemm(S, N, T, m3, k3, n3, 1, y3.data(), n3, w3.data(), n3, 0, dx3.data(), k3);
    cblas_sgemm(S, T, N, k2, n2, m2, 1, p2.data(), k2, y2.data(), n2, 0, g2.data(), n2);
    cblas_sgemm(S, N, T, m2, k2, n2, 1, y2.data(), n2, w2.data(), n2, 0, dp2.data(), k2);
    cblas_sgemm(S, T, N, k1, n1, m1, 1, p1.data(), k1, y1.data(), n1, 0, g1.data(), n1);
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
    benchmark::DoNotOptimize(dp2.data());
  }
  openblas_set_num_threads(1);
}
BENCHMARK(CNN_floor)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
