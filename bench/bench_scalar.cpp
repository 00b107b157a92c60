// Scalar benchmarks: the tape against hand-written gradients, in one run.
//   B1: the tutorial's training pass (1000 epochs × 4 people = 4000 per-sample SGD steps).
//   B2: a large scalar graph, f(x) = Σ sigmoid(a_i·x_i + b_i)·x_{(i+1) mod n} + log(1 + x_i²).
//   B3: the Hessian-vector product H·v of the B2 function (second_order.hpp), with its gradient.
// Compare B1_tape with B1_hand, B2_tape_gradient with B2_function and B3_hvp with
// B2_tape_gradient (scripts/bench_ratios.py).
#include <cmath>
#include <vector>

#include <benchmark/benchmark.h>

#include "autodiff/autodiff.hpp"
#include "autodiff/second_order.hpp"
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

// ---- B3 ----

// The hand-written gradient of the B2 function at x.
std::vector<double> b2_hand_gradient(const std::vector<double>& x) {
  const B2Data& d = data();
  std::vector<double> g(kN, 0.0);
  for (std::size_t i = 0; i < kN; ++i) {
    const std::size_t j = (i + 1) % kN;
    const double z = d.a[i] * x[i] + d.b[i];
    g[i] += autodiff::sigmoid_derivative(z) * d.a[i] * x[j] + 2 * x[i] / (1 + x[i] * x[i]);
    g[j] += autodiff::sigmoid(z);
  }
  return g;
}

// H·v and ∇f of the B2 function: record on Duals x + v·ε, one reverse sweep over Duals.
void B3_hvp(benchmark::State& state) {
  using Dual = autodiff::Dual<double>;
  using DualVar = autodiff::VarOf<Dual>;
  const B2Data& d = data();
  autodiff::TapeOf<Dual> tape;
  autodiff::TapeOfScope<Dual> scope(tape);
  std::vector<DualVar> x(kN);
  std::vector<double> v(kN), g(kN), hv(kN);
  for (std::size_t i = 0; i < kN; ++i) v[i] = std::cos(static_cast<double>(i));
  for (auto _ : state) {
    tape.clear();
    for (std::size_t i = 0; i < kN; ++i) x[i] = DualVar(Dual(d.x[i], v[i]));
    DualVar f = 0.0;
    for (std::size_t i = 0; i < kN; ++i)
      f += sigmoid(d.a[i] * x[i] + d.b[i]) * x[(i + 1) % kN] + log(1 + square(x[i]));
    tape.backward(f.index());
    for (std::size_t i = 0; i < kN; ++i) {
      g[i] = x[i].grad().value;
      hv[i] = x[i].grad().tangent;
    }
    benchmark::DoNotOptimize(g.data());
    benchmark::DoNotOptimize(hv.data());
  }
  // H·v must be right, or the timing means nothing: against central differences of the
  // hand-written gradient along v (error O(h²) ≈ 1e-8), and the gradient against the hand one.
  const std::vector<double> hand = b2_hand_gradient(d.x);
  constexpr double h = 1e-4;
  std::vector<double> plus(d.x), minus(d.x);
  for (std::size_t i = 0; i < kN; ++i) {
    plus[i] += h * v[i];
    minus[i] -= h * v[i];
  }
  const std::vector<double> g_plus = b2_hand_gradient(plus), g_minus = b2_hand_gradient(minus);
  for (std::size_t i = 0; i < kN; ++i) {
    const double fd = (g_plus[i] - g_minus[i]) / (2 * h);
    if (std::fabs(hand[i] - g[i]) > 1e-12 * (1 + std::fabs(hand[i])) ||
        std::fabs(fd - hv[i]) > 1e-6 * (1 + std::fabs(fd))) {
      state.SkipWithError("H·v or the gradient differs from the hand-written reference");
      break;
    }
  }
}
BENCHMARK(B3_hvp)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
