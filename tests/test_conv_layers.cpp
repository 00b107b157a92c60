// The convnet layers in nn: forward with set weights against hand values, names in the module
// tree, train/eval behaviour (Dropout, BatchNormalization), a tiny convnet that learns, and a
// save/load round trip that keeps the moving statistics.
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "autodiff/inspect/tape_stats.hpp"
#include "autodiff/parallel.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using autodiff::Padding;
using autodiff::Shape;
using autodiff::Tensor;
using F = Tensor<float>;

namespace {
std::vector<std::string> names_of(nn::Module& m) {
  std::vector<std::string> names;
  for (const nn::NamedParameter& p : m.named_parameters()) names.push_back(p.name);
  return names;
}
}  // namespace

TEST_CASE("Conv2D: set weights give the hand value; Keras's shapes, names and initialisation") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Conv2D conv(1, 2, {2, 2}, nn::Activation::Relu);
  // Filter 0 sums its 2×2 window; filter 1 is its negative, so the ReLU zeroes it; bias 0.5, 0.
  for (std::size_t i = 0; i < 4; ++i)
    conv.weights().value[2 * i] = 1, conv.weights().value[2 * i + 1] = -1;
  conv.bias()->value = {0.5f, 0.0f};
  const F image = F::from({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1});
  CHECK(conv(image).to_vector() == std::vector<float>{12.5f, 0, 16.5f, 0, 24.5f, 0, 28.5f, 0});
  CHECK(conv.describe() == "Conv2D(1 → 2, 2×2, strides 1×1, valid, relu)");
  CHECK_THROWS_WITH_AS(conv(F::zeros({1, 3, 3, 2})),
                       "Conv2D(1 → 2, 2×2, strides 1×1, valid, relu): input has shape (1, 3, 3, "
                       "2), expected (batch, height, width, 1)",
                       std::invalid_argument);

  nn::Conv2D same(3, 8, {3, 3}, nn::Activation::Linear,
                  {.strides = {2, 2}, .padding = Padding::Same, .seed = 4});
  CHECK(same(F::zeros({2, 7, 6, 3})).shape() == Shape{2, 4, 3, 8});
  CHECK(same.weights().shape == Shape{3, 3, 3, 8});
  // Glorot-uniform over fan_in 27 and fan_out 72: |w| ≤ √(6/99), spread over the whole range.
  float largest = 0;
  for (float w : same.weights().value) largest = std::max(largest, std::abs(w));
  CHECK(largest <= std::sqrt(6.0f / 99.0f));
  CHECK(largest > 0.9f * std::sqrt(6.0f / 99.0f));
  nn::Conv2D no_bias(3, 4, {1, 1}, nn::Activation::Linear, {.use_bias = false});
  CHECK(no_bias.bias() == nullptr);
  CHECK(no_bias.parameter_count() == 12);
  CHECK_THROWS_WITH_AS(nn::Conv2D(0, 4, {3, 3}), doctest::Contains("Conv2D: in_channels 0"),
                       std::invalid_argument);
}

TEST_CASE("pooling, Flatten and Reshape layers") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  const F x = F::from({1, 5, 3, 4, 2, 8, 6, 7, 9, 0, 1, 2, 3, 4, 5, 6}, {1, 4, 4, 1});
  nn::MaxPooling2D max_pool({2, 2});  // strides default to the pool size
  CHECK(max_pool(x).to_vector() == std::vector<float>{8, 7, 9, 6});
  CHECK(max_pool.describe() == "MaxPooling2D(2×2, strides 2×2, valid)");
  nn::AveragePooling2D avg_pool({3, 3}, {.strides = {2, 2}, .padding = Padding::Same});
  CHECK(avg_pool(x).shape() == Shape{1, 2, 2, 1});
  CHECK(avg_pool(x).to_vector()[3] == doctest::Approx((1 + 2 + 5 + 6) / 4.0));  // 2×2 real pixels
  CHECK(nn::GlobalAveragePooling2D()(x).to_vector() == std::vector<float>{4.125f});
  CHECK(nn::Flatten()(x).shape() == Shape{1, 16});
  CHECK(nn::Reshape({28, 28, 1})(F::zeros({5, 784})).shape() == Shape{5, 28, 28, 1});
  CHECK(nn::Reshape({-1, 2})(F::zeros({3, 8})).shape() == Shape{3, 4, 2});
  CHECK_THROWS_WITH_AS(nn::Reshape({28, 28, 1})(F::zeros({5, 100})),
                       "Reshape((28, 28, 1)): input of shape (5, 100) has 100 values per row",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Reshape({0, 2}), doctest::Contains("Reshape: target (0, 2)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::MaxPooling2D({0, 2}), doctest::Contains("MaxPooling2D: pool size 0×2"),
                       std::invalid_argument);
}

