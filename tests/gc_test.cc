// The gc probe: collections with exact counts, stats, thresholds, freezing,
// and the three scopes (DEBUG_SAVEALL, pause with a plan, callbacks), each
// restoring what it changed on every exit path.

#include "leakguard/gc.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Ref Shapes() {
  Ref module = Steal(PyImport_ImportModule("graph_gc_shapes"));
  if (!module) ADD_FAILURE() << StatusFromPythonError();
  return module;
}

// graph_gc_shapes.<name>(n)
Ref Make(const char* name, long n) {
  Ref module = Shapes();
  Ref result = Steal(PyObject_CallMethod(module.get(), name, "l", n));
  if (!result) ADD_FAILURE() << StatusFromPythonError();
  return result;
}

// graph_gc_shapes.make_plain_cycle(): a weakref to a Plain in a cycle.
Ref MakePlainCycle() {
  Ref module = Shapes();
  Ref result = Steal(PyObject_CallMethod(module.get(), "make_plain_cycle", nullptr));
  if (!result) ADD_FAILURE() << StatusFromPythonError();
  return result;
}

bool Dead(const Ref& weak) {
  Ref target = Steal(PyObject_CallNoArgs(weak.get()));
  return target.get() == Py_None;
}

// Instances of graph_gc_shapes.Plain the collector still tracks.
long PlainsAlive() {
  Ref n =
      testing::Eval("sum(1 for o in gc.get_objects() if type(o).__name__ == 'Plain')", "import gc");
  return n ? PyLong_AsLong(n.get()) : -1;
}

long Deleted() {
  Ref module = Shapes();
  Ref value = Steal(PyObject_GetAttrString(module.get(), "deleted"));
  return value ? PyLong_AsLong(value.get()) : -1;
}

Ref GcAttr(const char* name) {
  Ref gc = Steal(PyImport_ImportModule("gc"));
  return Steal(PyObject_GetAttrString(gc.get(), name));
}

Py_ssize_t GarbageSize() { return PyList_Size(GcAttr("garbage").get()); }

// Holds automatic collection off for a test, so that cycles a test makes
// are found by the test's own collection and counted exactly.
class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(gc::SetEnabled(false).ok());
    ASSERT_TRUE(Shapes());            // Imported (its garbage made) ...
    ASSERT_TRUE(gc::Collect().ok());  // ... and collected: no garbage left.
  }
  void TearDown() override { EXPECT_TRUE(gc::SetEnabled(true).ok()); }
};

// A C type with the legacy tp_del slot: the one kind of object that still
// ends up uncollectable in gc.garbage since PEP 442.
struct LegacyObject {
  PyObject_HEAD PyObject* ref;
};

int LegacyTraverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<LegacyObject*>(self)->ref);
  Py_VISIT(reinterpret_cast<PyObject*>(Py_TYPE(self)));
  return 0;
}

int LegacyClear(PyObject* self) {
  Py_CLEAR(reinterpret_cast<LegacyObject*>(self)->ref);
  return 0;
}

void LegacyDel(PyObject*) {}

void LegacyDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  LegacyClear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

Ref LegacyType() {
  static PyType_Slot slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(&LegacyTraverse)},
                                {Py_tp_clear, reinterpret_cast<void*>(&LegacyClear)},
                                {Py_tp_del, reinterpret_cast<void*>(&LegacyDel)},
                                {Py_tp_dealloc, reinterpret_cast<void*>(&LegacyDealloc)},
                                {0, nullptr}};
  static PyType_Spec spec = {"gc_test.Legacy", sizeof(LegacyObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slots};
  return Steal(PyType_FromSpec(&spec));
}

