// fit on any data and any loss: a regression on float features, a model that is not a Sequential,
// metrics by name, callbacks (early stopping restoring the best weights, learning-rate schedules),
// the stop on a non-finite loss, predict without targets, and the tape handled for the user.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nn/model.hpp"

namespace {

// y = 2x − 1 + noise: n points from a seed.
nn::TensorData line(std::int64_t n, std::uint64_t seed, double noise = 0.05) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, float(noise));
  std::vector<float> x(static_cast<std::size_t>(n)), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = uniform(rng);
    y[i] = 2 * x[i] - 1 + normal(rng);
  }
  return nn::TensorData(std::move(x), {n, 1}, std::move(y), {n, 1});
}

FILE* null_output() {
  static FILE* f = std::fopen("/dev/null", "w");
  return f;
}

}  // namespace

TEST_CASE("fit: linear regression on float features, a Dense alone as the model, any loss") {
  const nn::TensorData data = line(256, 1);
  const double delta = 0.5;  // a capturing lambda is a loss too
  nn::Model model(
      nn::Dense(1, 1),
      [delta](const auto& y_true, const auto& y_pred) { return nn::huber(delta)(y_true, y_pred); },
      std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.05)),
      {nn::metrics::mean_absolute_error()});
  const nn::History history = model.fit(
      data, {.batch_size = 16, .epochs = 40, .validation_split = 0.25, .seed = 3, .verbose = 0});
  REQUIRE(history.epochs.size() == 40);
  const nn::EpochLog& last = history.epochs.back();
  CHECK(last.values().size() == 4);  // loss, mae, val_loss, val_mae
  CHECK(last["mae"] < 0.06);
  CHECK(last["val_mae"] < 0.06);
  CHECK(std::isnan(last["accuracy"]));  // not a metric of this model
  auto& dense = model.network<nn::Dense>();
  CHECK(dense.weights().value[0] == doctest::Approx(2.0).epsilon(0.03));
  CHECK(dense.bias().value[0] == doctest::Approx(-1.0).epsilon(0.03));
  // predict: no targets needed, and one sample directly.
  const std::vector<float> one = model.predict(std::vector<float>{0.5f}, {1, 1});
  REQUIRE(one.size() == 1);
  CHECK(one[0] == doctest::Approx(0.0).epsilon(0.05));
  const nn::TensorData features_only(std::vector<float>{0.0f, 1.0f}, {2, 1});
  const auto outputs = model.predict(features_only);
  CHECK(outputs[1] - outputs[0] == doctest::Approx(2.0).epsilon(0.03));
  CHECK_THROWS_AS(model.evaluate(features_only), std::logic_error);  // no targets to compare
}

TEST_CASE("a model for inference only predicts, and refuses to train") {
  nn::Model model(nn::Dense(2, 1));
  model.network<nn::Dense>().weights().value = {1.0f, 2.0f};
  CHECK(model.predict(std::vector<float>{3.0f, 4.0f}, {1, 2}) == std::vector<float>{11.0f});
  CHECK_THROWS_AS(model.fit(line(8, 1), {.verbose = 0}), std::logic_error);
}

