#include "doctor_command.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "leakguard/counters.h"
#include "leakguard/doctor.h"
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
#include "leakguard/tracemalloc.h"

namespace leakguard::tools {
namespace {

constexpr char kCommand[] = "leakguard doctor";

// The copy of stderr taken at start (messages reach the user even when the
// script closed its stderr); null before it is taken.
ReportStream* g_errors = nullptr;

void Say(const std::string& text) {
  std::fflush(stderr);
  if (g_errors == nullptr || !g_errors->Write(text).ok()) std::fputs(text.c_str(), stderr);
}

int Fail(const std::string& message) {
  Say(absl::StrCat(kCommand, ": ", CommandWording(message), "\n"));
  return kExitUsage;
}

int FailWithTraceback(const std::string& what, const absl::Status& status) {
  Say(absl::StrCat(kCommand, ": ", what, ": ", CommandWording(status.message()), "\n"));
  if (auto tb = PythonTraceback(status)) Say(*tb);
  return kExitUsage;
}

// What FUNC is called through: counts the iterations done (for a report
// after an interruption), keeps the counters of the first and the latest
// one, and drives what FUNC returns so that the work really happens: a
// generator is exhausted, a coroutine is run to completion with
// asyncio.run(). One per process.
struct Workload {
  Ref func;
  Ref asyncio_run;
  int64_t done = 0;
  bool drove_generator = false;
  bool drove_coroutine = false;
  std::optional<Counters> first;
  std::optional<Counters> last;
};
Workload* g_workload = nullptr;

// The one-line progress display on a terminal's stderr: iteration, time,
// the heap's growth so far. Off (fd -1) when stderr is not a terminal.
struct Progress {
  int fd = -1;
  absl::Time started = absl::Now();
  absl::Time shown = absl::InfinitePast();
  bool drawn = false;

  void Show(const Workload& w) {
    if (fd < 0) return;
    const absl::Time now = absl::Now();
    if (now - shown < absl::Milliseconds(200)) return;
    shown = now;
    std::string heap = "n/a";
    if (w.first && w.last && w.first->traced_bytes && w.last->traced_bytes) {
      const int64_t grew = *w.last->traced_bytes - *w.first->traced_bytes;
      heap = grew >= 0 ? absl::StrCat("+", FormatBytes(grew)) : FormatBytes(grew);
    }
    const std::string line =
        absl::StrFormat("\r\033[K  leakguard doctor: iteration %d, %.1f s, Python heap %s", w.done,
                        absl::ToDoubleSeconds(now - started), heap);
    drawn = ::write(fd, line.data(), line.size()) > 0 || drawn;
  }
  void Clear() {
    if (fd < 0 || !drawn) return;
    constexpr char kClear[] = "\r\033[K";
    if (::write(fd, kClear, sizeof(kClear) - 1) < 0) return;
    drawn = false;
  }
};
Progress g_progress;

PyObject* CallWorkload(PyObject* /*self*/, PyObject* /*unused*/) {
  if (g_workload == nullptr || !g_workload->func) {
    PyErr_SetString(PyExc_RuntimeError, "leakguard doctor's workload is over");
    return nullptr;
  }
  Workload& w = *g_workload;
  if (!w.first) {
    if (absl::StatusOr<Counters> c = ReadCounters(); c.ok()) w.first = *c;
  }
  Ref result = Steal(PyObject_CallNoArgs(w.func.get()));
  if (!result) return nullptr;
  if (PyCoro_CheckExact(result.get())) {
    if (!w.asyncio_run) {
      Ref asyncio = Steal(PyImport_ImportModule("asyncio"));
      if (!asyncio) return nullptr;
      w.asyncio_run = Steal(PyObject_GetAttrString(asyncio.get(), "run"));
      if (!w.asyncio_run) return nullptr;
    }
    w.drove_coroutine = true;
    result = Steal(PyObject_CallOneArg(w.asyncio_run.get(), result.get()));
    if (!result) return nullptr;
  } else if (PyGen_Check(result.get())) {
    w.drove_generator = true;
    while (Ref item = Steal(PyIter_Next(result.get()))) {
    }
    if (PyErr_Occurred()) return nullptr;
  } else if (PyAsyncGen_CheckExact(result.get())) {
    PyErr_SetString(PyExc_TypeError,
                    "it returned an async generator, which leakguard doctor cannot drive; "
                    "give it a function that consumes it");
    return nullptr;
  }
  ++w.done;
  if (absl::StatusOr<Counters> c = ReadCounters(); c.ok()) w.last = *c;
  g_progress.Show(w);
  Py_RETURN_NONE;
}

PyMethodDef g_workload_def = {"leakguard_workload", CallWorkload, METH_NOARGS,
                              "FUNC, called once per iteration by leakguard doctor"};

// inspect.<predicate>(func), false on any error.
bool Inspect(const char* predicate, PyObject* func) {
  Ref inspect = Steal(PyImport_ImportModule("inspect"));
  Ref yes = inspect ? Steal(PyObject_CallMethod(inspect.get(), predicate, "(O)", func)) : Ref();
  if (!yes) {
    PyErr_Clear();
    return false;
  }
  return PyObject_IsTrue(yes.get()) == 1;
}

std::string SignedBytes(int64_t value) {
  return value >= 0 ? absl::StrCat("+", FormatBytes(value)) : FormatBytes(value);
}
std::string Signed(int64_t value) {
  return value >= 0 ? absl::StrCat("+", value) : absl::StrCat(value);
}

// The report of a run that a signal cut short: no verdict, the iterations
// done and what the counters did over them.
struct Interrupted {
  int signum = 0;
  int64_t done = 0;
  int64_t planned = 0;
  std::optional<Counters> growth;

