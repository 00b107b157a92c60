// The data-parallel tests' program (tests/CMakeLists.txt runs it): the tutorial's MLP (or a small
// convnet) trained with fit on the shipped sample, alone or under `mpirun -np N`, with the same
// seed and global batch either way.
//   --network mlp|cnn|cnn-bn   the MLP; Conv2D → MaxPooling2D → Flatten → Dropout → Dense; the
//                    same with BatchNormalization after the Conv2D (not the single process's
//                    training: each rank normalises with its share's statistics)
//   --train-images N, --test-images N   the first N images only (0: all), for short runs
//   --save FILE      rank 0 writes the trained weights (the single-process reference)
//   --compare FILE   after training, each parameter tensor must be within --tolerance of the
//                    reference's (relative, in L2 norm), and the test accuracy within
//                    --accuracy-tolerance of the reference weights' accuracy
//   --fail-rank R --fail-step K --fail-how throw|kill   rank R fails at its K-th step
//   --expect-ranks N  fails unless the job has N ranks (mpirun did start them all)
// Every rank also checks that its parameters are bitwise rank 0's at the end.
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "nn/data.hpp"
#include "nn/distributed.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"

namespace {

struct Settings {
  int epochs = 1;
  std::int64_t batch_size = 32;
  std::uint64_t seed = 1;
  std::string save, compare;
  double tolerance = 1e-5, accuracy_tolerance = 0.005;
  std::size_t bucket_bytes = std::size_t{1} << 20;
  int fail_rank = -1;
  std::int64_t fail_step = 0;
  std::string fail_how = "throw";
  int expect_ranks = 0;
  std::string network = "mlp";
  std::int64_t train_images = 0, test_images = 0;
};

nn::Sequential build_network(const Settings& s) {
  using nn::Activation;
  nn::Sequential network;
  if (s.network == "mlp") {
    network.add(nn::Dense(784, 128, Activation::Relu, {.seed = s.seed}));
    network.add(nn::Dense(128, 10, Activation::Softmax, {.seed = s.seed + 1}));
    return network;
  }
  network.add(nn::Reshape({28, 28, 1}));
  network.add(nn::Conv2D(1, 8, {3, 3}, Activation::Relu, {.seed = s.seed}));  // 26×26×8
  if (s.network == "cnn-bn") network.add(nn::BatchNormalization(8));
  network.add(nn::MaxPooling2D({2, 2}));  // 13×13×8
  network.add(nn::Flatten());
  network.add(nn::Dropout(0.5, {.seed = s.seed + 1}));
  network.add(nn::Dense(13 * 13 * 8, 10, Activation::Softmax, {.seed = s.seed + 2}));
  return network;
}

nn::Model build_model(const Settings& s) {
  return nn::Model(build_network(s), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
}

nn::Dataset first_images(nn::Dataset data, std::int64_t n) {
  return n > 0 && n < data.size() ? data.slice(0, n) : data;
}

// Makes rank `rank` fail at its step-th step (counted over the whole run).
class FailAt : public nn::Callback {
 public:
  FailAt(const Settings& s, int rank) : s_(s), rank_(rank) {}
  void on_batch_end(nn::Model&, const nn::BatchEnd&) override {
    if (rank_ != s_.fail_rank || ++steps_ != s_.fail_step) return;
    if (s_.fail_how == "kill") std::raise(SIGKILL);
    throw std::runtime_error(fmt::format("injected failure at step {}", steps_));
  }

 private:
  const Settings& s_;
  int rank_;
  std::int64_t steps_ = 0;
};

// Every rank's parameters must be rank 0's, bit for bit: the ranks apply the same update to the
// same values.
void check_ranks_identical(nn::Module& network, nn::Communicator& communicator) {
  for (const nn::NamedParameter& p : network.named_state()) {
    std::vector<float> rank0 = p.parameter->value;
    communicator.broadcast(std::as_writable_bytes(std::span(rank0)));
    if (std::memcmp(rank0.data(), p.parameter->value.data(), rank0.size() * sizeof(float)) != 0)
      throw std::runtime_error(fmt::format("{} differs from rank 0's", p.name));
  }
}

// Relative L2 distance of each tensor to the reference's; the largest.
double largest_relative_difference(nn::Module& mine, nn::Module& reference) {
  const auto a = mine.named_parameters(), b = reference.named_parameters();
  double largest = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    double diff = 0, norm = 0;
    for (std::size_t k = 0; k < a[i].parameter->value.size(); ++k) {
      const double x = a[i].parameter->value[k], y = b[i].parameter->value[k];
      diff += (x - y) * (x - y);
      norm += y * y;
    }
    const double relative = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
    fmt::print("{}: relative difference {:.3g}\n", a[i].name, relative);
    largest = std::max(largest, relative);
  }
  return largest;
}

}  // namespace

