// Convolutional ops on NHWC images: conv2d, max / average / global average pooling, dropout and
// batch normalisation. Values against direct loops and hand-computed cases; every gradient
// against finite differences in double; the same numbers on 1 and 2 threads; no allocation on a
// warm step.
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"
#include "autodiff/parallel.hpp"
#include "tensor_check.hpp"
#include "thread_count.hpp"

using namespace autodiff;
using T = Tensor<double>;

namespace {

// The definition, as four nested sums: y[n, oh, ow, f] = b[f] + Σ x[n, ih, iw, c]·w[kh, kw, c, f].
std::vector<double> direct_conv(const std::vector<double>& x, const Shape& xs,
                                const std::vector<double>& w, const Shape& ws,
                                const std::vector<double>& b, Window2D window, const Shape& ys) {
  std::vector<double> y(static_cast<std::size_t>(ys.size()), 0.0);
  const auto h = detail::plan_axis(xs[1], ws[0], window.stride_h, window.padding, "t", "h");
  const auto v = detail::plan_axis(xs[2], ws[1], window.stride_w, window.padding, "t", "w");
  for (std::int64_t n = 0; n < xs[0]; ++n)
    for (std::int64_t oh = 0; oh < ys[1]; ++oh)
      for (std::int64_t ow = 0; ow < ys[2]; ++ow)
        for (std::int64_t f = 0; f < ws[3]; ++f) {
          double total = b.empty() ? 0.0 : b[std::size_t(f)];
          for (std::int64_t kh = 0; kh < ws[0]; ++kh)
            for (std::int64_t kw = 0; kw < ws[1]; ++kw)
              for (std::int64_t c = 0; c < xs[3]; ++c) {
                const std::int64_t ih = oh * window.stride_h - h.pad_before + kh;
                const std::int64_t iw = ow * window.stride_w - v.pad_before + kw;
                if (ih < 0 || ih >= xs[1] || iw < 0 || iw >= xs[2]) continue;
                total += x[std::size_t(((n * xs[1] + ih) * xs[2] + iw) * xs[3] + c)] *
                         w[std::size_t(((kh * ws[1] + kw) * ws[2] + c) * ws[3] + f)];
              }
          y[std::size_t(((n * ys[1] + oh) * ys[2] + ow) * ys[3] + f)] = total;
        }
  return y;
}

}  // namespace

TEST_CASE("conv2d: a hand-computed case, and the definition for every padding and stride") {
  Tape tape;
  TapeScope scope(tape);
  // One 3×3 image of 1…9, a 2×2 kernel of ones: each output is the sum of a 2×2 block.
  const T image = T::from({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1});
  const T ones = T::ones({2, 2, 1, 1});
  CHECK(conv2d(image, ones).to_vector() == std::vector<double>{12, 16, 24, 28});
  CHECK(conv2d(image, ones).shape() == Shape{1, 2, 2, 1});
  // "same": 3×3 out, the extra row and column of zeros at the bottom and right (Keras).
  CHECK(conv2d(image, ones, 1, 1, Padding::Same).to_vector() ==
        std::vector<double>{12, 16, 9, 24, 28, 15, 15, 17, 9});
  // Bias, and the fused ReLU.
  const T bias = T::from({-20}, {1});
  CHECK(conv2d(image, ones, bias, 1, 1, Padding::Valid, true).to_vector() ==
        std::vector<double>{0, 0, 4, 8});

  struct Case {
    Shape x, w;
    Window2D window;
  };
  for (const Case& c : {Case{{2, 5, 4, 3}, {3, 2, 3, 2}, {3, 2, 1, 1, Padding::Valid}},
                        Case{{2, 5, 4, 3}, {3, 2, 3, 2}, {3, 2, 2, 1, Padding::Same}},
                        Case{{3, 6, 7, 2}, {3, 3, 2, 4}, {3, 3, 2, 3, Padding::Same}},
                        Case{{1, 7, 5, 1}, {2, 3, 1, 3}, {2, 3, 3, 2, Padding::Valid}}}) {
    const T x = T::random_uniform(c.x, -1, 1, 1), w = T::random_uniform(c.w, -1, 1, 2);
    const T b = T::random_uniform({c.w[3]}, -1, 1, 3);
    const T y = conv2d(x, w, b, c.window.stride_h, c.window.stride_w, c.window.padding);
    const auto expected =
        direct_conv(x.to_vector(), c.x, w.to_vector(), c.w, b.to_vector(), c.window, y.shape());
    INFO("x ", c.x.str(), " w ", c.w.str(), " y ", y.shape().str());
    REQUIRE(y.size() == std::int64_t(expected.size()));
    for (std::size_t i = 0; i < expected.size(); ++i)
      CHECK(y.to_vector()[i] == doctest::Approx(expected[i]).epsilon(1e-13));
  }
}

