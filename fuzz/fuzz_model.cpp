// libFuzzer target: the input is a whole-model file (safetensors with the architecture as JSON in
// its metadata), loaded by nn::load_model. load_model may throw nn::DataError naming the file,
// nothing else. A model it returns must be consistent with the file:
//   - no more parameter values than the file holds F32 values (the ParameterBudget),
//   - each parameter's and buffer's values one range of the file's data section, bit for bit,
//   - its architecture describable again (nn::architecture), and that description building the
//     same architecture,
//   - a forward pass of a small input of the width its first layer takes (evaluation mode, as
//     predict; then training mode, with the backward pass) giving (2, …) rows with as many values
//     as its shape says, or refusing the input's shape with std::invalid_argument.
// Anything else (another exception, a crash, a sanitizer report, more memory than -rss_limit_mb)
// is a finding.
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "autodiff/tape.hpp"
#include "fuzz_file.hpp"
#include "nn/architecture.hpp"
#include "nn/conv_layers.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"

namespace {

using autodiff::Shape;
using autodiff::Tensor;

// The first module that is not a container (depth first), or nullptr for an empty one.
nn::Module* first_layer(nn::Module& m) {
  if (m.child_count() == 0) return dynamic_cast<nn::Sequential*>(&m) ? nullptr : &m;
  return first_layer(m.child(0));
}

// Inputs of two rows that the first layer takes (at most 4,096 values: the layers' sizes are
// bounded by the file's, which libFuzzer keeps to a few KB).
std::vector<Shape> inputs_for(nn::Module& model) {
  constexpr std::int64_t kMaxValues = 4096;
  nn::Module* first = first_layer(model);
  std::vector<Shape> shapes;
  const auto add = [&](std::initializer_list<std::int64_t> dims) {
    std::int64_t n = 1;
    for (std::int64_t d : dims) {
      if (d <= 0 || d > kMaxValues / n) return;
      n *= d;
    }
    shapes.emplace_back(dims);
  };
  if (auto* dense = dynamic_cast<nn::Dense*>(first)) {
    add({2, dense->in()});
  } else if (auto* conv = dynamic_cast<nn::Conv2D*>(first)) {
    add({2, 5, 4, conv->in_channels()});
  } else if (auto* norm = dynamic_cast<nn::BatchNormalization*>(first)) {
    add({2, norm->channels()});
    add({2, 3, 2, norm->channels()});
  } else if (auto* reshape = dynamic_cast<nn::Reshape*>(first)) {
    std::int64_t n = 1;
    for (std::int64_t d : reshape->target())
      if (d > 0 && n <= kMaxValues / d) n *= d;
    add({2, n});
  } else {
    add({2, 4, 5, 1});
    add({2, 3});
  }
  return shapes;
}

// The output's values are as many as its shape says, and its rows are the input's.
void check_output(const Tensor<float>& y) {
  std::int64_t n = 1;
  for (std::int64_t d : y.shape().dims()) n *= d;
  if (y.rank() < 1 || y.shape()[0] != 2 || n != static_cast<std::int64_t>(y.data().size()))
    fuzz::finding("a forward pass gave an output inconsistent with its shape or the batch");
}

void forward_passes(nn::Module& model) {
  autodiff::Tape& tape = autodiff::Tape::active();
  for (const Shape& shape : inputs_for(model)) {
    const auto input = [&] { return Tensor<float>::random_uniform(shape, -1.0f, 1.0f, 7); };
    try {
      {
        const autodiff::NoGradGuard no_grad;
        model.eval();
        tape.clear();
        check_output(model(input()));
      }
      model.train();
      tape.clear();
      const Tensor<float> y = model(input());
      check_output(y);
      autodiff::sum(y).backward();
    } catch (const std::invalid_argument&) {  // a shape the layers do not chain with
    }
    tape.clear();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::temp_path();
  fuzz::write_file(path, data, size);
  std::unique_ptr<nn::Module> model;
  if (!fuzz::loads(path, [&] { model = nn::load_model(path); })) return 0;
  const std::string_view section = fuzz::data_section(data, size);
  std::int64_t values = 0;
  for (const nn::NamedParameter& p : model->named_state()) {
    values += static_cast<std::int64_t>(p.parameter->value.size());
    if (!fuzz::in_section(section, p.parameter->value))
      fuzz::finding("a loaded parameter's values are not a range of the data section");
  }
  if (values > static_cast<std::int64_t>(section.size() / sizeof(float)))
    fuzz::finding("load_model built more parameter values than the file holds");
  const nn::Json architecture = nn::architecture(*model);
  const std::unique_ptr<nn::Module> again =
      nn::build_architecture(architecture, nn::ParameterBudget(values), "again");
  if (nn::architecture(*again) != architecture)
    fuzz::finding("the loaded model's architecture does not build the same architecture");
  forward_passes(*model);
  return 0;
}
