// Costs of the guards a host wraps around every unit of work, beside the
// plain-Python recipes (docs/design.md, "The peers") measured in the same run:
//   guards/process_enter_exit      MemoryGuard(kProcess)  vs  psutil RSS before/after
//   guards/traced_enter_exit_10k   MemoryGuard(kTraced, by file, collect)  vs  the
//                                  recipe's memory_guard context manager, on a heap
//                                  with 10k traced blocks
//   tracker/call_1ms               a ~1 ms Python call: bare, inside a
//                                  RequestTracker unit, and inside the recipe's
//                                  per-request middleware (psutil + snapshot)
//   guards/traced_enter_exit_by_line_1m
//                                  MemoryGuard(kTraced, by line, collect)  vs  the
//                                  recipe's memory_guard grouping by line, on a
//                                  heap with 1M more traced blocks (built before
//                                  the timing, dropped after)
//   detector/round_1m              one LeakDetector round made on demand
//                                  (ReportNow(): /proc sample, traced memory,
//                                  snapshot, diff by line against the baseline
//                                  taken at Start(), the 10 lines that grew;
//                                  no type census)  vs  what a host writes for
//                                  the same job in Python: a /proc RSS read,
//                                  get_traced_memory(), take_snapshot() and
//                                  compare_to(baseline, 'lineno')[:10], on the
//                                  same 1M-block heap
// LEAKGUARD_BENCH_SMOKE=1: heaps of 500 and 1000 blocks instead of 10k and 1M.

#include <cstdio>
#include <string>

#include "absl/time/time.h"

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/leak_detector.h"
#include "leakguard/memory_guard.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/request_tracker.h"
#include "leakguard/sink.h"
#include "leakguard/tracemalloc.h"

namespace {

using leakguard::Ref;
using leakguard::Steal;

using leakguard::bench::Smoke;

PyObject* Globals() { return PyModule_GetDict(PyImport_AddModule("__main__")); }

Ref Exec(const std::string& code) {
  Ref r = Steal(PyRun_String(code.c_str(), Py_file_input, Globals(), Globals()));
  if (!r) std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str());
  return r;
}

PyObject* Func(const char* name) { return PyDict_GetItemString(Globals(), name); }

// Discards reports: the benchmarks measure the guards, not a sink.
class NullSink : public leakguard::Sink {
 public:
  void Write(const leakguard::Report&) noexcept override {}
};
NullSink null_sink;

// Counts the reports it is given (and drops them): proof that each on-demand
// round really ran.
class CountingSink : public leakguard::Sink {
 public:
  void Write(const leakguard::Report& report) noexcept override {
    ++count_;
    lines_ += static_cast<int64_t>(report.top_lines.size());
  }
  int64_t count() const { return count_; }
  int64_t lines() const { return lines_; }

 private:
  int64_t count_ = 0;
  int64_t lines_ = 0;
};

constexpr char kSetup[] = R"py(
import contextlib, gc, os, time, tracemalloc
import psutil

_proc = psutil.Process(os.getpid())

def psutil_guard_cycle():
    before = _proc.memory_info().rss
    after = _proc.memory_info().rss
    return after - before

# The recipe's memory_guard, as a user writes it (prints only over warn_mb).
@contextlib.contextmanager
def memory_guard(label="operation", warn_mb=100, key='filename'):
    gc.collect()
    if tracemalloc.is_tracing():
        snap_before = tracemalloc.take_snapshot()
    try:
        yield
    finally:
        gc.collect()
        if tracemalloc.is_tracing():
            snap_after = tracemalloc.take_snapshot()
            stats = snap_after.compare_to(snap_before, key)
            growth = sum(s.size_diff for s in stats if s.size_diff > 0)
            if growth > warn_mb * 1024 * 1024:
                print(f"WARNING: [{label}] Memory grew by {growth/1024/1024:.1f} MB")

def recipe_guard_cycle():
    with memory_guard("bench", warn_mb=100):
        pass

def recipe_guard_cycle_lineno():
    with memory_guard("bench", warn_mb=100, key='lineno'):
        pass

def make_heap(n):
    global _heap
    _heap = [str(i) * 3 for i in range(n)]

# The 1M-block heap of the traced_enter_exit_1m and detector rows: one
# traced str per element, live only while those benchmarks run.
def make_big_heap(n):
    global _big_heap
    _big_heap = [str(i) * 3 for i in range(n)]
    return len(_big_heap)

