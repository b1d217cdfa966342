"""Turns Google Benchmark JSON files into docs/benchmarks.md.

Benchmarks are named GROUP/CASE/IMPL. For every GROUP/CASE with a
`leakguard` row, each other IMPL is a peer measured in the same run; the
ratio is peer time / leakguard time (above 1: leakguard is faster).

A group whose cases have an `untracked` row and no `leakguard` row measures
what a tracker costs the code it watches: each other IMPL is a tracking
mode, and its cost is mode CPU time / untracked CPU time ("x untracked",
below 1.05 means within 5%). A group with neither, whose every row has
counters (Google Benchmark's state.counters), reports the counters instead
of times.

With --benchmark_repetitions, the median aggregate of each benchmark is used
(and its other runs are ignored); without, its one run. A cost table also
gives the cost at the fastest repetition when the benchmark computes a
`min` aggregate (sampler_benchmark's sampler_cost rows do).
"""
import collections
import glob
import json
import os
import platform
import re
import subprocess
import sys


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def to_ns(row):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[row.get("time_unit", "ns")]
    return row["real_time"] * scale


def cpu_ns(row):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[row.get("time_unit", "ns")]
    return row["cpu_time"] * scale


# Keys of a Google Benchmark JSON row that are not user counters.
NOT_COUNTERS = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
                "repetitions", "repetition_index", "threads", "iterations", "real_time",
                "cpu_time", "time_unit", "aggregate_name", "aggregate_unit", "error_occurred",
                "error_message", "label"}


def fmt_counter(v):
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.3g}k"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def main(results_dir, command):
    groups = collections.OrderedDict()
    cpu_times = {}   # (group, case, impl) -> CPU ns
    counters = {}    # (group, case, impl) -> {counter: value}
    cpu_min = {}     # (group, case, impl) -> CPU ns of the fastest repetition
    min_rows = []    # (run_name, CPU ns) of "min" aggregates
    context = None
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        rows = data.get("benchmarks", [])
        with_median = {r.get("run_name") for r in rows
                       if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"}
        for row in rows:
            if row.get("error_occurred"):
                continue
            if row.get("run_type") == "aggregate":
                if row.get("aggregate_name") == "min":
                    min_rows.append((row["run_name"], cpu_ns(row)))
                if row.get("aggregate_name") != "median":
                    continue
                name = row["run_name"]
            elif row.get("run_name", row["name"]) in with_median:
                continue
            else:
                name = row["name"]
            # Google Benchmark appends settings ("/real_time",
            # "/iterations:3", "/threads:2") to a name; they are not part
            # of GROUP/CASE/IMPL.
            parts = [p for p in name.split("/")
                     if p not in ("real_time", "process_time", "manual_time")
                     and not re.match(r"^(iterations|repeats|threads|min_time|min_warmup_time):", p)]
            if len(parts) < 3:
                group, case, impl = os.path.basename(path)[:-5], parts[0], "leakguard"
            else:
                group, case, impl = parts[0], "/".join(parts[1:-1]), parts[-1]
            groups.setdefault(group, collections.OrderedDict()).setdefault(
                case, collections.OrderedDict())[impl] = to_ns(row)
            cpu_times[(group, case, impl)] = cpu_ns(row)
            counters[(group, case, impl)] = {k: v for k, v in row.items()
                                             if k not in NOT_COUNTERS
                                             and isinstance(v, (int, float))}
        for name, ns in min_rows:
            parts = name.split("/")
            if len(parts) >= 3:
                cpu_min[(parts[0], "/".join(parts[1:-1]), parts[-1])] = ns
        min_rows.clear()

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    py = subprocess.run([sys.executable, "-c", "import sys; print(sys.version.split()[0])"],
                        capture_output=True, text=True).stdout.strip()
    print("# Benchmarks\n")
    print(f"Produced by `{command}` (do not edit by hand). Each ratio compares "
          "leakguard with a peer measured in the same run on the same data: "
          "peer time / leakguard time, so above 1 means leakguard is faster.\n")
    print(f"- machine: {cpu}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}")
    print(f"- Python: {py} ({sys.executable}); build: Release")
    if context:
        print(f"- date: {context.get('date', '?')}; libbenchmark build type: "
              f"{context.get('library_build_type', '?')}")
    print()
    for group, cases in groups.items():
        print(f"## {group}\n")
        has_ours = any("leakguard" in impls for impls in cases.values())
        untracked = not has_ours and any("untracked" in impls for impls in cases.values())
        if untracked:
            print("CPU time; cost = mode CPU time / untracked CPU time, same run.\n")
            fastest = any(key[0] == group for key in cpu_min)
            print("| case | untracked | mode | mode time | cost (x untracked) |"
                  + (" cost at the fastest repetition |" if fastest else ""))
            print("| --- | ---: | --- | ---: | ---: |" + (" ---: |" if fastest else ""))
            for case, impls in cases.items():
                base = cpu_times.get((group, case, "untracked"))
                base_min = cpu_min.get((group, case, "untracked"))
                for impl in impls:
                    if impl == "untracked":
                        continue
                    t = cpu_times[(group, case, impl)]
                    cost = f"{t / base:.2f}x" if base else "-"
                    line = (f"| {case} | {fmt_time(base) if base else '-'} | {impl} | "
                            f"{fmt_time(t)} | {cost} |")
                    if fastest:
                        t_min = cpu_min.get((group, case, impl))
                        line += (f" {t_min / base_min:.3f}x |" if t_min and base_min
                                 else " - |")
                    print(line)
            print()
            continue
        if not has_ours and all(counters[(group, case, impl)]
                                for case, impls in cases.items() for impl in impls):
            names = []
            for case, impls in cases.items():
                for impl in impls:
                    for k in counters[(group, case, impl)]:
                        if k not in names:
                            names.append(k)
            print("| case | impl | " + " | ".join(names) + " |")
            print("| --- | --- | " + " | ".join("---:" for _ in names) + " |")
            for case, impls in cases.items():
                for impl in impls:
                    c = counters[(group, case, impl)]
                    cells = [fmt_counter(c[k]) if k in c else "-" for k in names]
                    print(f"| {case} | {impl} | " + " | ".join(cells) + " |")
            print()
            continue
        print("| case | leakguard | peer | peer time | ratio |")
        print("| --- | ---: | --- | ---: | ---: |")
        for case, impls in cases.items():
            ours = impls.get("leakguard")
            peers = [(k, v) for k, v in impls.items() if k != "leakguard"]
            if not peers:
                print(f"| {case} | {fmt_time(ours) if ours else '-'} | - | - | - |")
            for peer, t in peers:
                ratio = f"{t / ours:.1f}x" if ours else "-"
                print(f"| {case} | {fmt_time(ours) if ours else '-'} | {peer} | "
                      f"{fmt_time(t)} | {ratio} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "benchmarks/run.sh")
