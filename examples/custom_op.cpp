// Your own ops, with their own derivatives.
//
// 1. An elementwise op is one struct with a value and a derivative, like the entries of
//    autodiff/ops.hpp; elementwise<Op>(x) applies it to a Var or to a Tensor.
// 2. Any other tensor op is one struct with a forward and a backward, applied with apply().
//
// Each is checked against finite differences with check_gradient (and against a hand derivative
// where there is one). The program exits non-zero if a check fails.
#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/core.h>

#include "autodiff/autodiff.hpp"

using namespace autodiff;

// softplus(x) = log(1 + eˣ), written so that it never overflows: max(x, 0) + log(1 + e^−|x|).
// Composing relu(x) + log(1 + exp(−abs(x))) gives the right values but gradient 0 at x = 0 (relu
// and abs both pick 0 there); with its own derivative, the sigmoid, it is 0.5.
struct StableSoftplus {
  static constexpr auto value = []<class T>(T x) {
    return std::max(x, T(0)) + std::log1p(std::exp(-std::fabs(x)));
  };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / (T(1) + std::exp(-x)); };
};

// Clip to [low, high] in forward, pass the gradient through unchanged in backward: the
// straight-through estimator (used to train quantised networks).
struct StraightThroughClip {
  static constexpr const char* name = "straight_through_clip";
  double low, high;  // the op's state, kept on the tape for backward

  Shape output_shape(const Shape& x) const { return x; }

  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i], T(low), T(high));
  }

  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    for (std::int64_t i = 0; i < g.size(); ++i) gx[i] += g[i];
  }
};

bool report(const char* what, const GradientCheck& check,
            std::initializer_list<std::string> names) {
  fmt::print("{} ({})\n{}\n", what, check.passed() ? "passed" : "FAILED", check.table(names));
  return check.passed();
}

int main() {
  bool passed = true;

  // softplus on a Var, at the kink and on both sides, with the hand derivative 1/(1 + e^−x).
  for (double x : {-3.0, 0.0, 2.5}) {
    const auto check = check_gradient(
        [](std::span<const Var> p) { return Var(elementwise<StableSoftplus>(p[0])); }, {x},
        {1 / (1 + std::exp(-x))});
    passed &= report(fmt::format("softplus(x) on a Var at x = {}", x).c_str(), check, {"x"});
  }

  // softplus on a tensor: the same struct. d/dx_i Σ w_i·softplus(x_i) = w_i·sigmoid(x_i).
  const std::vector<double> x = {-30.0, -1.0, 0.0, 1.0, 30.0}, w = {1, 2, 3, 4, 5};
  std::vector<double> hand(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) hand[i] = w[i] / (1 + std::exp(-x[i]));
  const auto softplus_check = check_gradient(
      [&](std::span<const Var> p) {
        const auto t = Tensor<double>::from_vars(p, {5});
        return to_var(sum(elementwise<StableSoftplus>(t) * Tensor<double>::from(w, {5})));
      },
      x, hand);
  passed &= report("Σ w·softplus(x) on a tensor", softplus_check, {"x0", "x1", "x2", "x3", "x4"});

  // The straight-through clip: y = clip(x)·x. Its tape gradient is the custom one, clip(x) + x
  // (the clip's derivative taken as 1), so it is compared with that hand derivative; finite
  // differences see the true clip instead, and agree only inside [low, high].
  const std::vector<double> inside = {-0.5, 0.25, 0.75};
  const std::vector<double> hand_inside = {2 * inside[0], 2 * inside[1], 2 * inside[2]};
  const auto clip_check = check_gradient(
      [](std::span<const Var> p) {
        const auto t = Tensor<double>::from_vars(p, {3});
        return to_var(sum(apply(StraightThroughClip{-1, 1}, t) * t));
      },
      inside, hand_inside);
  passed &= report("Σ clip(x)·x, x inside [−1, 1]", clip_check, {"x0", "x1", "x2"});

  Tape tape;
  TapeScope scope(tape);
  const auto outside = Tensor<float>::from({-3.0f, 0.5f, 2.0f}, {3}).requires_grad();
  sum(apply(StraightThroughClip{-1, 1}, outside) * outside).backward();
  const auto g = outside.grad();
  const bool straight_through = g[0] == -1 + -3.0f && g[1] == 1.0f && g[2] == 1 + 2.0f;
  fmt::print(
      "Σ clip(x)·x at x = (−3, 0.5, 2), float: gradient ({}, {}, {}), expected (−4, 1, 3): "
      "{}\n\n",
      g[0], g[1], g[2], straight_through ? "passed" : "FAILED");
  passed &= straight_through;

  fmt::print("custom ops: {}\n", passed ? "all gradient checks passed" : "some checks FAILED");
  return passed ? 0 : 1;
}
