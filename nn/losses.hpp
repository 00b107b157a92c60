#pragma once
// Losses. Over scalar Vars: the tutorial's MSE. Over batches of tensors: y_true and y_pred are
// (batch, classes), and each loss returns the mean over the batch as a one-element tensor.

#include <cstdint>
#include <span>

#include "autodiff/autodiff.hpp"

namespace nn {

using autodiff::Tensor;
using autodiff::Var;

/// Mean squared error: (1/n) Σ (y_true − y_pred)². Throws std::invalid_argument if the lengths
/// differ or are 0.
Var mse_loss(std::span<const double> y_true, std::span<const Var> y_pred);
double mse_loss(std::span<const double> y_true, std::span<const double> y_pred);

/// mean((y_true − y_pred)²) over every element. Throws std::invalid_argument if the shapes differ.
Tensor<float> mean_squared_error(const Tensor<float>& y_true, const Tensor<float>& y_pred);

/// Keras's categorical cross-entropy on probabilities: rows of y_pred are renormalised to sum
/// to 1 and clipped to [1e-7, 1 − 1e-7], then −Σ y_true·log(y_pred), averaged over the batch.
/// As in Keras, when y_pred is the output of a softmax the fused, exact form on its logits is
/// used instead (same value where the clipping does not bite, and a gradient that never
/// vanishes).
///
/// Throws std::invalid_argument, naming the row and showing it, unless y_true and y_pred are
/// both (batch, classes) and every row of y_true is one-hot or a probability row (entries ≥ 0
/// summing to 1 within 1e-3; soft labels are fine): an all-zero row would give a loss and a
/// gradient of 0, a negative entry a negative loss.
Tensor<float> categorical_crossentropy(const Tensor<float>& y_true, const Tensor<float>& y_pred);

/// The fused, numerically stable form: y_pred holds logits (no softmax applied). Checks y_true as
/// categorical_crossentropy does.
Tensor<float> categorical_crossentropy_from_logits(const Tensor<float>& y_true,
                                                   const Tensor<float>& logits);

/// Integer labels in [0, classes) instead of one-hot rows; throws std::invalid_argument naming the
/// row of a label outside that range.
Tensor<float> sparse_categorical_crossentropy(std::span<const std::int32_t> labels,
                                              const Tensor<float>& y_pred);
/// The same with the labels as a (batch, 1) or (batch,) tensor of class numbers (what
/// TensorData::with_labels(…, one_hot = false) holds): usable as a Loss in fit. Throws
/// std::invalid_argument, naming the row, for a label that is not a class number.
Tensor<float> sparse_categorical_crossentropy(const Tensor<float>& y_true,
                                              const Tensor<float>& y_pred);
/// The same as a function object, to pass where a Loss is expected (the name is overloaded).
struct SparseCategoricalCrossentropy {
  Tensor<float> operator()(const Tensor<float>& y_true, const Tensor<float>& y_pred) const {
    return sparse_categorical_crossentropy(y_true, y_pred);
  }
};

/// Huber loss (Keras's): with e = y_pred − y_true, the mean of ½e² where |e| ≤ δ and
/// δ·(|e| − ½δ) elsewhere — quadratic near 0, linear in the tails, so outliers pull less.
struct Huber {
  double delta = 1.0;
  Tensor<float> operator()(const Tensor<float>& y_true, const Tensor<float>& y_pred) const;
};
/// Throws std::invalid_argument unless delta > 0.
Huber huber(double delta = 1.0);

using LossFunction = Tensor<float> (*)(const Tensor<float>& y_true, const Tensor<float>& y_pred);

}  // namespace nn
