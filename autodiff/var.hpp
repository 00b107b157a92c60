#pragma once
// Var: a recorded scalar (double), and the expression nodes that combine Vars.
//
// `Var y = sigmoid(w * x + b);` builds a small expression object on the stack; converting it to
// a Var records ONE node on the tape whose operations are the expression's Var leaves with their
// chain-rule partials (∂y/∂w, ∂y/∂x, ∂y/∂b), computed during the forward pass. Intermediate
// results of one expression are never stored: that is why the tape stays small and the reverse
// sweep short (the design of Adept 2). Each expression node computes its value once, when built.

#include <concepts>
#include <type_traits>
#include "autodiff/source_location.hpp"

#include "autodiff/tape.hpp"

namespace autodiff {

/// Marks the types that are expressions over Vars (Var itself, and every expression node).
struct ExpressionBase {};

template <class T>
concept Expression = std::is_base_of_v<ExpressionBase, std::remove_cvref_t<T>>;

namespace detail {
// Called only while a tape is inspected (tape.notes() set): they keep each recorded value, its
// op and where it was recorded, and run the anomaly checks (autodiff/inspect/).
[[gnu::cold]] void note_leaf(Tape& tape, Index slot, double value,
                             autodiff::SourceLocation where = {});
// Out of line, and given the expression's shape only: its Var leaves by slot, their values unread
// (note_statement takes them from the notes). No value is then read on the cold path that the hot
// path would not compute anyway: a value nothing reads (log's, where only its derivative is used,
// or a sum never looked at) is still never computed, inspected or not.
template <class E>
[[gnu::cold, gnu::noinline]] void note_statement(Tape& tape, const E& expression, Index slot,
                                                 autodiff::SourceLocation where);
template <class E, class F>
[[gnu::always_inline]] inline E rebuilt(const E& expression, const F& leaf);
}  // namespace detail

/// Anything that can stand on one side of an operator with a Var: an expression or a number.
template <class T>
concept Operand = Expression<T> || std::is_arithmetic_v<std::remove_cvref_t<T>>;

/// A recorded scalar: its value, and where it stands on the tape.
///
/// A Var is a 24-byte handle (value, slot, tape epoch); copying it shares the node (as in Python).
/// Its value lives in the handle, so value() can always be read; grad(), backward() and new
/// operations need the node on the active tape and throw a TapeError if the tape was cleared since,
/// or is another one.
class Var : public ExpressionBase {
 public:
  static constexpr int leaf_count = 1;

  /// A constant 0, not recorded (so that containers of Vars cost no tape).
  Var() = default;
  /// An input: a leaf node on the active tape whose gradient accumulates. `where` is kept only
  /// while the tape is inspected.
  Var(double value, autodiff::SourceLocation where = autodiff::SourceLocation::current())
      : value_(value) {
    Tape& tape = Tape::active();
    // One test on the hot path; the others (not recording, inspected) apart and before
    // recording, so that nothing is kept alive across the recording for them.
    const Tape::RecordingMode mode = tape.recording_mode();
    if (mode != Tape::kRecording) [[unlikely]] {
      if (mode == Tape::kNotRecording) return;
      detail::note_leaf(tape, tape.node_count(), value, where);  // inspected
    }
    index_ = tape.new_leaf();
    epoch_ = tape.epoch();
  }
  /// The result of an expression: one node on the active tape. `where` is kept only while the
  /// tape is inspected (anomaly reports, graph pictures).
  template <Expression E>
  requires(!std::same_as<std::remove_cvref_t<E>, Var>)
      Var(const E& expression, autodiff::SourceLocation where = autodiff::SourceLocation::current())
      : value_(expression.value()) {
    Tape& tape = Tape::active();
    // As for a leaf: one test on the hot path, the inspected case noted before recording (in
    // the slot the statement will take). Tested after recording instead, with the expression's
    // parts kept alive across it, inspection cost B2 23 instructions per statement (callgrind).
    const Tape::RecordingMode mode = tape.recording_mode();
    if (mode != Tape::kRecording) [[unlikely]] {
      if (mode == Tape::kNotRecording) return;
      detail::note_statement(tape, detail::rebuilt(expression, leaf_by_slot), tape.node_count(),
                             where);
    }
    index_ = tape.record(expression);
    epoch_ = tape.epoch();
  }
  // No operator= of its own for an expression: `y = expression` converts it with the constructor
  // above, whose `where` is then the line of the assignment.
  Var& operator=(double value) { return *this = Var(value); }

  /// A Var that is not recorded: gradients do not flow into it.
  static Var constant(double value) {
    Var v;
    v.value_ = value;
    return v;
  }

  /// A Var for a slot already recorded on the tape of `epoch` (used by tensor ops).
  static Var recorded(double value, Index slot, Epoch epoch) {
    Var v;
    v.value_ = value;
    v.index_ = slot;
    v.epoch_ = epoch;
    return v;
  }

