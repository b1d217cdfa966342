// leakguard/python/interpreter.h
//
// Interpreter: the RAII owner of the one embedded CPython interpreter of the
// process, started from a PyConfig, and the registry of the background
// watchers (detectors, samplers) that must stop before it finalizes.
//
// Everything that holds a Python reference must be gone before the
// interpreter finalizes. Declare the Interpreter first so that it is
// destroyed last:
//
//   // BAD: `cache` is destroyed after the interpreter; its destructor
//   // decrefs objects of a finalized interpreter.
//   leakguard::Ref cache;
//   auto py = leakguard::Interpreter::Start({});
//   cache = LoadCache();
//
//   // GOOD: the interpreter outlives every Ref.
//   auto py = leakguard::Interpreter::Start({});
//   {
//     leakguard::Ref cache = LoadCache();
//   }  // cache released here, with the interpreter still running
//
// One Interpreter may exist at a time. Start() while one runs (or while a
// host started Python by other means) returns FailedPrecondition. After
// Finalize() (or destruction) a new one may be started.
//
// Hosts that start Python themselves (pybind11's py::scoped_interpreter,
// Boost.Python, their own Py_InitializeFromConfig) attach instead; the
// handle never finalizes the host's interpreter:
//
//   // BAD: Start() refuses, the host already initialized Python, and
//   // LeakDetector::Start() then fails with FailedPrecondition.
//   py::scoped_interpreter guard;
//   auto py = leakguard::Interpreter::Start({});
//
//   // GOOD: attach to the host's interpreter (holding the GIL).
//   py::scoped_interpreter guard;
//   auto py = leakguard::Interpreter::Attach();  // Never finalizes.
//   auto detector = leakguard::LeakDetector::Create({});
//   if (absl::Status s = (*detector)->Start(); !s.ok()) return s;
//
// Watchers are stopped before the interpreter goes away, whoever ends it:
// Attach() and Start() register a Python `atexit` callback, which runs at
// the start of Py_FinalizeEx with the runtime intact, so a host that
// finalizes with a detector mid-round needs no extra call; Shutdown() stops
// every watcher on request; and a process that exits without finalizing
// (std::exit, return from main) stops them from a C `atexit` handler.
//
// Sub-interpreters: Attach() works only from the main interpreter; called
// from a sub-interpreter it returns FailedPrecondition (watcher threads take
// the GIL of the main interpreter with PyGILState_Ensure, which is
// undefined for sub-interpreters, including 3.12+ per-interpreter GILs).
// Creating a sub-interpreter turns PyGILState_Check() off for the rest of
// the process (seen on CPython 3.11), after which leakguard can no longer
// tell whether a thread holds the GIL: do not create sub-interpreters in a
// process whose watchers run.
// Guards and probes that run on the calling thread (MemoryGuard,
// RunLeakCheck) do not need an Interpreter handle at all.

#ifndef LEAKGUARD_PYTHON_INTERPRETER_H_
#define LEAKGUARD_PYTHON_INTERPRETER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/python.h"  // PyConfig, for `configure`.

