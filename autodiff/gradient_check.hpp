#pragma once
// Gradient checking: the tape's gradient of f: Rⁿ → R next to central finite differences and,
// when given, a hand-derived gradient.
//
//   auto check = check_gradient([](std::span<const Var> x) { return x[0] * sin(x[1]); },
//                               {0.5, 2.0});
//   fmt::print("{}", check.table({"a", "b"}));
//   assert(check.passed());

#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "autodiff/var.hpp"

namespace autodiff {

struct GradientCheckOptions {
  /// First finite-difference step for input i: step · max(1, |x_i|). It is
  /// halved while f is not finite at x_i ± step (the edge of log's or sqrt's domain), then
  /// Ridders' method shrinks it further and extrapolates central differences to step → 0.
  /// The same is done from step/100 and step/10⁴, and the best-bounded estimate kept.
  double step = 0.1;
  /// An entry passes when its absolute error ≤ atol or its relative error ≤ rtol.
  double rtol = 1e-6;
  double atol = 1e-9;
};

/// One input's derivative three ways, and how far apart they are.
struct GradientEntry {
  double x = 0.0;
  double tape = 0.0;
  double finite_difference = 0.0;
  double finite_difference_error = 0.0;  // Ridders' estimate of the finite difference's error
  double hand = 0.0;                     // NaN when no hand gradient was given
  double abs_error = 0.0;                // |tape − finite difference|
  double rel_error = 0.0;                // abs_error / max(|tape|, |finite difference|)
  double hand_abs_error = 0.0;           // |tape − hand|, NaN without a hand gradient
  double hand_rel_error = 0.0;
};

struct GradientCheck {
  double value = 0.0;  // f(x)
  std::vector<GradientEntry> entries;
  double max_abs_error = 0.0;  // over entries, tape vs finite difference
  double max_rel_error = 0.0;
  double max_hand_rel_error = 0.0;  // tape vs hand; 0 without a hand gradient
  GradientCheckOptions options;

  /// Every entry within tolerance against finite differences and, if given, the hand gradient.
  bool passed() const;
  /// A fixed-width table, one row per input, 12 significant digits.
  std::string table(std::span<const std::string> names = {}) const;
  std::string table(std::initializer_list<std::string> names) const {
    return table(std::span<const std::string>(names.begin(), names.size()));
  }
};

using ScalarFunction = std::function<Var(std::span<const Var>)>;

/// Compares the tape's gradient of f at x with central finite differences (Ridders'
/// extrapolation, typically 10–13 correct digits) and with `hand` when it is not empty. f is
/// recorded on a tape of its own, so this can be called in the middle of another recording. Throws
/// std::invalid_argument if `hand` has the wrong length or f does not depend on its inputs through
/// the tape.
GradientCheck check_gradient(const ScalarFunction& f, std::span<const double> x,
                             std::span<const double> hand = {}, GradientCheckOptions options = {});

inline GradientCheck check_gradient(const ScalarFunction& f, std::initializer_list<double> x,
                                    std::initializer_list<double> hand = {},
                                    GradientCheckOptions options = {}) {
  return check_gradient(f, std::span<const double>(x.begin(), x.size()),
                        std::span<const double>(hand.begin(), hand.size()), options);
}

// ---- Second order: check_hessian and check_hvp (second_order.hpp) report here ----

/// One second derivative two ways: H_ij (or (H·v)_i, col unused) from the second-order tape,
/// and a central finite difference of the first-order tape's gradient.
struct SecondOrderEntry {
  std::size_t row = 0, col = 0;
  double tape = 0.0;
  double finite_difference = 0.0;
  double finite_difference_error = 0.0;  // Ridders' estimate
  double abs_error = 0.0;                // |tape − finite difference|
  double rel_error = 0.0;                // abs_error / max(|tape|, |finite difference|)
};

struct SecondOrderCheck {
  double value = 0.0;           // f(x)
  bool hessian_vector = false;  // entries are (H·v)_i, not H_ij
  std::vector<SecondOrderEntry> entries;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
  GradientCheckOptions options;

  /// Every entry within tolerance (|error| ≤ atol or relative error ≤ rtol).
  bool passed() const;
  /// check_gradient's table: one row per entry (H[a,b] or Hv[a]), 12 significant digits.
  std::string table(std::span<const std::string> names = {}) const;
  std::string table(std::initializer_list<std::string> names) const {
    return table(std::span<const std::string>(names.begin(), names.size()));
  }
};

namespace detail {
using GradientAt = std::function<std::vector<double>(std::span<const double>)>;
/// Compares `tape` (the n × n Hessian, row-major, when `direction` is empty; else H·direction)
/// with Ridders' central differences of gradient_at along each input (or along `direction`).
SecondOrderCheck check_second_order(const GradientAt& gradient_at, std::span<const double> x,
                                    std::span<const double> direction, double value,
                                    std::span<const double> tape, GradientCheckOptions options);
}  // namespace detail

}  // namespace autodiff