def drop_big_heap():
    global _big_heap
    _big_heap = None

# The detector's job as a host writes it in Python: a baseline at start,
# then per round the RSS from /proc, the traced memory, a snapshot and its
# diff by line against the baseline, the 10 lines that grew most.
_PAGE = os.sysconf("SC_PAGE_SIZE")

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE

def recipe_detector_start():
    global _detector_rss, _detector_traced, _detector_base
    _detector_rss = _rss_bytes()
    _detector_traced = tracemalloc.get_traced_memory()[0]
    _detector_base = tracemalloc.take_snapshot()

def recipe_detector_round():
    rss = _rss_bytes() - _detector_rss
    traced = tracemalloc.get_traced_memory()[0] - _detector_traced
    stats = tracemalloc.take_snapshot().compare_to(_detector_base, 'lineno')
    return rss, traced, stats[:10]

def recipe_detector_stop():
    global _detector_base
    _detector_base = None

def calibrate():
    global _loops
    _loops = 1000
    while True:
        t = time.perf_counter()
        for _ in range(_loops): pass
        if time.perf_counter() - t >= 0.001: return _loops
        _loops *= 2

def work():
    for _ in range(_loops): pass

# The recipe's per-request middleware, around the same work.
_count = 0
def recipe_middleware_request():
    global _count
    _count += 1
    rss_before = _proc.memory_info().rss
    snapshot_before = tracemalloc.take_snapshot()
    work()
    rss_after = _proc.memory_info().rss
    rss_diff = (rss_after - rss_before) / 1024 / 1024
    if _count % 100 == 0 or rss_diff > 5:
        stats = tracemalloc.take_snapshot().compare_to(snapshot_before, 'lineno')
)py";

void ProcessLeakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto guard =
        leakguard::MemoryGuard::Enter({.mode = leakguard::GuardMode::kProcess, .sink = &null_sink});
    benchmark::DoNotOptimize(guard->Exit());
  }
}

void ProcessPsutil(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("psutil_guard_cycle")));
    benchmark::DoNotOptimize(r.get());
  }
}

void TracedLeakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto guard =
        leakguard::MemoryGuard::Enter({.warn_bytes = 100 << 20,
                                       .mode = leakguard::GuardMode::kTraced,
                                       .group_by = leakguard::tracemalloc::GroupBy::kFilename,
                                       .collect_before = true,
                                       .collect_after = true,
                                       .sink = &null_sink});
    benchmark::DoNotOptimize(guard->Exit());
  }
}

void TracedRecipe(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("recipe_guard_cycle")));
    benchmark::DoNotOptimize(r.get());
  }
}

void CallBare(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("work")));
    benchmark::DoNotOptimize(r.get());
  }
}

void CallTracked(benchmark::State& state) {
  auto tracker = leakguard::RequestTracker::Create(
      {.report_every = 100, .rss_threshold_bytes = 5 << 20, .sink = &null_sink});
  for (auto _ : state) {
    auto unit = (*tracker)->Begin("request");
    Ref r = Steal(PyObject_CallNoArgs(Func("work")));
    benchmark::DoNotOptimize(r.get());
  }
}

void CallRecipeMiddleware(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("recipe_middleware_request")));
    benchmark::DoNotOptimize(r.get());
  }
}

int BigHeapSize() { return Smoke() ? 1000 : 1000000; }

// The big heap for the lifetime of the object: built untimed by the
// benchmark that needs it, dropped when it ends.
class BigHeap {
 public:
  BigHeap() : made_(Steal(PyObject_CallFunction(Func("make_big_heap"), "i", BigHeapSize()))) {}
  ~BigHeap() {
    Ref dropped = Steal(PyObject_CallNoArgs(Func("drop_big_heap")));
    if (!dropped) PyErr_Clear();
  }
  BigHeap(const BigHeap&) = delete;
  BigHeap& operator=(const BigHeap&) = delete;
  bool ok() const { return static_cast<bool>(made_); }

 private:
  Ref made_;
};

