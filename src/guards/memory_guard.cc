#include "leakguard/memory_guard.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "probes/growth.h"
#include "python/gil_capability.h"

namespace leakguard {
namespace {

// Runs `body` with any pending Python exception set aside, and puts it back
// after: the guard's own Python calls must neither see nor clear an
// exception that is unwinding through the guarded code.
template <typename Body>
auto WithPendingExceptionKept(Body&& body) {
  Ref pending = Steal(compat::FetchException());
  auto result = body();
  if (pending) {
    PyErr_Clear();
    compat::RestoreException(pending.Release());
  }
  return result;
}

}  // namespace

Report GuardReport::ToReport() const {
  Report report;
  report.source = "memory_guard";
  report.label = label;
  report.severity = over_threshold ? Severity::kWarning : Severity::kInfo;
  report.time = absl::Now();
  report.elapsed = elapsed;
  report.summary =
      absl::StrCat("RSS ", process.rss_bytes >= 0 ? "+" : "", FormatBytes(process.rss_bytes));
  if (traced_bytes.has_value()) {
    absl::StrAppend(
        &report.summary,
        mode == GuardMode::kSampled ? ", Python heap (sampled estimate) " : ", Python heap ",
        *traced_bytes >= 0 ? "+" : "", FormatBytes(*traced_bytes));
  }
  if (over_threshold) absl::StrAppend(&report.summary, " (over the threshold)");
  report.metrics.emplace_back("rss_bytes", process.rss_bytes);
  if (traced_bytes) report.metrics.emplace_back("traced_bytes", *traced_bytes);
  if (blocks) report.metrics.emplace_back("blocks", *blocks);
  report.metrics.emplace_back("fds", process.open_fds);
  report.metrics.emplace_back("threads", process.threads);
  report.metrics.emplace_back("gc_collected", gc_collected);
  report.top_lines = top_lines;
  return report;
}

absl::StatusOr<MemoryGuard> MemoryGuard::Enter(MemoryGuardOptions options) {
  if (options.warn_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("warn_bytes must be >= 0 (0: never warn), got ", options.warn_bytes));
  }
  if (options.top < 0 || options.top > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("top must be in 0..1000, got ", options.top));
  }
  if (options.frames < 1 || options.frames > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames must be in 1..65535, got ", options.frames));
  }
  if (options.group_by == tracemalloc::GroupBy::kTraceback) {
    return absl::InvalidArgumentError(
        "a MemoryGuard groups lines by kLineno or kFilename, not kTraceback");
  }
  const bool sampled = options.mode == GuardMode::kSampled;
  if (sampled && options.sampler == nullptr) {
    return absl::InvalidArgumentError("GuardMode::kSampled needs options.sampler");
  }
  if (sampled && !options.sampler->running()) {
    return absl::FailedPreconditionError(
        "GuardMode::kSampled: the sampler is not running (AllocationSampler::Start)");
  }
  // Traced or sampled: Python-heap readings.
  const bool traced = options.mode == GuardMode::kTraced || sampled;
  if (traced || options.collect_before || options.collect_after) {
    LEAKGUARD_RETURN_IF_NO_GIL();
  }

  MemoryGuard guard;
  guard.options_ = std::move(options);
  const MemoryGuardOptions& o = guard.options_;
  absl::Status entered = absl::OkStatus();
  if (traced || o.collect_before) {
    entered = WithPendingExceptionKept([&]() -> absl::Status {
      internal::AssumeGilHeld();  // Checked above (the same condition).
      if (o.collect_before) {
        absl::StatusOr<int64_t> freed = internal::CollectGarbage();
        if (!freed.ok()) return freed.status();
        guard.gc_before_ = *freed;
      }
      if (!traced) return absl::OkStatus();
      if (sampled) {
        if (o.top > 0) guard.snapshot_.emplace(o.sampler->TakeSnapshot());
        guard.traced_before_ = o.sampler->Stats().live_bytes_estimate;
        absl::StatusOr<int64_t> blocks = internal::AllocatedBlocks();
        if (!blocks.ok()) return blocks.status();
        guard.blocks_before_ = *blocks;
        return absl::OkStatus();
      }
      absl::StatusOr<bool> tracing = tracemalloc::IsTracing();
      if (!tracing.ok()) return tracing.status();
      if (!*tracing) {
        absl::StatusOr<tracemalloc::TracingScope> scope =
            tracemalloc::TracingScope::Start(o.frames);
        if (!scope.ok()) return scope.status();
        guard.tracing_.emplace(*std::move(scope));
      }
      if (o.top > 0) {  // No lines wanted: no snapshots, the cheapest traced guard.
        absl::StatusOr<tracemalloc::Snapshot> snapshot = tracemalloc::Snapshot::Take();
        if (!snapshot.ok()) return snapshot.status();
        guard.snapshot_.emplace(*std::move(snapshot));
      }
      absl::StatusOr<tracemalloc::TracedMemory> memory = tracemalloc::GetTracedMemory();
      if (!memory.ok()) return memory.status();
      guard.traced_before_ = static_cast<int64_t>(memory->current);
      absl::StatusOr<int64_t> blocks = internal::AllocatedBlocks();
      if (!blocks.ok()) return blocks.status();
      guard.blocks_before_ = *blocks;
      return absl::OkStatus();
    });
  }
  if (!entered.ok()) return entered;  // guard's TracingScope restores state.
  absl::StatusOr<ProcessSample> before = SampleProcess();
  if (!before.ok()) return before.status();
  guard.before_ = *before;
  guard.start_ = absl::Now();
  guard.active_ = true;
  return guard;
}

