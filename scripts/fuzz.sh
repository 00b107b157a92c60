#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (in build-fuzz/, apart from the main build) and
# runs each for SECONDS (default 60), one after the other, memory-limited, then prints each one's
# executions, coverage and corpus size. Exits non-zero if any target found something: the input
# is then in build-fuzz/artifacts/TARGET/ (reproduce with build-fuzz/fuzz/TARGET FILE).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# (targets: fuzz_idx_raw fuzz_idx_gz fuzz_safetensors fuzz_model fuzz_checkpoint; default all, one
# after the other)
# Needs Debian's clang and libclang-rt-14-dev. The seed corpora in fuzz/corpus/ are read, never
# written: what a run learns stays in build-fuzz/corpus/ and seeds the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_idx_raw fuzz_idx_gz fuzz_safetensors fuzz_model fuzz_checkpoint)
dir=build-fuzz

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: needs clang++ (apt-get install -y clang libclang-rt-14-dev)" >&2
  exit 1
fi

# -Wno-c99-extensions: OpenBLAS's header uses C99's _Complex, which clang's -Wpedantic reports.
cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS=-Wno-c99-extensions -DAUTODIFF_FUZZ=ON -DAUTODIFF_WARNINGS_AS_ERRORS=OFF \
  -DAUTODIFF_BUILD_TESTS=OFF -DAUTODIFF_BUILD_BENCHMARKS=OFF -DAUTODIFF_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j 2 --target "${targets[@]}" >/dev/null

# ASan's quarantine of freed memory (256 MB by default) would fill -rss_limit_mb's budget with
# the reader's freed buffers and halve the speed; 16 MB still catches a use soon after a free.
export ASAN_OPTIONS="quarantine_size_mb=16${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

status=0
summary=()
for target in "${targets[@]}"; do
  corpus=$dir/corpus/$target
  artifacts=$dir/artifacts/$target/
  log=$dir/$target.log
  mkdir -p "$corpus" "$artifacts"
  echo "== $target: ${seconds}s"
  code=0
  dict=()  # the format's words, where the target has a dictionary
  [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  # -max_total_time ends the run; timeout is the backstop should the target hang.
  timeout --kill-after=30 $((seconds + 120)) "$dir/fuzz/$target" -rss_limit_mb=512 -timeout=10 \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" \
    "$corpus" "fuzz/corpus/$target" >"$log" 2>&1 || code=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  line="$target: ${seconds}s, ${execs:-?} executions (${rate:-?}/s), peak RSS ${rss:-?} MB; last: ${last:-none}"
  if [ "$code" -ne 0 ]; then
    line="$line; FINDING (exit $code): see $log and $artifacts"
    grep -E 'ERROR|finding:|SUMMARY|out-of-memory|deadly signal' "$log" | head -5 || true
    status=1
  fi
  echo "$line"
  summary+=("$line")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$status"
