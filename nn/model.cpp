#include "nn/model.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "nn/atomic_file.hpp"

namespace nn {
namespace {

using autodiff::Tensor;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Open MPI's mpirun gives each process a pseudo-terminal even when its own output goes to a file:
// no redrawing there (a log of carriage returns), one line per epoch.
bool under_mpi_launcher() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
}

// Keras's per-epoch line: "1688/1688 [====…] - 1s 0.4ms/step - loss: … - accuracy: …".
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, int verbose, std::int64_t steps)
      : out_(out),
        steps_(steps),
        live_(verbose == 1 && isatty(fileno(out)) && !under_mpi_launcher()),
        silent_(verbose == 0) {}

  void update(std::int64_t step, const Logs& running, Clock::time_point start) {
    if (!live_) return;
    const auto now = Clock::now();
    if (step < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    fmt::print(out_, "\r{}{}", bar(step, seconds_since(start)), values(running));
    std::fflush(out_);
  }

  void finish(const EpochLog& log) {
    if (silent_) return;
    fmt::print(out_, "{}{}{}\n", live_ ? "\r" : "", bar(steps_, log.seconds), values(log));
    std::fflush(out_);
  }

 private:
  static std::string values(const Logs& logs) {
    std::string text;
    for (const auto& [name, value] : logs.values())
      text += fmt::format(" - {}: {:.4f}", name, value);
    return text;
  }

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
  if (options.initial_epoch < 0)
    throw std::invalid_argument(
        fmt::format("fit: initial_epoch is {}, expected ≥ 0", options.initial_epoch));
  if (options.epochs < options.initial_epoch)
    throw std::invalid_argument(fmt::format(
        "fit: epochs is {}, expected ≥ initial_epoch ({}): epochs counts from the start of the run",
        options.epochs, options.initial_epoch));
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

std::string EpochOrder::generator_state() const {
  std::ostringstream text;
  text << rng_;
  return text.str();
}

void EpochOrder::restore(std::span<const std::int64_t> order, const std::string& generator) {
  if (order.size() != order_.size())
    throw std::invalid_argument(fmt::format("EpochOrder::restore: an order of {} rows, expected {}",
                                            order.size(), order_.size()));
  std::vector<bool> seen(order.size(), false);
  for (std::int64_t row : order) {
    if (row < 0 || static_cast<std::size_t>(row) >= order.size() || seen[std::size_t(row)])
      throw std::invalid_argument(
          fmt::format("EpochOrder::restore: the order is not a permutation of 0 … {} (row {})",
                      order.size() - 1, row));
    seen[std::size_t(row)] = true;
  }
  std::istringstream text(generator);
  std::mt19937_64 rng;
  text >> rng;
  if (text.fail() || !(text >> std::ws).eof())
    throw std::invalid_argument("EpochOrder::restore: not a std::mt19937_64 state");
  std::copy(order.begin(), order.end(), order_.begin());
  rng_ = rng;
}

double accuracy(std::span<const std::int32_t> labels, const Tensor<float>& y_pred) {
  if (y_pred.rank() != 2 || y_pred.shape()[0] != static_cast<std::int64_t>(labels.size()))
    throw std::invalid_argument(fmt::format("accuracy: {} labels for predictions of shape {}",
                                            labels.size(), y_pred.shape().str()));
  if (labels.empty()) return 0.0;
  const auto predicted = argmax(y_pred, -1).data();
  const auto values = y_pred.data();
  const std::size_t width = static_cast<std::size_t>(y_pred.shape()[1]);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i)  // argmax picks a NaN: that row is not right
    correct += predicted[i] == float(labels[i]) &&
               !std::isnan(values[i * width + std::size_t(predicted[i])]);
  return double(correct) / double(labels.size());
}

double Logs::operator[](std::string_view name) const {
  for (const auto& [key, value] : values_)
    if (key == name) return value;
  return std::numeric_limits<double>::quiet_NaN();
}

bool Logs::has(std::string_view name) const {
  for (const auto& [key, _] : values_)
    if (key == name) return true;
  return false;
}

void Logs::set(std::string_view name, double value) {
  for (auto& [key, v] : values_)
    if (key == name) {
      v = value;
      return;
    }
  values_.emplace_back(std::string(name), value);
}

void History::write_csv(const std::string& path) const {
  std::string text = "epoch";
  if (!epochs.empty())
    for (const auto& [name, _] : epochs.front().values()) text += "," + name;
  text += ",seconds\n";
  for (const EpochLog& e : epochs) {
    text += fmt::format("{}", e.epoch);
    for (const auto& [_, value] : e.values()) text += fmt::format(",{:.6f}", value);
    text += fmt::format(",{:.3f}\n", e.seconds);
  }
  write_file_atomically(path, text, "the history");
}

