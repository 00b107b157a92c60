#include "nn/optimizers.hpp"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "autodiff/parallel.hpp"

namespace nn {
namespace {

void require(bool ok, const char* optimizer, const char* what, double value, const char* expected) {
  if (!ok)
    throw std::invalid_argument(
        fmt::format("{}: {} is {}, expected {}", optimizer, what, value, expected));
}

// Moment buffers follow the parameter list they were made for.
void match_buffers(std::vector<std::vector<float>>& buffers, std::span<Parameter* const> parameters,
                   const char* optimizer) {
  if (buffers.empty())
    for (const Parameter* p : parameters) buffers.emplace_back(p->value.size(), 0.0f);
  if (buffers.size() != parameters.size())
    throw std::invalid_argument(
        fmt::format("{}: step() got {} parameters, but the first step had {}", optimizer,
                    parameters.size(), buffers.size()));
  for (std::size_t i = 0; i < parameters.size(); ++i)
    if (buffers[i].size() != parameters[i]->value.size())
      throw std::invalid_argument(
          fmt::format("{}: parameter {} ('{}') has {} values, the first step saw {}", optimizer, i,
                      parameters[i]->name, parameters[i]->value.size(), buffers[i].size()));
}

}  // namespace

void AdamOptions::validate() const {
  require(learning_rate_ > 0 && std::isfinite(learning_rate_), "Adam", "learning_rate",
          learning_rate_, "> 0");
  require(beta1_ >= 0 && beta1_ < 1, "Adam", "beta1", beta1_, "in [0, 1)");
  require(beta2_ >= 0 && beta2_ < 1, "Adam", "beta2", beta2_, "in [0, 1)");
  require(epsilon_ >= 0 && std::isfinite(epsilon_), "Adam", "epsilon", epsilon_, "≥ 0");
}

void Optimizer::watch_tape() {
  // A tape cleared every step has the same size at every step; one that is never cleared grows.
  const std::size_t bytes = autodiff::Tape::active().bytes_used();
  growing_steps_ = bytes > last_tape_bytes_ && last_tape_bytes_ > 0 ? growing_steps_ + 1 : 0;
  last_tape_bytes_ = bytes;
  if (growing_steps_ >= kTapeGrowthSteps && !warned_) {
    warned_ = true;
    fmt::print(stderr,
               "autodiff: warning: the tape has grown at each of the last {} optimizer steps "
               "({} bytes now): call tape.clear() at the start of each step (or use "
               "nn::train_step), or every step costs more than the last\n",
               growing_steps_, bytes);
  }
}

Adam::Adam(AdamOptions options) : options_(options) { options_.validate(); }

void Adam::set_learning_rate(double rate) {
  AdamOptions changed = options_;
  changed.learning_rate(rate).validate();
  options_ = changed;
}

void SGD::set_learning_rate(double rate) {
  SGDOptions changed = options_;
  changed.learning_rate(rate).validate();
  options_ = changed;
}

namespace {
// Flush-to-zero and denormals-are-zero for the update loops, restored on exit. A parameter whose
// gradient stays 0 (a dead ReLU unit) has its moments decay geometrically into subnormal floats,
// where every multiply takes a microcode assist: measured, Adam's pass ran 3× slower for it.
// Values below 1.2e-38 are far below anything that can move a float parameter. Set on each
// thread that runs a part of an update.
class FlushDenormals {
 public:
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// A parameter's update is split over the pool from this many values on (below, one thread is
// faster than waking another); each element's update is independent of the split.
constexpr std::int64_t kUpdateGrain = 16'384;

// The parts are whole blocks of 16 rows of a matrix (the last axis is a row), as the split
// matmul's parts are (linalg.cpp): each thread updates the rows whose gradient it computed and
// that it will read again in the next step's forward product, from its own core's cache.
constexpr std::int64_t kUpdateRowBlock = 16;

template <class F>
void for_parts_of(const Parameter& parameter, F&& f) {
  const auto size = static_cast<std::int64_t>(parameter.value.size());
  const std::int64_t row =
      parameter.shape.rank() >= 2 ? parameter.shape[parameter.shape.rank() - 1] : 1;
  const std::int64_t block = std::max<std::int64_t>(1, kUpdateRowBlock * row);
  const std::int64_t blocks = (size + block - 1) / block;
  autodiff::parallel_for(
      blocks,
      [&](std::int64_t first, std::int64_t last) {
        const FlushDenormals flush;
        f(static_cast<std::size_t>(first * block),
          static_cast<std::size_t>(std::min(size, last * block)));
      },
      std::max<std::int64_t>(1, kUpdateGrain / block));
}
}  // namespace

void Optimizer::backward_and_step(const Tensor<float>& loss,
                                  std::span<Parameter* const> parameters) {
  watch_tape();
  if (!begin_step(parameters)) {
    loss.backward();
    update(parameters);
    return;
  }
  // Each parameter is finished when the sweep passes its first leaf on the tape (a parameter
  // put on the tape twice has two leaves sharing its gradient).
  autodiff::Tape& tape = autodiff::Tape::active();
  parameter_of_node_.assign(tape.coarse_node_count(), kNoParameter);
  updated_.assign(parameters.size(), 0);
  for (std::size_t k = 0; k < parameters.size(); ++k) {
    const float* grad = parameters[k]->grad.data();
    if (parameters[k]->grad.empty()) continue;
    for (std::uint32_t id = 0; id < parameter_of_node_.size(); ++id) {
      const autodiff::CoarseNode& node = tape.coarse_node(id);
      if (node.is_leaf && node.grad == grad) {
        parameter_of_node_[id] = static_cast<std::uint32_t>(k);
        break;
      }
    }
  }
  stepping_ = parameters;
  struct Unhook {  // however backward() ends
    autodiff::Tape& tape;
    ~Unhook() { tape.on_leaf_finished(nullptr, nullptr); }
  } unhook{tape};
  tape.on_leaf_finished(&Optimizer::on_leaf_finished, this);
  loss.backward();
  for (std::size_t k = 0; k < parameters.size(); ++k)
    if (!updated_[k]) update_parameter(k, *parameters[k]);
}

void Optimizer::update(std::span<Parameter* const> parameters) {
  if (!begin_step(parameters))
    throw std::logic_error(
        "an optimizer overrides update(), or begin_step() and update_parameter()");
  for (std::size_t k = 0; k < parameters.size(); ++k) update_parameter(k, *parameters[k]);
}

void Optimizer::on_leaf_finished(void* optimizer, std::uint32_t node) {
  auto& self = *static_cast<Optimizer*>(optimizer);
  if (node >= self.parameter_of_node_.size()) return;
  const std::uint32_t k = self.parameter_of_node_[node];
  if (k == kNoParameter || self.updated_[k]) return;
  self.update_parameter(k, *self.stepping_[k]);
  self.updated_[k] = 1;
}

bool Adam::begin_step(std::span<Parameter* const> parameters) {
  match_buffers(m_, parameters, "Adam");
  match_buffers(v_, parameters, "Adam");
  ++t_;
  const double t = static_cast<double>(t_);
  alpha_ =
      static_cast<float>(options_.learning_rate_ * std::sqrt(1.0 - std::pow(options_.beta2_, t)) /
                         (1.0 - std::pow(options_.beta1_, t)));
  return true;
}

// One pass that reads g, m, v and p once, and writes them once (g as zeros).
void Adam::update_parameter(std::size_t k, Parameter& parameter) {
  const float alpha = alpha_, b1 = float(options_.beta1_), b2 = float(options_.beta2_),
              eps = float(options_.epsilon_);
  float* __restrict p = parameter.value.data();
  float* __restrict g = parameter.grad.data();
  float* __restrict m = m_[k].data();
  float* __restrict v = v_[k].data();
  for_parts_of(parameter, [=](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float mi = b1 * m[i] + (1.0f - b1) * gi;
      const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] -= alpha * mi / (std::sqrt(vi) + eps);
      g[i] = 0.0f;
    }
  });
}

