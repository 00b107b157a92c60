// Forward mode and second order (dual.hpp, forward.hpp, second_order.hpp): every op's J·v and H·v
// against finite differences, Hessians exact where the closed form is known, gradients of
// gradients, Jacobians both ways.
#include <array>
#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"
#include "autodiff/second_order.hpp"
#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/second_order.hpp"
#include "tutorial_network.hpp"

using namespace autodiff;

namespace {

// One function of two inputs per op, written once for every number type (Var, Dual, VarOf):
// each op is applied to a mix of both inputs, so that every second partial is exercised.
struct OpCase {
  const char* name;
  std::array<double, 2> x;
};
constexpr std::array<OpCase, 23> kOpCases = {{
    {"negate", {0.7, -1.3}},   {"square", {0.7, -1.3}},   {"exp", {0.7, -0.4}},
    {"log", {0.7, 1.3}},       {"log1p", {0.7, 1.3}},     {"sqrt", {0.7, 1.3}},
    {"sin", {0.7, -1.3}},      {"cos", {0.7, -1.3}},      {"tan", {0.4, 0.3}},
    {"tanh", {0.7, -1.3}},     {"sigmoid", {0.7, -1.3}},  {"relu", {0.7, 1.3}},
    {"abs", {0.7, -1.3}},      {"softplus", {0.7, -1.3}}, {"leaky_relu", {-0.7, 1.3}},
    {"clamp", {0.2, 0.3}},     {"add", {0.7, -1.3}},      {"subtract", {0.7, -1.3}},
    {"multiply", {0.7, -1.3}}, {"divide", {0.7, -1.3}},   {"pow", {0.7, 1.3}},
    {"min", {0.7, -1.3}},      {"max", {0.7, -1.3}},
}};

// The op `name` on u = x0·x1 + x0 (and, for binary ops, on u and w = sin(x1) + x0²), times x1:
// the outer product makes the mixed partials depend on the op's first and second derivatives.
template <class X>
auto op_function(const std::string& name, std::span<const X> x) {
  using std::sin;
  const X u = x[0] * x[1] + x[0];
  const X w = sin(x[1]) + square(x[0]);
  X y;
  if (name == "negate") y = -u;
  if (name == "square") y = square(u);
  if (name == "exp") y = exp(u);
  if (name == "log") y = log(u);
  if (name == "log1p") y = log1p(u);
  if (name == "sqrt") y = sqrt(u);
  if (name == "sin") y = sin(u);
  if (name == "cos") y = cos(u);
  if (name == "tan") y = tan(u);
  if (name == "tanh") y = tanh(u);
  if (name == "sigmoid") y = sigmoid(u);
  if (name == "relu") y = relu(u);
  if (name == "abs") y = abs(u);
  if (name == "softplus") y = softplus(u);
  if (name == "leaky_relu") y = leaky_relu(u, 0.2);
  if (name == "clamp") y = clamp(u, -1.0, 1.0);
  if (name == "add") y = u + w;
  if (name == "subtract") y = u - w;
  if (name == "multiply") y = u * w;
  if (name == "divide") y = u / w;
  if (name == "pow") y = pow(u, w);
  if (name == "min") y = min(u, w);
  if (name == "max") y = max(u, w);
  return X(y * x[1] + y * y);
}

// x³ with a derivative that drops its dependence on x at second order (primal()): the tape's
// Hessian is then 0 where finite differences of the gradient give 6x.
struct BadCube {
  static constexpr auto value = [](auto x) { return x * x * x; };
  static constexpr auto derivative = []<class T>(T x, T) {
    return T(3 * detail::primal(x) * detail::primal(x));
  };
};

// Ridders' finite difference of t ↦ g(t) at 0, from check_gradient (10–13 digits).
double finite_difference(const std::function<double(double)>& g) {
  auto along = [&](std::span<const Var> t) {
    // check_gradient evaluates f on constants for its differences: only t's value matters.
    return Var::constant(g(t[0].value())) + 0.0 * t[0];
  };
  return check_gradient(along, {0.0}).entries[0].finite_difference;
}

}  // namespace

