// Issue #12's cases, one or more tests for each: every one of them failed before the fix. Each
// bad input these tests try is counted in a comment "bad inputs: N".
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nn/model.hpp"
#include "temp_dir.hpp"

using testing::read_text;
using testing::TempDir;
using testing::write_text;

namespace {

nn::History three_epochs() {
  nn::History history;
  for (int e = 1; e <= 3; ++e) history.epochs.push_back({e, 0.5, 0.8, 0.6, 0.7, 1.0});
  return history;
}

const std::string kThreeEpochsCsv =
    "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n"
    "1,0.500000,0.800000,0.600000,0.700000,1.000\n"
    "2,0.500000,0.800000,0.600000,0.700000,1.000\n"
    "3,0.500000,0.800000,0.600000,0.700000,1.000\n";

}  // namespace

// ---- Temporary files ----

TEST_CASE("history: a symlink planted at the old temporary name is not written through") {
  // The old scheme wrote `<target>.tmp.<pid>` with fopen("wb"), which follows a symlink.
  TempDir dir;
  const std::string target = dir / "history.csv", victim = dir / "victim.txt";
  write_text(victim, "precious\n");
  const std::string planted = fmt::format("{}.tmp.{}", target, ::getpid());
  REQUIRE(::symlink(victim.c_str(), planted.c_str()) == 0);  // bad inputs: 1
  three_epochs().write_csv(target);
  CHECK(read_text(victim) == "precious\n");
  CHECK(read_text(target) == kThreeEpochsCsv);
  CHECK(std::filesystem::is_symlink(planted));  // left alone: not ours
  CHECK(std::filesystem::is_regular_file(std::filesystem::symlink_status(target)));
  CHECK(dir.listing() == std::set<std::string>{"history.csv", "victim.txt",
                                               std::filesystem::path(planted).filename()});
}

TEST_CASE("history: a process killed while writing leaves no temporary file behind") {
  TempDir dir;
  const std::string target = dir / "history.csv";
  write_text(target, "old\n");
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Killed by SIGXFSZ in the middle of the write: past 16 bytes the file may not grow.
    const rlimit no_core{0, 0}, sixteen_bytes{16, 16};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::signal(SIGXFSZ, SIG_DFL);
    ::setrlimit(RLIMIT_FSIZE, &sixteen_bytes);
    try {
      three_epochs().write_csv(target);
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));  // bad inputs: 2
  CHECK(WTERMSIG(status) == SIGXFSZ);
  CHECK(dir.listing() == std::set<std::string>{"history.csv"});
  CHECK(read_text(target) == "old\n");
}

TEST_CASE("history: a failed write leaves no temporary file, and the old file intact") {
  TempDir dir;
  const std::string target = dir / "history.csv";
  write_text(target, "old\n");
  {
    const testing::FileSizeLimit limit(16);  // bad inputs: 3
    CHECK_THROWS_WITH_AS(three_epochs().write_csv(target),
                         doctest::Contains("history.csv: cannot write the history: writing"),
                         nn::DataError);
  }
  CHECK(read_text(target) == "old\n");
  CHECK(dir.listing() == std::set<std::string>{"history.csv"});

  // Paths whose directory cannot hold the file: a clear error, and nothing made anywhere.
  write_text(dir / "file.txt", "");
  std::filesystem::create_directory(dir / "sub");
  for (const char* bad : {"missing/history.csv", "file.txt/history.csv", "sub"}) {  // bad inputs: 6
    INFO(bad);
    const std::string message = fmt::format("{}: cannot write the history", dir / bad);
    CHECK_THROWS_WITH_AS(three_epochs().write_csv(dir / bad), doctest::Contains(message.c_str()),
                         nn::DataError);
    CHECK(dir.listing() == std::set<std::string>{"file.txt", "history.csv", "sub"});
    CHECK(dir.listing("sub").empty());
  }
}
