#pragma once
// What the IDX fuzz targets share: the input goes to a temporary file, which the public reader
// then reads exactly as it would a real one. The reader may throw nn::DataError (naming the file);
// anything else (another exception, a crash, a sanitizer report, a result whose dimensions
// disagree with its data, more memory than -rss_limit_mb) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_file.hpp"
#include "nn/data.hpp"

namespace fuzz {

// The cap the targets read with: small, so that headers just over it are reached often and a
// compressed stream that expands past it stays far below -rss_limit_mb.
inline constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 20;

// Reads `path` (holding `file_size` bytes) and checks what came back.
inline void read_and_check(const std::string& path, std::size_t file_size, bool compressed) {
  for (int rank : {0, 3}) {
    try {
      const nn::IdxArray a = nn::read_idx(path, rank, kMaxBytes);
      if (a.dims.empty() || a.dims.size() > 4) finding("a rank outside 1..4 was accepted");
      if (rank > 0 && a.dims.size() != std::size_t(rank)) finding("the wrong rank was accepted");
      // The product of the dimensions, which must be the data's size (0 if any is 0, even when
      // the others would overflow).
      std::uint64_t count = 1;
      bool overflow = false, any_zero = false;
      for (std::int64_t d : a.dims) {
        if (d < 0) finding("a negative dimension");
        any_zero |= d == 0;
        overflow |= __builtin_mul_overflow(count, std::uint64_t(d), &count);
      }
      if (any_zero ? !a.data.empty() : (overflow || count != a.data.size()))
        finding("the dimensions disagree with the data");
      if (a.data.size() > kMaxBytes) finding("more data than the cap was accepted");
      if (!compressed && a.data.size() + 4 + 4 * a.dims.size() != file_size)
        finding("a raw file's size disagrees with its header");
    } catch (const nn::DataError& e) {
      if (!std::strstr(e.what(), path.c_str())) finding("a DataError that does not name the file");
    }
  }
}

}  // namespace fuzz
