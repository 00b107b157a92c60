// Data-parallel training without MPI: Model::distribute with an in-memory communicator. The
// buckets' order and timing in the reverse sweep, a parameter used twice, the shares of a batch,
// one rank giving the single process's parameters bit for bit, ranks that disagree, Dropout's masks
// on a share of a batch, and BatchNormalization's moving statistics averaged. The runs
// on several processes are the distributed_* tests (distributed_mlp.cpp, under mpirun).
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nn/model.hpp"

namespace {

using autodiff::Tensor;

// One rank of `size`, alone: its sums are its own values. It records what it is asked to send.
class FakeRanks : public nn::Communicator {
 public:
  explicit FakeRanks(int rank = 0, int size = 1) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void broadcast(std::span<std::byte> bytes) override {
    if (on_broadcast) on_broadcast(bytes);
  }
  void sum(std::span<double> values) override {
    if (on_sum) on_sum(values);
  }
  void start_sum(std::span<float> values) override {
    sent.emplace_back(values.begin(), values.end());
    if (on_start) on_start();
  }
  void wait_all() override { ++waits; }

  std::function<void(std::span<std::byte>)> on_broadcast;
  std::function<void()> on_start;
  std::function<void(std::span<double>)> on_sum;  // plays the other ranks' part of a sum
  std::vector<std::vector<float>> sent;
  int waits = 0;

 protected:
  void end_job(const std::string& message) override { throw std::runtime_error(message); }

 private:
  int rank_, size_;
};

nn::TensorData blobs(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(std::size_t(n * 4)), y(std::size_t(n * 3), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = std::size_t(i % 3);
    for (std::size_t k = 0; k < 4; ++k) x[std::size_t(i) * 4 + k] = normal(rng) + float(label == k);
    y[std::size_t(i) * 3 + label] = 1.0f;
  }
  return nn::TensorData(std::move(x), {n, 4}, std::move(y), {n, 3});
}

nn::Model small_model() {
  nn::Sequential network;
  network.add(nn::Dense(4, 8, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dense(8, 3, nn::Activation::Softmax, {.seed = 2}));
  return nn::Model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
}

double abs_sum(const std::vector<float>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0,
                         [](double s, float x) { return s + std::fabs(x); });
}

std::vector<std::int64_t> iota_rows(std::int64_t n) {
  std::vector<std::int64_t> rows(std::size_t(n), 0);
  std::iota(rows.begin(), rows.end(), 0);
  return rows;
}

}  // namespace

TEST_CASE(
    "data-parallel: buckets in reverse registration order, each started as the sweep "
    "completes it") {
  const nn::TensorData data = blobs(12, 1);
  nn::Model model = small_model();
  FakeRanks ranks;
  model.distribute(&ranks, {.bucket_bytes = 1});  // one parameter per bucket
  auto params = model.network().named_parameters();
  std::vector<double> first_layer_grad_when_sent;
  ranks.on_start = [&] {
    first_layer_grad_when_sent.push_back(abs_sum(params[0].parameter->grad));
  };
  const auto rows = iota_rows(12);
  model.train_step(data, rows);
  // 1.bias (3), 1.weight (24), 0.bias (8), 0.weight (32): the order the sweep completes them.
  REQUIRE(ranks.sent.size() == 4);
  CHECK(ranks.sent[0].size() == 3);
  CHECK(ranks.sent[1].size() == 24);
  CHECK(ranks.sent[2].size() == 8);
  CHECK(ranks.sent[3].size() == 32);
  CHECK(ranks.waits == 1);
  // Sent during the sweep: the second layer's buckets before the first layer's weight gradient
  // was there (the first layer's bias, recorded before its matmul, completes after it).
  REQUIRE(first_layer_grad_when_sent.size() == 4);
  CHECK(first_layer_grad_when_sent[0] == 0.0);
  CHECK(first_layer_grad_when_sent[1] == 0.0);
  CHECK(first_layer_grad_when_sent[3] > 0.0);

  // One large bucket: sent whole, after the sweep; and without overlap, likewise.
  for (const nn::DistributedOptions options :
       {nn::DistributedOptions{.bucket_bytes = 1 << 20}, {.bucket_bytes = 1, .overlap = false}}) {
    ranks.sent.clear();
    first_layer_grad_when_sent.clear();
    model.distribute(&ranks, options);
    model.train_step(data, rows);
    const std::size_t buckets = options.overlap ? 1 : 4;
    CHECK(ranks.sent.size() == buckets);
    CHECK(first_layer_grad_when_sent.front() > 0.0);
  }
  model.distribute(nullptr);
  for (const auto& p : model.network().named_parameters()) CHECK(p.parameter->watch == nullptr);
}

