// nn/distributed.hpp without MPI (-DAUTODIFF_MPI=OFF): always a single process.
#include <cstdio>
#include <stdexcept>

#include "nn/distributed.hpp"

namespace nn::distributed {

bool available() { return false; }

Environment::Environment(int& /*argc*/, char**& /*argv*/) {
  // Every process would train alone and write the same files.
  if (launched_by_mpirun())
    throw std::runtime_error(
        "launched by mpirun, but this library was built without MPI: rebuild with "
        "-DAUTODIFF_MPI=ON (Debian: apt-get install libopenmpi-dev openmpi-bin), or run one "
        "process");
}

Environment::~Environment() = default;

void Environment::fail(const char* program, const char* what) noexcept {
  std::fprintf(stderr, "%s: %s\n", program, what);
}

}  // namespace nn::distributed