Model::Model(std::unique_ptr<Module> network, Loss loss, std::unique_ptr<Optimizer> optimizer,
             std::vector<Metric> metrics)
    : network_(std::move(network)),
      loss_(std::move(loss)),
      optimizer_(std::move(optimizer)),
      metrics_(std::move(metrics)) {
  if (!loss_) throw std::invalid_argument("Model: the loss function is null");
  if (!optimizer_) throw std::invalid_argument("Model: the optimizer is null");
  for (const Metric& m : metrics_)
    if (m.name.empty() || !m.compute)
      throw std::invalid_argument("Model: a metric needs a name and a function");
  parameters_ = network_->parameters();
}

Model::Model(std::unique_ptr<Module> network) : network_(std::move(network)) {
  if (!network_) throw std::invalid_argument("Model: the network is null");
}

Model::Model(std::unique_ptr<Module> network, Loss loss, std::vector<Metric> metrics)
    : network_(std::move(network)), loss_(std::move(loss)), metrics_(std::move(metrics)) {
  if (!network_) throw std::invalid_argument("Model: the network is null");
  if (!loss_) throw std::invalid_argument("Model: the loss function is null");
  for (const Metric& m : metrics_)
    if (m.name.empty() || !m.compute)
      throw std::invalid_argument("Model: a metric needs a name and a function");
}

void Model::require_training(const char* what) const {
  if (!loss_ || !optimizer_)
    throw std::logic_error(fmt::format(
        "Model::{}: this model was made for inference only (no loss and optimizer)", what));
}

void Model::require_loss(const char* what) const {
  if (!loss_)
    throw std::logic_error(
        fmt::format("Model::{}: this model was made for inference only (no loss)", what));
}

Optimizer& Model::optimizer() {
  require_training("optimizer");
  return *optimizer_;
}

void Model::stop_training(std::string reason) { stop_reason_ = std::move(reason); }

const Evaluation& Model::train_step(const BatchSource& data, std::span<const std::int64_t> rows) {
  require_training("train_step");
  if (communicator_) return distributed_train_step(data, rows);
  autodiff::Tape& tape = autodiff::Tape::active();
  tape.clear();
  const Tensor<float> x = data.features(rows);
  const Tensor<float> y_true = data.targets(rows);
  const Tensor<float> y_pred = (*network_)(x);
  const Tensor<float> loss = loss_(y_true, y_pred);
  if (std::isfinite(loss.item())) {
    optimizer_->backward_and_step(loss, parameters_);  // each update while its gradient is hot
  } else {  // no update from a NaN or infinite loss: the weights stay as they were
    loss.backward();
    for (Parameter* p : parameters_) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
  }
  // Kept between steps, so that a warm step allocates nothing.
  step_logs_.set("loss", loss.item());
  autodiff::NoGradGuard no_grad;
  for (const Metric& m : metrics_) step_logs_.set(m.name, m.compute(y_true, y_pred));
  return step_logs_;
}

const Evaluation& Model::train_step(const Dataset& data, std::span<const std::int64_t> rows) {
  if (!images_ || &images_->images() != &data) images_ = std::make_unique<LabelledImages>(data);
  return train_step(*images_, rows);
}

History Model::fit(const Dataset& data, const FitOptions& options) {
  return fit(LabelledImages(data), options);
}

void Model::resume_progress(EpochOrder& epoch_order, std::int64_t rows, const FitOptions& options) {
  const int start = options.initial_epoch;
  const bool from_checkpoint =
      start > 0 && progress_.epoch == start && !progress_.generator.empty();
  if (from_checkpoint) {
    if (progress_.shuffle != options.shuffle)
      throw std::invalid_argument(
          fmt::format("fit: the run being continued was {}shuffled, this fit is {}",
                      progress_.shuffle ? "" : "not ", options.shuffle ? "shuffled" : "not"));
    if (static_cast<std::int64_t>(progress_.order.size()) != rows)
      throw std::invalid_argument(fmt::format(
          "fit: the run being continued had {} training rows, this fit has {} (other data, or "
          "another validation_split?)",
          progress_.order.size(), rows));
    epoch_order.restore(progress_.order, progress_.generator);
    std::erase_if(progress_.history.epochs, [&](const EpochLog& e) { return e.epoch > start; });
    return;
  }
  // No saved state for this epoch: the order of the uninterrupted run, replayed from the seed
  // (when an epoch is left to train: a file's epoch of 2³¹ − 1 is not replayed for nothing).
  if (start < options.epochs)
    for (int done = 0; done < start; ++done) epoch_order.next_epoch();
  progress_ = TrainingProgress{};
  progress_.epoch = start;
  progress_.shuffle = options.shuffle;
}

