#pragma once
// Dual numbers: a value and a tangent (a directional derivative), for forward mode.
//
//   Dual<double> x(2.0, 1.0);            // x = 2, dx = 1
//   Dual<double> y = x * sin(x);         // y.value = 2·sin 2, y.tangent = sin 2 + 2·cos 2
//
// Every operation goes through the op table (autodiff/ops.hpp): the value from the op's `value`,
// the tangent from its local derivative times the operands' tangents. Forward mode therefore uses
// the very formulas the tape uses, and nothing here knows a derivative of its own. The element
// type T is double, float, or a Dual itself: the table's formulas are written generically, so a
// Dual<Dual<double>> carries second derivatives, and a tape of Duals (second_order.hpp) gives
// Hessian-vector products.

#include <cmath>
#include <compare>
#include <concepts>
#include <type_traits>

#include "autodiff/ops.hpp"

namespace autodiff {

template <class T>
struct Dual;

namespace detail {
template <class T>
struct is_dual : std::false_type {};
template <class T>
struct is_dual<Dual<T>> : std::true_type {};
}  // namespace detail

/// A plain number (int, double, …): the other side of a mixed operation with a Dual.
template <class N>
concept PlainNumber = std::is_arithmetic_v<std::remove_cvref_t<N>>;

/// value + tangent·ε, with ε² = 0.
template <class T>
struct Dual {
  using element_type = T;
  T value{};
  T tangent{};

  Dual() = default;
  /// A constant (tangent 0) or, with a tangent, an input of forward mode.
  Dual(T value_, T tangent_ = T(0)) : value(value_), tangent(tangent_) {}
  template <PlainNumber N>
  requires(!std::same_as<N, T>) Dual(N number) : value(T(number)), tangent(T(0)) {}

