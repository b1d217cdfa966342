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
//   sampler_accuracy/heap_4_lines_x4/r_64k
//                                    the same with 4 times the bytes per line
//
// Workloads (compiled once from one file; a pass calls a function that loops
// in Python): alloc_loop, a dict and a list per iteration; json_roundtrip,
// json.dumps/json.loads of a ~60 KB document; handler_mix, string
// formatting, list and dict building and one class instance per call;
// raytrace_like, a small ray-sphere tracer over a Vector class (the shape of
// pyperformance's raytrace, written for this file).
//
// Native workloads, for SamplerOptions::native: malloc_loop, a C++ loop in
// this binary of malloc/free of 16 B to 4 KiB (a fixed pseudo-random
// sequence; each block is freed when a later one takes its place in a ring
// of 64), called through the binary's own relocation slots like any loaded
// object's; numpy_loop, NumPy arrays of 2 to 5.5 KiB made and dropped in a
// Python loop (skipped when numpy does not import); ctypes_loop, libc's
// malloc and free called through ctypes.
//
// Modes: untracked; tracemalloc.start(1) and (25) through
// tracemalloc::TracingScope; the sampler at R = 512 KiB, 64 KiB and 4 KiB
// with 16 frames (the default), at 512 KiB with 1 and with 32 frames, and at
// R = 1 (exact mode, 16 frames); native_512k and native_64k, the sampler
// with SamplerOptions::native. The native workloads run untracked and with
// the native modes only. Each mode is started before the timed loop and
// stopped after it, so the heap each starts from is the same. A pass (the
// untimed warm-up and each timed one) runs inside LeakguardBenchPass(),
// which benchmarks/instructions.sh counts with callgrind; a native mode on
// malloc_loop is skipped with an error if the binary's own malloc slot was
// not hooked or no sample was taken, so its figure is never that of an
// unhooked loop. heaptrack, the exact peer of the native loop, is run by
// benchmarks/native_peers.sh.
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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
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

def setup_numpy():
    global numpy
    import numpy

def numpy_loop(n):
    for i in range(n):
        a = numpy.ones(256 + i % 8 * 64)
        b = a * 2.0

def setup_ctypes():
    global ctypes, _libc
    import ctypes
    if "_libc" not in globals():
        _libc = ctypes.CDLL(None)

def ctypes_loop(n):
    # Looked up (dlsym) in every pass: under native tracking the lookup
    # answers with the hooks.
    malloc, free = _libc["malloc"], _libc["free"]
    malloc.restype = ctypes.c_void_p
    free.argtypes = (ctypes.c_void_p,)
    for i in range(n):
        free(malloc(64 + i * 37 % 4033))
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
  bool native = false;   // SamplerOptions::native
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
    // The native hooks as well as the Python ones (SamplerOptions::native).
    {"native_512k", Tracker::kSampler, 16, 512 * 1024, true},
    {"native_64k", Tracker::kSampler, 16, 64 * 1024, true},
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
      absl::StatusOr<std::unique_ptr<AllocationSampler>> s =
          AllocationSampler::Create({.sampling_interval = mode.interval,
                                     .max_frames = mode.frames,
                                     .seed = seed,
                                     .native = mode.native});
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

// malloc_loop's pass: `n` blocks, each of a size drawn from a fixed
// pseudo-random sequence (xorshift64, the same every pass): a power of two
// from 16 B to 2 KiB, equally likely, plus up to as much again, so 16 B to
// 4 KiB with small blocks the most common (mean 764 B). Each block
// takes a random slot of a ring of 64 and frees the block there, so frees
// interleave with allocations and a block lives 64 allocations on average.
// Returns the bytes allocated.
//
// It calls malloc and free as any code does, through this binary's own
// relocation slots, which the native hooks rewrite like any loaded
// object's. Writing to both ends of each block, then passing the pointer to
// DoNotOptimize (an asm that reads it and clobbers memory), keeps -O3 from
// removing a malloc/free pair or the stores to a block about to be freed.
int64_t MallocLoop(long n) {
  constexpr int kRing = 64;
  void* ring[kRing] = {};
  uint64_t x = 0x243f6a8885a308d3;
  int64_t bytes = 0;
  for (long i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::size_t base = std::size_t{16} << (x & 7);
    const std::size_t size = base + ((x >> 3) % base);
    const auto slot = static_cast<std::size_t>((x >> 32) % kRing);
    std::free(ring[slot]);
    auto* block = static_cast<unsigned char*>(std::malloc(size));
    if (block != nullptr) {
      block[0] = static_cast<unsigned char>(i);
      block[size - 1] = static_cast<unsigned char>(x);
      bytes += static_cast<int64_t>(size);
    }
    benchmark::DoNotOptimize(block);
    ring[slot] = block;
  }
  for (void* block : ring) std::free(block);
  return bytes;
}

struct Workload {
  const char* name;  // the Python function that runs a pass
  long full;         // the argument of one pass
  long smoke;
  // Registered with `untracked` and the native modes only.
  bool native_only = false;
  // A Python function of the workload called before tracking starts
  // (imports); its error skips the benchmark.
  const char* setup = nullptr;
  // A pass of this binary's own code instead of the Python function.
  int64_t (*loop)(long n) = nullptr;
};

}  // namespace

