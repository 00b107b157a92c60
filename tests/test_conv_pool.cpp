// conv2d_max_pool2d: the convolution and the max pooling after it as one op. It must equal the
// two ops recorded apart bit for bit (values and every gradient: the same GEMMs on the same
// blocks, the same values summed in the same order), and its gradients must match finite
// differences; in tangent mode, its H·v the same, and finite differences'.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"
#include "autodiff/parallel.hpp"
#include "tensor_check.hpp"
#include "thread_count.hpp"

using namespace autodiff;

namespace {

struct Case {
  Shape x, w;
  Conv2D conv;
  Window2D pool;
  bool bias;
};

// The output and the gradients of x, w and b of sum(y ⊙ r) for a fixed random r, with the pair
// recorded as one op or as two.
template <class E>
std::vector<E> run(const Case& c, bool fused) {
  Tape tape;
  TapeScope scope(tape);
  using T = Tensor<E>;
  const T x = T::random_uniform(c.x, -1, 1, 1).requires_grad();
  const T w = T::random_uniform(c.w, -1, 1, 2).requires_grad();
  const T b = T::random_uniform({c.w[3]}, -1, 1, 3).requires_grad();
  T y;
  if (fused)
    y = c.bias ? conv2d_max_pool2d(x, w, b, c.conv, c.pool)
               : conv2d_max_pool2d(x, w, c.conv, c.pool);
  else {
    const T h = c.bias
                    ? conv2d(x, w, b, c.conv.stride_h, c.conv.stride_w, c.conv.padding, c.conv.relu)
                    : conv2d(x, w, c.conv.stride_h, c.conv.stride_w, c.conv.padding, c.conv.relu);
    y = max_pool2d(h, c.pool);
  }
  const T r = T::random_uniform(y.shape(), -1, 1, 4);
  sum(y * r).backward();
  std::vector<E> all = y.to_vector();
  for (const T* t : {&x, &w, &b})
    for (E g : t->grad()) all.push_back(g);
  return all;
}

const std::vector<Case> kCases = {
    // Keras's MNIST convnet's pair (tiling 2×2 windows, the last row and column left over).
    {{3, 9, 9, 1}, {3, 3, 1, 4}, {1, 1, Padding::Valid, true}, {2, 2, 2, 2}, true},
    // No ReLU, no bias; "same" convolution with strides; overlapping 3×3 windows, stride 2.
    {{2, 8, 7, 3}, {3, 2, 3, 5}, {2, 1, Padding::Same, false}, {3, 3, 2, 2}, false},
    // Tiling 3×2 windows without ReLU (negative maxima pass their gradient), with bias.
    {{2, 9, 8, 2}, {2, 3, 2, 3}, {1, 1, Padding::Valid, false}, {3, 2, 3, 2}, true},
    // "same" pooling (windows partly over the padding), ReLU.
    {{2, 7, 6, 2}, {2, 2, 2, 3}, {1, 1, Padding::Valid, true}, {2, 3, 2, 2, Padding::Same}, true},
    // Tiling 2×2 windows (the compiled-in pooling) with each other finish: no ReLU, no bias, both.
    {{2, 8, 9, 2}, {3, 3, 2, 5}, {1, 1, Padding::Valid, false}, {2, 2, 2, 2}, true},
    {{2, 8, 9, 2}, {3, 3, 2, 5}, {1, 1, Padding::Valid, true}, {2, 2, 2, 2}, false},
    {{2, 8, 9, 2}, {3, 3, 2, 5}, {1, 1, Padding::Same, false}, {2, 2, 2, 2}, false},
};

}  // namespace

TEST_CASE("conv2d_max_pool2d equals conv2d then max_pool2d bit for bit, on 1 and 2 threads") {
  for (const int thread_count : {1, 2}) {
    const ThreadCount threads_set(thread_count);
    for (std::size_t i = 0; i < kCases.size(); ++i) {
      CAPTURE(i);
      CAPTURE(thread_count);
      CHECK(run<double>(kCases[i], true) == run<double>(kCases[i], false));
      CHECK(run<float>(kCases[i], true) == run<float>(kCases[i], false));
      // Not recording (inference): forward keeps no positions of the maxima.
      Tape tape;
      TapeScope scope(tape);
      const Case& c = kCases[i];
      const auto x = Tensor<float>::random_uniform(c.x, -1, 1, 1);
      const auto w = Tensor<float>::random_uniform(c.w, -1, 1, 2);
      const auto b = Tensor<float>::random_uniform({c.w[3]}, -1, 1, 3);
      const NoGradGuard inference;
      CHECK(
          conv2d_max_pool2d(x, w, b, c.conv, c.pool).to_vector() ==
          max_pool2d(conv2d(x, w, b, c.conv.stride_h, c.conv.stride_w, c.conv.padding, c.conv.relu),
                     c.pool)
              .to_vector());
    }
  }
}

