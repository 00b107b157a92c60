#pragma once
// Second order for models: the Hessian-vector product of a loss with respect to a network's
// parameters, for sharpness (the largest eigenvalue, by power iteration), Newton-CG or
// curvature diagnostics.
//
//   nn::ParameterHvp r = nn::parameter_hvp(network, nn::SecondOrderLoss::CategoricalCrossentropy,
//                                          x, batch, y_true, v);   // r.loss, r.gradient,
//                                          r.hessian_vector
//
// The tensor ops have no second-order rule yet, so the network is evaluated on scalars, on the
// second-order tape (autodiff/second_order.hpp): exact, in double (from the float parameters),
// for a Dense or a Sequential of Dense layers, with any of their activations. About 25 ms per
// H·v for the MNIST MLP on a batch of 32 (zero inputs cost nothing).

#include <cstdint>
#include <span>
#include <vector>

#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace nn {

/// The losses parameter_hvp knows, with the definitions of nn/losses.hpp.
enum class SecondOrderLoss {
  MeanSquaredError,         // mean over every element of (y_true − y_pred)²
  CategoricalCrossentropy,  // on a softmax output: the fused form on its logits, as Keras
};

/// The loss on a batch, its gradient and H·v, over the network's parameters() in order, each
/// flattened row-major (for a Dense: weight (in × out), then bias).
struct ParameterHvp {
  double loss = 0.0;
  std::vector<double> gradient;
  std::vector<double> hessian_vector;
};

/// The network's parameters() in order, flattened, as doubles: the point parameter_hvp works at.
std::vector<double> parameter_values(Module& network);

/// H·v of `loss` on the batch x (batch × in, row-major) with targets y_true (batch × out) with
/// respect to the network's parameters, with the network's current weights. Throws
/// std::invalid_argument unless the network is a Dense or a Sequential of Dense layers whose
/// sizes chain, softmax appears only on the last layer (and, for CategoricalCrossentropy, does),
/// and x, y_true and v have the sizes these imply.
ParameterHvp parameter_hvp(Module& network, SecondOrderLoss loss, std::span<const float> x,
                           std::int64_t batch, std::span<const float> y_true,
                           std::span<const double> v);
/// The same at other parameter values (`parameters`, flattened as parameter_values gives them)
/// than the network's own: a Newton-CG step, or finite differences in double.
ParameterHvp parameter_hvp_at(Module& network, std::span<const double> parameters,
                              SecondOrderLoss loss, std::span<const float> x, std::int64_t batch,
                              std::span<const float> y_true, std::span<const double> v);

}  // namespace nn
