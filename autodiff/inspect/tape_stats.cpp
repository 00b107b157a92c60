// Tape statistics: the tape's own arrays, and each coarse node's share of the arena.
#include "autodiff/inspect/tape_stats.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "autodiff/inspect/notes.hpp"
#include "autodiff/tensor/tensor.hpp"

namespace autodiff {
namespace {

// The sizes Tape::bytes_used() counts per slot, statement and operation.
constexpr std::size_t kSlotBytes = sizeof(double);
constexpr std::size_t kStatementBytes = sizeof(Index) + sizeof(std::uint32_t);
constexpr std::size_t kOperationBytes = sizeof(double) + sizeof(Index);

std::string with_commas(std::size_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

TapeStats tape_stats(const Tape& tape) {
  TapeStats stats;
  const std::size_t statements = tape.statement_count(), slots = tape.node_count();
  std::size_t to_var_slots = 0;
  for (std::uint32_t id = 0; id < tape.coarse_node_count(); ++id)
    if (tape.coarse_node(id).scalar_output != kNotRecorded) ++to_var_slots;
  const std::size_t inputs = slots - statements - to_var_slots;
  if (inputs > 0) stats.rows.push_back({"scalar inputs", inputs, 0, 0, inputs * kSlotBytes});

  // Statements, by their outermost op when details were recorded.
  std::map<std::string, TapeStats::Row> by_op;
  const detail::TapeNotes* notes = tape.notes();
  for (std::uint32_t s = 0; s < statements; ++s) {
    const detail::SlotNote* note = notes ? notes->find_slot(tape, tape.statement_slot(s)) : nullptr;
    const std::string kind =
        note ? fmt::format("scalar {}", note->op) : std::string("scalar statements");
    TapeStats::Row& row = by_op[kind];
    row.kind = kind;
    const std::size_t operations = tape.statement_operands(s).size();
    row.nodes += 1;
    row.operations += operations;
    row.bytes += kSlotBytes + kStatementBytes + operations * kOperationBytes;
  }
  for (auto& [_, row] : by_op) stats.rows.push_back(row);

  // Tensor ops by name: the node, its values (unless a view or storage of its own outside the
  // tape, as parameters) and its gradient buffer.
  std::map<std::string, TapeStats::Row> by_name;
  for (std::uint32_t id = 0; id < tape.coarse_node_count(); ++id) {
    const CoarseNode& c = tape.coarse_node(id);
    const auto& t = *static_cast<const detail::TensorNode*>(c.payload);
    const std::string kind = fmt::format("tensor {}", t.name);
    TapeStats::Row& row = by_name[kind];
    row.kind = kind;
    row.nodes += 1;
    row.elements += static_cast<std::size_t>(t.shape.size());
    row.bytes += sizeof(CoarseNode) + (c.scalar_output != kNotRecorded ? kSlotBytes : 0);
    const std::size_t value_bytes = c.grad_bytes;  // as many bytes as the gradient
    const bool external = std::string_view(t.name) == "parameter";
    bool view = false;
    if (t.input_count > 0) {
      const auto& in =
          *static_cast<const detail::TensorNode*>(tape.coarse_node(t.input[0]).payload);
      const auto* begin = static_cast<const std::byte*>(in.value);
      const auto* value = static_cast<const std::byte*>(t.value);
      view = value >= begin && value < begin + tape.coarse_node(t.input[0]).grad_bytes;
    }
    if (!external && !view) row.bytes += value_bytes;
    if (c.grad && !external) row.bytes += value_bytes;
  }
  std::vector<TapeStats::Row> tensor_rows;
  for (auto& [_, row] : by_name) tensor_rows.push_back(row);
  // Largest first, then by name (std::sort: stable_sort's buffer trips the tests' counting
  // operator new under ASan).
  std::sort(tensor_rows.begin(), tensor_rows.end(), [](const auto& a, const auto& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.kind < b.kind;
  });
  stats.rows.insert(stats.rows.end(), tensor_rows.begin(), tensor_rows.end());

  stats.total_bytes = tape.bytes_used();
  stats.reserved_bytes = tape.bytes_reserved();
  std::size_t counted = 0;
  for (const auto& row : stats.rows) counted += row.bytes;
  if (stats.total_bytes > counted)
    stats.rows.push_back({"other (op records, scratch)", 0, 0, 0, stats.total_bytes - counted});
  return stats;
}

std::string TapeStats::table() const {
  std::size_t width = 5;
  for (const Row& row : rows) width = std::max(width, row.kind.size());
  auto number = [](std::size_t n) { return n ? with_commas(n) : std::string(); };
  std::string text = fmt::format("{:<{}}  {:>10}  {:>12}  {:>12}  {:>14}\n", "kind", width, "nodes",
                                 "operations", "elements", "bytes");
  Row total{"total"};
  for (const Row& row : rows) {
    text +=
        fmt::format("{:<{}}  {:>10}  {:>12}  {:>12}  {:>14}\n", row.kind, width, number(row.nodes),
                    number(row.operations), number(row.elements), with_commas(row.bytes));
    total.nodes += row.nodes;
    total.operations += row.operations;
    total.elements += row.elements;
  }
  text += fmt::format("{:<{}}  {:>10}  {:>12}  {:>12}  {:>14}\n", "total", width,
                      with_commas(total.nodes), with_commas(total.operations),
                      with_commas(total.elements), with_commas(total_bytes));
  text += fmt::format("(the tape keeps {} bytes for the next recording)\n",
                      with_commas(reserved_bytes));
  return text;
}

}  // namespace autodiff
