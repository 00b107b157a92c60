// Scalar benchmarks: the tape against hand-written gradients, in one run.
//   B1: the tutorial's training pass (1000 epochs × 4 people = 4000 per-sample SGD steps).
//   B2: a large scalar graph, f(x) = Σ sigmoid(a_i·x_i + b_i)·x_{(i+1) mod n} + log(1 + x_i²).
// Compare B1_tape with B1_hand and B2_tape_gradient with B2_function (scripts/bench_ratios.py).
#include <cmath>
#include <vector>

#include <benchmark/benchmark.h>

#include "autodiff/autodiff.hpp"
#include "tutorial_network.hpp"

using autodiff::Var;

namespace {

// ---- B1 ----

constexpr int kEpochs = 1000;
constexpr double kLearnRate = 0.1;
constexpr int kStepsPerPass = kEpochs * static_cast<int>(tutorial::kPeople.size());
constexpr tutorial::Params kInitial = {0.5, -0.3, 0.8, 0.1, -0.6, 0.9, 0.05, -0.2, 0.3};

template <tutorial::Params (*Gradient)(const tutorial::Params&, const tutorial::Person&)>
void train_pass(benchmark::State& state) {
  for (auto _ : state) {
    tutorial::Params p = kInitial;
    for (int epoch = 0; epoch < kEpochs; ++epoch)
      for (const tutorial::Person& person : tutorial::kPeople)
        tutorial::sgd_step(p, Gradient(p, person), kLearnRate);
    benchmark::DoNotOptimize(p);
  }
  state.counters["ns_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kStepsPerPass * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void B1_hand(benchmark::State& state) { train_pass<tutorial::hand_gradient>(state); }
void B1_tape(benchmark::State& state) { train_pass<tutorial::tape_gradient>(state); }
BENCHMARK(B1_hand);
BENCHMARK(B1_tape);

// ---- B2 ----

constexpr std::size_t kN = 100'000;
constexpr double kOpsPerTerm = 9;  // a·x, +b, sigmoid, ·x_next, x², 1+, log, +, Σ
// The peers' count (Adept's and Stan's papers): elementary operations, sigmoid being four of them
// (negation, exponential, addition, division): 12 per term.
constexpr double kElementaryOpsPerTerm = 12;

struct B2Data {
  std::vector<double> x, a, b;
  B2Data() : x(kN), a(kN), b(kN) {
    for (std::size_t i = 0; i < kN; ++i) {
      x[i] = static_cast<double>((37 * i) % 101) / 101.0 - 0.5;
      a[i] = 0.5 + 0.1 * static_cast<double>(i % 7);
      b[i] = -0.3 + 0.1 * static_cast<double>(i % 5);
    }
  }
};
const B2Data& data() {
  static const B2Data d;
  return d;
}

double b2_function(const std::vector<double>& x) {
  const B2Data& d = data();
  double f = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    const double next = x[(i + 1) % kN];
    f += autodiff::sigmoid(d.a[i] * x[i] + d.b[i]) * next + std::log(1 + x[i] * x[i]);
  }
  return f;
}

void B2_function(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(b2_function(data().x));
}
BENCHMARK(B2_function)->Unit(benchmark::kMicrosecond);

void B2_hand_gradient(benchmark::State& state) {
  const B2Data& d = data();
  std::vector<double> g(kN);
  for (auto _ : state) {
    std::fill(g.begin(), g.end(), 0.0);
    for (std::size_t i = 0; i < kN; ++i) {
      const std::size_t j = (i + 1) % kN;
      const double z = d.a[i] * d.x[i] + d.b[i];
      const double s = autodiff::sigmoid(z);
      g[i] +=
          autodiff::sigmoid_derivative(z) * d.a[i] * d.x[j] + 2 * d.x[i] / (1 + d.x[i] * d.x[i]);
      g[j] += s;
    }
    benchmark::DoNotOptimize(g.data());
  }
}
BENCHMARK(B2_hand_gradient)->Unit(benchmark::kMicrosecond);

void B2_tape_gradient(benchmark::State& state) {
  const B2Data& d = data();
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  std::vector<Var> x(kN);
  std::vector<double> g(kN);
  for (auto _ : state) {
    tape.clear();
    for (std::size_t i = 0; i < kN; ++i) x[i] = d.x[i];
    Var f = 0.0;
    for (std::size_t i = 0; i < kN; ++i)
      f += sigmoid(d.a[i] * x[i] + d.b[i]) * x[(i + 1) % kN] + log(1 + square(x[i]));
    f.backward();
    for (std::size_t i = 0; i < kN; ++i) g[i] = x[i].grad();
    benchmark::DoNotOptimize(g.data());
  }
  state.counters["tape_bytes_per_op"] = static_cast<double>(tape.bytes_used()) / (kOpsPerTerm * kN);
  state.counters["tape_bytes_per_elementary_op"] =
      static_cast<double>(tape.bytes_used()) / (kElementaryOpsPerTerm * kN);
  state.counters["tape_bytes_per_node"] =
      static_cast<double>(tape.bytes_used()) / static_cast<double>(tape.node_count());
  // The gradient must be right, or the timing means nothing.
  std::vector<double> hand(kN, 0.0);
  for (std::size_t i = 0; i < kN; ++i) {
    const double z = d.a[i] * d.x[i] + d.b[i];
    hand[i] += autodiff::sigmoid_derivative(z) * d.a[i] * d.x[(i + 1) % kN] +
               2 * d.x[i] / (1 + d.x[i] * d.x[i]);
    hand[(i + 1) % kN] += autodiff::sigmoid(z);
  }
  for (std::size_t i = 0; i < kN; ++i)
    if (std::fabs(hand[i] - g[i]) > 1e-12 * (1 + std::fabs(hand[i]))) {
      state.SkipWithError("tape gradient differs from the hand-written one");
      break;
    }
}
BENCHMARK(B2_tape_gradient)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
