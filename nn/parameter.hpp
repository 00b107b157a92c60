#pragma once
// A trainable tensor that outlives the tape: its values and gradient are owned here, and it is
// put on the active tape (as an input whose gradient accumulates here) by on_tape().

#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace nn {

using autodiff::Shape;
using autodiff::Tensor;

struct Parameter {
  Parameter(std::string name, const Shape& shape)
      : name(std::move(name)),
        shape(shape),
        value(static_cast<std::size_t>(shape.size()), 0.0f),
        grad(value.size(), 0.0f) {}

  std::string name;
  Shape shape;
  std::vector<float> value;
  std::vector<float> grad;  // accumulated by backward(); optimizers zero it after each step

  /// This parameter on the active tape, for the current step.
  Tensor<float> on_tape() { return Tensor<float>::parameter(value.data(), grad.data(), shape); }
};

}  // namespace nn
