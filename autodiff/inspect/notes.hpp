#pragma once
// Seeing inside a recording: what the tape keeps while it is inspected, and the guards that turn
// it on.
//
//   autodiff::RecordDetails details;     // keep op names, values, labels, source locations
//   autodiff::DetectAnomaly anomaly;     // the same, and stop at the first NaN or infinity
//   autodiff::Label label("layer 1");    // a name for what is recorded in this scope
//   autodiff::name(h1, "h1");            // a name for one Var (graph pictures, chain rules)
//
// The tape itself stores no values, names or op kinds for scalar statements (that is why it is
// small and fast). While a guard is alive, each recorded statement and tensor op is noted here
// as well; when no guard is alive, nothing is noted and nothing is checked: the tape's only cost
// is one test of a null pointer per recorded statement or op and per backward().

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#include "autodiff/source_location.hpp"

#include "autodiff/tape.hpp"

namespace autodiff {

class Var;

/// The first NaN or infinity found in anomaly mode: which op made it, from what, and where it was
/// recorded. what() says all of it; the fields are for programs.
class AnomalyError : public std::runtime_error {
 public:
  AnomalyError(const std::string& message, std::string op, bool in_backward, std::string where)
      : std::runtime_error(message),
        op(std::move(op)),
        in_backward(in_backward),
        where(std::move(where)) {}
  std::string op;            // "log", "matmul", "sigmoid(w·x + b)"
  bool in_backward = false;  // found in a backward contribution, not a forward value
  std::string where;         // "file.cpp:12 in f()" and/or the labels, "0 › matmul"
};

namespace detail {

/// Everything noted about one scalar slot (a Var).
struct SlotNote {
  bool noted = false;
  bool is_statement = false;  // the result of an expression; else an input (a leaf)
  // False when the value could not be known: computed from a constant Var (detach,
  // Var::constant), whose value the notes never see, or from such a result.
  bool value_known = true;
  double value = 0;
  std::string name;  // given by autodiff::name(), else empty
  // The expression, for statements, its Vars as slot markers (expand() names them when shown,
  // so that a name given after recording is used): "sigmoid(w1*x1 + w2*x2 + b1)".
  std::string text;
  const char* op = "input";
  // Where it was recorded. A compound assignment (f += …) is recorded inside the library: its
  // statement takes the place of the Var assigned to (compound is then true).
  autodiff::SourceLocation where;
  bool compound = false;
  std::string label;  // the labels active when it was recorded, "layer 1 › hidden"
};

/// Everything noted about one coarse node (a tensor op).
struct NodeNote {
  bool noted = false;
  std::string label;
};

class TapeNotes {
 public:
  explicit TapeNotes(const Tape& tape) : epoch_(tape.epoch()) {}

  bool checks_anomalies() const { return check_anomalies_; }
  void set_check_anomalies(bool on) { check_anomalies_ = on; }

  /// The note of `slot`, made fresh if the tape was cleared since the last one.
  SlotNote& slot(const Tape& tape, Index slot);
  /// The note of `slot` if there is one for the tape's current recording, else null.
  const SlotNote* find_slot(const Tape& tape, Index slot) const;
  NodeNote& node(const Tape& tape, std::uint32_t id);
  const NodeNote* find_node(const Tape& tape, std::uint32_t id) const;

  /// "name" if named, else "v<slot>" (a leaf) or the expression; used in every report.
  std::string slot_text(const Tape& tape, Index slot) const;
  /// A short name: the name, else "v<slot>".
  std::string slot_name(const Tape& tape, Index slot) const;

  /// A statement's text with its Vars named (slot_name) as they are now.
  std::string expand(const Tape& tape, const std::string& text) const;
  /// The marker of a Var in a statement's text.
  static std::string slot_marker(Index slot);

  /// Labels (autodiff::Label) active now, joined with " › ".
  std::string current_label() const;
  std::vector<std::string> labels;

  /// Names of tensor storage that outlives the tape (nn parameters): data pointer → name.
  std::vector<std::pair<const void*, std::string>> storage_names;
  const std::string* storage_name(const void* data) const;

 private:
  void refresh(const Tape& tape);
  Epoch epoch_;
  bool check_anomalies_ = false;
  std::vector<SlotNote> slots_;
  std::vector<NodeNote> nodes_;
};

/// Notes a tensor op just recorded as coarse node `id` (and checks its values in anomaly mode).
/// Called by the tensor layer only while tape.notes() is set.
void note_tensor_op(Tape& tape, std::uint32_t id);

/// "file:line in function", or empty where there is none to show (a compound assignment,
/// y += …, is recorded inside ops.hpp and cannot see its caller).
std::string location_text(const autodiff::SourceLocation& where);

/// Formats a value for reports and pictures: 6 significant digits, or "nan", "inf".
std::string short_number(double value);

}  // namespace detail

/// Keeps, while alive, the details of everything recorded on the active tape: each Var's value,
/// each statement's expression and source location, the labels in force, and names given with
/// autodiff::name(). to_dot, explain_backward and chain_rule show them. Guards nest; the outermost
/// owns the notes.
class RecordDetails {
 public:
  RecordDetails();
  ~RecordDetails();
  RecordDetails(const RecordDetails&) = delete;
  RecordDetails& operator=(const RecordDetails&) = delete;

 protected:
  Tape& tape_;
  std::unique_ptr<detail::TapeNotes> owned_;
  detail::TapeNotes* notes_;
};

/// Anomaly mode for the guard's lifetime (as PyTorch's detect_anomaly): the first op whose forward
/// value or backward contribution is NaN or infinite throws an AnomalyError naming the op, its
/// inputs' values (or, for tensors, shapes and the first offending index), and where it was
/// recorded (source location for scalar statements, labels for both). Also records details, as
/// RecordDetails does. Off (no guard), the tape checks nothing and costs nothing extra.
class DetectAnomaly : public RecordDetails {
 public:
  DetectAnomaly();
  ~DetectAnomaly();

 private:
  bool previous_;
};

/// A name for what is recorded in this scope, shown in anomaly reports and graph pictures; labels
/// nest ("layer 1 › attention"). Does nothing unless details are being recorded.
class Label {
 public:
  explicit Label(std::string label);
  ~Label();
  Label(const Label&) = delete;
  Label& operator=(const Label&) = delete;

 private:
  detail::TapeNotes* notes_;
};

/// Names a recorded Var (for pictures, chain rules and reports). Throws a TapeError unless details
/// are being recorded on its tape (a RecordDetails or DetectAnomaly guard is alive).
void name(const Var& v, std::string name);
/// Names tensor storage that outlives the tape (a parameter's values), for pictures and reports:
/// a tensor whose data starts at `data` is shown by this name. Needs details, as name() does.
void name_storage(const void* data, std::string name);

}  // namespace autodiff
