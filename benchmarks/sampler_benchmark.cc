// AllocationSampler: what it costs the Python code it watches, what its
// snapshots cost, and how close its estimates come, against tracemalloc in
// the same run.
//
//   sampler_cost/<workload>/<mode>   CPU time of one pass of a workload
//                                    under each tracking mode; the peer is
//                                    `untracked` (report.py: cost = mode
//                                    time / untracked time)
//   sampler_snapshot/take_<N>/...    one snapshot of a heap of N live blocks
//                                    (R = 1): AllocationSampler::TakeSnapshot
//                                    (`leakguard`) against
//                                    tracemalloc::Snapshot::Take
//                                    (`tracemalloc_probe`) and Python's
//                                    tracemalloc.take_snapshot()
//                                    (`tracemalloc`)
//   sampler_accuracy/heap_4_lines/R  the relative error of the estimate of 4
//                                    lines' live bytes against tracemalloc's
//                                    exact answer, as counters
//
// Workloads (compiled once from one file; a pass calls a function that loops
// in Python): alloc_loop, a dict and a list per iteration; json_roundtrip,
// json.dumps/json.loads of a ~60 KB document; handler_mix, string
// formatting, list and dict building and one class instance per call;
// raytrace_like, a small ray-sphere tracer over a Vector class (the shape of
// pyperformance's raytrace, written for this file).
//
// Modes: untracked; tracemalloc.start(1) and (25) through
// tracemalloc::TracingScope; the sampler at R = 512 KiB, 64 KiB and 4 KiB
// with 16 frames (the default), at 512 KiB with 1 and with 32 frames, and at
// R = 1 (exact mode, 16 frames). Each mode is started before the timed loop
// and stopped after it, so the heap each starts from is the same.
//
// Snapshot: each implementation tracks the heap alone (16 frames), built by
// the same code after its tracker started, so no tracker pays for another
// one's bookkeeping of the snapshot's own allocations.
//
// Accuracy: tracemalloc (1 frame) runs underneath the sampler (started
// first, as sampler.h asks) and gives the exact live bytes of each line; the
// sampler runs kTrials times with a new seed, over a freshly built heap each
// time. err_lineK_pct is the root mean square of (estimate - exact) / exact
// over the trials, se_lineK_pct the mean of the sampler's own standard error
// for that line (the two should agree), table_bytes the sampler's memory at
// the last trial.
//
// LEAKGUARD_BENCH_SMOKE=1: tiny passes, a 2k-block heap, 2 trials.

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/sampler.h"
#include "leakguard/tracemalloc.h"

