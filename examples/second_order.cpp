// Second derivatives (autodiff/second_order.hpp): Hessians, Newton's method, and the sharpest
// direction of a neural network's loss by power iteration on Hessian-vector products.
//
// Each function is written once, generically (`[](auto x) { … }`), and the drivers call it with
// the number type they need: hessian() and hvp() record it on Dual numbers (forward over
// reverse), jvp() runs it on Duals alone. For a model's loss, nn::parameter_hvp does it through
// the tensor ops: tangents ride along the network's forward and backward passes (tangent mode).
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <stdexcept>
#include <vector>

#include <fmt/core.h>

#include "autodiff/second_order.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/second_order.hpp"
#include "tutorial_network.hpp"

using namespace autodiff;

// ---- 1. Rosenbrock: f(x, y) = (1 − x)² + 100·(y − x²)², minimum 0 at (1, 1) ----

constexpr auto rosenbrock = [](auto x) {
  return square(1 - x[0]) + 100 * square(x[1] - square(x[0]));
};

void print_rosenbrock_hessian() {
  const Matrix h = hessian(rosenbrock, {1.0, 1.0}).hessian;
  fmt::print("Rosenbrock Hessian at (1, 1): [[{}, {}], [{}, {}]]\n", h(0, 0), h(0, 1), h(1, 0),
             h(1, 1));
}

// ---- 2. Newton's method: x ← x + t·d, H·d = −∇f, t halved until f decreases enough ----

void newton_on_rosenbrock() {
  std::array<double, 2> x = {-1.2, 1.0};
  fmt::print("Newton's method with a backtracking line search on Rosenbrock from (-1.2, 1):\n");
  for (int iteration = 0; iteration < 100; ++iteration) {
    const HessianResult r = hessian(rosenbrock, x);
    const std::vector<double>& g = r.gradient;
    const Matrix& h = r.hessian;
    const double gradient_norm = std::hypot(g[0], g[1]);
    if (gradient_norm < 1e-12) {
      fmt::print("iteration {:2}: x = ({:.15g}, {:.15g}), f = {:.3e}, |grad| = {:.3e}: minimum\n",
                 iteration, x[0], x[1], r.value, gradient_norm);
      return;
    }
    // The Newton direction, by Cramer's rule; the steepest descent if H is not positive there.
    const double det = h(0, 0) * h(1, 1) - h(0, 1) * h(1, 0);
    std::array<double, 2> d = {-(h(1, 1) * g[0] - h(0, 1) * g[1]) / det,
                               -(h(0, 0) * g[1] - h(1, 0) * g[0]) / det};
    double slope = g[0] * d[0] + g[1] * d[1];
    if (!(h(0, 0) > 0 && det > 0) || !(slope < 0)) {
      d = {-g[0], -g[1]};
      slope = -gradient_norm * gradient_norm;
    }
    // Armijo's condition: f(x + t·d) ≤ f(x) + 10⁻⁴·t·∇f·d.
    const std::array<double, 2> no_direction = {0.0, 0.0};  // jvp's value alone: f(x + t·d)
    double t = 1.0;
    std::array<double, 2> next = x;
    for (int halvings = 0; halvings < 60; ++halvings, t /= 2) {
      next = {x[0] + t * d[0], x[1] + t * d[1]};
      if (jvp(rosenbrock, next, no_direction).value <= r.value + 1e-4 * t * slope) break;
    }
    fmt::print("iteration {:2}: x = ({:.15g}, {:.15g}), f = {:.3e}, |grad| = {:.3e}, step {}\n",
               iteration, x[0], x[1], r.value, gradient_norm, t);
    x = next;
  }
  fmt::print("no convergence in 100 iterations\n");
}

// ---- 3. The tutorial's 2-2-1 network: the Hessian of its loss at the worked example ----

