#include "leakguard/leak_detector.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/gil.h"
#include "probes/growth.h"
#include "python/gil_capability.h"

namespace leakguard {
namespace {

constexpr size_t kHistory = 64;

// Signal deliveries, counted by the handler (async-signal-safe: a lock-free
// atomic), per signal number; read by the detector threads.
std::atomic<int> g_signal_count[65];
struct sigaction g_previous[65];

void CountSignal(int signo) {
  if (signo > 0 && signo < 65) g_signal_count[signo].fetch_add(1, std::memory_order_relaxed);
}

// One lock, process-wide, for what races inside CPython when detectors start
// and stop from several threads with tracing on: tracemalloc being started
// or stopped (it swaps the allocators and frees its tables) while another
// thread creates or deletes its thread state (PyGILState_Ensure on a thread
// without one allocates through those allocators). Every detector thread
// holds it for the whole of each GIL section of a traced round (thread
// state created, tracemalloc read, started or stopped, thread state
// deleted), so no two such sections overlap. Taken only without the GIL,
// the GIL after it: Start() and Stop() release the GIL before anything
// else, so nothing waits for this lock while holding the GIL.
absl::Mutex& TracingSerialMutex() {
  static absl::Mutex* const mu = new absl::Mutex();  // Never destroyed.
  return *mu;
}

std::string Signed(int64_t v) {
  return v >= 0 ? absl::StrCat("+", FormatBytes(v)) : FormatBytes(v);
}

// The gc-tracked objects counted by full type name, and the total. The
// census's type references are dropped before this returns, under the GIL.
// REQUIRES: the GIL is held.
absl::Status CountTypes(std::unordered_map<std::string, int64_t>* counts,
                        int64_t* total) LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();  // No collection first.
  if (!census.ok()) return census.status();
  counts->clear();
  for (TypeCount& type : census->Counts(TypeNames::kFull)) {
    counts->emplace(std::move(type.name), type.count);
  }
  *total = census->total();
  return absl::OkStatus();
}

// The `top` types whose count grew most from `before` to `after`, largest
// growth first, ties by name. Pure C++.
std::vector<TypeCountDiff> GrownTypes(const std::unordered_map<std::string, int64_t>& before,
                                      const std::unordered_map<std::string, int64_t>& after,
                                      int top) {
  std::vector<TypeCountDiff> grown;
  for (const auto& [name, count] : after) {
    const auto was = before.find(name);
    const int64_t diff = count - (was != before.end() ? was->second : 0);
    if (diff > 0) grown.push_back(TypeCountDiff{name, count, diff});
  }
  std::sort(grown.begin(), grown.end(), [](const TypeCountDiff& a, const TypeCountDiff& b) {
    return a.count_diff != b.count_diff ? a.count_diff > b.count_diff : a.name < b.name;
  });
  if (grown.size() > static_cast<size_t>(top)) grown.resize(static_cast<size_t>(top));
  return grown;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LeakDetector>> LeakDetector::Create(LeakDetectorOptions options) {
  if (options.interval < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("interval must be at least 1ms, got ",
                                                   absl::FormatDuration(options.interval)));
  }
  if (options.threshold_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold_bytes must be > 0, got ", options.threshold_bytes));
  }
  if (options.fd_threshold < 0 || options.thread_threshold < 0) {
    return absl::InvalidArgumentError("fd_threshold and thread_threshold must be >= 0 (0: off)");
  }
  if (options.frames < 1 || options.frames > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames must be in 1..65535, got ", options.frames));
  }
  if (options.top < 0 || options.top > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("top must be in 0..1000, got ", options.top));
  }
  if (options.report_signal < 0 || options.report_signal > 64 || options.report_signal == SIGKILL ||
      options.report_signal == SIGSTOP) {
    return absl::InvalidArgumentError(
        absl::StrCat("report_signal must be 0 or a catchable signal, got ", options.report_signal));
  }
  if (options.trigger_poll < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("trigger_poll must be at least 1 ms");
  }
  if (options.min_report_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("min_report_interval must be >= 0");
  }
  return std::unique_ptr<LeakDetector>(new LeakDetector(std::move(options)));
}

LeakDetector::LeakDetector(LeakDetectorOptions options)
    : options_(std::move(options)),
      sink_(options_.sink != nullptr ? options_.sink : DefaultSink()) {}

LeakDetector::~LeakDetector() { Stop(); }

