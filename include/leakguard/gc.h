// leakguard/gc.h
//
// Typed access to CPython's cycle collector (the `gc` module), and three
// scopes that change its state and always put it back:
//
//   Collect(), Stats(), Counts(), Thresholds(), Freeze() ...
//               one collection with its collected / uncollectable counts;
//               per-generation statistics, counters and thresholds.
//   SaveAllScope
//               turns on DEBUG_SAVEALL, collects, and summarises by type what
//               landed in `gc.garbage`; on exit restores the debug flags and
//               takes out of `gc.garbage` exactly what it put there.
//   PauseScope  disables automatic collection *with a plan*: collect every N
//               milliseconds and/or every N allocations, and once more on
//               exit; restores the previous enabled state. "Never disable the
//               GC without a plan", as a type.
//   CollectionRecorder
//               a callback in `gc.callbacks` that records every collection
//               (generation, pause, collected, uncollectable) and summarises
//               the pauses per generation; on exit removes exactly itself.
//
//   auto pause = gc::PauseScope::Begin({.every = absl::Milliseconds(200)});
//   if (!pause.ok()) return pause.status();
//   RunLatencySensitiveWork();   // only the planned collections in here ...
//   pause->reset();              // ... one more here, automatic GC back on
//
// A note on `gc.garbage`, true since PEP 442 (CPython 3.4): cycles whose
// objects define `__del__` ARE collected. `gc.garbage` fills only under
// DEBUG_SAVEALL, or with objects of C types that still define the legacy
// `tp_del` slot (what those keep alive is not freed either, and counts as
// uncollectable, but is not listed).
//
// Every call needs the GIL (FailedPrecondition without it) unless its comment
// says otherwise.

#ifndef LEAKGUARD_GC_H_
#define LEAKGUARD_GC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"

