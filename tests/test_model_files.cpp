// Model files beyond weights (nn/safetensors.hpp, nn/architecture.hpp, nn/serialize.hpp): F32, F64
// and I64 tensors bit for bit; whole models (architecture + weights) that rebuild and predict
// identically; checkpoints that continue a run exactly as if it had not stopped; and loads that
// refuse bad files without touching the model or the optimizer.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nn/architecture.hpp"
#include "nn/model.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using autodiff::Tensor;

namespace {

template <class T>
auto bits(const std::vector<T>& values) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  std::vector<Bits> out;
  for (T v : values) out.push_back(std::bit_cast<Bits>(v));
  return out;
}

std::vector<std::uint32_t> parameter_bits(nn::Module& m) {
  std::vector<std::uint32_t> out;
  for (nn::Parameter* p : m.parameters())
    for (float v : p->value) out.push_back(std::bit_cast<std::uint32_t>(v));
  return out;
}

nn::Sequential classifier(std::uint64_t seed) {
  nn::Sequential model;
  model.add(nn::Dense(4, 8, nn::Activation::Relu, {.seed = seed}));
  model.add("head", nn::Dense(8, 3, nn::Activation::Softmax, {.seed = seed + 1}));
  return model;
}

// Three classes of points in 4-D, by which coordinate is largest among the first three.
nn::TensorData three_classes(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<std::size_t>(n * 4));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    float* row = &x[static_cast<std::size_t>(i * 4)];
    for (int j = 0; j < 4; ++j) row[j] = normal(rng);
    labels[std::size_t(i)] =
        row[0] > row[1] ? (row[0] > row[2] ? 0 : 2) : (row[1] > row[2] ? 1 : 2);
  }
  return nn::TensorData::with_labels(std::move(x), {n, 4}, labels, 3);
}

nn::Model trainer(std::uint64_t seed, bool adam) {
  std::unique_ptr<nn::Optimizer> optimizer;
  if (adam)
    optimizer = std::make_unique<nn::Adam>(nn::AdamOptions().learning_rate(0.01));
  else
    optimizer = std::make_unique<nn::SGD>(nn::SGDOptions().learning_rate(0.05).momentum(0.9));
  return nn::Model(classifier(seed), nn::categorical_crossentropy, std::move(optimizer));
}

nn::FitOptions fit_options(int epochs, int initial_epoch = 0) {
  return {.batch_size = 16,
          .epochs = epochs,
          .initial_epoch = initial_epoch,
          .validation_split = 0.2,
          .seed = 7,
          .verbose = 0};
}

// The logs of an epoch without its duration.
std::vector<std::pair<std::string, double>> logs_of(const nn::EpochLog& e) { return e.values(); }

}  // namespace

TEST_CASE("TensorFile: F32, F64 and I64 tensors round-trip bit for bit, metadata in order") {
  testing::TempDir dir;
  const std::vector<float> f = {0.0f,
                                -0.0f,
                                std::numeric_limits<float>::infinity(),
                                std::bit_cast<float>(0x7fc01234u),
                                std::numeric_limits<float>::denorm_min(),
                                3.14159274f};
  const std::vector<double> d = {-0.0,
                                 std::bit_cast<double>(0x7ff8000000abcdefull),
                                 std::numeric_limits<double>::denorm_min(),
                                 1.0 / 3.0,
                                 -std::numeric_limits<double>::infinity(),
                                 6.02214076e23};
  const std::vector<std::int64_t> i = {INT64_MIN, -1, 0, 1, INT64_MAX, 42};
  nn::TensorFile file;
  file.metadata = {{"z", "last letter first"}, {"a", "{\"json\": true}"}};
  file.add("floats", f, {2, 3});
  file.add("doubles", d, {3, 2});
  file.add("integers", i, {6});
  file.add("empty", std::vector<double>{}, {0, 5});
  nn::write_safetensors(dir / "t.safetensors", file);
  const nn::TensorFile back = nn::read_safetensors(dir / "t.safetensors");
  CHECK(back.metadata == file.metadata);
  REQUIRE(back.tensors.size() == 4);
  CHECK(bits(back.at("floats").values<float>()) == bits(f));
  CHECK(bits(back.at("doubles").values<double>()) == bits(d));
  CHECK(back.at("integers").values<std::int64_t>() == i);
  CHECK(back.at("doubles").shape == std::vector<std::int64_t>{3, 2});
  CHECK(back.at("empty").element_count() == 0);
  CHECK(back.at("empty").shape == std::vector<std::int64_t>{0, 5});
  // The same bytes as encoded in memory; the header padded to 8.
  CHECK(testing::read_text(dir / "t.safetensors") == nn::encode_safetensors(file));
  CHECK_THROWS_WITH_AS(back.at("doubles").values<float>(),
                       "tensor \"doubles\" holds F64, expected F32", nn::DataError);
  CHECK_THROWS_WITH_AS(back.at("nothing"), doctest::Contains("no tensor \"nothing\""),
                       nn::DataError);
  CHECK_THROWS_AS(file.add("floats", f, {6}), std::invalid_argument);  // name taken
  CHECK_THROWS_AS(file.add("odd", f, {4}), std::invalid_argument);     // 6 values, shape of 4
  CHECK_THROWS_AS(file.add("__metadata__", f, {6}), std::invalid_argument);
}

