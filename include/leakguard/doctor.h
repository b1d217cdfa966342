// leakguard/doctor.h
//
// The leak doctor: runs a workload, gathers evidence, walks a decision tree
// and names the cause, the variable that holds the growth, and the fix.
//
//   Investigate()  runs the workload warmup + repeat times and records, per
//                  iteration, RSS, traced bytes, allocated blocks,
//                  descriptors, threads and what the collector freed; across
//                  the run, the lines that grew (tracemalloc), the types
//                  that grew (a census), the garbage only the cycle
//                  collector frees (DEBUG_SAVEALL), NumPy's traced domain,
//                  and what the script's own namespace holds (every
//                  container a few levels deep, measured each iteration:
//                  the usual suspects: caches, registries, defaults,
//                  listener lists, logging buffers, threading.local).
//   Decide()       turns that evidence into a Diagnosis with an explicit,
//                  ordered rule table (see kRules in doctor.cc and
//                  docs/doctor.md).
//   Diagnose()     both.
//
// Cause ids, verdicts and notes are DESIGN.md's fixed vocabularies; the
// JSON is DESIGN.md's schema.
//
// REQUIRES: the GIL is held (the workload runs with it).

#ifndef LEAKGUARD_DOCTOR_H_
#define LEAKGUARD_DOCTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"

namespace leakguard {

/// Options of an investigation.
struct DoctorOptions {
  /// Iterations run before measuring (imports, caches filling), 0..1000.
  int warmup = 3;
  /// Iterations measured, 2..10000.
  int repeat = 20;
  /// Allocation sites and types listed per cause, 1..100.
  int top = 5;
  /// Build the holder's back-reference graph as Graphviz DOT.
  bool want_dot = false;
};

/// One iteration's change of every counter.
struct IterationDelta {
  /// Resident set size, bytes.
  int64_t rss_bytes = 0;
  /// Python's traced memory (tracemalloc, all domains), bytes.
  int64_t traced_bytes = 0;
  /// sys.getallocatedblocks().
  int64_t blocks = 0;
  /// Open file descriptors.
  int64_t fds = 0;
  /// Threads.
  int64_t threads = 0;
  /// Objects the collection after the iteration freed (0 when the workload
  /// runs with automatic collection off: then nothing is collected).
  int64_t gc_freed = 0;
};

/// A container in the script's namespace and how it grew.
struct HolderEvidence {
  /// Its name in Python terms: "app._cache", "app.Plugin.instances",
  /// "app.f.__defaults__", "app.bus.listeners", "app._handlers['tick']".
  std::string path;
  /// What was measured: "dict", "list", "set", "deque", "lru_cache"
  /// (currsize), "ndarray" (nbytes), "ndarray_list" (nbytes summed).
  std::string kind;
  /// What it holds (a sample element): "closure", "bound_method",
  /// "callable", "function", "ndarray", "log_record", or a type name.
  std::string item;
  /// Its measure after each measured iteration (repeat values) and before
  /// the first.
  std::vector<int64_t> series;
  /// Whether the path passes through a class attribute or a function's
  /// defaults (both global by nature).
  bool via_class = false;
  /// See via_class.
  bool via_defaults = false;
};

/// Where the growth was allocated.
struct Site {
  /// Source file.
  std::string file;
  /// Line.
  int line = 0;
  /// Bytes that stayed per measured iteration.
  int64_t bytes_per_iter = 0;
};

/// Growth of one type name.
struct TypeGrowth {
  /// `type(obj).__name__`.
  std::string type;
  /// Objects per measured iteration.
  double per_iter = 0;
};

/// Everything Investigate() gathered.
struct LEAKGUARD_EXPORT Investigation {
  /// Options used.
  DoctorOptions options;
  /// One entry per iteration, warmup first.
  std::vector<IterationDelta> iterations;
  /// Automatic collection was on (gc enabled, threshold > 0) when measuring.
  bool gc_automatic = true;
  /// Objects the DEBUG_SAVEALL collection at the end found: garbage only the
  /// cycle collector frees, made during the measured iterations.
  int64_t cyclic_garbage = 0;
  /// Their most common types, most first.
  std::vector<TypeGrowth> garbage_types;
  /// Traced growth in NumPy's domain over the measured iterations, bytes.
  int64_t numpy_bytes = 0;
  /// Lines whose traced memory grew over the measured iterations.
  std::vector<Site> sites;
  /// Types whose gc-tracked count grew over the measured iterations.
  std::vector<TypeGrowth> types;
  /// Containers of the script's namespace that changed size.
  std::vector<HolderEvidence> holders;
  /// `threading.local` objects in the script's namespace, by path.
  std::vector<std::string> thread_locals;
  /// The back-reference chain from a sample of the growth to its root, as a
  /// readable path ("" when none was found).
  std::string chain;
  /// Graphviz DOT of that chain (when asked for; "" when none).
  std::string dot;

