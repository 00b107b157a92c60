#pragma once
// A Keras-like model: any module, a loss, an optimizer and metrics; then fit / evaluate /
// predict on any data (nn::BatchSource), with callbacks.
//
//   nn::Model model(std::move(network), nn::categorical_crossentropy,
//                   std::make_unique<nn::Adam>());
//   auto history = model.fit(train, {.batch_size = 32, .epochs = 10, .validation_split = 0.1});
//   double accuracy = model.evaluate(test)["accuracy"];

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nn/callbacks.hpp"
#include "nn/communicator.hpp"
#include "nn/conv_layers.hpp"
#include "nn/data.hpp"
#include "nn/data_parallel.hpp"
#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/metrics.hpp"
#include "nn/optimizers.hpp"
#include "nn/source.hpp"

namespace nn {

struct FitOptions {
  /// > 0; larger than the training rows means one batch of all of them.
  std::int64_t batch_size = 32;
  /// The epoch to stop after, counted from the start of the whole run (Keras's meaning): with
  /// initial_epoch 2 and epochs 4, fit trains epochs 3 and 4. ≥ initial_epoch.
  int epochs = 1;
  /// The epochs already done (Keras's initial_epoch), ≥ 0: to continue a run, e.g. after
  /// load_checkpoint (serialize.hpp). The shuffled order then continues from the checkpoint's
  /// generator when the model holds one for this epoch (Model::progress()), and otherwise is
  /// replayed from the seed, so that it is the uninterrupted run's either way.
  int initial_epoch = 0;
  /// The last fraction of the data, taken before any shuffling, is held out for validation
  /// (Keras's rule); in [0, 1).
  double validation_split = 0.0;
  /// Reshuffle the training rows at every epoch.
  bool shuffle = true;
  std::uint64_t seed = 0;
  /// 0: silent. 1: Keras's progress bar, redrawn in place on a terminal and one line per epoch
  /// otherwise. 2: one line per epoch. Nothing else is accepted.
  int verbose = 1;
  /// Where progress goes (stdout by default).
  std::FILE* out = nullptr;
  /// Called at the start and end of training, of each epoch and after each batch.
  std::vector<Callback*> callbacks = {};
  /// Stop, with a message naming the epoch and batch, as soon as the loss is NaN or infinite
  /// (Keras's TerminateOnNaN, on by default).
  bool stop_on_non_finite_loss = true;
};

/// Named values of one pass over data: "loss", then each metric by name (and "val_…" for the
/// validation pass of an epoch), in that order. Absent names read as NaN.
class Logs {
 public:
  double operator[](std::string_view name) const;
  bool has(std::string_view name) const;
  void set(std::string_view name, double value);
  const std::vector<std::pair<std::string, double>>& values() const { return values_; }

 private:
  std::vector<std::pair<std::string, double>> values_;
};

using Evaluation = Logs;

struct EpochLog : Logs {
  int epoch = 0;  // 1-based
  double seconds = 0;
};

struct History {
  std::vector<EpochLog> epochs;
  /// Why training ended before its last epoch (a callback's reason, or a non-finite loss);
  /// empty when every epoch ran.
  std::string stop_reason;
  /// Training stopped because the loss was not finite.
  bool diverged = false;
  /// `epoch,<the logs' names>,seconds`, one row per epoch (for the MNIST recipe:
  /// epoch,loss,accuracy,val_loss,val_accuracy,seconds). Written whole or not at all; throws
  /// DataError on failure.
  void write_csv(const std::string& path) const;
};

/// Keras's validation split: rows [0, split) train, rows [split, rows) validate, with
/// split = ⌊rows·(1 − fraction)⌋, taken before any shuffling. Throws unless fraction ∈ [0, 1)
/// and rows ≥ 0.
std::int64_t validation_split_point(std::int64_t rows, double fraction);

/// The order in which fit visits the training rows: 0, 1, … unshuffled, or a fresh seeded
/// permutation at every epoch.
class EpochOrder {
 public:
  EpochOrder(std::int64_t rows, bool shuffle, std::uint64_t seed);
  std::span<const std::int64_t> next_epoch();

