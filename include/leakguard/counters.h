// leakguard/counters.h
//
// The counters of one moment, read one way by every consumer (MemoryGuard,
// LeakCheck, LeakDetector, the doctor, `leakguard run`): resident memory,
// Python's traced heap, allocated blocks, file descriptors and threads, and
// the list of leakguard's own frames that never count as the user's growth.
//
//   LEAKGUARD_ASSIGN_OR_RETURN(Counters before, ReadCounters());
//   RunPlugin();
//   LEAKGUARD_ASSIGN_OR_RETURN(Counters after, ReadCounters({.collect = true}));
//   Counters grown = after - before;  // field by field
//
// (The macros are internal to leakguard; a host writes the same with
// `if (!x.ok()) return x.status();`.)

#ifndef LEAKGUARD_COUNTERS_H_
#define LEAKGUARD_COUNTERS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {

/// The counters of one moment, or (after subtraction) the change between two.
struct Counters {
  /// Resident set size, bytes.
  int64_t rss_bytes = 0;
  /// Python's traced memory (tracemalloc, all domains), bytes; empty when
  /// tracemalloc was not tracing.
  std::optional<int64_t> traced_bytes;
  /// sys.getallocatedblocks().
  int64_t blocks = 0;
  /// sys.gettotalrefcount(); empty on release builds of CPython.
  std::optional<int64_t> refs;
  /// Open file descriptors.
  int64_t fds = 0;
  /// Threads in the process.
  int64_t threads = 0;
  /// Objects the collection made just before this reading freed (0 when the
  /// reading made none). A difference keeps the later reading's value.
  int64_t gc_freed = 0;
  /// When the reading was taken.
  absl::Time taken_at = absl::UnixEpoch();
};

/// `after - before`, field by field; an optional field is set only when both
/// readings have it. `gc_freed` is `after`'s, `taken_at` is `after`'s.
LEAKGUARD_EXPORT Counters operator-(const Counters& after, const Counters& before);

/// How to read.
struct ReadCountersOptions {
  /// Run a full collection (`gc.collect()`, which works while automatic
  /// collection is disabled) before reading, and record what it freed.
  bool collect = false;
};

/// Reads the counters now. The traced heap is read only while tracemalloc
/// traces. REQUIRES: the GIL is held (FailedPrecondition without it).
/// Errors: a Python error from sys or gc as a Status; Unavailable / DataLoss
/// from /proc, as SampleProcess().
LEAKGUARD_EXPORT absl::StatusOr<Counters> ReadCounters(const ReadCountersOptions& options = {});

/// The tracemalloc filters that leave out leakguard's own frames and the
/// machinery that is never the user's growth (the import system,
/// tracemalloc itself, traces with no frame). Every consumer that lists
/// allocation sites applies exactly these. Does not need the GIL.
LEAKGUARD_EXPORT const std::vector<tracemalloc::TraceFilter>& OwnFrameFilters();

}  // namespace leakguard

#endif  // LEAKGUARD_COUNTERS_H_
