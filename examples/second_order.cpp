// Second derivatives (autodiff/second_order.hpp): Hessians, Newton's method, and the sharpest
// direction of a neural network's loss by power iteration on Hessian-vector products.
//
// Each function is written once, generically (`[](auto x) { … }`), and the drivers call it with
// the number type they need: hessian() and hvp() record it on Dual numbers (forward over
// reverse), gradient() with Vars.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

#include <fmt/core.h>

#include "autodiff/second_order.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
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

constexpr std::int64_t kInputs = 784, kHidden = 128, kClasses = 10, kBatch = 32;

// The tutorial's MLP (784 → Dense(128, ReLU) → Dense(10, softmax), categorical cross-entropy,
// mean over the batch) on parameters p = W1 (784 × 128), b1, W2 (128 × 10), b2: the layout of the
// nn::Dense layers' "weight" and "bias". Written on scalars, so that hvp() records it on Duals.
struct MlpLoss {
  std::vector<double> pixels;  // kBatch × kInputs, in [0, 1]
  std::vector<std::int32_t> labels;

  template <class X>
  X operator()(std::span<const X> p) const {
    const X* w1 = p.data();
    const X* b1 = w1 + kInputs * kHidden;
    const X* w2 = b1 + kHidden;
    const X* b2 = w2 + kHidden * kClasses;
    X total = 0.0;
    std::vector<X> hidden(kHidden), logits(kClasses);
    for (std::int64_t n = 0; n < kBatch; ++n) {
      const double* x = &pixels[n * kInputs];
      for (std::int64_t j = 0; j < kHidden; ++j) {
        X z = b1[j];
        for (std::int64_t k = 0; k < kInputs; ++k)
          if (x[k] != 0) z += w1[k * kHidden + j] * x[k];  // most pixels are 0
        hidden[j] = relu(z);
      }
      // Cross-entropy on the logits: log Σ exp(z_c − m) + m − z_label, m = max z (a constant
      // shift, for exp not to overflow: the result does not depend on it).
      double m = -INFINITY;
      for (std::int64_t c = 0; c < kClasses; ++c) {
        X z = b2[c];
        for (std::int64_t j = 0; j < kHidden; ++j) z += w2[j * kClasses + c] * hidden[j];
        logits[c] = z;
        m = std::max(m, detail::primal(z.value()));
      }
      X sum = 0.0;
      for (std::int64_t c = 0; c < kClasses; ++c) sum += exp(logits[c] - m);
      total += log(sum) + m - logits[labels[n]];
    }
    return X(total / static_cast<double>(kBatch));
  }
};

void print_mnist_sharpness() {
  const nn::Dataset train = nn::load_mnist(AUTODIFF_DEFAULT_DATA_DIR, "train");
  MlpLoss loss;
  for (std::int64_t i = 0; i < kBatch * kInputs; ++i)
    loss.pixels.push_back(train.images()[i] / 255.0);
  loss.labels.assign(train.labels().begin(), train.labels().begin() + kBatch);

  // The initial weights of examples/mnist_mlp.cpp (seed 1).
  nn::Dense hidden(kInputs, kHidden, nn::Activation::Relu, {.seed = 1});
  nn::Dense output(kHidden, kClasses, nn::Activation::Softmax, {.seed = 2});
  std::vector<double> weights;
  for (nn::Parameter* p : {&hidden.weights(), &hidden.bias(), &output.weights(), &output.bias()})
    weights.insert(weights.end(), p->value.begin(), p->value.end());

  // Power iteration: v ← H·v / |H·v|; the Rayleigh quotient vᵀ·H·v converges to the eigenvalue
  // of largest magnitude.
  std::vector<double> v(weights.size());
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
    std::vector<double> hv = hvp(loss, weights, v).hessian_vector;
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
      kBatch, weights.size(), eigenvalue, iterations, residual);
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
