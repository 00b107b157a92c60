// The fuzz targets' seeds (fuzz/corpus/, written by fuzz/make_corpus.py): load_weights on
// fuzz_safetensors', load_model on fuzz_model's, load_checkpoint on fuzz_checkpoint's. The valid
// ones load (and are byte for byte what save_model and save_checkpoint write), the malformed ones
// throw DataError naming the file and change nothing.
#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "fuzz/checkpoint_trainer.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

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

namespace {

// Everything of the trainer that a checkpoint holds, as one file's bytes.
std::string checkpoint_of(nn::Model& model, const std::string& path) {
  nn::save_checkpoint(model, path);
  return testing::read_text(path);
}

}  // namespace

TEST_CASE("load_model on the fuzz seeds: the valid ones load, the others throw naming the file") {
  testing::TempDir dir;
  const std::string corpus = AUTODIFF_SOURCE_DIR "/fuzz/corpus/fuzz_model/";
  for (const char* name : {"mlp", "convnet"}) {
    INFO(name);
    const std::unique_ptr<nn::Module> model = nn::load_model(corpus + name);
    nn::save_model(*model, dir / "again");
    CHECK(testing::read_text(dir / "again") == testing::read_text(corpus + name));
  }
  // Strides of 2^62 are allowed (each image gives one output pixel).
  CHECK(nn::load_model(corpus + "conv_strides_huge")->parameter_count() == 19);
  for (const char* name : {"weights_only",          "dense_1e12_units",   "dense_overflows",
                           "units_string",          "units_float",        "units_1e300",
                           "activation_number",     "layers_object",      "unknown_class",
                           "architecture_not_json", "architecture_array", "nested_70_modules",
                           "nested_600_arrays",     "conv_huge_kernel",   "conv_kernel_overflows",
                           "pool_huge_same",        "pool_strides_zero",  "reshape_float",
                           "reshape_negative",      "dropout_seed_float", "dropout_rate_1",
                           "batchnorm_epsilon_nan", "truncated"}) {
    INFO(name);
    CHECK_THROWS_WITH_AS(nn::load_model(corpus + name), doctest::Contains((corpus + name).c_str()),
                         nn::DataError);
  }
}

TEST_CASE(
    "load_checkpoint on the fuzz seeds: the valid ones load, the others throw and change "
    "nothing") {
  testing::TempDir dir;
  const std::string corpus = AUTODIFF_SOURCE_DIR "/fuzz/corpus/fuzz_checkpoint/";
  for (const char* name : {"trained", "trained_no_order", "before_fit"}) {
    INFO(name);
    nn::Model model = fuzz::checkpoint_trainer();
    nn::load_checkpoint(model, corpus + name);
    CHECK(checkpoint_of(model, dir / "again") == testing::read_text(corpus + name));
  }
  {  // 150 logs in an epoch
    nn::Model model = fuzz::checkpoint_trainer();
    nn::load_checkpoint(model, corpus + "history_long");
    CHECK(model.progress().history.epochs.at(0).values().size() == 150);
  }
  nn::Model model = fuzz::checkpoint_trainer();
  nn::load_checkpoint(model, corpus + "trained");
  const std::string before = checkpoint_of(model, dir / "before");
  for (const char* name : {"model_file",
                           "not_checkpoint",
                           "sgd_state",
                           "iterations_negative",
                           "iterations_max",
                           "iterations_1e300",
                           "learning_rate_nan",
                           "slots_repeated",
                           "slot_missing",
                           "slot_i64",
                           "epoch_negative",
                           "epoch_4294967298",
                           "epoch_1e300",
                           "history_epoch_1e300",
                           "history_bad_pair",
                           "history_not_array",
                           "generator_garbage",
                           "order_not_permutation",
                           "order_without_generator",
                           "order_f32",
                           "counter_f32",
                           "counter_missing",
                           "training_nested",
                           "truncated",
                           "cut_header"}) {
    INFO(name);
    CHECK_THROWS_WITH_AS(nn::load_checkpoint(model, corpus + name),
                         doctest::Contains((corpus + name).c_str()), nn::DataError);
    CHECK(checkpoint_of(model, dir / "after") == before);
  }
}
