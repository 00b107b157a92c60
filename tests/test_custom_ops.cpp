// The open op layer: users' elementwise ops on Vars and tensors, users' general tensor ops with
// their own backward, scalars and tensors mixed, and the tape's coarse-node hook.
#include <algorithm>
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"
#include "tensor_check.hpp"

using namespace autodiff;

namespace {

// A user's elementwise op, written like the entries of ops.hpp.
struct MySoftplus {
  static constexpr auto value = [](auto x) {
    return std::log1p(std::exp(-std::fabs(x))) + (x > 0 ? x : decltype(x)(0));
  };
  static constexpr auto derivative = []<class T>(T x, T) { return T(1) / (T(1) + std::exp(-x)); };
};

// A user's binary elementwise op: hypot(a, b) = √(a² + b²).
struct Hypot {
  static constexpr auto value = [](auto a, auto b) { return std::hypot(a, b); };
  static constexpr auto d_left = []<class T>(T a, T, T y) { return a / y; };
  static constexpr auto d_right = []<class T>(T, T b, T y) { return b / y; };
};

// A user's general op: clip in forward, identity in backward (the straight-through estimator).
struct StraightThroughClip {
  static constexpr const char* name = "straight_through_clip";
  double low, high;
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i], T(low), T(high));
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    for (std::int64_t i = 0; i < g.size(); ++i) gx[i] += g[i];
  }
};

// A user's op with two inputs that saves work for its backward: y_i = Σ_j a_ij · b_j (a row-wise
// dot product), keeping nothing but checking that scratch memory survives until backward.
struct RowDot {
  static constexpr const char* name = "row_dot";
  double* saved = nullptr;
  Shape output_shape(const Shape& a, const Shape& b) const {
    if (a.rank() != 2 || b.rank() != 1 || a[1] != b[0])
      throw std::invalid_argument("row_dot: expected (m, n) and (n,), got " + a.str() + " and " +
                                  b.str());
    return {a[0]};
  }
  template <class T>
  void forward(OpContext<T, 2>& ctx) {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto y = ctx.output();
    const std::int64_t n = b.size();
    if (ctx.recording()) saved = ctx.template scratch<double>(1);
    if (saved) *saved = 42.0;
    for (std::int64_t i = 0; i < y.size(); ++i) {
      T total = 0;
      for (std::int64_t j = 0; j < n; ++j) total += a[i * n + j] * b[j];
      y[i] = total;
    }
  }
  template <class T>
  void backward(OpContext<T, 2>& ctx) const {
    REQUIRE(*saved == 42.0);
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto g = ctx.output_grad();
    const auto ga = ctx.input_grad(0), gb = ctx.input_grad(1);
    const std::int64_t n = b.size();
    for (std::int64_t i = 0; i < g.size(); ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        if (ga) ga[i * n + j] += g[i] * b[j];
        if (gb) gb[j] += g[i] * a[i * n + j];
      }
  }
};

// An op with no backward: its output is a constant.
struct Floor {
  static constexpr const char* name = "floor";
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::floor(x[i]);
  }
};

}  // namespace

TEST_CASE("a user's elementwise struct works on a Var and on float and double tensors") {
  Tape tape;
  TapeScope scope(tape);
  const Var x = 0.0;
  const Var y = elementwise<MySoftplus>(x);
  CHECK(y.value() == std::log(2.0));
  y.backward();
  CHECK(x.grad() == 0.5);

  const auto f = Tensor<float>::from({-1.0f, 0.0f, 2.0f}, {3}).requires_grad();
  sum(elementwise<MySoftplus>(f)).backward();
  CHECK(f.grad()[1] == 0.5f);
  CHECK(f.grad()[2] == doctest::Approx(1 / (1 + std::exp(-2.0))).epsilon(1e-6));

  const auto check = check_gradient(
      [](std::span<const Var> v) { return Var(elementwise<MySoftplus>(v[0]) * v[1]); },
      {-3.0, 0.7});
  CHECK(check.passed());
  CHECK_TENSOR_GRADIENT([](auto t) { return elementwise<MySoftplus>(t[0]); }, {{2, 3}}, -30.0,
                        30.0);
  CHECK_TENSOR_GRADIENT([](auto t) { return elementwise<Hypot>(t[0], t[1]); }, {{2, 3}, {3}}, 0.5,
                        2.0);
  const auto hypot_check =
      check_gradient([](std::span<const Var> v) { return Var(elementwise<Hypot>(v[0], v[1])); },
                     {3.0, 4.0}, {0.6, 0.8});
  CHECK(hypot_check.passed());
}

