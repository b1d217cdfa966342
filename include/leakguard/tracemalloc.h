// leakguard/tracemalloc.h
//
// CPython's tracemalloc from C++: turn tracing on for a scope, read the
// traced memory, and take snapshots that live as compact, immutable C++ data.
// Grouping and diffing a Snapshot is pure C++: it needs no GIL and runs on
// any thread, with results equal, element for element and in the same order,
// to what Python's `Snapshot.statistics()` / `Snapshot.compare_to()` return
// for the same traces.
//
//   auto scope = tracemalloc::TracingScope::Start(/*frames=*/10);
//   if (!scope.ok()) return scope.status();
//   auto before = tracemalloc::Snapshot::Take();
//   RunThePlugin();
//   auto after = tracemalloc::Snapshot::Take();
//   // (The GIL may be dropped from here on.)
//   auto diffs = after->CompareTo(*before, tracemalloc::GroupBy::kLineno);
//   for (const tracemalloc::StatisticDiff& d : *diffs) {
//     std::cout << d.ToString() << "\n";   // "app.py:12: size=... (+...)"
//   }
//
// Snapshots also come from a Python `tracemalloc.Snapshot` object
// (Snapshot::FromPython) or from a file written by `Snapshot.dump()`
// (Snapshot::Load), so leakguard's results can be checked against Python's on
// identical traces.
//
// Threads: everything that touches Python (TracingScope, the free functions,
// Take/FromPython/Load/ToPython) needs the GIL and returns FailedPrecondition
// without it. Everything else (Snapshot's other members, the lists and views
// it hands out) is immutable C++ data, safe to use from any number of threads
// at once, with or without the GIL.

#ifndef LEAKGUARD_TRACEMALLOC_H_
#define LEAKGUARD_TRACEMALLOC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"

namespace leakguard {

namespace internal {
struct SnapshotTables;
struct SnapshotTrace;
}  // namespace internal

/// tracemalloc from C++: tracing control, snapshots, statistics and diffs.
namespace tracemalloc {

/// The largest traceback limit tracemalloc accepts (`frames` of a scope).
inline constexpr int kMaxFrames = 65535;

// ------------------------------------------------------------- tracing state

/// Memory traced by tracemalloc, as `tracemalloc.get_traced_memory()`.
struct TracedMemory {
  /// Bytes currently allocated in traced blocks.
  std::size_t current = 0;
  /// Peak of `current` since tracing started or the last ResetPeak().
  std::size_t peak = 0;
};

/// True while tracemalloc traces allocations (`tracemalloc.is_tracing()`).
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::StatusOr<bool> IsTracing();

/// Current and peak traced memory (`tracemalloc.get_traced_memory()`); both
/// are 0 while tracing is off.
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::StatusOr<TracedMemory> GetTracedMemory();

/// Sets the peak to the current traced memory (`tracemalloc.reset_peak()`).
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::Status ResetPeak();

/// The number of frames stored per traceback
/// (`tracemalloc.get_traceback_limit()`).
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::StatusOr<int> GetTracebackLimit();

/// Bytes tracemalloc itself uses to store its traces
/// (`tracemalloc.get_tracemalloc_memory()`).
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::StatusOr<std::size_t> GetTracemallocMemory();

/// Drops all traces collected so far and resets the peak, keeping tracing on
/// (`tracemalloc.clear_traces()`).
/// REQUIRES: the GIL is held (FailedPrecondition otherwise).
LEAKGUARD_EXPORT absl::Status ClearTraces();

/// Tracing on, with a given traceback limit, for a scope; the state before
/// (on or off, and the limit) comes back when the scope ends, on every exit
/// path: normal end, early return, exception, or the owning object moved to
/// and destroyed on another thread.
///
///   {
///     absl::StatusOr<TracingScope> scope = TracingScope::Start(25);
///     if (!scope.ok()) return scope.status();
///     ...                       // traced with 25 frames per traceback
///   }                           // back to what it was
///
/// Semantics, exactly:
///  - off before: Start() starts tracing with `frames`; the end stops it (and
///    with it, as in Python, all traces are dropped).
///  - on before, with the same limit: nothing changes, now or at the end;
///    traces collected before the scope survive it.
///  - on before, with another limit: tracemalloc cannot change the limit
///    while it runs, so Start() stops it (dropping the traces collected so
///    far) and starts it with `frames`; the end does the same back to the
///    old limit. Traces from inside the scope do not survive it.
///  - whatever Python code did inside the scope (stopping or restarting
///    tracemalloc), the end restores the state found at Start().
/// Scopes nest; end them in reverse order of their start (the natural order
/// for RAII objects).
class LEAKGUARD_EXPORT TracingScope {
 public:
  /// Turns tracing on with a traceback limit of `frames`.
  /// Returns InvalidArgument (state unchanged) when `frames` is outside
  /// 1..65535, FailedPrecondition without the GIL, and the Python error as a
  /// Status if tracemalloc refuses to start.
  /// REQUIRES: the GIL is held.
  static absl::StatusOr<TracingScope> Start(int frames = 1);

