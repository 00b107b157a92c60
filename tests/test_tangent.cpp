// Tangent mode (autodiff/tensor/tangent.hpp): H·v through every tensor op with second-order rules,
// against Ridders' central differences of the tape's own first-order gradient, in double; a Dense
// MLP and a small convnet in double and float, as raw ops and as nn modules; symmetry; errors.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "allocation_counter.hpp"
#include "autodiff/autodiff.hpp"
#include "nn/conv_layers.hpp"
#include "nn/data.hpp"
#include "nn/second_order.hpp"
#include "tensor_check.hpp"

using namespace autodiff;

namespace {

using T = Tensor<double>;
using Inputs = std::span<const T>;

// Every output element weighed differently and curved (sin), so that a wrong one cannot hide and
// even a linear op's tangents are tested.
T weighed(const T& out) {
  std::vector<double> w(static_cast<std::size_t>(out.size()));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(1.3 + 0.7 * static_cast<double>(i));
  return sum(sin(out) * T::from(w, out.shape()));
}

std::vector<double> seeded(std::size_t n, double low, double high, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(low, high);
  std::vector<double> x(n);
  for (double& xi : x) xi = u(rng);
  return x;
}

std::size_t total(const std::vector<Shape>& shapes) {
  std::size_t n = 0;
  for (const Shape& s : shapes) n += static_cast<std::size_t>(s.size());
  return n;
}

struct OpCase {
  const char* name;
  std::function<T(Inputs)> f;
  std::vector<Shape> shapes;
  double low = -2.0, high = 2.0;
};

const std::int64_t kRows[] = {1, 0, 1, 1};

std::vector<OpCase> op_cases() {
  const Shape m{2, 3}, row{3};
  const Shape image{2, 5, 5, 2}, kernel{3, 3, 2, 3}, bias{3};
  return {
      {"square", [](Inputs x) { return weighed(square(x[0])); }, {m}},
      {"exp", [](Inputs x) { return weighed(exp(x[0])); }, {m}},
      {"log", [](Inputs x) { return weighed(log(x[0])); }, {m}, 0.5, 2.0},
      {"log1p", [](Inputs x) { return weighed(log1p(x[0])); }, {m}, -0.5, 2.0},
      {"sqrt", [](Inputs x) { return weighed(sqrt(x[0])); }, {m}, 0.5, 2.0},
      {"sin", [](Inputs x) { return weighed(sin(x[0])); }, {m}},
      {"cos", [](Inputs x) { return weighed(cos(x[0])); }, {m}},
      {"tanh", [](Inputs x) { return weighed(tanh(x[0])); }, {m}},
      {"sigmoid", [](Inputs x) { return weighed(sigmoid(x[0])); }, {m}},
      {"relu", [](Inputs x) { return weighed(relu(x[0])); }, {m}},
      {"abs", [](Inputs x) { return weighed(abs(x[0])); }, {m}},
      {"softplus", [](Inputs x) { return weighed(softplus(x[0])); }, {m}},
      {"negate", [](Inputs x) { return weighed(-x[0]); }, {m}},
      {"leaky_relu", [](Inputs x) { return weighed(leaky_relu(x[0], 0.2)); }, {m}},
      {"clamp", [](Inputs x) { return weighed(clamp(x[0], -0.7, 0.9)); }, {m}},
      {"add", [](Inputs x) { return weighed(x[0] + x[1]); }, {m, row}},
      {"subtract", [](Inputs x) { return weighed(x[1] - x[0]); }, {m, row}},
      {"multiply", [](Inputs x) { return weighed(x[0] * x[1]); }, {m, row}},
      {"divide", [](Inputs x) { return weighed(x[0] / x[1]); }, {m, row}, 0.5, 2.0},
      {"minimum", [](Inputs x) { return weighed(minimum(x[0], x[1]) * x[0]); }, {m, m}},
      {"maximum", [](Inputs x) { return weighed(maximum(x[0], x[1]) * x[1]); }, {m, row}},
      {"pow", [](Inputs x) { return weighed(pow(x[0], x[1])); }, {m, row}, 0.5, 2.0},
      {"times a number", [](Inputs x) { return weighed(x[0] * 2.5); }, {m}},
      {"number over", [](Inputs x) { return weighed(1.5 / x[0]); }, {m}, 0.5, 2.0},
      {"pow to a number", [](Inputs x) { return weighed(pow(x[0], 3.0)); }, {m}, 0.5, 2.0},
      {"number to a pow", [](Inputs x) { return weighed(pow(1.7, x[0])); }, {m}},
      {"where", [](Inputs x) { return weighed(where(x[0] > 0.0, x[0] * x[1], x[1])); }, {m, row}},
      {"transpose", [](Inputs x) { return weighed(matmul(transpose(x[0]), x[0])); }, {m}},
      {"reshape",
       [](Inputs x) {
         return weighed(reshape(x[0], {3, 2}) * reshape(x[0], {3, 2}));
       },
       {m}},
      {"slice_rows", [](Inputs x) { return weighed(slice_rows(x[0], 1, 2) * x[1]); }, {m, row}},
      {"gather_rows",
       [](Inputs x) { return weighed(gather_rows(x[0], std::span<const std::int64_t>(kRows))); },
       {m}},
      {"sum", [](Inputs x) { return weighed(sum(x[0] * x[0])); }, {m}},
      {"sum along an axis", [](Inputs x) { return weighed(sum(x[0], 0)); }, {m}},
      {"mean", [](Inputs x) { return weighed(mean(x[0], -1, true)); }, {m}},
      {"max", [](Inputs x) { return weighed(max(x[0], 1)); }, {m}},
      {"min", [](Inputs x) { return weighed(min(x[0])); }, {m}},
      {"logsumexp", [](Inputs x) { return weighed(logsumexp(x[0], -1)); }, {m}},
      {"matmul", [](Inputs x) { return weighed(matmul(x[0], x[1])); }, {m, {3, 4}}},
      {"matmul, batches",
       [](Inputs x) { return weighed(matmul(x[0], x[1])); },
       {{2, 2, 3}, {2, 3, 2}}},
      {"matmul, broadcast batches",
       [](Inputs x) { return weighed(matmul(x[0], x[1]) * x[0]); },
       {{2, 1, 3, 3}, {2, 3, 3}}},
      {"softmax", [](Inputs x) { return weighed(softmax(x[0])); }, {m}},
      {"log_softmax", [](Inputs x) { return weighed(log_softmax(x[0])); }, {m}},
      {"cross_entropy_with_logits",
       [](Inputs x) { return cross_entropy_with_logits(x[0], softmax(x[1])); },
       {m, m}},
      {"conv2d", [](Inputs x) { return weighed(conv2d(x[0], x[1], x[2])); }, {image, kernel, bias}},
      {"conv2d, relu, same padding, strides",
       [](Inputs x) { return weighed(conv2d(x[0], x[1], x[2], 2, 2, Padding::Same, true)); },
       {image, kernel, bias}},
      {"conv2d without bias",
       [](Inputs x) { return weighed(conv2d(x[0], x[1], 1, 2)); },
       {image, kernel}},
      {"max_pool2d",
       [](Inputs x) {
         return weighed(max_pool2d(x[0], {2, 2, 2, 2}));
       },
       {image}},
      {"avg_pool2d",
       [](Inputs x) {
         return weighed(avg_pool2d(x[0], {2, 2, 2, 2, Padding::Same}));
       },
       {image}},
      {"global_avg_pool2d", [](Inputs x) { return weighed(global_avg_pool2d(x[0])); }, {image}},
      {"dropout", [](Inputs x) { return weighed(dropout(x[0], 0.4, 11)); }, {m}},
      {"batch_norm",
       [](Inputs x) { return weighed(batch_norm(x[0], x[1], x[2])); },
       {{4, 3}, row, row}},
  };
}

}  // namespace

