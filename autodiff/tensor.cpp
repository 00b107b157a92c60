// Tensor ops: each op's forward (the public function) and its backward rule side by side;
// the dispatch from a recorded node to its backward is at the end of the file.
#include "autodiff/tensor.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/ops.hpp"

namespace autodiff {

using detail::TensorNode;
using detail::TensorOp;

// ============================================================================================
// Arena
// ============================================================================================

namespace detail {

namespace {
constexpr std::size_t kMinBlock = std::size_t{1} << 20;
}  // namespace

Arena::Block Arena::make_block(std::size_t size) {
  auto* memory = static_cast<std::byte*>(::operator new[](size, std::align_val_t{kAlignment}));
  return {std::unique_ptr<std::byte[], AlignedDelete>(memory), size};
}

void* Arena::allocate(std::size_t bytes) {
  bytes = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  while (current_ < blocks_.size()) {
    Block& block = blocks_[current_];
    if (offset_ + bytes <= block.size) {
      void* p = block.memory.get() + offset_;
      offset_ += bytes;
      return p;
    }
    used_before_ += offset_;
    ++current_;
    offset_ = 0;
  }
  const std::size_t last = blocks_.empty() ? 0 : blocks_.back().size;
  const std::size_t size = std::max({bytes, 2 * last, kMinBlock});
  blocks_.push_back(make_block(size));
  current_ = blocks_.size() - 1;
  offset_ = bytes;
  return blocks_.back().memory.get();
}

void Arena::reset() {
  if (blocks_.size() > 1) {  // merge: the next round of the same allocations fits in one block
    const std::size_t total = bytes_reserved();
    blocks_.clear();
    blocks_.push_back(make_block(total));
  }
  current_ = 0;
  offset_ = 0;
  used_before_ = 0;
}

std::size_t Arena::bytes_reserved() const {
  std::size_t total = 0;
  for (const Block& block : blocks_) total += block.size;
  return total;
}

}  // namespace detail

// ============================================================================================
// TensorTape
// ============================================================================================

namespace {
std::size_t element_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }
std::size_t grad_bytes(const TensorNode& n) {
  return static_cast<std::size_t>(n.shape.size()) * element_size(n.dtype);
}
}  // namespace

namespace {
void apply_blas_thread_policy();  // below, with set_blas_threads
}  // namespace

TensorTape::TensorTape(Tape& tape) : tape_(tape) { apply_blas_thread_policy(); }

TensorNode& TensorTape::node(std::uint32_t id, std::uint32_t epoch, const char* what) {
  if (epoch == 0) throw TapeError(fmt::format("autodiff: {} of an empty Tensor handle", what));
  if (epoch != tape_.epoch() || id >= nodes_.size())
    throw TapeError(fmt::format(
        "autodiff: {} of a Tensor (node {}, tape epoch {}) that is not on the active tape (epoch "
        "{}): it was made before the tape was cleared, or on another tape or thread",
        what, id, epoch, tape_.epoch()));
  return nodes_[id];
}

