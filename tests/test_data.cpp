// The IDX reader on good and bad files: every error names the file and says what was expected.
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

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
      try {
        const nn::IdxArray a = nn::read_idx(path, 3);
        CHECK(a.dims == std::vector<std::int64_t>{5, 3, 3});
        // gzip: only the unchecked header bytes (time stamp, flags, OS) can change and still
        // load, and then the data is intact (the CRC covers it).
        if (gzip) CHECK(std::equal(a.data.begin(), a.data.end(), bytes.begin() + 16));
        ++loaded;
      } catch (const nn::DataError&) {
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
