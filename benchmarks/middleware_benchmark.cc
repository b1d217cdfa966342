// The WSGI middleware (leakguard.middleware.WSGIMiddleware, on RequestTracker
// and leakguard.rss()) beside the plain-Python per-request middleware recipe
// (docs/design.md, "The peers": psutil RSS before and after, a tracemalloc
// snapshot before every request, a diff every 100th request or past 5 MiB),
// around the same ~1 ms WSGI app, in one embedded interpreter:
//   middleware/wsgi_1ms/bare       the app alone
//   middleware/wsgi_1ms/leakguard  WSGIMiddleware(trace_every=100); tracemalloc
//                                  runs only during the traced requests
//   middleware/wsgi_1ms/recipe     the recipe; it needs tracemalloc on for
//                                  every request (that is part of its cost)
// Each iteration is one request: app(environ, start_response), the body read
// and closed as a WSGI server does.
//
// LEAKGUARD_BENCH_SMOKE=1: the app is a ~10 us loop instead (CI's smoke run).

#include <cstdio>
#include <string>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#if defined(LEAKGUARD_HAVE_PYTHON_MODULE)
#include "leakguard/python_module.h"

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
import logging, os, sys, time, tracemalloc
import psutil
sys.path.insert(0, PACKAGE_DIR)
from leakguard.middleware import WSGIMiddleware

logging.getLogger("leakguard").disabled = True
_proc = psutil.Process(os.getpid())

def calibrate(seconds):
    global _loops
    _loops = 100
    while True:
        t = time.process_time()  # CPU time: a loaded machine does not shrink the app
        for _ in range(_loops): pass
        if time.process_time() - t >= seconds: return _loops
        _loops *= 2

def app(environ, start_response):
    for _ in range(_loops): pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

# The recipe's per-request middleware, as WSGI.
class RecipeMiddleware:
    def __init__(self, app):
        self.app = app
        self.count = 0
    def __call__(self, environ, start_response):
        self.count += 1
        rss_before = _proc.memory_info().rss
        snapshot_before = tracemalloc.take_snapshot()
        body = self.app(environ, start_response)
        rss_after = _proc.memory_info().rss
        rss_diff = (rss_after - rss_before) / 1024 / 1024
        if self.count % 100 == 0 or rss_diff > 5:
            stats = tracemalloc.take_snapshot().compare_to(snapshot_before, "lineno")
            for stat in stats[:5]:
                pass
        return body

_environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/users/7", "wsgi.input": None}

def _start_response(status, headers, exc_info=None):
    return None

def serve(wsgi):
    def one():
        body = wsgi(_environ, _start_response)
        for chunk in body: pass
        close = getattr(body, "close", None)
        if close is not None: close()
    return one

bare = serve(app)
ours = serve(WSGIMiddleware(app, trace_every=100, rss_threshold=5 << 20))
recipe = serve(RecipeMiddleware(app))
)py";

void Request(benchmark::State& state, const char* name, bool trace_all_the_time) {
  if (trace_all_the_time) {
    Ref started =
        Steal(PyRun_String("tracemalloc.start(1)", Py_single_input, Globals(), Globals()));
    if (!started) state.SkipWithError("tracemalloc.start failed");
  }
  PyObject* func = Func(name);
  for (auto _ : state) {
    Ref r = Steal(PyObject_CallNoArgs(func));
    if (!r) {
      state.SkipWithError(leakguard::StatusFromPythonError().ToString().c_str());
      break;
    }
  }
  if (trace_all_the_time) {
    Ref stopped = Steal(PyRun_String("tracemalloc.stop()", Py_single_input, Globals(), Globals()));
    benchmark::DoNotOptimize(stopped.get());
  }
}

}  // namespace
#endif  // LEAKGUARD_HAVE_PYTHON_MODULE

int main(int argc, char** argv) {
#if !defined(LEAKGUARD_HAVE_PYTHON_MODULE)
  (void)argc;
  (void)argv;
  std::fprintf(stderr, "middleware_benchmark: built without the Python module\n");
  return 1;
#else
  if (auto registered = leakguard::python::RegisterModule(); !registered.ok()) {
    std::fprintf(stderr, "%s\n", registered.ToString().c_str());
    return 1;
  }
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  const std::string setup = std::string("PACKAGE_DIR = '") + LEAKGUARD_PACKAGE_DIR + "'\n" + kSetup;
  if (!Exec(setup)) return 1;
  Ref loops = Steal(
      PyObject_CallFunction(Func("calibrate"), "d", leakguard::bench::Smoke() ? 0.00001 : 0.001));
  if (!loops) return 1;
  benchmark::RegisterBenchmark("middleware/wsgi_1ms/bare", [](benchmark::State& s) {
    Request(s, "bare", false);
  })->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("middleware/wsgi_1ms/leakguard", [](benchmark::State& s) {
    Request(s, "ours", false);
  })->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("middleware/wsgi_1ms/recipe", [](benchmark::State& s) {
    Request(s, "recipe", true);
  })->Unit(benchmark::kMicrosecond);
  return leakguard::bench::RunRegistered(argc, argv);
#endif
}
