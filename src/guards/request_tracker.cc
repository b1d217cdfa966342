#include "leakguard/request_tracker.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "leakguard/process.h"

namespace leakguard {
namespace internal {

int LogHistogram::BucketOf(uint64_t magnitude) noexcept {
  if (magnitude < 16) return static_cast<int>(magnitude);
  const int exponent = 63 - std::countl_zero(magnitude);  // >= 4
  const int sub = static_cast<int>((magnitude >> (exponent - 4)) & 15);
  return std::min(16 + (exponent - 4) * 16 + sub, kBuckets - 1);
}

uint64_t LogHistogram::LowerBound(int bucket) noexcept {
  if (bucket < 16) return static_cast<uint64_t>(bucket);
  const int exponent = (bucket - 16) / 16 + 4;
  const uint64_t sub = static_cast<uint64_t>((bucket - 16) % 16);
  return (uint64_t{1} << exponent) + (sub << (exponent - 4));
}

void LogHistogram::Add(int64_t value) noexcept {
  ++count_;
  if (value == 0) {
    ++zero_;
  } else if (value > 0) {
    ++positive_[BucketOf(static_cast<uint64_t>(value))];
  } else {
    // -(INT64_MIN) overflows; its magnitude as unsigned is fine.
    ++negative_[BucketOf(uint64_t{0} - static_cast<uint64_t>(value))];
  }
}

int64_t LogHistogram::Quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the value wanted, 1-based: the smallest value with at least
  // q * count values at or below it.
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * static_cast<double>(count_))));
  int64_t seen = 0;
  for (int b = kBuckets - 1; b >= 0; --b) {  // Most negative first.
    seen += negative_[b];
    if (seen >= rank) return static_cast<int64_t>(uint64_t{0} - LowerBound(b));
  }
  seen += zero_;
  if (seen >= rank) return 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += positive_[b];
    if (seen >= rank) return static_cast<int64_t>(LowerBound(b));
  }
  return static_cast<int64_t>(LowerBound(kBuckets - 1));
}

void LogHistogram::Clear() noexcept {
  negative_.fill(0);
  positive_.fill(0);
  zero_ = 0;
  count_ = 0;
}

}  // namespace internal

RequestTracker::Unit::Unit(RequestTracker* tracker, std::string label)
    : tracker_(tracker), label_(std::move(label)), start_(absl::Now()) {
  rss_before_ = ReadRss().value_or(0);
}

RequestTracker::Unit::Unit(Unit&& other) noexcept
    : tracker_(std::exchange(other.tracker_, nullptr)),
      label_(std::move(other.label_)),
      rss_before_(other.rss_before_),
      start_(other.start_),
      done_(std::exchange(other.done_, true)),
      record_(std::move(other.record_)) {}

RequestTracker::Unit::~Unit() { Finish(); }

UnitRecord RequestTracker::Unit::Finish() {
  if (done_ || tracker_ == nullptr) return record_;
  done_ = true;
  const absl::StatusOr<int64_t> rss_after = ReadRss();
  record_.label = label_;
  record_.rss_delta = (rss_after.ok() && rss_before_ > 0) ? *rss_after - rss_before_ : 0;
  record_.elapsed = absl::Now() - start_;
  tracker_->Record(record_);
  return record_;
}

absl::StatusOr<std::unique_ptr<RequestTracker>> RequestTracker::Create(
    RequestTrackerOptions options) {
  if (options.report_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("report_every must be >= 0 (0: never), got ", options.report_every));
  }
  if (options.rss_threshold_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rss_threshold_bytes must be >= 0 (0: off), got ", options.rss_threshold_bytes));
  }
  if (options.worst_kept < 0 || options.worst_kept > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("worst_kept must be in 0..1000, got ", options.worst_kept));
  }
  return std::unique_ptr<RequestTracker>(new RequestTracker(std::move(options)));
}

RequestTracker::RequestTracker(RequestTrackerOptions options)
    : options_(std::move(options)),
      sink_(options_.sink != nullptr ? options_.sink : DefaultSink()) {}