TEST_CASE("save_model / load_model: the architecture rebuilds the model, which predicts the same") {
  testing::TempDir dir;
  nn::Sequential saved = classifier(3);
  const nn::Json arch = nn::architecture(saved);
  CHECK(
      arch.dump() ==
      R"({"class_name":"Sequential","config":{"layers":[{"name":"0","class_name":"Dense","config":)"
      R"({"input_dim":4,"units":8,"activation":"relu"}},{"name":"head","class_name":"Dense",)"
      R"("config":{"input_dim":8,"units":3,"activation":"softmax"}}]}})");
  nn::save_model(saved, dir / "m.safetensors");
  const std::unique_ptr<nn::Module> loaded = nn::load_model(dir / "m.safetensors");
  CHECK(parameter_bits(*loaded) == parameter_bits(saved));
  CHECK(nn::architecture(*loaded) == arch);
  auto& head = loaded->child<nn::Dense>("head");
  CHECK(head.activation() == nn::Activation::Softmax);
  // Identical predictions, bit for bit.
  const nn::TensorData data = three_classes(20, 5);
  nn::Model a(std::move(saved));
  nn::Model b(classifier(99));
  nn::load_weights(b.network(), dir / "m.safetensors");  // a model file holds weights too
  CHECK(bits(a.predict(data)) == bits(b.predict(data)));
  CHECK(dir.listing() == std::set<std::string>{"m.safetensors"});
}

namespace {
struct Scale : nn::Module {
  std::int64_t n;
  nn::Parameter* factor;
  explicit Scale(std::int64_t n) : n(n), factor(&register_parameter("factor", {1, n})) {
    for (std::size_t i = 0; i < factor->value.size(); ++i) factor->value[i] = 1.0f + float(i);
  }
  Tensor<float> forward(const Tensor<float>& x) override { return x * factor->on_tape(); }
  std::string describe() const override { return fmt::format("Scale({})", n); }
};
}  // namespace

TEST_CASE("save_model: a user's module type is refused until registered, then round-trips") {
  testing::TempDir dir;
  nn::Sequential model;
  model.add(nn::Dense(2, 3));
  model.add("scale", Scale(3));
  model.child<Scale>("scale").factor->value[2] = -7.5f;
  CHECK_THROWS_WITH_AS(nn::save_model(model, dir / "m.safetensors"),
                       "layer \"scale\": Scale(3) is not of a registered layer type: save its "
                       "weights (save_weights), or register it (register_layer_type)",
                       std::invalid_argument);
  CHECK(dir.listing().empty());  // nothing written
  CHECK_FALSE(nn::has_architecture(model));
  nn::register_layer_type<Scale>(
      "Scale",
      [](const Scale& s) {
        return nn::Json{{"n", s.n}};
      },
      [](const nn::Json& c) { return Scale(c.at("n").get<std::int64_t>()); });
  CHECK(nn::has_architecture(model));
  nn::save_model(model, dir / "m.safetensors");
  const auto loaded = nn::load_model(dir / "m.safetensors");
  CHECK(parameter_bits(*loaded) == parameter_bits(model));
  CHECK(loaded->child<Scale>("scale").factor->value[2] == -7.5f);
}

