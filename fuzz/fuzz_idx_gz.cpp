// libFuzzer target: the IDX reader's gzip path. The first input byte chooses how the rest is used:
//   even: the rest is a .gz file, written as it is (the deflate stream, the gzip header and
//         trailer, concatenated members and what follows them are all the mutator's);
//   odd:  the rest is the uncompressed IDX content, which the target compresses into a valid
//         gzip stream at level (byte >> 1) % 10 (so the CRC holds and the mutations reach the
//         IDX checks behind the decompression, and the reads that succeed).
#include <zlib.h>

#include <vector>

#include "fuzz_idx.hpp"

namespace {

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size, int level) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    std::abort();
  std::vector<std::uint8_t> out(deflateBound(&z, uLong(size)));
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = uInt(size);
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string& path = fuzz::temp_path();
  if (data[0] % 2 == 0) {
    fuzz::write_file(path, data + 1, size - 1);
    const bool gzip_magic = size >= 3 && data[1] == 0x1f && data[2] == 0x8b;
    fuzz::read_and_check(path, size - 1, gzip_magic);
  } else {
    const std::vector<std::uint8_t> file = gzip(data + 1, size - 1, (data[0] >> 1) % 10);
    fuzz::write_file(path, file.data(), file.size());
    fuzz::read_and_check(path, file.size(), true);
  }
  return 0;
}
