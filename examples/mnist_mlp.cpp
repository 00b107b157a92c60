// Step 5 of the tutorial: the Keras MLP on MNIST, in C++.
//   784 → Dense(128, ReLU) → Dense(10, softmax); categorical cross-entropy; Adam;
//   batch 32; 10 epochs; validation_split 0.1; then the test set.
// Runs on the 10,000 digits shipped in data/mnist-10k; --data takes any directory with the
// four standard files (the full MNIST, or Fashion-MNIST from /usr/share/datasets/fashion-mnist).
#include <memory>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "nn/data.hpp"
#include "nn/model.hpp"

// ---- Constants: the tutorial's recipe ----
constexpr std::int64_t kInputs = 28 * 28;
constexpr std::int64_t kClasses = 10;
constexpr double kValidationSplit = 0.1;

struct Settings {
  std::string data = AUTODIFF_DEFAULT_DATA_DIR;
  int epochs = 10;
  std::int64_t batch_size = 32;
  double learning_rate = 1e-3;  // Adam's default
  std::int64_t hidden = 128;
  std::uint64_t seed = 1;
  int threads = 1;
  std::string history;
};

// ---- The model ----
nn::Sequential build_network(const Settings& s) {
  nn::Sequential network;
  network.add(nn::Dense(kInputs, s.hidden, nn::Activation::Relu, {.seed = s.seed}));
  network.add(nn::Dense(s.hidden, kClasses, nn::Activation::Softmax, {.seed = s.seed + 1}));
  return network;
}

// ---- Training ----
nn::History train(nn::Model& model, const nn::Dataset& data, const Settings& s) {
  return model.fit(data, {.batch_size = s.batch_size,
                          .epochs = s.epochs,
                          .validation_split = kValidationSplit,
                          .shuffle = true,
                          .seed = s.seed});
}

// ---- Evaluation ----
double test(nn::Model& model, const nn::Dataset& data) { return model.evaluate(data).accuracy; }

// "must be > 0", for numbers of any type (CLI11's PositiveNumber prints DBL_MAX as its bound).
const CLI::Validator positive(
    [](std::string& text) {
      double value = 0;
      return CLI::detail::lexical_cast(text, value) && value > 0 ? std::string()
                                                                 : "must be > 0, got " + text;
    },
    "> 0");

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"The tutorial's MNIST MLP: 784 → Dense(128, relu) → Dense(10, softmax), Adam"};
  app.add_option("--data", s.data, "directory with the four MNIST-format IDX files (.gz or raw)")
      ->capture_default_str();
  app.add_option("--epochs", s.epochs, "passes over the training data")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", s.batch_size, "images per step")
      ->capture_default_str()
      ->check(positive);
  app.add_option("--lr", s.learning_rate, "Adam's learning rate")
      ->capture_default_str()
      ->check(positive);
  app.add_option("--hidden", s.hidden, "units in the hidden layer")
      ->capture_default_str()
      ->check(positive);
  app.add_option("--seed", s.seed, "seed of the initial weights and of the shuffling")
      ->capture_default_str();
  app.add_option("--threads", s.threads, "BLAS threads")->capture_default_str()->check(positive);
  app.add_option("--history", s.history,
                 "write epoch,loss,accuracy,val_loss,val_accuracy,seconds as CSV");
  CLI11_PARSE(app, argc, argv);

  try {
    autodiff::set_blas_threads(s.threads);
    const nn::Dataset train_data = nn::load_mnist(s.data, "train");
    const nn::Dataset test_data = nn::load_mnist(s.data, "t10k");
    nn::Model model(build_network(s), nn::categorical_crossentropy,
                    std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(s.learning_rate)));
    fmt::print("{}: {} training and {} test images; {} → {} → {}, {} parameters\n", s.data,
               train_data.size(), test_data.size(), kInputs, s.hidden, kClasses,
               model.network().parameter_count());

    const nn::History history = train(model, train_data, s);
    if (!s.history.empty()) history.write_csv(s.history);
    fmt::print("Test accuracy: {}\n", test(model, test_data));
  } catch (const std::exception& error) {
    fmt::print(stderr, "mnist_mlp: {}\n", error.what());
    return 1;
  }
}