TEST_CASE("a user's general tensor op: forward, its own backward, saved state") {
  Tape tape;
  TapeScope scope(tape);
  const auto x = Tensor<double>::from({-2.0, -0.5, 0.5, 3.0}, {4}).requires_grad();
  const auto y = apply(StraightThroughClip{-1, 1}, x);
  CHECK(y.to_vector() == std::vector<double>{-1, -0.5, 0.5, 1});
  sum(y * Tensor<double>::from({1, 2, 3, 4}, {4})).backward();
  CHECK(x.grad() == std::vector<double>{1, 2, 3, 4});  // straight through, even where clipped
  CHECK(is_output_of<StraightThroughClip>(y));
  CHECK_FALSE(is_output_of<RowDot>(y));

  CHECK_TENSOR_GRADIENT([](auto t) { return apply(RowDot{}, t[0], t[1]); }, {{3, 4}, {4}});
  CHECK_THROWS_WITH_AS(apply(RowDot{}, Tensor<double>::zeros({3, 4}), Tensor<double>::zeros({3})),
                       "row_dot: expected (m, n) and (n,), got (3, 4) and (3,)",
                       std::invalid_argument);

  // Without a backward, the output is a constant: nothing is recorded for it.
  const auto floored = apply(Floor{}, x);
  CHECK(floored.to_vector() == std::vector<double>{-2, -1, 0, 3});
  CHECK_FALSE(floored.is_recorded());
}

TEST_CASE("custom ops allocate nothing on a warm tape") {
  Tape tape;
  TapeScope scope(tape);
  std::vector<float> w(64, 0.5f), gw(64, 0.0f);
  auto step = [&] {
    tape.clear();
    const auto weights = Tensor<float>::parameter(w.data(), gw.data(), {8, 8});
    const auto clipped = apply(StraightThroughClip{-0.25, 0.25}, weights);
    const auto dotted = apply(RowDot{}, clipped, Tensor<float>::ones({8}));
    sum(elementwise<MySoftplus>(dotted) * 0.5f).backward();
  };
  step();
  step();
  testing::AllocationCounter counter;
  step();
  CHECK(counter.count() == 0);
  CHECK(gw[0] != 0.0f);
}

