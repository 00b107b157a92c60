// The module tree: hierarchical names in a stable order, children reached again with their type,
// train/eval reaching every module, and a model that is not a Sequential trained by hand.
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "allocation_counter.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/optimizers.hpp"

using autodiff::Tensor;

namespace {

// A user's block: y = x + outer(relu(inner(x))), with a learnable scale of its own.
struct Residual : nn::Module {
  nn::Dense* inner;
  nn::Dense* outer;
  nn::Parameter* scale;
  explicit Residual(std::int64_t n, std::uint64_t seed = 1)
      : inner(&register_module("inner", nn::Dense(n, n, nn::Activation::Relu, {.seed = seed}))),
        outer(
            &register_module("outer", nn::Dense(n, n, nn::Activation::Linear, {.seed = seed + 1}))),
        scale(&register_parameter("scale", {1})) {
    scale->value[0] = 1.0f;
  }
  Tensor<float> forward(const Tensor<float>& x) override {
    return x + (*outer)((*inner)(x)) * scale->on_tape();
  }
  std::string describe() const override { return "Residual"; }
};

std::vector<std::string> names_of(nn::Module& m) {
  std::vector<std::string> names;
  for (const nn::NamedParameter& p : m.named_parameters()) names.push_back(p.name);
  return names;
}

}  // namespace

TEST_CASE("the module tree names every parameter after its path, in a stable order") {
  nn::Sequential model;
  model.add(nn::Dense(4, 8, nn::Activation::Relu));
  model.add("block", Residual(8));
  model.add(nn::Dense(8, 2));
  CHECK(names_of(model) == std::vector<std::string>{"0.weight", "0.bias", "block.inner.weight",
                                                    "block.inner.bias", "block.outer.weight",
                                                    "block.outer.bias", "block.scale", "2.weight",
                                                    "2.bias"});
  CHECK(model.parameter_count() == 4 * 8 + 8 + 2 * (8 * 8 + 8) + 1 + 8 * 2 + 2);
  // Children come back with their type, by position or by name.
  CHECK(model.layer<nn::Dense>(0).out() == 8);
  Residual& block = model.child<Residual>("block");
  CHECK(block.child<nn::Dense>("outer").in() == 8);
  CHECK(&block.child(0) == block.inner);
  CHECK(model.child_name(1) == "block");
  CHECK_THROWS_WITH_AS(model.child<nn::Dense>(1),
                       "child 1 is a Residual, not of the type asked for", std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.child("nope"),
                       "Sequential(3 layers): no child named \"nope\" (children: 0, block, 2)",
                       std::out_of_range);
  CHECK_THROWS_AS(model.child(7), std::out_of_range);
  // Names are checked: unique among siblings, no dots.
  CHECK_THROWS_AS(model.add("block", nn::Dense(2, 2)), std::invalid_argument);
  CHECK_THROWS_AS(model.add("a.b", nn::Dense(2, 2)), std::invalid_argument);
}

TEST_CASE("train() and eval() reach every module, and new children follow their parent") {
  nn::Sequential model;
  model.add(nn::Dense(2, 2));
  model.add("block", Residual(2));
  model.eval();
  CHECK_FALSE(model.is_training());
  CHECK_FALSE(model.child<Residual>("block").inner->is_training());
  model.add(nn::Dense(2, 2));
  CHECK_FALSE(model.child(2).is_training());
  model.train();
  CHECK(model.child<Residual>("block").outer->is_training());
}

TEST_CASE("a model that is not a Sequential trains, and moving it keeps its parameters") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  Residual block(3, 7);
  Residual moved = std::move(block);  // parameters are owned through pointers: still valid
  nn::SGD sgd(nn::SGDOptions().learning_rate(0.05));
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    tape.clear();  // the inputs are recorded anew each step, like everything else
    const auto x = Tensor<float>::from({0.5f, -1.0f, 2.0f, 1.5f, 0.0f, -0.5f}, {2, 3});
    const auto target = Tensor<float>::from({1.0f, 0.0f, 1.0f, 2.0f, 0.5f, 0.0f}, {2, 3});
    const auto loss = mean(square(moved(x) - target));
    if (step == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    const auto params = moved.parameters();
    sgd.step(params);
  }
  MESSAGE("residual block regression: loss " << first << " → " << last);
  CHECK(last < 0.01 * first);
}

TEST_CASE("a hand-written loop that never clears the tape is reported, a cleared one is not") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  auto run = [&](bool clear) {
    tape.clear();  // the previous run's parameters are gone: nothing may refer to them
    nn::Dense dense(3, 1);
    nn::SGD sgd;
    const auto params = dense.parameters();
    for (int step = 0; step < 20; ++step) {
      if (clear) tape.clear();
      const auto x = Tensor<float>::ones({4, 3});
      sum(dense(x)).backward();
      sgd.step(params);
    }
    const bool reported = sgd.tape_growth_reported();
    tape.clear();  // before `dense`, whose storage the recorded steps point into, goes
    return reported;
  };
  CHECK(run(true) == false);
  CHECK(run(false) == true);  // and a warning was printed on stderr, once
}

TEST_CASE("nn::train_step allocates nothing on a warm step") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Sequential network;
  network.add(nn::Dense(2, 4, nn::Activation::Relu));
  network.add(nn::Dense(4, 1));
  nn::Adam adam;
  auto batch = [] {
    return std::pair{Tensor<float>::from({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2}),
                     Tensor<float>::from({1.0f, 0.0f}, {2, 1})};
  };
  for (int i = 0; i < 3; ++i) nn::train_step(network, nn::mean_squared_error, adam, batch);
  testing::AllocationCounter counter;
  nn::train_step(network, nn::mean_squared_error, adam, batch);
  CHECK(counter.count() == 0);
  tape.clear();
}
