// The recorded graph as Graphviz DOT: built from the tape's arrays (and the notes, when details
// were recorded), then the part that reaches the output drawn in data-flow order.
#include "autodiff/inspect/graph_dot.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <limits>
#include <queue>

#include <fmt/format.h>

#include "autodiff/inspect/notes.hpp"
#include "autodiff/tensor/op.hpp"

namespace autodiff {
namespace {

using detail::short_number;
using detail::TensorNode;

enum class Kind { Input, Statement, Parameter, Constant, TensorOp };

struct Edge {
  std::size_t from;
  double partial;  // NaN: none (tensor edges)
};
constexpr double kNoPartial = std::numeric_limits<double>::quiet_NaN();

struct Node {
  Kind kind;
  bool scalar;          // a Var slot; else a coarse node
  std::uint32_t index;  // the slot, or the coarse node's id
  std::vector<Edge> inputs;
  int run = -1;         // the collapsed run of repeats it stands for (DotOptions::collapse_repeats)
  bool folded = false;  // a later repeat of a collapsed run: drawn as its first one
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<std::size_t> of_slot;  // slot → node
  std::vector<std::size_t> of_coarse;
  std::vector<std::size_t> run_repeats;  // per collapsed run: how many repeats it stands for
};

const TensorNode& tensor_of(const Tape& tape, std::uint32_t id) {
  return *static_cast<const TensorNode*>(tape.coarse_node(id).payload);
}

Graph build(const Tape& tape) {
  Graph g;
  const std::size_t slots = tape.node_count(), coarse = tape.coarse_node_count();
  g.nodes.reserve(slots + coarse);
  g.of_slot.resize(slots);
  g.of_coarse.resize(coarse);
  for (std::uint32_t slot = 0; slot < slots; ++slot) {
    g.of_slot[slot] = g.nodes.size();
    g.nodes.push_back({Kind::Input, true, slot, {}});
  }
  for (std::uint32_t s = 0; s < tape.statement_count(); ++s) {
    Node& node = g.nodes[g.of_slot[tape.statement_slot(s)]];
    node.kind = Kind::Statement;
    const auto partials = tape.statement_partials(s);
    const auto operands = tape.statement_operands(s);
    for (std::size_t k = 0; k < partials.size(); ++k) {  // x*x: one arrow, partials summed
      const std::size_t from = g.of_slot[operands[k]];
      auto same = std::find_if(node.inputs.begin(), node.inputs.end(),
                               [&](const Edge& e) { return e.from == from; });
      if (same != node.inputs.end())
        same->partial += partials[k];
      else
        node.inputs.push_back({from, partials[k]});
    }
  }
  constexpr double kNone = kNoPartial;
  for (std::uint32_t id = 0; id < coarse; ++id) {
    const CoarseNode& c = tape.coarse_node(id);
    const TensorNode& t = tensor_of(tape, id);
    Kind kind = Kind::TensorOp;
    if (t.input_count == 0 && !t.op)
      kind = c.is_leaf ? (std::string_view(t.name) == "parameter" ? Kind::Parameter : Kind::Input)
                       : Kind::Constant;
    g.of_coarse[id] = g.nodes.size();
    Node node{kind, false, id, {}};
    for (int i = 0; i < t.input_count; ++i) node.inputs.push_back({g.of_coarse[t.input[i]], kNone});
    // Scalar Vars the op reads (from_vars' elements, the Var of t * v): arrows from their slots.
    const auto* type = static_cast<const detail::OpTypeInfo*>(t.op_type);
    if (type && type->var_slots && t.op)
      for (const Index slot : type->var_slots(t.op))
        if (slot != kNotRecorded && slot < slots) {
          const std::size_t from = g.of_slot[slot];
          if (std::none_of(node.inputs.begin(), node.inputs.end(),
                           [&](const Edge& e) { return e.from == from; }))
            node.inputs.push_back({from, kNone});
        }
    g.nodes.push_back(std::move(node));
    if (c.scalar_output != kNotRecorded && c.scalar_output < slots) {  // to_var: a tensor → Var
      Node& var = g.nodes[g.of_slot[c.scalar_output]];
      var.kind = Kind::Statement;
      var.inputs.push_back({g.of_coarse[id], 1.0});
    }
  }
  return g;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\n') {
      out += "\\n";  // Graphviz's line break
      continue;
    }
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

template <class T>
std::string tensor_values(const T* values, std::int64_t count) {
  std::string text = "[";
  for (std::int64_t i = 0; i < count; ++i)
    text += (i ? ", " : "") + short_number(double(values[i]));
  return text + "]";
}

std::string values_text(const void* values, DType dtype, std::int64_t count) {
  return dtype == DType::Float32 ? tensor_values(static_cast<const float*>(values), count)
                                 : tensor_values(static_cast<const double*>(values), count);
}

double norm(const void* values, DType dtype, std::int64_t count) {
  double total = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const double v = dtype == DType::Float32 ? double(static_cast<const float*>(values)[i])
                                             : static_cast<const double*>(values)[i];
    total += v * v;
  }
  return std::sqrt(total);
}

// The nodes in `include`, each after its inputs; among those ready, the lowest index first
// (recording order: slots and coarse nodes each by their index).
std::vector<std::size_t> topological_order(const Graph& graph, const std::vector<bool>& include) {
  const std::size_t count = graph.nodes.size();
  std::vector<int> waiting(count, 0);
  std::vector<std::vector<std::size_t>> consumers(count);
  for (std::size_t n = 0; n < count; ++n)
    if (include[n])
      for (const Edge& e : graph.nodes[n].inputs)
        if (include[e.from]) {
          ++waiting[n];
          consumers[e.from].push_back(n);
        }
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t n = 0; n < count; ++n)
    if (include[n] && waiting[n] == 0) ready.push(n);
  std::vector<std::size_t> order;
  while (!ready.empty()) {
    const std::size_t n = ready.top();
    ready.pop();
    order.push_back(n);
    for (std::size_t c : consumers[n])
      if (--waiting[c] == 0) ready.push(c);
  }
  return order;
}

