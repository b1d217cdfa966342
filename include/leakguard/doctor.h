// leakguard/doctor.h
//
// The leak doctor: runs a workload, gathers evidence, applies a table of
// rules and names the cause, the variable that holds the growth, and the
// fix. Four stages, each a type:
//
//   evidence   Investigate() runs the workload warmup + repeat times and
//              records an Investigation: per iteration RSS, traced bytes,
//              allocated blocks, descriptors, threads and what the collector
//              freed; across the run, the lines that grew (tracemalloc), the
//              types that grew (a census), the garbage only the cycle
//              collector frees (DEBUG_SAVEALL), NumPy's traced domain, and
//              what the script's own namespace holds (every container a few
//              levels deep, measured each iteration).
//   facts      the numbers derived from it (steady growth, plateaus,
//              shares), computed inside Decide().
//   rules      Decide() applies DoctorRules(), an ordered table (id,
//              cause, confidence, condition, what it suppresses), the same
//              table docs/doctor.md shows; every Cause says which row found it.
//   report     Diagnosis::ToText(), ToJson() and ToDot() render the one
//              Diagnosis; evidence is carried as structured values and
//              becomes sentences only there.
//
//   LEAKGUARD_ASSIGN_OR_RETURN(Diagnosis d, Diagnose(plugin_step, {.repeat = 40}));
//   if (d.verdict == Verdict::kLeak) std::fputs(d.ToText().c_str(), stderr);
//
// (The macros are internal to leakguard; a host writes the same with
// `if (!x.ok()) return x.status();`.)
//
// Cause ids, verdicts and notes are leakguard's fixed vocabularies and the
// JSON is its schema (docs/design.md, "Fixed vocabularies").
//
// REQUIRES: the GIL is held (the workload runs with it), except Decide()
// and the renderers, which are pure C++.

#ifndef LEAKGUARD_DOCTOR_H_
#define LEAKGUARD_DOCTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/counters.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"

namespace leakguard {

/// The doctor's verdict.
enum class Verdict {
  kLeak,          ///< "leak": at least one cause found.
  kNoLeak,        ///< "no_leak": no steady growth (perhaps with a Note).
  kInconclusive,  ///< "inconclusive": growth too irregular to call.
};

/// Why a leak grows: leakguard's fixed cause ids.
enum class CauseId {
  kUnboundedCache,        ///< "unbounded_cache"
  kGlobalState,           ///< "global_state"
  kReferenceCycles,       ///< "reference_cycles"
  kClosureCapture,        ///< "closure_capture"
  kUnclosedResources,     ///< "unclosed_resources"
  kNativeMemory,          ///< "native_memory"
  kListenerAccumulation,  ///< "listener_accumulation"
  kThreadLocal,           ///< "thread_local"
  kArrayCopies,           ///< "array_copies"
  kLoggingBuffer,         ///< "logging_buffer"
};

/// What a no_leak verdict's growth was.
enum class Note {
  kPlateau,             ///< "plateau": bounded growth that stopped.
  kOneTimeGrowth,       ///< "one_time_growth"
  kAllocatorRetention,  ///< "allocator_retention": RSS high but flat.
  kCyclicChurn,         ///< "cyclic_churn": cycles made and collected.
};

/// The JSON spelling: "leak", "no_leak", "inconclusive".
LEAKGUARD_EXPORT std::string_view VerdictName(Verdict verdict) noexcept;
/// The JSON spelling of a cause id: "unbounded_cache", ...
LEAKGUARD_EXPORT std::string_view CauseIdName(CauseId id) noexcept;
/// The JSON spelling of a note: "plateau", ...
LEAKGUARD_EXPORT std::string_view NoteName(Note note) noexcept;
/// What to do about a cause, with a short code example (the `fix` of every
/// Cause with that id).
LEAKGUARD_EXPORT std::string_view CauseFix(CauseId id) noexcept;
/// The verdict spelled `name`; empty for anything else.
LEAKGUARD_EXPORT std::optional<Verdict> ParseVerdict(std::string_view name) noexcept;
/// The cause id spelled `name`; empty for anything else.
LEAKGUARD_EXPORT std::optional<CauseId> ParseCauseId(std::string_view name) noexcept;
/// The note spelled `name`; empty for anything else.
LEAKGUARD_EXPORT std::optional<Note> ParseNote(std::string_view name) noexcept;

/// Options of an investigation.
/// The bounds below are the only place they are written: the command, the
/// Python module and Investigate() all check them through Validate().
struct LEAKGUARD_EXPORT DoctorOptions {
  /// Smallest `warmup`.
  static constexpr int kMinWarmup = 0;
  /// Largest `warmup`.
  static constexpr int kMaxWarmup = 1000;
  /// Smallest `repeat`.
  static constexpr int kMinRepeat = 2;
  /// Largest `repeat`.
  static constexpr int kMaxRepeat = 10000;
  /// Smallest `top`.
  static constexpr int kMinTop = 1;
  /// Largest `top`.
  static constexpr int kMaxTop = 100;

