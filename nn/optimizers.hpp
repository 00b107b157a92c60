#pragma once
// Optimizers update parameters from their accumulated gradients, then zero the gradients.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "nn/parameter.hpp"

namespace nn {

/// What an optimizer carries from step to step, for checkpoints: its settings, its step count and
/// its per-parameter buffers ("slots": Adam's "m" and "v", SGD's "velocity"), each a list of
/// arrays in the order of the parameters step() is given. No slots before the first step.
struct OptimizerState {
  std::string type;  // "Adam", "SGD"
  std::vector<std::pair<std::string, double>> settings;
  std::int64_t iterations = 0;
  std::vector<std::pair<std::string, std::vector<std::vector<float>>>> slots;

  /// The setting's value; throws std::invalid_argument naming it when absent.
  double setting(const std::string& name) const;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// One update of every parameter from its grad; the grads are zeroed in the same pass.
  /// In a hand-written loop that forgets tape.clear(), every step records on top of the last and
  /// costs more than it: the first time the active tape is seen growing over several steps, a
  /// warning says so on stderr (once per optimizer).
  void step(std::span<Parameter* const> parameters) {
    watch_tape();
    update(parameters);
  }
  /// loss.backward() and step() in one pass over memory, as fused optimizers do: each parameter is
  /// updated (and its gradient zeroed) as soon as the reverse sweep has finished its gradient,
  /// while that gradient is still in cache; parameters the sweep does not reach are updated after
  /// it. The result is the same as backward() then step(): a parameter's value is read by no op
  /// recorded before it was put on the tape, and those are all the sweep has left to run.
  void backward_and_step(const Tensor<float>& loss, std::span<Parameter* const> parameters);
  /// Whether step() has warned that the tape keeps growing.
  bool tape_growth_reported() const { return warned_; }
  virtual double learning_rate() const = 0;
  /// For schedules; throws std::invalid_argument unless rate > 0 and finite.
  virtual void set_learning_rate(double rate) = 0;

  /// A copy of everything the next step depends on.
  virtual OptimizerState state() const = 0;
  /// Continues from `state` (made by state() of the same type) for these parameters. Everything
  /// is checked first — the type, each setting, a non-negative step count, each slot holding one
  /// array per parameter of the parameter's size — and std::invalid_argument names what does not
  /// fit; the optimizer is then unchanged.
  virtual void load_state(const OptimizerState& state, std::span<Parameter* const> parameters) = 0;

 protected:
  /// One step over all `parameters`. The default runs begin_step, then update_parameter for each;
  /// an optimizer that can only update all parameters at once overrides this instead.
  virtual void update(std::span<Parameter* const> parameters);
  /// For backward_and_step: prepares one step over `parameters` (buffers, step count) and returns
  /// true; an optimizer that can only update all parameters at once returns false (the default),
  /// and backward_and_step then runs backward() and update().
  virtual bool begin_step(std::span<Parameter* const> /*parameters*/) { return false; }
  /// After begin_step: updates parameter k of those it was given, and zeroes its gradient.
  virtual void update_parameter(std::size_t /*k*/, Parameter& /*parameter*/) {}

 private:
  static void on_leaf_finished(void* optimizer, std::uint32_t node);
  void watch_tape();
  // backward_and_step's bookkeeping, kept between steps (a warm step allocates nothing).
  static constexpr std::uint32_t kNoParameter = UINT32_MAX;
  std::vector<std::uint32_t> parameter_of_node_;  // per coarse node: the parameter it finishes
  std::vector<char> updated_;                     // per parameter, this step
  std::span<Parameter* const> stepping_;
  std::size_t last_tape_bytes_ = 0;
  int growing_steps_ = 0;
  bool warned_ = false;
};

/// How many consecutive steps the tape may grow before Optimizer::step warns.
inline constexpr int kTapeGrowthSteps = 8;

/// Keras's defaults. Setters chain: AdamOptions().learning_rate(3e-4).beta1(0.8).
struct AdamOptions {
  double learning_rate_ = 1e-3, beta1_ = 0.9, beta2_ = 0.999, epsilon_ = 1e-7;
  AdamOptions& learning_rate(double v) {
    learning_rate_ = v;
    return *this;
  }
  AdamOptions& beta1(double v) {
    beta1_ = v;
    return *this;
  }
  AdamOptions& beta2(double v) {
    beta2_ = v;
    return *this;
  }
  AdamOptions& epsilon(double v) {
    epsilon_ = v;
    return *this;
  }
  /// Throws std::invalid_argument naming the bad value.
  void validate() const;
};

/// Adam, as Keras computes it: with α_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ),
/// m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²,  p ← p − α_t·m/(√v + ε).
class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options = {});
  std::int64_t iterations() const { return t_; }
  double learning_rate() const override { return options_.learning_rate_; }
  void set_learning_rate(double rate) override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state, std::span<Parameter* const> parameters) override;

 protected:
  bool begin_step(std::span<Parameter* const> parameters) override;
  void update_parameter(std::size_t k, Parameter& parameter) override;

 private:
  AdamOptions options_;
  std::int64_t t_ = 0;
  float alpha_ = 0;                        // this step's α_t
  std::vector<std::vector<float>> m_, v_;  // one moment pair per parameter, made at first step
};

struct SGDOptions {
  double learning_rate_ = 0.01, momentum_ = 0.0;
  bool nesterov_ = false;
  SGDOptions& learning_rate(double v) {
    learning_rate_ = v;
    return *this;
  }
  SGDOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  SGDOptions& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  void validate() const;
};

/// Keras's SGD: velocity ← momentum·velocity − lr·g; p ← p + velocity
/// (Nesterov: p ← p + momentum·velocity − lr·g).
class SGD : public Optimizer {
 public:
  explicit SGD(SGDOptions options = {});
  double learning_rate() const override { return options_.learning_rate_; }
  void set_learning_rate(double rate) override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state, std::span<Parameter* const> parameters) override;

 protected:
  bool begin_step(std::span<Parameter* const> parameters) override;
  void update_parameter(std::size_t k, Parameter& parameter) override;

 private:
  SGDOptions options_;
  std::vector<std::vector<float>> velocity_;
};

}  // namespace nn