namespace {

using leakguard::AllocationSampler;
using leakguard::Ref;
using leakguard::SamplerOptions;
using leakguard::Steal;
namespace tm = leakguard::tracemalloc;

constexpr char kFilename[] = "sampler_workload.py";

// Line numbers matter for the accuracy case: heap() allocates on lines 5 to
// 8 of this file (kAccuracyLines).
constexpr char kWorkload[] = R"PY(import json

def heap(scale):
    keep = []
    keep.append([bytes(40) for _ in range(6000 * scale)])
    keep.append([[0] * 120 for _ in range(600 * scale)])
    keep.append([bytearray(65536) for _ in range(20 * scale)])
    keep.append([str(i) * (i % 50 + 1) for i in range(3000 * scale)])
    return keep

def big_heap(n):
    # 3 blocks per entry: a tuple, an int past the small-int cache, a str.
    return [(i, str(i)) for i in range(1000, 1000 + n // 3)]

def alloc_loop(n):
    for i in range(n):
        d = {"a": i, "b": [i, i + 1]}

_doc = {"items": [{"id": i, "name": f"item-{i}", "price": i * 1.25,
                   "tags": ["red", "green", "blue"][: i % 3 + 1],
                   "in_stock": i % 2 == 0} for i in range(560)],
        "meta": {"page": 1, "total": 560, "source": "bench"}}
DOC_BYTES = len(json.dumps(_doc))

def json_roundtrip(n):
    for _ in range(n):
        doc = json.loads(json.dumps(_doc))
    return doc

class Request:
    def __init__(self, i, path, params):
        self.i = i
        self.method = "GET" if i % 3 else "POST"
        self.path = path
        self.params = params

def handle(i):
    req = Request(i, f"/api/items/{i % 97}", {"user": f"u{i % 100}", "q": str(i), "page": i % 7})
    query = "&".join([f"{k}={v}" for k, v in req.params.items()])
    body = {"id": req.i, "path": req.path, "query": query,
            "tags": [t.upper() for t in ("alpha", "beta", "gamma")]}
    line = "%s %s?%s -> %d" % (req.method, req.path, query, 200)
    return line + ":" + str(len(body))

def handler_mix(n):
    for i in range(n):
        handle(i)

class Vector:
    __slots__ = ("x", "y", "z")
    def __init__(self, x, y, z):
        self.x = x; self.y = y; self.z = z
    def __add__(self, o):
        return Vector(self.x + o.x, self.y + o.y, self.z + o.z)
    def __sub__(self, o):
        return Vector(self.x - o.x, self.y - o.y, self.z - o.z)
    def scale(self, k):
        return Vector(self.x * k, self.y * k, self.z * k)
    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z
    def normalized(self):
        return self.scale(1.0 / (self.dot(self) ** 0.5))

_spheres = [(Vector(i * 1.5 - 3.0, 0.0, 6.0 + i), 1.0) for i in range(5)]
_light = Vector(-1.0, 1.0, -1.0).normalized()

def trace(origin, direction):
    best, hit = None, None
    for center, radius in _spheres:
        oc = origin - center
        b = oc.dot(direction)
        c = oc.dot(oc) - radius * radius
        disc = b * b - c
        if disc > 0:
            t = -b - disc ** 0.5
            if t > 1e-6 and (best is None or t < best):
                best, hit = t, center
    if hit is None:
        return 0.0
    point = origin + direction.scale(best)
    normal = (point - hit).normalized()
    return max(0.0, normal.dot(_light))

def raytrace_like(n):
    eye = Vector(0.0, 0.0, 0.0)
    total = 0.0
    for y in range(n):
        for x in range(32):
            d = Vector(x / 16.0 - 1.0, y / (n * 0.5) - 1.0, 1.0).normalized()
            total += trace(eye, d)
    return total
)PY";

constexpr int kAccuracyLines[] = {5, 6, 7, 8};

struct Fixture {
  Ref ns;    // the workload's globals
  Ref keep;  // the live heap of the snapshot and accuracy cases
};

Fixture& State() {
  static Fixture* fixture = new Fixture;
  return *fixture;
}

PyObject* Fn(const char* name) {
  return PyDict_GetItemString(State().ns.get(), name);  // borrowed
}

using leakguard::bench::Fail;
using leakguard::bench::FailPython;

// Compiles the workload once, untracked.
bool EnsureWorkload(benchmark::State& state) {
  Fixture& f = State();
  if (f.ns) return true;
  Ref ns = Steal(PyDict_New());
  PyDict_SetItemString(ns.get(), "__builtins__", PyEval_GetBuiltins());
  Ref code = Steal(Py_CompileString(kWorkload, kFilename, Py_file_input));
  if (!code) return FailPython(state);
  Ref done = Steal(PyEval_EvalCode(code.get(), ns.get(), ns.get()));
  if (!done) return FailPython(state);
  f.ns = std::move(ns);
  return true;
}

// Calls the workload's `name(arg)`; false (and the benchmark skipped) on a
// Python error.
bool Call(benchmark::State& state, const char* name, long arg) {
  Ref r = Steal(PyObject_CallFunction(Fn(name), "l", arg));
  return r ? true : FailPython(state);
}

// ------------------------------------------------------------------ cost

enum class Tracker { kNone, kTracemalloc, kSampler };

struct Mode {
  const char* name;
  Tracker tracker;
  int frames = 0;
  int64_t interval = 0;  // the sampler's R
};

const Mode kModes[] = {
    {"untracked", Tracker::kNone},
    {"tracemalloc_1", Tracker::kTracemalloc, 1},
    {"tracemalloc_25", Tracker::kTracemalloc, 25},
    {"sampler_512k", Tracker::kSampler, 16, 512 * 1024},
    {"sampler_64k", Tracker::kSampler, 16, 64 * 1024},
    {"sampler_4k", Tracker::kSampler, 16, 4 * 1024},
    {"sampler_512k_1f", Tracker::kSampler, 1, 512 * 1024},
    {"sampler_512k_32f", Tracker::kSampler, 32, 512 * 1024},
    {"sampler_exact", Tracker::kSampler, 16, 1},
    {"sampler_exact_1f", Tracker::kSampler, 1, 1},
    // R = 1 GiB: the hooks with (nearly) no samples, the floor of the cost.
    {"sampler_hooks_only", Tracker::kSampler, 16, int64_t{1} << 30},
};

// Whichever tracker a mode needs, on for the lifetime of the object.
struct Tracking {
  std::optional<tm::TracingScope> tracing;
  std::unique_ptr<AllocationSampler> sampler;

  absl::Status Start(const Mode& mode, uint64_t seed) {
    if (mode.tracker == Tracker::kTracemalloc) {
      absl::StatusOr<tm::TracingScope> scope = tm::TracingScope::Start(mode.frames);
      if (!scope.ok()) return scope.status();
      tracing.emplace(*std::move(scope));
    } else if (mode.tracker == Tracker::kSampler) {
      absl::StatusOr<std::unique_ptr<AllocationSampler>> s = AllocationSampler::Create(
          {.sampling_interval = mode.interval, .max_frames = mode.frames, .seed = seed});
      if (!s.ok()) return s.status();
      sampler = *std::move(s);
      if (absl::Status started = sampler->Start(); !started.ok()) return started;
    }
    return absl::OkStatus();
  }

  ~Tracking() {
    if (sampler) sampler->Stop();
    tracing.reset();
  }
};

void Cost(benchmark::State& state, const char* workload, long n, Mode mode) {
  if (!EnsureWorkload(state)) return;
  Tracking tracking;
  if (absl::Status s = tracking.Start(mode, /*seed=*/20261203); !s.ok()) {
    Fail(state, s);
    return;
  }
  if (!Call(state, workload, n)) return;  // warm-up, untimed
  for (auto _ : state) {
    if (!Call(state, workload, n)) return;
  }
  if (tracking.sampler) {
    const leakguard::SamplerStats stats = tracking.sampler->Stats();
    state.counters["samples"] = static_cast<double>(stats.samples);
    state.counters["table_bytes"] = static_cast<double>(stats.table_bytes);
  }
}

// --------------------------------------------------------------- snapshot

enum class Taker { kSampler, kProbe, kPython };

void Snapshot(benchmark::State& state, int n, Taker taker) {
  if (!EnsureWorkload(state)) return;
  // Imported before tracking starts, so its modules are not in the heap.
  Ref take_snapshot;
  if (taker == Taker::kPython) {
    Ref module = Steal(PyImport_ImportModule("tracemalloc"));
    if (module) take_snapshot = Steal(PyObject_GetAttrString(module.get(), "take_snapshot"));
    if (!take_snapshot) {
      FailPython(state);
      return;
    }
  }
  Tracking tracking;
  const Mode mode = taker == Taker::kSampler ? Mode{"", Tracker::kSampler, 16, 1}
                                             : Mode{"", Tracker::kTracemalloc, 16};
  if (absl::Status s = tracking.Start(mode, 1); !s.ok()) {
    Fail(state, s);
    return;
  }
  State().keep = Steal(PyObject_CallFunction(Fn("big_heap"), "i", n));
  if (!State().keep) {
    FailPython(state);
    return;
  }
  double traces = 0;
  for (auto _ : state) {
    if (taker == Taker::kSampler) {
      tm::Snapshot s = tracking.sampler->TakeSnapshot();
      traces = static_cast<double>(s.trace_count());
      benchmark::DoNotOptimize(traces);
    } else if (taker == Taker::kProbe) {
      absl::StatusOr<tm::Snapshot> s = tm::Snapshot::Take();
      if (!s.ok()) {
        Fail(state, s.status());
        break;
      }
      traces = static_cast<double>(s->trace_count());
    } else {
      Ref s = Steal(PyObject_CallNoArgs(take_snapshot.get()));
      if (!s) {
        FailPython(state);
        break;
      }
      state.PauseTiming();  // Python's snapshot is freed later, untimed
      Ref traces_obj = Steal(PyObject_GetAttrString(s.get(), "traces"));
      traces = traces_obj ? static_cast<double>(PyObject_Length(traces_obj.get())) : -1;
      PyErr_Clear();
      traces_obj.Reset();
      s.Reset();
      state.ResumeTiming();
    }
  }
  state.counters["traces"] = traces;
  State().keep.Reset();
}

// --------------------------------------------------------------- accuracy

// The live bytes tracemalloc holds for line `line` of the workload.
double ExactBytes(const tm::StatisticList& stats, int line) {
  for (const tm::Statistic& s : stats) {
    const tm::Frame f = s.traceback.most_recent();
    if (f.filename == kFilename && f.lineno == line) return static_cast<double>(s.size);
  }
  return 0;
}

void Accuracy(benchmark::State& state, int64_t interval, int scale, int trials) {
  if (!EnsureWorkload(state)) return;
  constexpr int kLines = 4;
  double sq_err[kLines] = {};
  double se_sum[kLines] = {};
  double exact_last[kLines] = {};
  double table_bytes = 0;
  double samples = 0;
  int done = 0;
  for (auto _ : state) {
    absl::StatusOr<tm::TracingScope> scope = tm::TracingScope::Start(1);
    if (!scope.ok()) {
      Fail(state, scope.status());
      return;
    }
    for (int trial = 0; trial < trials; ++trial) {
      Tracking tracking;  // tracemalloc underneath, the sampler on top
      const Mode mode{"", Tracker::kSampler, 1, interval};
      if (absl::Status s = tracking.Start(mode, 1000 + static_cast<uint64_t>(done)); !s.ok()) {
        Fail(state, s);
        return;
      }
      State().keep = Steal(PyObject_CallFunction(Fn("heap"), "i", scale));
      if (!State().keep) {
        FailPython(state);
        return;
      }
      absl::StatusOr<tm::Snapshot> exact = tm::Snapshot::Take();
      if (!exact.ok()) {
        Fail(state, exact.status());
        return;
      }
      absl::StatusOr<tm::StatisticList> stats = exact->Statistics(tm::GroupBy::kLineno);
      const std::vector<leakguard::SiteEstimate> lines = tracking.sampler->LiveByLine();
      for (int k = 0; k < kLines; ++k) {
        const double want = ExactBytes(*stats, kAccuracyLines[k]);
        double got = 0;
        double se = 0;
        for (const leakguard::SiteEstimate& e : lines) {
          if (e.filename == kFilename && e.lineno == kAccuracyLines[k]) {
            got = e.bytes;
            se = e.stderr_bytes;
          }
        }
        if (want > 0) {
          sq_err[k] += (got - want) * (got - want) / (want * want);
          se_sum[k] += se / want;
        }
        exact_last[k] = want;
      }
      const leakguard::SamplerStats stats_now = tracking.sampler->Stats();
      table_bytes = static_cast<double>(stats_now.table_bytes);
      samples = static_cast<double>(stats_now.live_samples);
      State().keep.Reset();
      ++done;
    }
  }
  for (int k = 0; k < kLines; ++k) {
    const std::string line = std::to_string(kAccuracyLines[k]);
    state.counters["err_line" + line + "_pct"] = done ? 100 * std::sqrt(sq_err[k] / done) : 0;
    state.counters["se_line" + line + "_pct"] = done ? 100 * se_sum[k] / done : 0;
    state.counters["exact_line" + line + "_kib"] = exact_last[k] / 1024;
  }
  state.counters["table_bytes"] = table_bytes;
  state.counters["live_samples"] = samples;
  state.counters["trials"] = done;
}

// ----------------------------------------------------------- registration

struct Workload {
  const char* name;
  long full;  // the argument of one pass
  long smoke;
};

// No Iterations()/MinTime(): they would add "/iterations:N" to the names,
// which must stay GROUP/CASE/IMPL.
void Register(bool smoke) {
  const Workload workloads[] = {
      {"alloc_loop", 50000, 200},
      {"json_roundtrip", 10, 1},
      {"handler_mix", 5000, 20},
      {"raytrace_like", 40, 2},
  };
  for (const Workload& w : workloads) {
    for (const Mode& mode : kModes) {
      benchmark::RegisterBenchmark(
          (std::string("sampler_cost/") + w.name + "/" + mode.name).c_str(), Cost, w.name,
          smoke ? w.smoke : w.full, mode)
          ->Unit(benchmark::kMillisecond);
    }
  }
  const int n = smoke ? 2000 : 200000;
  const std::string size = smoke ? "2k" : "200k";
  const std::pair<const char*, Taker> takers[] = {
      {"leakguard", Taker::kSampler},
      {"tracemalloc_probe", Taker::kProbe},
      {"tracemalloc", Taker::kPython},
  };
  for (const auto& [impl, taker] : takers) {
    benchmark::RegisterBenchmark(("sampler_snapshot/take_" + size + "/" + impl).c_str(), Snapshot,
                                 n, taker)
        ->Unit(benchmark::kMillisecond);
  }
  const std::pair<const char*, int64_t> intervals[] = {
      {"r_512k", 512 * 1024},
      {"r_64k", 64 * 1024},
      {"r_4k", 4 * 1024},
  };
  for (const auto& [impl, interval] : intervals) {
    benchmark::RegisterBenchmark(("sampler_accuracy/heap_4_lines/" + std::string(impl)).c_str(),
                                 Accuracy, interval, smoke ? 1 : 8, smoke ? 2 : 20)
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  Register(leakguard::bench::Smoke());
  const int status = leakguard::bench::RunRegistered(argc, argv);
  State().keep.Reset();
  State().ns.Reset();
  return status;
}
