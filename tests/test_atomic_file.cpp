// nn::write_file_atomically and nn::check_writable: whole files or nothing, no file left behind.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nn/atomic_file.hpp"
#include "nn/data.hpp"
#include "temp_dir.hpp"

using testing::read_text;
using testing::TempDir;
using testing::write_text;

namespace {

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

mode_t process_umask() {
  const mode_t mask = ::umask(022);
  ::umask(mask);
  return mask;
}

}  // namespace

TEST_CASE("write_file_atomically: writes, replaces, keeps permissions; both kinds of temporary") {
  for (const bool unnamed_first : {true, false}) {
    INFO("unnamed_first: ", unnamed_first);
    TempDir dir;
    const std::string target = dir / "model.bin";
    nn::detail::write_file_atomically(target, std::string("a\0b", 3), "the model", unnamed_first);
    CHECK(read_text(target) == std::string("a\0b", 3));
    CHECK(mode_of(target) == (0666 & ~process_umask()));
    ::chmod(target.c_str(), 0640);
    nn::detail::write_file_atomically(target, "second", "the model", unnamed_first);
    CHECK(read_text(target) == "second");
    CHECK(mode_of(target) == 0640);
    nn::detail::write_file_atomically(target, "", "the model", unnamed_first);
    CHECK(read_text(target).empty());
    for (int i = 0; i < 20; ++i)
      nn::detail::write_file_atomically(target, std::to_string(i), "the model", unnamed_first);
    CHECK(read_text(target) == "19");
    CHECK(dir.listing() == std::set<std::string>{"model.bin"});
    // A path relative to the working directory (its directory is ".").
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    nn::detail::write_file_atomically("relative.txt", "r", "the model", unnamed_first);
    std::filesystem::current_path(cwd);
    CHECK(read_text(dir / "relative.txt") == "r");
  }
}

TEST_CASE("write_file_atomically: a symlink at the target is replaced, never written through") {
  TempDir dir;
  const std::string target = dir / "out.csv", victim = dir / "victim.txt";
  write_text(victim, "precious");
  REQUIRE(::symlink(victim.c_str(), target.c_str()) == 0);
  nn::write_file_atomically(target, "new");
  CHECK(read_text(victim) == "precious");
  CHECK(std::filesystem::is_regular_file(std::filesystem::symlink_status(target)));
  CHECK(read_text(target) == "new");
}

TEST_CASE("write_file_atomically: bad targets and failed writes leave everything as it was") {
  TempDir dir;
  write_text(dir / "old.txt", "old");
  write_text(dir / "file.txt", "");
  std::filesystem::create_directory(dir / "sub");
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  const std::set<std::string> before = dir.listing();
  struct Case {
    std::string path, message;
  };
  const Case cases[] = {
      // bad inputs: 7 paths, each through both functions: 14
      {"", "cannot write the model: the path is empty"},
      {dir / "sub", "/sub: cannot write the model: it is a directory"},
      {dir / "sub/", "/sub/: cannot write the model: the path names a directory"},
      {dir / "fifo", "/fifo: cannot write the model: it exists and is not a regular file"},
      {dir / "missing/m.bin",
       "/missing/m.bin: cannot write the model: cannot create a temporary file in"},
      {dir / "file.txt/m.bin", "/file.txt/m.bin: cannot write the model: Not a directory"},
      {dir / std::string(300, 'x'), "cannot write the model: File name too long"},
  };
  for (const Case& c : cases) {
    INFO(c.path);
    CHECK_THROWS_WITH_AS(nn::write_file_atomically(c.path, "bytes", "the model"),
                         doctest::Contains(c.message.c_str()), nn::DataError);
    CHECK_THROWS_WITH_AS(nn::check_writable(c.path, "the model"),
                         doctest::Contains(c.message.c_str()), nn::DataError);
    CHECK(dir.listing() == before);
    CHECK(dir.listing("sub").empty());
  }
  for (const bool unnamed_first : {true, false}) {  // bad inputs: 2
    const testing::FileSizeLimit limit(4);
    CHECK_THROWS_WITH_AS(
        nn::detail::write_file_atomically(dir / "old.txt", "longer than four bytes", "the model",
                                          unnamed_first),
        doctest::Contains("old.txt: cannot write the model: writing 18 of 22 bytes failed (File "
                          "too large); the file is unchanged"),
        nn::DataError);
    CHECK(read_text(dir / "old.txt") == "old");
    CHECK(dir.listing() == before);
  }
}

TEST_CASE("check_writable: a good path passes and nothing is made") {
  TempDir dir;
  nn::check_writable(dir / "new.csv");
  write_text(dir / "old.csv", "old");
  nn::check_writable(dir / "old.csv");
  CHECK(dir.listing() == std::set<std::string>{"old.csv"});
  CHECK(read_text(dir / "old.csv") == "old");
}
