// A host that starts Python with its own PyConfig, as most hosts that embed
// CPython without a binding library do, and finalizes it itself. leakguard
// attaches, runs the production detector, answers an on-demand request for
// its evidence (what `kill -USR2` or a trigger file would ask a running
// host for), and the host finalizes with the detector still running:
// leakguard's atexit callback stops it before the runtime goes away.
//
//   build/pyconfig_host [requests]   (default 10000)
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>

#include "leakguard/leakguard.h"

namespace {

// Python started the host's way: its own PyConfig, its own signal handling.
bool StartPython() {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // The host owns SIGINT.
  config.parse_argv = 0;
  // Find the standard library (and Debian's packages) next to the Python
  // leakguard was built with.
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, HOST_PYTHON);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    std::fprintf(stderr, "Python: %s\n", status.err_msg ? status.err_msg : "failed");
    return false;
  }
  return true;
}

std::string Basename(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void PrintTop(const char* what, const leakguard::Report& report) {
  if (report.top_lines.empty()) {
    std::printf("%s: %s (no lines)\n", what, report.summary.c_str());
    return;
  }
  const leakguard::LineGrowth& top = report.top_lines.front();
  std::printf("%s: %s\n%s's top line: %s:%d %s\n", what, report.summary.c_str(), what,
              Basename(top.file).c_str(), top.line, leakguard::FormatBytes(top.size_diff).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 10000;
  if (!StartPython()) return 2;

  // Declared before anything that needs them and kept past Py_FinalizeEx:
  // the host finalizes with the detector still running.
  auto attached = leakguard::Interpreter::Attach();
  if (!attached.ok()) {
    std::fprintf(stderr, "attach: %s\n", attached.status().ToString().c_str());
    return 2;
  }
  std::mutex mu;
  std::optional<leakguard::Report> warning, on_demand;
  leakguard::CallbackSink sink([&](const leakguard::Report& report) {
    std::lock_guard<std::mutex> lock(mu);
    if (report.label == "on_demand") {
      on_demand = report;
    } else if (!warning && report.severity == leakguard::Severity::kWarning) {
      warning = report;
    }
  });
  leakguard::LeakDetectorOptions options;
  options.interval = absl::Milliseconds(100);
  options.threshold_bytes = 4 << 20;
  options.min_report_interval = absl::Hours(1);
  options.sink = &sink;
  auto detector = leakguard::LeakDetector::Create(options);
  absl::Status started = detector.ok() ? (*detector)->Start() : detector.status();
  if (!started.ok()) {
    std::fprintf(stderr, "detector: %s\n", started.ToString().c_str());
    return 2;
  }

  {  // The Python objects the host holds, released before it finalizes.
    PyRun_SimpleString("import sys; sys.path.insert(0, '" PLUGIN_DIR "')");
    leakguard::Ref module = leakguard::Steal(PyImport_ImportModule("plugin"));
    leakguard::Ref handle = module
                                ? leakguard::Steal(PyObject_GetAttrString(module.get(), "handle"))
                                : leakguard::Ref();
    for (int i = 0; handle && i < requests; ++i) {
      leakguard::Ref result = leakguard::Steal(PyObject_CallFunction(handle.get(), "i", i));
      if (!result) break;
    }
    if (!handle || PyErr_Occurred()) {
      std::fprintf(stderr, "plugin: %s\n", leakguard::StatusFromPythonError().ToString().c_str());
      return 1;
    }
  }
  std::printf("%d requests handled\n", requests);

  {
    leakguard::GilRelease release;  // The detector's thread needs the GIL.
    for (int waited = 0; waited < 600; ++waited) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (warning) break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    // The evidence on demand, made on the detector's thread.
    absl::Status asked = (*detector)->ReportNow();
    if (!asked.ok()) std::fprintf(stderr, "on demand: %s\n", asked.ToString().c_str());
  }
  int rc = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (warning)
      PrintTop("detector", *warning);
    else
      rc = 1;
    if (on_demand)
      PrintTop("ReportNow", *on_demand);
    else
      rc = 1;
  }
  // The detector is still running: Py_FinalizeEx's atexit callbacks stop
  // it before the runtime goes away.
  const bool was_running = (*detector)->running();
  const int finalized = Py_FinalizeEx();
  std::printf("finalized with the detector running (%s): %s, detector stopped: %s\n",
              was_running ? "yes" : "no", finalized == 0 ? "ok" : "error",
              (*detector)->running() ? "no" : "yes");
  return finalized == 0 && !(*detector)->running() ? rc : 1;
}
