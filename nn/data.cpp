#include "nn/data.hpp"

#include <zlib.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>

#include <fmt/format.h>

#include "autodiff/parallel.hpp"

namespace nn {
namespace {

constexpr unsigned char kGzipMagic[2] = {0x1f, 0x8b};

// A file's content, as a stream of bytes: the file itself, or, when it starts with the gzip magic
// bytes (whatever its name), what its gzip members inflate to. Nothing here is sized by what the
// file claims: the compressed input goes through a buffer of 64 KiB (or the file's size, if
// less), and read() fills only what the caller hands it. A gzip stream must end cleanly (each
// member's CRC and length check out), and only further gzip members may follow one: anything else
// after it is an error, as trailing bytes are in a raw file.
class Input {
 public:
  explicit Input(const std::string& path) : path_(path) {
    std::error_code error;
    const auto status = std::filesystem::status(path, error);
    if (!std::filesystem::exists(status)) {
      if (error && error != std::errc::no_such_file_or_directory)
        throw DataError(fmt::format("{}: cannot be examined ({})", path, error.message()));
      throw DataError(fmt::format("{}: no such file", path));
    }
    if (!std::filesystem::is_regular_file(status))
      throw DataError(fmt::format("{}: not a regular file", path));
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_)
      throw DataError(fmt::format("{}: cannot be opened ({})", path, std::strerror(errno)));
    file_size_ = std::filesystem::file_size(path, error);
    if (error) throw DataError(fmt::format("{}: cannot read its size ({})", path, error.message()));
    unsigned char magic[2];
    const std::size_t n = std::fread(magic, 1, 2, file_);
    gzip_ = n == 2 && magic[0] == kGzipMagic[0] && magic[1] == kGzipMagic[1];
    if (!gzip_) {
      std::rewind(file_);
      return;
    }
    in_size_ = static_cast<std::size_t>(std::clamp<std::uint64_t>(file_size_, 2, kInputBuffer));
    in_.reset(new unsigned char[in_size_]);
    std::memcpy(in_.get(), magic, 2);
    file_read_ = 2;
    z_.next_in = in_.get();
    z_.avail_in = 2;
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK)  // 16: a gzip wrapper, not zlib's
      throw DataError(fmt::format("{}: cannot start decompressing ({})", path,
                                  z_.msg ? z_.msg : "out of memory"));
    inflating_ = true;
  }
  ~Input() {
    if (inflating_) inflateEnd(&z_);
    if (file_) std::fclose(file_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }
  // Bytes of content delivered so far (the offset of the next one).
  std::uint64_t offset() const { return offset_; }

  // Reads up to `size` bytes of content into `out`; fewer only at its end. Throws DataError on a
  // corrupt, truncated or trailing-garbage gzip stream, or a read error.
  std::size_t read(void* out, std::size_t size) {
    const std::size_t done = gzip_ ? inflate_into(static_cast<unsigned char*>(out), size)
                                   : std::fread(out, 1, size, file_);
    if (!gzip_ && done < size && std::ferror(file_))
      throw DataError(fmt::format("{}: read error at byte {} ({})", path_, offset_ + done,
                                  std::strerror(errno)));
    offset_ += done;
    return done;
  }

 private:
  static constexpr std::size_t kInputBuffer = 1 << 16;  // or the file's size, if less

  // The compressed bytes consumed so far: the offset in the file of the next one.
  std::uint64_t file_offset() const { return file_read_ - z_.avail_in; }

  // Tops up the compressed input (keeping what inflate has not used); false at the end of the file.
  bool refill() {
    if (z_.avail_in > 0) std::memmove(in_.get(), z_.next_in, z_.avail_in);
    z_.next_in = in_.get();
    const std::size_t n = std::fread(in_.get() + z_.avail_in, 1, in_size_ - z_.avail_in, file_);
    if (n == 0 && std::ferror(file_))
      throw DataError(
          fmt::format("{}: read error at byte {} ({})", path_, file_read_, std::strerror(errno)));
    file_read_ += n;
    z_.avail_in += static_cast<uInt>(n);
    return n > 0;
  }

  // After a gzip member's end: true if another member follows (and starts it), false at the end of
  // the file; anything else is trailing garbage.
  bool next_member() {
    while (z_.avail_in < 2 && refill()) {
    }
    if (z_.avail_in == 0) return false;
    if (z_.avail_in < 2 || z_.next_in[0] != kGzipMagic[0] || z_.next_in[1] != kGzipMagic[1])
      throw DataError(fmt::format(
          "{}: trailing garbage after the gzip stream: byte {} of the file is 0x{:02x}, expected "
          "the end of the file (at byte {}) or another gzip member (0x1f8b)",
          path_, file_offset(), z_.next_in[0], file_size_));
    if (inflateReset(&z_) != Z_OK)
      throw DataError(
          fmt::format("{}: cannot restart decompressing at byte {}", path_, file_offset()));
    member_ended_ = false;
    return true;
  }

  std::size_t inflate_into(unsigned char* out, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      if (member_ended_ && !next_member()) break;
      if (z_.avail_in == 0 && !refill())
        throw DataError(fmt::format(
            "{}: the compressed stream is truncated: the file ends at byte {}, inside the gzip "
            "data, after {} uncompressed bytes",
            path_, file_read_, offset_ + done));
      const uInt chunk = static_cast<uInt>(std::min<std::size_t>(size - done, 1u << 30));
      const uInt input = z_.avail_in;
      z_.next_out = out + done;
      z_.avail_out = chunk;
      const int code = inflate(&z_, Z_NO_FLUSH);
      done += chunk - z_.avail_out;
      if (code == Z_BUF_ERROR && z_.avail_in == input && z_.avail_out == chunk)
        throw DataError(fmt::format("{}: the decompression is stuck at byte {} of the file", path_,
                                    file_offset()));  // zlib says this cannot happen
      if (code == Z_STREAM_END) {
        member_ended_ = true;
      } else if (code == Z_MEM_ERROR) {
        throw DataError(fmt::format("{}: out of memory while decompressing", path_));
      } else if (code != Z_OK && code != Z_BUF_ERROR) {  // Z_BUF_ERROR: it needs more input
        throw DataError(fmt::format(
            "{}: corrupt compressed data near byte {} of the file, after {} uncompressed bytes "
            "({})",
            path_, file_offset(), offset_ + done, z_.msg ? z_.msg : "no message"));
      }
    }
    return done;
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  std::uint64_t file_size_ = 0;
  std::uint64_t offset_ = 0;
  bool gzip_ = false;
  // gzip only:
  z_stream z_{};
  bool inflating_ = false;
  bool member_ended_ = false;
  std::unique_ptr<unsigned char[]> in_;
  std::size_t in_size_ = 0;
  std::uint64_t file_read_ = 0;  // compressed bytes read from the file into in_
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

// A compressed file's data buffer starts at what its compressed bytes plausibly hold (8 times
// their number: gzip shrinks MNIST's files 2 to 5 times; at least 4 KiB), but never more than
// the header promises, and doubles only as decompressed bytes fill it. So an honest file's data
// is allocated once, at its exact size, and a header alone can never make the reader allocate
// more than 8 times the file's size.
constexpr std::uint64_t kFirstChunk = 1 << 12;
constexpr std::uint64_t kPlausibleRatio = 8;

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank, std::uint64_t max_bytes) {
  Input in(path);
  const char* where = in.gzip() ? " of the uncompressed stream" : "";
  unsigned char header[4];
  if (in.read(header, 4) != 4)
    throw DataError(fmt::format("{}: too short for an IDX header: {} bytes{}, expected at least 4",
                                path, in.offset(), where));
  if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] == 0 || header[3] > 4)
    throw DataError(fmt::format(
        "{}: bad magic number 0x{:02x}{:02x}{:02x}{:02x} at byte 0{}: expected 0x0000080N "
        "(unsigned bytes, N = 1..4 dimensions), e.g. 0x00000803 (2051) for images, 0x00000801 "
        "(2049) for labels",
        path, header[0], header[1], header[2], header[3], where));
  const int rank = header[3];
  if (expected_rank > 0 && rank != expected_rank)
    throw DataError(fmt::format("{}: {} dimensions (magic {}), expected {} (magic {})", path, rank,
                                0x800 + rank, expected_rank, 0x800 + expected_rank));
  IdxArray array;
  for (int i = 0; i < rank; ++i) {
    unsigned char b[4];
    if (in.read(b, 4) != 4)
      throw DataError(
          fmt::format("{}: truncated header: dimension {} of {} is missing at byte {}{}", path,
                      i + 1, rank, 4 + 4 * i, where));
    array.dims.push_back(big_endian(b));
  }
  const std::uint64_t header_bytes = 4 + 4 * std::uint64_t(rank);

  // The data's size: the product of the dimensions (0 if any is 0), checked for overflow and
  // against the cap before anything is allocated.
  std::uint64_t count = 1;
  bool overflow = false;
  if (std::find(array.dims.begin(), array.dims.end(), 0) != array.dims.end())
    count = 0;
  else
    for (std::int64_t d : array.dims)
      overflow = overflow || __builtin_mul_overflow(count, std::uint64_t(d), &count);
  if (overflow || count > max_bytes) {
    std::string dims;
    for (std::int64_t d : array.dims) dims += fmt::format("{}{}", dims.empty() ? "" : " x ", d);
    throw DataError(fmt::format(
        "{}: the header's dimensions {} describe {} bytes of data, more than the limit of {} "
        "bytes (read_idx's max_bytes; nn::kIdxMaxBytes by default)",
        path, dims, overflow ? std::string("over 2^64") : std::to_string(count), max_bytes));
  }
  std::uint64_t expected_size = 0;
  if (__builtin_add_overflow(header_bytes, count, &expected_size))
    throw DataError(fmt::format("{}: the header describes more than 2^64 bytes", path));
  const auto truncated = [&](std::uint64_t found) {
    return DataError(fmt::format(
        "{}: truncated: the header promises {} bytes of data after byte {}, found {} (the {} "
        "ends at byte {})",
        path, count, header_bytes, found, in.gzip() ? "uncompressed stream" : "file",
        header_bytes + found));
  };
  const auto trailing = [&]() {
    return DataError(fmt::format(
        "{}: trailing data: the header promises {} bytes, but there are more after byte {}{}{}",
        path, expected_size, expected_size, where,
        in.gzip() ? "" : fmt::format(" (the file has {} bytes)", in.file_size())));
  };
  // A raw file's size is known: it must be exactly what the header says, before any allocation.
  if (!in.gzip() && in.file_size() < expected_size) throw truncated(in.file_size() - header_bytes);
  if (!in.gzip() && in.file_size() > expected_size) throw trailing();

  try {
    std::uint64_t filled = 0;
    while (filled < count) {
      if (filled == array.data.size()) {
        // Raw: all of it at once (the file holds it). Gzip: see kPlausibleRatio.
        std::uint64_t next = count;
        if (in.gzip()) {
          std::uint64_t plausible = 0;  // only for the first buffer
          if (filled == 0 && __builtin_mul_overflow(kPlausibleRatio, in.file_size(), &plausible))
            plausible = count;  // a file of over 2^61 bytes
          next = std::min(count, std::max({kFirstChunk, 2 * filled, plausible}));
        }
        array.data.reserve(next);  // exactly `next`: resize alone may round up
        array.data.resize(next);
      }
      const std::size_t want = array.data.size() - filled;
      const std::size_t got = in.read(array.data.data() + filled, want);
      filled += got;
      if (got < want) throw truncated(filled);
    }
  } catch (const std::bad_alloc&) {
    throw DataError(
        fmt::format("{}: out of memory for the {} bytes of data the header promises", path, count));
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) throw trailing();  // the gzip stream (or the raw file) goes on
  return array;
}

