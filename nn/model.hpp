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
#include <string>
#include <vector>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/losses.hpp"
#include "nn/optimizers.hpp"

namespace nn {

struct FitOptions {
  std::int64_t batch_size = 32;
  int epochs = 1;
  /// The last fraction of the data, taken before any shuffling, is held out for validation
  /// (Keras's rule); in [0, 1).
  double validation_split = 0.0;
  /// Reshuffle the training rows at every epoch.
  bool shuffle = true;
  std::uint64_t seed = 0;
  /// 0: silent. 1: Keras's progress bar, redrawn in place on a terminal and one line per epoch
  /// otherwise. 2: one line per epoch.
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
  /// whole or not at all (a temporary file renamed into place); throws DataError on failure.
  void write_csv(const std::string& path) const;
};

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

/// The fraction of rows whose largest prediction is at the label.
double accuracy(std::span<const std::int32_t> labels, const autodiff::Tensor<float>& y_pred);

class Model {
 public:
  /// Throws std::invalid_argument for a null optimizer or loss.
  Model(Sequential network, LossFunction loss, std::unique_ptr<Optimizer> optimizer);

  /// Trains on `data` (one-hot targets are made from its labels), returns per-epoch logs.
  /// Throws std::invalid_argument for bad options (batch size, split, too little data).
  History fit(const Dataset& data, const FitOptions& options);
  /// Mean loss and accuracy over `data`, in batches, without recording gradients.
  Evaluation evaluate(const Dataset& data, std::int64_t batch_size = 32);
  /// The network's outputs for the rows of `data`: size() × classes values, row-major.
  std::vector<float> predict(const Dataset& data, std::int64_t batch_size = 32);

  /// One optimisation step on the given rows: returns (loss, accuracy) of the batch. The
  /// active tape is cleared first.
  Evaluation train_step(const Dataset& data, std::span<const std::int64_t> rows);

  Sequential& network() { return network_; }

 private:
  Sequential network_;
  LossFunction loss_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Parameter*> parameters_;
  std::vector<std::int32_t> labels_;  // the current batch's, reused
};

}  // namespace nn
