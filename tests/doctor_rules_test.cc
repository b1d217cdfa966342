// The doctor's rule table, row by row, from hand-made evidence: Decide() is
// pure C++, so every row's condition is tested on an Investigation built
// here, with a near miss beside it, plus the tie-breaks between rows. And
// the table in docs/doctor.md is the table in the code.

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/doctor.h"

namespace leakguard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRepeat = 10;

// An investigation of kRepeat measured iterations (after `warmup`) in which
// nothing changed.
Investigation Quiet(int warmup = 0) {
  Investigation inv;
  inv.options.warmup = warmup;
  inv.options.repeat = kRepeat;
  for (int i = 0; i < warmup + kRepeat; ++i) {
    IterationDelta d;
    d.traced_bytes = 0;
    inv.iterations.push_back(d);
  }
  return inv;
}

// Every measured iteration's `field` grows by `step`.
void Grow(Investigation& inv, int64_t IterationDelta::*field, int64_t step) {
  for (size_t i = inv.options.warmup; i < inv.iterations.size(); ++i)
    inv.iterations[i].*field = step;
}

void GrowTraced(Investigation& inv, int64_t step) {
  for (size_t i = inv.options.warmup; i < inv.iterations.size(); ++i) {
    inv.iterations[i].traced_bytes = step;
  }
}

// The Python heap grows: blocks and traced bytes every iteration.
void HeapGrows(Investigation& inv) {
  Grow(inv, &IterationDelta::blocks, 5);
  GrowTraced(inv, 800);
  inv.sites.push_back({"app.py", 12, 800});
}

// A namespace container gaining `step` per measured iteration.
HolderEvidence Holder(std::string path, std::string kind, std::string item, int64_t step = 1) {
  HolderEvidence h;
  h.path = std::move(path);
  h.kind = std::move(kind);
  h.item = std::move(item);
  for (int i = 0; i <= kRepeat; ++i) h.series.push_back(i * step);
  return h;
}

std::vector<std::string> Rules(const Diagnosis& d) {
  std::vector<std::string> out;
  for (const Cause& c : d.causes) out.push_back(c.rule);
  return out;
}

// The one heap row that classifies `holder` when the heap grows.
Diagnosis WithHolder(HolderEvidence holder) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.holders.push_back(std::move(holder));
  return Decide(inv);
}

TEST(DoctorRulesTest, NothingChangedIsNoLeakWithoutANote) {
  Diagnosis d = Decide(Quiet());
  EXPECT_EQ(d.verdict, Verdict::kNoLeak);
  EXPECT_FALSE(d.note.has_value());
  EXPECT_TRUE(d.causes.empty());
}

// ---- cause rows

TEST(DoctorRulesTest, FdsSteady) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::fds, 1);
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("fds_steady"));
  EXPECT_EQ(d.verdict, Verdict::kLeak);
  EXPECT_EQ(d.causes[0].id, CauseId::kUnclosedResources);
  EXPECT_DOUBLE_EQ(d.causes[0].confidence, 0.95);
  EXPECT_EQ(d.fds_per_iter, 1);
  EXPECT_THAT(d.causes[0].fix, HasSubstr("with"));
  // Near miss: descriptors grew in 8 of 10 iterations (the rule wants 9).
  inv.iterations[0].fds = 0;
  inv.iterations[1].fds = 0;
  EXPECT_TRUE(Decide(inv).causes.empty());
}

TEST(DoctorRulesTest, ThreadsSteady) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::threads, 1);
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("threads_steady"));
  EXPECT_EQ(d.causes[0].id, CauseId::kThreadLocal);
  EXPECT_FALSE(d.causes[0].holder.has_value());
  // One noisy step in ten is allowed; two are not.
  inv.iterations[3].threads = 0;
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("threads_steady"));
  inv.iterations[4].threads = 0;
  EXPECT_TRUE(Decide(inv).causes.empty());
}