  /// The state the next epoch depends on: the current permutation and the generator's state (the
  /// standard text form of std::mt19937_64).
  std::span<const std::int64_t> order() const { return order_; }
  std::string generator_state() const;
  /// Continues from such a state. Throws std::invalid_argument unless `order` is a permutation
  /// of 0 … rows−1 and `generator` a valid generator state.
  void restore(std::span<const std::int64_t> order, const std::string& generator);

 private:
  std::vector<std::int64_t> order_;
  bool shuffle_;
  std::mt19937_64 rng_;
};

/// Where a run of fit stands after its last completed epoch: what a checkpoint saves besides the
/// weights and the optimizer, so that training continues exactly as if it had not stopped.
struct TrainingProgress {
  int epoch = 0;  // epochs completed, counted from the start of the run
  bool shuffle = true;
  std::vector<std::int64_t> order;  // the EpochOrder's permutation and generator
  std::string generator;
  History history;  // every epoch of the run so far
};

/// The fraction of rows whose largest prediction is at the label.
double accuracy(std::span<const std::int32_t> labels, const autodiff::Tensor<float>& y_pred);

/// A loss: any callable of (y_true, y_pred) returning a one-element tensor (the batch's mean).
using Loss = std::function<Tensor<float>(const Tensor<float>& y_true, const Tensor<float>& y_pred)>;

class Model {
 public:
  /// Any module is the network. Metrics default to accuracy, Keras's MNIST recipe; pass {} (or
  /// {metrics::mean_absolute_error()}) for a regression. Throws std::invalid_argument for a null
  /// loss or optimizer.
  template <std::derived_from<Module> M>
  Model(M network, Loss loss, std::unique_ptr<Optimizer> optimizer,
        std::vector<Metric> metrics = {metrics::accuracy()})
      : Model(std::make_unique<M>(std::move(network)), std::move(loss), std::move(optimizer),
              std::move(metrics)) {}
  /// For inference only: predict works, fit and evaluate throw.
  template <std::derived_from<Module> M>
  explicit Model(M network) : network_(std::make_unique<M>(std::move(network))) {}
  /// The same for a module on the heap (e.g. from load_model); throws for a null one.
  explicit Model(std::unique_ptr<Module> network);
  /// For evaluation and inference (e.g. of a loaded model): evaluate and predict work, fit
  /// throws.
  Model(std::unique_ptr<Module> network, Loss loss,
        std::vector<Metric> metrics = {metrics::accuracy()});
  Model(std::unique_ptr<Module> network, Loss loss, std::unique_ptr<Optimizer> optimizer,
        std::vector<Metric> metrics);

  /// Trains on `data` and returns the per-epoch logs. The network is in training mode during
  /// the epochs and in evaluation mode for the validation passes. Throws std::invalid_argument
  /// for bad options (each named) or too little data.
  History fit(const BatchSource& data, const FitOptions& options);
  /// IDX images with one-hot targets of their labels.
  History fit(const Dataset& data, const FitOptions& options);
  /// The mean loss and metrics over `data`, in batches, in evaluation mode, recording nothing.
  Evaluation evaluate(const BatchSource& data, std::int64_t batch_size = 32);
  Evaluation evaluate(const Dataset& data, std::int64_t batch_size = 32);
  /// The network's outputs for every row of `data` (targets not needed), row-major.
  std::vector<float> predict(const BatchSource& data, std::int64_t batch_size = 32);
  std::vector<float> predict(const Dataset& data, std::int64_t batch_size = 32);
  /// The outputs for rows given directly: one sample is shape (1, features…).
  std::vector<float> predict(std::span<const float> features, const Shape& shape);

  /// One optimisation step on the given rows, the tape cleared first: the batch's logs (valid
  /// until the next step).
  const Evaluation& train_step(const BatchSource& data, std::span<const std::int64_t> rows);
  const Evaluation& train_step(const Dataset& data, std::span<const std::int64_t> rows);

