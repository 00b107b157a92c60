#pragma once
// What an inspected tape notes about a scalar statement: its expression as text, the name of its
// outermost op, and (in anomaly mode) the first op inside it whose value is NaN or infinite.
// Included by ops.hpp; runs only while tape.notes() is set (notes.hpp).

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include "autodiff/source_location.hpp"

#include "autodiff/inspect/notes.hpp"
#include "autodiff/ops.hpp"

namespace autodiff::detail {

/// The name of a scalar op in reports: its own `name` member if it has one (a user's op).
template <class Op>
const char* scalar_op_name() {
  if constexpr (requires { Op::name; })
    return Op::name;
  else if constexpr (std::is_same_v<Op, op::Add>)
    return "add";
  else if constexpr (std::is_same_v<Op, op::Subtract>)
    return "subtract";
  else if constexpr (std::is_same_v<Op, op::Multiply>)
    return "multiply";
  else if constexpr (std::is_same_v<Op, op::Divide>)
    return "divide";
  else if constexpr (std::is_same_v<Op, op::Power>)
    return "pow";
  else if constexpr (std::is_same_v<Op, op::Minimum>)
    return "min";
  else if constexpr (std::is_same_v<Op, op::Maximum>)
    return "max";
  else if constexpr (std::is_same_v<Op, op::Negate>)
    return "negate";
  else if constexpr (std::is_same_v<Op, op::Square>)
    return "square";
  else if constexpr (std::is_same_v<Op, op::Exp>)
    return "exp";
  else if constexpr (std::is_same_v<Op, op::Log>)
    return "log";
  else if constexpr (std::is_same_v<Op, op::Log1p>)
    return "log1p";
  else if constexpr (std::is_same_v<Op, op::Sqrt>)
    return "sqrt";
  else if constexpr (std::is_same_v<Op, op::Sin>)
    return "sin";
  else if constexpr (std::is_same_v<Op, op::Cos>)
    return "cos";
  else if constexpr (std::is_same_v<Op, op::Tan>)
    return "tan";
  else if constexpr (std::is_same_v<Op, op::Tanh>)
    return "tanh";
  else if constexpr (std::is_same_v<Op, op::Sigmoid>)
    return "sigmoid";
  else if constexpr (std::is_same_v<Op, op::Relu>)
    return "relu";
  else if constexpr (std::is_same_v<Op, op::Abs>)
    return "abs";
  else if constexpr (std::is_same_v<Op, op::Softplus>)
    return "softplus";
  else if constexpr (std::is_same_v<Op, op::LeakyRelu>)
    return "leaky_relu";
  else if constexpr (std::is_same_v<Op, op::Clamp>)
    return "clamp";
  else
    return "elementwise";
}

/// The infix symbol and precedence of + − * /, or null for ops written as calls.
template <class Op>
constexpr const char* infix_symbol() {
  if constexpr (std::is_same_v<Op, op::Add>)
    return " + ";
  else if constexpr (std::is_same_v<Op, op::Subtract>)
    return " - ";
  else if constexpr (std::is_same_v<Op, op::Multiply>)
    return "*";
  else if constexpr (std::is_same_v<Op, op::Divide>)
    return "/";
  else
    return nullptr;
}
template <class Op>
constexpr int infix_precedence() {
  return std::is_same_v<Op, op::Add> || std::is_same_v<Op, op::Subtract> ? 1 : 2;
}

struct ExpressionContext {
  const Tape& tape;
  const TapeNotes& notes;
};

// ---- The expression as text: leaves by name (or v<slot>), numbers as they are ----

inline void describe(const Var& v, const ExpressionContext&, std::string& out, int) {
  out += v.is_recorded() ? TapeNotes::slot_marker(v.index()) : "(constant)";
}
inline void describe(const Constant& k, const ExpressionContext&, std::string& out, int parent) {
  const bool negative = std::signbit(k.value()) && parent > 0;  // w*(-2), not w*-2
  if (negative) out += '(';
  out += short_number(k.value());
  if (negative) out += ')';
}
template <class Op, class A>
void describe(const Unary<Op, A>& u, const ExpressionContext& c, std::string& out, int);
template <class Op, class L, class R>
void describe(const Binary<Op, L, R>& b, const ExpressionContext& c, std::string& out, int parent);

template <class Op, class A>
void describe(const Unary<Op, A>& u, const ExpressionContext& c, std::string& out, int) {
  if constexpr (std::is_same_v<Op, op::Negate>) {
    out += "-";
    describe(u.arg(), c, out, 3);
  } else {
    out += scalar_op_name<Op>();
    out += "(";
    describe(u.arg(), c, out, 0);
    out += ")";
  }
}
template <class Op, class L, class R>
void describe(const Binary<Op, L, R>& b, const ExpressionContext& c, std::string& out, int parent) {
  if constexpr (infix_symbol<Op>() != nullptr) {
    constexpr int precedence = infix_precedence<Op>();
    const bool parenthesised = precedence < parent;
    if (parenthesised) out += "(";
    describe(b.left(), c, out, precedence);
    out += infix_symbol<Op>();
    // a - (b - c), a / (b * c): the right side binds tighter.
    describe(b.right(), c, out, precedence + 1);
    if (parenthesised) out += ")";
  } else {
    out += scalar_op_name<Op>();
    out += "(";
    describe(b.left(), c, out, 0);
    out += ", ";
    describe(b.right(), c, out, 0);
    out += ")";
  }
}

template <class E>
std::string describe(const E& e, const ExpressionContext& c) {
  std::string out;
  describe(e, c, out, 0);
  return out;
}

template <class Op, class A>
const char* outer_op_name(const Unary<Op, A>&) {
  return scalar_op_name<Op>();
}
template <class Op, class L, class R>
const char* outer_op_name(const Binary<Op, L, R>&) {
  return scalar_op_name<Op>();
}

// ---- The innermost op of an expression whose value is not finite though its inputs are ----

struct ForwardAnomaly {
  const char* op = nullptr;
  std::string text;    // the op applied to its inputs, "log(x)"
  std::string inputs;  // "x = -1"
};

inline bool find_forward_anomaly(const Var&, const ExpressionContext&, ForwardAnomaly&) {
  return false;
}
inline bool find_forward_anomaly(const Constant&, const ExpressionContext&, ForwardAnomaly&) {
  return false;
}
template <class Op, class A>
bool find_forward_anomaly(const Unary<Op, A>& u, const ExpressionContext& c, ForwardAnomaly& out);
template <class Op, class L, class R>
bool find_forward_anomaly(const Binary<Op, L, R>& b, const ExpressionContext& c,
                          ForwardAnomaly& out);

template <class E>
std::string input_text(const E& e, const ExpressionContext& c) {
  return describe(e, c) + " = " + short_number(e.value());
}

template <class Op, class A>
bool find_forward_anomaly(const Unary<Op, A>& u, const ExpressionContext& c, ForwardAnomaly& out) {
  if (find_forward_anomaly(u.arg(), c, out)) return true;
  if (std::isfinite(u.value())) return false;
  out.op = scalar_op_name<Op>();
  out.text = describe(u, c);
  out.inputs = input_text(u.arg(), c);
  return true;
}
template <class Op, class L, class R>
bool find_forward_anomaly(const Binary<Op, L, R>& b, const ExpressionContext& c,
                          ForwardAnomaly& out) {
  if (find_forward_anomaly(b.left(), c, out) || find_forward_anomaly(b.right(), c, out))
    return true;
  if (std::isfinite(b.value())) return false;
  out.op = scalar_op_name<Op>();
  out.text = describe(b, c);
  out.inputs = input_text(b.left(), c) + ", " + input_text(b.right(), c);
  return true;
}

// (Declared before any is defined: a Binary taken for a Var would be converted, and recorded.)
inline bool has_recorded_leaf(const Var& v) { return v.is_recorded(); }
inline bool has_recorded_leaf(const Constant&) { return false; }
template <class Op, class A>
bool has_recorded_leaf(const Unary<Op, A>& u);
template <class Op, class L, class R>
bool has_recorded_leaf(const Binary<Op, L, R>& b);
template <class Op, class A>
bool has_recorded_leaf(const Unary<Op, A>& u) {
  return has_recorded_leaf(u.arg());
}
template <class Op, class L, class R>
bool has_recorded_leaf(const Binary<Op, L, R>& b) {
  return has_recorded_leaf(b.left()) || has_recorded_leaf(b.right());
}

// The slot of the leftmost Var leaf: in f += e, recorded as f = f + e, the Var assigned to.
inline Index leftmost_slot(const Var& v) { return v.index(); }
inline Index leftmost_slot(const Constant&) { return kNotRecorded; }
template <class Op, class A>
Index leftmost_slot(const Unary<Op, A>& u);
template <class Op, class L, class R>
Index leftmost_slot(const Binary<Op, L, R>& b);
template <class Op, class A>
Index leftmost_slot(const Unary<Op, A>& u) {
  return leftmost_slot(u.arg());
}
template <class Op, class L, class R>
Index leftmost_slot(const Binary<Op, L, R>& b) {
  return leftmost_slot(b.left());
}

/// Throws the AnomalyError of a statement whose value is not finite (notes.cpp).
[[noreturn]] void throw_forward_anomaly(const Tape& tape, const ForwardAnomaly& anomaly,
                                        const std::string& statement, double value,
                                        const autodiff::SourceLocation& where, bool compound);

template <class E>
[[gnu::cold, gnu::noinline]] void note_statement(Tape& tape, const E& expression, Index slot,
                                                 autodiff::SourceLocation where) {
  // Called before the statement is recorded, with the slot it will take; there is none when no
  // leaf is recorded (numbers and constant Vars only).
  if (!has_recorded_leaf(expression)) return;
  TapeNotes& notes = *tape.notes();
  const ExpressionContext context{tape, notes};
  // The values, from the notes of the leaves (the hot path passed their slots only).
  bool known = true;
  const E computed = rebuilt(expression, [&](const Var& v) {
    const SlotNote* leaf = v.is_recorded() ? notes.find_slot(tape, v.index()) : nullptr;
    if (!leaf || !leaf->value_known) {
      known = false;
      return Var::recorded(std::numeric_limits<double>::quiet_NaN(), v.index(), v.epoch());
    }
    return Var::recorded(leaf->value, v.index(), v.epoch());
  });
  // Recorded inside the library, by a compound assignment (f += e is f = f + e, in ops.hpp): where
  // the Var assigned to was recorded stands for it.
  autodiff::SourceLocation at = where;
  bool compound = false;
  if (location_text(where).empty()) {
    const Index target = leftmost_slot(computed);
    const SlotNote* assigned = target != kNotRecorded ? notes.find_slot(tape, target) : nullptr;
    if (assigned && !location_text(assigned->where).empty()) {
      at = assigned->where;
      compound = true;
    }
  }
  std::string text = describe(computed, context);
  if (known && notes.checks_anomalies()) {  // every op inside, not only the outermost: 1/exp(1000)
    ForwardAnomaly anomaly;
    if (find_forward_anomaly(computed, context, anomaly))
      throw_forward_anomaly(tape, anomaly, text, computed.value(), at, compound);
  }
  SlotNote& note = notes.slot(tape, slot);
  note = SlotNote{};
  note.noted = true;
  note.is_statement = true;
  note.value_known = known;
  note.value = computed.value();
  note.text = std::move(text);
  note.op = outer_op_name(computed);
  note.where = at;
  note.compound = compound;
  note.label = notes.current_label();
}

}  // namespace autodiff::detail
