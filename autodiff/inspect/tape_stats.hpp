#pragma once
// What a recording costs: nodes, operations and bytes on the tape by kind (scalar inputs, scalar
// statements — by op when details were recorded — and tensor ops by name), as a table.
//
//   fmt::print("{}", autodiff::tape_stats().table());
//
//   kind                    nodes    operations      elements         bytes
//   scalar statements          14            28                        560
//   tensor matmul               2                       4,416       35,584
//   …
//   total                      31            28         9,062      101,376   (= Tape::bytes_used())

#include <cstddef>
#include <string>
#include <vector>

#include "autodiff/tape.hpp"

namespace autodiff {

struct TapeStats {
  struct Row {
    std::string kind;            // "scalar inputs", "scalar statements", "tensor matmul", …
    std::size_t nodes = 0;       // Var slots, statements, or tensor ops
    std::size_t operations = 0;  // scalar statements: their (partial, operand) pairs
    std::size_t elements = 0;    // tensor ops: elements of their outputs
    std::size_t bytes = 0;       // tape memory: arrays, values and gradients in the arena
  };
  std::vector<Row> rows;
  std::size_t total_bytes = 0;     // Tape::bytes_used()
  std::size_t reserved_bytes = 0;  // Tape::bytes_reserved(): kept for the next recording
  /// The rows as an aligned table, with a total line.
  std::string table() const;
};

/// The statistics of what is recorded on `tape` since its last clear.
TapeStats tape_stats(const Tape& tape = Tape::active());

}  // namespace autodiff
