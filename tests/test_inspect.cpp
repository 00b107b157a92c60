// Seeing inside (#11): NaN never hidden by relu, max, min or accuracy; anomaly mode finding planted
// NaNs by op name in a scalar graph, a tensor graph and a training run; graph pictures in DOT;
// the backward pass explained; tape statistics; training curves as SVG.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "autodiff/autodiff.hpp"
#include "nn/inspect.hpp"
#include "nn/model.hpp"
#include "nn/plot.hpp"
#include "temp_dir.hpp"

using autodiff::AnomalyError;
using autodiff::Tape;
using autodiff::Tensor;
using autodiff::Var;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// A DOT picture's lines "  n<k> [label=…" (boxes) and "  n<a> -> n<b>…" (arrows): the ids.
struct DotLine {
  std::string from, to;  // to empty for a box
};
std::vector<DotLine> dot_lines(const std::string& dot) {
  std::vector<DotLine> lines;
  std::istringstream in(dot);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("  n", 0) != 0) continue;
    const std::size_t id_end = line.find(' ', 2);
    const std::string id = line.substr(2, id_end - 2);
    if (line.compare(id_end, 8, " [label=") == 0) {
      lines.push_back({id, ""});
    } else if (line.compare(id_end, 5, " -> n") == 0) {
      const std::size_t to_end = line.find_first_of(" ;", id_end + 4);
      lines.push_back({id, line.substr(id_end + 4, to_end - id_end - 4)});
    }
  }
  return lines;
}
std::size_t boxes(const std::string& dot) {
  std::size_t n = 0;
  for (const DotLine& line : dot_lines(dot)) n += line.to.empty();
  return n;
}

// The message of the AnomalyError that f throws (fails the test if it throws none).
template <class F>
AnomalyError anomaly_of(F&& f) {
  try {
    f();
  } catch (const AnomalyError& e) {
    return e;
  }
  FAIL("no AnomalyError");
  return AnomalyError("", "", false, "");
}

FILE* null_output() {
  static FILE* f = std::fopen("/dev/null", "w");
  return f;
}

// The tutorial's worked example (all weights 1, biases 0, Alice at (−2, −1)), each Var named.
struct Alice {
  Var w1 = 1.0, w2 = 1.0, w3 = 1.0, w4 = 1.0, w5 = 1.0, w6 = 1.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
  Var h1, h2, ypred, L;
  Alice() {
    const double x1 = -2, x2 = -1, y_true = 1;
    h1 = sigmoid(w1 * x1 + w2 * x2 + b1);
    h2 = sigmoid(w3 * x1 + w4 * x2 + b2);
    ypred = sigmoid(w5 * h1 + w6 * h2 + b3);
    L = (y_true - ypred) * (y_true - ypred);
  }
  void name_all() {
    const std::array<std::pair<const Var*, const char*>, 13> names = {{{&w1, "w1"},
                                                                       {&w2, "w2"},
                                                                       {&w3, "w3"},
                                                                       {&w4, "w4"},
                                                                       {&w5, "w5"},
                                                                       {&w6, "w6"},
                                                                       {&b1, "b1"},
                                                                       {&b2, "b2"},
                                                                       {&b3, "b3"},
                                                                       {&h1, "h1"},
                                                                       {&h2, "h2"},
                                                                       {&ypred, "ypred"},
                                                                       {&L, "L"}}};
    for (const auto& [v, n] : names) autodiff::name(*v, n);
  }
};

}  // namespace

// ---- NaN is never hidden ----

TEST_CASE("relu, max and min propagate NaN in value and gradient, scalar, both argument orders") {
  Tape::active().clear();
  Var x = kNaN;
  Var r = relu(x);
  CHECK(std::isnan(r.value()));
  r.backward();
  CHECK(std::isnan(x.grad()));
  for (int order = 0; order < 2; ++order) {
    for (int which = 0; which < 2; ++which) {
      Tape::active().clear();
      Var nan = kNaN, finite = 1.0;
      const Var y = which == 0 ? (order == 0 ? Var(max(nan, finite)) : Var(max(finite, nan)))
                               : (order == 0 ? Var(min(nan, finite)) : Var(min(finite, nan)));
      CAPTURE(order);
      CAPTURE(which);
      CHECK(std::isnan(y.value()));
      y.backward();
      CHECK(std::isnan(nan.grad()));
      CHECK(std::isnan(finite.grad()));
    }
  }
  // What did not change: ties give the first argument the gradient, relu'(0) = 0, relu(−0) = +0.
  Tape::active().clear();
  Var a = 2.0, b = 2.0, zero = 0.0;
  Var(max(a, b)).backward();
  CHECK(a.grad() == 1.0);
  CHECK(b.grad() == 0.0);
  Var(relu(zero)).backward();
  CHECK(zero.grad() == 0.0);
  CHECK(!std::signbit(autodiff::relu(-0.0)));
  CHECK(autodiff::relu(-3.0) == 0.0);
}