TEST_CASE("tangent mode: H·v through every tensor op against finite differences of the gradient") {
  std::uint64_t seed = 1;
  for (const OpCase& c : op_cases()) {
    INFO(std::string(c.name));
    const std::size_t n = total(c.shapes);
    const std::vector<double> x = seeded(n, c.low, c.high, seed++);
    const std::vector<double> v = seeded(n, -1.0, 1.0, seed++);
    CHECK_TENSOR_HVP(c.f, c.shapes, x, v);
    // The gradient is the first-order tape's, unchanged by tangent mode.
    const TensorHvp r = tensor_hvp(c.f, c.shapes, x, v);
    Tape tape;
    TapeScope scope(tape);
    std::vector<T> leaves;
    std::size_t at = 0;
    for (const Shape& s : c.shapes) {
      const auto size = static_cast<std::size_t>(s.size());
      leaves.push_back(T::from(std::span(x).subspan(at, size), s).requires_grad());
      at += size;
    }
    c.f(leaves).backward();
    std::vector<double> gradient;
    for (const T& leaf : leaves)
      for (const double g : leaf.grad()) gradient.push_back(g);
    CHECK(gradient == r.gradient);
  }
}

namespace {

// H·v of f at x along v for tensors of element type X, in tangent mode (tensor_hvp is double).
template <class X>
std::vector<double> hvp_in(const std::function<Tensor<X>(std::span<const Tensor<X>>)>& f,
                           const std::vector<Shape>& shapes, const std::vector<double>& x,
                           const std::vector<double>& v) {
  Tape tape;
  TapeScope scope(tape);
  TangentMode tangents(tape);
  std::vector<Tensor<X>> leaves;
  std::size_t at = 0;
  for (const Shape& s : shapes) {
    const auto size = static_cast<std::size_t>(s.size());
    const std::vector<X> values(x.begin() + std::ptrdiff_t(at),
                                x.begin() + std::ptrdiff_t(at + size));
    const std::vector<X> direction(v.begin() + std::ptrdiff_t(at),
                                   v.begin() + std::ptrdiff_t(at + size));
    leaves.push_back(Tensor<X>::from(values, s).requires_grad());
    tangents.set_tangent<X>(leaves.back(), direction);
    at += size;
  }
  f(leaves).backward();
  std::vector<double> hv;
  for (const Tensor<X>& leaf : leaves)
    for (const X e : leaf.grad_tangent()) hv.push_back(double(e));
  return hv;
}

double largest_magnitude(const std::vector<double>& a) {
  double m = 0;
  for (const double e : a) m = std::max(m, std::fabs(e));
  return m;
}

// Two rows of 3 features, labels 2 and 0 (one-hot), for the MLP.
const std::vector<double> kMlpInputs = {0.5, -1.0, 2.0, -0.3, 0.8, 0.1};
const std::vector<double> kMlpTargets = {0, 0, 1, 1, 0, 0};
// 3 → 5 (ReLU) → 3, softmax cross-entropy: the parameters W1, b1, W2, b2.
const std::vector<Shape> kMlpShapes = {{3, 5}, {5}, {5, 3}, {3}};

template <class X>
Tensor<X> mlp_loss(std::span<const Tensor<X>> p) {
  const std::vector<X> x(kMlpInputs.begin(), kMlpInputs.end());
  const std::vector<X> y(kMlpTargets.begin(), kMlpTargets.end());
  const Tensor<X> hidden = relu(matmul(Tensor<X>::from(x, {2, 3}), p[0]) + p[1]);
  return cross_entropy_with_logits(matmul(hidden, p[2]) + p[3], Tensor<X>::from(y, {2, 3}));
}

// Two 6×6 one-channel images, labels 1 and 2: Conv2D(1 → 2, 3×3, ReLU) → MaxPooling2D(2×2) →
// Flatten → Dense(8 → 3), softmax cross-entropy: kernel, bias, W, b.
const std::vector<Shape> kConvShapes = {{3, 3, 1, 2}, {2}, {8, 3}, {3}};

std::vector<double> conv_images() {
  std::vector<double> x(72);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * double(i) + 0.2) + 0.3;
  return x;
}

