// The tensor ops that are not elementwise (softmax.hpp, reductions.hpp, linalg.hpp, conv.hpp,
// pooling.hpp, normalization.hpp): their values and input gradients against exact ones from
// mpmath (scripts/make_tensor_references.py → tensor_references.inc), in double and in float
// tensors. The inputs are floats, so both types take the same ones exactly; the gradients are
// those of sum(w ⊙ y) for fixed weights w, i.e. each op's backward with the upstream gradient w.
//
// One relative error for every output would be the wrong yardstick: a sum that cancels has no
// relative accuracy to speak of, whatever the summation. So each quantity is measured the way its
// computation can be judged, with u the unit roundoff of the type (2⁻²⁴ for float, 2⁻⁵³ for
// double) and n the number of terms summed (the row's length, k of a matmul, a window's pixels):
//
// - ulps: |computed − exact| / ulp(exact), for values that are well conditioned at the point
//   (softmax, the cross-entropy, whose terms −y·log p are all ≥ 0, the logsumexp's gradient, max
//   pooling, which must be exact);
// - terms: |computed − exact| / (u · Σ|terms|), for sums of products (sum, mean, matmul, conv2d,
//   the poolings, batch_norm, and the gradients that are such sums), Σ|terms| the sum of the
//   absolute values of the terms summed, from the script. The textbook bound of recursive
//   summation of n products is γ_n ≈ n·u times Σ|terms|, whatever the order: n (+1 for a last
//   product or division) is the bound, where BLAS's blocked sums and the double accumulators do
//   much better; batch_norm's and the softmax family's gradients add the errors of the values
//   they are made of (see check_of);
// - mixed: |computed − exact| / (u · κ), for log_softmax (and the cross-entropy's gradient for
//   the targets, −log p / rows) and the logsumexp: κ is their condition under the roundings that
//   no algorithm in the working precision avoids (the shift x − m, m + log Σ; see check_of).
//
// Where the rounding of the shifted logits x − max in the type (δ, which the test computes from
// the inputs) limits what any algorithm can do, it is added to the bound as it happens: in double
// the shifts of these float inputs are exact and the bounds are the plain ones.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
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
struct Dims {
  int rank;
  std::array<std::int64_t, 4> d;
  Shape shape() const {
    return Shape(std::span<const std::int64_t>(d.data(), static_cast<std::size_t>(rank)));
  }
  std::int64_t size() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= d[static_cast<std::size_t>(i)];
    return n;
  }
};
struct Input {
  Dims dims;
  const double* values;
};
/// An output or gradient: exact values, the scale of the test's measure per element (null: ulps),
/// and the most terms summed into one element.
struct Quantity {
  Dims dims;
  const Exact* exact;
  const double* scale;
  std::int64_t terms;
};
struct TensorCase {
  const char* op;
  const char* what;
  double params[6];  // the axis (99: all); conv2d's strides and padding; a pool's window; ε
  int inputs;
  Input in[3];
  Input weights;  // w, of the output's shape
  Quantity value;
  Quantity grad[3];  // of each input
};
#include "tensor_references.inc"

constexpr double kAll = 99;
constexpr double inf = std::numeric_limits<double>::infinity();

template <class T>
constexpr double kUnitRoundoff = std::numeric_limits<T>::epsilon() / 2;

/// |computed − exact| / (u·scale), floored at the smallest subnormal: an exact 0 (scale 0) must
/// come out exactly.
template <class T>
double scaled_error(T computed_t, Exact exact, double scale) {
  const double error = std::fabs((double(computed_t) - exact.hi) - exact.lo);
  if (!std::isfinite(error)) return inf;
  if (error == 0) return 0;
  return error / std::max(kUnitRoundoff<T> * scale, double(std::numeric_limits<T>::denorm_min()));
}

