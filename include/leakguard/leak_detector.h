// leakguard/leak_detector.h
//
// LeakDetector: the background monitor a long-running host leaves on in
// production. A thread wakes every interval, reads the process and (when
// tracing) takes a tracemalloc snapshot, or reads a running AllocationSampler
// (options.sampler: the production choice, see sampler.h), compares with the
// baseline taken at Start(), and reports when growth passes a threshold,
// naming the lines that grew and what kind of growth it is:
//   python_heap  traced memory grew (objects Python allocated)
//   native       RSS grew while traced memory stayed flat (C extensions,
//                ctypes, a native library). Left out: the detector's own
//                set-up (the baseline is taken after it), the growth of
//                tracemalloc's trace tables, and what the detector's own
//                rounds left resident (each round's snapshot is freed, but
//                on a big heap the allocators keep its pages: RSS measured
//                around each round's readings, summed)
//   descriptors  open file descriptors grew
//   threads      the thread count grew
//
//   auto detector = LeakDetector::Create({.interval = absl::Seconds(30),
//                                         .threshold_bytes = 50 << 20});
//   // Start() and Stop(): any thread; idempotent. The Interpreter also
//   // stops the detector before it finalizes.
//   if (absl::Status s = (*detector)->Start(); !s.ok()) return s;
//   RunHost();  // the host runs
//   (*detector)->Stop();
//
// Costs: nothing between wake-ups (the thread sleeps on a condition variable
// without the GIL; no allocator hooks). Each round holds the GIL only to
// read tracemalloc; comparing snapshots is pure C++ and runs without it.
// The type census behind an on-demand report's type growth runs at the
// baseline and on demand only, never in rounds (see ReportNow).
// Warnings are rate-limited: after a report, the next comes only when the
// growth has risen by another threshold, or after min_report_interval.
// Thread-safe: Start() and Stop() may be called from any thread, on one
// detector or on several at once, with tracing on. The traced part of every
// round (tracemalloc started, read or stopped, and the detector thread's
// thread state made and deleted around it) runs under one process-wide lock,
// so detectors never start or stop tracemalloc while another detector thread
// is creating its thread state, a race inside CPython itself. (Threads the
// host gives a thread state itself are outside that lock: start the
// detector before such threads, or not while they are being created.)

#ifndef LEAKGUARD_LEAK_DETECTOR_H_
#define LEAKGUARD_LEAK_DETECTOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/process.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/report.h"
#include "leakguard/sampler.h"
#include "leakguard/sink.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {

/// Options of a LeakDetector.
struct LeakDetectorOptions {
  /// Time between rounds; at least 1 ms (sub-second intervals work).
  absl::Duration interval = absl::Seconds(60);
  /// Report when RSS or traced memory grew by at least this many bytes over
  /// the baseline; must be > 0.
  int64_t threshold_bytes = 64 << 20;
  /// Report when descriptors grew by at least this many (0: never).
  int64_t fd_threshold = 16;
  /// Report when threads grew by at least this many (0: never).
  int64_t thread_threshold = 8;
  /// Use tracemalloc: traced growth and the lines that grew. The detector
  /// starts it (with `frames`) if it is off, and stops it again at Stop().
  bool traced = true;
  /// Frames per allocation when the detector starts tracemalloc, 1..65535.
  int frames = 1;
  /// A running AllocationSampler to read instead of tracemalloc (not owned;
  /// must outlive the detector and run while it does). Then the Python-heap
  /// evidence is the sampler's: traced bytes are its estimate, the lines
  /// come from its snapshots, its own tables count as the tool's memory, and
  /// tracemalloc is never started (`traced` and `frames` are ignored).
  /// Rounds take no GIL (on-demand reports still do, for the type census).
  /// A sampler that also samples native allocations (SamplerOptions::native)
  /// adds native evidence: "native" is reported when its native estimate
  /// grew by `threshold_bytes` (as well as by the RSS rule), with the native
  /// sites that grew most ("app.py:42 -> libfoo.so fn +3.0 MiB") in the
  /// notes. Not running at Start(): FailedPrecondition.
  AllocationSampler* sampler = nullptr;
  /// Lines in a report, 0..1000; also the types an on-demand report lists
  /// under type growth (0: neither, and no type census is taken).
  int top = 10;
  /// Count the gc-tracked objects by type at the baseline and in every
  /// on-demand report (ReportNow, the triggers), which then lists the types
  /// that grew in number. Off: no census at all. See ReportNow for the cost.
  bool type_census = true;
  /// A report is repeated at most this often unless growth rose by another
  /// threshold since the last one.
  absl::Duration min_report_interval = absl::Minutes(10);
  /// Where reports go (not owned; must outlive the detector). Null:
  /// DefaultSink().
  Sink* sink = nullptr;
  /// Opt-in trigger: on this signal (e.g. SIGUSR2) the detector writes an
  /// on-demand report (see ReportNow) to its sink. The handler only sets a
  /// flag; the detector thread does the work with the GIL, within
  /// `trigger_poll`. Installed by Start(), the previous handler restored by
  /// Stop(). 0: none. SIGKILL, SIGSTOP or out of range: InvalidArgument.
  int report_signal = 0;
  /// Opt-in trigger: when this file exists, the detector writes an
  /// on-demand report to its sink and deletes the file. Empty: none.
  std::string trigger_file;
  /// How often the detector thread checks the triggers; 1 ms or more.
  absl::Duration trigger_poll = absl::Milliseconds(250);
};

/// What one round saw, relative to the baseline.
struct DetectorRound {
  /// Round number, 1-based.
  int64_t round = 0;
  /// RSS, descriptor and thread growth since the baseline.
  ProcessDelta process;
  /// Traced growth since the baseline (when tracing).
  std::optional<int64_t> traced_bytes;
  /// Growth of the sampler's estimate of native allocations since the
  /// baseline (a sampler with SamplerOptions::native); not in traced_bytes.
  std::optional<int64_t> native_sampled_bytes;
  /// Growth of tracemalloc's own memory (its trace tables, which grow with
  /// the traced heap) since the baseline, when tracing: the detector's cost,
  /// left out of "native".
  std::optional<int64_t> tracemalloc_bytes;
  /// RSS the detector's own rounds left resident so far (the RSS change
  /// across each round's readings, summed), when tracing: left out of
  /// "native". Native growth the program made while a round was reading
  /// lands here too: native growth is never overstated, and may be
  /// understated by that much (a leak that keeps growing is still seen).
  std::optional<int64_t> detector_bytes;
  /// The kinds of growth that passed their thresholds: "python_heap",
  /// "native", "descriptors", "threads".
  std::vector<std::string> kinds;
  /// Whether this round sent a report (false when rate-limited or quiet).
  bool reported = false;
};

/// The detector; see the file comment.
class LEAKGUARD_EXPORT LeakDetector : public Watcher {
 public:
  /// Validates the options. InvalidArgument for an interval under 1 ms, a
  /// threshold <= 0, negative fd/thread thresholds, frames or top out of
  /// range.
  static absl::StatusOr<std::unique_ptr<LeakDetector>> Create(LeakDetectorOptions options);

  /// Stops the thread if it runs.
  ~LeakDetector() override;
  LeakDetector(const LeakDetector&) = delete;
  LeakDetector& operator=(const LeakDetector&) = delete;

  /// Starts the thread (no-op if running), registers with the running
  /// Interpreter, and returns once the thread has read the baseline (so
  /// growth is measured from the moment Start() returns).
  /// FailedPrecondition when no leakguard::Interpreter runs. Any thread,
  /// with or without the GIL (it is released while waiting for a
  /// concurrent Stop()).
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  /// Stops and joins the thread (no-op if not running), restores tracemalloc
  /// if the detector started it, and unregisters. Any thread; releases the
  /// GIL while joining if the caller holds it.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  /// True while the thread runs.
  bool running() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Rounds completed since the last Start().
  int64_t rounds() const ABSL_LOCKS_EXCLUDED(mu_);

