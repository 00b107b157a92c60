// Step 5 of the tutorial: the Keras MLP on MNIST, in C++.
//   784 → Dense(128, ReLU) → Dense(10, softmax); categorical cross-entropy; Adam;
//   batch 32; 10 epochs; validation_split 0.1; then the test set.
// Runs on the 10,000 digits shipped in data/mnist-10k; --data takes any directory with the
// four standard files (the full MNIST, or Fashion-MNIST from /usr/share/datasets/fashion-mnist).
// `mpirun -np N mnist_mlp` trains on N processes (data-parallel, the same global batch), each
// rank on one thread; rank 0 prints and writes the files.
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "autodiff/parallel.hpp"
#include "cli_checks.hpp"
#include "nn/data.hpp"
#include "nn/distributed.hpp"
#include "nn/inspect.hpp"
#include "nn/model.hpp"
#include "run_files.hpp"

using cli_checks::integer_in;
using cli_checks::positive;

// ---- Constants: the tutorial's recipe ----
constexpr std::int64_t kInputs = 28 * 28;
constexpr std::int64_t kClasses = 10;
constexpr double kValidationSplit = 0.1;

// ---- Limits of the command line: far above any sensible run, and low enough that no size
// computed from them can overflow or ask for an absurd amount of memory ----
constexpr long long kMaxEpochs = 100'000;
constexpr long long kMaxBatchSize = 1 << 20;
constexpr long long kMaxHidden = 16'384;  // 784 × 16,384 weights: 51 MB, 205 MB with Adam's state
constexpr long long kMaxThreads = 256;
constexpr double kMaxLearningRate = 1.0;

struct Settings {
  std::string data = AUTODIFF_DEFAULT_DATA_DIR;
  int epochs = 10;
  std::int64_t batch_size = 32;
  double learning_rate = 1e-3;  // Adam's default
  std::int64_t hidden = 128;
  std::uint64_t seed = 1;
  int threads = autodiff::hardware_threads();  // 1 per rank under mpirun
  run_files::RunFiles files;                   // --history, --save, --checkpoint, --resume, --plot
  bool detect_anomaly = false;
};

// ---- The model ----
nn::Sequential build_network(const Settings& s) {
  nn::Sequential network;
  network.add(nn::Dense(kInputs, s.hidden, nn::Activation::Relu, {.seed = s.seed}));
  network.add(nn::Dense(s.hidden, kClasses, nn::Activation::Softmax, {.seed = s.seed + 1}));
  return network;
}

// ---- Training: from the start, or from where a checkpoint left off ----
nn::History train(nn::Model& model, const nn::Dataset& data, const Settings& s) {
  const auto callbacks = run_files::callbacks(s.files);  // a checkpoint each epoch, if asked
  return model.fit(data, {.batch_size = s.batch_size,
                          .epochs = s.epochs,
                          .initial_epoch = model.progress().epoch,
                          .validation_split = kValidationSplit,
                          .shuffle = true,
                          .seed = s.seed,
                          .callbacks = callbacks->list});
}

// ---- Evaluation ----
double test(nn::Model& model, const nn::Dataset& data) { return model.evaluate(data)["accuracy"]; }

int main(int argc, char** argv) {
  nn::distributed::Environment processes(argc, argv);  // MPI under mpirun, else one process
  Settings s;
  if (processes.size() > 1) s.threads = 1;  // the ranks share the cores
  CLI::App app{"The tutorial's MNIST MLP: 784 → Dense(128, relu) → Dense(10, softmax), Adam"};
  app.add_option("--data", s.data, "directory with the four MNIST-format IDX files (.gz or raw)")
      ->capture_default_str();
  app.add_option("--epochs", s.epochs, "passes over the training data")
      ->capture_default_str()
      ->check(integer_in(0, kMaxEpochs));
  app.add_option("--batch-size", s.batch_size, "images per step")
      ->capture_default_str()
      ->check(CLI::Validator(positive).description(""))
      ->check(integer_in(1, kMaxBatchSize));
  app.add_option("--lr", s.learning_rate, "Adam's learning rate")
      ->capture_default_str()
      ->check(cli_checks::positive_at_most(kMaxLearningRate));
  app.add_option("--hidden", s.hidden, "units in the hidden layer")
      ->capture_default_str()
      ->check(integer_in(1, kMaxHidden));
  app.add_option("--seed", s.seed, "seed of the initial weights and of the shuffling")
      ->capture_default_str()
      ->check(integer_in(0, cli_checks::kMaxSeed));
  app.add_option("--threads", s.threads, "threads (the GEMMs and Adam split over them)")
      ->capture_default_str()
      ->check(integer_in(1, kMaxThreads));
  run_files::add_options(app, s.files);
  app.add_flag("--detect-anomaly", s.detect_anomaly,
               "stop at the first op whose value or gradient is NaN or infinite, naming it");
  CLI11_PARSE(app, argc, argv);

  try {
    // Everything that can be checked is, before the work: a bad output path is not found out
    // after training, and an empty or misshapen dataset is an error, not "accuracy 0".
    const bool main_process = processes.is_main();  // the one that prints and writes files
    if (main_process) run_files::check_outputs(s.files);
    autodiff::set_threads(s.threads);  // each thread runs single-threaded BLAS on its part
    const nn::Dataset train_data = nn::load_mnist(s.data, "train");
    const nn::Dataset test_data = nn::load_mnist(s.data, "t10k");
    for (const auto& [data, prefix] : {std::pair{&train_data, "train"}, {&test_data, "t10k"}}) {
      if (data->size() == 0)
        throw nn::DataError(
            fmt::format("{}: {}-images-idx3-ubyte holds no images", s.data, prefix));
      if (data->features() != kInputs)
        throw nn::DataError(
            fmt::format("{}: {}-images-idx3-ubyte holds images of {} pixels, expected {} (28 × 28)",
                        s.data, prefix, data->features(), kInputs));
    }
    nn::Model model(build_network(s), nn::categorical_crossentropy,
                    std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(s.learning_rate)));
    model.distribute(processes.communicator());  // null for one process
    if (main_process)
      fmt::print("{}: {} training and {} test images; {} → {} → {}, {} parameters\n", s.data,
                 train_data.size(), test_data.size(), kInputs, s.hidden, kClasses,
                 model.network().parameter_count());
    run_files::resume(model, s.files);  // every rank reads the checkpoint

    std::optional<autodiff::DetectAnomaly> anomaly;  // off by default: then it costs nothing
    if (s.detect_anomaly) {
      anomaly.emplace();
      nn::name_parameters(model.network());  // reports name "0.weight", not "parameter #2"
    }
    const nn::History history = train(model, train_data, s);
    run_files::write_history(model, s.files, "MNIST MLP");  // rank 0 only, as the rest
    if (history.diverged) throw std::runtime_error(history.stop_reason);
    run_files::save_model(model, s.files);
    const double accuracy = test(model, test_data);  // every rank evaluates its share
    if (main_process) fmt::print("Test accuracy: {}\n", accuracy);
    cli_checks::flush_stdout();
  } catch (const std::exception& error) {
    processes.fail("mnist_mlp", error.what());  // cannot throw; under MPI, ends every rank
    return 1;
  }
}
