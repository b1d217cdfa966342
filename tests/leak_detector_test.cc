// LeakDetector: catches a slow leak within three intervals and names its
// line, calls native growth native, stays quiet on a steady workload,
// rate-limits, and starts/stops safely from any thread.

#include "leakguard/leak_detector.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/sampler.h"
#include "leakguard/tracemalloc.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

using ::leakguard::testing::RecordingSink;
using ::leakguard::testing::SleepWithoutGil;
using ::leakguard::testing::WaitFor;

void Call(const char* module, const char* func) {
  Ref m = Steal(PyImport_ImportModule(module));
  ASSERT_TRUE(m) << StatusFromPythonError();
  Ref r = Steal(PyObject_CallMethod(m.get(), func, nullptr));
  ASSERT_TRUE(r) << StatusFromPythonError();
}

void Call(const char* module, const char* func, int n) {
  Ref m = Steal(PyImport_ImportModule(module));
  ASSERT_TRUE(m) << StatusFromPythonError();
  Ref r = Steal(PyObject_CallMethod(m.get(), func, "i", n));
  ASSERT_TRUE(r) << StatusFromPythonError();
}

int MarkedLine() {
  return testing::MarkedLine(std::string(LEAKGUARD_TEST_SCRIPTS_DIR) + "/detector_workloads.py",
                             "# leak: ");
}

// The rounds as text, for failure messages.
std::string Rounds(const std::vector<DetectorRound>& history) {
  std::string out;
  for (const DetectorRound& r : history) {
    absl::StrAppend(&out, "round ", r.round, ": RSS ", r.process.rss_bytes, " traced ",
                    r.traced_bytes.value_or(-1), " tracemalloc ", r.tracemalloc_bytes.value_or(-1),
                    " detector ", r.detector_bytes.value_or(-1), " kinds [",
                    absl::StrJoin(r.kinds, ","), "]", r.reported ? " reported" : "", "\n");
  }
  return out;
}

class LeakDetectorTest : public ::testing::Test {
 protected:
  void TearDown() override { Call("detector_workloads", "reset"); }
};

