// Data-parallel scaling: training steps per second of the tutorial's MLP (784 → 128 → 10, Adam),
// or of Keras's simple MNIST convnet (examples/mnist_cnn.cpp, --network cnn), at a global batch,
// alone or under `mpirun -np N`, each rank on one thread (BLAS and the kernels). Not Google
// Benchmark (which knows nothing of ranks): every rank runs the same timed repetitions, in step,
// and rank 0 prints the fastest one (noise on a shared machine only adds).
//   distributed_scaling --batch 32                    one process, no MPI
//   mpirun -np 2 distributed_scaling --batch 32       two ranks, 16 rows each per step
//   … --bucket-bytes N --no-overlap                 the gradient exchange's settings
//   mpirun -np 2 distributed_scaling --exchange-only   the sum of the MLP's 101,770 gradients alone
//   … --network cnn --batch 128 --steps 20            the convnet (34,826 gradients)
#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "autodiff/parallel.hpp"
#include "nn/distributed.hpp"
#include "nn/model.hpp"

namespace {

nn::Sequential mlp() {
  nn::Sequential network;
  network.add(nn::Dense(784, 128, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(128, 10, nn::Activation::Softmax, {.seed = 2}));
  return network;
}

// examples/mnist_cnn.cpp's network.
nn::Sequential convnet() {
  using nn::Activation;
  nn::Sequential network;
  network.add(nn::Reshape({28, 28, 1}));
  network.add(nn::Conv2D(1, 32, {3, 3}, Activation::Relu, {.seed = 1}));
  network.add(nn::MaxPooling2D({2, 2}));
  network.add(nn::Conv2D(32, 64, {3, 3}, Activation::Relu, {.seed = 2}));
  network.add(nn::MaxPooling2D({2, 2}));
  network.add(nn::Flatten());
  network.add(nn::Dropout(0.5, {.seed = 3}));
  network.add(nn::Dense(1600, 10, Activation::Softmax, {.seed = 4}));
  return network;
}

}  // namespace

int main(int argc, char** argv) {
  nn::distributed::Environment processes(argc, argv);
  std::int64_t batch = 32;
  int steps = 200, repetitions = 10;
  std::size_t bucket_bytes = std::size_t{1} << 20;
  bool no_overlap = false, exchange_only = false;
  std::string network = "mlp";
  CLI::App app{"Training steps per second of the MNIST MLP or convnet, on one or several ranks"};
  app.add_option("--network", network, "mlp or cnn")->check(CLI::IsMember({"mlp", "cnn"}));
  app.add_option("--batch", batch, "the global batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", steps, "steps per repetition")->check(CLI::Range(1, 1 << 20));
  app.add_option("--repetitions", repetitions)->check(CLI::Range(1, 1000));
  app.add_option("--bucket-bytes", bucket_bytes)->check(CLI::Range(1, 1 << 30));
  app.add_flag("--no-overlap", no_overlap, "start the buckets after the backward pass");
  app.add_flag("--exchange-only", exchange_only, "time the gradients' sum over the ranks alone");
  CLI11_PARSE(app, argc, argv);

  autodiff::set_blas_threads(1);
  autodiff::set_threads(1);
  constexpr std::int64_t kInputs = 784, kClasses = 10, kImages = 4096;
  std::mt19937 rng(3);
  std::vector<std::uint8_t> images(std::size_t(kImages * kInputs));
  for (auto& b : images) b = std::uint8_t(rng() % 256);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(kImages));
  for (auto& l : labels) l = std::int32_t(rng() % kClasses);
  const nn::Dataset data(std::move(images), std::move(labels), kInputs, kClasses);

  nn::Model model(network == "cnn" ? convnet() : mlp(), nn::categorical_crossentropy,
                  std::make_unique<nn::Adam>());
  model.distribute(processes.communicator(),
                   {.bucket_bytes = bucket_bytes, .overlap = !no_overlap});
  std::vector<std::int64_t> rows(std::size_t(std::min(batch, kImages)));
  std::int64_t start = 0;
  std::vector<float> gradients(std::size_t(model.network().parameter_count()), 1.0f);
  auto step = [&] {
    if (exchange_only) {
      if (nn::Communicator* ranks = processes.communicator()) {
        ranks->start_sum(gradients);
        ranks->wait_all();
      }
      return;
    }
    std::iota(rows.begin(), rows.end(), start);
    start = (start + std::int64_t(rows.size())) % (kImages - std::int64_t(rows.size()) + 1);
    model.train_step(data, rows);
  };
  for (int i = 0; i < 20; ++i) step();  // warm: the tape's arrays, Adam's moments
  double fastest = 1e300;
  for (int r = 0; r < repetitions; ++r) {
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step();
    fastest = std::min(
        fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  }
  if (processes.is_main())
    fmt::print(
        "{} ranks {} batch {} bucket_bytes {} overlap {}{}: {:.1f} steps/s ({:.3f} ms/step, "
        "fastest of {} × {} steps)\n",
        network, processes.size(), rows.size(), bucket_bytes, !no_overlap,
        exchange_only ? " exchange only" : "", steps / fastest, 1e3 * fastest / steps, repetitions,
        steps);
}
