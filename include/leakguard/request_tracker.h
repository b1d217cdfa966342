// leakguard/request_tracker.h
//
// RequestTracker: per-unit-of-work memory accounting for a long-running host
// (a request, a frame, a plugin call). Each unit's RSS delta is measured with
// the cheapest reading there is (ReadRss(): one pread), folded into
// constant-memory rolling statistics, and reported:
//   - every Nth unit (an info report with the statistics so far), and
//   - any unit whose RSS delta passes a threshold (a warning naming it).
//
//   auto tracker = RequestTracker::Create({.rss_threshold_bytes = 8 << 20});
//   for (auto& request : requests) {
//     auto unit = (*tracker)->Begin(request.path);
//     Serve(request);
//   }  // unit ends here: measured, recorded, reported if it grew too much
//   TrackerStats stats = (*tracker)->Stats();  // p50/p99, worst units
//
// Does not need the GIL and never touches Python (the sink may: a
// PythonLoggingSink takes the GIL itself). Thread-safe: units may begin and
// end on many threads at once. RSS is process-wide, so with concurrent units
// each delta also contains the others' growth; per-unit attribution is exact
// only when units run one at a time.

#ifndef LEAKGUARD_REQUEST_TRACKER_H_
#define LEAKGUARD_REQUEST_TRACKER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/sink.h"

namespace leakguard {

/// Options of a RequestTracker.
struct RequestTrackerOptions {
  /// Send an info report with the statistics every this many units; 0: never.
  int64_t report_every = 0;
  /// Send a warning for any unit whose RSS grew by at least this many bytes;
  /// 0: never.
  int64_t rss_threshold_bytes = 0;
  /// How many of the worst units (largest RSS delta) to remember, 0..1000.
  int worst_kept = 10;
  /// Where reports go (not owned; must outlive the tracker). Null: DefaultSink().
  Sink* sink = nullptr;
  /// Label of the tracker itself, shown in its reports.
  std::string name = "requests";
};

/// One measured unit.
struct UnitRecord {
  /// The label given to Begin() / Record().
  std::string label;
  /// RSS after minus RSS before, bytes.
  int64_t rss_delta = 0;
  /// Wall time of the unit.
  absl::Duration elapsed = absl::ZeroDuration();
};

/// Rolling statistics over every unit recorded since creation or Reset().
struct TrackerStats {
  /// Units recorded.
  int64_t count = 0;
  /// Sum of all RSS deltas, bytes (the net growth the units caused).
  int64_t total_rss_delta = 0;
  /// Median RSS delta, bytes (within 1/16 of the true value; exact below 16).
  int64_t p50_rss_delta = 0;
  /// 99th-percentile RSS delta, bytes (same precision).
  int64_t p99_rss_delta = 0;
  /// Largest single RSS delta, bytes (exact).
  int64_t max_rss_delta = 0;
  /// Units that passed the threshold.
  int64_t over_threshold = 0;
  /// The worst units, largest delta first (ties: earliest first).
  std::vector<UnitRecord> worst;
};

namespace internal {

/// Constant-memory histogram of signed 64-bit values: exact below 16 in
/// magnitude, 16 sub-buckets per power of two above (relative error at most
/// 1/16). Not thread-safe.
class LEAKGUARD_EXPORT LogHistogram {
 public:
  /// Buckets per sign.
  static constexpr int kBuckets = 16 + 60 * 16;

  /// Adds one value.
  void Add(int64_t value) noexcept;
  /// The value at quantile `q` in [0, 1] (the lower bound of its bucket),
  /// or 0 when empty.
  int64_t Quantile(double q) const noexcept;
  /// Values added.
  int64_t count() const noexcept { return count_; }
  /// Forgets everything.
  void Clear() noexcept;

 private:
  static int BucketOf(uint64_t magnitude) noexcept;
  static uint64_t LowerBound(int bucket) noexcept;

  std::array<int64_t, kBuckets> negative_{};
  std::array<int64_t, kBuckets> positive_{};
  int64_t zero_ = 0;
  int64_t count_ = 0;
};

}  // namespace internal

/// Measures units of work; see the file comment.
class LEAKGUARD_EXPORT RequestTracker {
 public:
  /// A unit in progress: measures from Begin() to Finish() or destruction.
  /// Move-only.
  class LEAKGUARD_EXPORT Unit {
   public:
    /// Ends the unit if Finish() was not called.
    ~Unit();
    /// Takes over `other`'s measurement; `other` ends nothing.
    Unit(Unit&& other) noexcept;
    Unit& operator=(Unit&&) = delete;
    Unit(const Unit&) = delete;
    Unit& operator=(const Unit&) = delete;

    /// Ends the unit now and returns its record (idempotent: later calls
    /// return the same record). If RSS could not be read the delta is 0.
    UnitRecord Finish();

   private:
    friend class RequestTracker;
    Unit(RequestTracker* tracker, std::string label);

    RequestTracker* tracker_;
    std::string label_;
    int64_t rss_before_ = 0;
    absl::Time start_;
    bool done_ = false;
    UnitRecord record_;
  };

  /// Creates a tracker. InvalidArgument for a negative report_every or
  /// threshold, or worst_kept outside 0..1000.
  static absl::StatusOr<std::unique_ptr<RequestTracker>> Create(RequestTrackerOptions options);

  RequestTracker(const RequestTracker&) = delete;
  RequestTracker& operator=(const RequestTracker&) = delete;

  /// Starts measuring a unit labelled `label`.
  Unit Begin(std::string label);

  /// Records a unit measured elsewhere (the host's own numbers), exactly as
  /// a finished Unit would: statistics, threshold warning, periodic report.
  void Record(UnitRecord record) ABSL_LOCKS_EXCLUDED(mu_);

  /// A snapshot of the statistics. Thread-safe.
  TrackerStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Forgets every unit recorded.
  void Reset() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit RequestTracker(RequestTrackerOptions options);
  TrackerStats StatsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RequestTrackerOptions options_;
  Sink* const sink_;
  mutable absl::Mutex mu_;
  internal::LogHistogram histogram_ ABSL_GUARDED_BY(mu_);
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t over_threshold_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Worst units, kept sorted: largest delta first, earliest first on ties.
  std::vector<std::pair<int64_t, UnitRecord>> worst_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leakguard

#endif  // LEAKGUARD_REQUEST_TRACKER_H_
