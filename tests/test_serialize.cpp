// Weights in safetensors files (nn/serialize.hpp): bit-exact round trips, models that do not fit
// the file, and a corruption walk over a small file (every load succeeds with consistent data or
// throws DataError, and a failed load leaves the model as it was).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

using autodiff::Tensor;

namespace {

struct Block : nn::Module {
  nn::Dense* inner;
  nn::Parameter* scale;
  explicit Block(std::int64_t n, std::uint64_t seed = 1)
      : inner(&register_module("inner", nn::Dense(n, n, nn::Activation::Relu, {.seed = seed}))),
        scale(&register_parameter("scale", {1, n})) {
    for (std::size_t i = 0; i < scale->value.size(); ++i)
      scale->value[i] = 0.5f + static_cast<float>(i) * static_cast<float>(seed);
  }
  Tensor<float> forward(const Tensor<float>& x) override { return (*inner)(x)*scale->on_tape(); }
  std::string describe() const override { return "Block"; }
};

nn::Sequential two_dense(std::uint64_t seed) {
  nn::Sequential model;
  model.add(nn::Dense(3, 4, nn::Activation::Relu, {.seed = seed}));
  model.add(nn::Dense(4, 2, nn::Activation::Linear, {.seed = seed + 7}));
  // Non-zero biases, so that every byte of the file matters.
  for (nn::Parameter* p : model.parameters())
    for (std::size_t i = 0; i < p->value.size(); ++i)
      if (p->shape.rank() == 1)
        p->value[i] = static_cast<float>(seed) * 0.25f + static_cast<float>(i);
  return model;
}

// The parameters' bit patterns, in order.
std::vector<std::uint32_t> bits_of(nn::Module& m) {
  std::vector<std::uint32_t> bits;
  for (nn::Parameter* p : m.parameters())
    for (float v : p->value) bits.push_back(std::bit_cast<std::uint32_t>(v));
  return bits;
}

void fill(nn::Module& m, float value) {
  for (nn::Parameter* p : m.parameters()) std::fill(p->value.begin(), p->value.end(), value);
}

std::uint64_t header_length(const std::string& bytes) {
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  return n;
}

}  // namespace

TEST_CASE("save_weights then load_weights gives the same parameters, bit for bit") {
  testing::TempDir dir;
  SUBCASE("Sequential(Dense, Dense)") {
    nn::Sequential saved = two_dense(1);
    saved.parameters()[0]->value[1] = -0.0f;  // signs of zeros, NaNs and infinities survive
    saved.parameters()[0]->value[2] = std::bit_cast<float>(0x7fc01234u);
    saved.parameters()[0]->value[3] = -std::numeric_limits<float>::infinity();
    nn::save_weights(saved, dir / "w.safetensors");
    nn::Sequential loaded = two_dense(2);
    CHECK(bits_of(loaded) != bits_of(saved));
    nn::load_weights(loaded, dir / "w.safetensors");
    CHECK(bits_of(loaded) == bits_of(saved));
    // The format: header length, JSON header padded to a multiple of 8, 26 floats of data.
    const std::string bytes = testing::read_text(dir / "w.safetensors");
    const std::uint64_t n = header_length(bytes);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 26 * 4);
    const std::string header = bytes.substr(8, n);
    CHECK(header.starts_with(
        R"({"__metadata__":{"format":"autodiff","format_version":"1","content":"weights"},"0.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"0.bias":)"));
    CHECK(dir.listing() == std::set<std::string>{"w.safetensors"});
  }
  SUBCASE("a user-defined module") {
    nn::Sequential saved;
    saved.add("block", Block(3, 1));
    saved.add(nn::Dense(3, 2));
    nn::save_weights(saved, dir / "block.safetensors");
    nn::Sequential loaded;
    loaded.add("block", Block(3, 5));
    loaded.add(nn::Dense(3, 2, nn::Activation::Linear, {.seed = 9}));
    CHECK(bits_of(loaded) != bits_of(saved));
    nn::load_weights(loaded, dir / "block.safetensors");
    CHECK(bits_of(loaded) == bits_of(saved));
  }
}

