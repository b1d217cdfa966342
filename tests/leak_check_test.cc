// LeakCheck and EXPECT_NO_PYTHON_LEAKS on known leak shapes.

#include "leakguard/leak_check.h"

#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "leakguard/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/tracemalloc.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

Ref Shape(const char* name) {
  Ref module = Steal(PyImport_ImportModule("leak_shapes"));
  EXPECT_TRUE(module) << StatusFromPythonError();
  Ref func = Steal(PyObject_GetAttrString(module.get(), name));
  EXPECT_TRUE(func) << StatusFromPythonError();
  return func;
}

class LeakCheckTest : public ::testing::Test {
 protected:
  void TearDown() override {
    Ref reset = Shape("reset");
    Ref done = Steal(PyObject_CallNoArgs(reset.get()));
    EXPECT_TRUE(done);
  }
};

TEST_F(LeakCheckTest, FlagsAListThatGrowsAndNamesTheLine) {
  Ref leak = Shape("leak_list");
  absl::StatusOr<LeakCheckResult> result = RunLeakCheck(leak);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->leaked);
  EXPECT_TRUE(result->leaked_blocks);
  EXPECT_FALSE(result->leaked_fds);
  ASSERT_EQ(result->runs.size(), 9u);
  // One bytes object kept per run. The last run must show it; one earlier
  // run may read 0 when something unrelated freed a block meanwhile.
  int grew = 0;
  for (size_t i = 3; i < 9; ++i) grew += result->runs[i].blocks >= 1 ? 1 : 0;
  EXPECT_GE(grew, 5) << result->Describe();
  EXPECT_GE(result->runs[8].blocks, 1) << result->Describe();
  ASSERT_FALSE(result->top_lines.empty());
  EXPECT_THAT(result->top_lines[0].file, HasSubstr("leak_shapes.py"));
  EXPECT_EQ(result->top_lines[0].line, 11);
  // Six post-warmup calls kept six bytes(1000) objects.
  EXPECT_EQ(result->top_lines[0].count_diff, 6);
  EXPECT_GE(result->top_lines[0].size_diff, 6 * 1000);
  EXPECT_THAT(result->Describe(), HasSubstr("leaks memory blocks over 6 runs"));
  EXPECT_THAT(result->Describe(), HasSubstr("leak_shapes.py:11"));
}

TEST(GrowsEveryRunTest, ForgivesOneNoisyRunThatIsNotTheLast) {
  EXPECT_TRUE(GrowsEveryRun({1, 1, 1, 1, 1, 1}));
  EXPECT_TRUE(GrowsEveryRun({5, 2, 1, 3, 1, 1}));
  // The shape seen on a real one-block-per-call leak: one unrelated block
  // freed during the first measured run.
  EXPECT_TRUE(GrowsEveryRun({0, 1, 1, 1, 1, 1}));
  EXPECT_TRUE(GrowsEveryRun({1, 1, -3, 1}));
  // A cache that stops filling ends on a run that did not grow.
  EXPECT_FALSE(GrowsEveryRun({1, 1, 1, 1, 1, 0}));
  EXPECT_FALSE(GrowsEveryRun({0, 1, 0, 1, 1, 1}));
  // Noise of a clean callable (regrtest's examples of false positives).
  EXPECT_FALSE(GrowsEveryRun({3, 0, 0}));
  EXPECT_FALSE(GrowsEveryRun({0, 1, 0}));
  EXPECT_FALSE(GrowsEveryRun({8, -8, 1}));
  // Under 4 runs nothing is forgiven.
  EXPECT_FALSE(GrowsEveryRun({0, 1, 1}));
  EXPECT_TRUE(GrowsEveryRun({1, 1, 1}));
  EXPECT_TRUE(GrowsEveryRun({1}));
  EXPECT_FALSE(GrowsEveryRun({0}));
  EXPECT_FALSE(GrowsEveryRun({}));
}