TEST_CASE("relu, maximum and minimum propagate NaN on tensors, tensor or number on either side") {
  using T = Tensor<double>;
  Tape::active().clear();
  auto check = [](auto make) {
    Tape::active().clear();
    const T x = T::from({kNaN, 1.0, -1.0}, {3}).requires_grad();
    const T y = make(x);
    CHECK(std::isnan(y.data()[0]));
    CHECK(std::isfinite(y.data()[1]));
    sum(y).backward();
    CHECK(std::isnan(x.grad()[0]));
    CHECK(std::isfinite(x.grad()[1]));
  };
  check([](const T& x) { return relu(x); });
  check([](const T& x) { return maximum(x, 0.0); });
  check([](const T& x) { return maximum(0.0, x); });
  check([](const T& x) { return minimum(x, 0.5); });
  check([](const T& x) { return minimum(0.5, x); });
  check([](const T& x) { return maximum(x, T::zeros({3})); });
  check([](const T& x) { return minimum(T::zeros({3}), x); });
  check([](const T& x) { return maximum(x, Var(0.25)); });
  check([](const T& x) { return minimum(Var(0.25), x); });
  // A finite tensor against a NaN number: every element NaN.
  Tape::active().clear();
  const T finite = T::from({1.0, 2.0}, {2});
  for (double v : maximum(finite, kNaN).data()) CHECK(std::isnan(v));
  for (double v : minimum(kNaN, finite).data()) CHECK(std::isnan(v));
}

TEST_CASE("accuracy never counts a row with a NaN as right") {
  Tape::active().clear();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Row 0: NaN first (argmax would pick it, and a plain > loop would keep class 0); row 1 right.
  const auto y_pred = Tensor<float>::from({nan, 0.1f, 0.2f, 0.9f, 0.05f, 0.05f}, {2, 3});
  const auto one_hot = Tensor<float>::from({1, 0, 0, 1, 0, 0}, {2, 3});
  const auto labels = Tensor<float>::from({0, 0}, {2, 1});
  const nn::Metric accuracy = nn::metrics::accuracy();
  CHECK(accuracy.compute(one_hot, y_pred) == 0.5);
  CHECK(accuracy.compute(labels, y_pred) == 0.5);
  const auto binary_pred = Tensor<float>::from({nan, 0.2f}, {2, 1});
  const auto binary_true = Tensor<float>::from({0, 0}, {2, 1});
  CHECK(accuracy.compute(binary_true, binary_pred) == 0.5);
  const std::vector<std::int32_t> label_vector = {0, 0};
  CHECK(nn::accuracy(label_vector, y_pred) == 0.5);
}

// ---- Anomaly mode ----

