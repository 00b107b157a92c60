#pragma once
// Layers: the library's modules (module.hpp): Dense, Sequential.

#include <cstdint>
#include <memory>
#include <vector>

#include "autodiff/tensor.hpp"
#include "nn/module.hpp"

namespace nn {

enum class Activation { Linear, Relu, Sigmoid, Tanh, Softmax };
const char* to_string(Activation activation);
/// The activation applied to a batch (softmax along the last axis).
Tensor<float> activate(const Tensor<float>& x, Activation activation);

enum class Init {
  GlorotUniform,  // Keras's default: U(−l, l), l = √(6 / (fan_in + fan_out))
  HeUniform,      // U(−l, l), l = √(6 / fan_in): for ReLU layers
  HeNormal,       // N(0, 2 / fan_in)
};

/// Fills a layer's weights as `init` says, for the given fans (Dense: in and out; Conv2D:
/// kh·kw·in and kh·kw·filters), reproducibly from `seed`.
void initialize_weights(std::vector<float>& weights, Init init, double fan_in, double fan_out,
                        std::uint64_t seed);

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
  /// activation(x·W + b) on x's last axis: (batch, …, in) → (batch, …, out), as Keras's Dense.
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;

  std::int64_t in() const { return weight_->shape[0]; }
  std::int64_t out() const { return weight_->shape[1]; }
  Activation activation() const { return activation_; }
  /// The parameters "weight" (in, out) and "bias" (out,).
  Parameter& weights() { return *weight_; }
  Parameter& bias() { return *bias_; }

 private:
  Parameter* weight_;
  Parameter* bias_;
  Activation activation_;
};

/// Modules applied in order, named "0", "1", … unless given a name.
class Sequential : public Module {
 public:
  template <std::derived_from<Module> Layer>
  Sequential& add(Layer layer) {
    return add(std::to_string(layers_.size()), std::move(layer));
  }
  template <std::derived_from<Module> Layer>
  Sequential& add(std::string name, Layer layer) {
    layers_.push_back(&register_module(std::move(name), std::move(layer)));
    return *this;
  }
  /// A layer already on the heap (e.g. from build_architecture); throws std::invalid_argument
  /// for a null one.
  Sequential& add(std::string name, std::unique_ptr<Module> layer);
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  std::size_t size() const { return layers_.size(); }
  /// Layer i, as its type (throws if it is not one).
  template <std::derived_from<Module> M>
  M& layer(std::size_t i) {
    return child<M>(i);
  }

 private:
  std::vector<Module*> layers_;
};

}  // namespace nn
