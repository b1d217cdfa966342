// leakguard must not leak itself: many guard and tracker cycles leave RSS
// and the interpreter's allocated blocks flat.

#include <cstdint>

#include "gtest/gtest.h"
#include "leakguard/memory_guard.h"
#include "leakguard/process.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/request_tracker.h"
#include "leakguard/tracemalloc.h"
#include "test_util.h"

namespace leakguard {
namespace {

class NullSink : public Sink {
 public:
  void Write(const Report&) noexcept override { ++count; }
  int64_t count = 0;
};

// gc.collect() then sys.getallocatedblocks(), through leakguard's
// interned-name calls (a plain PyObject_CallMethod would itself leave a name
// string in the type cache per call).
int64_t Blocks() {
  absl::StatusOr<Ref> gc = Import("gc");
  absl::StatusOr<Ref> sys = Import("sys");
  if (!gc.ok() || !sys.ok() || !CallMethod(gc->handle(), "collect").ok()) return -1;
  absl::StatusOr<Ref> n = CallMethod(sys->handle(), "getallocatedblocks");
  return n.ok() ? PyLong_AsLongLong(n->get()) : -1;
}

bool UnderSanitizer() { return LEAKGUARD_UNDER_ASAN || LEAKGUARD_UNDER_TSAN; }

// A million process-mode guards (every one reporting to a sink; 20,000 in
// sanitizer builds, which are ~10x slower): RSS within 1 MiB after a
// warm-up, and not one Python block more.
TEST(SelfLeakTest, MillionProcessGuards) {
  NullSink sink;
  auto cycle = [&sink] {
    auto guard = MemoryGuard::Enter({.label = "cycle", .always_report = true, .sink = &sink});
    return guard.ok() && guard->Exit().ok();
  };
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(cycle());
  const int64_t blocks = Blocks();
  const int64_t rss = *ReadRss();
  const int n = UnderSanitizer() ? 20000 : 1000000;
  for (int i = 0; i < n; ++i) ASSERT_TRUE(cycle());
  EXPECT_EQ(Blocks() - blocks, 0);
  if (!UnderSanitizer()) {
    EXPECT_LT(*ReadRss() - rss, 1 << 20);
  }
  EXPECT_EQ(sink.count, 10000 + n);
}

// Traced guards touch Python (snapshots, tracemalloc state): 300 cycles
// leave the allocated blocks flat.
TEST(SelfLeakTest, TracedGuardsLeaveBlocksFlat) {
  auto host = tracemalloc::TracingScope::Start(1);
  ASSERT_TRUE(host.ok());
  auto cycle = [] {
    auto guard = MemoryGuard::Enter({.mode = GuardMode::kTraced, .collect_after = true});
    return guard.ok() && guard->Exit().ok();
  };
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(cycle());
  const int64_t blocks = Blocks();
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(cycle());
  EXPECT_LE(Blocks() - blocks, 0);
}

// A million RequestTracker units: constant memory by construction.
TEST(SelfLeakTest, MillionTrackerUnits) {
  NullSink sink;
  auto tracker = RequestTracker::Create({.report_every = 100000, .sink = &sink});
  ASSERT_TRUE(tracker.ok());
  for (int i = 0; i < 10000; ++i) auto unit = (*tracker)->Begin("warm");
  const int64_t rss = *ReadRss();
  const int n = UnderSanitizer() ? 200000 : 1000000;
  for (int i = 0; i < n; ++i) auto unit = (*tracker)->Begin("unit");
  if (!UnderSanitizer()) {
    EXPECT_LT(*ReadRss() - rss, 1 << 20);
  }
  EXPECT_EQ((*tracker)->Stats().count, 10000 + n);
  EXPECT_EQ(sink.count, (10000 + n) / 100000);
}

}  // namespace
}  // namespace leakguard
