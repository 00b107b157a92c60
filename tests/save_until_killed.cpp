// The process the SIGKILL test (test_killed_save.cpp) kills: saves killed_save::model() to TARGET
// again and again, versions FIRST, FIRST + 1, … (every parameter equal to the version), and after
// each save that completes writes the version's number (4 bytes, native order) to stdout and
// checks that the target is alone in its directory: a completed save leaves no temporary file.
//   save_until_killed TARGET unnamed|named FIRST SCRATCH_DIR
// unnamed: through nn::save_weights, whose temporary file is unnamed (O_TMPFILE) where the
// filesystem allows. named: the same bytes through the named (mkstemp) temporary that other
// filesystems get (nn::detail::write_file_atomically with unnamed_first false).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "killed_save.hpp"
#include "nn/atomic_file.hpp"
#include "nn/serialize.hpp"

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "save_until_killed: %s\n", what.c_str());
  std::_Exit(3);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: save_until_killed TARGET unnamed|named FIRST SCRATCH_DIR\n");
    return 2;
  }
  const std::string target = argv[1], mode = argv[2];
  const auto first = static_cast<std::uint32_t>(std::stoul(argv[3]));
  const std::filesystem::path directory = std::filesystem::path(target).parent_path();
  const std::string name = std::filesystem::path(target).filename().string();
  nn::Sequential network = killed_save::model();

  // Named mode: the file's bytes for version 0, from save_weights; every version has the same
  // header, and its data section holds nothing but the version's value.
  std::string bytes;
  std::size_t data_begin = 0;
  if (mode == "named") {
    const std::string scratch = std::string(argv[4]) + "/version0.safetensors";
    killed_save::set_version(network, 0);
    nn::save_weights(network, scratch);
    bytes = read_file(scratch);
    std::uint64_t header_bytes = 0;
    std::memcpy(&header_bytes, bytes.data(), 8);  // little-endian, as this machine
    data_begin = 8 + header_bytes;
  } else if (mode != "unnamed") {
    fail("the mode is " + mode + ", not unnamed or named");
  }

  for (std::uint32_t version = first; version < first + killed_save::kVersionsPerChild; ++version) {
    if (mode == "unnamed") {
      killed_save::set_version(network, version);
      nn::save_weights(network, target);
    } else {
      const float value = static_cast<float>(version);
      for (std::size_t at = data_begin; at < bytes.size(); at += 4)
        std::memcpy(bytes.data() + at, &value, 4);
      nn::detail::write_file_atomically(target, bytes, "the weights", false);
    }
    for (const auto& entry : std::filesystem::directory_iterator(directory))
      if (entry.path().filename() != name)
        fail("after a completed save of version " + std::to_string(version) + ", " +
             entry.path().string() + " is left");
    if (::write(STDOUT_FILENO, &version, sizeof version) != sizeof version)
      fail("cannot report the version");
  }
  ::pause();  // every version saved: wait for the kill
  return 0;
}
