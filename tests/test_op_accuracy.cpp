// Every scalar op's value and partial derivatives within a few ulp of the exact ones, across the
// op's domain (saturation, the edges of the domain and tan's poles included), wherever the type
// can hold the answer. The exact values come from mpmath (scripts/make_op_references.py →
// op_references.inc); each is checked through the op table (ops.hpp), through the tape (a Var
// expression and backward()), and through the double and float tensor ops where they exist.
//
// The error is measured in ulps of the exact value: |computed − exact| / ulp(exact), where
// ulp(exact) is the spacing of the type's numbers at the exact value, and never less than the
// smallest subnormal (so an exact value that underflows is compared with an absolute tolerance
// of a few smallest subnormals). An exact value beyond the type's range must come out as the
// infinity of the same sign; a partial that does not exist (pow's ∂/∂b for a < 0) as NaN.
#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/core.h>

#include "autodiff/autodiff.hpp"
#include "ulp_error.hpp"

using namespace autodiff;

namespace {

using testing::Exact;
using testing::ulp_error;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double nan = std::numeric_limits<double>::quiet_NaN();

struct Reference {
  const char* op;
  double a, b;                   // b only for binary ops
  Exact value, d_left, d_right;  // d_left is the derivative of a unary op; d_right nan for them
};
const Reference kReferences[] = {
#include "op_references.inc"
};

constexpr double kMaxUlps = 4;

/// Whether x is a number of type T (so that the float tensor ops can take it exactly).
template <class T>
bool representable(double x) {
  if (std::isnan(x) || std::isinf(x)) return false;
  if (std::fabs(x) > static_cast<double>(std::numeric_limits<T>::max())) return false;
  return static_cast<double>(static_cast<T>(x)) == x;
}

/// The largest error seen (for one op and quantity), and where.
struct Worst {
  double ulps = 0;
  std::string where;
  void update(double error, const std::string& at) {
    if (error > ulps || where.empty()) {
      ulps = std::max(ulps, error);
      where = at;
    }
  }
};

// Worst errors by op, in double (op table, tape and double tensors) and in float (float
// tensors), of the value, ∂/∂a and ∂/∂b.
struct OpWorst {
  std::array<Worst, 3> in_double, in_float;
};
std::map<std::string, OpWorst>& worst() {
  static std::map<std::string, OpWorst> w;
  return w;
}

std::string point(const Reference& r, bool binary) {
  return binary ? fmt::format("({:.17g}, {:.17g})", r.a, r.b) : fmt::format("{:.17g}", r.a);
}

/// Checks the computed value, ∂/∂a and (if given) ∂/∂b of one reference row.
template <class T>
void check_row(const Reference& r, bool binary, const char* path,
               std::initializer_list<T> computed) {
  static constexpr const char* kNames[] = {"value", "∂/∂a", "∂/∂b"};
  const Exact exact[] = {r.value, r.d_left, r.d_right};
  OpWorst& w = worst()[r.op];
  int k = 0;
  for (const T c : computed) {
    const double error = ulp_error<T>(c, exact[k]);
    (std::is_same_v<T, float> ? w.in_float : w.in_double)[k].update(error, point(r, binary));
    INFO(fmt::format(
        "{} {} at {} through the {}: computed {:.17g}, exact {:.17g}, error {:.3g} ulp", r.op,
        kNames[k], point(r, binary), path, static_cast<double>(c), exact[k].hi, error));
    CHECK(error <= kMaxUlps);
    ++k;
  }
}

std::size_t rows_checked = 0;  // so that a row for an op nobody checks cannot go unnoticed

std::vector<const Reference*> rows_of(const char* op) {
  std::vector<const Reference*> rows;
  for (const Reference& r : kReferences)
    if (std::string(r.op) == op) rows.push_back(&r);
  REQUIRE_MESSAGE(!rows.empty(), "no reference rows for ", op);
  rows_checked += rows.size();
  return rows;
}

struct NoTensorOp {};

/// A unary op: Op from the table, var_f(Var) → expression, tensor_f(Tensor<T>) → Tensor<T>.
template <class Op, class VarF, class TensorF = NoTensorOp>
void check_unary(const char* op, VarF var_f, TensorF tensor_f = {}) {
  for (const Reference* r : rows_of(op)) {
    const double x = r->a;
    const double y = Op::value(x);
    check_row<double>(*r, false, "table", {y, Op::derivative(x, y)});
    {
      Tape tape;
      TapeScope scope(tape);
      const Var v = x;
      const Var out = var_f(v);
      out.backward();
      check_row<double>(*r, false, "tape", {out.value(), v.grad()});
    }
    if constexpr (!std::is_same_v<TensorF, NoTensorOp>) {
      auto through_tensor = [&]<class T>(T, const char* path) {
        if (!representable<T>(x)) return;
        Tape tape;
        TapeScope scope(tape);
        const Tensor<T> t = Tensor<T>::from({static_cast<T>(x)}, {1}).requires_grad();
        const Tensor<T> out = tensor_f(t);
        out.backward();
        check_row<T>(*r, false, path, {out.item(), t.grad()[0]});
      };
      through_tensor(double{}, "tensor<double>");
      through_tensor(float{}, "tensor<float>");
    }
  }
}

/// A binary op: var_f(Var, Var) → expression, tensor_f a TensorBinary.
template <class Op, class VarF, class TensorF = NoTensorOp>
void check_binary(const char* op, VarF var_f, TensorF tensor_f = {}) {
  for (const Reference* r : rows_of(op)) {
    const double a = r->a, b = r->b;
    const double y = Op::value(a, b);
    check_row<double>(*r, true, "table", {y, Op::d_left(a, b, y), Op::d_right(a, b, y)});
    {
      Tape tape;
      TapeScope scope(tape);
      const Var va = a, vb = b;
      const Var out = var_f(va, vb);
      out.backward();
      check_row<double>(*r, true, "tape", {out.value(), va.grad(), vb.grad()});
    }
    if constexpr (!std::is_same_v<TensorF, NoTensorOp>) {
      auto through_tensor = [&]<class T>(T, const char* path) {
        if (!representable<T>(a) || !representable<T>(b)) return;
        Tape tape;
        TapeScope scope(tape);
        const Tensor<T> ta = Tensor<T>::from({static_cast<T>(a)}, {1}).requires_grad();
        const Tensor<T> tb = Tensor<T>::from({static_cast<T>(b)}, {1}).requires_grad();
        const Tensor<T> out = tensor_f(ta, tb);
        out.backward();
        if (tensor_f.b_is_tensor)
          check_row<T>(*r, true, path, {out.item(), ta.grad()[0], tb.grad()[0]});
        else
          check_row<T>(*r, true, path, {out.item(), ta.grad()[0]});
      };
      through_tensor(double{}, "tensor<double>");
      through_tensor(float{}, "tensor<float>");
    }
  }
}

/// A tensor function of two tensors, and whether it takes b as a tensor (pow takes a number: then
/// b gets no gradient, and ∂/∂b is not checked through tensors).
template <class F>
struct TensorBinary {
  F f;
  bool b_is_tensor = true;
  template <class T>
  Tensor<T> operator()(const Tensor<T>& a, const Tensor<T>& b) const {
    return f(a, b);
  }
};
template <class F>
TensorBinary(F, bool) -> TensorBinary<F>;

std::string summary() {
  auto cell = [](const Worst& w) {
    return w.where.empty() ? std::string("-") : fmt::format("{:.2f}", w.ulps);
  };
  auto worst_of = [](const std::array<Worst, 3>& q) {
    return *std::max_element(q.begin(), q.end(),
                             [](const Worst& x, const Worst& y) { return x.ulps < y.ulps; });
  };
  std::string out = fmt::format(
      "worst error in ulps (bound {}): double = op table, tape, double tensors; float = float "
      "tensors\n{:<9} {:>22}   {:>22}   worst double at\n{:<9} {:>6} {:>7} {:>7}   {:>6} {:>7} "
      "{:>7}\n",
      kMaxUlps, "", "double", "float", "op", "value", "∂/∂a", "∂/∂b", "value", "∂/∂a", "∂/∂b");
  for (const auto& [op, w] : worst()) {
    const auto& d = w.in_double;
    const auto& f = w.in_float;
    out +=
        fmt::format("{:<9} {:>6} {:>7} {:>7}   {:>6} {:>7} {:>7}   {}\n", op, cell(d[0]),
                    cell(d[1]), cell(d[2]), cell(f[0]), cell(f[1]), cell(f[2]), worst_of(d).where);
  }
  return out;
}

}  // namespace

