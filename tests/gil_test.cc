// GIL guards from the main thread and from threads Python never saw.

#include "leakguard/python/gil.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

TEST(GilTest, MainThreadHoldsTheGilDuringTests) { EXPECT_TRUE(CheckGil().ok()); }

TEST(GilTest, ReleaseDropsAndRestoresTheGil) {
  {
    GilRelease release;
    EXPECT_TRUE(release.released());
    absl::Status status = CheckGil();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(status.message().find("does not hold"), std::string::npos) << status;
    {
      GilAcquire again;  // Nested acquire inside a release works.
      EXPECT_TRUE(again.ok());
      EXPECT_TRUE(CheckGil().ok());
    }
    EXPECT_FALSE(CheckGil().ok());
  }
  EXPECT_TRUE(CheckGil().ok());
}

TEST(GilTest, ForeignThreadWithoutGilGetsFailedPrecondition) {
  absl::Status seen;
  {
    GilRelease release;
    std::thread([&seen] { seen = CheckGil(); }).join();
  }
  EXPECT_EQ(seen.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(GilTest, ReleaseWithoutTheGilIsANoOp) {
  bool released = true;
  {
    GilRelease outer;
    std::thread([&released] {
      GilRelease inner;  // This thread holds nothing: must not crash.
      released = inner.released();
    }).join();
  }
  EXPECT_FALSE(released);
}

// Eight threads Python has never seen each take the GIL 1000 times and
// append to one list: exactly 8000 items, no crash, no lost update.
TEST(GilTest, ForeignThreadsRunPythonUnderAcquire) {
  Ref list = Steal(PyList_New(0));
  ASSERT_TRUE(list);
  constexpr int kThreads = 8;
  constexpr int kRounds = 1000;
  std::atomic<int> failures{0};
  {
    GilRelease release;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&list, &failures, t] {
        for (int i = 0; i < kRounds; ++i) {
          GilAcquire gil;
          if (!gil.ok() || !CheckGil().ok()) {
            ++failures;
            return;
          }
          GilAcquire nested;  // Re-entrant on the same thread.
          Ref item = Steal(PyLong_FromLong(t * kRounds + i));
          if (!item || PyList_Append(list.get(), item.get()) != 0) ++failures;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(PyList_Size(list.get()), kThreads * kRounds);
  PyObject* sum = PyDict_GetItemString(PyEval_GetBuiltins(), "sum");
  Ref total = Steal(PyObject_CallOneArg(sum, list.get()));
  ASSERT_TRUE(total);
  const long n = kThreads * kRounds;
  EXPECT_EQ(PyLong_AsLong(total.get()), n * (n - 1) / 2);
}

}  // namespace
}  // namespace leakguard
