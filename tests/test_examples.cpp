// Each example's printed numbers, by running the example.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "temp_dir.hpp"

namespace {

// Runs an example; its output (stdout and stderr) and its exit status.
std::string run(const std::string& command, int expected_status = 0) {
  const std::string full = std::string(AUTODIFF_EXAMPLES_DIR) + "/" + command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  INFO(command, "\n", output);
  CHECK(WEXITSTATUS(status) == expected_status);
  return output;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("neuron prints the tutorial's 0.9990889488055994") {
  CHECK(run("neuron") == "0.9990889488055994\n");
}

TEST_CASE("mse_loss prints the tutorial's 0.5") { CHECK(run("mse_loss") == "0.5\n"); }

TEST_CASE("backprop_by_hand: the worked example, hand and tape equal to the last bit") {
  const std::string out = run("backprop_by_hand");
  CHECK(out.find("h1 = 0.0474258732") != std::string::npos);
  CHECK(out.find("o1 = 0.5236951741") != std::string::npos);
  CHECK(out.find("dL/dypred  = -0.9526096518") != std::string::npos);
  CHECK(out.find("dypred/dh1 = 0.2494385387") != std::string::npos);
  CHECK(out.find("dh1/dw1    = -0.0903533195") != std::string::npos);
  CHECK(out.find("dL/dw1 by hand = 0.021469535265811111") != std::string::npos);
  CHECK(out.find("dL/dw1 by tape = 0.021469535265811111") != std::string::npos);

  // The table: nine rows; tape vs hand ≤ 1e-15 relative, tape vs finite differences ≤ 1e-9.
  int rows = 0;
  for (const std::string& line : lines_of(out)) {
    std::istringstream in(line);
    std::string name;
    double x, tape, fd, hand, abs_fd, rel_fd, abs_hand, rel_hand;
    if (!(in >> name >> x >> tape >> fd >> hand >> abs_fd >> rel_fd >> abs_hand >> rel_hand))
      continue;
    ++rows;
    INFO(line);
    CHECK(rel_hand <= 1e-15);
    CHECK(rel_fd <= 1e-9);
  }
  CHECK(rows == 9);
}

TEST_CASE("train_2_2_1: hand and tape agree at every epoch, and the loss falls") {
  for (const char* seed : {"1", "7"}) {
    const auto lines = lines_of(run(std::string("train_2_2_1 --seed ") + seed));
    int rows = 0;
    double first = -1, last = -1;
    for (const std::string& line : lines) {
      std::istringstream in(line);
      int epoch;
      double hand, tape, diff;
      if (!(in >> epoch >> hand >> tape >> diff)) continue;
      CHECK(epoch == rows * 10);
      CHECK(diff <= 1e-12);
      if (first < 0) first = hand;
      last = hand;
      ++rows;
    }
    CHECK(rows == 100);
    CHECK(last < 0.01);
    CHECK(last < first / 10);
    REQUIRE(!lines.empty());
    CHECK(lines.back().rfind("final loss: hand ", 0) == 0);
  }
  // Different seeds start from different weights.
  CHECK(lines_of(run("train_2_2_1 --seed 1"))[1] != lines_of(run("train_2_2_1 --seed 2"))[1]);
}

TEST_CASE("mnist_mlp: the tutorial's recipe on the shipped data reaches 0.94") {
  const std::string history = "mnist_mlp_history_test.csv";
  const auto lines = lines_of(run("mnist_mlp --history " + history));
  REQUIRE(lines.size() >= 22);
  CHECK(lines[0].find("8000 training and 2000 test images; 784 → 128 → 10, 101770 parameters") !=
        std::string::npos);
  CHECK(lines[1] == "Epoch 1/10");
  CHECK(lines[20].rfind("225/225 [==============================] - ", 0) == 0);
  const std::string& last = lines.back();
  REQUIRE(last.rfind("Test accuracy: ", 0) == 0);
  const double accuracy = std::stod(last.substr(15));
  MESSAGE("mnist_mlp, 10 epochs on mnist-10k: test accuracy ", accuracy);
  CHECK(accuracy >= 0.94);
  std::FILE* csv = std::fopen(history.c_str(), "r");
  REQUIRE(csv != nullptr);
  char header[128] = {};
  CHECK(std::fgets(header, sizeof header, csv) != nullptr);
  CHECK(std::string(header) == "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
  int rows = 0;
  for (char row[256]; std::fgets(row, sizeof row, csv);) ++rows;
  std::fclose(csv);
  std::remove(history.c_str());
  CHECK(rows == 10);
}

TEST_CASE("mnist_mlp: options, and clear errors") {
  const std::string help = run("mnist_mlp --help");
  for (const char* option : {"--data", "--epochs", "--batch-size", "--lr", "--hidden", "--seed",
                             "--threads", "--history"})
    CHECK(help.find(option) != std::string::npos);
  const std::string missing = run("mnist_mlp --data /nonexistent-dir", 1);
  CHECK(missing.find("mnist_mlp: /nonexistent-dir: neither train-images-idx3-ubyte nor") !=
        std::string::npos);
  const std::string bad = run("mnist_mlp --batch-size 0", 105);  // CLI11's validation error
  CHECK(bad.find("--batch-size: must be > 0, got 0") != std::string::npos);
  const auto small = lines_of(run("mnist_mlp --epochs 1 --hidden 16 --batch-size 64 --seed 3"));
  CHECK(small.back().rfind("Test accuracy: 0.", 0) == 0);
}

TEST_CASE("custom_op: softplus and the straight-through clip pass their gradient checks") {
  const std::string output = run("custom_op");
  const std::vector<std::string> lines = lines_of(output);
  REQUIRE(!lines.empty());
  CHECK(lines.back() == "custom ops: all gradient checks passed");
  CHECK(output.find("FAILED") == std::string::npos);
  // The kink: softplus's gradient at 0 is exactly 0.5, on the tape and by hand.
  CHECK(output.find("softplus(x) on a Var at x = 0 (passed)") != std::string::npos);
}

// ---- Issue #12: command lines checked before any work; every failure exits non-zero. Each bad
// input tried is counted in a comment "bad inputs: N". ----

namespace {

// An uncompressed IDX file of unsigned bytes: magic 0x0000080N, N big-endian dimensions, data.
void write_idx(const std::string& path, const std::vector<std::uint32_t>& dims,
               const std::string& data = "") {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((d >> shift) & 0xff);
  testing::write_text(path, bytes + data);
}

}  // namespace

TEST_CASE("mnist_mlp: every option is range-checked before any work, naming the option") {
  struct Case {
    const char* arguments;
    const char* message;
  };
  const Case cases[] = {
      // bad inputs: 19
      {"--seed -1", "--seed: must be an integer in [0, 4294967295], got -1"},
      {"--seed 4294967296", "--seed: must be an integer in [0, 4294967295], got 4294967296"},
      {"--seed 18446744073709551616", "--seed: must be an integer in [0, 4294967295], got 1844"},
      {"--seed 1e3", "--seed: must be an integer in [0, 4294967295], got 1e3"},
      {"--hidden 99999999999999999999",
       "--hidden: must be an integer in [1, 16384], got 99999999999999999999"},
      {"--hidden 16385", "--hidden: must be an integer in [1, 16384], got 16385"},
      {"--hidden 0", "--hidden: must be an integer in [1, 16384], got 0"},
      {"--batch-size 9223372036854775807",
       "--batch-size: must be an integer in [1, 1048576], got 9223372036854775807"},
      {"--batch-size -3", "--batch-size: must be > 0, got -3"},
      {"--batch-size 1.5", "--batch-size: must be an integer in [1, 1048576], got 1.5"},
      {"--epochs -1", "--epochs: must be an integer in [0, 100000], got -1"},
      {"--epochs 99999999999", "--epochs: must be an integer in [0, 100000], got 99999999999"},
      {"--lr inf", "--lr: must be ≤ 1, got inf"},
      {"--lr nan", "--lr: must be > 0, got nan"},
      {"--lr 0", "--lr: must be > 0, got 0"},
      {"--lr 2", "--lr: must be ≤ 1, got 2"},
      {"--threads 0", "--threads: must be an integer in [1, 256], got 0"},
      {"--threads 100000", "--threads: must be an integer in [1, 256], got 100000"},
      {"--threads x", "--threads: must be an integer in [1, 256], got x"},
  };
  for (const Case& c : cases) {
    const std::string output = run(std::string("mnist_mlp ") + c.arguments, 105);
    INFO(c.arguments, "\n", output);
    CHECK(output.find(c.message) != std::string::npos);
    CHECK(output.find("training and") == std::string::npos);  // no work started
  }
  // The limits are documented in --help.
  const std::string help = run("mnist_mlp --help");
  for (const char* limit : {"in [0, 100000]", "in [1, 1048576]", "in (0, 1]", "in [1, 16384]",
                            "in [0, 4294967295]", "in [1, 256]"})
    CHECK(help.find(limit) != std::string::npos);
}

TEST_CASE("train_2_2_1: --seed is range-checked, never wrapped") {
  // bad inputs: 4
  for (const char* seed : {"-1", "4294967296", "99999999999999999999", "abc"}) {
    const std::string output = run(std::string("train_2_2_1 --seed ") + seed, 105);
    CHECK(output.find(std::string("--seed: must be an integer in [0, 4294967295], got ") + seed) !=
          std::string::npos);
  }
  CHECK(lines_of(run("train_2_2_1 --seed 4294967295")).size() == 102);
}

TEST_CASE("regression: --seed, --epochs and --verbose are range-checked, never wrapped") {
  struct Case {
    const char* arguments;
    const char* message;
  };
  const Case cases[] = {
      // bad inputs: 4
      {"--seed -1", "--seed: must be an integer in [0, 4294967295], got -1"},
      {"--seed 99999999999999999999999",
       "--seed: must be an integer in [0, 4294967295], got 99999999999999999999999"},
      {"--epochs 0", "--epochs: must be an integer in [1, 100000], got 0"},
      {"--verbose 3", "--verbose: must be an integer in [0, 2], got 3"},
  };
  for (const Case& c : cases) {
    const std::string output = run(std::string("regression ") + c.arguments, 105);
    INFO(c.arguments, "\n", output);
    CHECK(output.find(c.message) != std::string::npos);
  }
}

TEST_CASE("mnist_mlp: an unwritable --history is an error before training, leaving nothing") {
  testing::TempDir dir;
  testing::write_text(dir / "file.txt", "");
  struct Case {
    std::string history, message;
  };
  const Case cases[] = {
      // bad inputs: 3
      {dir / "missing/h.csv", "cannot write the history: cannot create a temporary file in " +
                                  (dir / "missing") + " (No such file or directory)"},
      {dir / "file.txt/h.csv", "cannot write the history: Not a directory"},
      {dir.path().string(), "cannot write the history: it is a directory"},
  };
  for (const Case& c : cases) {
    const std::string output = run("mnist_mlp --epochs 1 --history " + c.history, 1);
    INFO(output);
    CHECK(output.find("mnist_mlp: " + c.history + ": " + c.message) != std::string::npos);
    CHECK(output.find("Epoch 1/1") == std::string::npos);
    CHECK(dir.listing() == std::set<std::string>{"file.txt"});
  }
  // A good path, then a failure after the check: the check itself left nothing behind.
  run("mnist_mlp --data /nonexistent-dir --history " + (dir / "h.csv"), 1);  // bad inputs: 1
  CHECK(dir.listing() == std::set<std::string>{"file.txt"});
}

TEST_CASE(
    "mnist_mlp: a checkpoint path with {epoch}, and outputs that are one file, are errors "
    "before training") {
  testing::TempDir dir;
  // bad inputs: 3
  std::string output =
      run("mnist_mlp --epochs 1 --checkpoint " + (dir / "missing/{epoch}.ckpt"), 1);
  CHECK(output.find((dir / "missing/1.ckpt") + ": cannot write the checkpoint") !=
        std::string::npos);
  CHECK(output.find("Epoch 1/1") == std::string::npos);
  output =
      run("mnist_mlp --epochs 1 --history " + (dir / "h.csv") + " --plot " + (dir / "h.csv"), 1);
  CHECK(output.find("--history and --plot are the same file, " + (dir / "h.csv")) !=
        std::string::npos);
  CHECK(output.find("Epoch 1/1") == std::string::npos);
  output = run("mnist_mlp --epochs 1 --save " + (dir / "m") + " --checkpoint " +
                   dir.path().string() + "/./m",
               1);
  CHECK(output.find("--save and --checkpoint are the same file") != std::string::npos);
  CHECK(dir.listing().empty());
  // A path that cannot be resolved (a symlink loop) is check_writable's to report, by name.
  std::filesystem::create_symlink(dir / "loop", dir / "loop");  // bad inputs: 1
  output =
      run("mnist_mlp --epochs 1 --history " + (dir / "loop/h.csv") + " --save " + (dir / "m"), 1);
  CHECK(output.find("mnist_mlp: " + (dir / "loop/h.csv") + ": cannot write the history") !=
        std::string::npos);
  CHECK(output.find("filesystem error") == std::string::npos);
}

TEST_CASE("mnist_mlp: an empty or misshapen dataset is an error, not an accuracy") {
  testing::TempDir dir;
  const std::string shipped = AUTODIFF_DATA_DIR;
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"})
    std::filesystem::copy_file(shipped + "/" + name, dir / name);
  write_idx(dir / "t10k-images-idx3-ubyte", {0, 28, 28});
  write_idx(dir / "t10k-labels-idx1-ubyte", {0});
  // bad inputs: 1
  std::string output = run("mnist_mlp --epochs 1 --data " + dir.path().string(), 1);
  // "holds no images" (or the reader's own error, should it refuse a count of 0): the file named.
  CHECK(output.find("t10k-images-idx3-ubyte") != std::string::npos);
  CHECK(output.find("Test accuracy") == std::string::npos);
  CHECK(output.find("Epoch 1/1") == std::string::npos);

  // Images of 2 × 2 pixels, two of them (labels 3 and 7), as the test set.
  write_idx(dir / "t10k-images-idx3-ubyte", {2, 2, 2}, std::string(8, '\x80'));
  write_idx(dir / "t10k-labels-idx1-ubyte", {2}, "\x03\x07");
  output = run("mnist_mlp --epochs 1 --data " + dir.path().string(), 1);  // bad inputs: 1
  CHECK(output.find("t10k-images-idx3-ubyte holds images of 4 pixels, expected 784 (28 × 28)") !=
        std::string::npos);
  CHECK(output.find("Epoch 1/1") == std::string::npos);

  // An empty training set.
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"})
    std::filesystem::remove(dir / name);
  write_idx(dir / "train-images-idx3-ubyte", {0, 28, 28});
  write_idx(dir / "train-labels-idx1-ubyte", {0});
  output = run("mnist_mlp --epochs 1 --data " + dir.path().string(), 1);  // bad inputs: 1
  CHECK(output.find("train-images-idx3-ubyte") != std::string::npos);
  CHECK(output.find("Epoch 1/1") == std::string::npos);
}

TEST_CASE("the examples exit non-zero when their output cannot be written") {
  if (!std::filesystem::exists("/dev/full")) return;
  run("train_2_2_1 > /dev/full", 1);  // bad inputs: 2
  run("mnist_mlp --epochs 0 > /dev/full", 1);
}

TEST_CASE("regression: fit reaches a test MSE within 1.5x of the noise's 0.01, on seeds 1, 2, 3") {
  for (const char* seed : {"1", "2", "3"}) {
    const std::vector<std::string> lines =
        lines_of(run(std::string("regression --verbose 0 --seed ") + seed));
    REQUIRE(!lines.empty());
    double mse = 1;
    REQUIRE(std::sscanf(lines.back().c_str(), "Test MSE: %lf", &mse) == 1);
    MESSAGE("regression, seed " << std::string(seed) << ": test MSE " << mse);
    CHECK(mse <= 0.015);
    CHECK(mse >= 0.005);  // below the noise would mean the test set leaked
  }
  // Keras-style progress, one line per epoch by default.
  const std::string progress = run("regression --epochs 2");
  CHECK(progress.find("Epoch 2/2\n63/63 [==============================]") != std::string::npos);
  CHECK(progress.find(" - loss: ") != std::string::npos);
  CHECK(progress.find(" - mse: ") != std::string::npos);
}

TEST_CASE("custom_model: a user's residual module, named parameters, trained with fit") {
  const std::string output = run("custom_model");
  CHECK(output.find("block.inner.weight     (64, 64)") != std::string::npos);
  CHECK(output.find("block.outer.bias       (64,)") != std::string::npos);
  CHECK(output.find("classify.weight        (64, 10)") != std::string::npos);
  const std::vector<std::string> lines = lines_of(output);
  REQUIRE(!lines.empty());
  double accuracy = 0;
  REQUIRE(std::sscanf(lines.back().c_str(), "Test accuracy: %lf", &accuracy) == 1);
  MESSAGE("custom_model: test accuracy " << accuracy);
  CHECK(accuracy > 0.92);
}

TEST_CASE("mnist_cnn: a short run of Keras's convnet recipe on the shipped data") {
  const std::string history = "mnist_cnn_history_test.csv";
  const auto lines = lines_of(run(
      "mnist_cnn --epochs 2 --train-images 1000 --batch-size 32 --threads 2 --history " + history));
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].find("1000 training and 2000 test images; 34826 parameters; 2 threads") !=
        std::string::npos);
  CHECK(lines[1] == "Epoch 1/2");
  CHECK(lines[4].rfind("29/29 [==============================] - ", 0) == 0);
  CHECK(lines[4].find(" - val_accuracy: ") != std::string::npos);
  REQUIRE(lines.back().rfind("Test accuracy: ", 0) == 0);
  const double accuracy = std::stod(lines.back().substr(15));
  MESSAGE("mnist_cnn, 2 epochs on 900 images: test accuracy ", accuracy);
  CHECK(accuracy >= 0.7);  // 0.813 at the default seed; chance is 0.1
  std::FILE* csv = std::fopen(history.c_str(), "r");
  REQUIRE(csv != nullptr);
  int rows = 0;
  for (char row[256]; std::fgets(row, sizeof row, csv);) ++rows;
  std::fclose(csv);
  std::remove(history.c_str());
  CHECK(rows == 3);  // the header and two epochs

  const std::string help = run("mnist_cnn --help");
  for (const char* option : {"--data", "--epochs", "--batch-size", "--lr", "--seed", "--threads",
                             "--history", "--train-images"})
    CHECK(help.find(option) != std::string::npos);
  CHECK(
      run("mnist_cnn --threads 0", 105).find("--threads: must be an integer in [1, 256], got 0") !=
      std::string::npos);
  CHECK(run("mnist_cnn --data /nonexistent-dir", 1).find("mnist_cnn: /nonexistent-dir: ") !=
        std::string::npos);
}

// ---- Issue #8: model files from the command line ----

namespace {
// The CSV's rows without the seconds column (the only one a resumed run may differ in).
std::vector<std::string> rows_without_seconds(const std::string& path) {
  std::vector<std::string> rows;
  for (const std::string& line : lines_of(testing::read_text(path)))
    rows.push_back(line.substr(0, line.rfind(',')));
  return rows;
}
}  // namespace

TEST_CASE("mnist_mlp --checkpoint / --resume continue the run exactly; predict reproduces it") {
  testing::TempDir dir;
  const std::string common = " --epochs 3 --hidden 32 --seed 2";
  const auto whole = lines_of(run("mnist_mlp" + common + " --history " + (dir / "whole.csv") +
                                  " --save " + (dir / "whole.safetensors")));
  // Stopped after epoch 2 (the last checkpoint written), then continued to epoch 3.
  run("mnist_mlp --epochs 2 --hidden 32 --seed 2 --checkpoint " + (dir / "run.ckpt"));
  const auto resumed =
      lines_of(run("mnist_mlp" + common + " --resume " + (dir / "run.ckpt") + " --history " +
                   (dir / "resumed.csv") + " --save " + (dir / "resumed.safetensors")));
  CHECK(resumed[1] == "Resumed from " + (dir / "run.ckpt") + " after epoch 2");
  CHECK(resumed[2] == "Epoch 3/3");
  CHECK(resumed.back() == whole.back());  // the same "Test accuracy: …"
  // The same parameters, bit for bit: the whole files are equal.
  CHECK(testing::read_text(dir / "resumed.safetensors") ==
        testing::read_text(dir / "whole.safetensors"));
  const auto rows = rows_without_seconds(dir / "resumed.csv");
  CHECK(rows.size() == 4);  // the header and all three epochs
  CHECK(rows == rows_without_seconds(dir / "whole.csv"));
  // predict knows nothing of the network: the file says it.
  const auto predicted = lines_of(run("predict --model " + (dir / "whole.safetensors")));
  CHECK(predicted.back() == whole.back());
  CHECK(predicted[0].find("25450 parameters") != std::string::npos);  // 784·32 + 32 + 32·10 + 10
  // A checkpoint is a model file too.
  CHECK(
      lines_of(run("predict --model " + (dir / "run.ckpt"))).back().rfind("Test accuracy: 0.", 0) ==
      0);
  CHECK(dir.listing() == std::set<std::string>{"resumed.csv", "resumed.safetensors", "run.ckpt",
                                               "whole.csv", "whole.safetensors"});
}

TEST_CASE("mnist_cnn --checkpoint / --resume: Dropout's masks too; predict reads the convnet") {
  testing::TempDir dir;
  const std::string common = " --train-images 256 --batch-size 64 --seed 3";
  const auto whole = lines_of(run("mnist_cnn --epochs 2" + common + " --history " +
                                  (dir / "whole.csv") + " --save " + (dir / "whole.safetensors")));
  run("mnist_cnn --epochs 1" + common + " --checkpoint " + (dir / "run.ckpt"));
  const auto resumed =
      lines_of(run("mnist_cnn --epochs 2" + common + " --resume " + (dir / "run.ckpt") +
                   " --history " + (dir / "resumed.csv") + " --save " +
                   (dir / "resumed.safetensors") + " --plot " + (dir / "curves.svg")));
  CHECK(resumed[1] == "Resumed from " + (dir / "run.ckpt") + " after epoch 1");
  CHECK(resumed[2] == "Epoch 2/2");
  CHECK(resumed.back() == whole.back());
  CHECK(testing::read_text(dir / "resumed.safetensors") ==
        testing::read_text(dir / "whole.safetensors"));
  CHECK(rows_without_seconds(dir / "resumed.csv") == rows_without_seconds(dir / "whole.csv"));
  CHECK(testing::read_text(dir / "curves.svg").find("<svg") != std::string::npos);
  const auto predicted = lines_of(run("predict --model " + (dir / "whole.safetensors")));
  CHECK(predicted[0].find("34826 parameters") != std::string::npos);
  CHECK(predicted.back() == whole.back());
}

TEST_CASE("mnist_mlp --resume and predict: bad files are clear errors") {
  testing::TempDir dir;
  testing::write_text(dir / "junk", "not a safetensors file at all");
  CHECK(run("mnist_mlp --resume " + (dir / "junk"), 1)
            .find("mnist_mlp: " + (dir / "junk") +
                  ": not a safetensors file: byte 8 is 0x66, not the '{' that begins its header") !=
        std::string::npos);
  CHECK(run("predict --model " + (dir / "junk"), 1)
            .find("predict: " + (dir / "junk") + ": not a safetensors file") != std::string::npos);
  run("mnist_mlp --epochs 1 --hidden 16 --checkpoint " + (dir / "small.ckpt"));
  // Another network's checkpoint: the shapes are named.
  CHECK(run("mnist_mlp --hidden 32 --resume " + (dir / "small.ckpt"), 1)
            .find("tensor \"0.weight\" has shape (784, 16), the model's is (784, 32)") !=
        std::string::npos);
  // Fewer epochs than the checkpoint has done.
  run("mnist_mlp --epochs 2 --hidden 16 --checkpoint " + (dir / "two.ckpt"));
  CHECK(run("mnist_mlp --epochs 1 --hidden 16 --resume " + (dir / "two.ckpt"), 1)
            .find("fit: epochs is 1, expected ≥ initial_epoch (2)") != std::string::npos);
  CHECK(run("predict", 106).find("--model is required") != std::string::npos);
}

// ---- Seeing inside (#11) ----

TEST_CASE("backprop_by_hand --explain: the sweep step by step, the chain rule next to the hand's") {
  const std::string out = run("backprop_by_hand --explain --detect-anomaly");
  CHECK(out.find("   1  L      (1 - ypred)*(1 - ypred)") != std::string::npos);
  CHECK(out.find("∂L/∂w1 = ∂L/∂ypred × ∂ypred/∂h1 × ∂h1/∂w1\n"
                 "       = -0.95260965183200064 × 0.24943853872512897 × -0.090353319461824275\n"
                 "       = 0.021469535265811111\n"
                 "       by hand (above): 0.021469535265811111\n") != std::string::npos);
  CHECK(out.find("gradient of w1: 0.021469535265811111") != std::string::npos);
}

TEST_CASE("backprop_by_hand --dot: the worked example's graph, rendered when graphviz is here") {
  testing::TempDir dir;
  const std::string dot_file = dir / "alice.dot";
  const std::string out = run("backprop_by_hand --dot " + dot_file);
  CHECK(out.find("Wrote the graph of L to " + dot_file) != std::string::npos);
  std::ifstream in(dot_file);
  const std::string dot((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(dot.rfind("digraph autodiff {", 0) == 0);
  int boxes = 0, arrows = 0;
  for (const std::string& line : lines_of(dot)) {
    if (line.rfind("  n", 0) == 0 && line.find(" -> ") != std::string::npos)
      ++arrows;
    else if (line.rfind("  n", 0) == 0 && line.find("[label=") != std::string::npos)
      ++boxes;
  }
  CHECK(boxes == 13);  // w1 … b3, h1, h2, ypred, L
  CHECK(arrows == 12);
  CHECK(dot.find("h1\\nsigmoid(w1*(-2) + w2*(-1) + b1)\\nvalue 0.0474259") != std::string::npos);
  CHECK(dot.find("w1\\nvalue 1\\ngrad 0.0214695") != std::string::npos);
  if (std::system("command -v dot > /dev/null 2>&1") == 0) {
    const std::string svg = dir / "alice.svg";
    CHECK(std::system(("dot -Tsvg " + dot_file + " -o " + svg).c_str()) == 0);
    std::ifstream rendered(svg);
    const std::string text((std::istreambuf_iterator<char>(rendered)),
                           std::istreambuf_iterator<char>());
    CHECK(text.find("<svg") != std::string::npos);
    CHECK(text.find("ypred") != std::string::npos);
  } else {
    MESSAGE("graphviz's dot is not installed: the graph is checked by its structure only");
  }
  run("backprop_by_hand --dot " + (dir / "missing/alice.dot"), 1);
}

TEST_CASE("mnist_mlp --plot and --detect-anomaly: the chart is written, the run unchanged") {
  testing::TempDir dir;
  const std::string plot = dir / "curves.svg";
  const std::string out = run("mnist_mlp --epochs 1 --detect-anomaly --plot " + plot);
  CHECK(out.find("Test accuracy: 0.9") != std::string::npos);
  std::ifstream in(plot);
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(svg.find("<polyline data-series=\"val_accuracy\"") != std::string::npos);
  const std::string bad = run("mnist_mlp --epochs 1 --plot " + (dir / "missing/curves.svg"), 1);
  CHECK(bad.find("cannot write the training plot") != std::string::npos);
  CHECK(bad.find("Epoch 1/1") == std::string::npos);  // checked before training
}
