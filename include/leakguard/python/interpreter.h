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
//   cache = ...;
//
//   // GOOD: the interpreter outlives every Ref.
//   auto py = leakguard::Interpreter::Start({});
//   {
//     leakguard::Ref cache = ...;
//   }  // cache released here, with the interpreter still running
//
// One Interpreter may exist at a time. Start() while one runs (or while a
// host started Python by other means) returns FailedPrecondition. After
// Finalize() (or destruction) a new one may be started.

#ifndef LEAKGUARD_PYTHON_INTERPRETER_H_
#define LEAKGUARD_PYTHON_INTERPRETER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"

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
  /// the interpreter. Idempotent: a second call returns OK.
  /// Returns Internal if Py_FinalizeEx reports an error (for example when
  /// flushing sys.stdout failed); the interpreter is finalized all the same.
  /// REQUIRES: called from the thread that called Start(), holding the GIL.
  absl::Status Finalize();

  /// True until Finalize() (or a move) gives up the interpreter.
  bool owns() const noexcept { return owns_; }

 private:
  Interpreter() = default;
  bool owns_ = false;
};

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_INTERPRETER_H_
