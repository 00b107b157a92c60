#include "nn/model.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "nn/atomic_file.hpp"

namespace nn {
namespace {

using autodiff::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Keras's per-epoch line: "1688/1688 [====…] - 1s 0.4ms/step - loss: … - accuracy: …".
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, int verbose, std::int64_t steps)
      : out_(out),
        steps_(steps),
        live_(verbose == 1 && isatty(fileno(out))),
        silent_(verbose == 0) {}

  void update(std::int64_t step, double loss, double accuracy, Clock::time_point start) {
    if (!live_) return;
    const auto now = Clock::now();
    if (step < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    fmt::print(out_, "\r{} - loss: {:.4f} - accuracy: {:.4f}", bar(step, seconds_since(start)),
               loss, accuracy);
    std::fflush(out_);
  }

  void finish(const EpochLog& log, bool with_validation) {
    if (silent_) return;
    std::string line = fmt::format("{} - loss: {:.4f} - accuracy: {:.4f}", bar(steps_, log.seconds),
                                   log.loss, log.accuracy);
    if (with_validation)
      line +=
          fmt::format(" - val_loss: {:.4f} - val_accuracy: {:.4f}", log.val_loss, log.val_accuracy);
    fmt::print(out_, "{}{}\n", live_ ? "\r" : "", line);
    std::fflush(out_);
  }

 private:
  std::string bar(std::int64_t step, double seconds) const {
    constexpr int kWidth = 30;
    const int filled = steps_ > 0 ? static_cast<int>(kWidth * step / steps_) : kWidth;
    std::string bar(static_cast<std::size_t>(kWidth), '.');
    for (int i = 0; i < filled; ++i) bar[static_cast<std::size_t>(i)] = '=';
    if (filled < kWidth && step > 0) bar[static_cast<std::size_t>(filled)] = '>';
    const int digits = static_cast<int>(std::to_string(steps_).size());
    return fmt::format("{:>{}}/{} [{}] - {:.0f}s {:.1f}ms/step", step, digits, steps_, bar, seconds,
                       step > 0 ? 1000.0 * seconds / double(step) : 0.0);
  }

  std::FILE* out_;
  std::int64_t steps_;
  bool live_, silent_;
  Clock::time_point last_draw_{};
};

void check_batch_size(std::int64_t batch_size, const char* where) {
  if (batch_size <= 0)
    throw std::invalid_argument(
        fmt::format("{}: batch_size is {}, expected > 0", where, batch_size));
}

void check_fit_options(const FitOptions& options) {
  check_batch_size(options.batch_size, "fit");
  if (options.epochs < 0)
    throw std::invalid_argument(fmt::format("fit: epochs is {}, expected ≥ 0", options.epochs));
  if (options.verbose < 0 || options.verbose > 2)
    throw std::invalid_argument(
        fmt::format("fit: verbose is {}, expected 0, 1 or 2", options.verbose));
  validation_split_point(0, options.validation_split);  // checks the fraction
}

}  // namespace

std::int64_t validation_split_point(std::int64_t rows, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    throw std::invalid_argument(
        fmt::format("fit: validation_split is {}, expected in [0, 1)", fraction));
  if (rows < 0) throw std::invalid_argument(fmt::format("fit: {} rows, expected ≥ 0", rows));
  if (fraction == 0.0) return rows;
  // double(rows) may round up: never past rows (nor past the largest int64).
  const double kept = std::floor(double(rows) * (1.0 - fraction));
  return kept >= double(rows) ? rows : static_cast<std::int64_t>(kept);
}

EpochOrder::EpochOrder(std::int64_t rows, bool shuffle, std::uint64_t seed)
    : order_(rows >= 0 ? static_cast<std::size_t>(rows) : 0), shuffle_(shuffle), rng_(seed) {
  if (rows < 0) throw std::invalid_argument(fmt::format("EpochOrder: {} rows, expected ≥ 0", rows));
  std::iota(order_.begin(), order_.end(), 0);
}

std::span<const std::int64_t> EpochOrder::next_epoch() {
  if (shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
  return order_;
}

double accuracy(std::span<const std::int32_t> labels, const Tensor<float>& y_pred) {
  if (y_pred.rank() != 2 || y_pred.shape()[0] != static_cast<std::int64_t>(labels.size()))
    throw std::invalid_argument(fmt::format("accuracy: {} labels for predictions of shape {}",
                                            labels.size(), y_pred.shape().str()));
  if (labels.empty()) return 0.0;
  const auto predicted = argmax(y_pred, -1).data();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == float(labels[i]);
  return double(correct) / double(labels.size());
}

void History::write_csv(const std::string& path) const {
  std::string text = "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n";
  for (const EpochLog& e : epochs)
    text += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f}\n", e.epoch, e.loss, e.accuracy,
                        e.val_loss, e.val_accuracy, e.seconds);
  write_file_atomically(path, text, "the history");
}