/// One row of logits (the softmax family's last axis): the max m, the softmax p (in double: for
/// the bounds only), and δ_j/u, the rounding error of the shift x_j − m in type T, in units of u
/// (0 in double: the difference of two floats is a double).
template <class T>
struct Row {
  std::int64_t n;
  std::vector<double> p, shift;
  Row(const double* x, std::int64_t cols) : n(cols) {
    const double m = *std::max_element(x, x + cols);
    double total = 0;
    for (std::int64_t j = 0; j < n; ++j) total += std::exp(x[j] - m);
    for (std::int64_t j = 0; j < n; ++j) {
      p.push_back(std::exp(x[j] - m) / total);
      const T rounded = static_cast<T>(x[j]) - static_cast<T>(m);  // as the op computes it
      shift.push_back(std::fabs(double(rounded) - (x[j] - m)) / kUnitRoundoff<T>);
    }
  }
  /// Σ p_j·δ_j/u: the relative error that the shifts' roundings give Σ exp(x − m), in u.
  double spread() const {
    double s = 0;
    for (std::int64_t j = 0; j < n; ++j) s += p[j] * shift[j];
    return s;
  }
  double max_shift() const { return *std::max_element(shift.begin(), shift.end()); }
  /// softmax's error bound at j, in ulps: the shift's rounding δ_j (exp(x_j − m + δ_j) is off by
  /// δ_j relative), the sum's (n − 1)·u and its terms' shifts, exp's and the division's ulp.
  double softmax_bound(std::int64_t j) const { return double(n) + 2 + shift[j] + spread(); }
};

enum class Measure { Ulps, Terms, Mixed };
const char* to_string(Measure m) {
  return m == Measure::Ulps ? "ulps" : m == Measure::Terms ? "terms" : "mixed";
}
const char* letter(Measure m) { return m == Measure::Ulps ? "u" : m == Measure::Terms ? "t" : "m"; }
struct Check {
  Measure measure;
  double bound;
};

