// Tensor<T>: creation, access, and the entry points of the reverse sweep.
#include "autodiff/tensor/tensor.hpp"

#include "autodiff/tensor/bridge.hpp"  // Tensor<T>::from_vars, instantiated below
#include "autodiff/tensor/tangent.hpp"

#include <algorithm>
#include <cmath>
#include <new>
#include <random>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace autodiff {

using detail::TensorNode;

namespace {

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

// A leaf's "backward": its hook, kept in the arena where the node's op record would be.
void run_leaf_hook(Tape& tape, std::uint32_t id) {
  const auto* hook = static_cast<const LeafHook*>(detail::tensor_node(tape.node(id)).op);
  hook->swept(hook->context);
}

// A node with no inputs and no backward rule: data, or a leaf when `grad` storage is given (with
// a hook when `hook.swept` is set).
template <TensorElement T>
Tensor<T> record_data(const Shape& shape, T* value, bool leaf, T* grad, LeafHook hook = {}) {
  Tape& tape = Tape::active();
  auto* node = new (tape.allocate(sizeof(TensorNode))) TensorNode;
  node->shape = shape;
  node->dtype = dtype_of<T>();
  node->value = value ? value : tape.allocate_array<T>(static_cast<std::size_t>(shape.size()));
  node->writable = !value;
  CoarseNode coarse;
  coarse.payload = node;
  coarse.grad_bytes = static_cast<std::size_t>(shape.size()) * sizeof(T);
  if (leaf && tape.is_recording()) {
    node->name = "parameter";
    node->requires_grad = true;
    coarse.is_leaf = true;
    coarse.grad = grad;
    if (hook.swept) {
      node->op = new (tape.allocate(sizeof(LeafHook))) LeafHook(hook);
      coarse.backward = &run_leaf_hook;
    }
    if (tape.tangents()) [[unlikely]]  // tangent mode: this storage's tangent and gradients
      if (const detail::TangentSeed* seed =
              detail::find_seed(*tape.tangents(), value, shape.size(), dtype_of<T>())) {
        node->tangent = const_cast<void*>(seed->tangent);
        node->grad_tangent = seed->grad_tangent;
        if (seed->gradient) coarse.grad = seed->gradient;
      }
  }
  return Tensor<T>::wrap(tape.push_node(coarse), tape.epoch());
}

}  // namespace

namespace detail {
template <TensorElement T>
Tensor<T> new_data(const Shape& shape, T** values) {
  Tensor<T> t = record_data<T>(shape, nullptr, false, nullptr);
  *values = static_cast<T*>(t.node("new_data").value);
  return t;
}
template Tensor<float> new_data(const Shape&, float**);
template Tensor<double> new_data(const Shape&, double**);
}  // namespace detail

template <TensorElement T>
TensorNode& Tensor<T>::node(const char* what) const {
  if (epoch_ == 0) throw TapeError(fmt::format("autodiff: {} of an empty Tensor handle", what));
  TensorNode& n = detail::tensor_node(Tape::active().node(id_, epoch_, what));
  if (n.dtype != dtype_of<T>())
    throw TapeError(fmt::format("autodiff: {}: Tensor element type mismatch", what));
  return n;
}

template <TensorElement T>
Tensor<T> Tensor<T>::full(const Shape& shape, T value) {
  T* out;
  Tensor t = detail::new_data(shape, &out);
  std::fill_n(out, shape.size(), value);
  return t;
}
template <TensorElement T>
Tensor<T> Tensor<T>::zeros(const Shape& shape) {
  return full(shape, T(0));
}
template <TensorElement T>
Tensor<T> Tensor<T>::ones(const Shape& shape) {
  return full(shape, T(1));
}

template <TensorElement T>
Tensor<T> Tensor<T>::from(std::span<const T> data, const Shape& shape) {
  if (static_cast<std::int64_t>(data.size()) != shape.size())
    fail(fmt::format("Tensor::from: {} values given for shape {}, which holds {}", data.size(),
                     shape.str(), shape.size()));
  T* out;
  Tensor t = detail::new_data(shape, &out);
  std::copy(data.begin(), data.end(), out);
  return t;
}

