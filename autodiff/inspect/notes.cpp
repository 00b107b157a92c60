// The notes an inspected tape keeps, the guards, and the anomaly checks.
#include "autodiff/inspect/notes.hpp"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "autodiff/inspect/expression_notes.hpp"
#include "autodiff/tensor/tensor.hpp"

namespace autodiff {
namespace detail {

std::string location_text(const autodiff::SourceLocation& where) {
  if (!where.file_name() || where.line() == 0) return "";
  // Recorded by an assignment (y = …, y += …), which cannot see its caller: no location.
  const std::string_view file = where.file_name();
  for (std::string_view inside : {"autodiff/var.hpp", "autodiff/ops.hpp"})
    if (file.size() >= inside.size() && file.substr(file.size() - inside.size()) == inside)
      return "";
  return fmt::format("{}:{} in {}", where.file_name(), where.line(), where.function_name());
}

std::string short_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{:.6g}", value);
}

void TapeNotes::refresh(const Tape& tape) {
  if (tape.epoch() == epoch_) return;
  epoch_ = tape.epoch();
  slots_.clear();
  nodes_.clear();
}

SlotNote& TapeNotes::slot(const Tape& tape, Index slot) {
  refresh(tape);
  if (slot >= slots_.size()) slots_.resize(std::size_t{slot} + 1);
  return slots_[slot];
}

const SlotNote* TapeNotes::find_slot(const Tape& tape, Index slot) const {
  if (tape.epoch() != epoch_ || slot >= slots_.size() || !slots_[slot].noted) return nullptr;
  return &slots_[slot];
}

NodeNote& TapeNotes::node(const Tape& tape, std::uint32_t id) {
  refresh(tape);
  if (id >= nodes_.size()) nodes_.resize(std::size_t{id} + 1);
  return nodes_[id];
}

const NodeNote* TapeNotes::find_node(const Tape& tape, std::uint32_t id) const {
  if (tape.epoch() != epoch_ || id >= nodes_.size() || !nodes_[id].noted) return nullptr;
  return &nodes_[id];
}

std::string TapeNotes::slot_name(const Tape& tape, Index slot) const {
  const SlotNote* note = find_slot(tape, slot);
  if (note && !note->name.empty()) return note->name;
  return fmt::format("v{}", slot);
}

std::string TapeNotes::slot_text(const Tape& tape, Index slot) const {
  const SlotNote* note = find_slot(tape, slot);
  if (note && !note->name.empty()) return note->name;
  if (note && note->is_statement) return expand(tape, note->text);
  return fmt::format("v{}", slot);
}

// Markers: \x01 slot \x02, never in a number or a name written by describe().
std::string TapeNotes::slot_marker(Index slot) { return fmt::format("\x01{}\x02", slot); }

std::string TapeNotes::expand(const Tape& tape, const std::string& text) const {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\x01') {
      out += text[i];
      continue;
    }
    const std::size_t end = text.find('\x02', i);
    if (end == std::string::npos) break;
    out += slot_name(tape, static_cast<Index>(std::stoul(text.substr(i + 1, end - i - 1))));
    i = end;
  }
  return out;
}

std::string TapeNotes::current_label() const {
  std::string joined;
  for (const std::string& label : labels) {
    if (!joined.empty()) joined += " › ";
    joined += label;
  }
  return joined;
}

const std::string* TapeNotes::storage_name(const void* data) const {
  for (const auto& [pointer, name] : storage_names)
    if (pointer == data) return &name;
  return nullptr;
}

void note_leaf(Tape& tape, Index slot, double value, autodiff::SourceLocation where) {
  SlotNote& note = tape.notes()->slot(tape, slot);
  note = SlotNote{};  // nothing left from a statement that was to take this slot and failed
  note.noted = true;
  note.value = value;
  note.where = where;
  note.label = tape.notes()->current_label();
}

