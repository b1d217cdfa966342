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

A group whose every row has a `bytes` counter (and that has `leakguard`
rows) measures memory, not time: its table gives each implementation's
bytes and the ratio peer bytes / leakguard bytes (above 1: leakguard takes
less). How the bytes were measured is in that case's explanation.

Under each table, every case is explained in one line (what is timed, what
the peer does): EXPLANATIONS below, keyed by GROUP/CASE with the sizes in
the name written as <N> ("snapshot/take_<N>" stands for take_1k, take_100k
and take_1m), so smoke and full runs share one line. A row without one
prints none, and report.py warns about it on stderr;
`report.py --check RESULTS_DIR` lists such rows and exits 1 if there are any.

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


# One line per GROUP/CASE (see the docstring): what is timed, and what each
# peer does. Sizes in a case's name are written <N> (size_key()).
EXPLANATIONS = {
    # bounded_cache_benchmark.cc
    "bounded_cache/get_hit":
        "Get() of a present key in a full 4096-entry BoundedCache<uint64_t, uint64_t> "
        "(keys visited with stride 7); peer: the textbook std::list + std::unordered_map "
        "LRU, same keys.",
    "bounded_cache/put_evict":
        "Put() of a new key into the full 4096-entry cache, evicting the oldest entry; "
        "peer: the same Puts into the std::list + std::unordered_map LRU.",
    "bounded_cache/mixed_<N>_threads":
        "wall time of 2 threads x 20,000 operations (80% Get / 20% Put over 4x more keys "
        "than entries) on ConcurrentBoundedCache; peer: the list LRU behind one std::mutex.",
    "bounded_cache/mixed_<N>_threads_absl_deadlock_detection":
        "the same with absl's deadlock detector on (leakguard's shards lock std::mutex, so "
        "it is not consulted); peer: the same std::mutex-locked list LRU.",
    # doctor_benchmark.cc
    "doctor/diagnose_<N>_heap":
        "Diagnose() of a tiny leaking function (3 warm-up + 20 calls) on a heap of 1M "
        "gc-tracked lists; peer: the manual hunt on the same heap (tracemalloc snapshots "
        "+ compare_to, objgraph.growth before and after, objgraph.find_backref_chain).",
    # export_benchmark.cc
    "prometheus/render_<N>_sites":
        "PrometheusSink::Render() of the series one detector report naming 20 lines "
        "makes; peer: prometheus_client's generate_latest() over the same series.",
    "prometheus/textfile_<N>_sites":
        "PrometheusSink::Write() of that report to a textfile (temp file + rename); peer: "
        "prometheus_client's write_to_textfile() of the same series.",
    "collapsed/snapshot_<N>":
        "ProfileFromSnapshot + RenderCollapsed of a snapshot of 10k blocks in 20 stacks; "
        "peer: the Python recipe (statistics('traceback'), frames joined) on the same "
        "snapshot.",
    # guards_benchmark.cc (tracemalloc on, 1 frame, for the whole binary)
    "guards/process_enter_exit":
        "MemoryGuard(kProcess) enter + exit around nothing (a SampleProcess() each side: "
        "RSS, peak, descriptors, threads); peer: two psutil memory_info().rss "
        "reads and their difference.",
    "guards/traced_enter_exit_<N>":
        "MemoryGuard(kTraced, by file, gc.collect() before and after) around nothing, 10k "
        "traced strings live; peer: the recipe's memory_guard context manager "
        "(gc.collect(), take_snapshot() before and after, compare_to('filename')).",
    "guards/traced_enter_exit_by_line_<N>":
        "the same kTraced guard grouping by line, with 1M more traced strings live; peer: "
        "the recipe's memory_guard with compare_to('lineno'), same heap.",
    "tracker/call_1ms":
        "a ~1 ms Python loop inside a RequestTracker unit (report every 100th, 5 MiB RSS "
        "threshold); peers: the bare call (overhead row, ratio below 1) and the recipe's "
        "per-request middleware (psutil RSS and a take_snapshot() per call).",
    "detector/round_<N>":
        "one LeakDetector round on demand (ReportNow(): /proc sample, traced memory, "
        "snapshot, diff by line against the Start() baseline, 10 lines; no type census), "
        "1M traced strings live; peer: the host's Python recipe for the same job (/proc "
        "RSS read, get_traced_memory(), take_snapshot(), compare_to(baseline, "
        "'lineno')[:10]), same heap.",
    # object_graph_benchmark.cc (a heap of about 1M gc-tracked objects)
    "graph/typestats_<N>":
        "TakeTypeCensus().Counts() of every gc-tracked object by type; peer: "
        "objgraph.typestats() on the same heap.",
    "graph/growth_<N>":
        "GrowthTracker::Update() with its default young-generation gc.collect(1) first; "
        "peers: objgraph.growth() (a full gc.collect() every call) and a bare "
        "gc.collect().",
    "graph/growth_full_collect_<N>":
        "GrowthTracker::Update() after a full collection (CollectDepth::kFull, "
        "objgraph's exact counts); peer: objgraph.growth().",
    "graph/growth_nocollect_<N>":
        "GrowthTracker::Update() without a collection; peers: objgraph.growth() with its "
        "gc.collect() made a no-op (same work) and objgraph.growth() as it is.",
    "graph/backref_chain_<N>":
        "FindBackrefChain() of one object (chains of 6 to 9 references, no collection "
        "first); peer: objgraph.find_backref_chain() of the same object.",
    "graph/backref_chain_<N>_collect":
        "the same after leakguard's young-generation collection; peer: "
        "objgraph.find_backref_chain() (which collects fully).",
    "graph/backref_chain_<N>_full_collect":
        "the same after a full collection (CollectDepth::kFull), as objgraph does; peer: "
        "objgraph.find_backref_chain().",
    "graph/backref_chains_<N>":
        "the chains of 100 different objects: one ReferrerGraph::Build(), 100 FindChain() "
        "queries; peer: 100 objgraph.find_backref_chain() calls.",
    # plumbing_benchmark.cc
    "plumbing/sample_process":
        "SampleProcess() (RSS, peak, descriptors, threads from /proc); peer: psutil "
        "memory_info().rss, num_fds() and num_threads().",
    "plumbing/gil_acquire_release":
        "a GilAcquire + release pair from a thread that released the GIL; no peer.",
    "plumbing/ref_copy":
        "copying a Ref (one incref, one decref); no peer.",
    # pymodule_benchmark.cc (each call made from C with PyObject_Vectorcall)
    "lru_cache/hit":
        "a hit, f(1), on lru_cache(maxsize=128) of f(x) = x; peers: functools.lru_cache "
        "(given an argument tuple, as from Python code) and cachetools.cached(LRUCache).",
    "lru_cache/miss":
        "a miss that evicts: each call a new key (4096 keys made before, cycled through "
        "128 entries); peers: functools.lru_cache and cachetools LRUCache, same keys.",
    "lru_cache/hit_ttl":
        "a hit on lru_cache(maxsize=128, ttl=3600); peer: "
        "cachetools.cached(TTLCache(128, ttl=3600)).",
    "lru_cache/miss_ttl":
        "a miss that evicts on the ttl cache, the same 4096 keys; peer: cachetools "
        "TTLCache.",
    "lru_cache/hit_loop":
        "a Python loop `for _ in range(1000): f(1)` of hits (1000 calls per iteration); "
        "peer: the same loop over functools.lru_cache.",
    "lru_cache/hit_keywords":
        "a hit with a keyword argument, f(1, scale=2); peer: functools.lru_cache.",
    "lru_cache/method_hit_weak_self":
        "a hit on a cached method with weak_self=True (the instance keyed by a weak "
        "reference); peer: functools.lru_cache on the method (it holds the instance).",
    "lru_cache/method_hit":
        "a hit on a cached method, strong self; peer: functools.lru_cache on the method.",
    "memory_guard/traced_enter_exit_<N>":
        "`with leakguard.memory_guard(mode='traced', top=10)` around nothing, 10k traced "
        "strings live; peer: tracemalloc's Python API (two take_snapshot(), "
        "compare_to('lineno')[:10]).",
    "memory_guard/process_call_1us":
        "a ~1 us Python function called inside `with leakguard.memory_guard("
        "mode='process', warn_mb=100)` (RSS, peak, descriptors, threads each side); "
        "peers: the same function without the guard (bare, overhead row, ratio below 1) "
        "and the psutil recipe reading the same facts (memory_info().rss, num_fds(), "
        "num_threads() under oneshot(), before and after, the same checks).",
    "event_bus/emit_<N>_methods":
        "emit(1) to 100 subscribed bound methods; peer: the plain-Python weakref bus "
        "(a WeakMethod per listener).",
    "event_bus/emit_<N>_functions":
        "emit(1) to 100 subscribed functions; peer: the plain-Python weakref bus.",
    "event_bus/subscribe_unsubscribe_<N>":
        "100 bound methods subscribed, then unsubscribed; peer: the plain-Python weakref "
        "bus.",
    "memory/lru_cache_<N>":
        "memory of leakguard.lru_cache(maxsize=1M) holding 1M int keys made beforehand "
        "(f(x) = x): tracemalloc's traced delta around making and filling it; peer: "
        "functools.lru_cache(maxsize=1M), same keys, same method.",
    # middleware_benchmark.cc
    "middleware/wsgi_1ms":
        "one request through WSGIMiddleware(trace_every=100, the default trace_budget of 1% "
        "of the time) around a ~1 ms WSGI app, the body read and closed; peers: the app alone (bare, overhead row) and the recipe's "
        "per-request middleware (psutil, a snapshot per request, tracemalloc always on).",
    # tracemalloc_benchmark.cc (N bytes objects from 50 lines, 5 frames traced)
    "snapshot/take_<N>":
        "tracemalloc::Snapshot::Take() of the live traced heap (about N bytes objects, 5 "
        "frames); peer: tracemalloc.take_snapshot() (its freeing untimed).",
    "snapshot/statistics_<N>":
        "statistics('lineno') of one snapshot of N traces (leakguard's converted from "
        "Python's: the same traces); peer: Snapshot.statistics('lineno').",
    "snapshot/compare_<N>":
        "compare_to(old, 'lineno') of two snapshots (the newer: 10% more objects, 5% of "
        "the old gone); peer: Snapshot.compare_to(old, 'lineno'), same traces.",
    "snapshot/compare_traceback_<N>":
        "the same grouped by 'traceback' (200 distinct stacks); peer: "
        "Snapshot.compare_to(old, 'traceback').",
    "snapshot/take_compare_<N>":
        "end to end: take, take, compare_to('lineno'); peer: the same with "
        "take_snapshot() and Snapshot.compare_to().",
    "memory/snapshot_<N>":
        "memory one held snapshot of 1M traces takes: RSS delta around "
        "tracemalloc::Snapshot::Take() (malloc_trim before each reading); peer: "
        "tracemalloc.take_snapshot() of the same heap, same method.",
    # sampler_benchmark.cc: sampler_cost rows are CPU time of one pass under
    # each mode, `untracked` the base.
    "sampler_cost/alloc_loop":
        "a Python loop making a dict and a list per iteration (50k iterations a pass).",
    "sampler_cost/json_roundtrip":
        "10 json.dumps + json.loads of a ~60 KB document a pass.",
    "sampler_cost/handler_mix":
        "5000 calls of a request-handler-like function (string formatting, list and dict "
        "building, one class instance) a pass.",
    "sampler_cost/raytrace_like":
        "a small ray-sphere tracer over a Vector class (40 x 32 rays) a pass.",
    "sampler_cost/malloc_loop":
        "200k malloc/free of 16 B to 4 KiB in the binary's own C++ code a pass (native "
        "modes only).",
    "sampler_cost/numpy_loop":
        "10k NumPy arrays of 2 to 5.5 KiB made and dropped a pass (native modes only; "
        "skipped without numpy).",
    "sampler_cost/ctypes_loop":
        "20k libc malloc/free called through ctypes a pass (native modes only).",
    "sampler_snapshot/take_<N>":
        "one snapshot of N live blocks: AllocationSampler::TakeSnapshot() at R = 1; peers: "
        "tracemalloc::Snapshot::Take() (tracemalloc_probe) and tracemalloc.take_snapshot(), "
        "each tracker alone on the heap.",
    "sampler_accuracy/heap_<N>_lines":
        "counters, not time: RMS relative error (%) of the sampler's live bytes for 4 "
        "lines against tracemalloc's exact bytes over 20 trials, one row per interval R.",
    "sampler_accuracy/heap_<N>_lines_x4":
        "the same 4 lines 4 times bigger (15 to 40 MiB each) at R = 64 KiB: the error of a "
        "site of S bytes is about sqrt(R / S), so this is where 10% is reachable.",
    # cli_benchmark.cc
    "cli/run_empty_script":
        "wall time of fork + exec + wait of `leakguard run empty.py` (embedded CPython, "
        "tracemalloc on, memory summary at exit, output to /dev/null); peers: `python3 -X "
        "tracemalloc empty.py` (no summary) and `python3 empty.py` (the floor, ratio "
        "below 1).",
}


