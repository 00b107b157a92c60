#pragma once
// The tape: every recorded operation, in creation order, as flat arrays (the layout of Adept 2).
//
// Every recorded Var owns a slot, which holds its adjoint. An input (a leaf) is just a slot. The
// result of an expression is a slot plus a statement: the slot it writes and the range of its
// operations; an operation is the pair (local partial ∂result/∂operand, operand slot), computed
// during the forward pass. The reverse sweep is a plain backward loop over statements:
//
//   for s from last to 0, each op k of s:  adjoint[operand[k]] += partial[k] * adjoint[slot[s]]
//
// Memory is an arena: clear() rewinds the counters and keeps the arrays, so recording the next
// graph allocates nothing once the arrays are large enough.
//
// Anything coarser than a scalar statement (a tensor op, a user's custom op) enters the same
// sweep through one small hook: a *coarse node*, recorded between two statements, with a
// gradient buffer in the tape's arena and a function pointer that runs its backward rule when
// the sweep reaches it. The tape knows nothing else about it (tensor.hpp builds on this).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/arena.hpp"

namespace autodiff {

/// A Var's slot on its tape.
using Index = std::uint32_t;
/// The index of a value that is not on any tape (a constant).
inline constexpr Index kNotRecorded = UINT32_MAX;
/// Which tape, and which recording on it since its last clear(): 64-bit, drawn from one
/// process-wide counter, so two never repeat within a process (a 32-bit one could, after 2³²
/// clears, and let a stale Var pass for a live one).
using Epoch = std::uint64_t;

/// Misuse of the engine: a Var of a cleared or foreign tape, the gradient of a constant, …
class TapeError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

class Tape;

namespace detail {
/// The active tape of this thread (nullptr until first use). Constant-initialised, so reading
/// it is a plain thread-local load with no guard.
inline thread_local constinit Tape* active_tape = nullptr;
/// One per thread: its address tells threads apart for the owner check of TapeScope.
inline thread_local constinit char thread_token = 0;
Tape& make_default_tape();
[[noreturn]] void throw_foreign_operand(Index node, Epoch var_epoch, Epoch tape_epoch);
[[noreturn]] void throw_not_recorded(Index node, Epoch var_epoch, Epoch tape_epoch,
                                     const char* what);
/// What a tape keeps while it is inspected (op names, values, labels, anomaly checks), attached by
/// the guards of autodiff/inspect/notes.hpp; null otherwise, and then nothing is paid for it.
class TapeNotes;
/// The state of tangent mode (autodiff/tensor/tangent.hpp), attached by its guard; null otherwise.
struct TangentRecording;
/// The reverse sweep of an inspected tape: runs it with anomaly checks and returns true, or returns
/// false when the notes do not ask for checks (autodiff/inspect/notes.cpp).
bool inspected_sweep(Tape& tape, std::uint32_t statement_end);
}  // namespace detail

/// A coarse node's backward rule: reads the node's gradient (and its own record, `payload`),
/// adds into its inputs' gradients. Called by the reverse sweep when gradient reached the node.
using BackwardFunction = void (*)(Tape& tape, std::uint32_t node);

/// A coarse node on the tape: one recorded unit coarser than a scalar statement.
struct CoarseNode {
  BackwardFunction backward = nullptr;  // null: sends no gradient (a constant or a leaf)
  void* payload = nullptr;              // the recording layer's own record (a TensorNode)
  void* grad = nullptr;                 // gradient buffer, null until gradient reaches the node
  std::size_t grad_bytes = 0;
  Index scalar_output = kNotRecorded;    // a Var slot the node feeds (to_var), else kNotRecorded
  std::uint32_t statement_position = 0;  // statements recorded before it
  bool is_leaf = false;  // its gradient accumulates over backward calls and may live elsewhere
};

class Tape {
 public:
  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  /// The tape that records on this thread: the thread's own, unless a TapeScope chose another.
  static Tape& active() {
    Tape* tape = detail::active_tape;
    return tape ? *tape : detail::make_default_tape();
  }

  /// Forgets every slot and statement and keeps the memory (the arena is rewound, not freed). Vars
  /// recorded before can no longer be used in operations or asked for gradients (TapeError).
  void clear();
  /// Sets every adjoint, leaves included, to zero.
  void zero_grad();

  /// Adds ∂output/∂v to the adjoint of every Var v recorded before `output`. Leaves (inputs)
  /// accumulate over calls; the adjoints of intermediate results are recomputed by each call.
  void backward(Index output);

  /// Called by the reverse sweep as it passes each leaf coarse node (a tensor parameter or a
  /// tensor marked requires_grad): from then on the sweep adds nothing more to that leaf's
  /// gradient. Lets an optimizer update a parameter while its gradient is still in cache.
  using LeafFinished = void (*)(void* context, std::uint32_t node);
  /// Sets the callback (null: none) until it is set again; the inspected (anomaly-checking)
  /// sweep does not call it.
  void on_leaf_finished(LeafFinished callback, void* context) {
    leaf_finished_ = callback;
    leaf_context_ = context;
  }