  template <class E>
  Dual& operator+=(const E& e) {
    return *this = *this + e;
  }
  template <class E>
  Dual& operator-=(const E& e) {
    return *this = *this - e;
  }
  template <class E>
  Dual& operator*=(const E& e) {
    return *this = *this * e;
  }
  template <class E>
  Dual& operator/=(const E& e) {
    return *this = *this / e;
  }
};

namespace detail {

/// Exactly zero, every part of it: a tangent that can be skipped.
template <class T>
bool is_zero(const T& x) {
  return x == T(0);
}
template <class T>
bool is_zero(const Dual<T>& x) {
  return is_zero(x.value) && is_zero(x.tangent);
}

/// The plain number at the bottom of a (nested) Dual: what comparisons compare.
template <class T>
auto primal(const T& x) {
  if constexpr (is_dual<T>::value)
    return primal(x.value);
  else
    return x;
}

/// f(x) on a Dual through op table entry Op: the tangent is f′(x)·dx. A zero tangent is not
/// multiplied, so that an infinite derivative on a constant (sqrt at 0) cannot make 0·∞ = NaN.
template <class Op, class T>
[[gnu::always_inline]] inline Dual<T> unary(const Dual<T>& x, const Op& op = {}) {
  const T y = T(op.value(x.value));
  if (is_zero(x.tangent)) return Dual<T>(y);
  return Dual<T>(y, T(op.derivative(x.value, y)) * x.tangent);
}

/// f(a, b) on Duals through op table entry Op: the tangent is ∂f/∂a·da + ∂f/∂b·db, each term
/// only where its tangent is not zero (pow(−1, p) has a NaN ∂/∂b, harmless on a constant p).
template <class Op, class T>
[[gnu::always_inline]] inline Dual<T> binary(const Dual<T>& a, const Dual<T>& b) {
  const T y = T(Op::value(a.value, b.value));
  const bool left = !is_zero(a.tangent), right = !is_zero(b.tangent);
  if (left && right)
    return Dual<T>(y, T(Op::d_left(a.value, b.value, y)) * a.tangent +
                          T(Op::d_right(a.value, b.value, y)) * b.tangent);
  if (left) return Dual<T>(y, T(Op::d_left(a.value, b.value, y)) * a.tangent);
  if (right) return Dual<T>(y, T(Op::d_right(a.value, b.value, y)) * b.tangent);
  return Dual<T>(y);
}

}  // namespace detail

// ---- Operators: Dual∘Dual, Dual∘number, number∘Dual ----

#define AUTODIFF_DUAL_OPERATOR(symbol, Op)                                                    \
  template <class T>                                                                          \
  [[gnu::always_inline]] inline Dual<T> operator symbol(const Dual<T>& a, const Dual<T>& b) { \
    return detail::binary<op::Op>(a, b);                                                      \
  }                                                                                           \
  template <class T, PlainNumber N>                                                           \
  [[gnu::always_inline]] inline Dual<T> operator symbol(const Dual<T>& a, N b) {              \
    return detail::binary<op::Op>(a, Dual<T>(T(b)));                                          \
  }                                                                                           \
  template <class T, PlainNumber N>                                                           \
  [[gnu::always_inline]] inline Dual<T> operator symbol(N a, const Dual<T>& b) {              \
    return detail::binary<op::Op>(Dual<T>(T(a)), b);                                          \
  }
AUTODIFF_DUAL_OPERATOR(+, Add)
AUTODIFF_DUAL_OPERATOR(-, Subtract)
AUTODIFF_DUAL_OPERATOR(*, Multiply)
AUTODIFF_DUAL_OPERATOR(/, Divide)
#undef AUTODIFF_DUAL_OPERATOR

template <class T>
[[gnu::always_inline]] inline Dual<T> operator-(const Dual<T>& x) {
  return detail::unary<op::Negate>(x);
}
template <class T>
Dual<T> operator+(const Dual<T>& x) {
  return x;
}

// Comparisons compare values (as for Var): the tangent does not decide a branch.
template <class T>
bool operator==(const Dual<T>& a, const Dual<T>& b) {
  return detail::primal(a) == detail::primal(b);
}
template <class T, PlainNumber N>
bool operator==(const Dual<T>& a, N b) {
  return detail::primal(a) == b;
}
template <class T>
std::partial_ordering operator<=>(const Dual<T>& a, const Dual<T>& b) {
  return detail::primal(a) <=> detail::primal(b);
}
template <class T, PlainNumber N>
std::partial_ordering operator<=>(const Dual<T>& a, N b) {
  return detail::primal(a) <=> b;
}

// ---- Functions: the names of the Var functions, and those the op table calls (fabs, isnormal)
// ----

#define AUTODIFF_DUAL_FUNCTION(name, Op)                         \
  template <class T>                                             \
  [[gnu::always_inline]] inline Dual<T> name(const Dual<T>& x) { \
    return detail::unary<op::Op>(x);                             \
  }
AUTODIFF_DUAL_FUNCTION(square, Square)
AUTODIFF_DUAL_FUNCTION(exp, Exp)
AUTODIFF_DUAL_FUNCTION(log, Log)
AUTODIFF_DUAL_FUNCTION(log1p, Log1p)
AUTODIFF_DUAL_FUNCTION(sqrt, Sqrt)
AUTODIFF_DUAL_FUNCTION(sin, Sin)
AUTODIFF_DUAL_FUNCTION(cos, Cos)
AUTODIFF_DUAL_FUNCTION(tan, Tan)
AUTODIFF_DUAL_FUNCTION(tanh, Tanh)
AUTODIFF_DUAL_FUNCTION(sigmoid, Sigmoid)
AUTODIFF_DUAL_FUNCTION(relu, Relu)
AUTODIFF_DUAL_FUNCTION(abs, Abs)
AUTODIFF_DUAL_FUNCTION(fabs, Abs)
AUTODIFF_DUAL_FUNCTION(softplus, Softplus)
#undef AUTODIFF_DUAL_FUNCTION

#define AUTODIFF_DUAL_BINARY_FUNCTION(name, Op)                                    \
  template <class T>                                                               \
  [[gnu::always_inline]] inline Dual<T> name(const Dual<T>& a, const Dual<T>& b) { \
    return detail::binary<op::Op>(a, b);                                           \
  }                                                                                \
  template <class T, PlainNumber N>                                                \
  [[gnu::always_inline]] inline Dual<T> name(const Dual<T>& a, N b) {              \
    return detail::binary<op::Op>(a, Dual<T>(T(b)));                               \
  }                                                                                \
  template <class T, PlainNumber N>                                                \
  [[gnu::always_inline]] inline Dual<T> name(N a, const Dual<T>& b) {              \
    return detail::binary<op::Op>(Dual<T>(T(a)), b);                               \
  }
AUTODIFF_DUAL_BINARY_FUNCTION(pow, Power)
AUTODIFF_DUAL_BINARY_FUNCTION(min, Minimum)
AUTODIFF_DUAL_BINARY_FUNCTION(max, Maximum)
#undef AUTODIFF_DUAL_BINARY_FUNCTION

template <class T>
Dual<T> leaky_relu(const Dual<T>& x, double slope = 0.01) {
  return detail::unary(x, op::LeakyRelu{slope});
}
/// Throws std::invalid_argument unless low ≤ high.
template <class T>
Dual<T> clamp(const Dual<T>& x, double low, double high) {
  if (!(low <= high)) detail::throw_bad_clamp(low, high);
  return detail::unary(x, op::Clamp{low, high});
}
/// A user's elementwise op (a struct with value and derivative, as in ops.hpp) on a Dual.
template <class Op, class T>
Dual<T> elementwise(const Dual<T>& x, Op op = {}) {
  return detail::unary(x, op);
}
/// A user's binary op (value, d_left, d_right) on Duals.
template <class Op, class T>
Dual<T> elementwise(const Dual<T>& a, const Dual<T>& b) {
  return detail::binary<Op>(a, b);
}

template <class T>
bool isnormal(const Dual<T>& x) {
  using std::isnormal;
  return isnormal(x.value);
}

}  // namespace autodiff
