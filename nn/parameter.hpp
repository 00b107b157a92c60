#pragma once
// A trainable tensor that outlives the tape: its values and gradient are owned here, and it is
// put on the active tape (as an input whose gradient accumulates here) by on_tape().

#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace nn {

using autodiff::Shape;
using autodiff::Tensor;

/// Counts a parameter's appearances on the tape in one step and is told each time the reverse
/// sweep passes one: when it has passed them all, the parameter's gradient is complete for the
/// step. Data-parallel training (nn/data_parallel.hpp) sends each gradient as soon as it is.
struct GradientWatch {
  int recorded = 0;  // appearances on the tape since the owner last reset the counts
  int swept = 0;     // of them, passed by the reverse sweep
  void (*complete)(GradientWatch& watch) = nullptr;  // called when `swept` reaches `recorded`
  void* owner = nullptr;
};

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

  /// Set while data-parallel training watches this parameter; null otherwise.
  GradientWatch* watch = nullptr;

  /// This parameter on the active tape, for the current step.
  Tensor<float> on_tape() {
    if (!watch) return Tensor<float>::parameter(value.data(), grad.data(), shape);
    if (!autodiff::Tape::active().is_recording())
      return Tensor<float>::parameter(value.data(), grad.data(), shape);
    ++watch->recorded;
    return Tensor<float>::parameter(value.data(), grad.data(), shape, {&swept, watch});
  }

 private:
  static void swept(void* context) {
    auto& w = *static_cast<GradientWatch*>(context);
    if (++w.swept == w.recorded) w.complete(w);
  }
};

}  // namespace nn
