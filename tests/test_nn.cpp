// The nn module: Dense, losses, optimizers, fit's semantics, a short real training run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "allocation_counter.hpp"
#include "nn/model.hpp"

using autodiff::Tensor;
using F = Tensor<float>;

namespace {

nn::Sequential mlp(std::int64_t hidden, std::uint64_t seed) {
  nn::Sequential network;
  network.add(nn::Dense(784, hidden, nn::Activation::Relu, {.seed = seed}));
  network.add(nn::Dense(hidden, 10, nn::Activation::Softmax, {.seed = seed + 1}));
  return network;
}

const nn::Dataset& shipped_train() {
  static const nn::Dataset data = nn::load_mnist(AUTODIFF_DATA_DIR, "train");
  return data;
}

std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string text;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, f)) text.append(buffer, n);
  return text;
}

}  // namespace

TEST_CASE("Dense: forward with constant weights against a hand value") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Dense dense(3, 2, nn::Activation::Sigmoid);
  dense.weights().value = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f};  // (3, 2), row-major
  dense.bias().value = {0.05f, -0.05f};
  const F x = F::from({1, 2, 3, -1, 0, 1}, {2, 3});
  const auto y = dense(x).to_vector();
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  // Row 0: [1·0.1 + 2·0.3 + 3·(−0.5) + 0.05, 1·(−0.2) + 2·0.4 + 3·0.6 − 0.05] = [−0.75, 2.35]
  CHECK(y[0] == doctest::Approx(sigmoid(-0.75)).epsilon(1e-6));
  CHECK(y[1] == doctest::Approx(sigmoid(2.35)).epsilon(1e-6));
  // Row 1: [−0.1 − 0.5 + 0.05, 0.2 + 0.6 − 0.05] = [−0.55, 0.75]
  CHECK(y[2] == doctest::Approx(sigmoid(-0.55)).epsilon(1e-6));
  CHECK(y[3] == doctest::Approx(sigmoid(0.75)).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(dense(F::zeros({2, 4})),
                       "Dense(3 → 2): input has shape (2, 4), expected (batch, …, 3)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Dense(0, 3), "Dense: in = 0 and out = 3: both must be > 0",
                       std::invalid_argument);
}

TEST_CASE("Dense: on the last axis of a sequence, as on its steps reshaped to rows") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Dense dense(3, 2, nn::Activation::Softmax, {.seed = 3});
  const F steps = F::random_uniform({2, 4, 3}, -1, 1, 7).requires_grad();
  const F y = dense(steps);
  REQUIRE(y.shape() == autodiff::Shape{2, 4, 2});
  const F rows = autodiff::reshape(steps, {8, 3});
  CHECK(y.to_vector() == dense(rows).to_vector());  // one product either way: the same sums
  autodiff::sum(y * F::arange(1, 3)).backward();
  const std::vector<float> by_steps = dense.weights().grad;
  std::fill(dense.weights().grad.begin(), dense.weights().grad.end(), 0.0f);
  autodiff::sum(dense(rows) * F::arange(1, 3)).backward();
  CHECK(dense.weights().grad == by_steps);
  CHECK_THROWS_WITH_AS(dense(F::zeros({3})),
                       "Dense(3 → 2): input has shape (3,), expected (batch, …, 3)",
                       std::invalid_argument);
}

TEST_CASE("Dense: Glorot-uniform weights within their limit, zero biases, reproducible") {
  nn::Dense a(784, 128, nn::Activation::Relu, {.seed = 5}),
      b(784, 128, nn::Activation::Relu, {.seed = 5});
  const float limit = std::sqrt(6.0f / (784 + 128));
  float largest = 0;
  for (float w : a.weights().value) largest = std::max(largest, std::fabs(w));
  CHECK(largest <= limit);
  CHECK(largest > 0.95f * limit);
  CHECK(a.weights().value == b.weights().value);
  for (float v : a.bias().value) CHECK(v == 0.0f);
  nn::Dense he(100, 10, nn::Activation::Relu, {.init = nn::Init::HeUniform, .seed = 5});
  for (float w : he.weights().value) CHECK(std::fabs(w) <= std::sqrt(6.0f / 100));
}

