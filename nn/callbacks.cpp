#include "nn/callbacks.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include <fmt/format.h>

#include "nn/model.hpp"

namespace nn {

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.patience < 0)
    throw std::invalid_argument(
        fmt::format("EarlyStopping: patience is {}, expected ≥ 0", options_.patience));
  if (!(options_.min_delta >= 0))
    throw std::invalid_argument(
        fmt::format("EarlyStopping: min_delta is {}, expected ≥ 0", options_.min_delta));
  const std::string& m = options_.monitor;
  const bool accuracy_like = m.size() >= 8 && m.compare(m.size() - 8, 8, "accuracy") == 0;
  higher_is_better_ = options_.mode != 0 ? options_.mode > 0 : accuracy_like;
}

void EarlyStopping::on_train_begin(Model&) {
  best_ = higher_is_better_ ? -INFINITY : INFINITY;
  best_epoch_ = wait_ = stopped_epoch_ = 0;
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(Model& model, const History& history) {
  const EpochLog& log = history.epochs.back();
  if (!log.has(options_.monitor)) {
    std::string names;
    for (const auto& [name, _] : log.values()) names += (names.empty() ? "" : ", ") + name;
    throw std::invalid_argument(fmt::format(
        "EarlyStopping: \"{}\" is not in the epoch logs (they have: {}); a val_ name needs a "
        "validation_split",
        options_.monitor, names));
  }
  const double value = log[options_.monitor];
  const bool improved =
      higher_is_better_ ? value > best_ + options_.min_delta : value < best_ - options_.min_delta;
  if (improved) {
    best_ = value;
    best_epoch_ = log.epoch;
    wait_ = 0;
    if (options_.restore_best_weights) {
      best_weights_.clear();
      for (const Parameter* p : model.network().parameters()) best_weights_.push_back(p->value);
    }
    return;
  }
  // Keras's rule: stop once `patience` epochs in a row have not improved (0 and 1 alike: the
  // first one that does not).
  if (++wait_ >= options_.patience) {
    stopped_epoch_ = log.epoch;
    model.stop_training(
        fmt::format("early stopping: {} has not improved on {:.6g} (epoch {}) for {} epoch{}",
                    options_.monitor, best_, best_epoch_, wait_, wait_ == 1 ? "" : "s"));
  }
}

void EarlyStopping::on_train_end(Model& model, const History& history) {
  // After a divergence the weights moved past the last logged epoch: restore even then.
  if (!options_.restore_best_weights || best_weights_.empty() ||
      (!history.diverged && !history.epochs.empty() && history.epochs.back().epoch == best_epoch_))
    return;
  const auto parameters = model.network().parameters();
  for (std::size_t i = 0; i < parameters.size() && i < best_weights_.size(); ++i)
    parameters[i]->value = best_weights_[i];
}

void LearningRateScheduler::on_epoch_begin(Model& model, int epoch) {
  Optimizer& optimizer = model.optimizer();
  optimizer.set_learning_rate(schedule_(epoch, optimizer.learning_rate()));
}

LearningRateScheduler step_decay(double initial, double factor, int every) {
  if (!(initial > 0) || !(factor > 0) || every < 1)
    throw std::invalid_argument(fmt::format(
        "step_decay: initial {}, factor {}, every {}: expected initial > 0, factor > 0, every ≥ 1",
        initial, factor, every));
  return LearningRateScheduler(
      [=](int epoch, double) { return initial * std::pow(factor, double((epoch - 1) / every)); });
}

LearningRateScheduler cosine_decay(double initial, int epochs, double minimum) {
  if (!(initial > 0) || epochs < 1 || !(minimum > 0 || minimum == 0) || minimum > initial)
    throw std::invalid_argument(fmt::format(
        "cosine_decay: initial {}, epochs {}, minimum {}: expected 0 ≤ minimum ≤ initial, "
        "initial > 0, epochs ≥ 1",
        initial, epochs, minimum));
  return LearningRateScheduler([=](int epoch, double) {
    const double progress = double(std::min(epoch, epochs) - 1) / double(epochs);  // < 1
    return minimum + (initial - minimum) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  });
}

}  // namespace nn
