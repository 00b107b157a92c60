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
// `bool reads_vars() const` for an op that also receives gradient for scalar Vars (bridge.hpp),
// with `std::span<const Index> var_slots() const` naming them (graph pictures draw the arrows).
// An op without backward() is not differentiable: its output is a constant.
//
// Second order (tangent mode, tangent.hpp: H·v by forward over reverse) needs two more members,
// beside forward and backward: `jvp(ctx)`, the tangent of forward (write ctx.output_tangent()
// from ctx.input_tangent(i), each null where it is zero), and `backward_jvp(ctx)`, the tangent of
// backward (add into ctx.input_grad_tangent(i) what backward's formula gives when everything it
// reads moves along the tangents: the output gradient by ctx.output_grad_tangent(), the inputs
// and output by their tangents). A view needs only backward_jvp. An op without them is refused,
// naming it, when recorded in tangent mode. Two markers stand for rules that follow:
//   static constexpr bool linear = true;   forward is linear in all its inputs together (a sum of
//       them, not a product: a product is bilinear, and its jvp must be written). Its jvp is
//       forward run on the tangents (ctx.tangents()), so forward must be const (or jvp written);
//       its backward_jvp is backward run on the gradients' tangents (ctx.grad_tangents()). Sums,
//       means, average pooling, transposes, gathering rows, dropout.
//   static constexpr bool backward_reads_gradient_only = true;   backward maps the output gradient
//       by what does not move along the tangents (a max's position, a condition): its
//       backward_jvp is backward on the gradients' tangents; jvp is still written. Max pooling,
//       max and min, where.
// A member jvp or backward_jvp, when present, is used instead.

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <span>
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
/// What is known of an op type besides its code, one record per type: its address tells which op
/// made a node (is_output_of), and var_slots, for an op with `var_slots()`, lists the scalar Vars
/// a recorded op reads (bridge.hpp), for graph pictures.
struct OpTypeInfo {
  std::span<const Index> (*var_slots)(const void* op) = nullptr;
};
template <class Op>
std::span<const Index> var_slots_of(const void* op) {
  return static_cast<const Op*>(op)->var_slots();
}
template <class Op>
constexpr OpTypeInfo op_type_info() {
  if constexpr (requires(const Op& op) { op.var_slots(); })
    return {&var_slots_of<Op>};
  else
    return {};
}
template <class Op>
inline constexpr OpTypeInfo op_type_tag = op_type_info<Op>();
}  // namespace detail

namespace detail {
[[noreturn]] void throw_zero_tangent(const char* what);
/// The tangent of node `id`'s gradient, allocated (zeroed) when first asked for: beside the
/// gradient in its buffer for an op's output, apart for a leaf.
template <class T>
T* grad_tangent_buffer(Tape& tape, std::uint32_t id) {
  CoarseNode& coarse = tape.node(id);
  TensorNode& n = tensor_node(coarse);
  if (coarse.is_leaf) {
    if (!n.grad_tangent) {
      const auto size = static_cast<std::size_t>(n.shape.size());
      n.grad_tangent = tape.allocate_array<T>(size);
      std::fill_n(static_cast<T*>(n.grad_tangent), size, T(0));
    }
    return static_cast<T*>(n.grad_tangent);
  }
  if (!n.grad_has_tangent) throw_zero_tangent(n.name);
  return static_cast<T*>(tape.grad_buffer(id)) + n.shape.size();
}
}  // namespace detail

/// What an op's forward and backward see: its N inputs, its output, and (in backward) the
/// gradients; in tangent mode also their tangents.
template <TensorElement T, int N>
class OpContext {
 public:
  OpContext(Tape& tape, detail::TensorNode& node, std::uint32_t id = 0)
      : tape_(tape), node_(node), id_(id) {}

