// Costs of the outputs for tools outside the process, beside Python peers
// measured in the same run:
//   prometheus/render_20_sites     PrometheusSink::Render()  vs  prometheus_client's
//                                  generate_latest() over the same series
//   prometheus/textfile_20_sites   PrometheusSink::Write() with a textfile (temp file +
//                                  rename)  vs  prometheus_client's write_to_textfile()
//   collapsed/snapshot_10k         ProfileFromSnapshot + RenderCollapsed  vs  the
//                                  plain-Python recipe (statistics("traceback"),
//                                  joined frames), on a snapshot of 10k blocks in
//                                  20 stacks

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/profile.h"
#include "leakguard/prometheus.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"

namespace {

using leakguard::Ref;
using leakguard::Steal;

PyObject* Globals() { return PyModule_GetDict(PyImport_AddModule("__main__")); }

Ref Exec(const std::string& code) {
  Ref r = Steal(PyRun_String(code.c_str(), Py_file_input, Globals(), Globals()));
  if (!r) std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str());
  return r;
}

PyObject* Func(const char* name) { return PyDict_GetItemString(Globals(), name); }

constexpr char kSetup[] = R"py(
import os, tracemalloc
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, write_to_textfile

CAUSES = ["unbounded_cache", "global_state", "reference_cycles", "closure_capture",
          "unclosed_resources", "native_memory", "listener_accumulation", "thread_local",
          "array_copies", "logging_buffer"]

# The same series PrometheusSink exposes after one detector report naming 20 lines.
registry = CollectorRegistry()
Gauge("leakguard_rss_bytes", "RSS", registry=registry).set(123456789)
Gauge("leakguard_python_traced_bytes", "traced", registry=registry).set(7340032)
Gauge("leakguard_python_blocks", "blocks", registry=registry).set(4242)
Gauge("leakguard_open_fds", "fds", registry=registry).set(17)
Gauge("leakguard_threads", "threads", registry=registry).set(3)
growth = Gauge("leakguard_growth_bytes", "growth", ["watcher", "source"], registry=registry)
rate = Gauge("leakguard_growth_bytes_per_second", "rate", ["watcher", "source"], registry=registry)
for source, value in (("python", 1 << 20), ("native", 4 << 20)):
    growth.labels("leak_detector", source).set(value)
    rate.labels("leak_detector", source).set(value / 4)
suspected = Gauge("leakguard_leak_suspected", "suspected", ["cause"], registry=registry)
for cause in CAUSES:
    suspected.labels(cause).set(1 if cause == "native_memory" else 0)
site_bytes = Gauge("leakguard_site_growth_bytes", "site", ["file", "line"], registry=registry)
site_blocks = Gauge("leakguard_site_growth_blocks", "site", ["file", "line"], registry=registry)
for i in range(20):
    site_bytes.labels(f"/srv/app/module_{i}.py", str(10 + i)).set(100000 - i)
    site_blocks.labels(f"/srv/app/module_{i}.py", str(10 + i)).set(100 + i)
Counter("leakguard_reports", "reports", ["watcher", "severity"],
        registry=registry).labels("leak_detector", "warning").inc()
Gauge("leakguard_last_report_timestamp_seconds", "last", ["watcher"],
      registry=registry).labels("leak_detector").set(1700000000)

def client_render():
    return generate_latest(registry)

def client_textfile(path):
    write_to_textfile(path, registry)

# 10k blocks allocated through 20 distinct stacks (depth 1..20).
def _leaf(n, keep):
    keep.append(bytearray(64 + n % 7))

def _mid(depth, n, keep):
    if depth == 0:
        _leaf(n, keep)
    else:
        _mid(depth - 1, n, keep)

_heap = []
def make_snapshot(n):
    _heap.clear()
    for i in range(n):
        _mid(i % 20, i, _heap)
    return tracemalloc.take_snapshot()

# The plain-Python recipe for collapsed stacks.
def recipe_collapsed(snapshot):
    lines = []
    for stat in snapshot.statistics("traceback"):
        stack = ";".join(f"{frame.filename}:{frame.lineno}" for frame in stat.traceback)
        lines.append(f"{stack} {stat.size}")
    return "\n".join(lines) + "\n"
)py";

