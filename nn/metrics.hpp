#pragma once
// Metrics: numbers about a batch's predictions that fit, evaluate and the callbacks report next to
// the loss. Each is a name and a function of (y_true, y_pred) giving the batch's mean; fit
// averages them over an epoch weighted by batch size, as Keras does. A user's metric is any such
// function.
//
//   nn::Metric within_10_percent{"within_10%", [](const auto& y_true, const auto& y_pred) { … }};

#include <functional>
#include <string>

#include "autodiff/tensor.hpp"

namespace nn {

using autodiff::Tensor;

struct Metric {
  std::string name;
  std::function<double(const Tensor<float>& y_true, const Tensor<float>& y_pred)> compute;
  /// For monitors (early stopping): whether larger is better.
  bool higher_is_better = false;
};

namespace metrics {
/// The fraction of rows predicted right: the largest prediction at the one-hot target's class
/// (targets (n, classes)), at the label (targets (n, 1) of class numbers), or on the same side of
/// 0.5 (one output, binary targets).
Metric accuracy();
/// mean |y_true − y_pred|, as "mae".
Metric mean_absolute_error();
/// mean (y_true − y_pred)², as "mse".
Metric mean_squared_error();
}  // namespace metrics

}  // namespace nn