TEST_CASE("numbers and Vars mix with tensors; a number is never recorded") {
  Tape tape;
  TapeScope scope(tape);
  const auto t = Tensor<float>::from({-1.0f, 0.25f, 2.0f}, {3});
  const std::size_t slots = tape.node_count();
  CHECK((t + 1.0).to_vector() == std::vector<float>{0.0f, 1.25f, 3.0f});
  CHECK((1.0 - t).to_vector() == std::vector<float>{2.0f, 0.75f, -1.0f});
  CHECK((t * 2).to_vector() == std::vector<float>{-2.0f, 0.5f, 4.0f});
  CHECK((0.5 * t).to_vector() == std::vector<float>{-0.5f, 0.125f, 1.0f});
  CHECK((t / 4u).to_vector() == std::vector<float>{-0.25f, 0.0625f, 0.5f});
  CHECK(minimum(t, 0.5).to_vector() == std::vector<float>{-1.0f, 0.25f, 0.5f});
  CHECK(maximum(t, 0.0f).to_vector() == std::vector<float>{0.0f, 0.25f, 2.0f});
  CHECK(pow(t, 2).to_vector() == std::vector<float>{1.0f, 0.0625f, 4.0f});
  CHECK(tape.node_count() == slots);  // no scalar slot: the numbers are not leaves

  const Var v = 3.0;
  const std::size_t with_v = tape.node_count();
  const auto x = Tensor<float>::from({1.0f, 2.0f, 3.0f}, {3}).requires_grad();
  const Var loss = to_var(sum((x * v + v) / 2.0));  // v recorded once, used twice
  CHECK(tape.node_count() == with_v + 1);           // only to_var's slot was added
  CHECK(loss.value() == doctest::Approx((6.0 * 3.0 + 9.0) / 2.0));
  loss.backward();
  CHECK(v.grad() == doctest::Approx((6.0 + 3.0) / 2.0));  // Σ x / 2 + 3 / 2
  CHECK(x.grad() == std::vector<float>{1.5f, 1.5f, 1.5f});

  // Every Var-on-either-side form, against finite differences.
  const auto check = check_gradient(
      [](std::span<const Var> p) {
        const auto a = Tensor<double>::from_vars(p.subspan(0, 3), {3});
        const Var s = p[3];
        const auto y = (a + s) * (s - a) / s + pow(a, s) - a / (s * 2.0) + minimum(a, s) +
                       maximum(s, a) + s * a - pow(s, a * 0.1);
        return to_var(sum(y));
      },
      {0.4, 1.1, 2.3, 1.7});
  INFO(check.table());
  CHECK(check.passed());
}

TEST_CASE("requires_grad marks a tensor in place") {
  Tape tape;
  TapeScope scope(tape);
  auto x = Tensor<double>::from({1.0, 2.0}, {2});
  x.requires_grad();  // the result may be ignored: x itself is now a leaf
  CHECK(x.is_recorded());
  sum(square(x)).backward();
  CHECK(x.grad() == std::vector<double>{2.0, 4.0});

  const auto used = Tensor<double>::from({1.0}, {1});
  const auto doubled = used * 2.0;
  CHECK_THROWS_AS(used.requires_grad(), TapeError);  // already used: gradient could not reach it
  const auto y = square(x);
  CHECK_THROWS_AS(y.requires_grad(), TapeError);  // a result that already records a gradient
  CHECK_THROWS_AS(x.mutable_data(), TapeError);   // recorded values are read by the sweep
  (void)doubled;
}

TEST_CASE("the tape counts what tensors keep in its arena") {
  Tape tape;
  TapeScope scope(tape);
  const std::size_t before = tape.bytes_used();
  const auto big = Tensor<float>::zeros({1000, 300});
  const auto bigger = big * 2.0f;
  CHECK(tape.bytes_used() - before >= 2 * 1000 * 300 * sizeof(float));
  CHECK(tape.bytes_reserved() >= tape.bytes_used());
  (void)bigger;
}

TEST_CASE("a second backward on the same tape does not run rules that gradient did not reach") {
  // sqrt'(0) = ∞: the first sweep reaches it, the second must not send 0·∞ = NaN through it.
  Tape tape;
  TapeScope scope(tape);
  const auto x = Tensor<double>::from({0.0, 1.0}, {2}).requires_grad();
  const auto z = x * 1.0;
  sum(sqrt(z)).backward();
  CHECK(std::isinf(x.grad()[0]));
  tape.zero_grad();
  sum(z).backward();
  CHECK(x.grad() == std::vector<double>{1.0, 1.0});
}

namespace {
struct Boom {  // an op whose forward fails
  static constexpr const char* name = "boom";
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>&) const {
    throw std::runtime_error("boom");
  }
};
}  // namespace

TEST_CASE("a failed op leaves its inputs as they were") {
  Tape tape;
  TapeScope scope(tape);
  const auto x = Tensor<double>::zeros({3});
  CHECK_THROWS_AS(apply(Boom{}, x), std::runtime_error);
  CHECK(x.mutable_data().size() == 3);  // still data that may be written
  x.requires_grad();                    // and marked
  CHECK(x.is_recorded());
}