std::uint32_t TensorTape::add(const TensorNode& node) {
  nodes_.push_back(node);
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

void TensorTape::clear() {
  nodes_.clear();  // keeps its capacity
  arena_.reset();
}

std::size_t TensorTape::bytes_used() const {
  return nodes_.size() * sizeof(TensorNode) + arena_.bytes_used();
}
std::size_t TensorTape::bytes_reserved() const {
  return nodes_.capacity() * sizeof(TensorNode) + arena_.bytes_reserved();
}

void* TensorTape::grad_of(std::uint32_t id) {
  TensorNode& n = nodes_[id];
  if (!n.grad) {
    n.grad = arena_.allocate(grad_bytes(n));
    std::memset(n.grad, 0, grad_bytes(n));
  }
  return n.grad;
}

void TensorTape::zero_intermediate_grads() {
  for (TensorNode& n : nodes_) {
    if (n.op == TensorOp::ToVar && n.slot != kNotRecorded) tape_.adjoint(n.slot) = 0.0;
    if (n.grad && n.op != TensorOp::Leaf) std::memset(n.grad, 0, grad_bytes(n));
  }
}

void TensorTape::zero_grads() {
  for (TensorNode& n : nodes_)
    if (n.grad) std::memset(n.grad, 0, grad_bytes(n));
}

namespace {
void backward_node(TensorTape& tt, std::uint32_t id);
}  // namespace

void TensorTape::backward_interleaved(std::uint32_t statement_end) {
  std::uint32_t end = statement_end;
  for (std::size_t t = nodes_.size(); t-- > 0;) {
    const TensorNode& n = nodes_[t];
    if (n.statement_position < end) {
      tape_.sweep_statements(end, n.statement_position);
      end = n.statement_position;
    }
    if (!n.requires_grad || n.op == TensorOp::Leaf) continue;
    const bool reached = n.op == TensorOp::ToVar ? tape_.adjoint(n.slot) != 0.0 : n.grad != nullptr;
    if (reached) backward_node(*this, static_cast<std::uint32_t>(t));
  }
  if (end > 0) tape_.sweep_statements(end, 0);
}

// ============================================================================================
// Helpers for the ops
// ============================================================================================

namespace {

TensorTape& active_tensors() { return Tape::active().tensors(); }

template <TensorElement T>
T* values(const TensorNode& n) {
  return static_cast<T*>(n.value);
}

// A node of `op` over `value`, recorded if the tape records and an input needs a gradient.
template <TensorElement T>
TensorNode node_over(TensorTape& tt, TensorOp op, const Shape& shape, bool inputs_need_grad,
                     T* value) {
  TensorNode n;
  n.op = op;
  n.dtype = dtype_of<T>();
  n.shape = shape;
  n.requires_grad = inputs_need_grad && tt.tape().is_recording();
  n.value = value;
  n.statement_position = static_cast<std::uint32_t>(tt.tape().statement_count());
  return n;
}

// The same, with a fresh value buffer in the arena.
template <TensorElement T>
TensorNode new_node(TensorTape& tt, TensorOp op, const Shape& shape, bool inputs_need_grad) {
  return node_over<T>(tt, op, shape, inputs_need_grad, tt.allocate_array<T>(shape.size()));
}

template <TensorElement T>
Tensor<T> add_node(TensorTape& tt, const TensorNode& n) {
  return Tensor<T>::wrap(tt.add(n), tt.tape().epoch());
}

template <TensorElement T>
T* grad_buffer(TensorTape& tt, std::uint32_t id) {
  return static_cast<T*>(tt.grad_of(id));
}

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

// ---- Broadcasting: the output index and the two input indices of every output element ----

struct Broadcast {
  std::int64_t dims[Shape::kMaxRank];
  std::int64_t stride_a[Shape::kMaxRank];
  std::int64_t stride_b[Shape::kMaxRank];
  bool same_shape;
  std::int64_t size;
};

// Strides of `in` (aligned to the right of `out`), 0 along broadcast dimensions.
void broadcast_strides(const Shape& in, const Shape& out, std::int64_t* strides) {
  std::int64_t stride = 1;
  for (int i = Shape::kMaxRank - 1; i >= 0; --i) {
    const int in_axis = in.rank() - Shape::kMaxRank + i;
    const std::int64_t dim = in_axis >= 0 ? in[in_axis] : 1;
    const int out_axis = out.rank() - Shape::kMaxRank + i;
    const std::int64_t out_dim = out_axis >= 0 ? out[out_axis] : 1;
    strides[i] = (dim == 1 && out_dim != 1) ? 0 : stride;
    stride *= dim;
  }
}

Broadcast plan_broadcast(const Shape& out, const Shape& a, const Shape& b) {
  Broadcast p{};
  for (int i = 0; i < Shape::kMaxRank; ++i) {
    const int axis = out.rank() - Shape::kMaxRank + i;
    p.dims[i] = axis >= 0 ? out[axis] : 1;
  }
  broadcast_strides(a, out, p.stride_a);
  broadcast_strides(b, out, p.stride_b);
  p.same_shape = a == out && b == out;
  p.size = out.size();
  return p;
}

// f(output index, index into a, index into b) for every output element, in order.
template <class F>
void for_each_broadcast(const Broadcast& p, F&& f) {
  if (p.same_shape) {
    for (std::int64_t i = 0; i < p.size; ++i) f(i, i, i);
    return;
  }
  std::int64_t o = 0;
  for (std::int64_t i0 = 0; i0 < p.dims[0]; ++i0)
    for (std::int64_t i1 = 0; i1 < p.dims[1]; ++i1)
      for (std::int64_t i2 = 0; i2 < p.dims[2]; ++i2) {
        const std::int64_t a = i0 * p.stride_a[0] + i1 * p.stride_a[1] + i2 * p.stride_a[2];
        const std::int64_t b = i0 * p.stride_b[0] + i1 * p.stride_b[1] + i2 * p.stride_b[2];
        for (std::int64_t i3 = 0; i3 < p.dims[3]; ++i3, ++o)
          f(o, a + i3 * p.stride_a[3], b + i3 * p.stride_b[3]);
      }
}

}  // namespace

// ============================================================================================
// Tensor<T>: creation and access
// ============================================================================================

template <TensorElement T>
TensorNode& Tensor<T>::node(const char* what) const {
  TensorNode& n = active_tensors().node(id_, epoch_, what);
  if (n.dtype != dtype_of<T>())
    throw TapeError(fmt::format("autodiff: {}: Tensor element type mismatch", what));
  return n;
}

template <TensorElement T>
Tensor<T> Tensor<T>::full(const Shape& shape, T value) {
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, shape, false);
  std::fill_n(values<T>(n), shape.size(), value);
  return add_node<T>(tt, n);
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
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, shape, false);
  std::copy(data.begin(), data.end(), values<T>(n));
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::arange(T start, T stop, T step) {
  if (step == T(0) || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    fail(
        fmt::format("Tensor::arange: start {}, stop {}, step {}: expected finite values and a "
                    "non-zero step",
                    start, stop, step));
  const double count = std::max(0.0, std::ceil((double(stop) - double(start)) / double(step)));
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, {static_cast<std::int64_t>(count)}, false);
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(count); ++i)
    values<T>(n)[i] = start + static_cast<T>(i) * step;
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::random_normal(const Shape& shape, T mean, T stddev, std::uint64_t seed) {
  if (!(stddev >= T(0)))
    fail(fmt::format("Tensor::random_normal: stddev is {}, expected ≥ 0", stddev));
  std::mt19937_64 rng(seed);
  std::normal_distribution<T> normal(mean, stddev);
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, shape, false);
  for (std::int64_t i = 0; i < shape.size(); ++i) values<T>(n)[i] = normal(rng);
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::random_uniform(const Shape& shape, T low, T high, std::uint64_t seed) {
  if (!(low < high))
    fail(fmt::format("Tensor::random_uniform: low {} must be below high {}", low, high));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<T> uniform(low, high);
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, shape, false);
  for (std::int64_t i = 0; i < shape.size(); ++i) values<T>(n)[i] = uniform(rng);
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::parameter(T* value, T* grad, const Shape& shape) {
  TensorTape& tt = active_tensors();
  TensorNode n = node_over<T>(tt, TensorOp::Leaf, shape, true, value);
  n.grad = n.requires_grad ? grad : nullptr;
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::requires_grad() const {
  const TensorNode& in = node("requires_grad()");
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Leaf, in.shape, true);
  std::copy_n(values<T>(in), in.shape.size(), values<T>(n));
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::detach() const {
  const TensorNode& in = node("detach()");
  TensorTape& tt = active_tensors();
  TensorNode n = new_node<T>(tt, TensorOp::Constant, in.shape, false);
  std::copy_n(values<T>(in), in.shape.size(), values<T>(n));  // a copy: constants are writable
  return add_node<T>(tt, n);
}

template <TensorElement T>
std::span<const T> Tensor<T>::data() const {
  const TensorNode& n = node("data()");
  return {values<T>(n), static_cast<std::size_t>(n.shape.size())};
}

template <TensorElement T>
std::span<T> Tensor<T>::mutable_data() const {
  const TensorNode& n = node("mutable_data()");
  if (n.op != TensorOp::Constant)
    throw TapeError("autodiff: mutable_data() of a recorded Tensor: only constants may be written");
  return {values<T>(n), static_cast<std::size_t>(n.shape.size())};
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
  return values<T>(n)[0];
}

template <TensorElement T>
T Tensor<T>::at(std::int64_t i) const {
  const TensorNode& n = node("at()");
  if (n.shape.rank() != 1 || i < 0 || i >= n.shape[0])
    fail(fmt::format("at({}): out of range for shape {}", i, n.shape.str()));
  return values<T>(n)[i];
}

template <TensorElement T>
T Tensor<T>::at(std::int64_t i, std::int64_t j) const {
  const TensorNode& n = node("at()");
  if (n.shape.rank() != 2 || i < 0 || i >= n.shape[0] || j < 0 || j >= n.shape[1])
    fail(fmt::format("at({}, {}): out of range for shape {}", i, j, n.shape.str()));
  return values<T>(n)[i * n.shape[1] + j];
}

template <TensorElement T>
std::vector<T> Tensor<T>::grad() const {
  const TensorNode& n = node("grad()");
  std::vector<T> g(static_cast<std::size_t>(n.shape.size()), T(0));
  if (n.grad) std::copy_n(static_cast<const T*>(n.grad), g.size(), g.begin());
  return g;
}

template <TensorElement T>
void Tensor<T>::backward() const {
  TensorNode& n = node("backward()");
  if (n.shape.size() != 1)
    fail(
        fmt::format("backward(): the tensor has shape {}; backward starts from a one-element "
                    "tensor (reduce it with sum or mean first)",
                    n.shape.str()));
  if (!n.requires_grad)
    throw TapeError(
        "autodiff: backward() of a Tensor that was not recorded: it depends on no "
        "input that requires a gradient");
  TensorTape& tt = active_tensors();
  tt.backward_from(id_);
}

void TensorTape::backward_from(std::uint32_t id) {
  if (tape_.swept_) tape_.zero_intermediate_adjoints();
  TensorNode& n = nodes_[id];
  void* g = grad_of(id);
  if (n.dtype == DType::Float32)
    static_cast<float*>(g)[0] += 1.0f;
  else
    static_cast<double*>(g)[0] += 1.0;
  backward_interleaved(static_cast<std::uint32_t>(tape_.statement_count()));
  tape_.swept_ = true;
}

// ============================================================================================
// Elementwise binary ops, with broadcasting: value and partials from the op table (ops.hpp)
// ============================================================================================

namespace {

template <class Op, TensorElement T>
Tensor<T> binary(const Tensor<T>& a, const Tensor<T>& b, TensorOp kind, const char* name) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node(name);
  const TensorNode& nb = b.node(name);
  const Shape shape = broadcast_shapes(na.shape, nb.shape, name);
  TensorNode n = new_node<T>(tt, kind, shape, na.requires_grad || nb.requires_grad);
  n.input[0] = a.id();
  n.input[1] = b.id();
  const T* x = values<T>(na);
  const T* y = values<T>(nb);
  T* out = values<T>(n);
  for_each_broadcast(
      plan_broadcast(shape, na.shape, nb.shape),
      [&](std::int64_t o, std::int64_t i, std::int64_t j) { out[o] = Op::value(x[i], y[j]); });
  return add_node<T>(tt, n);
}

template <class Op, TensorElement T>
void binary_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const TensorNode& nb = tt.node(n.input[1], tt.tape().epoch(), "backward");
  const T* x = values<T>(na);
  const T* y = values<T>(nb);
  const T* out = values<T>(n);
  const T* g = static_cast<const T*>(n.grad);
  const Broadcast plan = plan_broadcast(n.shape, na.shape, nb.shape);
  if (na.requires_grad) {
    T* gx = grad_buffer<T>(tt, n.input[0]);
    for_each_broadcast(plan, [&](std::int64_t o, std::int64_t i, std::int64_t j) {
      gx[i] += g[o] * Op::d_left(x[i], y[j], out[o]);
    });
  }
  if (nb.requires_grad) {
    T* gy = grad_buffer<T>(tt, n.input[1]);
    for_each_broadcast(plan, [&](std::int64_t o, std::int64_t i, std::int64_t j) {
      gy[j] += g[o] * Op::d_right(x[i], y[j], out[o]);
    });
  }
}

}  // namespace

