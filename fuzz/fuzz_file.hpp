#pragma once
// What every fuzz target shares: the input goes to a temporary file, which the public reader then
// reads exactly as it would a real one; a finding is reported on stderr and aborts.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "nn/data.hpp"  // DataError

namespace fuzz {

// One file per process (libFuzzer's -jobs run several), removed when the process exits normally.
inline const std::string& temp_path() {
  struct Temp {
    std::string path;
    Temp() {
      const std::filesystem::path dir = std::filesystem::is_directory("/dev/shm")
                                            ? std::filesystem::path("/dev/shm")
                                            : std::filesystem::temp_directory_path();
      path = (dir / ("autodiff-fuzz-" + std::to_string(::getpid()))).string();
    }
    ~Temp() { std::remove(path.c_str()); }
  };
  static const Temp temp;
  return temp.path;
}

inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "finding: %s\n", what);
  std::abort();
}

// The data section of a safetensors file that loaded (what follows the 8-byte header length and
// the header); a finding if the file cannot have one.
inline std::string_view data_section(const std::uint8_t* data, std::size_t size) {
  std::uint64_t header_bytes = 0;  // little-endian, as here
  if (size >= 8) std::memcpy(&header_bytes, data, 8);
  if (size < 8 || header_bytes > size - 8) finding("loaded a file without a data section");
  return {reinterpret_cast<const char*>(data) + 8 + header_bytes, size - 8 - header_bytes};
}

// Whether values, as bytes, are one range of a loaded file's data section.
inline bool in_section(std::string_view section, const std::vector<float>& values) {
  return section.find(std::string_view(reinterpret_cast<const char*>(values.data()),
                                       values.size() * sizeof(float))) != std::string_view::npos;
}

// Runs load(), a loader reading the file at path: true if it loaded, false if it threw a
// DataError, which must name the file. Anything else it throws is a finding (libFuzzer's).
template <class Load>
bool loads(const std::string& path, Load&& load) {
  try {
    load();
    return true;
  } catch (const nn::DataError& e) {
    if (std::string_view(e.what()).find(path) == std::string_view::npos)
      finding("a DataError that does not name the file");
    return false;
  }
}

}  // namespace fuzz