TEST_CASE("build_architecture refuses bad JSON with the place, and never allocates past the file") {
  const auto build = [](const std::string& text, std::int64_t budget = INT64_MAX) {
    return nn::build_architecture(nn::Json::parse(text), nn::ParameterBudget(budget), "f");
  };
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Conv9D","config":{}})"),
                       "f: the architecture (Conv9D): not a registered layer type "
                       "(register_layer_type)",
                       nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Sequential","config":{"layers":[{"name":"0","class_name":"Dense",)"
            R"("config":{"input_dim":2,"units":3,"activation":"relu"}},{"name":"1","class_name":)"
            R"("Dense","config":{"input_dim":3,"units":-3,"activation":"relu"}}]}})"),
      "f: the architecture (Sequential).layers[1] (Dense): units is -3, expected a positive "
      "integer",
      nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Dense","config":{"input_dim":2,"units":3,"activation":"gelu"}})"),
      doctest::Contains("activation \"gelu\" is not one of"), nn::DataError);
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Dense","config":{"input_dim":2}})"),
                       doctest::Contains("f: the architecture (Dense): "), nn::DataError);
  // A billion-by-billion layer in a file of 9 values: refused before any allocation.
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Dense","config":{"input_dim":1000000000,"units":1000000000,)"
            R"("activation":"linear"}})",
            9),
      "f: the architecture (Dense): weight (1000000000, 1000000000) needs 1000000000000000000 "
      "parameter values, but the weights hold only 9 more",
      nn::DataError);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"Dense","config":{"input_dim":9223372036854775807,"units":2,)"
            R"("activation":"linear"}})"),
      doctest::Contains("overflows"), nn::DataError);
  std::string deep =
      R"({"class_name":"Dense","config":{"input_dim":1,"units":1,"activation":"linear"}})";
  for (int i = 0; i < 100; ++i)
    deep =
        R"({"class_name":"Sequential","config":{"layers":[{"name":"x",)" + deep.substr(1) + "]}}";
  CHECK_THROWS_WITH_AS(build(deep), doctest::Contains("nested more than 64 modules deep"),
                       nn::DataError);
  CHECK(build(R"({"class_name":"Dense","config":{"input_dim":2,"units":3,"activation":"tanh"}})", 9)
            ->parameter_count() == 9);
}

TEST_CASE("build_architecture: integers out of range and windows past any tensor are refused") {
  // Found by fuzz_model: a float where an integer goes was cast (undefined behaviour out of range);
  // a pooling window of 2^63 − 1 with padding "same" overflowed the padding's computation in the
  // forward pass.
  const auto build = [](const std::string& text) {
    return nn::build_architecture(nn::Json::parse(text), nn::ParameterBudget(0), "f");
  };
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Reshape","config":{"target_shape":[1e300,1]}})"),
                       "f: the architecture (Reshape): a dimension of target_shape is 1e+300, "
                       "expected an integer in [-9223372036854775808, 9223372036854775807]",
                       nn::DataError);
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Reshape","config":{"target_shape":[2.0,1]}})"),
                       doctest::Contains("target_shape is 2.0, expected an integer"),
                       nn::DataError);
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Dropout","config":{"rate":0.5,"seed":-1e300}})"),
                       "f: the architecture (Dropout): seed is -1e+300, expected an integer in [0, "
                       "18446744073709551615]",
                       nn::DataError);
  CHECK_THROWS_WITH_AS(build(R"({"class_name":"Dropout","config":{"rate":0.5,"seed":-1}})"),
                       doctest::Contains("seed is -1, expected an integer in [0, "), nn::DataError);
  CHECK(build(R"({"class_name":"Dropout","config":{"rate":0.5,"seed":18446744073709551615}})")
            ->child_count() == 0);
  CHECK_THROWS_WITH_AS(
      build(R"({"class_name":"MaxPooling2D","config":{"pool_size":[9223372036854775807,1],)"
            R"("strides":[1,1],"padding":"same"}})"),
      doctest::Contains("MaxPooling2D: pool size 9223372036854775807×1 and strides 1×1: expected "
                        "sizes in [1, 1152921504606846975]"),
      nn::DataError);
  const auto largest =
      build(R"({"class_name":"AveragePooling2D","config":{"pool_size":[1152921504606846975,1],)"
            R"("strides":[1,1],"padding":"same"}})");
  CHECK(largest->describe() == "AveragePooling2D(1152921504606846975×1, strides 1×1, same)");
}

