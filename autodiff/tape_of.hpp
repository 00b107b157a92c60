#pragma once
// TapeOf<S>: the tape of second order (second_order.hpp), the first-order tape's flat layout and
// reverse loop with values, partials and adjoints of a number type S, and what is recorded on it:
// VarOf<S> and its expressions (var.hpp's plumbing over S), and EagerVar, the S whose every
// operation is a Var of the active Tape (reverse over reverse).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "autodiff/dual.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/var.hpp"

namespace autodiff {

template <class S>
class TapeOf;
template <class S>
class VarOf;

namespace detail {
/// Epochs of TapeOf: drawn from their own counter, never 0.
inline Epoch draw_second_order_epoch() {
  static std::atomic<Epoch> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}
template <class S>
inline thread_local constinit TapeOf<S>* active_tape_of = nullptr;

/// adjoint += partial · a. For Duals written out, so that the hot loop of hvp has no branch.
template <class S>
void accumulate(S& adjoint, const S& partial, const S& a) {
  adjoint = adjoint + partial * a;
}
template <class T>
void accumulate(Dual<T>& adjoint, const Dual<T>& partial, const Dual<T>& a) {
  adjoint.value = adjoint.value + partial.value * a.value;
  adjoint.tangent = adjoint.tangent + partial.tangent * a.value + partial.value * a.tangent;
}
}  // namespace detail

// ---- Reverse over reverse: a number type whose every operation is a Var of the active Tape ----

namespace detail {

/// A Var with eager arithmetic: each operation records one statement on the active Tape and
/// returns an EagerVar (not an expression), so that the op table's formulas, evaluated on it,
/// record how each partial depends on the inputs. The S of differentiable_gradient.
struct EagerVar {
  Var var;
  EagerVar() = default;
  EagerVar(const Var& v) : var(v) {}
  EagerVar(double value) : var(Var::constant(value)) {}
  template <PlainNumber N>
  requires(!std::same_as<N, double>) EagerVar(N value)
      : var(Var::constant(static_cast<double>(value))) {}
};

inline bool is_zero(const EagerVar& x) {  // a constant 0: nothing depends on it
  return !x.var.is_recorded() && x.var.value() == 0.0;
}
inline double primal(const EagerVar& x) { return x.var.value(); }

#define AUTODIFF_EAGER_OPERATOR(symbol)                                   \
  inline EagerVar operator symbol(const EagerVar& a, const EagerVar& b) { \
    return Var(a.var symbol b.var);                                       \
  }
AUTODIFF_EAGER_OPERATOR(+)
AUTODIFF_EAGER_OPERATOR(-)
AUTODIFF_EAGER_OPERATOR(*)
AUTODIFF_EAGER_OPERATOR(/)
#undef AUTODIFF_EAGER_OPERATOR
inline EagerVar operator-(const EagerVar& x) { return Var(-x.var); }
inline bool operator==(const EagerVar& a, const EagerVar& b) { return primal(a) == primal(b); }
inline std::partial_ordering operator<=>(const EagerVar& a, const EagerVar& b) {
  return primal(a) <=> primal(b);
}
template <PlainNumber N>
bool operator==(const EagerVar& a, N b) {
  return primal(a) == static_cast<double>(b);
}
template <PlainNumber N>
std::partial_ordering operator<=>(const EagerVar& a, N b) {
  return primal(a) <=> static_cast<double>(b);
}

#define AUTODIFF_EAGER_FUNCTION(name, var_function) \
  inline EagerVar name(const EagerVar& x) { return Var(autodiff::var_function(x.var)); }
AUTODIFF_EAGER_FUNCTION(exp, exp)
AUTODIFF_EAGER_FUNCTION(log, log)
AUTODIFF_EAGER_FUNCTION(log1p, log1p)
AUTODIFF_EAGER_FUNCTION(sqrt, sqrt)
AUTODIFF_EAGER_FUNCTION(sin, sin)
AUTODIFF_EAGER_FUNCTION(cos, cos)
AUTODIFF_EAGER_FUNCTION(tan, tan)
AUTODIFF_EAGER_FUNCTION(tanh, tanh)
AUTODIFF_EAGER_FUNCTION(fabs, abs)
#undef AUTODIFF_EAGER_FUNCTION
inline EagerVar pow(const EagerVar& a, const EagerVar& b) {
  return Var(autodiff::pow(a.var, b.var));
}
inline bool isnormal(const EagerVar& x) { return std::isnormal(x.var.value()); }
}  // namespace detail

/// The tape of VarOf<S>: the flat layout of Tape (statements, operations, adjoints), with values,
/// partials and adjoints of type S. Rewound by clear(), which keeps the memory. One thread at a
/// time records on a TapeOf (hvp and hessian keep one per thread).
template <class S>
class TapeOf {
 public:
  TapeOf() : op_bounds_(1, 0), epoch_(detail::draw_second_order_epoch()) {}
  TapeOf(const TapeOf&) = delete;
  TapeOf& operator=(const TapeOf&) = delete;
  ~TapeOf() {
    if (detail::active_tape_of<S> == this) detail::active_tape_of<S> = nullptr;
  }

