#pragma once
// The safetensors container (github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON naming each tensor's dtype, shape and byte range (and an optional
// "__metadata__" object of strings), then the raw little-endian values. Weights, whole models and
// checkpoints (serialize.hpp) are all such files; this layer only reads and writes them.
//
//   nn::TensorFile file;
//   file.metadata.emplace_back("note", "anything");
//   file.add("x", std::vector<double>{1, 2, 3}, {3});
//   nn::write_safetensors("x.safetensors", file);           // whole or not at all
//   nn::TensorFile back = nn::read_safetensors("x.safetensors");
//   std::vector<double> x = back.at("x").values<double>();  // bit for bit

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nn {

/// The largest header accepted (as the safetensors library does: 100 MB).
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

enum class Dtype { F32, F64, I64 };
/// "F32", "F64", "I64": the names safetensors uses.
const char* to_string(Dtype dtype);
std::size_t element_bytes(Dtype dtype);

template <class T>
constexpr Dtype dtype_of();
template <>
constexpr Dtype dtype_of<float>() {
  return Dtype::F32;
}
template <>
constexpr Dtype dtype_of<double>() {
  return Dtype::F64;
}
template <>
constexpr Dtype dtype_of<std::int64_t>() {
  return Dtype::I64;
}

struct StoredTensor {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;  // little-endian, as in the file

  std::int64_t element_count() const;
  /// The values; throws DataError naming the tensor unless it holds T's dtype.
  template <class T>
  std::vector<T> values() const;
};

struct TensorFile {
  /// "__metadata__": string keys to string values, in order.
  std::vector<std::pair<std::string, std::string>> metadata;
  /// In the order of their bytes in the file.
  std::vector<StoredTensor> tensors;
  /// Where the file came from, for messages ("model.safetensors").
  std::string source;

  /// Appends a tensor; throws std::invalid_argument if the name is taken or "__metadata__", or
  /// the shape does not hold values.size() elements.
  template <class T>
  void add(std::string name, const std::vector<T>& values, std::vector<std::int64_t> shape);
  const StoredTensor* find(std::string_view name) const;
  /// Throws DataError naming the file and the tensor when absent.
  const StoredTensor& at(std::string_view name) const;
  /// The metadata value, or nullptr.
  const std::string* find_metadata(std::string_view key) const;
  /// Throws DataError naming the file and the key when absent.
  const std::string& metadata_at(std::string_view key) const;
};

/// The file's bytes: header (padded with spaces to a multiple of 8, as the reference writer
/// does) and data, tensors in their order.
std::string encode_safetensors(const TensorFile& file);
/// Writes `file` to `path` atomically (write_file_atomically): whole or not at all.
void write_safetensors(const std::string& path, const TensorFile& file,
                       std::string_view what = "the tensors");

/// Parses a whole file held in memory. Everything is checked: the header length against the
/// bytes present (and kSafetensorsMaxHeaderBytes), the JSON, no duplicate names, each tensor's
/// dtype (F32, F64 or I64), shape (no overflow) and byte range (exactly shape × element size,
/// inside the data section), the ranges covering the data section in order with no gap or
/// overlap, and the metadata values being strings. Throws DataError: "<source>: what was
/// expected, what was found".
TensorFile parse_safetensors(std::string_view bytes, std::string source);
/// Reads `path` whole and parses it; throws DataError naming the file.
TensorFile read_safetensors(const std::string& path);

/// How deeply the arrays and objects of JSON `text` nest (strings skipped), counting no further
/// than `limit` + 1. Checked before parsing untrusted JSON: nlohmann parses any depth without
/// recursion, but dump() and comparisons recurse once per level.
std::size_t json_nesting(std::string_view text, std::size_t limit);
/// The deepest header parse_safetensors accepts: a valid one nests 3 deep.
inline constexpr std::size_t kSafetensorsMaxNesting = 8;

}  // namespace nn