namespace leakguard::gc {

/// `gc.DEBUG_STATS`: print statistics during collection.
inline constexpr int kDebugStats = 1;
/// `gc.DEBUG_COLLECTABLE`: print collectable objects found.
inline constexpr int kDebugCollectable = 2;
/// `gc.DEBUG_UNCOLLECTABLE`: print uncollectable objects found.
inline constexpr int kDebugUncollectable = 4;
/// `gc.DEBUG_SAVEALL`: append unreachable objects to `gc.garbage` instead of
/// freeing them.
inline constexpr int kDebugSaveAll = 32;
/// The oldest generation; `Collect(kOldestGeneration)` is a full collection.
inline constexpr int kOldestGeneration = 2;

/// What one collection did.
struct CollectResult {
  /// The generation collected (0..2; 2 is a full collection).
  int generation = kOldestGeneration;
  /// Unreachable objects found and freed (or, under DEBUG_SAVEALL, saved to
  /// `gc.garbage`).
  int64_t collected = 0;
  /// Unreachable objects that could not be freed: those of types with a
  /// legacy `tp_del` finalizer (listed in `gc.garbage`) and what they keep
  /// alive.
  int64_t uncollectable = 0;
  /// Wall time of the collection, callbacks and finalizers included.
  absl::Duration duration;
};

/// Runs `gc.collect(generation)` and reports the collected and uncollectable
/// counts separately (from `gc.get_stats()` around the collection; automatic
/// collection is held off meanwhile so that nothing else is counted).
/// InvalidArgument unless 0 <= generation <= 2. Finalizers (`__del__`,
/// weakref callbacks) may run Python code during the call.
LEAKGUARD_EXPORT absl::StatusOr<CollectResult> Collect(int generation = kOldestGeneration);

/// One row of `gc.get_stats()`, with the generation's counter and threshold.
struct GenerationStats {
  /// 0, 1 or 2.
  int generation = 0;
  /// Collections of this generation since the interpreter started.
  int64_t collections = 0;
  /// Objects collected by those collections.
  int64_t collected = 0;
  /// Objects found uncollectable by those collections.
  int64_t uncollectable = 0;
  /// This generation's entry of `gc.get_count()`.
  int64_t count = 0;
  /// This generation's entry of `gc.get_threshold()`.
  int64_t threshold = 0;
};

/// `gc.get_stats()`, `gc.get_count()` and `gc.get_threshold()` per
/// generation, youngest first. On free-threaded builds only generation 0's
/// count and threshold are used by the collector.
LEAKGUARD_EXPORT absl::StatusOr<std::vector<GenerationStats>> Stats();

/// `gc.get_count()`: per generation, youngest first.
LEAKGUARD_EXPORT absl::StatusOr<std::vector<int64_t>> Counts();

/// `gc.get_threshold()`: per generation, youngest first.
LEAKGUARD_EXPORT absl::StatusOr<std::vector<int64_t>> Thresholds();

/// `gc.set_threshold(*thresholds)`: one to three values, youngest first;
/// generations not given keep theirs. A threshold of 0 for generation 0
/// disables automatic collection. InvalidArgument (nothing changed) for an
/// empty or longer list, or a negative value.
LEAKGUARD_EXPORT absl::Status SetThresholds(const std::vector<int64_t>& thresholds);

/// `gc.isenabled()`.
LEAKGUARD_EXPORT absl::StatusOr<bool> IsEnabled();
/// `gc.enable()` when `enabled`, else `gc.disable()`.
LEAKGUARD_EXPORT absl::Status SetEnabled(bool enabled);

/// `gc.get_debug()`.
LEAKGUARD_EXPORT absl::StatusOr<int> DebugFlags();
/// `gc.set_debug(flags)`. InvalidArgument for a negative value.
LEAKGUARD_EXPORT absl::Status SetDebugFlags(int flags);

/// `gc.freeze()`: moves every tracked object into the permanent generation,
/// which collections (and `gc.get_objects()`) ignore from then on.
LEAKGUARD_EXPORT absl::Status Freeze();
/// `gc.unfreeze()`: moves the permanent generation back into the oldest one.
LEAKGUARD_EXPORT absl::Status Unfreeze();
/// `gc.get_freeze_count()`: objects in the permanent generation.
LEAKGUARD_EXPORT absl::StatusOr<int64_t> FreezeCount();

/// One type's share of what landed in `gc.garbage`.
struct GarbageType {
  /// Short type name (`type(obj).__name__`, as objgraph prints it).
  std::string type_name;
  /// Entries of this type.
  int64_t count = 0;
  /// `repr()` of the first few entries of this type, each cut to
  /// `SaveAllOptions::max_repr_length` characters ("<repr failed: ...>" when
  /// repr raised).
  std::vector<std::string> samples;
};

/// What a SaveAllScope found in `gc.garbage`.
struct GarbageReport {
  /// The collection that SaveAllScope::Collect() ran.
  CollectResult collection;
  /// Entries added to `gc.garbage` since the scope began (by this and any
  /// other collection while the scope was active).
  int64_t total = 0;
  /// The same entries by type, most frequent first (ties by name).
  std::vector<GarbageType> types;
};

/// Options of SaveAllScope.
struct SaveAllOptions {
  /// Sample reprs kept per type (0..100).
  int samples_per_type = 3;
  /// Each sample repr is cut to this many bytes (at least 8), "..." added.
  int max_repr_length = 80;
  /// On exit, after taking its entries out of `gc.garbage`, run a full
  /// collection (with DEBUG_SAVEALL off for its duration, even if it was on
  /// before the scope) so that the saved cycles are really freed; their
  /// `__del__` already ran when they were first found. Off: they are freed
  /// by the next full collection (or saved again by it, if DEBUG_SAVEALL was
  /// on before the scope).
  bool collect_on_exit = true;
};

/// Turns on DEBUG_SAVEALL for its lifetime so that collections append what
/// they find unreachable to `gc.garbage`, where Collect() summarises it.
///
/// On exit (destruction, on every path) it restores the debug flags it found
/// and removes from `gc.garbage` the entries that were added while it was
/// active (if DEBUG_SAVEALL was already on before, only those its own
/// Collect() calls added); entries that were there before stay, in order.
///
/// REQUIRES: the GIL is held when it is created, used and destroyed (the
/// destructor takes it if needed, and does nothing if the interpreter is
/// gone). Not thread-safe; use from one thread.
class LEAKGUARD_EXPORT SaveAllScope {
 public:
  /// Saves the flags and the current `gc.garbage` entries, then sets
  /// DEBUG_SAVEALL. InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<SaveAllScope>> Begin(const SaveAllOptions& options = {});

  /// Restores the flags and takes this scope's entries out of `gc.garbage`.
  ~SaveAllScope();
  SaveAllScope(const SaveAllScope&) = delete;
  SaveAllScope& operator=(const SaveAllScope&) = delete;
  SaveAllScope(SaveAllScope&&) = delete;
  SaveAllScope& operator=(SaveAllScope&&) = delete;

  /// Collects `generation` (0..2) and summarises every entry added to
  /// `gc.garbage` since Begin(). InvalidArgument for a bad generation.
  /// Calling repr() on the entries runs their Python code.
  absl::StatusOr<GarbageReport> Collect(int generation = kOldestGeneration);

 private:
  SaveAllScope() = default;
  bool Baseline(PyObject* entry) const;

