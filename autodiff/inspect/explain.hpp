#pragma once
// The backward pass explained, for scalar graphs: each step of the reverse sweep, and the chain
// rule from the output to one input written as the tutorial writes it.
//
//   autodiff::RecordDetails details;            // names and expressions in the explanation
//   Var w1 = 1.0;  autodiff::name(w1, "w1");  …  Var L = …;  autodiff::name(L, "L");
//   fmt::print("{}", autodiff::explain_backward(L).table());
//   fmt::print("{}", autodiff::chain_rule(L, w1).str());
//   // ∂L/∂w1 = ∂L/∂ypred × ∂ypred/∂h1 × ∂h1/∂w1
//   //        = -0.95260965180481345 × 0.24943853872474492 × -0.090353319461… = 0.0214695…
//
// Both read the tape and compute with their own adjoints: the tape's gradients are left as they
// are, and backward() need not have run. Without RecordDetails, Vars are named by slot ("v7").

#include <cstddef>
#include <string>
#include <vector>

#include "autodiff/var.hpp"

namespace autodiff {

/// One operation of a step: what the node passes on to one of its inputs.
struct SweepContribution {
  Index input;  // its slot
  std::string input_name;
  double local_derivative;  // ∂node/∂input, computed in the forward pass
  double contribution;      // local_derivative × the node's adjoint, added to the input's
};

/// One statement of the reverse sweep, from the output down.
struct SweepStep {
  Index node;
  std::string name;        // "h1", else "v<slot>"
  std::string expression;  // "sigmoid(w1*x1 + w2*x2 + b1)" when details were recorded
  double adjoint;          // ∂output/∂node, complete when the sweep reaches it
  std::vector<SweepContribution> contributions;
};

struct BackwardExplanation {
  std::vector<SweepStep> steps;
  /// ∂output/∂x for every input (leaf) reached, by slot order.
  std::vector<std::pair<std::string, double>> input_gradients;
  /// The steps as an aligned table, one line per contribution.
  std::string table() const;
};

/// The reverse sweep from `output`, step by step. Scalar graphs only: throws a TapeError if the
/// tape holds tensor ops (draw those with to_dot) or `output` is not recorded.
BackwardExplanation explain_backward(const Var& output);

/// One factor ∂of/∂wrt of a chain-rule product.
struct ChainFactor {
  std::string of, wrt;
  double value;
};

/// One path from the output down to the input: the product of its factors.
struct ChainPath {
  std::vector<ChainFactor> factors;
  double product;
};

struct ChainRule {
  std::string output, input;
  /// The paths, at most the number asked for; path_count says how many there are in all.
  std::vector<ChainPath> paths;
  double path_count = 0;
  /// ∂output/∂input: the sum over all paths, as the reverse sweep computes it.
  double gradient = 0;
  /// "∂L/∂w1 = ∂L/∂ypred × ∂ypred/∂h1 × ∂h1/∂w1\n       = -0.952… × 0.249… × -0.0904… = 0.0214…"
  std::string str() const;
};

/// The chain rule from `output` to `input`, one product per path through the graph (merging the
/// operations of one statement on one input, as x*x into 2x). Scalar graphs only, as
/// explain_backward.
ChainRule chain_rule(const Var& output, const Var& input, std::size_t max_paths = 16);

}  // namespace autodiff
