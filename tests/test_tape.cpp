// The tape's semantics: recording, accumulation, zeroing, backward twice, gradient(), guards,
// nested scopes, threads, misuse errors, memory.
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"

using namespace autodiff;

TEST_CASE("one expression is one statement whose operations are its Var leaves") {
  Tape tape;
  TapeScope scope(tape);
  const Var w = 2.0, x = 3.0, b = 0.5;
  CHECK(tape.node_count() == 3);
  CHECK(tape.operation_count() == 0);
  const Var y = sigmoid(w * x + b);
  CHECK(tape.node_count() == 4);
  CHECK(tape.statement_count() == 1);
  CHECK(tape.operation_count() == 3);
  CHECK(tape.bytes_used() == 4 * 8 + 1 * 8 + 3 * 12);  // slots, statements, operations
  y.backward();
  const double s = 1 / (1 + std::exp(-6.5));
  CHECK(w.grad() == doctest::Approx(s * (1 - s) * 3).epsilon(1e-15));
  CHECK(x.grad() == doctest::Approx(s * (1 - s) * 2).epsilon(1e-15));
  CHECK(b.grad() == doctest::Approx(s * (1 - s)).epsilon(1e-15));
  CHECK(y.grad() == 1.0);
}

TEST_CASE("an expression of constants only records nothing") {
  Tape tape;
  TapeScope scope(tape);
  const Var c = Var::constant(2.0);
  const Var y = exp(c) * 3.0;
  CHECK_FALSE(y.is_recorded());
  CHECK(tape.node_count() == 0);
  CHECK(y.value() == doctest::Approx(3 * std::exp(2.0)));
}

TEST_CASE("leaves accumulate, intermediates are recomputed, zeroing is explicit") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 1.5;
  const Var t = x * x;       // intermediate
  const Var y = sin(t) * t;  // y = sin(x²)·x²
  const double dy_dt = std::cos(2.25) * 2.25 + std::sin(2.25);
  const double dy_dx = dy_dt * 3.0;

  y.backward();
  CHECK(x.grad() == doctest::Approx(dy_dx).epsilon(1e-14));
  CHECK(t.grad() == doctest::Approx(dy_dt).epsilon(1e-14));
  y.backward();  // calling twice: leaves get the gradient twice, intermediates once
  CHECK(x.grad() == doctest::Approx(2 * dy_dx).epsilon(1e-14));
  CHECK(t.grad() == doctest::Approx(dy_dt).epsilon(1e-14));
  tape.zero_grad();
  CHECK(x.grad() == 0.0);
  y.backward();
  CHECK(x.grad() == doctest::Approx(dy_dx).epsilon(1e-14));
  // backward() from an intermediate adds ∂t/∂x = 2x to the leaf.
  t.backward();
  CHECK(x.grad() == doctest::Approx(dy_dx + 3.0).epsilon(1e-14));
  // A leaf's own backward: ∂x/∂x = 1.
  tape.zero_grad();
  x.backward();
  CHECK(x.grad() == 1.0);
}

TEST_CASE("gradient() returns fresh derivatives, whatever was accumulated") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 2.0, y = 3.0;
  const Var f = x * y + sin(x);
  f.backward();
  f.backward();
  auto [dx, dy] = gradient(f, x, y);
  CHECK(dx == doctest::Approx(3 + std::cos(2.0)).epsilon(1e-15));
  CHECK(dy == 2.0);
  const std::vector<Var> both = {x, y};
  CHECK(gradient(f, both) == std::vector<double>{dx, dy});
}

TEST_CASE("a Var used many times, and copies of a Var, share one node") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 0.5;
  const Var alias = x;
  Var sum = 0.0;
  for (int i = 0; i < 10; ++i) sum += alias * x;  // Σ x² = 10 x²
  CHECK(gradient(sum, x)[0] == doctest::Approx(10.0).epsilon(1e-15));
}