TEST(DoctorRulesTest, CyclesWithCollectionOff) {
  Investigation inv = Quiet();
  inv.gc_automatic = false;
  inv.cyclic_garbage = 3 * kRepeat;
  inv.garbage_types = {{"Node", 30}};
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("cycles_gc_off"));
  EXPECT_EQ(d.causes[0].id, CauseId::kReferenceCycles);
  ASSERT_EQ(d.causes[0].evidence.size(), 3u);
  EXPECT_EQ(d.causes[0].evidence[1].kind, Evidence::Kind::kCyclesPiledUp);
  EXPECT_THAT(RenderEvidence(d.causes[0].evidence[1]), HasSubstr("Node"));
  // With automatic collection on the same garbage is churn, not a leak.
  inv.gc_automatic = true;
  EXPECT_TRUE(Decide(inv).causes.empty());
  // Fewer than one object per iteration.
  inv.gc_automatic = false;
  inv.cyclic_garbage = kRepeat - 1;
  EXPECT_TRUE(Decide(inv).causes.empty());
}

TEST(DoctorRulesTest, NativeGrowth) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::rss_bytes, 64 * 1024);
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("native_growth"));
  EXPECT_EQ(d.causes[0].id, CauseId::kNativeMemory);
  EXPECT_EQ(d.rss_bytes_per_iter, 64 * 1024);
  // The traced heap explains a quarter of it or more: not native.
  GrowTraced(inv, 16 * 1024);
  EXPECT_THAT(Rules(Decide(inv)), Not(::testing::Contains("native_growth")));
  // Below 256 KiB in all.
  Investigation small = Quiet();
  Grow(small, &IterationDelta::rss_bytes, 20 * 1024);
  EXPECT_TRUE(Decide(small).causes.empty());
}

// ---- heap rows: the first that matches names the cause.

TEST(DoctorRulesTest, HeapArrays) {
  Diagnosis d = WithHolder(Holder("app._frames", "ndarray_list", "ndarray", 4096));
  ASSERT_THAT(Rules(d), ElementsAre("heap.arrays"));
  EXPECT_EQ(d.causes[0].id, CauseId::kArrayCopies);
  EXPECT_EQ(d.causes[0].holder.value_or(""), "app._frames");
  ASSERT_FALSE(d.causes[0].sites.empty());
  EXPECT_EQ(d.causes[0].sites[0].line, 12);
}

