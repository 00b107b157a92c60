#pragma once
// Tensors on the tape: dense, contiguous, row-major arrays of float (training) or double
// (gradient checks), recorded on the same tape as the scalar Vars.
//
// A tensor op is recorded as one coarse node: its value lives in the tape's arena, and its
// backward rule runs when the reverse sweep reaches it, interleaved with the scalar statements
// in creation order, so that one backward() reaches Vars and tensors alike:
//
//     Var loss = to_var(sum(square(tensor))) * scale;   // tensor → Var, then scalar ops
//     loss.backward();                                  // fills both kinds of gradient
//
// Like a Var, a Tensor is a small handle (node, epoch) into the active tape: it is valid until
// the tape is cleared. Parameters that outlive a step (nn::Parameter) own their storage and are
// put on the tape each step with Tensor<T>::parameter().

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "autodiff/shape.hpp"
#include "autodiff/tape.hpp"
#include "autodiff/var.hpp"

namespace autodiff {

enum class DType : std::uint8_t { Float32, Float64 };

template <class T>
concept TensorElement = std::same_as<T, float> || std::same_as<T, double>;

template <TensorElement T>
constexpr DType dtype_of() {
  return std::same_as<T, float> ? DType::Float32 : DType::Float64;
}

namespace detail {

/// The kinds of recorded tensor nodes; each one's forward and backward are side by side in
/// tensor.cpp.
enum class TensorOp : std::uint8_t {
  Constant,  // data with no gradient
  Leaf,      // an input whose gradient accumulates (requires_grad, parameters)
  FromVars,  // elements that are scalar Vars
  Add,
  Subtract,
  Multiply,
  Divide,
  Power,
  Minimum,
  Maximum,  // broadcasting
  Negate,
  Square,
  Exp,
  Log,
  Sqrt,
  Tanh,
  Sigmoid,
  Relu,
  Abs,  // elementwise
  Sum,
  Mean,
  Max,  // reductions
  MatMul,
  Transpose,
  Reshape,
  SliceRows,
  GatherRows,
  Softmax,
  LogSoftmax,
  CrossEntropyWithLogits,  // fused, numerically stable: mean over rows of −Σ y·log_softmax(z)
  ToVar,                   // a one-element tensor as a scalar Var
  ScaleByVar,              // tensor · Var
};

struct TensorNode {
  TensorOp op = TensorOp::Constant;
  DType dtype = DType::Float32;
  bool requires_grad = false;
  Shape shape;
  void* value = nullptr;
  void* grad = nullptr;  // null until the node receives gradient; parameters bring their own
  std::uint32_t input[2] = {0, 0};
  std::uint32_t statement_position = 0;  // scalar statements recorded before this node
  Index slot = kNotRecorded;             // ToVar: the Var it made; ScaleByVar: the Var it read
  double scalar = 0.0;                   // ScaleByVar: the Var's value
  int axis = -1;                         // reductions: the axis, or −1 for all elements
  const void* aux = nullptr;             // GatherRows: row indices; FromVars: slots
  std::int64_t aux_count = 0;
};

/// Bump allocation of 64-byte aligned blocks, rewound (not freed) by reset(). After a reset the
/// blocks are merged into one, so a repeated sequence of allocations needs no new memory.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  void* allocate(std::size_t bytes);
  void reset();
  std::size_t bytes_used() const { return used_before_ + offset_; }
  std::size_t bytes_reserved() const;

 private:
  static constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{kAlignment}); }
  };
  struct Block {
    std::unique_ptr<std::byte[], AlignedDelete> memory;
    std::size_t size;
  };
  static Block make_block(std::size_t size);
  std::vector<Block> blocks_;
  std::size_t current_ = 0, offset_ = 0, used_before_ = 0;
};

}  // namespace detail

/// The tensor part of a tape: its node records and its arena.
class TensorTape {
 public:
  explicit TensorTape(Tape& tape);

  detail::TensorNode& node(std::uint32_t id, std::uint32_t epoch, const char* what);
  std::uint32_t add(const detail::TensorNode& node);
  std::size_t node_count() const { return nodes_.size(); }
  void* allocate(std::size_t bytes) { return arena_.allocate(bytes); }
  template <class T>
  T* allocate_array(std::int64_t count) {
    return static_cast<T*>(arena_.allocate(static_cast<std::size_t>(count) * sizeof(T)));
  }
  Tape& tape() { return tape_; }

