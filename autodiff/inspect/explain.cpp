// The reverse sweep replayed step by step on its own adjoints, and the chain rule's paths.
#include "autodiff/inspect/explain.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "autodiff/inspect/notes.hpp"

namespace autodiff {
namespace {

const Tape& scalar_tape(const Var& v, const char* what) {
  const Tape& tape = Tape::active();
  tape.check_recorded(v.index(), v.epoch(), what);
  if (tape.coarse_node_count() > 0)
    throw TapeError(fmt::format(
        "autodiff: {} explains scalar graphs, and the tape holds {} tensor ops; draw them with "
        "to_dot()",
        what, tape.coarse_node_count()));
  return tape;
}

std::string name_of(const Tape& tape, Index slot) {
  const detail::TapeNotes* notes = tape.notes();
  return notes ? notes->slot_name(tape, slot) : fmt::format("v{}", slot);
}

// The statements up to the one that writes `slot` (statements write slots in increasing order).
std::uint32_t statements_through(const Tape& tape, Index slot) {
  std::uint32_t lo = 0, hi = static_cast<std::uint32_t>(tape.statement_count());
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (tape.statement_slot(mid) <= slot)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Which statement writes each slot (or −1 for an input).
std::vector<std::int64_t> producers(const Tape& tape, std::uint32_t statements) {
  std::vector<std::int64_t> of(tape.node_count(), -1);
  for (std::uint32_t s = 0; s < statements; ++s) of[tape.statement_slot(s)] = s;
  return of;
}

}  // namespace

BackwardExplanation explain_backward(const Var& output) {
  const Tape& tape = scalar_tape(output, "explain_backward()");
  const detail::TapeNotes* notes = tape.notes();
  const std::uint32_t end = statements_through(tape, output.index());
  std::vector<double> adjoint(tape.node_count(), 0.0);
  std::vector<bool> is_statement(tape.node_count(), false);
  for (std::uint32_t s = 0; s < end; ++s) is_statement[tape.statement_slot(s)] = true;
  adjoint[output.index()] = 1.0;
  BackwardExplanation result;
  for (std::uint32_t s = end; s-- > 0;) {
    const Index slot = tape.statement_slot(s);
    if (adjoint[slot] == 0.0) continue;  // as the sweep: no gradient reached it, none is sent
    SweepStep step{slot, name_of(tape, slot), "", adjoint[slot], {}};
    if (const detail::SlotNote* note = notes ? notes->find_slot(tape, slot) : nullptr)
      step.expression = notes->expand(tape, note->text);
    const auto partials = tape.statement_partials(s);
    const auto operands = tape.statement_operands(s);
    for (std::size_t k = 0; k < partials.size(); ++k) {
      const double contribution = partials[k] * adjoint[slot];
      adjoint[operands[k]] += contribution;
      step.contributions.push_back(
          {operands[k], name_of(tape, operands[k]), partials[k], contribution});
    }
    result.steps.push_back(std::move(step));
  }
  for (Index slot = 0; slot <= output.index(); ++slot)
    if (!is_statement[slot] && adjoint[slot] != 0.0)
      result.input_gradients.emplace_back(name_of(tape, slot), adjoint[slot]);
  return result;
}

std::string BackwardExplanation::table() const {
  std::size_t name_width = 4, expression_width = 10, input_width = 5;
  for (const SweepStep& step : steps) {
    name_width = std::max(name_width, step.name.size());
    expression_width = std::max(expression_width, step.expression.size());
    for (const SweepContribution& c : step.contributions)
      input_width = std::max(input_width, c.input_name.size());
  }
  expression_width = std::min<std::size_t>(expression_width, 48);
  std::string text =
      fmt::format("{:>4}  {:<{}}  {:<{}}  {:>24}  {:<{}}  {:>24}  {:>24}\n", "step", "node",
                  name_width, "expression", expression_width, "adjoint (incoming)", "input",
                  input_width, "local derivative", "contribution");
  int number = 0;
  for (const SweepStep& step : steps) {
    ++number;
    std::string expression = step.expression;
    if (expression.size() > expression_width)
      expression = expression.substr(0, expression_width - 1) + "~";
    for (std::size_t k = 0; k < step.contributions.size(); ++k) {
      const SweepContribution& c = step.contributions[k];
      if (k == 0)
        text += fmt::format("{:>4}  {:<{}}  {:<{}}  {:>24.17g}  ", number, step.name, name_width,
                            expression, expression_width, step.adjoint);
      else
        text += fmt::format("{:>4}  {:<{}}  {:<{}}  {:>24}  ", "", "", name_width, "",
                            expression_width, "");
      text += fmt::format("{:<{}}  {:>24.17g}  {:>24.17g}\n", c.input_name, input_width,
                          c.local_derivative, c.contribution);
    }
  }
  for (const auto& [input, gradient] : input_gradients)
    text += fmt::format("gradient of {}: {:.17g}\n", input, gradient);
  return text;
}

ChainRule chain_rule(const Var& output, const Var& input, std::size_t max_paths) {
  const Tape& tape = scalar_tape(output, "chain_rule()");
  tape.check_recorded(input.index(), input.epoch(), "chain_rule()");
  const Index from = output.index(), to = input.index();
  ChainRule rule;
  rule.output = name_of(tape, from);
  rule.input = name_of(tape, to);
  if (to > from) return rule;  // recorded after the output: no path

  const std::uint32_t end = statements_through(tape, from);
  const std::vector<std::int64_t> producer = producers(tape, end);
  // The distinct inputs of statement s that lead to `to`, with their summed partials (x*x: 2x),
  // and how many paths lead from each slot to `to`.
  std::vector<double> paths_from(tape.node_count(), 0.0);
  paths_from[to] = 1;
  auto inputs_of = [&](std::uint32_t s) {
    std::vector<std::pair<Index, double>> merged;
    const auto partials = tape.statement_partials(s);
    const auto operands = tape.statement_operands(s);
    for (std::size_t k = 0; k < partials.size(); ++k) {
      if (paths_from[operands[k]] == 0) continue;
      auto same = std::find_if(merged.begin(), merged.end(),
                               [&](const auto& m) { return m.first == operands[k]; });
      if (same != merged.end())
        same->second += partials[k];
      else
        merged.emplace_back(operands[k], partials[k]);
    }
    return merged;
  };
  for (std::uint32_t s = 0; s < end; ++s) {
    const Index slot = tape.statement_slot(s);
    if (slot == to) continue;
    for (const auto& [operand, _] : inputs_of(s)) paths_from[slot] += paths_from[operand];
  }
  rule.path_count = paths_from[from];

  // ∂output/∂input as the sweep computes it (the sum over every path, in the sweep's order).
  std::vector<double> adjoint(tape.node_count(), 0.0);
  adjoint[from] = 1.0;
  for (std::uint32_t s = end; s-- > 0;) {
    const Index slot = tape.statement_slot(s);
    if (adjoint[slot] == 0.0) continue;
    const auto partials = tape.statement_partials(s);
    const auto operands = tape.statement_operands(s);
    for (std::size_t k = 0; k < partials.size(); ++k)
      adjoint[operands[k]] += partials[k] * adjoint[slot];
  }
  rule.gradient = from == to ? 1.0 : adjoint[to];

  // The paths, depth first with an explicit stack (graphs may be deep).
  struct Frame {
    Index slot;
    std::vector<std::pair<Index, double>> inputs;
    std::size_t next = 0;
  };
  std::vector<Frame> stack;
  std::vector<ChainFactor> factors;
  auto push = [&](Index slot) {
    Frame frame{slot, {}, 0};
    if (slot != to && producer[slot] >= 0) frame.inputs = inputs_of(std::uint32_t(producer[slot]));
    stack.push_back(std::move(frame));
  };
  if (paths_from[from] > 0) push(from);
  while (!stack.empty() && rule.paths.size() < max_paths) {
    Frame& top = stack.back();
    if (top.slot == to) {
      ChainPath path{factors, 1.0};
      for (const ChainFactor& f : factors) path.product *= f.value;
      rule.paths.push_back(std::move(path));
      stack.pop_back();
      if (!factors.empty()) factors.pop_back();
      continue;
    }
    if (top.next == top.inputs.size()) {
      stack.pop_back();
      if (!factors.empty()) factors.pop_back();
      continue;
    }
    const auto [operand, partial] = top.inputs[top.next++];
    factors.push_back({name_of(tape, top.slot), name_of(tape, operand), partial});
    push(operand);
  }
  return rule;
}

std::string ChainRule::str() const {
  const std::string lhs = fmt::format("∂{}/∂{} = ", output, input);
  const std::string indent(lhs.size() - 6, ' ');  // ∂ is 3 bytes, twice: align the "="
  if (paths.empty()) return lhs + fmt::format("{:.17g} (no path)\n", gradient);
  std::string symbols, numbers;
  for (std::size_t p = 0; p < paths.size(); ++p) {
    std::string s, n;
    for (std::size_t k = 0; k < paths[p].factors.size(); ++k) {
      const ChainFactor& f = paths[p].factors[k];
      s += fmt::format("{}∂{}/∂{}", k ? " × " : "", f.of, f.wrt);
      n += fmt::format("{}{:.17g}", k ? " × " : "", f.value);
    }
    if (paths.size() > 1) {
      s = "(" + s + ")";
      n = "(" + n + ")";
    }
    symbols += (p ? " + " : "") + s;
    numbers += (p ? " + " : "") + n;
  }
  std::string text = lhs + symbols + "\n" + indent + "= " + numbers + "\n";
  text += indent + fmt::format("= {:.17g}", gradient);
  if (path_count > double(paths.size()))
    text += fmt::format("   (sum over all {:.0f} paths; {} shown)", path_count, paths.size());
  return text + "\n";
}

}  // namespace autodiff
