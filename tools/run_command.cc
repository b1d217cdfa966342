#include "run_command.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "leakguard/counters.h"
#include "leakguard/leak_detector.h"
#include "leakguard/process.h"
#include "leakguard/profile.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
#include "leakguard/python_module.h"
#endif
#include "cli_support.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"
#include "leakguard/sink.h"
#include "leakguard/tracemalloc.h"

namespace leakguard::tools {
namespace {

// Everything the summary shows, gathered after the script ends.
struct Summary {
  int exit_code = 0;
  int interrupted_by = 0;  // SIGINT or SIGTERM when a signal ended the script.
  absl::Duration elapsed;
  ProcessSample before;
  absl::StatusOr<ProcessSample> after = absl::UnknownError("not read");
  absl::StatusOr<tracemalloc::TracedMemory> traced = absl::UnknownError("not read");
  absl::StatusOr<std::vector<LineGrowth>> top = absl::UnknownError("not read");
  bool detector_ran = false;
  int64_t detector_rounds = 0;
  std::vector<Report> detector_reports;
  std::vector<DetectorRound> detector_history;  // For --html's plot.
  std::optional<Profile> heap;                  // The live heap at exit, for --html.
};

// Keeps the detector's reports for the summary and prints them as they
// come, so a long run shows them live.
class KeepAndPrintSink : public Sink {
 public:
  void Write(const Report& report) noexcept override {
    printer_.Write(report);
    absl::MutexLock lock(&mu_);
    reports_.push_back(report);
  }
  std::vector<Report> reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }

 private:
  StderrSink printer_;
  absl::Mutex mu_;
  std::vector<Report> reports_ ABSL_GUARDED_BY(mu_);
};

// The lines holding the most traced memory now, without the import
// machinery, tracemalloc's and leakguard's own (OwnFrameFilters()); with
// `heap`, also the live heap by traceback for the --html flame graph.
absl::StatusOr<std::vector<LineGrowth>> TopLines(int top, std::optional<Profile>* heap) {
  if (absl::StatusOr<bool> tracing = tracemalloc::IsTracing(); tracing.ok() && !*tracing) {
    return absl::FailedPreconditionError(
        "the script stopped tracemalloc (tracemalloc.stop()), so no lines were recorded");
  }
  absl::StatusOr<tracemalloc::Snapshot> snapshot = tracemalloc::Snapshot::Take();
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<tracemalloc::Snapshot> filtered = snapshot->FilterTraces(OwnFrameFilters());
  if (!filtered.ok()) return filtered.status();
  if (heap != nullptr) {
    absl::StatusOr<Profile> profile =
        ProfileFromSnapshot(*filtered, {.max_samples = 2000, .filter_own_frames = false});
    if (profile.ok()) {
      profile->name = "live heap at exit";
      ResolvePythonFunctions(&*profile).IgnoreError();  // Names only; the page works without.
      heap->emplace(*std::move(profile));
    }
  }
  absl::StatusOr<tracemalloc::StatisticList> stats =
      filtered->Statistics(tracemalloc::GroupBy::kLineno);
  if (!stats.ok()) return stats.status();
  std::vector<LineGrowth> lines;
  for (const tracemalloc::Statistic& stat : *stats) {
    if (static_cast<int>(lines.size()) >= top) break;
    if (stat.traceback.empty()) continue;
    const tracemalloc::Frame frame = stat.traceback.most_recent();
    lines.push_back({std::string(frame.filename), static_cast<int>(frame.lineno), stat.size,
                     stat.count, stat.size});
  }
  return lines;
}

// The exit code Python itself would use for a SystemExit, printing its
// message the way Python does. Consumes the pending SystemExit.
int ExitCodeFromSystemExit() {
  Ref exc = Steal(compat::FetchException());
  Ref code = Steal(PyObject_GetAttrString(exc.get(), "code"));
  if (!code) {
    PyErr_Clear();
    return 1;
  }
  if (code.get() == Py_None) return 0;
  if (PyLong_Check(code.get())) {
    const long value = PyLong_AsLong(code.get());
    if (value == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return 1;
    }
    return static_cast<int>(value & 0xff);
  }
  FlushPythonStreams();
  Ref text = Steal(PyObject_Str(code.get()));
  if (text) {
    const char* utf8 = PyUnicode_AsUTF8(text.get());
    if (utf8 != nullptr) std::fprintf(stderr, "%s\n", utf8);
  }
  PyErr_Clear();
  return 1;
}

std::string Signed(int64_t value) {
  return value >= 0 ? absl::StrCat("+", value) : absl::StrCat(value);
}

std::string SignedBytes(int64_t value) {
  return value >= 0 ? absl::StrCat("+", FormatBytes(value)) : FormatBytes(value);
}

std::string RenderSummaryText(const RunOptions& options, const Summary& s) {
  std::string out = absl::StrFormat(
      "\n=== leakguard run: %s (%sexit %d, %.2f s) ===\n", options.script,
      s.interrupted_by != 0 ? absl::StrCat("interrupted by ", SignalName(s.interrupted_by), ", ")
                            : "",
      s.exit_code, absl::ToDoubleSeconds(s.elapsed));
  if (s.after.ok()) {
    const ProcessDelta delta = *s.after - s.before;
    absl::StrAppendFormat(&out, "RSS          before %s, after %s (%s), peak %s\n",
                          FormatBytes(s.before.rss_bytes), FormatBytes(s.after->rss_bytes),
                          SignedBytes(delta.rss_bytes), FormatBytes(s.after->peak_rss_bytes));
  } else {
    absl::StrAppend(&out, "RSS          unavailable: ", CommandWording(s.after.status().message()),
                    "\n");
  }
  if (s.traced.ok()) {
    absl::StrAppendFormat(&out, "Python heap  current %s, peak %s (tracemalloc, %d frame%s)\n",
                          FormatBytes(static_cast<int64_t>(s.traced->current)),
                          FormatBytes(static_cast<int64_t>(s.traced->peak)), options.frames,
                          options.frames == 1 ? "" : "s");
  } else {
    absl::StrAppend(&out, "Python heap  unavailable: ", CommandWording(s.traced.status().message()),
                    "\n");
  }
  if (s.after.ok()) {
    absl::StrAppendFormat(&out, "descriptors  %s (%d -> %d)\n",
                          Signed(s.after->open_fds - s.before.open_fds), s.before.open_fds,
                          s.after->open_fds);
    absl::StrAppendFormat(&out, "threads      %s (%d -> %d)\n",
                          Signed(s.after->threads - s.before.threads), s.before.threads,
                          s.after->threads);
  }
  if (s.detector_ran) {
    absl::StrAppendFormat(&out, "detector     %d rounds every %s, %d report%s (threshold %s)\n",
                          s.detector_rounds, absl::FormatDuration(options.detector_interval),
                          s.detector_reports.size(), s.detector_reports.size() == 1 ? "" : "s",
                          FormatBytes(options.threshold_bytes));
    for (const Report& report : s.detector_reports) {
      absl::StrAppend(&out, "  - ", report.label, ": ", report.summary, "\n");
    }
  }
  if (s.top.ok() && !s.top->empty()) {
    absl::StrAppendFormat(&out, "top %d lines holding Python memory at exit:\n", s.top->size());
    int rank = 0;
    for (const LineGrowth& line : *s.top) {
      absl::StrAppendFormat(&out, "  %2d. %s:%d  %s in %d block%s\n", ++rank, line.file, line.line,
                            FormatBytes(line.size), line.count_diff,
                            line.count_diff == 1 ? "" : "s");
    }
  } else if (!s.top.ok()) {
    absl::StrAppend(&out, "top lines unavailable: ", CommandWording(s.top.status().message()),
                    "\n");
  }
  return out;
}

std::string RenderSummaryJson(const RunOptions& options, const Summary& s) {
  std::string out =
      absl::StrCat("{\"script\":", JsonQuote(options.script), ",\"exit_code\":", s.exit_code,
                   ",\"interrupted\":",
                   s.interrupted_by != 0 ? absl::StrCat("\"", SignalName(s.interrupted_by), "\"")
                                         : std::string("null"),
                   ",\"elapsed_s\":", absl::StrFormat("%.6f", absl::ToDoubleSeconds(s.elapsed)));
  if (s.after.ok()) {
    absl::StrAppend(&out, ",\"rss\":{\"before\":", s.before.rss_bytes,
                    ",\"after\":", s.after->rss_bytes, ",\"peak\":", s.after->peak_rss_bytes,
                    "},\"fds\":{\"before\":", s.before.open_fds, ",\"after\":", s.after->open_fds,
                    "},\"threads\":{\"before\":", s.before.threads, ",\"after\":", s.after->threads,
                    "}");
  }
  if (s.traced.ok()) {
    absl::StrAppend(&out, ",\"traced\":{\"current\":", s.traced->current,
                    ",\"peak\":", s.traced->peak, ",\"frames\":", options.frames, "}");
  }
  absl::StrAppend(&out, ",\"top_lines\":[");
  if (s.top.ok()) {
    bool first = true;
    for (const LineGrowth& line : *s.top) {
      absl::StrAppend(&out, first ? "" : ",", "{\"file\":", JsonQuote(line.file),
                      ",\"line\":", line.line, ",\"size\":", line.size,
                      ",\"count\":", line.count_diff, "}");
      first = false;
    }
  }
  absl::StrAppend(&out, "]");
  if (s.detector_ran) {
    absl::StrAppend(&out, ",\"detector\":{\"interval_s\":",
                    absl::StrFormat("%.6f", absl::ToDoubleSeconds(options.detector_interval)),
                    ",\"threshold_bytes\":", options.threshold_bytes,
                    ",\"rounds\":", s.detector_rounds, ",\"reports\":[");
    bool first = true;
    for (const Report& report : s.detector_reports) {
      absl::StrAppend(&out, first ? "" : ",", RenderJson(report));
      first = false;
    }
    absl::StrAppend(&out, "]}");
  } else {
    absl::StrAppend(&out, ",\"detector\":null");
  }
  absl::StrAppend(&out, "}\n");
  return out;
}

std::string ScriptDirectory(const std::string& script) {
  char resolved[PATH_MAX];
  std::string dir = ".";
  const size_t slash = script.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : script.substr(0, slash);
  if (::realpath(dir.c_str(), resolved) != nullptr) return resolved;
  return dir;
}

// The copy of stderr taken at start (messages reach the user even when the
// script closed its stderr); null before it is taken.
ReportStream* g_report = nullptr;

void Say(const std::string& text) {
  std::fflush(stderr);
  if (g_report == nullptr || !g_report->Write(text).ok()) std::fputs(text.c_str(), stderr);
}

int Fail(const std::string& message) {
  Say(absl::StrCat("leakguard: ", CommandWording(message), "\n"));
  return kExitUsage;
}

}  // namespace

