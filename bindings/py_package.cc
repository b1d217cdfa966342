// The built-in module `leakguard` of an embedding host (RegisterModule(), the
// `leakguard` command) and the Python package leakguard/ (pip, cmake
// --install): the built-in module wins `import leakguard`, so it borrows the
// package's directory as its __path__ when the package is on sys.path. Then
// `import leakguard.middleware` or `-p leakguard.pytest_plugin` work in a
// script run by `leakguard run`, on the built-in module's functions and
// types. Without the package (or if looking for it fails) the module stays a
// plain module: importing a submodule raises ModuleNotFoundError.

#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {

int ExecPackagePath(PyObject* module) {
  PyObject* name = PyModule_GetNameObject(module);
  if (name == nullptr) return -1;
  const bool top_level = PyUnicode_CompareWithASCIIString(name, "leakguard") == 0;
  Py_DECREF(name);
  // Loaded as leakguard._leakguard, the module is the package's extension.
  if (!top_level) return 0;
  Ref machinery = Steal(PyImport_ImportModule("importlib.machinery"));
  Ref finder = machinery ? Steal(PyObject_GetAttrString(machinery.get(), "PathFinder")) : Ref();
  Ref spec =
      finder ? Steal(PyObject_CallMethod(finder.get(), "find_spec", "s", "leakguard")) : Ref();
  Ref locations = spec && spec.get() != Py_None
                      ? Steal(PyObject_GetAttrString(spec.get(), "submodule_search_locations"))
                      : Ref();
  Ref path =
      locations && locations.get() != Py_None ? Steal(PySequence_List(locations.get())) : Ref();
  if (!path) {
    PyErr_Clear();  // No package on sys.path: a plain module, as documented.
    return 0;
  }
  return PyObject_SetAttrString(module, "__path__", path.get());
}

}  // namespace leakguard::python::internal
