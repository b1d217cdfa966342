"""Turns Google Benchmark JSON files into docs/benchmarks.md.

Benchmarks are named GROUP/CASE/IMPL. For every GROUP/CASE with a
`leakguard` row, each other IMPL is a peer measured in the same run; the
ratio is peer time / leakguard time (above 1: leakguard is faster).
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


def main(results_dir, command):
    groups = collections.OrderedDict()
    context = None
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for row in data.get("benchmarks", []):
            if row.get("run_type") == "aggregate" or row.get("error_occurred"):
                continue
            # Google Benchmark appends settings ("/real_time",
            # "/iterations:3", "/threads:2") to a name; they are not part
            # of GROUP/CASE/IMPL.
            parts = [p for p in row["name"].split("/")
                     if p not in ("real_time", "process_time", "manual_time")
                     and not re.match(r"^(iterations|repeats|threads|min_time|min_warmup_time):", p)]
            if len(parts) < 3:
                group, case, impl = os.path.basename(path)[:-5], parts[0], "leakguard"
            else:
                group, case, impl = parts[0], "/".join(parts[1:-1]), parts[-1]
            groups.setdefault(group, collections.OrderedDict()).setdefault(
                case, collections.OrderedDict())[impl] = to_ns(row)

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
