// Interpreter::Attach: leakguard inside an interpreter the host started with
// its own Py_InitializeFromConfig. The detector runs there and names the
// leaking line; the host finalizes with the detector mid-round; a process
// that exits without finalizing ends cleanly. This binary owns its Python.

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/leak_detector.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

extern char** environ;

namespace leakguard {
namespace {

using ::leakguard::testing::RecordingSink;
using ::leakguard::testing::SleepWithoutGil;
using ::leakguard::testing::WaitFor;
using ::testing::HasSubstr;

// Starts Python the way a host does: its own PyConfig, no leakguard.
void HostInitialize() {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.parse_argv = 0;
  config.install_signal_handlers = 0;
  PyStatus status =
      PyConfig_SetBytesString(&config, &config.program_name, LEAKGUARD_PYTHON_EXECUTABLE);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) std::abort();
  Ref path = Steal(PyUnicode_FromString(LEAKGUARD_TEST_SCRIPTS_DIR));
  PyList_Insert(PySys_GetObject("path"), 0, path.get());
}

void Call(const char* module, const char* func) {
  Ref m = Steal(PyImport_ImportModule(module));
  ASSERT_TRUE(m) << StatusFromPythonError();
  Ref r = Steal(PyObject_CallMethod(m.get(), func, nullptr));
  ASSERT_TRUE(r) << StatusFromPythonError();
}

int MarkedLine() {
  return testing::MarkedLine(std::string(LEAKGUARD_TEST_SCRIPTS_DIR) + "/detector_workloads.py",
                             "# leak: ");
}

TEST(AttachTest, RefusesWithoutPython) {
  ASSERT_FALSE(Py_IsInitialized());
  absl::StatusOr<Interpreter> py = Interpreter::Attach();
  EXPECT_EQ(py.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(py.status().message(), HasSubstr("not initialized"));
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(5), .traced = false});
  ASSERT_TRUE(detector.ok());
  EXPECT_EQ((*detector)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AttachTest, DetectorNamesTheLineInAHostInterpreterThatFinalizesMidRound) {
  HostInitialize();
  absl::StatusOr<Interpreter> py = Interpreter::Attach();
  ASSERT_TRUE(py.ok()) << py.status();
  EXPECT_TRUE(py->attached());
  // One handle at a time.
  EXPECT_EQ(Interpreter::Attach().status().code(), absl::StatusCode::kFailedPrecondition);

  Call("detector_workloads", "steady");
  RecordingSink sink;
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(50), .threshold_bytes = 1 << 20, .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  EXPECT_EQ(Interpreter::WatcherCount(), 1u);
  for (int grows = 0; grows < 40 && (*detector)->reports() == 0; ++grows) {
    const int64_t before = (*detector)->rounds();
    Call("detector_workloads", "grow");
    ASSERT_TRUE(WaitFor([&] { return (*detector)->rounds() > before; }));
  }
  ASSERT_TRUE(WaitFor([&] { return (*detector)->reports() >= 1; }));
  Report report = sink.reports().front();
  ASSERT_FALSE(report.top_lines.empty());
  EXPECT_THAT(report.top_lines[0].file, HasSubstr("detector_workloads.py"));
  EXPECT_EQ(report.top_lines[0].line, MarkedLine());
  Call("detector_workloads", "reset");

  // Shutdown() stops every watcher; the detector can start again.
  Shutdown();
  EXPECT_FALSE((*detector)->running());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  ASSERT_TRUE((*detector)->Start().ok());
  EXPECT_TRUE((*detector)->running());

  // The host finalizes with the detector running (1 ms rounds: mid-round or
  // about to start one). The atexit callback stops it first.
  auto fast = LeakDetector::Create({.interval = absl::Milliseconds(1), .traced = false});
  ASSERT_TRUE(fast.ok());
  ASSERT_TRUE((*fast)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*fast)->rounds() >= 3; }));
  ASSERT_EQ(Py_FinalizeEx(), 0);
  EXPECT_FALSE((*detector)->running());
  EXPECT_FALSE((*fast)->running());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  // The handle is inert: finalizing it touches nothing.
  EXPECT_TRUE(py->Finalize().ok());
  EXPECT_EQ((*fast)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

// The child: attach, run a detector at 1 ms rounds (never destroyed, as a
// host's global would be), exit without finalizing. The last exit handler
// (registered first) fails the exit if the detector's thread still runs.
LeakDetector* g_detector = nullptr;

void CheckStoppedAtExit() {
  if (g_detector != nullptr && g_detector->running()) _exit(5);
}

int ExitWithoutFinalize() {
  std::atexit(CheckStoppedAtExit);
  HostInitialize();
  absl::StatusOr<Interpreter> py = Interpreter::Attach();
  if (!py.ok()) return 3;
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(1), .traced = false});
  if (!detector.ok()) return 4;
  g_detector = detector->release();
  if (!g_detector->Start().ok()) return 4;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::exit(0);  // No Py_FinalizeEx; the detector is running.
}

// The child: Attach() from a sub-interpreter is refused, without crashing.
// (Its own process: creating a sub-interpreter turns PyGILState_Check() off
// for the rest of the process.)
int SubInterpreter() {
  HostInitialize();
  PyThreadState* main_state = PyThreadState_Get();
  PyThreadState* sub = Py_NewInterpreter();
  if (sub == nullptr) return 7;
  absl::StatusOr<Interpreter> refused = Interpreter::Attach();
  const bool ok = refused.status().code() == absl::StatusCode::kFailedPrecondition &&
                  refused.status().message().find("sub-interpreter") != absl::string_view::npos;
  Py_EndInterpreter(sub);
  PyThreadState_Swap(main_state);
  return ok ? 0 : 6;
}

// Runs this binary in `mode` and returns its exit status (-signal if killed).
int RunChild(const char* mode) {
  std::string self = "/proc/self/exe";
  std::string arg = mode;
  char* argv[] = {self.data(), arg.data(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ) != 0) return -1000;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1001;
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

TEST(AttachTest, ProcessExitWithoutFinalizeEndsCleanly) {
  // 5: the detector still ran at exit; ASan/UBSan reports exit non-zero.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(RunChild("--exit-without-finalize"), 0);
}

TEST(AttachTest, RefusedInASubInterpreter) { EXPECT_EQ(RunChild("--sub-interpreter"), 0); }

}  // namespace
}  // namespace leakguard

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit-without-finalize") == 0) {
    return leakguard::ExitWithoutFinalize();
  }
  if (argc > 1 && std::strcmp(argv[1], "--sub-interpreter") == 0) {
    return leakguard::SubInterpreter();
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
