// Every core for the MLP: GEMMs split over the pool, elementwise kernels split when large, and
// the fused optimizer update (each parameter updated as the reverse sweep finishes its gradient).
// Results on 2 threads differ from 1 thread by summation order only, and not at all between runs
// on the same thread count; the fused update equals backward() then step(); a warm step on 2
// threads allocates nothing.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"
#include "autodiff/parallel.hpp"
#include "nn/model.hpp"
#include "tensor_check.hpp"
#include "thread_count.hpp"

using namespace autodiff;

namespace {

constexpr std::int64_t kInputs = 784, kClasses = 10;

nn::Dataset random_images(std::int64_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> images(static_cast<std::size_t>(count * kInputs));
  for (auto& b : images) b = static_cast<std::uint8_t>(rng() % 256);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(count));
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % kClasses);
  return nn::Dataset(std::move(images), std::move(labels), kInputs, kClasses);
}

// The tutorial's MLP (784 → 128 relu → 10 softmax) with Adam: its GEMMs are large enough to be
// split over the pool.
nn::Model mlp_model(std::unique_ptr<nn::Optimizer> optimizer) {
  nn::Sequential network;
  network.add(nn::Dense(kInputs, 128, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(128, kClasses, nn::Activation::Softmax, {.seed = 2}));
  return nn::Model(std::move(network), nn::categorical_crossentropy, std::move(optimizer));
}

// Every parameter after `steps` training steps of batch 32 on `thread_count` threads.
std::vector<float> trained_parameters(int thread_count, int steps) {
  const ThreadCount threads_set(thread_count);
  const nn::Dataset data = random_images(256, 7);
  nn::Model model = mlp_model(std::make_unique<nn::Adam>());
  std::vector<std::int64_t> rows(32);
  for (int step = 0; step < steps; ++step) {
    for (std::size_t i = 0; i < rows.size(); ++i)
      rows[i] = std::int64_t((i * 37 + step * 11) % 256);
    model.train_step(data, rows);
  }
  std::vector<float> all;
  for (const nn::Parameter* p : model.network().parameters())
    all.insert(all.end(), p->value.begin(), p->value.end());
  return all;
}

// C = A·B (A transposed when ta, B when tb) in double, the definition.
std::vector<double> direct_product(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                                   const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t l = 0; l < k; ++l)
        c[std::size_t(i * n + j)] += double(a[std::size_t(ta ? l * m + i : i * k + l)]) *
                                     double(b[std::size_t(tb ? j * k + l : l * n + j)]);
  return c;
}

}  // namespace

TEST_CASE("matmul split over 2 threads, by rows, columns or depth, transposed or not") {
  const ThreadCount threads_set(2);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  // Wide (split by columns), tall (split by rows) and deep (split along k, then summed) products,
  // sizes off the 16-wide tiles.
  struct Case {
    std::int64_t m, n, k;
  };
  for (const Case s :
       {Case{20, 301, 70}, Case{301, 20, 70}, Case{33, 130, 800}, Case{7, 45, 1001}}) {
    std::vector<float> a(static_cast<std::size_t>(s.m * s.k)),
        b(static_cast<std::size_t>(s.k * s.n));
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    for (const bool ta : {false, true})
      for (const bool tb : {false, true}) {
        CAPTURE(s.m);
        CAPTURE(ta);
        CAPTURE(tb);
        std::vector<float> c(static_cast<std::size_t>(s.m * s.n), 1.0f);
        detail::gemm(ta, tb, s.m, s.n, s.k, a.data(), b.data(), true, c.data());  // accumulate
        const std::vector<double> want = direct_product(ta, tb, s.m, s.n, s.k, a, b);
        double worst = 0;
        for (std::size_t i = 0; i < c.size(); ++i)
          worst = std::max(worst, std::fabs(double(c[i]) - (want[i] + 1.0)));
        CHECK(worst < 1e-4);
      }
  }
}

TEST_CASE("MLP training on 1 and 2 threads: equal up to summation order, exactly repeatable") {
  const std::vector<float> one = trained_parameters(1, 4);
  const std::vector<float> two = trained_parameters(2, 4);
  const std::vector<float> two_again = trained_parameters(2, 4);
  REQUIRE(one.size() == two.size());
  CHECK(two == two_again);  // bit for bit on a fixed thread count
  // Summation order moves a gradient by an ulp or so; Adam divides each gradient by its own
  // size, so a near-zero one can move its weight by a sizeable part of a step (lr 1e-3). Bound:
  // 0.2% of one step, in absolute terms (the weights are about 0.05).
  double worst = 0;
  for (std::size_t i = 0; i < one.size(); ++i)
    worst = std::max(worst, std::fabs(double(two[i]) - double(one[i])));
  MESSAGE("largest difference between 1 and 2 threads after 4 Adam steps: ", worst);
  CHECK(worst <= 2e-6);
  // The steps did move the weights (the comparison is not between two initialisations).
  const std::vector<float> initial = trained_parameters(1, 0);
  double moved = 0;
  for (std::size_t i = 0; i < one.size(); ++i) moved += std::fabs(one[i] - initial[i]);
  CHECK(moved > 1.0);
}

