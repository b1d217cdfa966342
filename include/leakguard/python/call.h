// leakguard/python/call.h
//
// Attribute access and calls by C-string name, without a quiet growth that
// the obvious C-API calls cause: PyObject_GetAttrString() and
// PyObject_CallMethod() make a new, non-interned name string per call, and
// CPython's type attribute cache keeps a reference to each name in a slot
// picked by the string's address, so a loop that measures the heap fills up
// to 4096 slots with dead name strings (about 270 KiB, one block per call
// until full). A measuring tool must not grow the heap it measures, so
// leakguard interns every name it looks up: the same object each time, one
// cache slot.
//
//   absl::StatusOr<Ref> blocks = CallMethod(sys, "getallocatedblocks");

#ifndef LEAKGUARD_PYTHON_CALL_H_
#define LEAKGUARD_PYTHON_CALL_H_

#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"

namespace leakguard {

/// `getattr(obj, name)` with an interned name. Errors become a Status (the
/// Python error is cleared). REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Ref> GetAttr(Handle obj, const char* name);

/// `obj.name()` with an interned name. REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Ref> CallMethod(Handle obj, const char* name);

/// `import module` (from sys.modules when already imported).
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Ref> Import(const char* module);

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_CALL_H_
