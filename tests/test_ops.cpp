// Every scalar op: value against <cmath>, gradient against finite differences at many points,
// awkward ones included (near 0 for log and sqrt, large |x| for sigmoid and exp, negative bases).
#include <cmath>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"

using namespace autodiff;

namespace {

void check_everywhere(const char* name, const ScalarFunction& f,
                      const std::vector<std::vector<double>>& points) {
  for (const auto& x : points) {
    const GradientCheck check = check_gradient(f, x);
    INFO(name, " at x[0] = ", x[0], "\n", check.table());
    CHECK(check.passed());
  }
}

void check_unary(const char* name, const ScalarFunction& f, std::initializer_list<double> xs) {
  std::vector<std::vector<double>> points;
  for (double x : xs) points.push_back({x});
  check_everywhere(name, f, points);
}

// The ∂/∂x of f at x on a fresh tape.
double derivative(Var (*f)(Var), double x) {
  Tape tape;
  TapeScope scope(tape);
  Var v = x;
  return gradient(f(v), v)[0];
}

}  // namespace

TEST_CASE("unary ops: values match <cmath>") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 0.7;
  // The compiler may fold std::f(0.7) exactly while libm rounds at run time: allow one ulp.
  auto exact = [](double v) { return doctest::Approx(v).epsilon(2e-16); };
  CHECK(Var(exp(x)).value() == exact(std::exp(0.7)));
  CHECK(Var(log(x)).value() == exact(std::log(0.7)));
  CHECK(Var(log1p(x)).value() == exact(std::log1p(0.7)));
  CHECK(Var(sqrt(x)).value() == exact(std::sqrt(0.7)));
  CHECK(Var(sin(x)).value() == exact(std::sin(0.7)));
  CHECK(Var(cos(x)).value() == exact(std::cos(0.7)));
  CHECK(Var(tan(x)).value() == exact(std::tan(0.7)));
  CHECK(Var(tanh(x)).value() == exact(std::tanh(0.7)));
  CHECK(Var(sigmoid(x)).value() == doctest::Approx(1 / (1 + std::exp(-0.7))).epsilon(1e-15));
  CHECK(Var(relu(-x)).value() == 0.0);
  CHECK(Var(relu(x)).value() == 0.7);
  CHECK(Var(abs(-x)).value() == 0.7);
  CHECK(Var(-x).value() == -0.7);
  CHECK(Var(pow(x, 3.0)).value() == exact(std::pow(0.7, 3.0)));
  CHECK(Var(min(x, 0.2)).value() == 0.2);
  CHECK(Var(max(x, 0.2)).value() == 0.7);
  // sigmoid never overflows and saturates exactly.
  CHECK(Var(sigmoid(Var(-800.0))).value() == 0.0);
  CHECK(Var(sigmoid(Var(800.0))).value() == 1.0);
}

TEST_CASE("unary ops: gradients match finite differences") {
  check_unary("exp", [](auto x) { return Var(exp(x[0])); }, {-30, -5, -1, 0, 0.5, 3, 50, 300});
  check_unary("log", [](auto x) { return Var(log(x[0])); }, {1e-8, 1e-3, 0.1, 1, 10, 1e6});
  check_unary("log1p", [](auto x) { return Var(log1p(x[0])); },
              {-0.999, -0.5, -1e-9, 0, 1e-9, 3, 1e6});
  check_unary("sqrt", [](auto x) { return Var(sqrt(x[0])); }, {1e-12, 1e-4, 0.25, 2, 1e8});
  check_unary("sin", [](auto x) { return Var(sin(x[0])); }, {-4, -1, 0, 1e-3, 1.5, 3, 100});
  check_unary("cos", [](auto x) { return Var(cos(x[0])); }, {-4, -1, 0.1, 1e-3, 1.5, 3, 100});
  check_unary("tan", [](auto x) { return Var(tan(x[0])); }, {-1.5, -1, 0, 0.3, 1.2, 1.55});
  check_unary("tanh", [](auto x) { return Var(tanh(x[0])); }, {-20, -3, -0.1, 0, 0.3, 5, 20});
  check_unary("sigmoid", [](auto x) { return Var(sigmoid(x[0])); }, {-40, -10, -1, 0, 1, 10, 40});
  check_unary("relu", [](auto x) { return Var(relu(x[0])); }, {-2, -1e-3, 1e-3, 0.5, 3});
  check_unary("abs", [](auto x) { return Var(abs(x[0])); }, {-3, -1e-3, 1e-3, 2});
  check_unary("negate", [](auto x) { return Var(-x[0]); }, {-3, 0, 2});
  check_unary("square", [](auto x) { return Var(square(x[0])); }, {-3, 0, 2});
}

