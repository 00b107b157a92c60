// The README's snippets, verbatim, so that what it shows compiles and does what it says.
#include <algorithm>
#include <cassert>
#include <cmath>

#include <doctest/doctest.h>
#include <fmt/core.h>

#include "autodiff/autodiff.hpp"
#include "nn/model.hpp"
#include "nn/neuron.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using namespace autodiff;

TEST_CASE("README: gradients") {
  Tape tape;
  TapeScope scope(tape);
  Var x = 2.0, y = 3.0;    // inputs: leaves of the tape
  Var f = x * y + sin(x);  // one recorded statement
  f.backward();            // one reverse sweep
  CHECK(x.grad() == doctest::Approx(3 + std::cos(2.0)).epsilon(1e-15));
  auto [dx, dy] = gradient(f, x, y);  // the same, as a function: fresh values
  CHECK(dx == doctest::Approx(3 + std::cos(2.0)).epsilon(1e-15));
  CHECK(dy == 2.0);
}

TEST_CASE("README: check_gradient") {
  auto check = check_gradient([](std::span<const Var> p) { return Var(p[0] * sin(p[1])); },
                              {0.5, 2.0},                             // the point
                              {std::sin(2.0), 0.5 * std::cos(2.0)});  // optional: by hand
  const std::string table = check.table({"a", "b"});
  CHECK(table.find("       a ") != std::string::npos);
  CHECK(check.passed());
}

TEST_CASE("README: tensors on the same tape") {
  Tape tape;
  TapeScope scope(tape);
  using T = Tensor<double>;
  Var s = 1.5;
  T w = T::from({0.5, -1.0, 2.0}, {3}).requires_grad();
  Var loss = s * to_var(sum(square(w))) + sin(s);
  loss.backward();  // s.grad() and w.grad() are both filled
  CHECK(s.grad() == doctest::Approx(5.25 + std::cos(1.5)).epsilon(1e-15));
  CHECK(w.grad() == std::vector<double>{1.5, -3.0, 6.0});
}

namespace readme {
struct StableSoftplus {  // log(1 + eˣ), with its own derivative: 0.5 at 0, not relu's 0
  static constexpr auto value = []<class T>(T x) {
    return std::max(x, T(0)) + std::log1p(std::exp(-std::fabs(x)));
  };
  static constexpr auto derivative = []<class T>(T x, T /*y*/) { return 1 / (1 + std::exp(-x)); };
};
struct StraightThroughClip {  // clip in forward, identity in backward
  static constexpr const char* name = "straight_through_clip";
  double low, high;  // the op's state: copied onto the tape for backward
  Shape output_shape(const Shape& x) const { return x; }
  template <class T>
  void forward(OpContext<T, 1>& ctx) const {
    auto x = ctx.input(0);
    auto y = ctx.output();
    for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i], T(low), T(high));
  }
  template <class T>
  void backward(OpContext<T, 1>& ctx) const {
    auto g = ctx.output_grad();
    auto gx = ctx.input_grad(0);  // empty when input 0 needs no gradient
    for (std::int64_t i = 0; i < g.size(); ++i) gx[i] += g[i];
  }
};
}  // namespace readme

TEST_CASE("README: your own ops") {
  using readme::StableSoftplus, readme::StraightThroughClip;
  Tape tape;
  TapeScope scope(tape);
  Var x = 0.0;
  const auto t = Tensor<float>::from({-2.0f, 0.0f, 3.0f}, {3}).requires_grad();
  Var y = elementwise<StableSoftplus>(x);            // on a Var
  Tensor<float> z = elementwise<StableSoftplus>(t);  // on a tensor, same struct
  y.backward();
  CHECK(x.grad() == 0.5);
  sum(z).backward();
  CHECK(t.grad()[1] == 0.5f);
  Tensor<float> clipped = apply(StraightThroughClip{-1, 1}, t);
  CHECK(clipped.to_vector() == std::vector<float>{-1.0f, 0.0f, 1.0f});
}

TEST_CASE("README: one neuron") {
  const std::array<double, 2> weights = {0, 1};  // w1 = 0, w2 = 1
  const nn::Neuron n(weights, 4);                // b = 4
  const std::array<double, 2> x = {2, 3};
  CHECK(fmt::format("{}", n.feedforward(x).value()) == "0.9990889488055994");
}

