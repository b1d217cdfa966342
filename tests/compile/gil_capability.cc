// Compiled by the gil_capability_* tests (tests/CMakeLists.txt) with clang's
// -Wthread-safety, never linked: shows that the analysis accepts an
// internal "GIL held" helper called after the check, and rejects it called
// without one (built with -DLEAKGUARD_UNCHECKED).

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "probes/growth.h"
#include "python/gil_capability.h"

namespace leakguard {

// The public-entry-point shape: checked at run time, then the helper.
absl::StatusOr<int64_t> CheckedBlocks() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return internal::AllocatedBlocks();
}

// A helper that requires the GIL may call another.
absl::StatusOr<int64_t> BlocksAfterCollecting() LEAKGUARD_REQUIRES_GIL {
  LEAKGUARD_RETURN_IF_ERROR(internal::CollectGarbage());
  return internal::AllocatedBlocks();
}

int64_t g_reads LEAKGUARD_GUARDED_BY_GIL = 0;

absl::Status CountARead() {
  GilAcquire gil;
  if (!gil.ok()) return gil.status();
  internal::AssumeGilHeld();
  ++g_reads;
  return absl::OkStatus();
}

#ifdef LEAKGUARD_UNCHECKED
// No check, no annotation: each line below is an error.
absl::StatusOr<int64_t> UncheckedBlocks() { return internal::AllocatedBlocks(); }
void UncheckedWrite() { ++g_reads; }
#endif

}  // namespace leakguard