  bool is_recording() const { return recording_ != kNotRecording; }
  /// Whether and how the tape records, in one byte: the one test a Var makes per recorded value.
  enum RecordingMode : std::uint8_t { kNotRecording = 0, kRecording = 1, kRecordingWithNotes = 3 };
  RecordingMode recording_mode() const { return recording_; }
  /// Recorded Vars (inputs and results).
  std::size_t node_count() const { return slot_count_; }
  /// Recorded expressions (results).
  std::size_t statement_count() const { return statement_count_; }
  std::size_t operation_count() const { return op_count_; }
  /// Bytes of tape the recorded graph occupies: statements, operations, slots, coarse nodes and
  /// everything they keep in the arena (tensor values, gradients, op records).
  std::size_t bytes_used() const;
  /// Bytes the tape holds, used or kept for the next graph.
  std::size_t bytes_reserved() const;
  /// Changes each time the tape is created or cleared; Vars carry it to detect stale use.
  Epoch epoch() const { return epoch_; }

  // ---- The recording interface, used by Var and the expression nodes. ----

  /// Records an input: a slot whose gradient accumulates.
  Index new_leaf() { return push_slot(); }

  /// Records the result of `expr`: a slot and a statement whose operations are the expression's
  /// recorded Var leaves with their chain-rule partials. An expression with no recorded leaf
  /// yields kNotRecorded.
  template <class Expr>
  [[gnu::always_inline]] Index record(const Expr& expr);

  /// Appends one operation of the node being recorded; capacity was reserved by record().
  void push_operation(double partial, Index operand, Epoch operand_epoch) {
    // The slot is checked too: no write can land outside the tape, whatever a handle says.
    if (operand_epoch != epoch_ || operand >= slot_count_) [[unlikely]]
      detail::throw_foreign_operand(operand, operand_epoch, epoch_);
    partial_[op_count_] = partial;
    operand_[op_count_] = operand;
    ++op_count_;
  }

  double adjoint(Index node) const { return adjoint_[node]; }
  double& adjoint(Index node) { return adjoint_[node]; }

  // ---- Coarse nodes (tensor ops, custom ops) ----

  /// Records a coarse node after the statements recorded so far; returns its id.
  std::uint32_t push_node(const CoarseNode& node);
  /// Node `id`; throws a TapeError unless (id, epoch) names a node recorded since the last clear.
  CoarseNode& node(std::uint32_t id, Epoch epoch, const char* what);
  /// Node `id`, unchecked (for backward rules, which receive valid ids).
  CoarseNode& node(std::uint32_t id) { return nodes_[id]; }
  /// The gradient buffer of node `id`, allocated and zeroed when first asked for.
  void* grad_buffer(std::uint32_t id);
  /// The same for a caller that writes every element of the gradient: when no gradient has
  /// reached the node yet, its buffer is made without zeroing and *fresh is true (write, do not
  /// add); otherwise *fresh is false (add, as with grad_buffer).
  void* grad_buffer_to_write(std::uint32_t id, bool* fresh);
  /// Memory that lives until the next clear(), 64-byte aligned.
  void* allocate(std::size_t bytes) { return arena_.allocate(bytes); }
  template <class T>
  T* allocate_array(std::size_t count) {
    return arena_.allocate_array<T>(count);
  }

  /// A reverse sweep seeded by the caller, for outputs that are not scalar slots:
  /// begin_backward(); add the seed to a gradient; sweep_all().
  void begin_backward();
  void sweep_all();

  // ---- Reading the recorded graph (autodiff/inspect/: graph export, explanations, statistics) --

  /// The inspection notes attached by a guard (RecordDetails, DetectAnomaly), or null.
  detail::TapeNotes* notes() const { return notes_; }
  void set_notes(detail::TapeNotes* notes) {
    notes_ = notes;
    set_recording(is_recording());
  }
  /// Tangent mode's state (autodiff/tensor/tangent.hpp), or null: tensor ops recorded while it
  /// is set also carry tangents and the second-order rules of their backward.
  detail::TangentRecording* tangents() const { return tangents_; }
  void set_tangents(detail::TangentRecording* tangents) { tangents_ = tangents; }
  std::size_t coarse_node_count() const { return nodes_.size(); }
  const CoarseNode& coarse_node(std::uint32_t id) const { return nodes_[id]; }
  /// The slot statement `s` writes, and its operations' partials and operand slots.
  Index statement_slot(std::uint32_t s) const { return statement_slot_[s]; }
  std::span<const double> statement_partials(std::uint32_t s) const {
    return {partial_.get() + op_bounds_[s], op_bounds_[s + 1] - op_bounds_[s]};
  }
  std::span<const Index> statement_operands(std::uint32_t s) const {
    return {operand_.get() + op_bounds_[s], op_bounds_[s + 1] - op_bounds_[s]};
  }
  /// Whether a backward ran since the last clear (the adjoints hold gradients).
  bool has_gradients() const { return swept_; }

