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
  absl::StatusOr<Diagnosis> diagnosis = leakguard::Diagnose(Handle(func), options);
  if (!diagnosis.ok()) {
    const absl::Status& status = diagnosis.status();
    const std::string message(status.message());
    if (auto traceback = PythonTraceback(status)) {
      // The workload raised: say so, with its traceback.
      PyErr_Format(PyExc_RuntimeError, "the workload raised %s\n%s", message.c_str(),
                   traceback->c_str());
    } else if (absl::IsInvalidArgument(status)) {
      PyErr_SetString(PyExc_ValueError, message.c_str());
    } else {
      PyErr_SetString(PyExc_RuntimeError, message.c_str());
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
     "  {'id': ..., 'holder': ..., 'sites': [...], 'evidence': [...], 'fix': ...}], ...}"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecDoctor(PyObject* module) { return PyModule_AddFunctions(module, kDoctorFunctions); }

}  // namespace leakguard::python::internal
