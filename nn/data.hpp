#pragma once
// Data: the IDX format of MNIST (raw or gzip-compressed) and a labelled image dataset whose
// images stay as bytes and are normalised to [0, 1] one batch at a time.

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"

namespace nn {

/// A file that is missing, unreadable, or not what it should be. The message names the file,
/// and where it applies the byte offset, what was expected and what was found.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An IDX array of unsigned bytes: dims (e.g. {60000, 28, 28}) and the values, row-major.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file of unsigned bytes, raw or .gz. Checks the magic number (0x0000080N: type
/// 0x08, N dimensions), that `expected_rank` dimensions are present when it is > 0, and that the
/// data is exactly as long as the dimensions say (no truncation, no trailing bytes).
IdxArray read_idx(const std::string& path, int expected_rank = 0);

/// Labelled images: count × features bytes, and count labels in [0, classes).
class Dataset {
 public:
  Dataset() = default;
  /// Throws std::invalid_argument if the sizes disagree or a label is out of range.
  Dataset(std::vector<std::uint8_t> images, std::vector<std::int32_t> labels, std::int64_t features,
          std::int64_t classes);

  std::int64_t size() const { return static_cast<std::int64_t>(labels_.size()); }
  std::int64_t features() const { return features_; }
  std::int64_t classes() const { return classes_; }
  std::span<const std::uint8_t> images() const { return images_; }
  std::span<const std::int32_t> labels() const { return labels_; }

  /// Rows [begin, end) as a new Dataset (copies).
  Dataset slice(std::int64_t begin, std::int64_t end) const;
  /// The images at `rows`, scaled to [0, 1], as a (rows, features) constant on the active tape.
  autodiff::Tensor<float> batch(std::span<const std::int64_t> rows) const;
  /// Their labels, in the same order, written into `out` (resized).
  void batch_labels(std::span<const std::int64_t> rows, std::vector<std::int32_t>& out) const;

 private:
  std::vector<std::uint8_t> images_;
  std::vector<std::int32_t> labels_;
  std::int64_t features_ = 0, classes_ = 0;
};

/// `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` in `directory`
/// (prefix "train" or "t10k"), checked against each other: same count, labels 0–9.
Dataset load_mnist(const std::string& directory, const std::string& prefix);

}  // namespace nn
