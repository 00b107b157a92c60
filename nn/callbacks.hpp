#pragma once
// Callbacks in Keras's spirit: fit calls them at the start and end of training, of each epoch
// and after each batch, with the history so far. A callback stops training with
// model.stop_training(reason). The library's: EarlyStopping, LearningRateScheduler (step and
// cosine decay); a user's: derive from Callback, or LambdaCallback.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nn {

class Model;
struct History;

struct BatchEnd {
  int epoch;             // 1-based
  std::int64_t batch;    // 1-based, within the epoch
  std::int64_t batches;  // in the epoch
  double loss;           // this batch's
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Model&) {}
  virtual void on_epoch_begin(Model&, int /*epoch*/) {}
  virtual void on_batch_end(Model&, const BatchEnd&) {}
  /// `history.epochs.back()` is the epoch that just ended.
  virtual void on_epoch_end(Model&, const History&) {}
  virtual void on_train_end(Model&, const History&) {}
};

/// Stops when the monitored value ("val_loss" by default, any name in the epoch logs) has not
/// improved by more than min_delta for `patience` epochs; restores the best epoch's weights at the
/// end of training (by default).
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  bool restore_best_weights = true;
  /// Whether larger is better; by default, true for names ending in "accuracy", else false.
  int mode = 0;  // 0: from the name; +1: larger is better; −1: smaller is better
};

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(Model& model) override;
  void on_epoch_end(Model& model, const History& history) override;
  void on_train_end(Model& model, const History& history) override;

  int best_epoch() const { return best_epoch_; }
  double best() const { return best_; }
  /// The epoch after which it stopped training, 0 if it did not.
  int stopped_epoch() const { return stopped_epoch_; }

 private:
  EarlyStoppingOptions options_;
  bool higher_is_better_ = false;
  double best_ = 0;
  int best_epoch_ = 0, wait_ = 0, stopped_epoch_ = 0;
  std::vector<std::vector<float>> best_weights_;
};

/// Sets the optimizer's learning rate at the start of each epoch to schedule(epoch, rate) (epoch
/// 1-based, rate the current one).
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int epoch, double rate)> schedule)
      : schedule_(std::move(schedule)) {}
  void on_epoch_begin(Model& model, int epoch) override;

 private:
  std::function<double(int, double)> schedule_;
};

/// initial · factor^⌊(epoch − 1) / every⌋. Throws std::invalid_argument for a bad argument.
LearningRateScheduler step_decay(double initial, double factor, int every);
/// minimum + (initial − minimum)·(1 + cos(π·(epoch − 1)/epochs))/2; past `epochs`, the last value.
LearningRateScheduler cosine_decay(double initial, int epochs, double minimum = 0.0);

/// A user's callback from functions (any may be empty).
struct LambdaCallback : Callback {
  std::function<void(Model&, int)> epoch_begin;
  std::function<void(Model&, const BatchEnd&)> batch_end;
  std::function<void(Model&, const History&)> epoch_end;
  void on_epoch_begin(Model& m, int epoch) override {
    if (epoch_begin) epoch_begin(m, epoch);
  }
  void on_batch_end(Model& m, const BatchEnd& b) override {
    if (batch_end) batch_end(m, b);
  }
  void on_epoch_end(Model& m, const History& h) override {
    if (epoch_end) epoch_end(m, h);
  }
};

}  // namespace nn
