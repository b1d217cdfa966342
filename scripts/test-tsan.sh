#!/usr/bin/env bash
# ThreadSanitizer run of leakguard's threaded tests (GIL guards, the
# interpreter's watcher registry, sinks, the request tracker, the bounded
# cache, the event bus, ...), built with clang -fsanitize=thread against
#   - CPython 3.13 built --with-thread-sanitizer, and
#   - Abseil built with -fsanitize=thread (Debian's libabsl is not, and TSan
#     cannot see synchronisation inside uninstrumented code: every
#     absl::Mutex-guarded field would be reported as a race),
# both from Debian source packages by scripts/pythons.sh, cached.
# Suppressions and their reasons: scripts/tsan.supp.
# Ends with one line: "tsan: N passed, N failed".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

scripts/setup
scripts/pythons.sh 3.13-tsan absl-tsan
python=$(scripts/pythons.sh --print-python 3.13-tsan)
absl=$(scripts/pythons.sh --print-prefix absl-tsan)

dir=build/tsan
mkdir -p build
rm -rf "$dir/test-results"
# The threaded parts; only their binaries are built.
threaded=(gil_test interpreter_test report_sink_test request_tracker_test bounded_cache_test
          event_bus_test leak_detector_test attach_test gc_test weakref_test sampler_test)
cmake -S "$LEAKGUARD_ROOT" -B "$dir" -DPython3_EXECUTABLE="$python" -DLEAKGUARD_WERROR=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEAKGUARD_SANITIZE=thread \
  -DCMAKE_PREFIX_PATH="$absl" -DCMAKE_BUILD_RPATH="$absl/lib" \
  -DLEAKGUARD_INSTALL=OFF -DLEAKGUARD_BUILD_BENCHMARKS=OFF \
  -DLEAKGUARD_BUILD_BINDINGS=OFF -DLEAKGUARD_BUILD_EXAMPLES=OFF >"$dir.configure.log" 2>&1 || {
  cat "$dir.configure.log"
  exit 1
}
cmake --build "$dir" -j "$LEAKGUARD_JOBS" --target "${threaded[@]}"
regex="^($(IFS='|'; echo "${threaded[*]}"))\$"
export TSAN_OPTIONS="suppressions=$LEAKGUARD_ROOT/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1 exitcode=66"
(cd "$dir" && ctest --output-on-failure -R "$regex")
echo "tsan: $(lg_count "$dir")"
