#pragma once
// A recorded graph as a Graphviz DOT picture, as micrograd's draw_dot and torchviz's make_dot
// draw theirs: one box per recorded Var and tensor op, with its name, value (a tensor's shape and
// dtype) and gradient once computed; an arrow from each input to what was computed from it, left
// to right in the order of the data flow, labelled with the local derivative for scalars.
//
//   autodiff::RecordDetails details;        // optional: op names and values of scalar statements
//   Var loss = …;  loss.backward();
//   nn::write_file_atomically("graph.dot", autodiff::to_dot(loss));
//   // then: dot -Tsvg graph.dot -o graph.svg     (Debian: apt-get install graphviz)
//
// Colours tell the kinds apart: inputs (Var leaves, tensors that require a gradient) light blue,
// parameters (tensors of nn parameters, named after their path in the module tree when known)
// green, constants (data that needs no gradient) grey and dashed, ops white, the output red with a
// double border. Without RecordDetails the tape knows no values or op names of scalar statements:
// they are drawn by slot ("v7") with their gradient, and the arrows still carry the partials.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/tensor/tensor.hpp"
#include "autodiff/var.hpp"

namespace autodiff {

struct DotOptions {
  /// Draw only what lies within this many steps of the output (0: no limit); what is cut is
  /// summarised by one "… more" box per node whose inputs are not drawn.
  int max_depth = 0;
  /// At most this many boxes, the nearest to the output first (the rest summarised likewise).
  std::size_t max_nodes = 400;
  /// Draw consecutive repeats of one structure (N identical layers, the statements of an unrolled
  /// loop, a run of inputs) once, in a dashed box labelled "× N": the same ops in the same order,
  /// wired alike within each repeat, tensor shapes equal. The first repeat is drawn, with its
  /// values; arrows from later repeats to what follows the run start from it.
  bool collapse_repeats = false;
  /// Label the arrows into scalar statements with the local derivative ∂result/∂input.
  bool show_partials = true;
  /// A small legend of the colours.
  bool legend = true;
  /// Names of tensor storage, by the address of its first value (nn::parameter_names gives a
  /// module's); names given with autodiff::name_storage are used too.
  std::vector<std::pair<const void*, std::string>> names = {};
};

/// The graph that `output` was computed from, on the active tape.
std::string to_dot(const Var& output, const DotOptions& options = {});
template <TensorElement T>
std::string to_dot(const Tensor<T>& output, const DotOptions& options = {});
/// Everything recorded on `tape` since its last clear.
std::string to_dot(const Tape& tape, const DotOptions& options = {});

}  // namespace autodiff