void print_tutorial_hessian() {
  auto loss = [](auto p) {  // L(w1 … b3) for Alice at (−2, −1), target 1
    std::array<typename decltype(p)::value_type, 9> params;
    for (std::size_t i = 0; i < 9; ++i) params[i] = p[i];
    return tutorial::loss(params, tutorial::kPeople[0]);
  };
  const tutorial::Params worked_example = {1, 1, 1, 1, 1, 1, 0, 0, 0};
  const Matrix h = hessian(loss, worked_example).hessian;
  fmt::print(
      "Hessian of the tutorial's loss at its worked example (weights 1, biases 0, Alice):\n");
  for (std::size_t i = 0; i < 9; ++i) {
    fmt::print("{:>3}", tutorial::kParamNames[i]);
    for (std::size_t j = 0; j < 9; ++j) fmt::print(" {:>19.12g}", h(i, j));
    fmt::print("\n");
  }
}

// ---- 4. The MNIST MLP: the largest eigenvalue of its loss's Hessian, by power iteration ----

void print_mnist_sharpness() {
  constexpr std::int64_t kBatch = 32;
  const nn::Dataset train = nn::load_mnist(AUTODIFF_DEFAULT_DATA_DIR, "train");
  std::vector<float> x, y_true(kBatch * 10, 0.0f);  // the first batch, and its one-hot labels
  for (std::int64_t i = 0; i < kBatch * train.features(); ++i)
    x.push_back(static_cast<float>(train.images()[i]) / 255.0f);
  for (std::int64_t n = 0; n < kBatch; ++n) y_true[n * 10 + train.labels()[n]] = 1.0f;

  // The MLP of examples/mnist_mlp.cpp, at its initial weights (seed 1).
  nn::Sequential network;
  network.add(nn::Dense(784, 128, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(128, 10, nn::Activation::Softmax, {.seed = 2}));

  // Power iteration: v ← H·v / |H·v|; the Rayleigh quotient vᵀ·H·v converges to the eigenvalue
  // of largest magnitude.
  std::vector<double> v(static_cast<std::size_t>(network.parameter_count()));
  std::mt19937_64 random(42);
  std::normal_distribution<double> normal;
  for (double& vi : v) vi = normal(random);
  auto normalize = [](std::vector<double>& u) {
    double norm = 0;
    for (double ui : u) norm += ui * ui;
    norm = std::sqrt(norm);
    for (double& ui : u) ui /= norm;
  };
  normalize(v);
  double eigenvalue = 0, residual = 0;
  int iterations = 0;
  while (iterations < 1000) {
    ++iterations;
    std::vector<double> hv =
        nn::parameter_hvp(network, nn::SecondOrderLoss::CategoricalCrossentropy, x, kBatch, y_true,
                          v)
            .hessian_vector;
    double rayleigh = 0;
    for (std::size_t i = 0; i < v.size(); ++i) rayleigh += v[i] * hv[i];
    residual = 0;  // |H·v − λ·v| / |λ|
    for (std::size_t i = 0; i < v.size(); ++i)
      residual += (hv[i] - rayleigh * v[i]) * (hv[i] - rayleigh * v[i]);
    residual = std::sqrt(residual) / std::fabs(rayleigh);
    const bool converged = std::fabs(rayleigh - eigenvalue) <= 1e-7 * std::fabs(rayleigh);
    eigenvalue = rayleigh;
    if (converged) break;
    v = hv;
    normalize(v);
  }
  fmt::print(
      "Largest Hessian eigenvalue of the MNIST MLP's loss (first batch of {}, initial weights, "
      "{} parameters): {:.7g} after {} power iterations (residual {:.1e})\n",
      kBatch, v.size(), eigenvalue, iterations, residual);
}

int main() {
  try {
    print_rosenbrock_hessian();
    newton_on_rosenbrock();
    print_tutorial_hessian();
    print_mnist_sharpness();
    if (std::fflush(stdout) != 0) throw std::runtime_error("cannot write the output");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "second_order: %s\n", e.what());
    return 1;
  }
}