  /// The most recent rounds (up to 64), oldest first.
  std::vector<DetectorRound> History() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Reports sent since the last Start().
  int64_t reports() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Reports held back by the rate limit since the last Start().
  int64_t suppressed() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Writes the current evidence to `sink` (null: the detector's sink) now,
  /// whatever the thresholds: growth since the baseline (RSS, Python heap,
  /// descriptors, threads), the lines that grew most since the baseline,
  /// the types whose gc-tracked objects grew most in number since the
  /// baseline (Report::type_growth: at most `top`, full type names, only
  /// types that grew; unreachable cycles not yet collected count, as no
  /// collection runs first), and the recent rounds. The report has source
  /// "leak_detector" and label "on_demand". The detector thread makes it
  /// (with the GIL); this call waits for it, releasing the GIL if the
  /// caller holds it.
  /// Cost of the type growth (with `type_census`, the default): a type
  /// census (TakeTypeCensus, which walks the collector's lists in place)
  /// with the GIL held, once at the baseline (inside Start()) and once per
  /// on-demand report, never in rounds: about 19 ms per million tracked
  /// objects (typestats_1m in docs/benchmarks.md: Release, Python 3.11, 2
  /// cores; a free-threaded build stops the world for it). Between the two
  /// the detector keeps only a name -> count table.
  /// FailedPrecondition when the detector is not running.
  absl::Status ReportNow(Sink* sink = nullptr) ABSL_LOCKS_EXCLUDED(mu_);

  /// Watcher: Stop().
  void StopBeforeFinalize() noexcept override;

 private:
  explicit LeakDetector(LeakDetectorOptions options);
  void Loop();
  // Writes the on-demand report to each of `sinks` (detector thread).
  void OnDemand(const std::vector<Sink*>& sinks);
  // Whether a trigger (signal, file) fired since the last check.
  bool TriggerFired();
  // One round; returns false when the interpreter is gone.
  bool Round(bool baseline);

  const LeakDetectorOptions options_;
  Sink* const sink_;

  // Serializes Start() and Stop() against each other.
  absl::Mutex lifecycle_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool baseline_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reports_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<DetectorRound> history_ ABSL_GUARDED_BY(mu_);
  // ReportNow() requests, and how many were served.
  std::vector<Sink*> on_demand_ ABSL_GUARDED_BY(mu_);
  int64_t on_demand_asked_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t on_demand_done_ ABSL_GUARDED_BY(mu_) = 0;
  // Signal deliveries already answered (detector thread).
  int signals_seen_ = 0;
  bool signal_installed_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(lifecycle_mu_);

  // Owned by the detector thread while it runs (no lock needed).
  ProcessSample base_process_;
  std::optional<int64_t> base_traced_;
  std::optional<int64_t> base_native_;
  std::vector<SiteEstimate> base_native_sites_;
  std::optional<int64_t> base_tracemalloc_;
  int64_t detector_resident_ = 0;
  std::optional<tracemalloc::Snapshot> base_snapshot_;
  // The baseline's type census (full name -> tracked objects), when taken,
  // or why it failed.
  std::optional<std::unordered_map<std::string, int64_t>> base_types_;
  std::string base_census_error_;
  std::optional<tracemalloc::TracingScope> tracing_;
  // What the last report said, for the rate limit.
  std::vector<std::string> last_kinds_;
  int64_t last_bytes_ = 0;
  int64_t last_fds_ = 0;
  int64_t last_threads_ = 0;
  absl::Time last_report_time_ = absl::InfinitePast();
};

}  // namespace leakguard

#endif  // LEAKGUARD_LEAK_DETECTOR_H_
