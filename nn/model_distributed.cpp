// Model's data-parallel training (Model::distribute): the checks that the ranks run the same
// training, the state they share, and one step over this rank's share of a global batch.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "nn/model.hpp"

namespace nn {

using autodiff::Tensor;

void Model::distribute(Communicator* communicator, DistributedOptions options) {
  if (communicator && communicator->size() < 1)
    throw std::invalid_argument(
        fmt::format("Model::distribute: a communicator of {} ranks", communicator->size()));
  if (options.bucket_bytes == 0)
    throw std::invalid_argument("Model::distribute: bucket_bytes is 0, expected ≥ 1");
  buckets_.reset();
  communicator_ = communicator;
  distributed_options_ = options;
}

void Model::check_ranks_agree(const BatchSource& data, const FitOptions& options) {
  // What must be the same everywhere for the ranks to take the same steps: rank 0's values are
  // sent to all, and a rank that differs says how.
  const std::uint64_t generator_hash = std::hash<std::string>{}(progress_.generator);
  const std::vector<std::pair<const char*, double>> mine = {
      {"rows of data", double(data.size())},
      {"batch_size", double(options.batch_size)},
      {"epochs", double(options.epochs)},
      {"initial_epoch", double(options.initial_epoch)},
      {"validation_split", options.validation_split},
      {"shuffle", double(options.shuffle)},
      {"seed (high half)", double(options.seed >> 32)},
      {"seed (low half)", double(options.seed & 0xffffffffu)},
      {"parameters", double(network_->parameter_count())},
      {"optimizer steps", double(optimizer_->state().iterations)},
      {"checkpoint epoch", double(progress_.epoch)},
      {"checkpoint generator (hash, high half)", double(generator_hash >> 32)},
      {"checkpoint generator (hash, low half)", double(generator_hash & 0xffffffffu)}};
  std::vector<double> rank0(mine.size());
  for (std::size_t k = 0; k < mine.size(); ++k) rank0[k] = mine[k].second;
  communicator_->broadcast(std::as_writable_bytes(std::span(rank0)));
  std::string differences;
  for (std::size_t k = 0; k < mine.size(); ++k)
    if (!(mine[k].second == rank0[k]))
      differences += fmt::format("{}{} is {} here, {} on rank 0", differences.empty() ? "" : "; ",
                                 mine[k].first, mine[k].second, rank0[k]);
  if (!differences.empty())
    throw std::invalid_argument(fmt::format(
        "the ranks do not run the same training: {} (every rank needs the same data, options "
        "and checkpoint)",
        differences));
}

void Model::broadcast_state() {
  for (const NamedParameter& p : network_->named_state())
    communicator_->broadcast(std::as_writable_bytes(std::span(p.parameter->value)));
  // The counters too (Dropout's call number: which masks the next step draws).
  for (const auto& [name, counter] : network_->named_counters())
    communicator_->broadcast(std::as_writable_bytes(std::span(counter, 1)));
}

void Model::average_buffers() {
  const std::vector<NamedParameter> buffers = network_->named_buffers();
  if (buffers.empty()) return;  // the same model on every rank: all skip the exchange
  std::vector<double> values;
  for (const NamedParameter& b : buffers)
    values.insert(values.end(), b.parameter->value.begin(), b.parameter->value.end());
  communicator_->sum(values);
  // Buffers already equal stay bit for bit what they were: n·v and n·v / n are exact in double.
  const double ranks = double(communicator_->size());
  auto in = values.begin();
  for (const NamedParameter& b : buffers)
    for (float& v : b.parameter->value) v = float(*in++ / ranks);
}

void Model::agree_to_stop() {
  double stopping = stop_reason_.empty() ? 0.0 : 1.0;
  communicator_->sum(std::span(&stopping, 1));
  if (stopping > 0 && stop_reason_.empty()) stop_reason_ = "another rank stopped training";
}

const Evaluation& Model::distributed_train_step(const BatchSource& data,
                                                std::span<const std::int64_t> rows) {
  try {
    if (rows.empty()) throw std::invalid_argument("no rows");
    if (!buckets_ || !buckets_->watches(parameters_)) {
      buckets_.reset();  // unwatches the old parameters first
      buckets_ =
          std::make_unique<GradientBuckets>(*communicator_, parameters_, distributed_options_);
    }
    const auto [first, last] = shard_of(0, std::int64_t(rows.size()), *communicator_);
    const auto mine = rows.subspan(std::size_t(first), std::size_t(last - first));
    const double global_rows = double(rows.size());
    buckets_->begin_step(float(double(mine.size()) / global_rows));
    struct Share {  // where this rank's rows lie, for Dropout; unset however the step ends
      Module& network;
      ~Share() { network.set_batch_share({}); }
    } share{*network_};
    network_->set_batch_share({.first_row = first, .empty = mine.empty()});
    autodiff::Tape& tape = autodiff::Tape::active();
    tape.clear();
    step_sums_.assign(1 + metrics_.size(), 0.0);
    if (!mine.empty()) {  // a rank with no rows sends zeros
      const Tensor<float> x = data.features(mine);
      const Tensor<float> y_true = data.targets(mine);
      const Tensor<float> y_pred = (*network_)(x);
      const Tensor<float> loss = loss_(y_true, y_pred);
      loss.backward();  // the buckets start as the sweep completes them
      const double n = double(mine.size());
      step_sums_[0] = double(loss.item()) * n;
      autodiff::NoGradGuard no_grad;
      for (std::size_t k = 0; k < metrics_.size(); ++k)
        step_sums_[k + 1] = metrics_[k].compute(y_true, y_pred) * n;
    }
    buckets_->finish(step_sums_);
    for (double& s : step_sums_) s /= global_rows;
    // The global batch's loss decides, the same on every rank.
    if (std::isfinite(step_sums_[0])) {
      optimizer_->step(parameters_);
    } else {
      for (Parameter* p : parameters_) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
    }
    step_logs_.set("loss", step_sums_[0]);
    for (std::size_t k = 0; k < metrics_.size(); ++k)
      step_logs_.set(metrics_[k].name, step_sums_[k + 1]);
    return step_logs_;
  } catch (const std::exception& error) {
    communicator_->abort(fmt::format("train_step: {}", error.what()));
  }
}

}  // namespace nn
