// tracemalloc snapshots: leakguard against Python's tracemalloc module on the
// same heap, in the same run.
//
//   snapshot/take_<N>/...           take one snapshot of N live traces
//   snapshot/statistics_<N>/...     statistics('lineno') of one snapshot
//   snapshot/compare_<N>/...        compare_to(old, 'lineno'): grouping both
//                                   snapshots and diffing
//   snapshot/compare_traceback_<N>/ the same grouped by 'traceback'
//   snapshot/take_compare_<N>/...   end to end: take, take, compare_to
//
// The statistics and compare cases run on identical traces: leakguard's
// snapshots there are converted from Python's snapshot objects (both
// without the traces of tracemalloc.py, i.e. of the snapshot objects
// themselves). The take cases read the live heap; so does take_compare,
// where Python's second snapshot holds the first one's tuples, as it does
// for any user of take_snapshot(). The heap: N bytes objects allocated from 50
// lines of one file through 4 wrapper functions (so 'traceback' has 200
// keys), tracemalloc tracing 5 frames; the newer snapshot has 10% more
// objects and 5% fewer of the old ones. LEAKGUARD_BENCH_SMOKE=1 uses 1000
// traces instead of 100k and 1M.
//
//   memory/snapshot_1m/...          the memory one snapshot of 1M live
//                                   traces takes while it is held: leakguard's
//                                   tracemalloc::Snapshot (C++ memory, which
//                                   tracemalloc does not see) against Python's
//                                   tracemalloc.Snapshot (Python objects). So
//                                   the bytes are the RSS delta around taking
//                                   it, the same method for both (malloc_trim
//                                   before each reading; bench_main.h); the
//                                   traced delta is the traced_bytes counter.
//                                   Cross-checks, as counters: leakguard's
//                                   malloc_bytes (mallinfo2's in-use delta),
//                                   Python's sizeof_bytes (sys.getsizeof of
//                                   the snapshot's objects, shared ones once).
//                                   The heap: the same workload, 1M objects,
//                                   nothing else held (the other cases'
//                                   snapshots are dropped first).
//                                   LEAKGUARD_BENCH_SMOKE=1: 1000 traces.

#include <malloc.h>

#include <optional>
#include <string>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"

namespace {

using leakguard::Ref;
using leakguard::Steal;
namespace tm = leakguard::tracemalloc;

constexpr char kWorkload[] = R"PY(
import tracemalloc
_src = []
for _k in range(50):
    _src.append(f"def f{_k}(i):\n    return bytes(16 + (i * 7 + {_k}) % 300)\n")
for _w in range(4):
    _src.append(f"def w{_w}(f, i):\n    return f(i)\n")
_ns = {}
exec(compile("".join(_src), "bench_workload.py", "exec"), _ns)
_fs = [_ns[f"f{k}"] for k in range(50)]
_ws = [_ns[f"w{w}"] for w in range(4)]

def build(n, offset=0):
    return [_ws[i % 4](_fs[i % 50], i + offset) for i in range(n)]

def take():
    return tracemalloc.take_snapshot()

def take_clean():
    # Without the traces of the snapshot objects taken before (a snapshot
    # of N traces is N tuples on the traced heap).
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])

def compare(new, old, key):
    return new.compare_to(old, key)

def statistics(snapshot, key):
    return snapshot.statistics(key)

def snapshot_sizeof(snapshot):
    # sys.getsizeof of a snapshot's objects: its list of traces, each trace
    # tuple and int past the small-int cache, each distinct traceback and
    # frame tuple once (filename strings are the code objects').
    import sys
    seen = set()
    total = 0
    traces = snapshot.traces._traces
    for o in [traces, *traces]:
        total += sys.getsizeof(o)
    for t in traces:
        for o in (t[1], t[3]):
            if not -5 <= o <= 256:
                total += sys.getsizeof(o)
        tb = t[2]
        if id(tb) not in seen:
            seen.add(id(tb))
            total += sys.getsizeof(tb)
            for frame in tb:
                if id(frame) not in seen:
                    seen.add(id(frame))
                    total += sys.getsizeof(frame)
    return total

def take_compare(key):
    old = tracemalloc.take_snapshot()
    new = tracemalloc.take_snapshot()
    return new.compare_to(old, key)
)PY";

struct Fixture {
  int n = 0;
  std::optional<tm::TracingScope> tracing;
  Ref ns;      // the workload's globals
  Ref keep;    // the live objects
  Ref old_py;  // Python snapshots
  Ref new_py;
  std::optional<tm::Snapshot> old_lg;  // the same traces, converted
  std::optional<tm::Snapshot> new_lg;
};

Fixture& State() {
  static Fixture* fixture = new Fixture;
  return *fixture;
}

PyObject* Fn(const char* name) {
  return PyDict_GetItemString(State().ns.get(), name);  // borrowed
}

using leakguard::bench::Fail;