// ---- Collapsing repeated structure ----

// A statement's text with its Vars and numbers left out: "sigmoid(v*# + v)".
std::string structure_of(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\x01') {  // a Var's marker, up to \x02
      const std::size_t end = text.find('\x02', i);
      out += 'v';
      i = end == std::string::npos ? text.size() : end;
    } else if (std::isdigit(static_cast<unsigned char>(ch)) ||
               (ch == '.' && i + 1 < text.size() &&
                std::isdigit(static_cast<unsigned char>(text[i + 1])))) {
      out += '#';
      while (i + 1 < text.size() &&
             (std::isdigit(static_cast<unsigned char>(text[i + 1])) || text[i + 1] == '.' ||
              ((text[i + 1] == 'e' || text[i + 1] == 'E') && i + 2 < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[i + 2])) || text[i + 2] == '-' ||
                text[i + 2] == '+'))))
        i += text[i + 1] == 'e' || text[i + 1] == 'E' ? 2 : 1;
    } else {
      out += ch;
    }
  }
  return out;
}

// What a node is, apart from its values and where its inputs come from: equal tokens, same op.
std::string token_of(const Tape& tape, const Node& node) {
  if (!node.scalar) {
    const TensorNode& t = tensor_of(tape, node.index);
    return fmt::format("T{} {} {} {} {}", int(node.kind), t.name, int(t.dtype), t.shape.str(),
                       t.input_count);
  }
  const detail::TapeNotes* notes = tape.notes();
  const detail::SlotNote* note = notes ? notes->find_slot(tape, node.index) : nullptr;
  if (note && note->is_statement) return fmt::format("S{}", structure_of(note->text));
  return fmt::format("S{} {}", int(node.kind), node.inputs.size());
}

