#!/usr/bin/env bash
# The project's two commands, on a fresh Debian 12 machine:
#   ./dev.sh run    build, then run the main job: the tutorial's MNIST MLP (examples/mnist_mlp)
#                   on the 10,000 digits shipped in data/mnist-10k
#   ./dev.sh test   build, then run the tests: Release, then AddressSanitizer + UBSan, then the
#                   threads tests under ThreadSanitizer, then a quick smoke run of the benchmarks
#                   (never a gate on speed)
# and one more:
#   ./dev.sh tutorial   build, then run the tutorial's first four steps (neuron … train_2_2_1)
# Missing Debian packages are installed when run as root; otherwise the exact apt-get line is
# printed. Extra arguments after `run` go to mnist_mlp (see ./dev.sh run --help).
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake make g++ pkg-config libfmt-dev doctest-dev libbenchmark-dev libcli11-dev zlib1g-dev
  libopenblas-dev nlohmann-json3-dev python3-numpy)
PACKAGES+=(clang libclang-rt-14-dev)  # the fuzz pass in tests(): clang's libFuzzer
PACKAGES+=(libopenmpi-dev openmpi-bin)  # data-parallel training (nn/distributed.hpp) and its tests
PACKAGES+=(graphviz)  # the tests render the graph pictures (to_dot) with dot
JOBS=2

install_missing_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "dev.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "dev.sh: missing Debian packages. Install them with:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
}

# configure_and_build DIR [cmake options...]. Callers pass every AUTODIFF_BUILD_* option: the
# cache remembers them, and `run` and `test` share the build directory.
configure_and_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DAUTODIFF_WARNINGS_AS_ERRORS=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

WITHOUT_TESTS=(-DAUTODIFF_BUILD_TESTS=OFF -DAUTODIFF_BUILD_BENCHMARKS=OFF -DAUTODIFF_BUILD_EXAMPLES=ON)
EVERYTHING=(-DAUTODIFF_BUILD_TESTS=ON -DAUTODIFF_BUILD_BENCHMARKS=ON -DAUTODIFF_BUILD_EXAMPLES=ON)

main_job() {
  configure_and_build build "${WITHOUT_TESTS[@]}"
  build/examples/mnist_mlp "$@"
}

tutorial() {
  configure_and_build build "${WITHOUT_TESTS[@]}"
  for example in neuron mse_loss backprop_by_hand train_2_2_1; do
    echo "== $example"
    "build/examples/$example"
  done
}

tests() {
  echo "== Release build: tests (with another CMake project using the libraries, both ways)"
  configure_and_build build "${EVERYTHING[@]}"
  ctest --test-dir build --output-on-failure | tee build/ctest.log

  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build: tests"
  local sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  # The consumer tests (another CMake project, via add_subdirectory and find_package) run in the
  # Release build only.
  # -O1 with line tables only (-g1): the reports keep their file:line stacks, and the build, most
  # of this command's time, takes 40% less (tests/test_tangent.cpp: 109 s at -O2 -g, 64 s).
  configure_and_build build-asan "${EVERYTHING[@]}" -DAUTODIFF_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DAUTODIFF_CONSUMER_TESTS=OFF -DCMAKE_CXX_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="$sanitize"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure | tee build-asan/ctest.log

  echo "== ThreadSanitizer build: the tests that use threads"
  mkdir -p build-tsan
  scripts/tsan.sh 2>&1 | tee build-tsan/tsan.log

  echo "== Benchmarks, smoke run (timings here are not a gate)"
  for b in build/bench/bench_*; do
    "$b" --benchmark_min_time=0.01 >/dev/null
    echo "$(basename "$b"): ran"
  done

  # A short fuzz pass over the data loaders (fuzz/README.md): each target in turn, memory-limited,
  # FUZZ_SECONDS each (default 25). A finding fails the tests.
  echo "== Fuzzing, ${FUZZ_SECONDS:-25}s per target (scripts/fuzz.sh)"
  if command -v clang++ >/dev/null; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-25}"
  else
    echo "clang++ not found: skipped (apt-get install -y clang libclang-rt-14-dev)"
  fi

  echo "== All tests passed"
  echo "Release:       $(grep 'tests passed' build/ctest.log)"
  echo "ASan + UBSan:  $(grep 'tests passed' build-asan/ctest.log)"
  echo "TSan:          $(grep 'test cases:' build-tsan/tsan.log)"
  grep 'tests passed' build-asan/ctest.log
}

case "${1:-}" in
  run) shift; install_missing_packages; main_job "$@" ;;
  tutorial) install_missing_packages; tutorial ;;
  test) install_missing_packages; tests ;;
  *) echo "usage: ./dev.sh run [mnist_mlp options] | ./dev.sh test | ./dev.sh tutorial" >&2; exit 2 ;;
esac
