// Step 1 of the tutorial: one neuron, sigmoid(w·x + b), with w = [0, 1], b = 4, x = [2, 3].
#include <array>

#include <fmt/core.h>

#include "nn/neuron.hpp"

int main() {
  const std::array<double, 2> weights = {0, 1};  // w1 = 0, w2 = 1
  const double bias = 4;                         // b = 4
  const nn::Neuron n(weights, bias);

  const std::array<double, 2> x = {2, 3};        // x1 = 2, x2 = 3
  fmt::print("{}\n", n.feedforward(x).value());  // 0.9990889488055994
}