  /// Sum over the measured iterations.
  IterationDelta MeasuredTotal() const;
};

/// The doctor's answer about one cause.
struct Cause {
  /// DESIGN.md's cause id ("unbounded_cache", "global_state", ...).
  std::string id;
  /// 0..1.
  double confidence = 0;
  /// The variable that holds the growth, or empty when none applies.
  std::optional<std::string> holder;
  /// Where it was allocated.
  std::vector<Site> sites;
  /// The evidence, in plain words.
  std::vector<std::string> evidence;
  /// What to do, with a short code example.
  std::string fix;
};

/// The verdict and the ranked causes.
struct LEAKGUARD_EXPORT Diagnosis {
  /// "leak", "no_leak" or "inconclusive".
  std::string verdict;
  /// For no_leak: "plateau", "one_time_growth", "allocator_retention",
  /// "cyclic_churn"; empty otherwise.
  std::optional<std::string> note;
  /// Iterations run.
  int warmup = 0;
  /// Iterations measured.
  int repeat = 0;
  /// Growth per measured iteration.
  int64_t rss_bytes_per_iter = 0;
  /// See rss_bytes_per_iter.
  int64_t traced_bytes_per_iter = 0;
  /// See rss_bytes_per_iter.
  int64_t blocks_per_iter = 0;
  /// See rss_bytes_per_iter.
  int64_t fds_per_iter = 0;
  /// See rss_bytes_per_iter.
  int64_t threads_per_iter = 0;
  /// Types that grew, fastest first.
  std::vector<TypeGrowth> types;
  /// Causes, most likely first.
  std::vector<Cause> causes;
  /// Notes for the reader (what was ruled out and why).
  std::vector<std::string> remarks;
  /// The holder's back-reference chain as Graphviz DOT, if asked for.
  std::string dot;

  /// DESIGN.md's JSON document (one object, trailing newline).
  std::string ToJson() const;
  /// The report for people: verdict first, then each cause with holder,
  /// sites, evidence and fix.
  std::string ToText() const;
};

/// Runs `workload` (a Python callable, called with no arguments) and
/// gathers the evidence. `namespace_module` is the module whose globals are
/// scanned for holders (the script's module; null: the callable's
/// `__module__`). An exception from the workload stops the investigation
/// and comes back as a Status. InvalidArgument for options out of range or a
/// non-callable; FailedPrecondition without the GIL.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Investigation> Investigate(
    Handle workload, const DoctorOptions& options = {},
    Handle namespace_module = Handle());

/// The decision tree: evidence in, diagnosis out. Pure C++; no GIL needed.
LEAKGUARD_EXPORT Diagnosis Decide(const Investigation& evidence);

/// Investigate() then Decide().
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Diagnosis> Diagnose(
    Handle workload, const DoctorOptions& options = {},
    Handle namespace_module = Handle());

}  // namespace leakguard

#endif  // LEAKGUARD_DOCTOR_H_
