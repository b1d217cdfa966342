// The Interpreter's lifecycle: options, one at a time, watchers stopped
// before finalization, clear errors after it. This binary owns its own
// interpreters (no shared environment), one per test.

#include "leakguard/python/interpreter.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/leak_detector.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

// Evaluates `expr` in __main__ and returns str() of the result.
std::string EvalStr(const char* expr) {
  PyObject* main = PyImport_AddModule("__main__");
  PyObject* globals = PyModule_GetDict(main);
  Ref value = Steal(PyRun_String(expr, Py_eval_input, globals, globals));
  if (!value) return "error: " + std::string(StatusFromPythonError().message());
  Ref text = Steal(PyObject_Str(value.get()));
  return PyUnicode_AsUTF8(text.get());
}

InterpreterOptions Defaults() {
  InterpreterOptions options;
  options.program_name = LEAKGUARD_PYTHON_EXECUTABLE;
  return options;
}

TEST(InterpreterTest, RejectsBadTracemallocFrames) {
  for (int frames : {-1, 65536}) {
    InterpreterOptions options = Defaults();
    options.tracemalloc_frames = frames;
    absl::StatusOr<Interpreter> py = Interpreter::Start(options);
    EXPECT_EQ(py.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(py.status().message(), HasSubstr("1..65535"));
    EXPECT_FALSE(Interpreter::IsRunning());
  }
}

TEST(InterpreterTest, AppliesOptions) {
  InterpreterOptions options = Defaults();
  options.argv = {"host-app", "--flag", "x y"};
  options.tracemalloc_frames = 7;
  options.extra_sys_path = {"/opt/first", "/opt/second"};
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  ASSERT_TRUE(py.ok()) << py.status();
  EXPECT_TRUE(py->owns());
  EXPECT_TRUE(CheckGil().ok());
  EXPECT_EQ(EvalStr("__import__('sys').argv"), "['host-app', '--flag', 'x y']");
  EXPECT_EQ(EvalStr("__import__('sys').path[:2]"), "['/opt/first', '/opt/second']");
  EXPECT_EQ(EvalStr("__import__('tracemalloc').is_tracing()"), "True");
  EXPECT_EQ(EvalStr("__import__('tracemalloc').get_traceback_limit()"), "7");
  EXPECT_EQ(EvalStr("__import__('sys').flags.isolated"), "0");
  EXPECT_EQ(EvalStr("__import__('sys').executable"), std::string(LEAKGUARD_PYTHON_EXECUTABLE));
  EXPECT_TRUE(py->Finalize().ok());
  EXPECT_FALSE(py->owns());
}

TEST(InterpreterTest, ConfigureEditsThePyConfigAfterLeakguardFilledIt) {
  InterpreterOptions options = Defaults();
  options.argv = {"host-app"};
  std::string program_seen;
  options.configure = [&program_seen](PyConfig* config) -> absl::Status {
    if (config->program_name != nullptr) {
      for (const wchar_t* c = config->program_name; *c != 0; ++c) {
        program_seen.push_back(static_cast<char>(*c));
      }
    }
    config->optimization_level = 2;  // sys.flags.optimize
    PyStatus status =
        PyConfig_SetBytesString(config, &config->pycache_prefix, "/tmp/leakguard-host-pycache");
    if (PyStatus_Exception(status)) return absl::InternalError("pycache_prefix");
    return absl::OkStatus();
  };
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  ASSERT_TRUE(py.ok()) << py.status();
  EXPECT_EQ(program_seen, std::string(LEAKGUARD_PYTHON_EXECUTABLE));
  EXPECT_EQ(EvalStr("__import__('sys').flags.optimize"), "2");
  EXPECT_EQ(EvalStr("__import__('sys').pycache_prefix"), "/tmp/leakguard-host-pycache");
  EXPECT_EQ(EvalStr("__import__('sys').argv"), "['host-app']");
  EXPECT_TRUE(py->Finalize().ok());
}

TEST(InterpreterTest, ConfigureErrorAbortsStart) {
  InterpreterOptions options = Defaults();
  options.configure = [](PyConfig*) { return absl::InvalidArgumentError("host says no"); };
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  EXPECT_EQ(py.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(py.status().message(), HasSubstr("host says no"));
  EXPECT_FALSE(Interpreter::IsRunning());
  // Nothing stayed reserved: a plain start works.
  absl::StatusOr<Interpreter> again = Interpreter::Start(Defaults());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->Finalize().ok());
}

TEST(InterpreterTest, IsolatedConfiguration) {
  InterpreterOptions options = Defaults();
  options.isolated = true;
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  ASSERT_TRUE(py.ok()) << py.status();
  EXPECT_EQ(EvalStr("__import__('sys').flags.isolated"), "1");
  EXPECT_EQ(EvalStr("__import__('sys').flags.ignore_environment"), "1");
}

TEST(InterpreterTest, OnlyOneAtATime) {
  absl::StatusOr<Interpreter> first = Interpreter::Start(Defaults());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Interpreter> second = Interpreter::Start(Defaults());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("already running"));
  EXPECT_TRUE(Interpreter::IsRunning());  // The first one is untouched.
  EXPECT_EQ(EvalStr("1 + 1"), "2");
}

