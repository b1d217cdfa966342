// leakguard/leak_check.h
//
// LeakCheck: CPython's `regrtest -R` (and gperftools' HeapLeakChecker) for
// embedded Python. Runs a callable `warmup + repeat` times, collecting
// garbage between runs, and records per-run deltas of
//   - allocated memory blocks (sys.getallocatedblocks()),
//   - the total reference count (sys.gettotalrefcount(), debug builds only),
//   - traced bytes (tracemalloc, when tracing),
//   - RSS, and open file descriptors.
//
// The verdict rule (written down, and the one CPython's own test suite
// trusts):
//   - blocks / references leak when EVERY post-warmup delta is >= 1
//     (regrtest's check_rc_deltas: a run that frees as much as it makes
//     breaks the streak, so caches that fill once and noise do not count),
//     with room for one noisy run: over 4 or more runs, one delta below 1 is
//     forgiven when it is not the last run's (an unrelated block freed in
//     the middle of a real leak must not hide it; a cache that stops
//     filling shows as a last run that did not grow). See GrowsEveryRun();
//   - descriptors leak when ANY post-warmup delta is non-zero
//     (regrtest's check_fd_deltas: descriptors are exact);
//   - RSS leaks when every post-warmup delta is at least one page (4 KiB):
//     native growth that the Python counters cannot see (C extensions,
//     ctypes), kept strict because allocators retain memory;
//   - traced bytes are reported, and name the lines, but do not decide:
//     blocks already count what tracemalloc sees.
// The result names the lines that grew (tracemalloc, grouped by line, over
// the post-warmup runs) and the types whose gc-tracked objects grew (a
// census after the warm-up and at the end).
//
//   auto result = RunLeakCheck([&] { return CallPlugin(); });
//   if (result.ok() && result->leaked) std::puts(result->Describe().c_str());
//
// REQUIRES: the GIL is held (the callable runs with it).

#ifndef LEAKGUARD_LEAK_CHECK_H_
#define LEAKGUARD_LEAK_CHECK_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"

namespace leakguard {

/// Options of RunLeakCheck().
struct LeakCheckOptions {
  /// Runs whose deltas are ignored (caches filling, lazy imports), 0..1000.
  int warmup = 3;
  /// Runs whose deltas decide, 1..1000. The more runs, the less a false
  /// positive can slip through the "every delta" rule; with fewer than 4 no
  /// noisy run is forgiven.
  int repeat = 6;
  /// Lines listed when it leaks, 0..1000.
  int top = 10;
  /// Trace allocations for the check (starting tracemalloc with 1 frame if
  /// it is off, and restoring its state after) so a leak comes with lines.
  bool trace_lines = true;
};

/// What one run changed.
struct RunDelta {
  /// sys.getallocatedblocks() after minus before.
  int64_t blocks = 0;
  /// sys.gettotalrefcount() after minus before; empty on release builds.
  std::optional<int64_t> refs;
  /// Traced memory after minus before; empty when not tracing.
  std::optional<int64_t> traced_bytes;
  /// RSS after minus before.
  int64_t rss_bytes = 0;
  /// Open descriptors after minus before.
  int64_t fds = 0;
};

/// A type whose gc-tracked objects grew over the post-warmup runs.
struct TypeDelta {
  /// `type(obj).__name__`.
  std::string type;
  /// Objects more at the end than after the warm-up.
  int64_t count = 0;
};

/// The outcome of a leak check.
struct LEAKGUARD_EXPORT LeakCheckResult {
  /// Options used.
  LeakCheckOptions options;
  /// One entry per run, warmup runs first.
  std::vector<RunDelta> runs;
  /// Which counters leaked by the rule above.
  bool leaked_blocks = false;
  /// References leaked (debug builds only).
  bool leaked_refs = false;
  /// Descriptors changed.
  bool leaked_fds = false;
  /// RSS grew by at least a page every run.
  bool leaked_rss = false;
  /// Any of the above.
  bool leaked = false;
  /// Lines whose traced memory grew over the post-warmup runs, largest
  /// first (empty when not tracing, or when nothing grew).
  std::vector<LineGrowth> top_lines;
  /// Types whose gc-tracked count grew over the post-warmup runs, most
  /// first (at most `top`).
  std::vector<TypeDelta> top_types;

  /// A message a developer can act on: the verdict, the deltas per run for
  /// every counter, the lines and the types that grew.
  std::string Describe() const;
};

/// The verdict rule for blocks and references, on the post-warmup deltas:
/// true when every delta is >= 1, or when there are 4 or more, all but one
/// are >= 1, and the one that is not is not the last. Empty: false.
///
///   GrowsEveryRun({1, 1, 1, 1, 1, 1})  // true
///   GrowsEveryRun({0, 1, 1, 1, 1, 1})  // true: one noisy run in the middle
///   GrowsEveryRun({1, 1, 1, 1, 1, 0})  // false: it stopped growing
///   GrowsEveryRun({0, 1, 0, 1, 1, 1})  // false: two runs did not grow
///   GrowsEveryRun({0, 1, 1})           // false: too few runs to forgive one
LEAKGUARD_EXPORT bool GrowsEveryRun(const std::vector<int64_t>& deltas);

/// Runs `fn` warmup + repeat times and applies the verdict rule. An error
/// from `fn` stops the check and is returned. InvalidArgument for options
/// out of range; FailedPrecondition without the GIL.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<LeakCheckResult> RunLeakCheck(
    const std::function<absl::Status()>& fn, const LeakCheckOptions& options = {});

/// The same for a Python callable, called with no arguments; an exception
/// it raises stops the check and comes back as a Status.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<LeakCheckResult> RunLeakCheck(Handle callable,
                                                              const LeakCheckOptions& options = {});

}  // namespace leakguard

#endif  // LEAKGUARD_LEAK_CHECK_H_
