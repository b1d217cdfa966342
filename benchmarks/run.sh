#!/usr/bin/env bash
# Runs every leakguard benchmark binary and writes docs/benchmarks.md: one
# table per group, leakguard beside each peer measured in the same run, with
# the ratio (peer time / leakguard time; above 1 means leakguard is faster).
#
#   benchmarks/run.sh            full sizes, writes docs/benchmarks.md
#   benchmarks/run.sh --smoke    tiny sizes, one pass, checks they still run
#                                (what CI does); writes nothing
#   --no-build                   use the binaries already in the build dir
#
# Benchmarks are named GROUP/CASE/IMPL, IMPL being `leakguard` or a peer.
# Environment: LEAKGUARD_PYTHON (default /usr/bin/python3), LEAKGUARD_JOBS,
# LEAKGUARD_BENCH_BUILD (default build/bench).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$LEAKGUARD_ROOT"

smoke=0
build_it=1
for arg in "$@"; do
  case $arg in
    --smoke) smoke=1 ;;
    --no-build) build_it=0 ;;
    *) echo "usage: benchmarks/run.sh [--smoke] [--no-build]" >&2; exit 2 ;;
  esac
done
build=${LEAKGUARD_BENCH_BUILD:-build/bench}
mkdir -p build
((build_it == 0)) || lg_build "$build" -DCMAKE_BUILD_TYPE=Release -DLEAKGUARD_BUILD_TESTS=OFF \
  -DLEAKGUARD_BUILD_BENCHMARKS=ON >"$build.build.log" 2>&1 || {
  cat "$build.build.log"
  exit 1
}

out=$build/benchmark-results
rm -rf "$out"
mkdir -p "$out"
status=0
for bin in "$build"/benchmarks/*_benchmark; do
  name=$(basename "$bin")
  echo "== $name"
  if ((smoke)); then
    LEAKGUARD_BENCH_SMOKE=1 "$bin" --benchmark_min_time=0.001 \
      --benchmark_out="$out/$name.json" --benchmark_out_format=json \
      >"$out/$name.log" 2>&1 || { cat "$out/$name.log"; echo "FAILED: $name"; status=1; }
  else
    "$bin" --benchmark_out="$out/$name.json" --benchmark_out_format=json \
      --benchmark_counters_tabular=true || { echo "FAILED: $name"; status=1; }
  fi
done
if ((smoke)); then
  echo "benchmarks: smoke run $( ((status == 0)) && echo passed || echo FAILED)"
  exit $status
fi

"$LEAKGUARD_PYTHON" benchmarks/report.py "$out" "benchmarks/run.sh" >docs/benchmarks.md
echo "wrote docs/benchmarks.md"
exit $status