template <TensorElement T>
Tensor<T> Tensor<T>::arange(T start, T stop, T step) {
  if (step == T(0) || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    fail(
        fmt::format("Tensor::arange: start {}, stop {}, step {}: expected finite values and a "
                    "non-zero step",
                    start, stop, step));
  const double count = std::max(0.0, std::ceil((double(stop) - double(start)) / double(step)));
  if (count > double(Shape::kMaxSize))
    fail(fmt::format("Tensor::arange: start {}, stop {}, step {} give {} elements, more than {}",
                     start, stop, step, count, Shape::kMaxSize));
  T* out;
  Tensor t = detail::new_data({static_cast<std::int64_t>(count)}, &out);
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(count); ++i)
    out[i] = start + static_cast<T>(i) * step;
  return t;
}

namespace {
// Data drawn from `distribution`, reproducibly from `seed`.
template <TensorElement T, class Distribution>
Tensor<T> drawn(const Shape& shape, Distribution distribution, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  T* out;
  Tensor<T> t = detail::new_data(shape, &out);
  for (std::int64_t i = 0; i < shape.size(); ++i) out[i] = distribution(rng);
  return t;
}
}  // namespace

template <TensorElement T>
Tensor<T> Tensor<T>::random_normal(const Shape& shape, T mean, T stddev, std::uint64_t seed) {
  if (!(stddev >= T(0)))
    fail(fmt::format("Tensor::random_normal: stddev is {}, expected ≥ 0", stddev));
  return drawn<T>(shape, std::normal_distribution<T>(mean, stddev), seed);
}

template <TensorElement T>
Tensor<T> Tensor<T>::random_uniform(const Shape& shape, T low, T high, std::uint64_t seed) {
  if (!(low < high))
    fail(fmt::format("Tensor::random_uniform: low {} must be below high {}", low, high));
  return drawn<T>(shape, std::uniform_real_distribution<T>(low, high), seed);
}

template <TensorElement T>
Tensor<T> Tensor<T>::parameter(T* value, T* grad, const Shape& shape) {
  if (!value || (!grad && shape.size() > 0))
    fail("Tensor::parameter: value and grad storage must not be null");
  return record_data<T>(shape, value, true, grad);
}

template <TensorElement T>
Tensor<T> Tensor<T>::parameter(T* value, T* grad, const Shape& shape, LeafHook hook) {
  if (!value || (!grad && shape.size() > 0))
    fail("Tensor::parameter: value and grad storage must not be null");
  return record_data<T>(shape, value, true, grad, hook);
}

template <TensorElement T>
Tensor<T> Tensor<T>::requires_grad() const {
  Tape& tape = Tape::active();
  CoarseNode& coarse = tape.node(id_, epoch_, "requires_grad()");
  TensorNode& n = node("requires_grad()");
  if (coarse.is_leaf) return *this;
  if (n.used)
    throw TapeError(fmt::format(
        "autodiff: requires_grad() of a Tensor already used by an op: gradient would not reach "
        "it through that op. Mark it right after making it, before using it (node {})",
        id_));
  if (n.requires_grad)
    throw TapeError(
        fmt::format("autodiff: requires_grad() of the result of {}, which already records a "
                    "gradient; only data can be marked",
                    n.name));
  if (!tape.is_recording()) return *this;
  n.requires_grad = true;
  n.writable = false;
  coarse.is_leaf = true;
  return *this;
}

template <TensorElement T>
Tensor<T> Tensor<T>::detach() const {
  const TensorNode& in = node("detach()");
  T* out;
  Tensor t = detail::new_data(in.shape, &out);
  std::copy_n(static_cast<const T*>(in.value), in.shape.size(), out);  // a copy, writable
  return t;
}

