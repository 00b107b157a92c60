#pragma once
// The scalar ops: each one's value and local derivatives side by side, one struct per op.
// Everything else (the operators, the functions on Vars) is plumbing over this table.
//
// Unary ops: value(x) and derivative(x, y) where y = value(x).
// Binary ops: value(a, b), d_left(a, b, y) = ∂y/∂a and d_right(a, b, y) = ∂y/∂b.

#include <cmath>
#include <compare>

#include "autodiff/var.hpp"

namespace autodiff {
namespace op {

struct Add {
  static double value(double a, double b) { return a + b; }
  static double d_left(double, double, double) { return 1.0; }
  static double d_right(double, double, double) { return 1.0; }
};
struct Subtract {
  static double value(double a, double b) { return a - b; }
  static double d_left(double, double, double) { return 1.0; }
  static double d_right(double, double, double) { return -1.0; }
};
struct Multiply {
  static double value(double a, double b) { return a * b; }
  static double d_left(double, double b, double) { return b; }
  static double d_right(double a, double, double) { return a; }
};
struct Divide {
  static double value(double a, double b) { return a / b; }
  static double d_left(double, double b, double) { return 1.0 / b; }
  static double d_right(double, double b, double y) { return -y / b; }
};
// d/da a^b = b·a^(b−1), taken as 0 when b = 0 (a^0 is constant, even at a = 0).
// d/db a^b = a^b·ln a, taken as 0 at a = 0 (0^b is 0 for every b > 0); NaN for a < 0, where
// a^b is not differentiable in b. Negative bases with integer exponents are fine in a.
struct Power {
  static double value(double a, double b) { return std::pow(a, b); }
  static double d_left(double a, double b, double) {
    return b == 0.0 ? 0.0 : b * std::pow(a, b - 1.0);
  }
  static double d_right(double a, double, double y) { return a == 0.0 ? 0.0 : y * std::log(a); }
};
// At a tie the first argument is chosen, and gets the whole gradient.
struct Minimum {
  static double value(double a, double b) { return b < a ? b : a; }
  static double d_left(double a, double b, double) { return b < a ? 0.0 : 1.0; }
  static double d_right(double a, double b, double) { return b < a ? 1.0 : 0.0; }
};
struct Maximum {
  static double value(double a, double b) { return b > a ? b : a; }
  static double d_left(double a, double b, double) { return b > a ? 0.0 : 1.0; }
  static double d_right(double a, double b, double) { return b > a ? 1.0 : 0.0; }
};

struct Negate {
  static double value(double x) { return -x; }
  static double derivative(double, double) { return -1.0; }
};
struct Square {
  static double value(double x) { return x * x; }
  static double derivative(double x, double) { return 2.0 * x; }
};
struct Exp {
  static double value(double x) { return std::exp(x); }
  static double derivative(double, double y) { return y; }
};
// log, log1p, sqrt: ±∞ derivatives at the edge of the domain, NaN outside, as in the math.
struct Log {
  static double value(double x) { return std::log(x); }
  static double derivative(double x, double) { return 1.0 / x; }
};
struct Log1p {
  static double value(double x) { return std::log1p(x); }
  static double derivative(double x, double) { return 1.0 / (1.0 + x); }
};
struct Sqrt {
  static double value(double x) { return std::sqrt(x); }
  static double derivative(double, double y) { return 0.5 / y; }
};
struct Sin {
  static double value(double x) { return std::sin(x); }
  static double derivative(double x, double) { return std::cos(x); }
};
struct Cos {
  static double value(double x) { return std::cos(x); }
  static double derivative(double x, double) { return -std::sin(x); }
};
struct Tan {
  static double value(double x) { return std::tan(x); }
  static double derivative(double, double y) { return 1.0 + y * y; }
};
struct Tanh {
  static double value(double x) { return std::tanh(x); }
  static double derivative(double, double y) { return 1.0 - y * y; }
};
// 1/(1+e^−x), written so that e^x never overflows: exact for large |x| too.
struct Sigmoid {
  static double value(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
  }
  static double derivative(double, double y) { return y * (1.0 - y); }
};
// relu'(0) = 0 and abs'(0) = 0, as PyTorch and TensorFlow choose (a valid subgradient).
struct Relu {
  static double value(double x) { return x > 0.0 ? x : 0.0; }
  static double derivative(double x, double) { return x > 0.0 ? 1.0 : 0.0; }
};
struct Abs {
  static double value(double x) { return std::fabs(x); }
  static double derivative(double x, double) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); }
};

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
#undef AUTODIFF_UNARY_FUNCTION

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
