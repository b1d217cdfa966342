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
// LEAKGUARD_BENCH_SMOKE=1: tiny listener counts and heap (CI's smoke run).

#include <cstdio>
#include <string>
#include <vector>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
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
  for (const char* impl : {"leakguard", "weakref_bus"}) {
    const std::string n = Smoke() ? "4" : "100";
    benchmark::RegisterBenchmark(("event_bus/emit_" + n + "_methods/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Emit(s, impl, 0); });
    benchmark::RegisterBenchmark(("event_bus/emit_" + n + "_functions/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Emit(s, impl, 1); });
    benchmark::RegisterBenchmark(("event_bus/subscribe_unsubscribe_" + n + "/" + impl).c_str(),
                                 [impl](benchmark::State& s) { Churn(s, impl); });
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
  Register();
  return leakguard::bench::RunRegistered(argc, argv);
#endif
}