  /// Iterations run before measuring (imports, caches filling).
  int warmup = 3;
  /// Iterations measured.
  int repeat = 20;
  /// Allocation sites and types listed per cause.
  int top = 5;
  /// Build the back-reference graph of a sample of the growth as Graphviz DOT.
  bool want_dot = false;
  /// Smallest `max_repeat`.
  static constexpr int kMinMaxRepeat = 0;
  /// Largest `max_repeat`.
  static constexpr int kMaxMaxRepeat = 100000;
  /// Diagnose() only: when the first run is ambiguous (a container with a
  /// stated limit still filling, growth too irregular to call), it runs up
  /// to this many iterations more and decides on them; 0 never does.
  int max_repeat = 1000;

  /// OK, or InvalidArgument naming every field out of its bounds.
  absl::Status Validate() const;
};

/// One iteration's change of every counter (leakguard's one Counters type):
/// `gc_freed` is what the collection after the iteration freed (0 when the
/// workload runs with automatic collection off: then none is made); the
/// traced bytes are always read (the doctor traces).
using IterationDelta = Counters;

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
  /// The path goes through a `contextvars.ContextVar`'s value
  /// ("app._trail.get()").
  bool via_contextvar = false;
  /// Found in one of the standard library's registries rather than a
  /// module's globals: "modules" (`sys.modules`, logging's loggers),
  /// "gc.garbage", "callbacks" (`atexit`, `weakref.finalize`); empty for a
  /// module's own containers.
  std::string registry;
  /// A cache of the standard library or of an installed package that states
  /// its own limit (a functools cache with a maxsize, `re._cache`), watched
  /// so that its filling is not taken for a leak.
  bool internal = false;
  /// The size the container, or the object that owns it, says it stops at
  /// (a deque's maxlen, an lru_cache's maxsize, a cache's `capacity`).
  std::optional<int64_t> limit;
};

/// Where the growth was allocated.
struct Site {
  /// Source file.
  std::string file;
  /// Line.
  int line = 0;
  /// Bytes that stayed per measured iteration.
  int64_t bytes_per_iter = 0;
  /// For native memory (a native_memory cause, attributed by the native
  /// sampler): the library whose code allocated, and the function there.
  /// Empty otherwise; in the JSON only when set ("library", "function").
  std::string library;
  /// The function there (see SiteEstimate::function).
  std::string function;
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
  /// The container that holds the chain's sample, in Python terms
  /// ("app.models._registry", "app.env.cache._mapping"), when the chain
  /// starts at a module; "" otherwise.
  std::string chain_holder;

  /// Sum over the measured iterations.
  IterationDelta MeasuredTotal() const;
};

/// One piece of evidence, as values; rendered to a sentence by
/// RenderEvidence() (the report stage) and nowhere else.
struct Evidence {
  /// What the values mean.
  enum class Kind {
    kFdsGrew,             ///< `amount` descriptors over `iterations`.
    kThreadsGrew,         ///< `amount` threads over `iterations`.
    kGcOff,               ///< automatic collection was off.
    kCyclesPiledUp,       ///< `amount` cyclic objects; `items` their types.
    kCyclesWithDel,       ///< PEP 442: cycles with __del__ are collected.
    kRssOutsidePython,    ///< RSS grew `amount` while traced grew `other`.
    kHolderKeepsNative,   ///< `subject` (`detail` of `item`) grew by `amount`.
    kHeapGrew,            ///< traced grew `amount`, `other` blocks in all.
    kHolderGrew,          ///< `subject`, a `detail`, grew by `amount` (`item`).
    kNumpyGrew,           ///< NumPy's traced buffers grew `amount` bytes.
    kLoggingBuffer,       ///< a logging handler's record buffer.
    kLruCacheGrows,       ///< a functools cache whose currsize grows.
    kHoldsClosures,       ///< it holds closures.
    kHoldsCallbacks,      ///< it holds callbacks added and never removed.
    kMutableDefault,      ///< a mutable default argument.
    kClassAttribute,      ///< a class attribute.
    kModuleDict,          ///< a module-level dict gaining keys.
    kModuleContainer,     ///< a module-level container that only grows.
    kThreadLocalStorage,  ///< `items`: threading.local objects of the module.
    kNoContainer,         ///< nothing in the namespace explains it.
    kChain,               ///< `detail`: the back-reference chain.
    kIrregular,           ///< blocks grew in `amount` of `iterations` (`other` in all).
    kStopped,             ///< `subject` grew from `other` to `amount`, then stopped.
    kFirstIteration,      ///< the first iteration allocated `amount` blocks.
    kChurn,               ///< `amount` cyclic objects freed per iteration.
    kRetained,            ///< RSS higher but flat.
    kBounded,             ///< `subject` states a limit of `other`; it holds `amount`.
    kFilledFirst,         ///< `amount` more iterations ran so `subject` filled first.
    kNeedsMore,           ///< `subject` needs `amount` more iterations to fill (over budget).
    kRanLonger,           ///< `amount` more iterations ran (growth was irregular).
    kSavedGarbage,        ///< gc.garbage keeps what the collector found (DEBUG_SAVEALL).
    kRegistry,            ///< `subject` is a registry of the standard library.
    kContextVariable,     ///< the holder is a context variable's value.
    kConfirmed,           ///< growth nothing holds, measured again over `amount` iterations.
    kSettling,            ///< traced grew `amount` (`other` blocks), less and less.
    kBelowNoiseFloor,     ///< traced grew `amount` (`other` blocks): below the noise floor.
  };
  /// What the values mean.
  Kind kind = Kind::kNoContainer;
  /// The main number (bytes, objects, blocks: see Kind).
  int64_t amount = 0;
  /// A second number (see Kind).
  int64_t other = 0;
  /// Measured iterations the numbers span.
  int iterations = 0;
  /// The variable concerned (a holder path), if any.
  std::string subject;
  /// A word or text that goes with it (container kind, chain).
  std::string detail;
  /// What the container holds, if known.
  std::string item;
  /// Named counts (types of garbage, thread-local objects with 0).
  std::vector<std::pair<std::string, int64_t>> items;
};