TEST(DoctorRulesTest, HeapLogRecords) {
  EXPECT_THAT(Rules(WithHolder(Holder("app.handler.records", "list", "log_record"))),
              ElementsAre("heap.log_records"));
  // A handler's buffer, whatever it holds.
  Diagnosis d = WithHolder(Holder("app.handler.buffer", "list", "str"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.log_records"));
  EXPECT_EQ(d.causes[0].id, CauseId::kLoggingBuffer);
}

TEST(DoctorRulesTest, HeapLruCache) {
  Diagnosis d = WithHolder(Holder("app.lookup", "lru_cache", "str"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.lru_cache"));
  EXPECT_EQ(d.causes[0].id, CauseId::kUnboundedCache);
}

TEST(DoctorRulesTest, HeapClosures) {
  Diagnosis d = WithHolder(Holder("app._callbacks", "list", "closure"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.closures"));
  EXPECT_EQ(d.causes[0].id, CauseId::kClosureCapture);
}

TEST(DoctorRulesTest, HeapCallbacks) {
  EXPECT_THAT(Rules(WithHolder(Holder("app.bus.listeners", "list", "bound_method"))),
              ElementsAre("heap.callbacks"));
  Diagnosis d = WithHolder(Holder("app.bus.listeners", "list", "callable"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.callbacks"));
  EXPECT_EQ(d.causes[0].id, CauseId::kListenerAccumulation);
}

TEST(DoctorRulesTest, HeapMutableDefault) {
  HolderEvidence h = Holder("app.f.__defaults__[0]", "list", "int");
  h.via_defaults = true;
  Diagnosis d = WithHolder(h);
  ASSERT_THAT(Rules(d), ElementsAre("heap.mutable_default"));
  EXPECT_EQ(d.causes[0].id, CauseId::kGlobalState);
  EXPECT_EQ(d.causes[0].holder.value_or(""), "app.f.__defaults__");
}

TEST(DoctorRulesTest, HeapClassAttribute) {
  HolderEvidence h = Holder("app.Plugin.instances", "list", "Plugin");
  h.via_class = true;
  Diagnosis d = WithHolder(h);
  ASSERT_THAT(Rules(d), ElementsAre("heap.class_attribute"));
  EXPECT_EQ(d.causes[0].id, CauseId::kGlobalState);
}

TEST(DoctorRulesTest, HeapModuleDict) {
  Diagnosis d = WithHolder(Holder("app._memo", "dict", "str"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.module_dict"));
  EXPECT_EQ(d.causes[0].id, CauseId::kUnboundedCache);
}

TEST(DoctorRulesTest, HeapModuleContainer) {
  Diagnosis d = WithHolder(Holder("app._seen", "set", "int"));
  ASSERT_THAT(Rules(d), ElementsAre("heap.module_container"));
  EXPECT_EQ(d.causes[0].id, CauseId::kGlobalState);
  EXPECT_EQ(d.causes[0].holder.value_or(""), "app._seen");
}

TEST(DoctorRulesTest, HeapThreadLocals) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.thread_locals = {"app._local"};
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("heap.thread_locals"));
  EXPECT_EQ(d.causes[0].id, CauseId::kThreadLocal);
  EXPECT_EQ(d.causes[0].holder.value_or(""), "app._local");
  EXPECT_DOUBLE_EQ(d.causes[0].confidence, 0.7);
}

TEST(DoctorRulesTest, HeapNumpyBuffers) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.numpy_bytes = 800 * kRepeat * 3 / 4;
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("heap.numpy_buffers"));
  EXPECT_EQ(d.causes[0].id, CauseId::kArrayCopies);
  // NumPy's share at half or below: unexplained.
  inv.numpy_bytes = 800 * kRepeat / 2;
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.unexplained"));
}

TEST(DoctorRulesTest, HeapUnexplained) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.chain = "app.registry -> list -> Node";
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("heap.unexplained"));
  EXPECT_EQ(d.causes[0].id, CauseId::kGlobalState);
  EXPECT_FALSE(d.causes[0].holder.has_value());
  // The heap's evidence first, the chain last.
  ASSERT_GE(d.causes[0].evidence.size(), 3u);
  EXPECT_EQ(d.causes[0].evidence.front().kind, Evidence::Kind::kHeapGrew);
  EXPECT_EQ(d.causes[0].evidence.back().kind, Evidence::Kind::kChain);
  // Traced growth but blocks and bytes only now and then: no heap cause.
  Investigation noisy = Quiet();
  noisy.iterations[2].blocks = 3;
  noisy.iterations[2].traced_bytes = 300;
  EXPECT_TRUE(Decide(noisy).causes.empty());
}

TEST(DoctorRulesTest, AHolderGainingEveryIterationIsHeapGrowthWithoutTheCounters) {
  Investigation inv = Quiet();
  inv.holders.push_back(Holder("app._seen", "list", "int"));
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.module_container"));
}

// ---- verdict rows: with no cause, the first that matches.

TEST(DoctorRulesTest, VerdictIrregular) {
  Investigation inv = Quiet();
  for (size_t i = 0; i < inv.iterations.size(); i += 2) {
    inv.iterations[i].blocks = 3;
    inv.iterations[i].traced_bytes = 600;
  }
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kInconclusive);
  ASSERT_EQ(d.remarks.size(), 1u);
  EXPECT_EQ(d.remarks[0].kind, Evidence::Kind::kIrregular);
  EXPECT_EQ(d.remarks[0].amount, 5);
  // Grew in 4 of 10: no leak.
  inv.iterations[0].blocks = 0;
  EXPECT_EQ(Decide(inv).verdict, Verdict::kNoLeak);
  // Below the noise floor (a few untracked bytes), however often: no leak.
  for (size_t i = 0; i < inv.iterations.size(); i += 2) {
    inv.iterations[i].blocks = 3;
    inv.iterations[i].traced_bytes = 40;
  }
  EXPECT_EQ(Decide(inv).verdict, Verdict::kNoLeak);
}

TEST(DoctorRulesTest, NotePlateau) {
  Investigation inv = Quiet();
  HolderEvidence h = Holder("app._cache", "dict", "str", 8);
  h.series.back() = h.series[h.series.size() - 2];  // the last step is 0
  inv.holders.push_back(h);
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kNoLeak);
  EXPECT_EQ(d.note, Note::kPlateau);
  ASSERT_EQ(d.remarks.size(), 1u);
  EXPECT_EQ(d.remarks[0].subject, "app._cache");
  EXPECT_EQ(d.remarks[0].amount, 72);
}

TEST(DoctorRulesTest, NoteOneTimeGrowth) {
  Investigation inv = Quiet(/*warmup=*/1);
  inv.iterations[0].blocks = 500;
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.note, Note::kOneTimeGrowth);
  EXPECT_EQ(d.remarks.at(0).amount, 500);
  inv.iterations[0].blocks = 99;
  EXPECT_FALSE(Decide(inv).note.has_value());
}

TEST(DoctorRulesTest, NoteCyclicChurn) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::gc_freed, 40);
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.note, Note::kCyclicChurn);
  EXPECT_EQ(d.remarks.at(0).amount, 40);
  inv.gc_automatic = false;
  EXPECT_FALSE(Decide(inv).note.has_value());
}