Model::Model(Sequential network, LossFunction loss, std::unique_ptr<Optimizer> optimizer)
    : network_(std::move(network)), loss_(loss), optimizer_(std::move(optimizer)) {
  if (!loss_) throw std::invalid_argument("Model: the loss function is null");
  if (!optimizer_) throw std::invalid_argument("Model: the optimizer is null");
  parameters_ = network_.parameters();
}

Evaluation Model::train_step(const Dataset& data, std::span<const std::int64_t> rows) {
  autodiff::Tape& tape = autodiff::Tape::active();
  tape.clear();
  const Tensor<float> x = data.batch(rows);
  data.batch_labels(rows, labels_);
  const Tensor<float> y_pred = network_(x);
  const Tensor<float> loss = loss_(autodiff::one_hot<float>(labels_, y_pred.shape()[1]), y_pred);
  loss.backward();
  optimizer_->step(parameters_);
  return {loss.item(), accuracy(labels_, y_pred)};
}

History Model::fit(const Dataset& data, const FitOptions& options) {
  check_fit_options(options);
  // Keras: the validation rows are the last ones, split off before shuffling.
  const std::int64_t split_at = validation_split_point(data.size(), options.validation_split);
  if (split_at <= 0)
    throw std::invalid_argument(fmt::format("fit: no training rows left out of {}", data.size()));
  const bool with_validation = split_at < data.size();
  const Dataset validation = with_validation ? data.slice(split_at, data.size()) : Dataset();

  std::FILE* out = options.out ? options.out : stdout;
  EpochOrder epoch_order(split_at, options.shuffle, options.seed);
  // ⌈split_at / batch_size⌉, without forming split_at + batch_size (which can overflow).
  const std::int64_t steps =
      split_at / options.batch_size + (split_at % options.batch_size != 0 ? 1 : 0);

  History history;
  for (int done = 0; done < options.epochs; ++done) {
    const int epoch = done + 1;
    if (options.verbose > 0) fmt::print(out, "Epoch {}/{}\n", epoch, options.epochs);
    const std::span<const std::int64_t> order = epoch_order.next_epoch();
    ProgressBar progress(out, options.verbose, steps);
    const auto start = Clock::now();
    double loss_sum = 0, accuracy_sum = 0;
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t begin = step * options.batch_size;  // < split_at: no overflow
      const std::int64_t end = begin + std::min(options.batch_size, split_at - begin);
      const Evaluation batch =
          train_step(data, std::span(order).subspan(std::size_t(begin), std::size_t(end - begin)));
      loss_sum += batch.loss * double(end - begin);  // sample-weighted, as Keras averages
      accuracy_sum += batch.accuracy * double(end - begin);
      progress.update(step + 1, loss_sum / double(end), accuracy_sum / double(end), start);
    }
    EpochLog log;
    log.epoch = epoch;
    log.loss = loss_sum / double(split_at);
    log.accuracy = accuracy_sum / double(split_at);
    log.val_loss = log.val_accuracy = std::numeric_limits<double>::quiet_NaN();
    if (with_validation) {
      const Evaluation v = evaluate(validation, options.batch_size);
      log.val_loss = v.loss;
      log.val_accuracy = v.accuracy;
    }
    log.seconds = seconds_since(start);
    progress.finish(log, with_validation);
    history.epochs.push_back(log);
  }
  return history;
}

template <class F>
void Model::for_each_batch(const Dataset& data, std::int64_t batch_size, const char* what, F&& f) {
  check_batch_size(batch_size, what);
  autodiff::Tape& tape = autodiff::Tape::active();
  autodiff::NoGradGuard no_grad;
  std::vector<std::int64_t> rows;
  for (std::int64_t begin = 0; begin < data.size(); begin += std::int64_t(rows.size())) {
    rows.resize(std::size_t(std::min(batch_size, data.size() - begin)));  // no overflow
    std::iota(rows.begin(), rows.end(), begin);
    tape.clear();
    f(std::span<const std::int64_t>(rows), network_(data.batch(rows)));
  }
  tape.clear();
}

Evaluation Model::evaluate(const Dataset& data, std::int64_t batch_size) {
  if (data.size() == 0)
    throw std::invalid_argument("evaluate: the dataset is empty: no loss or accuracy to report");
  double loss_sum = 0, correct = 0;
  for_each_batch(
      data, batch_size, "evaluate",
      [&](std::span<const std::int64_t> rows, const Tensor<float>& y_pred) {
        data.batch_labels(rows, labels_);
        const double n = double(rows.size());
        loss_sum +=
            double(loss_(autodiff::one_hot<float>(labels_, y_pred.shape()[1]), y_pred).item()) * n;
        correct += accuracy(labels_, y_pred) * n;
      });
  return {loss_sum / double(data.size()), correct / double(data.size())};
}

std::vector<float> Model::predict(const Dataset& data, std::int64_t batch_size) {
  std::vector<float> outputs;
  for_each_batch(data, batch_size, "predict",
                 [&](std::span<const std::int64_t>, const Tensor<float>& y_pred) {
                   const auto y = y_pred.data();
                   outputs.insert(outputs.end(), y.begin(), y.end());
                 });
  return outputs;
}

}  // namespace nn