  void clear();
  std::size_t bytes_used() const;
  std::size_t bytes_reserved() const;

  // The reverse sweep, called by Tape::backward: tensor nodes from the last down, each after
  // the scalar statements recorded after it.
  void backward_interleaved(std::uint32_t statement_end);
  /// Tensor::backward(): seeds node `id` (one element) with 1, then sweeps everything.
  void backward_from(std::uint32_t id);
  void zero_intermediate_grads();
  void zero_grads();
  /// The gradient buffer of node `id`, allocated and zeroed on first use.
  void* grad_of(std::uint32_t id);

 private:
  Tape& tape_;
  std::vector<detail::TensorNode> nodes_;
  detail::Arena arena_;
};

/// A dense, row-major tensor of float or double on the active tape.
template <TensorElement T>
class Tensor {
 public:
  /// An empty handle; using it throws.
  Tensor() = default;

  // ---- Creation (constants unless said otherwise; valid until the tape is cleared) ----
  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, T value);
  /// Copies `values` (row-major); throws unless it has shape.size() elements.
  static Tensor from(std::span<const T> values, const Shape& shape);
  static Tensor from(std::initializer_list<T> values, const Shape& shape) {
    return from(std::span<const T>(values.begin(), values.size()), shape);
  }
  /// start, start + step, … below stop.
  static Tensor arange(T start, T stop, T step = T(1));
  /// Seeded, reproducible: the same seed gives the same numbers on every run.
  static Tensor random_normal(const Shape& shape, T mean, T stddev, std::uint64_t seed);
  static Tensor random_uniform(const Shape& shape, T low, T high, std::uint64_t seed);
  /// A tensor whose elements are the given Vars: gradients flow back to them.
  static Tensor from_vars(std::span<const Var> vars, const Shape& shape);
  /// A view of storage owned elsewhere, recorded as an input whose gradient accumulates into
  /// `grad` (same size). The storage must outlive the tape's current recording.
  static Tensor parameter(T* value, T* grad, const Shape& shape);

  /// This tensor as an input whose gradient accumulates (a copy, recorded as a leaf).
  Tensor requires_grad() const;
  /// The same values, cut off from the tape.
  Tensor detach() const;

  const Shape& shape() const { return node("shape()").shape; }
  std::int64_t size() const { return shape().size(); }
  int rank() const { return shape().rank(); }
  std::span<const T> data() const;
  /// Writable values of a constant (for filling a batch in place); throws for a recorded
  /// tensor, whose values the reverse sweep relies on.
  std::span<T> mutable_data() const;
  std::vector<T> to_vector() const;
  /// The only element of a one-element tensor.
  T item() const;
  /// Element (i, j) of a rank-2 tensor, (i) of a rank-1 tensor.
  T at(std::int64_t i) const;
  T at(std::int64_t i, std::int64_t j) const;
  bool is_recorded() const { return node("is_recorded()").requires_grad; }

  /// ∂(output)/∂(this), after backward(); zeros if no gradient reached it.
  std::vector<T> grad() const;
  /// Reverse sweep from this one-element tensor (seeded with 1).
  void backward() const;

  std::uint32_t id() const { return id_; }
  std::uint32_t epoch() const { return epoch_; }
  detail::TensorNode& node(const char* what) const;
  static Tensor wrap(std::uint32_t id, std::uint32_t epoch) {
    Tensor t;
    t.id_ = id;
    t.epoch_ = epoch;
    return t;
  }

 private:
  std::uint32_t id_ = 0;
  std::uint32_t epoch_ = 0;  // 0: empty handle
};

