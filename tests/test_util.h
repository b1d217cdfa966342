// Helpers shared by the test binaries.

#ifndef LEAKGUARD_TESTS_TEST_UTIL_H_
#define LEAKGUARD_TESTS_TEST_UTIL_H_

#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"
#include "leakguard/sink.h"

// LEAKGUARD_UNDER_ASAN / LEAKGUARD_UNDER_TSAN: 1 in sanitizer builds, whose
// allocators keep freed memory and so change what RSS shows.
#if defined(__SANITIZE_ADDRESS__)
#define LEAKGUARD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAKGUARD_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LEAKGUARD_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LEAKGUARD_UNDER_TSAN 1
#endif
#endif
#ifndef LEAKGUARD_UNDER_ASAN
#define LEAKGUARD_UNDER_ASAN 0
#endif
#ifndef LEAKGUARD_UNDER_TSAN
#define LEAKGUARD_UNDER_TSAN 0
#endif

namespace leakguard::testing {

/// Sleeps without the GIL (released if this thread holds it), so that
/// watcher threads can take it meanwhile.
inline void SleepWithoutGil(absl::Duration d) {
  GilRelease release;
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(d));
}

/// Waits (without the GIL) until `done()` holds, checking every 5 ms, for at
/// most `deadline` (generous: a loaded machine is slow, not wrong). Returns
/// whether it held.
template <typename F>
bool WaitFor(F done, absl::Duration deadline = absl::Seconds(60)) {
  const absl::Time end = absl::Now() + deadline;
  while (!done()) {
    if (absl::Now() >= end) return false;
    SleepWithoutGil(absl::Milliseconds(5));
  }
  return true;
}

/// The 1-based number of the first line of `path` that contains `marker`,
/// or -1: how a test names the line a script's comment marks.
inline int MarkedLine(const std::string& path, const std::string& marker) {
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(marker) != std::string::npos) return n;
  }
  return -1;
}

/// Whether `lines` name line `line` of tests/scripts/`script`.py; `seen`
/// receives every line listed ("file:line ..."), for the failure message.
inline bool NamesScriptLine(const std::vector<LineGrowth>& lines, const std::string& script,
                            int line, std::string* seen) {
  bool found = false;
  for (const LineGrowth& g : lines) {
    *seen += g.file + ":" + std::to_string(g.line) + " ";
    if (g.file.ends_with("/" + script + ".py") && g.line == line) found = true;
  }
  return found;
}

/// Hands `p` to code the compiler cannot see into: it must assume the
/// memory there is read (and may be written) here. Keeps a measured
/// allocation, and the writes to it, alive at any optimization level (-O3
/// may otherwise drop a malloc, memset and free that nothing reads).
// The points (x, y in SVG units) of the rounds plot's line for `series`
// ("rss", "traced", "native") in an HTML report page; empty when the page
// has no such line. SVG's y grows downwards: a rising line's y falls.
inline std::vector<std::pair<double, double>> PlotPoints(const std::string& page,
                                                         const std::string& series) {
  std::vector<std::pair<double, double>> points;
  const std::size_t at = page.find("data-series=\"" + series + "\"");
  if (at == std::string::npos) return points;
  const std::size_t begin = page.find("points=\"", at);
  if (begin == std::string::npos) return points;
  const std::size_t end = page.find('"', begin + 8);
  std::istringstream in(page.substr(begin + 8, end - begin - 8));
  for (std::string pair; in >> pair;) {
    const std::size_t comma = pair.find(',');
    points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return points;
}

inline void Publish(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

/// Writes `fill` to every byte of the `n` bytes at `p` (so every page is
/// resident) and publishes them (see Publish()): what a test that measures
/// RSS growth allocates, made observable.
inline void TouchEveryPage(void* p, std::size_t n, unsigned char fill) {
  std::memset(p, fill, n);
  Publish(p);
}

/// Evaluates a Python expression in a fresh namespace (with `exec_first`
/// run before it) and returns the result. Fails the test on error.
inline Ref Eval(const std::string& expr, const std::string& exec_first = "") {
  Ref globals = Steal(PyDict_New());
  PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
  if (!exec_first.empty()) {
    Ref done = Steal(PyRun_String(exec_first.c_str(), Py_file_input, globals.get(), globals.get()));
    if (!done) {
      ADD_FAILURE() << StatusFromPythonError();
      return Ref();
    }
  }
  Ref result = Steal(PyRun_String(expr.c_str(), Py_eval_input, globals.get(), globals.get()));
  if (!result) ADD_FAILURE() << StatusFromPythonError();
  return result;
}

/// sys.getrefcount(obj), called from C: what Python itself reports. A C
/// vectorcall passes its argument borrowed, so this equals the object's true
/// count (a Python-level call would add one for its own argument).
inline Py_ssize_t SysGetRefCount(PyObject* obj) {
  PyObject* sys_getrefcount = nullptr;
  Ref sys = Steal(PyImport_ImportModule("sys"));
  sys_getrefcount = PyObject_GetAttrString(sys.get(), "getrefcount");
  Ref func = Steal(sys_getrefcount);
  Ref count = Steal(PyObject_CallOneArg(func.get(), obj));
  return count ? PyLong_AsSsize_t(count.get()) : -1;
}

/// A sink that keeps every report it is given, for assertions. Thread-safe.
// A module-like namespace whose code has a file name of its own, so that
// tests can name the line an allocation happens on.
class Script {
 public:
  Script(const std::string& filename, const std::string& source) : filename_(filename) {
    globals_ = Steal(PyDict_New());
    PyDict_SetItemString(globals_.get(), "__builtins__", PyEval_GetBuiltins());
    Ref code = Steal(Py_CompileString(source.c_str(), filename.c_str(), Py_file_input));
    if (!code) {
      ADD_FAILURE() << StatusFromPythonError();
      return;
    }
    Ref done = Steal(PyEval_EvalCode(code.get(), globals_.get(), globals_.get()));
    if (!done) ADD_FAILURE() << StatusFromPythonError();
  }
  // Calls the script's function `name` with `arg`.
  void Call(const char* name, long arg = 0) {
    PyObject* f = PyDict_GetItemString(globals_.get(), name);
    ASSERT_NE(f, nullptr) << name;
    Ref a = Steal(PyLong_FromLong(arg));
    Ref r = Steal(PyObject_CallOneArg(f, a.get()));
    ASSERT_TRUE(r) << StatusFromPythonError();
  }
  // The script's global `name` (null if it has none).
  Ref Get(const char* name) const { return Borrow(PyDict_GetItemString(globals_.get(), name)); }
  const std::string& filename() const { return filename_; }

 private:
  std::string filename_;
  Ref globals_;
};

class RecordingSink : public Sink {
 public:
  void Write(const Report& report) noexcept override {
    absl::MutexLock lock(&mu_);
    reports_.push_back(report);
  }
  std::vector<Report> reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return reports_.size();
  }
  Report last() {
    absl::MutexLock lock(&mu_);
    return reports_.back();
  }

 private:
  absl::Mutex mu_;
  std::vector<Report> reports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leakguard::testing

#endif  // LEAKGUARD_TESTS_TEST_UTIL_H_
