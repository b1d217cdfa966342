#include "leakguard/python/error.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

// UTF-8 text of str(obj); nullopt (with the error cleared) if str() raises or
// the result cannot be encoded.
std::optional<std::string> StrOf(PyObject* obj) {
  Ref text = Steal(PyObject_Str(obj));
  if (!text) {
    PyErr_Clear();
    return std::nullopt;
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(text.get(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  return std::string(data, static_cast<size_t>(size));
}

std::string TypeName(PyObject* exc) {
  PyTypeObject* type = Py_TYPE(exc);
  Ref module = Steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__module__"));
  if (!module) PyErr_Clear();
  std::string name = type->tp_name;
  // tp_name of a heap type is its bare name; of a static type it may already
  // be dotted. Prefix the module unless it is builtins or already present.
  if (module && PyUnicode_Check(module.get())) {
    const char* mod = PyUnicode_AsUTF8(module.get());
    if (mod == nullptr) {
      PyErr_Clear();
    } else if (std::string_view(mod) != "builtins" && name.find('.') == std::string::npos) {
      name = absl::StrCat(mod, ".", name);
    }
  }
  return name;
}

// traceback.format_exception(type, value, tb), joined. The three-argument
// form works on every supported version.
std::optional<std::string> FormatTraceback(PyObject* exc) {
  Ref module = Steal(PyImport_ImportModule("traceback"));
  if (!module) {
    PyErr_Clear();
    return std::nullopt;
  }
  Ref tb = Steal(PyException_GetTraceback(exc));
  PyObject* tb_arg = tb ? tb.get() : Py_None;
  Ref lines = Steal(
      PyObject_CallMethod(module.get(), "format_exception", "OOO", Py_TYPE(exc), exc, tb_arg));
  if (!lines) {
    PyErr_Clear();
    return std::nullopt;
  }
  Ref empty = Steal(PyUnicode_FromString(""));
  if (!empty) {
    PyErr_Clear();
    return std::nullopt;
  }
  Ref joined = Steal(PyUnicode_Join(empty.get(), lines.get()));
  if (!joined) {
    PyErr_Clear();
    return std::nullopt;
  }
  return StrOf(joined.get());
}

absl::StatusCode CodeFor(PyObject* exc) {
  struct Mapping {
    PyObject* type;
    absl::StatusCode code;
  };
  // Most specific first: FileNotFoundError is an OSError, ModuleNotFoundError
  // an ImportError, KeyError a LookupError.
  const Mapping mappings[] = {
      {PyExc_FileNotFoundError, absl::StatusCode::kNotFound},
      {PyExc_ModuleNotFoundError, absl::StatusCode::kNotFound},
      {PyExc_PermissionError, absl::StatusCode::kPermissionDenied},
      {PyExc_TimeoutError, absl::StatusCode::kDeadlineExceeded},
      {PyExc_LookupError, absl::StatusCode::kNotFound},
      {PyExc_TypeError, absl::StatusCode::kInvalidArgument},
      {PyExc_ValueError, absl::StatusCode::kInvalidArgument},
      {PyExc_MemoryError, absl::StatusCode::kResourceExhausted},
      {PyExc_NotImplementedError, absl::StatusCode::kUnimplemented},
  };
  for (const Mapping& m : mappings) {
    if (PyErr_GivenExceptionMatches(exc, m.type)) return m.code;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

absl::Status StatusFromPythonError() {
  if (absl::Status gil = CheckGil(); !gil.ok()) return gil;
  Ref exc = Steal(compat::FetchException());
  if (!exc) {
    return absl::InternalError("StatusFromPythonError() called with no Python exception pending");
  }
  const std::string type = TypeName(exc.get());
  std::string message;
  if (std::optional<std::string> text = StrOf(exc.get())) {
    message = text->empty() ? type : absl::StrCat(type, ": ", *text);
  } else {
    message = absl::StrCat(type, ": <exception str() failed>");
  }
  std::string traceback = FormatTraceback(exc.get()).value_or(absl::StrCat(message, "\n"));

  absl::Status status(CodeFor(exc.get()), message);
  status.SetPayload(kPythonTypePayload, absl::Cord(type));
  status.SetPayload(kPythonTracebackPayload, absl::Cord(traceback));
  // Dropping `exc` may run __del__ code that raises; never leave that
  // pending for the caller.
  exc.Reset();
  if (PyErr_Occurred()) PyErr_Clear();
  return status;
}

std::optional<std::string> PythonExceptionType(const absl::Status& status) {
  auto payload = status.GetPayload(kPythonTypePayload);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

std::optional<std::string> PythonTraceback(const absl::Status& status) {
  auto payload = status.GetPayload(kPythonTracebackPayload);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

}  // namespace leakguard
