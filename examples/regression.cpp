// A regression with fit: y = sin(3x) + noise, learnt by a 1 → 64 → 64 → 1 MLP with Adam and the
// Huber loss. 2,000 training and 500 test points, x uniform in [−1, 1], noise of standard
// deviation 0.1 (so the noise alone gives a test MSE of 0.01). Last line: "Test MSE: X".
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "cli_checks.hpp"
#include "nn/model.hpp"

// ---- Constants ----
constexpr std::int64_t kTrain = 2000, kTest = 500, kHidden = 64;
constexpr double kNoise = 0.1;

struct Settings {
  std::uint64_t seed = 1;
  int epochs = 150;
  int verbose = 2;  // one line per epoch
};

// ---- Data: x uniform in [−1, 1], y = sin(3x) + N(0, 0.1²), from a fixed seed ----
nn::TensorData make_data(std::int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> noise(0.0f, float(kNoise));
  std::vector<float> x(static_cast<std::size_t>(n)), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = uniform(rng);
    y[i] = std::sin(3.0f * x[i]) + noise(rng);
  }
  return nn::TensorData(std::move(x), {n, 1}, std::move(y), {n, 1});
}

// ---- The model ----
nn::Sequential build_network(std::uint64_t seed) {
  nn::Sequential network;
  network.add(nn::Dense(1, kHidden, nn::Activation::Tanh, {.seed = seed}));
  network.add(nn::Dense(kHidden, kHidden, nn::Activation::Tanh, {.seed = seed + 1}));
  network.add(nn::Dense(kHidden, 1, nn::Activation::Linear, {.seed = seed + 2}));
  return network;
}

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"Fit y = sin(3x) + noise with a 1 → 64 → 64 → 1 MLP, Adam and the Huber loss"};
  using cli_checks::integer_in;
  app.add_option("--seed", s.seed, "seed of the data, the weights and the shuffling")
      ->capture_default_str()
      ->check(integer_in(0, cli_checks::kMaxSeed));
  app.add_option("--epochs", s.epochs, "passes over the training data")
      ->capture_default_str()
      ->check(integer_in(1, 100000));
  app.add_option("--verbose", s.verbose, "0 silent, 1 progress bar, 2 one line per epoch")
      ->capture_default_str()
      ->check(integer_in(0, 2));
  CLI11_PARSE(app, argc, argv);

  try {
    std::mt19937_64 rng(s.seed);
    const nn::TensorData train = make_data(kTrain, rng);
    const nn::TensorData test = make_data(kTest, rng);
    nn::Model model(build_network(s.seed), nn::huber(1.0), std::make_unique<nn::Adam>(),
                    {nn::metrics::mean_squared_error()});
    const nn::History history = model.fit(
        train, {.batch_size = 32, .epochs = s.epochs, .seed = s.seed, .verbose = s.verbose});
    if (history.diverged) throw std::runtime_error(history.stop_reason);
    fmt::print("Test MSE: {:.4f}\n", model.evaluate(test)["mse"]);
  } catch (const std::exception& error) {
    fmt::print(stderr, "regression: {}\n", error.what());
    return 1;
  }
}
