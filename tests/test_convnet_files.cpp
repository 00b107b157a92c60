// Model files for convnets: every convnet layer (nn/conv_layers.hpp) has an architecture, so that a
// trained convnet saves and loads whole and predicts identically; and a checkpoint keeps Dropout's
// call counter, so that a resumed run draws the masks the uninterrupted one draws.
#include <bit>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nn/architecture.hpp"
#include "nn/conv_layers.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

namespace {

std::vector<std::uint32_t> state_bits(nn::Module& m) {
  std::vector<std::uint32_t> out;
  for (const nn::NamedParameter& p : m.named_state())
    for (float v : p.parameter->value) out.push_back(std::bit_cast<std::uint32_t>(v));
  return out;
}

std::vector<std::uint32_t> bits(const std::vector<float>& values) {
  std::vector<std::uint32_t> out;
  for (float v : values) out.push_back(std::bit_cast<std::uint32_t>(v));
  return out;
}

// 6×6 one-channel images, three classes by which third of the image is brightest.
nn::TensorData small_images(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n * 36));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const int label = int(rng() % 3);
    for (int p = 0; p < 36; ++p)
      x[std::size_t(i * 36 + p)] = uniform(rng) + ((p % 6) / 2 == label ? 0.5f : 0.0f);
    labels[std::size_t(i)] = label;
  }
  return nn::TensorData::with_labels(std::move(x), {n, 36}, labels, 3);
}

// Every convnet layer type, with options away from their defaults.
nn::Sequential every_layer(std::uint64_t seed) {
  nn::Sequential m;
  m.add(nn::Reshape({6, 6, 1}));
  m.add(nn::Conv2D(1, 4, {3, 3}, nn::Activation::Relu,
                   {.strides = {1, 1}, .padding = nn::Padding::Same, .seed = seed}));
  m.add(nn::BatchNormalization(4, {.momentum = 0.9, .epsilon = 1e-2}));
  m.add(nn::MaxPooling2D({2, 2}));
  m.add(nn::AveragePooling2D({2, 2}, {.strides = {1, 1}, .padding = nn::Padding::Same}));
  m.add(nn::Conv2D(4, 5, {2, 2}, nn::Activation::Tanh, {.use_bias = false, .seed = seed + 1}));
  m.add("drop", nn::Dropout(0.25, {.seed = seed + 2}));
  m.add(nn::Flatten());
  m.add("head", nn::Dense(20, 3, nn::Activation::Softmax, {.seed = seed + 3}));
  return m;
}

nn::Sequential global_pooling(std::uint64_t seed) {
  nn::Sequential m;
  m.add(nn::Reshape({-1, 6, 1}));
  m.add(nn::Conv2D(1, 3, {3, 3}, nn::Activation::Relu, {.seed = seed}));
  m.add(nn::GlobalAveragePooling2D());
  m.add(nn::Dense(3, 3, nn::Activation::Softmax, {.seed = seed + 1}));
  return m;
}

nn::Model trainer(nn::Sequential network) {
  return nn::Model(std::move(network), nn::categorical_crossentropy,
                   std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.01)));
}

nn::FitOptions fit_options(int epochs, int initial_epoch = 0) {
  return {.batch_size = 16,
          .epochs = epochs,
          .initial_epoch = initial_epoch,
          .validation_split = 0.25,
          .seed = 5,
          .verbose = 0};
}

}  // namespace

TEST_CASE("save_model / load_model: a trained convnet of every layer type predicts the same") {
  testing::TempDir dir;
  const nn::TensorData data = small_images(64, 1);
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    nn::Model model = trainer(which == 0 ? every_layer(3) : global_pooling(3));
    model.fit(data, fit_options(1));  // BatchNorm's moving statistics move away from 0 and 1
    nn::save_model(model.network(), dir / "cnn.safetensors");
    const std::unique_ptr<nn::Module> loaded = nn::load_model(dir / "cnn.safetensors");
    CHECK(nn::architecture(*loaded) == nn::architecture(model.network()));
    CHECK(state_bits(*loaded) == state_bits(model.network()));
    nn::Model reloaded{nn::load_model(dir / "cnn.safetensors")};
    CHECK(bits(reloaded.predict(data)) == bits(model.predict(data)));
  }
  // The configuration as Keras names it.
  const nn::Json arch = nn::architecture(every_layer(3));
  const nn::Json& layers = arch["config"]["layers"];
  CHECK(layers[1].dump() ==
        R"({"name":"1","class_name":"Conv2D","config":{"in_channels":1,"filters":4,)"
        R"("kernel_size":[3,3],"strides":[1,1],"padding":"same","use_bias":true,)"
        R"("activation":"relu"}})");
  CHECK(layers[2]["config"].dump() == R"({"channels":4,"momentum":0.9,"epsilon":0.01})");
  CHECK(layers[4]["config"].dump() == R"({"pool_size":[2,2],"strides":[1,1],"padding":"same"})");
  CHECK(layers[5]["config"]["use_bias"] == false);
  CHECK(layers[6]["config"].dump() == R"({"rate":0.25,"seed":5})");
  CHECK(layers[0]["config"].dump() == R"({"target_shape":[6,6,1]})");
}

