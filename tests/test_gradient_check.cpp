// check_gradient itself: it must catch wrong gradients, not just agree with right ones.
#include <cmath>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"

using namespace autodiff;

TEST_CASE("check_gradient reports tape, finite differences and hand side by side") {
  auto f = [](std::span<const Var> x) { return Var(x[0] * sin(x[1])); };
  const GradientCheck right = check_gradient(f, {0.5, 2.0}, {std::sin(2.0), 0.5 * std::cos(2.0)});
  CHECK(right.passed());
  CHECK(right.value == doctest::Approx(0.5 * std::sin(2.0)));
  REQUIRE(right.entries.size() == 2);
  CHECK(right.entries[1].tape == doctest::Approx(0.5 * std::cos(2.0)).epsilon(1e-15));
  CHECK(right.entries[1].finite_difference == doctest::Approx(0.5 * std::cos(2.0)).epsilon(1e-10));
  CHECK(right.max_rel_error < 1e-9);
  CHECK(right.max_hand_rel_error < 1e-15);

  const std::string table = right.table(std::vector<std::string>{"a", "b"});
  CHECK(table.find("finite diff") != std::string::npos);
  CHECK(table.find("hand") != std::string::npos);
  CHECK(table.find("-0.208073418274") != std::string::npos);  // 0.5·cos 2, to 12 digits
}

TEST_CASE("a wrong hand gradient fails the check") {
  auto f = [](std::span<const Var> x) { return Var(x[0] * x[0] * x[1]); };
  const GradientCheck wrong =
      check_gradient(f, {1.5, 2.0}, {1.5 * 2.0, 1.5 * 1.5});  // ∂/∂x0 should be 2·x0·x1
  CHECK_FALSE(wrong.passed());
  CHECK(wrong.max_hand_rel_error == doctest::Approx(0.5));
}

TEST_CASE("a wrong tape gradient (a detached input) fails against finite differences") {
  auto f = [](std::span<const Var> x) { return Var(x[0] * detach(x[0])); };
  const GradientCheck check = check_gradient(f, {3.0});
  CHECK_FALSE(check.passed());
  CHECK(check.entries[0].tape == 3.0);
  CHECK(check.entries[0].finite_difference == doctest::Approx(6.0));
}

TEST_CASE("check_gradient rejects bad arguments with a clear message") {
  auto f = [](std::span<const Var> x) { return Var(x[0] * 2.0); };
  CHECK_THROWS_WITH_AS(
      check_gradient(f, {1.0}, {1.0, 2.0}),
      "check_gradient: the hand gradient has 2 entries, expected one per input (1)",
      std::invalid_argument);
  auto constant = [](std::span<const Var>) { return Var::constant(1.0); };
  CHECK_THROWS_AS(check_gradient(constant, {1.0}), std::invalid_argument);
}

TEST_CASE("check_gradient can run inside another recording") {
  Tape tape;
  TapeScope scope(tape);
  const Var outer = 2.0;
  const std::size_t nodes = tape.node_count();
  CHECK(check_gradient([](std::span<const Var> x) { return Var(exp(x[0])); }, {1.0}).passed());
  CHECK(tape.node_count() == nodes);
  CHECK(gradient(Var(outer * outer), outer)[0] == 4.0);
}