TEST_CASE("NoGradGuard: nothing is recorded; detach cuts the gradient") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 3.0;
  {
    NoGradGuard no_grad;
    const Var c = 2.0;
    const Var y = x * c;
    CHECK_FALSE(c.is_recorded());
    CHECK_FALSE(y.is_recorded());
    CHECK(y.value() == 6.0);
  }
  CHECK(tape.is_recording());
  const Var y = x * detach(x);  // d/dx of x·(constant x) is x, not 2x
  CHECK(gradient(y, x)[0] == 3.0);
}

TEST_CASE("nested tapes: a gradient taken inside a computation that is itself recorded") {
  Tape outer;
  TapeScope outer_scope(outer);
  const Var x = 0.8;
  const Var a = x * x;
  const std::size_t outer_nodes = outer.node_count();

  // g'(x) for g(x) = x·sin(x), on an inner tape, at the current value of x.
  double inner_derivative = 0;
  {
    Tape inner;
    TapeScope inner_scope(inner);
    const Var xi = x.value();
    inner_derivative = gradient(Var(xi * sin(xi)), xi)[0];
    CHECK_THROWS_AS((void)Var(x * 2.0), TapeError);  // the outer Var is not on the inner tape
  }
  CHECK(outer.node_count() == outer_nodes);  // the inner work left the outer tape alone

  const Var f = a * inner_derivative;  // g'(x) enters the outer computation as a constant
  CHECK(inner_derivative == doctest::Approx(std::sin(0.8) + 0.8 * std::cos(0.8)).epsilon(1e-15));
  CHECK(gradient(f, x)[0] == doctest::Approx(2 * 0.8 * inner_derivative).epsilon(1e-15));
}

TEST_CASE("two threads differentiate independent functions at the same time") {
  auto work = [](double scale, double* result) {
    double total = 0;
    for (int step = 0; step < 2000; ++step) {
      Tape::active().clear();
      const Var x = scale, y = 0.5 + step * 1e-4;
      Var f = 0.0;
      for (int i = 0; i < 20; ++i) f += sin(x * y) * x + exp(-y) * (i + 1);
      total += gradient(f, x)[0];
    }
    *result = total;
  };
  auto expected = [](double x) {
    double total = 0;
    for (int step = 0; step < 2000; ++step) {
      const double y = 0.5 + step * 1e-4;
      total += 20 * (std::cos(x * y) * y * x + std::sin(x * y));
    }
    return total;
  };
  double r1 = 0, r2 = 0;
  std::thread t1(work, 1.3, &r1), t2(work, -0.4, &r2);
  t1.join();
  t2.join();
  CHECK(r1 == doctest::Approx(expected(1.3)).epsilon(1e-12));
  CHECK(r2 == doctest::Approx(expected(-0.4)).epsilon(1e-12));
}

TEST_CASE("misuse is a TapeError that says what happened") {
  Tape tape;
  TapeScope scope(tape);

  SUBCASE("a Var recorded before clear()") {
    const Var x = 2.0;
    const Var y = x * x;
    tape.clear();
    CHECK(x.value() == 2.0);  // the value travels with the handle
    CHECK_THROWS_WITH_AS(x.grad(), doctest::Contains("before the tape was cleared"), TapeError);
    CHECK_THROWS_AS(y.backward(), TapeError);
    CHECK_THROWS_WITH_AS((void)Var(x + 1.0), doctest::Contains("not on the active tape"),
                         TapeError);
  }
  SUBCASE("Vars of two tapes") {
    Tape other;
    Var foreign;
    {
      TapeScope other_scope(other);
      foreign = 5.0;
    }
    const Var mine = 1.0;
    CHECK_THROWS_AS((void)Var(mine + foreign), TapeError);
    CHECK_THROWS_AS(foreign.grad(), TapeError);
  }
  SUBCASE("a Var of another thread") {
    Var foreign;
    std::thread([&] { foreign = Var(7.0); }).join();
    CHECK_THROWS_AS((void)Var(foreign * 2.0), TapeError);
  }
  SUBCASE("the gradient of something that was not recorded") {
    const Var c = Var::constant(3.0);
    CHECK_THROWS_WITH_AS(c.grad(), doctest::Contains("not recorded"), TapeError);
    CHECK_THROWS_AS(c.backward(), TapeError);
    CHECK_THROWS_AS(gradient(c, c), TapeError);
  }
  SUBCASE("a failed record leaves the tape as it was") {
    const Var x = 1.0;
    Var stale;
    {
      Tape other;
      TapeScope other_scope(other);
      stale = 2.0;
    }
    const std::size_t nodes = tape.node_count(), ops = tape.operation_count();
    CHECK_THROWS_AS((void)Var(x * x + stale), TapeError);
    CHECK(tape.node_count() == nodes);
    CHECK(tape.operation_count() == ops);
    const Var y = x * 3.0;  // and keeps working
    CHECK(gradient(y, x)[0] == 3.0);
  }
}

