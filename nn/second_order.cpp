#include "nn/second_order.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "autodiff/second_order.hpp"
#include "autodiff/tensor/tangent.hpp"
#include "nn/losses.hpp"

namespace nn {
namespace {

// A Dense layer as parameter_hvp reads it: sizes, activation, and where its weight and bias start
// in the flattened parameters.
struct DenseView {
  std::int64_t in, out;
  Activation activation;
  std::size_t weight, bias;
};

// The network's Dense layers in order, checked: a Dense, or a Sequential of them whose sizes
// chain, softmax only last.
std::vector<DenseView> dense_layers(Module& network) {
  std::vector<Dense*> layers;
  if (auto* dense = dynamic_cast<Dense*>(&network)) {
    layers.push_back(dense);
  } else if (dynamic_cast<Sequential*>(&network)) {
    for (std::size_t i = 0; i < network.child_count(); ++i) {
      auto* layer = dynamic_cast<Dense*>(&network.child(i));
      if (!layer)
        throw std::invalid_argument(fmt::format(
            "parameter_hvp: layer {} is {}, expected Dense (second order covers Dense layers only)",
            i, network.child(i).describe()));
      layers.push_back(layer);
    }
  } else {
    throw std::invalid_argument(fmt::format(
        "parameter_hvp: the network is {}, expected a Dense or a Sequential of Dense layers",
        network.describe()));
  }
  if (layers.empty()) throw std::invalid_argument("parameter_hvp: the Sequential has no layer");

  const std::vector<Parameter*> parameters = network.parameters();
  auto offset_of = [&](const Parameter& p) {
    std::size_t offset = 0;
    for (const Parameter* q : parameters) {
      if (q == &p) return offset;
      offset += q->value.size();
    }
    throw std::logic_error("parameter_hvp: a layer's parameter is not among the network's");
  };
  std::vector<DenseView> views;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    Dense& d = *layers[i];
    if (i > 0 && d.in() != views.back().out)
      throw std::invalid_argument(
          fmt::format("parameter_hvp: layer {} takes {} inputs, but layer "
                      "{} gives {}",
                      i, d.in(), i - 1, views.back().out));
    if (d.activation() == Activation::Softmax && i + 1 != layers.size())
      throw std::invalid_argument(
          fmt::format("parameter_hvp: layer {} has a softmax, expected only on the last layer", i));
    views.push_back({d.in(), d.out(), d.activation(), offset_of(d.weights()), offset_of(d.bias())});
  }
  return views;
}

// The batch's loss, written on scalars: X is a VarOf of the second-order tape (or a Var).
template <class X>
X batch_loss(std::span<const X> p, const std::vector<DenseView>& layers, SecondOrderLoss loss,
             std::span<const float> x, std::int64_t batch, std::span<const float> y_true) {
  const std::int64_t inputs = layers.front().in, outputs = layers.back().out;
  X total = 0.0;
  std::vector<X> a, z;
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const DenseView& d = layers[l];
      z.assign(static_cast<std::size_t>(d.out), X());
      for (std::int64_t j = 0; j < d.out; ++j) {
        X sum = p[d.bias + j];
        for (std::int64_t k = 0; k < d.in; ++k) {
          const X& w = p[d.weight + k * d.out + j];
          if (l == 0) {
            const double input = x[n * inputs + k];
            if (input != 0) sum += w * input;  // a zero input costs nothing
          } else {
            sum += w * a[k];
          }
        }
        z[j] = sum;
      }
      a.resize(z.size());
      for (std::size_t j = 0; j < z.size(); ++j) {
        switch (d.activation) {
          case Activation::Linear:
          case Activation::Softmax:  // below, with the loss
            a[j] = z[j];
            break;
          case Activation::Relu:
            a[j] = relu(z[j]);
            break;
          case Activation::Sigmoid:
            a[j] = sigmoid(z[j]);
            break;
          case Activation::Tanh:
            a[j] = tanh(z[j]);
            break;
        }
      }
    }
    const float* target = &y_true[n * outputs];
    if (layers.back().activation == Activation::Softmax) {
      // log Σ exp(z_c − m) + m: m = max z, a constant shift that keeps exp from overflowing.
      double m = -INFINITY;
      for (const X& zc : z) m = std::max(m, autodiff::detail::plain_value(zc));
      X sum = 0.0;
      for (const X& zc : z) sum += exp(zc - m);
      const X log_sum_exp = X(log(sum) + m);
      if (loss == SecondOrderLoss::CategoricalCrossentropy) {
        for (std::int64_t c = 0; c < outputs; ++c)
          if (target[c] != 0) total += static_cast<double>(target[c]) * (log_sum_exp - z[c]);
        continue;
      }
      for (std::int64_t c = 0; c < outputs; ++c) a[c] = exp(z[c] - log_sum_exp);
    }
    for (std::int64_t c = 0; c < outputs; ++c)
      total += square(static_cast<double>(target[c]) - a[c]);
  }
  const double count = loss == SecondOrderLoss::MeanSquaredError
                           ? static_cast<double>(batch * outputs)
                           : static_cast<double>(batch);
  return X(total / count);
}

}  // namespace

