// Costs of the plumbing every probe and guard pays: a process sample, a GIL
// round trip from a foreign thread, a Ref copy.

#include <optional>

#include "benchmark/benchmark.h"
#include "leakguard/process.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"

namespace {

void BM_SampleProcess(benchmark::State& state) {
  for (auto _ : state) {
    auto sample = leakguard::SampleProcess();
    benchmark::DoNotOptimize(sample);
  }
}
BENCHMARK(BM_SampleProcess);

void BM_GilAcquireRelease(benchmark::State& state) {
  leakguard::GilRelease released;  // Measure a full acquire/release pair.
  for (auto _ : state) {
    leakguard::GilAcquire gil;
    benchmark::DoNotOptimize(gil.ok());
  }
}
BENCHMARK(BM_GilAcquireRelease);

void BM_RefCopy(benchmark::State& state) {
  leakguard::Ref list = leakguard::Steal(PyList_New(0));
  for (auto _ : state) {
    leakguard::Ref copy = list;
    benchmark::DoNotOptimize(copy.get());
  }
}
BENCHMARK(BM_RefCopy);

}  // namespace

int main(int argc, char** argv) {
  auto py = leakguard::Interpreter::Start({});
  if (!py.ok()) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