TEST_CASE("conv2d: patch rows of every length are copied whole (im2col's copy sizes)") {
  Tape tape;
  TapeScope scope(tape);
  // "valid" windows take im2col's copies-only path: a kernel row of kw·c values is one copy, of a
  // size compiled in below 16 floats (8 doubles), else 64-byte chunks and an overlapping last one.
  for (const std::int64_t channels : {1, 2, 3, 5, 8, 10, 11, 16, 17})
    for (const std::int64_t kernel_w : {1, 2, 3})
      for (const std::int64_t stride : {1, 2}) {
        const Shape xs{2, 5, 6, channels}, ws{2, kernel_w, channels, 3};
        const T x = T::random_uniform(xs, -1, 1, 5), w = T::random_uniform(ws, -1, 1, 6);
        const T y = conv2d(x, w, stride, stride);
        const auto expected = direct_conv(x.to_vector(), xs, w.to_vector(), ws, {},
                                          {2, kernel_w, stride, stride}, y.shape());
        INFO("channels ", channels, " kernel_w ", kernel_w, " stride ", stride);
        REQUIRE(y.size() == std::int64_t(expected.size()));
        const std::vector<double> yd = y.to_vector();
        for (std::size_t i = 0; i < expected.size(); ++i)
          REQUIRE(yd[i] == doctest::Approx(expected[i]).epsilon(1e-13));
        // float too: its chunks and small sizes differ from double's
        const std::vector<double> xd = x.to_vector(), wd = w.to_vector();
        const auto xf = Tensor<float>::from(std::vector<float>(xd.begin(), xd.end()), xs);
        const auto wf = Tensor<float>::from(std::vector<float>(wd.begin(), wd.end()), ws);
        const std::vector<float> yf = conv2d(xf, wf, stride, stride).to_vector();
        for (std::size_t i = 0; i < expected.size(); ++i)
          REQUIRE(double(yf[i]) == doctest::Approx(expected[i]).epsilon(1e-5));
      }
}

TEST_CASE("conv2d: input, kernel and bias gradients against finite differences") {
  CHECK_TENSOR_GRADIENT([](auto t) { return conv2d(t[0], t[1], t[2]); },
                        {{2, 5, 4, 3}, {3, 2, 3, 2}, {2}});
  CHECK_TENSOR_GRADIENT([](auto t) { return conv2d(t[0], t[1], t[2], 2, 1, Padding::Same); },
                        {{2, 5, 4, 2}, {3, 3, 2, 3}, {3}});
  CHECK_TENSOR_GRADIENT([](auto t) { return conv2d(t[0], t[1], 2, 3, Padding::Valid); },
                        {{1, 6, 7, 2}, {2, 2, 2, 2}});
  // The fused ReLU: its kinks are where the output is 0, which random inputs do not hit.
  CHECK_TENSOR_GRADIENT([](auto t) { return conv2d(t[0], t[1], t[2], 1, 1, Padding::Same, true); },
                        {{1, 4, 4, 2}, {3, 3, 2, 2}, {2}});
}