TEST_CASE("gradients at non-differentiable points follow the documented choice") {
  CHECK(derivative([](Var x) { return Var(relu(x)); }, 0.0) == 0.0);
  CHECK(derivative([](Var x) { return Var(abs(x)); }, 0.0) == 0.0);
  // min/max at a tie: the first argument gets the whole gradient.
  Tape tape;
  TapeScope scope(tape);
  Var a = 2.0, b = 2.0;
  auto [da, db] = gradient(Var(min(a, b)), a, b);
  CHECK(da == 1.0);
  CHECK(db == 0.0);
  auto [ma, mb] = gradient(Var(max(a, b)), a, b);
  CHECK(ma == 1.0);
  CHECK(mb == 0.0);
  // sqrt at 0: the derivative is +∞, as in the math.
  CHECK(derivative([](Var x) { return Var(sqrt(x)); }, 0.0) ==
        std::numeric_limits<double>::infinity());
  // A branch that receives no gradient sends none: no 0·∞ = NaN from the unused sqrt(0).
  Var z = 0.0;
  const Var unused = sqrt(z);
  const Var y = z * 3.0 + 0.0 * unused;
  CHECK(gradient(y, z)[0] == 3.0);
}

TEST_CASE("pow: Var and double exponents, negative bases with integer exponents") {
  check_everywhere("pow(x, 3)", [](auto x) { return Var(pow(x[0], 3.0)); },
                   {{-2}, {-0.5}, {0.5}, {3}});
  check_everywhere("pow(x, -2)", [](auto x) { return Var(pow(x[0], -2)); },
                   {{-2}, {-0.5}, {0.5}, {3}});
  check_everywhere("pow(x, 0.5)", [](auto x) { return Var(pow(x[0], 0.5)); }, {{1e-6}, {0.5}, {9}});
  check_everywhere("pow(2, x)", [](auto x) { return Var(pow(2.0, x[0])); },
                   {{-3}, {0}, {0.5}, {10}});
  check_everywhere("pow(x, y)", [](auto x) { return Var(pow(x[0], x[1])); },
                   {{0.5, 2}, {2, -1.5}, {3, 0.25}, {1e-3, 2}});
  CHECK(derivative([](Var x) { return Var(pow(x, 0.0)); }, 0.0) == 0.0);  // x⁰ is constant
  CHECK(derivative([](Var x) { return Var(pow(0.0, x)); }, 2.0) == 0.0);  // 0^x = 0 for x > 0
}

TEST_CASE("binary arithmetic: Var∘Var, Var∘double, double∘Var, compound assignment") {
  const std::vector<std::vector<double>> points = {{0.5, 2}, {-3, 0.25}, {7, -1.5}, {1e-3, 1e3}};
  check_everywhere(
      "x + y", [](auto x) { return Var(x[0] + x[1]); }, points);
  check_everywhere(
      "x - y", [](auto x) { return Var(x[0] - x[1]); }, points);
  check_everywhere(
      "x * y", [](auto x) { return Var(x[0] * x[1]); }, points);
  check_everywhere(
      "x / y", [](auto x) { return Var(x[0] / x[1]); }, points);
  check_everywhere(
      "x op c", [](auto x) { return Var((x[0] + 2) * 3 - x[1] / 4.0); }, points);
  check_everywhere(
      "c op x", [](auto x) { return Var(2 + 3 * x[0] - 4.0 / x[1] - (1 - x[0])); }, points);
  check_everywhere(
      "min", [](auto x) { return Var(min(x[0], x[1]) + min(x[0], 1.0)); }, points);
  check_everywhere(
      "max", [](auto x) { return Var(max(x[0], x[1]) + max(2.5, x[1])); }, points);
  check_everywhere(
      "compound",
      [](auto x) {
        Var y = x[0];
        y += x[1];
        y *= x[0];
        y -= 3.0;
        y /= x[1];
        y += sin(x[0]);
        return y;
      },
      points);
}

TEST_CASE("deep compositions, shared sub-expressions and many inputs") {
  check_everywhere("composite",
                   [](auto x) {
                     const Var a = sigmoid(x[0] * x[1] + 0.5) * x[2];
                     const Var b = log(1 + x[0] * x[0]) + tanh(a) * exp(-abs(x[1]));
                     return Var(a * b + sqrt(b * b + 1) - pow(x[2], 2) / (1 + x[1] * x[1]));
                   },
                   {{0.3, -1.2, 2.0}, {-2, 0.5, -0.7}, {4, 3, 1e-2}});

  std::vector<double> x(50);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.0 + i);
  const GradientCheck check = check_gradient(
      [](std::span<const Var> v) {
        Var sum = 0.0;
        for (std::size_t i = 0; i < v.size(); ++i)
          sum += sigmoid(v[i] * v[(i + 1) % v.size()]) + log1p(v[i] * v[i]);
        return sum;
      },
      x);
  CHECK(check.passed());
  CHECK(check.entries.size() == 50);
}

TEST_CASE("comparisons compare values and record nothing") {
  Tape tape;
  TapeScope scope(tape);
  const Var a = 1.0, b = 2.0;
  const std::size_t nodes = tape.node_count();
  CHECK(a < b);
  CHECK(b > 1.5);
  CHECK(0.5 < a);
  CHECK(a <= 1.0);
  CHECK(a == 1.0);
  CHECK(a != b);
  CHECK(a * 2 == b);
  CHECK(tape.node_count() == nodes);
}
