#pragma once
// How a tensor op is defined: one struct with its forward and its backward side by side, applied
// with apply(). Every op of the library is written this way (the files beside this one), and a
// user's op is written the same way:
//
//   struct StraightThroughClip {                         // clip in forward, identity in backward
//     static constexpr const char* name = "straight_through_clip";
//     double low, high;                                  // the op's state: saved on the tape
//     Shape output_shape(const Shape& x) const { return x; }
//     template <class T>
//     void forward(OpContext<T, 1>& ctx) const {        // outputs from inputs
//       auto x = ctx.input(0);
//       auto y = ctx.output();
//       for (std::int64_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i], T(low), T(high));
//     }
//     template <class T>
//     void backward(OpContext<T, 1>& ctx) const {       // accumulate into the inputs' gradients
//       auto g = ctx.output_grad();
//       auto gx = ctx.input_grad(0);
//       for (std::int64_t i = 0; i < g.size(); ++i) gx[i] += g[i];
//     }
//   };
//   Tensor<float> y = apply(StraightThroughClip{-1, 1}, x);
//
// When gradient must flow (an input requires it and the tape records), the op struct is copied
// into the tape's arena, forward runs on that copy (so it may save what backward needs in its
// members, with ctx.scratch() for arrays), and the node stores a pointer to a function that runs
// the copy's backward. No heap allocation per call once the tape is warm: the op must be
// trivially copyable and trivially destructible (the arena never runs destructors).
//
// Optional members: `name` (for messages); `view_offset(shapes…)` for an op whose output is a
// view into its first input's values at that offset (forward is then not called);
// `bool reads_vars() const` for an op that also receives gradient for scalar Vars (bridge.hpp).
// An op without backward() is not differentiable: its output is a constant.

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <type_traits>

#include "autodiff/tensor/tensor.hpp"

namespace autodiff {
namespace detail {
void note_tensor_op(Tape& tape, std::uint32_t id);  // autodiff/inspect/notes.cpp
}  // namespace detail

/// A view of one tensor's values and shape.
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;
  std::int64_t size() const { return shape.size(); }
  T& operator[](std::int64_t i) const { return data[i]; }
  T* begin() const { return data; }
  T* end() const { return data + size(); }
  explicit operator bool() const { return data != nullptr; }
};

namespace detail {
/// One distinct address per op type: a node remembers which op made it.
template <class Op>
inline constexpr char op_type_tag = 0;
}  // namespace detail

/// What an op's forward and backward see: its N inputs, its output, and (in backward) the
/// gradients.
template <TensorElement T, int N>
class OpContext {
 public:
  OpContext(Tape& tape, detail::TensorNode& node, std::uint32_t id = 0)
      : tape_(tape), node_(node), id_(id) {}

  TensorView<const T> input(int i) const {
    const detail::TensorNode& n = input_node(i);
    return {static_cast<const T*>(n.value), n.shape};
  }
  TensorView<T> output() const { return {static_cast<T*>(node_.value), node_.shape}; }
  /// Backward only: ∂(output of the sweep)/∂(this op's output).
  TensorView<const T> output_grad() const {
    return {static_cast<const T*>(tape_.node(id_).grad), node_.shape};
  }
  /// Whether input i receives gradient.
  bool needs_grad(int i) const { return input_node(i).requires_grad; }
  /// Backward only: the gradient of input i, to add into; empty (data null) when it needs none.
  TensorView<T> input_grad(int i) const {
    const detail::TensorNode& n = input_node(i);
    if (!n.requires_grad) return {nullptr, n.shape};
    return {static_cast<T*>(tape_.grad_buffer(node_.input[i])), n.shape};
  }
  /// Backward only, for an op that writes every element of input i's gradient: when no other op
  /// has added to it yet, the buffer comes unzeroed and *fresh is true (then write every element
  /// instead of adding: no pass to zero it first); otherwise *fresh is false (add).
  TensorView<T> input_grad_to_write(int i, bool* fresh) const {
    const detail::TensorNode& n = input_node(i);
    *fresh = false;
    if (!n.requires_grad) return {nullptr, n.shape};
    return {static_cast<T*>(tape_.grad_buffer_to_write(node_.input[i], fresh)), n.shape};
  }
  /// Memory on the tape until it is cleared: for what forward saves for backward, or scratch.
  template <class U>
  U* scratch(std::int64_t count) const {
    return tape_.allocate_array<U>(static_cast<std::size_t>(count));
  }
  Tape& tape() const { return tape_; }
  /// Whether this op is being recorded (forward: whether backward will run later).
  bool recording() const { return node_.requires_grad; }

 private:
  const detail::TensorNode& input_node(int i) const {
    return detail::tensor_node(tape_.node(node_.input[i]));
  }

  Tape& tape_;
  detail::TensorNode& node_;
  std::uint32_t id_;
};

