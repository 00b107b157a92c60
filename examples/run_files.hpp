#pragma once
// The files a training example reads and writes, the same options for each of them:
//   --history FILE.csv   the epochs' logs          --plot FILE.svg       the training curves
//   --save FILE          the trained model         --checkpoint FILE     one after each epoch
//   --resume FILE        a checkpoint to continue from (--epochs counts from the run's start)
// Every output path is checked for writability before training, so that a typo is not found out
// after an hour's work; each file is written whole or not at all (nn/atomic_file.hpp). Under
// mpirun (Model::distribute), only rank 0 prints and writes; every rank reads --resume.
#include <filesystem>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "nn/atomic_file.hpp"
#include "nn/model.hpp"
#include "nn/plot.hpp"
#include "nn/serialize.hpp"

namespace run_files {

struct RunFiles {
  std::string history, save, checkpoint, resume, plot;
};

inline void add_options(CLI::App& app, RunFiles& files) {
  app.add_option("--history", files.history,
                 "write epoch,loss,accuracy,val_loss,val_accuracy,seconds as CSV (checked for "
                 "writability before training; written whole or not at all)");
  app.add_option("--save", files.save,
                 "write the trained model (architecture and weights, safetensors) for predict");
  app.add_option("--checkpoint", files.checkpoint,
                 "write a checkpoint (model, optimizer, epoch, shuffling state) after each epoch");
  app.add_option("--resume", files.resume,
                 "continue the run saved in this checkpoint; --epochs counts from the run's start")
      ->check(CLI::ExistingFile);
  app.add_option("--plot", files.plot,
                 "draw the training curves (loss and accuracy, training and validation) as an SVG "
                 "chart in this file (checked for writability before training)");
}

/// Whether two output paths name one file (a path that cannot be resolved, say through a
/// symlink loop, is left to check_writable's message).
inline bool same_file(const std::string& a, const std::string& b) {
  std::error_code error_a, error_b;
  const auto resolved_a = std::filesystem::weakly_canonical(a, error_a);
  const auto resolved_b = std::filesystem::weakly_canonical(b, error_b);
  return a == b || (!error_a && !error_b && resolved_a == resolved_b);
}

/// Before any work: every output can be written, and no two outputs are one file (the last one
/// written would replace the others).
inline void check_outputs(const RunFiles& files) {
  const std::pair<const std::string*, const char*> outputs[] = {{&files.history, "--history"},
                                                                {&files.save, "--save"},
                                                                {&files.checkpoint, "--checkpoint"},
                                                                {&files.plot, "--plot"}};
  for (std::size_t i = 0; i < std::size(outputs); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (!outputs[i].first->empty() && !outputs[j].first->empty() &&
          same_file(*outputs[i].first, *outputs[j].first))
        throw std::invalid_argument(
            fmt::format("{} and {} are the same file, {}: one would "
                        "replace the other",
                        outputs[j].second, outputs[i].second, *outputs[i].first));
  if (!files.history.empty()) nn::check_writable(files.history, "the history");
  if (!files.save.empty()) nn::check_writable(files.save, "the model");
  if (!files.checkpoint.empty())  // the first epoch's, for a path with "{epoch}"
    nn::check_writable(nn::checkpoint_path(files.checkpoint, 1), "the checkpoint");
  if (!files.plot.empty()) nn::check_writable(files.plot, "the training plot");
}

/// Continues from --resume, if given: the model's weights, its optimizer's state and its progress.
inline void resume(nn::Model& model, const RunFiles& files) {
  if (files.resume.empty()) return;
  nn::load_checkpoint(model, files.resume);
  if (model.is_main_process())
    fmt::print("Resumed from {} after epoch {}\n", files.resume, model.progress().epoch);
}

/// The callbacks fit needs for these files (a checkpoint each epoch), owned here.
struct Callbacks {
  std::unique_ptr<nn::ModelCheckpoint> checkpoint;
  std::vector<nn::Callback*> list;
};
inline std::unique_ptr<Callbacks> callbacks(const RunFiles& files) {
  auto c = std::make_unique<Callbacks>();
  if (!files.checkpoint.empty()) {
    c->checkpoint = std::make_unique<nn::ModelCheckpoint>(files.checkpoint);
    c->list.push_back(c->checkpoint.get());
  }
  return c;
}

/// After training: the whole run's history (the epochs before a resume included), as CSV and as a
/// chart titled `title`.
inline void write_history(const nn::Model& model, const RunFiles& files, const std::string& title) {
  if (!model.is_main_process()) return;
  const nn::History& run = model.progress().history;
  if (!files.history.empty()) run.write_csv(files.history);
  if (!files.plot.empty()) nn::write_history_svg(run, files.plot, {.title = title});
}

inline void save_model(nn::Model& model, const RunFiles& files) {
  if (model.is_main_process() && !files.save.empty()) nn::save_model(model.network(), files.save);
}

}  // namespace run_files