// The graph with each run of consecutive repeats (in data-flow order, among the nodes in
// `include`) folded into its first repeat. Nodes keep their ids; folded ones lose their inputs
// and are mapped to the node of the first repeat they correspond to (of_slot, of_coarse).
Graph collapsed(const Tape& tape, const Graph& graph, const std::vector<bool>& include) {
  const std::vector<std::size_t> order = topological_order(graph, include);
  const std::size_t count = order.size();
  constexpr std::size_t kNowhere = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> position(graph.nodes.size(), kNowhere);
  for (std::size_t p = 0; p < count; ++p) position[order[p]] = p;
  std::vector<int> token(count);
  {
    std::vector<std::string> seen;
    for (std::size_t p = 0; p < count; ++p) {
      const std::string t = token_of(tape, graph.nodes[order[p]]);
      auto at = std::find(seen.begin(), seen.end(), t);
      if (at == seen.end()) at = seen.insert(seen.end(), t);
      token[p] = static_cast<int>(at - seen.begin());
    }
  }
  // Nodes at positions a (in the repeat starting at first_a) and b (first_b) are alike: the same
  // token, and inputs alike: at the same place within their repeat, or both from before it.
  auto alike = [&](std::size_t a, std::size_t first_a, std::size_t b, std::size_t first_b) {
    const Node& x = graph.nodes[order[a]];
    const Node& y = graph.nodes[order[b]];
    if (token[a] != token[b] || x.inputs.size() != y.inputs.size()) return false;
    for (std::size_t k = 0; k < x.inputs.size(); ++k) {
      const std::size_t pa = position[x.inputs[k].from], pb = position[y.inputs[k].from];
      const bool before_a = pa < first_a, before_b = pb < first_b;
      if (before_a != before_b || (!before_a && pa - first_a != pb - first_b)) return false;
    }
    return true;
  };
  auto repeats = [&](std::size_t first, std::size_t other, std::size_t length) {
    for (std::size_t k = 0; k < length; ++k)
      if (!alike(first + k, first, other + k, other)) return false;
    return true;
  };

  Graph out = graph;
  std::vector<std::size_t> representative(graph.nodes.size());
  for (std::size_t n = 0; n < representative.size(); ++n) representative[n] = n;
  std::vector<std::size_t> repeat_of(graph.nodes.size(), 0);  // which repeat of its run
  constexpr std::size_t kLongestRepeat = 64;                  // nodes; longer ones stay drawn
  for (std::size_t first = 0; first < count;) {
    std::size_t best_length = 0, best_times = 0;
    for (std::size_t length = 1; length <= kLongestRepeat && first + 2 * length <= count;
         ++length) {
      std::size_t times = 1;
      while (first + (times + 1) * length <= count &&
             repeats(first, first + times * length, length))
        ++times;
      const bool worth = times >= (length == 1 ? 3 : 2);
      if (worth && times * length > best_times * best_length) {
        best_length = length;
        best_times = times;
      }
    }
    if (best_times == 0) {
      ++first;
      continue;
    }
    const int run = static_cast<int>(out.run_repeats.size());
    out.run_repeats.push_back(best_times);
    for (std::size_t p = first; p < first + best_times * best_length; ++p) {
      const std::size_t n = order[p];
      representative[n] = order[first + (p - first) % best_length];
      repeat_of[n] = (p - first) / best_length;
      out.nodes[n].run = run;
      out.nodes[n].folded = representative[n] != n;
    }
    first += best_times * best_length;
  }

  // Arrows: each one of the original graph between the representatives of its ends, once;
  // arrows from one repeat into the next are the run itself, not drawn.
  for (Node& node : out.nodes) node.inputs.clear();
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    if (!include[n]) continue;
    const std::size_t to = representative[n];
    for (const Edge& e : graph.nodes[n].inputs) {
      const std::size_t from = representative[e.from];
      if (from == to) continue;
      if (out.nodes[n].run >= 0 && out.nodes[n].run == out.nodes[e.from].run &&
          repeat_of[n] != repeat_of[e.from])
        continue;
      std::vector<Edge>& inputs = out.nodes[to].inputs;
      if (std::none_of(inputs.begin(), inputs.end(), [&](const Edge& x) { return x.from == from; }))
        inputs.push_back({from, to == n && from == e.from ? e.partial : kNoPartial});
    }
  }
  for (std::size_t& n : out.of_slot) n = representative[n];
  for (std::size_t& n : out.of_coarse) n = representative[n];
  return out;
}

