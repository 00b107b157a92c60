// Writes a small model's weights to the path given, and prints one line per tensor as
// scripts/safetensors_read.py does (name, shape, sum): the python_reads_weights test compares the
// two.
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "nn/layers.hpp"
#include "nn/serialize.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: serialize_roundtrip FILE\n");
    return 2;
  }
  nn::Sequential model;
  model.add(nn::Dense(5, 7, nn::Activation::Relu, {.seed = 3}));
  model.add(nn::Dense(7, 3, nn::Activation::Linear, {.seed = 4}));
  for (nn::Parameter* p : model.parameters())
    if (p->shape.rank() == 1)
      for (std::size_t i = 0; i < p->value.size(); ++i)
        p->value[i] = 0.125f * static_cast<float>(i) - 0.3f;
  nn::save_weights(model, argv[1]);
  for (const nn::NamedParameter& p : model.named_parameters()) {
    double sum = 0;
    for (float v : p.parameter->value) sum += v;
    fmt::print("{} [{}] {:.6e}\n", p.name, fmt::join(p.parameter->shape.dims(), ","), sum);
  }
  return 0;
}