TEST_F(LeakDetectorTest, RejectsBadOptions) {
  EXPECT_EQ(LeakDetector::Create({.interval = absl::Microseconds(10)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LeakDetector::Create({.threshold_bytes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LeakDetector::Create({.fd_threshold = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LeakDetector::Create({.frames = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LeakDetectorTest, CatchesASlowLeakWithinThreeIntervalsAndNamesTheLine) {
  Call("detector_workloads", "steady");  // Import before the baseline.
  RecordingSink sink;
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(100), .threshold_bytes = 1 << 20, .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());  // Returns after the baseline.
  // 512 KiB per round (each grow waits for the next round to finish,
  // however long that takes): the threshold (1 MiB) is passed by the
  // second grow.
  int64_t passed_at = -1;  // Rounds done when the threshold was passed.
  for (int grows = 1; grows <= 20 && (*detector)->reports() == 0; ++grows) {
    const int64_t before = (*detector)->rounds();
    Call("detector_workloads", "grow");
    if (grows == 2) passed_at = (*detector)->rounds();
    ASSERT_TRUE(WaitFor([&] { return (*detector)->rounds() > before; }));
  }
  ASSERT_TRUE(WaitFor([&] { return (*detector)->reports() >= 1; }))
      << Rounds((*detector)->History());
  (*detector)->Stop();
  std::vector<DetectorRound> history = (*detector)->History();
  if (LEAKGUARD_UNDER_TSAN && passed_at < 0) {
    // RSS counts TSan's shadow of every byte the heap grows by (about 3x
    // more), so the RSS rule ("native") can fire after the first grow. The
    // threads above ran under TSan all the same; only the timing is moot.
    GTEST_SKIP() << "under TSan the RSS rule fired first\n" << Rounds(history);
  }
  ASSERT_GE(passed_at, 0) << Rounds(history);
  int64_t first_reported = -1;
  for (const DetectorRound& r : history) {
    if (r.reported && first_reported < 0) first_reported = r.round;
  }
  // The round running when it was passed may have read the heap before;
  // the next one cannot have: caught within three rounds of the growth.
  EXPECT_GT(first_reported, passed_at) << Rounds(history);
  EXPECT_LE(first_reported - passed_at, 3) << "caught within three intervals\n" << Rounds(history);
  Report report = sink.reports().front();
  EXPECT_EQ(report.source, "leak_detector");
  EXPECT_THAT(report.label, HasSubstr("python_heap")) << Rounds(history);
  ASSERT_FALSE(report.top_lines.empty());
  EXPECT_THAT(report.top_lines[0].file, HasSubstr("detector_workloads.py"));
  EXPECT_EQ(report.top_lines[0].line, MarkedLine());
  EXPECT_FALSE(*tracemalloc::IsTracing());  // The detector stopped what it started.
}

TEST_F(LeakDetectorTest, NamesNativeGrowthNative) {
  Call("cause_native_memory", "run");  // Import (and one block) first.
  RecordingSink sink;
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(50), .threshold_bytes = 4 << 20, .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());  // Returns after the baseline.
  Call("cause_native_memory", "run");      // 8 MiB through ctypes.
  EXPECT_TRUE(WaitFor([&] { return (*detector)->reports() >= 1; }))
      << Rounds((*detector)->History());
  (*detector)->Stop();
  ASSERT_GE(sink.reports().size(), 1u);
  Report report = sink.reports().front();
  EXPECT_EQ(report.label, "native");
  ASSERT_FALSE(report.notes.empty());
  EXPECT_THAT(report.notes[0], HasSubstr("memory outside Python's allocator"));
}

// The detector's own memory is not the program's growth: on a heap of
// 300k traced objects its base snapshot, and the snapshot it takes every
// round, are megabytes of C++ memory that RSS sees.
TEST_F(LeakDetectorTest, ItsOwnSnapshotsOfABigTracedHeapAreNotNativeGrowth) {
  absl::StatusOr<tracemalloc::TracingScope> tracing = tracemalloc::TracingScope::Start(1);
  ASSERT_TRUE(tracing.ok()) << tracing.status();
  Ref heap = ::leakguard::testing::Eval("[str(i) * 2 for i in range(300000)]");
  ASSERT_TRUE(heap);
  RecordingSink sink;
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(20), .threshold_bytes = 1 << 20, .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  // Five rounds after the baseline, however long a loaded machine takes.
  EXPECT_TRUE(WaitFor([&] {
    Call("detector_workloads", "steady");
    return (*detector)->rounds() >= 5;
  })) << "rounds done: "
      << (*detector)->rounds();
  (*detector)->Stop();
  EXPECT_GE((*detector)->rounds(), 5);
  EXPECT_EQ((*detector)->reports(), 0) << Rounds((*detector)->History());
  EXPECT_TRUE(tracing->End().ok());
}

TEST_F(LeakDetectorTest, QuietOnASteadyWorkload) {
  RecordingSink sink;
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(20), .threshold_bytes = 2 << 20, .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  EXPECT_TRUE(WaitFor([&] {
    Call("detector_workloads", "steady");
    return (*detector)->rounds() >= 5;
  })) << "rounds done: "
      << (*detector)->rounds();
  (*detector)->Stop();
  EXPECT_GE((*detector)->rounds(), 5);
  EXPECT_EQ((*detector)->reports(), 0) << Rounds((*detector)->History());
  EXPECT_TRUE(sink.reports().empty());
}

TEST_F(LeakDetectorTest, RateLimitsRepeatedWarnings) {
  RecordingSink sink;
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(20),
                                        .threshold_bytes = 1 << 20,
                                        .min_report_interval = absl::Hours(1),
                                        .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  for (int i = 0; i < 3; ++i) Call("detector_workloads", "grow");  // 1.5 MiB once.
  // The first report, then three rounds that see the same growth.
  EXPECT_TRUE(WaitFor([&] { return (*detector)->suppressed() >= 3; }))
      << Rounds((*detector)->History());
  (*detector)->Stop();
  EXPECT_EQ((*detector)->reports(), 1);
  EXPECT_GE((*detector)->suppressed(), 3);
}

TEST_F(LeakDetectorTest, NeverHoldsTheGilWhileSleeping) {
  auto detector = LeakDetector::Create({.interval = absl::Hours(1), .traced = true});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());  // Returns once the baseline is done.
  std::future<bool> took = std::async(std::launch::async, [] {
    GilAcquire gil;
    return gil.ok();
  });
  bool acquired = false;
  {
    GilRelease release;
    acquired = took.wait_for(std::chrono::seconds(10)) == std::future_status::ready && took.get();
  }
  EXPECT_TRUE(acquired);
  (*detector)->Stop();
}

TEST_F(LeakDetectorTest, StartAndStopAThousandTimesFromAnyThread) {
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(1), .traced = false});
  ASSERT_TRUE(detector.ok());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE((*detector)->Start().ok());
    ASSERT_TRUE((*detector)->Start().ok());  // Idempotent.
    EXPECT_TRUE((*detector)->running());
    (*detector)->Stop();
    (*detector)->Stop();
    EXPECT_FALSE((*detector)->running());
  }
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  {
    GilRelease release;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&detector] {
        for (int i = 0; i < 50; ++i) {
          (void)(*detector)->Start();
          (*detector)->Stop();
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_FALSE((*detector)->running());
  // Traced rounds as well: each Start takes a snapshot as its baseline.
  auto traced = LeakDetector::Create({.interval = absl::Milliseconds(1)});
  ASSERT_TRUE(traced.ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE((*traced)->Start().ok());
    (*traced)->Stop();
  }
  EXPECT_FALSE(*tracemalloc::IsTracing());
}

// Traced detectors started and stopped from four threads at once: each
// Start makes a detector thread (a new thread state) that starts
// tracemalloc, each Stop stops it, so without the process-wide
// serialization one thread's tracemalloc start or stop overlapped another's
// thread state creation, which crashes inside CPython. One detector shared
// by the four threads, and one per thread. (Threads the host itself gives a
// thread state are outside leakguard's lock: a host that creates Python
// threads while a detector starts tracemalloc meets CPython's race as any
// program does.)
TEST_F(LeakDetectorTest, TracedStartAndStopFromFourThreadsAtOnce) {
  ASSERT_FALSE(*tracemalloc::IsTracing());
  auto shared = LeakDetector::Create({.interval = absl::Milliseconds(1)});
  ASSERT_TRUE(shared.ok());
  constexpr int kThreads = 4;
  constexpr int kIterations = 100;
  std::vector<std::unique_ptr<LeakDetector>> own;
  for (int t = 0; t < kThreads; ++t) {
    auto d = LeakDetector::Create({.interval = absl::Milliseconds(1)});
    ASSERT_TRUE(d.ok());
    own.push_back(*std::move(d));
  }
  std::atomic<int> failed_starts{0};
  std::atomic<int> cycles{0};
  {
    GilRelease release;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kIterations; ++i) {
          LeakDetector& d = (i % 2 == 0) ? **shared : *own[t];
          if (!d.Start().ok()) failed_starts.fetch_add(1);
          d.Stop();
          cycles.fetch_add(1);
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_EQ(failed_starts.load(), 0);
  EXPECT_EQ(cycles.load(), kThreads * kIterations);
  EXPECT_FALSE((*shared)->running());
  for (const auto& d : own) EXPECT_FALSE(d->running());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  // Whoever started tracemalloc stopped it again.
  EXPECT_FALSE(*tracemalloc::IsTracing());
}

TEST_F(LeakDetectorTest, ReportNowAndItsSignalAndFileTriggersNameTheGrowingLine) {
  Call("detector_workloads", "steady");
  RecordingSink sink;
  const std::string trigger =
      absl::StrCat(::testing::TempDir(), "/leakguard-report-now-", getpid());
  unlink(trigger.c_str());
  // Rounds an hour apart and thresholds never passed: every report below
  // is on demand.
  auto detector = LeakDetector::Create({.interval = absl::Hours(1),
                                        .threshold_bytes = int64_t{1} << 40,
                                        .fd_threshold = 0,
                                        .thread_threshold = 0,
                                        .sink = &sink,
                                        .report_signal = SIGUSR2,
                                        .trigger_file = trigger,
                                        .trigger_poll = absl::Milliseconds(10)});
  ASSERT_TRUE(detector.ok());
  EXPECT_EQ((*detector)->ReportNow().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*detector)->Start().ok());
  Call("detector_workloads", "grow");
  Call("detector_workloads", "grow");

  RecordingSink direct;
  ASSERT_TRUE((*detector)->ReportNow(&direct).ok());
  ASSERT_EQ(direct.size(), 1u);
  EXPECT_EQ(sink.size(), 0u);
  auto check = [](const Report& report) {
    EXPECT_EQ(report.source, "leak_detector");
    EXPECT_EQ(report.label, "on_demand");
    ASSERT_FALSE(report.top_lines.empty());
    EXPECT_THAT(report.top_lines[0].file, HasSubstr("detector_workloads.py"));
    EXPECT_EQ(report.top_lines[0].line, MarkedLine());
    EXPECT_GE(report.top_lines[0].size_diff, 1 << 20);
  };
  check(direct.last());

  ASSERT_EQ(raise(SIGUSR2), 0);  // kill -USR2 <pid>
  ASSERT_TRUE(WaitFor([&] { return sink.size() >= 1; }));
  check(sink.last());

  { std::ofstream touch(trigger); }  // touch <file>
  ASSERT_TRUE(WaitFor([&] { return sink.size() >= 2; }));
  check(sink.last());
  EXPECT_TRUE(WaitFor([&] { return access(trigger.c_str(), F_OK) != 0; }));
  EXPECT_EQ((*detector)->reports(), 0);  // Threshold reports: none.
  (*detector)->Stop();
  EXPECT_EQ(sink.size(), 2u);
}

// Type growth: 5000 objects of a class made after the baseline are named
// with their number; a class whose 3000 objects were all replaced after the
// baseline (as many as before) is not listed; traced or not.
TEST_F(LeakDetectorTest, ReportNowNamesTheTypesThatGrewInNumber) {
  constexpr int64_t kRecords = 5000;
  constexpr int64_t kSlack = 50;
  const std::string record = "detector_workloads.LeakguardTypeGrowthRecord";
  const std::string control = "detector_workloads.LeakguardTypeGrowthControl";
  for (const bool traced : {true, false}) {
    SCOPED_TRACE(traced ? "traced" : "not traced");
    Call("detector_workloads", "reset");
    Call("detector_workloads", "replace_controls", 3000);
    RecordingSink sink;
    auto detector = LeakDetector::Create({.interval = absl::Hours(1),
                                          .threshold_bytes = int64_t{1} << 40,
                                          .fd_threshold = 0,
                                          .thread_threshold = 0,
                                          .traced = traced,
                                          .sink = &sink});
    ASSERT_TRUE(detector.ok());
    ASSERT_TRUE((*detector)->Start().ok());
    Call("detector_workloads", "keep_records", static_cast<int>(kRecords));
    Call("detector_workloads", "replace_controls", 3000);

    ASSERT_TRUE((*detector)->ReportNow().ok());
    ASSERT_EQ(sink.size(), 1u);
    const Report report = sink.last();
    std::string listed;
    for (const TypeCountDiff& t : report.type_growth) {
      absl::StrAppend(&listed, t.name, " +", t.count_diff, " (", t.count, ")\n");
    }
    SCOPED_TRACE(listed);
    EXPECT_LE(report.type_growth.size(), 10u);  // options.top
    auto at = [&](const std::string& name) {
      return std::find_if(report.type_growth.begin(), report.type_growth.end(),
                          [&](const TypeCountDiff& t) { return t.name == name; });
    };
    const auto grown = at(record);
    ASSERT_NE(grown, report.type_growth.end());
    EXPECT_EQ(grown - report.type_growth.begin(), 0);  // The most growth.
    EXPECT_GE(grown->count_diff, kRecords);
    EXPECT_LT(grown->count_diff, kRecords + kSlack);
    EXPECT_GE(grown->count, grown->count_diff);
    // The control did not grow: not listed at all (so not above the record).
    EXPECT_TRUE(at(control) == report.type_growth.end()) << control << " is listed";
    const std::string grew = absl::StrCat(record, "  +", grown->count_diff, " objects");
    EXPECT_THAT(RenderText(report), HasSubstr("  type growth:\n    " + grew));
    EXPECT_THAT(RenderJson(report), HasSubstr("\"type_growth\":[{\"name\":\"" + record + "\""));
    EXPECT_THAT(absl::StrJoin(report.notes, "\n"),
                HasSubstr(absl::StrCat("most ", record, " +", grown->count_diff, " objects")));
    (*detector)->Stop();
  }

  // Off: no census, no type growth.
  RecordingSink sink;
  auto detector = LeakDetector::Create({.interval = absl::Hours(1),
                                        .threshold_bytes = int64_t{1} << 40,
                                        .type_census = false,
                                        .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  Call("detector_workloads", "keep_records", static_cast<int>(kRecords));
  ASSERT_TRUE((*detector)->ReportNow().ok());
  (*detector)->Stop();
  ASSERT_EQ(sink.size(), 1u);
  EXPECT_TRUE(sink.last().type_growth.empty());
}

// ------------------------------------------- the sampler as the source

// The line of tests/scripts/`script`.py marked "# leak: ".
int MarkedLineOf(const std::string& script) {
  return testing::MarkedLine(std::string(LEAKGUARD_TEST_SCRIPTS_DIR) + "/" + script + ".py",
                             "# leak: ");
}

class SampledDetectorCorpusTest : public ::testing::TestWithParam<const char*> {};

// On the sampler instead of tracemalloc (R = 64 KiB), the detector catches
// each Python-heap cause of the corpus, names its marked line among the
// lines that grew, and never starts tracemalloc. (cause_logging_buffer's
// blocks come from a free list, see memory_guard_test.cc; its lines are
// the logging module's, so only the kind is asserted for it.)
TEST_P(SampledDetectorCorpusTest, CatchesTheCauseAndNamesItsLine) {
  const std::string script = GetParam();
  const int line = MarkedLineOf(script);
  ASSERT_GT(line, 0);
  Call(script.c_str(), "run");  // import and warm up before the baseline
  auto sampler = AllocationSampler::Create({.sampling_interval = 64 * 1024, .seed = 3});
  ASSERT_TRUE(sampler.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  RecordingSink sink;
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(20),
                                        .threshold_bytes = 1 << 20,
                                        .fd_threshold = 0,
                                        .thread_threshold = 0,
                                        .sampler = sampler->get(),
                                        .sink = &sink});
  ASSERT_TRUE(detector.ok());
  ASSERT_TRUE((*detector)->Start().ok());
  // The first python_heap report (a build whose RSS grows by itself, such
  // as TSan's, may report native growth first).
  auto python_heap_report = [&]() -> std::optional<Report> {
    for (const Report& r : sink.reports()) {
      if (r.label.find("python_heap") != std::string::npos) return r;
    }
    return std::nullopt;
  };
  for (int runs = 0; runs < 400 && !python_heap_report(); ++runs) {
    Call(script.c_str(), "run");
    if (runs % 10 == 9) SleepWithoutGil(absl::Milliseconds(25));
  }
  EXPECT_TRUE(WaitFor([&] { return python_heap_report().has_value(); }))
      << Rounds((*detector)->History());
  (*detector)->Stop();
  (*sampler)->Stop();
  EXPECT_FALSE(*tracemalloc::IsTracing());
  const std::optional<Report> found_report = python_heap_report();
  ASSERT_TRUE(found_report.has_value());
  const Report& report = *found_report;
  EXPECT_THAT(absl::StrJoin(report.notes, "\n"), HasSubstr("estimated by the sampler"));
  if (script == "cause_logging_buffer") return;
  std::string seen;
  EXPECT_TRUE(testing::NamesScriptLine(report.top_lines, script, line, &seen))
      << script << ".py:" << line << " not among " << seen;
}

INSTANTIATE_TEST_SUITE_P(Causes, SampledDetectorCorpusTest,
                         ::testing::Values("cause_unbounded_cache", "cause_global_state",
                                           "cause_closure_capture", "cause_listener_accumulation",
                                           "cause_thread_local", "cause_logging_buffer"));

// The controls: a steady workload (allocates and frees, keeps nothing) run
// for 10 rounds on the sampler at its default interval and at 4 KiB, with a
// threshold of 2 MiB: no report.
TEST_F(LeakDetectorTest, OnTheSamplerQuietOnASteadyWorkload) {
  Call("steady_churn", "run");
  for (int64_t interval : {int64_t{512} * 1024, int64_t{4} * 1024}) {
    SCOPED_TRACE(absl::StrCat("R = ", interval));
    auto sampler = AllocationSampler::Create({.sampling_interval = interval, .seed = 9});
    ASSERT_TRUE(sampler.ok());
    ASSERT_TRUE((*sampler)->Start().ok());
    RecordingSink sink;
    auto detector = LeakDetector::Create({.interval = absl::Milliseconds(20),
                                          .threshold_bytes = 2 << 20,
                                          .sampler = sampler->get(),
                                          .sink = &sink});
    ASSERT_TRUE(detector.ok());
    ASSERT_TRUE((*detector)->Start().ok());
    EXPECT_TRUE(WaitFor([&] {
      Call("steady_churn", "run");
      return (*detector)->rounds() >= 10;
    }));
    (*detector)->Stop();
    (*sampler)->Stop();
    EXPECT_EQ((*detector)->reports(), 0) << Rounds((*detector)->History());
  }
}

// Start() with a sampler that is not running says so.
TEST_F(LeakDetectorTest, OnTheSamplerNeedsItRunning) {
  auto sampler = AllocationSampler::Create({});
  ASSERT_TRUE(sampler.ok());
  auto detector = LeakDetector::Create({.sampler = sampler->get()});
  ASSERT_TRUE(detector.ok());
  absl::Status started = (*detector)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("sampler is not running"));
}

}  // namespace
}  // namespace leakguard