  std::string Text(const DoctorCommandOptions& options) const {
    std::string out = absl::StrFormat(
        "leakguard doctor %s:%s\n\ninterrupted (%s) after %d of %d iterations (%d warmup + %d "
        "measured): no verdict, the run did not finish\n",
        options.script, options.func, SignalName(signum), done, planned, options.doctor.warmup,
        options.doctor.repeat);
    if (growth) {
      absl::StrAppendFormat(&out,
                            "so far, over %d iterations: RSS %s, Python heap %s, blocks %s, "
                            "descriptors %s, threads %s\n",
                            done, SignedBytes(growth->rss_bytes),
                            growth->traced_bytes ? SignedBytes(*growth->traced_bytes) : "n/a",
                            Signed(growth->blocks), Signed(growth->fds), Signed(growth->threads));
    }
    return out;
  }

  std::string Json() const {
    std::string out = absl::StrCat("{\"verdict\":null,\"interrupted\":{\"signal\":\"",
                                   SignalName(signum), "\",\"iterations_done\":", done,
                                   ",\"iterations_planned\":", planned, "},\"so_far\":");
    if (growth) {
      absl::StrAppend(&out, "{\"rss_bytes\":", growth->rss_bytes, ",\"traced_bytes\":",
                      growth->traced_bytes ? absl::StrCat(*growth->traced_bytes) : "null",
                      ",\"blocks\":", growth->blocks, ",\"fds\":", growth->fds,
                      ",\"threads\":", growth->threads, "}");
    } else {
      absl::StrAppend(&out, "null");
    }
    absl::StrAppend(&out, "}\n");
    return out;
  }
};

// Loads the script from its path under `name`, whatever modules of that
// name are imported already (a script called os.py or json.py is the
// user's file, not the standard library's). The module is entered in
// sys.modules only when no module of that name is imported and the name
// is not one of the standard library's.
absl::StatusOr<Ref> LoadScript(const std::string& path, const std::string& stem) {
  Ref name =
      Steal(PyUnicode_DecodeUTF8(stem.data(), static_cast<Py_ssize_t>(stem.size()), "replace"));
  Ref location = Steal(PyUnicode_DecodeFSDefault(path.c_str()));
  Ref util = Steal(PyImport_ImportModule("importlib.util"));
  if (!name || !location || !util) return StatusFromPythonError();
  Ref spec = Steal(PyObject_CallMethod(util.get(), "spec_from_file_location", "(OO)", name.get(),
                                       location.get()));
  if (!spec) return StatusFromPythonError();
  if (spec.get() == Py_None) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load '", path, "' as Python source"));
  }
  Ref module = Steal(PyObject_CallMethod(util.get(), "module_from_spec", "(O)", spec.get()));
  Ref loader = spec ? Steal(PyObject_GetAttrString(spec.get(), "loader")) : Ref();
  if (!module || !loader) return StatusFromPythonError();
  PyObject* modules = PySys_GetObject("modules");             // Borrowed.
  PyObject* stdlib = PySys_GetObject("stdlib_module_names");  // Borrowed; 3.10+.
  bool enter = modules != nullptr && PyDict_Check(modules) &&
               PyDict_GetItemWithError(modules, name.get()) == nullptr && !PyErr_Occurred();
  PyErr_Clear();
  if (enter && stdlib != nullptr && PySequence_Contains(stdlib, name.get()) != 0) enter = false;
  PyErr_Clear();
  if (enter && PyDict_SetItem(modules, name.get(), module.get()) != 0)
    return StatusFromPythonError();
  Ref done = Steal(PyObject_CallMethod(loader.get(), "exec_module", "(O)", module.get()));
  if (!done) {
    absl::Status error = StatusFromPythonError();
    if (enter) {
      if (PyDict_DelItem(modules, name.get()) != 0) PyErr_Clear();
    }
    return error;
  }
  return module;
}

// Imports `name` with importlib (packages, relative imports and all).
absl::StatusOr<Ref> ImportByName(const std::string& name) {
  Ref importlib = Steal(PyImport_ImportModule("importlib"));
  if (!importlib) return StatusFromPythonError();
  Ref module = Steal(PyObject_CallMethod(importlib.get(), "import_module", "(s)", name.c_str()));
  if (!module) return StatusFromPythonError();
  return module;
}

// The doctor's drivers of a workload other than FUNC(), compiled under
// leakguard's own file name so that their frames are never sites.
constexpr char kDriversSource[] = R"py(
import io
import sys


def call(expression, namespace):
    code = compile("lambda: (%s)" % expression, "<leakguard>/call", "eval")
    return eval(code, namespace)


def wsgi(app, method, path):
    from wsgiref.util import setup_testing_defaults
    route, _, query = path.partition("?")

