// The Python module `leakguard` against its peers, in one embedded
// interpreter: lru_cache vs functools.lru_cache and cachetools (LRUCache and
// TTLCache through cachetools.cached), EventBus.emit vs the plain-Python
// weakref bus (docs/design.md, "The peers").
//
// Method, the same for ours and the peer: each benchmark iteration is one
// call made from C with PyObject_Vectorcall, exactly as the interpreter
// makes a call from bytecode (functools' wrapper has no vectorcall, so it
// gets an argument tuple, as it does from Python code). The `*_loop` cases
// time a Python-level `for _ in range(1000): f(1)` instead (per iteration:
// 1000 calls), to show the same ratio with the interpreter's own loop.
//
// memory_guard: a `with leakguard.memory_guard(mode="traced")` scope around
// nothing, on a heap of 10k traced strings, against the same work done with
// tracemalloc's Python API (two take_snapshot() and compare_to("lineno"),
// the ten largest lines kept), which is also what this module's guard did
// before it was built on the C++ MemoryGuard.
//
// memory_guard/process_call_1us: a ~1 us Python function (a loop calibrated
// at start-up) called inside `with leakguard.memory_guard("bench",
// mode="process", warn_mb=100)`, beside the same function without the guard
// (`bare`: an overhead row, its ratio is below 1) and beside the psutil
// recipe reading the same facts the guard reads (RSS, descriptors and
// threads: `memory_info().rss`, `num_fds()`, `num_threads()` under
// `oneshot()`, before and after; the Process object made once; the same
// 100 MiB check, and any change of descriptors or threads). Each is one Python
// function called from C; the psutil row is skipped when psutil does not
// import (Debian: python3-psutil).
//
// memory/lru_cache_1m: the memory a cache holding 1M entries takes,
// leakguard.lru_cache(maxsize=1M) against functools.lru_cache(maxsize=1M),
// filled with the same 1M int keys (made before, so only the caches' own
// memory is counted; the cached function returns its argument). Both caches
// live entirely in Python's allocators, so the bytes are tracemalloc's
// traced delta around building and filling the cache (exact, the same
// method for both); the RSS delta (malloc_trim first) is the rss_bytes
// counter.
//
// LEAKGUARD_BENCH_SMOKE=1: tiny listener counts and heap (CI's smoke run),
// 1000 cache entries.

#include <cstdio>
#include <string>
#include <vector>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"
#if defined(LEAKGUARD_HAVE_PYTHON_MODULE)
#include "leakguard/python_module.h"
#endif

