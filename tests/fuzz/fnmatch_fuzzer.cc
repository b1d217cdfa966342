// libFuzzer target: leakguard's fnmatch (the tracemalloc filters' pattern
// matcher, src/probes/tracemalloc_fnmatch.cc) against CPython's own
// fnmatch on the same bytes.
//
// Input: pattern, a NUL byte, then the name (no NUL: the input is both).
// Both are decoded as UTF-8 with surrogatepass, as leakguard documents.
// Checked on every input: FnMatch() refuses exactly the byte strings that
// Python cannot decode, and otherwise answers what
// `re.match(fnmatch.translate(pattern), name)` answers. Any difference
// aborts (a finding).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "leakguard/python/python.h"
#include "leakguard/tracemalloc.h"

namespace {

constexpr char kReference[] = R"PY(
import fnmatch, re

def reference(pattern, name):
    try:
        p = pattern.decode('utf-8', 'surrogatepass')
        n = name.decode('utf-8', 'surrogatepass')
    except UnicodeDecodeError:
        return None
    try:
        return re.match(fnmatch.translate(p), n) is not None
    except re.error:
        return 'error'
)PY";

PyObject* reference = nullptr;  // Owned for the life of the process.

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Py_InitializeEx(0);
  PyObject* globals = PyDict_New();
  PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
  PyObject* done = PyRun_String(kReference, Py_file_input, globals, globals);
  if (done == nullptr) {
    PyErr_Print();
    std::abort();
  }
  Py_DECREF(done);
  reference = PyDict_GetItemString(globals, "reference");
  Py_INCREF(reference);
  Py_DECREF(globals);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view pattern = input.substr(0, nul);
  const std::string_view name = nul == std::string_view::npos ? input : input.substr(nul + 1);

  const absl::StatusOr<bool> ours = leakguard::internal::FnMatch(name, pattern);

  PyObject* result = PyObject_CallFunction(reference, "y#y#", pattern.data(),
                                           static_cast<Py_ssize_t>(pattern.size()), name.data(),
                                           static_cast<Py_ssize_t>(name.size()));
  if (result == nullptr) {
    PyErr_Print();
    std::abort();
  }
  if (result == Py_None) {
    if (ours.ok()) {
      std::fprintf(stderr, "FnMatch accepted text Python cannot decode\n");
      std::abort();
    }
  } else if (PyBool_Check(result)) {
    if (!ours.ok()) {
      std::fprintf(stderr, "FnMatch refused valid text: %s\n",
                   std::string(ours.status().message()).c_str());
      std::abort();
    }
    if (*ours != (result == Py_True)) {
      std::fprintf(stderr, "FnMatch says %d, Python says %d\n", *ours ? 1 : 0,
                   result == Py_True ? 1 : 0);
      std::abort();
    }
  }  // 'error': re refused Python's own translation; nothing to compare.
  Py_DECREF(result);
  return 0;
}
