// Costs of the plumbing every probe and guard pays: a process sample (peer:
// psutil reading the same facts), a GIL round trip, a Ref copy.

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/process.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"

namespace {

void SampleProcessLeakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto sample = leakguard::SampleProcess();
    benchmark::DoNotOptimize(sample);
  }
}

// psutil reading RSS + peak (memory_full_info is far slower; memory_info has
// rss only, so add num_fds and num_threads for the same facts).
void SampleProcessPsutil(benchmark::State& state) {
  PyObject* globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  leakguard::Ref setup = leakguard::Steal(PyRun_String(
      "import psutil\n_p = psutil.Process()\n"
      "def _sample():\n    return _p.memory_info().rss, _p.num_fds(), _p.num_threads()\n",
      Py_file_input, globals, globals));
  if (!setup) {
    state.SkipWithError(std::string(leakguard::StatusFromPythonError().message()).c_str());
    return;
  }
  PyObject* sample = PyDict_GetItemString(globals, "_sample");
  for (auto _ : state) {
    leakguard::Ref r = leakguard::Steal(PyObject_CallNoArgs(sample));
    benchmark::DoNotOptimize(r.get());
  }
}

void GilAcquireRelease(benchmark::State& state) {
  leakguard::GilRelease released;  // Measure a full acquire/release pair.
  for (auto _ : state) {
    leakguard::GilAcquire gil;
    benchmark::DoNotOptimize(gil.ok());
  }
}

void RefCopy(benchmark::State& state) {
  leakguard::Ref list = leakguard::Steal(PyList_New(0));
  for (auto _ : state) {
    leakguard::Ref copy = list;
    benchmark::DoNotOptimize(copy.get());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  benchmark::RegisterBenchmark("plumbing/sample_process/leakguard", SampleProcessLeakguard);
  benchmark::RegisterBenchmark("plumbing/sample_process/psutil", SampleProcessPsutil);
  benchmark::RegisterBenchmark("plumbing/gil_acquire_release/leakguard", GilAcquireRelease);
  benchmark::RegisterBenchmark("plumbing/ref_copy/leakguard", RefCopy);
  return leakguard::bench::RunRegistered(argc, argv);
}
