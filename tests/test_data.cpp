// The IDX reader on good and bad files: every error names the file and says what was expected.
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "allocation_counter.hpp"
#include "nn/data.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<unsigned char> idx_bytes(unsigned char type, std::vector<std::uint32_t> dims,
                                     std::size_t data_size) {
  std::vector<unsigned char> b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      b.push_back(static_cast<unsigned char>(d >> shift));
  for (std::size_t i = 0; i < data_size; ++i) b.push_back(static_cast<unsigned char>(i % 10));
  return b;
}

struct TempDir {
  fs::path path;
  TempDir()
      : path(fs::temp_directory_path() / fs::path("autodiff-idx-" + std::to_string(::getpid()))) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::vector<unsigned char>& bytes,
                    bool gzip = false) const {
    const std::string file = (path / name).string();
    if (gzip) {
      gzFile f = gzopen(file.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::FILE* f = std::fopen(file.c_str(), "wb");
      REQUIRE(f != nullptr);
      if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);  // data() may be null
      std::fclose(f);
    }
    return file;
  }
};

std::vector<unsigned char> read_bytes(const std::string& file) {
  std::vector<unsigned char> bytes(fs::file_size(file));
  std::FILE* f = std::fopen(file.c_str(), "rb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size());
  std::fclose(f);
  return bytes;
}

void append(const std::string& file, const std::vector<unsigned char>& bytes) {
  std::FILE* f = std::fopen(file.c_str(), "ab");
  REQUIRE(f != nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

// A .gz file of `header` followed by `zeros` zero bytes, compressed as it is written: a gzip bomb
// when the header promises less than that, or a cap test when it promises more than the cap.
void write_gz_zeros(const std::string& file, const std::vector<unsigned char>& header,
                    std::size_t zeros) {
  gzFile f = gzopen(file.c_str(), "wb9");
  REQUIRE(f != nullptr);
  gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
  const std::vector<char> chunk(1 << 20, 0);
  for (std::size_t left = zeros; left > 0;) {
    const std::size_t n = std::min(left, chunk.size());
    REQUIRE(gzwrite(f, chunk.data(), static_cast<unsigned>(n)) == int(n));
    left -= n;
  }
  REQUIRE(gzclose(f) == Z_OK);
}

constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kNoCap = std::numeric_limits<std::uint64_t>::max();

}  // namespace

TEST_CASE("IDX: good files, raw and gzip") {
  TempDir dir;
  const auto bytes = idx_bytes(0x08, {3, 2, 2}, 12);
  for (bool gzip : {false, true}) {
    const nn::IdxArray a = nn::read_idx(dir.write(gzip ? "a.gz" : "a", bytes, gzip), 3);
    CHECK(a.dims == std::vector<std::int64_t>{3, 2, 2});
    REQUIRE(a.data.size() == 12);
    CHECK(a.data[11] == 1);
  }
}

TEST_CASE("IDX: bad files are errors that say what is wrong, and where") {
  TempDir dir;
  SUBCASE("missing") {
    CHECK_THROWS_WITH_AS(nn::read_idx((dir.path / "nope").string()),
                         doctest::Contains("nope: no such file"), nn::DataError);
  }
  SUBCASE("a directory") {
    CHECK_THROWS_WITH_AS(nn::read_idx(dir.path.string()), doctest::Contains("not a regular file"),
                         nn::DataError);
  }
  SUBCASE("wrong magic") {
    auto bytes = idx_bytes(0x0D, {4}, 4);  // 0x0D: floats, not bytes
    const std::string file = dir.write("magic", bytes);
    CHECK_THROWS_WITH_AS(nn::read_idx(file),
                         doctest::Contains("bad magic number 0x00000d01 at byte 0"), nn::DataError);
  }
  SUBCASE("wrong number of dimensions") {
    const std::string file = dir.write("rank", idx_bytes(0x08, {4}, 4));
    CHECK_THROWS_WITH_AS(nn::read_idx(file, 3),
                         doctest::Contains("1 dimensions (magic 2049), expected 3 (magic 2051)"),
                         nn::DataError);
  }
  SUBCASE("truncated data") {
    auto bytes = idx_bytes(0x08, {3, 2, 2}, 12);
    bytes.resize(bytes.size() - 5);
    for (bool gzip : {false, true}) {
      const std::string file = dir.write(gzip ? "short.gz" : "short", bytes, gzip);
      CHECK_THROWS_WITH_AS(
          nn::read_idx(file),
          doctest::Contains(
              "truncated: the header promises 12 bytes of data after byte 16, found 7"),
          nn::DataError);
    }
  }
  SUBCASE("truncated header") {
    auto bytes = idx_bytes(0x08, {3, 2, 2}, 0);
    bytes.resize(9);
    CHECK_THROWS_WITH_AS(nn::read_idx(dir.write("header", bytes)),
                         doctest::Contains("dimension 2 of 3 is missing at byte 8"), nn::DataError);
  }
  SUBCASE("trailing bytes") {
    const std::string file = dir.write("long", idx_bytes(0x08, {2}, 3));
    CHECK_THROWS_WITH_AS(nn::read_idx(file), doctest::Contains("trailing data"), nn::DataError);
  }
  SUBCASE("a gzip stream cut short") {
    const std::string good = dir.write("cut.gz", idx_bytes(0x08, {4000}, 4000), true);
    const auto size = fs::file_size(good);
    fs::resize_file(good, size - 12);
    CHECK_THROWS_WITH_AS(nn::read_idx(good), doctest::Contains("cut.gz"), nn::DataError);
  }
  SUBCASE("images and labels that disagree") {
    dir.write("train-images-idx3-ubyte", idx_bytes(0x08, {3, 2, 2}, 12));
    dir.write("train-labels-idx1-ubyte", idx_bytes(0x08, {4}, 4));
    CHECK_THROWS_WITH_AS(nn::load_mnist(dir.path.string(), "train"),
                         doctest::Contains("holds 3 images but"), nn::DataError);
    dir.write("t10k-images-idx3-ubyte", idx_bytes(0x08, {1, 1, 1}, 1));
    std::vector<unsigned char> labels = idx_bytes(0x08, {1}, 0);
    labels.push_back(12);
    dir.write("t10k-labels-idx1-ubyte", labels);
    CHECK_THROWS_WITH_AS(nn::load_mnist(dir.path.string(), "t10k"),
                         doctest::Contains("label 12 at byte 8 is not a digit class 0-9"),
                         nn::DataError);
  }
  SUBCASE("a directory without the files") {
    CHECK_THROWS_WITH_AS(
        nn::load_mnist(dir.path.string(), "train"),
        doctest::Contains("neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz"),
        nn::DataError);
  }
}

TEST_CASE("the shipped data set loads: 8,000 + 2,000 digits") {
  const nn::Dataset train = nn::load_mnist(AUTODIFF_DATA_DIR, "train");
  const nn::Dataset test = nn::load_mnist(AUTODIFF_DATA_DIR, "t10k");
  CHECK(train.size() == 8000);
  CHECK(test.size() == 2000);
  CHECK(train.features() == 784);
  std::vector<int> counts(10, 0);
  for (std::int32_t label : train.labels()) ++counts[std::size_t(label)];
  for (int c : counts) CHECK(c > 600);
  autodiff::Tape tape;
  autodiff::TapeScope scope(tape);
  const std::int64_t rows[] = {0, 7999};
  const auto batch = train.batch(rows).to_vector();
  CHECK(batch.size() == 2 * 784);
  CHECK(*std::max_element(batch.begin(), batch.end()) <= 1.0f);
  CHECK(*std::max_element(batch.begin(), batch.end()) > 0.9f);
  CHECK(*std::min_element(batch.begin(), batch.end()) == 0.0f);
  CHECK_THROWS_AS(nn::Dataset({1, 2, 3}, {0}, 2, 10), std::invalid_argument);
}

TEST_CASE("IDX: every truncation and every corrupted byte is a DataError, never a crash") {
  TempDir dir;
  const auto bytes = idx_bytes(0x08, {5, 3, 3}, 45);
  for (bool gzip : {false, true}) {
    const std::string good = dir.write("good", bytes, gzip);
    std::vector<unsigned char> file(std::filesystem::file_size(good));
    std::FILE* f = std::fopen(good.c_str(), "rb");
    REQUIRE(std::fread(file.data(), 1, file.size(), f) == file.size());
    std::fclose(f);
    for (std::size_t length = 0; length < file.size(); ++length) {
      const std::string cut =
          dir.write("cut", std::vector<unsigned char>(file.begin(), file.begin() + long(length)));
      INFO("gzip ", gzip, ", cut at ", length, " of ", file.size());
      CHECK_THROWS_AS(nn::read_idx(cut, 3), nn::DataError);
    }
    int loaded = 0;
    for (std::size_t at = 0; at < file.size(); ++at) {
      std::vector<unsigned char> corrupt = file;
      corrupt[at] ^= 0x5A;
      const std::string path = dir.write("corrupt", corrupt);
      // A corrupted dimension used to be allocated as it read (0x005A0005 x 3 x 3: 53 MB).
      testing::ByteCounter allocated;
      try {
        const nn::IdxArray a = nn::read_idx(path, 3);
        CHECK(allocated.largest() <= 4096);
        CHECK(a.dims == std::vector<std::int64_t>{5, 3, 3});
        // gzip: only the unchecked header bytes (time stamp, flags, OS) can change and still
        // load, and then the data is intact (the CRC covers it).
        if (gzip) CHECK(std::equal(a.data.begin(), a.data.end(), bytes.begin() + 16));
        ++loaded;
      } catch (const nn::DataError&) {
        INFO("gzip ", gzip, ", byte ", at, " corrupted");
        CHECK(allocated.largest() <= 4096);
      }
    }
    // Raw: exactly the 45 data bytes may change and still load; gzip: at most the 6 header
    // bytes gzip does not check (MTIME, XFL, OS).
    if (gzip)
      CHECK(loaded <= 6);
    else
      CHECK(loaded == 45);
  }
}

TEST_CASE("IDX: every header byte set to 0, 1, 0x7f, 0x80 or 0xff: bounded memory, no crash") {
  TempDir dir;
  const auto bytes = idx_bytes(0x08, {5, 3, 3}, 45);
  for (bool gzip : {false, true})
    for (std::size_t at = 0; at < 16; ++at)
      for (unsigned char value : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
        auto changed = bytes;
        changed[at] = value;
        if (changed == bytes) continue;
        const std::string path = dir.write(gzip ? "header.gz" : "header", changed, gzip);
        INFO("gzip ", gzip, ", byte ", at, " = ", int(value));
        testing::ByteCounter allocated;
        CHECK_THROWS_AS(nn::read_idx(path), nn::DataError);
        CHECK(allocated.largest() <= 4096);
      }
}

// Issue #12: the header decided how much memory the reader took. Now a file's bytes do: every
// case below allocates (through operator new, on this thread) less than a few MiB in all, where
// the reader used to allocate what the header promised (2 GiB, 16 GiB, 64 MiB) first.
TEST_CASE("IDX: a header alone cannot make the reader allocate") {
  TempDir dir;
  // 26 bytes: a header promising 1 x 32768 x 65536 = 2 GiB of data, and 10 bytes of it.
  const auto claims_2GiB = idx_bytes(0x08, {1, 32768, 65536}, 10);
  REQUIRE(claims_2GiB.size() == 26);

  SUBCASE("raw: the file's size is checked against the header before any allocation") {
    const std::string file = dir.write("claims-2GiB", claims_2GiB);
    testing::ByteCounter bytes;
    // Past any cap, only the size check stands between the header and a 2 GiB allocation.
    CHECK_THROWS_WITH_AS(nn::read_idx(file, 3, kNoCap),
                         doctest::Contains("claims-2GiB: truncated: the header promises "
                                           "2147483648 bytes of data after byte 16, found 10 "
                                           "(the file ends at byte 26)"),
                         nn::DataError);
    // Under the default cap (1 GiB), the header is refused as it stands.
    CHECK_THROWS_WITH_AS(nn::read_idx(file, 3),
                         doctest::Contains("claims-2GiB: the header's dimensions 1 x 32768 x 65536 "
                                           "describe 2147483648 bytes of data, more than the limit "
                                           "of 1073741824 bytes"),
                         nn::DataError);
    CHECK(bytes.largest() <= 4096);
    CHECK(bytes.total() < kMiB);
  }
  SUBCASE("gzip: the data buffer grows only as decompressed bytes arrive") {
    const std::string file = dir.write("claims-2GiB.gz", claims_2GiB, true);
    testing::ByteCounter bytes;
    CHECK_THROWS_WITH_AS(nn::read_idx(file, 3, kNoCap),
                         doctest::Contains("claims-2GiB.gz: truncated: the header promises "
                                           "2147483648 bytes of data after byte 16, found 10 "
                                           "(the uncompressed stream ends at byte 26)"),
                         nn::DataError);
    CHECK(bytes.largest() <= 4096);
    CHECK(bytes.total() < kMiB);
  }
  SUBCASE("a header promising exactly 16 GiB: a DataError naming the file, not std::bad_alloc") {
    const auto claims_16GiB = idx_bytes(0x08, {4, 65536, 65536}, 100);
    for (bool gzip : {false, true}) {
      const std::string file =
          dir.write(gzip ? "claims-16GiB.gz" : "claims-16GiB", claims_16GiB, gzip);
      testing::ByteCounter bytes;
      CHECK_THROWS_WITH_AS(
          nn::read_idx(file),
          doctest::Contains(fmt::format("claims-16GiB{}: the header's dimensions 4 x "
                                        "65536 x 65536 describe 17179869184 bytes "
                                        "of data, more than the limit",
                                        gzip ? ".gz" : "")
                                .c_str()),
          nn::DataError);
      CHECK_THROWS_WITH_AS(nn::read_idx(file, 3, kNoCap),
                           doctest::Contains("truncated: the header promises 17179869184 bytes of "
                                             "data after byte 16, found 100"),
                           nn::DataError);
      CHECK(bytes.total() < kMiB);
    }
  }
  SUBCASE("dimensions whose product overflows 64 bits") {
    // 2^31 x 8 x 2^31 = 2^65 wrapped to 0 before, and the empty data was accepted.
    for (const auto& dims : std::vector<std::vector<std::uint32_t>>{
             {0x80000000u, 8, 0x80000000u},
             {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu},
             {65536, 65536, 65536, 65536}}) {
      const std::string file = dir.write("overflow", idx_bytes(0x08, dims, 0));
      CHECK_THROWS_WITH_AS(nn::read_idx(file, 0, kNoCap),
                           doctest::Contains("bytes of data, more than the limit"), nn::DataError);
      CHECK_THROWS_WITH_AS(nn::read_idx(file, 0, kNoCap), doctest::Contains("over 2^64"),
                           nn::DataError);
    }
    // A zero beside them makes an empty array, which is valid; as MNIST images it is not.
    const nn::IdxArray empty =
        nn::read_idx(dir.write("empty", idx_bytes(0x08, {0, 0xFFFFFFFFu, 0xFFFFFFFFu}, 0)));
    CHECK(empty.data.empty());
    dir.write("train-images-idx3-ubyte", idx_bytes(0x08, {0, 0xFFFFFFFFu, 0xFFFFFFFFu}, 0));
    dir.write("train-labels-idx1-ubyte", idx_bytes(0x08, {0}, 0));
    CHECK_THROWS_WITH_AS(nn::load_mnist(dir.path.string(), "train"),
                         doctest::Contains("images of 4294967295 x 4294967295 pixels"),
                         nn::DataError);
  }
}

TEST_CASE("IDX: a gzip bomb stops at the cap, or at the header's size") {
  TempDir dir;
  // 64 MiB of zeros behind each header, in a .gz file of about 65 KB.
  const std::size_t zeros = 64 * kMiB;
  SUBCASE("the header promises 64 MiB, the cap is 16 MiB") {
    const std::string file = (dir.path / "bomb.gz").string();
    write_gz_zeros(file, idx_bytes(0x08, {1, 8192, 8192}, 0), zeros);
    testing::ByteCounter bytes;
    CHECK_THROWS_WITH_AS(
        nn::read_idx(file, 3, 16 * kMiB),
        doctest::Contains("bomb.gz: the header's dimensions 1 x 8192 x 8192 describe 67108864 "
                          "bytes of data, more than the limit of 16777216 bytes (read_idx's "
                          "max_bytes"),
        nn::DataError);
    CHECK(bytes.total() < kMiB);
    // Under a cap it fits: the data is read whole into a buffer of its exact size, having grown
    // from 8 times the file's size (~0.5 MB) by doubling as it arrived (so all the buffers
    // together hold under 3 times it).
    bytes = testing::ByteCounter();
    const nn::IdxArray a = nn::read_idx(file, 3, 64 * kMiB);
    CHECK(a.data.size() == zeros);
    CHECK(std::all_of(a.data.begin(), a.data.end(), [](auto b) { return b == 0; }));
    CHECK(a.data.capacity() == zeros);
    CHECK(bytes.largest() == zeros);
    CHECK(bytes.total() < 3 * zeros);
  }
  SUBCASE("the header promises 1 MiB, the stream holds 64 MiB: inflating stops after 1 MiB") {
    const std::string file = (dir.path / "bomb.gz").string();
    write_gz_zeros(file, idx_bytes(0x08, {1, 1024, 1024}, 0), zeros);
    testing::ByteCounter bytes;
    CHECK_THROWS_WITH_AS(nn::read_idx(file, 3),
                         doctest::Contains("bomb.gz: trailing data: the header promises 1048592 "
                                           "bytes, but there are more after byte 1048592 of the "
                                           "uncompressed stream"),
                         nn::DataError);
    CHECK(bytes.largest() <= kMiB);
    CHECK(bytes.total() < 3 * kMiB);
  }
}

TEST_CASE("IDX: what follows a gzip stream: more members, or an error naming the byte") {
  TempDir dir;
  const auto bytes = idx_bytes(0x08, {3, 2, 2}, 12);
  const std::string good = dir.write("good.gz", bytes, true);
  const auto gz = read_bytes(good);
  SUBCASE("garbage") {
    for (const std::vector<unsigned char>& tail : std::vector<std::vector<unsigned char>>{
             {'g', 'a', 'r', 'b', 'a', 'g', 'e'}, {0}, {0, 0, 0, 0}, {0x1f}, {0x8b, 0x1f}}) {
      const std::string file = dir.write("tail.gz", gz);
      append(file, tail);
      CHECK_THROWS_WITH_AS(
          nn::read_idx(file),
          doctest::Contains(fmt::format("tail.gz: trailing garbage after the gzip stream: byte {} "
                                        "of the file is 0x{:02x}",
                                        gz.size(), tail[0])
                                .c_str()),
          nn::DataError);
    }
  }
  SUBCASE("the start of another member, cut short") {
    const std::string file = dir.write("tail.gz", gz);
    append(file, {0x1f, 0x8b});
    CHECK_THROWS_WITH_AS(nn::read_idx(file),
                         doctest::Contains("tail.gz: the compressed stream is truncated"),
                         nn::DataError);
  }
  SUBCASE("members that together hold the file, as `cat a.gz b.gz` makes, load") {
    const std::string a = dir.write("a.gz", {bytes.begin(), bytes.begin() + 10}, true);
    dir.write("b.gz", {bytes.begin() + 10, bytes.end()}, true);
    dir.write("empty.gz", {}, true);
    append(a, read_bytes((dir.path / "b.gz").string()));
    append(a, read_bytes((dir.path / "empty.gz").string()));
    const nn::IdxArray array = nn::read_idx(a, 3);
    CHECK(std::equal(array.data.begin(), array.data.end(), bytes.begin() + 16));
  }
  SUBCASE("a second member with more data than the header promises") {
    const std::string file = dir.write("more.gz", gz);
    append(file, read_bytes(dir.write("one.gz", {7}, true)));
    CHECK_THROWS_WITH_AS(nn::read_idx(file),
                         doctest::Contains("more.gz: trailing data: the header promises 28 bytes, "
                                           "but there are more after byte 28 of the uncompressed "
                                           "stream"),
                         nn::DataError);
  }
  SUBCASE("a wrong CRC") {
    auto corrupt = gz;
    corrupt[corrupt.size() - 8] ^= 1;  // the trailer: CRC-32, then the length
    CHECK_THROWS_WITH_AS(nn::read_idx(dir.write("crc.gz", corrupt)),
                         doctest::Contains("crc.gz: corrupt compressed data"), nn::DataError);
  }
}