    def request():
        environ = {"REQUEST_METHOD": method, "PATH_INFO": route, "QUERY_STRING": query,
                   "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}
        setup_testing_defaults(environ)
        status = []

        def start_response(line, headers, exc_info=None):
            status.append(line)
            return lambda data: None

        body = app(environ, start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not status:
            raise RuntimeError("the WSGI application never called start_response")
        if status[0][:1] == "5":
            raise RuntimeError("the WSGI application answered %s to %s %s" % (status[0], method, path))

    return request
)py";

// The callable run once per iteration: FUNC, a `--call` expression
// evaluated in the module, or one request through a `--wsgi` application.
absl::StatusOr<Ref> WorkloadOf(PyObject* module, const DoctorCommandOptions& given) {
  if (given.call.empty() && given.wsgi_app.empty()) {
    return Steal(PyObject_GetAttrString(module, given.func.c_str()));  // null: no FUNC
  }
  Ref globals = Steal(PyDict_New());
  if (!globals || PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) != 0) {
    return StatusFromPythonError();
  }
  Ref code = Steal(Py_CompileString(kDriversSource, "<leakguard>/drivers.py", Py_file_input));
  if (!code) return StatusFromPythonError();
  Ref ran = Steal(PyEval_EvalCode(code.get(), globals.get(), globals.get()));
  if (!ran) return StatusFromPythonError();
  if (!given.call.empty()) {
    PyObject* call = PyDict_GetItemString(globals.get(), "call");  // Borrowed.
    Ref made =
        Steal(PyObject_CallFunction(call, "sO", given.call.c_str(), PyModule_GetDict(module)));
    if (!made) return StatusFromPythonError();
    return made;
  }
  Ref app = Steal(PyObject_GetAttrString(module, given.wsgi_app.c_str()));
  if (!app) return StatusFromPythonError();
  PyObject* wsgi = PyDict_GetItemString(globals.get(), "wsgi");  // Borrowed.
  Ref made = Steal(PyObject_CallFunction(wsgi, "Oss", app.get(), given.wsgi_method.c_str(),
                                         given.wsgi_path.c_str()));
  if (!made) return StatusFromPythonError();
  return made;
}

// The whole diagnosis on one self-contained page: the text report, the
// back-reference graph (as SVG when Graphviz is installed) and a flame graph
// of the growth by cause and site.
std::string HtmlReport(const std::string& title, const std::string& text, const Diagnosis& d) {
  HtmlReportInput page;
  page.title = title;
  page.sections.push_back({"Diagnosis", text});
  const std::string dot = d.ToDot();
  page.svg = dot;
  char path[] = "/tmp/leakguard-dot-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd >= 0) {
    const bool wrote = ::write(fd, dot.data(), dot.size()) == static_cast<ssize_t>(dot.size());
    ::close(fd);
    if (wrote) {
      if (FILE* svg = ::popen(absl::StrCat("dot -Tsvg ", path, " 2>/dev/null").c_str(), "r")) {
        std::string out;
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), svg)) > 0) out.append(buf, n);
        if (::pclose(svg) == 0 && out.find("<svg") != std::string::npos) page.svg = out;
      }
    }
    ::unlink(path);
  }
  page.rounds = RoundPointsFromDeltas(d.iterations);
  page.rounds_unit = "iteration";
  // When the doctor ran on (Diagnosis::extra_iterations), the plot is the
  // run it decided on: the last one.
  page.rounds_heading =
      d.extra_iterations > 0 ? "Iterations of the last run, the one decided on" : "Iterations";
  if (d.warmup > 0) {
    absl::StrAppend(&page.rounds_heading, " (the first ", d.warmup, d.warmup == 1 ? " is" : " are",
                    " the warm-up)");
  }
  page.profile.name = "growth by cause and site";
  page.profile.is_growth = true;
  for (const Cause& c : d.causes) {
    for (const Site& site : c.sites) {
      ProfileSample sample;
      ProfileFrame cause;
      cause.function = std::string(CauseIdName(c.id));
      ProfileFrame where;
      where.file = site.file;
      where.line = site.line;
      sample.stack = {cause, where};
      sample.bytes = site.bytes_per_iter * d.repeat;
      sample.alloc_bytes = sample.bytes;
      if (sample.bytes > 0) page.profile.samples.push_back(std::move(sample));
    }
  }
  return RenderHtmlReport(page);
}
}  // namespace

