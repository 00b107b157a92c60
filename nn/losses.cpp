#include "nn/losses.hpp"

#include <stdexcept>

#include <fmt/format.h>

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

Tensor<float> mean_squared_error(const Tensor<float>& y_true, const Tensor<float>& y_pred) {
  if (!(y_true.shape() == y_pred.shape()))
    throw std::invalid_argument(
        fmt::format("mean_squared_error: y_true {} and y_pred {} differ in shape",
                    y_true.shape().str(), y_pred.shape().str()));
  return mean(square(y_true - y_pred));
}

Tensor<float> categorical_crossentropy(const Tensor<float>& y_true, const Tensor<float>& y_pred) {
  if (!(y_true.shape() == y_pred.shape()) || y_pred.rank() != 2)
    throw std::invalid_argument(
        fmt::format("categorical_crossentropy: y_true {} and y_pred {}: expected the same shape "
                    "(batch, classes)",
                    y_true.shape().str(), y_pred.shape().str()));
  Tensor<float> logits;
  if (autodiff::is_softmax_output(y_pred, &logits))
    return cross_entropy_with_logits(logits, y_true);
  constexpr float kEpsilon = 1e-7f;
  const Tensor<float> p = y_pred / sum(y_pred, -1, true);
  const Tensor<float> clipped = minimum(maximum(p, Tensor<float>::full({}, kEpsilon)),
                                        Tensor<float>::full({}, 1.0f - kEpsilon));
  return mean(-sum(y_true * log(clipped), -1));
}

Tensor<float> categorical_crossentropy_from_logits(const Tensor<float>& y_true,
                                                   const Tensor<float>& logits) {
  return cross_entropy_with_logits(logits, y_true);
}

Tensor<float> sparse_categorical_crossentropy(std::span<const std::int32_t> labels,
                                              const Tensor<float>& y_pred) {
  if (y_pred.rank() != 2 || y_pred.shape()[0] != static_cast<std::int64_t>(labels.size()))
    throw std::invalid_argument(
        fmt::format("sparse_categorical_crossentropy: {} labels for predictions of shape {}",
                    labels.size(), y_pred.shape().str()));
  return categorical_crossentropy(autodiff::one_hot<float>(labels, y_pred.shape()[1]), y_pred);
}

}  // namespace nn