TEST_CASE("anomaly mode: a planted NaN in a scalar graph, by op, inputs and source line") {
  Tape::active().clear();
  {  // Off by default: log(−1) is NaN, silently.
    Var x = -1.0;
    CHECK(std::isnan(Var(log(x) * 2.0).value()));
  }
  Tape::active().clear();
  autodiff::DetectAnomaly anomaly;
  Var x = -1.0;
  autodiff::name(x, "x");
  Var fine = x * 3.0;  // recorded and checked: finite
  CHECK(fine.value() == -3.0);
  const int line = __LINE__ + 1;
  const AnomalyError forward = anomaly_of([&] { (void)Var(log(x) * 2.0 + fine); });
  CHECK(forward.op == "log");
  CHECK_FALSE(forward.in_backward);
  const std::string message = forward.what();
  INFO(message);
  CHECK(contains(message, "log gave nan in the forward pass"));
  CHECK(contains(message, "inputs:    x = -1"));
  CHECK(contains(message, "log(x)*2 + v"));
  CHECK(contains(message, "test_inspect.cpp:" + std::to_string(line)));

  // An infinity inside an expression whose own value is finite: 1/exp(1000) = 0.
  Var big = 1000.0;
  CHECK(anomaly_of([&] { (void)Var(1.0 / exp(big)); }).op == "exp");

  // A label names the scope.
  {
    autodiff::Label label("the loss");
    const AnomalyError labelled = anomaly_of([&] { (void)Var(sqrt(x)); });
    CHECK(labelled.op == "sqrt");
    CHECK(contains(labelled.where, "label the loss"));
  }

  // Backward: sqrt at 0 has a finite value and an infinite derivative.
  Var zero = 0.0;
  autodiff::name(zero, "zero");
  Var root = sqrt(zero) + 1.0;
  const AnomalyError backward = anomaly_of([&] { root.backward(); });
  CHECK(backward.in_backward);
  CHECK(backward.op == "add");  // the statement sqrt(zero) + 1, recorded as one
  const std::string back = backward.what();
  INFO(back);
  CHECK(contains(back, "sent inf to zero in the backward pass"));
  CHECK(contains(back, "sqrt(zero) + 1"));
  CHECK(contains(back, "local derivative: ∂v"));
  CHECK(contains(back, "incoming adjoint: 1"));
}

TEST_CASE("anomaly mode: statements recorded by = and += carry a source line") {
  Tape::active().clear();
  autodiff::DetectAnomaly anomaly;
  const std::array<double, 4> inputs = {2.0, 1.0, -1.0, 3.0};
  std::array<Var, 4> x;
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = inputs[i];
  // y = … : the assignment's own line.
  Var y;
  const int assigned_line = __LINE__ + 1;
  const AnomalyError assigned = anomaly_of([&] { y = log(x[2]) + x[0]; });
  CHECK(assigned.op == "log");
  CHECK(contains(assigned.where, "test_inspect.cpp:" + std::to_string(assigned_line)));
  CHECK_FALSE(contains(assigned.where, "by +="));
  // f += … in an unrolled loop: the line where f was recorded, said to be an assignment to it.
  const int declared_line = __LINE__ + 1;
  Var f = 0.0;
  const AnomalyError accumulated = anomaly_of([&] {
    for (const Var& xi : x) f += log(xi) * xi;  // log(−1) at the third
  });
  CHECK(accumulated.op == "log");
  const std::string message = accumulated.what();
  INFO(message);
  CHECK(contains(message, "test_inspect.cpp:" + std::to_string(declared_line)));
  CHECK(contains(message, "by +=, -=, *= or /= to the Var recorded there"));
  CHECK(f.value() == std::log(2.0) * 2);  // the two statements before it: log(2)·2 + log(1)·1
  // The backward pass reports it too: a compound statement whose derivative is not finite.
  Tape::active().clear();
  Var zero = 0.0;
  const int root_line = __LINE__ + 1;
  Var g = 1.0;
  g *= sqrt(zero);
  const AnomalyError backward = anomaly_of([&] { g.backward(); });
  CHECK(backward.in_backward);
  CHECK(contains(backward.where, "test_inspect.cpp:" + std::to_string(root_line)));
}

TEST_CASE("anomaly mode: planted NaNs in a tensor graph, by op name and first index") {
  using T = Tensor<double>;
  Tape::active().clear();
  autodiff::DetectAnomaly anomaly;
  const T x = T::from({1, 2, -3, 4, 5, 6}, {2, 3}).requires_grad();
  {
    const AnomalyError e = anomaly_of([&] { (void)log(x); });
    CHECK(e.op == "log");
    const std::string message = e.what();
    INFO(message);
    CHECK(contains(message, "log gave nan in the forward pass, first at index [0, 2]"));
    CHECK(contains(message, "float64 (2, 3), all finite"));
  }
  {  // An input that already holds a NaN: the op that first meets it, and where the NaN sits.
    const T w = T::from({1, 0, kNaN, 1, 0, 1}, {3, 2});
    autodiff::Label label("layer 1");
    const AnomalyError e = anomaly_of([&] { (void)matmul(x, w); });
    CHECK(e.op == "matmul");
    CHECK(e.where == "label layer 1");
    INFO(e.what());
    CHECK(contains(e.what(), "already nan at [1, 0]"));
  }
  {  // Backward: sqrt of a zero sends an infinite gradient.
    const T z = T::from({0, 1}, {2}).requires_grad();
    const T s = sum(sqrt(z));
    const AnomalyError e = anomaly_of([&] { s.backward(); });
    CHECK(e.op == "sqrt");
    CHECK(e.in_backward);
    INFO(e.what());
    CHECK(contains(e.what(), "sent inf into the gradient of its input 0"));
    CHECK(contains(e.what(), "at index [0]"));
  }
}

