#include "leakguard/python/call.h"

#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "python/gil_capability.h"

namespace leakguard {

absl::StatusOr<Ref> GetAttr(Handle obj, const char* name) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  // Interning returns the one interned string for `name`: the same object
  // (and type-cache slot) on every call.
  Ref interned = Steal(PyUnicode_InternFromString(name));
  if (!interned) return StatusFromPythonError();
  Ref value = Steal(PyObject_GetAttr(obj.get(), interned.get()));
  if (!value) return StatusFromPythonError();
  return value;
}

absl::StatusOr<Ref> CallMethod(Handle obj, const char* name) {
  absl::StatusOr<Ref> method = GetAttr(obj, name);
  if (!method.ok()) return method.status();
  Ref result = Steal(PyObject_CallNoArgs(method->get()));
  if (!result) return StatusFromPythonError();
  return result;
}

absl::StatusOr<Ref> Import(const char* module) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  Ref imported = Steal(PyImport_ImportModule(module));
  if (!imported) return StatusFromPythonError();
  return imported;
}

}  // namespace leakguard