TEST(InterpreterTest, UseAfterFinalizationIsAClearError) {
  absl::StatusOr<Interpreter> py = Interpreter::Start(Defaults());
  ASSERT_TRUE(py.ok()) << py.status();
  ASSERT_TRUE(py->Finalize().ok());
  EXPECT_TRUE(py->Finalize().ok());  // Idempotent.
  EXPECT_FALSE(Interpreter::IsRunning());
  absl::Status gil = CheckGil();
  EXPECT_EQ(gil.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(gil.message(), HasSubstr("no Python interpreter is running"));
  GilAcquire acquire;
  EXPECT_FALSE(acquire.ok());
  EXPECT_EQ(acquire.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusFromPythonError().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(InterpreterTest, MovedFromOwnsNothing) {
  absl::StatusOr<Interpreter> py = Interpreter::Start(Defaults());
  ASSERT_TRUE(py.ok()) << py.status();
  Interpreter moved = std::move(*py);
  EXPECT_FALSE(py->owns());
  EXPECT_TRUE(py->Finalize().ok());  // No-op: still running.
  EXPECT_TRUE(Interpreter::IsRunning());
  EXPECT_TRUE(moved.owns());
}

// A watcher whose thread runs Python under the GIL until stopped, the way
// the LeakDetector will.
class BusyWatcher : public Watcher {
 public:
  BusyWatcher() {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        GilAcquire gil;
        if (!gil.ok()) {
          ran_without_interpreter_ = true;
          return;
        }
        Ref n = Steal(PyLong_FromLong(42));
        rounds_.fetch_add(1);
        GilRelease pause;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  ~BusyWatcher() override { StopBeforeFinalize(); }

  void StopBeforeFinalize() noexcept override {
    if (stopped_.exchange(true)) return;
    interpreter_alive_at_stop_ = Interpreter::IsRunning();
    gil_free_at_stop_ = !PyGILState_Check();
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    Interpreter::UnregisterWatcher(this);
    ++stop_calls_;
  }

  std::atomic<bool> stop_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<int> rounds_{0};
  bool interpreter_alive_at_stop_ = false;
  bool gil_free_at_stop_ = false;
  bool ran_without_interpreter_ = false;
  int stop_calls_ = 0;
  std::thread thread_;
};

TEST(InterpreterTest, FinalizeStopsRunningWatchersFirst) {
  absl::StatusOr<Interpreter> py = Interpreter::Start(Defaults());
  ASSERT_TRUE(py.ok()) << py.status();
  BusyWatcher a;
  BusyWatcher b;
  ASSERT_TRUE(Interpreter::RegisterWatcher(&a).ok());
  ASSERT_TRUE(Interpreter::RegisterWatcher(&b).ok());
  ASSERT_TRUE(Interpreter::RegisterWatcher(&b).ok());  // Once only.
  EXPECT_EQ(Interpreter::WatcherCount(), 2u);
  {
    GilRelease let_them_run;
    while (a.rounds_.load() < 20 || b.rounds_.load() < 20) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ASSERT_TRUE(py->Finalize().ok());
  for (BusyWatcher* w : {&a, &b}) {
    EXPECT_EQ(w->stop_calls_, 1);
    EXPECT_TRUE(w->interpreter_alive_at_stop_);
    EXPECT_TRUE(w->gil_free_at_stop_);
    EXPECT_FALSE(w->ran_without_interpreter_);
  }
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  BusyWatcher late;
  absl::Status refused = Interpreter::RegisterWatcher(&late);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Interpreter::RegisterWatcher(nullptr).code() == absl::StatusCode::kInvalidArgument);
}

// Finalizing with a LeakDetector running stops it first; destroying the
// detector afterwards is harmless.
TEST(InterpreterTest, FinalizeWithALeakDetectorRunning) {
  absl::StatusOr<Interpreter> py = Interpreter::Start(Defaults());
  ASSERT_TRUE(py.ok()) << py.status();
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(1), .traced = false});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  {
    GilRelease let_it_run;
    while ((*detector)->rounds() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(Interpreter::WatcherCount(), 1u);
  ASSERT_TRUE(py->Finalize().ok());
  EXPECT_FALSE((*detector)->running());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  EXPECT_EQ((*detector)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(InterpreterTest, RestartsAfterFinalize) {
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<Interpreter> py = Interpreter::Start(Defaults());
    ASSERT_TRUE(py.ok()) << py.status();
    EXPECT_EQ(EvalStr("sum(range(10))"), "45");
  }
}

// CPython before 3.13 cannot start tracemalloc again once an interpreter
// that had it has been finalized (its C state is marked "unloaded"). Start()
// says so instead of failing deep inside Py_InitializeFromConfig.
TEST(InterpreterTest, TracemallocAfterARestart) {
  {
    absl::StatusOr<Interpreter> first = Interpreter::Start(Defaults());
    ASSERT_TRUE(first.ok()) << first.status();
  }
  InterpreterOptions options = Defaults();
  options.tracemalloc_frames = 3;
  absl::StatusOr<Interpreter> py = Interpreter::Start(options);
  if (compat::kTracemallocSurvivesRestart) {
    ASSERT_TRUE(py.ok()) << py.status();
    EXPECT_EQ(EvalStr("__import__('tracemalloc').get_traceback_limit()"), "3");
  } else {
    EXPECT_EQ(py.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(py.status().message(), HasSubstr("tracemalloc"));
    EXPECT_FALSE(Interpreter::IsRunning());
  }
}

}  // namespace
}  // namespace leakguard

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