template <TensorElement T>
std::span<const T> Tensor<T>::data() const {
  const TensorNode& n = node("data()");
  return {static_cast<const T*>(n.value), static_cast<std::size_t>(n.shape.size())};
}

template <TensorElement T>
std::span<T> Tensor<T>::mutable_data() const {
  const TensorNode& n = node("mutable_data()");
  if (!n.writable)
    throw TapeError(
        "autodiff: mutable_data() of a Tensor that is recorded, a view, or already used by an "
        "op: only data made here and not yet used may be written");
  return {static_cast<T*>(n.value), static_cast<std::size_t>(n.shape.size())};
}

template <TensorElement T>
std::vector<T> Tensor<T>::to_vector() const {
  const auto d = data();
  return {d.begin(), d.end()};
}

template <TensorElement T>
T Tensor<T>::item() const {
  const TensorNode& n = node("item()");
  if (n.shape.size() != 1)
    fail(fmt::format("item(): the tensor has shape {}, expected exactly one element",
                     n.shape.str()));
  return static_cast<const T*>(n.value)[0];
}

template <TensorElement T>
T Tensor<T>::at(std::int64_t i) const {
  const TensorNode& n = node("at()");
  if (n.shape.rank() != 1 || i < 0 || i >= n.shape[0])
    fail(fmt::format("at({}): out of range for shape {}", i, n.shape.str()));
  return static_cast<const T*>(n.value)[i];
}

template <TensorElement T>
T Tensor<T>::at(std::int64_t i, std::int64_t j) const {
  const TensorNode& n = node("at()");
  if (n.shape.rank() != 2 || i < 0 || i >= n.shape[0] || j < 0 || j >= n.shape[1])
    fail(fmt::format("at({}, {}): out of range for shape {}", i, j, n.shape.str()));
  return static_cast<const T*>(n.value)[i * n.shape[1] + j];
}

template <TensorElement T>
std::vector<T> Tensor<T>::grad() const {
  const TensorNode& n = node("grad()");
  const void* g = Tape::active().node(id_).grad;
  std::vector<T> result(static_cast<std::size_t>(n.shape.size()), T(0));
  if (g) std::copy_n(static_cast<const T*>(g), result.size(), result.begin());
  return result;
}

template <TensorElement T>
void Tensor<T>::backward() const {
  const TensorNode& n = node("backward()");
  if (n.shape.size() != 1)
    fail(
        fmt::format("backward(): the tensor has shape {}; backward starts from a one-element "
                    "tensor (reduce it with sum or mean first)",
                    n.shape.str()));
  if (!n.requires_grad)
    throw TapeError(
        "autodiff: backward() of a Tensor that was not recorded: it depends on no "
        "input that requires a gradient");
  Tape& tape = Tape::active();
  tape.begin_backward();
  static_cast<T*>(tape.grad_buffer(id_))[0] += T(1);
  tape.sweep_all();
}

template <TensorElement T>
std::vector<T> Tensor<T>::tangent() const {
  const TensorNode& n = node("tangent()");
  std::vector<T> result(static_cast<std::size_t>(n.shape.size()), T(0));
  if (n.tangent) std::copy_n(static_cast<const T*>(n.tangent), result.size(), result.begin());
  return result;
}

template <TensorElement T>
std::vector<T> Tensor<T>::grad_tangent() const {
  const TensorNode& n = node("grad_tangent()");
  const CoarseNode& coarse = Tape::active().node(id_);
  std::vector<T> result(static_cast<std::size_t>(n.shape.size()), T(0));
  const T* g = nullptr;
  if (coarse.is_leaf)
    g = static_cast<const T*>(n.grad_tangent);
  else if (n.grad_has_tangent && coarse.grad)
    g = static_cast<const T*>(coarse.grad) + n.shape.size();
  if (g) std::copy_n(g, result.size(), result.begin());
  return result;
}

template class Tensor<float>;
template class Tensor<double>;

}  // namespace autodiff