leakguard::Report DetectorReport() {
  leakguard::Report report;
  report.source = "leak_detector";
  report.severity = leakguard::Severity::kWarning;
  report.label = "python_heap,native";
  report.elapsed = absl::Seconds(4);
  report.metrics = {{"rss_bytes", 5 << 20}, {"traced_bytes", 1 << 20}};
  for (int i = 0; i < 20; ++i) {
    report.top_lines.push_back(
        {absl::StrCat("/srv/app/module_", i, ".py"), 10 + i, 100000 - i, 100 + i, 100000});
  }
  return report;
}

std::unique_ptr<leakguard::PrometheusSink> MakeSink(const std::string& textfile) {
  leakguard::PrometheusSinkOptions options;
  options.read_counters = false;
  options.textfile_path = textfile;
  auto sink = leakguard::PrometheusSink::Create(options);
  if (!sink.ok()) return nullptr;
  (*sink)->Write(DetectorReport());
  return *std::move(sink);
}

std::string TextfilePath(const char* who) {
  return absl::StrCat("/tmp/leakguard-bench-", ::getpid(), "-", who, ".prom");
}

void RenderLeakguard(benchmark::State& state) {
  std::unique_ptr<leakguard::PrometheusSink> sink = MakeSink("");
  for (auto _ : state) {
    std::string text = sink->Render();
    benchmark::DoNotOptimize(text.data());
  }
}

void RenderClient(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(Func("client_render")));
    benchmark::DoNotOptimize(r.get());
  }
}

void TextfileLeakguard(benchmark::State& state) {
  const std::string path = TextfilePath("leakguard");
  std::unique_ptr<leakguard::PrometheusSink> sink = MakeSink(path);
  const leakguard::Report report = DetectorReport();
  for (auto _ : state) sink->Write(report);
  if (sink->failures() != 0) state.SkipWithError("textfile writes failed");
  ::unlink(path.c_str());
}

void TextfileClient(benchmark::State& state) {
  const std::string path = TextfilePath("client");
  Ref arg = Steal(PyUnicode_FromString(path.c_str()));
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallOneArg(Func("client_textfile"), arg.get()));
    if (!r) {
      state.SkipWithError("write_to_textfile raised");
      PyErr_Clear();
      break;
    }
  }
  ::unlink(path.c_str());
}

Ref py_snapshot;
leakguard::tracemalloc::Snapshot* snapshot = nullptr;

void CollapsedLeakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto profile = leakguard::ProfileFromSnapshot(*snapshot, {.filter_own_frames = false});
    std::string text = leakguard::RenderCollapsed(*profile);
    benchmark::DoNotOptimize(text.data());
  }
}

void CollapsedRecipe(benchmark::State& state) {
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallOneArg(Func("recipe_collapsed"), py_snapshot.get()));
    benchmark::DoNotOptimize(r.get());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  if (!Exec(kSetup)) return 1;
  // Traced from here: the snapshot holds the heap below (and little else).
  auto tracing = leakguard::tracemalloc::TracingScope::Start(25);
  if (!tracing.ok()) return 1;
  const int blocks = leakguard::bench::Smoke() ? 500 : 10000;
  py_snapshot = Steal(PyObject_CallFunction(Func("make_snapshot"), "i", blocks));
  if (!py_snapshot) return 1;
  auto converted =
      leakguard::tracemalloc::Snapshot::FromPython(leakguard::Handle(py_snapshot.get()));
  if (!converted.ok()) return 1;
  leakguard::tracemalloc::Snapshot held = *std::move(converted);
  snapshot = &held;
  // Tracing off while measuring: it would tax the Python peers' allocations
  // and not leakguard's C++ ones.
  if (!tracing->End().ok()) return 1;
  const std::string collapsed =
      leakguard::bench::Smoke() ? "collapsed/snapshot_500" : "collapsed/snapshot_10k";
  benchmark::RegisterBenchmark("prometheus/render_20_sites/leakguard", RenderLeakguard)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("prometheus/render_20_sites/prometheus_client", RenderClient)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("prometheus/textfile_20_sites/leakguard", TextfileLeakguard)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("prometheus/textfile_20_sites/prometheus_client", TextfileClient)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark((collapsed + "/leakguard").c_str(), CollapsedLeakguard)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark((collapsed + "/recipe").c_str(), CollapsedRecipe)
      ->Unit(benchmark::kMillisecond);
  const int rc = leakguard::bench::RunRegistered(argc, argv);
  py_snapshot.Reset();
  return rc;
}