TEST(DoctorRulesTest, NoteAllocatorRetention) {
  Investigation inv = Quiet();
  inv.iterations[3].rss_bytes = 2 << 20;  // one jump, then flat
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kNoLeak);
  EXPECT_EQ(d.note, Note::kAllocatorRetention);
  inv.iterations[3].rss_bytes = 512 * 1024;
  EXPECT_FALSE(Decide(inv).note.has_value());
}

TEST(DoctorRulesTest, HeapSavedGarbage) {
  HolderEvidence h = Holder("gc.garbage", "list", "");
  h.registry = "gc.garbage";
  Diagnosis d = WithHolder(h);
  ASSERT_THAT(Rules(d), ElementsAre("heap.saved_garbage"));
  EXPECT_EQ(d.causes[0].id, CauseId::kReferenceCycles);
  EXPECT_EQ(d.causes[0].holder.value_or(""), "gc.garbage");
  EXPECT_THAT(RenderEvidence(d.causes[0].evidence.back()), HasSubstr("DEBUG_SAVEALL"));
}

TEST(DoctorRulesTest, HeapDataFrameIsArrays) {
  EXPECT_THAT(Rules(WithHolder(Holder("app.df", "dataframe", "", 100))),
              ElementsAre("heap.arrays"));
}

TEST(DoctorRulesTest, HeapRegisteredCallbacks) {
  HolderEvidence h = Holder("atexit (registered callbacks)", "callbacks", "callable");
  h.registry = "callbacks";
  EXPECT_THAT(Rules(WithHolder(h)), ElementsAre("heap.callbacks"));
  // An event loop's timers.
  EXPECT_THAT(Rules(WithHolder(Holder("app.loop._scheduled", "list", "callback"))),
              ElementsAre("heap.callbacks"));
}

TEST(DoctorRulesTest, HeapContextVariable) {
  HolderEvidence h = Holder("app._trail.get()", "list", "tuple");
  h.via_contextvar = true;
  Diagnosis d = WithHolder(h);
  ASSERT_THAT(Rules(d), ElementsAre("heap.context_variable"));
  EXPECT_EQ(d.causes[0].id, CauseId::kThreadLocal);
}

TEST(DoctorRulesTest, HeapRegistry) {
  HolderEvidence h = Holder("sys.modules", "dict", "module");
  h.registry = "modules";
  Diagnosis d = WithHolder(h);
  ASSERT_THAT(Rules(d), ElementsAre("heap.registry"));
  EXPECT_EQ(d.causes[0].id, CauseId::kGlobalState);
  EXPECT_THAT(RenderEvidence(d.causes[0].evidence.back()), HasSubstr("sys.modules"));
}

TEST(DoctorRulesTest, AScriptContainerBeatsARegistry) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  HolderEvidence registry = Holder("sys.modules", "dict", "module");
  registry.registry = "modules";
  inv.holders.push_back(registry);
  inv.holders.push_back(Holder("app.plugins.loaded", "list", "module"));
  EXPECT_EQ(Decide(inv).causes.at(0).holder.value_or(""), "app.plugins.loaded");
}

TEST(DoctorRulesTest, UnexplainedNamesTheContainerOnTheChain) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.chain = "module lib .__dict__['_seen'] -> list[3]";
  inv.chain_holder = "lib._seen";
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("heap.unexplained"));
  EXPECT_EQ(d.causes[0].holder.value_or(""), "lib._seen");
}