void SGDOptions::validate() const {
  require(learning_rate_ > 0 && std::isfinite(learning_rate_), "SGD", "learning_rate",
          learning_rate_, "> 0");
  require(momentum_ >= 0 && momentum_ < 1, "SGD", "momentum", momentum_, "in [0, 1)");
}

SGD::SGD(SGDOptions options) : options_(options) { options_.validate(); }

bool SGD::begin_step(std::span<Parameter* const> parameters) {
  match_buffers(velocity_, parameters, "SGD");
  return true;
}

void SGD::update_parameter(std::size_t k, Parameter& parameter) {
  const float lr = float(options_.learning_rate_), mu = float(options_.momentum_);
  const bool nesterov = options_.nesterov_;
  float* __restrict p = parameter.value.data();
  float* __restrict g = parameter.grad.data();
  float* __restrict velocity = velocity_[k].data();
  for_parts_of(parameter, [=](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      velocity[i] = mu * velocity[i] - lr * g[i];
      p[i] += nesterov ? mu * velocity[i] - lr * g[i] : velocity[i];
      g[i] = 0.0f;
    }
  });
}

}  // namespace nn

// Checkpoints: an optimizer's state out and back in.
namespace nn {

double OptimizerState::setting(const std::string& name) const {
  for (const auto& [key, value] : settings)
    if (key == name) return value;
  throw std::invalid_argument(fmt::format("{} optimizer state: no setting \"{}\"", type, name));
}

namespace {

void check_state_type(const OptimizerState& state, const char* expected) {
  if (state.type != expected)
    throw std::invalid_argument(
        fmt::format("{}: the optimizer state is {}'s", expected, state.type));
  // The next step adds one.
  if (state.iterations < 0 || state.iterations == std::numeric_limits<std::int64_t>::max())
    throw std::invalid_argument(
        fmt::format("{}: the state's step count is {}, expected ≥ 0 and < {}", expected,
                    state.iterations, std::numeric_limits<std::int64_t>::max()));
}

// The slot's arrays, checked against the parameters: none (before a first step) or one per
// parameter, of its size.
std::vector<std::vector<float>> checked_slot(const OptimizerState& state, const char* name,
                                             std::span<Parameter* const> parameters) {
  for (const auto& [key, buffers] : state.slots) {
    if (key != name) continue;
    if (buffers.empty()) return {};
    if (buffers.size() != parameters.size())
      throw std::invalid_argument(
          fmt::format("{}: the state's slot \"{}\" has {} arrays for {} parameters", state.type,
                      name, buffers.size(), parameters.size()));
    for (std::size_t i = 0; i < buffers.size(); ++i)
      if (buffers[i].size() != parameters[i]->value.size())
        throw std::invalid_argument(fmt::format(
            "{}: the state's slot \"{}\" has {} values for parameter {} ('{}') of {}", state.type,
            name, buffers[i].size(), i, parameters[i]->name, parameters[i]->value.size()));
    return buffers;
  }
  return {};
}

}  // namespace

OptimizerState Adam::state() const {
  OptimizerState s{"Adam",
                   {{"learning_rate", options_.learning_rate_},
                    {"beta1", options_.beta1_},
                    {"beta2", options_.beta2_},
                    {"epsilon", options_.epsilon_}},
                   t_,
                   {}};
  if (!m_.empty()) s.slots = {{"m", m_}, {"v", v_}};
  return s;
}

void Adam::load_state(const OptimizerState& state, std::span<Parameter* const> parameters) {
  check_state_type(state, "Adam");
  AdamOptions options = AdamOptions()
                            .learning_rate(state.setting("learning_rate"))
                            .beta1(state.setting("beta1"))
                            .beta2(state.setting("beta2"))
                            .epsilon(state.setting("epsilon"));
  options.validate();
  auto m = checked_slot(state, "m", parameters);
  auto v = checked_slot(state, "v", parameters);
  if (m.empty() != v.empty())
    throw std::invalid_argument(
        "Adam: the state has one of the slots \"m\" and \"v\" but not both");
  options_ = options;
  t_ = state.iterations;
  m_ = std::move(m);
  v_ = std::move(v);
}

OptimizerState SGD::state() const {
  OptimizerState s{"SGD",
                   {{"learning_rate", options_.learning_rate_},
                    {"momentum", options_.momentum_},
                    {"nesterov", options_.nesterov_ ? 1.0 : 0.0}},
                   0,
                   {}};
  if (!velocity_.empty()) s.slots = {{"velocity", velocity_}};
  return s;
}

void SGD::load_state(const OptimizerState& state, std::span<Parameter* const> parameters) {
  check_state_type(state, "SGD");
  const double nesterov = state.setting("nesterov");
  if (nesterov != 0.0 && nesterov != 1.0)
    throw std::invalid_argument(fmt::format("SGD: nesterov is {}, expected 0 or 1", nesterov));
  SGDOptions options = SGDOptions()
                           .learning_rate(state.setting("learning_rate"))
                           .momentum(state.setting("momentum"))
                           .nesterov(nesterov == 1.0);
  options.validate();
  auto velocity = checked_slot(state, "velocity", parameters);
  options_ = options;
  velocity_ = std::move(velocity);
}

}  // namespace nn