namespace {
// A batch gathers rows from all over the dataset. With 4 KB pages nearly every row is a TLB miss
// as well as a cache miss (in a virtual machine, a two-level page walk): measured on a
// 47 MB dataset out of cache, 32 rows took 38 µs on 4 KB pages and 11 µs on 2 MB pages. So the
// images are moved onto transparent huge pages where Linux allows (MADV_COLLAPSE, Linux 6.1; on
// older kernels the call fails and nothing changes).
void ask_for_huge_pages(std::span<const std::uint8_t> bytes) {
#if defined(__linux__)
  constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;
  constexpr int kCollapse = 25;  // MADV_COLLAPSE, which Debian 12's headers predate
  const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
  const std::uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
  const std::uintptr_t last = (begin + bytes.size()) & ~(kHugePage - 1);
  if (bytes.size() < 2 * kHugePage || last <= first) return;
  void* range = reinterpret_cast<void*>(first);
  madvise(range, last - first, MADV_HUGEPAGE);
  madvise(range, last - first, kCollapse);
#else
  (void)bytes;
#endif
}
}  // namespace

Dataset::Dataset(std::vector<std::uint8_t> images, std::vector<std::int32_t> labels,
                 std::int64_t features, std::int64_t classes)
    : images_(std::move(images)),
      labels_(std::move(labels)),
      features_(features),
      classes_(classes) {
  if (features <= 0 || classes <= 0)
    throw std::invalid_argument(
        fmt::format("Dataset: features = {}, classes = {}: both must be > 0", features, classes));
  std::int64_t expected = 0;
  if (__builtin_mul_overflow(size(), features, &expected) ||
      static_cast<std::int64_t>(images_.size()) != expected)
    throw std::invalid_argument(
        fmt::format("Dataset: {} image bytes for {} labels of {} features: expected {} x {}",
                    images_.size(), labels_.size(), features, labels_.size(), features));
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= classes)
      throw std::invalid_argument(
          fmt::format("Dataset: label {} at index {} is outside [0, {})", labels_[i], i, classes));
  ask_for_huge_pages(images_);
}

