// Step 4 of the tutorial: train the 2-2-1 network on Alice, Bob, Charlie and Diana with
// per-sample SGD (learning rate 0.1, 1000 epochs), twice from the same initial weights:
// once with the tutorial's hand-derived gradients, once with the tape's.
#include <cmath>
#include <cstdio>
#include <random>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "cli_checks.hpp"
#include "tutorial_network.hpp"

constexpr double kLearnRate = 0.1;
constexpr int kEpochs = 1000;

tutorial::Params initial_weights(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> standard_normal;
  tutorial::Params p;
  for (double& v : p) v = standard_normal(rng);
  return p;
}

void train(unsigned seed) {
  tutorial::Params by_hand = initial_weights(seed);
  tutorial::Params by_tape = by_hand;
  fmt::print("{:>6} {:>16} {:>16} {:>10}\n", "epoch", "loss (hand)", "loss (tape)", "|diff|");
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    for (const tutorial::Person& person : tutorial::kPeople) {
      tutorial::sgd_step(by_hand, tutorial::hand_gradient(by_hand, person), kLearnRate);
      tutorial::sgd_step(by_tape, tutorial::tape_gradient(by_tape, person), kLearnRate);
    }
    if (epoch % 10 == 0) {
      const double hand = tutorial::total_loss(by_hand), tape = tutorial::total_loss(by_tape);
      fmt::print("{:>6} {:>16.12f} {:>16.12f} {:>10.2e}\n", epoch, hand, tape,
                 std::fabs(hand - tape));
    }
  }
  fmt::print("final loss: hand {:.12f}, tape {:.12f}\n", tutorial::total_loss(by_hand),
             tutorial::total_loss(by_tape));
}

int main(int argc, char** argv) {
  CLI::App app{"Trains the tutorial's 2-2-1 network with hand-derived and with tape gradients"};
  unsigned seed = 1;
  app.add_option("--seed", seed, "seed of the standard-normal initial weights")
      ->capture_default_str()
      ->check(cli_checks::integer_in(0, 4'294'967'295));  // all of unsigned, and never -1
  CLI11_PARSE(app, argc, argv);
  try {
    train(seed);
    cli_checks::flush_stdout();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "train_2_2_1: %s\n", error.what());  // cannot throw
    return 1;
  }
}
