// examples/second_order: what it prints, line by line, checked against independent computations.
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autodiff/autodiff.hpp"
#include "autodiff/second_order.hpp"
#include "tutorial_network.hpp"

namespace {

std::vector<std::string> run_lines(const std::string& command) {
  const std::string full = std::string(AUTODIFF_EXAMPLES_DIR) + "/" + command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  INFO(command, "\n", output);
  CHECK(WEXITSTATUS(status) == 0);
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

TEST_CASE("second_order: Rosenbrock's Hessian, Newton to (1, 1), the tutorial's Hessian, MNIST") {
  const std::vector<std::string> lines = run_lines("second_order");
  REQUIRE(lines.size() > 14);
  std::size_t at = 0;
  CHECK(lines[at++] == "Rosenbrock Hessian at (1, 1): [[802, -400], [-400, 200]]");

  // Newton: one line per iteration, f falling, ending at the minimum.
  CHECK(starts_with(lines[at++], "Newton's method with a backtracking line search"));
  int iterations = 0;
  double last_f = INFINITY, x = 0, y = 0;
  while (at < lines.size() && starts_with(lines[at], "iteration")) {
    const std::string& line = lines[at++];
    INFO(line);
    int k;
    double f;
    REQUIRE(std::sscanf(line.c_str(), "iteration %d: x = (%lf, %lf), f = %lf", &k, &x, &y, &f) ==
            4);
    CHECK(k == iterations++);
    CHECK(f <= last_f);
    last_f = f;
  }
  CHECK(lines[at - 1].find("minimum") != std::string::npos);
  CHECK(x == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(y == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(iterations >= 5);
  CHECK(iterations <= 40);

  // The tutorial's Hessian: nine rows w1 … b3, symmetric, each entry against Ridders' finite
  // differences of the first-order tape's gradient.
  CHECK(starts_with(lines[at++], "Hessian of the tutorial's loss"));
  double h[9][9];
  for (std::size_t i = 0; i < 9; ++i) {
    REQUIRE(at < lines.size());
    std::istringstream in(lines[at++]);
    std::string name;
    in >> name;
    CHECK(name == tutorial::kParamNames[i]);
    for (double& hij : h[i]) REQUIRE(static_cast<bool>(in >> hij));
  }
  auto loss = [](auto p) {
    std::array<typename decltype(p)::value_type, 9> params;
    for (std::size_t i = 0; i < 9; ++i) params[i] = p[i];
    return tutorial::loss(params, tutorial::kPeople[0]);
  };
  const autodiff::SecondOrderCheck check =
      autodiff::check_hessian(loss, std::vector<double>{1, 1, 1, 1, 1, 1, 0, 0, 0});
  for (const autodiff::SecondOrderEntry& e : check.entries) {
    INFO(e.row, ",", e.col);
    CHECK(h[e.row][e.col] == h[e.col][e.row]);
    // 12 significant digits printed; finite differences good to ~1e-10.
    CHECK(h[e.row][e.col] == doctest::Approx(e.finite_difference).epsilon(1e-8).scale(1e-9));
  }
  CHECK(h[4][4] > 0);  // ∂²L/∂w5²: w5 enters o1 through h1 > 0, L convex in o1 near here

  // MNIST: λ > 0, found in a bounded number of power iterations, and an eigenvector to 1e-3.
  REQUIRE(at < lines.size());
  const std::string& last = lines[at];
  INFO(last);
  CHECK(starts_with(last, "Largest Hessian eigenvalue of the MNIST MLP's loss (first batch of 32"));
  double eigenvalue = 0, residual = 1;
  int power_iterations = 0;
  const std::size_t colon = last.find("): ");
  REQUIRE(colon != std::string::npos);
  REQUIRE(std::sscanf(last.c_str() + colon, "): %lf after %d power iterations (residual %lf)",
                      &eigenvalue, &power_iterations, &residual) == 3);
  CHECK(eigenvalue > 0);
  CHECK(power_iterations >= 2);
  CHECK(power_iterations < 1000);
  CHECK(residual < 1e-3);
}
