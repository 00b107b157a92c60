// Weights exchanged with numpy through safetensors files (tests/python_reads_weights.cmake runs
// this and the Python scripts, then compares):
//   serialize_roundtrip FILE
//       writes a small model's weights to FILE, and prints one line per tensor as
//       scripts/safetensors_read.py does (name, shape, sum);
//   serialize_roundtrip --mnist-save FILE DATA_DIR
//       trains the tutorial's MNIST MLP briefly, writes its weights to FILE, and prints its
//       outputs on DATA_DIR's test images (one line of 10 per image, as
//       `scripts/mnist_numpy.py check` reads them);
//   serialize_roundtrip --mnist-load FILE DATA_DIR
//       builds the same network (from another seed), loads FILE's weights into it, and prints its
//       outputs on the test images the same way.
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/model.hpp"
#include "nn/optimizers.hpp"
#include "nn/serialize.hpp"

namespace {

void write_small_model(const std::string& path) {
  nn::Sequential model;
  model.add(nn::Dense(5, 7, nn::Activation::Relu, {.seed = 3}));
  model.add(nn::Dense(7, 3, nn::Activation::Linear, {.seed = 4}));
  for (nn::Parameter* p : model.parameters())
    if (p->shape.rank() == 1)
      for (std::size_t i = 0; i < p->value.size(); ++i)
        p->value[i] = 0.125f * static_cast<float>(i) - 0.3f;
  nn::save_weights(model, path);
  for (const nn::NamedParameter& p : model.named_parameters()) {
    double sum = 0;
    for (float v : p.parameter->value) sum += v;
    fmt::print("{} [{}] {:.6e}\n", p.name, fmt::join(p.parameter->shape.dims(), ","), sum);
  }
}

// 784 → Dense(128, relu) → Dense(10, softmax), as examples/mnist_mlp.cpp and mnist_numpy.py.
nn::Sequential mnist_network(std::uint64_t seed) {
  nn::Sequential network;
  network.add(nn::Dense(784, 128, nn::Activation::Relu, {.seed = seed}));
  network.add(nn::Dense(128, 10, nn::Activation::Softmax, {.seed = seed + 1}));
  return network;
}

void print_test_outputs(nn::Model& model, const std::string& data_dir) {
  const std::vector<float> outputs = model.predict(nn::load_mnist(data_dir, "t10k"));
  for (std::size_t row = 0; row < outputs.size(); row += 10)
    fmt::print("{:.9g}\n", fmt::join(outputs.begin() + row, outputs.begin() + row + 10, " "));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (argc == 2 && mode.rfind("--", 0) != 0) {
    write_small_model(argv[1]);
  } else if (argc == 4 && mode == "--mnist-save") {
    // One epoch on 2,000 training images: enough to make the predictions mean something.
    nn::Model model(mnist_network(5), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
    model.fit(nn::load_mnist(argv[3], "train").slice(0, 2000), {.seed = 5, .verbose = 0});
    nn::save_weights(model.network(), argv[2]);
    print_test_outputs(model, argv[3]);
  } else if (argc == 4 && mode == "--mnist-load") {
    nn::Model model(mnist_network(7));
    nn::load_weights(model.network(), argv[2]);
    print_test_outputs(model, argv[3]);
  } else {
    std::fprintf(stderr,
                 "usage: serialize_roundtrip FILE\n"
                 "       serialize_roundtrip --mnist-save FILE DATA_DIR\n"
                 "       serialize_roundtrip --mnist-load FILE DATA_DIR\n");
    return 2;
  }
  return 0;
}