TEST(DoctorRulesTest, VerdictNoiseBelowTheFloor) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::blocks, 1);
  GrowTraced(inv, 56);  // one short string an interpreter cache keeps
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kNoLeak);
  ASSERT_EQ(d.remarks.size(), 1u);
  EXPECT_EQ(d.remarks[0].kind, Evidence::Kind::kBelowNoiseFloor);
  // Tracked objects of one type per iteration are above it.
  inv.types.push_back({"Record", 1.0});
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.unexplained"));
  // So is a chain, unless a bounded container holds its sample.
  inv.types.clear();
  inv.chain = "module app .__dict__['cache'] -> LRU.__dict__['_map'] -> dict<key>";
  inv.chain_holder = "app.cache._map";
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.unexplained"));
  HolderEvidence full = Holder("app.cache._map", "dict", "str", 0);
  full.limit = 400;
  inv.holders.push_back(full);
  EXPECT_EQ(Decide(inv).verdict, Verdict::kNoLeak);
}

TEST(DoctorRulesTest, VerdictSettling) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::blocks, 2);
  for (int i = 0; i < kRepeat; ++i) inv.iterations[i].traced_bytes = 4000 >> (i / 2);
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kInconclusive);
  ASSERT_FALSE(d.remarks.empty());
  EXPECT_EQ(d.remarks[0].kind, Evidence::Kind::kSettling);
  // The same total at a steady rate is a leak.
  GrowTraced(inv, 800);
  EXPECT_EQ(Decide(inv).verdict, Verdict::kLeak);
}

TEST(DoctorRulesTest, NoteBoundedWhileFilling) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  HolderEvidence window = Holder("app._window", "deque", "tuple", 100);
  window.limit = 5000;
  inv.holders.push_back(window);
  Diagnosis d = Decide(inv);
  EXPECT_EQ(d.verdict, Verdict::kNoLeak);
  EXPECT_EQ(d.note, Note::kPlateau);
  ASSERT_EQ(d.remarks.size(), 1u);
  EXPECT_EQ(d.remarks[0].kind, Evidence::Kind::kBounded);
  EXPECT_EQ(d.remarks[0].other, 5000);
  EXPECT_EQ(d.remarks[0].amount, 1000);
  // A limit the growth would reach only far beyond the budget bounds nothing.
  inv.holders.back().limit = 1000000000;
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.module_container"));
  // An internal cache filling beside a container without a limit: a leak.
  inv.holders.back().limit = 5000;
  inv.holders.back().internal = true;
  inv.holders.push_back(Holder("app._seen", "set", "int"));
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("heap.module_container"));
}

// ---- tie-breaks

TEST(DoctorRulesTest, CausesRankByConfidenceAndEqualOnesKeepTableOrder) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::threads, 1);
  Grow(inv, &IterationDelta::fds, 1);
  HeapGrows(inv);
  inv.holders.push_back(Holder("app._seen", "set", "int"));
  // fds 0.95, then threads 0.90 and the heap's 0.90 in table order.
  EXPECT_THAT(Rules(Decide(inv)),
              ElementsAre("fds_steady", "threads_steady", "heap.module_container"));
}

TEST(DoctorRulesTest, NativeGrowthSuppressesTheHeap) {
  Investigation inv = Quiet();
  Grow(inv, &IterationDelta::rss_bytes, 64 * 1024);
  Grow(inv, &IterationDelta::blocks, 5);
  GrowTraced(inv, 100);
  inv.holders.push_back(Holder("app._maps", "list", "mmap"));
  Diagnosis d = Decide(inv);
  ASSERT_THAT(Rules(d), ElementsAre("native_growth"));
  EXPECT_EQ(d.causes[0].holder.value_or(""), "app._maps");
}

TEST(DoctorRulesTest, CyclesAloneSuppressTheHeapButNotAfterAnotherCause) {
  Investigation inv = Quiet();
  inv.gc_automatic = false;
  inv.cyclic_garbage = 3 * kRepeat;
  HeapGrows(inv);
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("cycles_gc_off"));
  Grow(inv, &IterationDelta::fds, 1);
  EXPECT_THAT(Rules(Decide(inv)), ElementsAre("fds_steady", "cycles_gc_off", "heap.unexplained"));
}

