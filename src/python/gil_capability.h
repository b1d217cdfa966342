// Internal: the GIL as a capability of clang's thread-safety analysis
// (-Wthread-safety, on in every clang build of leakguard), so that the
// compiler checks what the comments used to say: an internal helper that
// needs the GIL is called only where the GIL is known to be held. Not
// installed; without clang the annotations expand to nothing.
//
//   // In a .cc or an internal header:
//   absl::StatusOr<int64_t> AllocatedBlocks() LEAKGUARD_REQUIRES_GIL;
//   int64_t largest_interval LEAKGUARD_GUARDED_BY_GIL = 0;
//
//   // A public entry point checks at run time, and says so:
//   absl::StatusOr<Counters> ReadCounters() {
//     LEAKGUARD_RETURN_IF_NO_GIL();           // FailedPrecondition, or held
//     LEAKGUARD_ASSIGN_OR_RETURN(int64_t blocks, AllocatedBlocks());
//     ...
//   }
//
// Calling AllocatedBlocks() from a function that neither requires the GIL
// nor checked for it is a compile error under clang (tests/CMakeLists.txt
// has a compile test that shows it).
//
// What the analysis knows: a function annotated LEAKGUARD_REQUIRES_GIL may
// call others so annotated; LEAKGUARD_RETURN_IF_NO_GIL() and
// AssumeGilHeld() (after a GilAcquire whose ok() was tested) bring the GIL
// into the analysis for the rest of the function. What it does not know:
// the public types GilAcquire and GilRelease are not annotated (hosts that
// compile with -Wthread-safety would get warnings about a capability they
// never see), so a helper called inside a GilRelease scope is not caught;
// and CPython's own API is not annotated at all.

#ifndef LEAKGUARD_SRC_PYTHON_GIL_CAPABILITY_H_
#define LEAKGUARD_SRC_PYTHON_GIL_CAPABILITY_H_

#include "leakguard/python/gil.h"
#include "python/status_macros.h"

#if defined(__clang__)
#define LEAKGUARD_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define LEAKGUARD_THREAD_ANNOTATION_(x)
#endif

namespace leakguard::internal {

// The type of the one capability below; it has no state.
class LEAKGUARD_THREAD_ANNOTATION_(capability("GIL")) GilCapability final {};

// The GIL as the analysis names it ("requires holding GIL 'gil'").
inline GilCapability gil;

// Tells the analysis that the calling thread holds the GIL from here to the
// end of the enclosing function. Call it only where that is known: after
// CheckGil() succeeded, after a GilAcquire whose ok() is true, or in a
// callback CPython calls with the GIL held. Costs nothing at run time.
inline void AssumeGilHeld() noexcept LEAKGUARD_THREAD_ANNOTATION_(assert_capability(gil)) {}

}  // namespace leakguard::internal

// On a function: callers must hold the GIL.
#define LEAKGUARD_REQUIRES_GIL \
  LEAKGUARD_THREAD_ANNOTATION_(requires_capability(::leakguard::internal::gil))

// On a variable: read and written only with the GIL held.
#define LEAKGUARD_GUARDED_BY_GIL \
  LEAKGUARD_THREAD_ANNOTATION_(guarded_by(::leakguard::internal::gil))

// Returns CheckGil()'s FailedPrecondition from the enclosing function when
// the GIL is not held; otherwise tells the analysis that it is.
#define LEAKGUARD_RETURN_IF_NO_GIL()                    \
  do {                                                  \
    LEAKGUARD_RETURN_IF_ERROR(::leakguard::CheckGil()); \
    ::leakguard::internal::AssumeGilHeld();             \
  } while (false)

#endif  // LEAKGUARD_SRC_PYTHON_GIL_CAPABILITY_H_