  SaveAllOptions options_;
  bool active_ = false;  // Set once Begin() changed the flags.
  int previous_flags_ = 0;
  Ref garbage_;                               // gc.garbage, the list itself.
  Ref baseline_;                              // Its entries at Begin() (a list).
  std::vector<std::uintptr_t> baseline_ids_;  // Sorted addresses of those.
  Ref own_;                                   // Entries our Collect() calls added.
};

/// Options of PauseScope: the plan for collections while paused. At least
/// one of `every` and `every_allocations` must be set.
struct PauseOptions {
  /// Collect this often while paused. Zero: no timed collections.
  absl::Duration every = absl::ZeroDuration();
  /// Collect when `gc.get_count()[0]` (container objects allocated minus
  /// freed since the last collection) reaches this. Zero: no such trigger.
  int64_t every_allocations = 0;
  /// How often the background thread checks the allocation count. Zero:
  /// only Tick() checks it (no thread unless `every` is set).
  absl::Duration check_interval = absl::Milliseconds(10);
  /// The generation each planned collection, and the one on exit, collects.
  int generation = kOldestGeneration;
};

/// Disables automatic collection for its lifetime and runs the collections
/// of its plan instead: every `every` and/or whenever `every_allocations`
/// container allocations have accumulated, and once on exit. On exit it
/// restores the enabled state it found (so nested pauses compose).
///
/// The plan runs on a background thread (started when `every` is set, or
/// `every_allocations` with a non-zero `check_interval`) that sleeps without
/// the GIL and takes it only to check and collect; it is registered as an
/// Interpreter Watcher, so Interpreter::Finalize() stops it. Such a thread
/// needs a leakguard::Interpreter (FailedPrecondition otherwise); a plan
/// without one runs from Tick() only.
///
/// REQUIRES: the GIL is held when it is created and when Tick() is called.
/// The destructor takes the GIL itself if needed; after the interpreter has
/// been finalized it only stops its thread.
class LEAKGUARD_EXPORT PauseScope final : private Watcher {
 public:
  /// Disables automatic collection and starts the plan. InvalidArgument
  /// (state unchanged) for a missing plan, negative values or a bad
  /// generation.
  static absl::StatusOr<std::unique_ptr<PauseScope>> Begin(const PauseOptions& options);

  /// Stops the thread, collects once more, restores the enabled state.
  ~PauseScope() override;
  PauseScope(const PauseScope&) = delete;
  PauseScope& operator=(const PauseScope&) = delete;
  PauseScope(PauseScope&&) = delete;
  PauseScope& operator=(PauseScope&&) = delete;

  /// Checks the plan now from the calling thread and collects if a
  /// collection is due. Returns whether it collected. Cheap when nothing is
  /// due: one `gc.get_count()` call.
  absl::StatusOr<bool> Tick();

  /// Planned collections run so far (the one on exit not included).
  /// Thread-safe; does not need the GIL.
  int64_t collections() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit PauseScope(const PauseOptions& options) : options_(options) {}
  void StopBeforeFinalize() noexcept override;
  void StopThread() noexcept;
  void Loop() noexcept;
  // Collects if due; the GIL must be held. Returns whether it collected.
  absl::StatusOr<bool> RunIfDue();

  const PauseOptions options_;
  bool previously_enabled_ = true;
  bool active_ = false;  // Set once Begin() disabled the collector.
  bool registered_ = false;
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool finalized_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  int64_t collections_ ABSL_GUARDED_BY(mu_) = 0;
};

/// One collection seen by a CollectionRecorder.
struct CollectionEvent {
  /// The generation collected.
  int generation = 0;
  /// From the "start" to the "stop" callback: the pause.
  absl::Duration duration;
  /// Objects collected (the callback's info["collected"]).
  int64_t collected = 0;
  /// Objects found uncollectable (info["uncollectable"]).
  int64_t uncollectable = 0;
};

/// Pauses of one generation, summed over a CollectionRecorder's lifetime.
struct GenerationPauses {
  /// 0, 1 or 2.
  int generation = 0;
  /// Collections of this generation.
  int64_t count = 0;
  /// Sum of their pauses.
  absl::Duration total;
  /// The longest of their pauses.
  absl::Duration max;
  /// Objects they collected.
  int64_t collected = 0;
  /// Objects they found uncollectable.
  int64_t uncollectable = 0;
};

/// Records every collection through a callback in `gc.callbacks`: its
/// generation, pause, collected and uncollectable counts.
///
/// The callback is a C function object; the destructor removes exactly that
/// object from `gc.callbacks` (other callbacks added meanwhile stay). A copy
/// of it kept elsewhere records nothing once the recorder is gone.
///
/// REQUIRES: the GIL for Begin() and destruction (the destructor takes it if
/// needed). Events() and Summary() are thread-safe and need no GIL.
class LEAKGUARD_EXPORT CollectionRecorder {
 public:
  /// Appends the callback to `gc.callbacks`. Keeps at most `max_events`
  /// events (later ones only count in Summary() and dropped_events()).
  static absl::StatusOr<std::unique_ptr<CollectionRecorder>> Begin(std::size_t max_events = 10000);

  /// Removes the callback from `gc.callbacks`.
  ~CollectionRecorder();
  CollectionRecorder(const CollectionRecorder&) = delete;
  CollectionRecorder& operator=(const CollectionRecorder&) = delete;
  CollectionRecorder(CollectionRecorder&&) = delete;
  CollectionRecorder& operator=(CollectionRecorder&&) = delete;

  /// The collections seen so far, oldest first.
  std::vector<CollectionEvent> Events() const;
  /// Per generation 0..2 (all three, zeros included): count, total and max
  /// pause, collected and uncollectable.
  std::vector<GenerationPauses> Summary() const;
  /// Events not kept because `max_events` was reached.
  int64_t dropped_events() const;

  /// State shared with the callback object (internal).
  struct State;

 private:
  CollectionRecorder() = default;

  std::shared_ptr<State> state_;
  Ref callback_;
};

}  // namespace leakguard::gc

#endif  // LEAKGUARD_GC_H_
