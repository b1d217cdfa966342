#!/usr/bin/env bash
# Instructions executed by the sampler benchmark's workloads under each
# tracking mode, counted by valgrind's callgrind: a deterministic companion
# to the CPU-time tables (on a shared 2-core machine CPU time varies by
# +-10% from run to run, more than the sampler's cost at R = 512 KiB).
# Only the workload calls are counted (--toggle-collect on the C API call
# that runs them: the untimed warm-up call plus one timed call), with
# PYTHONHASHSEED=0 so that the interpreter does the same work each run.
#
#   benchmarks/instructions.sh [WORKLOAD...]    default: all four
#
# Prints one Markdown table: instructions per mode and the ratio to the
# untracked run. Needs a Release build with benchmarks (benchmarks/run.sh
# makes one in build/bench; LEAKGUARD_BENCH_BUILD overrides).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$LEAKGUARD_ROOT"
build=${LEAKGUARD_BENCH_BUILD:-build/bench}
bin=$build/benchmarks/sampler_benchmark
[[ -x $bin ]] || { echo "instructions.sh: no $bin (run benchmarks/run.sh first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed" >&2; exit 2; }
workloads=("$@")
((${#workloads[@]})) || workloads=(alloc_loop json_roundtrip handler_mix raytrace_like)
modes=(untracked tracemalloc_1 tracemalloc_25 sampler_hooks_only sampler_512k sampler_64k
  sampler_4k sampler_512k_1f sampler_512k_32f sampler_exact sampler_exact_1f)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '| workload |'; printf ' %s |' "${modes[@]}"; printf '\n|---|'
printf -- '---|%.0s' "${modes[@]}"; printf '\n'
for w in "${workloads[@]}"; do
  base=0
  printf '| %s |' "$w"
  for m in "${modes[@]}"; do
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
      --collect-atstart=no --toggle-collect=_PyObject_CallFunction_SizeT \
      "$bin" --benchmark_filter="^sampler_cost/$w/$m\$" --benchmark_min_time=0.0000001 \
      >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
    n=$(awk '/^summary:/ {print $2}' "$out/cg")
    ((base)) || base=$n
    printf ' %sM (%sx) |' "$(awk -v n="$n" 'BEGIN {printf "%.1f", n / 1e6}')" \
      "$(awk -v n="$n" -v b="$base" 'BEGIN {printf "%.3f", n / b}')"
  done
  printf '\n'
done
