// Links autodiff::autodiff and autodiff::nn from another project; prints two gradients.
#include <fmt/core.h>

#include "autodiff/autodiff.hpp"
#include "nn/layers.hpp"

int main() {
  using namespace autodiff;
  const Var x = 2.0, y = 3.0;
  auto [dx, dy] = gradient(Var(x * y + sin(x)), x, y);
  nn::Dense dense(2, 1, nn::Activation::Linear);
  const auto w = Tensor<float>::from({1.0f, 1.0f}, {1, 2});
  sum(dense(w)).backward();
  fmt::print("dx = {:.6f}, dy = {:.6f}, dense bias grad = {}\n", dx, dy, dense.bias().grad[0]);
  return dx == 3 + std::cos(2.0) && dy == 2.0 && dense.bias().grad[0] == 1.0f ? 0 : 1;
}
