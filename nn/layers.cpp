#include "nn/layers.hpp"

#include <cmath>
#include <new>
#include <random>
#include <stdexcept>
#include <typeinfo>

#include <fmt/format.h>

#include "autodiff/inspect/notes.hpp"
#include "nn/conv_layers.hpp"

namespace nn {

const char* to_string(Activation activation) {
  switch (activation) {
    case Activation::Linear:
      return "linear";
    case Activation::Relu:
      return "relu";
    case Activation::Sigmoid:
      return "sigmoid";
    case Activation::Tanh:
      return "tanh";
    case Activation::Softmax:
      return "softmax";
  }
  return "?";
}

Tensor<float> activate(const Tensor<float>& x, Activation activation) {
  switch (activation) {
    case Activation::Linear:
      return x;
    case Activation::Relu:
      return relu(x);
    case Activation::Sigmoid:
      return sigmoid(x);
    case Activation::Tanh:
      return tanh(x);
    case Activation::Softmax:
      return softmax(x);
  }
  return x;
}

namespace {
// (in, out), checked: both > 0, and in · out elements a tensor can hold.
Shape dense_weights_shape(std::int64_t in, std::int64_t out) {
  if (in <= 0 || out <= 0)
    throw std::invalid_argument(
        fmt::format("Dense: in = {} and out = {}: both must be > 0", in, out));
  std::int64_t count = 0;
  if (__builtin_mul_overflow(in, out, &count) || count > Shape::kMaxSize)
    throw std::invalid_argument(
        fmt::format("Dense({} → {}): {} × {} weights are more than a tensor can hold ({})", in, out,
                    in, out, Shape::kMaxSize));
  return Shape{in, out};
}
}  // namespace

Dense::Dense(std::int64_t in, std::int64_t out, Activation activation, DenseOptions options) try
    : activation_(activation) {
  weight_ = &register_parameter("weight", dense_weights_shape(in, out));
  bias_ = &register_parameter("bias", {out});
  initialize_weights(weight_->value, options.init, double(in), double(out), options.seed);
} catch (const std::bad_alloc&) {
  throw std::length_error(fmt::format(
      "Dense({} → {}): not enough memory for {} weights and their gradients", in, out, in * out));
}

void initialize_weights(std::vector<float>& weights, Init init, double fan_in, double fan_out,
                        std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  switch (init) {
    case Init::GlorotUniform:
    case Init::HeUniform: {
      const double limit = init == Init::GlorotUniform ? std::sqrt(6.0 / (fan_in + fan_out))
                                                       : std::sqrt(6.0 / fan_in);
      std::uniform_real_distribution<float> uniform(float(-limit), float(limit));
      for (float& w : weights) w = uniform(rng);
      break;
    }
    case Init::HeNormal: {
      std::normal_distribution<float> normal(0.0f, float(std::sqrt(2.0 / fan_in)));
      for (float& w : weights) w = normal(rng);
      break;
    }
  }
}

Tensor<float> Dense::forward(const Tensor<float>& x) {
  // Keras's Dense: on the last axis, for inputs of any rank from 2 (a (batch, steps, in)
  // sequence through one (in, out) weight is one product: matmul folds the batches).
  if (x.rank() < 2 || x.shape()[x.rank() - 1] != in())
    throw std::invalid_argument(
        fmt::format("Dense({} → {}): input has shape {}, expected (batch, …, {})", in(), out(),
                    x.shape().str(), in()));
  return activate(matmul(x, weight_->on_tape()) + bias_->on_tape(), activation_);
}

Tensor<float> Sequential::forward(const Tensor<float>& x) {
  Tensor<float> y = x;
  if (autodiff::Tape::active().notes()) [[unlikely]] {  // inspected: each layer's ops labelled
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const autodiff::Label label(child_name(i) + " " + layers_[i]->describe());
      y = layers_[i]->forward(y);
    }
    return y;
  }
  // A Conv2D followed by a MaxPooling2D runs as one op (conv_pool.hpp), except when inspected
  // (above: each layer's ops labelled apart).
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    // The exact types: a subclass may have a forward of its own.
    Module& layer = *layers_[i];
    if (i + 1 < layers_.size() && typeid(layer) == typeid(Conv2D)) {
      const Module& next = *layers_[i + 1];
      if (typeid(next) == typeid(MaxPooling2D)) {
        const auto& pool = static_cast<const MaxPooling2D&>(next);
        y = static_cast<Conv2D&>(layer).forward_max_pooled(y, pool.window());
        ++i;
        continue;
      }
    }
    y = layer.forward(y);
  }
  return y;
}

std::string Dense::describe() const {
  return fmt::format("Dense({} → {}, {})", weight_->shape[0], weight_->shape[1],
                     to_string(activation_));
}

Sequential& Sequential::add(std::string name, std::unique_ptr<Module> layer) {
  if (!layer)
    throw std::invalid_argument(fmt::format("Sequential::add: layer \"{}\" is null", name));
  Module* added = layer.get();
  adopt(std::move(name), std::move(layer));
  layers_.push_back(added);
  return *this;
}

std::string Sequential::describe() const { return fmt::format("Sequential({} layers)", size()); }

}  // namespace nn