  /// Restores the state found at Start(). Takes the GIL itself (any thread
  /// may end a scope); does nothing once the interpreter is gone. A pending
  /// Python exception of the calling thread is preserved.
  ~TracingScope();

  /// Moves the duty to restore; `other` then restores nothing.
  TracingScope(TracingScope&& other) noexcept;
  /// Restores what this scope holds (if anything), then takes `other`'s duty.
  TracingScope& operator=(TracingScope&& other) noexcept;
  TracingScope(const TracingScope&) = delete;
  TracingScope& operator=(const TracingScope&) = delete;

  /// Restores the earlier state now instead of at destruction; later calls
  /// and the destructor then do nothing. Returns the error, if restoring
  /// failed (FailedPrecondition without the GIL: try again with it).
  absl::Status End();

  /// True while this object still has a state to restore.
  bool active() const noexcept { return active_; }
  /// Whether tracing was on when the scope started.
  bool was_tracing() const noexcept { return was_tracing_; }
  /// The traceback limit when the scope started (meaningful if was_tracing()).
  int previous_frames() const noexcept { return previous_frames_; }
  /// The traceback limit this scope asked for.
  int frames() const noexcept { return frames_; }

 private:
  TracingScope(bool was_tracing, int previous_frames, int frames) noexcept;

  bool active_ = false;
  bool was_tracing_ = false;
  int previous_frames_ = 0;
  int frames_ = 0;
};

// ------------------------------------------------------------------- frames

/// One frame of a traceback: a file name and a line number, as
/// `tracemalloc.Frame`.
struct LEAKGUARD_EXPORT Frame {
  /// The file name, UTF-8 (lone surrogates of the Python str, as produced by
  /// `surrogateescape`, are kept as 3-byte sequences, "surrogatepass").
  /// Points into the snapshot's data: valid while the Snapshot, list or
  /// Traceback it came from is alive.
  std::string_view filename;
  /// The line number (0 when unknown, and in keys grouped by filename).
  std::int64_t lineno = 0;

  /// "filename:lineno", as `str(tracemalloc.Frame)`.
  std::string ToString() const;

  /// Frames compare as Python's `(filename, lineno)` tuples (filenames by
  /// code point).
  friend bool operator==(const Frame& a, const Frame& b) noexcept {
    return a.filename == b.filename && a.lineno == b.lineno;
  }
  /// Frames compare as Python's `(filename, lineno)` tuples (filenames by
  /// code point).
  friend bool operator<(const Frame& a, const Frame& b) noexcept {
    if (a.filename != b.filename) return a.filename < b.filename;
    return a.lineno < b.lineno;
  }
};

/// A sequence of frames from the oldest call to the most recent one, as
/// `tracemalloc.Traceback` (index 0 is the oldest frame; Python's C layer
/// stores them the other way round, and so does leakguard internally).
///
/// A Traceback is a small view into a snapshot's interned data: copying it is
/// cheap, and it stays valid while the Snapshot, StatisticList or
/// StatisticDiffList it came from is alive.
class LEAKGUARD_EXPORT Traceback {
 public:
  /// An empty traceback (no frames).
  Traceback() noexcept = default;

  /// Number of frames.
  std::size_t size() const noexcept;
  /// True when there are no frames.
  bool empty() const noexcept { return size() == 0; }
  /// Frame `i`, oldest first (0 <= i < size()), as `traceback[i]`.
  Frame operator[](std::size_t i) const noexcept;
  /// All frames, oldest first.
  std::vector<Frame> frames() const;
  /// The most recent frame (the allocation site); REQUIRES: !empty().
  Frame most_recent() const noexcept { return (*this)[size() - 1]; }

