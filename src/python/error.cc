#include "leakguard/python/error.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "python/gil_capability.h"

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

// One table for both directions: StatusFromPythonError() reads it top down
// (most specific first: FileNotFoundError is an OSError, ModuleNotFoundError
// an ImportError, KeyError a LookupError) and SetPythonErrorFromStatus()
// raises the row marked `raised` for a code. Unavailable and DataLoss (a
// /proc file that cannot be read, or reads wrong) become OSError; they are
// never produced from an exception.
struct ExceptionRow {
  PyObject* const* type;  // &PyExc_*: the objects exist only once Python is up.
  absl::StatusCode code;
  bool from_exception;  // Row used by StatusFromPythonError().
  bool raised;          // Row used by SetPythonErrorFromStatus() for `code`.
};
constexpr ExceptionRow kExceptionTable[] = {
    {&PyExc_FileNotFoundError, absl::StatusCode::kNotFound, true, false},
    {&PyExc_ModuleNotFoundError, absl::StatusCode::kNotFound, true, false},
    {&PyExc_PermissionError, absl::StatusCode::kPermissionDenied, true, true},
    {&PyExc_TimeoutError, absl::StatusCode::kDeadlineExceeded, true, true},
    {&PyExc_LookupError, absl::StatusCode::kNotFound, true, true},
    {&PyExc_TypeError, absl::StatusCode::kInvalidArgument, true, false},
    {&PyExc_ValueError, absl::StatusCode::kInvalidArgument, true, true},
    {&PyExc_MemoryError, absl::StatusCode::kResourceExhausted, true, true},
    {&PyExc_NotImplementedError, absl::StatusCode::kUnimplemented, true, true},
    {&PyExc_OSError, absl::StatusCode::kUnavailable, false, true},
    {&PyExc_OSError, absl::StatusCode::kDataLoss, false, true},
};

absl::StatusCode CodeFor(PyObject* exc) {
  for (const ExceptionRow& row : kExceptionTable) {
    if (row.from_exception && PyErr_GivenExceptionMatches(exc, *row.type)) return row.code;
  }
  return absl::StatusCode::kUnknown;
}

PyObject* ExceptionTypeFor(absl::StatusCode code) {
  for (const ExceptionRow& row : kExceptionTable) {
    if (row.raised && row.code == code) return *row.type;
  }
  return PyExc_RuntimeError;
}

// The exception class named by a kPythonTypePayload ("ValueError",
// "json.decoder.JSONDecodeError"), looked up without importing anything: a
// builtin, or an attribute of a module already in sys.modules. Only
// subclasses of Exception (never SystemExit or KeyboardInterrupt, which
// would end the caller's program for an error it only reports). A new
// reference, or null with no error set.
PyObject* ExceptionClassNamed(const std::string& name) {
  const size_t dot = name.rfind('.');
  Ref module;
  if (dot == std::string::npos) {
    module = Steal(PyImport_ImportModule("builtins"));
  } else if (Ref module_name =
                 Steal(PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(dot)))) {
    module = Steal(PyImport_GetModule(module_name.get()));  // null, no error: not imported
  }
  if (!module) {
    PyErr_Clear();
    return nullptr;
  }
  const std::string attr = dot == std::string::npos ? name : name.substr(dot + 1);
  Ref type = Steal(PyObject_GetAttrString(module.get(), attr.c_str()));
  if (!type) {
    PyErr_Clear();
    return nullptr;
  }
  if (!PyExceptionClass_Check(type.get()) ||
      PyObject_IsSubclass(type.get(), PyExc_Exception) != 1) {
    PyErr_Clear();
    return nullptr;
  }
  return type.Release();
}

}  // namespace

absl::Status StatusFromPythonError() {
  LEAKGUARD_RETURN_IF_NO_GIL();
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

std::nullptr_t SetPythonErrorFromStatus(const absl::Status& status, std::string_view where) {
  if (!CheckGil().ok()) return nullptr;
  if (status.ok()) {
    PyErr_Format(PyExc_SystemError, "%s%sSetPythonErrorFromStatus() called with an OK status",
                 std::string(where).c_str(), where.empty() ? "" : ": ");
    return nullptr;
  }
  std::string text(status.message());
  // A status made from a Python exception raises that exception's class
  // again, with the "Type: " prefix StatusFromPythonError() added removed.
  if (std::optional<std::string> name = PythonExceptionType(status)) {
    if (Ref type = Steal(ExceptionClassNamed(*name))) {
      std::string message = text;
      if (absl::StartsWith(message, *name + ": ")) {
        message.erase(0, name->size() + 2);
      } else if (message == *name) {
        message.clear();
      }
      if (!where.empty()) message = std::string(where) + ": " + message;
      Ref value = Steal(PyObject_CallFunction(type.get(), "s", message.c_str()));
      if (value) {
        PyErr_SetObject(type.get(), value.get());
        return nullptr;
      }
      // A class whose constructor wants more than a message
      // (UnicodeDecodeError): fall back to the code's class.
      PyErr_Clear();
    }
  }
  if (!where.empty()) text = std::string(where) + ": " + text;
  PyErr_SetString(ExceptionTypeFor(status.code()), text.c_str());
  return nullptr;
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