TEST_CASE("Rosenbrock's Hessian is exact at several points") {
  auto rosenbrock = [](auto x) { return square(1 - x[0]) + 100 * square(x[1] - square(x[0])); };
  for (const auto& [x, y] : std::vector<std::array<double, 2>>{
           {1, 1}, {-1.25, 1}, {0, 0}, {0.5, -0.25}, {2, 3}, {-3, 0.125}}) {
    const HessianResult h = hessian(rosenbrock, {x, y});
    INFO("at (", x, ", ", y, ")");
    CHECK(h.hessian(0, 0) == 1200 * x * x - 400 * y + 2);
    CHECK(h.hessian(0, 1) == -400 * x);
    CHECK(h.hessian(1, 0) == -400 * x);
    CHECK(h.hessian(1, 1) == 200);
    CHECK(h.asymmetry == 0.0);
    CHECK(h.value == (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x));
    CHECK(h.gradient[0] == -2 * (1 - x) - 400 * x * (y - x * x));
    CHECK(h.gradient[1] == 200 * (y - x * x));
  }
}

TEST_CASE("H·v and the Hessian of every scalar op against finite differences of the gradient") {
  for (const OpCase& c : kOpCases) {
    const std::string name = c.name;
    auto f = [&name](auto x) {
      using X = typename decltype(x)::value_type;
      return op_function<X>(name, x);
    };
    INFO(name);
    const SecondOrderCheck h = check_hessian(f, c.x);
    INFO(h.table({"x0", "x1"}));
    CHECK(h.passed());
    CHECK(h.max_rel_error < 1e-7);
    const SecondOrderCheck hv = check_hvp(f, c.x, std::array<double, 2>{0.3, -1.1});
    INFO(hv.table({"x0", "x1"}));
    CHECK(hv.passed());
    // hvp is the Hessian times v, to rounding.
    const HessianResult full = hessian(f, c.x);
    const HvpResult r = hvp(f, c.x, std::array<double, 2>{0.3, -1.1});
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(r.hessian_vector[i] ==
            doctest::Approx(full.hessian(i, 0) * 0.3 - full.hessian(i, 1) * 1.1).epsilon(1e-13));
  }
}

TEST_CASE("jvp of every scalar op against finite differences") {
  const std::array<double, 2> v = {0.3, -1.1};
  for (const OpCase& c : kOpCases) {
    const std::string name = c.name;
    auto f = [&name](auto x) {
      using X = typename decltype(x)::value_type;
      return op_function<X>(name, x);
    };
    INFO(name);
    const JvpResult<double> j = jvp(f, c.x, v);
    const double fd = finite_difference([&](double t) {
      NoGradGuard no_grad;
      const std::array<Var, 2> at = {Var::constant(c.x[0] + t * v[0]),
                                     Var::constant(c.x[1] + t * v[1])};
      return f(std::span<const Var>(at)).value();
    });
    CHECK(j.tangent == doctest::Approx(fd).epsilon(1e-9));
    // The value is the same as the reverse modes' (to rounding: FMA contraction may differ).
    const std::array<double, 2> x = c.x;
    CHECK(j.value == doctest::Approx(hvp(f, x, v).value).epsilon(1e-15));
  }
}

TEST_CASE("jvp of a vector-valued function, and the Jacobian both ways") {
  auto f = [](auto x) {
    using X = typename decltype(x)::value_type;
    return std::vector<X>{x[0] * x[1] * x[2], sin(x[0]) + exp(x[2]), x[1] / x[2], square(x[0])};
  };
  const std::array<double, 3> x = {0.5, -2.0, 1.5};
  const std::array<double, 3> v = {1.0, 0.5, -0.25};
  auto exact = [&](std::size_t i, std::size_t j) {
    const double a = x[0], b = x[1], c = x[2];
    const double rows[4][3] = {{b * c, a * c, a * b},
                               {std::cos(a), 0, std::exp(c)},
                               {0, 1 / c, -b / (c * c)},
                               {2 * a, 0, 0}};
    return rows[i][j];
  };
  const JvpResult<std::vector<double>> j = jvp(f, x, v);
  REQUIRE(j.tangent.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    double expected = 0;
    for (std::size_t k = 0; k < 3; ++k) expected += exact(i, k) * v[k];
    CHECK(j.tangent[i] == doctest::Approx(expected).epsilon(1e-15));
  }
  // 4 outputs ≥ 3 inputs: by forward columns.
  const JacobianResult forward = jacobian(f, x);
  REQUIRE(forward.jacobian.rows == 4);
  REQUIRE(forward.jacobian.cols == 3);
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t k = 0; k < 3; ++k)
      CHECK(forward.jacobian(i, k) == doctest::Approx(exact(i, k)).epsilon(1e-15));

  // Two outputs of three inputs: reverse rows, against forward columns.
  auto g = [](auto x) {
    using X = typename decltype(x)::value_type;
    return std::vector<X>{x[0] * x[1] + tanh(x[2]), log(x[0]) * sigmoid(x[1] * x[2])};
  };
  const std::array<double, 3> positive = {0.5, 2.0, 1.5};
  const JacobianResult reverse = jacobian(g, positive);
  for (std::size_t k = 0; k < 3; ++k) {
    std::array<double, 3> e = {0, 0, 0};
    e[k] = 1;
    const auto column = jvp(g, positive, e);
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(reverse.jacobian(i, k) == doctest::Approx(column.tangent[i]).epsilon(1e-15));
  }
}