Dataset Dataset::slice(std::int64_t begin, std::int64_t end) const {
  if (begin < 0 || begin > end || end > size())
    throw std::invalid_argument(
        fmt::format("Dataset::slice: [{}, {}) of {} rows", begin, end, size()));
  return Dataset({images_.begin() + begin * features_, images_.begin() + end * features_},
                 {labels_.begin() + begin, labels_.begin() + end}, features_, classes_);
}

namespace {
constexpr std::int64_t kBatchGrain = 8;  // rows per thread at least: fewer are not worth a wake-up
constexpr std::int64_t kCacheLine = 64;
}  // namespace

autodiff::Tensor<float> Dataset::batch(std::span<const std::int64_t> rows) const {
  const auto count = static_cast<std::int64_t>(rows.size());
  for (const std::int64_t row : rows)
    if (row < 0 || row >= size())
      throw std::invalid_argument(fmt::format("Dataset::batch: row {} of {}", row, size()));
  float* out = nullptr;  // every value is written below: no zeroing first
  const auto tensor = autodiff::detail::new_data<float>({count, features_}, &out);
  constexpr float kScale = 1.0f / 255.0f;
  // Split over the pool by rows: the rows are scattered over the dataset, so the reads miss the
  // cache and two threads wait for memory in parallel.
  const std::uint8_t* images = images_.data();
  const std::int64_t features = features_;
  autodiff::parallel_for(
      count,
      [&](std::int64_t first, std::int64_t last) {
        // Every line of every row asked for first, so that the cache misses overlap instead of
        // following one another row by row (32 rows out of cache: 38 µs → 11 µs measured).
        for (std::int64_t r = first; r < last; ++r) {
          const std::uint8_t* row = images + rows[static_cast<std::size_t>(r)] * features;
          for (std::int64_t j = 0; j < features; j += kCacheLine) __builtin_prefetch(row + j);
          __builtin_prefetch(row + features - 1);
        }
        for (std::int64_t r = first; r < last; ++r) {
          const std::uint8_t* __restrict in = images + rows[static_cast<std::size_t>(r)] * features;
          float* __restrict to = out + r * features;
          for (std::int64_t j = 0; j < features; ++j) to[j] = float(in[j]) * kScale;
        }
      },
      kBatchGrain);
  return tensor;
}

