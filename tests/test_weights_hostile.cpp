// load_weights on hostile files: the fuzz target's seeds (fuzz/corpus/fuzz_safetensors, written by
// fuzz/make_corpus.py) and a header nested deeper than any stack.
#include <cstdint>
#include <cstring>
#include <string>

#include <doctest/doctest.h>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using testing::TempDir;
using testing::write_text;

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

std::string with_length(const std::string& header) {
  std::string file(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return file + header;
}

}  // namespace

TEST_CASE(
    "load_weights on the fuzz seeds: the valid ones load, the others throw and change "
    "nothing") {
  const std::string corpus = AUTODIFF_SOURCE_DIR "/fuzz/corpus/fuzz_safetensors/";
  // make_corpus.py's values: (i + 1) / 8 − 1 for the 17 parameters, in the model's order.
  std::vector<float> expected;
  for (int i = 0; i < 17; ++i) expected.push_back(static_cast<float>(i + 1) / 8 - 1);
  for (const char* name : {"valid", "no_metadata", "reordered"}) {
    INFO(name);
    nn::Sequential model = fuzz_model();
    nn::load_weights(model, corpus + name);
    CHECK(values_of(model) == expected);
  }
  for (const char* name : {"wrong_shape", "missing_tensor", "extra_tensor", "f64", "overlap", "gap",
                           "shape_overflows", "duplicate_name", "header_past_end",
                           "header_claims_1TiB", "truncated", "not_json", "empty"}) {
    INFO(name);
    nn::Sequential model = fuzz_model();
    const std::vector<float> before = values_of(model);
    CHECK_THROWS_WITH_AS(nn::load_weights(model, corpus + name),
                         doctest::Contains((corpus + name).c_str()), nn::DataError);
    CHECK(values_of(model) == before);
  }
}

// Found by reading nn/serialize.cpp (as of a831b5f), not by fuzzing (libFuzzer's 4 KB inputs nest
// too shallowly): the error for a shape that is not a list of integers quoted the shape with
// nlohmann::json::dump, which recurses once per level of nesting, so a 200 KB header of nested
// arrays overflowed the stack. The header's nesting is now checked before it is parsed.
TEST_CASE("load_weights: a deeply nested shape is an error, not a stack overflow") {
  TempDir dir;
  const std::string path = dir / "nested.safetensors";
  const std::size_t depth = 100'000;
  write_text(path, with_length(R"({"0.weight":{"dtype":"F32","shape":)" + std::string(depth, '[') +
                               std::string(depth, ']') + R"(,"data_offsets":[0,0]}})"));
  nn::Sequential model = fuzz_model();
  CHECK_THROWS_WITH_AS(nn::load_weights(model, path), doctest::Contains("more than 8 deep"),
                       nn::DataError);
}