TEST_CASE("load_weights names every tensor that does not fit the model, and changes nothing") {
  testing::TempDir dir;
  const std::string path = dir / "w.safetensors";
  nn::Sequential saved = two_dense(1);
  nn::save_weights(saved, path);

  SUBCASE("a parameter the file does not have") {
    nn::Sequential model = two_dense(3);
    model.add(nn::Dense(2, 5));
    const auto before = bits_of(model);
    CHECK_THROWS_WITH_AS(nn::load_weights(model, path),
                         (path + ": the weights do not fit the model: missing tensor \"2.weight\"; "
                                 "missing tensor \"2.bias\"")
                             .c_str(),
                         nn::DataError);
    CHECK(bits_of(model) == before);
  }
  SUBCASE("a tensor the model does not have") {
    nn::Sequential model;
    model.add(nn::Dense(3, 4, nn::Activation::Relu, {.seed = 3}));
    const auto before = bits_of(model);
    CHECK_THROWS_WITH_AS(
        nn::load_weights(model, path),
        (path + ": the weights do not fit the model: extra tensor \"1.weight\" (not "
                "a parameter of the model); extra tensor \"1.bias\" (not a "
                "parameter of the model)")
            .c_str(),
        nn::DataError);
    CHECK(bits_of(model) == before);
  }
  SUBCASE("a parameter of another shape") {
    nn::Sequential model;
    model.add(nn::Dense(3, 4, nn::Activation::Relu, {.seed = 3}));
    model.add(nn::Dense(4, 3));
    const auto before = bits_of(model);
    CHECK_THROWS_WITH_AS(
        nn::load_weights(model, path),
        (path + ": the weights do not fit the model: tensor \"1.weight\" has shape "
                "(4, 2), the model's is (4, 3); tensor \"1.bias\" has shape (2), the "
                "model's is (3)")
            .c_str(),
        nn::DataError);
    CHECK(bits_of(model) == before);
  }
  SUBCASE("no file, a directory, an unsupported dtype") {
    nn::Sequential model = two_dense(3);
    const auto before = bits_of(model);
    CHECK_THROWS_AS(nn::load_weights(model, dir / "nope"), nn::DataError);
    CHECK_THROWS_AS(nn::load_weights(model, dir.path().string()), nn::DataError);
    std::string bytes = testing::read_text(path);
    const std::size_t at = bytes.find("\"F32\"", 8);
    REQUIRE(at != std::string::npos);
    bytes.replace(at, 5, "\"F16\"");
    testing::write_text(dir / "f16.safetensors", bytes);
    CHECK_THROWS_WITH_AS(nn::load_weights(model, dir / "f16.safetensors"),
                         (dir / "f16.safetensors" +
                          ": tensor \"0.weight\": dtype \"F16\" is not supported (F32, F64 or I64)")
                             .c_str(),
                         nn::DataError);
    CHECK(bits_of(model) == before);
  }
  SUBCASE("a name twice, a gap, an overlap") {
    nn::Sequential model;
    model.add(nn::Dense(1, 1));
    auto file = [&](const std::string& header, std::size_t data_bytes) {
      std::string bytes(8, '\0');
      bytes[0] = static_cast<char>(header.size());
      return bytes + header + std::string(data_bytes, '\x01');
    };
    const std::string w = R"("0.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]})";
    const std::string b = R"("0.bias":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})";
    testing::write_text(dir / "ok", file("{" + w + "," + b + "}", 8));
    nn::load_weights(model, dir / "ok");
    CHECK(model.parameters()[1]->value[0] == std::bit_cast<float>(0x01010101u));
    const auto loaded = bits_of(model);
    testing::write_text(dir / "twice", file("{" + w + "," + b + "," + w + "}", 8));
    CHECK_THROWS_WITH_AS(
        nn::load_weights(model, dir / "twice"),
        (dir / "twice" + ": tensor \"0.weight\" appears twice in the header").c_str(),
        nn::DataError);
    testing::write_text(dir / "gap", file("{" + w + "," + b + "}", 12));
    CHECK_THROWS_WITH_AS(
        nn::load_weights(model, dir / "gap"),
        (dir / "gap" + ": the tensors cover 8 bytes of a data section of 12").c_str(),
        nn::DataError);
    std::string overlap = b;
    overlap.replace(overlap.find("[4,8]"), 5, "[3,7]");
    testing::write_text(dir / "overlap", file("{" + w + "," + overlap + "}", 8));
    CHECK_THROWS_WITH_AS(
        nn::load_weights(model, dir / "overlap"),
        (dir / "overlap" +
         ": tensor \"0.bias\" starts at byte 3 of the data section, not at 4: an overlap")
            .c_str(),
        nn::DataError);
    CHECK(bits_of(model) == loaded);
  }
}

