// Internal helpers shared by the guards (MemoryGuard, LeakCheck,
// LeakDetector): the lines that grew between two snapshots, and the
// interpreter's allocated-block count. Not installed.

#ifndef LEAKGUARD_SRC_PROBES_GROWTH_H_
#define LEAKGUARD_SRC_PROBES_GROWTH_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "leakguard/report.h"
#include "leakguard/tracemalloc.h"
#include "python/gil_capability.h"

namespace leakguard::internal {

// The keys whose size grew from `before` to `after`, largest growth first,
// at most `top`, leaving out OwnFrameFilters() (leakguard's own frames, the
// import machinery and tracemalloc itself: their allocations are the tools',
// not the user's). Does not need the GIL.
absl::StatusOr<std::vector<LineGrowth>> GrownLines(const tracemalloc::Snapshot& before,
                                                   const tracemalloc::Snapshot& after,
                                                   tracemalloc::GroupBy group_by, int top);

// sys.getallocatedblocks(). REQUIRES: the GIL is held.
absl::StatusOr<int64_t> AllocatedBlocks() LEAKGUARD_REQUIRES_GIL;

// sys.gettotalrefcount(), or empty on release builds of CPython (only debug
// builds have it). REQUIRES: the GIL is held.
absl::StatusOr<std::optional<int64_t>> TotalRefCount() LEAKGUARD_REQUIRES_GIL;

// gc.collect(): a full collection, returning what it freed. Not
// PyGC_Collect(), which does nothing while the collector is disabled, the
// very state in which cyclic garbage piles up. REQUIRES: the GIL is held.
absl::StatusOr<int64_t> CollectGarbage() LEAKGUARD_REQUIRES_GIL;

}  // namespace leakguard::internal

#endif  // LEAKGUARD_SRC_PROBES_GROWTH_H_
