// A process killed (SIGKILL) at random moments while it saves weights again and again: the file
// at the path always loads and holds a version that was saved, and a killed save leaves at most
// its own temporary file, of the kind nn/atomic_file.cpp can leave (see save_until_killed.cpp).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "killed_save.hpp"
#include "nn/serialize.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace {

using testing::read_text;
using testing::TempDir;

// A running save_until_killed, its stdout a pipe on which it reports each completed save.
class Saver {
 public:
  Saver(const std::string& target, const std::string& mode, std::uint32_t first,
        const std::string& scratch) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // clears O_CLOEXEC
    const std::string first_text = std::to_string(first);
    std::vector<char*> argv{const_cast<char*>(AUTODIFF_SAVE_UNTIL_KILLED),
                            const_cast<char*>(target.c_str()),
                            const_cast<char*>(mode.c_str()),
                            const_cast<char*>(first_text.c_str()),
                            const_cast<char*>(scratch.c_str()),
                            nullptr};
    const int spawned =
        ::posix_spawn(&pid_, AUTODIFF_SAVE_UNTIL_KILLED, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    reports_ = fds[0];
    REQUIRE_MESSAGE(spawned == 0, "cannot start " AUTODIFF_SAVE_UNTIL_KILLED);
  }
  Saver(const Saver&) = delete;
  Saver& operator=(const Saver&) = delete;
  ~Saver() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(reports_);
  }

  // The next completed save's version; false once the process has ended.
  bool next_report(std::uint32_t& version) {
    std::size_t got = 0;
    while (got < sizeof version) {
      const ssize_t n =
          ::read(reports_, reinterpret_cast<char*>(&version) + got, sizeof version - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Kills it; its wait status.
  int kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int reports_ = -1;
};

// The version every parameter of `network` equals, or -1 if they differ.
std::int64_t version_of(nn::Module& network) {
  const float first = network.parameters().front()->value[0];
  for (nn::Parameter* p : network.parameters())
    for (float v : p->value)
      if (v != first) return -1;
  return static_cast<std::int64_t>(first);
}

// The bytes save_weights writes for a version.
std::string file_bytes(std::uint32_t version, const std::string& path) {
  nn::Sequential network = killed_save::model();
  killed_save::set_version(network, version);
  nn::save_weights(network, path);
  return read_text(path);
}

// `<target>.tmp.XXXXXX`, X a letter or digit: the names atomic_file.cpp gives its temporaries.
bool is_temporary_name(const std::string& name, const std::string& target) {
  const std::string prefix = target + ".tmp.";
  return name.size() == prefix.size() + 6 && name.starts_with(prefix) &&
         std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0; });
}

bool unnamed_temporaries_supported(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

}  // namespace

TEST_CASE(
    "a save killed at any moment leaves the old file or the new one, and at most its own "
    "temporary file") {
  TempDir dir, scratch;
  const std::string target = dir / "model.safetensors";
  const bool unnamed_supported = unnamed_temporaries_supported(dir.path().string());
  // The moments of the kills, after the child's first completed save: spread over about three
  // saves (each one a few ms here, most of it fsync), from a fixed seed.
  std::mt19937 rng(20261129);
  std::uniform_int_distribution<int> delay_us(0, 20'000);
  constexpr int kKills = 40;
  int kept_old = 0, got_new = 0, named_leftovers = 0, unnamed_leftovers = 0;

  for (int child = 0; child < kKills; ++child) {
    // Even children save through save_weights (an unnamed temporary where the filesystem has
    // them), odd ones through the named temporary other filesystems get.
    const bool named = child % 2 == 1 || !unnamed_supported;
    INFO("child ", child, std::string(named ? " (named temporary)" : " (unnamed temporary)"));
    std::uint32_t completed = 0;
    {
      Saver saver(target, named ? "named" : "unnamed", killed_save::first_version(child),
                  scratch.path().string());
      REQUIRE_MESSAGE(saver.next_report(completed),
                      "save_until_killed ended before its first save");
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
      const int status = saver.kill();
      // It checks after each completed save that nothing but the target is in the directory,
      // and exits with 3 (its message on stderr) if anything is.
      REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                      "save_until_killed ended by itself, status ", status);
      for (std::uint32_t v; saver.next_report(v);) completed = v;
    }
    const std::uint32_t in_flight = completed + 1;  // the save the kill interrupted

    // The target loads, and holds the last completed version or the interrupted one (whose
    // rename may have happened before it could report).
    nn::Sequential network = killed_save::model();
    nn::load_weights(network, target);
    const std::int64_t version = version_of(network);
    REQUIRE_MESSAGE((version == completed || version == in_flight), "the file holds version ",
                    version, "; the last completed save was ", completed);
    CHECK(read_text(target) == file_bytes(static_cast<std::uint32_t>(version), scratch / "v"));
    (version == in_flight ? got_new : kept_old) += 1;

    // Besides it, at most the interrupted save's temporary file, and only before its rename.
    std::set<std::string> others = dir.listing();
    others.erase("model.safetensors");
    REQUIRE(others.size() <= 1);
    if (others.empty()) continue;
    const std::string leftover = *others.begin();
    INFO("left: ", leftover);
    CHECK(is_temporary_name(leftover, "model.safetensors"));
    CHECK(version == completed);
    const std::string expected = file_bytes(in_flight, scratch / "v");
    const std::string found = read_text(dir / leftover);
    if (named) {
      // mkstemp's file, killed at any point of the writing: a prefix of the new version.
      CHECK(found.size() <= expected.size());
      CHECK(expected.compare(0, found.size(), found) == 0);
    } else {
      // An unnamed file gets its name only once written and synced: the whole new version.
      CHECK(found == expected);
    }
    ++(named ? named_leftovers : unnamed_leftovers);
    std::filesystem::remove(dir / leftover);  // a save never removes another's temporary
  }
  MESSAGE(
      fmt::format("{} kills: {} left the previous version, {} the interrupted one; a "
                  "temporary file was left by {} named and {} unnamed ones (O_TMPFILE {})",
                  kKills, kept_old, got_new, named_leftovers, unnamed_leftovers,
                  unnamed_supported ? "supported" : "not supported"));

  // A save that completes leaves the target alone, and it loads.
  nn::Sequential network = killed_save::model();
  killed_save::set_version(network, 7);
  nn::save_weights(network, target);
  CHECK(dir.listing() == std::set<std::string>{"model.safetensors"});
  nn::load_weights(network, target);
  CHECK(version_of(network) == 7);
}
