#include "nn/losses.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

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

// How far a target row's sum may be from 1: float rounding of soft labels, with room to spare.
constexpr double kRowSumTolerance = 1e-3;

// Throws unless y_true and y_pred are both (batch, classes).
void check_batch_shapes(const Tensor<float>& y_true, const Tensor<float>& y_pred, const char* op,
                        const char* pred_name) {
  if (!(y_true.shape() == y_pred.shape()) || y_pred.rank() != 2 || y_pred.shape()[1] == 0)
    throw std::invalid_argument(
        fmt::format("{}: y_true {} and {} {}: expected the same shape (batch, classes)", op,
                    y_true.shape().str(), pred_name, y_pred.shape().str()));
}

// Each row of y_true must be a one-hot or probability row: entries ≥ 0 summing to 1. One pass
// over y_true, which is as small as the output layer (32 × 10 for the MLP): cheap enough for
// every training step. NaN fails both tests.
void check_target_rows(const Tensor<float>& y_true, const char* op) {
  const std::span<const float> y = y_true.data();
  const std::int64_t rows = y_true.shape()[0], classes = y_true.shape()[1];
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row = y.subspan(std::size_t(r * classes), std::size_t(classes));
    double sum = 0;
    bool non_negative = true;
    for (const float v : row) {
      non_negative &= v >= 0.0f;
      sum += double(v);
    }
    if (non_negative && std::fabs(sum - 1.0) <= kRowSumTolerance) continue;
    constexpr std::size_t kShown = 10;
    const std::size_t shown = std::min(row.size(), kShown);
    throw std::invalid_argument(fmt::format(
        "{}: y_true row {} is [{}{}] (sum {:.6g}): expected a one-hot or probability row, entries "
        "≥ 0 "
        "summing to 1",
        op, r, fmt::join(row.first(shown), ", "), row.size() > shown ? ", …" : "", sum));
  }
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
  check_batch_shapes(y_true, y_pred, "categorical_crossentropy", "y_pred");
  check_target_rows(y_true, "categorical_crossentropy");
  Tensor<float> logits;
  if (autodiff::is_softmax_output(y_pred, &logits))
    return cross_entropy_with_logits(logits, y_true);
  constexpr float kEpsilon = 1e-7f;
  const Tensor<float> p = y_pred / sum(y_pred, -1, true);
  const Tensor<float> clipped = minimum(maximum(p, kEpsilon), 1.0f - kEpsilon);
  return mean(-sum(y_true * log(clipped), -1));
}

Tensor<float> categorical_crossentropy_from_logits(const Tensor<float>& y_true,
                                                   const Tensor<float>& logits) {
  check_batch_shapes(y_true, logits, "categorical_crossentropy_from_logits", "logits");
  check_target_rows(y_true, "categorical_crossentropy_from_logits");
  return cross_entropy_with_logits(logits, y_true);
}

Tensor<float> sparse_categorical_crossentropy(std::span<const std::int32_t> labels,
                                              const Tensor<float>& y_pred) {
  if (y_pred.rank() != 2 || y_pred.shape()[0] != static_cast<std::int64_t>(labels.size()))
    throw std::invalid_argument(
        fmt::format("sparse_categorical_crossentropy: {} labels for predictions of shape {}",
                    labels.size(), y_pred.shape().str()));
  const std::int64_t classes = y_pred.shape()[1];
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw std::invalid_argument(
          fmt::format("sparse_categorical_crossentropy: label {} at row {} is outside [0, {})",
                      labels[i], i, classes));
  return categorical_crossentropy(autodiff::one_hot<float>(labels, y_pred.shape()[1]), y_pred);
}

Tensor<float> sparse_categorical_crossentropy(const Tensor<float>& y_true,
                                              const Tensor<float>& y_pred) {
  if (y_true.rank() < 1 || y_true.rank() > 2 || y_true.size() != y_true.shape()[0])
    throw std::invalid_argument(fmt::format(
        "sparse_categorical_crossentropy: labels of shape {}, expected (batch, 1) or (batch,)",
        y_true.shape().str()));
  // On the tape's arena, not the heap: this runs every training step.
  const auto count = static_cast<std::size_t>(y_true.size());
  const std::span<std::int32_t> labels(autodiff::Tape::active().allocate_array<std::int32_t>(count),
                                       count);
  const auto values = y_true.data();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!(values[i] >= 0.0f && values[i] < 2147483648.0f) || values[i] != std::floor(values[i]))
      throw std::invalid_argument(
          fmt::format("sparse_categorical_crossentropy: label {} at row {} is not a class number",
                      values[i], i));
    labels[i] = static_cast<std::int32_t>(values[i]);
  }
  return sparse_categorical_crossentropy(labels, y_pred);
}

Huber huber(double delta) {
  if (!(delta > 0) || !std::isfinite(delta))
    throw std::invalid_argument(fmt::format("huber: delta is {}, expected > 0", delta));
  return Huber{delta};
}

Tensor<float> Huber::operator()(const Tensor<float>& y_true, const Tensor<float>& y_pred) const {
  if (!(y_true.shape() == y_pred.shape()))
    throw std::invalid_argument(fmt::format("huber: y_true {} and y_pred {} differ in shape",
                                            y_true.shape().str(), y_pred.shape().str()));
  const Tensor<float> error = abs(y_pred - y_true);
  const Tensor<float> quadratic = minimum(error, delta);  // |e| up to δ
  const Tensor<float> linear = error - quadratic;         // the part beyond δ
  return mean(0.5 * square(quadratic) + delta * linear);
}

}  // namespace nn