  /// `str(traceback)`: the oldest frame as "filename:lineno" (for a key
  /// grouped by lineno or filename: its only frame, e.g. "app.py:12").
  /// "" for an empty traceback (where Python raises IndexError).
  std::string ToString() const;

  /// The lines of `Traceback.format(limit, most_recent_first)`:
  /// `  File "app.py", line 12` per frame, oldest first unless
  /// `most_recent_first`. `limit` > 0 keeps the `limit` most recent frames,
  /// `limit` < 0 keeps all but the `-limit` most recent ones, 0 keeps none,
  /// nullopt keeps all: Python's slicing, exactly. Unlike Python, no
  /// source lines are added (that would need linecache and the GIL).
  std::vector<std::string> Format(std::optional<int> limit = std::nullopt,
                                  bool most_recent_first = false) const;

  /// Frame-by-frame equality, as `Traceback.__eq__`.
  friend LEAKGUARD_EXPORT bool operator==(const Traceback& a, const Traceback& b) noexcept;
  /// Lexicographic order over the frames oldest first, as
  /// `Traceback.__lt__` (a tuple comparison of `(filename, lineno)` tuples).
  friend LEAKGUARD_EXPORT bool operator<(const Traceback& a, const Traceback& b) noexcept;

  /// How a view names its frames (internal).
  enum class Kind : std::uint8_t {
    kStack,  ///< an interned stack of the snapshot
    kFrame,  ///< one interned frame (a lineno key)
    kFile,   ///< one file name with line 0 (a filename key)
  };
  /// Internal: a view of key `id` of `kind` in `tables`.
  Traceback(const internal::SnapshotTables* tables, Kind kind, std::uint32_t id) noexcept
      : tables_(tables), kind_(kind), id_(id) {}

 private:
  const internal::SnapshotTables* tables_ = nullptr;
  Kind kind_ = Kind::kStack;
  std::uint32_t id_ = 0;
};

// ------------------------------------------------------------------- traces

/// One traced memory block, as `tracemalloc.Trace`.
struct Trace {
  /// Address space of the block (0 for Python's own allocators; others come
  /// from `PyTraceMalloc_Track`).
  std::uint32_t domain = 0;
  /// Size of the block in bytes.
  std::uint64_t size = 0;
  /// Where it was allocated, oldest frame first.
  Traceback traceback;
  /// Number of frames the stack had when the block was allocated (may exceed
  /// traceback.size() when the limit truncated it); nullopt when unknown.
  std::optional<std::uint32_t> total_nframe;
};

// ------------------------------------------------------------------ filters

/// Keeps or drops traces by the file name and line of their frames, as
/// `tracemalloc.Filter(inclusive, filename_pattern, lineno, all_frames,
/// domain)`.
struct Filter {
  /// true: keep only matching traces; false: drop matching traces.
  bool inclusive = true;
  /// An fnmatch pattern (`*`, `?`, `[seq]`, `[!seq]`; case-sensitive, as on
  /// POSIX). A trailing ".pyc" becomes ".py", in the pattern and in the file
  /// names it is matched against.
  std::string filename_pattern;
  /// If set, only this line number matches.
  std::optional<std::int64_t> lineno;
  /// false: look at the most recent frame only; true: a trace matches if any
  /// of its frames matches.
  bool all_frames = false;
  /// If set, the filter also looks at the domain exactly as Python's does
  /// (inclusive: the frame must match AND the domain be equal; exclusive: a
  /// trace is dropped when the frame matches AND the domain is equal).
  std::optional<std::uint32_t> domain;
};

/// Keeps (inclusive) or drops (exclusive) the traces of one domain, as
/// `tracemalloc.DomainFilter`.
struct DomainFilter {
  /// true: keep only traces of `domain`; false: drop them.
  bool inclusive = true;
  /// The address space.
  std::uint32_t domain = 0;
};

/// Either kind of filter.
using TraceFilter = std::variant<Filter, DomainFilter>;

// ------------------------------------------------------------- statistics

/// How Statistics() and CompareTo() group traces (Python's `key_type`).
enum class GroupBy {
  kLineno,     ///< "lineno": by the most recent frame (file and line)
  kFilename,   ///< "filename": by the file of the most recent frame
  kTraceback,  ///< "traceback": by the whole traceback
};

/// Parses Python's spelling ("lineno", "filename", "traceback"); anything
/// else is InvalidArgument.
LEAKGUARD_EXPORT absl::StatusOr<GroupBy> ParseGroupBy(std::string_view name);

/// Python's spelling of `group_by`.
LEAKGUARD_EXPORT std::string_view GroupByName(GroupBy group_by) noexcept;

/// Traces grouped under one key, as `tracemalloc.Statistic`.
struct LEAKGUARD_EXPORT Statistic {
  /// The key: one frame for kLineno/kFilename (the filename key's line is
  /// 0), the whole traceback for kTraceback.
  Traceback traceback;
  /// Total size of the group's blocks, in bytes.
  std::int64_t size = 0;
  /// Number of blocks.
  std::int64_t count = 0;

