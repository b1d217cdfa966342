// AllocationSampler: options, lifecycle, exact mode against tracemalloc,
// accuracy at R = 64 KiB against tracemalloc's exact answer, a steady leak
// found within 100 iterations at the default R, frees, the table cap, the
// outputs, and start/stop while threads allocate.

#include "leakguard/sampler.h"

#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/tracemalloc.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::leakguard::testing::Eval;
using ::leakguard::testing::Script;
using ::testing::HasSubstr;
using ::testing::Not;

const SiteEstimate* FindLine(const std::vector<SiteEstimate>& lines, const std::string& file,
                             int64_t line) {
  for (const SiteEstimate& e : lines) {
    if (e.filename == file && e.lineno == line) return &e;
  }
  return nullptr;
}

// tracemalloc's exact size of `file:line` in `snap`.
int64_t ExactSize(const tracemalloc::Snapshot& snap, const std::string& file, int64_t line) {
  absl::StatusOr<tracemalloc::StatisticList> stats = snap.Statistics(tracemalloc::GroupBy::kLineno);
  EXPECT_TRUE(stats.ok()) << stats.status();
  if (!stats.ok()) return -1;
  for (const tracemalloc::Statistic& s : *stats) {
    const tracemalloc::Frame f = s.traceback.most_recent();
    if (f.filename == file && f.lineno == line) return s.size;
  }
  return 0;
}

TEST(SamplerOptions, OutOfRangeIsInvalidArgumentNamingTheField) {
  auto bad_interval = AllocationSampler::Create({.sampling_interval = 0});
  ASSERT_EQ(bad_interval.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_interval.status().message(), HasSubstr("sampling_interval"));
  auto bad_frames = AllocationSampler::Create({.max_frames = 257});
  ASSERT_EQ(bad_frames.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_frames.status().message(), HasSubstr("max_frames"));
  auto bad_cap = AllocationSampler::Create({.max_samples = 0});
  ASSERT_EQ(bad_cap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_cap.status().message(), HasSubstr("max_samples"));
  EXPECT_TRUE(AllocationSampler::Create({.sampling_interval = 1, .max_frames = 256}).ok());
}

TEST(Sampler, StartNeedsTheGilAndOneSamplerAtATime) {
  auto a = AllocationSampler::Create({});
  auto b = AllocationSampler::Create({});
  ASSERT_TRUE(a.ok() && b.ok());
  absl::Status without_gil;
  {
    GilRelease released;
    std::thread([&] { without_gil = (*a)->Start(); }).join();
  }
  EXPECT_EQ(without_gil.code(), absl::StatusCode::kFailedPrecondition) << without_gil;
  ASSERT_TRUE((*a)->Start().ok());
  EXPECT_TRUE((*a)->Start().ok());  // idempotent
  absl::Status second = (*b)->Start();
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.message(), HasSubstr("another sampler"));
  EXPECT_TRUE((*a)->Stats().running);
  EXPECT_TRUE((*a)->Stats().hooked);
  (*a)->Stop();
  (*a)->Stop();  // idempotent
  EXPECT_FALSE((*a)->running());
  EXPECT_FALSE((*a)->Stats().hooked);
  ASSERT_TRUE((*b)->Start().ok());
  (*b)->Stop();
}

constexpr char kExactScript[] =
    "keep = []\n"
    "def grow(n):\n"
    "    keep.extend(bytearray(1000 + i % 7) for i in range(n))\n"  // line 3
    "def drop(n):\n"
    "    del keep[:n]\n";

