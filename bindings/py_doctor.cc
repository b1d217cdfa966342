// leakguard.diagnose(func, *, warmup=3, repeat=20, top=5): the leak doctor
// from Python. Returns the doctor's JSON document (docs/design.md) as a dict.

#include <string>

#include "absl/status/status.h"
#include "leakguard/doctor.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

// The workload as the doctor calls it: `self` is a list [func, None]; the
// first exception func raises is kept in its second item (and raised on),
// so that diagnose() can hand the caller the workload's own exception.
PyObject* CallKeepingError(PyObject* self, PyObject* /*unused*/) {
  PyObject* result = PyObject_CallNoArgs(PyList_GET_ITEM(self, 0));
  if (result == nullptr && PyList_GET_ITEM(self, 1) == Py_None) {
    PyObject* error = compat::FetchException();
    PyList_SetItem(self, 1, NewRef(error));
    compat::RestoreException(error);
  }
  return result;
}

PyMethodDef kCallKeepingError = {"workload", CallKeepingError, METH_NOARGS, nullptr};

PyObject* Diagnose(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"func", "warmup", "repeat", "top", nullptr};
  PyObject* func = nullptr;
  DoctorOptions options;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$iii:diagnose", const_cast<char**>(keywords),
                                   &func, &options.warmup, &options.repeat, &options.top)) {
    return nullptr;
  }
  if (!PyCallable_Check(func)) {
    PyErr_SetString(PyExc_TypeError, "diagnose() needs a callable taking no arguments");
    return nullptr;
  }
  Ref holder = Steal(PyList_New(2));
  if (!holder) return nullptr;
  PyList_SET_ITEM(holder.get(), 0, NewRef(func));
  PyList_SET_ITEM(holder.get(), 1, NewRef(Py_None));
  // The wrapper carries func's __module__: the doctor scans that module.
  Ref module_name = Steal(PyObject_GetAttrString(func, "__module__"));
  if (!module_name) PyErr_Clear();
  Ref workload = Steal(PyCFunction_NewEx(&kCallKeepingError, holder.get(), module_name.get()));
  if (!workload) return nullptr;
  absl::StatusOr<Diagnosis> diagnosis = leakguard::Diagnose(workload, options);
  if (!diagnosis.ok()) {
    const absl::Status& status = diagnosis.status();
    const std::string message(status.message());
    Ref raised = Borrow(PyList_GET_ITEM(holder.get(), 1));
    if (raised.get() != Py_None &&
        (PyErr_GivenExceptionMatches(raised.get(), PyExc_KeyboardInterrupt) ||
         PyErr_GivenExceptionMatches(raised.get(), PyExc_SystemExit))) {
      // Ctrl-C and sys.exit() in the workload end the caller's program too.
      compat::RestoreException(raised.Release());
    } else if (raised.get() != Py_None) {
      // The workload raised: say so, with the workload's exception as the cause.
      PyErr_Format(PyExc_RuntimeError, "the workload raised %s", message.c_str());
      PyObject* error = compat::FetchException();
      PyException_SetCause(error, raised.Release());
      compat::RestoreException(error);
    } else if (auto traceback = PythonTraceback(status)) {
      PyErr_Format(PyExc_RuntimeError, "the workload raised %s\n%s", message.c_str(),
                   traceback->c_str());
    } else {
      SetPythonErrorFromStatus(status);
    }
    return nullptr;
  }
  Ref json = Steal(PyImport_ImportModule("json"));
  if (!json) return nullptr;
  const std::string text = diagnosis->ToJson();
  return PyObject_CallMethod(json.get(), "loads", "s#", text.data(),
                             static_cast<Py_ssize_t>(text.size()));
}

PyMethodDef kDoctorFunctions[] = {
    {"diagnose", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Diagnose)),
     METH_VARARGS | METH_KEYWORDS,
     "diagnose(func, *, warmup=3, repeat=20, top=5) -> dict\n\n"
     "Calls func() warmup + repeat times and returns the leak doctor's diagnosis:\n"
     "{'verdict': 'leak' | 'no_leak' | 'inconclusive', 'note': ..., 'causes': [\n"
     "  {'id': ..., 'holder': ..., 'sites': [...], 'evidence': [...], 'fix': ...}], ...}\n\n"
     "KeyboardInterrupt and SystemExit from func propagate unchanged; any other\n"
     "exception from func raises RuntimeError with it as __cause__."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecDoctor(PyObject* module) { return PyModule_AddFunctions(module, kDoctorFunctions); }

}  // namespace leakguard::python::internal
