// leakguard/python/builtin_modules.h
//
// A table of extension modules to compile into the embedded interpreter as
// built-ins, filled before Python starts. It lets a library offer a Python
// module to the host's scripts (`import leakguard`) without the core
// depending on that library: the module's code registers its init function
// here, and Interpreter::Start() hands the table to CPython
// (PyImport_AppendInittab) right before it initializes.
//
//   // RegisterModule() is the bindings'; it must come before Start().
//   if (absl::Status s = leakguard::python::RegisterModule(); !s.ok()) return s;
//   auto py = leakguard::Interpreter::Start(opts);  // `import leakguard` works
//
// The registry only stores entries; it never calls into Python. Hosts that
// start Python themselves call InstallBuiltinModules() right before their
// Py_Initialize*().

#ifndef LEAKGUARD_PYTHON_BUILTIN_MODULES_H_
#define LEAKGUARD_PYTHON_BUILTIN_MODULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "leakguard/export.h"
#include "leakguard/python/python.h"

namespace leakguard {

/// The `PyInit_<name>` function of an extension module: single-phase (returns
/// the module) or multi-phase (returns `PyModuleDef_Init(&def)`).
using BuiltinModuleInit = PyObject* (*)();

/// Records `init` as the built-in module `name` for interpreters started
/// after this call. Registering the same name with the same function again
/// is a no-op that returns OK.
///
/// Errors: InvalidArgument for an empty name, a name that is not a dotted
/// Python identifier, or a null `init`; AlreadyExists when `name` is
/// registered with a different function; FailedPrecondition while Python is
/// initialized (CPython reads its table of built-ins only at start-up:
/// register before Interpreter::Start()).
/// Thread-safe; never touches Python.
LEAKGUARD_EXPORT absl::Status RegisterBuiltinModule(const std::string& name,
                                                    BuiltinModuleInit init);

/// Names registered so far, in registration order. Thread-safe.
LEAKGUARD_EXPORT std::vector<std::string> RegisteredBuiltinModules();

/// Appends every registered module that CPython's table does not hold yet
/// (PyImport_AppendInittab, at most once per name per process). Called by
/// Interpreter::Start(); hosts that initialize Python themselves call it
/// right before Py_Initialize*().
/// Errors: FailedPrecondition while Python is initialized; ResourceExhausted
/// when CPython cannot grow its table.
/// Thread-safe; never touches Python objects.
LEAKGUARD_EXPORT absl::Status InstallBuiltinModules();

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_BUILTIN_MODULES_H_