TEST_CASE("anomaly mode: a training run stops at the first NaN, named after the layer") {
  const std::int64_t n = 64;
  std::vector<float> x(static_cast<std::size_t>(n * 4)), y(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) / 7.0f - 0.5f;
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = x[i * 4] + x[i * 4 + 1];
  const nn::TensorData data(x, {n, 4}, y, {n, 1});
  nn::Sequential network;
  network.add(nn::Dense(4, 8, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(8, 1, nn::Activation::Linear, {.seed = 2}));
  nn::Model model(std::move(network), nn::mean_squared_error,
                  std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(0.01)),
                  std::vector<nn::Metric>{});
  // Plant a NaN in the second layer's weights: relu no longer hides what comes into it either.
  model.network<nn::Sequential>().layer<nn::Dense>(1).weights().value[3] =
      std::numeric_limits<float>::quiet_NaN();
  Tape::active().clear();
  autodiff::DetectAnomaly anomaly;
  nn::name_parameters(model.network());
  const AnomalyError e = anomaly_of([&] {
    model.fit(data, {.batch_size = 16, .epochs = 2, .verbose = 0, .out = null_output()});
  });
  CHECK(e.op == "matmul");
  INFO(e.what());
  CHECK(contains(e.where, "1 Dense(8 → 1, linear)"));
  CHECK(contains(e.what(), "1.weight: float32 (8, 1), already nan at [3, 0]"));
  CHECK(contains(e.what(), "first at index [0, 0]"));
}

TEST_CASE("anomaly mode off: nothing noted, nothing checked, nothing kept") {
  Tape& tape = Tape::active();
  tape.clear();
  CHECK(tape.notes() == nullptr);
  {
    autodiff::DetectAnomaly anomaly;
    CHECK(tape.notes() != nullptr);
    autodiff::RecordDetails nested;  // reuses the same notes, checks stay on
    CHECK(tape.notes()->checks_anomalies());
  }
  CHECK(tape.notes() == nullptr);
  Var x = -1.0;
  CHECK_THROWS_AS(autodiff::name(x, "x"), autodiff::TapeError);
  Var y = log(x);  // no guard: no exception
  CHECK(std::isnan(y.value()));
}

// ---- Graph pictures ----

TEST_CASE("to_dot: the worked example as a picture, with names, values, gradients and partials") {
  Tape::active().clear();
  autodiff::RecordDetails details;
  Alice a;
  a.name_all();
  std::string before = autodiff::to_dot(a.L);
  CHECK_FALSE(contains(before, "grad "));  // no gradient before backward
  a.L.backward();
  const std::string dot = autodiff::to_dot(a.L, {.legend = false});
  INFO(dot);
  CHECK(dot.rfind("digraph autodiff {", 0) == 0);
  // 9 inputs and 4 statements reach L: 13 boxes; arrows: 3 into each hidden neuron, 5 into ypred,
  // 1 into L (its two operations on ypred merged into one arrow).
  CHECK(boxes(dot) == 13);
  CHECK(count(dot, " -> ") == 3 + 3 + 5 + 1);
  CHECK(contains(dot, "h1\\nsigmoid(w1*(-2) + w2*(-1) + b1)\\nvalue 0.0474259\\ngrad -0.237618"));
  CHECK(contains(dot, "w1\\nvalue 1\\ngrad 0.0214695"));
  CHECK(contains(dot, "peripheries=2"));         // the output
  CHECK(contains(dot, "[label=\"0.249439\"]"));  // ∂ypred/∂h1 on its arrow
  CHECK(contains(dot, "[label=\"-0.95261\"]"));
  // Data-flow order: each node is declared before any arrow that leaves it.
  std::set<std::string> declared;
  for (const DotLine& line : dot_lines(dot)) {
    if (line.to.empty()) {
      declared.insert(line.from);
    } else {
      CHECK(declared.count(line.from) == 1);
      CHECK(declared.count(line.to) == 1);
    }
  }
  // Depth 1: L, ypred and a box summarising what is cut.
  const std::string shallow = autodiff::to_dot(a.L, {.max_depth = 1, .legend = false});
  CHECK(boxes(shallow) == 2);
  CHECK(contains(shallow, "… 5 more inputs"));
}