TEST_CASE("backward_and_step: the same parameters as backward() then step()") {
  // A parameter used twice (its update must wait for its first leaf), one not on the tape at all,
  // and the usual weights and biases; Adam and SGD with (Nesterov) momentum; 1 and 2 threads.
  using F = Tensor<float>;
  const auto make = [](const char* name, Shape shape, float scale) {
    auto p = std::make_unique<nn::Parameter>(name, shape);
    for (std::size_t i = 0; i < p->value.size(); ++i)
      p->value[i] = scale * std::sin(float(i) * 0.7f + float(shape.size()));
    return p;
  };
  const auto run = [&](nn::Optimizer& optimizer, bool fused) {
    auto w1 = make("w1", {64, 600}, 0.1f), b1 = make("b1", {600}, 0.1f);
    auto shared = make("shared", {600, 600}, 0.02f), unused = make("unused", {5}, 1.0f);
    auto w2 = make("w2", {600, 3}, 0.1f);
    std::vector<nn::Parameter*> parameters = {w1.get(), b1.get(), shared.get(), unused.get(),
                                              w2.get()};
    Tape tape;
    TapeScope scope(tape);
    for (int step = 0; step < 3; ++step) {
      tape.clear();
      const F x = F::random_uniform({16, 64}, -1, 1, std::uint64_t(step + 1));
      F h = relu(matmul(x, w1->on_tape()) + b1->on_tape());
      h = tanh(matmul(h, shared->on_tape()));
      h = tanh(matmul(h, shared->on_tape()));  // the same weights again: a second leaf
      const F loss = mean(square(matmul(h, w2->on_tape())));
      if (fused) {
        optimizer.backward_and_step(loss, parameters);
      } else {
        loss.backward();
        optimizer.step(parameters);
      }
    }
    std::vector<float> all;
    for (const nn::Parameter* p : parameters) {
      all.insert(all.end(), p->value.begin(), p->value.end());
      CHECK(std::all_of(p->grad.begin(), p->grad.end(), [](float g) { return g == 0.0f; }));
    }
    return all;
  };
  for (const int thread_count : {1, 2}) {
    const ThreadCount threads_set(thread_count);
    CAPTURE(thread_count);
    {
      nn::Adam separate, fused;
      CHECK(run(fused, true) == run(separate, false));
      CHECK(fused.iterations() == 3);
    }
    {
      nn::SGD separate(nn::SGDOptions().learning_rate(0.05).momentum(0.9).nesterov(true));
      nn::SGD fused(nn::SGDOptions().learning_rate(0.05).momentum(0.9).nesterov(true));
      CHECK(run(fused, true) == run(separate, false));
    }
  }
}

TEST_CASE("large elementwise ops on 2 threads equal 1 thread exactly, values and gradients") {
  using F = Tensor<float>;
  const auto run = [](int thread_count) {
    const ThreadCount threads_set(thread_count);
    Tape tape;
    TapeScope scope(tape);
    // 100,000 elements: above the size where elementwise loops split; a bias row broadcast too.
    const F x = F::random_uniform({500, 200}, -2, 2, 1).requires_grad();
    const F y = F::random_uniform({500, 200}, -2, 2, 2).requires_grad();
    const F bias = F::random_uniform({200}, -1, 1, 3).requires_grad();
    const F z = relu(x * y + bias) - 0.5f * sigmoid(x) + y / 3.0f;
    const F loss = sum(z * z);
    loss.backward();
    std::vector<float> all = z.to_vector();
    for (const F* t : {&x, &y, &bias}) {
      const auto g = t->grad();
      all.insert(all.end(), g.begin(), g.end());
    }
    return all;
  };
  CHECK(run(2) == run(1));
}

TEST_CASE("an MLP training step on 2 threads allocates nothing once warm") {
  const ThreadCount threads_set(2);
  const nn::Dataset data = random_images(128, 5);
  nn::Model model = mlp_model(std::make_unique<nn::Adam>());
  CHECK(testing::warm_step_allocations(model, data, 32) == 0);
}

TEST_CASE("ops that write a fresh input gradient, or add to one another op started") {
  // Max pooling (windows that tile the image, with a row and a column left over), convolution,
  // dropout and reshape write their input's gradient when they are the first to reach it, and add
  // to it when an op recorded later (and so swept earlier) already did: both against finite
  // differences.
  using T = Tensor<double>;
  CHECK_TENSOR_GRADIENT([](auto t) { return max_pool2d(t[0], {2, 2, 2, 2}); }, {{2, 5, 7, 3}});
  const auto with_later_use = [](auto op) {
    return [op](std::span<const T> t) {
      const T first = op(t);
      const T later = mean(t[0]);  // recorded after `first`: its gradient reaches t[0] first
      return first * later;
    };
  };
  CHECK_TENSOR_GRADIENT(with_later_use([](auto t) {
                          return max_pool2d(t[0], {2, 2, 2, 2});
                        }),
                        {{2, 5, 7, 3}});
  CHECK_TENSOR_GRADIENT(with_later_use([](auto t) { return conv2d(t[0], t[1], 1, 1); }),
                        {{2, 5, 4, 2}, {3, 3, 2, 2}});
  CHECK_TENSOR_GRADIENT(with_later_use([](auto t) { return dropout(t[0], 0.5, 3); }), {{4, 6}});
  CHECK_TENSOR_GRADIENT(with_later_use([](auto t) { return reshape(t[0], {6, 4}); }), {{4, 6}});
  CHECK_TENSOR_GRADIENT([](auto t) { return reshape(t[0], {6, 4}) * 2.0; }, {{4, 6}});
}