TEST_F(GcTest, CyclesWithDelAreCollectedNotUncollectable) {
  const long deleted_before = Deleted();
  const Py_ssize_t garbage_before = GarbageSize();
  Make("make_del_cycles", 100);
  absl::StatusOr<gc::CollectResult> result = gc::Collect(2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->generation, 2);
  EXPECT_EQ(result->collected, 200);
  EXPECT_EQ(result->uncollectable, 0);
  EXPECT_GT(result->duration, absl::ZeroDuration());
  EXPECT_EQ(Deleted() - deleted_before, 200);  // Every __del__ ran.
  EXPECT_EQ(GarbageSize(), garbage_before);    // Nothing in gc.garbage.
}

TEST_F(GcTest, LegacyTpDelCycleIsUncollectableAndLandsInGarbage) {
  Ref type = LegacyType();
  ASSERT_TRUE(type) << StatusFromPythonError();
  Ref garbage = GcAttr("garbage");
  const Py_ssize_t before = PyList_GET_SIZE(garbage.get());
  PyObject* raw = nullptr;
  {
    Ref obj = Steal(PyObject_CallNoArgs(type.get()));
    ASSERT_TRUE(obj) << StatusFromPythonError();
    Py_INCREF(obj.get());
    reinterpret_cast<LegacyObject*>(obj.get())->ref = obj.get();  // Cycle.
    raw = obj.get();
  }
  absl::StatusOr<gc::CollectResult> result = gc::Collect(2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->collected, 0);
  EXPECT_EQ(result->uncollectable, 1);
  ASSERT_EQ(PyList_GET_SIZE(garbage.get()), before + 1);
  EXPECT_EQ(PyList_GET_ITEM(garbage.get(), before), raw);
  // Clean up: take it out of gc.garbage and break the cycle by hand.
  Ref obj = Borrow(raw);
  ASSERT_EQ(PySequence_DelItem(garbage.get(), before), 0);
  LegacyClear(obj.get());
}

TEST_F(GcTest, YoungGenerationsAreCountedSeparately) {
  Make("make_list_cycles", 7);
  absl::StatusOr<std::vector<gc::GenerationStats>> before = gc::Stats();
  ASSERT_TRUE(before.ok()) << before.status();
  absl::StatusOr<gc::CollectResult> result = gc::Collect(0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->generation, 0);
  EXPECT_EQ(result->collected, 7);
  absl::StatusOr<std::vector<gc::GenerationStats>> after = gc::Stats();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 3u);
  EXPECT_EQ((*after)[0].collections, (*before)[0].collections + 1);
  EXPECT_EQ((*after)[0].collected, (*before)[0].collected + 7);
  EXPECT_EQ((*after)[2].collections, (*before)[2].collections);
}

TEST_F(GcTest, StatsMatchTheGcModule) {
  absl::StatusOr<std::vector<gc::GenerationStats>> stats = gc::Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  Ref py_stats = Steal(PyObject_CallNoArgs(GcAttr("get_stats").get()));
  Ref py_threshold = Steal(PyObject_CallNoArgs(GcAttr("get_threshold").get()));
  ASSERT_EQ(stats->size(), 3u);
  for (int g = 0; g < 3; ++g) {
    const gc::GenerationStats& row = (*stats)[g];
    EXPECT_EQ(row.generation, g);
    PyObject* py_row = PyList_GetItem(py_stats.get(), g);
    EXPECT_EQ(row.collections, PyLong_AsLongLong(PyDict_GetItemString(py_row, "collections")));
    EXPECT_EQ(row.collected, PyLong_AsLongLong(PyDict_GetItemString(py_row, "collected")));
    EXPECT_EQ(row.threshold, PyLong_AsLongLong(PyTuple_GetItem(py_threshold.get(), g)));
  }
  absl::StatusOr<std::vector<int64_t>> counts = gc::Counts();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->size(), 3u);
}

