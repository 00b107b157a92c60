#pragma once
// The tutorial's 2-2-1 network of sigmoid neurons, shared by the examples and the benchmarks:
//   h1 = f(w1·x1 + w2·x2 + b1),  h2 = f(w3·x1 + w4·x2 + b2),  o1 = f(w5·h1 + w6·h2 + b3),
//   L = (y_true − o1)²,  f = sigmoid.
// Its gradient two ways: derived by hand with the chain rule (the tutorial's code), and from the
// tape.

#include <array>
#include <string>

#include "autodiff/autodiff.hpp"

namespace tutorial {

using autodiff::Var;

/// w1 … w6, b1 … b3, in this order.
using Params = std::array<double, 9>;
inline const std::array<std::string, 9> kParamNames = {"w1", "w2", "w3", "w4", "w5",
                                                       "w6", "b1", "b2", "b3"};

struct Person {
  const char* name;
  double x1, x2;  // weight − 135 lb, height − 66 in
  double y_true;  // 1 = female, as in the tutorial's code
};
inline constexpr std::array<Person, 4> kPeople = {{
    {"Alice", -2, -1, 1},
    {"Bob", 25, 6, 0},
    {"Charlie", 17, 4, 0},
    {"Diana", -15, -6, 1},
}};

/// o1, the network's prediction; T is double or Var.
template <class T>
T feedforward(const std::array<T, 9>& p, double x1, double x2) {
  using autodiff::sigmoid;
  const auto& [w1, w2, w3, w4, w5, w6, b1, b2, b3] = p;
  const T h1 = sigmoid(w1 * x1 + w2 * x2 + b1);
  const T h2 = sigmoid(w3 * x1 + w4 * x2 + b2);
  return sigmoid(w5 * h1 + w6 * h2 + b3);
}

/// L = (y_true − o1)² for one person.
template <class T>
T loss(const std::array<T, 9>& p, const Person& person) {
  const T o1 = feedforward(p, person.x1, person.x2);
  return (person.y_true - o1) * (person.y_true - o1);
}

/// Mean squared error over the four people.
inline double total_loss(const Params& p) {
  double sum = 0;
  for (const Person& person : kPeople) sum += loss<double>(p, person);
  return sum / kPeople.size();
}

/// ∂L/∂(w1 … b3) by the chain rule, as the tutorial derives it. f′(sum) = f(sum)·(1 − f(sum)) is
/// computed once per neuron (the tutorial calls deriv_sigmoid nine times; the values are the same
/// to the bit, and a fair baseline for the benchmarks should not be slow), by
/// autodiff::sigmoid_derivative: the same f′, without the cancellation of 1 − f(sum) as f → 1.
inline Params hand_gradient(const Params& p, const Person& person) {
  using autodiff::sigmoid, autodiff::sigmoid_derivative;
  const auto [w1, w2, w3, w4, w5, w6, b1, b2, b3] = p;
  const double x1 = person.x1, x2 = person.x2;

  const double sum_h1 = w1 * x1 + w2 * x2 + b1;
  const double sum_h2 = w3 * x1 + w4 * x2 + b2;
  const double h1 = sigmoid(sum_h1), deriv_sigmoid_h1 = sigmoid_derivative(sum_h1);
  const double h2 = sigmoid(sum_h2), deriv_sigmoid_h2 = sigmoid_derivative(sum_h2);
  const double sum_o1 = w5 * h1 + w6 * h2 + b3;
  const double o1 = sigmoid(sum_o1), deriv_sigmoid_o1 = sigmoid_derivative(sum_o1);

  const double d_L_d_ypred = -2 * (person.y_true - o1);
  // Neuron o1
  const double d_ypred_d_w5 = h1 * deriv_sigmoid_o1;
  const double d_ypred_d_w6 = h2 * deriv_sigmoid_o1;
  const double d_ypred_d_b3 = deriv_sigmoid_o1;
  const double d_ypred_d_h1 = w5 * deriv_sigmoid_o1;
  const double d_ypred_d_h2 = w6 * deriv_sigmoid_o1;
  // Neuron h1
  const double d_h1_d_w1 = x1 * deriv_sigmoid_h1;
  const double d_h1_d_w2 = x2 * deriv_sigmoid_h1;
  const double d_h1_d_b1 = deriv_sigmoid_h1;
  // Neuron h2
  const double d_h2_d_w3 = x1 * deriv_sigmoid_h2;
  const double d_h2_d_w4 = x2 * deriv_sigmoid_h2;
  const double d_h2_d_b2 = deriv_sigmoid_h2;

  return {d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w1,
          d_L_d_ypred * d_ypred_d_h1 * d_h1_d_w2,
          d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w3,
          d_L_d_ypred * d_ypred_d_h2 * d_h2_d_w4,
          d_L_d_ypred * d_ypred_d_w5,
          d_L_d_ypred * d_ypred_d_w6,
          d_L_d_ypred * d_ypred_d_h1 * d_h1_d_b1,
          d_L_d_ypred * d_ypred_d_h2 * d_h2_d_b2,
          d_L_d_ypred * d_ypred_d_b3};
}

/// ∂L/∂(w1 … b3) from the tape: record the loss, one reverse sweep, read the gradients.
inline Params tape_gradient(const Params& p, const Person& person) {
  autodiff::Tape& tape = autodiff::Tape::active();
  tape.clear();  // rewinds the arena: no allocation once warm
  std::array<Var, 9> params;
  for (std::size_t i = 0; i < 9; ++i) params[i] = p[i];
  loss<Var>(params, person).backward();
  Params g;
  for (std::size_t i = 0; i < 9; ++i) g[i] = params[i].grad();
  return g;
}

/// One per-sample SGD step: p ← p − learn_rate · ∂L/∂p.
inline void sgd_step(Params& p, const Params& gradient, double learn_rate) {
  for (std::size_t i = 0; i < p.size(); ++i) p[i] -= learn_rate * gradient[i];
}

}  // namespace tutorial