TEST_F(LeakCheckTest, NamesTheTypesThatGrew) {
  Ref leak = Shape("leak_records");
  absl::StatusOr<LeakCheckResult> result = RunLeakCheck(leak, {.top = 3});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->leaked);
  ASSERT_FALSE(result->top_types.empty());
  EXPECT_EQ(result->top_types[0].type, "Record");
  EXPECT_EQ(result->top_types[0].count, 6);  // One per post-warmup run.
  EXPECT_THAT(result->Describe(), HasSubstr("types that grew over the 6 runs: Record +6"));
}

TEST_F(LeakCheckTest, PassesCleanShapes) {
  for (const char* name : {"clean", "cache_fill", "cyclic_churn"}) {
    Ref func = Shape(name);
    absl::StatusOr<LeakCheckResult> result = RunLeakCheck(func);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(result->leaked) << name << ": " << result->Describe();
  }
}

TEST_F(LeakCheckTest, DescriptorsMustNotChangeAtAll) {
  Ref leak = Shape("leak_fd");
  absl::StatusOr<LeakCheckResult> result = RunLeakCheck(leak, {.warmup = 1, .repeat = 3});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->leaked_fds);
  for (const RunDelta& run : result->runs) EXPECT_EQ(run.fds, 1);
  EXPECT_THAT(result->Describe(), HasSubstr("fds per run:    [+1, +1, +1]"));
}

TEST_F(LeakCheckTest, CppCallablesAndErrors) {
  int calls = 0;
  absl::StatusOr<LeakCheckResult> clean = RunLeakCheck([&calls] {
    ++calls;
    return absl::OkStatus();
  });
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(calls, 9);
  EXPECT_FALSE(clean->leaked) << clean->Describe();

  Ref raises = Shape("raises");
  absl::StatusOr<LeakCheckResult> failed = RunLeakCheck(raises);
  EXPECT_EQ(failed.status().message(), "RuntimeError: workload failed");
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST_F(LeakCheckTest, RestoresTracemallocState) {
  ASSERT_FALSE(*tracemalloc::IsTracing());
  Ref leak = Shape("leak_list");
  ASSERT_TRUE(RunLeakCheck(leak).ok());
  EXPECT_FALSE(*tracemalloc::IsTracing());
  Ref raises = Shape("raises");
  EXPECT_FALSE(RunLeakCheck(raises).ok());  // Early return path.
  EXPECT_FALSE(*tracemalloc::IsTracing());
}

TEST_F(LeakCheckTest, BadInput) {
  Ref leak = Shape("leak_list");
  EXPECT_EQ(RunLeakCheck(leak, {.repeat = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunLeakCheck(leak, {.warmup = -1}).status().code(), absl::StatusCode::kInvalidArgument);
  Ref not_callable = Steal(PyLong_FromLong(3));
  EXPECT_EQ(RunLeakCheck(not_callable).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status no_gil;
  {
    GilRelease release;
    std::thread([&] { no_gil = RunLeakCheck(leak).status(); }).join();
  }
  EXPECT_EQ(no_gil.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LeakCheckTest, GoogleTestHelpers) {
  Ref clean = Shape("clean");
  EXPECT_NO_PYTHON_LEAKS(clean);
  ASSERT_NO_PYTHON_LEAKS([] { return absl::OkStatus(); });
  Ref leak = Shape("leak_list");
  EXPECT_NONFATAL_FAILURE(EXPECT_NO_PYTHON_LEAKS(leak), "leaks memory blocks over 6 runs");
  EXPECT_NONFATAL_FAILURE(EXPECT_NO_PYTHON_LEAKS(leak, LeakCheckOptions{.warmup = 2, .repeat = 4}),
                          "leak_shapes.py:11");
}

// Flakiness guard: the verdicts hold over 20 repetitions.
TEST_F(LeakCheckTest, VerdictsAreStableOverTwentyRuns) {
  Ref leak = Shape("leak_list");
  Ref clean = Shape("clean");
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<LeakCheckResult> bad = RunLeakCheck(leak, {.trace_lines = false});
    absl::StatusOr<LeakCheckResult> good = RunLeakCheck(clean, {.trace_lines = false});
    ASSERT_TRUE(bad.ok() && good.ok());
    EXPECT_TRUE(bad->leaked) << i;
    EXPECT_FALSE(good->leaked) << i << ": " << good->Describe();
  }
}

}  // namespace
}  // namespace leakguard
