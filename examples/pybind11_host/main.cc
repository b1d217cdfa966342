// A host that embeds Python with pybind11, as it did before it used
// leakguard: py::scoped_interpreter starts and finalizes Python. leakguard
// attaches to that interpreter, guards every plugin run and leaves the
// production detector on; the detector names the plugin line that leaks.
//
//   build/pybind11_host [runs]    (default 10000; the plugin keeps 2 KB a run)
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>

#include <pybind11/embed.h>

#include "leakguard/leakguard.h"

namespace py = pybind11;

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 10000;
  py::scoped_interpreter python;  // The host's own start-up, unchanged.

  // Attach: leakguard's watchers run in this interpreter; it never
  // finalizes it (scoped_interpreter does, and leakguard's atexit callback
  // stops the watchers first).
  auto attached = leakguard::Interpreter::Attach();
  if (!attached.ok()) {
    std::fprintf(stderr, "attach: %s\n", attached.status().ToString().c_str());
    return 2;
  }

  std::mutex mu;
  std::optional<leakguard::Report> first;  // The detector's first warning.
  leakguard::CallbackSink sink([&](const leakguard::Report& report) {
    std::lock_guard<std::mutex> lock(mu);
    if (!first && report.severity == leakguard::Severity::kWarning) first = report;
  });
  leakguard::LeakDetectorOptions options;
  options.interval = absl::Milliseconds(100);
  options.threshold_bytes = 4 << 20;
  options.min_report_interval = absl::Hours(1);
  options.sink = &sink;
  auto detector = leakguard::LeakDetector::Create(options);
  if (!detector.ok() || !(*detector)->Start().ok()) {
    std::fprintf(stderr, "detector: %s\n",
                 detector.ok() ? "Start failed" : detector.status().ToString().c_str());
    return 2;
  }

  py::module_::import("sys").attr("path").attr("insert")(0, PLUGIN_DIR);
  py::object run = py::module_::import("plugin").attr("run");

  // A guard around every run: what one run did to the process.
  leakguard::MemoryGuardOptions guard_options;
  guard_options.label = "plugin.run";
  int64_t guarded_rss = 0;
  for (int i = 0; i < runs; ++i) {
    auto guard = leakguard::MemoryGuard::Enter(guard_options);
    run(i);
    if (guard.ok()) {
      auto report = guard->Exit();
      if (report.ok()) guarded_rss += report->process.rss_bytes;
    }
  }
  std::printf("%d plugin runs under guards: RSS %s in total\n", runs,
              leakguard::FormatBytes(guarded_rss).c_str());

  // The detector reads on its own thread, with the GIL: let it have it.
  {
    py::gil_scoped_release release;
    for (int waited = 0; waited < 600; ++waited) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (first) break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  std::lock_guard<std::mutex> lock(mu);
  if (!first || first->top_lines.empty()) {
    std::printf("detector: no report\n");
    return 1;
  }
  const leakguard::LineGrowth& top = first->top_lines.front();
  const std::size_t slash = top.file.rfind('/');
  std::printf("detector: %s\ndetector's top line: %s:%d %s\n", first->summary.c_str(),
              top.file.substr(slash == std::string::npos ? 0 : slash + 1).c_str(), top.line,
              leakguard::FormatBytes(top.size_diff).c_str());
  return 0;  // ~scoped_interpreter finalizes; the detector is stopped first.
}