template <TensorElement T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Add>(a, b, TensorOp::Add, "add");
}
template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Subtract>(a, b, TensorOp::Subtract, "subtract");
}
template <TensorElement T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Multiply>(a, b, TensorOp::Multiply, "multiply");
}
template <TensorElement T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Divide>(a, b, TensorOp::Divide, "divide");
}
template <TensorElement T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Minimum>(a, b, TensorOp::Minimum, "minimum");
}
template <TensorElement T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) {
  return binary<op::Maximum>(a, b, TensorOp::Maximum, "maximum");
}
template <TensorElement T>
Tensor<T> pow(const Tensor<T>& a, T exponent) {
  return binary<op::Power>(a, Tensor<T>::full({}, exponent), TensorOp::Power, "pow");
}

// ============================================================================================
// Elementwise unary ops: value and derivative from the op table (ops.hpp)
// ============================================================================================

namespace {

template <class Op, TensorElement T>
Tensor<T> unary(const Tensor<T>& a, TensorOp kind, const char* name) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node(name);
  TensorNode n = new_node<T>(tt, kind, na.shape, na.requires_grad);
  n.input[0] = a.id();
  const T* x = values<T>(na);
  T* out = values<T>(n);
  const std::int64_t size = na.shape.size();
  for (std::int64_t i = 0; i < size; ++i) out[i] = Op::value(x[i]);
  return add_node<T>(tt, n);
}

template <class Op, TensorElement T>
void unary_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const T* x = values<T>(na);
  const T* out = values<T>(n);
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]);
  const std::int64_t size = n.shape.size();
  for (std::int64_t i = 0; i < size; ++i) gx[i] += g[i] * Op::derivative(x[i], out[i]);
}

}  // namespace

template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& a) {
  return unary<op::Negate>(a, TensorOp::Negate, "negate");
}
template <TensorElement T>
Tensor<T> square(const Tensor<T>& a) {
  return unary<op::Square>(a, TensorOp::Square, "square");
}
template <TensorElement T>
Tensor<T> exp(const Tensor<T>& a) {
  return unary<op::Exp>(a, TensorOp::Exp, "exp");
}
template <TensorElement T>
Tensor<T> log(const Tensor<T>& a) {
  return unary<op::Log>(a, TensorOp::Log, "log");
}
template <TensorElement T>
Tensor<T> sqrt(const Tensor<T>& a) {
  return unary<op::Sqrt>(a, TensorOp::Sqrt, "sqrt");
}
template <TensorElement T>
Tensor<T> tanh(const Tensor<T>& a) {
  return unary<op::Tanh>(a, TensorOp::Tanh, "tanh");
}
template <TensorElement T>
Tensor<T> sigmoid(const Tensor<T>& a) {
  return unary<op::Sigmoid>(a, TensorOp::Sigmoid, "sigmoid");
}
template <TensorElement T>
Tensor<T> relu(const Tensor<T>& a) {
  return unary<op::Relu>(a, TensorOp::Relu, "relu");
}
template <TensorElement T>
Tensor<T> abs(const Tensor<T>& a) {
  return unary<op::Abs>(a, TensorOp::Abs, "abs");
}