TEST_CASE("early stopping stops, and restores the best epoch's weights") {
  nn::Model model(nn::Dense(1, 1), nn::mean_squared_error,
                  std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(0.1)), {});
  std::vector<std::vector<float>> weights_at;  // after each epoch
  nn::LambdaCallback record;
  record.epoch_end = [&](nn::Model& m, const nn::History&) {
    weights_at.push_back(m.network<nn::Dense>().weights().value);
  };
  nn::LambdaCallback sabotage;  // after epoch 3, ruin the weights: validation gets worse
  sabotage.epoch_end = [](nn::Model& m, const nn::History& h) {
    if (h.epochs.back().epoch == 3) m.network<nn::Dense>().weights().value[0] = 50.0f;
  };
  nn::EarlyStopping early({.monitor = "val_loss", .patience = 1});
  const nn::History history = model.fit(line(200, 2), {.batch_size = 50,
                                                       .epochs = 30,
                                                       .validation_split = 0.2,
                                                       .seed = 1,
                                                       .verbose = 0,
                                                       .callbacks = {&record, &early, &sabotage}});
  CHECK(early.best_epoch() == 3);
  CHECK(early.stopped_epoch() == 4);  // epoch 4 did not improve: patience 1 is spent (Keras)
  CHECK(history.epochs.size() == 4);
  CHECK(history.stop_reason.find("early stopping: val_loss has not improved") == 0);
  CHECK_FALSE(history.diverged);
  CHECK(model.network<nn::Dense>().weights().value == weights_at[2]);  // epoch 3's, restored
  CHECK(weights_at.back() != weights_at[2]);

  nn::EarlyStopping unknown({.monitor = "val_accuracy"});
  CHECK_THROWS_WITH_AS(
      model.fit(line(20, 3),
                {.epochs = 1, .validation_split = 0.5, .verbose = 0, .callbacks = {&unknown}}),
      doctest::Contains("\"val_accuracy\" is not in the epoch logs"), std::invalid_argument);
}

TEST_CASE("a non-finite loss stops training, naming the epoch and the batch") {
  nn::Model model(nn::Dense(1, 1), nn::mean_squared_error,
                  std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(1e20)), {});
  const nn::History history =
      model.fit(line(64, 4), {.batch_size = 8, .epochs = 5, .seed = 1, .verbose = 0});
  CHECK(history.diverged);
  CHECK(history.epochs.empty());  // it diverged within the first epoch
  CHECK(history.stop_reason.find("at epoch 1, batch ") != std::string::npos);
  CHECK(history.stop_reason.find("training stopped") != std::string::npos);
}

TEST_CASE("learning-rate schedules: step and cosine decay, set at each epoch") {
  nn::Model model(nn::Dense(1, 1), nn::mean_squared_error,
                  std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(0.1)), {});
  std::vector<double> rates;
  nn::LambdaCallback watch;
  watch.epoch_begin = [&](nn::Model& m, int) { rates.push_back(m.optimizer().learning_rate()); };
  nn::LearningRateScheduler step = nn::step_decay(0.1, 0.5, 2);
  model.fit(line(16, 5), {.epochs = 5, .verbose = 0, .callbacks = {&step, &watch}});
  CHECK(rates == std::vector<double>{0.1, 0.1, 0.05, 0.05, 0.025});
  rates.clear();
  nn::LearningRateScheduler cosine = nn::cosine_decay(0.1, 4, 0.01);
  model.fit(line(16, 5), {.epochs = 5, .verbose = 0, .callbacks = {&cosine, &watch}});
  REQUIRE(rates.size() == 5);
  CHECK(rates[0] == doctest::Approx(0.1));
  CHECK(rates[2] == doctest::Approx(0.055));
  CHECK(rates[4] == rates[3]);  // past the schedule: its last value
  CHECK_THROWS_AS(nn::step_decay(0.1, 0.5, 0), std::invalid_argument);
  CHECK_THROWS_AS(nn::cosine_decay(0.1, 10, 0.2), std::invalid_argument);
}

TEST_CASE("train_step clears what it records: a hand-written loop stays the same size") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  nn::Sequential network;
  network.add(nn::Dense(1, 8, nn::Activation::Tanh));
  network.add(nn::Dense(8, 1));
  nn::Adam adam(nn::AdamOptions().learning_rate(0.02));
  std::size_t first_bytes = 0;
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    last = nn::train_step(network, nn::mean_squared_error, adam, [] {
      return std::pair{autodiff::Tensor<float>::from({-1.0f, 0.0f, 1.0f}, {3, 1}),
                       autodiff::Tensor<float>::from({1.0f, 0.0f, 1.0f}, {3, 1})};
    });
    if (step == 0) {
      first = last;
      first_bytes = tape.bytes_used();
    }
    CHECK(tape.bytes_used() == first_bytes);
  }
  CHECK(last < 0.1 * first);
  CHECK_FALSE(adam.tape_growth_reported());
}

