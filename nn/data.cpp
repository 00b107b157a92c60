#include "nn/data.hpp"

#include <zlib.h>

#include <filesystem>
#include <memory>

#include <fmt/format.h>

namespace nn {
namespace {

// A gzip or raw file, read through zlib (gzread passes raw files through unchanged).
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path), file_(nullptr) {
    if (!std::filesystem::exists(path)) throw DataError(fmt::format("{}: no such file", path));
    if (!std::filesystem::is_regular_file(path))
      throw DataError(fmt::format("{}: not a regular file", path));
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw DataError(fmt::format("{}: cannot be opened", path));
    gzbuffer(file_, 1 << 16);
  }
  ~Reader() {
    if (file_) gzclose(file_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads up to `size` bytes; returns how many were read. Throws on a corrupt stream.
  std::size_t read(void* out, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 30));
      const int n = gzread(file_, static_cast<char*>(out) + done, chunk);
      if (n < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        throw DataError(
            fmt::format("{}: corrupt or truncated compressed data at byte {} of the "
                        "uncompressed stream ({})",
                        path_, offset_ + done, message));
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    offset_ += done;
    return done;
  }
  std::uint64_t offset() const { return offset_; }
  // A compressed stream that ends early reads as a short read; gzclose then reports it.
  void check_stream_end() {
    const int code = gzclose(file_);
    file_ = nullptr;
    if (code == Z_BUF_ERROR)
      throw DataError(
          fmt::format("{}: the compressed stream is truncated (it ends inside the gzip "
                      "data, after {} uncompressed bytes)",
                      path_, offset_));
    if (code != Z_OK) throw DataError(fmt::format("{}: error {} while closing", path_, code));
  }

 private:
  std::string path_;
  gzFile file_;
  std::uint64_t offset_ = 0;
};

std::uint32_t big_endian(const unsigned char* b) {
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
         b[3];
}

std::string find_file(const std::string& directory, const std::string& name) {
  const std::filesystem::path base(directory);
  for (const std::string& candidate : {name + ".gz", name})
    if (std::filesystem::exists(base / candidate)) return (base / candidate).string();
  throw DataError(fmt::format("{}: neither {} nor {}.gz is there", directory, name, name));
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
  Reader in(path);
  unsigned char header[4];
  if (in.read(header, 4) != 4)
    throw DataError(fmt::format("{}: too short for an IDX header: {} bytes, expected at least 4",
                                path, in.offset()));
  if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] == 0 || header[3] > 4)
    throw DataError(fmt::format(
        "{}: bad magic number 0x{:02x}{:02x}{:02x}{:02x} at byte 0: expected 0x0000080N (unsigned "
        "bytes, N = 1..4 dimensions), e.g. 0x00000803 (2051) for images, 0x00000801 (2049) for "
        "labels",
        path, header[0], header[1], header[2], header[3]));
  const int rank = header[3];
  if (expected_rank > 0 && rank != expected_rank)
    throw DataError(fmt::format("{}: {} dimensions (magic {}), expected {} (magic {})", path, rank,
                                0x800 + rank, expected_rank, 0x800 + expected_rank));
  IdxArray array;
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    unsigned char b[4];
    if (in.read(b, 4) != 4)
      throw DataError(fmt::format("{}: truncated header: dimension {} of {} is missing at byte {}",
                                  path, i + 1, rank, 4 + 4 * i));
    const std::uint32_t dim = big_endian(b);
    if (dim > (1u << 31))
      throw DataError(fmt::format("{}: dimension {} is {}, too large", path, i + 1, dim));
    array.dims.push_back(dim);
    count *= dim;
    if (count > (std::uint64_t{1} << 34))
      throw DataError(fmt::format("{}: the dimensions describe more than 16 GiB of data", path));
  }
  const std::uint64_t header_bytes = 4 + 4 * std::uint64_t(rank);
  array.data.resize(count);
  const std::size_t got = in.read(array.data.data(), count);
  if (got != count)
    throw DataError(fmt::format(
        "{}: truncated: the header promises {} bytes of data after byte {}, found {} (the file "
        "ends at byte {})",
        path, count, header_bytes, got, header_bytes + got));
  unsigned char extra;
  if (in.read(&extra, 1) != 0)
    throw DataError(
        fmt::format("{}: trailing data: the header promises {} bytes, but there are "
                    "more after byte {}",
                    path, header_bytes + count, header_bytes + count));
  in.check_stream_end();
  return array;
}

Dataset::Dataset(std::vector<std::uint8_t> images, std::vector<std::int32_t> labels,
                 std::int64_t features, std::int64_t classes)
    : images_(std::move(images)),
      labels_(std::move(labels)),
      features_(features),
      classes_(classes) {
  if (features <= 0 || classes <= 0)
    throw std::invalid_argument(
        fmt::format("Dataset: features = {}, classes = {}: both must be > 0", features, classes));
  if (static_cast<std::int64_t>(images_.size()) != size() * features)
    throw std::invalid_argument(
        fmt::format("Dataset: {} image bytes for {} labels of {} features: expected {}",
                    images_.size(), labels_.size(), features, size() * features));
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= classes)
      throw std::invalid_argument(
          fmt::format("Dataset: label {} at index {} is outside [0, {})", labels_[i], i, classes));
}

Dataset Dataset::slice(std::int64_t begin, std::int64_t end) const {
  if (begin < 0 || begin > end || end > size())
    throw std::invalid_argument(
        fmt::format("Dataset::slice: [{}, {}) of {} rows", begin, end, size()));
  return Dataset({images_.begin() + begin * features_, images_.begin() + end * features_},
                 {labels_.begin() + begin, labels_.begin() + end}, features_, classes_);
}

autodiff::Tensor<float> Dataset::batch(std::span<const std::int64_t> rows) const {
  const auto count = static_cast<std::int64_t>(rows.size());
  const auto tensor = autodiff::Tensor<float>::zeros({count, features_});
  float* out = tensor.mutable_data().data();
  constexpr float kScale = 1.0f / 255.0f;
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t row = rows[static_cast<std::size_t>(r)];
    if (row < 0 || row >= size())
      throw std::invalid_argument(fmt::format("Dataset::batch: row {} of {}", row, size()));
    const std::uint8_t* in = images_.data() + row * features_;
    for (std::int64_t j = 0; j < features_; ++j) out[r * features_ + j] = float(in[j]) * kScale;
  }
  return tensor;
}

void Dataset::batch_labels(std::span<const std::int64_t> rows,
                           std::vector<std::int32_t>& out) const {
  out.resize(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) out[r] = labels_[static_cast<std::size_t>(rows[r])];
}

Dataset load_mnist(const std::string& directory, const std::string& prefix) {
  const std::string images_path = find_file(directory, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(directory, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path, 3);
  IdxArray labels = read_idx(labels_path, 1);
  if (images.dims[0] != labels.dims[0])
    throw DataError(fmt::format("{} holds {} images but {} holds {} labels", images_path,
                                images.dims[0], labels_path, labels.dims[0]));
  std::vector<std::int32_t> label_values(labels.data.begin(), labels.data.end());
  for (std::size_t i = 0; i < label_values.size(); ++i)
    if (label_values[i] > 9)
      throw DataError(fmt::format("{}: label {} at byte {} is not a digit class 0-9", labels_path,
                                  label_values[i], 8 + i));
  return Dataset(std::move(images.data), std::move(label_values), images.dims[1] * images.dims[2],
                 10);
}

}  // namespace nn