TEST_CASE("conv2d_max_pool2d: gradients against finite differences") {
  for (const Case& c : kCases) {
    if (c.bias)
      CHECK_TENSOR_GRADIENT(
          [&](auto t) { return conv2d_max_pool2d(t[0], t[1], t[2], c.conv, c.pool); },
          {c.x, c.w, {c.w[3]}});
    else
      CHECK_TENSOR_GRADIENT([&](auto t) { return conv2d_max_pool2d(t[0], t[1], c.conv, c.pool); },
                            {c.x, c.w});
  }
}

TEST_CASE(
    "conv2d_max_pool2d in tangent mode: H·v equals the two ops' on 1 and 2 threads, and FD's") {
  for (const int thread_count : {1, 2})
    for (std::size_t i = 0; i < kCases.size(); ++i) {
      const ThreadCount threads_set(thread_count);
      std::uint64_t seed = 11 + 2 * i;
      CAPTURE(i);
      CAPTURE(thread_count);
      const Case& c = kCases[i];
      std::vector<Shape> shapes = {c.x, c.w};
      if (c.bias) shapes.push_back({c.w[3]});
      // Curved after the op (sin, weighed), so that H·v reaches every tangent rule.
      auto weighed_sin = [](const Tensor<double>& y) {
        return sum(sin(y) * Tensor<double>::random_uniform(y.shape(), -1, 1, 5));
      };
      const TensorFunction fused = [&](std::span<const Tensor<double>> t) {
        return weighed_sin(c.bias ? conv2d_max_pool2d(t[0], t[1], t[2], c.conv, c.pool)
                                  : conv2d_max_pool2d(t[0], t[1], c.conv, c.pool));
      };
      const TensorFunction apart = [&](std::span<const Tensor<double>> t) {
        const Tensor<double> h = c.bias ? conv2d(t[0], t[1], t[2], c.conv.stride_h, c.conv.stride_w,
                                                 c.conv.padding, c.conv.relu)
                                        : conv2d(t[0], t[1], c.conv.stride_h, c.conv.stride_w,
                                                 c.conv.padding, c.conv.relu);
        return weighed_sin(max_pool2d(h, c.pool));
      };
      std::size_t n = 0;
      for (const Shape& s : shapes) n += static_cast<std::size_t>(s.size());
      const std::vector<double> x =
          Tensor<double>::random_uniform({std::int64_t(n)}, -1, 1, seed++).to_vector();
      const std::vector<double> v =
          Tensor<double>::random_uniform({std::int64_t(n)}, -1, 1, seed++).to_vector();
      const TensorHvp a = tensor_hvp(fused, shapes, x, v), b = tensor_hvp(apart, shapes, x, v);
      CHECK(a.gradient == b.gradient);
      CHECK(a.hessian_vector == b.hessian_vector);
      CHECK_TENSOR_HVP(fused, shapes, x, v);
    }
}

TEST_CASE("conv2d_max_pool2d: shapes are checked") {
  Tape tape;
  TapeScope scope(tape);
  using T = Tensor<double>;
  const T x = T::zeros({1, 4, 4, 1}), w = T::zeros({3, 3, 1, 2});
  CHECK(conv2d_max_pool2d(x, w, Conv2D{}, {2, 2, 2, 2}).shape() == Shape{1, 1, 1, 2});
  CHECK_THROWS_WITH_AS(conv2d_max_pool2d(x, w, Conv2D{}, {3, 3, 3, 3}),
                       doctest::Contains("the input's height is 2, smaller than the window's 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(conv2d_max_pool2d(x, T::zeros({3, 3, 2, 2}), Conv2D{}, {2, 2, 2, 2}),
                       doctest::Contains("conv2d: input (1, 4, 4, 1) and kernel (3, 3, 2, 2)"),
                       std::invalid_argument);
}
