#pragma once
// Gradient checks of tensor ops in double, through check_gradient: inputs are Vars made into
// tensors with from_vars, the output is reduced to a Var with to_var (so both crossings are
// exercised), and every output element is weighed differently so that a wrong one cannot hide.
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"

namespace testing {

using TensorFunction =
    std::function<autodiff::Tensor<double>(std::span<const autodiff::Tensor<double>>)>;

// Checks op's gradient w.r.t. every element of every input, at seeded values in [low, high).
inline autodiff::GradientCheck check_tensor_op(const TensorFunction& op,
                                               const std::vector<autodiff::Shape>& shapes,
                                               double low = -2.0, double high = 2.0,
                                               std::uint64_t seed = 7) {
  using namespace autodiff;
  using T = Tensor<double>;
  std::vector<double> x;
  {
    Tape scratch;
    TapeScope scope(scratch);
    for (std::size_t k = 0; k < shapes.size(); ++k)
      for (double v : T::random_uniform(shapes[k], low, high, seed + k).to_vector()) x.push_back(v);
  }
  auto f = [&](std::span<const Var> vars) {
    std::vector<T> inputs;
    std::size_t offset = 0;
    for (const Shape& shape : shapes) {
      const auto n = static_cast<std::size_t>(shape.size());
      inputs.push_back(T::from_vars(vars.subspan(offset, n), shape));
      offset += n;
    }
    const T out = op(inputs);
    std::vector<double> w(static_cast<std::size_t>(out.size()));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(1.3 + 0.7 * static_cast<double>(i));
    return to_var(sum(out * T::from(w, out.shape())));
  };
  GradientCheckOptions options;
  options.rtol = 1e-7;
  options.atol = 1e-9;
  return check_gradient(f, x, {}, options);
}

// Tolerances for H·v against Ridders' differences of the gradient (tangent.hpp), in double.
inline autodiff::GradientCheckOptions hvp_options(double atol = 1e-8) {
  autodiff::GradientCheckOptions options;
  options.rtol = 1e-6;
  options.atol = atol;
  return options;
}

}  // namespace testing

#define CHECK_TENSOR_GRADIENT(op, ...)                                                \
  do {                                                                                \
    const autodiff::GradientCheck check_ = testing::check_tensor_op(op, __VA_ARGS__); \
    INFO(#op, "\n", check_.table());                                                  \
    CHECK(check_.passed());                                                           \
  } while (0)

// H·v of f at x along v, in tangent mode, against finite differences of f's gradient; the
// optional last argument is the absolute tolerance.
#define CHECK_TENSOR_HVP(f, shapes, x, v, ...)                                          \
  do {                                                                                  \
    const autodiff::SecondOrderCheck check_ =                                           \
        autodiff::check_tensor_hvp(f, shapes, x, v, testing::hvp_options(__VA_ARGS__)); \
    INFO(#f, "\n", check_.table());                                                     \
    CHECK(check_.passed());                                                             \
  } while (0)
