#pragma once
// Second order: Hessian-vector products, Hessians, and gradients that can be differentiated again.
//
// The first-order tape (tape.hpp) stores each partial as a plain double, which is what keeps it
// small and fast; a second derivative needs to know how each partial moves. So second order runs
// on a tape of its own, TapeOf<S>, the same flat layout and the same reverse loop, whose values,
// partials and adjoints are of a number type S instead of double:
//
//   S = Dual<double>  (forward over reverse, hvp): the inputs carry a direction v as tangents;
//       every partial is a Dual (its value and its derivative along v), and the reverse sweep
//       over Duals leaves ∇f in the adjoints' values and H·v in their tangents.
//   S = a Var of the ordinary tape (reverse over reverse, differentiable_gradient): every value
//       and partial is recorded on the active Tape, and so is the reverse sweep, so the gradient
//       it produces is made of Vars that can be differentiated again.
//
// The partials come from the op table (ops.hpp), evaluated on S: the same formulas as first
// order, no second derivative written anywhere. Functions are written once, generically:
//
//   auto rosenbrock = [](auto x) { return square(1 - x[0]) + 100 * square(x[1] - square(x[0])); };
//   Matrix h = hessian(rosenbrock, {1.0, 1.0}).hessian;   // [[802, -400], [-400, 200]]

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <span>
#include <vector>

#include "autodiff/dual.hpp"
#include "autodiff/forward.hpp"
#include "autodiff/gradient.hpp"
#include "autodiff/gradient_check.hpp"
#include "autodiff/tape_of.hpp"
#include "autodiff/var.hpp"

namespace autodiff {

namespace detail {
/// This thread's tape for hvp() and hessian(), kept between calls: a fresh tape per call would
/// allocate, and fault in the pages of, its arrays every time (a third of a large H·v's time).
struct HvpTapeSlot {
  TapeOf<Dual<double>> tape;
  bool busy = false;
};
inline HvpTapeSlot& hvp_tape_slot() {
  thread_local HvpTapeSlot slot;
  return slot;
}
/// Runs body(tape) on this thread's kept tape; a nested call (f calling hvp) gets one of its own.
template <class Body>
void with_hvp_tape(Body&& body) {
  HvpTapeSlot& slot = hvp_tape_slot();
  if (slot.busy) {
    TapeOf<Dual<double>> fresh;
    return body(fresh);
  }
  slot.busy = true;
  struct Release {
    bool& busy;
    ~Release() { busy = false; }
  } release{slot.busy};
  body(slot.tape);
}

/// hvp's work, on a tape the caller keeps (hessian() records n times on one).
template <class F>
void hvp_on(TapeOf<Dual<double>>& tape, F& f, std::span<const double> x, std::span<const double> v,
            double& value, std::span<double> gradient, std::span<double> hessian_vector) {
  using S = Dual<double>;
  tape.clear();
  TapeOfScope<S> scope(tape);
  std::vector<VarOf<S>> inputs;
  inputs.reserve(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) inputs.emplace_back(S(x[i], v[i]));
  const VarOf<S> y = f(std::span<const VarOf<S>>(inputs));
  value = y.value().value;
  if (!y.is_recorded()) {  // f does not depend on x
    std::fill(gradient.begin(), gradient.end(), 0.0);
    std::fill(hessian_vector.begin(), hessian_vector.end(), 0.0);
    return;
  }
  tape.backward(y.index());
  for (std::size_t i = 0; i < x.size(); ++i) {
    gradient[i] = inputs[i].grad().value;
    hessian_vector[i] = inputs[i].grad().tangent;
  }
}
}  // namespace detail

/// f(x), ∇f(x) and H·v.
struct HvpResult {
  double value = 0.0;
  std::vector<double> gradient;
  std::vector<double> hessian_vector;
};

/// f(x), ∇f(x) and the Hessian, exactly symmetric.
struct HessianResult {
  double value = 0.0;
  std::vector<double> gradient;
  Matrix hessian;
  /// max |H_ij − H_ji| as computed, before the two were averaged: rounding only (a few ulp).
  double asymmetry = 0.0;
};

/// f(x), ∇f(x) and the Hessian-vector product H·v, without forming H: forward over reverse, one
/// recording of f on Duals x + v·ε and one reverse sweep over Duals (about 2 gradients' cost). f
/// is written generically: it is called with a span of VarOf<Dual<double>>.
template <class F>
HvpResult hvp(F&& f, std::span<const double> x, std::span<const double> v) {
  detail::check_same_size(x.size(), v.size(), "hvp", "v");
  HvpResult result;
  result.gradient.resize(x.size());
  result.hessian_vector.resize(x.size());
  detail::with_hvp_tape([&](TapeOf<Dual<double>>& tape) {
    detail::hvp_on(tape, f, x, v, result.value, result.gradient, result.hessian_vector);
  });
  return result;
}
template <class F>
HvpResult hvp(F&& f, std::initializer_list<double> x, std::initializer_list<double> v) {
  return hvp(f, std::span<const double>(x.begin(), x.size()),
             std::span<const double>(v.begin(), v.size()));
}

/// f(x), ∇f(x) and the dense Hessian: one H·eⱼ per column (n recordings on one tape), then
/// (H + Hᵀ)/2, so that the result is symmetric to the bit.
template <class F>
HessianResult hessian(F&& f, std::span<const double> x) {
  const std::size_t n = x.size();
  HessianResult result;
  result.gradient.resize(n);
  result.hessian = Matrix(n, n);
  std::vector<double> direction(n, 0.0), column(n);
  detail::with_hvp_tape([&](TapeOf<Dual<double>>& tape) {
    for (std::size_t j = 0; j < n; ++j) {
      direction[j] = 1.0;
      detail::hvp_on(tape, f, x, direction, result.value, result.gradient, column);
      direction[j] = 0.0;
      for (std::size_t i = 0; i < n; ++i) result.hessian(i, j) = column[i];
    }
    if (n == 0) detail::hvp_on(tape, f, x, direction, result.value, result.gradient, column);
  });
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < i; ++j) {
      const double upper = result.hessian(j, i), lower = result.hessian(i, j);
      result.asymmetry = std::max(result.asymmetry, std::fabs(upper - lower));
      result.hessian(i, j) = result.hessian(j, i) = 0.5 * (upper + lower);
    }
  return result;
}
template <class F>
HessianResult hessian(F&& f, std::initializer_list<double> x) {
  return hessian(f, std::span<const double>(x.begin(), x.size()));
}