  TensorView<const T> input(int i) const {
    const detail::TensorNode& n = input_node(i);
    if (reads_ == Reads::Tangents) [[unlikely]]
      return {input_tangent_or_zeros(i), n.shape};
    return {static_cast<const T*>(n.value), n.shape};
  }
  TensorView<T> output() const {
    return {static_cast<T*>(reads_ == Reads::Tangents ? node_.tangent : node_.value), node_.shape};
  }
  /// Backward only: ∂(output of the sweep)/∂(this op's output).
  TensorView<const T> output_grad() const {
    const T* g = static_cast<const T*>(tape_.node(id_).grad);
    if (reads_ == Reads::GradTangents) [[unlikely]]
      g += node_.shape.size();
    return {g, node_.shape};
  }
  /// Whether input i receives gradient.
  bool needs_grad(int i) const { return input_node(i).requires_grad; }
  /// Backward only: the gradient of input i, to add into; empty (data null) when it needs none.
  TensorView<T> input_grad(int i) const {
    const detail::TensorNode& n = input_node(i);
    if (!n.requires_grad) return {nullptr, n.shape};
    if (reads_ == Reads::GradTangents) [[unlikely]]
      return {detail::grad_tangent_buffer<T>(tape_, node_.input[i]), n.shape};
    return {static_cast<T*>(tape_.grad_buffer(node_.input[i])), n.shape};
  }
  /// Backward only, for an op that writes every element of input i's gradient: when no other op
  /// has added to it yet, the buffer comes unzeroed and *fresh is true (then write every element
  /// instead of adding: no pass to zero it first); otherwise *fresh is false (add).
  TensorView<T> input_grad_to_write(int i, bool* fresh) const {
    const detail::TensorNode& n = input_node(i);
    *fresh = false;
    // In tangent mode a gradient buffer also holds its tangent, which must start at zero.
    if (!n.requires_grad || reads_ != Reads::Values || tape_.tangents()) return input_grad(i);
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

  // ---- Tangent mode (tangent.hpp): jvp and backward_jvp ----

  /// The tangent of input i's values; data null where it is zero.
  TensorView<const T> input_tangent(int i) const {
    const detail::TensorNode& n = input_node(i);
    return {static_cast<const T*>(n.tangent), n.shape};
  }
  /// jvp: the output's tangent, to write (every element). backward_jvp: data null when no input
  /// had a tangent (jvp did not run).
  TensorView<T> output_tangent() const { return {static_cast<T*>(node_.tangent), node_.shape}; }
  /// backward_jvp: the tangent of output_grad().
  TensorView<const T> output_grad_tangent() const {
    return {static_cast<const T*>(tape_.node(id_).grad) + node_.shape.size(), node_.shape};
  }
  /// backward_jvp: the tangent of input i's gradient, to add into; data null when it needs none.
  TensorView<T> input_grad_tangent(int i) const {
    const detail::TensorNode& n = input_node(i);
    if (!n.requires_grad) return {nullptr, n.shape};
    return {detail::grad_tangent_buffer<T>(tape_, node_.input[i]), n.shape};
  }
  /// For a linear op's jvp: this context with input(i) and output() reading the tangents (an
  /// input's zero tangent as zeros), so that forward(ctx.tangents()) is the jvp.
  OpContext tangents() const { return with_reads(Reads::Tangents); }
  /// For a linear op's backward_jvp: this context with output_grad() and input_grad(i) reading
  /// the gradients' tangents (input(i) and output() are still the values), so that
  /// backward(ctx.grad_tangents()) is the backward_jvp.
  OpContext grad_tangents() const { return with_reads(Reads::GradTangents); }

 private:
  enum class Reads : std::uint8_t { Values, Tangents, GradTangents };
  OpContext with_reads(Reads reads) const {
    OpContext ctx(tape_, node_, id_);
    ctx.reads_ = reads;
    return ctx;
  }
  const T* input_tangent_or_zeros(int i) const {
    const detail::TensorNode& n = input_node(i);
    if (n.tangent) return static_cast<const T*>(n.tangent);
    T* zeros = scratch<T>(n.shape.size());
    std::fill_n(zeros, n.shape.size(), T(0));
    return zeros;
  }
  const detail::TensorNode& input_node(int i) const {
    return detail::tensor_node(tape_.node(node_.input[i]));
  }

  Tape& tape_;
  detail::TensorNode& node_;
  std::uint32_t id_;
  Reads reads_ = Reads::Values;
};

namespace detail {

template <class Op, class T, int N>
concept HasBackward = requires(const Op& op, OpContext<T, N>& ctx) {
  op.backward(ctx);
};

/// The markers (see the top of this file).
template <class Op>
concept DeclaredLinear = requires {
  requires Op::linear;
};
template <class Op>
concept BackwardReadsGradientOnly = DeclaredLinear<Op> || requires {
  requires Op::backward_reads_gradient_only;
};

template <class Op, class T, int N>
concept HasMemberJvp = requires(Op& op, OpContext<T, N>& ctx) {
  op.jvp(ctx);
};
template <class Op, class T, int N>
concept HasMemberBackwardJvp = requires(const Op& op, OpContext<T, N>& ctx) {
  op.backward_jvp(ctx);
};
/// A linear op's const forward, run on the tangents, is its jvp; a backward that reads only the
/// gradient, run on the gradients' tangents, is its backward_jvp.
template <class Op, class T, int N>
concept JvpFromForward = requires(const Op& op, OpContext<T, N>& ctx) {
  requires DeclaredLinear<Op>;
  op.forward(ctx);
};
template <class Op, class T, int N>
concept BackwardJvpFromBackward = requires(const Op& op, OpContext<T, N>& ctx) {
  requires BackwardReadsGradientOnly<Op>;
  op.backward(ctx);
};
template <class Op, class T, int N>
concept HasJvp = HasMemberJvp<Op, T, N> || JvpFromForward<Op, T, N>;
template <class Op, class T, int N>
concept HasBackwardJvp = HasMemberBackwardJvp<Op, T, N> || BackwardJvpFromBackward<Op, T, N>;

/// The op's jvp: its own, or (linear) forward on the tangents. Forward is called const: an op
/// whose forward saves state for backward cannot run it twice.
template <class Op, class T, int N>
void run_jvp(Op& op, OpContext<T, N>& ctx) {
  if constexpr (HasMemberJvp<Op, T, N>) {
    op.jvp(ctx);
  } else {
    OpContext<T, N> tangents = ctx.tangents();
    static_cast<const Op&>(op).forward(tangents);
  }
}
/// The op's backward_jvp: its own, or backward on the gradients' tangents.
template <class Op, class T, int N>
void run_backward_jvp(const Op& op, OpContext<T, N>& ctx) {
  if constexpr (HasMemberBackwardJvp<Op, T, N>) {
    op.backward_jvp(ctx);
  } else {
    OpContext<T, N> grad_tangents = ctx.grad_tangents();
    op.backward(grad_tangents);
  }
}
/// A view's tangent is a view of its input's tangent: it needs no jvp.
template <class Op, class T, int N>
concept HasJvpOrIsView = HasJvp<Op, T, N> || requires(const Op& op, const Shape& s) {
  op.view_offset(s);
};
/// Tangent mode's rules: backward_jvp, and jvp unless the op is a view.
template <class Op, class T, int N>
concept HasTangentRules = HasBackwardJvp<Op, T, N> && HasJvpOrIsView<Op, T, N>;

/// Tangent mode: refuses an op without the rules, or an input recorded outside tangent mode whose
/// gradient's tangent has no place (tangent.cpp).
[[noreturn]] void throw_no_tangent_rule(const char* op);
void check_tangent_inputs(Tape& tape, const std::uint32_t* inputs, int count, const char* op);

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

template <class Op, TensorElement T, int N>
void run_backward_with_tangents(Tape& tape, std::uint32_t id) {
  TensorNode& node = tensor_node(tape.node(id));
  OpContext<T, N> ctx(tape, node, id);
  const Op& op = *static_cast<const Op*>(node.op);
  op.backward(ctx);
  run_backward_jvp(op, ctx);
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
  static_assert(
      !DeclaredLinear<Op> || HasJvpOrIsView<Op, T, N>,
      "an op declared linear takes its jvp from forward run again on the tangents, so its "
      "forward must be const: write jvp(ctx) for an op whose forward saves state");
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
  // Tangent mode: the op carries tangents forward and its backward their second-order terms.
  const bool with_tangents = recorded && tape.tangents() != nullptr;
  if (with_tangents) [[unlikely]] {
    if constexpr (!HasTangentRules<Op, T, N>) throw_no_tangent_rule(name);
    std::uint32_t ids[N > 0 ? N : 1];
    for (int i = 0; i < N; ++i) ids[i] = inputs[i].id();
    check_tangent_inputs(tape, ids, N, name);
  }

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
  node->grad_has_tangent = with_tangents;
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
  if (with_tangents) [[unlikely]] {
    if constexpr (HasTangentRules<Op, T, N>) {
      bool any_tangent = false;
      for (const TensorNode* input : in) any_tangent = any_tangent || input->tangent != nullptr;
      if constexpr (requires { op.view_offset(shapes[0]); }) {
        if (in[0]->tangent)
          node->tangent = static_cast<T*>(in[0]->tangent) +
                          (static_cast<T*>(node->value) - static_cast<T*>(in[0]->value));
      } else if (any_tangent) {
        node->tangent = tape.allocate_array<T>(static_cast<std::size_t>(shape.size()));
        run_jvp(*saved, ctx);
      }
    }
  }

  // Only once the op has succeeded: a failed op leaves its inputs as they were.
  for (TensorNode* input : in) {
    input->used = true;
    input->writable = false;
  }
  CoarseNode coarse;
  coarse.payload = node;
  // In tangent mode the gradient buffer holds the gradient, then its tangent.
  coarse.grad_bytes = static_cast<std::size_t>(shape.size()) * sizeof(T) * (with_tangents ? 2 : 1);
  if constexpr (kDifferentiable)
    if (recorded) coarse.backward = &run_backward<Op, T, N>;
  if constexpr (HasTangentRules<Op, T, N>)
    if (with_tangents) [[unlikely]]
      coarse.backward = &run_backward_with_tangents<Op, T, N>;
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