  /// The tape that VarOf<S> records on in this thread: the innermost TapeOfScope's.
  static TapeOf& active() {
    TapeOf* tape = detail::active_tape_of<S>;
    if (!tape)
      throw TapeError(
          "autodiff: a VarOf was made with no active TapeOf: use hvp(), hessian() or "
          "differentiable_gradient(), or make a TapeOf active with a TapeOfScope");
    return *tape;
  }

  void clear() {
    slot_count_ = statement_count_ = op_count_ = 0;
    swept_ = false;
    epoch_ = detail::draw_second_order_epoch();
  }
  Epoch epoch() const { return epoch_; }
  std::size_t node_count() const { return slot_count_; }
  std::size_t operation_count() const { return op_count_; }

  Index new_leaf() { return push_slot(); }

  // Inlined into the caller, as Tape::record, so that the expression stays in registers.
  template <class Expr>
  [[gnu::always_inline]] Index record(const Expr& expr, const typename Expr::Values& values) {
    reserve_operations(Expr::leaf_count);
    const std::uint32_t first = op_count_;
    try {
      expr.propagate(*this, S(1.0), values);
    } catch (...) {
      op_count_ = first;
      throw;
    }
    if (op_count_ == first) return kNotRecorded;
    const Index slot = push_slot();
    push_statement(slot);
    return slot;
  }

  void push_operation(const S& partial, Index operand, Epoch operand_epoch) {
    if (operand_epoch != epoch_ || operand >= slot_count_) [[unlikely]]
      detail::throw_foreign_operand(operand, operand_epoch, epoch_);
    partial_[op_count_] = partial;
    operand_[op_count_] = operand;
    ++op_count_;
  }

  /// Sets every adjoint to ∂output/∂(that node): one reverse sweep from `output`, fresh (the
  /// adjoints of an earlier sweep are cleared first).
  void backward(Index output) {
    check_recorded(output, epoch_, "backward()");
    if (swept_) std::fill_n(adjoint_.begin(), slot_count_, S(0.0));
    swept_ = true;
    adjoint_[output] = S(1.0);
    // Statements write slots in increasing order: start at the last one at or before `output`.
    const auto end = std::upper_bound(statement_slot_.begin(),
                                      statement_slot_.begin() + statement_count_, output);
    const std::uint32_t* bounds = op_bounds_.data();
    const Index* operand = operand_.data();
    const S* partial = partial_.data();
    S* adjoint = adjoint_.data();
    for (auto s = static_cast<std::uint32_t>(end - statement_slot_.begin()); s-- > 0;) {
      const S a = adjoint[statement_slot_[s]];
      if (detail::is_zero(a)) continue;  // no gradient here: send none (no 0·∞)
      for (std::uint32_t k = bounds[s]; k < bounds[s + 1]; ++k)
        detail::accumulate(adjoint[operand[k]], partial[k], a);
    }
  }

  const S& adjoint(Index slot) const { return adjoint_[slot]; }

  void check_recorded(Index slot, Epoch epoch, const char* what) const {
    if (slot == kNotRecorded || epoch != epoch_ || slot >= slot_count_) [[unlikely]]
      detail::throw_not_recorded(slot, epoch, epoch_, what);
  }