/// How quantity q (0: the value, k: the gradient of input k − 1) of case c is measured at element
/// i in type T, and its bound (why: in each branch).
template <class T>
Check check_of(const TensorCase& c, int q, std::int64_t i) {
  const std::string op = c.op;
  const Quantity& quantity = q == 0 ? c.value : c.grad[q - 1];
  const auto n = double(quantity.terms);
  const Dims& x_dims = c.in[0].dims;
  const std::int64_t cols = x_dims.d[static_cast<std::size_t>(x_dims.rank - 1)];
  const auto row_of = [&](std::int64_t r) { return Row<T>(c.in[0].values + r * cols, cols); };
  // part's share of element i's Σ|terms| (0 where all its terms are 0: it must then be exact)
  const auto share = [&](double part, std::int64_t i) {
    return quantity.scale[i] > 0 ? part / quantity.scale[i] : 0.0;
  };
  if (op == "softmax") {
    const Row<T> row = row_of(i / cols);
    if (q == 0) return {Measure::Ulps, row.softmax_bound(i % cols)};
    // y_i·(w_i − Σ w·y): the y's relative errors, then n + 2 roundings, over Σ|terms| =
    // y_i·(|w_i| + Σ |w|·y)
    double worst_y = 0;
    for (std::int64_t j = 0; j < cols; ++j) worst_y = std::max(worst_y, row.softmax_bound(j));
    return {Measure::Terms, worst_y + double(cols) + 2};
  }
  if (op == "log_softmax" || op == "cross_entropy_with_logits") {
    // log p_i = x_i − m − log1p(Σ′ exp(x − m)) is off by at most
    //   u·(|δ_i| + |x_i − m| + 2|log p_i|) + u·(Σ p_j·|δ_j| + n·log Σ)
    // (the shift, the two subtractions; log Σ's error: the rest's roundings, relative, times
    // Σ′/(1 + Σ′) ≤ log Σ). With |δ_j| ≤ u·|x_j − m| that is (n + 5)·u·κ_i, the condition
    // κ_i = |x_i − m| + log Σ + Σ p_j·|x_j − m| (the script's scale): a mixed error, since log p_i
    // is as ill conditioned as κ_i/|log p_i| (at the dominating entry, log p ≈ −Σ′ ≈ 0).
    const double log_p_bound = double(cols) + 5;
    if (op == "log_softmax") {
      if (q == 0) return {Measure::Mixed, log_p_bound};
      // w_i − p_i·Σw with p_i = exp(log p_i): p_i's relative error, (n + 5)·u·κ_i, weighs
      // p_i·Σ|w| of the terms' Σ|terms| = |w_i| + p_i·Σ|w|; then n + 2 roundings
      const std::int64_t r = i / cols;
      double w_abs = 0;
      for (std::int64_t j = 0; j < cols; ++j) w_abs += std::fabs(c.weights.values[r * cols + j]);
      const double p = std::exp(c.value.exact[i].hi), kappa = c.value.scale[i];
      return {Measure::Terms, double(cols) + 2 + log_p_bound * kappa * share(p * w_abs, i)};
    }
    const std::int64_t rows = x_dims.d[0];
    if (q == 0) {
      // mean over rows of Σ −t·log p, terms ≥ 0: log p's relative error, (n + 5)·u·κ/|log p|,
      // where κ/|log p| is 1 but for Σ p_j·|x_j − m|/|log p|, which at the dominating entry (log p
      // ≈ −Σ′) is the rest's relative error from the shifts, at most max δ/u; plus the double
      // mean's rounding to T
      double worst_shift = 0;
      for (std::int64_t r = 0; r < rows; ++r)
        worst_shift = std::max(worst_shift, row_of(r).max_shift());
      return {Measure::Ulps, log_p_bound + worst_shift + 1};
    }
    if (q == 2) return {Measure::Mixed, log_p_bound + 1};  // −(g/rows)·log p: one product more
    // (g/rows)·(p_j·Σt − t_j): as log_softmax's gradient, with Σt for Σw
    const std::int64_t r = i / cols;
    const double* t = c.in[1].values + r * cols;
    double t_abs = 0;
    for (std::int64_t j = 0; j < cols; ++j) t_abs += std::fabs(t[j]);
    const double g = std::fabs(c.weights.values[0]) / double(rows);
    const double kappa = c.grad[1].scale[i] / g;  // the script's scale of ∂/∂t: (g/rows)·κ
    const double p = std::exp(-c.grad[1].exact[i].hi / (c.weights.values[0] / double(rows)));
    return {Measure::Terms, double(cols) + 3 + log_p_bound * kappa * share(g * p * t_abs, i)};
  }
  if (op == "logsumexp") {
    // computed in double whatever T (shifts exact for floats, Σ′ with n − 1 roundings, log1p, the
    // addition), then rounded to T: at most n + 3 in u of T, against κ = |m| + log Σ + Σ p·|x − m|
    // (mixed: m + log Σ may cancel). Its gradient, w·exp(x − m)/Σ, likewise in ulps
    return {q == 0 ? Measure::Mixed : Measure::Ulps, n + 3};
  }
  if (op == "max_pool2d") {
    if (q == 0) return {Measure::Ulps, 0};          // a selection: exact
    return {Measure::Terms, std::max(n - 1, 0.0)};  // the g of the windows it is the max of
  }
  if (op == "batch_norm") {
    // m = n for the per-channel sums of γ and β, n/2 for y and x: the mean's m terms, the sum
    // over m of the gradient's own terms, and a few more roundings (the variance's square root
    // and reciprocal, the products): 2m + 6 in all
    const double m = q >= 2 ? n : n / 2;
    return {Measure::Terms, 2 * m + 6};
  }
  // sum, mean, matmul, conv2d, avg_pool2d, global_avg_pool2d: sums of n products (or n values and
  // a division by the count): γ_(n+1)
  return {Measure::Terms, n + 1};
}

template <class T>
struct Computed {
  std::vector<T> value;
  std::vector<std::vector<T>> grads;
};

Window2D window_of(const TensorCase& c) {
  const auto& p = c.params;
  return {std::int64_t(p[0]), std::int64_t(p[1]), std::int64_t(p[2]), std::int64_t(p[3]),
          p[4] != 0 ? Padding::Same : Padding::Valid};
}

