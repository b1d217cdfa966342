#include "leakguard/python/interpreter.h"

#include <algorithm>
#include <cstdlib>
#include <cwchar>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "leakguard/python/builtin_modules.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "python/gil_capability.h"
#include "python/status_macros.h"

namespace leakguard {
namespace {

// Process-wide state of the one Interpreter. It lives in the compiled core
// so that every shared library of a host sees the same registry.
enum class State { kNone, kRunning, kFinalizing };

struct Registry {
  absl::Mutex mu;
  State state ABSL_GUARDED_BY(mu) = State::kNone;
  bool finalized_before ABSL_GUARDED_BY(mu) = false;
  // The running handle came from Attach(): the host finalizes Python.
  bool attached ABSL_GUARDED_BY(mu) = false;
  // Bumped whenever a handle starts or ends; a handle whose session is not
  // the current one is inert (the host finalized under it).
  unsigned long long session ABSL_GUARDED_BY(mu) = 0;
  bool exit_hook_installed ABSL_GUARDED_BY(mu) = false;
  std::vector<Watcher*> watchers ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // Never destroyed: watchers
  return *registry;                            // may unregister at exit.
}

// Stops watchers one at a time, without the registry lock (a watcher
// unregisters itself while stopping) and without the GIL (its thread may be
// waiting for the GIL to finish its last round; it must not deadlock
// against us). Releases the GIL only if this thread holds it.
void StopAllWatchers() noexcept {
  Registry& registry = GetRegistry();
  PyThreadState* saved = nullptr;
  if (Py_IsInitialized() && PyGILState_Check()) saved = PyEval_SaveThread();
  while (true) {
    Watcher* next = nullptr;
    {
      absl::MutexLock lock(&registry.mu);
      if (registry.watchers.empty()) break;
      next = registry.watchers.back();
      registry.watchers.pop_back();
    }
    next->StopBeforeFinalize();
  }
  if (saved != nullptr) PyEval_RestoreThread(saved);
}

// Python `atexit` callback: runs at the start of Py_FinalizeEx, holding the
// GIL, with the runtime intact.
PyObject* StopWatchersAtFinalize(PyObject* /*self*/, PyObject* /*unused*/) {
  Registry& registry = GetRegistry();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.state == State::kRunning) registry.state = State::kFinalizing;
  }
  StopAllWatchers();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.attached && registry.state == State::kFinalizing) {
      // The host is finalizing its interpreter: the attached handle is done.
      registry.state = State::kNone;
      registry.attached = false;
      ++registry.session;
    }
  }
  Py_RETURN_NONE;
}

PyMethodDef kStopWatchersDef = {"_leakguard_stop_watchers", StopWatchersAtFinalize, METH_NOARGS,
                                "Stops leakguard's watchers before the interpreter finalizes."};

// REQUIRES: the GIL.
absl::Status RegisterPythonAtExit() LEAKGUARD_REQUIRES_GIL {
  Ref atexit = Steal(PyImport_ImportModule("atexit"));
  if (!atexit) return StatusFromPythonError();
  Ref callback = Steal(PyCFunction_New(&kStopWatchersDef, nullptr));
  if (!callback) return StatusFromPythonError();
  Ref result = Steal(PyObject_CallMethod(atexit.get(), "register", "O", callback.get()));
  if (!result) return StatusFromPythonError();
  return absl::OkStatus();
}

// C `atexit` handler: a process that exits without finalizing Python
// (std::exit, return from main) stops its watchers before static
// destruction, so no watcher thread outlives the objects it uses.
void StopWatchersAtProcessExit() {
  Registry& registry = GetRegistry();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.watchers.empty()) return;
    if (registry.state == State::kRunning) registry.state = State::kFinalizing;
  }
  StopAllWatchers();
}

void InstallProcessExitHook() {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  if (registry.exit_hook_installed) return;
  registry.exit_hook_installed = true;
  std::atexit(StopWatchersAtProcessExit);
}

absl::Status FromPyStatus(const PyStatus& status, const char* what) {
  std::string message = absl::StrCat("Python start-up failed in ", what);
  if (status.func != nullptr) absl::StrAppend(&message, " (", status.func, ")");
  if (status.err_msg != nullptr) absl::StrAppend(&message, ": ", status.err_msg);
  if (PyStatus_IsExit(status)) {
    absl::StrAppend(&message, ": exit code ", status.exitcode);
  }
  return absl::InternalError(message);
}