  /// Throws a TapeError unless (node, epoch) names a node recorded on this tape since its last
  /// clear. `what` names the operation for the message.
  void check_recorded(Index node, Epoch epoch, const char* what) const {
    if (node == kNotRecorded || epoch != epoch_ || node >= slot_count_) [[unlikely]]
      detail::throw_not_recorded(node, epoch, epoch_, what);
  }

 private:
  friend class NoGradGuard;
  friend class TapeScope;
  friend Tape& detail::make_default_tape();

  // The owner check, paid once per TapeScope, never per op: the thread that has this tape active
  // (its address of detail::thread_token), and how many scopes deep.
  void enter_thread();
  void leave_thread() {
    if (--scope_depth_ == 0) owner_.store(0, std::memory_order_release);
  }

  void set_recording(bool on) {
    recording_ = !on ? kNotRecording : notes_ ? kRecordingWithNotes : kRecording;
  }

  Index push_slot() {
    if (slot_count_ == slot_capacity_) [[unlikely]]
      grow_slots();
    adjoint_[slot_count_] = 0.0;
    return slot_count_++;
  }
  void push_statement(Index slot) {
    if (statement_count_ == statement_capacity_) [[unlikely]]
      grow_statements();
    statement_slot_[statement_count_] = slot;
    op_bounds_[statement_count_ + 1] = op_count_;
    ++statement_count_;
  }
  void reserve_operations(std::size_t count) {
    if (op_count_ + count > op_capacity_) [[unlikely]]
      grow_operations(op_count_ + count);
  }
  void grow_slots();
  void grow_statements();
  void grow_operations(std::size_t needed);
  /// The reverse sweep over statements [first, end), from the last one down.
  void sweep_statements(std::uint32_t end, std::uint32_t first);
  /// The reverse sweep over statements [0, statement_end) and every coarse node, interleaved in
  /// recording order.
  void sweep_interleaved(std::uint32_t statement_end);
  void zero_intermediate_adjoints();

  // Per slot.
  std::unique_ptr<double[]> adjoint_;
  std::uint32_t slot_count_ = 0;
  std::uint32_t slot_capacity_ = 0;
  // Per statement: the slot it writes; its operations are [op_bounds_[s], op_bounds_[s + 1]).
  std::unique_ptr<Index[]> statement_slot_;
  std::unique_ptr<std::uint32_t[]> op_bounds_;  // op_bounds_[0] = 0
  std::uint32_t statement_count_ = 0;
  std::uint32_t statement_capacity_ = 0;
  // Per operation.
  std::unique_ptr<double[]> partial_;
  std::unique_ptr<Index[]> operand_;
  std::uint32_t op_count_ = 0;
  std::uint32_t op_capacity_ = 0;

  std::vector<CoarseNode> nodes_;  // keeps its capacity over clear()
  Arena arena_;

  Epoch epoch_;
  detail::TapeNotes* notes_ = nullptr;            // set by the inspection guards only
  detail::TangentRecording* tangents_ = nullptr;  // set by TangentMode only
  LeafFinished leaf_finished_ = nullptr;
  void* leaf_context_ = nullptr;
  std::atomic<std::uintptr_t> owner_{0};
  std::uint32_t scope_depth_ = 0;
  RecordingMode recording_ = kRecording;
  bool swept_ = false;  // a backward ran since the last clear: intermediates hold adjoints
};

// Inlined into the caller, so that the expression's values and partials stay in registers.
template <class Expr>
[[gnu::always_inline]] inline Index Tape::record(const Expr& expr) {
  reserve_operations(Expr::leaf_count);
  const std::uint32_t first = op_count_;
  try {
    expr.propagate(*this, 1.0);
  } catch (...) {
    op_count_ = first;  // leave the tape as it was
    throw;
  }
  if (op_count_ == first) return kNotRecorded;  // only constants: nothing to record
  const Index slot = push_slot();
  push_statement(slot);
  return slot;
}

/// Makes `tape` the active tape of this thread for the guard's lifetime; scopes nest, so a
/// gradient can be taken on an inner tape in the middle of a computation recorded on an outer.
/// A tape records one thread at a time: a scope on a tape that another thread has active throws
/// a TapeError (handing a tape over, one scope after the other, is fine).
class TapeScope {
 public:
  explicit TapeScope(Tape& tape) : tape_(tape), previous_(detail::active_tape) {
    tape.enter_thread();
    detail::active_tape = &tape;
  }
  ~TapeScope() {
    detail::active_tape = previous_;
    tape_.leave_thread();
  }
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape& tape_;
  Tape* previous_;
};

/// Stops the active tape from recording for the guard's lifetime: new Vars are constants.
class NoGradGuard {
 public:
  NoGradGuard() : tape_(Tape::active()), previous_(tape_.is_recording()) {
    tape_.set_recording(false);
  }
  ~NoGradGuard() { tape_.set_recording(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  Tape& tape_;
  bool previous_;
};

}  // namespace autodiff