TEST_CASE("to_dot without details, and for tensors: shapes, dtypes, parameter names, kinds") {
  Tape::active().clear();
  Var x = 2.0, y = 3.0;
  Var f = x * y + sin(x);
  f.backward();
  const std::string scalar = autodiff::to_dot(f);
  CHECK(contains(scalar, "v0\\ngrad"));  // by slot, gradient shown
  CHECK(contains(scalar, "legend_output"));

  Tape::active().clear();
  nn::Sequential network;
  network.add(nn::Dense(3, 2, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(2, 1, nn::Activation::Sigmoid, {.seed = 2}));
  const auto input = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto target = Tensor<float>::from({1, 0}, {2, 1});
  const Tensor<float> loss = nn::mean_squared_error(target, network(input));
  loss.backward();
  const std::string dot = autodiff::to_dot(loss, {.names = nn::parameter_names(network)});
  INFO(dot);
  CHECK(contains(dot, "0.weight (parameter #"));
  CHECK(contains(dot, "1.bias (parameter #"));
  CHECK(contains(dot, "float32 (3, 2)"));
  CHECK(contains(dot, "matmul #"));
  CHECK(contains(dot, "|grad| "));
  CHECK(contains(dot, "#c8f0c8"));  // parameters' colour
  CHECK(contains(dot, "dashed"));   // the input batch: a constant
  CHECK(count(dot, "matmul #") == 2);
  (void)(input * 2.0f);  // reaches no output: drawn with the whole tape only
  CHECK(boxes(autodiff::to_dot(Tape::active(), {.legend = false})) == boxes(dot) + 1);

  // Graphviz draws it, when installed (CI installs graphviz).
  if (std::system("command -v dot > /dev/null 2>&1") == 0) {
    testing::TempDir dir;
    std::ofstream(dir / "g.dot") << dot;
    const std::string command = "dot -Tsvg " + (dir / "g.dot") + " -o " + (dir / "g.svg");
    CHECK(std::system(command.c_str()) == 0);
    std::ifstream svg(dir / "g.svg");
    const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
    CHECK(contains(text, "<svg"));
    CHECK(contains(text, "0.weight"));
  } else {
    MESSAGE("graphviz's dot is not installed: the picture is checked by its structure only");
  }
}

// The id of the box whose label starts with `label` ("" if none).
std::string box_id(const std::string& dot, const std::string& label) {
  std::istringstream in(dot);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("  n", 0) == 0 && contains(line, " [label=\"" + label))
      return line.substr(2, line.find(' ', 2) - 2);
  return "";
}
bool has_arrow(const std::string& dot, const std::string& from, const std::string& to) {
  for (const DotLine& line : dot_lines(dot))
    if (line.from == from && line.to == to) return true;
  return false;
}

TEST_CASE("to_dot: arrows from scalar Vars into the tensor ops that read them") {
  Tape::active().clear();
  autodiff::RecordDetails details;
  Var w = 0.5, b = 2.0;
  autodiff::name(w, "w");
  autodiff::name(b, "b");
  const auto x = Tensor<double>::from({1, 2, 3}, {3});
  const Tensor<double> scaled = x * w;  // a Var on one side of an elementwise op
  const std::array<Var, 2> elements = {w, b};
  const Tensor<double> gathered = Tensor<double>::from_vars(elements, {2});  // Vars as elements
  Var L = to_var(sum(scaled)) + to_var(sum(gathered));
  L.backward();
  CHECK(w.grad() == 1 + 2 + 3 + 1);
  const std::string dot = autodiff::to_dot(L, {.legend = false});
  INFO(dot);
  const std::string w_box = box_id(dot, "w\\n"), b_box = box_id(dot, "b\\n");
  const std::string multiply = box_id(dot, "multiply #"), from_vars = box_id(dot, "from_vars #");
  REQUIRE(!w_box.empty());
  REQUIRE(!b_box.empty());
  REQUIRE(!multiply.empty());
  REQUIRE(!from_vars.empty());
  CHECK(has_arrow(dot, w_box, multiply));
  CHECK(has_arrow(dot, w_box, from_vars));
  CHECK(has_arrow(dot, b_box, from_vars));
  CHECK_FALSE(has_arrow(dot, b_box, multiply));
  CHECK(contains(dot, "w\\nvalue 0.5\\ngrad 7"));
  // Every arrow joins two declared boxes, each declared before the arrows that leave it.
  std::set<std::string> declared;
  for (const DotLine& line : dot_lines(dot))
    if (line.to.empty())
      declared.insert(line.from);
    else
      CHECK(declared.count(line.from) == 1);
}

