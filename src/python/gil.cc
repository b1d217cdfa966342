#include "leakguard/python/gil.h"

#include "absl/status/status.h"
#include "leakguard/python/python.h"

namespace leakguard {

absl::Status CheckGil() noexcept {
  // Py_IsInitialized() first: PyGILState_Check() answers 1 when no
  // interpreter exists, which is the one case we must refuse.
  if (!Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        "no Python interpreter is running (not started yet, or already "
        "finalized)");
  }
  if (!PyGILState_Check()) {
    return absl::FailedPreconditionError(
        "this call needs the GIL, and the calling thread does not hold it; "
        "take it with leakguard::GilAcquire");
  }
  return absl::OkStatus();
}

GilAcquire::GilAcquire() noexcept {
  if (!Py_IsInitialized()) return;
  state_ = PyGILState_Ensure();
  acquired_ = true;
}

GilAcquire::~GilAcquire() {
  if (acquired_) PyGILState_Release(state_);
}

absl::Status GilAcquire::status() const {
  if (acquired_) return absl::OkStatus();
  return absl::FailedPreconditionError("cannot take the GIL: no Python interpreter is running");
}

GilRelease::GilRelease() noexcept {
  if (Py_IsInitialized() && PyGILState_Check()) state_ = PyEval_SaveThread();
}

GilRelease::~GilRelease() {
  if (state_ != nullptr) PyEval_RestoreThread(state_);
}

}  // namespace leakguard
