#pragma once
// The functional form of backward():  auto [dx, dy] = gradient(f, x, y);

#include <array>
#include <span>
#include <vector>

#include "autodiff/var.hpp"

namespace autodiff {

namespace detail {
/// Zeroes the active tape's gradients, then sweeps back from y.
inline void fresh_backward(const Var& y) {
  Tape& tape = Tape::active();
  tape.check_recorded(y.index(), y.epoch(), "gradient()");
  tape.zero_grad();
  tape.backward(y.index());
}
}  // namespace detail

/// ∂y/∂x for each x given, fresh: the active tape's gradients are zeroed first, then one reverse
/// sweep from y fills them (they stay readable through grad() afterwards).
template <std::same_as<Var>... Xs>
std::array<double, sizeof...(Xs)> gradient(const Var& y, const Xs&... xs) {
  detail::fresh_backward(y);
  return {xs.grad()...};
}

/// ∂y/∂x for each x in `xs`, fresh, as gradient(y, x...) above.
inline std::vector<double> gradient(const Var& y, std::span<const Var> xs) {
  detail::fresh_backward(y);
  std::vector<double> result;
  result.reserve(xs.size());
  for (const Var& x : xs) result.push_back(x.grad());
  return result;
}

}  // namespace autodiff