def size_key(group, case):
    """GROUP/CASE with each size in the case's name (an underscore-separated
    number, maybe with k or m: 500, 10k, 1m) written <N>."""
    return group + "/" + re.sub(r"(?<=_)\d+[km]?(?=_|$)", "<N>", case)


def explanation(group, case):
    return EXPLANATIONS.get(f"{group}/{case}") or EXPLANATIONS.get(size_key(group, case))


def print_explanations(group, cases):
    lines = [(case, explanation(group, case)) for case in cases]
    lines = [(case, text) for case, text in lines if text]
    for case, text in lines:
        print(f"- `{case}`: {text}")
    if lines:
        print()


def fmt_bytes(b):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(b) >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def fmt_ratio(r):
    # Below 0.1 (an overhead row: a bare call beside a guarded one) with two
    # significant digits rather than "0.0x".
    return f"{r:.1f}x" if r >= 0.1 else f"{r:.2g}x"


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


def main(results_dir, command, check=False):
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

    missing = [f"{group}/{case}" for group, cases in groups.items() for case in cases
               if not explanation(group, case)]
    if check:
        for name in missing:
            print(f"no explanation: {name}")
        print(f"{sum(len(c) for c in groups.values()) - len(missing)} cases explained, "
              f"{len(missing)} without")
        return 1 if missing else 0
    if missing:
        print("report.py: cases without an explanation (EXPLANATIONS): " + ", ".join(missing),
              file=sys.stderr)

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
          "peer time / leakguard time, so above 1 means leakguard is faster. "
          "The sampler's instruction counts and its native peer (heaptrack), measured "
          "apart, are in [sampler-benchmarks.md](sampler-benchmarks.md).\n")
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
            print_explanations(group, cases)
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
            print_explanations(group, cases)
            continue
        if has_ours and all("bytes" in counters[(group, case, impl)]
                            for case, impls in cases.items() for impl in impls):
            print("| case | leakguard bytes | peer | peer bytes | ratio (peer/leakguard) |")
            print("| --- | ---: | --- | ---: | ---: |")
            for case, impls in cases.items():
                ours = counters[(group, case, "leakguard")]["bytes"] if "leakguard" in impls \
                    else None
                cell = fmt_bytes(ours) if ours is not None else "-"
                peers = [k for k in impls if k != "leakguard"]
                if not peers:
                    print(f"| {case} | {cell} | - | - | - |")
                for peer in peers:
                    theirs = counters[(group, case, peer)]["bytes"]
                    ratio = fmt_ratio(theirs / ours) if ours else "-"
                    print(f"| {case} | {cell} | {peer} | {fmt_bytes(theirs)} | {ratio} |")
            print()
            print_explanations(group, cases)
            continue
        print("| case | leakguard | peer | peer time | ratio |")
        print("| --- | ---: | --- | ---: | ---: |")
        for case, impls in cases.items():
            ours = impls.get("leakguard")
            peers = [(k, v) for k, v in impls.items() if k != "leakguard"]
            if not peers:
                print(f"| {case} | {fmt_time(ours) if ours else '-'} | - | - | - |")
            for peer, t in peers:
                ratio = fmt_ratio(t / ours) if ours else "-"
                print(f"| {case} | {fmt_time(ours) if ours else '-'} | {peer} | "
                      f"{fmt_time(t)} | {ratio} |")
        print()
        print_explanations(group, cases)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if not args:
        sys.exit("usage: report.py [--check] RESULTS_DIR [COMMAND]")
    sys.exit(main(args[0], args[1] if len(args) > 1 else "benchmarks/run.sh", check))
