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

/// The most data read_idx accepts by default: 1 GiB (the largest MNIST file holds 47 MB; EMNIST's,
/// 550 MB). A header whose dimensions describe more is an error before anything is allocated.
inline constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 30;

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed (told apart by content, not by
/// name). Checks the magic number (0x0000080N: type 0x08, N dimensions), that `expected_rank`
/// dimensions are present when it is > 0, and that the data is exactly as long as the dimensions
/// say: no truncation, no trailing bytes, and for a .gz file no trailing garbage after the gzip
/// stream (further gzip members may follow, as `cat a.gz b.gz` makes) and a valid CRC.
///
/// Memory follows the bytes that are there, never the header alone. The dimensions' product is
/// checked for overflow and against `max_bytes`, the limit on the data (which also bounds how far
/// a compressed stream is ever inflated: to the header's size plus one byte). A raw file's size
/// must match the header before the data is allocated. A compressed file's data buffer starts at
/// 8 times the file's size (at least 4 KiB; so an honest file's data is allocated once), never
/// more than the header's size, and only doubles as decompressed bytes fill it: a header promising
/// more than the stream holds costs at most twice what it holds. Every failure is a DataError that
/// names the file, what was expected and what was found, with the byte offset where one applies;
/// never std::bad_alloc.
IdxArray read_idx(const std::string& path, int expected_rank = 0,
                  std::uint64_t max_bytes = kIdxMaxBytes);

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
/// (prefix "train" or "t10k"), checked against each other: same count, labels 0–9. Each file is
/// read by read_idx with `max_bytes`.
Dataset load_mnist(const std::string& directory, const std::string& prefix,
                   std::uint64_t max_bytes = kIdxMaxBytes);

}  // namespace nn
