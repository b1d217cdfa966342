#!/usr/bin/env bash
# The native sampler against its exact peer, heaptrack (which records every
# malloc and free through an LD_PRELOAD library), on the sampler benchmark's
# C++ malloc/free loop (sampler_cost/malloc_loop in
# benchmarks/sampler_benchmark.cc).
#
#   benchmarks/native_peers.sh [ROUNDS]    default 5
#
# Each round runs, each in a process of its own pinned to CPU 1
# (taskset -c 1) and timing 5 repetitions of at least 0.2 s, in an order
# that rotates from round to round:
#   untracked    sampler_cost/malloc_loop/untracked
#   heaptrack    the same benchmark under `heaptrack -o DIR/...` (its trace
#                goes to a temporary directory, deleted at the end)
#   native_512k  sampler_cost/malloc_loop/native_512k
#   native_64k   sampler_cost/malloc_loop/native_64k
# Prints one Markdown table: the median over all repetitions of each mode's
# CPU time and real time per pass and its ratio to untracked's, and the
# ratio of the fastest repetitions (other processes only ever add time, so
# on a busy machine the minimum is the steadier figure). CPU time is the
# benchmark thread's (Google Benchmark's default), so it leaves out
# heaptrack_interpret, the process to which heaptrack's library streams the
# events; pinned to the same CPU, that process's work does show in the real
# time. Needs a Release build with benchmarks (benchmarks/run.sh makes one
# in build/bench; LEAKGUARD_BENCH_BUILD overrides) and heaptrack (Debian
# package `heaptrack`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$LEAKGUARD_ROOT"
rounds=${1:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: benchmarks/native_peers.sh [ROUNDS]" >&2; exit 2; }
build=${LEAKGUARD_BENCH_BUILD:-build/bench}
bin=$build/benchmarks/sampler_benchmark
[[ -x $bin ]] || { echo "native_peers.sh: no $bin (run benchmarks/run.sh first)" >&2; exit 2; }
command -v heaptrack >/dev/null || {
  echo "native_peers.sh: heaptrack is not installed (apt-get install heaptrack)" >&2
  exit 2
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
modes=(untracked heaptrack native_512k native_64k)

for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#modes[@]}; k++)); do
    m=${modes[(r + k) % ${#modes[@]}]}
    launcher=(taskset -c 1)
    case=$m
    if [[ $m == heaptrack ]]; then
      launcher+=(heaptrack -o "$out/trace/heaptrack.$r")
      case=untracked
    fi
    "${launcher[@]}" "$bin" --benchmark_filter="^sampler_cost/malloc_loop/$case\$" \
      --benchmark_repetitions=5 --benchmark_min_time=0.2 \
      --benchmark_out="$out/$m.$r.json" --benchmark_out_format=json >"$out/log" 2>&1 || {
      cat "$out/log" >&2
      exit 1
    }
  done
done

"$LEAKGUARD_PYTHON" - "$out" "$rounds" "${modes[@]}" <<'PY'
import glob, json, statistics, sys

out, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
cpu, real, samples = {}, {}, {}
for m in modes:
    for path in sorted(glob.glob(f"{out}/{m}.*.json")):
        with open(path) as f:
            rows = json.load(f)["benchmarks"]
        for row in rows:
            if row.get("error_occurred"):
                sys.exit(f"native_peers.sh: {m}: {row.get('error_message')}")
            if row.get("run_type") != "iteration":
                continue
            k = scale[row["time_unit"]]
            cpu.setdefault(m, []).append(row["cpu_time"] * k)
            real.setdefault(m, []).append(row["real_time"] * k)
            if "samples" in row:  # since Start(): the warm-up and every timed pass
                samples.setdefault(m, []).append(row["samples"] / (row["iterations"] + 1))
base_cpu = statistics.median(cpu["untracked"])
base_real = statistics.median(real["untracked"])
print(f"malloc_loop (200k malloc/free pairs per pass): {rounds} rounds of 5 repetitions, "
      "each mode in its own process, pinned to CPU 1")
print()
print("| mode | CPU time per pass | x untracked | CPU time min-max | x untracked (fastest) "
      "| real time per pass | x untracked | samples per pass |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in modes:
    c, w = statistics.median(cpu[m]), statistics.median(real[m])
    s = f"{statistics.median(samples[m]):.0f}" if m in samples else "-"
    print(f"| {m} | {c:.2f} ms | {c / base_cpu:.3f}x | {min(cpu[m]):.2f}-{max(cpu[m]):.2f} ms "
          f"| {min(cpu[m]) / min(cpu['untracked']):.3f}x "
          f"| {w:.2f} ms | {w / base_real:.3f}x | {s} |")
PY