int RunDoctor(const DoctorCommandOptions& given) {
  // The target as the messages name it: the script, or the module; FUNC, or
  // the expression, or the request driven.
  const bool by_module = given.script.empty();
  DoctorCommandOptions options = given;
  if (by_module) options.script = given.module;
  if (!given.call.empty()) options.func = given.call;
  if (!given.wsgi_app.empty()) {
    options.func = absl::StrCat(given.wsgi_app, " (", given.wsgi_method, " ", given.wsgi_path, ")");
  }
  // Copies of stdout and stderr taken now: a script that closes them does
  // not lose the report.
  ReportStream report(1);
  ReportStream errors(2);
  g_errors = &errors;
  struct Forget {
    ~Forget() { g_errors = nullptr; }
  } forget;
  InstallCrashMessage(kCommand, errors.fd());
  // What is imported, and how: a plain script from its path under its own
  // name; a module of a package (a directory with __init__.py) by its
  // dotted name with the top package's parent on sys.path, so relative
  // imports work; `pkg.module` by name, with the current directory on
  // sys.path as `python3 -m` has it.
  std::string dir = ".";
  std::string module_name;
  std::string import_name;  // dotted name to import; empty: load by path
  std::string script_path;
  if (!by_module) {
    if (::access(options.script.c_str(), R_OK) != 0) {
      return Fail(
          absl::StrCat("cannot open script '", options.script, "': ", std::strerror(errno)));
    }
    std::string file = options.script;
    if (const size_t slash = file.rfind('/'); slash != std::string::npos) {
      dir = slash == 0 ? "/" : file.substr(0, slash);
      file = file.substr(slash + 1);
    }
    if (file.size() < 4 || file.substr(file.size() - 3) != ".py") {
      return Fail(absl::StrCat("'", options.script, "' is not a .py file"));
    }
    module_name = file.substr(0, file.size() - 3);
    char resolved[PATH_MAX];
    if (::realpath(dir.c_str(), resolved) != nullptr) dir = resolved;
    std::string dotted = module_name == "__init__" ? "" : module_name;
    while (::access((dir + "/__init__.py").c_str(), F_OK) == 0 && dir != "/") {
      const size_t slash = dir.rfind('/');
      const std::string package = dir.substr(slash + 1);
      dotted = dotted.empty() ? package : absl::StrCat(package, ".", dotted);
      dir = slash == 0 ? "/" : dir.substr(0, slash);
    }
    if (dotted != module_name) import_name = dotted;
    script_path = AbsolutePath(options.script);
  } else {
    import_name = given.module;
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr) dir = cwd;
  }
  // Checked and made absolute before the script is imported (and can chdir).
  OutputFile json_output{"--json", options.json_path};
  OutputFile dot_output{"--dot", options.dot_path};
  OutputFile html_output{"--html", options.html_path};
  std::vector<OutputFile*> outputs;
  if (!json_output.path.empty()) outputs.push_back(&json_output);
  if (!dot_output.path.empty()) outputs.push_back(&dot_output);
  if (!html_output.path.empty()) outputs.push_back(&html_output);
  if (absl::Status checked = CheckOutputs(by_module ? std::string() : options.script, outputs);
      !checked.ok()) {
    return Fail(std::string(checked.message()));
  }

  if (given.progress == 1 || (given.progress == -1 && ::isatty(errors.fd()) == 1)) {
    g_progress.fd = errors.fd();
  }
  InterpreterOptions interpreter_options;
  interpreter_options.program_name = options.python_program;
  interpreter_options.argv = {by_module ? given.module : options.script};
  interpreter_options.extra_sys_path = {dir};
  // SIGPIPE and SIGXFSZ ignored as in python3 (a write fails instead).
  interpreter_options.install_signal_handlers = true;
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
  if (absl::Status registered = python::RegisterModule(); !registered.ok()) {
    return Fail(std::string(registered.message()));
  }
