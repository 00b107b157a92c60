#include "nn/losses.hpp"

#include <stdexcept>

#include "nn/checks.hpp"

namespace nn {

namespace {
template <class T>
auto mean_squared_error(std::span<const double> y_true, std::span<const T> y_pred) {
  check_same_length(y_true.size(), y_pred.size(), "mse_loss: y_pred");
  if (y_true.empty()) throw std::invalid_argument("mse_loss: no samples (both arrays are empty)");
  T total{};
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const auto error = y_true[i] - y_pred[i];
    total += error * error;
  }
  return T(total / static_cast<double>(y_true.size()));
}
}  // namespace

Var mse_loss(std::span<const double> y_true, std::span<const Var> y_pred) {
  return mean_squared_error(y_true, y_pred);
}
double mse_loss(std::span<const double> y_true, std::span<const double> y_pred) {
  return mean_squared_error(y_true, y_pred);
}

}  // namespace nn