TEST_CASE("Dropout: masks in training mode only, fresh per call, reproducible from the seed") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  const F x = F::ones({64, 64});
  nn::Dropout a(0.5, {.seed = 3}), b(0.5, {.seed = 3}), c(0.5, {.seed = 4});
  const auto first = a(x).to_vector();
  CHECK(first == b(x).to_vector());  // same seed, same call: same mask
  CHECK(first != c(x).to_vector());
  CHECK(a(x).to_vector() != first);  // the next call: a new mask
  const double kept = std::count(first.begin(), first.end(), 2.0f) / 4096.0;
  CHECK(kept == doctest::Approx(0.5).epsilon(0.05));
  CHECK(std::count(first.begin(), first.end(), 0.0f) +
            std::count(first.begin(), first.end(), 2.0f) ==
        4096);
  a.eval();
  CHECK(a(x).to_vector() == x.to_vector());
  CHECK(a.describe() == "Dropout(0.5)");
  CHECK_THROWS_WITH_AS(nn::Dropout(1.0), "Dropout: rate 1, expected in [0, 1)",
                       std::invalid_argument);
}

TEST_CASE("BatchNormalization: batch statistics in training, moving ones in evaluation") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::BatchNormalization bn(2, {.momentum = 0.9});
  CHECK(names_of(bn) == std::vector<std::string>{"gamma", "beta"});
  CHECK(bn.named_buffers().size() == 2);
  CHECK(bn.named_buffers()[0].name == "moving_mean");
  const F x =
      F::from({1, 10, 3, 20, 5, 30, 7, 40}, {4, 2});  // channel means 4, 25; variances 5, 125
  const auto y = bn(x).to_vector();
  CHECK(y[0] == doctest::Approx(-3.0 / std::sqrt(5.0 + 1e-3)));
  CHECK(y[1] == doctest::Approx(-15.0 / std::sqrt(125.0 + 1e-3)));
  CHECK(bn.moving_mean().value[0] == doctest::Approx(0.4));  // 0·0.9 + 4·0.1
  CHECK(bn.moving_mean().value[1] == doctest::Approx(2.5));
  CHECK(bn.moving_variance().value[0] == doctest::Approx(0.9 + 0.5));
  CHECK(bn.moving_variance().value[1] == doctest::Approx(0.9 + 12.5));
  bn.eval();
  const auto z = bn(x).to_vector();
  CHECK(z[0] == doctest::Approx((1 - 0.4) / std::sqrt(1.4 + 1e-3)));
  CHECK(z[3] == doctest::Approx((20 - 2.5) / std::sqrt(13.4 + 1e-3)));
  CHECK(bn.moving_mean().value[0] == doctest::Approx(0.4));  // evaluation changes nothing
  CHECK_THROWS_WITH_AS(bn(F::zeros({4, 3})),
                       doctest::Contains("input has shape (4, 3), expected (batch, …, 2)"),
                       std::invalid_argument);
  // The optimizer trains gamma and beta, never the moving statistics.
  bn.train();
  tape.clear();
  const F again = F::from({1, 10, 3, 20, 5, 30, 7, 40}, {4, 2});
  sum(bn(again) * F::from({1, -2}, {2})).backward();
  nn::Adam adam;
  const auto params = bn.parameters();
  CHECK(params.size() == 2);
  const float moving = bn.moving_mean().value[0];
  adam.step(params);
  CHECK(bn.moving_mean().value[0] == moving);
  CHECK(bn.beta().value[0] != 0.0f);
}

TEST_CASE("a tiny convnet learns bars, and its weights and moving statistics round-trip") {
  // 8×8 images with one bright row (class 0) or column (class 1) at a random place.
  std::mt19937 rng(5);
  const std::int64_t count = 256;
  std::vector<float> images(std::size_t(count * 64), 0.0f);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    labels[std::size_t(i)] = std::int32_t(i % 2);
    const std::int64_t at = std::int64_t(rng() % 8);
    for (std::int64_t j = 0; j < 8; ++j)
      images[std::size_t(i * 64 + (i % 2 ? j * 8 + at : at * 8 + j))] = 1.0f;
    for (std::int64_t p = 0; p < 64; ++p)
      images[std::size_t(i * 64 + p)] += 0.2f * float(rng() % 100) / 100.0f;
  }
  auto build = [] {
    nn::Sequential net;
    net.add(nn::Reshape({8, 8, 1}));
    net.add(nn::Conv2D(1, 4, {3, 3}, nn::Activation::Relu, {.padding = Padding::Same, .seed = 2}));
    net.add(nn::BatchNormalization(4, {.momentum = 0.9}));  // 64 steps: Keras's 0.99 lags
    net.add(nn::MaxPooling2D({2, 2}));
    net.add(nn::Flatten());
    net.add(nn::Dropout(0.25));
    net.add(nn::Dense(64, 2, nn::Activation::Softmax, {.seed = 3}));
    return net;
  };
  const nn::TensorData data = nn::TensorData::with_labels(images, {count, 64}, labels, 2);
  nn::Model model(build(), nn::categorical_crossentropy,
                  std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.01)));
  CHECK(names_of(model.network()) ==
        std::vector<std::string>{"1.weight", "1.bias", "2.gamma", "2.beta", "6.weight", "6.bias"});
  CHECK(model.network().named_buffers().size() == 2);
  const nn::History history =
      model.fit(data, {.batch_size = 32, .epochs = 8, .seed = 1, .verbose = 0});
  MESSAGE("tiny convnet: loss ", history.epochs.front()["loss"], " → ",
          history.epochs.back()["loss"]);
  CHECK(history.epochs.back()["loss"] < 0.5 * history.epochs.front()["loss"]);
  const double accuracy = model.evaluate(data)["accuracy"];
  CHECK(accuracy > 0.95);

  testing::TempDir dir;
  nn::save_weights(model.network(), dir / "cnn.safetensors");
  nn::Sequential again = build();
  nn::load_weights(again, dir / "cnn.safetensors");
  auto& bn = again.layer<nn::BatchNormalization>(2);
  CHECK(bn.moving_mean().value ==
        model.network<nn::Sequential>().layer<nn::BatchNormalization>(2).moving_mean().value);
  CHECK(bn.moving_variance().value[0] != 1.0f);  // trained, not the initial value
  nn::Model reloaded(std::move(again), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  CHECK(reloaded.evaluate(data)["accuracy"] == accuracy);
}

