#include "nn/conv_layers.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace nn {

using autodiff::Window2D;

namespace {

std::string size_str(Size2D s) { return fmt::format("{}×{}", s[0], s[1]); }

// A window is at most as large as a tensor's dimension can be (Shape::kMaxSize): then the padding
// of a "same" window, (out − 1)·stride + window − in with (out − 1)·stride < in, cannot overflow.
Window2D pool_window(Size2D pool, PoolOptions options, const char* layer) {
  constexpr std::int64_t most = autodiff::Shape::kMaxSize;
  if (pool[0] < 1 || pool[1] < 1 || pool[0] > most || pool[1] > most || options.strides[0] < 0 ||
      options.strides[1] < 0)
    throw std::invalid_argument(fmt::format(
        "{}: pool size {} and strides {}: expected sizes in [1, {}] and strides ≥ 0 (0: "
        "the pool size)",
        layer, size_str(pool), size_str(options.strides), most));
  return {pool[0], pool[1], options.strides[0] ? options.strides[0] : pool[0],
          options.strides[1] ? options.strides[1] : pool[1], options.padding};
}

std::string window_str(const char* layer, const Window2D& w) {
  return fmt::format("{}({}×{}, strides {}×{}, {})", layer, w.height, w.width, w.stride_h,
                     w.stride_w, autodiff::to_string(w.padding));
}

}  // namespace

Conv2D::Conv2D(std::int64_t in_channels, std::int64_t filters, Size2D kernel_size,
               Activation activation, Conv2DOptions options)
    : activation_(activation), options_(options) {
  const auto [kh, kw] = kernel_size;
  if (in_channels <= 0 || filters <= 0 || kh <= 0 || kw <= 0 || options.strides[0] <= 0 ||
      options.strides[1] <= 0)
    throw std::invalid_argument(
        fmt::format("Conv2D: in_channels {}, filters {}, kernel {}, strides {}: all must be > 0",
                    in_channels, filters, size_str(kernel_size), size_str(options.strides)));
  weight_ = &register_parameter("weight", Shape{kh, kw, in_channels, filters});
  if (options.use_bias) bias_ = &register_parameter("bias", Shape{filters});
  initialize_weights(weight_->value, options.init, double(kh * kw * in_channels),
                     double(kh * kw * filters), options.seed);
}

void Conv2D::check_input(const Tensor<float>& x) const {
  if (x.rank() != 4 || x.shape()[3] != in_channels())
    throw std::invalid_argument(
        fmt::format("{}: input has shape {}, expected (batch, height, width, {})", describe(),
                    x.shape().str(), in_channels()));
}

autodiff::Conv2D Conv2D::op() const {
  return {options_.strides[0], options_.strides[1], options_.padding,
          activation_ == Activation::Relu};
}

Tensor<float> Conv2D::forward(const Tensor<float>& x) {
  check_input(x);
  const autodiff::Conv2D conv = op();
  const Tensor<float> y = bias_ ? apply(conv, x, weight_->on_tape(), bias_->on_tape())
                                : apply(conv, x, weight_->on_tape());
  return conv.relu ? y : activate(y, activation_);
}

Tensor<float> Conv2D::forward_max_pooled(const Tensor<float>& x, const autodiff::Window2D& pool) {
  if (activation_ != Activation::Relu && activation_ != Activation::Linear)
    return max_pool2d(forward(x), pool);
  check_input(x);
  const autodiff::Conv2DMaxPool2D fused{op(), pool};
  return bias_ ? apply(fused, x, weight_->on_tape(), bias_->on_tape())
               : apply(fused, x, weight_->on_tape());
}

std::string Conv2D::describe() const {
  return fmt::format("Conv2D({} → {}, {}, strides {}, {}, {})", in_channels(), filters(),
                     size_str(kernel_size()), size_str(options_.strides),
                     autodiff::to_string(options_.padding), to_string(activation_));
}

MaxPooling2D::MaxPooling2D(Size2D pool_size, PoolOptions options)
    : window_(pool_window(pool_size, options, "MaxPooling2D")) {}
Tensor<float> MaxPooling2D::forward(const Tensor<float>& x) { return max_pool2d(x, window_); }
std::string MaxPooling2D::describe() const { return window_str("MaxPooling2D", window_); }

AveragePooling2D::AveragePooling2D(Size2D pool_size, PoolOptions options)
    : window_(pool_window(pool_size, options, "AveragePooling2D")) {}
Tensor<float> AveragePooling2D::forward(const Tensor<float>& x) { return avg_pool2d(x, window_); }
std::string AveragePooling2D::describe() const { return window_str("AveragePooling2D", window_); }

Tensor<float> GlobalAveragePooling2D::forward(const Tensor<float>& x) {
  return global_avg_pool2d(x);
}

Tensor<float> Flatten::forward(const Tensor<float>& x) {
  if (x.rank() < 1) throw std::invalid_argument("Flatten: a scalar has no batch axis");
  return reshape(x, {x.shape()[0], -1});
}