int main(int argc, char** argv) {
  nn::distributed::Environment processes(argc, argv);
  Settings s;
  CLI::App app{"Data-parallel MLP on the shipped MNIST sample"};
  app.add_option("--epochs", s.epochs);
  app.add_option("--batch-size", s.batch_size);
  app.add_option("--seed", s.seed);
  app.add_option("--save", s.save);
  app.add_option("--compare", s.compare);
  app.add_option("--tolerance", s.tolerance);
  app.add_option("--accuracy-tolerance", s.accuracy_tolerance);
  app.add_option("--bucket-bytes", s.bucket_bytes);
  app.add_option("--fail-rank", s.fail_rank);
  app.add_option("--fail-step", s.fail_step);
  app.add_option("--fail-how", s.fail_how)->check(CLI::IsMember({"throw", "kill"}));
  app.add_option("--expect-ranks", s.expect_ranks);
  app.add_option("--network", s.network)->check(CLI::IsMember({"mlp", "cnn", "cnn-bn"}));
  app.add_option("--train-images", s.train_images)->check(CLI::NonNegativeNumber);
  app.add_option("--test-images", s.test_images)->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (s.expect_ranks > 0 && processes.size() != s.expect_ranks)
      throw std::runtime_error(
          fmt::format("{} ranks, expected {}", processes.size(), s.expect_ranks));
    autodiff::set_blas_threads(1);  // each rank on one core
    const nn::Dataset train =
        first_images(nn::load_mnist(AUTODIFF_DATA_DIR, "train"), s.train_images);
    const nn::Dataset test = first_images(nn::load_mnist(AUTODIFF_DATA_DIR, "t10k"), s.test_images);
    nn::Model model = build_model(s);
    model.distribute(processes.communicator(), {.bucket_bytes = s.bucket_bytes});
    FailAt fail(s, processes.rank());
    model.fit(train, {.batch_size = s.batch_size,
                      .epochs = s.epochs,
                      .validation_split = 0.1,
                      .seed = s.seed,
                      .verbose = 2,
                      .callbacks = {&fail}});
    if (processes.communicator()) check_ranks_identical(model.network(), *processes.communicator());
    const double accuracy = model.evaluate(test)["accuracy"];
    if (!processes.is_main()) return 0;
    fmt::print("ranks: {}\nTest accuracy: {}\n", processes.size(), accuracy);
    if (!s.save.empty()) nn::save_weights(model.network(), s.save);  // buffers too
    if (!s.compare.empty()) {
      nn::Model reference = build_model(s);
      nn::load_weights(reference.network(), s.compare);
      const double difference = largest_relative_difference(model.network(), reference.network());
      const double reference_accuracy = reference.evaluate(test)["accuracy"];
      fmt::print("largest relative difference: {:.3g} (tolerance {:.3g})\n", difference,
                 s.tolerance);
      fmt::print("reference test accuracy: {}\n", reference_accuracy);
      if (!(difference <= s.tolerance))
        throw std::runtime_error("the parameters differ from the single process's");
      if (!(std::fabs(accuracy - reference_accuracy) <= s.accuracy_tolerance))
        throw std::runtime_error("the test accuracy differs from the single process's");
      fmt::print("equivalent to the single process\n");
    }
  } catch (const std::exception& error) {
    processes.fail("distributed_mlp", error.what());
    return 1;
  }
}