TEST_F(GcTest, ThresholdsRoundTripAndBadValuesChangeNothing) {
  absl::StatusOr<std::vector<int64_t>> original = gc::Thresholds();
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_TRUE(gc::SetThresholds({1234, 11, 12}).ok());
  EXPECT_THAT(*gc::Thresholds(), ElementsAre(1234, 11, 12));
  ASSERT_TRUE(gc::SetThresholds({999}).ok());  // Only generation 0.
  EXPECT_THAT(*gc::Thresholds(), ElementsAre(999, 11, 12));

  absl::Status negative = gc::SetThresholds({5, -1});
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(negative.message()), HasSubstr("generation 1"));
  EXPECT_EQ(gc::SetThresholds({}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gc::SetThresholds({1, 2, 3, 4}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*gc::Thresholds(), ElementsAre(999, 11, 12));  // Unchanged.
  ASSERT_TRUE(gc::SetThresholds(*original).ok());
}

TEST_F(GcTest, BadGenerationIsInvalidArgument) {
  for (int generation : {-1, 3}) {
    absl::StatusOr<gc::CollectResult> result = gc::Collect(generation);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(result.status().message()), HasSubstr("generation must be 0, 1 or 2"));
  }
}

TEST_F(GcTest, FreezeMovesObjectsOutOfCollectionAndBack) {
  ASSERT_EQ(*gc::FreezeCount(), 0);
  ASSERT_TRUE(gc::Freeze().ok());
  EXPECT_GT(*gc::FreezeCount(), 1000);
  // A cycle made before freezing survives a full collection while frozen.
  ASSERT_TRUE(gc::Unfreeze().ok());
  Ref weak = MakePlainCycle();
  ASSERT_TRUE(gc::Freeze().ok());
  ASSERT_TRUE(gc::Collect(2).ok());
  EXPECT_FALSE(Dead(weak));
  ASSERT_TRUE(gc::Unfreeze().ok());
  EXPECT_EQ(*gc::FreezeCount(), 0);
  ASSERT_TRUE(gc::Collect(2).ok());
  EXPECT_TRUE(Dead(weak));
}

TEST_F(GcTest, DebugFlagsRoundTrip) {
  ASSERT_EQ(*gc::DebugFlags(), 0);
  ASSERT_TRUE(gc::SetDebugFlags(gc::kDebugSaveAll).ok());
  EXPECT_EQ(*gc::DebugFlags(), gc::kDebugSaveAll);
  ASSERT_TRUE(gc::SetDebugFlags(0).ok());
  EXPECT_EQ(gc::SetDebugFlags(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*gc::DebugFlags(), 0);
}

TEST_F(GcTest, EveryCallWithoutTheGilIsFailedPrecondition) {
  std::vector<absl::StatusCode> codes;
  {
    GilRelease release;
    std::thread([&codes] {
      codes.push_back(gc::Collect().status().code());
      codes.push_back(gc::Stats().status().code());
      codes.push_back(gc::Counts().status().code());
      codes.push_back(gc::Thresholds().status().code());
      codes.push_back(gc::SetThresholds({700}).code());
      codes.push_back(gc::IsEnabled().status().code());
      codes.push_back(gc::SetEnabled(true).code());
      codes.push_back(gc::DebugFlags().status().code());
      codes.push_back(gc::SetDebugFlags(0).code());
      codes.push_back(gc::Freeze().code());
      codes.push_back(gc::Unfreeze().code());
      codes.push_back(gc::FreezeCount().status().code());
      codes.push_back(gc::SaveAllScope::Begin().status().code());
      codes.push_back(gc::PauseScope::Begin({.every_allocations = 10}).status().code());
      codes.push_back(gc::CollectionRecorder::Begin().status().code());
    }).join();
  }
  ASSERT_EQ(codes.size(), 15u);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], absl::StatusCode::kFailedPrecondition) << "call " << i;
  }
  EXPECT_FALSE(*gc::IsEnabled());  // Nothing changed (the fixture's state).
}

// ------------------------------------------------------------ SaveAllScope