TEST_CASE("to_dot collapse_repeats: identical layers drawn once, in a box labelled × N") {
  Tape::active().clear();
  nn::Sequential network;
  for (int i = 0; i < 5; ++i)
    network.add(nn::Dense(4, 4, nn::Activation::Tanh, {.seed = static_cast<std::uint64_t>(i + 1)}));
  network.add(nn::Dense(4, 1, nn::Activation::Sigmoid, {.seed = 9}));
  const auto input = Tensor<float>::from({1, 2, 3, 4, -1, -2, -3, -4}, {2, 4});
  const Tensor<float> loss = sum(network(input));
  loss.backward();
  const std::string full = autodiff::to_dot(loss, {.legend = false});
  const std::string folded = autodiff::to_dot(loss, {.collapse_repeats = true, .legend = false});
  INFO(folded);
  // Each Dense layer: its weight, its bias, matmul, add and the activation.
  constexpr std::size_t kBoxesPerLayer = 5;
  CHECK(boxes(full) == 6 * kBoxesPerLayer + 2);  // and the input batch, and the sum
  CHECK(count(folded, "label=\"× 5\"") == 1);    // the five hidden layers: one box
  CHECK(count(full, "matmul #") == 6);
  CHECK(count(folded, "matmul #") == 2);  // the first hidden layer's, and the last layer's
  CHECK(boxes(folded) == boxes(full) - 4 * kBoxesPerLayer);
  // The picture is still one piece: every arrow between declared boxes, in data-flow order.
  std::set<std::string> declared;
  for (const DotLine& line : dot_lines(folded)) {
    if (line.to.empty()) {
      declared.insert(line.from);
    } else {
      CHECK(declared.count(line.from) == 1);
      CHECK(declared.count(line.to) == 1);
    }
  }
  // Folded: the arrows within four layers (weight → matmul, matmul → add, bias → add, add →
  // tanh) and the four from one layer into the next.
  CHECK(count(folded, " -> ") == count(full, " -> ") - 4 * 5);
  const std::string whole =
      autodiff::to_dot(Tape::active(), {.collapse_repeats = true, .legend = false});
  CHECK(boxes(whole) == boxes(folded));  // the whole tape is this graph
  CHECK(count(whole, " -> ") == count(folded, " -> "));
  if (std::system("command -v dot > /dev/null 2>&1") == 0) {
    testing::TempDir dir;
    std::ofstream(dir / "g.dot") << folded;
    const std::string command = "dot -Tsvg " + (dir / "g.dot") + " -o " + (dir / "g.svg");
    CHECK(std::system(command.c_str()) == 0);
  }
}

TEST_CASE("to_dot collapse_repeats: an unrolled loop of scalar statements drawn once") {
  Tape::active().clear();
  autodiff::RecordDetails details;
  Var x = 0.5, w = 0.9;
  Var s = x;
  for (int k = 0; k < 6; ++k) s = tanh(s * w) + 0.1 * k;  // the same statement each step
  s.backward();
  const std::string folded = autodiff::to_dot(s, {.collapse_repeats = true, .legend = false});
  INFO(folded);
  CHECK(count(folded, "label=\"× 6\"") == 1);
  CHECK(boxes(folded) == 3);                 // x, w and the statement
  CHECK(count(folded, " -> ") == 2);         // x and w into it; step into step is the run itself
  CHECK(contains(folded, "peripheries=2"));  // the output is among the folded steps
  // Different statements are not folded together.
  Tape::active().clear();
  Var a = 0.5;
  Var t = a;
  for (int k = 0; k < 6; ++k) t = k % 2 ? Var(sin(t)) : Var(cos(t));
  CHECK(count(autodiff::to_dot(t, {.collapse_repeats = true}), "× 3") == 1);  // cos, sin × 3
}

