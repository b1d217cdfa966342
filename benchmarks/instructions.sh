#!/usr/bin/env bash
# Instructions executed by the sampler benchmark's workloads under each
# tracking mode, counted by valgrind's callgrind: a deterministic companion
# to the CPU-time tables (on a shared 2-core machine CPU time varies by
# +-10% from run to run, more than the sampler's cost at R = 512 KiB).
# Only the workload's passes are counted: --toggle-collect on
# LeakguardBenchPass(), the function of sampler_benchmark.cc that runs one
# pass (the untimed warm-up plus one timed pass), so neither the set-up
# (interpreter start, imports, the tracker's Start and Stop) nor Google
# Benchmark is counted. PYTHONHASHSEED=0, so that the interpreter does the
# same work each run.
#
#   benchmarks/instructions.sh [--modes=M,M...] [--keep=DIR] [WORKLOAD...]
#
# Workloads: the Python ones (alloc_loop json_roundtrip handler_mix
# raytrace_like) and the native ones (malloc_loop numpy_loop ctypes_loop);
# default: all. Modes: default, every mode the binary registers for one of
# the workloads, in the binary's order; a workload without a mode shows "-",
# one the binary skipped (numpy_loop without numpy) "skipped". --keep=DIR
# keeps each run's callgrind output as DIR/WORKLOAD.MODE.out, for
# `callgrind_annotate --inclusive=yes DIR/malloc_loop.native_512k.out`.
#
# Prints one Markdown table: instructions per mode and the ratio to the
# first column (untracked by default). Needs a Release build with benchmarks
# (benchmarks/run.sh makes one in build/bench; LEAKGUARD_BENCH_BUILD
# overrides).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$LEAKGUARD_ROOT"
build=${LEAKGUARD_BENCH_BUILD:-build/bench}
bin=$build/benchmarks/sampler_benchmark
[[ -x $bin ]] || { echo "instructions.sh: no $bin (run benchmarks/run.sh first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed" >&2; exit 2; }
modes=()
keep=
workloads=()
for arg in "$@"; do
  case $arg in
    --modes=*) IFS=, read -r -a modes <<<"${arg#--modes=}" ;;
    --keep=*) keep=${arg#--keep=} ;;
    -*) echo "usage: benchmarks/instructions.sh [--modes=M,M...] [--keep=DIR] [WORKLOAD...]" >&2
      exit 2 ;;
    *) workloads+=("$arg") ;;
  esac
done
((${#workloads[@]})) || workloads=(alloc_loop json_roundtrip handler_mix raytrace_like
  malloc_loop numpy_loop ctypes_loop)
[[ -z $keep ]] || mkdir -p "$keep"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# sampler_cost/WORKLOAD/MODE, one a line, as the binary registers them.
"$bin" --benchmark_list_tests >"$out/list" 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
registered() { grep -qx "sampler_cost/$1/$2" "$out/list"; }
for w in "${workloads[@]}"; do
  grep -q "^sampler_cost/$w/" "$out/list" || { echo "instructions.sh: no workload $w" >&2; exit 2; }
done
if ((${#modes[@]} == 0)); then
  while read -r m; do
    for w in "${workloads[@]}"; do
      if registered "$w" "$m"; then modes+=("$m"); break; fi
    done
  done < <(awk -F/ '$1 == "sampler_cost" && !seen[$3]++ {print $3}' "$out/list")
fi

printf '| workload |'; printf ' %s |' "${modes[@]}"; printf '\n|---|'
printf -- '---|%.0s' "${modes[@]}"; printf '\n'
for w in "${workloads[@]}"; do
  base=0
  printf '| %s |' "$w"
  for m in "${modes[@]}"; do
    if ! registered "$w" "$m"; then
      printf ' - |'
      continue
    fi
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
      --collect-atstart=no --toggle-collect=LeakguardBenchPass \
      "$bin" --benchmark_filter="^sampler_cost/$w/$m\$" --benchmark_min_time=0.0000001 \
      >"$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
    [[ -z $keep ]] || cp "$out/cg" "$keep/$w.$m.out"
    if grep -q 'ERROR OCCURRED' "$out/log"; then
      grep 'ERROR OCCURRED' "$out/log" >&2
      printf ' skipped |'
      continue
    fi
    n=$(awk '/^summary:/ {print $2}' "$out/cg")
    ((base)) || base=$n
    printf ' %sM (%sx) |' "$(awk -v n="$n" 'BEGIN {printf "%.1f", n / 1e6}')" \
      "$(awk -v n="$n" -v b="$base" 'BEGIN {printf "%.3f", n / b}')"
  done
  printf '\n'
done