namespace {

// The same Dense applied twice: its parameters are on the tape twice per step.
class Twice : public nn::Module {
 public:
  Twice() : dense_(&register_module("dense", nn::Dense(4, 4, nn::Activation::Tanh, {.seed = 3}))) {}
  Tensor<float> forward(const Tensor<float>& x) override { return (*dense_)((*dense_)(x)); }

 private:
  nn::Dense* dense_;
};
}  // namespace

TEST_CASE("data-parallel: shard_of splits rows into contiguous shares, larger ones first") {
  // 10 rows [3, 13) on 4 ranks: 3, 3, 2, 2.
  const std::pair<std::int64_t, std::int64_t> expected[] = {{3, 6}, {6, 9}, {9, 11}, {11, 13}};
  for (int r = 0; r < 4; ++r) CHECK(nn::shard_of(3, 13, FakeRanks(r, 4)) == expected[r]);
  // Fewer rows than ranks: the last ranks get none.
  CHECK(nn::shard_of(0, 2, FakeRanks(1, 3)) == std::pair<std::int64_t, std::int64_t>{1, 2});
  CHECK(nn::shard_of(0, 2, FakeRanks(2, 3)) == std::pair<std::int64_t, std::int64_t>{2, 2});
}

TEST_CASE("data-parallel: a parameter used twice is sent once, after both uses are swept") {
  std::vector<float> x(8 * 4), y(8 * 4);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = std::sin(float(i));
    y[i] = std::cos(float(i));
  }
  const nn::TensorData data(x, {8, 4}, y, {8, 4});
  const auto rows = iota_rows(8);
  nn::Model plain(Twice(), nn::mean_squared_error, std::make_unique<nn::SGD>(), {});
  nn::Model distributed(Twice(), nn::mean_squared_error, std::make_unique<nn::SGD>(), {});
  FakeRanks ranks;
  distributed.distribute(&ranks, {.bucket_bytes = 1});
  // The complete gradient, from the plain model before its update.
  autodiff::Tape::active().clear();
  const Tensor<float> loss =
      nn::mean_squared_error(data.targets(rows), plain.network()(data.features(rows)));
  loss.backward();
  const auto complete = plain.network().named_parameters();
  distributed.train_step(data, rows);
  REQUIRE(ranks.sent.size() == 2);
  CHECK(ranks.sent[0] == complete[1].parameter->grad);  // dense.bias
  CHECK(ranks.sent[1] == complete[0].parameter->grad);  // dense.weight
}

TEST_CASE("data-parallel: each rank trains on its share of the global batch") {
  // Rows 0…9 over 3 ranks: 4, 3, 3. Rank 1 gets rows 4, 5, 6 and weighs its gradient by 3/10.
  const nn::TensorData data = blobs(10, 2);
  const auto rows = iota_rows(10);
  nn::Model alone = small_model();
  autodiff::Tape::active().clear();
  const std::vector<std::int64_t> share = {4, 5, 6};
  nn::categorical_crossentropy(data.targets(share), alone.network()(data.features(share)))
      .backward();
  nn::Model rank1 = small_model();
  FakeRanks ranks(1, 3);
  rank1.distribute(&ranks, {.bucket_bytes = 1 << 20});
  rank1.train_step(data, rows);
  REQUIRE(ranks.sent.size() == 1);
  std::vector<float> expected;
  const auto parameters = alone.network().named_parameters();
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it)
    for (float g : it->parameter->grad) expected.push_back(0.3f * g);
  REQUIRE(ranks.sent[0].size() == expected.size());
  for (std::size_t k = 0; k < expected.size(); ++k)
    CHECK(ranks.sent[0][k] == doctest::Approx(expected[k]).epsilon(1e-6));
}