std::vector<double> parameter_values(Module& network) {
  std::vector<double> values;
  for (const Parameter* p : network.parameters())
    values.insert(values.end(), p->value.begin(), p->value.end());
  return values;
}

namespace {

// The network's state that a forward pass in training mode moves (BatchNormalization's moving
// statistics, Dropout's call counter), put back when this goes out of scope.
class KeptState {
 public:
  explicit KeptState(Module& network) {
    for (const NamedParameter& buffer : network.named_buffers())
      buffers_.emplace_back(buffer.parameter, buffer.parameter->value);
    for (const auto& [name, counter] : network.named_counters())
      counters_.emplace_back(counter, *counter);
  }
  ~KeptState() {
    for (auto& [buffer, values] : buffers_) buffer->value = std::move(values);
    for (const auto& [counter, value] : counters_) *counter = value;
  }
  KeptState(const KeptState&) = delete;
  KeptState& operator=(const KeptState&) = delete;

 private:
  std::vector<std::pair<Parameter*, std::vector<float>>> buffers_;
  std::vector<std::pair<std::uint64_t*, std::uint64_t>> counters_;
};

}  // namespace

float parameter_hvp(Module& network, const Loss& loss, const Tensor<float>& x,
                    const Tensor<float>& y_true, std::span<const float> v,
                    std::span<float> gradient, std::span<float> hessian_vector) {
  thread_local std::vector<Parameter*> parameters;
  network.collect_parameters(parameters);
  std::size_t count = 0;
  for (const Parameter* p : parameters) count += p->value.size();
  if (v.size() != count || gradient.size() != count || hessian_vector.size() != count)
    throw std::invalid_argument(
        fmt::format("parameter_hvp: v of {} entries, gradient of {} and hessian_vector of {}, "
                    "expected one per parameter ({})",
                    v.size(), gradient.size(), hessian_vector.size(), count));
  std::fill(gradient.begin(), gradient.end(), 0.0f);
  std::fill(hessian_vector.begin(), hessian_vector.end(), 0.0f);

  const KeptState kept(network);
  autodiff::TangentMode tangents;
  std::size_t at = 0;
  for (Parameter* p : parameters) {  // each parameter's direction, and where its results go
    const std::size_t n = p->value.size();
    tangents.seed_parameter<float>(p->value, v.subspan(at, n), hessian_vector.subspan(at, n),
                                   gradient.subspan(at, n));
    at += n;
  }
  const Tensor<float> value = loss(y_true, network(x));
  if (value.size() != 1)
    throw std::invalid_argument(fmt::format(
        "parameter_hvp: the loss has shape {}, expected one element", value.shape().str()));
  value.backward();
  return value.item();
}

