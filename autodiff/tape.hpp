#pragma once
// The tape: every recorded operation, in creation order, as flat arrays.
//
// A node is one recorded value (an input, or the result of an expression). For node `n` the tape
// keeps its adjoint and the range [op_begin(n), op_end(n)) of its operations; an operation is the
// pair (local partial ∂n/∂operand, operand node). The reverse sweep is a plain backward loop:
//
//     for n = last .. 0:   for each operation k of n:   adjoint[operand[k]] += partial[k] * adjoint[n]
//
// Memory is an arena: clear() rewinds the counters and keeps the arrays, so recording the next
// graph allocates nothing once the arrays are large enough.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace autodiff {

/// Position of a node on its tape.
using Index = std::uint32_t;
/// The index of a value that is not on any tape (a constant).
inline constexpr Index kNotRecorded = UINT32_MAX;

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
Tape& make_default_tape();
[[noreturn]] void throw_foreign_operand(Index node, std::uint32_t var_epoch, std::uint32_t tape_epoch);
}  // namespace detail

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

  /// Forgets every node and keeps the memory (the arena is rewound, not freed). Vars recorded
  /// before can no longer be used in operations or asked for gradients (TapeError).
  void clear();
  /// Sets every adjoint, leaves included, to zero.
  void zero_grad();

  /// Adds ∂output/∂n to the adjoint of every node n recorded before `output`. Leaves (inputs)
  /// accumulate over calls; the adjoints of intermediate nodes are recomputed by each call.
  void backward(Index output);

  bool is_recording() const { return recording_; }
  std::size_t node_count() const { return node_count_; }
  std::size_t operation_count() const { return op_count_; }
  /// Bytes of tape the recorded graph occupies.
  std::size_t bytes_used() const;
  /// Bytes the tape holds, used or kept for the next graph.
  std::size_t bytes_reserved() const;
  /// Changes each time the tape is created or cleared; Vars carry it to detect stale use.
  std::uint32_t epoch() const { return epoch_; }

  // ---- The recording interface, used by Var and the expression nodes. ----

  /// Records a node with no operations: an input whose gradient accumulates.
  Index new_leaf() { return push_node(); }

  /// Records the node `expr` describes: its operations are the expression's active leaves with
  /// their chain-rule partials. An expression with no recorded leaf yields kNotRecorded.
  template <class Expr>
  Index record(const Expr& expr);

  /// Appends one operation of the node being recorded; capacity was reserved by record().
  void push_operation(double partial, Index operand, std::uint32_t operand_epoch) {
    if (operand_epoch != epoch_) [[unlikely]]
      detail::throw_foreign_operand(operand, operand_epoch, epoch_);
    partial_[op_count_] = partial;
    operand_[op_count_] = operand;
    ++op_count_;
  }

  double adjoint(Index node) const { return adjoint_[node]; }
  double& adjoint(Index node) { return adjoint_[node]; }

  /// Throws a TapeError unless (node, epoch) names a node recorded on this tape since its last
  /// clear. `what` names the operation for the message.
  void check_recorded(Index node, std::uint32_t epoch, const char* what) const;

 private:
  friend class NoGradGuard;

  Index push_node() {
    if (node_count_ == node_capacity_) [[unlikely]]
      grow_nodes();
    adjoint_[node_count_] = 0.0;
    op_end_[node_count_] = op_count_;
    return node_count_++;
  }
  void reserve_operations(std::size_t count) {
    if (op_count_ + count > op_capacity_) [[unlikely]]
      grow_operations(op_count_ + count);
  }
  void grow_nodes();
  void grow_operations(std::size_t needed);
  /// The reverse sweep over scalar nodes (last, first], i.e. from `last` down to `first`.
  void sweep_scalars(Index last, Index first);
  void zero_intermediate_adjoints();

  // Per node.
  std::unique_ptr<double[]> adjoint_;
  std::unique_ptr<std::uint32_t[]> op_end_;  // one past the node's last operation
  std::uint32_t node_count_ = 0;
  std::uint32_t node_capacity_ = 0;
  // Per operation.
  std::unique_ptr<double[]> partial_;
  std::unique_ptr<Index[]> operand_;
  std::uint32_t op_count_ = 0;
  std::uint32_t op_capacity_ = 0;

  std::uint32_t epoch_;
  bool recording_ = true;
  bool swept_ = false;  // a backward ran since the last clear: intermediates hold adjoints
};

template <class Expr>
Index Tape::record(const Expr& expr) {
  reserve_operations(Expr::leaf_count);
  const std::uint32_t first = op_count_;
  try {
    expr.propagate(*this, 1.0);
  } catch (...) {
    op_count_ = first;  // leave the tape as it was
    throw;
  }
  if (op_count_ == first) return kNotRecorded;  // only constants: no node needed
  return push_node();
}

/// Makes `tape` the active tape of this thread for the guard's lifetime; scopes nest, so a
/// gradient can be taken on an inner tape in the middle of a computation recorded on an outer.
class TapeScope {
 public:
  explicit TapeScope(Tape& tape) : previous_(detail::active_tape) { detail::active_tape = &tape; }
  ~TapeScope() { detail::active_tape = previous_; }
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* previous_;
};

/// Stops the active tape from recording for the guard's lifetime: new Vars are constants.
class NoGradGuard {
 public:
  NoGradGuard() : tape_(Tape::active()), previous_(tape_.recording_) { tape_.recording_ = false; }
  ~NoGradGuard() { tape_.recording_ = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  Tape& tape_;
  bool previous_;
};

}  // namespace autodiff