MemoryGuard::MemoryGuard(MemoryGuard&& other) noexcept
    : options_(std::move(other.options_)),
      active_(std::exchange(other.active_, false)),
      result_(std::move(other.result_)),
      before_(other.before_),
      start_(other.start_),
      gc_before_(other.gc_before_),
      tracing_(std::move(other.tracing_)),
      snapshot_(std::move(other.snapshot_)),
      traced_before_(other.traced_before_),
      blocks_before_(other.blocks_before_) {
  other.tracing_.reset();
}

MemoryGuard::~MemoryGuard() {
  if (active_) Exit().IgnoreError();
}

absl::StatusOr<GuardReport> MemoryGuard::Exit() {
  if (!active_) {
    if (result_.has_value()) return *result_;
    return absl::FailedPreconditionError("this MemoryGuard was moved from");
  }
  active_ = false;
  const absl::Time end = absl::Now();
  const bool sampled = options_.mode == GuardMode::kSampled;
  const bool traced = options_.mode == GuardMode::kTraced || sampled;
  GuardReport report;
  report.label = options_.label;
  report.mode = options_.mode;
  report.elapsed = end - start_;
  report.gc_collected = gc_before_;

  absl::Status status = absl::OkStatus();
  // The process is sampled after the collection and before the guard's own
  // readings (the Exit snapshot), as Enter sampled it after its snapshot:
  // on a big heap a snapshot leaves megabytes resident that are the guard's,
  // not the block's.
  std::optional<absl::StatusOr<ProcessSample>> after;
  const bool needs_python = traced || options_.collect_after;
  if (needs_python) {
    // The guard may end on a thread or at a moment without the GIL (a
    // destructor during unwinding): take it for the readings.
    GilAcquire gil;
    if (!gil.ok()) {
      status = gil.status();
    } else {
      status = WithPendingExceptionKept([&]() -> absl::Status {
        internal::AssumeGilHeld();  // `gil` above.
        if (options_.collect_after) {
          absl::StatusOr<int64_t> freed = internal::CollectGarbage();
          if (!freed.ok()) return freed.status();
          report.gc_collected += *freed;
        }
        after.emplace(SampleProcess());
        if (!traced) return absl::OkStatus();
        if (sampled) {
          report.traced_bytes = options_.sampler->Stats().live_bytes_estimate - traced_before_;
        } else {
          absl::StatusOr<tracemalloc::TracedMemory> memory = tracemalloc::GetTracedMemory();
          if (!memory.ok()) return memory.status();
          report.traced_bytes = static_cast<int64_t>(memory->current) - traced_before_;
        }
        absl::StatusOr<int64_t> blocks = internal::AllocatedBlocks();
        if (!blocks.ok()) return blocks.status();
        report.blocks = *blocks - blocks_before_;
        if (!snapshot_.has_value()) return absl::OkStatus();  // top == 0
        absl::StatusOr<tracemalloc::Snapshot> after =
            sampled ? options_.sampler->TakeSnapshot() : tracemalloc::Snapshot::Take();
        if (!after.ok()) return after.status();
        absl::StatusOr<std::vector<LineGrowth>> lines =
            internal::GrownLines(*snapshot_, *after, options_.group_by, options_.top);
        if (!lines.ok()) return lines.status();
        report.top_lines = *std::move(lines);
        return absl::OkStatus();
      });
      // Restore tracemalloc (stop it if this guard started it), under the
      // GIL, on every path.
      if (tracing_.has_value()) {
        absl::Status ended = WithPendingExceptionKept([&] { return tracing_->End(); });
        if (status.ok()) status = ended;
        tracing_.reset();
      }
    }
  }
  snapshot_.reset();
  if (!after.has_value()) after.emplace(SampleProcess());
  if (!after->ok() && status.ok()) status = after->status();
  if (!status.ok()) {
    result_ = status;
    return status;
  }
  report.process = **after - before_;
  report.over_threshold =
      options_.warn_bytes > 0 &&
      (report.process.rss_bytes >= options_.warn_bytes ||
       (report.traced_bytes.has_value() && *report.traced_bytes >= options_.warn_bytes));
  if (report.over_threshold || options_.always_report) {
    Sink* sink = options_.sink != nullptr ? options_.sink : DefaultSink();
    sink->Write(report.ToReport());
  }
  result_ = report;
  return report;
}

}  // namespace leakguard