absl::Status LeakDetector::Start() {
  // Never wait on our locks while holding the GIL: a stopping detector
  // thread may need the GIL to finish its round.
  GilRelease no_gil;
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::OkStatus();
  }
  if (options_.sampler != nullptr && !options_.sampler->running()) {
    return absl::FailedPreconditionError(
        "LeakDetector::Start: options.sampler is not running (AllocationSampler::Start first)");
  }
  if (absl::Status registered = Interpreter::RegisterWatcher(this); !registered.ok()) {
    return registered;
  }
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = false;
    baseline_done_ = false;
    running_ = true;
    rounds_ = 0;
    reports_ = 0;
    suppressed_ = 0;
    history_.clear();
  }
  last_kinds_.clear();
  last_bytes_ = last_fds_ = last_threads_ = 0;
  last_report_time_ = absl::InfinitePast();
  detector_resident_ = 0;
  if (const int signo = options_.report_signal; signo != 0) {
    signals_seen_ = g_signal_count[signo].load();
    struct sigaction action = {};
    action.sa_handler = CountSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    signal_installed_ = sigaction(signo, &action, &g_previous[signo]) == 0;
  }
  thread_ = std::thread([this] { Loop(); });
  // Wait (without the GIL, released above) for the baseline.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](LeakDetector* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
        return d->baseline_done_ || d->stop_requested_;
      },
      this));
  return absl::OkStatus();
}

void LeakDetector::Stop() {
  GilRelease no_gil;  // The thread may be waiting for the GIL.
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (signal_installed_) {
    sigaction(options_.report_signal, &g_previous[options_.report_signal], nullptr);
    signal_installed_ = false;
  }
  {
    absl::MutexLock lock(&mu_);
    running_ = false;
    on_demand_done_ = on_demand_asked_;  // Nobody waits for a stopped one.
    on_demand_.clear();
  }
  Interpreter::UnregisterWatcher(this);
}

void LeakDetector::StopBeforeFinalize() noexcept { Stop(); }

bool LeakDetector::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int64_t LeakDetector::rounds() const {
  absl::MutexLock lock(&mu_);
  return rounds_;
}

int64_t LeakDetector::reports() const {
  absl::MutexLock lock(&mu_);
  return reports_;
}

int64_t LeakDetector::suppressed() const {
  absl::MutexLock lock(&mu_);
  return suppressed_;
}

std::vector<DetectorRound> LeakDetector::History() const {
  absl::MutexLock lock(&mu_);
  return history_;
}

absl::Status LeakDetector::ReportNow(Sink* sink) {
  GilRelease no_gil;  // The detector thread needs the GIL to make it.
  absl::MutexLock lock(&mu_);
  if (!running_ || stop_requested_) {
    return absl::FailedPreconditionError("ReportNow: the detector is not running");
  }
  on_demand_.push_back(sink != nullptr ? sink : sink_);
  const int64_t mine = ++on_demand_asked_;
  struct Waiter {
    const LeakDetector* d;
    int64_t mine;
    bool Done() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return d->on_demand_done_ >= mine; }
  };
  const Waiter waiter{this, mine};
  mu_.Await(absl::Condition(&waiter, &Waiter::Done));
  return absl::OkStatus();
}

bool LeakDetector::TriggerFired() {
  bool fired = false;
  if (const int signo = options_.report_signal; signo != 0) {
    const int count = g_signal_count[signo].load(std::memory_order_relaxed);
    if (count != signals_seen_) {
      signals_seen_ = count;
      fired = true;
    }
  }
  if (!options_.trigger_file.empty() && access(options_.trigger_file.c_str(), F_OK) == 0) {
    unlink(options_.trigger_file.c_str());
    fired = true;
  }
  return fired;
}