TEST_CASE("README: the MNIST MLP") {
  const nn::Dataset train = nn::load_mnist(AUTODIFF_DATA_DIR, "train").slice(0, 640);
  const nn::Dataset test = nn::load_mnist(AUTODIFF_DATA_DIR, "t10k").slice(0, 200);
  nn::Sequential network;
  network.add(nn::Dense(784, 128, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(128, 10, nn::Activation::Softmax, {.seed = 2}));
  nn::Model model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  model.fit(train,
            {.batch_size = 32, .epochs = 1, .validation_split = 0.1, .seed = 1, .verbose = 0});
  CHECK(model.evaluate(test)["accuracy"] > 0.6);
}

namespace readme {
using autodiff::Tensor;
class Residual : public nn::Module {  // y = x + Dense(relu(Dense(x)))
 public:
  Residual(std::int64_t width, std::uint64_t seed)
      : inner_(&register_module("inner",
                                nn::Dense(width, width, nn::Activation::Relu, {.seed = seed}))),
        outer_(&register_module(
            "outer", nn::Dense(width, width, nn::Activation::Linear, {.seed = seed + 1}))) {}
  Tensor<float> forward(const Tensor<float>& x) override { return x + (*outer_)((*inner_)(x)); }

 private:
  nn::Dense* inner_;
  nn::Dense* outer_;
};
nn::Sequential build_network(std::uint64_t seed) {
  nn::Sequential network;
  network.add(nn::Dense(1, 16, nn::Activation::Tanh, {.seed = seed}));
  network.add(nn::Dense(16, 1, nn::Activation::Linear, {.seed = seed + 1}));
  return network;
}
}  // namespace readme

TEST_CASE("README: models of your own") {
  using readme::Residual;
  nn::Sequential network;
  network.add("embed", nn::Dense(784, 64, nn::Activation::Relu));
  network.add("block", Residual(64, 2));
  network.add("classify", nn::Dense(64, 10, nn::Activation::Softmax));
  // named_parameters(): embed.weight, embed.bias, block.inner.weight, …, classify.bias
  Residual& block = network.child<Residual>("block");
  CHECK(network.named_parameters()[2].name == "block.inner.weight");
  CHECK(network.named_parameters().back().name == "classify.bias");
  CHECK(network.parameter_count() == 59'210);
  (void)block;
}

TEST_CASE("README: a regression with fit") {
  using readme::build_network;
  const std::uint64_t seed = 1;
  std::vector<float> x(200), y(200);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = -1.0f + 2.0f * float(i) / 200.0f;
    y[i] = std::sin(3 * x[i]);
  }
  const nn::TensorData test(x, {200, 1}, y, {200, 1});
  nn::TensorData train(x, {200, 1}, y, {200, 1});
  nn::Model model(build_network(seed), nn::huber(1.0), std::make_unique<nn::Adam>(),
                  {nn::metrics::mean_squared_error()});
  nn::EarlyStopping early({.monitor = "val_loss", .patience = 5});  // restores the best weights
  nn::LearningRateScheduler cosine = nn::cosine_decay(1e-3, 150);
  model.fit(train,
            {.epochs = 150, .validation_split = 0.1, .verbose = 0, .callbacks = {&early, &cosine}});
  double mse = model.evaluate(test)["mse"];
  CHECK(mse < 0.5);
}

TEST_CASE("README: model files") {
  testing::TempDir dir;
  const auto in_dir = [&](const char* name) { return dir / name; };
  nn::Sequential network;
  network.add(nn::Dense(3, 4, nn::Activation::Relu));
  network.add(nn::Dense(4, 2, nn::Activation::Softmax));
  nn::Model trainer(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  std::vector<float> x(60);
  std::vector<std::int32_t> labels(20);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = x[3 * i] > 0;
  const auto data = nn::TensorData::with_labels(x, {20, 3}, labels, 2);
  nn::Module& model = trainer.network();

  nn::save_weights(model, in_dir("w.safetensors"));  // the parameters only
  nn::Sequential same_structure;
  same_structure.add(nn::Dense(3, 4, nn::Activation::Relu));
  same_structure.add(nn::Dense(4, 2, nn::Activation::Softmax));
  nn::load_weights(same_structure, in_dir("w.safetensors"));
  nn::save_model(model, in_dir("m.safetensors"));  // + the architecture, as JSON
  std::unique_ptr<nn::Module> m = nn::load_model(in_dir("m.safetensors"));
  CHECK(m->parameter_count() == 26);
  nn::ModelCheckpoint every_epoch(in_dir("run.ckpt"));
  trainer.fit(data, {.epochs = 2, .verbose = 0, .callbacks = {&every_epoch}});
  nn::load_checkpoint(trainer, in_dir("run.ckpt"));  // weights, optimizer, epoch, shuffling state
  trainer.fit(data, {.epochs = 10, .initial_epoch = trainer.progress().epoch, .verbose = 0});
  CHECK(trainer.progress().history.epochs.size() == 10);
}
