// leakguard/python/python.h
//
// The one place that includes <Python.h> for leakguard, and the one place for
// CPython version differences in the plumbing layer. Code elsewhere calls the
// small `compat` helpers below instead of testing PY_VERSION_HEX itself.
//
// Supported: CPython 3.9 and newer, free-threaded (Py_GIL_DISABLED) builds
// included.

#ifndef LEAKGUARD_PYTHON_PYTHON_H_
#define LEAKGUARD_PYTHON_PYTHON_H_

#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>

#if PY_VERSION_HEX < 0x03090000
#error "leakguard needs CPython 3.9 or newer"
#endif

/// CPython version differences of the plumbing layer, in one place.
namespace leakguard::compat {

/// Takes the pending exception (normalized, with its traceback attached as
/// `__traceback__`) and clears the error indicator. Returns a new reference,
/// or nullptr when no exception is pending.
/// REQUIRES: the GIL is held.
inline PyObject* FetchException() {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  if (type == nullptr) return nullptr;
  PyErr_NormalizeException(&type, &value, &traceback);
  if (value == nullptr) {  // Normalization can fail only in odd corners.
    value = Py_None;
    Py_INCREF(value);
  }
  if (traceback != nullptr && PyExceptionInstance_Check(value)) {
    PyException_SetTraceback(value, traceback);
  }
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return value;
#endif
}

/// Sets `exc` (a new reference to an exception instance, stolen) as the
/// pending exception.
/// REQUIRES: the GIL is held.
inline void RestoreException(PyObject* exc) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(exc);
#else
  PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(exc));
  Py_INCREF(type);
  PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

/// True when this build of CPython runs without a GIL (3.13t and later).
inline constexpr bool kFreeThreaded =
#if defined(Py_GIL_DISABLED)
    true;
#else
    false;
#endif

/// False where tracemalloc's C state, once an interpreter that used it has
/// been finalized, stays "unloaded" for the rest of the process (it lives in
/// static globals that Py_FinalizeEx marks finalized), so a later
/// interpreter cannot trace. Seen on 3.9 and 3.11; 3.13 restarts cleanly.
/// 3.12 is not tested here and is treated like 3.11.
inline constexpr bool kTracemallocSurvivesRestart = PY_VERSION_HEX >= 0x030D0000;

}  // namespace leakguard::compat

#endif  // LEAKGUARD_PYTHON_PYTHON_H_