void LeakDetector::Loop() {
  bool baseline = true;
  const bool triggers = options_.report_signal != 0 || !options_.trigger_file.empty();
  while (true) {
    const bool alive = Round(baseline);
    {
      absl::MutexLock lock(&mu_);
      if (baseline) baseline_done_ = true;
      baseline = false;
    }
    if (!alive) break;
    const absl::Time next_round = absl::Now() + options_.interval;
    bool stop = false;
    while (true) {
      std::vector<Sink*> sinks;
      int64_t asked = 0;
      {
        absl::MutexLock lock(&mu_);
        // Sleeps without the GIL; wakes early for Stop() and ReportNow().
        const absl::Duration left = next_round - absl::Now();
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](LeakDetector* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
                                   return d->stop_requested_ || !d->on_demand_.empty();
                                 },
                                 this),
                             triggers ? std::min(left, options_.trigger_poll) : left);
        if (stop_requested_) {
          stop = true;
          break;
        }
        sinks.swap(on_demand_);
        asked = on_demand_asked_;
      }
      if (TriggerFired()) sinks.push_back(sink_);
      if (!sinks.empty()) OnDemand(sinks);
      if (asked > 0) {
        absl::MutexLock lock(&mu_);
        on_demand_done_ = std::max(on_demand_done_, asked);
      }
      if (absl::Now() >= next_round) break;
    }
    if (stop) break;
  }
  {
    absl::MutexLock lock(&mu_);
    on_demand_done_ = on_demand_asked_;  // Nobody waits for an ended thread.
    on_demand_.clear();
  }
  // Give back what the thread holds, under the GIL, before it ends.
  base_snapshot_.reset();
  base_types_.reset();
  if (tracing_.has_value()) {
    absl::MutexLock serial(&TracingSerialMutex());
    GilAcquire gil;
    if (gil.ok()) tracing_->End().IgnoreError();
    tracing_.reset();
  }
}

void LeakDetector::OnDemand(const std::vector<Sink*>& sinks) {
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  std::optional<int64_t> traced;
  std::vector<LineGrowth> lines;
  std::string error;
  std::unordered_map<std::string, int64_t> types;
  int64_t tracked = 0;
  absl::Duration census_time;
  std::string census_error;
  AllocationSampler* const sampler = options_.sampler;
  const bool traced_now = options_.traced && sampler == nullptr && base_snapshot_;
  const bool census = base_types_.has_value() && options_.top > 0;
  if (sampler != nullptr && base_snapshot_) {
    // The sampler's readings need no GIL.
    traced = sampler->Stats().live_bytes_estimate;
    if (options_.top > 0) {
      absl::StatusOr<std::vector<LineGrowth>> grown = internal::GrownLines(
          *base_snapshot_, sampler->TakeSnapshot(), tracemalloc::GroupBy::kLineno, options_.top);
      if (grown.ok()) lines = *std::move(grown);
    }
  }
  if (traced_now || census) {
    // Every GIL section of the detector thread runs under this lock, traced
    // or not (see TracingSerialMutex).
    absl::MutexLock serial(&TracingSerialMutex());
    GilAcquire gil;
    if (!gil.ok()) return;
    internal::AssumeGilHeld();
    if (census) {
      // Before the snapshot (the baseline's census comes after its
      // snapshot): neither census sees the snapshot's Python temporaries.
      const absl::Time start = absl::Now();
      absl::Status counted = CountTypes(&types, &tracked);
      census_time = absl::Now() - start;
      if (!counted.ok()) census_error = std::string(counted.message());
    }
    if (traced_now) {
      absl::StatusOr<tracemalloc::TracedMemory> memory = tracemalloc::GetTracedMemory();
      absl::StatusOr<tracemalloc::Snapshot> snap = tracemalloc::Snapshot::Take();
      if (memory.ok()) traced = static_cast<int64_t>(memory->current);
      if (snap.ok() && options_.top > 0) {
        absl::StatusOr<std::vector<LineGrowth>> grown = internal::GrownLines(
            *base_snapshot_, *snap, tracemalloc::GroupBy::kLineno, options_.top);
        if (grown.ok()) lines = *std::move(grown);
      } else if (!snap.ok()) {
        error = std::string(snap.status().message());
      }
    }
  }
  Report report;
  report.source = "leak_detector";
  report.label = "on_demand";
  report.severity = Severity::kInfo;
  report.time = absl::Now();
  const ProcessDelta delta = sample.ok() ? *sample - base_process_ : ProcessDelta{};
  report.elapsed = delta.elapsed;
  const int64_t py = traced && base_traced_ ? *traced - *base_traced_ : 0;
  report.summary =
      absl::StrCat("on demand: growth since the detector started: RSS ", Signed(delta.rss_bytes));
  if (traced && base_traced_) absl::StrAppend(&report.summary, ", Python heap ", Signed(py));
  absl::StrAppend(&report.summary, ", descriptors ", delta.open_fds >= 0 ? "+" : "", delta.open_fds,
                  ", threads ", delta.threads >= 0 ? "+" : "", delta.threads);
  report.metrics = {{"rss_bytes", delta.rss_bytes},
                    {"traced_bytes", py},
                    {"fds", delta.open_fds},
                    {"threads", delta.threads}};
  report.top_lines = std::move(lines);
  if (census && census_error.empty()) {
    report.type_growth = GrownTypes(*base_types_, types, options_.top);
  }
  {
    absl::MutexLock lock(&mu_);
    report.metrics.emplace_back("rounds", rounds_);
    report.metrics.emplace_back("reports", reports_);
    const size_t from = history_.size() > 5 ? history_.size() - 5 : 0;
    for (size_t i = from; i < history_.size(); ++i) {
      const DetectorRound& r = history_[i];
      report.notes.push_back(absl::StrCat(
          "round ", r.round, ": RSS ", Signed(r.process.rss_bytes), ", Python heap ",
          r.traced_bytes ? Signed(*r.traced_bytes) : std::string("(not traced)"),
          r.kinds.empty() ? std::string() : absl::StrCat(", ", absl::StrJoin(r.kinds, ",")),
          r.reported ? ", reported" : ""));
    }
  }
  if (census && census_error.empty()) {
    std::string note = absl::StrCat("type growth: ", report.type_growth.size(),
                                    report.type_growth.size() == 1 ? " type" : " types",
                                    " grew in number since the baseline");
    if (!report.type_growth.empty()) {
      const TypeCountDiff& most = report.type_growth.front();
      absl::StrAppend(&note, ", most ", most.name, " +", most.count_diff, " objects");
    }
    absl::StrAppend(&note, " (census of ", tracked,
                    " gc-tracked objects: ", absl::FormatDuration(census_time), " with the GIL)");
    report.notes.push_back(std::move(note));
  } else if (census) {
    report.notes.push_back(absl::StrCat("type census: ", census_error));
  } else if (options_.type_census && options_.top > 0) {
    report.notes.push_back(absl::StrCat(
        "type census: none at the baseline",
        base_census_error_.empty() ? std::string() : absl::StrCat(" (", base_census_error_, ")")));
  }
  if (!error.empty()) report.notes.push_back(absl::StrCat("tracemalloc: ", error));
  for (Sink* sink : sinks) sink->Write(report);
}