TEST_CASE("ulp_error: in ulps of the exact value, subnormals and overflow included") {
  const double one_up = std::nextafter(1.0, 2.0);
  CHECK(ulp_error<double>(one_up, {1, 0}) == 1);
  CHECK(ulp_error<double>(1.0, {1, 0x1p-53}) == 0.5);      // half-way to the next double
  CHECK(ulp_error<double>(1.0, {1, -0x1p-54}) == 0.5);     // just below 1: the finer ulps there
  CHECK(ulp_error<float>(1.0f, {1, 0x1p-24}) == 0.5);      // in float ulps
  CHECK(ulp_error<double>(0.0, {0x1p-1074 * 3, 0}) == 3);  // subnormal: absolute
  CHECK(ulp_error<double>(0x1p-1074, {0, 0}) == 1);        // exact 0: absolute
  CHECK(ulp_error<float>(0.0f, {1e-300, 0}) == doctest::Approx(1e-300 / 0x1p-149));
  CHECK(ulp_error<double>(inf, {inf, 0}) == 0);  // overflow: the infinity
  CHECK(ulp_error<double>(-inf, {inf, 0}) == inf);
  CHECK(ulp_error<double>(1e308, {inf, 0}) == inf);
  CHECK(ulp_error<float>(std::numeric_limits<float>::infinity(), {1e39, 0}) == 0);
  CHECK(ulp_error<float>(std::numeric_limits<float>::max(), {0x1.fffffe8p127, 0}) == 0.25);
  CHECK(ulp_error<double>(inf, {1e308, 0}) == inf);
  const double no_number = std::numeric_limits<double>::quiet_NaN();
  CHECK(ulp_error<double>(no_number, {no_number, 0}) == 0);  // a partial that does not exist
  CHECK(ulp_error<double>(1.0, {no_number, 0}) == inf);
  CHECK(ulp_error<double>(no_number, {1, 0}) == inf);
}