 private:
  // Indices are 32-bit, kNotRecorded reserved: every array stops below 2^32 − 1 entries.
  static std::size_t grown(std::size_t size, const char* what) {
    constexpr std::size_t kMax = std::size_t{UINT32_MAX} - 1;
    if (size >= kMax)
      throw std::length_error(std::string("autodiff: a TapeOf cannot hold more than 2^32 - 2 ") +
                              what);
    return std::min(kMax, std::max<std::size_t>(1024, 2 * size));
  }
  Index push_slot() {
    if (slot_count_ == adjoint_.size()) [[unlikely]]
      adjoint_.resize(grown(adjoint_.size(), "values"));
    adjoint_[slot_count_] = S(0.0);
    return slot_count_++;
  }
  void push_statement(Index slot) {
    if (statement_count_ == statement_slot_.size()) [[unlikely]] {
      statement_slot_.resize(grown(statement_slot_.size(), "statements"));
      op_bounds_.resize(statement_slot_.size() + 1);
    }
    statement_slot_[statement_count_] = slot;
    op_bounds_[statement_count_ + 1] = op_count_;
    ++statement_count_;
  }
  void reserve_operations(std::size_t count) {
    if (op_count_ + count > partial_.size()) [[unlikely]] {
      const std::size_t capacity =
          std::max(grown(partial_.size(), "operations"), op_count_ + count);
      if (capacity > std::size_t{UINT32_MAX} - 1)
        throw std::length_error("autodiff: a TapeOf cannot hold more than 2^32 - 2 operations");
      partial_.resize(capacity);
      operand_.resize(capacity);
    }
  }

  std::vector<S> adjoint_;
  std::vector<Index> statement_slot_;
  std::vector<std::uint32_t> op_bounds_;
  std::vector<S> partial_;
  std::vector<Index> operand_;
  std::uint32_t slot_count_ = 0, statement_count_ = 0, op_count_ = 0;
  Epoch epoch_;
  bool swept_ = false;
};

/// Makes `tape` the active TapeOf<S> of this thread for the scope's lifetime; scopes nest.
template <class S>
class TapeOfScope {
 public:
  explicit TapeOfScope(TapeOf<S>& tape) : previous_(detail::active_tape_of<S>) {
    detail::active_tape_of<S> = &tape;
  }
  ~TapeOfScope() { detail::active_tape_of<S> = previous_; }
  TapeOfScope(const TapeOfScope&) = delete;
  TapeOfScope& operator=(const TapeOfScope&) = delete;

 private:
  TapeOf<S>* previous_;
};

// ---- Expressions over VarOf<S>: the plumbing of var.hpp, with values of type S ----

/// Marks VarOf and the expression nodes over it.
struct ExpressionOfBase {};
template <class T>
concept ExpressionOf = std::is_base_of_v<ExpressionOfBase, std::remove_cvref_t<T>>;
template <class T>
concept OperandOf = ExpressionOf<T> || std::is_arithmetic_v<std::remove_cvref_t<T>>;

// The nodes hold their operands (by value, so that an expression can outlive the statement that
// built it) but not their values: copying a node into its parent copies the whole subtree, and
// values written just before made each copy stall (store forwarding), tripling hvp's time. The
// values are computed when the expression is recorded, into a tree of Values built in place
// (evaluate()), which propagate() then reads.

/// A number inside an expression over VarOf<S>.
template <class S>
class ConstantOf : public ExpressionOfBase {
 public:
  using Scalar = S;
  static constexpr int leaf_count = 0;
  struct Values {
    S value;
  };
  explicit ConstantOf(double value) : value_(value) {}
  Values evaluate() const { return {S(value_)}; }
  S value() const { return S(value_); }
  void propagate(TapeOf<S>&, const S&, const Values&) const {}

 private:
  double value_;
};

template <class Op, class A>
class UnaryOf : public ExpressionOfBase {
 public:
  using Scalar = typename A::Scalar;
  static constexpr int leaf_count = A::leaf_count;
  struct Values {
    typename A::Values arg;
    Scalar value;
  };
  explicit UnaryOf(const A& arg, Op op = {}) : arg_(arg), op_(op) {}
  [[gnu::always_inline]] Values evaluate() const {
    Values v{arg_.evaluate(), Scalar()};
    v.value = Scalar(op_.value(v.arg.value));
    return v;
  }
  Scalar value() const { return evaluate().value; }
  [[gnu::always_inline]] void propagate(TapeOf<Scalar>& tape, const Scalar& partial,
                                        const Values& v) const {
    arg_.propagate(tape, partial * Scalar(op_.derivative(v.arg.value, v.value)), v.arg);
  }

