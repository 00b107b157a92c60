// Tangent mode: the guard, its seeds, the checks of op.hpp's record(), and tensor_hvp.
#include "autodiff/tensor/tangent.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/tensor/op.hpp"

namespace autodiff {

namespace detail {

void throw_no_tangent_rule(const char* op) {
  throw TapeError(fmt::format(
      "autodiff: the tensor op \"{}\" has no second-order rules (jvp and backward_jvp), so H·v "
      "cannot pass through it in tangent mode; give it both, or declare it linear (op.hpp says "
      "how), "
      "or record it outside TangentMode",
      op));
}

void throw_zero_tangent(const char* what) {
  throw TapeError(fmt::format(
      "autodiff: the output of \"{}\" was recorded before tangent mode began, so its gradient has "
      "no tangent; record the whole computation under TangentMode",
      what));
}

void check_tangent_inputs(Tape& tape, const std::uint32_t* inputs, int count, const char* op) {
  for (int i = 0; i < count; ++i) {
    CoarseNode& coarse = tape.node(inputs[i]);
    const TensorNode& n = tensor_node(coarse);
    if (n.requires_grad && !coarse.is_leaf && !n.grad_has_tangent)
      throw TapeError(fmt::format(
          "autodiff: {}: input {} is the output of \"{}\", recorded before tangent mode began, so "
          "its gradient has no tangent; record the whole computation under TangentMode",
          op, i, n.name));
  }
}

const TangentSeed* find_seed(const TangentRecording& recording, const void* value,
                             std::int64_t size, DType dtype) {
  for (const TangentSeed& seed : recording.seeds) {
    if (seed.value != value) continue;
    if (seed.size != size || seed.dtype != dtype)
      throw std::invalid_argument(
          fmt::format("TangentMode: a parameter of {} {} values was seeded with {} {} values", size,
                      dtype == DType::Float32 ? "float" : "double", seed.size,
                      seed.dtype == DType::Float32 ? "float" : "double"));
    return &seed;
  }
  return nullptr;
}

}  // namespace detail

namespace {
// The seeds' memory, handed from one guard to the next on a thread: a warm guard allocates nothing.
thread_local std::vector<detail::TangentSeed> spare_seeds;
}  // namespace

TangentMode::TangentMode(Tape& tape) : tape_(tape) {
  if (tape.tangents())
    throw TapeError("autodiff: TangentMode on a tape that is already in tangent mode");
  recording_.seeds = std::move(spare_seeds);
  recording_.seeds.clear();
  tape.set_tangents(&recording_);
}

TangentMode::~TangentMode() {
  tape_.set_tangents(nullptr);
  spare_seeds = std::move(recording_.seeds);
}

template <TensorElement T>
void TangentMode::seed_parameter(std::span<const T> value, std::span<const T> tangent,
                                 std::span<T> grad_tangent, std::span<T> gradient) {
  if (tangent.size() != value.size() || grad_tangent.size() != value.size() ||
      (!gradient.empty() && gradient.size() != value.size()))
    throw std::invalid_argument(fmt::format(
        "TangentMode::seed_parameter: {} values, a tangent of {}, a gradient tangent of {} and a "
        "gradient of {}: expected the same size (the gradient may be empty)",
        value.size(), tangent.size(), grad_tangent.size(), gradient.size()));
  recording_.seeds.push_back({value.data(), tangent.data(),
                              gradient.empty() ? nullptr : gradient.data(), grad_tangent.data(),
                              static_cast<std::int64_t>(value.size()), dtype_of<T>()});
}

template <TensorElement T>
void TangentMode::set_tangent(const Tensor<T>& leaf, std::span<const T> tangent) {
  CoarseNode& coarse = tape_.node(leaf.id(), leaf.epoch(), "TangentMode::set_tangent");
  detail::TensorNode& n = leaf.node("TangentMode::set_tangent");
  if (!coarse.is_leaf || n.used)
    throw TapeError(
        "autodiff: TangentMode::set_tangent of a Tensor that is not a leaf (requires_grad() or "
        "Tensor::parameter), or already used by an op: set its tangent right after making it");
  if (static_cast<std::int64_t>(tangent.size()) != n.shape.size())
    throw std::invalid_argument(
        fmt::format("TangentMode::set_tangent: {} values for a tensor of shape {}", tangent.size(),
                    n.shape.str()));
  T* copy = tape_.allocate_array<T>(tangent.size());
  std::copy(tangent.begin(), tangent.end(), copy);
  n.tangent = copy;
}

template void TangentMode::seed_parameter(std::span<const float>, std::span<const float>,
                                          std::span<float>, std::span<float>);
template void TangentMode::seed_parameter(std::span<const double>, std::span<const double>,
                                          std::span<double>, std::span<double>);
template void TangentMode::set_tangent(const Tensor<float>&, std::span<const float>);
template void TangentMode::set_tangent(const Tensor<double>&, std::span<const double>);

namespace {

std::int64_t total_size(std::span<const Shape> shapes) {
  std::int64_t total = 0;
  for (const Shape& s : shapes) total += s.size();
  return total;
}

// The inputs as leaves on the active tape, from x; with their tangents from v when given.
std::vector<Tensor<double>> make_leaves(std::span<const Shape> shapes, std::span<const double> x,
                                        std::span<const double> v, TangentMode* tangents) {
  std::vector<Tensor<double>> leaves;
  std::size_t at = 0;
  for (const Shape& shape : shapes) {
    const auto size = static_cast<std::size_t>(shape.size());
    leaves.push_back(Tensor<double>::from(x.subspan(at, size), shape).requires_grad());
    if (tangents) tangents->set_tangent(leaves.back(), v.subspan(at, size));
    at += size;
  }
  return leaves;
}

Tensor<double> checked_output(const TensorFunction& f, std::span<const Tensor<double>> leaves) {
  const Tensor<double> y = f(leaves);
  if (y.size() != 1 || !y.is_recorded())
    throw std::invalid_argument(fmt::format(
        "tensor_hvp: f returned a tensor of shape {}{}, expected one element recorded from its "
        "inputs",
        y.shape().str(), y.is_recorded() ? "" : " not recorded"));
  return y;
}

// The first-order tape's gradient of f at x, on a tape of its own.
std::vector<double> tape_gradient(const TensorFunction& f, std::span<const Shape> shapes,
                                  std::span<const double> x) {
  Tape tape;
  TapeScope scope(tape);
  const std::vector<Tensor<double>> leaves = make_leaves(shapes, x, {}, nullptr);
  checked_output(f, leaves).backward();
  std::vector<double> gradient;
  for (const Tensor<double>& leaf : leaves) {
    const std::vector<double> g = leaf.grad();
    gradient.insert(gradient.end(), g.begin(), g.end());
  }
  return gradient;
}

}  // namespace

TensorHvp tensor_hvp(const TensorFunction& f, std::span<const Shape> shapes,
                     std::span<const double> x, std::span<const double> v) {
  const std::int64_t n = total_size(shapes);
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(v.size()) != n)
    throw std::invalid_argument(
        fmt::format("tensor_hvp: x has {} values and v {}, expected {} (the shapes' sizes)",
                    x.size(), v.size(), n));
  Tape tape;
  TapeScope scope(tape);
  TangentMode tangents(tape);
  const std::vector<Tensor<double>> leaves = make_leaves(shapes, x, v, &tangents);
  const Tensor<double> y = checked_output(f, leaves);
  y.backward();
  TensorHvp result;
  result.value = y.item();
  for (const Tensor<double>& leaf : leaves) {
    const std::vector<double> g = leaf.grad(), hv = leaf.grad_tangent();
    result.gradient.insert(result.gradient.end(), g.begin(), g.end());
    result.hessian_vector.insert(result.hessian_vector.end(), hv.begin(), hv.end());
  }
  return result;
}

SecondOrderCheck check_tensor_hvp(const TensorFunction& f, std::span<const Shape> shapes,
                                  std::span<const double> x, std::span<const double> v,
                                  GradientCheckOptions options) {
  const TensorHvp r = tensor_hvp(f, shapes, x, v);
  // Ridders asks for one entry at a time, at the same points for every entry: keep them.
  std::map<std::vector<double>, std::vector<double>> gradients;
  auto gradient_at = [&](std::span<const double> at) {
    std::vector<double> point(at.begin(), at.end());
    auto found = gradients.find(point);
    if (found == gradients.end())
      found = gradients.emplace(point, tape_gradient(f, shapes, at)).first;
    return found->second;
  };
  return detail::check_second_order(gradient_at, x, v, r.value, r.hessian_vector, options);
}

}  // namespace autodiff
