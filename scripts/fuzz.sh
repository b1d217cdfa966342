#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang under
# -fsanitize=fuzzer,address,undefined and runs each for a bounded time from
# its seed corpus (tests/fuzz/corpus/<target>/, copied: the seeds are not
# changed). A crash, a sanitizer report or a failed check in a target fails
# the run; the input that did it is kept in build/fuzz/artifacts/ (turn it
# into a regression test in the normal suite).
#
#   scripts/fuzz.sh              every target, LEAKGUARD_FUZZ_SECONDS each (20)
#   scripts/fuzz.sh fnmatch      one target
#
# Targets: fnmatch (tracemalloc filter patterns against CPython's fnmatch),
# snapshot_load (tracemalloc::Snapshot::Load of a file), json_quote (the
# reports' JSON string writer: always valid UTF-8 JSON), cli_args (the
# `leakguard` command's argument parser: NUL-separated command lines).
# Environment: LEAKGUARD_PYTHON, LEAKGUARD_JOBS, LEAKGUARD_FUZZ_SECONDS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

seconds=${LEAKGUARD_FUZZ_SECONDS:-20}
targets=("$@")
((${#targets[@]})) || targets=(fnmatch snapshot_load json_quote cli_args)
dir=build/fuzz
mkdir -p build

cmake -S . -B "$dir" -DPython3_EXECUTABLE="$LEAKGUARD_PYTHON" -DLEAKGUARD_WERROR=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLEAKGUARD_SANITIZE=address,undefined -DLEAKGUARD_BUILD_FUZZERS=ON \
  -DLEAKGUARD_BUILD_TESTS=OFF -DLEAKGUARD_BUILD_BENCHMARKS=OFF -DLEAKGUARD_BUILD_TOOLS=OFF \
  -DLEAKGUARD_BUILD_BINDINGS=OFF -DLEAKGUARD_BUILD_EXAMPLES=OFF -DLEAKGUARD_BUILD_DOCS=OFF \
  -DLEAKGUARD_INSTALL=OFF >"$dir.configure.log" 2>&1 || {
  cat "$dir.configure.log"
  exit 1
}
cmake --build "$dir" -j "$LEAKGUARD_JOBS" --target "${targets[@]/%/_fuzzer}" >"$dir.build.log" 2>&1 || {
  cat "$dir.build.log"
  exit 1
}

mkdir -p "$dir/artifacts"
status=0
for t in "${targets[@]}"; do
  work=$dir/corpus/$t
  rm -rf "$work"
  mkdir -p "$work"
  # The targets that embed CPython: libpython is not instrumented and keeps
  # allocations for the life of the process by design, so no leak checking
  # there (the JSON writer and the argument parser are pure C++ and keep it).
  leaks=1
  [[ $t == json_quote || $t == cli_args ]] || leaks=0
  # A pickle can declare a bytes object of any size (BYTEARRAY8 and the
  # like), and CPython's unpickler allocates it before reading: allocations
  # above 512 MiB fail (max_allocation_size_mb, allocator_may_return_null),
  # so the target sees the MemoryError a process short of memory would get,
  # and libFuzzer's memory limit stays for leakguard's own use.
  echo "== fuzz $t (${seconds}s)"
  if ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=512 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/tests/fuzz/${t}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
    "$work" "tests/fuzz/corpus/$t" >"$dir/$t.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$dir/$t.log" | tr '\n' ' '
    echo
  else
    tail -40 "$dir/$t.log"
    echo "FAILED: fuzz $t (inputs in $dir/artifacts/)"
    status=1
  fi
done
exit $status
