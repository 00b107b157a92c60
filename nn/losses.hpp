#pragma once
// Losses over scalar Vars (the tutorial's); tensor losses are in nn/tensor_losses.hpp.

#include <span>

#include "autodiff/autodiff.hpp"

namespace nn {

using autodiff::Var;

/// Mean squared error: (1/n) Σ (y_true − y_pred)². Throws std::invalid_argument if the lengths
/// differ or are 0.
Var mse_loss(std::span<const double> y_true, std::span<const Var> y_pred);
double mse_loss(std::span<const double> y_true, std::span<const double> y_pred);

}  // namespace nn
