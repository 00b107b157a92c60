// Each example's printed numbers, by running the example.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace {

std::string run(const std::string& command) {
  const std::string full = std::string(AUTODIFF_EXAMPLES_DIR) + "/" + command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  CHECK(pclose(pipe) == 0);
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
  CHECK(out.find("dL/dw1 by hand = 0.021469535265811114") != std::string::npos);
  CHECK(out.find("dL/dw1 by tape = 0.021469535265811114") != std::string::npos);

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
