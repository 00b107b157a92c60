#pragma once
// The tutorial's neuron: sigmoid(w·x + b).

#include <span>
#include <vector>

#include "autodiff/autodiff.hpp"
#include "nn/checks.hpp"

namespace nn {

using autodiff::Var;

class Neuron {
 public:
  /// Weights and bias become inputs (leaves) of the active tape, so their gradients can be read
  /// after backward().
  Neuron(std::span<const double> weights, double bias)
      : weights_(weights.begin(), weights.end()), bias_(bias) {}

  /// sigmoid(w·x + b). Throws std::invalid_argument unless x has one entry per weight.
  Var feedforward(std::span<const double> inputs) const { return weigh(inputs); }
  Var feedforward(std::span<const Var> inputs) const { return weigh(inputs); }

  std::span<const Var> weights() const { return weights_; }
  const Var& bias() const { return bias_; }

 private:
  template <class T>
  Var weigh(std::span<const T> inputs) const;

  std::vector<Var> weights_;
  Var bias_;
};

template <class T>
Var Neuron::weigh(std::span<const T> inputs) const {
  check_same_length(weights_.size(), inputs.size(), "Neuron::feedforward: inputs");
  Var total = bias_;
  for (std::size_t i = 0; i < inputs.size(); ++i) total += weights_[i] * inputs[i];
  return sigmoid(total);
}

}  // namespace nn