TEST_CASE("a checkpoint continues training exactly as if it had not stopped") {
  const nn::TensorData data = three_classes(200, 11);
  for (const bool adam : {true, false}) {
    CAPTURE(adam);
    testing::TempDir dir;
    // The uninterrupted run: 4 epochs.
    nn::Model whole = trainer(1, adam);
    const nn::History full = whole.fit(data, fit_options(4));
    REQUIRE(full.epochs.size() == 4);

    // The same run, stopped after epoch 2 with a checkpoint each epoch...
    nn::Model first = trainer(1, adam);
    nn::ModelCheckpoint every_epoch(dir / "ckpt-{epoch}.safetensors");
    nn::FitOptions two = fit_options(2);
    two.callbacks = {&every_epoch};
    first.fit(data, two);
    CHECK(dir.listing() == std::set<std::string>{"ckpt-1.safetensors", "ckpt-2.safetensors"});
    // ... and continued in a fresh process's worth of objects, differently initialised.
    nn::Model resumed = trainer(123, adam);
    nn::load_checkpoint(resumed, dir / "ckpt-2.safetensors");
    CHECK(resumed.progress().epoch == 2);
    REQUIRE(resumed.progress().history.epochs.size() == 2);
    const nn::History rest = resumed.fit(data, fit_options(4, resumed.progress().epoch));
    REQUIRE(rest.epochs.size() == 2);
    CHECK(rest.epochs[0].epoch == 3);
    CHECK(parameter_bits(resumed.network()) == parameter_bits(whole.network()));
    for (int k = 0; k < 2; ++k)
      CHECK(logs_of(rest.epochs[std::size_t(k)]) == logs_of(full.epochs[std::size_t(k) + 2]));
    // The run's history, all four epochs, as the uninterrupted run's.
    const auto& all = resumed.progress().history.epochs;
    REQUIRE(all.size() == 4);
    for (std::size_t k = 0; k < 4; ++k) CHECK(logs_of(all[k]) == logs_of(full.epochs[k]));
    // The optimizer's state too.
    CHECK(resumed.optimizer().state().slots == whole.optimizer().state().slots);
    CHECK(resumed.optimizer().state().iterations == whole.optimizer().state().iterations);
  }
}

TEST_CASE("initial_epoch without a checkpoint replays the shuffled order from the seed") {
  const nn::TensorData data = three_classes(120, 3);
  nn::Model whole = trainer(1, true);
  whole.fit(data, fit_options(3));
  // Weights and optimizer from after epoch 2, but no saved order: fit replays it.
  testing::TempDir dir;
  nn::Model first = trainer(1, true);
  first.fit(data, fit_options(2));
  nn::save_weights(first.network(), dir / "w.safetensors");
  const nn::OptimizerState state = first.optimizer().state();
  nn::Model second = trainer(5, true);
  nn::load_weights(second.network(), dir / "w.safetensors");
  second.optimizer().load_state(state, second.network().parameters());
  second.fit(data, fit_options(3, 2));
  CHECK(parameter_bits(second.network()) == parameter_bits(whole.network()));
  CHECK_THROWS_WITH_AS(second.fit(data, fit_options(1, 2)),
                       "fit: epochs is 1, expected ≥ initial_epoch (2): epochs counts from the "
                       "start of the run",
                       std::invalid_argument);
}

