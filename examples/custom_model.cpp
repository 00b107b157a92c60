// A model of your own: a residual block, y = x + Dense(relu(Dense(x))), written as a module and
// stacked with the library's Dense layers, then trained with fit on the shipped MNIST sample.
// Prints its parameters' names and shapes, the training, and last "Test accuracy: X".
#include <cstdint>
#include <string>

#include <fmt/core.h>

#include "nn/data.hpp"
#include "nn/model.hpp"

// ---- A user's module: registers its children once; the tree names their parameters ----
class Residual : public nn::Module {
 public:
  Residual(std::int64_t width, std::uint64_t seed)
      : inner_(&register_module("inner", nn::Dense(width, width, nn::Activation::Relu,
                                                   {.init = nn::Init::HeUniform, .seed = seed}))),
        outer_(&register_module(
            "outer", nn::Dense(width, width, nn::Activation::Linear, {.seed = seed + 1}))) {}

  autodiff::Tensor<float> forward(const autodiff::Tensor<float>& x) override {
    return x + (*outer_)((*inner_)(x));
  }
  std::string describe() const override { return "Residual"; }

 private:
  nn::Dense* inner_;
  nn::Dense* outer_;
};

// ---- The model: 784 → 64 → [residual 64] → 10 ----
nn::Sequential build_network(std::uint64_t seed) {
  nn::Sequential network;
  network.add("embed", nn::Dense(784, 64, nn::Activation::Relu, {.seed = seed}));
  network.add("block", Residual(64, seed + 1));
  network.add("classify", nn::Dense(64, 10, nn::Activation::Softmax, {.seed = seed + 3}));
  return network;
}

int main(int argc, char** argv) {
  const std::string data = argc > 1 ? argv[1] : AUTODIFF_DEFAULT_DATA_DIR;
  try {
    const nn::Dataset train = nn::load_mnist(data, "train");
    const nn::Dataset test = nn::load_mnist(data, "t10k");
    nn::Model model(build_network(1), nn::categorical_crossentropy, std::make_unique<nn::Adam>());

    for (const nn::NamedParameter& p : model.network().named_parameters())
      fmt::print("{:<22} {}\n", p.name, p.parameter->shape.str());
    fmt::print("{} parameters\n", model.network().parameter_count());

    model.fit(train,
              {.batch_size = 32, .epochs = 5, .validation_split = 0.1, .seed = 1, .verbose = 2});
    fmt::print("Test accuracy: {}\n", model.evaluate(test)["accuracy"]);
  } catch (const std::exception& error) {
    fmt::print(stderr, "custom_model: {}\n", error.what());
    return 1;
  }
}
