#pragma once
// Tensor<T>: a dense, contiguous, row-major array of float (training) or double (gradient
// checks), recorded on the same tape as the scalar Vars.
//
// Every tensor is a coarse node on the tape (tape.hpp): its values live in the tape's arena, and
// the op that made it runs its backward rule when the reverse sweep reaches it, interleaved with
// the scalar statements in creation order, so that one backward() reaches Vars and tensors alike:
//
//     Var loss = to_var(sum(square(tensor))) * scale;   // tensor → Var, then scalar ops
//     loss.backward();                                  // fills both kinds of gradient
//
// Like a Var, a Tensor is a small handle (node, epoch) into the active tape: it is valid until
// the tape is cleared. Parameters that outlive a step (nn::Parameter) own their storage and are
// put on the tape each step with Tensor<T>::parameter(). The ops are in the files beside this
// one, one family per file, each op's forward and backward side by side (op.hpp says how).

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
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

/// The tensor layer's record of one coarse node, in the tape's arena.
struct TensorNode {
  static constexpr int kMaxInputs = 4;
  const void* op_type = nullptr;  // which op made it: &detail::op_type_tag<Op>, null for data
  const char* name = "constant";  // the op's name, for messages
  void* op = nullptr;             // the op's own record (what its backward reads), if recorded
  void* value = nullptr;
  // Tangent mode (tangent.hpp): the tangent of the values (null: zero), and a leaf's gradient
  // tangent, which lives apart as its gradient may (null until asked for).
  void* tangent = nullptr;
  void* grad_tangent = nullptr;
  Shape shape;
  DType dtype = DType::Float32;
  bool requires_grad = false;     // gradient flows into it (a leaf, or made from one)
  bool writable = false;          // data made here, not yet used: mutable_data() may write it
  bool used = false;              // an input of a later node
  bool grad_has_tangent = false;  // recorded in tangent mode: the gradient's tangent follows it
  std::uint8_t input_count = 0;
  std::uint32_t input[kMaxInputs] = {};
};

inline TensorNode& tensor_node(CoarseNode& n) { return *static_cast<TensorNode*>(n.payload); }

}  // namespace detail

/// Told by the reverse sweep when it passes a leaf: every op that used the leaf has then added its
/// gradient. Data-parallel training sends a parameter's gradient from there, while the sweep goes
/// on (nn/data_parallel.hpp).
struct LeafHook {
  void (*swept)(void* context) = nullptr;
  void* context = nullptr;
};

/// A dense, row-major tensor of float or double on the active tape.
template <TensorElement T>
class Tensor {
 public:
  using value_type = T;
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
  /// A tensor whose elements are the given Vars: gradients flow back to them (bridge.hpp).
  static Tensor from_vars(std::span<const Var> vars, const Shape& shape);
  /// A view of storage owned elsewhere, recorded as an input whose gradient accumulates into
  /// `grad` (same size). The storage must outlive the tape's current recording.
  static Tensor parameter(T* value, T* grad, const Shape& shape);
  /// The same, with `hook.swept(hook.context)` called when the reverse sweep passes it (when
  /// recording; a null hook.swept is no hook).
  static Tensor parameter(T* value, T* grad, const Shape& shape, LeafHook hook);

  /// Marks this tensor, in place, as an input whose gradient accumulates (a leaf), and returns
  /// it. Throws a TapeError if it was already used by an op (mark it first) or is the result of
  /// an op that records a gradient.
  Tensor requires_grad() const;
  /// The same values, cut off from the tape.
  Tensor detach() const;

  const Shape& shape() const { return node("shape()").shape; }
  std::int64_t size() const { return shape().size(); }
  int rank() const { return shape().rank(); }
  std::span<const T> data() const;
  /// Writable values of data made here and not yet used by an op (for filling a batch in place);
  /// throws otherwise, since the reverse sweep relies on recorded values.
  std::span<T> mutable_data() const;
  std::vector<T> to_vector() const;
  /// The only element of a one-element tensor.
  T item() const;
  /// Element (i, j) of a rank-2 tensor, (i) of a rank-1 tensor.
  T at(std::int64_t i) const;
  T at(std::int64_t i, std::int64_t j) const;
  /// Whether gradient flows into it.
  bool is_recorded() const { return node("is_recorded()").requires_grad; }

  /// ∂(output)/∂(this), after backward(); zeros if no gradient reached it.
  std::vector<T> grad() const;
  /// Reverse sweep from this one-element tensor (seeded with 1).
  void backward() const;
  /// Tangent mode (tangent.hpp): the tangent of the values along the direction pushed forward;
  /// zeros if none reached it.
  std::vector<T> tangent() const;
  /// Tangent mode, after backward(): the tangent of the gradient; for a leaf whose tangent is v,
  /// that is H·v. Zeros if none reached it.
  std::vector<T> grad_tangent() const;

  std::uint32_t id() const { return id_; }
  Epoch epoch() const { return epoch_; }
  /// The node's record on the active tape; throws a TapeError for a stale or empty handle.
  detail::TensorNode& node(const char* what) const;
  static Tensor wrap(std::uint32_t id, Epoch epoch) {
    Tensor t;
    t.id_ = id;
    t.epoch_ = epoch;
    return t;
  }

 private:
  std::uint32_t id_ = 0;
  Epoch epoch_ = 0;  // 0: empty handle
};

extern template class Tensor<float>;
extern template class Tensor<double>;

namespace detail {
/// Records a node of data (no inputs, no backward) whose values the caller fills in.
template <TensorElement T>
Tensor<T> new_data(const Shape& shape, T** values);
}  // namespace detail

}  // namespace autodiff
