// leakguard/python_module.h
//
// The Python module `leakguard` (lru_cache, EventBus, memory_guard) for
// hosts that embed CPython: register it before the interpreter starts, and
// scripts can `import leakguard` with no extension file on sys.path.
//
//   leakguard::python::RegisterModule();                  // once, first
//   auto py = leakguard::Interpreter::Start(options);     // import works
//
// Link the CMake target `leakguard::python_module` (static, position-
// independent). Plain `python3` gets the same module from the `leakguard`
// package (`build/python/leakguard/`, or installed with pip): its
// `__init__.py` re-exports the extension `leakguard._leakguard`.

#ifndef LEAKGUARD_PYTHON_MODULE_H_
#define LEAKGUARD_PYTHON_MODULE_H_

#include "absl/status/status.h"
#include "leakguard/python/python.h"

/// The module's init function (multi-phase): what CPython calls on
/// `import leakguard`.
PyMODINIT_FUNC PyInit_leakguard(void);

/// The same module's init function under the package's extension name
/// (`import leakguard._leakguard`).
PyMODINIT_FUNC PyInit__leakguard(void);

namespace leakguard::python {

/// Registers `leakguard` as a built-in module of interpreters started
/// afterwards (leakguard::RegisterBuiltinModule). Idempotent.
/// Errors: FailedPrecondition while Python is running (register first).
/// Thread-safe; never touches Python.
absl::Status RegisterModule();

}  // namespace leakguard::python

#endif  // LEAKGUARD_PYTHON_MODULE_H_