template <class T>
Tensor<T> apply_op(const TensorCase& c, const std::vector<Tensor<T>>& in) {
  const std::string op = c.op;
  const auto& p = c.params;
  const bool all = p[0] == kAll;
  const int axis = int(p[0]);
  if (op == "softmax") return softmax(in[0]);
  if (op == "log_softmax") return log_softmax(in[0]);
  if (op == "cross_entropy_with_logits") return cross_entropy_with_logits(in[0], in[1]);
  if (op == "logsumexp") return all ? logsumexp(in[0]) : logsumexp(in[0], axis);
  if (op == "sum") return all ? sum(in[0]) : sum(in[0], axis);
  if (op == "mean") return all ? mean(in[0]) : mean(in[0], axis);
  if (op == "matmul") return matmul(in[0], in[1]);
  if (op == "conv2d")
    return conv2d(in[0], in[1], in[2], std::int64_t(p[0]), std::int64_t(p[1]),
                  p[2] != 0 ? Padding::Same : Padding::Valid);
  if (op == "avg_pool2d") return avg_pool2d(in[0], window_of(c));
  if (op == "max_pool2d") return max_pool2d(in[0], window_of(c));
  if (op == "global_avg_pool2d") return global_avg_pool2d(in[0]);
  if (op == "batch_norm") return batch_norm(in[0], in[1], in[2], p[0]);
  FAIL("no such op in the references: ", op);
  return {};
}

/// The op's output and its inputs' gradients of sum(w ⊙ y), through the library in type T.
template <class T>
Computed<T> compute(const TensorCase& c) {
  Tape tape;
  TapeScope scope(tape);
  std::vector<Tensor<T>> in;
  for (int k = 0; k < c.inputs; ++k) {
    const Input& input = c.in[k];
    const std::vector<T> v(input.values, input.values + input.dims.size());
    in.push_back(Tensor<T>::from(v, input.dims.shape()).requires_grad());
  }
  const Tensor<T> y = apply_op<T>(c, in);
  const std::vector<T> w(c.weights.values, c.weights.values + c.weights.dims.size());
  sum(y * Tensor<T>::from(w, y.shape())).backward();  // y's gradient: w, exactly
  Computed<T> out{y.to_vector(), {}};
  for (const Tensor<T>& t : in) out.grads.push_back(t.grad());
  return out;
}

/// The largest error seen for one op, type and quantity, its bound there, and where.
struct Worst {
  double error = 0, bound = 0, of_bound = 0;  // of_bound: the largest error / bound
  Measure measure = Measure::Ulps;
  std::string where;
};
struct OpWorst {
  std::array<std::array<Worst, 4>, 2> by_type;  // [double, float][value, ∂in0, ∂in1, ∂in2]
  int quantities = 0;
};
std::map<std::string, OpWorst>& worst() {
  static std::map<std::string, OpWorst> w;
  return w;
}

std::int64_t elements_checked = 0;