TEST_CASE("vjp: uᵀJ in one reverse sweep") {
  auto f = [](auto x) {
    using X = typename decltype(x)::value_type;
    return std::vector<X>{x[0] * x[1], sin(x[0]), x[1]};  // the last output is an input itself
  };
  const VjpResult r = vjp(f, std::array<double, 2>{2.0, 3.0}, std::array<double, 3>{1.0, 2.0, 5.0});
  CHECK(r.value == std::vector<double>{6.0, std::sin(2.0), 3.0});
  CHECK(r.cotangent[0] == doctest::Approx(3.0 + 2 * std::cos(2.0)).epsilon(1e-15));
  CHECK(r.cotangent[1] == doctest::Approx(2.0 + 5.0).epsilon(1e-15));
  CHECK_THROWS_WITH_AS(vjp(f, std::array<double, 2>{2.0, 3.0}, std::array<double, 1>{1.0}),
                       "vjp: u (one entry per output) has 1 entries, expected one per input (3)",
                       std::invalid_argument);
}

TEST_CASE("gradient of a gradient: Hessian rows and a gradient penalty in closed form") {
  // f = x²y + sin(x)·eʸ;  ∇f = (2xy + cos x·eʸ, x² + sin x·eʸ).
  auto f = [](auto p) { return p[0] * p[0] * p[1] + sin(p[0]) * exp(p[1]); };
  const double a = 0.8, b = -0.6;
  const double e = std::exp(b), s = std::sin(a), c = std::cos(a);
  const double fx = 2 * a * b + c * e, fy = a * a + s * e;
  const double fxx = 2 * b - s * e, fxy = 2 * a + c * e, fyy = s * e;

  Tape tape;
  TapeScope scope(tape);
  const Var x = a, y = b;
  const std::array<Var, 2> xy = {x, y};
  const DifferentiableGradient g = differentiable_gradient(f, xy);
  CHECK(g.value.value() == doctest::Approx(a * a * b + s * e).epsilon(1e-15));
  CHECK(g.gradient[0].value() == doctest::Approx(fx).epsilon(1e-15));
  CHECK(g.gradient[1].value() == doctest::Approx(fy).epsilon(1e-15));

  // The gradient's own gradients: the Hessian's rows, by the first-order tape.
  const auto [dxx, dxy] = gradient(g.gradient[0], x, y);
  const auto [dyx, dyy] = gradient(g.gradient[1], x, y);
  CHECK(dxx == doctest::Approx(fxx).epsilon(1e-14));
  CHECK(dxy == doctest::Approx(fxy).epsilon(1e-14));
  CHECK(dyx == doctest::Approx(fxy).epsilon(1e-14));
  CHECK(dyy == doctest::Approx(fyy).epsilon(1e-14));

  // A gradient penalty: P = f + ‖∇f‖², ∇P = ∇f + 2·H·∇f.
  const Var penalty = g.value + square(g.gradient[0]) + square(g.gradient[1]);
  const auto [px, py] = gradient(penalty, x, y);
  CHECK(px == doctest::Approx(fx + 2 * (fxx * fx + fxy * fy)).epsilon(1e-14));
  CHECK(py == doctest::Approx(fy + 2 * (fxy * fx + fyy * fy)).epsilon(1e-14));
}

