// leakguard/memory_guard.h
//
// MemoryGuard: an RAII scope around a block of work (one script run, one
// plugin call) that measures what the block left behind and reports it when
// it passes a threshold.
//
//   {
//     auto guard = MemoryGuard::Enter({.label = "plugin:render",
//                                      .warn_bytes = 10 << 20,
//                                      .mode = GuardMode::kTraced});
//     RunPlugin();
//   }  // measured here; a report goes to the sink if it grew 10 MiB
//
//   auto guard = MemoryGuard::Enter({.label = "plugin:render"});
//   RunPlugin();
//   absl::StatusOr<GuardReport> report = guard->Exit();  // or read it
//
// Modes:
//   kProcess  RSS, descriptors and threads only: two /proc readings, the
//             cheapest; needs no GIL unless collect_before/after is set.
//   kTraced   also tracemalloc: traced bytes, allocated blocks, and the lines
//             that grew (a snapshot diff grouped by line or file). Starts
//             tracemalloc for the scope if it was off and stops it after.
//             REQUIRES the GIL at Enter and Exit.
//   kSampled  the same readings from a running AllocationSampler
//             (options.sampler) instead of tracemalloc: estimated bytes, at
//             the sampler's cost (cheap enough to guard every run in
//             production). Short blocks that allocate less than the
//             sampler's interval show little; see docs/sampler.md.
//             REQUIRES the GIL at Enter and Exit (for the block count).
// The threshold applies to RSS growth, and in kTraced/kSampled mode also to
// traced (estimated) growth: the guard warns when either reaches warn_bytes. RSS is read after
// Enter's snapshot and before Exit's, so what a snapshot of a big heap
// leaves resident is not counted as the block's growth.
//
// Guards nest (an inner kTraced guard finds tracemalloc on and leaves it
// on). Exit happens exactly once, on whichever path leaves the scope first:
// Exit(), destruction (also during stack unwinding from an exception), or
// an early return. A Python exception pending at Exit is kept pending.
// Nested guards must exit in reverse order of entry (as scopes do).

#ifndef LEAKGUARD_MEMORY_GUARD_H_
#define LEAKGUARD_MEMORY_GUARD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/process.h"
#include "leakguard/report.h"
#include "leakguard/sampler.h"
#include "leakguard/sink.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {

/// What a MemoryGuard measures.
enum class GuardMode {
  kProcess,  ///< RSS, descriptors, threads.
  kTraced,   ///< Also tracemalloc: traced bytes, blocks, lines.
  kSampled,  ///< Also a running AllocationSampler: estimated bytes, blocks, lines.
};

/// Options of a MemoryGuard.
struct MemoryGuardOptions {
  /// Names the work in reports.
  std::string label;
  /// Warn when RSS (or, in kTraced mode, traced memory) grew by at least
  /// this many bytes; 0: never warn.
  int64_t warn_bytes = 0;
  /// What to measure.
  GuardMode mode = GuardMode::kProcess;
  /// kTraced: group the lines by line (kLineno) or by file (kFilename).
  tracemalloc::GroupBy group_by = tracemalloc::GroupBy::kLineno;
  /// Run a full collection at Enter, so the baseline holds no garbage.
  bool collect_before = false;
  /// Run a full collection at Exit, so cyclic garbage the work made is not
  /// counted as growth.
  bool collect_after = false;
  /// Lines in the report, 0..1000. 0 in kTraced mode: no snapshots are taken
  /// (traced bytes and blocks only), the cheapest traced guard.
  int top = 10;
  /// Report even when under the threshold (severity info).
  bool always_report = false;
  /// Frames per allocation when the guard starts tracemalloc, 1..65535.
  int frames = 1;
  /// Where reports go (not owned; must outlive the guard). Null: DefaultSink().
  Sink* sink = nullptr;
  /// kSampled: the running sampler to read (not owned; must outlive the
  /// guard). Null or not running: Enter() fails (InvalidArgument,
  /// FailedPrecondition).
  AllocationSampler* sampler = nullptr;
};

/// What one guarded block did.
struct LEAKGUARD_EXPORT GuardReport {
  /// The guard's label.
  std::string label;
  /// The mode measured.
  GuardMode mode = GuardMode::kProcess;
  /// Time from Enter to Exit.
  absl::Duration elapsed = absl::ZeroDuration();
  /// RSS, descriptor and thread changes.
  ProcessDelta process;
  /// Traced memory change (kTraced), or the sampler's estimate of it
  /// (kSampled).
  std::optional<int64_t> traced_bytes;
  /// sys.getallocatedblocks() change (kTraced, kSampled).
  std::optional<int64_t> blocks;
  /// Objects the collections at Enter/Exit freed (0 when none ran).
  int64_t gc_collected = 0;
  /// Lines that grew, largest first (kTraced; estimated bytes in kSampled).
  std::vector<LineGrowth> top_lines;
  /// True when the growth reached warn_bytes.
  bool over_threshold = false;

  /// As a Report for sinks (source "memory_guard").
  Report ToReport() const;
};

/// The scope. Move-only; see the file comment.
class LEAKGUARD_EXPORT MemoryGuard {
 public:
  /// Starts measuring. InvalidArgument for bad options (negative threshold,
  /// top or frames out of range, kTraceback grouping); FailedPrecondition
  /// without the GIL when the options need it (kTraced, collections).
  static absl::StatusOr<MemoryGuard> Enter(MemoryGuardOptions options);

  /// Exits if Exit() was not called; the report goes to the sink as usual.
  ~MemoryGuard();
  /// Takes over `other`'s scope; `other` exits nothing.
  MemoryGuard(MemoryGuard&& other) noexcept;
  MemoryGuard& operator=(MemoryGuard&&) = delete;
  MemoryGuard(const MemoryGuard&) = delete;
  MemoryGuard& operator=(const MemoryGuard&) = delete;

  /// Ends the scope: measures, restores tracemalloc, sends the report to the
  /// sink when over the threshold (or always_report), and returns it. A
  /// second call returns the same report. Errors from a reading come back
  /// as a Status (tracemalloc is still restored).
  absl::StatusOr<GuardReport> Exit();

 private:
  MemoryGuard() = default;

  MemoryGuardOptions options_;
  bool active_ = false;
  std::optional<absl::StatusOr<GuardReport>> result_;
  ProcessSample before_;
  absl::Time start_;
  int64_t gc_before_ = 0;
  std::optional<tracemalloc::TracingScope> tracing_;
  std::optional<tracemalloc::Snapshot> snapshot_;
  int64_t traced_before_ = 0;
  int64_t blocks_before_ = 0;
};

}  // namespace leakguard

#endif  // LEAKGUARD_MEMORY_GUARD_H_
