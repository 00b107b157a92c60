#include "autodiff/gradient_check.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/gradient.hpp"

namespace autodiff {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Appends `e` to the check, keeping its largest errors. A NaN error must not pass silently: fmax
// would drop it.
template <class Check, class Entry>
void add_entry(Check& check, const Entry& e) {
  check.max_abs_error = std::isnan(e.abs_error) ? kNaN : std::max(check.max_abs_error, e.abs_error);
  check.max_rel_error = std::isnan(e.rel_error) ? kNaN : std::max(check.max_rel_error, e.rel_error);
  check.entries.push_back(e);
}

double relative(double a, double b) {
  const double scale = std::max(std::fabs(a), std::fabs(b));
  return scale == 0.0 ? 0.0 : std::fabs(a - b) / scale;
}

// f evaluated on constants only: nothing is recorded.
double evaluate(const ScalarFunction& f, std::span<const double> x) {
  NoGradGuard no_grad;
  std::vector<Var> inputs;
  inputs.reserve(x.size());
  for (double xi : x) inputs.push_back(Var::constant(xi));
  return f(inputs).value();
}

struct Estimate {
  double derivative;
  double error;
};

// Ridders' method: central differences at steps h, h/1.4, h/1.4², … extrapolated to h → 0
// (Numerical Recipes, dfridr). `f_at(offset)` is f at x + offset.
template <class F>
Estimate ridders(const F& f_at, double h) {
  constexpr int kTable = 16;
  constexpr double kShrink = 1.4, kShrink2 = kShrink * kShrink, kSafe = 2.0;
  // Stay where f is defined: halve the step while either side is not finite.
  for (int i = 0; i < 200 && !(std::isfinite(f_at(h)) && std::isfinite(f_at(-h))); ++i) h /= 2;
  double table[kTable][kTable];
  table[0][0] = (f_at(h) - f_at(-h)) / (2 * h);
  Estimate best{table[0][0], std::numeric_limits<double>::infinity()};
  for (int i = 1; i < kTable; ++i) {
    h /= kShrink;
    table[0][i] = (f_at(h) - f_at(-h)) / (2 * h);
    double factor = kShrink2;
    for (int j = 1; j <= i; ++j) {
      table[j][i] = (table[j - 1][i] * factor - table[j - 1][i - 1]) / (factor - 1);
      factor *= kShrink2;
      const double error = std::max(std::fabs(table[j][i] - table[j - 1][i]),
                                    std::fabs(table[j][i] - table[j - 1][i - 1]));
      if (error <= best.error) best = {table[j][i], error};
    }
    // Higher orders got worse by a clear margin: rounding has taken over.
    if (std::fabs(table[i][i] - table[i - 1][i - 1]) >= kSafe * best.error) break;
  }
  return best;
}

bool within(double abs_error, double rel_error, const GradientCheckOptions& o) {
  return abs_error <= o.atol || rel_error <= o.rtol;
}

}  // namespace

GradientCheck check_gradient(const ScalarFunction& f, std::span<const double> x,
                             std::span<const double> hand, GradientCheckOptions options) {
  if (!hand.empty() && hand.size() != x.size())
    throw std::invalid_argument(
        fmt::format("check_gradient: the hand gradient has {} entries, expected one per input ({})",
                    hand.size(), x.size()));
  if (!(options.step > 0.0))
    throw std::invalid_argument(
        fmt::format("check_gradient: step must be > 0, got {}", options.step));

  GradientCheck check;
  check.options = options;

  // The tape's gradient, on a tape of its own.
  std::vector<double> tape_gradient;
  {
    Tape tape;
    TapeScope scope(tape);
    std::vector<Var> inputs(x.begin(), x.end());
    const Var y = f(inputs);
    check.value = y.value();
    if (!y.is_recorded())
      throw std::invalid_argument(
          "check_gradient: f's result was not recorded on the tape (it depends on no input, "
          "or only through detach() or constants)");
    tape_gradient = gradient(y, inputs);
  }

  std::vector<double> point(x.begin(), x.end());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double h = options.step * std::max(1.0, std::fabs(x[i]));
    auto f_at = [&](double offset) {
      point[i] = x[i] + offset;
      const double value = evaluate(f, point);
      point[i] = x[i];
      return value;
    };
    // A first step that jumps over a pole (tan near π/2) gives a poor estimate with a large
    // error bound: start from three steps and keep the best-bounded estimate.
    Estimate fd = ridders(f_at, h);
    for (const double smaller : {1e-2 * h, 1e-4 * h}) {
      const Estimate other = ridders(f_at, smaller);
      if (other.error < fd.error) fd = other;
    }

    GradientEntry e;
    e.x = x[i];
    e.tape = tape_gradient[i];
    e.finite_difference = fd.derivative;
    e.finite_difference_error = fd.error;
    e.abs_error = std::fabs(e.tape - fd.derivative);
    e.rel_error = relative(e.tape, fd.derivative);
    if (hand.empty()) {
      e.hand = e.hand_abs_error = e.hand_rel_error = kNaN;
    } else {
      e.hand = hand[i];
      e.hand_abs_error = std::fabs(e.tape - e.hand);
      e.hand_rel_error = relative(e.tape, e.hand);
      check.max_hand_rel_error = std::max(check.max_hand_rel_error, e.hand_rel_error);
    }
    add_entry(check, e);
  }
  return check;
}