// ============================================================================================
// Reductions: an axis splits the input into (outer, n, inner); all elements is (1, size, 1)
// ============================================================================================

namespace {

struct Reduction {
  std::int64_t outer, n, inner;
};

Reduction plan_reduction(const Shape& shape, int axis) {
  if (axis < 0) return {1, shape.size(), 1};
  Reduction r{1, shape[axis], 1};
  for (int i = 0; i < axis; ++i) r.outer *= shape[i];
  for (int i = axis + 1; i < shape.rank(); ++i) r.inner *= shape[i];
  return r;
}

Shape reduced_shape(const Shape& shape, int axis, bool keepdims) {
  std::int64_t dims[Shape::kMaxRank];
  int rank = 0;
  for (int i = 0; i < shape.rank(); ++i) {
    if (axis < 0 || i == axis) {
      if (keepdims) dims[rank++] = 1;
    } else {
      dims[rank++] = shape[i];
    }
  }
  return Shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(rank)));
}

enum class Reduce { Sum, Mean, Max, Argmax };

template <TensorElement T>
Tensor<T> reduce(const Tensor<T>& a, int axis_or_all, bool keepdims, Reduce how, const char* name) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node(name);
  const int axis =
      axis_or_all == std::numeric_limits<int>::min() ? -1 : na.shape.axis(axis_or_all, name);
  const Reduction r = plan_reduction(na.shape, axis);
  if (r.n == 0 && (how == Reduce::Max || how == Reduce::Argmax))
    fail(fmt::format("{}: cannot reduce an empty axis (shape {})", name, na.shape.str()));
  static constexpr TensorOp kinds[] = {TensorOp::Sum, TensorOp::Mean, TensorOp::Max,
                                       TensorOp::Constant};
  const bool differentiable = how != Reduce::Argmax;
  TensorNode n =
      new_node<T>(tt, kinds[static_cast<int>(how)], reduced_shape(na.shape, axis, keepdims),
                  differentiable && na.requires_grad);
  n.input[0] = a.id();
  n.axis = axis;
  const T* x = values<T>(na);
  T* out = values<T>(n);
  for (std::int64_t o = 0; o < r.outer; ++o)
    for (std::int64_t i = 0; i < r.inner; ++i) {
      const T* row = x + o * r.n * r.inner + i;
      if (how == Reduce::Sum || how == Reduce::Mean) {
        double total = 0;  // accumulate in double: float sums of many terms drift
        for (std::int64_t k = 0; k < r.n; ++k) total += row[k * r.inner];
        out[o * r.inner + i] = static_cast<T>(how == Reduce::Mean ? total / double(r.n) : total);
      } else {
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < r.n; ++k)
          if (row[k * r.inner] > row[best * r.inner]) best = k;
        out[o * r.inner + i] = how == Reduce::Max ? row[best * r.inner] : static_cast<T>(best);
      }
    }
  return add_node<T>(tt, n);
}

template <TensorElement T>
void reduce_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const Reduction r = plan_reduction(na.shape, n.axis);
  const T* x = values<T>(na);
  const T* out = values<T>(n);
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]);
  const T scale = n.op == TensorOp::Mean ? T(1) / static_cast<T>(r.n) : T(1);
  for (std::int64_t o = 0; o < r.outer; ++o)
    for (std::int64_t i = 0; i < r.inner; ++i) {
      const std::int64_t base = o * r.n * r.inner + i;
      const T gi = g[o * r.inner + i];
      if (n.op == TensorOp::Max) {  // the first maximal element takes it all
        for (std::int64_t k = 0; k < r.n; ++k)
          if (x[base + k * r.inner] == out[o * r.inner + i]) {
            gx[base + k * r.inner] += gi;
            break;
          }
      } else {
        for (std::int64_t k = 0; k < r.n; ++k) gx[base + k * r.inner] += gi * scale;
      }
    }
}

constexpr int kAll = std::numeric_limits<int>::min();

}  // namespace

template <TensorElement T>
Tensor<T> sum(const Tensor<T>& a) {
  return reduce(a, kAll, false, Reduce::Sum, "sum");
}
template <TensorElement T>
Tensor<T> sum(const Tensor<T>& a, int axis, bool keepdims) {
  return reduce(a, axis, keepdims, Reduce::Sum, "sum");
}
template <TensorElement T>
Tensor<T> mean(const Tensor<T>& a) {
  return reduce(a, kAll, false, Reduce::Mean, "mean");
}
template <TensorElement T>
Tensor<T> mean(const Tensor<T>& a, int axis, bool keepdims) {
  return reduce(a, axis, keepdims, Reduce::Mean, "mean");
}
template <TensorElement T>
Tensor<T> max(const Tensor<T>& a) {
  return reduce(a, kAll, false, Reduce::Max, "max");
}
template <TensorElement T>
Tensor<T> max(const Tensor<T>& a, int axis, bool keepdims) {
  return reduce(a, axis, keepdims, Reduce::Max, "max");
}
template <TensorElement T>
Tensor<T> argmax(const Tensor<T>& a) {
  return reduce(a, kAll, false, Reduce::Argmax, "argmax");
}
template <TensorElement T>
Tensor<T> argmax(const Tensor<T>& a, int axis, bool keepdims) {
  return reduce(a, axis, keepdims, Reduce::Argmax, "argmax");
}

// ============================================================================================
// matmul through BLAS: C = A·B; backward dA += dC·Bᵀ, dB += Aᵀ·dC
// ============================================================================================

namespace {

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t m, std::int64_t n, std::int64_t k,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, std::int64_t m, std::int64_t n, std::int64_t k,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), 1.0, a, int(lda), b, int(ldb), beta, c,
              int(ldc));
}