  double value() const { return value_; }
  /// The accumulated ∂(output)/∂(this) after backward() on some output.
  double grad() const {
    const Tape& tape = Tape::active();
    tape.check_recorded(index_, epoch_, "grad()");
    return tape.adjoint(index_);
  }
  /// Adds ∂(this)/∂v to the grad() of every Var v this one was computed from.
  void backward() const {
    Tape& tape = Tape::active();
    tape.check_recorded(index_, epoch_, "backward()");
    tape.backward(index_);
  }
  bool is_recorded() const { return index_ != kNotRecorded; }
  Index index() const { return index_; }
  Epoch epoch() const { return epoch_; }

  template <Operand E>
  Var& operator+=(const E& e);
  template <Operand E>
  Var& operator-=(const E& e);
  template <Operand E>
  Var& operator*=(const E& e);
  template <Operand E>
  Var& operator/=(const E& e);

  /// A Var leaf by its slot alone, its value left unread (0): what the notes are given.
  static Var leaf_by_slot(const Var& v) { return recorded(0.0, v.index_, v.epoch_); }

  /// Expression interface: records `partial` (∂result/∂this) as an operation on this leaf's slot.
  void propagate(Tape& tape, double partial) const {
    if (index_ != kNotRecorded) tape.push_operation(partial, index_, epoch_);
  }

 private:
  double value_ = 0.0;
  Index index_ = kNotRecorded;
  Epoch epoch_ = 0;
};

/// The same value, cut off from the tape: no gradient flows through it.
inline Var detach(const Var& v) { return Var::constant(v.value()); }

/// A number inside an expression.
class Constant : public ExpressionBase {
 public:
  static constexpr int leaf_count = 0;
  explicit Constant(double value) : value_(value) {}
  double value() const { return value_; }
  void propagate(Tape&, double) const {}

 private:
  double value_;
};

/// f(a), for an op type with value(x) and derivative(x, y = f(x)). The op may hold parameters
/// (leaky_relu's slope); an op without any takes no space.
template <class Op, class A>
class Unary : public ExpressionBase {
 public:
  static constexpr int leaf_count = A::leaf_count;
  explicit Unary(const A& arg, Op op = {}) : arg_(arg), op_(op), value_(op_.value(arg.value())) {}
  double value() const { return value_; }
  void propagate(Tape& tape, double partial) const {
    arg_.propagate(tape, partial * op_.derivative(arg_.value(), value_));
  }
  const A& arg() const { return arg_; }
  const Op& op() const { return op_; }

 private:
  A arg_;
  [[no_unique_address]] Op op_;
  double value_;
};

/// f(a, b), for an op type with value(a, b), d_left(a, b, y) and d_right(a, b, y).
/// A side with no Var in it (a number) gets no partial computed at all.
template <class Op, class L, class R>
class Binary : public ExpressionBase {
 public:
  static constexpr int leaf_count = L::leaf_count + R::leaf_count;
  Binary(const L& left, const R& right)
      : left_(left), right_(right), value_(Op::value(left.value(), right.value())) {}
  double value() const { return value_; }
  void propagate(Tape& tape, double partial) const {
    if constexpr (L::leaf_count > 0)
      left_.propagate(tape, partial * Op::d_left(left_.value(), right_.value(), value_));
    if constexpr (R::leaf_count > 0)
      right_.propagate(tape, partial * Op::d_right(left_.value(), right_.value(), value_));
  }
  const L& left() const { return left_; }
  const R& right() const { return right_; }

 private:
  L left_;
  R right_;
  double value_;
};

namespace detail {
/// The same expression built again, each Var leaf replaced by leaf(it) (numbers and ops kept).
template <class E, class F>
[[gnu::always_inline]] inline E rebuilt(const E& expression, const F& leaf) {
  if constexpr (std::is_same_v<E, Var>)
    return leaf(expression);
  else if constexpr (requires { expression.arg(); })
    return E(rebuilt(expression.arg(), leaf), expression.op());
  else if constexpr (requires { expression.left(); })
    return E(rebuilt(expression.left(), leaf), rebuilt(expression.right(), leaf));
  else
    return expression;
}

template <class T>
auto as_expression(const T& x) {
  if constexpr (Expression<T>)
    return x;
  else
    return Constant(static_cast<double>(x));
}
template <class T>
using expression_t = decltype(as_expression(std::declval<T>()));

template <class T>
double value_of(const T& x) {
  if constexpr (Expression<T>)
    return x.value();
  else
    return static_cast<double>(x);
}
}  // namespace detail

template <class Op, Operand A, Operand B>
auto make_binary(const A& a, const B& b) {
  using L = detail::expression_t<A>;
  using R = detail::expression_t<B>;
  return Binary<Op, L, R>(detail::as_expression(a), detail::as_expression(b));
}

template <class Op, Expression A>
auto make_unary(const A& a, Op op = {}) {
  return Unary<Op, A>(a, op);
}

}  // namespace autodiff