/// f's value and gradient at x as Vars recorded on the active Tape, so that they can be
/// differentiated again (PyTorch's create_graph=True): gradient penalties, Newton steps, third
/// derivatives along a line. x are Vars of the active Tape; f is written generically (it is
/// called with a span of VarOf<…>).
struct DifferentiableGradient {
  Var value;
  std::vector<Var> gradient;
};
template <class F>
DifferentiableGradient differentiable_gradient(F&& f, std::span<const Var> x) {
  using S = detail::EagerVar;
  TapeOf<S> tape;
  TapeOfScope<S> scope(tape);
  std::vector<VarOf<S>> inputs;
  inputs.reserve(x.size());
  for (const Var& xi : x) inputs.emplace_back(S(xi));
  const VarOf<S> y = f(std::span<const VarOf<S>>(inputs));
  DifferentiableGradient result{y.value().var, {}};
  result.gradient.reserve(x.size());
  if (!y.is_recorded()) {
    result.gradient.assign(x.size(), Var::constant(0.0));
    return result;
  }
  tape.backward(y.index());  // records adjoint += partial · adjoint on the active Tape
  for (const VarOf<S>& xi : inputs) result.gradient.push_back(xi.grad().var);
  return result;
}
template <class F>
DifferentiableGradient differentiable_gradient(F&& f, std::initializer_list<Var> x) {
  return differentiable_gradient(f, std::span<const Var>(x.begin(), x.size()));
}

// ---- Checks: H·v and the Hessian against finite differences of the tape's own gradient ----

namespace detail {
/// The first-order tape's gradient of f at a point (on a tape of its own).
template <class F>
auto tape_gradient_of(F& f) {
  return [&f](std::span<const double> point) {
    Tape tape;
    TapeScope scope(tape);
    std::vector<Var> inputs(point.begin(), point.end());
    const Var y = f(std::span<const Var>(inputs));
    if (!y.is_recorded()) return std::vector<double>(point.size(), 0.0);
    return gradient(y, inputs);
  };
}
}  // namespace detail

/// The second-order tape's Hessian of f at x next to central finite differences (Ridders) of the
/// first-order tape's gradient, one row per entry; the table has check_gradient's format.
template <class F>
SecondOrderCheck check_hessian(F&& f, std::span<const double> x,
                               GradientCheckOptions options = {}) {
  const HessianResult h = hessian(f, x);
  return detail::check_second_order(detail::tape_gradient_of(f), x, {}, h.value, h.hessian.entries,
                                    options);
}
template <class F>
SecondOrderCheck check_hessian(F&& f, std::initializer_list<double> x,
                               GradientCheckOptions options = {}) {
  return check_hessian(f, std::span<const double>(x.begin(), x.size()), options);
}

/// hvp's H·v next to finite differences of the first-order tape's gradient along v.
template <class F>
SecondOrderCheck check_hvp(F&& f, std::span<const double> x, std::span<const double> v,
                           GradientCheckOptions options = {}) {
  const HvpResult r = hvp(f, x, v);
  return detail::check_second_order(detail::tape_gradient_of(f), x, v, r.value, r.hessian_vector,
                                    options);
}
template <class F>
SecondOrderCheck check_hvp(F&& f, std::initializer_list<double> x, std::initializer_list<double> v,
                           GradientCheckOptions options = {}) {
  return check_hvp(f, std::span<const double>(x.begin(), x.size()),
                   std::span<const double>(v.begin(), v.size()), options);
}

}  // namespace autodiff
