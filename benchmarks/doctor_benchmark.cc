// The doctor's own cost on a large heap: Diagnose() with the default 3 + 20
// iterations of a tiny leaking workload, on a heap of 1M gc-tracked objects
// (LEAKGUARD_BENCH_SMOKE: 10k). Beside it, the manual leak hunt
// (docs/design.md, "The peers") on the same heap: tracemalloc snapshots + compare_to,
// objgraph.growth before and after, and objgraph.find_backref_chain for one leaked object.

#include <cstdio>
#include <string>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/doctor.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"

namespace {

using leakguard::Ref;
using leakguard::Steal;

using leakguard::bench::Smoke;
PyObject* Globals() { return PyModule_GetDict(PyImport_AddModule("__main__")); }

constexpr char kSetup[] = R"py(
import gc, sys, time, tracemalloc, types
import objgraph

# The workload lives in a module of its own, as a script would.
app = types.ModuleType("bench_app")
exec("""
_kept = []
def step():
    _kept.append(bytearray(256))
""", app.__dict__)
sys.modules["bench_app"] = app

def make_heap(n):
    global _heap
    _heap = [[i] for i in range(n)]   # n tracked lists

def recipe_workflow():
    # What a user does by hand for the same question.
    tracemalloc.start()
    for _ in range(3): app.step()
    objgraph.growth(limit=10)
    before = tracemalloc.take_snapshot()
    for _ in range(20): app.step()
    after = tracemalloc.take_snapshot()
    after.compare_to(before, "lineno")
    objgraph.growth(limit=10)
    objgraph.find_backref_chain(app._kept[-1], objgraph.is_proper_module)
    tracemalloc.stop()
    app._kept.clear()
)py";

void DoctorLeakguard(benchmark::State& state) {
  PyObject* app = PyDict_GetItemString(PyImport_GetModuleDict(), "bench_app");
  Ref step = Steal(PyObject_GetAttrString(app, "step"));
  for (auto _ : state) {
    auto d = leakguard::Diagnose(step, {}, leakguard::Handle(app));
    if (!d.ok() || d->verdict != leakguard::Verdict::kLeak) {
      state.SkipWithError("the doctor did not find the leak");
      return;
    }
    state.PauseTiming();
    Ref cleared = Steal(PyRun_String("app._kept.clear()", Py_file_input, Globals(), Globals()));
    state.ResumeTiming();
  }
}

void DoctorRecipe(benchmark::State& state) {
  PyObject* workflow = PyDict_GetItemString(Globals(), "recipe_workflow");
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(workflow));
    if (!r) {
      state.SkipWithError(std::string(leakguard::StatusFromPythonError().message()).c_str());
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  Ref setup = Steal(PyRun_String(kSetup, Py_file_input, Globals(), Globals()));
  if (!setup) {
    std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str());
    return 1;
  }
  const int n = Smoke() ? 10000 : 1000000;
  Ref heap = Steal(PyObject_CallFunction(PyDict_GetItemString(Globals(), "make_heap"), "i", n));
  if (!heap) return 1;
  const std::string name = Smoke() ? "doctor/diagnose_10k_heap" : "doctor/diagnose_1m_heap";
  benchmark::RegisterBenchmark((name + "/leakguard").c_str(), DoctorLeakguard)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark((name + "/recipe_workflow").c_str(), DoctorRecipe)
      ->Unit(benchmark::kMillisecond);
  return leakguard::bench::RunRegistered(argc, argv);
}