class Writer {
 public:
  Writer(const Tape& tape, const Graph& graph, const DotOptions& options)
      : tape_(tape), graph_(graph), options_(options), notes_(tape.notes()) {}

  std::string draw(const std::vector<std::size_t>& outputs, bool whole) {
    select(outputs, whole);
    std::string dot =
        "digraph autodiff {\n"
        "  rankdir=LR;\n"
        "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", "
        "fontsize=11];\n"
        "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
    // Data-flow order: every node after its inputs (ids grow with recording order within a kind;
    // a topological order over both kinds is built from the edges).
    const std::vector<std::size_t> order = topological_order(graph_, shown_);
    std::vector<bool> run_drawn(graph_.run_repeats.size(), false);
    auto is_output = [&](std::size_t n) {
      return std::find(outputs.begin(), outputs.end(), n) != outputs.end();
    };
    for (std::size_t n : order) {
      const int run = graph_.nodes[n].run;
      if (run < 0) {
        dot += node_line(n, is_output(n));
      } else if (!run_drawn[static_cast<std::size_t>(run)]) {
        // A collapsed run: its first repeat's boxes together, in a box of their own, where the
        // first of them comes (each still before the arrows that leave it).
        run_drawn[static_cast<std::size_t>(run)] = true;
        dot += fmt::format(
            "  subgraph cluster_repeat{} {{\n"
            "  label=\"× {}\"; style=\"rounded,dashed\"; color=\"#888888\"; "
            "fontname=\"Helvetica\"; fontsize=12;\n",
            run, graph_.run_repeats[static_cast<std::size_t>(run)]);
        for (std::size_t m : order)
          if (graph_.nodes[m].run == run) dot += node_line(m, is_output(m));
        dot += "  }\n";
      }
      for (const Edge& e : graph_.nodes[n].inputs)
        if (shown_[e.from]) dot += edge_line(e, n);
      if (hidden_inputs_[n] > 0)
        dot += fmt::format(
            "  more{0} [label=\"… {1} more input{2}\", shape=plaintext, style=\"\"];\n"
            "  more{0} -> n{0} [style=dashed];\n",
            n, hidden_inputs_[n], hidden_inputs_[n] == 1 ? "" : "s");
    }
    if (options_.legend) dot += legend();
    return dot + "}\n";
  }

 private:
  void select(const std::vector<std::size_t>& outputs, bool whole) {
    const std::size_t count = graph_.nodes.size();
    shown_.assign(count, false);
    hidden_inputs_.assign(count, 0);
    std::vector<int> depth(count, -1);
    std::deque<std::size_t> queue;
    std::size_t shown = 0;
    auto visit = [&](std::size_t n, int d) {
      if (depth[n] >= 0) return;
      depth[n] = d;
      queue.push_back(n);
    };
    if (whole) {
      // Outputs first (nothing consumes them), then breadth first as for one output.
      std::vector<bool> consumed(count, false);
      for (const Node& n : graph_.nodes)
        for (const Edge& e : n.inputs) consumed[e.from] = true;
      for (std::size_t n = count; n-- > 0;)
        if (!consumed[n] && !graph_.nodes[n].folded) visit(n, 0);
    } else {
      for (std::size_t n : outputs) visit(n, 0);
    }
    while (!queue.empty()) {
      const std::size_t n = queue.front();
      queue.pop_front();
      if (shown >= options_.max_nodes) continue;
      shown_[n] = true;
      ++shown;
      const bool expand = options_.max_depth <= 0 || depth[n] < options_.max_depth;
      for (const Edge& e : graph_.nodes[n].inputs)
        if (expand) visit(e.from, depth[n] + 1);
    }
    for (std::size_t n = 0; n < count; ++n)
      if (shown_[n])
        for (const Edge& e : graph_.nodes[n].inputs)
          if (!shown_[e.from]) ++hidden_inputs_[n];
  }

