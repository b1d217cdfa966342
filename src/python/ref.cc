// The debug GIL check behind Ref's reference counting, and the version
// strings of the compiled core.

#include <cstdio>
#include <cstdlib>

#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/version.h"

namespace leakguard {
namespace internal {

void AssertGilHeld(const char* op) noexcept {
  if (Py_IsInitialized() && PyGILState_Check()) return;
  std::fprintf(stderr,
               "leakguard: %s without the GIL (or without a running "
               "interpreter); see leakguard/python/gil.h\n",
               op);
  std::abort();
}

}  // namespace internal

#define LEAKGUARD_STR2(x) #x
#define LEAKGUARD_STR(x) LEAKGUARD_STR2(x)

const char* Version() noexcept {
  return LEAKGUARD_STR(LEAKGUARD_VERSION_MAJOR) "." LEAKGUARD_STR(
      LEAKGUARD_VERSION_MINOR) "." LEAKGUARD_STR(LEAKGUARD_VERSION_PATCH);
}

const char* CompiledPythonVersion() noexcept { return PY_VERSION; }

}  // namespace leakguard