  /// `str(statistic)`, e.g. "app.py:12: size=1024 KiB, count=3,
  /// average=341 KiB".
  std::string ToString() const;
};

/// One key's change between an older and a newer snapshot, as
/// `tracemalloc.StatisticDiff`.
struct LEAKGUARD_EXPORT StatisticDiff {
  /// The key (see Statistic::traceback).
  Traceback traceback;
  /// Total size in the newer snapshot (0 if the key is gone).
  std::int64_t size = 0;
  /// size - (size in the older snapshot).
  std::int64_t size_diff = 0;
  /// Number of blocks in the newer snapshot.
  std::int64_t count = 0;
  /// count - (count in the older snapshot).
  std::int64_t count_diff = 0;

  /// `str(statistic_diff)`, e.g. "app.py:12: size=2048 B (+1024 B),
  /// count=2 (+1), average=1024 B".
  std::string ToString() const;
};

/// A read-only list that keeps the snapshot data its views point into alive.
/// Iterable; `list[i]`; thread-safe to read.
template <typename T>
class ResultList {
 public:
  /// An empty list.
  ResultList() = default;
  /// Internal: `items` whose views point into `owners`.
  ResultList(std::vector<T> items,
             std::vector<std::shared_ptr<const internal::SnapshotTables>> owners) noexcept
      : items_(std::move(items)), owners_(std::move(owners)) {}

  /// Number of entries.
  std::size_t size() const noexcept { return items_.size(); }
  /// True when there are no entries.
  bool empty() const noexcept { return items_.empty(); }
  /// Entry `i` (0 <= i < size()).
  const T& operator[](std::size_t i) const noexcept { return items_[i]; }
  /// First entry.
  typename std::vector<T>::const_iterator begin() const noexcept { return items_.begin(); }
  /// Past the last entry.
  typename std::vector<T>::const_iterator end() const noexcept { return items_.end(); }
  /// All entries (views valid while this list lives).
  const std::vector<T>& items() const noexcept { return items_; }

 private:
  std::vector<T> items_;
  std::vector<std::shared_ptr<const internal::SnapshotTables>> owners_;
};

/// Statistics sorted as `Snapshot.statistics()` sorts them.
using StatisticList = ResultList<Statistic>;
/// Differences sorted as `Snapshot.compare_to()` sorts them.
using StatisticDiffList = ResultList<StatisticDiff>;

// ---------------------------------------------------------------- snapshot

/// The traces of memory blocks at one moment, as `tracemalloc.Snapshot`,
/// held as compact C++ data: file names, frames and tracebacks are interned
/// once; a trace is (domain, size, traceback id).
///
/// Immutable: copying is cheap (the data is shared), and every const member
/// may be called from any thread without the GIL, concurrently.
class LEAKGUARD_EXPORT Snapshot {
 public:
  /// An empty snapshot (no traces, traceback limit 0).
  Snapshot();

  /// Takes a snapshot of the traces tracemalloc holds now, like
  /// `tracemalloc.take_snapshot()` (it reads them with
  /// `_tracemalloc._get_traces()`, so the cost of reading is Python's; the
  /// Python objects are dropped before returning).
  /// FailedPrecondition when tracemalloc is not tracing, or without the GIL.
  /// REQUIRES: the GIL is held.
  static absl::StatusOr<Snapshot> Take();

  /// Converts a Python `tracemalloc.Snapshot` (or any object with
  /// `traces._traces`, a sequence of `(domain, size, traceback, total_nframe)`
  /// tuples, and `traceback_limit`). InvalidArgument, naming the trace, when
  /// the object does not have that shape.
  /// REQUIRES: the GIL is held.
  static absl::StatusOr<Snapshot> FromPython(Handle snapshot);