template <class X>
Tensor<X> convnet_loss(std::span<const Tensor<X>> p) {
  const std::vector<double> pixels = conv_images();
  const std::vector<X> x(pixels.begin(), pixels.end());
  const std::vector<X> y = {0, 1, 0, 0, 0, 1};
  const Tensor<X> features =
      conv2d(Tensor<X>::from(x, {2, 6, 6, 1}), p[0], p[1], 1, 1, Padding::Valid, true);
  const Tensor<X> pooled = reshape(max_pool2d(features, {2, 2, 2, 2}), {2, -1});
  return cross_entropy_with_logits(matmul(pooled, p[2]) + p[3], Tensor<X>::from(y, {2, 3}));
}

struct Network {
  const char* name;
  std::function<T(Inputs)> f;
  std::function<Tensor<float>(std::span<const Tensor<float>>)> f_float;
  std::vector<Shape> shapes;
};

}  // namespace

TEST_CASE(
    "tangent mode: a Dense MLP and a small convnet, double against finite differences, "
    "float against double, and H symmetric") {
  const Network networks[] = {
      {"mlp", mlp_loss<double>, mlp_loss<float>, kMlpShapes},
      {"convnet", convnet_loss<double>, convnet_loss<float>, kConvShapes},
  };
  std::uint64_t seed = 100;
  for (const Network& net : networks) {
    INFO(std::string(net.name));
    const std::size_t n = total(net.shapes);
    const std::vector<double> x = seeded(n, -0.8, 0.8, seed++);
    const std::vector<double> v = seeded(n, -1.0, 1.0, seed++);
    const std::vector<double> w = seeded(n, -1.0, 1.0, seed++);

    CHECK_TENSOR_HVP(net.f, net.shapes, x, v, 1e-9);

    const std::vector<double> hv = hvp_in<double>(net.f, net.shapes, x, v);
    const std::vector<double> hv_float = hvp_in<float>(net.f_float, net.shapes, x, v);
    const double scale = largest_magnitude(hv);
    CHECK(scale > 1e-3);
    for (std::size_t i = 0; i < n; ++i)
      CHECK(hv_float[i] == doctest::Approx(hv[i]).scale(scale).epsilon(1e-5));

    // vᵀ·H·w = wᵀ·H·v.
    const std::vector<double> hw = hvp_in<double>(net.f, net.shapes, x, w);
    double v_hw = 0, w_hv = 0;
    for (std::size_t i = 0; i < n; ++i) {
      v_hw += v[i] * hw[i];
      w_hv += w[i] * hv[i];
    }
    CHECK(v_hw == doctest::Approx(w_hv).epsilon(1e-12));
  }
}

