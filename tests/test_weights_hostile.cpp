// load_weights on the fuzz target's seeds (fuzz/corpus/fuzz_safetensors, written by
// fuzz/make_corpus.py): the valid ones load, the malformed ones throw and change nothing.
#include <string>

#include <doctest/doctest.h>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/serialize.hpp"

namespace {

// The fuzz target's model: Dense(2, 3) → Dense(3, 2).
nn::Sequential fuzz_model() {
  nn::Sequential model;
  model.add(nn::Dense(2, 3, nn::Activation::Relu, {.seed = 1}));
  model.add(nn::Dense(3, 2, nn::Activation::Linear, {.seed = 2}));
  return model;
}

std::vector<float> values_of(nn::Module& model) {
  std::vector<float> values;
  for (nn::Parameter* p : model.parameters())
    values.insert(values.end(), p->value.begin(), p->value.end());
  return values;
}

}  // namespace

TEST_CASE(
    "load_weights on the fuzz seeds: the valid ones load, the others throw and change "
    "nothing") {
  const std::string corpus = AUTODIFF_SOURCE_DIR "/fuzz/corpus/fuzz_safetensors/";
  // make_corpus.py's values: (i + 1) / 8 − 1 for the 17 parameters, in the model's order.
  std::vector<float> expected;
  for (int i = 0; i < 17; ++i) expected.push_back(static_cast<float>(i + 1) / 8 - 1);
  for (const char* name : {"valid", "no_metadata", "reordered", "checkpoint"}) {
    INFO(name);
    nn::Sequential model = fuzz_model();
    nn::load_weights(model, corpus + name);
    CHECK(values_of(model) == expected);
  }
  for (const char* name : {"future_version", "wrong_shape", "missing_tensor", "extra_tensor", "f64",
                           "overlap", "gap", "shape_overflows", "duplicate_name", "header_past_end",
                           "header_claims_1TiB", "truncated", "not_json", "empty"}) {
    INFO(name);
    nn::Sequential model = fuzz_model();
    const std::vector<float> before = values_of(model);
    CHECK_THROWS_WITH_AS(nn::load_weights(model, corpus + name),
                         doctest::Contains((corpus + name).c_str()), nn::DataError);
    CHECK(values_of(model) == before);
  }
}