TEST_CASE("Dense: parameter gradients against finite differences") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Dense dense(4, 3, nn::Activation::Tanh, {.seed = 3});
  const std::vector<float> x_values = {0.5f, -1.0f, 0.25f, 2.0f, -0.3f, 0.8f, 1.5f, -0.7f};
  const std::vector<float> w = {0.3f, -0.6f, 0.9f, 0.2f, -0.4f, 0.7f};
  auto loss = [&] {
    const F y = dense(F::from(x_values, {2, 4}));
    return sum(y * F::from(w, {2, 3}));
  };
  tape.clear();
  loss().backward();
  for (nn::Parameter* p : dense.parameters()) {
    for (std::size_t i = 0; i < p->value.size(); ++i) {
      const float saved = p->value[i], h = 1e-2f;
      autodiff::NoGradGuard no_grad;
      p->value[i] = saved + h;
      const double up = loss().item();
      p->value[i] = saved - h;
      const double down = loss().item();
      p->value[i] = saved;
      INFO(p->name, "[", i, "]");
      CHECK(p->grad[i] == doctest::Approx((up - down) / (2 * h)).epsilon(2e-3));
    }
  }
}

TEST_CASE("losses: values against hand computations") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  const F y_true = F::from({0, 1, 0, 1, 0, 0}, {2, 3});
  const F p = F::from({0.2f, 0.7f, 0.1f, 0.5f, 0.5f, 0.0f}, {2, 3});
  CHECK(nn::mean_squared_error(y_true, p).item() ==
        doctest::Approx((0.04 + 0.09 + 0.01 + 0.25 + 0.25) / 6).epsilon(1e-6));
  // Keras: probabilities clipped to [1e-7, 1 − 1e-7]: −(log 0.7 + log 0.5) / 2.
  CHECK(nn::categorical_crossentropy(y_true, p).item() ==
        doctest::Approx(-(std::log(0.7) + std::log(0.5)) / 2).epsilon(1e-6));
  const F z = F::from({1, 2, 3, 0, 0, 5}, {2, 3});
  const double fused = nn::categorical_crossentropy(y_true, softmax(z)).item();
  const double by_hand =
      -(2 - std::log(std::exp(1) + std::exp(2) + std::exp(3)) + 0 - std::log(2 + std::exp(5))) / 2;
  CHECK(fused == doctest::Approx(by_hand).epsilon(1e-6));
  CHECK(nn::categorical_crossentropy_from_logits(y_true, z).item() ==
        doctest::Approx(by_hand).epsilon(1e-6));
  const std::int32_t labels[] = {1, 0};
  CHECK(nn::sparse_categorical_crossentropy(labels, softmax(z)).item() ==
        doctest::Approx(by_hand).epsilon(1e-6));
  // A softmax that saturates: the clipped form bottoms out, the fused form stays exact.
  const F far = F::from({0, 0, 100, 0, 0, 100}, {2, 3});
  CHECK(nn::categorical_crossentropy(y_true, softmax(far)).item() ==
        doctest::Approx(100).epsilon(1e-5));
}