template <TensorElement T>
void matmul_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const TensorNode& nb = tt.node(n.input[1], tt.tape().epoch(), "backward");
  const std::int64_t m = na.shape[0], k = na.shape[1], cols = nb.shape[1];
  const T* g = static_cast<const T*>(n.grad);
  if (m == 0 || k == 0 || cols == 0) return;
  if (na.requires_grad)
    gemm(CblasNoTrans, CblasTrans, m, k, cols, g, cols, values<T>(nb), cols, T(1),
         grad_buffer<T>(tt, n.input[0]), k);
  if (nb.requires_grad)
    gemm(CblasTrans, CblasNoTrans, k, cols, m, values<T>(na), k, g, cols, T(1),
         grad_buffer<T>(tt, n.input[1]), cols);
}

}  // namespace

template <TensorElement T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("matmul");
  const TensorNode& nb = b.node("matmul");
  if (na.shape.rank() != 2 || nb.shape.rank() != 2 || na.shape[1] != nb.shape[0])
    fail(fmt::format("matmul: shapes {} and {} do not fit: expected (m, k) and (k, n)",
                     na.shape.str(), nb.shape.str()));
  const std::int64_t m = na.shape[0], k = na.shape[1], cols = nb.shape[1];
  constexpr std::int64_t kBlasMax = std::numeric_limits<int>::max();  // CBLAS takes int sizes
  if (m * k > kBlasMax || k * cols > kBlasMax || m * cols > kBlasMax)
    fail(
        fmt::format("matmul: shapes {} and {} exceed the {} elements per matrix that BLAS "
                    "addresses with int",
                    na.shape.str(), nb.shape.str(), kBlasMax));
  TensorNode n = new_node<T>(tt, TensorOp::MatMul, {m, cols}, na.requires_grad || nb.requires_grad);
  n.input[0] = a.id();
  n.input[1] = b.id();
  if (k == 0)
    std::fill_n(values<T>(n), m * cols, T(0));
  else if (m > 0 && cols > 0)
    gemm(CblasNoTrans, CblasNoTrans, m, cols, k, values<T>(na), k, values<T>(nb), cols, T(0),
         values<T>(n), cols);
  return add_node<T>(tt, n);
}

namespace {
std::once_flag g_blas_policy;
// Applied once, at the first tensor op: one BLAS thread unless the user chose otherwise (with
// set_blas_threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the environment).
void apply_blas_thread_policy() {
  std::call_once(g_blas_policy, [] {
    if (!std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("OMP_NUM_THREADS"))
      openblas_set_num_threads(1);
  });
}
}  // namespace

void set_blas_threads(int threads) {
  if (threads < 1) fail(fmt::format("set_blas_threads: {} threads, expected ≥ 1", threads));
  std::call_once(g_blas_policy, [] {});
  openblas_set_num_threads(threads);
}
int blas_threads() { return openblas_get_num_threads(); }

// ============================================================================================
// Layout: transpose, reshape, slice_rows, gather_rows
// ============================================================================================

template <TensorElement T>
Tensor<T> transpose(const Tensor<T>& a) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("transpose");
  if (na.shape.rank() != 2)
    fail(fmt::format("transpose: shape {} is not of rank 2", na.shape.str()));
  const std::int64_t rows = na.shape[0], cols = na.shape[1];
  TensorNode n = new_node<T>(tt, TensorOp::Transpose, {cols, rows}, na.requires_grad);
  n.input[0] = a.id();
  const T* x = values<T>(na);
  T* out = values<T>(n);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) out[j * rows + i] = x[i * cols + j];
  return add_node<T>(tt, n);
}

namespace {
template <TensorElement T>
void transpose_backward(TensorTape& tt, const TensorNode& n) {
  const std::int64_t rows = n.shape[1], cols = n.shape[0];  // of the input
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) gx[i * cols + j] += g[j * rows + i];
}

// Reshape and slice_rows share their input's values; backward adds into a contiguous range.
template <TensorElement T>
void view_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const std::int64_t offset = static_cast<const T*>(n.value) - values<T>(na);
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]) + offset;
  const std::int64_t size = n.shape.size();
  for (std::int64_t i = 0; i < size; ++i) gx[i] += g[i];
}
}  // namespace

template <TensorElement T>
Tensor<T> reshape(const Tensor<T>& a, std::span<const std::int64_t> dims) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("reshape");
  std::int64_t resolved[Shape::kMaxRank];
  if (dims.size() > Shape::kMaxRank)
    fail(fmt::format("reshape: {} dimensions, at most {}", dims.size(), Shape::kMaxRank));
  int unknown = -1;
  std::int64_t known = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    resolved[i] = dims[i];
    if (dims[i] == -1) {
      if (unknown >= 0) fail("reshape: at most one dimension may be -1");
      unknown = static_cast<int>(i);
    } else {
      known *= dims[i];
    }
  }
  if (unknown >= 0 && known > 0) resolved[unknown] = na.shape.size() / known;
  const Shape shape(std::span<const std::int64_t>(resolved, dims.size()));
  if (shape.size() != na.shape.size())
    fail(fmt::format("reshape: cannot reshape shape {} ({} elements) into {}", na.shape.str(),
                     na.shape.size(), shape.str()));
  TensorNode n = node_over<T>(tt, TensorOp::Reshape, shape, na.requires_grad, values<T>(na));
  n.input[0] = a.id();
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> slice_rows(const Tensor<T>& a, std::int64_t begin, std::int64_t end) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("slice_rows");
  if (na.shape.rank() < 1 || begin < 0 || begin > end || end > na.shape[0])
    fail(fmt::format("slice_rows: rows [{}, {}) of shape {}: expected 0 ≤ begin ≤ end ≤ rows",
                     begin, end, na.shape.str()));
  std::int64_t dims[Shape::kMaxRank];
  for (int i = 0; i < na.shape.rank(); ++i) dims[i] = na.shape[i];
  dims[0] = end - begin;
  const std::int64_t row = na.shape.size() / std::max<std::int64_t>(na.shape[0], 1);
  const Shape shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(na.shape.rank())));
  TensorNode n =
      node_over<T>(tt, TensorOp::SliceRows, shape, na.requires_grad, values<T>(na) + begin * row);
  n.input[0] = a.id();
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> gather_rows(const Tensor<T>& a, std::span<const std::int64_t> rows) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("gather_rows");
  if (na.shape.rank() < 1) fail("gather_rows: a scalar has no rows");
  for (std::int64_t r : rows)
    if (r < 0 || r >= na.shape[0])
      fail(fmt::format("gather_rows: row {} is out of range for shape {}", r, na.shape.str()));
  std::int64_t dims[Shape::kMaxRank];
  for (int i = 0; i < na.shape.rank(); ++i) dims[i] = na.shape[i];
  dims[0] = static_cast<std::int64_t>(rows.size());
  const std::int64_t row = na.shape.size() / std::max<std::int64_t>(na.shape[0], 1);
  TensorNode n = new_node<T>(
      tt, TensorOp::GatherRows,
      Shape(std::span<const std::int64_t>(dims, static_cast<std::size_t>(na.shape.rank()))),
      na.requires_grad);
  n.input[0] = a.id();
  auto* kept = tt.allocate_array<std::int64_t>(static_cast<std::int64_t>(rows.size()));
  std::copy(rows.begin(), rows.end(), kept);
  n.aux = kept;
  n.aux_count = static_cast<std::int64_t>(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::copy_n(values<T>(na) + rows[i] * row, row,
                values<T>(n) + static_cast<std::int64_t>(i) * row);
  return add_node<T>(tt, n);
}