  Module& network() { return *network_; }
  template <std::derived_from<Module> M>
  M& network() {
    if (auto* typed = dynamic_cast<M*>(network_.get())) return *typed;
    throw std::invalid_argument("Model::network: the network is a " + network_->describe() +
                                ", not of the type asked for");
  }
  Optimizer& optimizer();
  const std::vector<Metric>& metrics() const { return metrics_; }
  /// For callbacks: ends fit after the current epoch, with this reason in the History.
  void stop_training(std::string reason);
  /// The run so far: updated by fit at the end of each epoch (so a checkpoint callback saves the
  /// epoch that just ended), set by load_checkpoint.
  const TrainingProgress& progress() const { return progress_; }
  void set_progress(TrainingProgress progress) { progress_ = std::move(progress); }

  /// Data-parallel training with the other ranks of `communicator` (nn/distributed.hpp over MPI),
  /// each rank running the same program: fit starts from rank 0's parameters, buffers and
  /// counters, each step trains on this rank's share of the global batch (batch_size is the global
  /// batch's) and applies the gradient summed over the ranks (data_parallel.hpp); the logs,
  /// validation and evaluate are reduced over the ranks, so every rank sees the same numbers; only
  /// rank 0 prints.
  /// Dropout draws each row's mask by its row in the global batch (the single process's masks).
  /// BatchNormalization normalises with each rank's own share's statistics (as PyTorch's DDP
  /// without SyncBatchNorm); its moving statistics, like every buffer, are averaged over the ranks
  /// at each epoch's end and before evaluate, so that all ranks hold the same ones.
  /// An exception on any rank in fit or train_step ends the whole job with its message. Null: a
  /// single process again.
  void distribute(Communicator* communicator, DistributedOptions options = {});
  Communicator* communicator() const { return communicator_; }
  /// Rank 0 of a data-parallel run, or a single process: the one that writes files and prints.
  bool is_main_process() const { return !communicator_ || communicator_->rank() == 0; }

 private:
  /// `what` names the caller in errors ("evaluate", "fit (validation)").
  Evaluation evaluate_rows(const BatchSource& data, std::int64_t begin, std::int64_t end,
                           std::int64_t batch_size, const std::string& prefix,
                           const char* what = "evaluate");
  void require_training(const char* what) const;
  void require_loss(const char* what) const;
  // Sets epoch_order and progress_ to where options.initial_epoch says the run stands.
  void resume_progress(EpochOrder& epoch_order, std::int64_t rows, const FitOptions& options);
  History fit_here(const BatchSource& data, const FitOptions& options);
  // Data-parallel: fit's checks that every rank runs the same training, and rank 0's state sent to
  // all; train_step on this rank's share; an epoch's end stopping every rank if one stops.
  void check_ranks_agree(const BatchSource& data, const FitOptions& options);
  void broadcast_state();
  const Evaluation& distributed_train_step(const BatchSource& data,
                                           std::span<const std::int64_t> rows);
  void agree_to_stop();
  // Data-parallel: every buffer (BatchNormalization's moving statistics) set to its mean over the
  // ranks, the same on all.
  void average_buffers();

  std::unique_ptr<Module> network_;
  Loss loss_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Metric> metrics_;
  std::vector<Parameter*> parameters_;
  std::string stop_reason_;
  TrainingProgress progress_;
  Evaluation step_logs_;
  std::unique_ptr<LabelledImages> images_;  // train_step(Dataset)'s adapter, kept for the next
  Communicator* communicator_ = nullptr;
  DistributedOptions distributed_options_;
  std::unique_ptr<GradientBuckets> buckets_;  // after network_: unwatches its parameters first
  std::vector<double> step_sums_;             // a distributed step's loss and metrics × rows
};

/// One step of a hand-written loop, with the tape handled: clears the active tape, records
/// `batch()` (which returns x and y_true), the network's forward and the loss, runs backward and
/// the optimizer. Returns the batch's loss.
double train_step(Module& network, const Loss& loss, Optimizer& optimizer,
                  const std::function<std::pair<Tensor<float>, Tensor<float>>()>& batch);

}  // namespace nn