ParameterHvp parameter_hvp(Module& network, const Loss& loss, std::span<const float> x,
                           const Shape& x_shape, std::span<const float> y_true,
                           const Shape& y_shape, std::span<const double> v) {
  thread_local autodiff::Tape tape;  // kept: a warm call allocates no tape memory
  autodiff::TapeScope scope(tape);
  tape.clear();
  const Tensor<float> inputs = Tensor<float>::from(x, x_shape);
  const Tensor<float> targets = Tensor<float>::from(y_true, y_shape);
  const std::vector<float> direction(v.begin(), v.end());
  std::vector<float> gradient(v.size()), hessian_vector(v.size());
  ParameterHvp r;
  r.loss = parameter_hvp(network, loss, inputs, targets, direction, gradient, hessian_vector);
  tape.clear();
  r.gradient.assign(gradient.begin(), gradient.end());
  r.hessian_vector.assign(hessian_vector.begin(), hessian_vector.end());
  return r;
}

ParameterHvp parameter_hvp(Module& network, SecondOrderLoss loss, std::span<const float> x,
                           std::int64_t batch, std::span<const float> y_true,
                           std::span<const double> v) {
  if (batch <= 0 || x.size() % static_cast<std::size_t>(batch) != 0 ||
      y_true.size() % static_cast<std::size_t>(batch) != 0)
    throw std::invalid_argument(
        fmt::format("parameter_hvp: x has {} values and y_true {}, expected whole rows of a batch "
                    "of {} > 0",
                    x.size(), y_true.size(), batch));
  const auto rows = static_cast<std::size_t>(batch);
  const Shape x_shape{batch, static_cast<std::int64_t>(x.size() / rows)};
  const Shape y_shape{batch, static_cast<std::int64_t>(y_true.size() / rows)};
  if (loss == SecondOrderLoss::MeanSquaredError)
    return parameter_hvp(network, mean_squared_error, x, x_shape, y_true, y_shape, v);
  const Loss fused = [](const Tensor<float>& targets, const Tensor<float>& y_pred) {
    if (!autodiff::is_softmax_output<float>(y_pred, nullptr))
      throw std::invalid_argument(
          "parameter_hvp: CategoricalCrossentropy needs a softmax on the network's output (the "
          "fused form on its logits)");
    return categorical_crossentropy(targets, y_pred);
  };
  return parameter_hvp(network, fused, x, x_shape, y_true, y_shape, v);
}

ParameterHvp parameter_hvp_at(Module& network, std::span<const double> parameters,
                              SecondOrderLoss loss, std::span<const float> x, std::int64_t batch,
                              std::span<const float> y_true, std::span<const double> v) {
  const std::vector<DenseView> layers = dense_layers(network);
  if (loss == SecondOrderLoss::CategoricalCrossentropy &&
      layers.back().activation != Activation::Softmax)
    throw std::invalid_argument(
        "parameter_hvp: CategoricalCrossentropy needs a softmax on the last layer (the fused "
        "form on its logits)");
  const std::int64_t inputs = layers.front().in, outputs = layers.back().out;
  if (batch <= 0 || static_cast<std::int64_t>(x.size()) != batch * inputs ||
      static_cast<std::int64_t>(y_true.size()) != batch * outputs)
    throw std::invalid_argument(fmt::format(
        "parameter_hvp: x has {} values and y_true {}, expected batch × {} and batch × {} with "
        "batch = {} > 0",
        x.size(), y_true.size(), inputs, outputs, batch));
  const auto count = static_cast<std::size_t>(network.parameter_count());
  if (parameters.size() != count || v.size() != count)
    throw std::invalid_argument(fmt::format(
        "parameter_hvp: {} parameter values and v of {} entries, expected one per parameter ({})",
        parameters.size(), v.size(), count));

  auto f = [&](auto p) {
    using X = typename decltype(p)::value_type;
    return batch_loss<X>(p, layers, loss, x, batch, y_true);
  };
  autodiff::HvpResult r = autodiff::hvp(f, parameters, v);
  return {r.value, std::move(r.gradient), std::move(r.hessian_vector)};
}

}  // namespace nn
