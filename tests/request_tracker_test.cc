// RequestTracker: statistics, worst units, threshold and periodic reports.

#include "leakguard/request_tracker.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/gil.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ::leakguard::testing::RecordingSink;

TEST(LogHistogramTest, ExactBelowSixteenAndWithinOneSixteenthAbove) {
  internal::LogHistogram h;
  for (int v = 1; v <= 15; ++v) h.Add(v);
  EXPECT_EQ(h.Quantile(0.0), 1);
  EXPECT_EQ(h.Quantile(0.5), 8);
  EXPECT_EQ(h.Quantile(1.0), 15);
  h.Clear();
  EXPECT_EQ(h.Quantile(0.5), 0);
  for (int64_t v = 1; v <= 100000; ++v) h.Add(v * 1000);
  const double p50 = static_cast<double>(h.Quantile(0.5));
  const double p99 = static_cast<double>(h.Quantile(0.99));
  EXPECT_LE(p50, 50000.0 * 1000);
  EXPECT_GE(p50, 50000.0 * 1000 * (1 - 1.0 / 16));
  EXPECT_LE(p99, 99000.0 * 1000);
  EXPECT_GE(p99, 99000.0 * 1000 * (1 - 1.0 / 16));
}

TEST(LogHistogramTest, NegativeValuesOrderBeforePositive) {
  internal::LogHistogram h;
  h.Add(-100);
  h.Add(-5);
  h.Add(0);
  h.Add(7);
  h.Add(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(h.count(), 5);
  EXPECT_LE(h.Quantile(0.0), -(int64_t{1} << 62));
  EXPECT_EQ(h.Quantile(0.4), -100);  // Bucket [100, 104): lower bound 100.
  EXPECT_EQ(h.Quantile(0.6), -5);
  EXPECT_EQ(h.Quantile(0.8), 0);
  EXPECT_EQ(h.Quantile(1.0), 7);
}

TEST(RequestTrackerTest, RejectsBadOptions) {
  EXPECT_EQ(RequestTracker::Create({.report_every = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RequestTracker::Create({.rss_threshold_bytes = -5}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bad = RequestTracker::Create({.worst_kept = 1001});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("0..1000"));
}

TEST(RequestTrackerTest, StatisticsAndWorstUnits) {
  RecordingSink sink;
  auto tracker = RequestTracker::Create({.worst_kept = 3, .sink = &sink});
  ASSERT_TRUE(tracker.ok());
  for (int i = 1; i <= 100; ++i) {
    (*tracker)->Record({"req" + std::to_string(i), i, absl::Milliseconds(1)});
  }
  (*tracker)->Record({"tie-late", 100, absl::Milliseconds(1)});
  (*tracker)->Record({"shrink", -50, absl::Milliseconds(1)});
  TrackerStats stats = (*tracker)->Stats();
  EXPECT_EQ(stats.count, 102);
  EXPECT_EQ(stats.total_rss_delta, 5050 + 100 - 50);
  EXPECT_EQ(stats.max_rss_delta, 100);
  EXPECT_EQ(stats.p50_rss_delta, 50);   // 51st of 102: bucket [50, 52).
  EXPECT_EQ(stats.p99_rss_delta, 100);  // 101st of 102: bucket [100, 104).
  std::vector<std::string> labels;
  for (const UnitRecord& r : stats.worst) labels.push_back(r.label);
  EXPECT_THAT(labels, ElementsAre("req100", "tie-late", "req99"));
  EXPECT_TRUE(sink.reports().empty());  // No threshold, no periodic report.
  (*tracker)->Reset();
  EXPECT_EQ((*tracker)->Stats().count, 0);
  EXPECT_TRUE((*tracker)->Stats().worst.empty());
}

TEST(RequestTrackerTest, ThresholdWarnsWithTheUnitLabel) {
  RecordingSink sink;
  auto tracker = RequestTracker::Create({.rss_threshold_bytes = 1 << 20, .sink = &sink});
  ASSERT_TRUE(tracker.ok());
  (*tracker)->Record({"small", 4096, absl::ZeroDuration()});
  (*tracker)->Record({"/upload", 3 << 20, absl::ZeroDuration()});
  std::vector<Report> reports = sink.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].severity, Severity::kWarning);
  EXPECT_EQ(reports[0].label, "/upload");
  EXPECT_EQ(reports[0].summary, "unit grew RSS by 3.0 MiB (threshold 1.0 MiB) in requests");
  EXPECT_EQ((*tracker)->Stats().over_threshold, 1);
}

TEST(RequestTrackerTest, ReportsEveryNthUnit) {
  RecordingSink sink;
  auto tracker = RequestTracker::Create({.report_every = 10, .sink = &sink, .name = "frames"});
  ASSERT_TRUE(tracker.ok());
  for (int i = 0; i < 25; ++i) (*tracker)->Record({"f", 1024, absl::ZeroDuration()});
  std::vector<Report> reports = sink.reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].severity, Severity::kInfo);
  EXPECT_EQ(reports[0].label, "frames");
  EXPECT_THAT(reports[1].summary, HasSubstr("20 units: RSS 20.0 KiB in total"));
  EXPECT_EQ(reports[1].metrics[0], (std::pair<std::string, int64_t>{"units", 20}));
}

TEST(RequestTrackerTest, UnitMeasuresRealGrowth) {
#if LEAKGUARD_UNDER_TSAN
  GTEST_SKIP() << "ThreadSanitizer's allocator does not show a fresh block "
                  "in RSS the way glibc's mmap does";
#endif
  RecordingSink sink;
  auto tracker = RequestTracker::Create({.rss_threshold_bytes = 16 << 20, .sink = &sink});
  ASSERT_TRUE(tracker.ok());
  std::vector<char*> kept;
  {
    RequestTracker::Unit unit = (*tracker)->Begin("grows 24 MiB");
    char* block = static_cast<char*>(std::malloc(24 << 20));
    std::memset(block, 3, 24 << 20);
    kept.push_back(block);
    UnitRecord record = unit.Finish();
    EXPECT_GE(record.rss_delta, 24 << 20);
    EXPECT_EQ(unit.Finish().rss_delta, record.rss_delta);  // Idempotent.
  }
  { RequestTracker::Unit quiet = (*tracker)->Begin("quiet"); }
  for (char* block : kept) std::free(block);
  TrackerStats stats = (*tracker)->Stats();
  EXPECT_EQ(stats.count, 2);  // Finish() then destruction counted once.
  ASSERT_EQ(sink.reports().size(), 1u);
  EXPECT_EQ(sink.reports()[0].label, "grows 24 MiB");
}

TEST(RequestTrackerTest, ConcurrentUnitsAreAllCounted) {
  GilRelease no_gil;  // Units never touch Python.
  RecordingSink sink;
  auto tracker = RequestTracker::Create({.report_every = 100, .sink = &sink});
  ASSERT_TRUE(tracker.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&tracker] {
      for (int i = 0; i < 500; ++i) {
        auto unit = (*tracker)->Begin("t");
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ((*tracker)->Stats().count, 2000);
  EXPECT_EQ(sink.reports().size(), 20u);
}

}  // namespace
}  // namespace leakguard