namespace {

// The module's parameters, as doubles in parameters() order.
std::vector<double> values_of(nn::Module& network) { return nn::parameter_values(network); }

std::vector<Shape> shapes_of(nn::Module& network) {
  std::vector<Shape> shapes;
  for (const nn::Parameter* p : network.parameters()) shapes.push_back(p->shape);
  return shapes;
}

std::vector<float> images(std::int64_t count, std::int64_t pixels) {
  std::vector<float> x(static_cast<std::size_t>(count * pixels));
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(0.5 + 0.5 * std::sin(0.61 * double(i) + 0.4));
  return x;
}

T from_floats(const std::vector<float>& values, const Shape& shape) {
  return T::from(std::vector<double>(values.begin(), values.end()), shape);
}

}  // namespace

TEST_CASE(
    "nn::parameter_hvp through the convnet layers, in float, against the same ops in double") {
  const std::vector<float> y_true = {0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0};  // 4 rows of 3 classes

  SUBCASE("Conv2D → MaxPooling2D → Flatten → Dense, softmax cross-entropy") {
    nn::Sequential network;
    network.add(nn::Reshape({6, 6, 1}));
    network.add(nn::Conv2D(1, 2, {3, 3}, nn::Activation::Relu, {.seed = 5}));
    network.add(nn::MaxPooling2D({2, 2}));
    network.add(nn::Flatten());
    network.add(nn::Dense(8, 3, nn::Activation::Softmax, {.seed = 6}));
    const std::vector<float> x = images(4, 36);
    const std::vector<double> point = values_of(network);
    const std::vector<double> v = seeded(point.size(), -1.0, 1.0, 21);
    const nn::ParameterHvp r =
        nn::parameter_hvp(network, nn::categorical_crossentropy, x, {4, 36}, y_true, {4, 3}, v);

    auto same_in_double = [&](Inputs p) {
      const T features =
          conv2d(from_floats(x, {4, 6, 6, 1}), p[0], p[1], 1, 1, Padding::Valid, true);
      const T logits = matmul(reshape(max_pool2d(features, {2, 2, 2, 2}), {4, -1}), p[2]) + p[3];
      return cross_entropy_with_logits(logits, from_floats(y_true, {4, 3}));
    };
    const TensorHvp exact = tensor_hvp(same_in_double, shapes_of(network), point, v);
    CHECK(r.loss == doctest::Approx(exact.value).epsilon(1e-6));
    const double scale = largest_magnitude(exact.hessian_vector);
    CHECK(scale > 1e-3);
    for (std::size_t i = 0; i < point.size(); ++i) {
      CHECK(r.gradient[i] == doctest::Approx(exact.gradient[i]).scale(1e-6).epsilon(1e-5));
      CHECK(r.hessian_vector[i] ==
            doctest::Approx(exact.hessian_vector[i]).scale(scale).epsilon(1e-5));
    }
  }

  SUBCASE(
      "Conv2D → BatchNormalization → AveragePooling2D → Dropout → GlobalAveragePooling2D → "
      "Dense → Dense, in training mode; the network's state is left as it was") {
    nn::Sequential network;
    network.add(nn::Reshape({6, 6, 1}));
    network.add(nn::Conv2D(1, 3, {3, 3}, nn::Activation::Tanh, {.seed = 7}));
    network.add(nn::BatchNormalization(3));
    network.add(nn::AveragePooling2D({2, 2}));
    network.add(nn::Dropout(0.3, {.seed = 9}));
    network.add(nn::GlobalAveragePooling2D());
    network.add(nn::Dense(3, 4, nn::Activation::Sigmoid, {.seed = 8}));
    network.add(nn::Dense(4, 3, nn::Activation::Softmax, {.seed = 10}));
    // γ and β away from 1 and 0, so that their tangents matter.
    auto& norm = network.layer<nn::BatchNormalization>(2);
    for (const nn::NamedParameter& p : norm.named_parameters())
      for (std::size_t k = 0; k < p.parameter->value.size(); ++k)
        p.parameter->value[k] = 0.8f + 0.3f * float(k) - (p.name == "beta" ? 0.9f : 0.0f);
    const std::vector<float> x = images(4, 36);
    const std::vector<double> point = values_of(network);
    const std::vector<double> v = seeded(point.size(), -1.0, 1.0, 22);
    const std::vector<float> moving_before = network.named_buffers()[0].parameter->value;

    const nn::ParameterHvp r =
        nn::parameter_hvp(network, nn::categorical_crossentropy, x, {4, 36}, y_true, {4, 3}, v);
    const nn::ParameterHvp again =
        nn::parameter_hvp(network, nn::categorical_crossentropy, x, {4, 36}, y_true, {4, 3}, v);
    CHECK(again.hessian_vector == r.hessian_vector);  // the same dropout mask, the same H
    CHECK(network.named_buffers()[0].parameter->value == moving_before);
    CHECK(*network.named_counters()[0].second == 0);

    // The same in double: the mask of the Dropout layer's first call.
    const std::uint64_t mask_seed = detail::mix64(9 ^ detail::mix64(1));
    auto same_in_double = [&](Inputs p) {
      const T conv = tanh(conv2d(from_floats(x, {4, 6, 6, 1}), p[0], p[1]));
      const T pooled = avg_pool2d(batch_norm(conv, p[2], p[3], 1e-3), {2, 2, 2, 2});
      const T hidden =
          sigmoid(matmul(global_avg_pool2d(dropout(pooled, 0.3, mask_seed)), p[4]) + p[5]);
      return cross_entropy_with_logits(matmul(hidden, p[6]) + p[7], from_floats(y_true, {4, 3}));
    };
    const TensorHvp exact = tensor_hvp(same_in_double, shapes_of(network), point, v);
    CHECK(r.loss == doctest::Approx(exact.value).epsilon(1e-6));
    const double scale = largest_magnitude(exact.hessian_vector);
    CHECK(scale > 1e-3);
    for (std::size_t i = 0; i < point.size(); ++i)
      CHECK(r.hessian_vector[i] ==
            doctest::Approx(exact.hessian_vector[i]).scale(scale).epsilon(1e-4));
    CHECK_TENSOR_HVP(same_in_double, shapes_of(network), point, v, 1e-9);

    // In evaluation mode too (moving statistics, no dropout): H symmetric.
    network.eval();
    const std::vector<double> w = seeded(point.size(), -1.0, 1.0, 23);
    const nn::ParameterHvp hv =
        nn::parameter_hvp(network, nn::categorical_crossentropy, x, {4, 36}, y_true, {4, 3}, v);
    const nn::ParameterHvp hw =
        nn::parameter_hvp(network, nn::categorical_crossentropy, x, {4, 36}, y_true, {4, 3}, w);
    double v_hw = 0, w_hv = 0;
    for (std::size_t i = 0; i < point.size(); ++i) {
      v_hw += v[i] * hw.hessian_vector[i];
      w_hv += w[i] * hv.hessian_vector[i];
    }
    CHECK(v_hw == doctest::Approx(w_hv).epsilon(1e-4));
  }
}