namespace {
template <TensorElement T>
void gather_rows_backward(TensorTape& tt, const TensorNode& n) {
  const std::int64_t row = n.shape.size() / std::max<std::int64_t>(n.shape[0], 1);
  const auto* rows = static_cast<const std::int64_t*>(n.aux);
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]);
  for (std::int64_t i = 0; i < n.aux_count; ++i)
    for (std::int64_t j = 0; j < row; ++j) gx[rows[i] * row + j] += g[i * row + j];
}
}  // namespace

// ============================================================================================
// softmax, log_softmax (last axis) and the fused cross-entropy with logits
// ============================================================================================

namespace {

// y = log_softmax(x) for one row: x − max − log Σ exp(x − max).
template <TensorElement T>
void log_softmax_row(const T* x, T* y, std::int64_t cols) {
  T top = x[0];
  for (std::int64_t j = 1; j < cols; ++j) top = std::max(top, x[j]);
  T total = 0;
  for (std::int64_t j = 0; j < cols; ++j) total += std::exp(x[j] - top);
  const T log_total = std::log(total);
  for (std::int64_t j = 0; j < cols; ++j) y[j] = x[j] - top - log_total;
}

template <TensorElement T>
Tensor<T> softmax_like(const Tensor<T>& a, TensorOp kind, const char* name) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node(name);
  if (na.shape.rank() < 1 || na.shape[na.shape.rank() - 1] == 0)
    fail(fmt::format("{}: needs a non-empty last axis, got shape {}", name, na.shape.str()));
  TensorNode n = new_node<T>(tt, kind, na.shape, na.requires_grad);
  n.input[0] = a.id();
  const std::int64_t cols = na.shape[na.shape.rank() - 1], rows = na.shape.size() / cols;
  const T* x = values<T>(na);
  T* out = values<T>(n);
  for (std::int64_t r = 0; r < rows; ++r) {
    log_softmax_row(x + r * cols, out + r * cols, cols);
    if (kind == TensorOp::Softmax)
      for (std::int64_t j = 0; j < cols; ++j) out[r * cols + j] = std::exp(out[r * cols + j]);
  }
  return add_node<T>(tt, n);
}

// softmax: dx = y·(g − Σ g·y);  log_softmax: dx = g − softmax·Σ g.
template <TensorElement T>
void softmax_like_backward(TensorTape& tt, const TensorNode& n) {
  const std::int64_t cols = n.shape[n.shape.rank() - 1], rows = n.shape.size() / cols;
  const T* y = values<T>(n);
  const T* g = static_cast<const T*>(n.grad);
  T* gx = grad_buffer<T>(tt, n.input[0]);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* gr = g + r * cols;
    T* gxr = gx + r * cols;
    if (n.op == TensorOp::Softmax) {
      T dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) dot += gr[j] * yr[j];
      for (std::int64_t j = 0; j < cols; ++j) gxr[j] += yr[j] * (gr[j] - dot);
    } else {
      T total = 0;
      for (std::int64_t j = 0; j < cols; ++j) total += gr[j];
      for (std::int64_t j = 0; j < cols; ++j) gxr[j] += gr[j] - std::exp(yr[j]) * total;
    }
  }
}

// d/dz = (g/rows)·(softmax(z)·Σ_j y_j − y);  d/dy = −(g/rows)·log_softmax(z).
template <TensorElement T>
void cross_entropy_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& nz = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const TensorNode& ny = tt.node(n.input[1], tt.tape().epoch(), "backward");
  const std::int64_t cols = nz.shape[nz.shape.rank() - 1], rows = nz.shape.size() / cols;
  const T scale = static_cast<const T*>(n.grad)[0] / static_cast<T>(rows);
  const T* z = values<T>(nz);
  const T* y = values<T>(ny);
  T* gz = nz.requires_grad ? grad_buffer<T>(tt, n.input[0]) : nullptr;
  T* gy = ny.requires_grad ? grad_buffer<T>(tt, n.input[1]) : nullptr;
  T* logp = tt.allocate_array<T>(cols);  // one row of log-probabilities, reused
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* zr = z + r * cols;
    const T* yr = y + r * cols;
    log_softmax_row(zr, logp, cols);
    if (gz) {
      T y_total = 0;
      for (std::int64_t j = 0; j < cols; ++j) y_total += yr[j];
      for (std::int64_t j = 0; j < cols; ++j)
        gz[r * cols + j] += scale * (std::exp(logp[j]) * y_total - yr[j]);
    }
    if (gy)
      for (std::int64_t j = 0; j < cols; ++j) gy[r * cols + j] -= scale * logp[j];
  }
}

}  // namespace

template <TensorElement T>
Tensor<T> softmax(const Tensor<T>& a) {
  return softmax_like(a, TensorOp::Softmax, "softmax");
}
template <TensorElement T>
Tensor<T> log_softmax(const Tensor<T>& a) {
  return softmax_like(a, TensorOp::LogSoftmax, "log_softmax");
}

