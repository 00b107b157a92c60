#pragma once
// Between tensors and scalar Vars: a one-element tensor as a Var (to_var), Vars as a tensor
// (from_vars), and a Var on one side of an elementwise op (t * v, v - t, minimum(t, v), …). The
// Var is recorded once, as itself: its gradient is the sum over the elements it touched.

#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/elementwise.hpp"

namespace autodiff {

/// A one-element tensor as a Var: the node feeds the Var's slot, and sends its adjoint back.
struct ToVar {
  static constexpr const char* name = "to_var";
  Shape output_shape(const Shape& x) const {
    if (x.size() != 1)
      throw std::invalid_argument(
          fmt::format("to_var: the tensor has shape {}, expected exactly one element (reduce it "
                      "with sum or mean first)",
                      x.str()));
    return x;
  }
  Index slot = kNotRecorded;  // set once recorded
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    ctx.output()[0] = ctx.input(0)[0];
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    ctx.input_grad(0)[0] += static_cast<T>(ctx.tape().adjoint(slot));
  }
};

/// Elements that are scalar Vars; each Var receives its element's gradient.
struct FromVars {
  static constexpr const char* name = "from_vars";
  const Var* vars;  // the caller's in forward
  Index* slots;     // kept on the tape for backward
  Shape shape;
  bool any_recorded;
  bool reads_vars() const { return any_recorded; }
  std::span<const Index> var_slots() const {  // constants among them: kNotRecorded
    return {slots, slots ? static_cast<std::size_t>(shape.size()) : 0};
  }
  Shape output_shape() const { return shape; }
  template <class T>
  void forward(OpContext<T, 0>& ctx) {
    const auto y = ctx.output();
    slots = ctx.recording() ? ctx.template scratch<Index>(y.size()) : nullptr;
    for (std::int64_t i = 0; i < y.size(); ++i) {
      y[i] = static_cast<T>(vars[i].value());
      if (slots) slots[i] = vars[i].index();
    }
  }
  template <class T>
  void backward(OpContext<T, 0>& ctx) const {
    const auto g = ctx.output_grad();
    for (std::int64_t i = 0; i < g.size(); ++i)
      if (slots[i] != kNotRecorded) ctx.tape().adjoint(slots[i]) += static_cast<double>(g[i]);
  }
};

/// y = f(x, v) (or f(v, x)) for a Var v: dx += g·∂f/∂x, and v's adjoint += Σ g·∂f/∂v.
template <class F, bool kVarOnLeft>
struct WithVar {
  const char* name;
  double v;
  Index slot;  // kNotRecorded for a constant Var
  [[no_unique_address]] F f{};
  bool reads_vars() const { return slot != kNotRecorded; }
  std::span<const Index> var_slots() const { return {&slot, reads_vars() ? 1u : 0u}; }
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    WithNumber<F, kVarOnLeft>{name, v, f}.forward(ctx);
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const auto g = ctx.output_grad();
    if (ctx.needs_grad(0)) WithNumber<F, kVarOnLeft>{name, v, f}.backward(ctx);
    if (slot == kNotRecorded) return;
    const T c = static_cast<T>(v);
    double total = 0;
    for (std::int64_t i = 0; i < y.size(); ++i)
      total +=
          double(g[i]) * double(kVarOnLeft ? f.d_left(c, x[i], y[i]) : f.d_right(x[i], c, y[i]));
    ctx.tape().adjoint(slot) += total;
  }
};

/// A one-element tensor as a Var on the same tape; throws for any other size.
template <TensorElement T>
Var to_var(const Tensor<T>& x) {
  Tape& tape = Tape::active();
  const Tensor<T> y = apply(ToVar{}, x);
  const double value = static_cast<double>(y.data()[0]);
  if (!y.is_recorded()) return Var::constant(value);
  const Index slot = tape.new_leaf();
  static_cast<ToVar*>(y.node("to_var").op)->slot = slot;
  tape.node(y.id()).scalar_output = slot;
  if (tape.notes()) [[unlikely]]  // inspected: the Var's value, for what is computed from it
    detail::note_leaf(tape, slot, value);
  return Var::recorded(value, slot, tape.epoch());
}

template <TensorElement T>
Tensor<T> Tensor<T>::from_vars(std::span<const Var> vars, const Shape& shape) {
  if (static_cast<std::int64_t>(vars.size()) != shape.size())
    throw std::invalid_argument(
        fmt::format("Tensor::from_vars: {} Vars given for shape {}, which holds {}", vars.size(),
                    shape.str(), shape.size()));
  bool any_recorded = false;
  for (const Var& v : vars)
    if (v.is_recorded()) {
      Tape::active().check_recorded(v.index(), v.epoch(), "Tensor::from_vars");
      any_recorded = true;
    }
  return detail::record<FromVars, T, 0>(FromVars{vars.data(), nullptr, shape, any_recorded}, {});
}

namespace detail {
template <class F, bool kVarOnLeft, TensorElement T>
Tensor<T> with_var(const char* name, const Tensor<T>& x, const Var& v) {
  if (v.is_recorded()) Tape::active().check_recorded(v.index(), v.epoch(), name);
  return apply(WithVar<F, kVarOnLeft>{name, v.value(), v.index()}, x);
}
}  // namespace detail

#define AUTODIFF_TENSOR_WITH_VAR(function, Op, op_name)    \
  template <TensorElement T>                               \
  Tensor<T> function(const Tensor<T>& x, const Var& v) {   \
    return detail::with_var<op::Op, false>(op_name, x, v); \
  }                                                        \
  template <TensorElement T>                               \
  Tensor<T> function(const Var& v, const Tensor<T>& x) {   \
    return detail::with_var<op::Op, true>(op_name, x, v);  \
  }
AUTODIFF_TENSOR_WITH_VAR(operator+, Add, "add")
AUTODIFF_TENSOR_WITH_VAR(operator-, Subtract, "subtract")
AUTODIFF_TENSOR_WITH_VAR(operator*, Multiply, "multiply")
AUTODIFF_TENSOR_WITH_VAR(operator/, Divide, "divide")
AUTODIFF_TENSOR_WITH_VAR(minimum, Minimum, "minimum")
AUTODIFF_TENSOR_WITH_VAR(maximum, Maximum, "maximum")
AUTODIFF_TENSOR_WITH_VAR(pow, Power, "pow")
#undef AUTODIFF_TENSOR_WITH_VAR

}  // namespace autodiff