TEST_CASE("Hessians are symmetric, and H·v agrees with the dense Hessian") {
  auto f = [](auto x) {
    return sigmoid(x[0] * x[1] - x[2]) * log(1 + square(x[3])) + exp(x[4] * x[0]) / (2 + x[2]) +
           tanh(x[1] * x[3] * x[4]);
  };
  const std::array<double, 5> x = {0.3, -0.7, 1.1, 0.4, -0.2};
  const HessianResult h = hessian(f, x);
  CHECK(h.asymmetry < 1e-15);
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 5; ++j) CHECK(h.hessian(i, j) == h.hessian(j, i));
  const std::array<double, 5> v = {1, -2, 0.5, 0.25, 3};
  const HvpResult r = hvp(f, x, v);
  for (std::size_t i = 0; i < 5; ++i) {
    double expected = 0;
    for (std::size_t j = 0; j < 5; ++j) expected += h.hessian(i, j) * v[j];
    CHECK(r.hessian_vector[i] == doctest::Approx(expected).epsilon(1e-14));
    CHECK(r.gradient[i] == h.gradient[i]);
  }
  CHECK(check_hessian(f, x).passed());
}

TEST_CASE("H·v of dense networks' losses against finite differences of the tape's gradient") {
  // The tutorial's 2-2-1 network of sigmoid neurons (examples/tutorial_network.hpp), Alice.
  auto tutorial_loss = [](auto p) {
    using X = typename decltype(p)::value_type;
    std::array<X, 9> params;
    for (std::size_t i = 0; i < 9; ++i) params[i] = p[i];
    return tutorial::loss(params, tutorial::kPeople[0]);
  };
  const std::vector<double> p = {1, 1, 1, 1, 1, 1, 0, 0, 0};
  const SecondOrderCheck h = check_hessian(tutorial_loss, p);
  INFO(h.table(std::span<const std::string>(tutorial::kParamNames)));
  CHECK(h.passed());
  CHECK(h.entries.size() == 81);

  // A 3 → 4 (tanh) → 3 softmax classifier with cross-entropy, over two samples: 31 parameters,
  // W1 (3 × 4) at 0, b1 at 12, W2 (4 × 3) at 16, b2 at 28.
  auto classifier = [](auto p) {
    using X = typename decltype(p)::value_type;
    const double inputs[2][3] = {{0.5, -1.0, 2.0}, {-0.3, 0.8, 0.1}};
    const int labels[2] = {2, 0};
    X loss = 0.0;
    for (int n = 0; n < 2; ++n) {
      std::array<X, 4> hidden;
      for (int j = 0; j < 4; ++j) {
        X z = p[12 + j];
        for (int k = 0; k < 3; ++k) z = X(z + p[k * 4 + j] * inputs[n][k]);
        hidden[j] = tanh(z);
      }
      std::array<X, 3> logits;
      X total = 0.0;
      for (int c = 0; c < 3; ++c) {
        X z = p[28 + c];
        for (int j = 0; j < 4; ++j) z = X(z + p[16 + j * 3 + c] * hidden[j]);
        logits[c] = z;
        total = X(total + exp(z));
      }
      loss = X(loss + log(total) - logits[labels[n]]);
    }
    return X(loss / 2.0);
  };
  std::vector<double> w(31), v(31);
  for (std::size_t i = 0; i < 31; ++i) {
    w[i] = 0.5 * std::sin(1.7 * static_cast<double>(i) + 0.3);
    v[i] = std::cos(0.9 * static_cast<double>(i));
  }
  const SecondOrderCheck hv = check_hvp(classifier, w, v);
  INFO(hv.table());
  CHECK(hv.passed());
  CHECK(hv.max_rel_error < 1e-7);
}

TEST_CASE("check_hessian catches a derivative that is not differentiable on the second tape") {
  auto f = [](auto x) { return elementwise<BadCube>(x[0]); };
  const SecondOrderCheck check = check_hessian(f, {0.5});
  CHECK_FALSE(check.passed());
  CHECK(check.entries[0].tape == 0.0);
  CHECK(check.entries[0].finite_difference == doctest::Approx(3.0).epsilon(1e-9));
  CHECK(check.table({"x"}).find("H[x,x]") != std::string::npos);
}