/// The sentence for `evidence`, as the text and JSON reports show it.
LEAKGUARD_EXPORT std::string RenderEvidence(const Evidence& evidence);

/// The doctor's answer about one cause.
struct Cause {
  /// The cause id.
  CauseId id = CauseId::kGlobalState;
  /// The rule of DoctorRules() that found it ("fds_steady", "heap.lru_cache").
  std::string rule;
  /// 0..1.
  double confidence = 0;
  /// The variable that holds the growth, or empty when none applies.
  std::optional<std::string> holder;
  /// Where it was allocated.
  std::vector<Site> sites;
  /// The evidence, as values (RenderEvidence() makes the sentences).
  std::vector<Evidence> evidence;
  /// What to do, with a short code example (CauseFix(id)).
  std::string fix;
};

/// The verdict and the ranked causes.
struct LEAKGUARD_EXPORT Diagnosis {
  /// The verdict.
  Verdict verdict = Verdict::kNoLeak;
  /// For no_leak, what the growth there was means; empty otherwise.
  std::optional<Note> note;
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
  /// Notes for the reader (what was ruled out and why), as values.
  std::vector<Evidence> remarks;
  /// The back-reference chain of a sample of the growth as Graphviz DOT
  /// (when asked for and found; "" otherwise). ToDot() is the full graph.
  std::string chain_dot;
  /// Iterations Diagnose() ran beyond warmup + repeat because the first
  /// answer was ambiguous (see DoctorOptions::max_repeat); 0 when none.
  int extra_iterations = 0;
  /// What each iteration of the investigation decided on changed, in run
  /// order (the first `warmup` are the warm-up): the Investigation's
  /// readings, carried for plots (`leakguard doctor --html` draws them, see
  /// RoundPointsFromDeltas). Not in ToJson() or ToText().
  std::vector<IterationDelta> iterations;

  /// The JSON document of docs/design.md (one object, trailing newline).
  std::string ToJson() const;
  /// The report for people: verdict first, then each cause with holder,
  /// sites, evidence and fix.
  std::string ToText() const;
  /// Graphviz DOT of the same diagnosis: the back-reference chain when one
  /// was found, else each cause's holder with its growth and sites, else a
  /// graph whose label says there is no growth to show.
  std::string ToDot() const;
};

/// Runs `workload` (a Python callable, called with no arguments) and
/// gathers the evidence. `namespace_module` is the module whose globals are
/// scanned for holders (the script's module; null: the callable's
/// `__module__`). An exception from the workload stops the investigation
/// and comes back as a Status. InvalidArgument for options out of range or a
/// non-callable; FailedPrecondition without the GIL.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Investigation> Investigate(Handle workload,
                                                           const DoctorOptions& options = {},
                                                           Handle namespace_module = Handle());

/// One row of the doctor's rule table.
struct DoctorRule {
  /// Its name ("fds_steady", "heap.lru_cache", "note.plateau").
  std::string_view id;
  /// Position: rows are tried in this order.
  int order = 0;
  /// "cause" rows add a cause; "heap" rows classify the Python heap's
  /// growth (the first that matches wins); "verdict" rows decide a verdict
  /// or note when no cause was found (the first that matches wins).
  std::string_view group;
  /// The cause it names ("cause" and "heap" rows).
  std::optional<CauseId> cause;
  /// The verdict or note it gives ("verdict" rows).
  std::string_view outcome;
  /// Its confidence (cause and heap rows).
  double confidence = 0;
  /// The condition, in words, as docs/doctor.md shows it.
  std::string_view when;
  /// Rows or groups that may not fire once this one has ("heap").
  std::string_view suppresses;
};

/// The rule table Decide() applies, in order; docs/doctor.md shows the same.
LEAKGUARD_EXPORT const std::vector<DoctorRule>& DoctorRules();

/// Evidence in, diagnosis out: derives the facts and applies DoctorRules().
/// Pure C++; no GIL needed.
LEAKGUARD_EXPORT Diagnosis Decide(const Investigation& evidence);

/// Investigate() then Decide().
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<Diagnosis> Diagnose(Handle workload,
                                                    const DoctorOptions& options = {},
                                                    Handle namespace_module = Handle());

}  // namespace leakguard

#endif  // LEAKGUARD_DOCTOR_H_
