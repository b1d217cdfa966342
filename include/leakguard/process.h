// leakguard/process.h
//
// Process facts that do not depend on Python: resident and peak memory, open
// file descriptors, threads and the native heap. The cheapest probe
// leakguard has; guards in kProcess mode read nothing else.
//
//   LEAKGUARD_ASSIGN_OR_RETURN(ProcessSample before, SampleProcess());
//   RunScript();
//   LEAKGUARD_ASSIGN_OR_RETURN(ProcessSample after, SampleProcess());
//   ProcessDelta grown = after - before;
//
// (The macros are internal to leakguard; a host writes the same with
// `if (!x.ok()) return x.status();`.)
//
// Reads /proc/self/status and /proc/self/fd through descriptors kept open
// (one pread and one directory read per sample), and glibc's mallinfo2()
// only when asked. Does not need the GIL. Thread-safe.

#ifndef LEAKGUARD_PROCESS_H_
#define LEAKGUARD_PROCESS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/export.h"

namespace leakguard {

/// One reading of the process.
struct ProcessSample {
  /// Resident set size (VmRSS), bytes.
  int64_t rss_bytes = 0;
  /// Peak resident set size since the process started (VmHWM), bytes.
  int64_t peak_rss_bytes = 0;
  /// Open file descriptors.
  int64_t open_fds = 0;
  /// Threads in the process.
  int64_t threads = 0;
  /// Bytes in use in the C heap (mallinfo2: arena + mmapped chunks in use);
  /// empty unless asked for (SampleProcessOptions::native_heap), and where
  /// the C library cannot tell (non-glibc, sanitizers).
  std::optional<int64_t> native_heap_bytes;
  /// When the sample was taken.
  absl::Time taken_at;
};

/// What SampleProcess() reads beyond RSS, peak RSS, descriptors and threads.
struct SampleProcessOptions {
  /// Read the C heap in use (`native_heap_bytes`) with glibc's mallinfo2().
  /// Off by default because of its cost: mallinfo2() walks every free chunk
  /// of every arena, each under its arena's lock, so its time grows with the
  /// heap's fragmentation (27 ms on a heap with 70,000 free chunks, measured)
  /// and other threads' malloc waits meanwhile.
  bool native_heap = false;
};

/// Difference of two samples (`after - before`).
struct ProcessDelta {
  /// Change of the resident set size, bytes.
  int64_t rss_bytes = 0;
  /// Change of open file descriptors.
  int64_t open_fds = 0;
  /// Change of the thread count.
  int64_t threads = 0;
  /// Change of the native heap in use; empty unless both samples had it.
  std::optional<int64_t> native_heap_bytes;
  /// Time between the samples.
  absl::Duration elapsed;
};

/// `after - before`, field by field.
LEAKGUARD_EXPORT ProcessDelta operator-(const ProcessSample& after, const ProcessSample& before);

/// Samples the calling process. /proc/self/status and /proc/self/fd are
/// opened once per process (again after a fork, or when a host closed them
/// and reused their numbers: leakguard never closes a host's descriptor)
/// and read in place; those descriptors are not counted in `open_fds`.
/// Errors: Unavailable when /proc is not mounted; DataLoss when an entry
/// cannot be parsed. Never crashes on an odd /proc.
LEAKGUARD_EXPORT absl::StatusOr<ProcessSample> SampleProcess(
    const SampleProcessOptions& options = {});

/// Samples from a /proc/PID-style directory `proc_dir` (holding `status`
/// and `fd/`), opening its files for this one reading. The native heap is
/// read from this process's C library only when asked and `proc_dir` is
/// "/proc/self". Meant for tests and tools.
/// Errors as SampleProcess(), NotFound naming the missing entry.
LEAKGUARD_EXPORT absl::StatusOr<ProcessSample> SampleProcessAt(
    std::string_view proc_dir, const SampleProcessOptions& options = {});

/// The resident set size alone, in bytes: the cheapest reading there is
/// (one pread of /proc/self/statm on a descriptor kept open; reopened after
/// a fork). For per-request hot paths; SampleProcess() for everything else.
/// Errors: Unavailable without /proc, DataLoss on an unparsable statm.
/// Thread-safe; does not need the GIL.
LEAKGUARD_EXPORT absl::StatusOr<int64_t> ReadRss();

/// "12.3 MiB", "-512 B", "1.0 GiB": a byte count for humans.
LEAKGUARD_EXPORT std::string FormatBytes(int64_t bytes);

}  // namespace leakguard

#endif  // LEAKGUARD_PROCESS_H_
