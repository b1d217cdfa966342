// Costs of the guards a host wraps around every unit of work, beside the
// plain-Python recipes (docs/design.md, "The peers") measured in the same run:
//   guards/process_enter_exit      MemoryGuard(kProcess)  vs  psutil RSS before/after
//   guards/traced_enter_exit_10k   MemoryGuard(kTraced, by file, collect)  vs  the
//                                  recipe's memory_guard context manager, on a heap
//                                  with 10k traced blocks
//   tracker/call_1ms               a ~1 ms Python call: bare, inside a
//                                  RequestTracker unit, and inside the recipe's
//                                  per-request middleware (psutil + snapshot)

#include <cstdio>
#include <string>

#include "bench_main.h"
#include "benchmark/benchmark.h"
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
def memory_guard(label="operation", warn_mb=100):
    gc.collect()
    if tracemalloc.is_tracing():
        snap_before = tracemalloc.take_snapshot()
    try:
        yield
    finally:
        gc.collect()
        if tracemalloc.is_tracing():
            snap_after = tracemalloc.take_snapshot()
            stats = snap_after.compare_to(snap_before, 'filename')
            growth = sum(s.size_diff for s in stats if s.size_diff > 0)
            if growth > warn_mb * 1024 * 1024:
                print(f"WARNING: [{label}] Memory grew by {growth/1024/1024:.1f} MB")

def recipe_guard_cycle():
    with memory_guard("bench", warn_mb=100):
        pass

def make_heap(n):
    global _heap
    _heap = [str(i) * 3 for i in range(n)]

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
  return leakguard::bench::RunRegistered(argc, argv);
}
