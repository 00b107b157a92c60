#include "nn/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace nn::metrics {
namespace {
void require_rows(const char* metric, const Tensor<float>& y_true, const Tensor<float>& y_pred) {
  if (y_true.rank() < 1 || y_pred.rank() < 1 || y_true.shape()[0] != y_pred.shape()[0])
    throw std::invalid_argument(fmt::format("{}: y_true {} and y_pred {} have different rows",
                                            metric, y_true.shape().str(), y_pred.shape().str()));
}
}  // namespace

Metric accuracy() {
  auto compute = [](const Tensor<float>& y_true, const Tensor<float>& y_pred) {
    require_rows("accuracy", y_true, y_pred);
    const std::int64_t rows = y_pred.shape()[0];
    if (rows == 0) return 0.0;
    const std::int64_t true_width = y_true.size() / rows, pred_width = y_pred.size() / rows;
    const auto p = y_pred.data(), t = y_true.data();
    std::int64_t correct = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      // A row with a NaN predicts nothing: never counted as right, whatever its target.
      if (std::any_of(p.begin() + r * pred_width, p.begin() + (r + 1) * pred_width,
                      [](float v) { return std::isnan(v); }))
        continue;
      if (pred_width == 1 && true_width == 1) {
        correct += (p[r] > 0.5f) == (t[r] > 0.5f);
        continue;
      }
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < pred_width; ++j)
        if (p[r * pred_width + j] > p[r * pred_width + best]) best = j;
      if (true_width == 1) {
        correct += float(best) == t[r];
      } else if (true_width == pred_width) {
        std::int64_t target = 0;
        for (std::int64_t j = 1; j < true_width; ++j)
          if (t[r * true_width + j] > t[r * true_width + target]) target = j;
        correct += best == target;
      } else {
        throw std::invalid_argument(
            fmt::format("accuracy: y_true {} fits neither one-hot rows nor labels for y_pred {}",
                        y_true.shape().str(), y_pred.shape().str()));
      }
    }
    return double(correct) / double(rows);
  };
  return {"accuracy", compute, true};
}

Metric mean_absolute_error() {
  auto compute = [](const Tensor<float>& y_true, const Tensor<float>& y_pred) {
    require_rows("mae", y_true, y_pred);
    return double(mean(abs(y_true - y_pred)).item());
  };
  return {"mae", compute, false};
}

Metric mean_squared_error() {
  auto compute = [](const Tensor<float>& y_true, const Tensor<float>& y_pred) {
    require_rows("mse", y_true, y_pred);
    return double(mean(square(y_true - y_pred)).item());
  };
  return {"mse", compute, false};
}

}  // namespace nn::metrics