TEST_CASE("conv2d: wrong shapes are errors naming both") {
  Tape tape;
  TapeScope scope(tape);
  CHECK_THROWS_WITH_AS(conv2d(T::zeros({1, 4, 4, 3}), T::zeros({3, 3, 2, 8})),
                       "conv2d: input (1, 4, 4, 3) and kernel (3, 3, 2, 8): expected (batch, "
                       "height, width, channels) and (kernel_h, kernel_w, channels, filters) with "
                       "the same channels",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d(T::zeros({1, 2, 4, 3}), T::zeros({3, 3, 3, 8})),
                       doctest::Contains("conv2d: the input's height is 2, smaller than the "
                                         "window's 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d(T::zeros({1, 4, 4, 3}), T::zeros({3, 3, 3, 8}), T::zeros({4})),
                       doctest::Contains("expected a bias of shape (filters,)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d(T::zeros({1, 4, 4, 3}), T::zeros({3, 3, 3, 8}), 0),
                       doctest::Contains("stride 0: both must be ≥ 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d(T::zeros({4, 3}), T::zeros({3, 3, 3, 8})),
                       doctest::Contains("input (4, 3) and kernel"), std::invalid_argument);
}

TEST_CASE("pooling: hand-computed values, and gradients against finite differences") {
  {
    Tape tape;
    TapeScope scope(tape);
    const T image = T::from({1, 5, 3, 4, 2, 8, 6, 7, 9}, {1, 3, 3, 1});
    CHECK(max_pool2d(image, {2, 2, 2, 2}).to_vector() == std::vector<double>{5});
    CHECK(max_pool2d(image, {2, 2, 2, 2, Padding::Same}).to_vector() ==
          std::vector<double>{5, 8, 7, 9});
    CHECK(max_pool2d(image, {2, 2, 1, 1}).to_vector() == std::vector<double>{5, 8, 7, 9});
    // Average over the real pixels only: the "same" windows at the edge hold 2 and 1 of them.
    CHECK(avg_pool2d(image, {2, 2, 2, 2, Padding::Same}).to_vector() ==
          std::vector<double>{3, 5.5, 6.5, 9});
    CHECK(global_avg_pool2d(image).to_vector() == std::vector<double>{5});
    CHECK(global_avg_pool2d(image).shape() == Shape{1, 1});
    // Max pooling's gradient goes to the largest input of each window.
    const T x = T::from({1, 5, 3, 4, 2, 8, 6, 7, 9}, {1, 3, 3, 1}).requires_grad();
    sum(max_pool2d(x, {2, 2, 1, 1})).backward();
    CHECK(x.grad() == std::vector<double>{0, 1, 0, 0, 0, 1, 0, 1, 1});
    CHECK_THROWS_WITH_AS(max_pool2d(image, {4, 4, 4, 4}),
                         doctest::Contains("max_pool2d: the input's height is 3, smaller than "
                                           "the window's 4"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(global_avg_pool2d(T::zeros({2, 3})),
                         doctest::Contains("global_avg_pool2d: input of shape (2, 3)"),
                         std::invalid_argument);
  }
  {
    // Ties (values of only 0, 1 and 2): each window's gradient goes to its first largest input in
    // (kh, kw) order, for 2×2 windows (a compiled-in kernel) and for others.
    Tape tape;
    TapeScope scope(tape);
    const Shape xs{2, 7, 6, 5};
    std::vector<double> values(static_cast<std::size_t>(xs.size()));
    // (a hash: the values vary within every window, and the ties fall anywhere in it)
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = double((i * 2654435761u >> 9) % 3);
    for (const Window2D window :
         {Window2D{2, 2, 2, 2}, Window2D{3, 2, 3, 2}, Window2D{2, 2, 1, 1}}) {
      const T x = T::from(values, xs).requires_grad();
      const T y = max_pool2d(x, window);
      const T r = T::random_uniform(y.shape(), 1, 2, 7);
      sum(y * r).backward();
      std::vector<double> expected_y, expected_grad(values.size(), 0.0);
      const std::int64_t out_h = y.shape()[1], out_w = y.shape()[2], c = xs[3];
      for (std::int64_t n = 0; n < xs[0]; ++n)
        for (std::int64_t oh = 0; oh < out_h; ++oh)
          for (std::int64_t ow = 0; ow < out_w; ++ow)
            for (std::int64_t k = 0; k < c; ++k) {
              std::size_t best = 0;
              for (std::int64_t kh = window.height - 1; kh >= 0;
                   --kh)  // backwards: ≥ keeps the first
                for (std::int64_t kw = window.width - 1; kw >= 0; --kw) {
                  const auto at = std::size_t(((n * xs[1] + oh * window.stride_h + kh) * xs[2] +
                                               ow * window.stride_w + kw) *
                                                  c +
                                              k);
                  if (kh == window.height - 1 && kw == window.width - 1) best = at;
                  if (values[at] >= values[best]) best = at;
                }
              expected_y.push_back(values[best]);
              expected_grad[best] += r.to_vector()[expected_y.size() - 1];
            }
      INFO("window ", window.height, "x", window.width, " stride ", window.stride_h);
      CHECK(y.to_vector() == expected_y);
      CHECK(x.grad() == expected_grad);
    }
  }
  CHECK_TENSOR_GRADIENT([](auto t) { return max_pool2d(t[0], {2, 2, 2, 2}); }, {{2, 5, 4, 3}});
  CHECK_TENSOR_GRADIENT(
      [](auto t) {
        return max_pool2d(t[0], {3, 2, 2, 1, Padding::Same});
      },
      {{2, 5, 4, 2}});
  CHECK_TENSOR_GRADIENT([](auto t) { return avg_pool2d(t[0], {2, 2, 2, 2}); }, {{2, 5, 4, 3}});
  CHECK_TENSOR_GRADIENT(
      [](auto t) {
        return avg_pool2d(t[0], {3, 2, 2, 1, Padding::Same});
      },
      {{2, 5, 4, 2}});
  CHECK_TENSOR_GRADIENT([](auto t) { return global_avg_pool2d(t[0]); }, {{2, 3, 4, 3}});
}

// A regression here shows as minutes, not a wrong value: the timeout makes it a failure.
TEST_CASE("pooling: a \"same\" window of 10⁹ rows visits only the real pixels" *
          doctest::timeout(30)) {
  // A "same" window of 10⁹ rows (a model file may hold one): each output is its column's max
  // or mean, and only the real pixels are visited (it used to take minutes).
  Tape tape;
  TapeScope scope(tape);
  const T x = T::from({1, 5, 3, 4, 2, 8, 6, 7, 9, 0, 1, 2}, {1, 4, 3, 1}).requires_grad();
  const Window2D tall{1'000'000'000, 1, 1, 1, Padding::Same};
  CHECK(max_pool2d(x, tall).to_vector() == std::vector<double>{6, 7, 9, 6, 7, 9, 6, 7, 9, 6, 7, 9});
  // The largest window there is: its padding is computed without overflow (UBSan's check).
  const Window2D tallest{std::numeric_limits<std::int64_t>::max(), 1, 1, 1, Padding::Same};
  CHECK(max_pool2d(x, tallest).to_vector() == max_pool2d(x, tall).to_vector());
  const T mean = avg_pool2d(x, tall);
  CHECK(mean.to_vector() ==
        std::vector<double>{2.75, 3.75, 5.5, 2.75, 3.75, 5.5, 2.75, 3.75, 5.5, 2.75, 3.75, 5.5});
  sum(mean).backward();
  CHECK(x.grad() == std::vector<double>(12, 1.0));  // each pixel in 4 windows of 4: 4 · ¼
}

TEST_CASE("dropout: inverted scaling, reproducible from the seed, and its gradient") {
  Tape tape;
  TapeScope scope(tape);
  const T x = T::ones({100, 100});
  const auto y = dropout(x, 0.3, 42).to_vector();
  std::int64_t kept = 0;
  for (double v : y) {
    CHECK((v == 0.0 || v == doctest::Approx(1.0 / 0.7)));
    kept += v != 0.0;
  }
  CHECK(double(kept) / 1e4 == doctest::Approx(0.7).epsilon(0.03));  // 10,000 draws: σ ≈ 0.0046
  CHECK(dropout(x, 0.3, 42).to_vector() == y);
  CHECK(dropout(x, 0.3, 43).to_vector() != y);
  CHECK(dropout(x, 0.0, 42).to_vector() == x.to_vector());
  CHECK_THROWS_WITH_AS(dropout(x, 1.0, 1), "dropout: rate 1, expected in [0, 1)",
                       std::invalid_argument);
  CHECK_TENSOR_GRADIENT([](auto t) { return dropout(t[0], 0.4, 7); }, {{3, 4, 5}});
}

TEST_CASE("batch_norm: normalised per channel, its statistics, and its gradients") {
  {
    Tape tape;
    TapeScope scope(tape);
    const T x = T::random_normal({4, 3, 3, 2}, 5, 2, 1);
    std::vector<double> mean(2), variance(2);
    const auto y =
        batch_norm(x, T::ones({2}), T::zeros({2}), 1e-3, mean.data(), variance.data()).to_vector();
    const auto xs = x.to_vector();
    for (std::size_t k = 0; k < 2; ++k) {
      double m = 0, v = 0, ym = 0, yv = 0;
      for (std::size_t i = k; i < xs.size(); i += 2) m += xs[i], ym += y[i];
      m /= 36, ym /= 36;
      for (std::size_t i = k; i < xs.size(); i += 2)
        v += (xs[i] - m) * (xs[i] - m), yv += (y[i] - ym) * (y[i] - ym);
      CHECK(mean[k] == doctest::Approx(m).epsilon(1e-14));
      CHECK(variance[k] == doctest::Approx(v / 36).epsilon(1e-12));  // biased, as Keras
      CHECK(std::abs(ym) < 1e-12);
      CHECK(yv / 36 == doctest::Approx(v / 36 / (v / 36 + 1e-3)).epsilon(1e-12));
    }
    CHECK_THROWS_WITH_AS(batch_norm(x, T::ones({3}), T::zeros({3})),
                         doctest::Contains("batch_norm: input (4, 3, 3, 2), gamma (3,), beta (3,)"),
                         std::invalid_argument);
  }
  {
    // A float channel far from 0 for its spread (1000 ± 0.01): μ rounded to float would shift
    // every x̂ by up to u·|μ|/σ (6e-3); μ kept in two floats, x̂ is right to float's precision.
    Tape tape;
    TapeScope scope(tape);
    std::vector<float> values(64);
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = 1000.0f + 0.01f * float(std::sin(0.7 * double(i)) + 0.3);
    const Tensor<float> x = Tensor<float>::from(values, {64, 1});
    const auto y = batch_norm(x, Tensor<float>::ones({1}), Tensor<float>::zeros({1}), 1e-12);
    double m = 0, v = 0;
    for (float value : values) m += value;
    m /= 64;
    for (float value : values) v += (value - m) * (value - m);
    const double inv_std = 1 / std::sqrt(v / 64 + 1e-12);
    double worst = 0;
    for (std::size_t i = 0; i < values.size(); ++i)
      worst = std::max(worst, std::abs(double(y.to_vector()[i]) - (values[i] - m) * inv_std));
    CHECK(worst < 1e-5);  // it was 4.3e-3 with μ rounded to float
  }
  CHECK_TENSOR_GRADIENT([](auto t) { return batch_norm(t[0], t[1], t[2]); },
                        {{3, 2, 2, 3}, {3}, {3}});
  CHECK_TENSOR_GRADIENT([](auto t) { return batch_norm(t[0], t[1], t[2], 0.5); },
                        {{5, 4}, {4}, {4}});
}

TEST_CASE("conv ops on 1 and 2 threads give the same values and gradients") {
  // A small convnet forward and backward in double, with each kernel split over the batch.
  auto run = [](int thread_count) {
    const ThreadCount threads_set(thread_count);
    Tape tape;
    TapeScope scope(tape);
    const T x = T::random_uniform({6, 9, 8, 3}, -1, 1, 1).requires_grad();
    const T w = T::random_uniform({3, 3, 3, 4}, -1, 1, 2).requires_grad();
    const T b = T::random_uniform({4}, -1, 1, 3).requires_grad();
    const T gamma = T::random_uniform({4}, 0.5, 1.5, 4).requires_grad();
    const T beta = T::random_uniform({4}, -1, 1, 5).requires_grad();
    T h = conv2d(x, w, b, 1, 1, Padding::Same, true);
    h = batch_norm(max_pool2d(h, {2, 2, 2, 2}), gamma, beta);
    h = dropout(avg_pool2d(h, {2, 2, 1, 1, Padding::Same}), 0.25, 9);
    const T loss = sum(global_avg_pool2d(h) * T::arange(1, 5));
    loss.backward();
    std::vector<double> all = loss.to_vector();
    for (const T* t : {&x, &w, &b, &gamma, &beta})
      for (double g : t->grad()) all.push_back(g);
    return all;
  };
  const auto one = run(1), two = run(2);
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i)  // equal but for the order of the final sums
    CHECK(two[i] == doctest::Approx(one[i]).epsilon(1e-12));
}

TEST_CASE("a convnet training step allocates nothing once warm, on 1 and 2 threads") {
  for (const int thread_count : {1, 2}) {
    const ThreadCount threads_set(thread_count);
    Tape tape;
    TapeScope scope(tape);
    using F = Tensor<float>;
    std::vector<float> w(3 * 3 * 1 * 4), gw(w.size()), b(4), gb(4), d(4 * 4 * 4 * 10), gd(d.size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i)) * 0.3f;
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = std::cos(float(i)) * 0.1f;
    std::vector<float> images(8 * 10 * 10);
    for (std::size_t i = 0; i < images.size(); ++i) images[i] = float(i % 13) / 13.0f;
    std::vector<std::int32_t> labels(8);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 10);
    std::uint64_t seed = 0;
    auto step = [&] {
      tape.clear();
      const F x = F::from(images, {8, 10, 10, 1});
      F h = conv2d(x, F::parameter(w.data(), gw.data(), {3, 3, 1, 4}),
                   F::parameter(b.data(), gb.data(), {4}), 1, 1, Padding::Valid, true);
      h = dropout(max_pool2d(h, {2, 2, 2, 2}), 0.5, ++seed);
      const F logits = matmul(reshape(h, {8, -1}), F::parameter(d.data(), gd.data(), {64, 10}));
      const F loss = cross_entropy_with_logits(logits, one_hot<float>(labels, 10));
      loss.backward();
      for (std::size_t i = 0; i < w.size(); ++i) w[i] -= 0.05f * gw[i], gw[i] = 0;
      for (std::size_t i = 0; i < d.size(); ++i) d[i] -= 0.05f * gd[i], gd[i] = 0;
      for (std::size_t i = 0; i < b.size(); ++i) b[i] -= 0.05f * gb[i], gb[i] = 0;
      return loss.item();
    };
    step();
    step();
    testing::AllocationCounter counter;
    step();
    CHECK(counter.count() == 0);
  }
}

TEST_CASE("parallel_for: every index once, in parts, on the pool's threads") {
  const ThreadCount threads_set(2);
  CHECK(threads() == 2);
  std::vector<int> hits(1000, 0);
  parallel_for(1000, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) ++hits[std::size_t(i)];
  });
  CHECK(std::count(hits.begin(), hits.end(), 1) == 1000);
  int parts_seen[2] = {0, 0};
  parallel_parts(10, [&](int part, std::int64_t, std::int64_t) { ++parts_seen[part]; });
  CHECK(parts_seen[0] == 1);
  CHECK(parts_seen[1] == 1);
  // Nested: the inner loop runs on the calling thread, whole.
  std::vector<int> inner(4, 0);
  parallel_parts(2, [&](int part, std::int64_t, std::int64_t) {
    parallel_for(2, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) ++inner[std::size_t(part * 2 + i)];
    });
  });
  CHECK(inner == std::vector<int>{1, 1, 1, 1});
  CHECK_THROWS_WITH_AS(set_threads(0), "set_threads: 0 threads, expected 1 to 256",
                       std::invalid_argument);
}

