// Step 3 of the tutorial: ∂L/∂w1 of the 2-2-1 network by the chain rule, next to the tape's.
// All six weights 1, all biases 0, one sample: Alice, x = (−2, −1), y_true = 1.
//   --explain     the reverse sweep step by step, and the chain rule to w1 as the tape saw it
//   --dot FILE    the recorded graph as Graphviz DOT (dot -Tsvg FILE -o graph.svg)
//   --detect-anomaly   everything recorded under anomaly mode (stops at a NaN or infinity)
#include <array>
#include <cmath>
#include <cstdio>
#include <optional>
#include <span>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "autodiff/autodiff.hpp"
#include "nn/atomic_file.hpp"
#include "tutorial_network.hpp"

using autodiff::Var;
using tutorial::Params;

// The same network recorded again with every Var named as the tutorial names it, then looked at.
void seeing_inside(const Params& p, const tutorial::Person& person, double hand, bool explain,
                   const std::string& dot_file) {
  autodiff::Tape::active().clear();
  autodiff::RecordDetails details;  // keeps values, expressions and names for the pictures
  std::array<Var, 9> w;
  for (std::size_t i = 0; i < 9; ++i) {
    w[i] = p[i];
    autodiff::name(w[i], tutorial::kParamNames[i]);
  }
  const Var h1 = sigmoid(w[0] * person.x1 + w[1] * person.x2 + w[6]);
  const Var h2 = sigmoid(w[2] * person.x1 + w[3] * person.x2 + w[7]);
  const Var ypred = sigmoid(w[4] * h1 + w[5] * h2 + w[8]);
  const Var L = (person.y_true - ypred) * (person.y_true - ypred);
  for (const auto& [v, name] : {std::pair{&h1, "h1"}, {&h2, "h2"}, {&ypred, "ypred"}, {&L, "L"}})
    autodiff::name(*v, name);
  L.backward();
  if (explain) {
    fmt::print("The reverse sweep, from L down (each input gets local derivative × adjoint):\n");
    fmt::print("{}\n", autodiff::explain_backward(L).table());
    fmt::print("The chain rule to w1, as the tape computed it:\n{}",
               autodiff::chain_rule(L, w[0]).str());
    fmt::print("       by hand (above): {:.17g}\n\n", hand);
  }
  if (!dot_file.empty()) {
    nn::write_file_atomically(dot_file, autodiff::to_dot(L), "the graph");
    fmt::print("Wrote the graph of L to {} (render it: dot -Tsvg {} -o graph.svg)\n", dot_file,
               dot_file);
  }
}

void run(bool explain, const std::string& dot_file);

int main(int argc, char** argv) {
  bool explain = false, detect_anomaly = false;
  std::string dot_file;
  CLI::App app{"The tutorial's worked example: dL/dw1 by hand, by the tape, by finite differences"};
  app.add_flag("--explain", explain, "print the reverse sweep step by step and the chain rule");
  app.add_option("--dot", dot_file, "write the recorded graph as Graphviz DOT to this file");
  app.add_flag("--detect-anomaly", detect_anomaly, "record under anomaly mode");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!dot_file.empty()) nn::check_writable(dot_file, "the graph");
    std::optional<autodiff::DetectAnomaly> anomaly;
    if (detect_anomaly) anomaly.emplace();
    run(explain, dot_file);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "backprop_by_hand: %s\n", error.what());
    return 1;
  }
}

void run(bool explain, const std::string& dot_file) {
  const Params p = {1, 1, 1, 1, 1, 1, 0, 0, 0};  // w1 … w6 = 1, b1 … b3 = 0
  const tutorial::Person alice = tutorial::kPeople[0];
  const double x1 = alice.x1, x2 = alice.x2, y_true = alice.y_true;
  const double w1 = p[0], w2 = p[1], w3 = p[2], w4 = p[3], w5 = p[4], w6 = p[5];
  using autodiff::sigmoid;
  // f′(x) = f(x)·(1 − f(x)), computed without the cancellation of 1 − f(x) as f(x) → 1.
  auto deriv_sigmoid = [](double x) { return autodiff::sigmoid_derivative(x); };

  // Forward, by hand.
  const double sum_h1 = w1 * x1 + w2 * x2, h1 = sigmoid(sum_h1);
  const double sum_h2 = w3 * x1 + w4 * x2, h2 = sigmoid(sum_h2);
  const double sum_o1 = w5 * h1 + w6 * h2, o1 = sigmoid(sum_o1);
  fmt::print("h1 = {:.10f}   (tutorial: 0.0474)\n", h1);
  fmt::print("h2 = {:.10f}   (tutorial: 0.0474)\n", h2);
  fmt::print("o1 = {:.10f}   (tutorial: 0.524)\n\n", o1);

  // The chain rule: ∂L/∂w1 = ∂L/∂ypred · ∂ypred/∂h1 · ∂h1/∂w1.
  const double d_L_d_ypred = -2 * (y_true - o1);
  const double d_ypred_d_h1 = w5 * deriv_sigmoid(sum_o1);
  const double d_h1_d_w1 = x1 * deriv_sigmoid(sum_h1);
  const double hand = d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w1;
  fmt::print("dL/dypred  = {:.10f}   (tutorial: -0.952)\n", d_L_d_ypred);
  fmt::print("dypred/dh1 = {:.10f}   (tutorial: 0.249)\n", d_ypred_d_h1);
  fmt::print("dh1/dw1    = {:.10f}   (tutorial: -0.0904)\n\n", d_h1_d_w1);

  // The same network on the tape: record the loss, one reverse sweep.
  std::array<Var, 9> params;
  for (std::size_t i = 0; i < 9; ++i) params[i] = p[i];
  const Var loss = tutorial::loss<Var>(params, alice);
  loss.backward();
  const double tape = params[0].grad();
  fmt::print("dL/dw1 by hand = {:.17g}   (tutorial: 0.0214)\n", hand);
  fmt::print("dL/dw1 by tape = {:.17g}\n", tape);
  fmt::print("relative difference = {:.3g}\n\n", std::fabs(hand - tape) / std::fabs(hand));

  // All nine partials: by hand, by the tape, by finite differences.
  const Params hand_all = tutorial::hand_gradient(p, alice);
  const auto check = autodiff::check_gradient(
      [&](std::span<const Var> q) {
        std::array<Var, 9> qs;
        std::copy(q.begin(), q.end(), qs.begin());
        return tutorial::loss<Var>(qs, alice);
      },
      p, hand_all);
  fmt::print("{}", check.table(tutorial::kParamNames));
  fmt::print("max relative difference: tape vs hand {:.3g}, tape vs finite differences {:.3g}\n",
             check.max_hand_rel_error, check.max_rel_error);
  if (explain || !dot_file.empty()) {
    fmt::print("\n");
    seeing_inside(p, alice, hand, explain, dot_file);
  }
}