template <TensorElement T>
Tensor<T> cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& y_true) {
  TensorTape& tt = active_tensors();
  const TensorNode& nz = logits.node("cross_entropy_with_logits");
  const TensorNode& ny = y_true.node("cross_entropy_with_logits");
  if (!(nz.shape == ny.shape) || nz.shape.rank() != 2 || nz.shape[1] == 0)
    fail(
        fmt::format("cross_entropy_with_logits: logits {} and targets {}: expected the same "
                    "shape (batch, classes)",
                    nz.shape.str(), ny.shape.str()));
  TensorNode n =
      new_node<T>(tt, TensorOp::CrossEntropyWithLogits, {}, nz.requires_grad || ny.requires_grad);
  n.input[0] = logits.id();
  n.input[1] = y_true.id();
  const std::int64_t rows = nz.shape[0], cols = nz.shape[1];
  const T* z = values<T>(nz);
  const T* y = values<T>(ny);
  double total = 0;
  T* logp = tt.allocate_array<T>(cols);  // one row of log-probabilities, reused
  for (std::int64_t r = 0; r < rows; ++r) {
    log_softmax_row(z + r * cols, logp, cols);
    for (std::int64_t j = 0; j < cols; ++j)
      if (y[r * cols + j] != T(0)) total -= double(y[r * cols + j]) * double(logp[j]);
  }
  values<T>(n)[0] = rows > 0 ? static_cast<T>(total / double(rows)) : T(0);
  return add_node<T>(tt, n);
}

template <TensorElement T>
bool is_softmax_output(const Tensor<T>& a, Tensor<T>* logits) {
  const TensorNode& n = a.node("is_softmax_output");
  if (n.op != TensorOp::Softmax) return false;
  if (logits) *logits = Tensor<T>::wrap(n.input[0], a.epoch());
  return true;
}

template <TensorElement T>
Tensor<T> one_hot(std::span<const std::int32_t> labels, std::int64_t classes) {
  if (classes <= 0) fail(fmt::format("one_hot: {} classes, expected > 0", classes));
  const auto count = static_cast<std::int64_t>(labels.size());
  Tensor<T> t = Tensor<T>::zeros({count, classes});
  T* out = values<T>(t.node("one_hot"));
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int32_t label = labels[static_cast<std::size_t>(i)];
    if (label < 0 || label >= classes)
      fail(fmt::format("one_hot: label {} at position {} is outside [0, {})", label, i, classes));
    out[i * classes + label] = T(1);
  }
  return t;
}

// ============================================================================================
// Between tensors and scalar Vars
// ============================================================================================

template <TensorElement T>
Var to_var(const Tensor<T>& a) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("to_var");
  if (na.shape.size() != 1)
    fail(
        fmt::format("to_var: the tensor has shape {}, expected exactly one element (reduce it "
                    "with sum or mean first)",
                    na.shape.str()));
  const double value = static_cast<double>(values<T>(na)[0]);
  if (!na.requires_grad || !tt.tape().is_recording()) return Var::constant(value);
  TensorNode n = new_node<T>(tt, TensorOp::ToVar, na.shape, true);
  n.input[0] = a.id();
  values<T>(n)[0] = values<T>(na)[0];
  n.slot = tt.tape().new_leaf();
  const Var result = Var::recorded(value, n.slot, tt.tape().epoch());
  tt.add(n);
  return result;
}

template <TensorElement T>
Tensor<T> operator*(const Tensor<T>& a, const Var& v) {
  TensorTape& tt = active_tensors();
  const TensorNode& na = a.node("tensor * Var");
  const bool var_recorded = v.is_recorded();
  if (var_recorded) tt.tape().check_recorded(v.index(), v.epoch(), "tensor * Var");
  TensorNode n = new_node<T>(tt, TensorOp::ScaleByVar, na.shape, na.requires_grad || var_recorded);
  n.input[0] = a.id();
  n.slot = v.index();
  n.scalar = v.value();
  const T scale = static_cast<T>(v.value());
  const std::int64_t size = na.shape.size();
  for (std::int64_t i = 0; i < size; ++i) values<T>(n)[i] = values<T>(na)[i] * scale;
  return add_node<T>(tt, n);
}

template <TensorElement T>
Tensor<T> Tensor<T>::from_vars(std::span<const Var> vars, const Shape& shape) {
  if (static_cast<std::int64_t>(vars.size()) != shape.size())
    fail(fmt::format("Tensor::from_vars: {} Vars given for shape {}, which holds {}", vars.size(),
                     shape.str(), shape.size()));
  TensorTape& tt = active_tensors();
  bool any_recorded = false;
  for (const Var& v : vars)
    if (v.is_recorded()) {
      tt.tape().check_recorded(v.index(), v.epoch(), "Tensor::from_vars");
      any_recorded = true;
    }
  TensorNode n = new_node<T>(tt, TensorOp::FromVars, shape, any_recorded);
  auto* slots = tt.allocate_array<Index>(shape.size());
  for (std::size_t i = 0; i < vars.size(); ++i) {
    values<T>(n)[i] = static_cast<T>(vars[i].value());
    slots[i] = vars[i].index();
  }
  n.aux = slots;
  n.aux_count = shape.size();
  return add_node<T>(tt, n);
}