TEST_CASE("data-parallel: one rank trains exactly as a single process, bit for bit") {
  const nn::TensorData data = blobs(50, 3);
  nn::Model plain = small_model(), distributed = small_model();
  FakeRanks ranks;
  distributed.distribute(&ranks, {.bucket_bytes = 64});
  const nn::FitOptions options{
      .batch_size = 8, .epochs = 3, .validation_split = 0.2, .seed = 5, .verbose = 0};
  const nn::History a = plain.fit(data, options);
  const nn::History b = distributed.fit(data, options);
  const auto pa = plain.network().named_parameters(), pb = distributed.network().named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i)
    CHECK(pa[i].parameter->value == pb[i].parameter->value);
  REQUIRE(b.epochs.size() == 3);
  for (const char* name : {"loss", "accuracy", "val_loss", "val_accuracy"})
    CHECK(b.epochs.back()[name] == doctest::Approx(a.epochs.back()[name]).epsilon(1e-6));
}

TEST_CASE("data-parallel: ranks that disagree end the job, saying how") {
  const nn::TensorData data = blobs(20, 4);
  nn::Model model = small_model();
  FakeRanks ranks(1, 2);
  // Rank 0 asked for batch 64: the second number fit sends.
  ranks.on_broadcast = [](std::span<std::byte> bytes) {
    if (bytes.size() < 2 * sizeof(double)) return;
    const double batch = 64;
    std::memcpy(bytes.data() + sizeof(double), &batch, sizeof batch);
  };
  model.distribute(&ranks);
  CHECK_THROWS_WITH(model.fit(data, {.batch_size = 32, .verbose = 0}),
                    doctest::Contains("batch_size is 32 here, 64 on rank 0"));
  // A throw in a step on one rank ends the job too, with its message.
  ranks.on_broadcast = nullptr;
  CHECK_THROWS_WITH(model.train_step(data, std::vector<std::int64_t>{}),
                    doctest::Contains("train_step: no rows"));
}

namespace {
// Rows [first, last) of a (rows, …) tensor's values, on the active tape.
Tensor<float> rows_of(const Tensor<float>& x, std::int64_t first, std::int64_t last) {
  const std::vector<float> all = x.to_vector();
  const std::int64_t width = x.size() / x.shape()[0];
  std::vector<std::int64_t> dims(x.shape().dims().begin(), x.shape().dims().end());
  dims[0] = last - first;
  const std::vector<float> rows(all.begin() + first * width, all.begin() + last * width);
  return Tensor<float>::from(rows, autodiff::Shape(dims));
}
}  // namespace