  static const char* fill(Kind kind) {
    switch (kind) {
      case Kind::Input:
        return "#cfe8fc";
      case Kind::Parameter:
        return "#c8f0c8";
      case Kind::Constant:
        return "#eeeeee";
      case Kind::Statement:
      case Kind::TensorOp:
        return "white";
    }
    return "white";
  }

  std::string storage_name(const void* data) const {
    for (const auto& [pointer, name] : options_.names)
      if (pointer == data) return name;
    if (const std::string* name = notes_ ? notes_->storage_name(data) : nullptr) return *name;
    return "";
  }

  std::string scalar_label(const Node& node, std::string& tooltip) const {
    const detail::SlotNote* note = notes_ ? notes_->find_slot(tape_, node.index) : nullptr;
    std::string label = note && !note->name.empty() ? note->name : fmt::format("v{}", node.index);
    if (note && note->is_statement) {
      label += '\n';
      label += notes_->expand(tape_, note->text);
    }
    if (!note && node.kind == Kind::Statement && node.inputs.size() == 1 &&
        !graph_.nodes[node.inputs[0].from].scalar)
      label += "\nto_var";
    if (note && note->value_known) label += "\nvalue " + short_number(note->value);
    if (tape_.has_gradients()) label += "\ngrad " + short_number(tape_.adjoint(node.index));
    if (note && note->is_statement) tooltip = detail::location_text(note->where);
    if (note && !note->label.empty()) tooltip += (tooltip.empty() ? "" : " ") + note->label;
    return label;
  }

  std::string tensor_label(const Node& node, std::string& tooltip) const {
    const TensorNode& t = tensor_of(tape_, node.index);
    const CoarseNode& c = tape_.coarse_node(node.index);
    const std::string name = storage_name(t.value);
    std::string label = name.empty() ? fmt::format("{} #{}", t.name, node.index)
                                     : fmt::format("{} ({} #{})", name, t.name, node.index);
    label +=
        fmt::format("\n{} {}", t.dtype == DType::Float32 ? "float32" : "float64", t.shape.str());
    constexpr std::int64_t kShownValues = 4;  // tensors show shapes; tiny ones their values too
    if (t.shape.size() <= kShownValues)
      label += "\nvalue " + values_text(t.value, t.dtype, t.shape.size());
    if (tape_.has_gradients() && c.grad && t.requires_grad)
      label += t.shape.size() <= kShownValues
                   ? "\ngrad " + values_text(c.grad, t.dtype, t.shape.size())
                   : "\n|grad| " + short_number(norm(c.grad, t.dtype, t.shape.size()));
    if (const detail::NodeNote* note = notes_ ? notes_->find_node(tape_, node.index) : nullptr)
      tooltip = note->label;
    return label;
  }

  std::string node_line(std::size_t n, bool is_output) const {
    const Node& node = graph_.nodes[n];
    std::string tooltip;
    const std::string label =
        node.scalar ? scalar_label(node, tooltip) : tensor_label(node, tooltip);
    Kind kind = node.kind;
    if (!node.scalar && kind == Kind::Input &&
        !storage_name(tensor_of(tape_, node.index).value).empty())
      kind = Kind::Parameter;
    std::string style = kind == Kind::Constant ? "\"rounded,filled,dashed\"" : "\"rounded,filled\"";
    std::string extra;
    if (is_output)
      extra = ", fillcolor=\"#f9c6c0\", peripheries=2, penwidth=1.5";
    else
      extra = fmt::format(", fillcolor=\"{}\"", fill(kind));
    if (kind == Kind::Input || kind == Kind::Parameter || kind == Kind::Constant)
      extra += ", shape=box, style=" + style;
    if (!tooltip.empty()) extra += ", tooltip=\"" + escape(tooltip) + "\"";
    return fmt::format("  n{} [label=\"{}\"{}];\n", n, escape(label), extra);
  }