History Model::fit(const BatchSource& data, const FitOptions& options) {
  if (!communicator_) return fit_here(data, options);
  require_training("fit");  // the same everywhere: before any exchange
  try {
    FitOptions on_this_rank = options;
    if (!is_main_process()) on_this_rank.verbose = 0;  // one progress bar for the job
    check_ranks_agree(data, options);
    broadcast_state();
    return fit_here(data, on_this_rank);
  } catch (const std::exception& error) {  // the other ranks would wait for this one forever
    communicator_->abort(fmt::format("fit: {}", error.what()));
  }
}

namespace {
// std::bad_alloc says nothing of why: a batch's step keeps every activation of the batch and its
// gradient on the tape, so the batch size is the knob to name.
[[noreturn]] void out_of_memory(const char* what, std::int64_t rows) {
  throw std::length_error(
      fmt::format("{}: not enough memory for a batch of {} rows (the tape keeps every activation "
                  "of a batch, and in training its gradient): try a smaller batch_size",
                  what, rows));
}
}  // namespace

History Model::fit_here(const BatchSource& data, const FitOptions& options) {
  require_training("fit");
  check_fit_options(options);
  // Keras: the validation rows are the last ones, split off before shuffling.
  const std::int64_t split_at = validation_split_point(data.size(), options.validation_split);
  if (split_at <= 0)
    throw std::invalid_argument(fmt::format("fit: no training rows left out of {}", data.size()));
  const bool with_validation = split_at < data.size();

  std::FILE* out = options.out ? options.out : stdout;
  EpochOrder epoch_order(split_at, options.shuffle, options.seed);
  resume_progress(epoch_order, split_at, options);
  // ⌈split_at / batch_size⌉, without forming split_at + batch_size (which can overflow).
  const std::int64_t steps =
      split_at / options.batch_size + (split_at % options.batch_size != 0 ? 1 : 0);

  History history;
  stop_reason_.clear();
  parameters_ = network_->parameters();  // layers may have been added since construction
  for (Callback* c : options.callbacks) c->on_train_begin(*this);
  // Counted by the epochs done, which stay below epochs: no int overflow at epochs = 2³¹ − 1.
  for (int done = options.initial_epoch; done < options.epochs && stop_reason_.empty(); ++done) {
    const int epoch = done + 1;
    for (Callback* c : options.callbacks) c->on_epoch_begin(*this, epoch);
    if (options.verbose > 0) fmt::print(out, "Epoch {}/{}\n", epoch, options.epochs);
    network_->train();
    const std::span<const std::int64_t> order = epoch_order.next_epoch();
    ProgressBar progress(out, options.verbose, steps);
    const auto start = Clock::now();
    std::vector<double> sums;  // sample-weighted, as Keras averages: loss, then each metric
    Logs running;
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t begin = step * options.batch_size;  // < split_at: no overflow
      const std::int64_t end = begin + std::min(options.batch_size, split_at - begin);
      const Evaluation& batch = [&]() -> const Evaluation& {
        try {
          return train_step(data,
                            std::span(order).subspan(std::size_t(begin), std::size_t(end - begin)));
        } catch (const std::bad_alloc&) {
          autodiff::Tape::active().clear();  // the failed step's partial graph
          out_of_memory("fit", end - begin);
        }
      }();
      const double loss = batch["loss"];
      if (options.stop_on_non_finite_loss && !std::isfinite(loss)) {
        history.diverged = true;
        stop_reason_ = fmt::format(
            "the loss is {} at epoch {}, batch {}/{}: training stopped (is the learning rate too "
            "high?)",
            loss, epoch, step + 1, steps);
        if (options.verbose > 0) fmt::print(out, "\n{}\n", stop_reason_);
        break;
      }
      sums.resize(batch.values().size(), 0.0);
      for (std::size_t k = 0; k < sums.size(); ++k) {
        sums[k] += batch.values()[k].second * double(end - begin);
        running.set(batch.values()[k].first, sums[k] / double(end));
      }
      for (Callback* c : options.callbacks) c->on_batch_end(*this, {epoch, step + 1, steps, loss});
      progress.update(step + 1, running, start);
    }
    if (history.diverged) break;
    // Each rank's BatchNormalization saw its own shares: one moving statistic for validation,
    // checkpoints and whatever follows.
    if (communicator_) average_buffers();
    EpochLog log;
    log.epoch = epoch;
    for (const auto& [name, value] : running.values()) log.set(name, value);
    if (with_validation) {
      const Evaluation v = evaluate_rows(data, split_at, data.size(), options.batch_size, "val_",
                                         "fit (validation)");
      for (const auto& [name, value] : v.values()) log.set(name, value);
    }
    log.seconds = seconds_since(start);
    progress.finish(log);
    history.epochs.push_back(log);
    progress_.epoch = epoch;
    progress_.order.assign(order.begin(), order.end());
    progress_.generator = epoch_order.generator_state();
    progress_.history.epochs.push_back(log);
    for (Callback* c : options.callbacks) c->on_epoch_end(*this, history);
    if (communicator_) agree_to_stop();
  }
  history.stop_reason = stop_reason_;
  if (!history.diverged && !stop_reason_.empty() && options.verbose > 0)
    fmt::print(out, "{}\n", stop_reason_);
  for (Callback* c : options.callbacks) c->on_train_end(*this, history);
  network_->train();
  return history;
}