// ---- The backward pass explained ----

TEST_CASE("chain_rule: ∂L/∂w1 as the tutorial writes it, equal to the tape's to the last bit") {
  Tape::active().clear();
  autodiff::RecordDetails details;
  Alice a;
  a.name_all();
  const autodiff::ChainRule rule = autodiff::chain_rule(a.L, a.w1);
  REQUIRE(rule.paths.size() == 1);
  CHECK(rule.path_count == 1);
  const auto& f = rule.paths[0].factors;
  REQUIRE(f.size() == 3);
  CHECK(f[0].of == "L");
  CHECK(f[0].wrt == "ypred");
  CHECK(f[1].wrt == "h1");
  CHECK(f[2].wrt == "w1");
  CHECK(f[0].value == doctest::Approx(-0.952).epsilon(1e-3));
  CHECK(f[1].value == doctest::Approx(0.249).epsilon(1e-3));
  CHECK(f[2].value == doctest::Approx(-0.0904).epsilon(1e-3));
  CHECK(rule.paths[0].product == 0.021469535265811111);
  a.L.backward();
  CHECK(rule.gradient == a.w1.grad());
  const std::string text = rule.str();
  INFO(text);
  CHECK(contains(text, "∂L/∂w1 = ∂L/∂ypred × ∂ypred/∂h1 × ∂h1/∂w1\n"));
  CHECK(f[0].value == -2 * (1 - a.ypred.value()));  // the two operations of (1 − ypred)², summed
  CHECK(contains(text, fmt::format("= {:.17g} × ", f[0].value)));
  CHECK(contains(text, "= 0.021469535265811111"));

  // Several paths: f = x*y + x reaches x twice, and the paths add up to the gradient.
  Var x = 3.0, y = 4.0;
  autodiff::name(x, "x");
  autodiff::name(y, "y");
  Var p = x * y;
  autodiff::name(p, "p");
  Var q = p + x;
  autodiff::name(q, "q");
  const autodiff::ChainRule two = autodiff::chain_rule(q, x);
  CHECK(two.path_count == 2);
  REQUIRE(two.paths.size() == 2);
  CHECK(two.paths[0].product + two.paths[1].product == 5.0);
  CHECK(two.gradient == 5.0);
  CHECK(contains(two.str(), "(∂q/∂p × ∂p/∂x) + (∂q/∂x)"));
  CHECK(autodiff::chain_rule(q, q).gradient == 1.0);
  CHECK(autodiff::chain_rule(p, a.w1).paths.empty());  // no path: not computed from it
}

TEST_CASE("explain_backward: every step of the reverse sweep, the tape left alone") {
  Tape::active().clear();
  autodiff::RecordDetails details;
  Alice a;
  a.name_all();
  const autodiff::BackwardExplanation e = autodiff::explain_backward(a.L);
  REQUIRE(e.steps.size() == 4);  // L, ypred, h2, h1: from the output down
  CHECK(e.steps[0].name == "L");
  CHECK(e.steps[0].adjoint == 1.0);
  REQUIRE(e.steps[0].contributions.size() == 2);  // (1 − ypred)·(1 − ypred): two operations
  CHECK(e.steps[0].contributions[0].input_name == "ypred");
  CHECK(e.steps[1].name == "ypred");
  CHECK(e.steps[1].adjoint ==
        e.steps[0].contributions[0].contribution + e.steps[0].contributions[1].contribution);
  CHECK(e.steps[1].expression == "sigmoid(w5*h1 + w6*h2 + b3)");
  for (const auto& step : e.steps)
    for (const auto& c : step.contributions)
      CHECK(c.contribution == c.local_derivative * step.adjoint);
  CHECK(a.w1.grad() == 0.0);  // explained, not run
  a.L.backward();
  REQUIRE(e.input_gradients.size() == 9);
  CHECK(e.input_gradients[0].first == "w1");
  CHECK(e.input_gradients[0].second == a.w1.grad());
  const std::string table = e.table();
  INFO(table);
  CHECK(contains(table, "gradient of w1: 0.021469535265811111"));
  CHECK(count(table, "\n") == 1 + 2 + 5 + 3 + 3 + 9);  // header, contributions, gradients

  // Tensor graphs are drawn, not explained.
  Tape::active().clear();
  Var s = to_var(sum(Tensor<double>::from({1, 2}, {2}).requires_grad()));
  CHECK_THROWS_AS(autodiff::explain_backward(s), autodiff::TapeError);
}