void Dataset::batch_labels(std::span<const std::int64_t> rows,
                           std::vector<std::int32_t>& out) const {
  out.resize(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) out[r] = labels_[static_cast<std::size_t>(rows[r])];
}

Dataset load_mnist(const std::string& directory, const std::string& prefix,
                   std::uint64_t max_bytes) {
  const std::string images_path = find_file(directory, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(directory, prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(images_path, 3, max_bytes);
  std::int64_t features = 0;
  if (images.dims[1] == 0 || images.dims[2] == 0 ||
      __builtin_mul_overflow(images.dims[1], images.dims[2], &features))
    throw DataError(fmt::format(
        "{}: images of {} x {} pixels: expected both at least 1, and their product below 2^63",
        images_path, images.dims[1], images.dims[2]));
  IdxArray labels = read_idx(labels_path, 1, max_bytes);
  if (images.dims[0] != labels.dims[0])
    throw DataError(fmt::format("{} holds {} images but {} holds {} labels", images_path,
                                images.dims[0], labels_path, labels.dims[0]));
  std::vector<std::int32_t> label_values(labels.data.begin(), labels.data.end());
  for (std::size_t i = 0; i < label_values.size(); ++i)
    if (label_values[i] > 9)
      throw DataError(fmt::format("{}: label {} at byte {} is not a digit class 0-9", labels_path,
                                  label_values[i], 8 + i));
  return Dataset(std::move(images.data), std::move(label_values), features, 10);
}

}  // namespace nn