// R = 1 records every block with its size: on the same run, the line's
// growth equals tracemalloc's to the byte (both hooks see the same calls).
TEST(Sampler, ExactModeMatchesTracemallocAtTheLine) {
  // Defined before tracing starts: the function objects made at its `def`
  // lines are not what the test compares.
  Script script("exact_site.py", kExactScript);
  auto scope = tracemalloc::TracingScope::Start(1);
  ASSERT_TRUE(scope.ok()) << scope.status();
  auto sampler = AllocationSampler::Create({.sampling_interval = 1, .max_frames = 1});
  ASSERT_TRUE(sampler.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  script.Call("grow", 3000);
  auto exact = tracemalloc::Snapshot::Take();
  ASSERT_TRUE(exact.ok()) << exact.status();
  const std::vector<SiteEstimate> lines = (*sampler)->LiveByLine();
  const SiteEstimate* site = FindLine(lines, "exact_site.py", 3);
  ASSERT_NE(site, nullptr);
  const int64_t truth = ExactSize(*exact, "exact_site.py", 3);
  EXPECT_GT(truth, 3000 * 1000);
  EXPECT_EQ(static_cast<int64_t>(site->bytes), truth);
  EXPECT_EQ(site->stderr_bytes, 0);
  EXPECT_GE(site->samples, 3000);
  // Frees are seen: after dropping two thirds, the line still matches.
  script.Call("drop", 2000);
  auto exact_after = tracemalloc::Snapshot::Take();
  ASSERT_TRUE(exact_after.ok());
  const std::vector<SiteEstimate> lines_after = (*sampler)->LiveByLine();
  const SiteEstimate* after = FindLine(lines_after, "exact_site.py", 3);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(static_cast<int64_t>(after->bytes), ExactSize(*exact_after, "exact_site.py", 3));
  EXPECT_LT(after->bytes, site->bytes / 2);
  EXPECT_GT((*sampler)->Stats().freed, 2000);
  (*sampler)->Stop();
  script.Call("drop", 1000);
}

constexpr char kSitesScript[] =
    "big, mid, small, tiny = [], [], [], []\n"
    "def fill(n):\n"
    "    for i in range(n):\n"
    "        big.append(bytes(4000 + i % 97))\n"  // line 4: ~64 MiB
    "        mid.append([i] * 500)\n"             // line 5: ~64 MiB of lists
    "        if i % 4 == 0:\n"
    "            small.append('x' * (2000 + i % 13))\n"  // line 7: ~8 MiB
    "        if i % 64 == 0:\n"
    "            tiny.append(bytearray(9000))\n"  // line 9: ~2.2 MiB
    "def clear(n):\n"
    "    big.clear(); mid.clear(); small.clear(); tiny.clear()\n";

// At R = 64 KiB every line above 1% of the live heap is estimated within
// its confidence interval (4 standard errors: a false failure once in
// ~16,000 runs per line), and the lines with enough expected samples for the
// statistics to promise it (>= 500) within 10% of tracemalloc's exact size.
TEST(Sampler, EstimatesAtSixtyFourKibAgreeWithTracemalloc) {
  Script script("sites.py", kSitesScript);
  auto scope = tracemalloc::TracingScope::Start(1);
  ASSERT_TRUE(scope.ok()) << scope.status();
  constexpr int64_t kR = 64 * 1024;
  auto sampler =
      AllocationSampler::Create({.sampling_interval = kR, .max_frames = 1, .seed = 20261203});
  ASSERT_TRUE(sampler.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  script.Call("fill", 16000);
  auto exact = tracemalloc::Snapshot::Take();
  ASSERT_TRUE(exact.ok());
  const std::vector<SiteEstimate> lines = (*sampler)->LiveByLine();
  const double total = static_cast<double>(exact->total_size());
  int checked = 0;
  for (int line : {4, 5, 7, 9}) {
    const double truth = static_cast<double>(ExactSize(*exact, "sites.py", line));
    ASSERT_GT(truth, 0.01 * total) << "line " << line << " is under 1% of the heap";
    const SiteEstimate* e = FindLine(lines, "sites.py", line);
    ASSERT_NE(e, nullptr) << "line " << line;
    const double error = (e->bytes - truth) / truth;
    SCOPED_TRACE(absl::StrCat("line ", line, ": truth ", truth, ", estimate ", e->bytes, " +- ",
                              e->stderr_bytes, " (", e->samples, " samples), error ", error));
    EXPECT_LE(std::abs(e->bytes - truth), 4 * e->stderr_bytes);
    EXPECT_GT(e->stderr_bytes, 0);
    if (truth / kR >= 500) {
      EXPECT_LT(std::abs(error), 0.10);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);  // lines 4 and 5
  (*sampler)->Stop();
  script.Call("clear");
}

constexpr char kLeakScript[] =
    "leaked = []\n"
    "def request(i):\n"
    "    scratch = [str(j) for j in range(200)]\n"  // line 3: freed each call
    "    leaked.append(bytearray(64 * 1024))\n"     // line 4: the leak
    "    return len(scratch)\n";

// A steady leak of 64 KiB per iteration is named within 100 iterations at
// the default R (about 12 expected samples), and the scratch line, freed
// each call, is not.
TEST(Sampler, SteadyLeakFoundWithinAHundredIterationsAtTheDefaultInterval) {
  auto sampler = AllocationSampler::Create({.seed = 7});
  ASSERT_TRUE(sampler.ok());
  Script script("leaky_plugin.py", kLeakScript);
  ASSERT_TRUE((*sampler)->Start().ok());
  std::vector<SamplerMark> marks;
  marks.push_back((*sampler)->Mark());
  for (int i = 1; i <= 100; ++i) {
    script.Call("request", i);
    if (i == 34 || i == 67 || i == 100) marks.push_back((*sampler)->Mark());
  }
  const std::vector<GrowingSite> growing = FindGrowingSites(marks, 2.0);
  ASSERT_FALSE(growing.empty());
  EXPECT_EQ(growing[0].last.filename, "leaky_plugin.py");
  EXPECT_EQ(growing[0].last.lineno, 4);
  EXPECT_EQ(growing[0].deltas.size(), 3u);
  // The estimate is within its interval of the truth (100 x 64 KiB plus
  // the bytearray headers).
  EXPECT_LE(std::abs(growing[0].growth - 100.0 * 65536), 4 * growing[0].stderr_growth + 65536);
  for (const GrowingSite& g : growing) EXPECT_NE(g.last.lineno, 3) << "scratch is freed";
  // Samples taken before the first mark are epoch 0; the leak's survivors
  // are spread over the marks.
  EXPECT_LE(growing[0].last.oldest_epoch, 2);
  (*sampler)->Stop();
}

// A run at a smaller R right after one at a larger R sees its first
// allocations: the countdown a thread kept from the earlier run does not
// hold them back (exact mode after the default interval records every
// block from the start).
TEST(Sampler, ASmallerIntervalAfterALargerOneMissesNothing) {
  Script script("restart.py", kExactScript);
  auto coarse = AllocationSampler::Create({.seed = 1});
  ASSERT_TRUE(coarse.ok());
  ASSERT_TRUE((*coarse)->Start().ok());
  script.Call("grow", 10);  // leaves this thread part-way through a distance
  (*coarse)->Stop();
  script.Call("drop", 10);
  auto exact = AllocationSampler::Create({.sampling_interval = 1, .max_frames = 1});
  ASSERT_TRUE(exact.ok());
  ASSERT_TRUE((*exact)->Start().ok());
  script.Call("grow", 10);
  const std::vector<SiteEstimate> lines = (*exact)->LiveByLine();
  const SiteEstimate* site = FindLine(lines, "restart.py", 3);
  ASSERT_NE(site, nullptr);
  EXPECT_GE(site->samples, 20);  // 10 objects and their 10 buffers
  EXPECT_GE(site->bytes, 10 * 1000);
  (*exact)->Stop();
  script.Call("drop", 10);
}

// Past max_samples new samples are dropped and counted, never recorded.
TEST(Sampler, TableCapDropsAndCounts) {
  auto sampler = AllocationSampler::Create({.sampling_interval = 1, .max_samples = 100});
  ASSERT_TRUE(sampler.ok());
  Script script("capped.py", kExactScript);
  ASSERT_TRUE((*sampler)->Start().ok());
  script.Call("grow", 500);
  const SamplerStats stats = (*sampler)->Stats();
  // The cap is reached within the first hundred blocks; what frees after
  // that (temporaries) makes room for a few more.
  EXPECT_LE(stats.live_samples, 100);
  EXPECT_GE(stats.live_samples, 90);
  EXPECT_GE(stats.dropped, 400);
  EXPECT_EQ(stats.samples, stats.live_samples + stats.freed);
  EXPECT_GT(stats.table_bytes, 0);
  (*sampler)->Stop();
  script.Call("drop", 500);
}

// The snapshot feeds the tracemalloc probe's comparisons; the outputs name
// the stack oldest frame first.
TEST(Sampler, SnapshotCollapsedStacksAndJson) {
  auto sampler = AllocationSampler::Create({.sampling_interval = 1, .max_frames = 8});
  ASSERT_TRUE(sampler.ok());
  Script script("outputs.py",
                "keep = []\n"
                "def inner(n):\n"
                "    keep.extend(bytearray(5000) for _ in range(n))\n"  // line 3
                "def outer(n):\n"
                "    inner(n)\n"  // line 5
                "def clear(n):\n"
                "    keep.clear()\n");
  ASSERT_TRUE((*sampler)->Start().ok());
  const SamplerMark before = (*sampler)->Mark();
  script.Call("outer", 200);
  const SamplerMark after = (*sampler)->Mark();
  EXPECT_EQ(after.epoch, before.epoch + 1);
  auto diff = after.snapshot.CompareTo(before.snapshot, tracemalloc::GroupBy::kLineno);
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_FALSE(diff->empty());
  EXPECT_EQ((*diff)[0].traceback.most_recent().ToString(), "outputs.py:3");
  EXPECT_GE((*diff)[0].size_diff, 200 * 5000);
  EXPECT_EQ(after.snapshot.traceback_limit(), 8);
  const std::string collapsed = (*sampler)->CollapsedStacks();
  EXPECT_THAT(collapsed, HasSubstr("outputs.py:5;outputs.py:3 "));
  const std::string json = (*sampler)->ToJson(3);
  EXPECT_THAT(json, HasSubstr("\"sampling_interval\":1,"));
  EXPECT_THAT(json, HasSubstr("{\"filename\":\"outputs.py\",\"lineno\":3,"));
  (*sampler)->Stop();
  script.Call("clear");
}

// A file name that is not valid UTF-8 (a surrogate-escaped byte, as Python
// decodes a Latin-1 path) still gives valid JSON: each byte of the encoded
// surrogate becomes U+FFFD, as in every other JSON leakguard writes.
TEST(Sampler, JsonIsValidUtf8ForAnyFileName) {
  auto sampler = AllocationSampler::Create({.sampling_interval = 1, .max_frames = 4});
  ASSERT_TRUE(sampler.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  Ref kept = Eval("kept",
                  "code = compile('kept = [bytearray(4000) for _ in range(50)]',"
                  " 'caf\\udce9.py', 'exec')\n"
                  "ns = {}\n"
                  "exec(code, ns)\n"
                  "kept = ns['kept']\n");
  ASSERT_TRUE(kept);
  const std::string json = (*sampler)->ToJson(3);
  (*sampler)->Stop();
  EXPECT_THAT(json, HasSubstr("{\"filename\":\"caf\\ufffd\\ufffd\\ufffd.py\",\"lineno\":1,"));
  EXPECT_THAT(json, Not(HasSubstr("caf\xed")));
}

// Start and stop while other threads allocate (with and without the GIL):
// no crash, no sample lost track of, and the hooks come out of the chain.
TEST(Sampler, StartStopWhileThreadsAllocate) {
  auto sampler = AllocationSampler::Create({.sampling_interval = 4096});
  ASSERT_TRUE(sampler.ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&stop, t] {
      while (!stop.load()) {
        if (t == 0) {  // RAW domain, no GIL
          void* p = PyMem_RawMalloc(777);
          leakguard::testing::Publish(p);
          PyMem_RawFree(p);
        } else {  // Python objects, with the GIL
          GilAcquire gil;
          Ref list = Steal(PyList_New(100));
          leakguard::testing::Publish(list.get());
        }
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE((*sampler)->Start().ok());
    leakguard::testing::SleepWithoutGil(absl::Milliseconds(5));
    EXPECT_GE((*sampler)->Stats().live_samples, 0);
    (*sampler)->Stop();
  }
  stop = true;
  {
    GilRelease released;
    for (std::thread& t : threads) t.join();
  }
  auto probe = AllocationSampler::Create({});
  ASSERT_TRUE(probe.ok());
  EXPECT_FALSE((*probe)->Stats().hooked);
}

// tracemalloc started after the sampler wraps it, and its stop puts the
// sampler back, still hooked. Started before it, its stop unhooks the
// sampler (it restores the allocators it saved), and Stats() says so.
TEST(Sampler, TracemallocOnTopAndUnderneath) {
  auto sampler = AllocationSampler::Create({.sampling_interval = 1});
  ASSERT_TRUE(sampler.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  {
    auto scope = tracemalloc::TracingScope::Start(1);
    ASSERT_TRUE(scope.ok());
    Ref list = Eval("[bytearray(100) for _ in range(100)]");
    EXPECT_TRUE((*sampler)->Stats().hooked);
  }
  EXPECT_TRUE((*sampler)->Stats().hooked);
  const int64_t before = (*sampler)->Stats().samples;
  Ref more = Eval("[bytearray(100) for _ in range(100)]");
  EXPECT_GE((*sampler)->Stats().samples - before, 100);
  (*sampler)->Stop();

  // Underneath: tracemalloc first, then the sampler; stopping tracemalloc
  // first unhooks the sampler, which says so.
  auto scope = tracemalloc::TracingScope::Start(1);
  ASSERT_TRUE(scope.ok());
  ASSERT_TRUE((*sampler)->Start().ok());
  EXPECT_TRUE((*sampler)->Stats().hooked);
  ASSERT_TRUE(scope->End().ok());
  EXPECT_FALSE((*sampler)->Stats().hooked);
  (*sampler)->Stop();
}

}  // namespace
}  // namespace leakguard