namespace {
struct ClipWithoutRules {  // a user's op with forward and backward only
  static constexpr const char* name = "clip_without_rules";
  Shape output_shape(const Shape& x) const { return x; }
  template <class X>
  void forward(OpContext<X, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i], X(-1), X(1));
  }
  template <class X>
  void backward(OpContext<X, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    for (std::int64_t i = 0; i < g.size(); ++i) gx[i] += g[i];
  }
};

struct Cube {
  static constexpr auto value = []<class X>(X v) { return v * v * v; };
  static constexpr auto derivative = []<class X>(X v, X) { return 3 * v * v; };
};
struct GenericCube : Cube {  // says its derivative runs on Dual numbers
  static constexpr bool twice_differentiable = true;
};

class ClippedDense : public nn::Module {  // a user's layer using it
 public:
  ClippedDense() : dense_(&register_module("dense", nn::Dense(3, 3))) {}
  Tensor<float> forward(const Tensor<float>& x) override {
    return apply(ClipWithoutRules{}, (*dense_)(x));
  }

 private:
  nn::Dense* dense_;
};
}  // namespace

// A user's linear op: each row reversed and scaled by 1, 2, 3, … (a fixed linear map). Declared
// linear, it gets its tangent rules from its forward and backward; undeclared, it has none.
template <bool kDeclared>
struct ReverseAndScale {
  static constexpr const char* name = "reverse_and_scale";
  static constexpr bool linear = kDeclared;
  Shape output_shape(const Shape& x) const { return x; }
  template <class X>
  void forward(OpContext<X, 1>& ctx) const {
    const auto x = ctx.input(0);
    const auto y = ctx.output();
    const std::int64_t n = y.size();
    for (std::int64_t i = 0; i < n; ++i) y[i] = X(i + 1) * x[n - 1 - i];
  }
  template <class X>
  void backward(OpContext<X, 1>& ctx) const {
    const auto g = ctx.output_grad();
    const auto gx = ctx.input_grad(0);
    const std::int64_t n = g.size();
    for (std::int64_t i = 0; i < n; ++i) gx[n - 1 - i] += X(i + 1) * g[i];
  }
};