TEST_CASE("the history CSV has a column per log") {
  nn::Model model(nn::Dense(1, 1), nn::mean_squared_error, std::make_unique<nn::Adam>(),
                  {nn::metrics::mean_absolute_error()});
  const nn::History history =
      model.fit(line(32, 6), {.epochs = 2, .verbose = 2, .out = null_output()});
  const std::string path = "/tmp/autodiff_test_fit_history.csv";
  history.write_csv(path);
  FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f);
  char header[128] = {};
  REQUIRE(std::fgets(header, sizeof header, f));
  std::fclose(f);
  std::remove(path.c_str());
  CHECK(std::string(header) == "epoch,loss,mae,seconds\n");
}

TEST_CASE("integer class labels where a classification loss wants them") {
  // Two blobs, labels 0 and 1 as class numbers (not one-hot), sparse cross-entropy, accuracy.
  std::vector<float> x;
  std::vector<std::int32_t> labels;
  for (int i = 0; i < 64; ++i) {
    const int label = i % 2;
    x.push_back(label == 0 ? -1.0f - 0.01f * float(i) : 1.0f + 0.01f * float(i));
    labels.push_back(label);
  }
  const auto data = nn::TensorData::with_labels(x, {64, 1}, labels, 2, /*one_hot=*/false);
  nn::Sequential network;
  network.add(nn::Dense(1, 2, nn::Activation::Softmax));
  nn::Model model(std::move(network), nn::SparseCategoricalCrossentropy{},
                  std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.05)));
  model.fit(data, {.batch_size = 16, .epochs = 30, .seed = 2, .verbose = 0});
  CHECK(model.evaluate(data)["accuracy"] == 1.0);
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  CHECK_THROWS_WITH_AS(
      nn::sparse_categorical_crossentropy(autodiff::Tensor<float>::from({0.0f, 1.5f}, {2, 1}),
                                          autodiff::Tensor<float>::ones({2, 2})),
      "sparse_categorical_crossentropy: label 1.5 at row 1 is not a class number",
      std::invalid_argument);
}

#if defined(__SSE__)
#include <xmmintrin.h>
TEST_CASE("optimizers flush subnormal moments inside their step only") {
  // Adam's moments of a parameter whose gradient stays 0 decay into subnormals, which are slow:
  // the step runs with flush-to-zero, and gives the caller's floating-point mode back.
  nn::Dense dense(2, 2);
  nn::Adam adam;
  const auto params = dense.parameters();
  const unsigned mode = _mm_getcsr();
  for (int i = 0; i < 3; ++i) adam.step(params);
  CHECK(_mm_getcsr() == mode);
  volatile float tiny = 1e-39f;  // subnormal: still representable outside the step
  CHECK(tiny * 1.0f != 0.0f);
}
#endif

TEST_CASE("after a divergence, early stopping still restores the best weights") {
  nn::Model model(nn::Dense(1, 1), nn::mean_squared_error,
                  std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(0.1)), {});
  nn::LambdaCallback explode;  // epoch 2 diverges
  explode.epoch_begin = [](nn::Model& m, int epoch) {
    if (epoch == 2) m.optimizer().set_learning_rate(1e30);
  };
  nn::EarlyStopping early({.monitor = "loss"});
  std::vector<float> best;
  nn::LambdaCallback record;
  record.epoch_end = [&](nn::Model& m, const nn::History&) {
    best = m.network<nn::Dense>().weights().value;
  };
  const nn::History history = model.fit(
      line(64, 7),
      {.batch_size = 8, .epochs = 4, .verbose = 0, .callbacks = {&explode, &early, &record}});
  CHECK(history.diverged);
  CHECK(early.best_epoch() == 1);
  CHECK(model.network<nn::Dense>().weights().value == best);  // epoch 1's, finite
  CHECK(std::isfinite(model.network<nn::Dense>().weights().value[0]));
}

TEST_CASE("a failed evaluate gives the network its training mode back") {
  nn::Model model(nn::Dense(1, 1), nn::categorical_crossentropy, std::make_unique<nn::Adam>(), {});
  CHECK_THROWS(model.evaluate(line(8, 8)));  // regression targets: not probability rows
  CHECK(model.network().is_training());
}
