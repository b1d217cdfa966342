#include "run_command.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "leakguard/process.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard::tools {
namespace {

struct LineStat {
  std::string filename;
  int64_t lineno = 0;
  int64_t size = 0;
  int64_t count = 0;
};

struct TracedSummary {
  int64_t current = 0;
  int64_t peak = 0;
  std::vector<LineStat> top;
};

// Python-side helpers of the summary; they run once, after the script.
constexpr char kHelpers[] = R"py(
import tracemalloc as _tm

def _leakguard_top_lines(limit):
    snapshot = _tm.take_snapshot().filter_traces((
        _tm.Filter(False, "<frozen importlib._bootstrap>"),
        _tm.Filter(False, "<frozen importlib._bootstrap_external>"),
        _tm.Filter(False, _tm.__file__),
        _tm.Filter(False, "<unknown>"),
    ))
    return [(s.traceback[0].filename, s.traceback[0].lineno, s.size, s.count)
            for s in snapshot.statistics("lineno")[:limit]]
)py";

absl::StatusOr<Ref> Import(const char* name) {
  Ref module = Steal(PyImport_ImportModule(name));
  if (!module) return StatusFromPythonError();
  return module;
}

absl::Status StartTracemalloc(int frames) {
  absl::StatusOr<Ref> tm = Import("tracemalloc");
  if (!tm.ok()) return tm.status();
  Ref done = Steal(PyObject_CallMethod(tm->get(), "start", "i", frames));
  if (!done) return StatusFromPythonError();
  return absl::OkStatus();
}

absl::StatusOr<TracedSummary> ReadTraced(int top) {
  TracedSummary summary;
  absl::StatusOr<Ref> tm = Import("tracemalloc");
  if (!tm.ok()) return tm.status();
  Ref traced = Steal(PyObject_CallMethod(tm->get(), "get_traced_memory", nullptr));
  if (!traced) return StatusFromPythonError();
  long long current = 0;
  long long peak = 0;
  if (!PyArg_ParseTuple(traced.get(), "LL", &current, &peak)) {
    return StatusFromPythonError();
  }
  summary.current = current;
  summary.peak = peak;

  Ref globals = Steal(PyDict_New());
  if (!globals) return StatusFromPythonError();
  if (PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) != 0) {
    return StatusFromPythonError();
  }
  Ref ran = Steal(PyRun_String(kHelpers, Py_file_input, globals.get(), globals.get()));
  if (!ran) return StatusFromPythonError();
  PyObject* func = PyDict_GetItemString(globals.get(), "_leakguard_top_lines");
  if (func == nullptr) return absl::InternalError("summary helper missing");
  Ref rows = Steal(PyObject_CallFunction(func, "i", top));
  if (!rows) return StatusFromPythonError();
  const Py_ssize_t n = PyList_Size(rows.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    const char* filename = nullptr;
    long long lineno = 0, size = 0, count = 0;
    if (!PyArg_ParseTuple(PyList_GET_ITEM(rows.get(), i), "sLLL", &filename,
                          &lineno, &size, &count)) {
      return StatusFromPythonError();
    }
    summary.top.push_back({filename, lineno, size, count});
  }
  return summary;
}

void FlushPythonStreams() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // Borrowed.
    if (stream == nullptr || stream == Py_None) continue;
    Ref done = Steal(PyObject_CallMethod(stream, "flush", nullptr));
    if (!done) PyErr_Clear();
  }
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

void PrintSummary(const RunOptions& options, int exit_code,
                  absl::Duration elapsed, const ProcessSample& before,
                  const absl::StatusOr<ProcessSample>& after,
                  const absl::StatusOr<TracedSummary>& traced) {
  std::string out = absl::StrFormat(
      "\n=== leakguard run: %s (exit %d, %.2f s) ===\n", options.script,
      exit_code, absl::ToDoubleSeconds(elapsed));
  if (after.ok()) {
    const ProcessDelta delta = *after - before;
    absl::StrAppendFormat(&out,
                          "RSS          before %s, after %s (%s), peak %s\n",
                          FormatBytes(before.rss_bytes),
                          FormatBytes(after->rss_bytes),
                          SignedBytes(delta.rss_bytes),
                          FormatBytes(after->peak_rss_bytes));
  } else {
    absl::StrAppend(&out, "RSS          unavailable: ", after.status().message(),
                    "\n");
  }
  if (traced.ok()) {
    absl::StrAppendFormat(
        &out, "Python heap  current %s, peak %s (tracemalloc, %d frame%s)\n",
        FormatBytes(traced->current), FormatBytes(traced->peak), options.frames,
        options.frames == 1 ? "" : "s");
  } else {
    absl::StrAppend(&out, "Python heap  unavailable: ",
                    traced.status().message(), "\n");
  }
  if (after.ok()) {
    absl::StrAppendFormat(&out, "descriptors  %s (%d -> %d)\n",
                          Signed(after->open_fds - before.open_fds),
                          before.open_fds, after->open_fds);
    absl::StrAppendFormat(&out, "threads      %s (%d -> %d)\n",
                          Signed(after->threads - before.threads),
                          before.threads, after->threads);
  }
  if (traced.ok() && !traced->top.empty()) {
    absl::StrAppendFormat(&out, "top %d lines holding Python memory at exit:\n",
                          traced->top.size());
    int rank = 0;
    for (const LineStat& line : traced->top) {
      absl::StrAppendFormat(&out, "  %2d. %s:%d  %s in %d block%s\n", ++rank,
                            line.filename, line.lineno, FormatBytes(line.size),
                            line.count, line.count == 1 ? "" : "s");
    }
  }
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
}