 private:
  A arg_;
  [[no_unique_address]] Op op_;
};

template <class Op, class L, class R>
class BinaryOf : public ExpressionOfBase {
 public:
  using Scalar = typename L::Scalar;
  static_assert(std::is_same_v<Scalar, typename R::Scalar>,
                "autodiff: an expression mixes VarOf of two number types");
  static constexpr int leaf_count = L::leaf_count + R::leaf_count;
  struct Values {
    typename L::Values left;
    typename R::Values right;
    Scalar value;
  };
  BinaryOf(const L& left, const R& right) : left_(left), right_(right) {}
  [[gnu::always_inline]] Values evaluate() const {
    Values v{left_.evaluate(), right_.evaluate(), Scalar()};
    v.value = Scalar(Op::value(v.left.value, v.right.value));
    return v;
  }
  Scalar value() const { return evaluate().value; }
  [[gnu::always_inline]] void propagate(TapeOf<Scalar>& tape, const Scalar& partial,
                                        const Values& v) const {
    if constexpr (L::leaf_count > 0)
      left_.propagate(tape, partial * Scalar(Op::d_left(v.left.value, v.right.value, v.value)),
                      v.left);
    if constexpr (R::leaf_count > 0)
      right_.propagate(tape, partial * Scalar(Op::d_right(v.left.value, v.right.value, v.value)),
                       v.right);
  }

 private:
  L left_;
  R right_;
};

/// A recorded scalar of TapeOf<S>, as Var is of Tape: value, slot, epoch. Made by the drivers
/// below; a function written generically (`[](auto x) { … }`) receives a span of them.
template <class S>
class VarOf : public ExpressionOfBase {
 public:
  using Scalar = S;
  static constexpr int leaf_count = 1;

  /// A constant 0, not recorded.
  VarOf() = default;
  /// An input: a leaf on the active TapeOf<S>.
  VarOf(const S& value) : value_(value) {
    TapeOf<S>& tape = TapeOf<S>::active();
    index_ = tape.new_leaf();
    epoch_ = tape.epoch();
  }
  template <PlainNumber N>
  VarOf(N value) : VarOf(S(static_cast<double>(value))) {}
  /// The result of an expression: one statement on the active TapeOf<S>.
  template <ExpressionOf E>
  requires(!std::same_as<std::remove_cvref_t<E>, VarOf>)
      [[gnu::always_inline]] VarOf(const E& expression) {
    const typename E::Values values = expression.evaluate();
    value_ = values.value;
    TapeOf<S>& tape = TapeOf<S>::active();
    index_ = tape.record(expression, values);
    epoch_ = tape.epoch();
  }
  template <OperandOf E>
  VarOf& operator+=(const E& e) {
    return *this = VarOf(*this + e);
  }
  template <OperandOf E>
  VarOf& operator-=(const E& e) {
    return *this = VarOf(*this - e);
  }
  template <OperandOf E>
  VarOf& operator*=(const E& e) {
    return *this = VarOf(*this * e);
  }
  template <OperandOf E>
  VarOf& operator/=(const E& e) {
    return *this = VarOf(*this / e);
  }

  S value() const { return value_; }
  Index index() const { return index_; }
  Epoch epoch() const { return epoch_; }
  bool is_recorded() const { return index_ != kNotRecorded; }
  /// ∂output/∂(this) after TapeOf::backward(output).
  const S& grad() const {
    const TapeOf<S>& tape = TapeOf<S>::active();
    tape.check_recorded(index_, epoch_, "grad()");
    return tape.adjoint(index_);
  }

  struct Values {
    S value;
  };
  Values evaluate() const { return {value_}; }
  void propagate(TapeOf<S>& tape, const S& partial, const Values&) const {
    if (index_ != kNotRecorded) tape.push_operation(partial, index_, epoch_);
  }