absl::Status PrependSysPath(const std::vector<std::string>& dirs) {
  PyObject* path = PySys_GetObject("path");  // Borrowed.
  if (path == nullptr || !PyList_Check(path)) {
    return absl::InternalError("sys.path is missing or not a list");
  }
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    Ref entry = Steal(PyUnicode_DecodeFSDefault(it->c_str()));
    if (!entry || PyList_Insert(path, 0, entry.get()) != 0) {
      return StatusFromPythonError();
    }
  }
  return absl::OkStatus();
}

absl::Status Configure(const InterpreterOptions& options, PyConfig* config) {
  PyStatus status;
  if (!options.program_name.empty()) {
    status = PyConfig_SetBytesString(config, &config->program_name, options.program_name.c_str());
    if (PyStatus_Exception(status)) return FromPyStatus(status, "program_name");
  }
  std::vector<char*> argv;
  std::vector<std::string> args = options.argv;
  if (args.empty()) args.emplace_back();
  argv.reserve(args.size());
  for (std::string& arg : args) argv.push_back(arg.data());
  config->parse_argv = 0;
  status = PyConfig_SetBytesArgv(config, static_cast<Py_ssize_t>(argv.size()), argv.data());
  if (PyStatus_Exception(status)) return FromPyStatus(status, "argv");
  config->tracemalloc = options.tracemalloc_frames;
  config->install_signal_handlers = options.install_signal_handlers ? 1 : 0;
  return absl::OkStatus();
}

}  // namespace

Watcher::~Watcher() = default;

absl::StatusOr<Interpreter> Interpreter::Start(const InterpreterOptions& options) {
  if (options.tracemalloc_frames < 0 || options.tracemalloc_frames > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tracemalloc_frames must be 0 (off) or 1..65535, got ", options.tracemalloc_frames));
  }
  Registry& registry = GetRegistry();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.state != State::kNone) {
      return absl::FailedPreconditionError(
          "a leakguard::Interpreter is already running; only one may exist "
          "at a time");
    }
    if (Py_IsInitialized()) {
      return absl::FailedPreconditionError(
          "Python is already initialized by the host; leakguard::Interpreter "
          "cannot own it");
    }
    if (options.tracemalloc_frames > 0 && registry.finalized_before &&
        !compat::kTracemallocSurvivesRestart) {
      return absl::FailedPreconditionError(
          "this CPython (before 3.13) cannot start tracemalloc in a second "
          "interpreter after an earlier one was finalized; keep one "
          "interpreter for the life of the process to trace allocations");
    }
    registry.state = State::kRunning;  // Reserve; undone below on failure.
  }
  auto unreserve = [&registry] {
    absl::MutexLock lock(&registry.mu);
    registry.state = State::kNone;
  };

  // Modules registered with RegisterBuiltinModule() (e.g. `leakguard`)
  // become built-ins; CPython reads that table only at start-up.
  if (absl::Status modules = InstallBuiltinModules(); !modules.ok()) {
    unreserve();
    return modules;
  }
  PyConfig config;
  if (options.isolated) {
    PyConfig_InitIsolatedConfig(&config);
  } else {
    PyConfig_InitPythonConfig(&config);
  }
  absl::Status configured = Configure(options, &config);
  if (configured.ok() && options.configure) {
    configured = options.configure(&config);
  }
  if (!configured.ok()) {
    PyConfig_Clear(&config);
    unreserve();
    return configured;
  }
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    if (Py_IsInitialized()) Py_FinalizeEx();
    unreserve();
    return FromPyStatus(status, "Py_InitializeFromConfig");
  }
  internal::AssumeGilHeld();  // Py_InitializeFromConfig leaves it held.
  if (absl::Status path = PrependSysPath(options.extra_sys_path); !path.ok()) {
    Py_FinalizeEx();
    unreserve();
    return path;
  }
  if (absl::Status hook = RegisterPythonAtExit(); !hook.ok()) {
    Py_FinalizeEx();
    unreserve();
    return hook;
  }
  InstallProcessExitHook();
  Interpreter interpreter;
  interpreter.owns_ = true;
  {
    absl::MutexLock lock(&registry.mu);
    registry.attached = false;
    interpreter.session_ = ++registry.session;
  }
  return interpreter;
}