TEST_CASE("every op's value and partials are within a few ulp of the exact ones") {
  worst().clear();
  rows_checked = 0;
  check_unary<op::Negate>(
      "negate", [](const Var& x) { return Var(-x); }, [](const auto& x) { return -x; });
  check_unary<op::Square>(
      "square", [](const Var& x) { return Var(square(x)); },
      [](const auto& x) { return square(x); });
  check_unary<op::Exp>(
      "exp", [](const Var& x) { return Var(exp(x)); }, [](const auto& x) { return exp(x); });
  check_unary<op::Log>(
      "log", [](const Var& x) { return Var(log(x)); }, [](const auto& x) { return log(x); });
  check_unary<op::Log1p>("log1p", [](const Var& x) { return Var(log1p(x)); });
  check_unary<op::Sqrt>(
      "sqrt", [](const Var& x) { return Var(sqrt(x)); }, [](const auto& x) { return sqrt(x); });
  check_unary<op::Sin>("sin", [](const Var& x) { return Var(sin(x)); });
  check_unary<op::Cos>("cos", [](const Var& x) { return Var(cos(x)); });
  check_unary<op::Tan>("tan", [](const Var& x) { return Var(tan(x)); });
  check_unary<op::Tanh>(
      "tanh", [](const Var& x) { return Var(tanh(x)); }, [](const auto& x) { return tanh(x); });
  check_unary<op::Sigmoid>(
      "sigmoid", [](const Var& x) { return Var(sigmoid(x)); },
      [](const auto& x) { return sigmoid(x); });
  check_unary<op::Relu>(
      "relu", [](const Var& x) { return Var(relu(x)); }, [](const auto& x) { return relu(x); });
  check_unary<op::Abs>(
      "abs", [](const Var& x) { return Var(abs(x)); }, [](const auto& x) { return abs(x); });

  auto tensors = [](auto f) { return TensorBinary{f, true}; };
  check_binary<op::Add>(
      "add", [](const Var& a, const Var& b) { return Var(a + b); },
      tensors([](const auto& a, const auto& b) { return a + b; }));
  check_binary<op::Subtract>(
      "subtract", [](const Var& a, const Var& b) { return Var(a - b); },
      tensors([](const auto& a, const auto& b) { return a - b; }));
  check_binary<op::Multiply>(
      "multiply", [](const Var& a, const Var& b) { return Var(a * b); },
      tensors([](const auto& a, const auto& b) { return a * b; }));
  check_binary<op::Divide>(
      "divide", [](const Var& a, const Var& b) { return Var(a / b); },
      tensors([](const auto& a, const auto& b) { return a / b; }));
  check_binary<op::Minimum>(
      "min", [](const Var& a, const Var& b) { return Var(min(a, b)); },
      tensors([](const auto& a, const auto& b) { return minimum(a, b); }));
  check_binary<op::Maximum>(
      "max", [](const Var& a, const Var& b) { return Var(max(a, b)); },
      tensors([](const auto& a, const auto& b) { return maximum(a, b); }));
  // Tensors have pow(tensor, number) only: its ∂/∂a is checked.
  check_binary<op::Power>(
      "pow", [](const Var& a, const Var& b) { return Var(pow(a, b)); },
      TensorBinary{[](const auto& a, const auto& b) { return pow(a, b.item()); }, false});

  CHECK(rows_checked == std::size(kReferences));
  MESSAGE(summary());
}