// Drops the heap and the snapshots, stops tracing (which drops all traces),
// and starts it again, the workload compiled.
bool Restart(benchmark::State& state) {
  Fixture& f = State();
  f.n = 0;
  f.old_lg.reset();
  f.new_lg.reset();
  f.old_py.Reset();
  f.new_py.Reset();
  f.keep.Reset();
  f.tracing.reset();  // stops tracing: drops all traces
  auto scope = tm::TracingScope::Start(5);
  if (!scope.ok()) return Fail(state, scope.status());
  f.tracing.emplace(*std::move(scope));
  if (!f.ns) {
    f.ns = Steal(PyDict_New());
    PyDict_SetItemString(f.ns.get(), "__builtins__", PyEval_GetBuiltins());
    Ref done = Steal(PyRun_String(kWorkload, Py_file_input, f.ns.get(), f.ns.get()));
    if (!done) return Fail(state, leakguard::StatusFromPythonError());
  }
  return true;
}

// Makes the heap hold about n live traces, and the two snapshots of it.
bool Ensure(benchmark::State& state, int n) {
  Fixture& f = State();
  if (f.n == n) return true;
  if (!Restart(state)) return false;
  f.keep = Steal(PyObject_CallFunction(Fn("build"), "i", n));
  if (!f.keep) return Fail(state, leakguard::StatusFromPythonError());
  f.old_py = Steal(PyObject_CallNoArgs(Fn("take_clean")));
  Ref extra = Steal(PyObject_CallFunction(Fn("build"), "ii", n / 10, n));
  if (!extra || !f.old_py) return Fail(state, leakguard::StatusFromPythonError());
  if (PyList_SetSlice(f.keep.get(), 0, n / 20, nullptr) != 0 ||
      PyList_SetSlice(f.keep.get(), PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, extra.get()) != 0) {
    return Fail(state, leakguard::StatusFromPythonError());
  }
  f.new_py = Steal(PyObject_CallNoArgs(Fn("take_clean")));
  if (!f.new_py) return Fail(state, leakguard::StatusFromPythonError());
  auto old_lg = tm::Snapshot::FromPython(f.old_py);
  auto new_lg = tm::Snapshot::FromPython(f.new_py);
  if (!old_lg.ok()) return Fail(state, old_lg.status());
  if (!new_lg.ok()) return Fail(state, new_lg.status());
  f.old_lg.emplace(*std::move(old_lg));
  f.new_lg.emplace(*std::move(new_lg));
  f.n = n;
  return true;
}

void Counters(benchmark::State& state) {
  state.counters["traces"] =
      static_cast<double>(State().new_lg ? State().new_lg->trace_count() : 0);
}

// ------------------------------------------------------------- take

void TakeLeakguard(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    auto s = tm::Snapshot::Take();
    if (!s.ok()) {
      Fail(state, s.status());
      return;
    }
    benchmark::DoNotOptimize(s->trace_count());
  }
  Counters(state);
}

void TakeTracemalloc(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    Ref s = Steal(PyObject_CallNoArgs(Fn("take")));
    if (!s) {
      Fail(state, leakguard::StatusFromPythonError());
      return;
    }
    state.PauseTiming();  // Python's snapshot is freed later, untimed
    s.Reset();
    state.ResumeTiming();
  }
  Counters(state);
}

// --------------------------------------------------- statistics / compare

void StatisticsLeakguard(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    auto stats = State().new_lg->Statistics(tm::GroupBy::kLineno);
    benchmark::DoNotOptimize(stats->size());
  }
  Counters(state);
}

void StatisticsTracemalloc(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallFunction(Fn("statistics"), "Os", State().new_py.get(), "lineno"));
    if (!r) Fail(state, leakguard::StatusFromPythonError());
  }
  Counters(state);
}

void CompareLeakguard(benchmark::State& state, int n, tm::GroupBy by) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    auto diffs = State().new_lg->CompareTo(*State().old_lg, by);
    benchmark::DoNotOptimize(diffs->size());
  }
  Counters(state);
}

void CompareTracemalloc(benchmark::State& state, int n, const char* key) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallFunction(Fn("compare"), "OOs", State().new_py.get(),
                                        State().old_py.get(), key));
    if (!r) Fail(state, leakguard::StatusFromPythonError());
  }
  Counters(state);
}

// ------------------------------------------------------------ end to end

void TakeCompareLeakguard(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    auto old_snapshot = tm::Snapshot::Take();
    auto new_snapshot = tm::Snapshot::Take();
    if (!old_snapshot.ok() || !new_snapshot.ok()) {
      Fail(state, old_snapshot.ok() ? new_snapshot.status() : old_snapshot.status());
      return;
    }
    auto diffs = new_snapshot->CompareTo(*old_snapshot, tm::GroupBy::kLineno);
    benchmark::DoNotOptimize(diffs->size());
  }
  Counters(state);
}

void TakeCompareTracemalloc(benchmark::State& state, int n) {
  if (!Ensure(state, n)) return;
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallFunction(Fn("take_compare"), "s", "lineno"));
    if (!r) Fail(state, leakguard::StatusFromPythonError());
  }
  Counters(state);
}

// ---------------------------------------------------------------- memory

