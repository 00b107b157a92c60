#pragma once
// Forward mode and Jacobians: jvp (J·v in one pass of Dual numbers), vjp (uᵀJ in one reverse
// sweep), and the whole Jacobian by whichever of the two is cheaper for its shape.
//
// The function is written once, generically, and called with whatever number type the driver
// needs: Dual<double> for forward mode, Var for reverse mode.
//
//   auto f = [](auto x) { return x[0] * sin(x[1]); };          // x: a span of numbers
//   auto [value, derivative] = jvp(f, {0.5, 2.0}, {1.0, 0.0});  // f and ∂f/∂x0
//
// A vector-valued f returns a std::vector (or std::array) of them.

#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <ranges>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "autodiff/dual.hpp"
#include "autodiff/gradient.hpp"
#include "autodiff/ops.hpp"

namespace autodiff {

/// A dense row-major matrix of doubles: a Jacobian or a Hessian.
struct Matrix {
  std::size_t rows = 0, cols = 0;
  std::vector<double> entries;  // rows × cols, row after row

  Matrix() = default;
  Matrix(std::size_t rows_, std::size_t cols_)
      : rows(rows_), cols(cols_), entries(rows_ * cols_, 0.0) {}
  double& operator()(std::size_t i, std::size_t j) { return entries[i * cols + j]; }
  double operator()(std::size_t i, std::size_t j) const { return entries[i * cols + j]; }
};

/// f(x) and the directional derivative J·v (a number for a scalar f, a vector otherwise).
template <class R>
struct JvpResult {
  R value;
  R tangent;
};

/// f(x) and uᵀJ.
struct VjpResult {
  std::vector<double> value;
  std::vector<double> cotangent;  // one entry per input
};

/// f(x) and its Jacobian, m outputs × n inputs.
struct JacobianResult {
  std::vector<double> value;
  Matrix jacobian;
};

namespace detail {

template <class R>
concept OutputRange = std::ranges::range<R>;

inline void check_same_size(std::size_t x, std::size_t v, const char* what, const char* name) {
  if (x != v)
    throw std::invalid_argument(
        fmt::format("{}: {} has {} entries, expected one per input ({})", what, name, v, x));
}

/// f evaluated on Duals x + v·ε: the values and the tangents.
template <class F>
auto forward_pass(F& f, std::span<const double> x, std::span<const double> v) {
  std::vector<Dual<double>> inputs;
  inputs.reserve(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) inputs.emplace_back(x[i], v[i]);
  return f(std::span<const Dual<double>>(inputs));
}

/// f recorded on `tape` (which must be active) with Var inputs; its outputs as Vars.
template <class F>
std::vector<Var> record_outputs(F& f, std::span<const Var> inputs) {
  auto y = f(inputs);
  std::vector<Var> outputs;
  if constexpr (OutputRange<decltype(y)>) {
    for (const auto& yi : y) outputs.emplace_back(Var(yi));
  } else {
    outputs.emplace_back(Var(y));
  }
  return outputs;
}

}  // namespace detail

/// f(x) and J·v in one forward pass of Dual numbers. f takes a span of numbers (called here with
/// Dual<double>) and returns one (a scalar f) or a std::vector / std::array of them.
template <class F>
auto jvp(F&& f, std::span<const double> x, std::span<const double> v) {
  detail::check_same_size(x.size(), v.size(), "jvp", "v");
  auto y = detail::forward_pass(f, x, v);
  if constexpr (detail::OutputRange<decltype(y)>) {
    JvpResult<std::vector<double>> result;
    for (const auto& yi : y) {
      const Dual<double> d(yi);
      result.value.push_back(d.value);
      result.tangent.push_back(d.tangent);
    }
    return result;
  } else {
    const Dual<double> d(y);
    return JvpResult<double>{d.value, d.tangent};
  }
}
template <class F>
auto jvp(F&& f, std::initializer_list<double> x, std::initializer_list<double> v) {
  return jvp(f, std::span<const double>(x.begin(), x.size()),
             std::span<const double>(v.begin(), v.size()));
}

/// f(x) and uᵀJ in one reverse sweep: f is recorded with Var inputs on a tape of its own (so this
/// can be called in the middle of another recording) and the sweep is seeded with u.
template <class F>
VjpResult vjp(F&& f, std::span<const double> x, std::span<const double> u) {
  Tape tape;
  TapeScope scope(tape);
  std::vector<Var> inputs(x.begin(), x.end());
  const std::vector<Var> outputs = detail::record_outputs(f, inputs);
  detail::check_same_size(outputs.size(), u.size(), "vjp", "u (one entry per output)");
  VjpResult result;
  tape.begin_backward();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    result.value.push_back(outputs[i].value());
    if (outputs[i].is_recorded()) tape.adjoint(outputs[i].index()) += u[i];
  }
  tape.sweep_all();
  for (const Var& xi : inputs) result.cotangent.push_back(xi.grad());
  return result;
}

template <class F>
VjpResult vjp(F&& f, std::initializer_list<double> x, std::initializer_list<double> u) {
  return vjp(f, std::span<const double>(x.begin(), x.size()),
             std::span<const double>(u.begin(), u.size()));
}

/// f(x) and its Jacobian (m × n): by reverse rows (one recording, m sweeps) when f has fewer
/// outputs than inputs, else by forward columns (n passes of Dual numbers).
template <class F>
JacobianResult jacobian(F&& f, std::span<const double> x) {
  const std::size_t n = x.size();
  JacobianResult result;
  std::vector<double> direction(n, 0.0);
  if (n > 0) direction[0] = 1.0;
  // One forward pass tells the number of outputs, and gives the first column.
  auto first = jvp(f, x, direction);
  std::vector<double> values, column;
  if constexpr (std::is_same_v<decltype(first.value), double>) {
    values = {first.value};
    column = {first.tangent};
  } else {
    values = first.value;
    column = first.tangent;
  }
  const std::size_t m = values.size();
  result.value = values;
  result.jacobian = Matrix(m, n);
  if (n == 0) return result;

  if (m < n) {  // reverse: a row per output
    Tape tape;
    TapeScope scope(tape);
    std::vector<Var> inputs(x.begin(), x.end());
    const std::vector<Var> outputs = detail::record_outputs(f, inputs);
    for (std::size_t i = 0; i < m; ++i) {
      tape.zero_grad();
      if (!outputs[i].is_recorded()) continue;  // a constant output: a zero row
      tape.backward(outputs[i].index());
      for (std::size_t j = 0; j < n; ++j) result.jacobian(i, j) = inputs[j].grad();
    }
    return result;
  }
  for (std::size_t j = 0; j < n; ++j) {  // forward: a column per input
    if (j > 0) {
      direction[j - 1] = 0.0;
      direction[j] = 1.0;
      auto pass = jvp(f, x, direction);
      if constexpr (std::is_same_v<decltype(pass.tangent), double>)
        column = {pass.tangent};
      else
        column = pass.tangent;
    }
    for (std::size_t i = 0; i < m; ++i) result.jacobian(i, j) = column[i];
  }
  return result;
}
template <class F>
JacobianResult jacobian(F&& f, std::initializer_list<double> x) {
  return jacobian(f, std::span<const double>(x.begin(), x.size()));
}

}  // namespace autodiff