 private:
  S value_{};
  Index index_ = kNotRecorded;
  Epoch epoch_ = 0;
};

namespace detail {
/// BinaryOf over two operands, a number becoming a ConstantOf. The operands are copied once,
/// into the node (a copy more, of a whole subtree at every level, costs hvp a third of its time).
template <class Op, class A, class B>
[[gnu::always_inline]] inline auto make_binary_of(const A& a, const B& b) {
  if constexpr (ExpressionOf<A> && ExpressionOf<B>) {
    return BinaryOf<Op, A, B>(a, b);
  } else if constexpr (ExpressionOf<A>) {
    using C = ConstantOf<typename A::Scalar>;
    return BinaryOf<Op, A, C>(a, C(static_cast<double>(b)));
  } else {
    using C = ConstantOf<typename B::Scalar>;
    return BinaryOf<Op, C, B>(C(static_cast<double>(a)), b);
  }
}
}  // namespace detail

#define AUTODIFF_BINARY_OF(name, Op)                                               \
  template <OperandOf A, OperandOf B>                                              \
  requires(ExpressionOf<A> || ExpressionOf<B>) auto name(const A& a, const B& b) { \
    return detail::make_binary_of<op::Op>(a, b);                                   \
  }
AUTODIFF_BINARY_OF(operator+, Add)
AUTODIFF_BINARY_OF(operator-, Subtract)
AUTODIFF_BINARY_OF(operator*, Multiply)
AUTODIFF_BINARY_OF(operator/, Divide)
AUTODIFF_BINARY_OF(pow, Power)
AUTODIFF_BINARY_OF(min, Minimum)
AUTODIFF_BINARY_OF(max, Maximum)
#undef AUTODIFF_BINARY_OF

template <ExpressionOf A>
auto operator-(const A& a) {
  return UnaryOf<op::Negate, A>(a);
}
template <ExpressionOf A>
const A& operator+(const A& a) {
  return a;
}

#define AUTODIFF_UNARY_OF(name, Op) \
  template <ExpressionOf A>         \
  auto name(const A& a) {           \
    return UnaryOf<op::Op, A>(a);   \
  }
AUTODIFF_UNARY_OF(square, Square)
AUTODIFF_UNARY_OF(exp, Exp)
AUTODIFF_UNARY_OF(log, Log)
AUTODIFF_UNARY_OF(log1p, Log1p)
AUTODIFF_UNARY_OF(sqrt, Sqrt)
AUTODIFF_UNARY_OF(sin, Sin)
AUTODIFF_UNARY_OF(cos, Cos)
AUTODIFF_UNARY_OF(tan, Tan)
AUTODIFF_UNARY_OF(tanh, Tanh)
AUTODIFF_UNARY_OF(sigmoid, Sigmoid)
AUTODIFF_UNARY_OF(relu, Relu)
AUTODIFF_UNARY_OF(abs, Abs)
AUTODIFF_UNARY_OF(softplus, Softplus)
#undef AUTODIFF_UNARY_OF

template <ExpressionOf A>
auto leaky_relu(const A& a, double slope = 0.01) {
  return UnaryOf<op::LeakyRelu, A>(a, op::LeakyRelu{slope});
}
/// Throws std::invalid_argument unless low ≤ high.
template <ExpressionOf A>
auto clamp(const A& a, double low, double high) {
  if (!(low <= high)) detail::throw_bad_clamp(low, high);
  return UnaryOf<op::Clamp, A>(a, op::Clamp{low, high});
}
/// A user's elementwise op (value, derivative) on a VarOf expression.
template <class Op, ExpressionOf A>
auto elementwise(const A& a, Op op = {}) {
  return UnaryOf<Op, A>(a, op);
}
/// A user's binary op (value, d_left, d_right).
template <class Op, OperandOf A, OperandOf B>
requires(ExpressionOf<A> || ExpressionOf<B>) auto elementwise(const A& a, const B& b) {
  return detail::make_binary_of<Op>(a, b);
}

// Comparisons compare values, down to the plain number; they record nothing.
namespace detail {
template <class T>
double plain_value(const T& x) {
  if constexpr (ExpressionOf<T>)
    return static_cast<double>(primal(x.value()));
  else
    return static_cast<double>(x);
}
}  // namespace detail
template <OperandOf A, OperandOf B>
requires(ExpressionOf<A> || ExpressionOf<B>) bool operator==(const A& a, const B& b) {
  return detail::plain_value(a) == detail::plain_value(b);
}
template <OperandOf A, OperandOf B>
requires(ExpressionOf<A> || ExpressionOf<B>) std::partial_ordering operator<=>(const A& a,
                                                                               const B& b) {
  return detail::plain_value(a) <=> detail::plain_value(b);
}

}  // namespace autodiff