namespace {

std::string where_text(const autodiff::SourceLocation& where, const std::string& label,
                       bool compound = false) {
  std::string text = location_text(where);
  if (compound && !text.empty()) text += " (by +=, -=, *= or /= to the Var recorded there)";
  if (!label.empty()) text += (text.empty() ? "label " : ", label ") + label;
  return text.empty()
             ? "no source location (a compound assignment to a Var not noted) and no label "
               "(autodiff::Label names a scope)"
             : text;
}

// ---- Tensors: the first element that is not finite, as a multi-index ----

template <class T>
std::int64_t first_non_finite(const T* values, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return i;
  return -1;
}

std::int64_t first_non_finite(const void* values, DType dtype, std::int64_t count) {
  if (!values) return -1;
  return dtype == DType::Float32 ? first_non_finite(static_cast<const float*>(values), count)
                                 : first_non_finite(static_cast<const double*>(values), count);
}

double element(const void* values, DType dtype, std::int64_t i) {
  return dtype == DType::Float32 ? double(static_cast<const float*>(values)[i])
                                 : static_cast<const double*>(values)[i];
}

std::string multi_index(const Shape& shape, std::int64_t flat) {
  std::int64_t index[Shape::kMaxRank] = {};
  for (int axis = shape.rank() - 1; axis >= 0; --axis) {
    index[axis] = shape[axis] > 0 ? flat % shape[axis] : 0;
    flat = shape[axis] > 0 ? flat / shape[axis] : 0;
  }
  std::string text = "[";
  for (int axis = 0; axis < shape.rank(); ++axis)
    text += fmt::format("{}{}", axis ? ", " : "", index[axis]);
  return text + "]";
}

const char* dtype_name(DType dtype) { return dtype == DType::Float32 ? "float32" : "float64"; }

std::string tensor_name(const Tape& tape, std::uint32_t id) {
  const TensorNode& n = *static_cast<const TensorNode*>(tape.coarse_node(id).payload);
  const TapeNotes* notes = tape.notes();
  if (const std::string* name = notes ? notes->storage_name(n.value) : nullptr) return *name;
  return fmt::format("{} #{}", n.name, id);
}

// "#3 (0.weight) float32 (784, 128), finite" or "… holds nan at [3, 5]".
std::string describe_tensor(const Tape& tape, std::uint32_t id, const void* values) {
  const TensorNode& n = *static_cast<const TensorNode*>(tape.coarse_node(id).payload);
  std::string text =
      fmt::format("{}: {} {}", tensor_name(tape, id), dtype_name(n.dtype), n.shape.str());
  const std::int64_t bad = first_non_finite(values, n.dtype, n.shape.size());
  if (bad < 0) return text + ", all finite";
  return text + fmt::format(", already {} at {}", short_number(element(values, n.dtype, bad)),
                            multi_index(n.shape, bad));
}

std::string node_label(const Tape& tape, std::uint32_t id) {
  const NodeNote* note = tape.notes() ? tape.notes()->find_node(tape, id) : nullptr;
  return note && !note->label.empty() ? "label " + note->label
                                      : "no label (autodiff::Label names a scope)";
}

}  // namespace

void throw_forward_anomaly(const Tape& tape, const ForwardAnomaly& anomaly,
                           const std::string& statement, double value,
                           const autodiff::SourceLocation& where, bool compound) {
  const TapeNotes& notes = *tape.notes();
  const std::string at = where_text(where, notes.current_label(), compound);
  throw AnomalyError(fmt::format("anomaly: {} gave {} in the forward pass\n"
                                 "  op:        {}\n"
                                 "  inputs:    {}\n"
                                 "  statement: {} = {}\n"
                                 "  recorded:  {}",
                                 anomaly.op, short_number(value), notes.expand(tape, anomaly.text),
                                 notes.expand(tape, anomaly.inputs), notes.expand(tape, statement),
                                 short_number(value), at),
                     anomaly.op, false, at);
}