TEST_CASE("Adam: the first steps against hand-computed values (Keras's formula)") {
  nn::Parameter p("p", {2});
  p.value = {1.0f, -2.0f};
  nn::Adam adam;  // lr 1e-3, β1 0.9, β2 0.999, ε 1e-7
  double m[2] = {0, 0}, v[2] = {0, 0}, expected[2] = {1.0, -2.0};
  const double grads[3][2] = {{0.5, -0.1}, {0.2, 0.3}, {-0.4, 0.05}};
  for (int t = 1; t <= 3; ++t) {
    p.grad = {float(grads[t - 1][0]), float(grads[t - 1][1])};
    nn::Parameter* params[] = {&p};
    adam.step(params);
    const double alpha = 1e-3 * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      expected[i] -= alpha * m[i] / (std::sqrt(v[i]) + 1e-7);
      CHECK(p.value[std::size_t(i)] == doctest::Approx(expected[i]).epsilon(1e-6));
      CHECK(p.grad[std::size_t(i)] == 0.0f);  // zeroed by the step
    }
  }
  // The first step moves each parameter by about lr, against its gradient's sign.
  CHECK(expected[0] < 1.0);
  CHECK_THROWS_WITH_AS(nn::Adam(nn::AdamOptions().learning_rate(-1)),
                       "Adam: learning_rate is -1, expected > 0", std::invalid_argument);
  CHECK_THROWS_AS(nn::Adam(nn::AdamOptions().beta1(1.0)), std::invalid_argument);
  CHECK_THROWS_AS(nn::Adam(nn::AdamOptions().epsilon(-1)), std::invalid_argument);
}

TEST_CASE("SGD with momentum: hand-computed steps") {
  nn::Parameter p("p", {1});
  p.value = {1.0f};
  nn::SGD sgd(nn::SGDOptions().learning_rate(0.1).momentum(0.9));
  nn::Parameter* params[] = {&p};
  p.grad = {1.0f};
  sgd.step(params);  // velocity −0.1 → 0.9
  CHECK(p.value[0] == doctest::Approx(0.9));
  p.grad = {1.0f};
  sgd.step(params);  // velocity 0.9·(−0.1) − 0.1 = −0.19 → 0.71
  CHECK(p.value[0] == doctest::Approx(0.71));
  CHECK_THROWS_WITH_AS(nn::SGD(nn::SGDOptions().momentum(1.5)),
                       "SGD: momentum is 1.5, expected in [0, 1)", std::invalid_argument);
}