namespace leakguard {

/// How to configure the embedded interpreter. Each field maps onto PyConfig.
struct InterpreterOptions {
  /// PyConfig.program_name. Python derives sys.executable and, from its
  /// location, sys.prefix and the default sys.path; pass the path of the
  /// `python3` whose packages the host should see (e.g. "/usr/bin/python3").
  /// Empty: Python's default.
  std::string program_name;
  /// sys.argv, verbatim (never parsed as Python options). Empty: [""].
  std::vector<std::string> argv;
  /// Isolated configuration (PyConfig_InitIsolatedConfig): ignores PYTHON*
  /// environment variables and the user site directory. Default: the regular
  /// Python configuration, like the `python3` command.
  bool isolated = false;
  /// Start tracemalloc during start-up with this many frames (1..65535);
  /// 0 leaves it off. Anything else is InvalidArgument.
  int tracemalloc_frames = 0;
  /// Directories put at the front of sys.path, in this order, after start-up.
  std::vector<std::string> extra_sys_path;
  /// Let Python install its signal handlers (SIGINT -> KeyboardInterrupt).
  /// Hosts usually own their signals, so the default is off.
  bool install_signal_handlers = false;
  /// The host's own configuration: called with the PyConfig after leakguard
  /// filled it from the fields above and before Py_InitializeFromConfig, so
  /// it may set any PyConfig field (module_search_paths, safe_path, home,
  /// ...) with the PyConfig_Set* functions. A non-OK Status aborts Start()
  /// and is returned as is (nothing stays initialized). Empty: not called.
  std::function<absl::Status(PyConfig* config)> configure;
};

/// A background component that holds Python references or takes the GIL
/// from its own thread. It registers with the running Interpreter, which
/// stops it before finalizing.
class LEAKGUARD_EXPORT Watcher {
 public:
  virtual ~Watcher();
  /// Stops the watcher and joins its threads. Called by Interpreter with the
  /// GIL released, before finalization; the watcher may take the GIL to
  /// drop its references. Must be idempotent and must not throw.
  virtual void StopBeforeFinalize() noexcept = 0;
};

/// Owner of the embedded interpreter. Move-only; at most one per process.
///
/// Thread-safety: Start() and Finalize() must be called from the same
/// thread, the one that then holds the GIL ("the main thread" for Python).
class LEAKGUARD_EXPORT Interpreter {
 public:
  /// Starts the interpreter. On success the calling thread holds the GIL.
  /// Errors: FailedPrecondition if an interpreter is already running;
  /// InvalidArgument for bad options; Internal with Python's message if
  /// start-up fails (nothing stays initialized then).
  static absl::StatusOr<Interpreter> Start(const InterpreterOptions& options);

  /// Attaches to an interpreter the host started by other means. The handle
  /// registers watchers like a started one, but Finalize() (and the
  /// destructor) only stops the watchers; it never finalizes Python. When the
  /// host finalizes first, an `atexit` callback stops the watchers and the
  /// handle becomes inert.
  /// Errors: FailedPrecondition if Python is not initialized, if the caller
  /// does not hold the GIL, if called from a sub-interpreter, or if a
  /// leakguard Interpreter (started or attached) already exists; Internal if
  /// the `atexit` callback cannot be registered.
  /// REQUIRES: the calling thread holds the GIL.
  static absl::StatusOr<Interpreter> Attach();

  /// True while an interpreter (leakguard's or the host's) is initialized.
  /// Thread-safe.
  static bool IsRunning() noexcept;

  /// Registers a running watcher, to be stopped before finalization.
  /// FailedPrecondition when no leakguard Interpreter is running. Thread-safe.
  static absl::Status RegisterWatcher(Watcher* watcher);
  /// Removes a watcher (no-op if absent). Thread-safe; never blocks on
  /// finalization.
  static void UnregisterWatcher(Watcher* watcher) noexcept;
  /// Number of registered watchers. Thread-safe.
  static std::size_t WatcherCount() noexcept;

  /// A moved-from Interpreter owns nothing and finalizes nothing.
  Interpreter(Interpreter&& other) noexcept;
  /// Finalizes the interpreter held (if any), then takes `other`'s.
  Interpreter& operator=(Interpreter&& other) noexcept;
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;
  /// Finalize(), ignoring its Status.
  ~Interpreter();

  /// Stops every registered watcher (with the GIL released), then finalizes
  /// the interpreter; an attached handle only stops the watchers and gives
  /// the interpreter back to the host. Idempotent: a second call returns OK.
  /// Returns Internal if Py_FinalizeEx reports an error (for example when
  /// flushing sys.stdout failed); the interpreter is finalized all the same.
  /// REQUIRES: called from the thread that called Start(), holding the GIL
  /// (an attached handle: any thread, with or without the GIL).
  absl::Status Finalize();

  /// True until Finalize() (or a move) gives up the interpreter.
  bool owns() const noexcept { return owns_; }
  /// True for a handle made by Attach() (it never finalizes Python).
  bool attached() const noexcept { return attached_; }

 private:
  Interpreter() = default;
  bool owns_ = false;
  bool attached_ = false;
  unsigned long long session_ = 0;
};

/// Stops every registered watcher (LeakDetector, samplers) and joins their
/// threads, releasing the GIL while it waits if the caller holds it. The
/// Interpreter stays usable and watchers may be started again. Thread-safe;
/// never fails.
LEAKGUARD_EXPORT void Shutdown() noexcept;

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_INTERPRETER_H_
