// leakguard/python/gil.h
//
// The GIL as RAII types, and the check every public call makes first.
//
//   GilAcquire  takes the GIL for a scope; works on any thread, including
//               threads Python has never seen (a host's worker pool).
//   GilRelease  lets other threads run Python while this one does native
//               work (sleeping, joining a thread, blocking I/O).
//   CheckGil()  the contract check: FailedPrecondition instead of a crash
//               when a call that needs the GIL is made without it.
//
// On free-threaded builds (Py_GIL_DISABLED) "holding the GIL" means having an
// attached thread state; the same types and checks apply.

#ifndef LEAKGUARD_PYTHON_GIL_H_
#define LEAKGUARD_PYTHON_GIL_H_

#include "absl/status/status.h"
#include "leakguard/export.h"
#include "leakguard/python/python.h"

namespace leakguard {

/// Returns OK when an interpreter is running and the calling thread holds
/// its GIL; FailedPrecondition saying which of the two is missing otherwise.
/// Thread-safe; never touches Python objects; never crashes.
LEAKGUARD_EXPORT absl::Status CheckGil() noexcept;

/// Holds the GIL for its lifetime (PyGILState_Ensure / Release), from any
/// thread, nesting freely. If no interpreter is running it takes nothing and
/// ok() is false: test it before touching Python.
///
/// REQUIRES: the interpreter is not being finalized by another thread
/// (leakguard::Interpreter stops its watchers before finalizing, so their
/// threads never race finalization).
class LEAKGUARD_EXPORT GilAcquire {
 public:
  /// Takes the GIL, or nothing when no interpreter is running.
  GilAcquire() noexcept;
  /// Gives back what the constructor took.
  ~GilAcquire();

  GilAcquire(const GilAcquire&) = delete;
  GilAcquire& operator=(const GilAcquire&) = delete;
  GilAcquire(GilAcquire&&) = delete;
  GilAcquire& operator=(GilAcquire&&) = delete;

  /// True when the GIL is held by this scope.
  bool ok() const noexcept { return acquired_; }
  /// OK, or FailedPrecondition when no interpreter was running.
  absl::Status status() const;

 private:
  PyGILState_STATE state_{};
  bool acquired_ = false;
};

/// Releases the GIL for its lifetime (PyEval_SaveThread) and takes it back
/// on destruction. When the calling thread does not hold the GIL (or no
/// interpreter runs) it does nothing, so it is safe to use unconditionally
/// around blocking native work.
class LEAKGUARD_EXPORT GilRelease {
 public:
  /// Releases the GIL if this thread holds it.
  GilRelease() noexcept;
  /// Takes the GIL back if the constructor released it.
  ~GilRelease();

  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;
  GilRelease(GilRelease&&) = delete;
  GilRelease& operator=(GilRelease&&) = delete;

  /// True when the constructor released the GIL.
  bool released() const noexcept { return state_ != nullptr; }

 private:
  PyThreadState* state_ = nullptr;
};

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_GIL_H_
