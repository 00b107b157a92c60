#pragma once
// The scalar ops: each one's value and local derivatives side by side, one struct per op.
// Everything else (the operators, the functions on Vars) is plumbing over this table.
//
// Unary ops: value(x) and derivative(x, y) where y = value(x).
// Binary ops: value(a, b), d_left(a, b, y) = ∂y/∂a and d_right(a, b, y) = ∂y/∂b.

#include <cmath>
#include <compare>
#include <stdexcept>
#include <string>

#include "autodiff/var.hpp"

namespace autodiff {
namespace detail {
[[noreturn]] inline void throw_bad_clamp(double low, double high) {
  throw std::invalid_argument("clamp: low " + std::to_string(low) + " is above high " +
                              std::to_string(high) + ", expected low ≤ high");
}
}  // namespace detail
namespace op {

// Each entry is generic over the element type, so that the tensor kernels (float and double) use
// these very definitions. A user's own op is written the same way (see the README).

// clang-format off
struct Add {
  static constexpr auto value   = [](auto a, auto b) { return a + b; };
  static constexpr auto d_left  = []<class T>(T, T, T) { return T(1); };
  static constexpr auto d_right = []<class T>(T, T, T) { return T(1); };
};
struct Subtract {
  static constexpr auto value   = [](auto a, auto b) { return a - b; };
  static constexpr auto d_left  = []<class T>(T, T, T) { return T(1); };
  static constexpr auto d_right = []<class T>(T, T, T) { return T(-1); };
};
struct Multiply {
  static constexpr auto value   = [](auto a, auto b) { return a * b; };
  static constexpr auto d_left  = []<class T>(T, T b, T) { return b; };
  static constexpr auto d_right = []<class T>(T a, T, T) { return a; };
};
struct Divide {
  static constexpr auto value   = [](auto a, auto b) { return a / b; };
  static constexpr auto d_left  = []<class T>(T, T b, T) { return T(1) / b; };
  static constexpr auto d_right = []<class T>(T, T b, T y) { return -y / b; };
};
// d/da a^b = b·a^(b−1), taken as 0 when b = 0 (a^0 is constant, even at a = 0).
// d/db a^b = a^b·ln a, taken as 0 at a = 0 (0^b is 0 for every b > 0); NaN for a < 0, where
// a^b is not differentiable in b. Negative bases with integer exponents are fine in a.
struct Power {
  static constexpr auto value   = [](auto a, auto b) { return std::pow(a, b); };
  static constexpr auto d_left  = []<class T>(T a, T b, T) { return b == T(0) ? T(0) : b * std::pow(a, b - T(1)); };
  static constexpr auto d_right = []<class T>(T a, T, T y) { return a == T(0) ? T(0) : y * std::log(a); };
};
// At a tie the first argument is chosen, and gets the whole gradient.
struct Minimum {
  static constexpr auto value   = [](auto a, auto b) { return b < a ? b : a; };
  static constexpr auto d_left  = []<class T>(T a, T b, T) { return b < a ? T(0) : T(1); };
  static constexpr auto d_right = []<class T>(T a, T b, T) { return b < a ? T(1) : T(0); };
};
struct Maximum {
  static constexpr auto value   = [](auto a, auto b) { return b > a ? b : a; };
  static constexpr auto d_left  = []<class T>(T a, T b, T) { return b > a ? T(0) : T(1); };
  static constexpr auto d_right = []<class T>(T a, T b, T) { return b > a ? T(1) : T(0); };
};

struct Negate {
  static constexpr auto value      = [](auto x) { return -x; };
  static constexpr auto derivative = []<class T>(T, T) { return T(-1); };
};
struct Square {
  static constexpr auto value      = [](auto x) { return x * x; };
  static constexpr auto derivative = []<class T>(T x, T) { return T(2) * x; };
};
struct Exp {
  static constexpr auto value      = [](auto x) { return std::exp(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return y; };
};
// log, log1p, sqrt: ±∞ derivatives at the edge of the domain, NaN outside, as in the math.
struct Log {
  static constexpr auto value      = [](auto x) { return std::log(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / x; };
};
struct Log1p {
  static constexpr auto value      = [](auto x) { return std::log1p(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / (T(1) + x); };
};
struct Sqrt {
  static constexpr auto value      = [](auto x) { return std::sqrt(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return T(0.5) / y; };
};
struct Sin {
  static constexpr auto value      = [](auto x) { return std::sin(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return std::cos(x); };
};
struct Cos {
  static constexpr auto value      = [](auto x) { return std::cos(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return -std::sin(x); };
};
struct Tan {
  static constexpr auto value      = [](auto x) { return std::tan(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return T(1) + y * y; };
};
struct Tanh {
  static constexpr auto value      = [](auto x) { return std::tanh(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return T(1) - y * y; };
};
// 1/(1+e^−x), written so that e^x never overflows: exact for large |x| too.
struct Sigmoid {
  static constexpr auto value      = []<class T>(T x) { if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
                                                         const T e = std::exp(x); return e / (T(1) + e); };
  static constexpr auto derivative = []<class T>(T, T y) { return y * (T(1) - y); };
};
// relu'(0) = 0 and abs'(0) = 0, as PyTorch and TensorFlow choose (a valid subgradient).
struct Relu {
  static constexpr auto value      = [](auto x) { return x > 0 ? x : decltype(x)(0); };
  static constexpr auto derivative = []<class T>(T x, T) { return x > T(0) ? T(1) : T(0); };
};
struct Abs {
  static constexpr auto value      = [](auto x) { return std::fabs(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); };
};
// log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow, and exact where e^x is tiny or huge.
struct Softplus {
  static constexpr auto value      = []<class T>(T x) { return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x))); };
  static constexpr auto derivative = []<class T>(T x, T) { return Sigmoid::value(x); };
};
// Ops with a parameter: an instance carries it (leaky_relu(x, 0.2) records LeakyRelu{0.2}).
struct LeakyRelu {
  double slope = 0.01;
  template <class T> T value(T x) const { return x > T(0) ? x : T(slope) * x; }
  template <class T> T derivative(T x, T) const { return x > T(0) ? T(1) : T(slope); }
};
// The gradient passes where low ≤ x ≤ high, bounds included (as PyTorch's clamp).
struct Clamp {
  double low, high;
  template <class T> T value(T x) const { return x < T(low) ? T(low) : (x > T(high) ? T(high) : x); }
  template <class T> T derivative(T x, T) const { return x >= T(low) && x <= T(high) ? T(1) : T(0); }
};
// clang-format on

}  // namespace op

// ---- Operators: Var∘Var, Var∘number, number∘Var, and any expression in place of a Var. ----

#define AUTODIFF_BINARY_OPERATOR(symbol, Op)                                              \
  template <Operand A, Operand B>                                                         \
  requires(Expression<A> || Expression<B>) auto operator symbol(const A& a, const B& b) { \
    return make_binary<op::Op>(a, b);                                                     \
  }
AUTODIFF_BINARY_OPERATOR(+, Add)
AUTODIFF_BINARY_OPERATOR(-, Subtract)
AUTODIFF_BINARY_OPERATOR(*, Multiply)
AUTODIFF_BINARY_OPERATOR(/, Divide)
#undef AUTODIFF_BINARY_OPERATOR

template <Expression A>
auto operator-(const A& a) {
  return make_unary<op::Negate>(a);
}
template <Expression A>
const A& operator+(const A& a) {
  return a;
}

#define AUTODIFF_BINARY_FUNCTION(name, Op)                                     \
  template <Operand A, Operand B>                                              \
  requires(Expression<A> || Expression<B>) auto name(const A& a, const B& b) { \
    return make_binary<op::Op>(a, b);                                          \
  }
AUTODIFF_BINARY_FUNCTION(pow, Power)
AUTODIFF_BINARY_FUNCTION(min, Minimum)
AUTODIFF_BINARY_FUNCTION(max, Maximum)
#undef AUTODIFF_BINARY_FUNCTION

#define AUTODIFF_UNARY_FUNCTION(name, Op) \
  template <Expression A>                 \
  auto name(const A& a) {                 \
    return make_unary<op::Op>(a);         \
  }
AUTODIFF_UNARY_FUNCTION(square, Square)  // x², one operation where x * x records two
AUTODIFF_UNARY_FUNCTION(exp, Exp)
AUTODIFF_UNARY_FUNCTION(log, Log)
AUTODIFF_UNARY_FUNCTION(log1p, Log1p)
AUTODIFF_UNARY_FUNCTION(sqrt, Sqrt)
AUTODIFF_UNARY_FUNCTION(sin, Sin)
AUTODIFF_UNARY_FUNCTION(cos, Cos)
AUTODIFF_UNARY_FUNCTION(tan, Tan)
AUTODIFF_UNARY_FUNCTION(tanh, Tanh)
AUTODIFF_UNARY_FUNCTION(sigmoid, Sigmoid)
AUTODIFF_UNARY_FUNCTION(relu, Relu)
AUTODIFF_UNARY_FUNCTION(abs, Abs)
AUTODIFF_UNARY_FUNCTION(softplus, Softplus)
#undef AUTODIFF_UNARY_FUNCTION

template <Expression A>
auto leaky_relu(const A& a, double slope = 0.01) {
  return make_unary(a, op::LeakyRelu{slope});
}
/// Throws std::invalid_argument unless low ≤ high.
template <Expression A>
auto clamp(const A& a, double low, double high) {
  if (!(low <= high)) detail::throw_bad_clamp(low, high);
  return make_unary(a, op::Clamp{low, high});
}

/// A user's elementwise op on a Var (or any expression): a struct with value(x) and
/// derivative(x, y), as the entries of the table above. The same call works on a Tensor.
template <class Op, Expression A>
auto elementwise(const A& a, Op op = {}) {
  return make_unary(a, op);
}
/// A user's binary op: a struct with value(a, b), d_left(a, b, y) and d_right(a, b, y).
template <class Op, Operand A, Operand B>
requires(Expression<A> || Expression<B>) auto elementwise(const A& a, const B& b) {
  return make_binary<Op>(a, b);
}

/// The same functions on plain doubles, for code written by hand next to the tape's: they use
/// the formulas above, so hand-derived and automatic results can agree to the last bit.
inline double sigmoid(double x) { return op::Sigmoid::value(x); }
inline double relu(double x) { return op::Relu::value(x); }

// ---- Comparisons compare values; they record nothing. ----

template <Operand A, Operand B>
requires(Expression<A> || Expression<B>) bool operator==(const A& a, const B& b) {
  return detail::value_of(a) == detail::value_of(b);
}
template <Operand A, Operand B>
requires(Expression<A> || Expression<B>) std::partial_ordering operator<=>(const A& a, const B& b) {
  return detail::value_of(a) <=> detail::value_of(b);
}

// ---- Compound assignment records the whole right-hand side as one node. ----

template <Operand E>
Var& Var::operator+=(const E& e) {
  return *this = *this + e;
}
template <Operand E>
Var& Var::operator-=(const E& e) {
  return *this = *this - e;
}
template <Operand E>
Var& Var::operator*=(const E& e) {
  return *this = *this * e;
}
template <Operand E>
Var& Var::operator/=(const E& e) {
  return *this = *this / e;
}

}  // namespace autodiff
