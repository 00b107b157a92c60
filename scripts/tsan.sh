#!/usr/bin/env bash
# The tests that use threads, under ThreadSanitizer: a separate build (build-tsan) with
# -fsanitize=thread of autodiff_thread_tests (the test files with thread cases: tests/CMakeLists.txt
# finds them), then the test cases that start threads or hand tapes over.
#   scripts/tsan.sh            build and run
# TSan needs the address space layout it expects; setarch -R turns off ASLR where the kernel
# randomises too much for it.
set -euo pipefail
cd "$(dirname "$0")/.."
flags="-fsanitize=thread -fno-omit-frame-pointer"
# Line tables only (-g1): TSan's reports keep file:line, and the build is faster than with -g.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DAUTODIFF_WARNINGS_AS_ERRORS=ON \
  -DAUTODIFF_BUILD_TESTS=ON -DAUTODIFF_BUILD_BENCHMARKS=OFF -DAUTODIFF_BUILD_EXAMPLES=OFF \
  -DAUTODIFF_CONSUMER_TESTS=OFF -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build build-tsan -j 2 --target autodiff_thread_tests
run=(build-tsan/tests/autodiff_thread_tests -tc="*thread*")
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" setarch "$(uname -m)" -R "${run[@]}"
