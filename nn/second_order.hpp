#pragma once
// Second order for models: the Hessian-vector product of a loss with respect to a network's
// parameters, for sharpness (the largest eigenvalue, by power iteration), Newton-CG or
// curvature diagnostics.
//
//   nn::ParameterHvp r = nn::parameter_hvp(network, nn::categorical_crossentropy, x, {32, 784},
//                                          y_true, {32, 10}, v);
//   // r.loss, r.gradient, r.hessian_vector: over network.parameters(), flattened
//
// Through the tensor ops in tangent mode (autodiff/tensor/tangent.hpp): one forward and one
// backward of the network as it trains, in float, for any module built from the library's layers
// and any loss made of tensor ops (about 2.4 gradients' time for the MNIST MLP, bench MLP_hvp).
// parameter_hvp_at is the exact double reference for Dense networks, on scalars.

#include <cstdint>
#include <span>
#include <vector>

#include "nn/layers.hpp"
#include "nn/model.hpp"
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

/// H·v of `loss` on the batch (x, y_true) with respect to the network's parameters, with its
/// current weights, in the mode it is in (train or eval), through the tensor ops in tangent mode,
/// on a tape of its own. The network's state is left as it was: its parameters' gradients,
/// BatchNormalization's moving statistics and Dropout's call counter (so repeated calls draw the
/// same dropout masks, and power iteration sees one H). Throws std::invalid_argument unless x and
/// y_true fit their shapes and v has one entry per parameter; the network's and the loss's errors
/// for shapes that do not fit them; a TapeError naming an op without second-order rules.
ParameterHvp parameter_hvp(Module& network, const Loss& loss, std::span<const float> x,
                           const Shape& x_shape, std::span<const float> y_true,
                           const Shape& y_shape, std::span<const double> v);
/// The same on the active tape, for a batch already on it, into float arrays of one entry per
/// parameter (overwritten): nothing is allocated once warm. Returns the loss.
float parameter_hvp(Module& network, const Loss& loss, const Tensor<float>& x,
                    const Tensor<float>& y_true, std::span<const float> v,
                    std::span<float> gradient, std::span<float> hessian_vector);
/// With one of the losses above, for a batch of rows (x: batch × features, y_true: batch ×
/// outputs, row-major). CategoricalCrossentropy needs a softmax output (it uses the fused form
/// on its logits, as Keras).
ParameterHvp parameter_hvp(Module& network, SecondOrderLoss loss, std::span<const float> x,
                           std::int64_t batch, std::span<const float> y_true,
                           std::span<const double> v);
/// The exact reference, in double on scalars (autodiff/second_order.hpp), at `parameters`
/// (flattened as parameter_values gives them) rather than the network's own: for checks and
/// finite differences in double. A Dense or a Sequential of Dense layers only, and slow (about
/// 25 ms per H·v for the MNIST MLP at batch 32). Throws std::invalid_argument unless the layers'
/// sizes chain, softmax appears only on the last layer (and, for CategoricalCrossentropy, does),
/// and x, y_true and v have the sizes these imply.
ParameterHvp parameter_hvp_at(Module& network, std::span<const double> parameters,
                              SecondOrderLoss loss, std::span<const float> x, std::int64_t batch,
                              std::span<const float> y_true, std::span<const double> v);

}  // namespace nn