TEST(DoctorRulesTest, TheFirstHeapRowWins) {
  // A functools cache holding closures is a cache (row 12 before row 13).
  EXPECT_THAT(Rules(WithHolder(Holder("app.make", "lru_cache", "closure"))),
              ElementsAre("heap.lru_cache"));
  // A class attribute that is a dict is a class attribute (16 before 17).
  HolderEvidence h = Holder("app.Plugin.registry", "dict", "str");
  h.via_class = true;
  EXPECT_THAT(Rules(WithHolder(h)), ElementsAre("heap.class_attribute"));
}

TEST(DoctorRulesTest, TheShortestSteadyHolderIsNamed) {
  Investigation inv = Quiet();
  HeapGrows(inv);
  inv.holders.push_back(Holder("app.registry.by_name", "dict", "str"));
  inv.holders.push_back(Holder("app.registry", "dict", "str"));
  EXPECT_EQ(Decide(inv).causes.at(0).holder.value_or(""), "app.registry");
}

TEST(DoctorRulesTest, TheIrregularVerdictComesBeforeTheNotes) {
  Investigation inv = Quiet(/*warmup=*/1);
  inv.iterations[0].blocks = 500;  // would be one_time_growth
  for (size_t i = 1; i < inv.iterations.size(); i += 2) {
    inv.iterations[i].blocks = 3;
    inv.iterations[i].traced_bytes = 600;
  }
  EXPECT_EQ(Decide(inv).verdict, Verdict::kInconclusive);
}

// ---- the table in docs/doctor.md is DoctorRules()

std::string ReadDoc() {
  std::ifstream in(LEAKGUARD_EXAMPLES_DIR "/../docs/doctor.md");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Cell(absl::string_view cell) {
  std::string s(absl::StripAsciiWhitespace(cell));
  absl::StrReplaceAll({{"`", ""}}, &s);
  return s == "—" ? "" : s;
}

TEST(DoctorRulesTest, TheDocumentedTableIsTheCodesTable) {
  const std::string doc = ReadDoc();
  ASSERT_FALSE(doc.empty());
  std::vector<std::vector<std::string>> rows;
  bool in_table = false;
  for (absl::string_view line : absl::StrSplit(doc, '\n')) {
    if (absl::StartsWith(line, "| order | rule |")) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (!absl::StartsWith(line, "|")) break;
    if (absl::StartsWith(line, "| ---")) continue;
    std::vector<std::string> cells;
    std::vector<absl::string_view> parts = absl::StrSplit(line, '|');
    for (size_t i = 1; i + 1 < parts.size(); ++i) cells.push_back(Cell(parts[i]));
    rows.push_back(cells);
  }
  const std::vector<DoctorRule>& rules = DoctorRules();
  ASSERT_EQ(rows.size(), rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    const DoctorRule& r = rules[i];
    ASSERT_EQ(rows[i].size(), 7u) << i;
    EXPECT_EQ(rows[i][0], std::to_string(r.order));
    EXPECT_EQ(rows[i][1], r.id);
    EXPECT_EQ(rows[i][2], r.group);
    EXPECT_EQ(rows[i][3], r.cause ? std::string(CauseIdName(*r.cause)) : std::string(r.outcome));
    EXPECT_EQ(rows[i][4], absl::StrFormat("%.2f", r.confidence));
    EXPECT_EQ(rows[i][5], r.when) << r.id;
    EXPECT_EQ(rows[i][6], r.suppresses) << r.id;
  }
}

TEST(DoctorRulesTest, EveryNameParsesBack) {
  for (const DoctorRule& r : DoctorRules()) {
    if (r.cause) {
      EXPECT_EQ(ParseCauseId(CauseIdName(*r.cause)), r.cause);
      EXPECT_FALSE(CauseFix(*r.cause).empty());
    }
  }
  for (Verdict v : {Verdict::kLeak, Verdict::kNoLeak, Verdict::kInconclusive}) {
    EXPECT_EQ(ParseVerdict(VerdictName(v)), v);
  }
  for (Note n :
       {Note::kPlateau, Note::kOneTimeGrowth, Note::kAllocatorRetention, Note::kCyclicChurn}) {
    EXPECT_EQ(ParseNote(NoteName(n)), n);
  }
  EXPECT_FALSE(ParseCauseId("leak").has_value());
}

}  // namespace
}  // namespace leakguard
