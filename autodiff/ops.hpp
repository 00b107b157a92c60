#pragma once
// The scalar ops: each one's value and local derivatives side by side, one struct per op.
// Everything else (the operators, the functions on Vars) is plumbing over this table.
//
// Unary ops: value(x) and derivative(x, y) where y = value(x).
// Binary ops: value(a, b), d_left(a, b, y) = ∂y/∂a and d_right(a, b, y) = ∂y/∂b.

#include <cmath>
#include <compare>
#include <limits>
#include <stdexcept>
#include <string>

#include "autodiff/var.hpp"

namespace autodiff {
namespace detail {
template <class T>
constexpr T nan() {
  return std::numeric_limits<T>::quiet_NaN();
}
[[noreturn]] inline void throw_bad_clamp(double low, double high) {
  throw std::invalid_argument("clamp: low " + std::to_string(low) + " is above high " +
                              std::to_string(high) + ", expected low ≤ high");
}
/// c·a^p as (c·h)·h with h = |a|^(p/2), and the sign of a^p (NaN for a < 0 and p not an
/// integer): within 3 ulp where a^p over- or underflows but c·a^p does not.
template <class T>
T times_pow(T c, T a, T p) {
  using std::fabs, std::pow;
  const T h = pow(fabs(a), p / T(2));
  return (a < T(0) ? c * pow(T(-1), p) : c) * h * h;
}
}  // namespace detail

namespace op {

// Each entry is generic over the element type, so that the tensor kernels (float and double) use
// these very definitions. A user's own op is written the same way (see the README).
// The math functions are called unqualified, so that a number type of its own (autodiff::Dual,
// for forward mode and second order) finds its overloads by argument-dependent lookup.
using std::cos, std::exp, std::fabs, std::isnormal, std::log, std::log1p, std::pow, std::sin,
    std::sqrt, std::tan, std::tanh;

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
// ∂/∂b = −a/b² as −y/b; where y is subnormal (bits lost), as −a/(b·b): b·b is normal there.
struct Divide {
  static constexpr auto value   = [](auto a, auto b) { return a / b; };
  static constexpr auto d_left  = []<class T>(T, T b, T) { return T(1) / b; };
  static constexpr auto d_right = []<class T>(T a, T b, T y) { return isnormal(y) ? -y / b : -a / (b * b); };
};
// d/da a^b = b·a^(b−1), taken as 0 when b = 0 (a^0 is constant, even at a = 0).
// d/db a^b = a^b·ln a, taken as 0 at a = 0 (0^b is 0 for every b > 0); NaN for a < 0, where
// a^b is not differentiable in b. Negative bases with integer exponents are fine in a.
// Accuracy (within 3 ulp): d/da is b·y/a, not b·pow(a, b − 1), whose rounded b − 1 costs 300
// ulp at a = 1e300, b = 0.3; the order of b·y/a keeps each intermediate in the normal range.
// Where y over- or underflows, both partials square a^(p/2) (detail::times_pow), with p = b − 1
// for b > 0 (exact: y is out of range only for b > 0.9) and as (b/a)·a^b for b < 0.
struct Power {
  static constexpr auto value   = [](auto a, auto b) { return pow(a, b); };
  static constexpr auto d_left  = []<class T>(T a, T b, T y) {
    if (b == T(0)) return T(0);
    if (isnormal(y)) return fabs(b) < T(1) || fabs(y) < T(1) ? b * y / a : b * (y / a);
    return b > T(0) ? detail::times_pow(b, a, b - T(1)) : detail::times_pow(b / a, a, b); };
  static constexpr auto d_right = []<class T>(T a, T b, T y) {
    if (a == T(0)) return T(0);
    return isnormal(y) ? y * log(a) : detail::times_pow(log(a), a, b); };
};
// At a tie the first argument is chosen, and gets the whole gradient. A NaN on either side is
// not hidden: the value is NaN (a + b), and so are both partials (neither side was chosen).
struct Minimum {
  static constexpr auto value   = [](auto a, auto b) { return b < a ? b : (b >= a ? a : a + b); };
  static constexpr auto d_left  = []<class T>(T a, T b, T) { return b < a ? T(0) : (b >= a ? T(1) : detail::nan<T>()); };
  static constexpr auto d_right = []<class T>(T a, T b, T) { return b < a ? T(1) : (b >= a ? T(0) : detail::nan<T>()); };
};
struct Maximum {
  static constexpr auto value   = [](auto a, auto b) { return b > a ? b : (b <= a ? a : a + b); };
  static constexpr auto d_left  = []<class T>(T a, T b, T) { return b > a ? T(0) : (b <= a ? T(1) : detail::nan<T>()); };
  static constexpr auto d_right = []<class T>(T a, T b, T) { return b > a ? T(1) : (b <= a ? T(0) : detail::nan<T>()); };
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
  static constexpr auto value      = [](auto x) { return exp(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return y; };
};
// log, log1p, sqrt: ±∞ derivatives at the edge of the domain, NaN outside, as in the math.
struct Log {
  static constexpr auto value      = [](auto x) { return log(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / x; };
};
struct Log1p {
  static constexpr auto value      = [](auto x) { return log1p(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / (T(1) + x); };
};
struct Sqrt {
  static constexpr auto value      = [](auto x) { return sqrt(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return T(0.5) / y; };
};
struct Sin {
  static constexpr auto value      = [](auto x) { return sin(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return cos(x); };
};
struct Cos {
  static constexpr auto value      = [](auto x) { return cos(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return -sin(x); };
};
// tan′ = 1 + y² never cancels, and y is within 1 ulp even next to the poles: within 2 ulp.
struct Tan {
  static constexpr auto value      = [](auto x) { return tan(x); };
  static constexpr auto derivative = []<class T>(T, T y) { return T(1) + y * y; };
};
// tanh′ = sech²x = 4e/(1 + e)² with e = exp(−2|x|), expanded to 4e/(1 + e(2 + e)): within 2.5
// ulp. (1 − y² cancels as |y| → 1: 2e-11 relative error at x = 7, 0 instead of 7e-35 at 40.)
struct Tanh {
  static constexpr auto value      = [](auto x) { return tanh(x); };
  static constexpr auto derivative = []<class T>(T x, T) { const T e = exp(T(-2) * fabs(x));
                                                            return T(4) * e / (T(1) + e * (T(2) + e)); };
};
// σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) below, with e = exp(−|x|) ≤ 1: never overflows,
// exact for large |x| too. σ′(x) = e/(1 + e)², expanded as for tanh: within 2.5 ulp. (y·(1 − y)
// cancels as y → 1: 0 instead of 4e-18 at x = 40.) Where both are inlined, e is computed once.
struct Sigmoid {
  static constexpr auto value      = []<class T>(T x) { const T e = exp(-fabs(x));
                                                         return (x >= T(0) ? T(1) : e) / (T(1) + e); };
  static constexpr auto derivative = []<class T>(T x, T) { const T e = exp(-fabs(x));
                                                            return e / (T(1) + e * (T(2) + e)); };
};
// relu'(0) = 0 and abs'(0) = 0, as PyTorch and TensorFlow choose (a valid subgradient).
// relu(NaN) is NaN, and so is its derivative: a NaN is never turned into a quiet 0.
struct Relu {
  static constexpr auto value      = [](auto x) { return x <= 0 ? decltype(x)(0) : x; };
  // From y = relu(x), which is 0 or positive or NaN: 1, 0 (y itself) or NaN (y itself). One
  // comparison, as before NaNs were propagated (two cost MLP_step 0.7% of its instructions).
  static constexpr auto derivative = []<class T>(T, T y) { return y > T(0) ? T(1) : y; };
};
struct Abs {
  static constexpr auto value      = [](auto x) { return fabs(x); };
  static constexpr auto derivative = []<class T>(T x, T) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); };
};
// log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow, and exact where e^x is tiny or huge.
struct Softplus {
  static constexpr auto value      = []<class T>(T x) { return (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x))); };
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
/// σ′(x) = σ(x)·(1 − σ(x)), computed without the cancellation of 1 − σ(x) as σ(x) → 1.
inline double sigmoid_derivative(double x) { return op::Sigmoid::derivative(x, sigmoid(x)); }
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

// While a tape is inspected, each statement is noted with its expression (autodiff/inspect/).
#include "autodiff/inspect/expression_notes.hpp"  // IWYU pragma: export