TEST_CASE("second order: bad arguments and misuse give clear errors") {
  auto f = [](auto x) { return x[0] * x[1]; };
  CHECK_THROWS_WITH_AS(hvp(f, {1.0, 2.0}, {1.0}),
                       "hvp: v has 1 entries, expected one per input (2)", std::invalid_argument);
  CHECK_THROWS_WITH_AS(jvp(f, {1.0, 2.0}, {1.0, 2.0, 3.0}),
                       "jvp: v has 3 entries, expected one per input (2)", std::invalid_argument);
  CHECK_THROWS_AS(VarOf<Dual<double>>(Dual<double>(1.0)), TapeError);
  // A function that ignores its inputs: zero gradient and zero H·v, not an error.
  const HvpResult constant = hvp([](auto) { return VarOf<Dual<double>>(); }, {1.0}, {1.0});
  CHECK(constant.gradient[0] == 0.0);
  CHECK(constant.hessian_vector[0] == 0.0);
  // A Var of a stale recording cannot enter a new one.
  TapeOf<Dual<double>> tape;
  TapeOfScope<Dual<double>> scope(tape);
  const VarOf<Dual<double>> stale(Dual<double>(2.0));
  tape.clear();
  CHECK_THROWS_AS(VarOf<Dual<double>>(stale * 2.0), TapeError);
}

TEST_CASE("Dual numbers: forward mode through the op table, nested for second derivatives") {
  const Dual<double> x(0.5, 1.0);
  const Dual<double> y = x * sin(x) + pow(x, 3.0) / (1 + exp(-x));
  const double a = 0.5;
  const double e = std::exp(-a);
  const double dy =
      std::sin(a) + a * std::cos(a) + 3 * a * a / (1 + e) + a * a * a * e / ((1 + e) * (1 + e));
  CHECK(y.tangent == doctest::Approx(dy).epsilon(1e-14));
  // Dual<Dual<double>>: d²/dx² sin(x)·x = 2cos x − x sin x.
  using D2 = Dual<Dual<double>>;
  const D2 z(Dual<double>(a, 1.0), Dual<double>(1.0, 0.0));
  const D2 w = sin(z) * z;
  CHECK(w.tangent.tangent == doctest::Approx(2 * std::cos(a) - a * std::sin(a)).epsilon(1e-15));
  // pow(x, 2) at x < 0 with a constant exponent: no NaN from ∂/∂b (ln of a negative number).
  const Dual<double> n = pow(Dual<double>(-1.5, 1.0), 2.0);
  CHECK(n.tangent == -3.0);
  // sqrt at 0 on a constant: no 0·∞.
  CHECK(sqrt(Dual<double>(0.0)).tangent == 0.0);
}