// A user's linear op of two inputs: a + b reversed. One input without a tangent (a constant)
// reads as zeros.
struct AddReversed {
  static constexpr const char* name = "add_reversed";
  static constexpr bool linear = true;
  Shape output_shape(const Shape& a, const Shape&) const { return a; }
  template <class X>
  void forward(OpContext<X, 2>& ctx) const {
    const auto a = ctx.input(0), b = ctx.input(1);
    const auto y = ctx.output();
    const std::int64_t n = y.size();
    for (std::int64_t i = 0; i < n; ++i) y[i] = a[i] + b[n - 1 - i];
  }
  template <class X>
  void backward(OpContext<X, 2>& ctx) const {
    const auto g = ctx.output_grad();
    const std::int64_t n = g.size();
    if (const auto ga = ctx.input_grad(0))
      for (std::int64_t i = 0; i < n; ++i) ga[i] += g[i];
    if (const auto gb = ctx.input_grad(1))
      for (std::int64_t i = 0; i < n; ++i) gb[n - 1 - i] += g[i];
  }
};

TEST_CASE("a user's op declared linear gets H·v from its forward and backward") {
  // Curved around the op (exp before, weighed sin after), so that H·v passes through both rules.
  const std::function<T(Inputs)> f = [](Inputs in) {
    return weighed(apply(ReverseAndScale<true>{}, exp(in[0]) * in[1]));
  };
  const std::vector<Shape> shapes = {Shape{5}, Shape{5}};
  const std::vector<double> x = seeded(10, -1.0, 1.0, 7), v = seeded(10, -1.0, 1.0, 8);
  const SecondOrderCheck check = check_tensor_hvp(f, shapes, x, v, testing::hvp_options());
  INFO(check.table());
  CHECK(check.passed());
  double largest = 0.0;  // a real comparison: H·v is far from zero
  for (const SecondOrderEntry& e : check.entries) largest = std::max(largest, std::fabs(e.tape));
  CHECK(largest > 0.1);

  // Two inputs, one a constant without a tangent; and both with tangents.
  const std::function<T(Inputs)> g = [](Inputs in) {
    const T fixed = T::from({0.3, -0.2, 0.5, 1.0, -0.7}, {5});
    return weighed(apply(AddReversed{}, exp(in[0]), fixed) * in[1] +
                   apply(AddReversed{}, in[1], square(in[0])));
  };
  CHECK_TENSOR_HVP(g, shapes, x, v);

  Tape tape;
  TapeScope scope(tape);
  const T y = T::from({0.5, -2.0, 1.5}, {3}).requires_grad();
  TangentMode tangents(tape);
  CHECK_THROWS_WITH_AS(apply(ReverseAndScale<false>{}, y),
                       doctest::Contains("\"reverse_and_scale\" has no second-order rules"),
                       TapeError);
}