TEST_F(GcTest, SaveAllSummarisesGarbageByTypeAndRemovesOnlyItsOwn) {
  Ref garbage = GcAttr("garbage");
  Ref sentinel = Steal(PyUnicode_FromString("pre-existing entry"));
  ASSERT_EQ(PyList_Append(garbage.get(), sentinel.get()), 0);
  const Py_ssize_t before = PyList_GET_SIZE(garbage.get());
  Ref weak;
  {
    auto scope = gc::SaveAllScope::Begin();
    ASSERT_TRUE(scope.ok()) << scope.status();
    EXPECT_EQ(*gc::DebugFlags(), gc::kDebugSaveAll);
    Make("make_list_cycles", 10);
    Make("make_dict_cycles", 5);
    weak = MakePlainCycle();
    absl::StatusOr<gc::GarbageReport> report = (*scope)->Collect();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->collection.collected, 16);
    EXPECT_EQ(report->collection.uncollectable, 0);
    EXPECT_EQ(report->total, 16);
    ASSERT_EQ(report->types.size(), 3u);
    EXPECT_EQ(report->types[0].type_name, "list");
    EXPECT_EQ(report->types[0].count, 10);
    EXPECT_THAT(report->types[0].samples, ElementsAre("[[...]]", "[[...]]", "[[...]]"));
    EXPECT_EQ(report->types[1].type_name, "dict");
    EXPECT_EQ(report->types[1].count, 5);
    EXPECT_EQ(report->types[1].samples[0], "{'self': {...}}");
    EXPECT_EQ(report->types[2].type_name, "Plain");
    EXPECT_THAT(report->types[2].samples, ElementsAre("<Plain>"));
    EXPECT_EQ(PyList_GET_SIZE(garbage.get()), before + 16);
    // The collector cleared the weakref (it does so for everything it finds
    // unreachable), but gc.garbage keeps the object itself alive.
    EXPECT_TRUE(Dead(weak));
    EXPECT_EQ(PlainsAlive(), 1);
  }
  EXPECT_EQ(*gc::DebugFlags(), 0);
  ASSERT_EQ(PyList_GET_SIZE(garbage.get()), before);
  EXPECT_EQ(PyList_GET_ITEM(garbage.get(), before - 1), sentinel.get());
  EXPECT_EQ(PlainsAlive(), 0);  // collect_on_exit freed the saved cycles.
  ASSERT_EQ(PySequence_DelItem(garbage.get(), before - 1), 0);
}

TEST_F(GcTest, SaveAllTruncatesReprsAndLimitsSamples) {
  auto scope = gc::SaveAllScope::Begin({.samples_per_type = 1, .max_repr_length = 10});
  ASSERT_TRUE(scope.ok()) << scope.status();
  Make("make_dict_cycles", 3);
  absl::StatusOr<gc::GarbageReport> report = (*scope)->Collect(2);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->types.size(), 1u);
  EXPECT_EQ(report->types[0].count, 3);
  EXPECT_THAT(report->types[0].samples, ElementsAre("{'self'..."));
}