TEST_CASE("nn::parameter_hvp: a Dense network's loss, its gradient and H·v") {
  // 3 → 4 (tanh) → 3 (softmax) over two samples, both losses.
  nn::Sequential network;
  network.add(nn::Dense(3, 4, nn::Activation::Tanh, {.seed = 3}));
  network.add(nn::Dense(4, 3, nn::Activation::Softmax, {.seed = 4}));
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, -0.25f, 0.75f, 0.0f};
  const std::vector<float> y_true = {0, 0, 1, 1, 0, 0};
  const std::vector<double> point = nn::parameter_values(network);
  REQUIRE(point.size() == 31);
  std::vector<double> v(point.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::cos(0.7 * static_cast<double>(i));

  for (const auto loss :
       {nn::SecondOrderLoss::CategoricalCrossentropy, nn::SecondOrderLoss::MeanSquaredError}) {
    // Through the tensor ops, in float.
    const nn::ParameterHvp r = nn::parameter_hvp(network, loss, x, 2, y_true, v);
    // The exact reference on scalars, in double.
    const nn::ParameterHvp exact = nn::parameter_hvp_at(network, point, loss, x, 2, y_true, v);

    // The loss and its gradient are the library's model's (float tensors, to float precision).
    Tape tape;
    TapeScope scope(tape);
    const Tensor<float> inputs = Tensor<float>::from(x, {2, 3});
    const Tensor<float> targets = Tensor<float>::from(y_true, {2, 3});
    const Tensor<float> y_pred = network(inputs);
    const Tensor<float> l = loss == nn::SecondOrderLoss::MeanSquaredError
                                ? nn::mean_squared_error(targets, y_pred)
                                : nn::categorical_crossentropy(targets, y_pred);
    for (nn::Parameter* p : network.parameters()) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
    to_var(l).backward();
    CHECK(r.loss == doctest::Approx(l.item()).epsilon(1e-6));
    CHECK(exact.loss == doctest::Approx(l.item()).epsilon(1e-6));
    std::size_t k = 0;
    for (const nn::Parameter* p : network.parameters())
      for (const float g : p->grad) {
        CHECK(r.gradient[k] == doctest::Approx(g).epsilon(1e-6).scale(1e-6));
        CHECK(exact.gradient[k++] == doctest::Approx(g).epsilon(1e-5).scale(1e-3));
      }
    // parameter_hvp leaves the parameters' own gradients alone.
    for (nn::Parameter* p : network.parameters()) std::fill(p->grad.begin(), p->grad.end(), 1.5f);
    (void)nn::parameter_hvp(network, loss, x, 2, y_true, v);
    for (const nn::Parameter* p : network.parameters())
      for (const float g : p->grad) CHECK(g == 1.5f);

    // The scalar path's H·v against Ridders' finite differences of its gradient along v, in
    // double; the tensor path's (float) against it.
    auto gradient_at = [&](std::span<const double> at) {
      return nn::parameter_hvp_at(network, at, loss, x, 2, y_true, v).gradient;
    };
    const SecondOrderCheck check =
        detail::check_second_order(gradient_at, point, v, exact.loss, exact.hessian_vector, {});
    INFO(check.table());
    CHECK(check.passed());
    CHECK(check.max_rel_error < 1e-7);
    double largest = 0;
    for (const double e : exact.hessian_vector) largest = std::max(largest, std::fabs(e));
    for (std::size_t i = 0; i < v.size(); ++i)
      CHECK(r.hessian_vector[i] ==
            doctest::Approx(exact.hessian_vector[i]).scale(largest).epsilon(2e-5));
  }

  CHECK_THROWS_WITH_AS(
      nn::parameter_hvp(network, nn::SecondOrderLoss::MeanSquaredError, x, 4, y_true, v),
      "parameter_hvp: x has 6 values and y_true 6, expected whole rows of a batch of 4 > 0",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      nn::parameter_hvp(network, nn::SecondOrderLoss::MeanSquaredError, x, 3, y_true, v),
      "Dense(3 → 4): input has shape (3, 2), expected (batch, …, 3)", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      nn::parameter_hvp(network, nn::SecondOrderLoss::MeanSquaredError, x, 2, y_true,
                        std::vector<double>(30)),
      "parameter_hvp: v of 30 entries, gradient of 30 and hessian_vector of 30, expected one per "
      "parameter (31)",
      std::invalid_argument);
  nn::Dense linear(3, 3);
  CHECK_THROWS_AS(nn::parameter_hvp(linear, nn::SecondOrderLoss::CategoricalCrossentropy, x, 2,
                                    y_true, std::vector<double>(12)),
                  std::invalid_argument);
  CHECK_THROWS_AS(nn::parameter_hvp_at(linear, nn::parameter_values(linear),
                                       nn::SecondOrderLoss::CategoricalCrossentropy, x, 2, y_true,
                                       std::vector<double>(12)),
                  std::invalid_argument);
}

TEST_CASE("hvp inside the function given to hvp: each call records on a tape of its own") {
  // g(x) = f(x) + (∇f(x)·e₀ computed by an inner hvp, as a constant): the outer recording must
  // survive the inner call (they would share the thread's kept tape otherwise).
  auto f = [](auto x) { return x[0] * x[0] * x[1]; };
  auto g = [&f](auto x) {
    const std::array<double, 2> at = {detail::plain_value(x[0]), detail::plain_value(x[1])};
    const double inner = hvp(f, at, std::array<double, 2>{1.0, 0.0}).gradient[0];
    return f(x) + inner;
  };
  const HvpResult r = hvp(g, {1.5, 2.0}, {0.0, 1.0});
  CHECK(r.value == doctest::Approx(1.5 * 1.5 * 2.0 + 2 * 1.5 * 2.0).epsilon(1e-15));
  CHECK(r.gradient[0] == doctest::Approx(2 * 1.5 * 2.0).epsilon(1e-15));
  CHECK(r.hessian_vector[0] == doctest::Approx(2 * 1.5).epsilon(1e-15));  // ∂²f/∂x0∂x1
  CHECK(r.hessian_vector[1] == 0.0);
}