TEST_CASE("tangent mode: clear errors for an op without rules and for misuse") {
  Tape tape;
  TapeScope scope(tape);
  const T x = T::from({0.5, -2.0, 1.5}, {3}).requires_grad();
  const T before = x * x;  // recorded before the guard
  {
    TangentMode tangents(tape);
    CHECK_THROWS_WITH_AS(apply(ClipWithoutRules{}, x),
                         "autodiff: the tensor op \"clip_without_rules\" has no second-order rules "
                         "(jvp and backward_jvp), so H·v cannot pass through it in tangent mode; "
                         "give it both, or declare it linear (op.hpp says how), or record it "
                         "outside TangentMode",
                         TapeError);
    CHECK_THROWS_WITH_AS(to_var(sum(x)), doctest::Contains("\"to_var\" has no second-order rules"),
                         TapeError);
    CHECK_THROWS_WITH_AS(before * 2.0,
                         doctest::Contains("input 0 is the output of \"multiply\", recorded "
                                           "before tangent mode began"),
                         TapeError);
    CHECK_THROWS_AS(TangentMode{tape}, TapeError);  // no nesting
    CHECK_THROWS_AS(tangents.set_tangent<double>(before, std::vector<double>(3)), TapeError);
    const T fresh = T::from({0.5, -2.0, 1.5}, {3}).requires_grad();
    CHECK_THROWS_AS(tangents.set_tangent<double>(fresh, std::vector<double>(2)),
                    std::invalid_argument);
    std::vector<float> value(4), tangent(3), grad_tangent(4);
    CHECK_THROWS_AS(tangents.seed_parameter<float>(value, tangent, grad_tangent),
                    std::invalid_argument);
    // A user's elementwise op whose derivative is not declared generic has no second-order rule.
    tangents.set_tangent<double>(fresh, std::vector<double>{1.0, 0.0, 0.0});
    CHECK_THROWS_WITH_AS(elementwise<Cube>(fresh), doctest::Contains("\"elementwise\" has no"),
                         TapeError);
    const T y = sum(elementwise<GenericCube>(fresh));
    y.backward();
    CHECK(fresh.grad_tangent() == std::vector<double>{6 * 0.5, 0.0, 0.0});  // (x³)″ = 6x
  }
  // Outside the guard the same ops record as before.
  CHECK(apply(ClipWithoutRules{}, x).is_recorded());

  // In a model: the layer's op is named.
  ClippedDense network;
  CHECK_THROWS_WITH_AS(
      nn::parameter_hvp(network, nn::mean_squared_error, std::vector<float>{1, 2, 3}, {1, 3},
                        std::vector<float>{0, 1, 0}, {1, 3}, std::vector<double>(12, 1.0)),
      doctest::Contains("\"clip_without_rules\" has no second-order rules"), TapeError);
}