namespace detail {

template <class Op, class T, int N>
concept HasBackward = requires(const Op& op, OpContext<T, N>& ctx) {
  op.backward(ctx);
};

template <class Op>
const char* op_name(const Op& op) {
  if constexpr (requires { op.name; })
    return op.name;
  else
    return "custom op";
}

template <class Op, TensorElement T, int N>
void run_backward(Tape& tape, std::uint32_t id) {
  TensorNode& node = tensor_node(tape.node(id));
  OpContext<T, N> ctx(tape, node, id);
  static_cast<const Op*>(node.op)->backward(ctx);
}

template <class Op, std::size_t... I>
Shape output_shape_of(const Op& op, const std::array<Shape, sizeof...(I)>& shapes,
                      std::index_sequence<I...>) {
  return op.output_shape(shapes[I]...);
}

template <class Op, std::size_t... I>
std::int64_t view_offset_of(const Op& op, const std::array<Shape, sizeof...(I)>& shapes,
                            std::index_sequence<I...>) {
  return op.view_offset(shapes[I]...);
}

template <class Op, TensorElement T, int N>
Tensor<T> record(Op op, const std::array<Tensor<T>, N>& inputs) {
  static_assert(std::is_trivially_copyable_v<Op> && std::is_trivially_destructible_v<Op>,
                "a tensor op lives on the tape's arena, which copies bytes and runs no "
                "destructor: keep its state to numbers and pointers into ctx.scratch()");
  static_assert(alignof(Op) <= 64, "a tensor op's alignment must not exceed 64 bytes");
  static_assert(N <= TensorNode::kMaxInputs, "at most 4 tensor inputs per op");
  Tape& tape = Tape::active();
  const char* name = op_name(op);
  std::array<TensorNode*, N> in;  // looked up (and checked) once: records never move
  std::array<Shape, N> shapes;
  bool inputs_need_grad = false;
  for (int i = 0; i < N; ++i) {
    in[i] = &inputs[i].node(name);
    shapes[i] = in[i]->shape;
    inputs_need_grad = inputs_need_grad || in[i]->requires_grad;
  }
  if constexpr (requires { op.reads_vars(); })
    inputs_need_grad = inputs_need_grad || op.reads_vars();
  const Shape shape = output_shape_of(op, shapes, std::make_index_sequence<N>());
  constexpr bool kDifferentiable = HasBackward<Op, T, N>;
  const bool recorded = kDifferentiable && inputs_need_grad && tape.is_recording();

  // The node record and (when recorded) the op's copy, in one arena allocation.
  constexpr std::size_t kOpOffset =
      (sizeof(TensorNode) + alignof(Op) - 1) / alignof(Op) * alignof(Op);
  void* memory = tape.allocate(recorded ? kOpOffset + sizeof(Op) : sizeof(TensorNode));
  auto* node = new (memory) TensorNode;
  node->op_type = &op_type_tag<Op>;
  node->name = name;
  node->shape = shape;
  node->dtype = dtype_of<T>();
  node->requires_grad = recorded;
  node->input_count = static_cast<std::uint8_t>(N);
  for (int i = 0; i < N; ++i) node->input[i] = inputs[i].id();
  Op* saved = recorded ? new (static_cast<std::byte*>(memory) + kOpOffset) Op(op) : &op;
  node->op = recorded ? saved : nullptr;

  OpContext<T, N> ctx(tape, *node);
  if constexpr (requires { op.view_offset(shapes[0]); }) {
    node->value = static_cast<T*>(in[0]->value) +
                  view_offset_of(*saved, shapes, std::make_index_sequence<N>());
  } else {
    node->value = tape.allocate_array<T>(static_cast<std::size_t>(shape.size()));
    saved->forward(ctx);
  }

  // Only once the op has succeeded: a failed op leaves its inputs as they were.
  for (TensorNode* input : in) {
    input->used = true;
    input->writable = false;
  }
  CoarseNode coarse;
  coarse.payload = node;
  coarse.grad_bytes = static_cast<std::size_t>(shape.size()) * sizeof(T);
  if constexpr (kDifferentiable)
    if (recorded) coarse.backward = &run_backward<Op, T, N>;
  const std::uint32_t id = tape.push_node(coarse);
  if (tape.notes()) [[unlikely]]  // inspected: labels, and the anomaly check of the output
    note_tensor_op(tape, id);
  return Tensor<T>::wrap(id, tape.epoch());
}

}  // namespace detail

/// Records `op` applied to the given tensors (all float or all double) and returns its output.
template <class Op, TensorElement T, std::same_as<Tensor<T>>... More>
Tensor<T> apply(const Op& op, const Tensor<T>& first, const More&... more) {
  return detail::record<Op, T, 1 + sizeof...(More)>(op, {first, more...});
}

/// Whether `a` was made by an op of type Op; if so, and `input` is given, its first input.
template <class Op, TensorElement T>
bool is_output_of(const Tensor<T>& a, Tensor<T>* input = nullptr) {
  const detail::TensorNode& n = a.node("is_output_of");
  if (n.op_type != &detail::op_type_tag<Op>) return false;
  if (input && n.input_count > 0) *input = Tensor<T>::wrap(n.input[0], a.epoch());
  return true;
}

}  // namespace autodiff