// One pass of a cost benchmark, out of line and under a name of its own so
// that callgrind counts the passes and nothing else
// (benchmarks/instructions.sh: --toggle-collect=LeakguardBenchPass). GCC's
// noipa also keeps it from being cloned (a "LeakguardBenchPass.constprop.0"
// that callgrind would not match); clang does not clone it.
#if __has_cpp_attribute(gnu::noipa)
#define LEAKGUARD_BENCH_OUT_OF_LINE [[gnu::noipa]]
#else
#define LEAKGUARD_BENCH_OUT_OF_LINE [[gnu::noinline]]
#endif
extern "C" LEAKGUARD_BENCH_OUT_OF_LINE bool LeakguardBenchPass(absl::FunctionRef<bool()> pass) {
  return pass();
}

namespace {

// Whether the main program's (this binary's) malloc slot holds the hook.
bool MainProgramMallocHooked() {
  for (const leakguard::NativeHookSlot& slot : leakguard::ListNativeHookSlots()) {
    if (slot.object.empty() && slot.symbol == "malloc" && slot.hooked) return true;
  }
  return false;
}

void Cost(benchmark::State& state, Workload workload, long n, Mode mode) {
  if (!EnsureWorkload(state)) return;
  if (workload.setup != nullptr) {
    Ref done = Steal(PyObject_CallNoArgs(Fn(workload.setup)));
    if (!done) {
      FailPython(state);
      return;
    }
  }
  Tracking tracking;
  if (absl::Status s = tracking.Start(mode, /*seed=*/20261203); !s.ok()) {
    Fail(state, s);
    return;
  }
  int64_t native_bytes = 0;  // allocated by `loop`
  const auto pass = [&] {
    if (workload.loop == nullptr) return Call(state, workload.name, n);
    native_bytes += workload.loop(n);
    return true;
  };
  if (!LeakguardBenchPass(pass)) return;  // warm-up, untimed
  for (auto _ : state) {
    if (!LeakguardBenchPass(pass)) return;
  }
  if (!tracking.sampler) return;
  const leakguard::SamplerStats stats = tracking.sampler->Stats();
  state.counters["samples"] = static_cast<double>(stats.samples);
  state.counters["table_bytes"] = static_cast<double>(stats.table_bytes);
  if (!mode.native) return;
  state.counters["native_hooked_slots"] = static_cast<double>(stats.native_hooked_slots);
  state.counters["native_live_samples"] = static_cast<double>(stats.native_live_samples);
  if (workload.loop == nullptr) return;
  // Bytes / R: the expected number of samples for blocks much smaller than
  // R, a little above it otherwise (a block is sampled with probability
  // 1 - exp(-s/R) < s/R).
  state.counters["expected_samples"] =
      static_cast<double>(native_bytes) / static_cast<double>(mode.interval);
  if (!MainProgramMallocHooked()) {
    Fail(state, absl::FailedPreconditionError(
                    "the benchmark's own malloc slot is not hooked: the loop ran unsampled"));
  } else if (stats.samples == 0) {
    Fail(state, absl::FailedPreconditionError(
                    "no sample taken: the hooks did not see the loop's mallocs"));
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
  double max_err[kLines] = {};
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
          max_err[k] = std::max(max_err[k], std::abs(got - want) / want);
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
    state.counters["max_err_line" + line + "_pct"] = 100 * max_err[k];
    state.counters["se_line" + line + "_pct"] = done ? 100 * se_sum[k] / done : 0;
    state.counters["exact_line" + line + "_kib"] = exact_last[k] / 1024;
  }
  state.counters["table_bytes"] = table_bytes;
  state.counters["live_samples"] = samples;
  state.counters["trials"] = done;
}

// ----------------------------------------------------------- registration

// The fastest repetition (--benchmark_repetitions): other processes only
// ever add time, so on a shared machine it is steadier than the median.
double Fastest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// No Iterations()/MinTime(): they would add "/iterations:N" to the names,
// which must stay GROUP/CASE/IMPL.
void Register(bool smoke) {
  const Workload workloads[] = {
      {"alloc_loop", 50000, 200},
      {"json_roundtrip", 10, 1},
      {"handler_mix", 5000, 20},
      {"raytrace_like", 40, 2},
      // Smoke: enough bytes for dozens of samples at R = 512 KiB.
      {.name = "malloc_loop",
       .full = 200000,
       .smoke = 20000,
       .native_only = true,
       .loop = MallocLoop},
      {.name = "numpy_loop",
       .full = 10000,
       .smoke = 50,
       .native_only = true,
       .setup = "setup_numpy"},
      {.name = "ctypes_loop",
       .full = 20000,
       .smoke = 50,
       .native_only = true,
       .setup = "setup_ctypes"},
  };
  for (const Workload& w : workloads) {
    for (const Mode& mode : kModes) {
      if (w.native_only && mode.tracker != Tracker::kNone && !mode.native) continue;
      benchmark::RegisterBenchmark(
          (std::string("sampler_cost/") + w.name + "/" + mode.name).c_str(), Cost, w,
          smoke ? w.smoke : w.full, mode)
          ->Unit(benchmark::kMillisecond)
          ->ComputeStatistics("min", Fastest);
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
  // The same 4 lines 4 times bigger (15 to 40 MiB each): the relative error
  // of a site of S bytes is about sqrt(R / S), so within 10% at R = 64 KiB
  // takes sites of 100 R = 6.4 MiB and more.
  benchmark::RegisterBenchmark("sampler_accuracy/heap_4_lines_x4/r_64k", Accuracy,
                               int64_t{64} * 1024, smoke ? 1 : 32, smoke ? 2 : 20)
      ->Unit(benchmark::kMillisecond);
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