absl::StatusOr<Interpreter> Interpreter::Attach() {
  if (!Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        "Interpreter::Attach: Python is not initialized; start it first (or "
        "use Interpreter::Start)");
  }
  if (!PyGILState_Check()) {
    return absl::FailedPreconditionError(
        "Interpreter::Attach: the calling thread must hold the GIL of the "
        "main interpreter");
  }
  internal::AssumeGilHeld();
  if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
    return absl::FailedPreconditionError(
        "Interpreter::Attach: called from a sub-interpreter; leakguard's "
        "watchers run only in the main interpreter (their threads take the "
        "GIL with PyGILState_Ensure, which does not support "
        "sub-interpreters)");
  }
  Registry& registry = GetRegistry();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.state != State::kNone) {
      return absl::FailedPreconditionError(
          "Interpreter::Attach: a leakguard::Interpreter (started or "
          "attached) already exists; only one may exist at a time");
    }
  }
  LEAKGUARD_RETURN_IF_ERROR(RegisterPythonAtExit());
  InstallProcessExitHook();
  Interpreter interpreter;
  absl::MutexLock lock(&registry.mu);
  if (registry.state != State::kNone) {
    return absl::FailedPreconditionError(
        "Interpreter::Attach: another leakguard::Interpreter appeared "
        "concurrently");
  }
  registry.state = State::kRunning;
  registry.attached = true;
  interpreter.session_ = ++registry.session;
  interpreter.owns_ = true;
  interpreter.attached_ = true;
  return interpreter;
}

void Shutdown() noexcept { StopAllWatchers(); }

bool Interpreter::IsRunning() noexcept { return Py_IsInitialized() != 0; }

absl::Status Interpreter::RegisterWatcher(Watcher* watcher) {
  if (watcher == nullptr) {
    return absl::InvalidArgumentError("RegisterWatcher(nullptr)");
  }
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  if (registry.state != State::kRunning) {
    return absl::FailedPreconditionError(
        "no leakguard::Interpreter is running (or it is finalizing); start "
        "one before starting watchers");
  }
  if (std::find(registry.watchers.begin(), registry.watchers.end(), watcher) ==
      registry.watchers.end()) {
    registry.watchers.push_back(watcher);
  }
  return absl::OkStatus();
}

void Interpreter::UnregisterWatcher(Watcher* watcher) noexcept {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  std::erase(registry.watchers, watcher);
}

std::size_t Interpreter::WatcherCount() noexcept {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  return registry.watchers.size();
}

Interpreter::Interpreter(Interpreter&& other) noexcept
    : owns_(std::exchange(other.owns_, false)),
      attached_(std::exchange(other.attached_, false)),
      session_(std::exchange(other.session_, 0)) {}

Interpreter& Interpreter::operator=(Interpreter&& other) noexcept {
  if (this != &other) {
    Finalize().IgnoreError();
    owns_ = std::exchange(other.owns_, false);
    attached_ = std::exchange(other.attached_, false);
    session_ = std::exchange(other.session_, 0);
  }
  return *this;
}

Interpreter::~Interpreter() { Finalize().IgnoreError(); }

absl::Status Interpreter::Finalize() {
  if (!owns_) return absl::OkStatus();
  owns_ = false;
  Registry& registry = GetRegistry();
  {
    absl::MutexLock lock(&registry.mu);
    if (registry.session != session_) {
      return absl::OkStatus();  // The host finalized under an attached handle.
    }
    registry.state = State::kFinalizing;  // No new watchers from here on.
  }
  StopAllWatchers();
  if (attached_) {
    absl::MutexLock lock(&registry.mu);
    registry.state = State::kNone;
    registry.attached = false;
    ++registry.session;
    return absl::OkStatus();  // The host's interpreter keeps running.
  }
  const int rc = Py_FinalizeEx();
  {
    absl::MutexLock lock(&registry.mu);
    registry.state = State::kNone;
    registry.finalized_before = true;
    ++registry.session;
  }
  if (rc != 0) {
    return absl::InternalError("Py_FinalizeEx reported an error (flushing buffered data failed)");
  }
  return absl::OkStatus();
}

}  // namespace leakguard