namespace {

using leakguard::Ref;
using leakguard::Steal;

using leakguard::bench::Smoke;

// Set up in main(): everything the benchmarks call.
constexpr char kSetup[] = R"PY(
import functools, tracemalloc, weakref
import cachetools
import leakguard

# memory_guard: tracemalloc runs and a heap is traced only while these
# benchmarks run (the others must not pay for tracing).
def traced_heap(n):
    global _traced_heap
    tracemalloc.start()
    _traced_heap = [str(i) * 3 for i in range(n)]

def untraced():
    global _traced_heap
    _traced_heap = None
    tracemalloc.stop()

def lg_traced_guard():
    with leakguard.memory_guard("bench", mode="traced", top=10):
        pass

def tm_traced_guard():
    before = tracemalloc.take_snapshot()
    after = tracemalloc.take_snapshot()
    return after.compare_to(before, "lineno")[:10]

def ident(x):
    return x

# memory_guard/process_call_1us: _work_n is set by calibrate_1us().
import gc, os, time
try:
    import psutil
    _proc = psutil.Process(os.getpid())
except ImportError:
    psutil = None

_work_n = 8

def work_1us():
    n = 0
    for i in range(_work_n):
        n += i * i
    return n

def calibrate_1us():
    # The fastest of 5 runs of 1000 calls: a busy machine only adds time.
    global _work_n
    while True:
        best = 1.0
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(1000):
                work_1us()
            best = min(best, (time.perf_counter() - t) / 1000)
        if best >= 1e-6 or _work_n >= 1 << 16:
            return _work_n
        _work_n += max(1, _work_n // 4)

def bare_call():
    work_1us()

def lg_process_call():
    with leakguard.memory_guard("bench", mode="process", warn_mb=100):
        work_1us()

def _psutil_facts():
    # The facts the process-mode guard reads: RSS, descriptors, threads
    # (oneshot() caches what the three calls share).
    with _proc.oneshot():
        return _proc.memory_info().rss, _proc.num_fds(), _proc.num_threads()

def psutil_call():
    rss, fds, threads = _psutil_facts()
    work_1us()
    rss2, fds2, threads2 = _psutil_facts()
    if rss2 - rss > 100 * 1024 * 1024 or fds2 != fds or threads2 != threads:
        print(f"WARNING: [bench] RSS {rss2 - rss:+d} B, fds {fds2 - fds:+d}, "
              f"threads {threads2 - threads:+d}")

# memory/lru_cache_1m: the keys are made before measuring, the cache is
# made and filled by lru_fill() while measured.
def lru_keys(n):
    return list(range(1 << 20, (1 << 20) + n))

def lru_fill(kind, keys):
    make = leakguard.lru_cache if kind == "leakguard" else functools.lru_cache
    f = make(maxsize=len(keys))(ident)
    for k in keys:
        f(k)
    return f

def ident_kw(x, *, scale=1):
    return x * scale

lg_hit = leakguard.lru_cache(maxsize=128)(ident)
ft_hit = functools.lru_cache(maxsize=128)(ident)
ct_hit = cachetools.cached(cachetools.LRUCache(maxsize=128))(ident)
lg_ttl = leakguard.lru_cache(maxsize=128, ttl=3600)(ident)
ct_ttl = cachetools.cached(cachetools.TTLCache(maxsize=128, ttl=3600))(ident)
lg_kw = leakguard.lru_cache(maxsize=128)(ident_kw)
ft_kw = functools.lru_cache(maxsize=128)(ident_kw)
for f in (lg_hit, ft_hit, ct_hit, lg_ttl, ct_ttl):
    f(1)
lg_kw(1, scale=2)
ft_kw(1, scale=2)

class LgService:
    @leakguard.lru_cache(maxsize=128, weak_self=True)
    def get(self, x):
        return x

class LgStrongService:
    @leakguard.lru_cache(maxsize=128)
    def get(self, x):
        return x

class FtService:
    @functools.lru_cache(maxsize=128)
    def get(self, x):
        return x

lg_service, lg_strong_service, ft_service = LgService(), LgStrongService(), FtService()
lg_method, ft_method = LgService.__dict__["get"], FtService.__dict__["get"]
lg_strong_method = LgStrongService.__dict__["get"]
lg_method(lg_service, 1)
lg_strong_method(lg_strong_service, 1)
ft_method(ft_service, 1)

def loop(f, n=1000):
    for _ in range(n):
        f(1)

class WeakrefBus:
    """The plain-Python weakref bus (docs/design.md, "The peers"),
    with WeakMethod for bound methods so that they are not dead at once."""

    def __init__(self):
        self._listeners = []

    def subscribe(self, callback):
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            ref = weakref.WeakMethod(callback, self._remove_dead)
        else:
            ref = weakref.ref(callback, self._remove_dead)
        self._listeners.append(ref)

    def unsubscribe(self, callback):
        self._listeners = [r for r in self._listeners if r() != callback]

    def _remove_dead(self, ref):
        self._listeners = [r for r in self._listeners if r() is not None]

    def emit(self, *args):
        for ref in self._listeners[:]:
            callback = ref()
            if callback is not None:
                callback(*args)

class Listener:
    def __init__(self):
        self.count = 0

    def on(self, x):
        self.count += x

def make_buses(n):
    objects = [Listener() for _ in range(n)]
    functions = []
    for o in objects:
        def on(x, o=o):
            o.count += x
        functions.append(on)
    buses = {}
    for name, cls in (("leakguard", leakguard.EventBus), ("weakref_bus", WeakrefBus)):
        methods_bus, functions_bus = cls(), cls()
        for o in objects:
            methods_bus.subscribe(o.on)
        for f in functions:
            functions_bus.subscribe(f)
        buses[name] = (methods_bus, functions_bus)
    return objects, functions, buses

def churn(bus, n=100):
    keep = [Listener() for _ in range(n)]
    for o in keep:
        bus.subscribe(o.on)
    for o in keep:
        bus.unsubscribe(o.on)
)PY";

PyObject* g_globals = nullptr;  // __main__'s dict (borrowed, lives forever)

PyObject* Global(const char* name) {
  return PyDict_GetItemString(g_globals, name);  // Borrowed.
}

void Fail(benchmark::State& state) {
  state.SkipWithError(std::string(leakguard::StatusFromPythonError().message()).c_str());
}

// One call f(*args) per iteration.
void CallBench(benchmark::State& state, const char* func, std::vector<PyObject*> args,
               PyObject* kwnames = nullptr) {
  PyObject* f = Global(func);
  const size_t nargs = args.size() - (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  args.insert(args.begin(), nullptr);  // Room for PY_VECTORCALL_ARGUMENTS_OFFSET.
  for (auto _ : state) {
    PyObject* r =
        PyObject_Vectorcall(f, args.data() + 1, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    if (r == nullptr) return Fail(state);
    Py_DECREF(r);
  }
}

void Hit(benchmark::State& state, const char* func) {
  Ref one = Steal(PyLong_FromLong(1));
  CallBench(state, func, {one.get()});
}

void HitKeywords(benchmark::State& state, const char* func) {
  Ref one = Steal(PyLong_FromLong(1));
  Ref two = Steal(PyLong_FromLong(2));
  Ref names = Steal(Py_BuildValue("(s)", "scale"));
  CallBench(state, func, {one.get(), two.get()}, names.get());
}

void MethodHit(benchmark::State& state, const char* method, const char* self) {
  Ref one = Steal(PyLong_FromLong(1));
  CallBench(state, method, {Global(self), one.get()});
}

// Every call a new key: a miss that evicts (maxsize 128). The key objects
// are made outside the timing, the same ones for every implementation.
void Miss(benchmark::State& state, const char* func) {
  PyObject* f = Global(func);
  std::vector<Ref> keys;
  for (long i = 0; i < 4096; ++i) keys.push_back(Steal(PyLong_FromLong(1000 + i)));
  size_t i = 0;
  for (auto _ : state) {
    PyObject* arg[2] = {nullptr, keys[i++ & 4095].get()};
    PyObject* r = PyObject_Vectorcall(f, arg + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
    if (r == nullptr) return Fail(state);
    Py_DECREF(r);
  }
}

void Loop(benchmark::State& state, const char* func) {
  PyObject* loop = Global("loop");
  PyObject* f = Global(func);
  for (auto _ : state) {
    PyObject* r = PyObject_CallOneArg(loop, f);
    if (r == nullptr) return Fail(state);
    Py_DECREF(r);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}

// emit(1) on a bus with the listeners of make_buses().
void Emit(benchmark::State& state, const char* impl, int which) {
  PyObject* buses = PyDict_GetItemString(Global("_bench_buses"), impl);
  PyObject* emit = PyObject_GetAttrString(PyTuple_GET_ITEM(buses, which), "emit");
  if (emit == nullptr) return Fail(state);
  Ref one = Steal(PyLong_FromLong(1));
  for (auto _ : state) {
    PyObject* r = PyObject_CallOneArg(emit, one.get());
    if (r == nullptr) {
      Fail(state);
      break;
    }
    Py_DECREF(r);
  }
  Py_DECREF(emit);
  state.SetItemsProcessed(state.iterations() * (Smoke() ? 4 : 100));
}

// 100 subscribes then 100 unsubscribes of bound methods.
void Churn(benchmark::State& state, const char* impl) {
  PyObject* buses = PyDict_GetItemString(Global("_bench_buses"), impl);
  PyObject* bus = PyTuple_GET_ITEM(buses, 0);
  PyObject* churn = Global("churn");
  Ref n = Steal(PyLong_FromLong(Smoke() ? 4 : 100));
  for (auto _ : state) {
    PyObject* r = PyObject_CallFunctionObjArgs(churn, bus, n.get(), nullptr);
    if (r == nullptr) return Fail(state);
    Py_DECREF(r);
  }
}

// One guarded empty scope per iteration, with a traced heap of `n` strings.
void TracedGuard(benchmark::State& state, const char* func, int n) {
  Ref size = Steal(PyLong_FromLong(n));
  Ref made = Steal(PyObject_CallOneArg(Global("traced_heap"), size.get()));
  if (!made) return Fail(state);
  CallBench(state, func, {});
  Ref done = Steal(PyObject_CallNoArgs(Global("untraced")));
  if (!done) Fail(state);
}

// A scope of work the guard measures, called through a Python function.
void ProcessCall(benchmark::State& state, const char* func) {
  if (Global("psutil") == Py_None && std::string(func) == "psutil_call") {
    state.SkipWithError("psutil does not import (Debian: python3-psutil): no psutil peer row");
    return;
  }
  CallBench(state, func, {});
}

// Resident memory after giving free heap pages back (bench_main.h).
using leakguard::bench::ResidentBytes;

// Bytes a cache of `impl` holding `n` entries takes; see the file comment.
void LruMemory(benchmark::State& state, const char* impl, int n) {
  Ref size = Steal(PyLong_FromLong(n));
  Ref keys = Steal(PyObject_CallOneArg(Global("lru_keys"), size.get()));
  Ref kind = Steal(PyUnicode_FromString(impl));
  if (!keys || !kind) return Fail(state);
  auto tracing = leakguard::tracemalloc::TracingScope::Start(1);
  if (!tracing.ok()) {
    state.SkipWithError(std::string(tracing.status().message()).c_str());
    return;
  }
  double traced = 0;
  double rss = 0;
  for (auto _ : state) {
    PyGC_Collect();
    const int64_t rss_before = ResidentBytes();
    auto before = leakguard::tracemalloc::GetTracedMemory();
    Ref cache =
        Steal(PyObject_CallFunctionObjArgs(Global("lru_fill"), kind.get(), keys.get(), nullptr));
    if (!cache) return Fail(state);
    auto after = leakguard::tracemalloc::GetTracedMemory();
    const int64_t rss_after = ResidentBytes();
    if (!before.ok() || !after.ok()) {
      state.SkipWithError("tracemalloc.get_traced_memory() failed");
      return;
    }
    Ref info = Steal(PyObject_CallMethod(cache.get(), "cache_info", nullptr));
    Ref currsize = info ? Steal(PyObject_GetAttrString(info.get(), "currsize")) : Ref();
    if (!currsize) return Fail(state);
    if (PyLong_AsLong(currsize.get()) != n) {
      state.SkipWithError("the cache does not hold every entry");
      return;
    }
    traced = static_cast<double>(static_cast<int64_t>(after->current) -
                                 static_cast<int64_t>(before->current));
    rss = static_cast<double>(rss_after - rss_before);
  }
  state.counters["bytes"] = traced;
  state.counters["rss_bytes"] = rss;
  state.counters["entries"] = n;
  state.counters["bytes_per_entry"] = traced / n;
}

void Register() {
  struct Peer {
    const char* impl;
    const char* hit;
  };
  for (Peer p :
       {Peer{"leakguard", "lg_hit"}, Peer{"functools", "ft_hit"}, Peer{"cachetools", "ct_hit"}}) {
    benchmark::RegisterBenchmark((std::string("lru_cache/hit/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { Hit(s, p.hit); });
    benchmark::RegisterBenchmark((std::string("lru_cache/miss/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { Miss(s, p.hit); });
  }
  for (Peer p : {Peer{"leakguard", "lg_ttl"}, Peer{"cachetools", "ct_ttl"}}) {
    benchmark::RegisterBenchmark((std::string("lru_cache/hit_ttl/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { Hit(s, p.hit); });
    benchmark::RegisterBenchmark((std::string("lru_cache/miss_ttl/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { Miss(s, p.hit); });
  }
  for (Peer p : {Peer{"leakguard", "lg_hit"}, Peer{"functools", "ft_hit"}}) {
    benchmark::RegisterBenchmark((std::string("lru_cache/hit_loop/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { Loop(s, p.hit); });
  }
  for (Peer p : {Peer{"leakguard", "lg_kw"}, Peer{"functools", "ft_kw"}}) {
    benchmark::RegisterBenchmark((std::string("lru_cache/hit_keywords/") + p.impl).c_str(),
                                 [p](benchmark::State& s) { HitKeywords(s, p.hit); });
  }
  // A method hit: with weak_self (the instance keyed by a weak reference)
  // and without, each against functools (which holds the instance).
  benchmark::RegisterBenchmark("lru_cache/method_hit_weak_self/leakguard", [](benchmark::State& s) {
    MethodHit(s, "lg_method", "lg_service");
  });
  benchmark::RegisterBenchmark("lru_cache/method_hit_weak_self/functools", [](benchmark::State& s) {
    MethodHit(s, "ft_method", "ft_service");
  });
  benchmark::RegisterBenchmark("lru_cache/method_hit/leakguard", [](benchmark::State& s) {
    MethodHit(s, "lg_strong_method", "lg_strong_service");
  });
  benchmark::RegisterBenchmark("lru_cache/method_hit/functools", [](benchmark::State& s) {
    MethodHit(s, "ft_method", "ft_service");
  });
  for (Peer p :
       {Peer{"leakguard", "lg_traced_guard"}, Peer{"tracemalloc_lineno", "tm_traced_guard"}}) {
    const int n = Smoke() ? 500 : 10000;
    const std::string name = Smoke() ? "traced_enter_exit_500" : "traced_enter_exit_10k";
    benchmark::RegisterBenchmark(("memory_guard/" + name + "/" + p.impl).c_str(),
                                 [p, n](benchmark::State& s) { TracedGuard(s, p.hit, n); })
        ->Unit(benchmark::kMillisecond);
  }
  for (const char* impl : {"leakguard", "bare", "psutil"}) {
    const char* func = std::string(impl) == "leakguard" ? "lg_process_call"
                       : std::string(impl) == "bare"    ? "bare_call"
                                                        : "psutil_call";
    benchmark::RegisterBenchmark(("memory_guard/process_call_1us/" + std::string(impl)).c_str(),
                                 [func](benchmark::State& s) { ProcessCall(s, func); })
        ->Unit(benchmark::kMicrosecond);
  }
  for (const char* impl : {"leakguard", "weakref_bus"}) {
    const std::string n = Smoke() ? "4" : "100";
    benchmark::RegisterBenchmark(("event_bus/emit_" + n + "_methods/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Emit(s, impl, 0); });
    benchmark::RegisterBenchmark(("event_bus/emit_" + n + "_functions/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Emit(s, impl, 1); });
    benchmark::RegisterBenchmark(("event_bus/subscribe_unsubscribe_" + n + "/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Churn(s, impl); });
  }
  for (const char* impl : {"leakguard", "functools"}) {
    const int n = Smoke() ? 1000 : 1000000;
    const std::string name = Smoke() ? "memory/lru_cache_1k/" : "memory/lru_cache_1m/";
    benchmark::RegisterBenchmark((name + impl).c_str(), [impl, n](benchmark::State& s) {
      LruMemory(s, impl, n);
    })->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
#if !defined(LEAKGUARD_HAVE_PYTHON_MODULE)
  std::fprintf(stderr,
               "pymodule_benchmark: built without the bindings "
               "(LEAKGUARD_BUILD_BINDINGS=OFF); nothing to measure\n");
  (void)argc;
  (void)argv;
  return 0;
#else
  if (auto registered = leakguard::python::RegisterModule(); !registered.ok()) {
    std::fprintf(stderr, "%s\n", registered.ToString().c_str());
    return 1;
  }
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  g_globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  Ref setup = Steal(PyRun_String(kSetup, Py_file_input, g_globals, g_globals));
  Ref buses;
  if (setup) {
    buses = Steal(PyRun_String(Smoke() ? "make_buses(4)" : "make_buses(100)", Py_eval_input,
                               g_globals, g_globals));
  }
  if (!setup || !buses) {
    std::fprintf(stderr, "setup failed: %s\n",
                 leakguard::StatusFromPythonError().ToString().c_str());
    return 1;
  }
  PyDict_SetItemString(g_globals, "_bench_state", buses.get());
  PyDict_SetItemString(g_globals, "_bench_buses", PyTuple_GET_ITEM(buses.get(), 2));
  Ref work_n = Steal(PyObject_CallNoArgs(Global("calibrate_1us")));
  if (!work_n) {
    std::fprintf(stderr, "calibrate_1us failed: %s\n",
                 leakguard::StatusFromPythonError().ToString().c_str());
    return 1;
  }
  Register();
  return leakguard::bench::RunRegistered(argc, argv);
#endif
}