void note_tensor_op(Tape& tape, std::uint32_t id) {
  TapeNotes& notes = *tape.notes();
  NodeNote& note = notes.node(tape, id);
  note.noted = true;
  note.label = notes.current_label();
  if (!notes.checks_anomalies()) return;
  const TensorNode& n = *static_cast<const TensorNode*>(tape.coarse_node(id).payload);
  if (n.input_count == 0) return;  // data and parameters: no op made them
  const std::int64_t bad = first_non_finite(n.value, n.dtype, n.shape.size());
  if (bad < 0) return;
  std::string inputs;
  for (int i = 0; i < n.input_count; ++i) {
    const auto& in = *static_cast<const TensorNode*>(tape.coarse_node(n.input[i]).payload);
    inputs += fmt::format("\n    {}", describe_tensor(tape, n.input[i], in.value));
  }
  const std::string at = node_label(tape, id);
  throw AnomalyError(
      fmt::format("anomaly: {} gave {} in the forward pass, first at index {} of its output\n"
                  "  op:       {} (tensor op #{}), output {} {}\n"
                  "  inputs:{}\n"
                  "  recorded: {}",
                  n.name, short_number(element(n.value, n.dtype, bad)), multi_index(n.shape, bad),
                  n.name, id, dtype_name(n.dtype), n.shape.str(), inputs, at),
      n.name, false, at);
}

namespace {

// The reverse sweep over statements [first, end), as Tape::sweep_statements, checking each
// contribution partial · adjoint before it is added.
void checked_statements(Tape& tape, std::uint32_t end, std::uint32_t first) {
  for (std::uint32_t s = end; s-- > first;) {
    const Index slot = tape.statement_slot(s);
    const double adjoint = tape.adjoint(slot);
    if (adjoint == 0.0) continue;  // as the sweep: a node that received no gradient sends none
    const auto partials = tape.statement_partials(s);
    const auto operands = tape.statement_operands(s);
    for (std::size_t k = 0; k < partials.size(); ++k) {
      const double contribution = partials[k] * adjoint;
      if (!std::isfinite(contribution)) {
        const TapeNotes& notes = *tape.notes();
        const SlotNote* note = notes.find_slot(tape, slot);
        const SlotNote* operand = notes.find_slot(tape, operands[k]);
        const std::string op = note ? note->op : "statement";
        const std::string at =
            note ? where_text(note->where, note->label, note->compound) : "(not noted)";
        throw AnomalyError(
            fmt::format("anomaly: {} sent {} to {} in the backward pass\n"
                        "  op:               {} = {}{}\n"
                        "  input:            {}{}\n"
                        "  local derivative: ∂{}/∂{} = {}\n"
                        "  incoming adjoint: {}\n"
                        "  recorded:         {}",
                        op, short_number(contribution), notes.slot_name(tape, operands[k]),
                        notes.slot_name(tape, slot), notes.slot_text(tape, slot),
                        note && note->value_known ? " = " + short_number(note->value) : "",
                        notes.slot_name(tape, operands[k]),
                        operand && operand->value_known ? " = " + short_number(operand->value) : "",
                        notes.slot_name(tape, slot), notes.slot_name(tape, operands[k]),
                        short_number(partials[k]), short_number(adjoint), at),
            op, true, at);
      }
      tape.adjoint(operands[k]) += contribution;
    }
  }
}

// After a tensor op's backward: the first of its inputs' gradients that is no longer finite.
void check_node_contributions(Tape& tape, std::uint32_t id) {
  const TensorNode& n = *static_cast<const TensorNode*>(tape.coarse_node(id).payload);
  for (int i = 0; i < n.input_count; ++i) {
    const CoarseNode& input = tape.coarse_node(n.input[i]);
    const auto& in = *static_cast<const TensorNode*>(input.payload);
    if (!in.requires_grad || !input.grad) continue;
    const std::int64_t bad = first_non_finite(input.grad, in.dtype, in.shape.size());
    if (bad < 0) continue;
    std::string inputs;
    for (int j = 0; j < n.input_count; ++j) {
      const auto& other = *static_cast<const TensorNode*>(tape.coarse_node(n.input[j]).payload);
      inputs += fmt::format("\n    {}", describe_tensor(tape, n.input[j], other.value));
    }
    const CoarseNode& self = tape.coarse_node(id);
    const std::int64_t bad_in =
        self.grad ? first_non_finite(self.grad, n.dtype, n.shape.size()) : -1;
    const std::string at = node_label(tape, id);
    throw AnomalyError(
        fmt::format("anomaly: {} sent {} into the gradient of its input {} ({}) at index {} in "
                    "the backward pass\n"
                    "  op:       {} (tensor op #{}), output {} {}; its incoming gradient is {}\n"
                    "  inputs:{}\n"
                    "  recorded: {}",
                    n.name, short_number(element(input.grad, in.dtype, bad)), i,
                    tensor_name(tape, n.input[i]), multi_index(in.shape, bad), n.name, id,
                    dtype_name(n.dtype), n.shape.str(),
                    bad_in < 0 ? std::string("finite")
                               : fmt::format("already {} at {}",
                                             short_number(element(self.grad, n.dtype, bad_in)),
                                             multi_index(n.shape, bad_in)),
                    inputs, at),
        n.name, true, at);
  }
}

}  // namespace