TEST_CASE("re-recording after clear() allocates nothing, and the arena keeps its memory") {
  Tape tape;
  TapeScope scope(tape);
  auto record_and_differentiate = [&] {
    tape.clear();
    const Var x = 0.3, y = -1.2;
    Var f = 0.0;
    for (int i = 0; i < 5000; ++i) f += sigmoid(x * (i % 7) + y) * log1p(x * x) - y / (2.0 + i);
    f.backward();
    return x.grad() + y.grad();
  };
  const double first = record_and_differentiate();  // grows the arena
  const std::size_t reserved = tape.bytes_reserved();
  testing::AllocationCounter counter;
  const double second = record_and_differentiate();
  CHECK(counter.count() == 0);
  CHECK(second == first);
  CHECK(tape.bytes_reserved() == reserved);
  CHECK(tape.node_count() == 5003);
}

TEST_CASE("tapes are told apart for good: 64-bit epochs, slots checked before any write") {
  static_assert(sizeof(Epoch) == 8, "epochs must not repeat within a process");
  Tape tape;
  TapeScope scope(tape);
  const Epoch first = tape.epoch();
  tape.clear();
  CHECK(tape.epoch() != first);
  Tape other;
  CHECK(other.epoch() != tape.epoch());
  // A handle whose epoch matches but whose slot does not exist (what a repeated 32-bit epoch
  // allowed) is refused before anything is written.
  const Var real = 1.0;
  const Var forged = Var::recorded(2.0, 1'000'000, tape.epoch());
  CHECK_THROWS_AS((void)Var(forged * real), TapeError);
  CHECK_THROWS_AS(forged.backward(), TapeError);
  CHECK_THROWS_AS(forged.grad(), TapeError);
  CHECK(tape.statement_count() == 0);
}

TEST_CASE("one tape made active on two threads at once is a TapeError, not a crash") {
  Tape shared;
  std::atomic<int> stage{0};
  double first_gradient = 0;
  std::thread first([&] {
    TapeScope scope(shared);
    Var x = 1.0;
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    first_gradient = gradient(Var(x * 3.0), x)[0];
  });
  while (stage.load() != 1) std::this_thread::yield();
  CHECK_THROWS_WITH_AS(TapeScope{shared}, doctest::Contains("another thread has active"),
                       TapeError);
  stage = 2;
  first.join();
  CHECK(first_gradient == 3.0);  // the first thread was not disturbed

  // A thread's own tape belongs to it for good.
  Tape& own = Tape::active();
  bool refused = false;
  std::thread([&] {
    try {
      TapeScope borrow(own);
    } catch (const TapeError&) {
      refused = true;
    }
  }).join();
  CHECK(refused);

  // Handed over once the other thread's scope has ended: fine.
  TapeScope mine(shared);
  const Var z = 2.0;
  CHECK(gradient(Var(z * z), z)[0] == 4.0);
}