TEST_CASE("the MNIST MLP's sharpest curvature: tensor path in float and double, scalar path") {
  // examples/second_order's power iteration, through the tensor ops in float; then the Rayleigh
  // quotient uᵀ·H·u at its eigenvector u by the exact scalar path (double) and by the tensor ops
  // in double.
  constexpr std::int64_t kBatch = 32;
  const nn::Dataset train = nn::load_mnist(AUTODIFF_DATA_DIR, "train");
  std::vector<float> x, y_true(kBatch * 10, 0.0f);
  for (std::int64_t i = 0; i < kBatch * train.features(); ++i)
    x.push_back(static_cast<float>(train.images()[i]) / 255.0f);
  for (std::int64_t n = 0; n < kBatch; ++n) y_true[n * 10 + train.labels()[n]] = 1.0f;
  nn::Sequential network;
  network.add(nn::Dense(784, 128, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(128, 10, nn::Activation::Softmax, {.seed = 2}));
  const auto loss = nn::SecondOrderLoss::CategoricalCrossentropy;

  std::vector<double> u = seeded(static_cast<std::size_t>(network.parameter_count()), -1, 1, 42);
  auto normalize = [](std::vector<double>& a) {
    double norm = 0;
    for (const double e : a) norm += e * e;
    for (double& e : a) e /= std::sqrt(norm);
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double total = 0;
    for (std::size_t i = 0; i < a.size(); ++i) total += a[i] * b[i];
    return total;
  };
  normalize(u);
  double eigenvalue = 0;
  for (int iteration = 0; iteration < 200; ++iteration) {
    const std::vector<double> hu =
        nn::parameter_hvp(network, loss, x, kBatch, y_true, u).hessian_vector;
    const double rayleigh = dot(u, hu);
    const bool converged = std::fabs(rayleigh - eigenvalue) <= 1e-7 * std::fabs(rayleigh);
    eigenvalue = rayleigh;
    if (converged) break;
    u = hu;
    normalize(u);
  }
  CHECK(eigenvalue > 1);

  const std::vector<double> point = nn::parameter_values(network);
  const double scalar =
      dot(u, nn::parameter_hvp_at(network, point, loss, x, kBatch, y_true, u).hessian_vector);
  CHECK(eigenvalue == doctest::Approx(scalar).epsilon(1e-5));

  auto in_double = [&](Inputs p) {
    const T hidden = relu(matmul(from_floats(x, {kBatch, 784}), p[0]) + p[1]);
    return cross_entropy_with_logits(matmul(hidden, p[2]) + p[3],
                                     from_floats(y_true, {kBatch, 10}));
  };
  const double tensor_double =
      dot(u, tensor_hvp(in_double, shapes_of(network), point, u).hessian_vector);
  CHECK(tensor_double == doctest::Approx(scalar).epsilon(1e-12));
  MESSAGE(
      fmt::format("largest eigenvalue: {:.10g} (tensor ops, float), {:.15g} (scalar, double), "
                  "{:.15g} (tensor ops, double)",
                  eigenvalue, scalar, tensor_double));
}

TEST_CASE("a warm parameter_hvp on the active tape allocates nothing on the heap") {
  nn::Sequential network;
  network.add(nn::Dense(20, 16, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(16, 4, nn::Activation::Softmax, {.seed = 2}));
  const nn::Loss loss = nn::categorical_crossentropy;
  const auto count = static_cast<std::size_t>(network.parameter_count());
  std::vector<float> v(count, 0.5f), gradient(count), hessian_vector(count);
  const std::vector<float> x = images(8, 20);
  std::vector<float> y_true(32, 0.0f);
  for (std::size_t r = 0; r < 8; ++r) y_true[r * 4 + r % 4] = 1.0f;
  Tape tape;
  TapeScope scope(tape);
  auto step = [&] {
    tape.clear();
    return nn::parameter_hvp(network, loss, Tensor<float>::from(x, {8, 20}),
                             Tensor<float>::from(y_true, {8, 4}), v, gradient, hessian_vector);
  };
  const float warm = step();
  step();
  testing::AllocationCounter counter;
  CHECK(step() == warm);
  CHECK(counter.count() == 0);
}