bool GradientCheck::passed() const {
  for (const GradientEntry& e : entries) {
    if (!within(e.abs_error, e.rel_error, options)) return false;
    if (!std::isnan(e.hand) && !within(e.hand_abs_error, e.hand_rel_error, options)) return false;
  }
  return true;
}

std::string GradientCheck::table(std::span<const std::string> names) const {
  const bool with_hand = !entries.empty() && !std::isnan(entries.front().hand);
  std::string out = fmt::format("{:>8} {:>19} {:>19} {:>19}", "input", "x", "tape", "finite diff");
  if (with_hand) out += fmt::format(" {:>19}", "hand");
  out += fmt::format(" {:>10} {:>10}", "|tape-fd|", "rel");
  if (with_hand) out += fmt::format(" {:>10} {:>10}", "|tape-hand|", "rel");
  out += '\n';
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const GradientEntry& e = entries[i];
    const std::string name = i < names.size() ? names[i] : fmt::format("x[{}]", i);
    out += fmt::format("{:>8} {:>19.12g} {:>19.12g} {:>19.12g}", name, e.x, e.tape,
                       e.finite_difference);
    if (with_hand) out += fmt::format(" {:>19.12g}", e.hand);
    out += fmt::format(" {:>10.2e} {:>10.2e}", e.abs_error, e.rel_error);
    if (with_hand) out += fmt::format(" {:>11.2e} {:>10.2e}", e.hand_abs_error, e.hand_rel_error);
    out += '\n';
  }
  return out;
}

SecondOrderCheck detail::check_second_order(const GradientAt& gradient_at,
                                            std::span<const double> x,
                                            std::span<const double> direction, double value,
                                            std::span<const double> tape,
                                            GradientCheckOptions options) {
  const std::size_t n = x.size();
  const bool along = !direction.empty();
  if (along && direction.size() != n)
    throw std::invalid_argument(fmt::format(
        "check_hvp: v has {} entries, expected one per input ({})", direction.size(), n));
  if (tape.size() != (along ? n : n * n))
    throw std::invalid_argument(fmt::format("check_second_order: {} tape entries, expected {}",
                                            tape.size(), along ? n : n * n));
  if (!(options.step > 0.0))
    throw std::invalid_argument(
        fmt::format("check_hessian: step must be > 0, got {}", options.step));

  SecondOrderCheck check;
  check.value = value;
  check.hessian_vector = along;
  check.options = options;
  double x_scale = 1.0, v_scale = 0.0;
  for (double xi : x) x_scale = std::max(x_scale, std::fabs(xi));
  for (double vi : direction) v_scale = std::max(v_scale, std::fabs(vi));

  std::vector<double> point(x.begin(), x.end());
  const std::size_t columns = along ? 1 : n;
  for (std::size_t j = 0; j < columns; ++j) {
    // Moving along e_j (a Hessian column) or along v (H·v), by offset·(that direction).
    auto move = [&](double offset) {
      for (std::size_t k = 0; k < n; ++k)
        point[k] = x[k] + offset * (along ? direction[k] : (k == j ? 1.0 : 0.0));
    };
    const double h = along ? options.step * x_scale / (v_scale > 0 ? v_scale : 1.0)
                           : options.step * std::max(1.0, std::fabs(x[j]));
    for (std::size_t i = 0; i < n; ++i) {
      auto g_at = [&](double offset) {
        move(offset);
        const double gi = gradient_at(point)[i];
        move(0.0);
        return gi;
      };
      Estimate fd = ridders(g_at, h);
      for (const double smaller : {1e-2 * h, 1e-4 * h}) {
        const Estimate other = ridders(g_at, smaller);
        if (other.error < fd.error) fd = other;
      }
      SecondOrderEntry e;
      e.row = i;
      e.col = j;
      e.tape = along ? tape[i] : tape[i * n + j];
      e.finite_difference = fd.derivative;
      e.finite_difference_error = fd.error;
      e.abs_error = std::fabs(e.tape - fd.derivative);
      e.rel_error = relative(e.tape, fd.derivative);
      add_entry(check, e);
    }
  }
  return check;
}

bool SecondOrderCheck::passed() const {
  for (const SecondOrderEntry& e : entries)
    if (!within(e.abs_error, e.rel_error, options)) return false;
  return true;
}

std::string SecondOrderCheck::table(std::span<const std::string> names) const {
  auto name = [&](std::size_t i) { return i < names.size() ? names[i] : fmt::format("x[{}]", i); };
  std::vector<std::string> labels;
  std::size_t width = 8;
  for (const SecondOrderEntry& e : entries) {
    labels.push_back(hessian_vector ? fmt::format("Hv[{}]", name(e.row))
                                    : fmt::format("H[{},{}]", name(e.row), name(e.col)));
    width = std::max(width, labels.back().size());
  }
  std::string out = fmt::format("{:>{}} {:>19} {:>19} {:>10} {:>10}\n", "entry", width, "tape",
                                "finite diff", "|tape-fd|", "rel");
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const SecondOrderEntry& e = entries[k];
    out += fmt::format("{:>{}} {:>19.12g} {:>19.12g} {:>10.2e} {:>10.2e}\n", labels[k], width,
                       e.tape, e.finite_difference, e.abs_error, e.rel_error);
  }
  return out;
}

}  // namespace autodiff