TEST_CASE("load_checkpoint refuses what does not fit, and then changes nothing") {
  testing::TempDir dir;
  const nn::TensorData data = three_classes(100, 2);
  nn::Model adam = trainer(1, true);
  nn::ModelCheckpoint checkpoint(dir / "adam.safetensors");
  nn::FitOptions one = fit_options(1);
  one.callbacks = {&checkpoint};
  adam.fit(data, one);
  nn::save_weights(adam.network(), dir / "weights.safetensors");

  nn::Model sgd = trainer(2, false);
  sgd.fit(data, fit_options(1));
  const auto weights_before = parameter_bits(sgd.network());
  const auto state_before = sgd.optimizer().state();
  const auto unchanged = [&] {
    CHECK(parameter_bits(sgd.network()) == weights_before);
    CHECK(sgd.optimizer().state().slots == state_before.slots);
    CHECK(sgd.progress().epoch == 1);
  };
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(sgd, dir / "adam.safetensors"),
                       doctest::Contains("adam.safetensors: SGD: the optimizer state is Adam's"),
                       nn::DataError);
  unchanged();
  CHECK_THROWS_WITH_AS(nn::load_checkpoint(sgd, dir / "weights.safetensors"),
                       doctest::Contains("not a checkpoint"), nn::DataError);
  unchanged();
  // Every truncation, and a byte changed at every 7th position of the header: refused or loaded
  // whole, never half.
  nn::Model target = trainer(3, true);
  nn::load_checkpoint(target, dir / "adam.safetensors");
  const auto target_before = parameter_bits(target.network());
  const std::string good = testing::read_text(dir / "adam.safetensors");
  int refused = 0, loaded = 0;
  for (std::size_t n = 0; n < good.size(); n += good.size() / 97 + 1) {
    testing::write_text(dir / "cut.safetensors", good.substr(0, n));
    CHECK_THROWS_AS(nn::load_checkpoint(target, dir / "cut.safetensors"), nn::DataError);
    ++refused;
  }
  std::uint64_t header = 0;
  for (int b = 7; b >= 0; --b)
    header = (header << 8) | static_cast<unsigned char>(good[std::size_t(b)]);
  for (std::size_t i = 0; i < 8 + header; i += 7) {
    std::string bytes = good;
    bytes[i] = static_cast<char>(bytes[i] ^ 0x21);
    testing::write_text(dir / "bad.safetensors", bytes);
    try {
      nn::load_checkpoint(target, dir / "bad.safetensors");
      ++loaded;
      nn::load_checkpoint(target, dir / "adam.safetensors");  // reset
    } catch (const nn::DataError&) {
      ++refused;
      CHECK(parameter_bits(target.network()) == target_before);
    }
  }
  MESSAGE("checkpoint corruption: " << refused << " refused, " << loaded << " loaded");
  CHECK(refused > 100);
}

namespace {
// The file's metadata value under `key` as JSON, changed by `change`, then written back.
template <class F>
void change_metadata(nn::TensorFile& file, const std::string& key, F&& change) {
  for (auto& [k, value] : file.metadata)
    if (k == key) {
      nn::Json j = nn::Json::parse(value);
      change(j);
      value = j.dump();
    }
}
}  // namespace

