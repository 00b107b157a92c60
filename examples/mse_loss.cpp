// Step 2 of the tutorial: the mean squared error of a network that always predicts 0.
#include <array>

#include <fmt/core.h>

#include "nn/losses.hpp"

int main() {
  const std::array<double, 4> y_true = {1, 0, 0, 1};
  const std::array<autodiff::Var, 4> y_pred = {0.0, 0.0, 0.0,
                                               0.0};  // recorded, so ∂L/∂y_pred exists

  const autodiff::Var loss = nn::mse_loss(y_true, y_pred);
  fmt::print("{}\n", loss.value());  // 0.5
}