// ---- Elementwise, with NumPy broadcasting ----
template <TensorElement T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b);
template <TensorElement T>
Tensor<T> pow(const Tensor<T>& a, T exponent);
template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> square(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> exp(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> log(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> sqrt(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> tanh(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> sigmoid(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> relu(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> abs(const Tensor<T>& a);

// A number on either side broadcasts as a one-element tensor.
template <TensorElement T>
Tensor<T> operator+(const Tensor<T>& a, T b) {
  return a + Tensor<T>::full({}, b);
}
template <TensorElement T>
Tensor<T> operator+(T a, const Tensor<T>& b) {
  return Tensor<T>::full({}, a) + b;
}
template <TensorElement T>
Tensor<T> operator-(const Tensor<T>& a, T b) {
  return a - Tensor<T>::full({}, b);
}
template <TensorElement T>
Tensor<T> operator-(T a, const Tensor<T>& b) {
  return Tensor<T>::full({}, a) - b;
}
template <TensorElement T>
Tensor<T> operator*(const Tensor<T>& a, T b) {
  return a * Tensor<T>::full({}, b);
}
template <TensorElement T>
Tensor<T> operator*(T a, const Tensor<T>& b) {
  return Tensor<T>::full({}, a) * b;
}
template <TensorElement T>
Tensor<T> operator/(const Tensor<T>& a, T b) {
  return a / Tensor<T>::full({}, b);
}
template <TensorElement T>
Tensor<T> operator/(T a, const Tensor<T>& b) {
  return Tensor<T>::full({}, a) / b;
}

// ---- Reductions: over all elements (no axis), or along one axis (−1 is the last) ----
template <TensorElement T>
Tensor<T> sum(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> sum(const Tensor<T>& a, int axis, bool keepdims = false);
template <TensorElement T>
Tensor<T> mean(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> mean(const Tensor<T>& a, int axis, bool keepdims = false);
/// The gradient goes to the first maximal element.
template <TensorElement T>
Tensor<T> max(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> max(const Tensor<T>& a, int axis, bool keepdims = false);
/// Index of the first maximal element, as values of T (not differentiable).
template <TensorElement T>
Tensor<T> argmax(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> argmax(const Tensor<T>& a, int axis, bool keepdims = false);

// ---- Linear algebra and layout ----
/// (m, k) · (k, n) → (m, n), through BLAS (sgemm / dgemm).
template <TensorElement T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);
/// Rank 2: (m, n) → (n, m).
template <TensorElement T>
Tensor<T> transpose(const Tensor<T>& a);
/// Same elements, new shape (same size); one dimension may be −1.
template <TensorElement T>
Tensor<T> reshape(const Tensor<T>& a, std::span<const std::int64_t> dims);
template <TensorElement T>
Tensor<T> reshape(const Tensor<T>& a, std::initializer_list<std::int64_t> dims) {
  return reshape(a, std::span<const std::int64_t>(dims.begin(), dims.size()));
}
/// Rows [begin, end) along the first axis.
template <TensorElement T>
Tensor<T> slice_rows(const Tensor<T>& a, std::int64_t begin, std::int64_t end);
/// The rows at `rows` along the first axis, in that order (repeats allowed).
template <TensorElement T>
Tensor<T> gather_rows(const Tensor<T>& a, std::span<const std::int64_t> rows);

// ---- Probabilities, along the last axis, numerically stable ----
template <TensorElement T>
Tensor<T> softmax(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> log_softmax(const Tensor<T>& a);
/// Mean over rows of −Σ_j y_ij · log_softmax(z)_ij: fused, so that it is exact for any logits.
template <TensorElement T>
Tensor<T> cross_entropy_with_logits(const Tensor<T>& logits, const Tensor<T>& y_true);
/// (n,) labels in [0, classes) → (n, classes) of 0 and 1. Throws for a label out of range.
template <TensorElement T>
Tensor<T> one_hot(std::span<const std::int32_t> labels, std::int64_t classes);

// ---- Between tensors and scalar Vars ----
/// A one-element tensor as a Var on the same tape; throws for any other size.
template <TensorElement T>
Var to_var(const Tensor<T>& a);
template <TensorElement T>
Tensor<T> operator*(const Tensor<T>& a, const Var& v);
template <TensorElement T>
Tensor<T> operator*(const Var& v, const Tensor<T>& a) {
  return a * v;
}

/// The number of threads the BLAS behind matmul may use (OpenBLAS's own pool). The default is 1:
/// the GEMMs of small batches are too short for threads to pay, and a second pool on top of
/// another one (a user's, or the data loader's) oversubscribes the cores.
void set_blas_threads(int threads);
int blas_threads();

/// Whether the node that made `a` is a softmax, and if so its input (the logits).
template <TensorElement T>
bool is_softmax_output(const Tensor<T>& a, Tensor<T>* logits);

}  // namespace autodiff
