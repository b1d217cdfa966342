// leakguard/python/error.h
//
// Python exceptions as absl::Status values.
//
// StatusFromPythonError() takes the pending exception, clears the error
// indicator and returns a Status whose message is "Type: message" and whose
// payloads carry the exception type's qualified name and the formatted
// traceback (the text `traceback.print_exc()` would print). Read them back
// with PythonExceptionType() and PythonTraceback().
//
//   Ref result = Steal(PyObject_CallNoArgs(func));
//   if (!result) return StatusFromPythonError();
//
// SetPythonErrorFromStatus() goes the other way, for extension code:
//
//   absl::StatusOr<TypeCensus> census = TakeTypeCensus();
//   if (!census.ok()) return SetPythonErrorFromStatus(census.status(), "typestats()");

#ifndef LEAKGUARD_PYTHON_ERROR_H_
#define LEAKGUARD_PYTHON_ERROR_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "leakguard/export.h"

namespace leakguard {

/// Payload URL of the exception type's name ("ValueError", "json.JSONDecodeError").
inline constexpr char kPythonTypePayload[] = "leakguard/python-exception-type";
/// Payload URL of the formatted traceback text.
inline constexpr char kPythonTracebackPayload[] = "leakguard/python-traceback";

/// Converts the pending Python exception into a Status and clears it.
///
/// The code follows the exception type: TypeError/ValueError ->
/// InvalidArgument, LookupError/FileNotFoundError/ModuleNotFoundError ->
/// NotFound, MemoryError -> ResourceExhausted, NotImplementedError ->
/// Unimplemented, PermissionError -> PermissionDenied, TimeoutError ->
/// DeadlineExceeded, anything else -> Unknown.
/// Survives exceptions whose `__str__` (or traceback formatting) raises.
/// Returns Internal when no exception is pending, and FailedPrecondition
/// (without touching Python) when called without the GIL.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::Status StatusFromPythonError();

/// Raises `status` as a Python exception and returns nullptr, so a binding
/// writes `return SetPythonErrorFromStatus(s, "typestats()");`.
///
/// The mirror of StatusFromPythonError(): a status that came from a Python
/// exception raises the same class again (a builtin, or a class of a module
/// already imported; only subclasses of Exception) with the same message;
/// any other status raises by its code: InvalidArgument -> ValueError,
/// NotFound -> LookupError, ResourceExhausted -> MemoryError, Unimplemented
/// -> NotImplementedError, PermissionDenied -> PermissionError,
/// DeadlineExceeded -> TimeoutError, Unavailable and DataLoss -> OSError,
/// anything else -> RuntimeError. A non-empty `where` prefixes the message
/// ("typestats(): ..."). An OK status raises SystemError. Without the GIL
/// it does nothing.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT std::nullptr_t SetPythonErrorFromStatus(const absl::Status& status,
                                                         std::string_view where = {});

/// The Python exception type name carried by `status`, if it came from
/// StatusFromPythonError().
LEAKGUARD_EXPORT std::optional<std::string> PythonExceptionType(const absl::Status& status);

/// The formatted traceback carried by `status`, if it came from
/// StatusFromPythonError().
LEAKGUARD_EXPORT std::optional<std::string> PythonTraceback(const absl::Status& status);

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_ERROR_H_
