// Issue #12's cases, one or more tests for each: every one of them failed before the fix. Each
// bad input these tests try is counted in a comment "bad inputs: N".
#include <fcntl.h>
#include <pty.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <limits>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "allocation_counter.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using testing::read_text;
using testing::TempDir;
using testing::write_text;

namespace {

nn::History three_epochs() {
  nn::History history;
  for (int e = 1; e <= 3; ++e) {
    nn::EpochLog log;
    log.epoch = e;
    log.set("loss", 0.5);
    log.set("accuracy", 0.8);
    log.set("val_loss", 0.6);
    log.set("val_accuracy", 0.7);
    log.seconds = 1.0;
    history.epochs.push_back(log);
  }
  return history;
}

const std::string kThreeEpochsCsv =
    "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n"
    "1,0.500000,0.800000,0.600000,0.700000,1.000\n"
    "2,0.500000,0.800000,0.600000,0.700000,1.000\n"
    "3,0.500000,0.800000,0.600000,0.700000,1.000\n";

}  // namespace

// ---- Temporary files ----

TEST_CASE("history: a symlink planted at the old temporary name is not written through") {
  // The old scheme wrote `<target>.tmp.<pid>` with fopen("wb"), which follows a symlink.
  TempDir dir;
  const std::string target = dir / "history.csv", victim = dir / "victim.txt";
  write_text(victim, "precious\n");
  const std::string planted = fmt::format("{}.tmp.{}", target, ::getpid());
  REQUIRE(::symlink(victim.c_str(), planted.c_str()) == 0);  // bad inputs: 1
  three_epochs().write_csv(target);
  CHECK(read_text(victim) == "precious\n");
  CHECK(read_text(target) == kThreeEpochsCsv);
  CHECK(std::filesystem::is_symlink(planted));  // left alone: not ours
  CHECK(std::filesystem::is_regular_file(std::filesystem::symlink_status(target)));
  CHECK(dir.listing() == std::set<std::string>{"history.csv", "victim.txt",
                                               std::filesystem::path(planted).filename()});
}

TEST_CASE("history: a process killed while writing leaves no temporary file behind") {
  TempDir dir;
  // Nothing is named before the bytes are on disk only where the filesystem has O_TMPFILE.
  const int probe = ::open(dir.path().c_str(), O_TMPFILE | O_WRONLY, 0600);
  if (probe < 0) {
    MESSAGE("no O_TMPFILE in ", dir.path().string(), ": a kill mid-write leaves a .tmp file");
    return;
  }
  ::close(probe);
  const std::string target = dir / "history.csv";
  write_text(target, "old\n");
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Killed by SIGXFSZ in the middle of the write: past 16 bytes the file may not grow.
    const rlimit no_core{0, 0}, sixteen_bytes{16, 16};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::signal(SIGXFSZ, SIG_DFL);
    ::setrlimit(RLIMIT_FSIZE, &sixteen_bytes);
    try {
      three_epochs().write_csv(target);
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));  // bad inputs: 1
  CHECK(WTERMSIG(status) == SIGXFSZ);
  CHECK(dir.listing() == std::set<std::string>{"history.csv"});
  CHECK(read_text(target) == "old\n");
}

TEST_CASE("history: a failed write leaves no temporary file, and the old file intact") {
  TempDir dir;
  const std::string target = dir / "history.csv";
  write_text(target, "old\n");
  {
    const testing::FileSizeLimit limit(16);  // bad inputs: 1
    CHECK_THROWS_WITH_AS(three_epochs().write_csv(target),
                         doctest::Contains("history.csv: cannot write the history: writing"),
                         nn::DataError);
  }
  CHECK(read_text(target) == "old\n");
  CHECK(dir.listing() == std::set<std::string>{"history.csv"});

  // Paths whose directory cannot hold the file: a clear error, and nothing made anywhere.
  write_text(dir / "file.txt", "");
  std::filesystem::create_directory(dir / "sub");
  // bad inputs: 3
  for (const char* bad : {"missing/history.csv", "file.txt/history.csv", "sub"}) {
    INFO(bad);
    const std::string message = fmt::format("{}: cannot write the history", dir / bad);
    CHECK_THROWS_WITH_AS(three_epochs().write_csv(dir / bad), doctest::Contains(message.c_str()),
                         nn::DataError);
    CHECK(dir.listing() == std::set<std::string>{"file.txt", "history.csv", "sub"});
    CHECK(dir.listing("sub").empty());
  }
}