TEST_CASE(
    "gradient of a gradient for every scalar op: the rows of the forward-over-reverse Hessian") {
  for (const OpCase& c : kOpCases) {
    const std::string name = c.name;
    auto f = [&name](auto x) {
      using X = typename decltype(x)::value_type;
      return op_function<X>(name, x);
    };
    INFO(name);
    const HessianResult h = hessian(f, c.x);
    Tape tape;
    TapeScope scope(tape);
    const std::array<Var, 2> x = {Var(c.x[0]), Var(c.x[1])};
    const DifferentiableGradient g = differentiable_gradient(f, x);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(g.gradient[i].value() == doctest::Approx(h.gradient[i]).epsilon(1e-14));
      if (!g.gradient[i].is_recorded()) {  // a gradient that does not depend on x: a zero row
        CHECK(h.hessian(i, 0) == 0.0);
        CHECK(h.hessian(i, 1) == 0.0);
        continue;
      }
      const auto [d0, d1] = gradient(g.gradient[i], x[0], x[1]);
      CHECK(d0 == doctest::Approx(h.hessian(i, 0)).epsilon(1e-13).scale(1e-15));
      CHECK(d1 == doctest::Approx(h.hessian(i, 1)).epsilon(1e-13).scale(1e-15));
    }
  }
}

TEST_CASE("README: second derivatives and forward mode") {
  auto rosenbrock = [](auto x) { return square(1 - x[0]) + 100 * square(x[1] - square(x[0])); };
  HessianResult h = hessian(rosenbrock, {1.0, 1.0});       // h.hessian: [[802, -400], [-400, 200]]
  HvpResult r = hvp(rosenbrock, {-1.2, 1.0}, {1.0, 0.0});  // f, ∇f and H·v, without forming H
  auto [value, derivative] = jvp(rosenbrock, {-1.2, 1.0}, {1.0, 0.0});  // forward mode: f, J·v
  auto polar = [](auto p) {  // (r, θ) → (x, y): a vector-valued function
    using X = typename decltype(p)::value_type;
    return std::vector<X>{p[0] * cos(p[1]), p[0] * sin(p[1])};
  };
  JacobianResult j = jacobian(polar, {2.0, 0.5});     // reverse rows or forward columns: fewer wins
  VjpResult u = vjp(polar, {2.0, 0.5}, {1.0, -1.0});  // uᵀJ in one reverse sweep

  CHECK(h.hessian.entries == std::vector<double>{802, -400, -400, 200});
  CHECK(r.hessian_vector[0] == doctest::Approx(1200 * 1.44 - 400 + 2).epsilon(1e-14));  // H₀₀
  CHECK(r.hessian_vector[1] == doctest::Approx(480).epsilon(1e-15));
  CHECK(value == doctest::Approx(24.2).epsilon(1e-14));
  CHECK(derivative == doctest::Approx(r.gradient[0]).epsilon(1e-15));
  CHECK(j.jacobian(0, 1) == doctest::Approx(-2 * std::sin(0.5)).epsilon(1e-15));
  CHECK(u.cotangent[0] == doctest::Approx(std::cos(0.5) - std::sin(0.5)).epsilon(1e-15));

  auto f = [](auto p) { return p[0] * p[0] * p[1] + sin(p[0]) * exp(p[1]); };
  Tape tape;
  TapeScope scope(tape);
  Var x = 0.8, y = -0.6;
  DifferentiableGradient g = differentiable_gradient(f, {x, y});  // g.value, g.gradient: Vars
  Var penalty = g.value + square(g.gradient[0]) + square(g.gradient[1]);
  auto [px, py] = gradient(penalty, x, y);  // ∇f + 2·H·∇f
  const double e = std::exp(-0.6), fx = 2 * 0.8 * -0.6 + std::cos(0.8) * e;
  const double fy = 0.64 + std::sin(0.8) * e;
  const double fxx = 2 * -0.6 - std::sin(0.8) * e, fxy = 1.6 + std::cos(0.8) * e;
  CHECK(px == doctest::Approx(fx + 2 * (fxx * fx + fxy * fy)).epsilon(1e-14));
  CHECK(py == doctest::Approx(fy + 2 * (fxy * fx + std::sin(0.8) * e * fy)).epsilon(1e-14));
}
