#pragma once
// Model files, in the safetensors format (safetensors.hpp): readable by the safetensors library,
// by numpy (scripts/safetensors_read.py) and by this library. Tensors are named after the module
// tree's parameters ("0.weight", "block.inner.bias"); the header's __metadata__ says what the file
// is ("format": "autodiff", "format_version": "1", "content": "weights" | "model" | "checkpoint").
//
//   nn::save_weights(model, "w.safetensors");    // weights only: load into the same structure
//   nn::load_weights(again, "w.safetensors");
//
//   nn::save_model(model, "m.safetensors");      // + the architecture (architecture.hpp)
//   std::unique_ptr<nn::Module> m = nn::load_model("m.safetensors");
//
//   nn::save_checkpoint(trainer, "c.safetensors");  // + optimizer, epoch, generator, history
//   nn::load_checkpoint(trainer, "c.safetensors");  // then fit({.initial_epoch = …}) continues
//
// Every file is written whole or not at all (write_file_atomically). Every load checks the whole
// file before it touches anything, and throws DataError naming the file and what is wrong; the
// model (and optimizer) in memory are then unchanged.

#include <memory>
#include <string>

#include "nn/callbacks.hpp"
#include "nn/module.hpp"
#include "nn/safetensors.hpp"

namespace nn {

class Model;

/// The format_version this library writes and reads.
inline constexpr const char* kModelFormatVersion = "1";

/// Writes every parameter and buffer of `model` as F32 tensors named after model.named_state(),
/// in that order. Throws DataError naming the path if it cannot be written.
void save_weights(Module& model, const std::string& path);

/// Reads the weights in `path` (any of this library's files, or any safetensors file with the
/// model's parameter names) into `model`. Beyond the container's checks (parse_safetensors):
/// every parameter present with its shape and dtype F32, and no other tensor outside the
/// "optimizer." and "training." namespaces of a checkpoint; one message lists every missing, extra
/// or wrongly shaped tensor.
void load_weights(Module& model, const std::string& path);
void load_weights(Module& model, const TensorFile& file);

/// The architecture (as JSON in the metadata's "architecture") and the weights. Throws
/// std::invalid_argument, before writing anything, if a module is not of a registered layer type.
void save_model(Module& model, const std::string& path);
/// A new module built from the file's architecture, with the file's weights. The architecture may
/// claim no more parameters than the file holds values (checked before allocating).
std::unique_ptr<Module> load_model(const std::string& path);
std::unique_ptr<Module> load_model(const TensorFile& file);

/// The model's weights (and architecture when it has one), its optimizer's state (tensors
/// "optimizer.<slot>.<parameter>", settings and step count in the metadata's "optimizer"), and
/// model.progress(): the epoch, the epoch order's permutation ("training.order") and generator,
/// and the history so far; and the modules' counters ("training.counter.<path>", I64: Dropout's
/// call number, so that the masks after a resume are the ones the uninterrupted run draws).
void save_checkpoint(Model& model, const std::string& path);
/// Restores all of that into `model` (same parameter names and shapes, same counters, same
/// optimizer type).
/// Continue with fit({… .initial_epoch = model.progress().epoch}) to get exactly the run that was
/// interrupted.
void load_checkpoint(Model& model, const std::string& path);

/// A checkpoint path with every "{epoch}" replaced by the epoch's number.
std::string checkpoint_path(std::string pattern, std::int64_t epoch);

/// Keras's ModelCheckpoint: saves a checkpoint (or with weights_only, the weights) at the end of
/// every epoch, or only when the monitored value improves. "{epoch}" in the path is replaced by
/// the epoch's number. The first epoch's path is checked for writability when training begins
/// (check_writable), not found out after an epoch's work.
struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  bool save_best_only = false;
  bool weights_only = false;
  /// 0: from the name (larger is better for names ending in "accuracy"); +1 larger, −1 smaller.
  int mode = 0;
};

class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path, ModelCheckpointOptions options = {});
  void on_train_begin(Model& model) override;
  void on_epoch_end(Model& model, const History& history) override;
  /// The epoch last saved (0: none).
  int last_saved_epoch() const { return last_saved_; }

 private:
  std::string path_;
  ModelCheckpointOptions options_;
  bool higher_is_better_ = false;
  bool have_best_ = false;
  double best_ = 0;
  int last_saved_ = 0;
};

}  // namespace nn