TEST_CASE("fit: Keras's validation split, reshuffling every epoch") {
  CHECK(nn::validation_split_point(8000, 0.1) == 7200);
  CHECK(nn::validation_split_point(10, 0.25) == 7);  // ⌊7.5⌋: the last 3 rows validate
  CHECK(nn::validation_split_point(10, 0.0) == 10);
  CHECK_THROWS_AS(nn::validation_split_point(10, 1.0), std::invalid_argument);

  nn::EpochOrder fixed(5, false, 1);
  CHECK(std::vector<std::int64_t>(fixed.next_epoch().begin(), fixed.next_epoch().end()) ==
        std::vector<std::int64_t>{0, 1, 2, 3, 4});
  nn::EpochOrder shuffled(100, true, 1), same_seed(100, true, 1);
  const auto first =
      std::vector<std::int64_t>(shuffled.next_epoch().begin(), shuffled.next_epoch().end());
  const auto second =
      std::vector<std::int64_t>(shuffled.next_epoch().begin(), shuffled.next_epoch().end());
  CHECK(first != second);  // a new order every epoch
  CHECK(std::set<std::int64_t>(first.begin(), first.end()).size() == 100);  // a permutation
  CHECK(*std::max_element(first.begin(), first.end()) == 99);
  CHECK(std::vector<std::int64_t>(same_seed.next_epoch().begin(), same_seed.next_epoch().end()) ==
        first);

  // The validation numbers fit reports are those of the last rows, taken before shuffling.
  const nn::Dataset data = shipped_train().slice(0, 1000);
  nn::Model model(mlp(32, 7), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  const nn::History history =
      model.fit(data, {.epochs = 2, .validation_split = 0.2, .seed = 3, .verbose = 0});
  REQUIRE(history.epochs.size() == 2);
  const nn::Evaluation last_rows = model.evaluate(data.slice(800, 1000));
  CHECK(history.epochs[1]["val_loss"] == doctest::Approx(last_rows["loss"]).epsilon(1e-12));
  CHECK(history.epochs[1]["val_accuracy"] == doctest::Approx(last_rows["accuracy"]).epsilon(1e-12));
  // Same seed, same run; another seed, another run.
  nn::Model again(mlp(32, 7), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  CHECK(again.fit(data, {.epochs = 2, .validation_split = 0.2, .seed = 3, .verbose = 0})
            .epochs[1]["loss"] == history.epochs[1]["loss"]);
  nn::Model other(mlp(32, 7), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  CHECK(other.fit(data, {.epochs = 2, .validation_split = 0.2, .seed = 4, .verbose = 0})
            .epochs[1]["loss"] != history.epochs[1]["loss"]);

  CHECK_THROWS_WITH_AS(model.fit(data, {.batch_size = 0}), "fit: batch_size is 0, expected > 0",
                       std::invalid_argument);
  CHECK_THROWS_AS(model.fit(data, {.validation_split = -0.1}), std::invalid_argument);
}

TEST_CASE("fit: Keras's progress line, one per epoch when not on a terminal; history as CSV") {
  const nn::Dataset data = shipped_train().slice(0, 320);
  nn::Model model(mlp(16, 1), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  const nn::History history = model.fit(data, {.epochs = 2, .validation_split = 0.5, .out = out});
  const std::string text = read_all(out);
  std::fclose(out);
  INFO(text);
  // Two epochs: "Epoch k/2", then Keras's line with validation numbers.
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1)
    lines.push_back(text.substr(start, end - start));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "Epoch 1/2");
  CHECK(lines[2] == "Epoch 2/2");
  for (const std::string& progress : {lines[1], lines[3]}) {
    char bar[64] = {};
    int step = 0, steps = 0, seconds = -1, consumed = 0;
    double ms = -1, loss = -1, acc = -1, val_loss = -1, val_acc = -1;
    const int fields =
        std::sscanf(progress.c_str(),
                    "%d/%d [%63[=]] - %ds %lfms/step - loss: %lf - accuracy: %lf - val_loss: %lf - "
                    "val_accuracy: %lf%n",
                    &step, &steps, bar, &seconds, &ms, &loss, &acc, &val_loss, &val_acc, &consumed);
    CHECK(fields == 9);
    CHECK(consumed == static_cast<int>(progress.size()));
    CHECK(step == 5);
    CHECK(steps == 5);
    CHECK(std::string(bar) == std::string(30, '='));
    CHECK(loss > 0);
    CHECK(acc >= 0);
    CHECK(val_loss > 0);
    CHECK(progress.find(" - loss: ") != std::string::npos);
    CHECK(progress.find(fmt::format("loss: {:.4f}", loss)) !=
          std::string::npos);  // 4 decimals, as Keras
  }

  const std::string path = "history_test.csv";
  history.write_csv(path);
  std::FILE* csv = std::fopen(path.c_str(), "r");
  REQUIRE(csv != nullptr);
  const std::string written = read_all(csv);
  std::fclose(csv);
  std::remove(path.c_str());
  CHECK(written.rfind("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n1,", 0) == 0);
  CHECK(std::count(written.begin(), written.end(), '\n') == 3);
  CHECK_THROWS_AS(history.write_csv("no-such-directory/history.csv"), nn::DataError);
}

TEST_CASE("a short seeded training run on the shipped data reaches a loss threshold") {
  const nn::Dataset train = shipped_train().slice(0, 4000);
  const nn::Dataset test = nn::load_mnist(AUTODIFF_DATA_DIR, "t10k");
  nn::Model model(mlp(64, 42), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  const nn::History history = model.fit(train, {.epochs = 2, .seed = 42, .verbose = 0});
  CHECK(history.epochs[1]["loss"] < history.epochs[0]["loss"]);
  const nn::Evaluation result = model.evaluate(test);
  MESSAGE("2 epochs on 4,000 shipped images: test loss ", result["loss"], ", accuracy ",
          result["accuracy"]);
  CHECK(result["loss"] < 0.45);
  CHECK(result["accuracy"] > 0.87);
  CHECK(model.predict(test.slice(0, 5)).size() == 50);
}

TEST_CASE("a training step allocates nothing on the heap once warm") {
  const nn::Dataset& data = shipped_train();
  nn::Model model(mlp(128, 1), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  CHECK(testing::warm_step_allocations(model, data, 32) == 0);
}