Reshape::Reshape(std::vector<std::int64_t> target) : target_(std::move(target)) {
  int unknown = 0;
  for (std::int64_t d : target_) unknown += d == -1;
  bool valid =
      !target_.empty() && target_.size() < std::size_t(autodiff::Shape::kMaxRank) && unknown <= 1;
  for (std::int64_t d : target_) valid = valid && (d > 0 || d == -1);
  if (!valid)
    throw std::invalid_argument(
        fmt::format("Reshape: target ({}): expected 1 to {} dimensions, each > 0 or one of them −1",
                    fmt::join(target_, ", "), autodiff::Shape::kMaxRank - 1));
}

Tensor<float> Reshape::forward(const Tensor<float>& x) {
  if (x.rank() < 1) throw std::invalid_argument("Reshape: a scalar has no batch axis");
  std::int64_t dims[autodiff::Shape::kMaxRank] = {x.shape()[0]};
  std::copy(target_.begin(), target_.end(), dims + 1);
  std::int64_t known = 1;
  for (std::int64_t d : target_)
    if (d > 0) known *= d;
  const std::int64_t per_row = x.shape()[0] > 0 ? x.size() / x.shape()[0] : 0;
  if (x.shape()[0] > 0 &&
      (per_row % known != 0 ||
       (per_row != known && std::find(target_.begin(), target_.end(), -1) == target_.end())))
    throw std::invalid_argument(fmt::format("{}: input of shape {} has {} values per row",
                                            describe(), x.shape().str(), per_row));
  return reshape(x, std::span<const std::int64_t>(dims, target_.size() + 1));
}

std::string Reshape::describe() const {
  return fmt::format("Reshape(({}))", fmt::join(target_, ", "));
}

Dropout::Dropout(double rate, DropoutOptions options)
    : rate_(rate), options_(options), calls_(&register_counter("calls")) {
  if (!(rate >= 0.0 && rate < 1.0))
    throw std::invalid_argument(fmt::format("Dropout: rate {}, expected in [0, 1)", rate));
}

Tensor<float> Dropout::forward(const Tensor<float>& x) {
  if (!is_training() || rate_ == 0.0) return x;
  // A fresh mask per call, each element drawn from (seed, call number, row of the global batch,
  // element of the row) alone.
  return dropout(x, rate_,
                 autodiff::detail::mix64(options_.seed ^ autodiff::detail::mix64(++*calls_)),
                 first_row_);
}

void Dropout::on_batch_share(const BatchShare& share) {
  first_row_ = share.first_row;
  // The other ranks draw this step's masks: the next step's call number is theirs too (a
  // Dropout called once per step, as in a Sequential).
  if (share.empty && is_training() && rate_ != 0.0) ++*calls_;
}

std::string Dropout::describe() const { return fmt::format("Dropout({})", rate_); }

BatchNormalization::BatchNormalization(std::int64_t channels, BatchNormOptions options)
    : options_(options) {
  if (channels <= 0 || !(options.momentum >= 0.0 && options.momentum <= 1.0) ||
      !(options.epsilon > 0.0 && std::isfinite(options.epsilon)))
    throw std::invalid_argument(fmt::format(
        "BatchNormalization: channels {}, momentum {}, epsilon {}: expected channels > 0, "
        "momentum in [0, 1] and epsilon > 0",
        channels, options.momentum, options.epsilon));
  gamma_ = &register_parameter("gamma", Shape{channels});
  beta_ = &register_parameter("beta", Shape{channels});
  moving_mean_ = &register_buffer("moving_mean", Shape{channels});
  moving_variance_ = &register_buffer("moving_variance", Shape{channels});
  std::fill(gamma_->value.begin(), gamma_->value.end(), 1.0f);
  std::fill(moving_variance_->value.begin(), moving_variance_->value.end(), 1.0f);
  batch_mean_.resize(std::size_t(channels));
  batch_variance_.resize(std::size_t(channels));
}

Tensor<float> BatchNormalization::forward(const Tensor<float>& x) {
  if (x.rank() < 2 || x.shape()[x.rank() - 1] != channels())
    throw std::invalid_argument(fmt::format("{}: input has shape {}, expected (batch, …, {})",
                                            describe(), x.shape().str(), channels()));
  if (is_training()) {
    const Tensor<float> y = batch_norm(x, gamma_->on_tape(), beta_->on_tape(), options_.epsilon,
                                       batch_mean_.data(), batch_variance_.data());
    const float m = float(options_.momentum);
    for (std::size_t k = 0; k < batch_mean_.size(); ++k) {
      moving_mean_->value[k] = moving_mean_->value[k] * m + batch_mean_[k] * (1.0f - m);
      moving_variance_->value[k] = moving_variance_->value[k] * m + batch_variance_[k] * (1.0f - m);
    }
    return y;
  }
  const Shape c{channels()};
  const auto mean = Tensor<float>::from(moving_mean_->value, c);
  const auto variance = Tensor<float>::from(moving_variance_->value, c);
  return (x - mean) * (gamma_->on_tape() / sqrt(variance + options_.epsilon)) + beta_->on_tape();
}

std::string BatchNormalization::describe() const {
  return fmt::format("BatchNormalization({}, momentum {}, epsilon {})", channels(),
                     options_.momentum, options_.epsilon);
}

}  // namespace nn