bool inspected_sweep(Tape& tape, std::uint32_t statement_end) {
  if (!tape.notes()->checks_anomalies()) return false;
  // The order of Tape::sweep_interleaved: coarse nodes and statements in reverse recording order.
  std::uint32_t end = statement_end;
  for (std::size_t id = tape.coarse_node_count(); id-- > 0;) {
    const CoarseNode& n = tape.coarse_node(static_cast<std::uint32_t>(id));
    if (n.statement_position < end) {
      checked_statements(tape, end, n.statement_position);
      end = n.statement_position;
    }
    if (!n.backward) continue;
    const bool reached = n.grad != nullptr ||
                         (n.scalar_output != kNotRecorded && tape.adjoint(n.scalar_output) != 0.0);
    if (!reached) continue;
    n.backward(tape, static_cast<std::uint32_t>(id));
    check_node_contributions(tape, static_cast<std::uint32_t>(id));
  }
  if (end > 0) checked_statements(tape, end, 0);
  return true;
}

}  // namespace detail

RecordDetails::RecordDetails() : tape_(Tape::active()), notes_(tape_.notes()) {
  if (!notes_) {
    owned_ = std::make_unique<detail::TapeNotes>(tape_);
    notes_ = owned_.get();
    tape_.set_notes(notes_);
  }
}

RecordDetails::~RecordDetails() {
  if (owned_) tape_.set_notes(nullptr);
}

DetectAnomaly::DetectAnomaly() : previous_(notes_->checks_anomalies()) {
  notes_->set_check_anomalies(true);
}

DetectAnomaly::~DetectAnomaly() { notes_->set_check_anomalies(previous_); }

Label::Label(std::string label) : notes_(Tape::active().notes()) {
  if (notes_) notes_->labels.push_back(std::move(label));
}

Label::~Label() {
  if (notes_ && !notes_->labels.empty()) notes_->labels.pop_back();
}

namespace {
detail::TapeNotes& notes_for(const char* what) {
  detail::TapeNotes* notes = Tape::active().notes();
  if (!notes)
    throw TapeError(
        fmt::format("autodiff: {}: no details are being recorded on the active tape; create an "
                    "autodiff::RecordDetails (or DetectAnomaly) guard before recording",
                    what));
  return *notes;
}
}  // namespace

void name(const Var& v, std::string name) {
  Tape& tape = Tape::active();
  detail::TapeNotes& notes = notes_for("name()");
  tape.check_recorded(v.index(), v.epoch(), "name()");
  detail::SlotNote& note = notes.slot(tape, v.index());
  if (!note.noted) {  // recorded before the guard: its value is in the handle
    note.noted = true;
    note.value = v.value();
  }
  note.name = std::move(name);
}

void name_storage(const void* data, std::string name) {
  detail::TapeNotes& notes = notes_for("name_storage()");
  for (auto& [pointer, existing] : notes.storage_names)
    if (pointer == data) {
      existing = std::move(name);
      return;
    }
  notes.storage_names.emplace_back(data, std::move(name));
}

}  // namespace autodiff