TEST_CASE("a convnet's training step allocates nothing once warm, on 2 threads") {
  autodiff::set_threads(2);
  std::vector<std::uint8_t> pixels(64 * 100);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::uint8_t(i * 7 % 256);
  std::vector<std::int32_t> labels(64);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 10);
  const nn::Dataset data(std::move(pixels), std::move(labels), 100, 10);
  nn::Sequential net;
  net.add(nn::Reshape({10, 10, 1}));
  net.add(nn::Conv2D(1, 4, {3, 3}, nn::Activation::Relu));
  net.add(nn::BatchNormalization(4));
  net.add(nn::AveragePooling2D({2, 2}));
  net.add(nn::MaxPooling2D({2, 2}, {.strides = {1, 1}, .padding = Padding::Same}));
  net.add(nn::Conv2D(4, 4, {2, 2}, nn::Activation::Relu, {.padding = Padding::Same}));
  net.add(nn::MaxPooling2D({2, 2}, {.strides = {1, 1}, .padding = Padding::Same}));  // fused
  net.add(nn::Flatten());
  net.add(nn::Dropout(0.5));
  net.add(nn::Dense(64, 10, nn::Activation::Softmax));
  nn::Model model(std::move(net), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  CHECK(testing::warm_step_allocations(model, data, 16) == 0);
  autodiff::set_threads(1);
}

TEST_CASE("Sequential runs Conv2D then MaxPooling2D as one op, equal to the layers called apart") {
  auto network = [] {
    nn::Sequential n;
    n.add(nn::Conv2D(2, 3, {3, 3}, nn::Activation::Relu, {.seed = 1}));
    n.add(nn::MaxPooling2D({2, 2}));
    n.add(nn::Conv2D(3, 2, {2, 2}, nn::Activation::Linear, {.seed = 2}));  // linear: fused too
    n.add(nn::MaxPooling2D({2, 2}, {.strides = {1, 1}}));
    n.add(nn::Conv2D(2, 2, {1, 1}, nn::Activation::Tanh, {.seed = 3}));  // tanh: apart
    n.add(nn::MaxPooling2D({2, 2}));
    n.add(nn::Flatten());
    return n;
  };
  const auto ops = [](const autodiff::Tape& tape, const char* kind) {
    for (const auto& row : autodiff::tape_stats(tape).rows)
      if (row.kind == kind) return row.nodes;
    return std::size_t{0};
  };
  auto run = [&ops](nn::Sequential& n, bool whole) {
    autodiff::Tape tape;
    autodiff::TapeScope scope(tape);
    const F x = F::random_uniform({3, 11, 10, 2}, -1, 1, 4);
    F y = x;
    if (whole) {
      y = n(x);
      // one op per fused pair: conv2d_max_pool2d is on the tape, max_pool2d only after the tanh
      CHECK(ops(tape, "tensor conv2d_max_pool2d") == 2);
      CHECK(ops(tape, "tensor max_pool2d") == 1);
      CHECK(ops(tape, "tensor conv2d") == 1);
    } else {
      for (std::size_t i = 0; i < n.size(); ++i) y = n.child(i)(y);
    }
    sum(y * F::random_uniform(y.shape(), -1, 1, 5)).backward();
    std::vector<float> all = y.to_vector();
    for (nn::Parameter* p : n.parameters()) all.insert(all.end(), p->grad.begin(), p->grad.end());
    return all;
  };
  nn::Sequential fused = network(), apart = network();
  CHECK(run(fused, true) == run(apart, false));

  // In tangent mode too: the fused op has tangent rules.
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  autodiff::TangentMode tangents(tape);
  nn::Sequential in_tangent_mode = network();
  (void)in_tangent_mode(F::random_uniform({3, 11, 10, 2}, -1, 1, 4));
  CHECK(ops(tape, "tensor conv2d_max_pool2d") == 2);
}