template <class T>
void check_case(const TensorCase& c) {
  constexpr bool kFloat = std::is_same_v<T, float>;
  const Computed<T> got = compute<T>(c);
  OpWorst& op_worst = worst()[c.op];
  op_worst.quantities = std::max(op_worst.quantities, c.inputs + 1);
  static constexpr const char* kNames[] = {"value", "∂/∂in0", "∂/∂in1", "∂/∂in2"};
  for (int q = 0; q <= c.inputs; ++q) {
    const Quantity& quantity = q == 0 ? c.value : c.grad[q - 1];
    const std::vector<T>& v = q == 0 ? got.value : got.grads[static_cast<std::size_t>(q - 1)];
    REQUIRE(std::int64_t(v.size()) == quantity.dims.size());
    for (std::int64_t i = 0; i < std::int64_t(v.size()); ++i) {
      const Check check = check_of<T>(c, q, i);
      const Exact exact = quantity.exact[i];
      const T computed = v[static_cast<std::size_t>(i)];
      REQUIRE((check.measure == Measure::Ulps) == (quantity.scale == nullptr));
      const double error = check.measure == Measure::Ulps
                               ? ulp_error<T>(computed, exact)
                               : scaled_error<T>(computed, exact, quantity.scale[i]);
      const std::string where = fmt::format("{} [{}]", c.what, i);
      Worst& w = op_worst.by_type[kFloat][q];
      w.measure = check.measure;
      const double of_bound = check.bound > 0 ? error / check.bound : error == 0 ? 0 : inf;
      if (error > w.error || w.where.empty()) {
        w.error = error;
        w.bound = check.bound;
        w.where = where;
      }
      w.of_bound = std::max(w.of_bound, of_bound);
      if (!(error <= check.bound))  // the message only then: 18k elements also run under ASan
        FAIL_CHECK(fmt::format(
            "{} {} of {} in {} at {}: computed {:.17g}, exact {:.17g}, error {:.3g} ({}), "
            "bound {:.3g}",
            c.op, kNames[q], c.what, kFloat ? "float" : "double", i, double(computed), exact.hi,
            error, to_string(check.measure), check.bound));
      ++elements_checked;
    }
  }
}

std::string summary() {
  std::string out = fmt::format(
      "worst errors (measure: ulps, terms = /(u·Σ|terms|), mixed = /(u·κ)); in brackets the "
      "largest error/bound\n{:<26} {:<8} {:<48}   {}\n",
      "op", "measure", "double: value, ∂/∂ each input", "float: value, ∂/∂ each input");
  for (const auto& [op, w] : worst()) {
    std::string measures, cells[2];
    for (int q = 0; q < w.quantities; ++q)
      measures += std::string(q ? "/" : "") + letter(w.by_type[0][q].measure);
    for (int t = 0; t < 2; ++t)
      for (int q = 0; q < 4; ++q)
        cells[t] += q < w.quantities ? fmt::format(" {:>5.2f} [{:.2f}]", w.by_type[t][q].error,
                                                   w.by_type[t][q].of_bound)
                                     : std::string(12, ' ');
    out += fmt::format("{:<26} {:<8} {}   {}\n", op, measures, cells[0], cells[1]);
  }
  return out;
}

}  // namespace

TEST_CASE("ulp_error and scaled_error: in ulps, and in units of u·scale") {
  CHECK(ulp_error<double>(std::nextafter(1.0, 2.0), {1, 0}) == 1);
  CHECK(ulp_error<double>(1.0, {1, -0x1p-54}) == 0.5);  // just below 1: the finer ulps there
  CHECK(ulp_error<float>(1.0f, {1, 0x1p-24}) == 0.5);
  CHECK(ulp_error<float>(0.0f, {0x1p-149 * 2, 0}) == 2);  // subnormal: absolute
  CHECK(ulp_error<double>(std::numeric_limits<double>::quiet_NaN(), {1, 0}) == inf);
  CHECK(scaled_error<double>(1.0 + 0x1p-52, {1, 0}, 4.0) == 0.5);  // 2u over u·4
  CHECK(scaled_error<float>(1.0f, {1, 0x1p-30}, 1.0) == 0x1p-6);
  CHECK(scaled_error<double>(0.0, {0, 0}, 0.0) == 0);  // an exact 0 must be exact
  CHECK(scaled_error<double>(0x1p-1074, {0, 0}, 0.0) == 1);
}

TEST_CASE("the tensor ops' values and gradients are within their bounds of the exact ones") {
  worst().clear();
  elements_checked = 0;
  for (const TensorCase& c : kTensorCases) {
    check_case<double>(c);
    check_case<float>(c);
  }
  // every op of the references was checked, in both types
  CHECK(worst().size() == 12);
  std::int64_t elements = 0;  // every element of every quantity, in both types
  for (const TensorCase& c : kTensorCases) {
    elements += c.value.dims.size();
    for (int k = 0; k < c.inputs; ++k) elements += c.grad[k].dims.size();
  }
  CHECK(elements_checked == 2 * elements);
  MESSAGE(summary());
}