namespace {

template <TensorElement T>
void to_var_backward(TensorTape& tt, const TensorNode& n) {
  grad_buffer<T>(tt, n.input[0])[0] += static_cast<T>(tt.tape().adjoint(n.slot));
}

// out = x·v:  dx += g·v,  dv += Σ g·x.
template <TensorElement T>
void scale_by_var_backward(TensorTape& tt, const TensorNode& n) {
  const TensorNode& na = tt.node(n.input[0], tt.tape().epoch(), "backward");
  const T* g = static_cast<const T*>(n.grad);
  const T* x = values<T>(na);
  const std::int64_t size = n.shape.size();
  if (na.requires_grad) {
    T* gx = grad_buffer<T>(tt, n.input[0]);
    const T v = static_cast<T>(n.scalar);
    for (std::int64_t i = 0; i < size; ++i) gx[i] += g[i] * v;
  }
  if (n.slot != kNotRecorded) {
    double total = 0;
    for (std::int64_t i = 0; i < size; ++i) total += double(g[i]) * double(x[i]);
    tt.tape().adjoint(n.slot) += total;
  }
}

template <TensorElement T>
void from_vars_backward(TensorTape& tt, const TensorNode& n) {
  const auto* slots = static_cast<const Index*>(n.aux);
  const T* g = static_cast<const T*>(n.grad);
  for (std::int64_t i = 0; i < n.aux_count; ++i)
    if (slots[i] != kNotRecorded) tt.tape().adjoint(slots[i]) += static_cast<double>(g[i]);
}

// ============================================================================================
// Dispatch: a recorded node's backward rule
// ============================================================================================

template <TensorElement T>
void backward_typed(TensorTape& tt, const TensorNode& n) {
  switch (n.op) {
    case TensorOp::Constant:
    case TensorOp::Leaf:
      return;
    case TensorOp::FromVars:
      return from_vars_backward<T>(tt, n);
    case TensorOp::Add:
      return binary_backward<op::Add, T>(tt, n);
    case TensorOp::Subtract:
      return binary_backward<op::Subtract, T>(tt, n);
    case TensorOp::Multiply:
      return binary_backward<op::Multiply, T>(tt, n);
    case TensorOp::Divide:
      return binary_backward<op::Divide, T>(tt, n);
    case TensorOp::Power:
      return binary_backward<op::Power, T>(tt, n);
    case TensorOp::Minimum:
      return binary_backward<op::Minimum, T>(tt, n);
    case TensorOp::Maximum:
      return binary_backward<op::Maximum, T>(tt, n);
    case TensorOp::Negate:
      return unary_backward<op::Negate, T>(tt, n);
    case TensorOp::Square:
      return unary_backward<op::Square, T>(tt, n);
    case TensorOp::Exp:
      return unary_backward<op::Exp, T>(tt, n);
    case TensorOp::Log:
      return unary_backward<op::Log, T>(tt, n);
    case TensorOp::Sqrt:
      return unary_backward<op::Sqrt, T>(tt, n);
    case TensorOp::Tanh:
      return unary_backward<op::Tanh, T>(tt, n);
    case TensorOp::Sigmoid:
      return unary_backward<op::Sigmoid, T>(tt, n);
    case TensorOp::Relu:
      return unary_backward<op::Relu, T>(tt, n);
    case TensorOp::Abs:
      return unary_backward<op::Abs, T>(tt, n);
    case TensorOp::Sum:
    case TensorOp::Mean:
    case TensorOp::Max:
      return reduce_backward<T>(tt, n);
    case TensorOp::MatMul:
      return matmul_backward<T>(tt, n);
    case TensorOp::Transpose:
      return transpose_backward<T>(tt, n);
    case TensorOp::Reshape:
    case TensorOp::SliceRows:
      return view_backward<T>(tt, n);
    case TensorOp::GatherRows:
      return gather_rows_backward<T>(tt, n);
    case TensorOp::Softmax:
    case TensorOp::LogSoftmax:
      return softmax_like_backward<T>(tt, n);
    case TensorOp::CrossEntropyWithLogits:
      return cross_entropy_backward<T>(tt, n);
    case TensorOp::ToVar:
      return to_var_backward<T>(tt, n);
    case TensorOp::ScaleByVar:
      return scale_by_var_backward<T>(tt, n);
  }
}

void backward_node(TensorTape& tt, std::uint32_t id) {
  // A reference is safe: backward rules allocate gradient buffers but never add nodes.
  const TensorNode& n = tt.node(id, tt.tape().epoch(), "backward");
  if (n.dtype == DType::Float32)
    backward_typed<float>(tt, n);
  else
    backward_typed<double>(tt, n);
}

}  // namespace

// ============================================================================================
// Instantiations for float and double
// ============================================================================================

#define AUTODIFF_INSTANTIATE(T)                                                     \
  template class Tensor<T>;                                                         \
  template Tensor<T> operator+(const Tensor<T>&, const Tensor<T>&);                 \
  template Tensor<T> operator-(const Tensor<T>&, const Tensor<T>&);                 \
  template Tensor<T> operator*(const Tensor<T>&, const Tensor<T>&);                 \
  template Tensor<T> operator/(const Tensor<T>&, const Tensor<T>&);                 \
  template Tensor<T> minimum(const Tensor<T>&, const Tensor<T>&);                   \
  template Tensor<T> maximum(const Tensor<T>&, const Tensor<T>&);                   \
  template Tensor<T> pow(const Tensor<T>&, T);                                      \
  template Tensor<T> operator-(const Tensor<T>&);                                   \
  template Tensor<T> square(const Tensor<T>&);                                      \
  template Tensor<T> exp(const Tensor<T>&);                                         \
  template Tensor<T> log(const Tensor<T>&);                                         \
  template Tensor<T> sqrt(const Tensor<T>&);                                        \
  template Tensor<T> tanh(const Tensor<T>&);                                        \
  template Tensor<T> sigmoid(const Tensor<T>&);                                     \
  template Tensor<T> relu(const Tensor<T>&);                                        \
  template Tensor<T> abs(const Tensor<T>&);                                         \
  template Tensor<T> sum(const Tensor<T>&);                                         \
  template Tensor<T> sum(const Tensor<T>&, int, bool);                              \
  template Tensor<T> mean(const Tensor<T>&);                                        \
  template Tensor<T> mean(const Tensor<T>&, int, bool);                             \
  template Tensor<T> max(const Tensor<T>&);                                         \
  template Tensor<T> max(const Tensor<T>&, int, bool);                              \
  template Tensor<T> argmax(const Tensor<T>&);                                      \
  template Tensor<T> argmax(const Tensor<T>&, int, bool);                           \
  template Tensor<T> matmul(const Tensor<T>&, const Tensor<T>&);                    \
  template Tensor<T> transpose(const Tensor<T>&);                                   \
  template Tensor<T> reshape(const Tensor<T>&, std::span<const std::int64_t>);      \
  template Tensor<T> slice_rows(const Tensor<T>&, std::int64_t, std::int64_t);      \
  template Tensor<T> gather_rows(const Tensor<T>&, std::span<const std::int64_t>);  \
  template Tensor<T> softmax(const Tensor<T>&);                                     \
  template Tensor<T> log_softmax(const Tensor<T>&);                                 \
  template Tensor<T> cross_entropy_with_logits(const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> one_hot(std::span<const std::int32_t>, std::int64_t);          \
  template Var to_var(const Tensor<T>&);                                            \
  template Tensor<T> operator*(const Tensor<T>&, const Var&);                       \
  template bool is_softmax_output(const Tensor<T>&, Tensor<T>*);

AUTODIFF_INSTANTIATE(float)
AUTODIFF_INSTANTIATE(double)

}  // namespace autodiff
