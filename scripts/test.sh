#!/usr/bin/env bash
# Every test: installs what is missing, then
#   1. builds with g++ (warnings are errors) and runs the suite through ctest,
#      including the install test (a consumer project built against an
#      installed leakguard with find_package and with pkg-config);
#   2. builds with clang under AddressSanitizer + UndefinedBehaviorSanitizer
#      and runs the suite again;
#   3. runs the libFuzzer targets for a bounded time (scripts/fuzz.sh);
#   4. runs every benchmark once at a tiny size (a smoke test);
#   5. runs doxygen over include/ with warnings as errors;
#   6. checks the style (scripts/check-style.sh: clang-format over every C
#      and C++ file, clang-tidy over src/).
# Ends with one line: "tests: N passed, N failed".
# Environment: LEAKGUARD_PYTHON (default /usr/bin/python3), LEAKGUARD_JOBS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

scripts/setup

gcc_dir=build/gcc
asan_dir=build/asan
mkdir -p build
rm -rf "$gcc_dir/test-results" "$asan_dir/test-results"

echo "== g++: build and test"
lg_build_std "$gcc_dir"
(cd "$gcc_dir" && ctest --output-on-failure -j "$LEAKGUARD_JOBS")

echo "== clang: AddressSanitizer + UndefinedBehaviorSanitizer"
lg_build "$asan_dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=Debug -DLEAKGUARD_SANITIZE=address,undefined \
  -DLEAKGUARD_INSTALL=OFF -DLEAKGUARD_BUILD_BENCHMARKS=OFF
# libpython is not instrumented and keeps some allocations for the life of the
# process by design; its leaks are suppressed (scripts/lsan.supp says which).
export ASAN_OPTIONS=detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$LEAKGUARD_ROOT/scripts/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd "$asan_dir" && ctest --output-on-failure -j "$LEAKGUARD_JOBS")
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

echo "== libFuzzer targets under ASan + UBSan, 20 s each (scripts/fuzz.sh)"
scripts/fuzz.sh

echo "== benchmarks, once each at a tiny size (smoke test; no timings asserted)"
LEAKGUARD_BENCH_BUILD=$gcc_dir benchmarks/run.sh --smoke --no-build

echo "== doxygen (warnings are errors)"
doxygen Doxyfile

echo "== style: clang-format and clang-tidy (scripts/check-style.sh)"
scripts/check-style.sh

echo "tests: $(lg_count "$gcc_dir" "$asan_dir")"