TEST_CASE("load_checkpoint: numbers out of range, wrong dtypes and repeated slots, each named") {
  // Found by fuzz_checkpoint: floats where integers go were cast (undefined behaviour out of
  // range), an epoch of 2^32 + 2 wrapped to 2, a step count of 2^63 − 1 overflowed at the next
  // step, and an optimizer slot or the order of the wrong dtype threw a DataError without the
  // file's name. A slot listed n times took n copies of the model's size.
  testing::TempDir dir;
  const nn::TensorData data = three_classes(40, 2);
  nn::Model source = trainer(1, true);
  source.fit(data, fit_options(1));
  nn::save_checkpoint(source, dir / "good.safetensors");
  const nn::TensorFile good = nn::read_safetensors(dir / "good.safetensors");
  nn::Model target = trainer(2, true);
  target.fit(data, fit_options(1));
  const auto weights = parameter_bits(target.network());
  const auto slots = target.optimizer().state().slots;
  const auto iterations = target.optimizer().state().iterations;
  const auto refused = [&](const nn::TensorFile& file, const std::string& message) {
    const std::string path = dir / "bad.safetensors";
    nn::write_safetensors(path, file);
    CHECK_THROWS_WITH_AS(nn::load_checkpoint(target, path),
                         doctest::Contains((path + ": " + message).c_str()), nn::DataError);
    CHECK(parameter_bits(target.network()) == weights);
    CHECK(target.optimizer().state().slots == slots);
    CHECK(target.optimizer().state().iterations == iterations);
    CHECK(target.progress().epoch == 1);
  };
  const auto with = [&](const std::string& key, auto&& change) {
    nn::TensorFile file = good;
    change_metadata(file, key, change);
    return file;
  };
  refused(with("optimizer", [](nn::Json& j) { j["iterations"] = 1e300; }),
          "the optimizer's state: iterations is 1e+300, expected an integer in "
          "[-9223372036854775808, 9223372036854775807]");
  refused(with("optimizer", [](nn::Json& j) { j["iterations"] = INT64_MAX; }),
          "Adam: the state's step count is 9223372036854775807, expected ≥ 0 and < "
          "9223372036854775807");
  refused(with("optimizer",
               [](nn::Json& j) {
                 j["slots"] = {"m", "v", "m"};
               }),
          "the optimizer's slot \"m\" is listed twice");
  refused(with("training", [](nn::Json& j) { j["epoch"] = 1e300; }),
          "the training state: epoch is 1e+300, expected an integer in [-2147483648, 2147483647]");
  refused(with("training", [](nn::Json& j) { j["epoch"] = 4294967298; }),
          "the training state: epoch is 4294967298, expected an integer in");
  refused(with("training", [](nn::Json& j) { j["epoch"] = -1; }),
          "the training state: epoch is -1, expected ≥ 0");
  refused(with("training", [](nn::Json& j) { j["history"][0]["epoch"] = 1.5; }),
          "the training state: an epoch's number is 1.5, expected an integer in");
  refused(with("training",
               [](nn::Json& j) {
                 for (int k = 0; k < 1025; ++k)  // after its 4: loss, accuracy and val_'s
                   j["history"][0]["logs"].push_back({fmt::format("m{}", k), k});
               }),
          "the training state: epoch 1 has 1029 logs, expected at most 1024");
  const auto retyped = [&](const std::string& name, nn::Dtype dtype) {
    nn::TensorFile file = good;
    for (nn::StoredTensor& t : file.tensors)
      if (t.name == name) {
        t.bytes.resize(std::size_t(t.element_count()) * nn::element_bytes(dtype));
        t.dtype = dtype;
      }
    return file;
  };
  refused(retyped("optimizer.m.head.bias", nn::Dtype::I64),
          "tensor \"optimizer.m.head.bias\" is I64 of shape (3), expected F32 of its parameter's "
          "shape (3)");
  refused(retyped("training.order", nn::Dtype::F32),
          "tensor \"training.order\" is F32 of shape (32), expected I64 of one dimension");
  // The good file still loads.
  nn::load_checkpoint(target, dir / "good.safetensors");
  CHECK(parameter_bits(target.network()) == parameter_bits(source.network()));
}

TEST_CASE(
    "ModelCheckpoint: only improvements with save_best_only, and the best survives a resume") {
  testing::TempDir dir;
  const nn::TensorData data = three_classes(200, 4);
  nn::Model model = trainer(1, true);
  nn::ModelCheckpoint best(dir / "best.safetensors",
                           {.monitor = "val_accuracy", .save_best_only = true});
  nn::FitOptions options = fit_options(6);
  options.callbacks = {&best};
  const nn::History h = model.fit(data, options);
  int best_epoch = 0;
  double best_value = -1;
  for (const nn::EpochLog& e : h.epochs)
    if (e["val_accuracy"] > best_value) best_value = e["val_accuracy"], best_epoch = e.epoch;
  CHECK(best.last_saved_epoch() == best_epoch);
  nn::Model reloaded = trainer(9, true);
  nn::load_checkpoint(reloaded, dir / "best.safetensors");
  CHECK(reloaded.progress().epoch == best_epoch);
  CHECK(reloaded.evaluate(data)["accuracy"] >= 0.0);
  nn::ModelCheckpoint missing(dir / "x.safetensors",
                              {.monitor = "val_nothing", .save_best_only = true});
  nn::FitOptions bad = fit_options(1);
  bad.callbacks = {&missing};
  CHECK_THROWS_WITH_AS(model.fit(data, bad),
                       doctest::Contains("\"val_nothing\" is not in the epoch's logs"),
                       std::invalid_argument);
  // An unwritable path is found out when training begins, not after an epoch's work.
  const std::vector<float> before = model.network().parameters()[0]->value;
  nn::ModelCheckpoint nowhere(dir / "missing/ckpt-{epoch}.safetensors");  // bad inputs: 1
  bad.callbacks = {&nowhere};
  CHECK_THROWS_WITH_AS(model.fit(data, bad),
                       doctest::Contains("missing/ckpt-1.safetensors: cannot write the checkpoint"),
                       nn::DataError);
  CHECK(model.network().parameters()[0]->value == before);
  CHECK(nn::checkpoint_path("{epoch}/run-{epoch}.ckpt", 12) == "12/run-12.ckpt");
}