int RunScript(const RunOptions& options) {
  // A copy of stderr taken now: the summary goes there even when the script
  // closes its stderr. The pid: a child the script forks prints no summary.
  ReportStream report(2);
  g_report = &report;
  struct Forget {
    ~Forget() { g_report = nullptr; }
  } forget;
  InstallCrashMessage("leakguard run", report.fd());
  const pid_t start_pid = ::getpid();
  if (::access(options.script.c_str(), R_OK) != 0) {
    return Fail(absl::StrCat("cannot open script '", options.script, "': ", std::strerror(errno)));
  }
  // Checked and made absolute before the script runs (and can chdir).
  OutputFile json_output{"--json", options.json_path};
  OutputFile html_output{"--html", options.html_path};
  std::vector<OutputFile*> outputs;
  if (!json_output.path.empty()) outputs.push_back(&json_output);
  if (!html_output.path.empty()) outputs.push_back(&html_output);
  if (!outputs.empty()) {
    if (absl::Status checked = CheckOutputs(options.script, outputs); !checked.ok()) {
      return Fail(std::string(checked.message()));
    }
  }
  InterpreterOptions interpreter_options;
  interpreter_options.program_name = options.python_program;
  interpreter_options.argv.push_back(options.script);
  for (const std::string& arg : options.args) interpreter_options.argv.push_back(arg);
  // SIGPIPE and SIGXFSZ ignored as in python3 (a write fails instead).
  interpreter_options.install_signal_handlers = true;
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
  if (absl::Status registered = python::RegisterModule(); !registered.ok()) {
    return Fail(std::string(registered.message()));
  }
#endif
  absl::StatusOr<Interpreter> interpreter = Interpreter::Start(interpreter_options);
  if (!interpreter.ok()) return Fail(std::string(interpreter.status().message()));
  if (absl::Status installed = InstallSignalHandlers(report.fd()); !installed.ok()) {
    return Fail(std::string(installed.message()));
  }
  // Like python3: a directory or a zip file (anything an import hook takes)
  // runs its __main__ module, with itself first on sys.path; a script has
  // its directory first.
  bool as_package = false;
  {
    Ref path = Steal(PyUnicode_DecodeFSDefault(options.script.c_str()));
    Ref importer = path ? Steal(PyImport_GetImporter(path.get())) : Ref();
    if (!importer) PyErr_Clear();
    as_package = importer && importer.get() != Py_None;
    Ref first = as_package
                    ? std::move(path)
                    : Steal(PyUnicode_DecodeFSDefault(ScriptDirectory(options.script).c_str()));
    PyObject* sys_path = PySys_GetObject("path");  // Borrowed.
    if (!first || sys_path == nullptr || PyList_Insert(sys_path, 0, first.get()) != 0) {
      return Fail(absl::StrCat("cannot set sys.path: ", StatusFromPythonError().message()));
    }
  }
  // Traced from here on: what the script (and its imports) allocate, not
  // the interpreter's own start-up.
  absl::StatusOr<tracemalloc::TracingScope> tracing =
      tracemalloc::TracingScope::Start(options.frames);
  if (!tracing.ok()) return Fail(std::string(tracing.status().message()));

  KeepAndPrintSink detector_sink;
  std::unique_ptr<LeakDetector> detector;
  if (options.detector_interval > absl::ZeroDuration()) {
    absl::StatusOr<std::unique_ptr<LeakDetector>> created =
        LeakDetector::Create({.interval = options.detector_interval,
                              .threshold_bytes = options.threshold_bytes,
                              .top = options.top,
                              .min_report_interval = absl::Minutes(1),
                              .sink = &detector_sink});
    if (!created.ok()) return Fail(std::string(created.status().message()));
    detector = *std::move(created);
  }

  Summary summary;
  absl::StatusOr<ProcessSample> before = SampleProcess();
  if (!before.ok()) return Fail(std::string(before.status().message()));
  summary.before = *before;
  if (detector) {
    if (absl::Status started = detector->Start(); !started.ok()) {
      return Fail(std::string(started.message()));
    }
  }

  // Run the file in __main__'s namespace, as `python3 SCRIPT.py` does. It is
  // opened after the "before" sample and closed by Python when it has been
  // read, so the descriptor delta is the script's own.
  FILE* file = nullptr;
  if (!as_package) {
    file = std::fopen(options.script.c_str(), "rb");
    if (file == nullptr) {
      return Fail(
          absl::StrCat("cannot open script '", options.script, "': ", std::strerror(errno)));
    }
  }
  const absl::Time start = absl::Now();
  Ref result;
  if (as_package) {
    // What python3 does for a directory or zip: runpy, which also says
    // "can't find '__main__' module in ..." (SystemExit, exit 1).
    Ref runpy = Steal(PyImport_ImportModule("runpy"));
    if (runpy) {
      result =
          Steal(PyObject_CallMethod(runpy.get(), "_run_module_as_main", "(si)", "__main__", 0));
    }
  } else {
    PyObject* main_module = PyImport_AddModule("__main__");  // Borrowed.
    PyObject* globals = main_module ? PyModule_GetDict(main_module) : nullptr;
    Ref filename = Steal(PyUnicode_DecodeFSDefault(options.script.c_str()));
    if (globals != nullptr && filename &&
        PyDict_SetItemString(globals, "__file__", filename.get()) == 0 &&
        PyDict_SetItemString(globals, "__cached__", Py_None) == 0) {
      result = Steal(PyRun_FileExFlags(file, options.script.c_str(), Py_file_input, globals,
                                       globals, /*closeit=*/1, nullptr));
      file = nullptr;
    }
    if (file != nullptr) std::fclose(file);
  }
  summary.elapsed = absl::Now() - start;
  // The script's exception is held while the "after" counters are read, so
  // formatting its traceback (traceback, linecache, ...) is not counted as
  // the script's memory.
  PyObject* exc_type = nullptr;
  PyObject* exc_value = nullptr;
  PyObject* exc_tb = nullptr;
  const bool raised = !result;
  if (raised) PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
  result = Ref();  // runpy's globals: gone before the interpreter is.
  const bool in_child = ::getpid() != start_pid;
  if (in_child) {
    // A child the script forked: the parent prints the summary; the
    // detector's thread is not in this process, so it cannot be stopped.
    (void)detector.release();
  }
  if (detector) {
    detector->Stop();
    summary.detector_ran = true;
    summary.detector_rounds = detector->rounds();
    summary.detector_reports = detector_sink.reports();
    if (!html_output.path.empty()) summary.detector_history = detector->History();
  }
  if (!in_child) {
    summary.after = SampleProcess();
    summary.traced = tracemalloc::GetTracedMemory();
    summary.top = TopLines(options.top, html_output.path.empty() ? nullptr : &summary.heap);
  }
  if (raised) {
    PyErr_Restore(exc_type, exc_value, exc_tb);
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
      summary.exit_code = ExitCodeFromSystemExit();
      if (CaughtSignal() == SIGTERM && summary.exit_code == kExitTerminated) {
        summary.interrupted_by = SIGTERM;
      }
    } else {
      const bool interrupted = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) != 0;
      absl::Status error = StatusFromPythonError();
      FlushPythonStreams();
      Say(PythonTraceback(error).value_or(std::string(error.message()) + "\n"));
      summary.exit_code = interrupted ? kExitInterrupted : kExitUsage;
      if (interrupted) summary.interrupted_by = SIGINT;
    }
  }
  FlushPythonStreams();
  if (in_child) {
    if (options.detector_interval > absl::ZeroDuration()) {
      // Finalizing would wait for the detector's thread, which is the parent's.
      std::fflush(nullptr);
      ::_exit(summary.exit_code);
    }
    return summary.exit_code;  // Finalized as python3 would: atexit handlers run.
  }
  std::fflush(stderr);
  int exit_code = summary.exit_code;
  if (absl::Status written = report.Write(RenderSummaryText(options, summary)); !written.ok()) {
    exit_code = Fail(absl::StrCat("cannot write the summary to stderr: ", written.message()));
  }
  if (!json_output.path.empty()) {
    if (absl::Status written =
            WriteOutput(json_output.path, ValidUtf8(RenderSummaryJson(options, summary)));
        !written.ok()) {
      exit_code = Fail(std::string(written.message()));
    }
  }
  if (!html_output.path.empty()) {
    HtmlReportInput page;
    page.title = absl::StrCat("leakguard run ", options.script);
    page.sections.push_back({"Summary", RenderSummaryText(options, summary)});
    // The detector's rounds, plotted; none without --detector-interval.
    page.rounds = RoundPointsFromHistory(summary.detector_history);
    if (summary.heap.has_value()) page.profile = *summary.heap;
    if (absl::Status written = WriteOutput(html_output.path, ValidUtf8(RenderHtmlReport(page)));
        !written.ok()) {
      exit_code = Fail(std::string(written.message()));
    }
  }
  detector.reset();
  if (absl::Status done = interpreter->Finalize(); !done.ok() && exit_code == 0) {
    exit_code = 120;  // What `python3` returns when finalization fails.
  }
  return exit_code;
}

}  // namespace leakguard::tools
