#include "nn/serialize.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "nn/architecture.hpp"
#include "nn/atomic_file.hpp"
#include "nn/data.hpp"  // DataError
#include "nn/model.hpp"

namespace nn {
namespace {

constexpr std::string_view kOptimizerPrefix = "optimizer.";
constexpr std::string_view kTrainingPrefix = "training.";
const std::string kOrderTensor = "training.order";
const std::string kCounterPrefix = "training.counter.";

[[noreturn]] void fail(const TensorFile& file, const std::string& what) {
  throw DataError(fmt::format("{}: {}", file.source, what));
}

std::string shape_text(const std::vector<std::int64_t>& dims) {
  return fmt::format("({})", fmt::join(dims, ", "));
}

std::vector<std::int64_t> dims_of(const Shape& shape) {
  return {shape.dims().begin(), shape.dims().end()};
}

// A file this library wrote (of any content) must be of a version it reads; other safetensors
// files (no "format": "autodiff") are taken as plain weights.
void check_format(const TensorFile& file) {
  const std::string* format = file.find_metadata("format");
  if (!format || *format != "autodiff") return;
  const std::string* version = file.find_metadata("format_version");
  if (!version) fail(file, "no format_version in the metadata");
  if (*version != kModelFormatVersion)
    fail(file, fmt::format("format_version is \"{}\", this library reads version \"{}\"", *version,
                           kModelFormatVersion));
}

bool is_checkpoint(const TensorFile& file) {
  const std::string* content = file.find_metadata("content");
  return content && *content == "checkpoint";
}

bool is_state_tensor(const TensorFile& file, const std::string& name) {
  return is_checkpoint(file) &&
         (name.starts_with(kOptimizerPrefix) || name.starts_with(kTrainingPrefix));
}

TensorFile weights_file(Module& model, const std::string& content) {
  TensorFile file;
  file.metadata = {
      {"format", "autodiff"}, {"format_version", kModelFormatVersion}, {"content", content}};
  for (const NamedParameter& p : model.named_state())
    file.add(p.name, p.parameter->value, dims_of(p.parameter->shape));
  return file;
}

// The file's values for each of the model's parameters and buffers, in named_state() order, after
// checking names, dtypes and shapes: every difference in one message.
std::vector<std::vector<float>> checked_weights(Module& model, const TensorFile& file) {
  check_format(file);
  const std::vector<NamedParameter> params = model.named_state();
  std::vector<std::string> problems;
  std::set<std::string> wanted;
  for (const NamedParameter& p : params) {
    wanted.insert(p.name);
    const StoredTensor* t = file.find(p.name);
    if (!t)
      problems.push_back(fmt::format("missing tensor \"{}\"", p.name));
    else if (t->dtype != Dtype::F32)
      problems.push_back(
          fmt::format("tensor \"{}\" is {}, expected F32", p.name, to_string(t->dtype)));
    else if (t->shape != dims_of(p.parameter->shape))
      problems.push_back(fmt::format("tensor \"{}\" has shape {}, the model's is {}", p.name,
                                     shape_text(t->shape),
                                     shape_text(dims_of(p.parameter->shape))));
  }
  for (const StoredTensor& t : file.tensors)  // in the file's order
    if (!wanted.contains(t.name) && !is_state_tensor(file, t.name))
      problems.push_back(fmt::format("extra tensor \"{}\" (not a parameter of the model)", t.name));
  if (!problems.empty())
    fail(file, fmt::format("the weights do not fit the model: {}", fmt::join(problems, "; ")));
  std::vector<std::vector<float>> values;
  values.reserve(params.size());
  for (const NamedParameter& p : params) values.push_back(file.at(p.name).values<float>());
  return values;
}

// Copied, not assigned: a parameter's storage never moves (tapes and optimizers point into it).
void assign_weights(Module& model, const std::vector<std::vector<float>>& values) {
  const std::vector<NamedParameter> params = model.named_state();
  for (std::size_t i = 0; i < params.size(); ++i)
    std::copy(values[i].begin(), values[i].end(), params[i].parameter->value.begin());
}

// JSON from the metadata, or a DataError naming the key. An architecture of 64 nested modules
// nests about 260 deep; nothing here needs more.
constexpr std::size_t kMetadataMaxNesting = 512;

Json metadata_json(const TensorFile& file, std::string_view key) {
  const std::string& text = file.metadata_at(key);
  if (json_nesting(text, kMetadataMaxNesting) > kMetadataMaxNesting)
    fail(file,
         fmt::format("the metadata's \"{}\" nests more than {} deep", key, kMetadataMaxNesting));
  Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    fail(file, fmt::format("the metadata's \"{}\" is not a JSON object", key));
  return parsed;
}

// NaN and infinities have no JSON number: they are written as strings.
Json number_json(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

double number_from(const Json& j) {
  if (j.is_number()) return j.get<double>();
  if (j == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (j == "inf") return std::numeric_limits<double>::infinity();
  if (j == "-inf") return -std::numeric_limits<double>::infinity();
  throw std::invalid_argument(fmt::format("{} is not a number", j.dump()));
}

Json optimizer_json(const OptimizerState& state) {
  Json settings = Json::object();
  for (const auto& [name, value] : state.settings) settings[name] = number_json(value);
  Json slots = Json::array();
  for (const auto& [name, buffers] : state.slots) slots.push_back(name);
  return Json{{"type", state.type},
              {"settings", settings},
              {"iterations", state.iterations},
              {"slots", slots}};
}

OptimizerState optimizer_state(const TensorFile& file, const std::vector<NamedParameter>& params) {
  const Json j = metadata_json(file, "optimizer");
  OptimizerState state;
  try {
    state.type = j.at("type").get<std::string>();
    for (const auto& [name, value] : j.at("settings").items())
      state.settings.emplace_back(name, number_from(value));
    state.iterations = integer_from<std::int64_t>(j.at("iterations"), "iterations");
    std::set<std::string> names;
    for (const Json& slot : j.at("slots")) {
      const auto name = slot.get<std::string>();
      // Each slot is a copy of the model's size: a name repeated would multiply it.
      if (!names.insert(name).second)
        fail(file, fmt::format("the optimizer's slot \"{}\" is listed twice", name));
      std::vector<std::vector<float>> buffers;
      for (const NamedParameter& p : params) {
        const std::string tensor = fmt::format("{}{}.{}", kOptimizerPrefix, name, p.name);
        const StoredTensor& t = file.at(tensor);
        if (t.dtype != Dtype::F32 || t.shape != dims_of(p.parameter->shape))
          fail(file, fmt::format("tensor \"{}\" is {} of shape {}, expected F32 of its "
                                 "parameter's shape {}",
                                 tensor, to_string(t.dtype), shape_text(t.shape),
                                 shape_text(dims_of(p.parameter->shape))));
        buffers.push_back(t.values<float>());
      }
      state.slots.emplace_back(name, std::move(buffers));
    }
  } catch (const nlohmann::json::exception& e) {
    fail(file, fmt::format("the optimizer's state: {}", e.what()));
  } catch (const std::invalid_argument& e) {
    fail(file, fmt::format("the optimizer's state: {}", e.what()));
  }
  return state;
}

Json history_json(const History& history) {
  Json epochs = Json::array();
  for (const EpochLog& e : history.epochs) {
    Json logs = Json::array();
    for (const auto& [name, value] : e.values()) logs.push_back({name, number_json(value)});
    epochs.push_back({{"epoch", e.epoch}, {"seconds", number_json(e.seconds)}, {"logs", logs}});
  }
  return epochs;
}

History history_from(const Json& epochs) {
  History history;
  for (const Json& e : epochs) {
    EpochLog log;
    log.epoch = integer_from<int>(e.at("epoch"), "an epoch's number");
    log.seconds = number_from(e.at("seconds"));
    // A loss and its metrics, training and validation: a few. Logs::set looks each name up in
    // those before it, so a file's million logs would take O(n²) to load.
    constexpr std::size_t kMaxLogs = 1024;
    if (e.at("logs").size() > kMaxLogs)
      throw std::invalid_argument(fmt::format("epoch {} has {} logs, expected at most {}",
                                              log.epoch, e.at("logs").size(), kMaxLogs));
    for (const Json& pair : e.at("logs")) {
      if (!pair.is_array() || pair.size() != 2)
        throw std::invalid_argument(fmt::format("{} is not a [name, value] pair", pair.dump()));
      log.set(pair[0].get<std::string>(), number_from(pair[1]));
    }
    history.epochs.push_back(std::move(log));
  }
  return history;
}

TrainingProgress training_progress(const TensorFile& file) {
  const Json j = metadata_json(file, "training");
  TrainingProgress progress;
  try {
    progress.epoch = integer_from<int>(j.at("epoch"), "epoch");
    if (progress.epoch < 0)
      throw std::invalid_argument(fmt::format("epoch is {}, expected ≥ 0", progress.epoch));
    progress.shuffle = j.at("shuffle").get<bool>();
    progress.generator = j.at("generator").get<std::string>();
    progress.history = history_from(j.at("history"));
    const StoredTensor& order = file.at(kOrderTensor);
    if (order.dtype != Dtype::I64 || order.shape.size() != 1)
      fail(file, fmt::format("tensor \"{}\" is {} of shape {}, expected I64 of one dimension",
                             kOrderTensor, to_string(order.dtype), shape_text(order.shape)));
    progress.order = order.values<std::int64_t>();
    if (progress.generator.empty() && progress.order.empty()) return progress;  // before fit
    EpochOrder(static_cast<std::int64_t>(progress.order.size()), progress.shuffle, 0)
        .restore(progress.order, progress.generator);  // a permutation and a generator, or throws
  } catch (const nlohmann::json::exception& e) {
    fail(file, fmt::format("the training state: {}", e.what()));
  } catch (const std::invalid_argument& e) {
    fail(file, fmt::format("the training state: {}", e.what()));
  }
  return progress;
}

// The file's value for each of the model's counters, in named_counters() order: every counter the
// model has, and no other, each an I64 tensor of shape (1).
std::vector<std::uint64_t> checked_counters(Module& model, const TensorFile& file) {
  std::vector<std::string> problems;
  std::vector<std::uint64_t> values;
  std::set<std::string> wanted;
  for (const auto& [name, counter] : model.named_counters()) {
    const std::string tensor = kCounterPrefix + name;
    wanted.insert(tensor);
    const StoredTensor* t = file.find(tensor);
    if (!t)
      problems.push_back(fmt::format("missing tensor \"{}\"", tensor));
    else if (t->dtype != Dtype::I64 || t->shape != std::vector<std::int64_t>{1})
      problems.push_back(fmt::format("tensor \"{}\" is {} of shape {}, expected I64 of shape (1)",
                                     tensor, to_string(t->dtype), shape_text(t->shape)));
    else
      values.push_back(std::uint64_t(t->values<std::int64_t>()[0]));
  }
  for (const StoredTensor& t : file.tensors)
    if (t.name.starts_with(kCounterPrefix) && !wanted.contains(t.name))
      problems.push_back(fmt::format("extra tensor \"{}\" (not a counter of the model)", t.name));
  if (!problems.empty())
    fail(file, fmt::format("the counters do not fit the model: {}", fmt::join(problems, "; ")));
  return values;
}

}  // namespace

void save_weights(Module& model, const std::string& path) {
  write_safetensors(path, weights_file(model, "weights"), "the weights");
}

void load_weights(Module& model, const TensorFile& file) {
  assign_weights(model, checked_weights(model, file));
}

void load_weights(Module& model, const std::string& path) {
  load_weights(model, read_safetensors(path));
}

void save_model(Module& model, const std::string& path) {
  const Json arch = architecture(model);  // throws before anything is written
  TensorFile file = weights_file(model, "model");
  file.metadata.emplace_back("architecture", arch.dump());
  write_safetensors(path, file, "the model");
}

std::unique_ptr<Module> load_model(const TensorFile& file) {
  check_format(file);
  if (!file.find_metadata("architecture"))
    fail(file,
         "no architecture in the metadata (a weights-only file? Build the model in code and "
         "use load_weights)");
  const Json arch = metadata_json(file, "architecture");
  std::int64_t values = 0;
  for (const StoredTensor& t : file.tensors)
    if (t.dtype == Dtype::F32 && !is_state_tensor(file, t.name)) values += t.element_count();
  std::unique_ptr<Module> model = build_architecture(arch, ParameterBudget(values), file.source);
  load_weights(*model, file);
  return model;
}

std::unique_ptr<Module> load_model(const std::string& path) {
  return load_model(read_safetensors(path));
}

void save_checkpoint(Model& model, const std::string& path) {
  Module& network = model.network();
  const std::vector<NamedParameter> params = network.named_parameters();
  for (const NamedParameter& p : network.named_state())
    if (p.name.starts_with(kOptimizerPrefix) || p.name.starts_with(kTrainingPrefix))
      throw std::invalid_argument(fmt::format(
          "save_checkpoint: parameter \"{}\" has a name reserved for the optimizer's and training "
          "state",
          p.name));
  TensorFile file = weights_file(network, "checkpoint");
  if (has_architecture(network))
    file.metadata.emplace_back("architecture", architecture(network).dump());

  const OptimizerState state = model.optimizer().state();
  file.metadata.emplace_back("optimizer", optimizer_json(state).dump());
  for (const auto& [slot, buffers] : state.slots)
    for (std::size_t i = 0; i < buffers.size() && i < params.size(); ++i)
      file.add(fmt::format("{}{}.{}", kOptimizerPrefix, slot, params[i].name), buffers[i],
               dims_of(params[i].parameter->shape));

  const TrainingProgress& progress = model.progress();
  file.metadata.emplace_back("training", Json{{"epoch", progress.epoch},
                                              {"shuffle", progress.shuffle},
                                              {"generator", progress.generator},
                                              {"history", history_json(progress.history)}}
                                             .dump());
  file.add(kOrderTensor, progress.order, {static_cast<std::int64_t>(progress.order.size())});
  for (const auto& [name, counter] : network.named_counters())  // two's complement: exact
    file.add(kCounterPrefix + name, std::vector<std::int64_t>{std::int64_t(*counter)}, {1});
  write_safetensors(path, file, "the checkpoint");
}

void load_checkpoint(Model& model, const std::string& path) {
  const TensorFile file = read_safetensors(path);
  check_format(file);
  if (!is_checkpoint(file))
    fail(file, "not a checkpoint (its metadata has no \"content\": \"checkpoint\")");
  Module& network = model.network();
  // Everything read and checked before anything changes.
  std::vector<std::vector<float>> weights = checked_weights(network, file);
  const OptimizerState state = optimizer_state(file, network.named_parameters());
  TrainingProgress progress = training_progress(file);
  const std::vector<std::uint64_t> counters = checked_counters(network, file);
  try {
    model.optimizer().load_state(state, network.parameters());  // checks, then changes
  } catch (const std::invalid_argument& e) {
    fail(file, e.what());
  }
  assign_weights(network, weights);
  std::size_t i = 0;
  for (const auto& [name, counter] : network.named_counters()) *counter = counters[i++];
  model.set_progress(std::move(progress));
}

ModelCheckpoint::ModelCheckpoint(std::string path, ModelCheckpointOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  if (path_.empty()) throw std::invalid_argument("ModelCheckpoint: the path is empty");
  if (options_.mode < -1 || options_.mode > 1)
    throw std::invalid_argument(
        fmt::format("ModelCheckpoint: mode is {}, expected -1, 0 or 1", options_.mode));
  higher_is_better_ =
      options_.mode == 0 ? options_.monitor.ends_with("accuracy") : options_.mode > 0;
}

std::string checkpoint_path(std::string pattern, std::int64_t epoch) {
  const std::string number = std::to_string(epoch);
  for (std::size_t at = 0; (at = pattern.find("{epoch}", at)) != std::string::npos;
       at += number.size())
    pattern.replace(at, 7, number);
  return pattern;
}

void ModelCheckpoint::on_train_begin(Model& model) {
  if (model.is_main_process())
    check_writable(checkpoint_path(path_, std::int64_t{model.progress().epoch} + 1),
                   "the checkpoint");
  // A continued run keeps the best value of the epochs before it.
  have_best_ = false;
  if (!options_.save_best_only) return;
  for (const EpochLog& e : model.progress().history.epochs) {
    const double v = e[options_.monitor];
    if (std::isnan(v)) continue;
    if (!have_best_ || (higher_is_better_ ? v > best_ : v < best_)) best_ = v;
    have_best_ = true;
  }
}

void ModelCheckpoint::on_epoch_end(Model& model, const History& history) {
  const EpochLog& log = history.epochs.back();
  if (options_.save_best_only) {
    const double v = log[options_.monitor];
    if (!log.has(options_.monitor))
      throw std::invalid_argument(fmt::format(
          "ModelCheckpoint: \"{}\" is not in the epoch's logs (is there a validation split?)",
          options_.monitor));
    if (std::isnan(v) || (have_best_ && !(higher_is_better_ ? v > best_ : v < best_))) return;
    best_ = v;
    have_best_ = true;
  }
  if (!model.is_main_process()) {  // data-parallel: rank 0 writes, for every rank
    last_saved_ = log.epoch;
    return;
  }
  const std::string path = checkpoint_path(path_, log.epoch);
  if (options_.weights_only)
    save_weights(model.network(), path);
  else
    save_checkpoint(model, path);
  last_saved_ = log.epoch;
}

}  // namespace nn