// ---- fit's batch arithmetic and options ----

namespace {

// 40 rows of 4 features in 3 classes, deterministic.
nn::Dataset small_dataset() {
  std::vector<std::uint8_t> images(40 * 4);
  std::vector<std::int32_t> labels(40);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = std::uint8_t((i * 37 + 11) % 256);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t((i * 7) % 3);
  return nn::Dataset(std::move(images), std::move(labels), 4, 3);
}

nn::Model small_model() {
  nn::Sequential network;
  network.add(nn::Dense(4, 3, nn::Activation::Softmax, {.seed = 5}));
  return nn::Model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
}

}  // namespace

TEST_CASE("fit: a batch size up to the int64 maximum trains on one batch of all the rows") {
  const nn::Dataset data = small_dataset();
  nn::Model reference = small_model();
  const nn::History expected =
      reference.fit(data, {.batch_size = 40, .epochs = 2, .shuffle = false, .verbose = 0});
  REQUIRE(expected.epochs[1]["loss"] > 0);
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  for (const std::int64_t batch_size : {kMax, kMax - 1, kMax - 38, std::int64_t(41)}) {
    INFO("batch_size ", batch_size);  // bad inputs: 3 (the first three overflowed)
    nn::Model model = small_model();
    const nn::History history =
        model.fit(data, {.batch_size = batch_size, .epochs = 2, .shuffle = false, .verbose = 0});
    REQUIRE(history.epochs.size() == 2);
    CHECK(history.epochs[1]["loss"] == expected.epochs[1]["loss"]);
    CHECK(model.network().parameters()[0]->value == reference.network().parameters()[0]->value);
    const nn::Evaluation all = model.evaluate(data, batch_size);
    CHECK(all["loss"] == doctest::Approx(model.evaluate(data, 7)["loss"]).epsilon(1e-6));
    CHECK(model.predict(data, batch_size) == model.predict(data, 40));
  }
  // With a validation split too: one batch of the 30 training rows, 10 validate. bad inputs: 1
  nn::Model split = small_model();
  const nn::History history =
      split.fit(data, {.batch_size = kMax, .epochs = 1, .validation_split = 0.25, .verbose = 0});
  CHECK(history.epochs[0]["loss"] > 0);
  CHECK(history.epochs[0]["val_loss"] > 0);
}