namespace {
// A layer with state that is saved but not trained, as BatchNorm's moving statistics.
struct Running : nn::Module {
  nn::Parameter* gain;
  nn::Parameter* mean;
  Running()
      : gain(&register_parameter("gain", {1, 2})), mean(&register_buffer("moving_mean", {2})) {}
  Tensor<float> forward(const Tensor<float>& x) override { return x * gain->on_tape(); }
};
}  // namespace

TEST_CASE("buffers: saved and loaded with the weights, never given to an optimizer") {
  testing::TempDir dir;
  nn::Sequential model;
  model.add(nn::Dense(2, 2));
  model.add("norm", Running());
  auto& norm = model.child<Running>("norm");
  norm.mean->value = {0.25f, -4.0f};
  norm.gain->value = {2.0f, 3.0f};
  CHECK(model.parameters().size() == 3);  // the Dense's two and gain
  const auto names = [](const std::vector<nn::NamedParameter>& ps) {
    std::vector<std::string> out;
    for (const auto& p : ps) out.push_back(p.name);
    return out;
  };
  CHECK(names(model.named_buffers()) == std::vector<std::string>{"norm.moving_mean"});
  CHECK(names(model.named_state()) ==
        std::vector<std::string>{"0.weight", "0.bias", "norm.gain", "norm.moving_mean"});
  nn::save_weights(model, dir / "w.safetensors");
  nn::Sequential again;
  again.add(nn::Dense(2, 2, nn::Activation::Linear, {.seed = 4}));
  again.add("norm", Running());
  nn::load_weights(again, dir / "w.safetensors");
  CHECK(again.child<Running>("norm").mean->value == std::vector<float>{0.25f, -4.0f});
  CHECK(parameter_bits(again) == parameter_bits(model));
  // A file without the buffer does not fit.
  nn::Sequential plain;
  plain.add(nn::Dense(2, 2));
  nn::save_weights(plain, dir / "plain.safetensors");
  CHECK_THROWS_WITH_AS(nn::load_weights(again, dir / "plain.safetensors"),
                       doctest::Contains("missing tensor \"norm.gain\"; missing tensor "
                                         "\"norm.moving_mean\""),
                       nn::DataError);
}

TEST_CASE("hostile JSON: nesting is refused before anything recurses over it") {
  testing::TempDir dir;
  CHECK(nn::json_nesting(R"({"a":[1,{"b":"[[[[[["}],"c":"\"{"})", 100) == 3);
  CHECK(nn::json_nesting(std::string(1000, '['), 10) == 11);  // stops counting past the limit
  // A header of 100,000 nested arrays in a shape.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string header = R"({"w":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[std::size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  CHECK_THROWS_WITH_AS(nn::parse_safetensors(bytes + header, "deep"),
                       "deep: the header nests arrays or objects more than 8 deep", nn::DataError);
  // An architecture string nested as deep.
  nn::TensorFile file;
  file.metadata = {{"format", "autodiff"}, {"format_version", "1"}, {"architecture", deep}};
  nn::write_safetensors(dir / "a.safetensors", file);
  CHECK_THROWS_WITH_AS(
      nn::load_model(dir / "a.safetensors"),
      doctest::Contains("the metadata's \"architecture\" nests more than 512 deep"), nn::DataError);
}