#endif
  absl::StatusOr<Interpreter> interpreter = Interpreter::Start(interpreter_options);
  if (!interpreter.ok()) return Fail(std::string(interpreter.status().message()));
  if (absl::Status installed = InstallSignalHandlers(errors.fd()); !installed.ok()) {
    return Fail(std::string(installed.message()));
  }

  // Threads the workload started and never ended must not hold up the
  // exit: named, waited for a bounded time, then left behind.
  auto finish = [&](int code) {
    if (g_workload != nullptr) {  // Its references go before the interpreter does.
      g_workload->func = Ref();
      g_workload->asyncio_run = Ref();
    }
    if (!WaitForThreads(kCommand, errors, absl::Seconds(2))) {
      FlushPythonStreams();
      std::fflush(nullptr);
      ::_exit(code);
    }
    return code;
  };
  auto write_outputs = [&](const std::string& json, const std::string& dot, int code) {
    if (!json_output.path.empty()) {
      if (absl::Status written = WriteOutput(json_output.path, ValidUtf8(json)); !written.ok()) {
        code = Fail(std::string(written.message()));
      }
    }
    if (!dot_output.path.empty()) {
      if (absl::Status written = WriteOutput(dot_output.path, dot); !written.ok()) {
        code = Fail(std::string(written.message()));
      }
    }
    return code;
  };
  auto print_report = [&](const std::string& text, int code) {
    g_progress.Clear();
    FlushPythonStreams();  // What the script printed comes first.
    std::fflush(stdout);
    if (absl::Status written = report.Write(text); !written.ok()) {
      return Fail(absl::StrCat("cannot write the report to stdout: ", written.message()));
    }
    return code;
  };
  auto interrupted_code = [](int signum) {
    return signum == SIGTERM ? kExitTerminated : kExitInterrupted;
  };

  int exit_code = kExitUsage;
  {
    absl::StatusOr<Ref> module =
        import_name.empty() ? LoadScript(script_path, module_name) : ImportByName(import_name);
    if (!module.ok()) {
      const std::optional<std::string> type = PythonExceptionType(module.status());
      if (CaughtSignal() != 0 || type == "KeyboardInterrupt") {
        const int signum = CaughtSignal() != 0 ? CaughtSignal() : SIGINT;
        FlushPythonStreams();
        if (auto tb = PythonTraceback(module.status())) Say(*tb);
        Say(absl::StrCat(kCommand, ": interrupted (", SignalName(signum), ") while importing ",
                         options.script, "\n"));
        return finish(interrupted_code(signum));
      }
      return finish(FailWithTraceback(absl::StrCat("importing ", options.script, " failed"),
                                      module.status()));
    }
    absl::StatusOr<Ref> chosen = WorkloadOf(module->get(), given);
    if (!chosen.ok()) {
      return finish(FailWithTraceback(absl::StrCat(options.script, ": ", chosen.status().message()),
                                      chosen.status()));
    }
    Ref func = *std::move(chosen);
    if (!func) {
      PyErr_Clear();
      return finish(Fail(absl::StrCat(options.script, " has no function '", options.func, "'")));
    }
    if (!PyCallable_Check(func.get())) {
      return finish(Fail(absl::StrCat(options.script, ":", options.func, " is not callable")));
    }
    if (Inspect("isasyncgenfunction", func.get())) {
      return finish(Fail(absl::StrCat(
          options.script, ":", options.func,
          " is an async generator function, which leakguard doctor cannot drive; give it a "
          "function that consumes it (e.g. an async def that runs `async for` over it)")));
    }
    // Never freed: outlives every reference Python keeps to the wrapper.
    static Workload* const workload_state = new Workload;
    Workload& workload = *workload_state;
    workload.func = std::move(func);
    g_workload = &workload;
    Ref wrapper = Steal(PyCFunction_New(&g_workload_def, nullptr));
    if (!wrapper) return finish(FailWithTraceback("cannot call FUNC", StatusFromPythonError()));
    absl::StatusOr<Diagnosis> diagnosis = Diagnose(wrapper, options.doctor, module->handle());
    if (!diagnosis.ok()) {
      const std::optional<std::string> type = PythonExceptionType(diagnosis.status());
      if (CaughtSignal() != 0 || type == "KeyboardInterrupt") {
        Interrupted cut;
        cut.signum = CaughtSignal() != 0 ? CaughtSignal() : SIGINT;
        cut.done = workload.done;
        cut.planned = options.doctor.warmup + options.doctor.repeat;
        if (workload.first && workload.last) cut.growth = *workload.last - *workload.first;
        FlushPythonStreams();
        if (auto tb = PythonTraceback(diagnosis.status())) Say(*tb);
        int code = print_report(cut.Text(options), interrupted_code(cut.signum));
        code = write_outputs(
            cut.Json(), "digraph leakguard {\n  label=\"interrupted: no diagnosis\";\n}\n", code);
        return finish(code);
      }
      if (!type.has_value()) {
        // Not FUNC's exception: the doctor could not measure.
        std::string why(CommandWording(diagnosis.status().message()));
        if (absl::StatusOr<bool> tracing = tracemalloc::IsTracing(); tracing.ok() && !*tracing) {
          why = absl::StrCat(options.func,
                             " stopped tracemalloc (tracemalloc.stop()), which the doctor needs "
                             "to measure the Python heap");
        }
        return finish(
            Fail(absl::StrCat("cannot diagnose ", options.script, ":", options.func, ": ", why)));
      }
      return finish(FailWithTraceback(absl::StrCat(options.script, ":", options.func, " raised"),
                                      diagnosis.status()));
    }
    std::string text = absl::StrCat("leakguard doctor ", options.script, ":", options.func, "\n\n");
    if (workload.drove_coroutine) {
      absl::StrAppend(&text, options.func,
                      " returns a coroutine: each iteration ran it to completion with "
                      "asyncio.run()\n\n");
    } else if (workload.drove_generator) {
      absl::StrAppend(&text, options.func, " returns a generator: each iteration exhausted it\n\n");
    }
    absl::StrAppend(&text, diagnosis->ToText());
    exit_code = print_report(text, diagnosis->verdict == Verdict::kLeak ? 1 : 0);
    // The same diagnosis as the text and the JSON.
    exit_code = write_outputs(diagnosis->ToJson(), diagnosis->ToDot(), exit_code);
    if (!html_output.path.empty()) {
      const std::string page = HtmlReport(
          absl::StrCat("leakguard doctor ", options.script, ":", options.func), text, *diagnosis);
      if (absl::Status written = WriteOutput(html_output.path, ValidUtf8(page)); !written.ok()) {
        exit_code = Fail(std::string(written.message()));
      }
    }
  }
  return finish(exit_code);
}

}  // namespace leakguard::tools
