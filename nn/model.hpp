#pragma once
// A Keras-like model: compile with a loss and an optimizer, then fit / evaluate / predict.
//
//   nn::Model model(std::move(network), nn::categorical_crossentropy,
//                   std::make_unique<nn::Adam>());
//   auto history = model.fit(train, {.batch_size = 32, .epochs = 10, .validation_split = 0.1});
//   auto [loss, accuracy] = model.evaluate(test);

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/optimizers.hpp"

namespace nn {

struct FitOptions {
  /// > 0; larger than the training rows means one batch of all of them.
  std::int64_t batch_size = 32;
  /// ≥ 0.
  int epochs = 1;
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
};

struct EpochLog {
  int epoch = 0;  // 1-based
  double loss = 0, accuracy = 0;
  double val_loss = 0, val_accuracy = 0;  // NaN without a validation split
  double seconds = 0;
};

struct History {
  std::vector<EpochLog> epochs;
  /// `epoch,loss,accuracy,val_loss,val_accuracy,seconds`, one row per epoch. The file is written
  /// whole or not at all (write_file_atomically); throws DataError on failure.
  void write_csv(const std::string& path) const;
};

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
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

 private:
  std::vector<std::int64_t> order_;
  bool shuffle_;
  std::mt19937_64 rng_;
};

/// The fraction of rows whose largest prediction is at the label.
double accuracy(std::span<const std::int32_t> labels, const autodiff::Tensor<float>& y_pred);

class Model {
 public:
  /// Throws std::invalid_argument for a null optimizer or loss.
  Model(Sequential network, LossFunction loss, std::unique_ptr<Optimizer> optimizer);

  /// Trains on `data` (one-hot targets are made from its labels), returns per-epoch logs.
  /// Throws std::invalid_argument naming the option for bad options (batch_size ≤ 0, epochs < 0,
  /// validation_split outside [0, 1), verbose outside 0–2), and for too little data (no
  /// training row left after the split), before any training.
  History fit(const Dataset& data, const FitOptions& options);
  /// Mean loss and accuracy over `data`, in batches, without recording gradients. Throws
  /// std::invalid_argument for an empty `data` (there is no accuracy of nothing) or a
  /// batch_size ≤ 0.
  Evaluation evaluate(const Dataset& data, std::int64_t batch_size = 32);
  /// The network's outputs for the rows of `data`: size() × classes values, row-major.
  std::vector<float> predict(const Dataset& data, std::int64_t batch_size = 32);

  /// One optimisation step on the given rows: returns (loss, accuracy) of the batch. The
  /// active tape is cleared first.
  Evaluation train_step(const Dataset& data, std::span<const std::int64_t> rows);

  Sequential& network() { return network_; }

 private:
  // f(rows, outputs) for each batch of `data` in order, without recording gradients.
  template <class F>
  void for_each_batch(const Dataset& data, std::int64_t batch_size, const char* what, F&& f);

  Sequential network_;
  LossFunction loss_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Parameter*> parameters_;
  std::vector<std::int32_t> labels_;  // the current batch's, reused
};

}  // namespace nn