// The memory one snapshot of a heap of n traces takes; see the file comment.
void SnapshotMemory(benchmark::State& state, int n, bool ours) {
  // The heap alone: no other snapshot held, and the workload compiled before
  // tracing restarts (its code objects are not in the traced heap).
  if (!State().ns && !Restart(state)) return;
  if (!Restart(state)) return;
  State().keep = Steal(PyObject_CallFunction(Fn("build"), "i", n));
  if (!State().keep) {
    Fail(state, leakguard::StatusFromPythonError());
    return;
  }
  double bytes = 0;
  double traced = 0;
  double traces = 0;
  double check = 0;
  for (auto _ : state) {
    const int64_t rss_before = leakguard::bench::ResidentBytes();
    const struct mallinfo2 malloc_before = mallinfo2();
    auto traced_before = tm::GetTracedMemory();
    std::optional<tm::Snapshot> lg;
    Ref py;
    if (ours) {
      auto s = tm::Snapshot::Take();
      if (!s.ok()) {
        Fail(state, s.status());
        return;
      }
      lg.emplace(*std::move(s));
    } else {
      py = Steal(PyObject_CallNoArgs(Fn("take")));
      if (!py) {
        Fail(state, leakguard::StatusFromPythonError());
        return;
      }
    }
    auto traced_after = tm::GetTracedMemory();
    const struct mallinfo2 malloc_after = mallinfo2();
    const int64_t rss_after = leakguard::bench::ResidentBytes();
    if (!traced_before.ok() || !traced_after.ok()) {
      Fail(state, traced_before.ok() ? traced_after.status() : traced_before.status());
      return;
    }
    bytes = static_cast<double>(rss_after - rss_before);
    traced = static_cast<double>(static_cast<int64_t>(traced_after->current) -
                                 static_cast<int64_t>(traced_before->current));
    if (lg) {
      traces = static_cast<double>(lg->trace_count());
      check = static_cast<double>(malloc_after.uordblks + malloc_after.hblkhd) -
              static_cast<double>(malloc_before.uordblks + malloc_before.hblkhd);
    } else {
      Ref list = Steal(PyObject_GetAttrString(py.get(), "traces"));
      traces = list ? static_cast<double>(PyObject_Length(list.get())) : -1;
      Ref sizeof_bytes = Steal(PyObject_CallOneArg(Fn("snapshot_sizeof"), py.get()));
      check = sizeof_bytes ? PyFloat_AsDouble(sizeof_bytes.get()) : -1;
      PyErr_Clear();
    }
  }
  state.counters[ours ? "malloc_bytes" : "sizeof_bytes"] = check;
  state.counters["bytes"] = bytes;
  state.counters["traced_bytes"] = traced;
  state.counters["traces"] = traces;
  State().keep.Reset();
  State().tracing.reset();  // Restart() set n = 0: the next case builds its heap.
}

// No Iterations()/MinTime(): they would add "/iterations:N" to the names,
// which must stay GROUP/CASE/IMPL. The default already runs a case that
// takes longer than the minimum time (0.5 s) exactly once.
void Register(int n, const std::string& size) {
  auto add = [&](const std::string& c, const std::string& impl, auto fn, auto... args) {
    benchmark::RegisterBenchmark(("snapshot/" + c + "_" + size + "/" + impl).c_str(), fn, n,
                                 args...)
        ->Unit(benchmark::kMillisecond);
  };
  add("take", "leakguard", TakeLeakguard);
  add("take", "tracemalloc", TakeTracemalloc);
  add("statistics", "leakguard", StatisticsLeakguard);
  add("statistics", "tracemalloc", StatisticsTracemalloc);
  add("compare", "leakguard", CompareLeakguard, tm::GroupBy::kLineno);
  add("compare", "tracemalloc", CompareTracemalloc, "lineno");
  add("compare_traceback", "leakguard", CompareLeakguard, tm::GroupBy::kTraceback);
  add("compare_traceback", "tracemalloc", CompareTracemalloc, "traceback");
  add("take_compare", "leakguard", TakeCompareLeakguard);
  add("take_compare", "tracemalloc", TakeCompareTracemalloc);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  if (leakguard::bench::Smoke()) {
    Register(1000, "1k");
  } else {
    Register(100000, "100k");
    Register(1000000, "1m");
  }
  const int memory_n = leakguard::bench::Smoke() ? 1000 : 1000000;
  const std::string memory =
      leakguard::bench::Smoke() ? "memory/snapshot_1k/" : "memory/snapshot_1m/";
  for (const bool ours : {true, false}) {
    benchmark::RegisterBenchmark((memory + (ours ? "leakguard" : "tracemalloc")).c_str(),
                                 SnapshotMemory, memory_n, ours)
        ->Unit(benchmark::kMillisecond);
  }
  const int status = leakguard::bench::RunRegistered(argc, argv);
  State().old_lg.reset();
  State().new_lg.reset();
  State().old_py.Reset();
  State().new_py.Reset();
  State().keep.Reset();
  State().ns.Reset();
  State().tracing.reset();
  return status;
}