namespace {

// The sampler's native sites (its per-site estimates that are native).
std::vector<SiteEstimate> NativeSites(const AllocationSampler& sampler) {
  std::vector<SiteEstimate> sites = sampler.LiveByLine();
  sites.erase(
      std::remove_if(sites.begin(), sites.end(), [](const SiteEstimate& e) { return !e.native; }),
      sites.end());
  return sites;
}

// The `top` native sites that grew most from `base` to `now`, by name.
std::vector<std::pair<std::string, int64_t>> GrownNativeSites(const std::vector<SiteEstimate>& base,
                                                              const std::vector<SiteEstimate>& now,
                                                              int top) {
  absl::flat_hash_map<std::string, double> grown;
  for (const SiteEstimate& e : now) grown[SiteName(e)] += e.bytes;
  for (const SiteEstimate& e : base) grown[SiteName(e)] -= e.bytes;
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [name, bytes] : grown) {
    if (bytes > 0) out.emplace_back(name, std::llround(bytes));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (out.size() > static_cast<std::size_t>(std::max(top, 0))) out.resize(std::max(top, 0));
  return out;
}

}  // namespace

bool LeakDetector::Round(bool baseline) {
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  std::optional<int64_t> traced;
  std::optional<int64_t> tool;  // tracemalloc's own memory
  std::optional<tracemalloc::Snapshot> snapshot;
  std::optional<int64_t> native;  // the sampler's native estimate
  std::string error;
  // The baseline's type census, for on-demand reports only: rounds never
  // take one.
  const bool census = baseline && options_.type_census && options_.top > 0;
  std::optional<std::unordered_map<std::string, int64_t>> types;
  if (baseline) base_census_error_.clear();
  AllocationSampler* const sampler = options_.sampler;
  const bool use_tracemalloc = options_.traced && sampler == nullptr;
  if (sampler != nullptr) {
    // The sampler's readings need no GIL: its estimate, its snapshot, and
    // its own tables as the tool's memory.
    const SamplerStats stats = sampler->Stats();
    traced = stats.live_bytes_estimate;
    tool = stats.table_bytes;
    if (sampler->options().native) {
      native = stats.native_bytes_estimate;
      *traced -= *native;
    }
    snapshot.emplace(sampler->TakeSnapshot());
  }
  if (use_tracemalloc || census) {
    // Declared before the GIL, so the thread state is gone before it is
    // unlocked (see TracingSerialMutex).
    absl::MutexLock serial(&TracingSerialMutex());
    GilAcquire gil;  // Held only for the readings.
    if (!gil.ok()) return false;
    internal::AssumeGilHeld();
    absl::Status read = [&]() -> absl::Status {
      if (!use_tracemalloc) return absl::OkStatus();
      if (baseline && !tracing_.has_value()) {
        absl::StatusOr<bool> on = tracemalloc::IsTracing();
        if (!on.ok()) return on.status();
        if (!*on) {
          absl::StatusOr<tracemalloc::TracingScope> scope =
              tracemalloc::TracingScope::Start(options_.frames);
          if (!scope.ok()) return scope.status();
          tracing_.emplace(*std::move(scope));
        }
      }
      absl::StatusOr<tracemalloc::TracedMemory> memory = tracemalloc::GetTracedMemory();
      if (!memory.ok()) return memory.status();
      absl::StatusOr<tracemalloc::Snapshot> snap = tracemalloc::Snapshot::Take();
      if (!snap.ok()) return snap.status();
      absl::StatusOr<std::size_t> own = tracemalloc::GetTracemallocMemory();
      if (!own.ok()) return own.status();
      traced = static_cast<int64_t>(memory->current);
      tool = static_cast<int64_t>(*own);
      snapshot.emplace(*std::move(snap));
      return absl::OkStatus();
    }();
    if (!read.ok()) error = std::string(read.message());
    if (census) {
      // After tracemalloc is started and read: what that imports and its
      // temporaries (dropped by now) are not the program's growth.
      types.emplace();
      int64_t tracked = 0;
      if (absl::Status counted = CountTypes(&*types, &tracked); !counted.ok()) {
        base_census_error_ = std::string(counted.message());
        types.reset();
      }
    }
  }
  if (!sample.ok()) return true;  // Try again next round.
  if (baseline) {
    // The process as it is after the detector's own set-up (tracemalloc
    // started, the base snapshot held): that is not growth of the program.
    // Later rounds sample first, before their snapshot, which then only
    // tilts a round towards python_heap, never towards native.
    absl::StatusOr<ProcessSample> after_setup = SampleProcess();
    base_process_ = after_setup.ok() ? *after_setup : *sample;
    base_traced_ = traced;
    base_native_ = native;
    base_native_sites_.clear();
    if (native) base_native_sites_ = NativeSites(*sampler);
    base_tracemalloc_ = tool;
    base_snapshot_ = std::move(snapshot);
    base_types_ = std::move(types);
    return true;
  }

  // Everything below is C++ data: no GIL.
  DetectorRound round;
  round.process = *sample - base_process_;
  if (traced && base_traced_) round.traced_bytes = *traced - *base_traced_;
  if (tool && base_tracemalloc_) round.tracemalloc_bytes = *tool - *base_tracemalloc_;
  if (native && base_native_) round.native_sampled_bytes = *native - *base_native_;
  if (options_.traced || sampler != nullptr) round.detector_bytes = detector_resident_;
  const int64_t threshold = options_.threshold_bytes;
  const int64_t py = round.traced_bytes.value_or(0);
  const int64_t own = std::max<int64_t>(round.tracemalloc_bytes.value_or(0), 0);
  const int64_t rss = round.process.rss_bytes;
  if (round.traced_bytes && py >= threshold) round.kinds.push_back("python_heap");
  const int64_t native_sampled = round.native_sampled_bytes.value_or(0);
  if (rss - std::max<int64_t>(py, 0) - own - detector_resident_ >= threshold ||
      native_sampled >= threshold) {
    round.kinds.push_back("native");
  }
  if (options_.fd_threshold > 0 && round.process.open_fds >= options_.fd_threshold) {
    round.kinds.push_back("descriptors");
  }
  if (options_.thread_threshold > 0 && round.process.threads >= options_.thread_threshold) {
    round.kinds.push_back("threads");
  }

  bool report_now = false;
  const absl::Time now = absl::Now();
  const int64_t bytes = std::max(py, rss);
  if (!round.kinds.empty()) {
    report_now = round.kinds != last_kinds_ || bytes >= last_bytes_ + threshold ||
                 (options_.fd_threshold > 0 &&
                  round.process.open_fds >= last_fds_ + options_.fd_threshold) ||
                 (options_.thread_threshold > 0 &&
                  round.process.threads >= last_threads_ + options_.thread_threshold) ||
                 now - last_report_time_ >= options_.min_report_interval;
  }
  Report report;
  if (report_now) {
    round.reported = true;
    last_kinds_ = round.kinds;
    last_bytes_ = bytes;
    last_fds_ = round.process.open_fds;
    last_threads_ = round.process.threads;
    last_report_time_ = now;
    report.source = "leak_detector";
    report.severity = Severity::kWarning;
    report.time = now;
    report.elapsed = round.process.elapsed;
    report.label = absl::StrJoin(round.kinds, ",");
    report.summary = absl::StrCat("growth since the detector started: RSS ", Signed(rss));
    if (round.traced_bytes) absl::StrAppend(&report.summary, ", Python heap ", Signed(py));
    absl::StrAppend(&report.summary, ", descriptors ", round.process.open_fds >= 0 ? "+" : "",
                    round.process.open_fds, ", threads ", round.process.threads >= 0 ? "+" : "",
                    round.process.threads);
    report.metrics = {{"rss_bytes", rss},
                      {"traced_bytes", py},
                      {"fds", round.process.open_fds},
                      {"threads", round.process.threads}};
    for (const std::string& kind : round.kinds) {
      if (kind == "python_heap") {
        report.notes.push_back(
            absl::StrCat("python_heap: the Python heap grew ", Signed(py),
                         sampler != nullptr
                             ? absl::StrCat(" (estimated by the sampler, R = ",
                                            FormatBytes(sampler->options().sampling_interval), ")")
                             : std::string(" (tracemalloc)"),
                         "; the lines are below"));
      } else if (kind == "native") {
        report.notes.push_back(absl::StrCat(
            "native: RSS grew ", Signed(rss), " while the Python heap grew ",
            round.traced_bytes ? Signed(py) : std::string("(not traced)"),
            round.tracemalloc_bytes ? absl::StrCat(sampler != nullptr ? ", the sampler's tables "
                                                                      : ", tracemalloc's tables ",
                                                   Signed(own))
                                    : std::string(),
            round.detector_bytes
                ? absl::StrCat(" and the detector's own rounds left ", Signed(detector_resident_))
                : std::string(),
            ": memory outside Python's allocator (C extensions, ctypes, native libraries)"));
        if (round.native_sampled_bytes) {
          std::string sites;
          for (const auto& [name, grown] :
               GrownNativeSites(base_native_sites_, NativeSites(*sampler), options_.top)) {
            absl::StrAppend(&sites, sites.empty() ? "" : "; ", name, " ", Signed(grown));
          }
          report.notes.push_back(absl::StrCat(
              "native: the sampler's estimate of native allocations grew ", Signed(native_sampled),
              " (R = ", FormatBytes(sampler->options().sampling_interval), ")",
              sites.empty() ? std::string() : absl::StrCat(", by site: ", sites)));
        }
      } else if (kind == "descriptors") {
        report.notes.push_back(
            absl::StrCat("descriptors: ", round.process.open_fds, " more open file descriptors"));
      } else if (kind == "threads") {
        report.notes.push_back(absl::StrCat("threads: ", round.process.threads, " more threads"));
      }
    }
    if (base_snapshot_ && snapshot && options_.top > 0) {
      absl::StatusOr<std::vector<LineGrowth>> lines = internal::GrownLines(
          *base_snapshot_, *snapshot, tracemalloc::GroupBy::kLineno, options_.top);
      if (lines.ok()) report.top_lines = *std::move(lines);
    }
  }
  if (options_.traced || sampler != nullptr) {
    // What this round's readings left resident (the list _get_traces()
    // builds, the snapshot: freed, but pages the allocators keep) is the
    // detector's cost, not the program's: measured from the sample this
    // round started with to now, with the snapshot gone.
    snapshot.reset();
    absl::StatusOr<ProcessSample> after_round = SampleProcess();
    if (after_round.ok()) {
      detector_resident_ += std::max<int64_t>(after_round->rss_bytes - sample->rss_bytes, 0);
    }
  }
  if (!error.empty()) report.notes.push_back(absl::StrCat("tracemalloc: ", error));
  {
    absl::MutexLock lock(&mu_);
    round.round = ++rounds_;
    if (round.reported) {
      ++reports_;
    } else if (!round.kinds.empty()) {
      ++suppressed_;
    }
    history_.push_back(round);
    if (history_.size() > kHistory) history_.erase(history_.begin());
  }
  if (report_now) sink_->Write(report);  // After the lock is dropped.
  return true;
}

}  // namespace leakguard