TEST_CASE("build_architecture: convnet configs are checked, and a kernel is paid for up front") {
  const auto build = [](const std::string& layer, std::int64_t budget) {
    return nn::build_architecture(nn::Json::parse(layer), nn::ParameterBudget(budget), "f");
  };
  const std::string conv =
      R"({"class_name":"Conv2D","config":{"in_channels":3,"filters":8,"kernel_size":[3,3],)"
      R"("strides":[1,1],"padding":"valid","use_bias":true,"activation":"relu"}})";
  CHECK(build(conv, 3 * 3 * 3 * 8 + 8)->parameter_count() == 3 * 3 * 3 * 8 + 8);
  CHECK_THROWS_WITH_AS(build(conv, 3 * 3 * 3 * 8), doctest::Contains("bias (8) needs 8"),
                       nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Conv2D","config":{"in_channels":3000000000,"filters":3000000000,)"
            R"("kernel_size":[3000000000,3000000000],"strides":[1,1],"padding":"valid",)"
            R"("use_bias":true,"activation":"relu"}})",
            100),
      doctest::Contains("the kernel's size overflows"), nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"MaxPooling2D","config":{"pool_size":[2],"strides":[2,2],)"
            R"("padding":"valid"}})",
            0),
      doctest::Contains("pool_size is [2], expected [height, width], integers ≥ 1"), nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"AveragePooling2D","config":{"pool_size":[2,2],"strides":[2,2],)"
            R"("padding":"full"}})",
            0),
      doctest::Contains("padding \"full\" is not one of valid, same"), nn::DataError);
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Dropout","config":{"rate":1.5,"seed":1}})", 0),
                       doctest::Contains("Dropout: rate 1.5, expected in [0, 1)"), nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"BatchNormalization","config":{"channels":1000,"momentum":0.99,)"
            R"("epsilon":0.001}})",
            3999),
      doctest::Contains("moving_variance (1000) needs 1000"), nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Reshape","config":{"target_shape":[1,2,3,4,5,6,7,8]}})", 0),
      doctest::Contains("target_shape is [1,2,3,4,5,6,7,8], expected an array of at most"),
      nn::DataError);
}

TEST_CASE("a checkpoint keeps Dropout's counter: a resumed convnet run equals the whole run") {
  testing::TempDir dir;
  const nn::TensorData data = small_images(64, 2);
  nn::Model whole = trainer(every_layer(1));
  whole.fit(data, fit_options(4));

  nn::Model first = trainer(every_layer(1));
  nn::ModelCheckpoint every_epoch(dir / "ckpt-{epoch}.safetensors");
  nn::FitOptions two = fit_options(2);
  two.callbacks = {&every_epoch};
  first.fit(data, two);
  // 48 training images in batches of 16: 3 masks per epoch.
  const auto counters = first.network().named_counters();
  REQUIRE(counters.size() == 1);
  CHECK(counters[0].first == "drop.calls");
  CHECK(*counters[0].second == 6);

  nn::Model resumed = trainer(every_layer(1));
  nn::load_checkpoint(resumed, dir / "ckpt-2.safetensors");
  CHECK(*resumed.network().named_counters()[0].second == 6);
  resumed.fit(data, fit_options(4, resumed.progress().epoch));
  CHECK(state_bits(resumed.network()) == state_bits(whole.network()));
  CHECK(*resumed.network().named_counters()[0].second == 12);

  // A checkpoint's counters must fit the model: none missing, none extra, each I64 of shape (1).
  const nn::TensorFile good = nn::read_safetensors(dir / "ckpt-2.safetensors");
  const auto refused = [&](auto&& change, const char* message) {
    nn::TensorFile bad = good;
    change(bad);
    nn::write_safetensors(dir / "bad.safetensors", bad, "a test file");
    CHECK_THROWS_WITH_AS(nn::load_checkpoint(resumed, dir / "bad.safetensors"),
                         doctest::Contains(message), nn::DataError);
    CHECK(*resumed.network().named_counters()[0].second == 12);
  };
  const auto without_counter = [](nn::TensorFile& f) {
    std::erase_if(f.tensors, [](const nn::StoredTensor& t) { return t.name.ends_with("calls"); });
  };
  refused(without_counter, "missing tensor \"training.counter.drop.calls\"");
  refused([](nn::TensorFile& f) { f.add("training.counter.x", std::vector<std::int64_t>{1}, {1}); },
          "extra tensor \"training.counter.x\" (not a counter of the model)");
  refused(
      [&](nn::TensorFile& f) {
        without_counter(f);
        f.add("training.counter.drop.calls", std::vector<std::int64_t>{1, 2}, {2});
      },
      "tensor \"training.counter.drop.calls\" is I64 of shape (2), expected I64 of shape (1)");
}