  /// Loads a file written by `tracemalloc.Snapshot.dump()` (through Python's
  /// pickle module: load only files you trust). The file is read whole, then
  /// unpickled from memory, so a damaged frame length reads as truncated
  /// data (pickle itself still allocates a bytes object of the size its
  /// opcode declares before reading it). NotFound when the file is
  /// missing; InvalidArgument when it does not hold a snapshot.
  /// REQUIRES: the GIL is held.
  static absl::StatusOr<Snapshot> Load(const std::string& path);

  /// A new Python `tracemalloc.Snapshot` with the same traces (in the same
  /// order) and traceback limit.
  /// REQUIRES: the GIL is held.
  absl::StatusOr<Ref> ToPython() const;

  /// Writes the snapshot as `Snapshot.dump()` does (a pickle that Python's
  /// `tracemalloc.Snapshot.load()` and Load() read).
  /// REQUIRES: the GIL is held.
  absl::Status Dump(const std::string& path) const;

  /// The traceback limit when the snapshot was taken.
  int traceback_limit() const noexcept { return traceback_limit_; }
  /// Number of traces.
  std::size_t trace_count() const noexcept;
  /// Trace `i` (0 <= i < trace_count()), in Python's order. Its traceback
  /// is a view valid while this snapshot (or a copy of it) is alive.
  Trace trace(std::size_t i) const noexcept;
  /// Sum of the sizes of all traces.
  std::uint64_t total_size() const noexcept;
  /// Distinct file names interned (shared with snapshots filtered from this
  /// one).
  std::size_t filename_count() const noexcept;
  /// Distinct (filename, lineno) frames interned.
  std::size_t frame_count() const noexcept;
  /// Distinct tracebacks interned.
  std::size_t traceback_count() const noexcept;

  /// A snapshot with only the traces that pass `filters`, as
  /// `Snapshot.filter_traces()`: inclusive filters are ORed (a trace must
  /// match one of them, if there are any), exclusive filters are ANDed (a
  /// trace must pass all of them). An empty list keeps everything.
  /// InvalidArgument where Python raises (a Filter without all_frames on a
  /// trace with an empty traceback) or for a pattern that is not UTF-8.
  absl::StatusOr<Snapshot> FilterTraces(const std::vector<TraceFilter>& filters) const;

  /// Groups the traces, as `Snapshot.statistics(key_type, cumulative)`:
  /// sorted by (size, count, traceback), largest first. `cumulative` counts
  /// a trace under every frame of its traceback (a frame that occurs twice,
  /// as in recursion, counts twice, as in Python). InvalidArgument for
  /// cumulative with kTraceback, and for kFilename on an empty traceback
  /// (Python: IndexError).
  absl::StatusOr<StatisticList> Statistics(GroupBy group_by, bool cumulative = false) const;

  /// Differences from `older` to this snapshot, as
  /// `Snapshot.compare_to(older, key_type, cumulative)`: sorted by
  /// (|size_diff|, size, |count_diff|, count, traceback), largest first.
  /// Errors as Statistics().
  absl::StatusOr<StatisticDiffList> CompareTo(const Snapshot& older, GroupBy group_by,
                                              bool cumulative = false) const;

 private:
  Snapshot(std::shared_ptr<const internal::SnapshotTables> tables,
           std::shared_ptr<const std::vector<internal::SnapshotTrace>> traces,
           int traceback_limit) noexcept;
  friend struct SnapshotAccess;

  std::shared_ptr<const internal::SnapshotTables> tables_;
  std::shared_ptr<const std::vector<internal::SnapshotTrace>> traces_;
  int traceback_limit_ = 0;
};

}  // namespace tracemalloc

namespace internal {

/// `fnmatch.fnmatch(name, pattern)` of CPython 3.10+ on POSIX (no case
/// folding). Both are UTF-8 (surrogatepass). InvalidArgument for text that is
/// not UTF-8. Exposed for tests.
LEAKGUARD_EXPORT absl::StatusOr<bool> FnMatch(std::string_view name, std::string_view pattern);

}  // namespace internal

}  // namespace leakguard

#endif  // LEAKGUARD_TRACEMALLOC_H_