void TracedLinenoLeakguard(benchmark::State& state) {
  BigHeap heap;
  if (!heap.ok()) {
    leakguard::bench::FailPython(state);
    return;
  }
  for (auto _ : state) {
    auto guard =
        leakguard::MemoryGuard::Enter({.warn_bytes = 100 << 20,
                                       .mode = leakguard::GuardMode::kTraced,
                                       .group_by = leakguard::tracemalloc::GroupBy::kLineno,
                                       .collect_before = true,
                                       .collect_after = true,
                                       .sink = &null_sink});
    if (!guard.ok()) {
      leakguard::bench::Fail(state, guard.status());
      return;
    }
    auto report = guard->Exit();
    if (!report.ok()) {
      leakguard::bench::Fail(state, report.status());
      return;
    }
    benchmark::DoNotOptimize(report->top_lines.data());
  }
}

void TracedLinenoRecipe(benchmark::State& state) {
  BigHeap heap;
  if (!heap.ok()) {
    leakguard::bench::FailPython(state);
    return;
  }
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("recipe_guard_cycle_lineno")));
    if (!r) {
      leakguard::bench::FailPython(state);
      return;
    }
  }
}

// One on-demand round per iteration; rounds on the interval never come (an
// hour apart). The baseline (taken by Start()) is untimed.
void DetectorLeakguard(benchmark::State& state) {
  BigHeap heap;
  if (!heap.ok()) {
    leakguard::bench::FailPython(state);
    return;
  }
  CountingSink sink;
  auto detector = leakguard::LeakDetector::Create(
      {.interval = absl::Hours(1), .top = 10, .type_census = false, .sink = &sink});
  if (!detector.ok()) {
    leakguard::bench::Fail(state, detector.status());
    return;
  }
  if (absl::Status started = (*detector)->Start(); !started.ok()) {
    leakguard::bench::Fail(state, started);
    return;
  }
  for (auto _ : state) {
    if (absl::Status s = (*detector)->ReportNow(); !s.ok()) {
      leakguard::bench::Fail(state, s);
      break;
    }
  }
  (*detector)->Stop();
  if (sink.count() != static_cast<int64_t>(state.iterations())) {
    state.SkipWithError("the detector wrote fewer reports than rounds asked for");
  }
  state.counters["heap_blocks"] = BigHeapSize();
}

void DetectorRecipe(benchmark::State& state) {
  BigHeap heap;
  Ref started;
  if (heap.ok()) started = Steal(PyObject_CallNoArgs(Func("recipe_detector_start")));
  if (!started) {
    leakguard::bench::FailPython(state);
    return;
  }
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("recipe_detector_round")));
    if (!r) {
      leakguard::bench::FailPython(state);
      break;
    }
  }
  Ref stopped = Steal(PyObject_CallNoArgs(Func("recipe_detector_stop")));
  if (!stopped) PyErr_Clear();
  state.counters["heap_blocks"] = BigHeapSize();
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  auto tracing = leakguard::tracemalloc::TracingScope::Start(1);
  if (!tracing.ok() || !Exec(kSetup)) return 1;
  const int heap = Smoke() ? 500 : 10000;
  Ref made = Steal(PyObject_CallFunction(Func("make_heap"), "i", heap));
  Ref loops = Steal(PyObject_CallNoArgs(Func("calibrate")));
  if (!made || !loops) return 1;
  const std::string traced =
      Smoke() ? "guards/traced_enter_exit_500" : "guards/traced_enter_exit_10k";
  benchmark::RegisterBenchmark("guards/process_enter_exit/leakguard", ProcessLeakguard);
  benchmark::RegisterBenchmark("guards/process_enter_exit/psutil", ProcessPsutil);
  benchmark::RegisterBenchmark((traced + "/leakguard").c_str(), TracedLeakguard)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark((traced + "/recipe_memory_guard").c_str(), TracedRecipe)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("tracker/call_1ms/bare", CallBare)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("tracker/call_1ms/leakguard", CallTracked)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("tracker/call_1ms/recipe_middleware", CallRecipeMiddleware)
      ->Unit(benchmark::kMicrosecond);
  const std::string big = Smoke() ? "_1k" : "_1m";
  const std::string by_line = "guards/traced_enter_exit_by_line" + big;
  benchmark::RegisterBenchmark((by_line + "/leakguard").c_str(), TracedLinenoLeakguard)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark((by_line + "/recipe_memory_guard").c_str(), TracedLinenoRecipe)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(("detector/round" + big + "/leakguard").c_str(), DetectorLeakguard)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(("detector/round" + big + "/recipe").c_str(), DetectorRecipe)
      ->Unit(benchmark::kMillisecond);
  return leakguard::bench::RunRegistered(argc, argv);
}