TEST_CASE("a corrupted weights file loads consistent data or throws DataError, never worse") {
  testing::TempDir dir;
  nn::Sequential saved = two_dense(1);
  const std::string good_path = dir / "good.safetensors";
  nn::save_weights(saved, good_path);
  const std::string good = testing::read_text(good_path);
  const std::vector<std::uint32_t> saved_bits = bits_of(saved);
  const std::size_t data_start = 8 + header_length(good);
  const std::string path = dir / "bad.safetensors";
  nn::Sequential model = two_dense(1);
  fill(model, 42.0f);
  const std::vector<std::uint32_t> sentinel = bits_of(model);

  int malformed = 0;
  int accepted = 0;
  // Loads `bytes`: either a DataError and the model untouched, or the values `expected`.
  auto load = [&](const std::string& bytes, const std::vector<std::uint32_t>& expected) {
    testing::write_text(path, bytes);
    fill(model, 42.0f);
    try {
      nn::load_weights(model, path);
      ++accepted;
      CHECK(bits_of(model) == expected);
    } catch (const nn::DataError&) {
      ++malformed;
      CHECK(bits_of(model) == sentinel);
    }
  };

  // Every byte of the length and the header: flipped, 0x00, 0xff, '{'.
  for (std::size_t i = 0; i < data_start; ++i) {
    for (const int change : {-1, 0x00, 0xff, int{'{'}}) {
      std::string bytes = good;
      const auto old = static_cast<unsigned char>(bytes[i]);
      const unsigned char now =
          change < 0 ? static_cast<unsigned char>(old ^ 0x01) : static_cast<unsigned char>(change);
      if (now == old) continue;
      bytes[i] = static_cast<char>(now);
      load(bytes, saved_bits);
    }
  }
  const int header_accepted = accepted;
  // Every truncation: each one must be refused.
  for (std::size_t n = 0; n < good.size(); ++n) {
    const int before = malformed;
    load(good.substr(0, n), saved_bits);
    CHECK_MESSAGE(malformed == before + 1, "truncated to " << n << " bytes");
  }
  // Data bytes: the file still loads, with the changed value.
  for (std::size_t i = data_start; i < good.size(); i += 3) {
    std::string bytes = good;
    bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
    std::vector<std::uint32_t> expected = saved_bits;
    const std::size_t k = (i - data_start) / 4;
    expected[k] ^= std::uint32_t{0x5a} << (8 * ((i - data_start) % 4));
    const int before = accepted;
    load(bytes, expected);
    CHECK(accepted == before + 1);
  }
  // A header length past the file, or past the limit; a file of a huge shape.
  for (const std::uint64_t n :
       {std::uint64_t{1} << 40, std::uint64_t{UINT64_MAX}, good.size() - 7}) {
    std::string bytes = good;
    for (int b = 0; b < 8; ++b)
      bytes[static_cast<std::size_t>(b)] = static_cast<char>((n >> (8 * b)) & 0xff);
    const int before = malformed;
    load(bytes, saved_bits);
    CHECK(malformed == before + 1);
  }
  MESSAGE("weights corruption walk: " << malformed << " malformed inputs refused, " << accepted
                                      << " accepted (" << header_accepted
                                      << " of them with a changed header)");
  CHECK(malformed > 1000);
  CHECK(header_accepted > 0);  // padding and metadata bytes change nothing that matters
}