// ---- Tape statistics ----

TEST_CASE("tape_stats: nodes, operations and bytes by kind, adding up to the tape's bytes") {
  Tape& tape = Tape::active();
  tape.clear();
  {
    Alice a;
    const autodiff::TapeStats stats = autodiff::tape_stats();
    REQUIRE(stats.rows.size() == 2);
    CHECK(stats.rows[0].kind == "scalar inputs");
    CHECK(stats.rows[0].nodes == 9);
    CHECK(stats.rows[1].kind == "scalar statements");
    CHECK(stats.rows[1].nodes == 4);
    CHECK(stats.rows[1].operations == 3 + 3 + 5 + 2);
    CHECK(stats.total_bytes == tape.bytes_used());
    CHECK(stats.rows[0].bytes + stats.rows[1].bytes == tape.bytes_used());
  }
  tape.clear();
  {
    autodiff::RecordDetails details;  // statements by op
    Alice a;
    const autodiff::TapeStats stats = autodiff::tape_stats();
    REQUIRE(stats.rows.size() == 3);
    CHECK(stats.rows[1].kind == "scalar multiply");
    CHECK(stats.rows[2].kind == "scalar sigmoid");
    CHECK(stats.rows[2].nodes == 3);
  }
  tape.clear();
  nn::Dense dense(3, 2, nn::Activation::Relu, {.seed = 1});
  const auto input = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor<float> loss = mean(dense(input));
  loss.backward();
  const autodiff::TapeStats stats = autodiff::tape_stats();
  std::size_t total = 0;
  bool saw_matmul = false;
  for (const auto& row : stats.rows) {
    total += row.bytes;
    if (row.kind == "tensor matmul") {
      saw_matmul = true;
      CHECK(row.nodes == 1);
      CHECK(row.elements == 4);
    }
  }
  CHECK(saw_matmul);
  CHECK(total == tape.bytes_used());
  const std::string table = stats.table();
  INFO(table);
  CHECK(contains(table, "tensor matmul"));
  CHECK(contains(table, "total"));
}

// ---- Training curves ----

TEST_CASE("history_svg: both panels, four series of one point per epoch, NaN breaks a curve") {
  nn::History history;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    nn::EpochLog log;
    log.epoch = epoch;
    log.set("loss", 1.0 / epoch);
    log.set("accuracy", 0.5 + 0.1 * epoch);
    log.set("val_loss", epoch == 3 ? kNaN : 1.2 / epoch);
    log.set("val_accuracy", 0.45 + 0.1 * epoch);
    history.epochs.push_back(log);
  }
  const std::string svg = nn::history_svg(history);
  INFO(svg);
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(contains(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(count(svg, "<polyline data-series=\"loss\"") == 1);
  CHECK(count(svg, "<polyline data-series=\"accuracy\"") == 1);
  CHECK(count(svg, "<polyline data-series=\"val_accuracy\"") == 1);
  CHECK(count(svg, "<polyline data-series=\"val_loss\"") == 2);  // broken at epoch 3
  CHECK(count(svg, "<circle") == 4 + 4 + 3 + 4);
  CHECK(count(svg, ">epoch</text>") == 2);
  CHECK(count(svg, ">training</text>") == 2);
  CHECK(count(svg, ">validation</text>") == 2);
  CHECK(count(svg, "<g") == count(svg, "</g>"));

  CHECK(contains(nn::history_svg(history, {.metric = "val_accuracy"}),
                 "data-quantity=\"val_accuracy\""));
  CHECK_THROWS_WITH_AS(nn::history_svg(history, {.metric = "mae"}),
                       "history_svg: the metric \"mae\" is not in the history, which logs: loss, "
                       "accuracy, val_loss, val_accuracy",
                       std::invalid_argument);
  CHECK(contains(nn::history_svg(nn::History{}), "no epochs to plot"));

  testing::TempDir dir;
  nn::write_history_svg(history, dir / "curves.svg");
  std::ifstream in(dir / "curves.svg");
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(written == svg);
  CHECK_THROWS_AS(nn::write_history_svg(history, dir / "missing/curves.svg"), nn::DataError);
}