namespace {
// Runs `f(rows, y_pred)` for each batch of rows [begin, end) of `data`, in evaluation mode,
// recording no gradient; the tape is cleared before each batch and after the last.
template <class F>
void for_each_batch(Module& network, const BatchSource& data, std::int64_t begin, std::int64_t end,
                    std::int64_t batch_size, const char* what, F&& f) {
  check_batch_size(batch_size, what);
  autodiff::Tape& tape = autodiff::Tape::active();
  autodiff::NoGradGuard no_grad;
  struct EvalMode {  // restored however the loop ends
    Module& network;
    bool was_training = network.is_training();
    ~EvalMode() { network.train(was_training); }
  } eval_mode{network};
  network.eval();
  std::vector<std::int64_t> rows;
  try {
    for (std::int64_t first = begin; first < end; first += std::min(batch_size, end - first)) {
      rows.resize(std::size_t(std::min(batch_size, end - first)));
      std::iota(rows.begin(), rows.end(), first);
      tape.clear();
      f(std::span<const std::int64_t>(rows), network(data.features(rows)));
    }
  } catch (const std::bad_alloc&) {
    tape.clear();
    out_of_memory(what, std::min(batch_size, end - begin));
  }
  tape.clear();
}
}  // namespace

Evaluation Model::evaluate_rows(const BatchSource& data, std::int64_t begin, std::int64_t end,
                                std::int64_t batch_size, const std::string& prefix,
                                const char* what) {
  std::vector<double> sums(1 + metrics_.size(), 0.0);
  const auto [first, last] =
      communicator_ ? shard_of(begin, end, *communicator_) : std::pair{begin, end};
  for_each_batch(*network_, data, first, last, batch_size, what,
                 [&](std::span<const std::int64_t> rows, const Tensor<float>& y_pred) {
                   const Tensor<float> y_true = data.targets(rows);
                   const double n = double(rows.size());
                   sums[0] += double(loss_(y_true, y_pred).item()) * n;
                   for (std::size_t k = 0; k < metrics_.size(); ++k)
                     sums[k + 1] += metrics_[k].compute(y_true, y_pred) * n;
                 });
  if (communicator_) communicator_->sum(sums);
  Evaluation result;
  result.set(prefix + "loss", sums[0] / double(end - begin));
  for (std::size_t k = 0; k < metrics_.size(); ++k)
    result.set(prefix + metrics_[k].name, sums[k + 1] / double(end - begin));
  return result;
}

Evaluation Model::evaluate(const BatchSource& data, std::int64_t batch_size) {
  require_loss("evaluate");
  check_batch_size(batch_size, "evaluate");
  if (data.size() == 0)
    throw std::invalid_argument("evaluate: the dataset is empty: no loss or accuracy to report");
  if (communicator_) average_buffers();  // after train_step calls of a loop of one's own
  return evaluate_rows(data, 0, data.size(), batch_size, "");
}

Evaluation Model::evaluate(const Dataset& data, std::int64_t batch_size) {
  return evaluate(LabelledImages(data), batch_size);
}

std::vector<float> Model::predict(const BatchSource& data, std::int64_t batch_size) {
  std::vector<float> outputs;
  for_each_batch(*network_, data, 0, data.size(), batch_size, "predict",
                 [&](std::span<const std::int64_t>, const Tensor<float>& y_pred) {
                   const auto y = y_pred.data();
                   outputs.insert(outputs.end(), y.begin(), y.end());
                 });
  return outputs;
}

std::vector<float> Model::predict(const Dataset& data, std::int64_t batch_size) {
  return predict(LabelledImages(data), batch_size);
}

std::vector<float> Model::predict(std::span<const float> features, const Shape& shape) {
  const TensorData rows(std::vector<float>(features.begin(), features.end()), shape);
  return predict(rows, std::max<std::int64_t>(shape[0], 1));
}

double train_step(Module& network, const Loss& loss, Optimizer& optimizer,
                  const std::function<std::pair<Tensor<float>, Tensor<float>>()>& batch) {
  autodiff::Tape& tape = autodiff::Tape::active();
  tape.clear();
  const auto [x, y_true] = batch();
  const Tensor<float> value = loss(y_true, (network)(x));
  value.backward();
  thread_local std::vector<Parameter*> parameters;  // reused: a warm step allocates nothing
  network.collect_parameters(parameters);
  optimizer.step(parameters);
  return value.item();
}

}  // namespace nn
