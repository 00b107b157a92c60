// Each example's printed numbers, by running the example.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

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
