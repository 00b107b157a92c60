#pragma once
// Layers: a Module maps a batch tensor to a batch tensor and owns its parameters.

#include <cstdint>
#include <memory>
#include <vector>

#include "autodiff/tensor.hpp"
#include "nn/parameter.hpp"

namespace nn {

enum class Activation { Linear, Relu, Sigmoid, Tanh, Softmax };
const char* to_string(Activation activation);
/// The activation applied to a batch (softmax along the last axis).
Tensor<float> activate(const Tensor<float>& x, Activation activation);

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor<float> forward(const Tensor<float>& x) = 0;
  virtual std::vector<Parameter*> parameters() = 0;
  Tensor<float> operator()(const Tensor<float>& x) { return forward(x); }
};

enum class Init {
  GlorotUniform,  // Keras's default: U(−l, l), l = √(6 / (fan_in + fan_out))
  HeUniform,      // U(−l, l), l = √(6 / fan_in): for ReLU layers
  HeNormal,       // N(0, 2 / fan_in)
};

struct DenseOptions {
  Init init = Init::GlorotUniform;
  std::uint64_t seed = 1;  // weights are reproducible from it; biases start at 0
};

/// y = activation(x · W + b): W is (in, out), b is (out,). Keras's defaults: Glorot-uniform
/// weights, zero biases.
class Dense : public Module {
 public:
  /// Throws std::invalid_argument unless in > 0, out > 0 and in · out fits a tensor
  /// (Shape::kMaxSize), and std::length_error naming the layer if the weights cannot be allocated.
  Dense(std::int64_t in, std::int64_t out, Activation activation = Activation::Linear,
        DenseOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::vector<Parameter*> parameters() override { return {&weights_, &bias_}; }

  std::int64_t in() const { return weights_.shape[0]; }
  std::int64_t out() const { return weights_.shape[1]; }
  Activation activation() const { return activation_; }
  Parameter& weights() { return weights_; }
  Parameter& bias() { return bias_; }

 private:
  Parameter weights_, bias_;
  Activation activation_;
};

/// Layers applied in order.
class Sequential : public Module {
 public:
  template <class Layer>
  Sequential& add(Layer layer) {
    layers_.push_back(std::make_unique<Layer>(std::move(layer)));
    return *this;
  }
  Tensor<float> forward(const Tensor<float>& x) override;
  std::vector<Parameter*> parameters() override;
  std::size_t size() const { return layers_.size(); }
  std::int64_t parameter_count();

 private:
  std::vector<std::unique_ptr<Module>> layers_;
};

}  // namespace nn