TEST_CASE("fit and evaluate: every option is range-checked and named, before any training") {
  const nn::Dataset data = small_dataset();
  nn::Model model = small_model();
  const std::vector<float> initial = model.network().parameters()[0]->value;
  struct Case {
    nn::FitOptions options;
    const char* message;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Case cases[] = {
      // bad inputs: 13
      {{.batch_size = 0}, "fit: batch_size is 0, expected > 0"},
      {{.batch_size = -1}, "fit: batch_size is -1, expected > 0"},
      {{.batch_size = std::numeric_limits<std::int64_t>::min()},
       "fit: batch_size is -9223372036854775808, expected > 0"},
      {{.epochs = -1},
       "fit: epochs is -1, expected ≥ initial_epoch (0): epochs counts from the start of the run"},
      {{.epochs = std::numeric_limits<int>::min()},
       "fit: epochs is -2147483648, expected ≥ initial_epoch (0): epochs counts from the start of "
       "the run"},
      {{.initial_epoch = -1}, "fit: initial_epoch is -1, expected ≥ 0"},
      {{.validation_split = -0.1}, "fit: validation_split is -0.1, expected in [0, 1)"},
      {{.validation_split = 1.0}, "fit: validation_split is 1, expected in [0, 1)"},
      {{.validation_split = nan}, "fit: validation_split is nan, expected in [0, 1)"},
      {{.validation_split = std::numeric_limits<double>::infinity()},
       "fit: validation_split is inf, expected in [0, 1)"},
      {{.verbose = -1}, "fit: verbose is -1, expected 0, 1 or 2"},
      {{.verbose = 3}, "fit: verbose is 3, expected 0, 1 or 2"},
      {{.validation_split = 0.99}, "fit: no training rows left out of 40"},
  };
  for (const Case& c : cases) {
    CHECK_THROWS_WITH_AS(model.fit(data, c.options), c.message, std::invalid_argument);
  }
  CHECK(model.network().parameters()[0]->value == initial);  // nothing trained

  // bad inputs: 5
  CHECK_THROWS_WITH_AS(model.fit(nn::Dataset(), {.verbose = 0}),
                       "fit: no training rows left out of 0", std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.evaluate(data.slice(0, 0)),
                       "evaluate: the dataset is empty: no loss or accuracy to report",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.evaluate(data, 0), "evaluate: batch_size is 0, expected > 0",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.predict(data, -5), "predict: batch_size is -5, expected > 0",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::validation_split_point(-5, 0.1), "fit: -5 rows, expected ≥ 0",
                       std::invalid_argument);
  // The split of the largest count: exact, not a rounded double cast back out of range.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  CHECK(nn::validation_split_point(kMax, 0.0) == kMax);
  CHECK(nn::validation_split_point(kMax, 1e-300) == kMax);
  CHECK(nn::validation_split_point(kMax, 0.5) == kMax / 2 + 1);  // ⌊2^63 / 2⌋ in doubles
}

// The last epoch an int counts: nothing left to train, no replay of 2³¹ − 1 shuffles, and no
// counter past INT_MAX (the loops once were `epoch <= epochs; ++epoch`). A replay regression
// shows as minutes, not a wrong value: the timeout makes it a failure.
TEST_CASE("fit: epochs = initial_epoch = INT_MAX trains nothing and replays no shuffle" *
          doctest::timeout(30)) {
  const nn::Dataset data = small_dataset();
  nn::Model model = small_model();
  const std::vector<float> initial = model.network().parameters()[0]->value;
  constexpr int kLast = std::numeric_limits<int>::max();
  CHECK(model.fit(data, {.epochs = kLast, .initial_epoch = kLast, .verbose = 0}).epochs.empty());
  CHECK(model.network().parameters()[0]->value == initial);
  // A checkpoint's next epoch, 2³¹, is counted in 64 bits (UBSan's check), and nothing written.
  testing::TempDir dir;
  nn::ModelCheckpoint checkpoint(dir / "ckpt-{epoch}.safetensors");
  CHECK(
      model
          .fit(data,
               {.epochs = kLast, .initial_epoch = kLast, .verbose = 0, .callbacks = {&checkpoint}})
          .epochs.empty());
  CHECK(dir.listing().empty());
  CHECK(nn::checkpoint_path(dir / "ckpt-{epoch}", std::int64_t{kLast} + 1) ==
        dir / "ckpt-2147483648");
}

TEST_CASE("fit, evaluate and predict: out of memory is an error naming the batch size") {
  std::vector<std::uint8_t> images(50'000 * 4);
  std::vector<std::int32_t> labels(50'000);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = std::uint8_t((i * 37 + 11) % 256);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t((i * 7) % 3);
  const nn::Dataset data(std::move(images), std::move(labels), 4, 3);
  nn::Model model = small_model();
  autodiff::Tape tape;  // a cold arena: a batch of 50,000 rows needs new blocks
  autodiff::TapeScope scope(tape);
  const std::vector<float> initial = model.network().parameters()[0]->value;
  const std::string advice =
      "(the tape keeps every activation of a batch, and in training its "
      "gradient): try a smaller batch_size";
  {
    const testing::AllocationLimit out_of_memory(600 * 1024);  // bad inputs: 3
    CHECK_THROWS_WITH_AS(model.fit(data, {.batch_size = 1'000'000, .verbose = 0}),
                         ("fit: not enough memory for a batch of 50000 rows " + advice).c_str(),
                         std::length_error);
    CHECK_THROWS_WITH_AS(
        model.evaluate(data, 60'000),
        ("evaluate: not enough memory for a batch of 50000 rows " + advice).c_str(),
        std::length_error);
    CHECK_THROWS_WITH_AS(model.predict(data, 50'000),
                         ("predict: not enough memory for a batch of 50000 rows " + advice).c_str(),
                         std::length_error);
  }
  CHECK(model.network().parameters()[0]->value == initial);  // no step was taken
  CHECK(model.network().is_training());
  const nn::History history = model.fit(data, {.batch_size = 500, .verbose = 0});  // and it trains
  CHECK(history.epochs.size() == 1);
  CHECK(std::isfinite(history.epochs[0]["loss"]));
  {
    // The training rows of a split: the batch is what is left of them (9,999)...
    autodiff::Tape cold;  // a cold arena
    autodiff::TapeScope on_cold(cold);
    {
      const testing::AllocationLimit out_of_memory(600 * 1024);  // bad inputs: 2
      CHECK_THROWS_WITH_AS(
          model.fit(data, {.batch_size = 1'000'000, .validation_split = 0.8, .verbose = 0}),
          ("fit: not enough memory for a batch of 9999 rows " + advice).c_str(), std::length_error);
    }
    CHECK(cold.coarse_node_count() == 0);  // the failed step's partial graph is gone
    // ... and with the arena warm for that step, the validation pass, named as such (its
    // 40,001 rows in one batch need more).
    model.fit(data.slice(0, 9999), {.batch_size = 1'000'000, .shuffle = false, .verbose = 0});
    const testing::AllocationLimit out_of_memory(600 * 1024);
    CHECK_THROWS_WITH_AS(
        model.fit(data, {.batch_size = 1'000'000, .validation_split = 0.8, .verbose = 0}),
        ("fit (validation): not enough memory for a batch of 40001 rows " + advice).c_str(),
        std::length_error);
  }
}

TEST_CASE("fit: the progress bar redraws on a terminal, but not under mpirun's terminal") {
  // Open MPI gives each process a pseudo-terminal even when mpirun's output goes to a file.
  const auto output_on_a_terminal = [](bool under_mpirun) {
    int controller = -1, terminal = -1;
    REQUIRE(openpty(&controller, &terminal, nullptr, nullptr, nullptr) == 0);
    std::FILE* out = fdopen(terminal, "w");
    REQUIRE(out);
    if (under_mpirun) setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    nn::Model model = small_model();
    model.fit(small_dataset(), {.batch_size = 4, .epochs = 2, .verbose = 1, .out = out});
    unsetenv("OMPI_COMM_WORLD_SIZE");
    std::fclose(out);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = read(controller, buffer, sizeof buffer)) > 0;) text.append(buffer, n);
    close(controller);
    return text;
  };
  const std::string live = output_on_a_terminal(false), logged = output_on_a_terminal(true);
  // The terminal turns each "\n" into "\r\n": any other "\r" is a redraw.
  const auto returns = [](const std::string& t) { return std::count(t.begin(), t.end(), '\r'); };
  const auto newlines = [](const std::string& t) { return std::count(t.begin(), t.end(), '\n'); };
  CHECK(returns(live) > newlines(live));
  CHECK(logged.find("Epoch 2/2") != std::string::npos);
  CHECK(logged.find("10/10 [") != std::string::npos);
  CHECK(returns(logged) == newlines(logged));
}

// ---- Loss targets ----

TEST_CASE("losses: target rows must be one-hot or probability rows; the row is named") {
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  using F = autodiff::Tensor<float>;
  const F logits = F::from({1, 2, 3, 0, 0, 5}, {2, 3});
  const F probabilities = F::from({0.2f, 0.7f, 0.1f, 0.5f, 0.4f, 0.1f}, {2, 3});
  struct Case {
    std::vector<float> y_true;
    const char* row;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Case cases[] = {
      // bad inputs: 6 targets × 3 ways to take them = 18
      {{0, 1, 0, 0, 0, 0}, "y_true row 1 is [0, 0, 0] (sum 0)"},
      {{0, 2, -1, 0, 1, 0}, "y_true row 0 is [0, 2, -1] (sum 1)"},
      {{0, 1, 0, 0.5f, 0.6f, 0}, "y_true row 1 is [0.5, 0.6, 0] (sum 1.1)"},
      {{0, 1, 0, 1, 1, 1}, "y_true row 1 is [1, 1, 1] (sum 3)"},
      {{nan, 1, 0, 0, 1, 0}, "y_true row 0 is [nan, 1, 0] (sum nan)"},
      {{0, 1, 0, 0, std::numeric_limits<float>::infinity(), 0},
       "y_true row 1 is [0, inf, 0] (sum inf)"},
  };
  for (const Case& c : cases) {
    const F y_true = F::from(c.y_true, {2, 3});
    INFO(std::string(c.row));
    for (const auto& [name, y_pred] : {std::pair{"categorical_crossentropy", softmax(logits)},
                                       std::pair{"categorical_crossentropy", probabilities}}) {
      const std::string message = fmt::format(
          "{}: {}: expected a one-hot or probability row, entries ≥ 0 summing to 1", name, c.row);
      CHECK_THROWS_WITH_AS(nn::categorical_crossentropy(y_true, y_pred), message.c_str(),
                           std::invalid_argument);
    }
    CHECK_THROWS_WITH_AS(nn::categorical_crossentropy_from_logits(y_true, logits),
                         doctest::Contains("categorical_crossentropy_from_logits: y_true row"),
                         std::invalid_argument);
  }
  // Many classes: the row is shown in part.
  const F wide = F::zeros({1, 12});
  CHECK_THROWS_WITH_AS(  // bad inputs: 1
      nn::categorical_crossentropy(wide, softmax(F::zeros({1, 12}))),
      "categorical_crossentropy: y_true row 0 is [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, …] (sum 0): "
      "expected a one-hot or probability row, entries ≥ 0 summing to 1",
      std::invalid_argument);

  // Soft labels (a probability row) are fine, and give the hand value.
  const F soft = F::from({0.1f, 0.8f, 0.1f, 0, 0, 1}, {2, 3});
  const double expected =
      -(0.1 * std::log(0.2) + 0.8 * std::log(0.7) + 0.1 * std::log(0.1) + std::log(0.1)) / 2;
  CHECK(nn::categorical_crossentropy(soft, probabilities).item() ==
        doctest::Approx(expected).epsilon(1e-6));
  const F smoothed = F::from({1 / 3.0f, 1 / 3.0f, 1 / 3.0f, 0.05f, 0.9f, 0.05f}, {2, 3});
  CHECK(nn::categorical_crossentropy_from_logits(smoothed, logits).item() > 0);

  // Sparse labels in [0, classes), the offending row named.
  const std::int32_t labels[][2] = {{1, 3}, {-1, 0}, {0, 2147483647}};  // bad inputs: 3
  const char* messages[] = {"sparse_categorical_crossentropy: label 3 at row 1 is outside [0, 3)",
                            "sparse_categorical_crossentropy: label -1 at row 0 is outside [0, 3)",
                            "sparse_categorical_crossentropy: label 2147483647 at row 1 is "
                            "outside [0, 3)"};
  for (int i = 0; i < 3; ++i)
    CHECK_THROWS_WITH_AS(nn::sparse_categorical_crossentropy(labels[i], softmax(logits)),
                         messages[i], std::invalid_argument);

  // Shapes. bad inputs: 4
  CHECK_THROWS_WITH_AS(nn::mean_squared_error(F::zeros({2, 3}), F::zeros({3, 2})),
                       "mean_squared_error: y_true (2, 3) and y_pred (3, 2) differ in shape",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::categorical_crossentropy_from_logits(F::zeros({2, 3}), F::zeros({6})),
                       "categorical_crossentropy_from_logits: y_true (2, 3) and logits (6,): "
                       "expected the same shape (batch, classes)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::categorical_crossentropy(F::zeros({2, 0}), F::zeros({2, 0})),
                       doctest::Contains("expected the same shape (batch, classes)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::sparse_categorical_crossentropy(labels[0], F::zeros({3, 3})),
                       "sparse_categorical_crossentropy: 2 labels for predictions of shape (3, 3)",
                       std::invalid_argument);
}

// ---- Sizes ----

TEST_CASE("Dense: sizes that overflow or cannot be allocated are errors naming the layer") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // bad inputs: 3
  CHECK_THROWS_WITH_AS(nn::Dense(784, kMax),
                       "Dense(784 → 9223372036854775807): 784 × 9223372036854775807 weights are "
                       "more than a tensor can hold (1152921504606846975)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Dense(std::int64_t(1) << 32, std::int64_t(1) << 32),
                       doctest::Contains("weights are more than a tensor can hold"),
                       std::invalid_argument);
#if !defined(__SANITIZE_ADDRESS__)  // ASan stops the process at an allocation this large
  // 313 TB of weights: more than the address space. Was "std::bad_alloc", naming nothing.
  CHECK_THROWS_WITH_AS(nn::Dense(784, 99'999'999'999),
                       "Dense(784 → 99999999999): not enough memory for 78399999999216 weights "
                       "and their gradients",
                       std::length_error);
#endif
}
