// What every benchmark binary's main() does around its own registrations:
// the smoke switch, starting the CPython it was built against, and running
// Google Benchmark. Header-only; each binary compiles its own copy.

#ifndef LEAKGUARD_BENCHMARKS_BENCH_MAIN_H_
#define LEAKGUARD_BENCHMARKS_BENCH_MAIN_H_

#include <malloc.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"

#if defined(LEAKGUARD_PYTHON_EXECUTABLE)
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#endif

namespace leakguard::bench {

/// Marks the benchmark as failed with `status`'s message; returns false.
inline bool Fail(benchmark::State& state, const absl::Status& status) {
  state.SkipWithError(std::string(status.message()).c_str());
  return false;
}

/// Fail() with the pending Python exception (cleared).
inline bool FailPython(benchmark::State& state) { return Fail(state, StatusFromPythonError()); }

// True when LEAKGUARD_BENCH_SMOKE=1 (benchmarks/run.sh --smoke): every
// benchmark then runs once at a tiny size, to prove it still works.
inline bool Smoke() {
  const char* smoke = std::getenv("LEAKGUARD_BENCH_SMOKE");
  return smoke != nullptr && std::strcmp(smoke, "1") == 0;
}

// Resident memory of this process (/proc/self/statm), in bytes, read after
// malloc_trim(0) has given the allocator's free pages back, so that what a
// memory row measures is what is in use, not what was freed before; -1 when
// it cannot be read. Pages pymalloc keeps in partly used arenas still count.
inline int64_t ResidentBytes() {
  malloc_trim(0);
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size = 0;
  long long resident = -1;
  const int read = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (read != 2) return -1;
  return static_cast<int64_t>(resident) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

#if defined(LEAKGUARD_PYTHON_EXECUTABLE)
// Starts the CPython the benchmarks were built against (CMake's
// Python3_EXECUTABLE, so its site-packages and objgraph are found). Empty,
// with the reason on stderr, when it cannot.
inline std::optional<Interpreter> StartInterpreter() {
  InterpreterOptions options;
  options.program_name = LEAKGUARD_PYTHON_EXECUTABLE;
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  if (!py.ok()) {
    std::fprintf(stderr, "starting Python: %s\n", py.status().ToString().c_str());
    return std::nullopt;
  }
  return *std::move(py);
}
#endif

// Runs the registered benchmarks with the command line's flags: 0, or 1 for
// a flag Google Benchmark does not know.
inline int RunRegistered(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace leakguard::bench

#endif  // LEAKGUARD_BENCHMARKS_BENCH_MAIN_H_
