// libFuzzer target: the input is an IDX file, read as a raw file (and, should the mutator make
// it start with the gzip magic bytes, as a .gz: the reader tells them apart by content).
#include "fuzz_idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::temp_path();
  fuzz::write_file(path, data, size);
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  fuzz::read_and_check(path, size, gzip);
  return 0;
}
