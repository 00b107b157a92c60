// Tensors: values, broadcasting, shape errors, and every op's gradient against finite
// differences in double, through check_gradient (inputs are Vars made into tensors with
// from_vars, the output is reduced to a Var with to_var, so both crossings are exercised too).
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"
#include "tensor_check.hpp"
#include "thread_count.hpp"

using namespace autodiff;
using T = Tensor<double>;
using testing::check_tensor_op;

TEST_CASE("creation") {
  Tape tape;
  TapeScope scope(tape);
  CHECK(T::zeros({2, 3}).to_vector() == std::vector<double>(6, 0.0));
  CHECK(T::ones({2}).to_vector() == std::vector<double>{1, 1});
  CHECK(T::full({}, 2.5).item() == 2.5);
  CHECK(T::full({}, 2.5).shape().str() == "()");
  CHECK(T::arange(0, 5, 2).to_vector() == std::vector<double>{0, 2, 4});
  const T m = T::from({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(m.at(1, 2) == 6);
  CHECK(m.shape().str() == "(2, 3)");
  // Seeded random numbers are reproducible, and differ with the seed.
  CHECK(T::random_normal({100}, 0, 1, 3).to_vector() ==
        T::random_normal({100}, 0, 1, 3).to_vector());
  CHECK(T::random_normal({100}, 0, 1, 3).to_vector() !=
        T::random_normal({100}, 0, 1, 4).to_vector());
  const auto u = T::random_uniform({1000}, -1, 1, 5).to_vector();
  CHECK(*std::min_element(u.begin(), u.end()) >= -1);
  CHECK(*std::max_element(u.begin(), u.end()) < 1);
  const auto normal = T::random_normal({20000}, 2, 3, 9);
  CHECK(mean(normal).item() == doctest::Approx(2).epsilon(0.05));
  CHECK(std::sqrt(mean(square(normal - 2.0)).item()) == doctest::Approx(3).epsilon(0.03));
  CHECK_THROWS_WITH_AS(T::from({1, 2, 3}, {2, 2}),
                       "Tensor::from: 3 values given for shape (2, 2), which holds 4",
                       std::invalid_argument);
}

TEST_CASE("shapes whose size would overflow are refused before anything is allocated") {
  Tape tape;
  TapeScope scope(tape);
  const std::int64_t two_32 = std::int64_t{1} << 32, two_62 = std::int64_t{1} << 62;
  CHECK_THROWS_WITH_AS(T::zeros({two_62}), doctest::Contains("has more than"),
                       std::invalid_argument);
  CHECK_THROWS_AS(T::zeros({two_32, two_32}), std::invalid_argument);  // wrapped to 0 before
  CHECK_THROWS_AS(T::zeros({3, two_62}), std::invalid_argument);       // negative before
  CHECK_THROWS_AS(Tensor<float>::ones({two_32, two_32, 4}), std::invalid_argument);
  CHECK(T::zeros({0, two_32}).size() == 0);  // empty is fine
  const T small = T::ones({2, 3});
  CHECK_THROWS_AS(reshape(small, {two_62, -1, 4}), std::invalid_argument);
  CHECK_THROWS_AS(T::arange(0, 1e300, 1), std::invalid_argument);
}

TEST_CASE("broadcasting follows NumPy's rules") {
  Tape tape;
  TapeScope scope(tape);
  const T a = T::from({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK((a + T::from({10, 20, 30}, {3})).to_vector() ==
        std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK((a * T::from({2, 3}, {2, 1})).to_vector() == std::vector<double>{2, 4, 6, 12, 15, 18});
  const T outer = T::from({1, 2}, {2, 1}) * T::from({1, 10, 100}, {1, 3});
  CHECK(outer.shape() == Shape{2, 3});
  CHECK(outer.to_vector() == std::vector<double>{1, 10, 100, 2, 20, 200});
  CHECK((2.0 - a).to_vector() == std::vector<double>{1, 0, -1, -2, -3, -4});
  const T big = T::ones({4, 1, 3}) + T::from({1, 2}, {2, 1});
  CHECK(big.shape() == Shape{4, 2, 3});
  CHECK(sum(big).item() == 4 * (3 * 2 + 3 * 3));
}

TEST_CASE("shape errors name the op and both shapes") {
  Tape tape;
  TapeScope scope(tape);
  const T a = T::zeros({2, 3}), b = T::zeros({4});
  CHECK_THROWS_WITH_AS(
      a + b, "add: shapes (2, 3) and (4,) cannot be broadcast together (dimension 1: 3 vs 4)",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      matmul(a, a), "matmul: shapes (2, 3) and (2, 3) do not fit: expected (…, m, k) and (…, k, n)",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(reshape(a, {4, 2}),
                       "reshape: cannot reshape shape (2, 3) (6 elements) into (4, 2)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sum(a, 2), "sum: axis 2 is out of range for a tensor of shape (2, 3)",
                       std::invalid_argument);
  CHECK_THROWS_AS(slice_rows(a, 1, 3), std::invalid_argument);
  const std::int64_t bad_row[] = {2};
  CHECK_THROWS_WITH_AS(gather_rows(a, bad_row),
                       "gather_rows: row 2 is out of range for shape (2, 3)",
                       std::invalid_argument);
  CHECK_THROWS_AS(cross_entropy_with_logits(a, T::zeros({3, 2})), std::invalid_argument);
  CHECK_THROWS_AS(to_var(a), std::invalid_argument);
  const std::int32_t labels[] = {0, 3};
  CHECK_THROWS_WITH_AS(one_hot<double>(labels, 3),
                       "one_hot: label 3 at position 1 is outside [0, 3)", std::invalid_argument);
  CHECK_THROWS_AS(Shape({1, 2, 3, 4, 5}), std::invalid_argument);
  CHECK_THROWS_WITH_AS(Shape({2, -1}), "Shape: dimension 1 is -1, expected ≥ 0",
                       std::invalid_argument);
  const T empty;
  CHECK_THROWS_WITH_AS(empty.size(), "autodiff: shape() of an empty Tensor handle", TapeError);
}

TEST_CASE("reductions, argmax, matmul, layout: values") {
  Tape tape;
  TapeScope scope(tape);
  const T a = T::from({1, 5, 3, 4, 2, 6}, {2, 3});
  CHECK(sum(a).item() == 21);
  CHECK(sum(a, 0).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(sum(a, 1, true).shape() == Shape{2, 1});
  CHECK(sum(a, -1).to_vector() == std::vector<double>{9, 12});
  CHECK(mean(a, 1).to_vector() == std::vector<double>{3, 4});
  CHECK(max(a).item() == 6);
  CHECK(max(a, 0).to_vector() == std::vector<double>{4, 5, 6});
  CHECK(argmax(a, 1).to_vector() == std::vector<double>{1, 2});
  CHECK(argmax(a).item() == 5);
  CHECK(argmax(T::from({3, 3, 1}, {3})).item() == 0);  // ties: the first
  CHECK(sum(a, 0, true).shape() == Shape{1, 3});
  CHECK(sum(a).shape() == Shape{});
  const T b = T::from({1, 0, 0, 1, 1, 1}, {3, 2});
  CHECK(matmul(a, b).to_vector() == std::vector<double>{4, 8, 10, 8});
  CHECK(transpose(a).to_vector() == std::vector<double>{1, 4, 5, 2, 3, 6});
  CHECK(reshape(a, {3, -1}).shape() == Shape{3, 2});
  CHECK(slice_rows(a, 1, 2).to_vector() == std::vector<double>{4, 2, 6});
  const std::int64_t rows[] = {1, 1, 0};
  CHECK(gather_rows(a, rows).to_vector() == std::vector<double>{4, 2, 6, 4, 2, 6, 1, 5, 3});
  const std::int32_t labels[] = {2, 0};
  CHECK(one_hot<double>(labels, 3).to_vector() == std::vector<double>{0, 0, 1, 1, 0, 0});
}

TEST_CASE("softmax and log_softmax: a row with a NaN or an infinity is NaN throughout") {
  Tape tape;
  TapeScope scope(tape);
  const double inf = std::numeric_limits<double>::infinity();
  const T z = T::from({inf, 1, 2, -inf, -inf, -inf, 0, std::nan(""), 1}, {3, 3});
  for (const T& out : {softmax(z), log_softmax(z)})
    for (double v : out.to_vector()) CHECK(std::isnan(v));
}

TEST_CASE("softmax, log_softmax and cross-entropy are stable for large logits") {
  Tape tape;
  TapeScope scope(tape);
  const T z = T::from({1000, 1001, 1002, -1000, 0, 1000}, {2, 3});
  const auto p = softmax(z).to_vector();
  for (double v : p) CHECK(std::isfinite(v));
  CHECK(p[0] + p[1] + p[2] == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(p[2] == doctest::Approx(1 / (1 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-14));
  const auto lp = log_softmax(z).to_vector();
  CHECK(lp[3] == doctest::Approx(-2000).epsilon(1e-14));
  const T y = T::from({0, 0, 1, 1, 0, 0}, {2, 3});
  const double expected = -(lp[2] + lp[3]) / 2;
  CHECK(cross_entropy_with_logits(z, y).item() == doctest::Approx(expected).epsilon(1e-14));
  CHECK(std::isfinite(cross_entropy_with_logits(z, y).item()));
}

TEST_CASE("elementwise ops: gradients, with broadcasting") {
  CHECK_TENSOR_GRADIENT([](auto x) { return x[0] + x[1]; }, {{2, 3}, {3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return x[0] - x[1]; }, {{2, 1}, {1, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return x[0] * x[1]; }, {{4, 1, 3}, {2, 1}});
  CHECK_TENSOR_GRADIENT([](auto x) { return x[0] / x[1]; }, {{2, 3}, {2, 3}}, 0.5, 2.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return x[0] / x[1]; }, {{3}, {}}, 0.5, 2.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return minimum(x[0], x[1]); }, {{2, 3}, {2, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return maximum(x[0], x[1]); }, {{2, 3}, {3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return pow(x[0], 3.0); }, {{5}});
  CHECK_TENSOR_GRADIENT([](auto x) { return pow(x[0], 0.5); }, {{5}}, 0.1, 3.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return -x[0] + 2.0 * x[0] - 1.0; }, {{2, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return square(x[0]); }, {{6}});
  CHECK_TENSOR_GRADIENT([](auto x) { return exp(x[0]); }, {{2, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return log(x[0]); }, {{2, 3}}, 1e-3, 5.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return sqrt(x[0]); }, {{2, 3}}, 1e-3, 5.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return tanh(x[0]); }, {{2, 3}}, -4.0, 4.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return sigmoid(x[0]); }, {{2, 3}}, -30.0, 30.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return relu(x[0]); }, {{2, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return abs(x[0]); }, {{2, 3}});
}

TEST_CASE("more elementwise ops: sin, cos, log1p, softplus, leaky_relu, clamp, where") {
  CHECK_TENSOR_GRADIENT([](auto x) { return sin(x[0]); }, {{2, 3}}, -4.0, 4.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return cos(x[0]); }, {{2, 3}}, -4.0, 4.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return log1p(x[0]); }, {{2, 3}}, -0.9, 5.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return softplus(x[0]); }, {{2, 3}}, -30.0, 30.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return leaky_relu(x[0], 0.2); }, {{2, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return clamp(x[0], -0.5, 1.0); }, {{3, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return where(x[0] > 0.0, x[1], x[2] * 2.0); },
                        {{2, 3}, {2, 3}, {3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return where(x[0] <= x[1], square(x[0]), 1.5); }, {{4}, {4}});

  Tape tape;
  TapeScope scope(tape);
  const T x = T::from({-2, -0.5, 0, 0.5, 3}, {5});
  CHECK(clamp(x, -1.0, 1.0).to_vector() == std::vector<double>{-1, -0.5, 0, 0.5, 1});
  CHECK(leaky_relu(x, 0.1).to_vector() == std::vector<double>{-0.2, -0.05, 0, 0.5, 3});
  CHECK((x > 0.0).to_vector() == std::vector<double>{0, 0, 0, 1, 1});
  CHECK((x >= 0.0).to_vector() == std::vector<double>{0, 0, 1, 1, 1});
  CHECK(where(x < 0.0, -x, x).to_vector() == std::vector<double>{2, 0.5, 0, 0.5, 3});
  CHECK(softplus(T::from({0.0}, {1})).item() == std::log(2.0));
  CHECK(softplus(T::from({800.0}, {1})).item() == 800.0);  // no overflow
  CHECK_THROWS_WITH_AS(clamp(x, 1.0, -1.0),
                       "clamp: low 1.000000 is above high -1.000000, expected low ≤ high",
                       std::invalid_argument);
  // softplus's gradient at the kink of relu(x) + log(1 + exp(−|x|)) is 0.5, as it should be.
  const T at_zero = T::from({0.0}, {1}).requires_grad();
  sum(softplus(at_zero)).backward();
  CHECK(at_zero.grad()[0] == 0.5);
}

TEST_CASE("min, argmin, logsumexp: values and gradients") {
  CHECK_TENSOR_GRADIENT([](auto x) { return min(x[0]); }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return min(x[0], 1, true) * x[0]; }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return logsumexp(x[0]); }, {{4, 3}}, -5.0, 5.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return logsumexp(x[0], 0); }, {{4, 3}}, -5.0, 5.0);
  CHECK_TENSOR_GRADIENT([](auto x) { return logsumexp(x[0], -1, true) - x[0]; }, {{2, 2, 3}});

  Tape tape;
  TapeScope scope(tape);
  const T a = T::from({3, 1, 2, 0, 5, 0}, {2, 3});
  CHECK(min(a).item() == 0);
  CHECK(min(a, 1).to_vector() == std::vector<double>{1, 0});
  CHECK(argmin(a, 1).to_vector() == std::vector<double>{1, 0});  // ties: the first
  CHECK(argmin(a).item() == 3);
  const T big = T::from({1000, 1000, -1e308}, {3});
  CHECK(logsumexp(big).item() == 1000 + std::log(2.0));  // no overflow, no underflow to −∞
  CHECK(logsumexp(T::from({0, 0, 0, 0}, {2, 2}), 1).to_vector() ==
        std::vector<double>{std::log(2.0), std::log(2.0)});
  // NaN propagates through max, min and logsumexp instead of hiding.
  const T with_nan = T::from({1, std::nan(""), 2}, {3});
  CHECK(std::isnan(max(with_nan).item()));
  CHECK(std::isnan(min(with_nan).item()));
  CHECK(argmax(with_nan).item() == 1);
  CHECK(std::isnan(logsumexp(with_nan).item()));
  CHECK_THROWS_WITH_AS(min(T::zeros({0})), "min: cannot reduce an empty axis (shape (0,))",
                       std::invalid_argument);
}

TEST_CASE("reductions: gradients, all or along an axis, keepdims") {
  CHECK_TENSOR_GRADIENT([](auto x) { return sum(x[0]); }, {{2, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return sum(x[0], 0); }, {{2, 3, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return sum(x[0], 1, true) * x[0]; }, {{2, 3, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return mean(x[0]); }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return mean(x[0], -1, true); }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return max(x[0]); }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return max(x[0], 0); }, {{4, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return max(x[0], 1, true) - x[0]; }, {{4, 3}});
}

TEST_CASE("matmul, layout and gathering: gradients") {
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{3, 4}, {4, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[0]); }, {{3, 3}});
  CHECK_TENSOR_GRADIENT([](auto x) { return transpose(x[0]); }, {{3, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return reshape(x[0], {2, -1}) * 2.0; }, {{3, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return slice_rows(x[0], 1, 3); }, {{4, 2}});
  CHECK_TENSOR_GRADIENT(
      [](auto x) {
        const std::int64_t rows[] = {2, 0, 2};
        return gather_rows(x[0], rows);
      },
      {{3, 2}});
}

// C[c] = A[a]·B[b] by the definition, for matrices at a, b, c of (m, k), (k, n), (m, n).
std::vector<double> naive_product(const std::vector<double>& a, const std::vector<double>& b,
                                  std::int64_t at_a, std::int64_t at_b, std::int64_t m,
                                  std::int64_t k, std::int64_t n) {
  std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t p = 0; p < k; ++p)
        c[std::size_t(i * n + j)] +=
            a[std::size_t(at_a * m * k + i * k + p)] * b[std::size_t(at_b * k * n + p * n + j)];
  return c;
}

TEST_CASE("matmul: batches of matrices broadcast as NumPy's matmul, against the definition") {
  Tape tape;
  TapeScope scope(tape);
  struct Case {
    Shape a, b, c;
    // For each of C's matrices, in order, the matrices of A and B it multiplies.
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  };
  const Case cases[] = {
      {{2, 3, 4, 5}, {2, 3, 5, 2}, {2, 3, 4, 2}, {{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}},
      {{3, 4, 5}, {5, 2}, {3, 4, 2}, {{0, 0}, {1, 0}, {2, 0}}},  // one weight: folded
      {{2, 4, 5}, {1, 5, 2}, {2, 4, 2}, {{0, 0}, {1, 0}}},       // the same, rank 3
      {{4, 5}, {3, 5, 2}, {3, 4, 2}, {{0, 0}, {0, 1}, {0, 2}}},  // one A
      {{2, 1, 4, 5}, {3, 5, 2}, {2, 3, 4, 2}, {{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}}},
      {{1, 2, 4, 5}, {3, 1, 5, 2}, {3, 2, 4, 2}, {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}}},
      {{2, 0, 4, 5}, {1, 5, 2}, {2, 0, 4, 2}, {}},          // no matrix at all
      {{2, 4, 0}, {2, 0, 3}, {2, 4, 3}, {{0, 0}, {1, 1}}},  // k = 0: zeros
  };
  for (const Case& c : cases) {
    INFO(c.a.str(), " · ", c.b.str());
    const T a = T::random_uniform(c.a, -1, 1, 1), b = T::random_uniform(c.b, -1, 1, 2);
    const T product = matmul(a, b);
    REQUIRE(product.shape() == c.c);
    const std::int64_t m = c.a[c.a.rank() - 2], k = c.a[c.a.rank() - 1], n = c.b[c.b.rank() - 1];
    std::vector<double> expected;
    for (const auto& [at_a, at_b] : c.pairs) {
      const auto one = naive_product(a.to_vector(), b.to_vector(), at_a, at_b, m, k, n);
      expected.insert(expected.end(), one.begin(), one.end());
    }
    const std::vector<double> got = product.to_vector();
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-14).scale(1.0));
  }
  CHECK_THROWS_WITH_AS(
      matmul(T::zeros({2, 3, 4}), T::zeros({3, 4, 2})),
      "matmul: shapes (2, 3, 4) and (3, 4, 2) do not fit: their batch dimensions do not "
      "broadcast (2 vs 3)",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      matmul(T::zeros({3}), T::zeros({3, 2})),
      "matmul: shapes (3,) and (3, 2) do not fit: expected (…, m, k) and (…, k, n)",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      matmul(T::zeros({2, 2, 3}), T::zeros({2, 4, 2})),
      "matmul: shapes (2, 2, 3) and (2, 4, 2) do not fit: expected (…, m, k) and (…, k, n)",
      std::invalid_argument);
}

TEST_CASE("matmul: the plan folds a batch into one product only where BLAS's int sizes allow") {
  using detail::MatMulPlan;
  const MatMulPlan folded(Shape{1024, 8, 16}, Shape{16, 32});
  CHECK(folded.m == 8192);
  CHECK(folded.batches(MatMulPlan::kC) == 1);
  CHECK(folded.output == Shape{1024, 8, 32});
  // Each matrix is 1024 × 4096, but the folded one would have 2³² elements: products apart.
  const MatMulPlan apart(Shape{1024, 1024, 1}, Shape{1, 4096});
  CHECK(apart.m == 1024);
  CHECK(apart.batches(MatMulPlan::kC) == 1024);
  CHECK(apart.output == Shape{1024, 1024, 4096});
  CHECK_THROWS_WITH_AS(MatMulPlan(Shape{65536, 65536}, Shape{65536, 1}),
                       "matmul: shapes (65536, 65536) and (65536, 1) exceed the 2147483647 "
                       "elements per matrix that BLAS addresses with int",
                       std::invalid_argument);
}

// Empty matrices under 2⁵⁹ broadcast batches: nothing to compute, and nothing is visited (it
// once made 2⁵⁹ empty BLAS calls). A regression shows as minutes: the timeout fails it.
TEST_CASE("matmul: empty matrices in huge broadcast batches cost nothing" * doctest::timeout(30)) {
  Tape tape;
  TapeScope scope(tape);
  const T a = T::zeros({std::int64_t{1} << 30, 1, 0, 1}).requires_grad();
  const T b = T::zeros({1, std::int64_t{1} << 29, 1, 0}).requires_grad();
  const T c = matmul(a, b);
  CHECK(c.shape() == Shape{std::int64_t{1} << 30, std::int64_t{1} << 29, 0, 0});
  sum(c).backward();
  CHECK(a.grad().empty());
  const T k_empty = matmul(T::ones({3, 2, 0}), T::ones({1, 0, 4}));
  CHECK(k_empty.to_vector() == std::vector<double>(24, 0.0));  // k = 0: C is zeroed
}

TEST_CASE("matmul: batches' gradients, summed where an operand broadcasts") {
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{2, 3, 4}, {2, 4, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{2, 3, 4}, {4, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{3, 4}, {2, 4, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{2, 1, 2, 3}, {3, 3, 2}});
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(x[0], x[1]); }, {{1, 2, 2, 3}, {2, 1, 3, 2}});
  // Attention's shape: softmax(Q·Kᵀ)·V over a batch of heads, Kᵀ by a batched product.
  CHECK_TENSOR_GRADIENT([](auto x) { return matmul(softmax(matmul(x[0], x[1])), x[2]); },
                        {{2, 3, 4}, {2, 4, 3}, {2, 3, 2}});
}

TEST_CASE("matmul: batches on 1 and 2 threads give the same values and gradients, bit for bit") {
  // Here the matrices split over the threads, each product whole on one-thread BLAS, so the split
  // changes no sum. (One group alone, a broadcast A's gradient say, may split a product's depth
  // on 2 threads instead, as a 2-D matmul does: equal but for the order of the sums.)
  auto run = [](int thread_count) {
    const ThreadCount threads_set(thread_count);
    Tape tape;
    TapeScope scope(tape);
    const T a = T::random_uniform({3, 4, 70, 80}, -1, 1, 1).requires_grad();
    const T b = T::random_uniform({4, 80, 60}, -1, 1, 2).requires_grad();
    const T c = matmul(a, b);
    sum(c * c).backward();
    std::vector<double> all = c.to_vector();
    for (const T* t : {&a, &b})
      for (double g : t->grad()) all.push_back(g);
    return all;
  };
  CHECK(run(1) == run(2));
}

TEST_CASE("softmax, log_softmax, cross-entropy: gradients") {
  CHECK_TENSOR_GRADIENT([](auto x) { return softmax(x[0]); }, {{3, 4}});
  CHECK_TENSOR_GRADIENT([](auto x) { return log_softmax(x[0]); }, {{3, 4}});
  CHECK_TENSOR_GRADIENT([](auto x) { return cross_entropy_with_logits(x[0], softmax(x[1])); },
                        {{3, 4}, {3, 4}});
  CHECK_TENSOR_GRADIENT(
      [](auto x) {
        const std::int32_t labels[] = {1, 0, 3};
        return cross_entropy_with_logits(x[0], one_hot<double>(labels, 4));
      },
      {{3, 4}}, -20.0, 20.0);
}

TEST_CASE("a tensor reduced to a scalar mixes with Vars: one backward reaches both") {
  Tape tape;
  TapeScope scope(tape);
  const Var s = 1.5;
  const T w = T::from({0.5, -1.0, 2.0}, {3}).requires_grad();
  // loss = s · Σ w² + sin(s)·Σ (s·w)
  const Var sum_sq = to_var(sum(square(w)));
  const Var scaled = to_var(sum(w * s));
  const Var loss = s * sum_sq + sin(s) * scaled;
  loss.backward();
  const double sum_w = 1.5, sum_w2 = 0.25 + 1 + 4;
  CHECK(
      s.grad() ==
      doctest::Approx(sum_w2 + std::cos(1.5) * 1.5 * sum_w + std::sin(1.5) * sum_w).epsilon(1e-14));
  const auto gw = w.grad();
  for (int i = 0; i < 3; ++i) {
    const double wi = T::from({0.5, -1.0, 2.0}, {3}).at(i);
    CHECK(gw[static_cast<std::size_t>(i)] ==
          doctest::Approx(1.5 * 2 * wi + std::sin(1.5) * 1.5).epsilon(1e-14));
  }
}

TEST_CASE("tensor backward: leaves accumulate, intermediates are recomputed") {
  Tape tape;
  TapeScope scope(tape);
  const T x = T::from({1, 2}, {2}).requires_grad();
  const T y = sum(square(x) * 3.0);
  y.backward();
  CHECK(x.grad() == std::vector<double>{6, 12});
  y.backward();
  CHECK(x.grad() == std::vector<double>{12, 24});
  tape.zero_grad();
  CHECK(x.grad() == std::vector<double>{0, 0});
  CHECK_THROWS_AS(T::zeros({2}).backward(), std::invalid_argument);  // not one element
  CHECK_THROWS_AS(sum(T::zeros({2})).backward(), TapeError);         // not recorded
}

TEST_CASE("Tensors of a cleared tape, and under NoGradGuard") {
  Tape tape;
  TapeScope scope(tape);
  const T x = T::ones({2}).requires_grad();
  {
    NoGradGuard no_grad;
    CHECK_FALSE(sum(x * 2.0).is_recorded());
  }
  CHECK(sum(x * 2.0).is_recorded());
  CHECK_FALSE(x.detach().is_recorded());
  tape.clear();
  CHECK_THROWS_WITH_AS(x.data(), doctest::Contains("before the tape was cleared"), TapeError);
  CHECK_THROWS_AS(T().shape(), TapeError);
}

TEST_CASE("a training step on tensors allocates nothing once warm") {
  Tape tape;
  TapeScope scope(tape);
  std::vector<float> w1(64 * 32), g1(w1.size()), w2(32 * 10), g2(w2.size());
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = std::sin(float(i)) * 0.1f;
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = std::cos(float(i)) * 0.1f;
  std::vector<float> batch(16 * 64);
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = float(i % 7) / 7.0f;
  std::vector<std::int32_t> labels(16);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 10);
  auto step = [&] {
    tape.clear();
    using F = Tensor<float>;
    const F x = F::from(batch, {16, 64});
    const F W1 = F::parameter(w1.data(), g1.data(), {64, 32});
    const F W2 = F::parameter(w2.data(), g2.data(), {32, 10});
    const F probabilities = softmax(matmul(relu(matmul(x, W1)), W2));
    F logits;
    REQUIRE(is_softmax_output(probabilities, &logits));
    const F loss = cross_entropy_with_logits(logits, one_hot<float>(labels, 10));
    loss.backward();
    for (std::size_t i = 0; i < w1.size(); ++i) w1[i] -= 0.01f * g1[i], g1[i] = 0;
    for (std::size_t i = 0; i < w2.size(); ++i) w2[i] -= 0.01f * g2[i], g2[i] = 0;
    return loss.item();
  };
  const float first = step();
  step();
  step();
  testing::AllocationCounter counter;
  const float later = step();
  CHECK(counter.count() == 0);
  CHECK(later < first);
}

TEST_CASE("two threads train tensor models at the same time, each on its own tape") {
  // A tiny regression fitted by gradient descent: the same work alone and on two threads must
  // give the same numbers to the bit.
  auto train = [](std::uint64_t seed) {
    using F = Tensor<float>;
    std::vector<float> w(8 * 4, 0.0f), g(w.size(), 0.0f);
    float last = 0;
    for (int step = 0; step < 200; ++step) {
      Tape::active().clear();
      const F x = F::random_normal({16, 8}, 0, 1, seed + std::uint64_t(step));
      const F target = F::random_normal({16, 4}, 0, 1, seed);
      const F W = F::parameter(w.data(), g.data(), {8, 4});
      const F loss = mean(square(matmul(x, W) - target));
      loss.backward();
      for (std::size_t i = 0; i < w.size(); ++i) w[i] -= 0.05f * g[i], g[i] = 0;
      last = loss.item();
    }
    return last;
  };
  const float alone1 = train(1), alone2 = train(2);
  float threaded1 = 0, threaded2 = 0;
  std::thread t1([&] { threaded1 = train(1); }), t2([&] { threaded2 = train(2); });
  t1.join();
  t2.join();
  CHECK(threaded1 == alone1);
  CHECK(threaded2 == alone2);
  CHECK(alone1 != alone2);
}