TEST_CASE("two threads run convolutions at the same time, sharing the pool") {
  // Each thread has its own tape; while one holds the pool, the other's kernels run on its own
  // thread. Either way, the numbers are those of a run alone.
  const ThreadCount threads_set(2);
  auto run = [](std::uint64_t seed) {
    Tape tape;
    TapeScope scope(tape);
    double last = 0;
    for (int step = 0; step < 20; ++step) {
      tape.clear();
      const T x = T::random_uniform({4, 8, 8, 2}, -1, 1, seed + std::uint64_t(step));
      const T w = T::random_uniform({3, 3, 2, 3}, -1, 1, seed).requires_grad();
      const T y = max_pool2d(conv2d(x, w, 1, 1, Padding::Same, true), {2, 2, 2, 2});
      const T loss = sum(dropout(y, 0.5, seed) * y);
      loss.backward();
      last = loss.item() + w.grad()[0];
    }
    return last;
  };
  const double alone1 = run(1), alone2 = run(2);
  double threaded1 = 0, threaded2 = 0;
  std::thread t1([&] { threaded1 = run(1); }), t2([&] { threaded2 = run(2); });
  t1.join();
  t2.join();
  CHECK(threaded1 == doctest::Approx(alone1).epsilon(1e-12));
  CHECK(threaded2 == doctest::Approx(alone2).epsilon(1e-12));
  CHECK(alone1 != alone2);
}
