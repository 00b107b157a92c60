#pragma once
// Layers for convolutional networks, as Keras names them: Conv2D, MaxPooling2D,
// AveragePooling2D, GlobalAveragePooling2D, Flatten, Reshape, Dropout, BatchNormalization.
// Images are NHWC (batch, height, width, channels); the ops are in autodiff/tensor/conv.hpp,
// pooling.hpp and normalization.hpp.
//
//   nn::Sequential network;
//   network.add(nn::Reshape({28, 28, 1}));                       // (batch, 784) → images
//   network.add(nn::Conv2D(1, 32, {3, 3}, nn::Activation::Relu));
//   network.add(nn::MaxPooling2D({2, 2}));
//   network.add(nn::Flatten());
//   network.add(nn::Dropout(0.5));
//   network.add(nn::Dense(5408, 10, nn::Activation::Softmax));
//
// Each layer reports its configuration through describe() (one line) and options() (the typed
// values it was built with), so that an architecture can be written out and built again.

#include <array>
#include <cstdint>
#include <vector>

#include "nn/layers.hpp"

namespace nn {

using autodiff::Padding;
/// (height, width).
using Size2D = std::array<std::int64_t, 2>;

struct Conv2DOptions {
  Size2D strides = {1, 1};
  Padding padding = Padding::Valid;
  bool use_bias = true;
  Init init = Init::GlorotUniform;  // Keras's: fan_in = kh·kw·in, fan_out = kh·kw·filters
  std::uint64_t seed = 1;           // weights are reproducible from it; biases start at 0
};

/// y = activation(conv(x, W) + b) on NHWC images: W is (kh, kw, in_channels, filters) (Keras's
/// layout), b is (filters,). A ReLU is fused into the convolution.
class Conv2D : public Module {
 public:
  /// Throws std::invalid_argument unless every size is > 0 and the kernel fits a tensor.
  Conv2D(std::int64_t in_channels, std::int64_t filters, Size2D kernel_size,
         Activation activation = Activation::Linear, Conv2DOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  /// max_pool2d(forward(x), pool) as one op (autodiff::conv2d_max_pool2d: the full-size output
  /// stays in cache) when the activation is ReLU or linear; otherwise the two apart. Equal bit
  /// for bit either way. nn::Sequential calls it for a Conv2D followed by a MaxPooling2D.
  Tensor<float> forward_max_pooled(const Tensor<float>& x, const autodiff::Window2D& pool);

  std::int64_t in_channels() const { return weight_->shape[2]; }
  std::int64_t filters() const { return weight_->shape[3]; }
  Size2D kernel_size() const { return {weight_->shape[0], weight_->shape[1]}; }
  Activation activation() const { return activation_; }
  const Conv2DOptions& options() const { return options_; }
  /// The parameters "weight" (kh, kw, in, filters) and "bias" (filters,), if use_bias.
  Parameter& weights() { return *weight_; }
  Parameter* bias() { return bias_; }

 private:
  void check_input(const Tensor<float>& x) const;
  autodiff::Conv2D op() const;

  Parameter* weight_;
  Parameter* bias_ = nullptr;
  Activation activation_;
  Conv2DOptions options_;
};

struct PoolOptions {
  Size2D strides = {0, 0};  // 0: the pool size (Keras's default)
  Padding padding = Padding::Valid;
};

/// The largest value of each window, per channel.
class MaxPooling2D : public Module {
 public:
  explicit MaxPooling2D(Size2D pool_size = {2, 2}, PoolOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  const autodiff::Window2D& window() const { return window_; }

 private:
  autodiff::Window2D window_;
};

/// The mean of each window's real pixels (padding excluded), per channel.
class AveragePooling2D : public Module {
 public:
  explicit AveragePooling2D(Size2D pool_size = {2, 2}, PoolOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  const autodiff::Window2D& window() const { return window_; }

 private:
  autodiff::Window2D window_;
};

/// (batch, h, w, c) → (batch, c): the mean over all pixels.
class GlobalAveragePooling2D : public Module {
 public:
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override { return "GlobalAveragePooling2D()"; }
};

/// (batch, …) → (batch, everything else): a view, no copy.
class Flatten : public Module {
 public:
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override { return "Flatten()"; }
};

/// (batch, …) → (batch, target…), the batch axis kept, as Keras's Reshape; one dimension of the
/// target may be −1. A view, no copy.
class Reshape : public Module {
 public:
  /// Throws std::invalid_argument for more than 3 dimensions, or one < −1 or 0.
  explicit Reshape(std::vector<std::int64_t> target);
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  const std::vector<std::int64_t>& target() const { return target_; }

 private:
  std::vector<std::int64_t> target_;
};

struct DropoutOptions {
  std::uint64_t seed = 1;  // the masks of every step are reproducible from it
};

/// Training mode: each value is kept with probability 1 − rate and scaled by 1/(1 − rate), with
/// a fresh mask per call (drawn from the seed and the call's number, a counter that checkpoints
/// keep); evaluation mode: the identity.
class Dropout : public Module {
 public:
  /// Throws std::invalid_argument unless 0 ≤ rate < 1.
  explicit Dropout(double rate, DropoutOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  double rate() const { return rate_; }
  const DropoutOptions& options() const { return options_; }

 protected:
  void on_batch_share(const BatchShare& share) override;

 private:
  double rate_;
  DropoutOptions options_;
  std::uint64_t* calls_;        // the counter "calls": training steps taken, for exact resumes
  std::int64_t first_row_ = 0;  // of the input in the global batch (data-parallel shares)
};

/// Keras's defaults.
struct BatchNormOptions {
  double momentum = 0.99;
  double epsilon = 1e-3;
};

/// Per channel (the last axis): in training mode, normalised with the batch's mean and biased
/// variance, and the moving statistics updated as moving ← moving·momentum + batch·(1 − momentum);
/// in evaluation mode, normalised with the moving statistics. Then y = γ·x̂ + β. Parameters
/// "gamma" (ones) and "beta" (zeros); buffers (saved with the model, never trained)
/// "moving_mean" (zeros) and "moving_variance" (ones).
class BatchNormalization : public Module {
 public:
  /// Throws std::invalid_argument unless channels > 0, momentum ∈ [0, 1] and epsilon > 0.
  explicit BatchNormalization(std::int64_t channels, BatchNormOptions options = {});
  Tensor<float> forward(const Tensor<float>& x) override;
  std::string describe() const override;
  std::int64_t channels() const { return gamma_->shape[0]; }
  const BatchNormOptions& options() const { return options_; }
  Parameter& gamma() { return *gamma_; }
  Parameter& beta() { return *beta_; }
  Parameter& moving_mean() { return *moving_mean_; }
  Parameter& moving_variance() { return *moving_variance_; }

 private:
  Parameter *gamma_, *beta_, *moving_mean_, *moving_variance_;
  BatchNormOptions options_;
  std::vector<float> batch_mean_, batch_variance_;  // the last training batch's, reused
};

}  // namespace nn