TEST_F(GcTest, SaveAllRejectsBadOptionsAndChangesNothing) {
  EXPECT_EQ(gc::SaveAllScope::Begin({.samples_per_type = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gc::SaveAllScope::Begin({.max_repr_length = 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*gc::DebugFlags(), 0);
  auto scope = gc::SaveAllScope::Begin();
  ASSERT_TRUE(scope.ok());
  EXPECT_EQ((*scope)->Collect(5).status().code(), absl::StatusCode::kInvalidArgument);
}

absl::Status SaveAllWithEarlyReturn(bool fail) {
  auto scope = gc::SaveAllScope::Begin();
  if (!scope.ok()) return scope.status();
  Make("make_list_cycles", 4);
  if (!(*scope)->Collect().ok()) return absl::InternalError("collect");
  if (fail) return absl::CancelledError("early return");
  return absl::OkStatus();
}

TEST_F(GcTest, SaveAllRestoresOnEarlyReturnAndOnException) {
  const Py_ssize_t before = GarbageSize();
  EXPECT_EQ(SaveAllWithEarlyReturn(true).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(*gc::DebugFlags(), 0);
  EXPECT_EQ(GarbageSize(), before);

  try {
    auto scope = gc::SaveAllScope::Begin();
    ASSERT_TRUE(scope.ok());
    Make("make_list_cycles", 4);
    ASSERT_TRUE((*scope)->Collect().ok());
    EXPECT_EQ(GarbageSize(), before + 4);
    throw std::runtime_error("through the scope");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(*gc::DebugFlags(), 0);
  EXPECT_EQ(GarbageSize(), before);
}

TEST_F(GcTest, SaveAllUnderAnExistingSaveAllRemovesOnlyItsOwnCollections) {
  ASSERT_TRUE(gc::SetDebugFlags(gc::kDebugSaveAll).ok());
  Ref garbage = GcAttr("garbage");
  const Py_ssize_t before = PyList_GET_SIZE(garbage.get());
  Make("make_list_cycles", 2);
  ASSERT_TRUE(gc::Collect().ok());  // The host's own saved garbage: 2.
  {
    auto scope = gc::SaveAllScope::Begin();
    ASSERT_TRUE(scope.ok());
    Make("make_list_cycles", 3);
    absl::StatusOr<gc::GarbageReport> report = (*scope)->Collect();
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->total, 3);
  }
  EXPECT_EQ(*gc::DebugFlags(), gc::kDebugSaveAll);  // Still on, as before.
  EXPECT_EQ(PyList_GET_SIZE(garbage.get()), before + 2);
  ASSERT_TRUE(gc::SetDebugFlags(0).ok());
  ASSERT_EQ(PyList_SetSlice(garbage.get(), before, PY_SSIZE_T_MAX, nullptr), 0);
}

// -------------------------------------------------------------- PauseScope

TEST_F(GcTest, PauseNeedsAPlanAndValidOptions) {
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  absl::StatusOr<std::unique_ptr<gc::PauseScope>> none = gc::PauseScope::Begin({});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("needs a plan"));
  EXPECT_EQ(gc::PauseScope::Begin({.every_allocations = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gc::PauseScope::Begin({.every = absl::Milliseconds(-5)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gc::PauseScope::Begin({.every_allocations = 5, .generation = 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(*gc::IsEnabled());  // Unchanged by the failures.
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
}

TEST_F(GcTest, PauseCollectsOnTickWhenAllocationsAccumulate) {
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  absl::StatusOr<std::vector<gc::GenerationStats>> before = gc::Stats();
  {
    auto pause =
        gc::PauseScope::Begin({.every_allocations = 1000, .check_interval = absl::ZeroDuration()});
    ASSERT_TRUE(pause.ok()) << pause.status();
    EXPECT_EQ(Interpreter::WatcherCount(), 0u);  // Tick-only: no thread.
    EXPECT_FALSE(*gc::IsEnabled());
    EXPECT_FALSE(*(*pause)->Tick());
    // 1500 container objects kept alive: the count passes 1000 and no
    // automatic collection happens (gen 0's threshold is 700).
    Ref keep = testing::Eval("[[] for _ in range(1500)]");
    EXPECT_FALSE(*gc::IsEnabled());
    EXPECT_TRUE(*(*pause)->Tick());
    EXPECT_EQ((*pause)->collections(), 1);
    EXPECT_FALSE(*(*pause)->Tick());  // The count restarted.
  }
  EXPECT_TRUE(*gc::IsEnabled());
  absl::StatusOr<std::vector<gc::GenerationStats>> after = gc::Stats();
  // The Tick() collection and the one on exit, both full ones.
  EXPECT_EQ((*after)[2].collections, (*before)[2].collections + 2);
}

TEST_F(GcTest, PauseRunsTimedCollectionsOnItsThreadWithoutHoldingTheGil) {
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  {
    auto pause = gc::PauseScope::Begin({.every = absl::Milliseconds(5), .generation = 0});
    ASSERT_TRUE(pause.ok()) << pause.status();
    EXPECT_EQ(Interpreter::WatcherCount(), 1u);
    // Give the thread the GIL until it has collected a few times.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while ((*pause)->collections() < 3 && absl::Now() < deadline) {
      GilRelease release;
      absl::SleepFor(absl::Milliseconds(2));
    }
    EXPECT_GE((*pause)->collections(), 3);
    EXPECT_FALSE(*gc::IsEnabled());
  }
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);
  EXPECT_TRUE(*gc::IsEnabled());
}

TEST_F(GcTest, PauseThreadCollectsWhenAllocationsAccumulate) {
  auto pause =
      gc::PauseScope::Begin({.every_allocations = 200, .check_interval = absl::Milliseconds(1)});
  ASSERT_TRUE(pause.ok()) << pause.status();
  Ref keep = testing::Eval("[[] for _ in range(400)]");
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*pause)->collections() < 1 && absl::Now() < deadline) {
    GilRelease release;
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ((*pause)->collections(), 1);
}

absl::Status PauseWithEarlyReturn() {
  auto pause = gc::PauseScope::Begin({.every = absl::Seconds(60)});
  if (!pause.ok()) return pause.status();
  absl::StatusOr<bool> enabled = gc::IsEnabled();
  if (!enabled.ok() || *enabled) return absl::InternalError("not paused");
  return absl::CancelledError("early return");
}

TEST_F(GcTest, PauseRestoresOnEarlyReturnExceptionAndNesting) {
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  EXPECT_EQ(PauseWithEarlyReturn().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(*gc::IsEnabled());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);

  try {
    auto pause = gc::PauseScope::Begin({.every = absl::Seconds(60)});
    ASSERT_TRUE(pause.ok());
    throw std::runtime_error("through the scope");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(*gc::IsEnabled());
  EXPECT_EQ(Interpreter::WatcherCount(), 0u);

  {
    auto outer = gc::PauseScope::Begin(
        {.every_allocations = 100000, .check_interval = absl::ZeroDuration()});
    ASSERT_TRUE(outer.ok());
    {
      auto inner = gc::PauseScope::Begin({.every = absl::Seconds(60)});
      ASSERT_TRUE(inner.ok());
    }
    EXPECT_FALSE(*gc::IsEnabled());  // The inner one restored "disabled".
  }
  EXPECT_TRUE(*gc::IsEnabled());
}

// ------------------------------------------------------ CollectionRecorder

TEST_F(GcTest, RecorderSeesEveryCollectionWithItsCounts) {
  auto recorder = gc::CollectionRecorder::Begin();
  ASSERT_TRUE(recorder.ok()) << recorder.status();
  ASSERT_TRUE(gc::Collect(0).ok());
  ASSERT_TRUE(gc::Collect(1).ok());
  Make("make_list_cycles", 7);
  ASSERT_TRUE(gc::Collect(2).ok());
  Make("make_del_cycles", 3);
  ASSERT_TRUE(gc::Collect(2).ok());
  std::vector<gc::CollectionEvent> events = (*recorder)->Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].generation, 0);
  EXPECT_EQ(events[1].generation, 1);
  EXPECT_EQ(events[2].generation, 2);
  EXPECT_EQ(events[2].collected, 7);
  EXPECT_EQ(events[3].collected, 6);
  EXPECT_EQ(events[3].uncollectable, 0);
  std::vector<gc::GenerationPauses> summary = (*recorder)->Summary();
  ASSERT_EQ(summary.size(), 3u);
  EXPECT_EQ(summary[0].count, 1);
  EXPECT_EQ(summary[1].count, 1);
  EXPECT_EQ(summary[2].count, 2);
  EXPECT_EQ(summary[2].collected, 13);
  EXPECT_EQ(summary[2].total, events[2].duration + events[3].duration);
  EXPECT_EQ(summary[2].max, std::max(events[2].duration, events[3].duration));
  EXPECT_GT(summary[2].max, absl::ZeroDuration());
  EXPECT_EQ((*recorder)->dropped_events(), 0);
}

TEST_F(GcTest, RecorderKeepsAtMostMaxEventsButSummarisesAll) {
  auto recorder = gc::CollectionRecorder::Begin(2);
  ASSERT_TRUE(recorder.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gc::Collect(0).ok());
  EXPECT_EQ((*recorder)->Events().size(), 2u);
  EXPECT_EQ((*recorder)->dropped_events(), 1);
  EXPECT_EQ((*recorder)->Summary()[0].count, 3);
}

TEST_F(GcTest, RecorderRemovesExactlyItsOwnCallback) {
  Ref callbacks = GcAttr("callbacks");
  const Py_ssize_t before = PyList_GET_SIZE(callbacks.get());
  Ref other = testing::Eval("lambda phase, info: None");
  Ref ours;
  {
    auto recorder = gc::CollectionRecorder::Begin();
    ASSERT_TRUE(recorder.ok());
    ASSERT_EQ(PyList_GET_SIZE(callbacks.get()), before + 1);
    ours = Borrow(PyList_GET_ITEM(callbacks.get(), before));
    ASSERT_EQ(PyList_Append(callbacks.get(), other.get()), 0);  // After ours.
  }
  ASSERT_EQ(PyList_GET_SIZE(callbacks.get()), before + 1);
  EXPECT_EQ(PyList_GET_ITEM(callbacks.get(), before), other.get());
  ASSERT_EQ(PySequence_DelItem(callbacks.get(), before), 0);
  // A stray reference to our callback is harmless after the recorder died.
  Ref info = testing::Eval("{'generation': 2, 'collected': 1, 'uncollectable': 0}");
  Ref start = Steal(PyObject_CallFunction(ours.get(), "sO", "start", info.get()));
  Ref stop = Steal(PyObject_CallFunction(ours.get(), "sO", "stop", info.get()));
  EXPECT_EQ(start.get(), Py_None);
  EXPECT_EQ(stop.get(), Py_None);
}

TEST_F(GcTest, RecorderRemovedWhenAnExceptionPassesThrough) {
  const Py_ssize_t before = PyList_Size(GcAttr("callbacks").get());
  try {
    auto recorder = gc::CollectionRecorder::Begin();
    ASSERT_TRUE(recorder.ok());
    throw std::runtime_error("through the scope");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(PyList_Size(GcAttr("callbacks").get()), before);
}

// ------------------------------------------- a pause left to finalization

// The PauseScope that the last test leaves running, and the check, after
// test_main's environment has finalized the interpreter, that finalization
// stopped it. (Environments are torn down in reverse order of registration;
// this one registers at static initialization, before test_main's.)
std::unique_ptr<gc::PauseScope>* left_running = nullptr;

class PauseStoppedByFinalization : public ::testing::Environment {
 public:
  void TearDown() override {
    if (left_running == nullptr) return;
    EXPECT_FALSE(Py_IsInitialized());
    EXPECT_EQ(Interpreter::WatcherCount(), 0u);
    const int64_t collections = (*left_running)->collections();
    EXPECT_GE(collections, 1);
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ((*left_running)->collections(), collections);  // Thread gone.
    delete left_running;  // After finalization: touches no Python.
    left_running = nullptr;
  }
};

[[maybe_unused]] ::testing::Environment* const kPauseCheck =
    ::testing::AddGlobalTestEnvironment(new PauseStoppedByFinalization);

// Declared last so that it runs last: every test before it expects no
// watcher to be registered.
TEST(PauseAtExitTest, InterpreterFinalizationStopsARunningPause) {
  auto pause = gc::PauseScope::Begin({.every = absl::Milliseconds(1)});
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_EQ(Interpreter::WatcherCount(), 1u);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*pause)->collections() < 1 && absl::Now() < deadline) {
    GilRelease release;
    absl::SleepFor(absl::Milliseconds(2));
  }
  left_running = new std::unique_ptr<gc::PauseScope>(*std::move(pause));
}

}  // namespace
}  // namespace leakguard