std::string ScriptDirectory(const std::string& script) {
  char resolved[PATH_MAX];
  std::string dir = ".";
  const size_t slash = script.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : script.substr(0, slash);
  if (::realpath(dir.c_str(), resolved) != nullptr) return resolved;
  return dir;
}

}  // namespace

int RunScript(const RunOptions& options) {
  if (::access(options.script.c_str(), R_OK) != 0) {
    std::fprintf(stderr, "leakguard: cannot open script '%s': %s\n",
                 options.script.c_str(), std::strerror(errno));
    return 2;
  }
  InterpreterOptions interpreter_options;
  interpreter_options.program_name = options.python_program;
  interpreter_options.argv.push_back(options.script);
  for (const std::string& arg : options.args) {
    interpreter_options.argv.push_back(arg);
  }
  // Like `python3 SCRIPT.py`: the script's directory comes first.
  interpreter_options.extra_sys_path.push_back(ScriptDirectory(options.script));
  absl::StatusOr<Interpreter> interpreter = Interpreter::Start(interpreter_options);
  if (!interpreter.ok()) {
    std::fprintf(stderr, "leakguard: %s\n",
                 std::string(interpreter.status().message()).c_str());
    return 2;
  }
  if (absl::Status started = StartTracemalloc(options.frames); !started.ok()) {
    std::fprintf(stderr, "leakguard: cannot start tracemalloc: %s\n",
                 std::string(started.message()).c_str());
    return 2;
  }
  absl::StatusOr<ProcessSample> before = SampleProcess();
  if (!before.ok()) {
    std::fprintf(stderr, "leakguard: %s\n",
                 std::string(before.status().message()).c_str());
    return 2;
  }

  // Run the file in __main__'s namespace, as `python3 SCRIPT.py` does. It is
  // opened after the "before" sample and closed by Python when it has been
  // read, so the descriptor delta is the script's own.
  FILE* file = std::fopen(options.script.c_str(), "rb");
  if (file == nullptr) {
    std::fprintf(stderr, "leakguard: cannot open script '%s': %s\n",
                 options.script.c_str(), std::strerror(errno));
    return 2;
  }
  int exit_code = 0;
  const absl::Time start = absl::Now();
  {
    PyObject* main_module = PyImport_AddModule("__main__");  // Borrowed.
    PyObject* globals = main_module ? PyModule_GetDict(main_module) : nullptr;
    Ref filename = Steal(PyUnicode_DecodeFSDefault(options.script.c_str()));
    Ref result;
    if (globals != nullptr && filename &&
        PyDict_SetItemString(globals, "__file__", filename.get()) == 0 &&
        PyDict_SetItemString(globals, "__cached__", Py_None) == 0) {
      result = Steal(PyRun_FileExFlags(file, options.script.c_str(),
                                       Py_file_input, globals, globals,
                                       /*closeit=*/1, nullptr));
      file = nullptr;
    }
    if (file != nullptr) std::fclose(file);
    if (!result) {
      if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        exit_code = ExitCodeFromSystemExit();
      } else {
        absl::Status error = StatusFromPythonError();
        FlushPythonStreams();
        std::fputs(PythonTraceback(error).value_or(std::string(error.message()) + "\n").c_str(),
                   stderr);
        exit_code = 2;
      }
    }
  }
  const absl::Duration elapsed = absl::Now() - start;
  FlushPythonStreams();
  absl::StatusOr<ProcessSample> after = SampleProcess();
  absl::StatusOr<TracedSummary> traced = ReadTraced(options.top);
  PrintSummary(options, exit_code, elapsed, *before, after, traced);
  if (absl::Status done = interpreter->Finalize(); !done.ok() && exit_code == 0) {
    exit_code = 120;  // What `python3` returns when finalization fails.
  }
  return exit_code;
}

}  // namespace leakguard::tools