RequestTracker::Unit RequestTracker::Begin(std::string label) {
  return Unit(this, std::move(label));
}

void RequestTracker::Record(UnitRecord record) {
  bool over = false;
  bool periodic = false;
  TrackerStats stats;
  {
    absl::MutexLock lock(&mu_);
    histogram_.Add(record.rss_delta);
    total_ += record.rss_delta;
    max_ = histogram_.count() == 1 ? record.rss_delta : std::max(max_, record.rss_delta);
    const int64_t seq = sequence_++;
    over = options_.rss_threshold_bytes > 0 && record.rss_delta >= options_.rss_threshold_bytes;
    if (over) ++over_threshold_;
    if (options_.worst_kept > 0) {
      const size_t kept = static_cast<size_t>(options_.worst_kept);
      const bool qualifies =
          worst_.size() < kept || record.rss_delta > worst_.back().second.rss_delta;
      if (qualifies) {
        auto pos = std::upper_bound(worst_.begin(), worst_.end(), record.rss_delta,
                                    [](int64_t delta, const std::pair<int64_t, UnitRecord>& entry) {
                                      return delta > entry.second.rss_delta;
                                    });
        worst_.insert(pos, {seq, record});
        if (worst_.size() > kept) worst_.pop_back();
      }
    }
    periodic = options_.report_every > 0 && histogram_.count() % options_.report_every == 0;
    if (periodic) stats = StatsLocked();
  }
  // Reports go out after the lock is dropped.
  if (over) {
    Report report;
    report.source = "request_tracker";
    report.label = record.label;
    report.severity = Severity::kWarning;
    report.time = absl::Now();
    report.elapsed = record.elapsed;
    report.summary =
        absl::StrCat("unit grew RSS by ", FormatBytes(record.rss_delta), " (threshold ",
                     FormatBytes(options_.rss_threshold_bytes), ") in ", options_.name);
    report.metrics = {{"rss_bytes", record.rss_delta}};
    sink_->Write(report);
  }
  if (periodic) {
    Report report;
    report.source = "request_tracker";
    report.label = options_.name;
    report.severity = Severity::kInfo;
    report.time = absl::Now();
    report.summary =
        absl::StrFormat("%d units: RSS %s in total, p50 %s, p99 %s, max %s per unit", stats.count,
                        FormatBytes(stats.total_rss_delta), FormatBytes(stats.p50_rss_delta),
                        FormatBytes(stats.p99_rss_delta), FormatBytes(stats.max_rss_delta));
    report.metrics = {{"units", stats.count},
                      {"total_rss_bytes", stats.total_rss_delta},
                      {"p50_rss_bytes", stats.p50_rss_delta},
                      {"p99_rss_bytes", stats.p99_rss_delta},
                      {"max_rss_bytes", stats.max_rss_delta}};
    for (const UnitRecord& worst : stats.worst) {
      report.notes.push_back(
          absl::StrCat("worst: '", worst.label, "' ", FormatBytes(worst.rss_delta)));
    }
    sink_->Write(report);
  }
}

TrackerStats RequestTracker::StatsLocked() const {
  TrackerStats stats;
  stats.count = histogram_.count();
  stats.total_rss_delta = total_;
  stats.p50_rss_delta = histogram_.Quantile(0.50);
  stats.p99_rss_delta = histogram_.Quantile(0.99);
  stats.max_rss_delta = max_;
  stats.over_threshold = over_threshold_;
  stats.worst.reserve(worst_.size());
  for (const auto& entry : worst_) stats.worst.push_back(entry.second);
  return stats;
}

TrackerStats RequestTracker::Stats() const {
  absl::MutexLock lock(&mu_);
  return StatsLocked();
}

void RequestTracker::Reset() {
  absl::MutexLock lock(&mu_);
  histogram_.Clear();
  total_ = 0;
  max_ = 0;
  over_threshold_ = 0;
  worst_.clear();
}

}  // namespace leakguard