  std::string edge_line(const Edge& e, std::size_t to) const {
    if (options_.show_partials && !std::isnan(e.partial) && graph_.nodes[to].scalar &&
        graph_.nodes[e.from].scalar)
      return fmt::format("  n{} -> n{} [label=\"{}\"];\n", e.from, to, short_number(e.partial));
    return fmt::format("  n{} -> n{};\n", e.from, to);
  }

  static std::string legend() {
    return "  subgraph cluster_legend {\n"
           "    label=\"legend\"; fontname=\"Helvetica\"; fontsize=10; color=\"#bbbbbb\";\n"
           "    legend_input [label=\"input\", fillcolor=\"#cfe8fc\"];\n"
           "    legend_parameter [label=\"parameter\", fillcolor=\"#c8f0c8\"];\n"
           "    legend_constant [label=\"constant\", fillcolor=\"#eeeeee\", "
           "style=\"rounded,filled,dashed\"];\n"
           "    legend_op [label=\"op\"];\n"
           "    legend_output [label=\"output\", fillcolor=\"#f9c6c0\", peripheries=2];\n"
           "    legend_input -> legend_parameter -> legend_constant -> legend_op -> "
           "legend_output [style=invis];\n"
           "  }\n";
  }

  const Tape& tape_;
  const Graph& graph_;
  const DotOptions& options_;
  const detail::TapeNotes* notes_;
  std::vector<bool> shown_;
  std::vector<std::size_t> hidden_inputs_;
};

}  // namespace

namespace {

// Everything `outputs` was computed from, themselves included.
std::vector<bool> reaching(const Graph& graph, const std::vector<std::size_t>& outputs) {
  std::vector<bool> reached(graph.nodes.size(), false);
  std::vector<std::size_t> stack = outputs;
  for (std::size_t n : outputs) reached[n] = true;
  while (!stack.empty()) {
    const std::size_t n = stack.back();
    stack.pop_back();
    for (const Edge& e : graph.nodes[n].inputs)
      if (!reached[e.from]) {
        reached[e.from] = true;
        stack.push_back(e.from);
      }
  }
  return reached;
}

// The picture of what `output` (a slot, or a coarse node) was computed from.
std::string draw_from(const Tape& tape, const DotOptions& options, bool scalar,
                      std::uint32_t output) {
  Graph graph = build(tape);
  auto node_of = [&](const Graph& g) { return scalar ? g.of_slot[output] : g.of_coarse[output]; };
  if (options.collapse_repeats) graph = collapsed(tape, graph, reaching(graph, {node_of(graph)}));
  return Writer(tape, graph, options).draw({node_of(graph)}, false);
}

}  // namespace

std::string to_dot(const Var& output, const DotOptions& options) {
  const Tape& tape = Tape::active();
  tape.check_recorded(output.index(), output.epoch(), "to_dot()");
  return draw_from(tape, options, true, output.index());
}

template <TensorElement T>
std::string to_dot(const Tensor<T>& output, const DotOptions& options) {
  output.node("to_dot()");  // checks the handle
  return draw_from(Tape::active(), options, false, output.id());
}
template std::string to_dot(const Tensor<float>&, const DotOptions&);
template std::string to_dot(const Tensor<double>&, const DotOptions&);

std::string to_dot(const Tape& tape, const DotOptions& options) {
  Graph graph = build(tape);
  if (options.collapse_repeats)
    graph = collapsed(tape, graph, std::vector<bool>(graph.nodes.size(), true));
  return Writer(tape, graph, options).draw({}, true);
}

}  // namespace autodiff