TEST_CASE("data-parallel: a share of a batch gets the dropout masks one process draws for it") {
  std::vector<float> values(6 * 5 * 2);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + float(i);
  const Tensor<float> x = Tensor<float>::from(values, {6, 5, 2});
  // The op: rows 3…5 drawn as rows 3…5 of the whole, forward and backward.
  const std::vector<float> whole = autodiff::dropout(x, 0.5, 9).to_vector();
  const std::vector<float> tail(whole.begin() + 30, whole.end());
  const Tensor<float> part = rows_of(x, 3, 6).requires_grad();
  const Tensor<float> dropped = autodiff::dropout(part, 0.5, 9, 3);
  CHECK(dropped.to_vector() == tail);
  CHECK(autodiff::dropout(part, 0.5, 9).to_vector() != tail);  // as rows 0…2: other masks
  autodiff::sum(dropped).backward();
  const std::vector<float> grad = part.grad();
  for (std::size_t i = 0; i < grad.size(); ++i) CHECK(grad[i] == (tail[i] != 0.0f ? 2.0f : 0.0f));
  CHECK_THROWS_WITH_AS(autodiff::dropout(x, 0.5, 9, -1), "dropout: first_row -1, expected ≥ 0",
                       std::invalid_argument);

  // The layer: a fresh mask per call; a rank with no rows in a step skips that step's call.
  nn::Dropout alone(0.5, {.seed = 4}), rank1(0.5, {.seed = 4});
  std::vector<std::vector<float>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(alone(x).to_vector());
  rank1.set_batch_share({.first_row = 3});
  CHECK(rank1(rows_of(x, 3, 6)).to_vector() ==
        std::vector<float>(calls[0].begin() + 30, calls[0].end()));
  rank1.set_batch_share({.first_row = 6, .empty = true});  // step 2: no rows here
  rank1.set_batch_share({.first_row = 2});
  CHECK(rank1(rows_of(x, 2, 4)).to_vector() ==
        std::vector<float>(calls[2].begin() + 20, calls[2].begin() + 40));
  rank1.set_batch_share({});
  CHECK(rank1(x).to_vector() == alone(x).to_vector());  // call 4 of each, the whole batch
}

TEST_CASE("data-parallel: BatchNormalization's moving statistics end the same on every rank") {
  const nn::TensorData data = blobs(16, 6);
  nn::Sequential network;
  network.add(nn::Dense(4, 8, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::BatchNormalization(8));
  network.add(nn::Dense(8, 3, nn::Activation::Softmax, {.seed = 2}));
  nn::Model model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  FakeRanks ranks(0, 2);
  model.distribute(&ranks);
  model.train_step(data, iota_rows(16));
  const auto buffers = model.network().named_buffers();
  REQUIRE(buffers.size() == 2);
  std::vector<float> mine;
  for (const auto& b : buffers)
    mine.insert(mine.end(), b.parameter->value.begin(), b.parameter->value.end());
  // The other rank's statistics: rank 0's plus 1 everywhere. evaluate averages them first.
  bool first_sum = true;
  ranks.on_sum = [&](std::span<double> values) {
    if (!first_sum) return;  // then evaluate's loss and accuracy: this rank's alone
    first_sum = false;
    REQUIRE(values.size() == mine.size());
    for (std::size_t k = 0; k < values.size(); ++k) {
      CHECK(values[k] == double(mine[k]));
      values[k] += double(mine[k]) + 1.0;
    }
  };
  model.evaluate(data);
  CHECK_FALSE(first_sum);
  std::size_t k = 0;
  for (const auto& b : buffers)
    for (float v : b.parameter->value) CHECK(v == float((2.0 * double(mine[k++]) + 1.0) / 2.0));
  model.distribute(nullptr);
}

TEST_CASE("data-parallel: fit starts from rank 0's counters (Dropout's call number)") {
  const nn::TensorData data = blobs(24, 7);
  nn::Sequential network;
  network.add(nn::Dense(4, 8, nn::Activation::Relu, {.seed = 1}));
  network.add(nn::Dropout(0.25));
  network.add(nn::Dense(8, 3, nn::Activation::Softmax, {.seed = 2}));
  nn::Model model(std::move(network), nn::categorical_crossentropy, std::make_unique<nn::Adam>());
  FakeRanks ranks(1, 2);
  ranks.on_broadcast = [](std::span<std::byte> bytes) {  // only the counter has 8 bytes
    if (bytes.size() != sizeof(std::uint64_t)) return;
    const std::uint64_t rank0 = 41;
    std::memcpy(bytes.data(), &rank0, sizeof rank0);
  };
  model.distribute(&ranks);
  model.fit(data, {.batch_size = 8, .epochs = 1, .verbose = 0});
  const auto counters = model.network().named_counters();
  REQUIRE(counters.size() == 1);
  CHECK(*counters[0].second == 41 + 3);  // then 3 steps
  model.distribute(nullptr);
}
