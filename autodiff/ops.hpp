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

// Each function is a template over the element type, so that the tensor kernels (float and
// double) use these very definitions.

struct Add {
  template <class T>
  static T value(T a, T b) {
    return a + b;
  }
  template <class T>
  static T d_left(T, T, T) {
    return T(1);
  }
  template <class T>
  static T d_right(T, T, T) {
    return T(1);
  }
};
struct Subtract {
  template <class T>
  static T value(T a, T b) {
    return a - b;
  }
  template <class T>
  static T d_left(T, T, T) {
    return T(1);
  }
  template <class T>
  static T d_right(T, T, T) {
    return T(-1);
  }
};
struct Multiply {
  template <class T>
  static T value(T a, T b) {
    return a * b;
  }
  template <class T>
  static T d_left(T, T b, T) {
    return b;
  }
  template <class T>
  static T d_right(T a, T, T) {
    return a;
  }
};
struct Divide {
  template <class T>
  static T value(T a, T b) {
    return a / b;
  }
  template <class T>
  static T d_left(T, T b, T) {
    return T(1) / b;
  }
  template <class T>
  static T d_right(T, T b, T y) {
    return -y / b;
  }
};
// d/da a^b = b·a^(b−1), taken as 0 when b = 0 (a^0 is constant, even at a = 0).
// d/db a^b = a^b·ln a, taken as 0 at a = 0 (0^b is 0 for every b > 0); NaN for a < 0, where
// a^b is not differentiable in b. Negative bases with integer exponents are fine in a.
struct Power {
  template <class T>
  static T value(T a, T b) {
    return std::pow(a, b);
  }
  template <class T>
  static T d_left(T a, T b, T) {
    return b == T(0) ? T(0) : b * std::pow(a, b - T(1));
  }
  template <class T>
  static T d_right(T a, T, T y) {
    return a == T(0) ? T(0) : y * std::log(a);
  }
};
// At a tie the first argument is chosen, and gets the whole gradient.
struct Minimum {
  template <class T>
  static T value(T a, T b) {
    return b < a ? b : a;
  }
  template <class T>
  static T d_left(T a, T b, T) {
    return b < a ? T(0) : T(1);
  }
  template <class T>
  static T d_right(T a, T b, T) {
    return b < a ? T(1) : T(0);
  }
};
struct Maximum {
  template <class T>
  static T value(T a, T b) {
    return b > a ? b : a;
  }
  template <class T>
  static T d_left(T a, T b, T) {
    return b > a ? T(0) : T(1);
  }
  template <class T>
  static T d_right(T a, T b, T) {
    return b > a ? T(1) : T(0);
  }
};

struct Negate {
  template <class T>
  static T value(T x) {
    return -x;
  }
  template <class T>
  static T derivative(T, T) {
    return T(-1);
  }
};
struct Square {
  template <class T>
  static T value(T x) {
    return x * x;
  }
  template <class T>
  static T derivative(T x, T) {
    return T(2) * x;
  }
};
struct Exp {
  template <class T>
  static T value(T x) {
    return std::exp(x);
  }
  template <class T>
  static T derivative(T, T y) {
    return y;
  }
};
// log, log1p, sqrt: ±∞ derivatives at the edge of the domain, NaN outside, as in the math.
struct Log {
  template <class T>
  static T value(T x) {
    return std::log(x);
  }
  template <class T>
  static T derivative(T x, T) {
    return T(1) / x;
  }
};
struct Log1p {
  template <class T>
  static T value(T x) {
    return std::log1p(x);
  }
  template <class T>
  static T derivative(T x, T) {
    return T(1) / (T(1) + x);
  }
};
struct Sqrt {
  template <class T>
  static T value(T x) {
    return std::sqrt(x);
  }
  template <class T>
  static T derivative(T, T y) {
    return T(0.5) / y;
  }
};
struct Sin {
  template <class T>
  static T value(T x) {
    return std::sin(x);
  }
  template <class T>
  static T derivative(T x, T) {
    return std::cos(x);
  }
};
struct Cos {
  template <class T>
  static T value(T x) {
    return std::cos(x);
  }
  template <class T>
  static T derivative(T x, T) {
    return -std::sin(x);
  }
};
struct Tan {
  template <class T>
  static T value(T x) {
    return std::tan(x);
  }
  template <class T>
  static T derivative(T, T y) {
    return T(1) + y * y;
  }
};
struct Tanh {
  template <class T>
  static T value(T x) {
    return std::tanh(x);
  }
  template <class T>
  static T derivative(T, T y) {
    return T(1) - y * y;
  }
};
// 1/(1+e^−x), written so that e^x never overflows: exact for large |x| too.
struct Sigmoid {
  template <class T>
  static T value(T x) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  }
  template <class T>
  static T derivative(T, T y) {
    return y * (T(1) - y);
  }
};
// relu'(0) = 0 and abs'(0) = 0, as PyTorch and TensorFlow choose (a valid subgradient).
struct Relu {
  template <class T>
  static T value(T x) {
    return x > T(0) ? x : T(0);
  }
  template <class T>
  static T derivative(T x, T) {
    return x > T(0) ? T(1) : T(0);
  }
};
struct Abs {
  template <class T>
  static T value(T x) {
    return std::fabs(x);
  }
  template <class T>
  static T derivative(T x, T) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  }
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
