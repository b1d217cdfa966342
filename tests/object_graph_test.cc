// The object graph against objgraph on the same heap: type census equal to
// objgraph.typestats, growth equal to objgraph.growth, by_type, new objects
// since a mark, back-reference chains equal to objgraph.find_backref_chain
// (same objects, same order), rendered paths, DOT equal in edges to
// objgraph.show_backrefs, deep chains, cycles, vanishing objects.

#include "leakguard/object_graph.h"

#include <cstdio>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/gc.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Before 3.12 (PEP 709) a list comprehension is a nested function, so
// objgraph.growth keeps its `stats` dict in a cell while it counts.
constexpr bool kGrowthHasACell = PY_VERSION_HEX < 0x030C0000;

Ref Import(const char* name) {
  Ref module = Steal(PyImport_ImportModule(name));
  if (!module) ADD_FAILURE() << name << ": " << StatusFromPythonError();
  return module;
}

Ref Attr(const Ref& obj, const char* name) {
  Ref value = Steal(PyObject_GetAttrString(obj.get(), name));
  if (!value) ADD_FAILURE() << name << ": " << StatusFromPythonError();
  return value;
}

// obj.name(*args) with a vectorcall (no argument tuple that would itself
// become a referrer of the arguments).
Ref CallVector(PyObject* func, std::vector<PyObject*> args,
               std::vector<std::pair<const char*, PyObject*>> kwargs = {}) {
  Ref kwnames;
  if (!kwargs.empty()) {
    kwnames = Steal(PyTuple_New(static_cast<Py_ssize_t>(kwargs.size())));
    // A tuple of str: untracked, as a collection would make it, so that a
    // census taken by the callee does not count this temporary.
    PyObject_GC_UnTrack(kwnames.get());
    for (std::size_t i = 0; i < kwargs.size(); ++i) {
      PyTuple_SET_ITEM(kwnames.get(), static_cast<Py_ssize_t>(i),
                       PyUnicode_FromString(kwargs[i].first));
      args.push_back(kwargs[i].second);
    }
  }
  Ref result =
      Steal(PyObject_Vectorcall(func, args.data(), args.size() - kwargs.size(), kwnames.get()));
  if (!result) ADD_FAILURE() << StatusFromPythonError();
  return result;
}

std::map<std::string, int64_t> DictToMap(PyObject* dict) {
  std::map<std::string, int64_t> out;
  Py_ssize_t pos = 0;
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    out[PyUnicode_AsUTF8(key)] = PyLong_AsLongLong(value);
  }
  return out;
}

std::map<std::string, int64_t> ToMap(const std::vector<TypeCount>& counts) {
  std::map<std::string, int64_t> out;
  for (const TypeCount& row : counts) out[row.name] = row.count;
  return out;
}

// "name: ours vs theirs" for every name whose counts differ.
std::string Differences(const std::map<std::string, int64_t>& ours,
                        const std::map<std::string, int64_t>& theirs) {
  std::string out;
  std::set<std::string> names;
  for (const auto& [name, n] : ours) names.insert(name);
  for (const auto& [name, n] : theirs) names.insert(name);
  for (const std::string& name : names) {
    const int64_t a = ours.count(name) ? ours.at(name) : 0;
    const int64_t b = theirs.count(name) ? theirs.at(name) : 0;
    if (a != b) absl::StrAppend(&out, name, ": ", a, " vs ", b, "; ");
  }
  return out;
}

// The chain targets built by graph_app.setup(), once for the binary.
class ObjectGraphTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    targets_ = new std::map<std::string, Ref>();
    Ref app = Import("graph_app");
    Ref made = Steal(PyObject_CallMethod(app.get(), "setup", nullptr));
    ASSERT_TRUE(made) << StatusFromPythonError();
    Py_ssize_t pos = 0;
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    while (PyDict_Next(made.get(), &pos, &key, &value)) {
      (*targets_)[PyUnicode_AsUTF8(key)] = Borrow(value);
    }
    // Drop the dict: it would be one more referrer of every target.
    made.Reset();
    Ref frame_target = Steal(PyObject_CallMethod(app.get(), "keep_traceback", nullptr));
    ASSERT_TRUE(frame_target) << StatusFromPythonError();
    (*targets_)["frame"] = std::move(frame_target);
    Ref heap = Steal(PyObject_CallMethod(app.get(), "make_census_heap", "i", 2500));
    ASSERT_TRUE(heap) << StatusFromPythonError();
    ASSERT_TRUE(Import("objgraph"));
    ASSERT_TRUE(gc::Collect().ok());
  }
  static void TearDownTestSuite() {
    delete targets_;
    targets_ = nullptr;
  }
  static Handle Target(const std::string& name) { return (*targets_)[name].handle(); }

  // objgraph.find_backref_chain(target, predicate, max_depth=...)
  static std::vector<PyObject*> ObjgraphChain(Handle target, const char* predicate_expr,
                                              int max_depth = 20) {
    Ref objgraph = Import("objgraph");
    Ref predicate = testing::Eval(predicate_expr, "import objgraph, inspect, types");
    Ref depth = Steal(PyLong_FromLong(max_depth));
    Ref chain = CallVector(Attr(objgraph, "find_backref_chain").get(),
                           {target.get(), predicate.get()}, {{"max_depth", depth.get()}});
    std::vector<PyObject*> out;
    for (Py_ssize_t i = 0; chain && i < PyList_GET_SIZE(chain.get()); ++i) {
      out.push_back(PyList_GET_ITEM(chain.get(), i));  // Alive: they chain.
    }
    return out;
  }

  // Ours and objgraph's chain are the same objects in the same order.
  static void ExpectSameChainAsObjgraph(const BackrefChain& ours, Handle target,
                                        const char* predicate_expr, int max_depth = 20) {
    std::vector<PyObject*> theirs = ObjgraphChain(target, predicate_expr, max_depth);
    ASSERT_EQ(ours.links.size(), theirs.size()) << ours.Path();
    for (std::size_t i = 0; i < theirs.size(); ++i) {
      EXPECT_EQ(ours.links[i].object.get(), theirs[i]) << "link " << i << " of " << ours.Path();
    }
  }

  static void ExpectSameObjects(const BackrefChain& a, const BackrefChain& b) {
    ASSERT_EQ(a.links.size(), b.links.size()) << a.Path() << " / " << b.Path();
    for (std::size_t i = 0; i < a.links.size(); ++i) {
      EXPECT_EQ(a.links[i].object.get(), b.links[i].object.get()) << i;
    }
    EXPECT_EQ(a.Path(), b.Path());
  }

  static std::map<std::string, Ref>* targets_;
};

std::map<std::string, Ref>* ObjectGraphTest::targets_ = nullptr;

// ---------------------------------------------------------------- census

TEST_F(ObjectGraphTest, CensusEqualsObjgraphTypestats) {
  Ref typestats = Attr(Import("objgraph"), "typestats");
  for (TypeNames names : {TypeNames::kShort, TypeNames::kFull}) {
    absl::StatusOr<TypeCensus> census = TakeTypeCensus();
    ASSERT_TRUE(census.ok()) << census.status();
    Ref theirs = names == TypeNames::kShort
                     ? CallVector(typestats.get(), {})
                     : CallVector(typestats.get(), {}, {{"shortnames", Py_False}});
    std::map<std::string, int64_t> expected = DictToMap(theirs.get());
    std::map<std::string, int64_t> ours = ToMap(census->Counts(names));
    EXPECT_EQ(ours, expected) << Differences(ours, expected);
    const std::string payload = names == TypeNames::kShort ? "Payload" : "graph_app.Payload";
    EXPECT_GE(census->Count(payload), 2500);
    EXPECT_EQ(census->Count(payload), expected[payload]);
  }
}

// The census walks each generation's list from both ends at once where it
// can (3.9 to 3.11): types met first from the back must still come out in
// gc.get_objects() order, which is typestats' dict order.
TEST_F(ObjectGraphTest, CensusTypeOrderEqualsTypestatsAcrossGenerations) {
  Ref gc = Import("gc");
  Ref held = testing::Eval("_make_generations()", R"PY(
import gc
def _make_generations():
    gc.disable()
    old_types = [type('Old%d' % i, (), {}) for i in range(5)]
    old = [t() for t in old_types]
    gc.collect()  # These now sit at the tail of the oldest generation.
    young_types = [type('Young%d' % i, (), {}) for i in range(5)]
    young = [t() for t in young_types]  # The tail of generation 0.
    return old_types, old, young_types, young
)PY");
  ASSERT_TRUE(held);
  struct Enable {
    PyObject* gc;
    ~Enable() { Ref done = Steal(PyObject_CallMethod(gc, "enable", nullptr)); }
  } enable{gc.get()};
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  ASSERT_TRUE(census.ok()) << census.status();
  Ref theirs = CallVector(Attr(Import("objgraph"), "typestats").get(), {});
  std::vector<std::string> their_order;
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(theirs.get(), &pos, &key, &value)) {
    their_order.push_back(PyUnicode_AsUTF8(key));
  }
  std::vector<std::string> our_order;
  for (const TypeCount& row : census->Counts()) our_order.push_back(row.name);
  EXPECT_EQ(our_order, their_order);
  // Generation 0 is listed first, then the oldest; each in the order made.
  // (Free-threaded builds have no generation lists: gc.get_objects() order
  // is a heap walk's there, checked by the equality above.)
  if (compat::kFreeThreaded) return;
  std::vector<std::string> made;
  for (const std::string& name : our_order) {
    if ((name.rfind("Old", 0) == 0 || name.rfind("Young", 0) == 0) && name.size() <= 6) {
      made.push_back(name);
    }
  }
  EXPECT_EQ(made, (std::vector<std::string>{"Young0", "Young1", "Young2", "Young3", "Young4",
                                            "Old0", "Old1", "Old2", "Old3", "Old4"}));
  EXPECT_EQ(census->Count("Young4"), 1);
}

TEST_F(ObjectGraphTest, MostCommonEqualsObjgraphIncludingTieOrder) {
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  ASSERT_TRUE(census.ok());
  Ref limit = Steal(PyLong_FromLong(15));
  Ref theirs = CallVector(Attr(Import("objgraph"), "most_common_types").get(), {limit.get()});
  std::vector<TypeCount> ours = census->MostCommon(15);
  ASSERT_EQ(ours.size(), static_cast<std::size_t>(PyList_GET_SIZE(theirs.get())));
  for (std::size_t i = 0; i < ours.size(); ++i) {
    PyObject* row = PyList_GET_ITEM(theirs.get(), i);
    EXPECT_EQ(ours[i].name, PyUnicode_AsUTF8(PyTuple_GET_ITEM(row, 0))) << i;
    EXPECT_EQ(ours[i].count, PyLong_AsLongLong(PyTuple_GET_ITEM(row, 1))) << i;
  }
}

TEST_F(ObjectGraphTest, CensusByTypeObjectSeparatesSameNamedClasses) {
  Ref a = testing::Eval("Dup()", "class Dup:\n    pass\n");
  Ref b = testing::Eval("Dup()", "class Dup:\n    pass\n");
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  ASSERT_TRUE(census.ok());
  int dup_types = 0;
  for (const TypeCensusEntry& entry : census->by_type()) {
    if (entry.short_name == "Dup") {
      ++dup_types;
      EXPECT_EQ(entry.count, 1);
      EXPECT_EQ(entry.full_name, "builtins.Dup");  // Eval's namespace.
    }
  }
  EXPECT_EQ(dup_types, 2);
  EXPECT_EQ(census->Count("Dup"), 2);  // By name they merge, as in objgraph.
}

TEST_F(ObjectGraphTest, CensusOfGivenObjectsAndFrozenObjectsLeftOut) {
  Ref list = testing::Eval("[[], [], {}, 1]");
  std::vector<Ref> objects;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list.get()); ++i) {
    objects.push_back(Borrow(PyList_GET_ITEM(list.get(), i)));
  }
  objects.push_back(Ref());  // Skipped.
  absl::StatusOr<TypeCensus> given = CensusOf(objects);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->total(), 4);
  EXPECT_EQ(given->Count("list"), 2);
  EXPECT_EQ(given->Count("int"), 1);

  // Frozen objects are not in gc.get_objects(), nor in a census.
  Ref get_objects = Attr(Import("gc"), "get_objects");
  // The first call of gc.get_objects() makes its argument parser's keyword
  // tuple, a tracked object the census taken before it could not see.
  CallVector(get_objects.get(), {});
  Ref fresh = Steal(PyList_New(0));  // Made before freezing: frozen too.
  ASSERT_TRUE(gc::Freeze().ok());
  Ref unfrozen = testing::Eval("[[], [], {1: []}]");
  absl::StatusOr<TypeCensus> frozen = TakeTypeCensus();
  Ref objects_now = CallVector(get_objects.get(), {});
  ASSERT_TRUE(gc::Unfreeze().ok());
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(frozen->total(), PyList_GET_SIZE(objects_now.get()));
  EXPECT_GE(frozen->Count("list"), 4);  // The four lists made after.
  EXPECT_LT(frozen->total(), 100);
}

// ---------------------------------------------------------------- growth

// objgraph.growth collects fully before every census: so does this test.
TEST_F(ObjectGraphTest, GrowthEqualsObjgraphGrowth) {
  Ref app = Import("graph_app");
  Ref growth = Attr(Import("objgraph"), "growth");
  Ref peaks = Steal(PyDict_New());
  GrowthTracker tracker;
  int round = 0;
  auto compare = [&](const std::vector<GrowthEntry>& ours) {
    ++round;
    // Ours first, objgraph second: objgraph's result list is then not yet
    // there to be counted by us.
    Ref theirs = CallVector(growth.get(), {}, {{"limit", Py_None}, {"peak_stats", peaks.get()}});
    std::vector<GrowthEntry> expected;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(theirs.get()); ++i) {
      PyObject* row = PyList_GET_ITEM(theirs.get(), i);
      GrowthEntry e{PyUnicode_AsUTF8(PyTuple_GET_ITEM(row, 0)),
                    PyLong_AsLongLong(PyTuple_GET_ITEM(row, 1)),
                    PyLong_AsLongLong(PyTuple_GET_ITEM(row, 2))};
      if (kGrowthHasACell && e.name == "cell") {
        // objgraph.growth's own `stats` cell (its list comprehension closes
        // over it before 3.12): counted in every call, so one above ours,
        // and its first delta one above ours too.
        --e.count;
        if (round == 1) --e.delta;
      }
      expected.push_back(e);
    }
    std::vector<GrowthEntry> got;
    for (const GrowthEntry& e : ours) got.push_back(e);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].name, expected[i].name) << i;
      EXPECT_EQ(got[i].count, expected[i].count) << got[i].name << " round " << round;
      EXPECT_EQ(got[i].delta, expected[i].delta) << got[i].name;
    }
  };
  absl::StatusOr<std::vector<GrowthEntry>> first =
      tracker.Update({.limit = 0, .collect_depth = CollectDepth::kFull});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT(first->size(), 10u);  // Everything grows from zero.
  compare(*first);

  Ref done = Steal(PyObject_CallMethod(app.get(), "grow", "ii", 123, 45));
  ASSERT_TRUE(done);
  done.Reset();
  absl::StatusOr<std::vector<GrowthEntry>> second =
      tracker.Update({.limit = 0, .collect_depth = CollectDepth::kFull});
  ASSERT_TRUE(second.ok());
  compare(*second);
  ASSERT_GE(second->size(), 3u);
  EXPECT_EQ((*second)[0].name, "Payload");
  EXPECT_EQ((*second)[0].delta, 123);
  // 45 dicts and their 45 lists tie at 45; ties keep first-met order.
  EXPECT_EQ((*second)[1].delta, 45);
  EXPECT_EQ((*second)[2].delta, 45);

  // Nothing new: no growth. And limits cut the list.
  absl::StatusOr<std::vector<GrowthEntry>> third =
      tracker.Update({.collect_depth = CollectDepth::kFull});
  ASSERT_TRUE(third.ok());
  compare(*third);
  EXPECT_TRUE(third->empty());
}

TEST_F(ObjectGraphTest, GrowthWithoutCollectionCountsGarbageCycles) {
  ASSERT_TRUE(gc::SetEnabled(false).ok());
  GrowthTracker tracker;
  ASSERT_TRUE(tracker.Update({.collect_first = false}).ok());
  Ref garbage = testing::Eval("0", "for _ in range(50):\n    l = []\n    l.append(l)\n");
  absl::StatusOr<std::vector<GrowthEntry>> no_collect =
      tracker.Update({.limit = 1, .collect_first = false});
  ASSERT_TRUE(no_collect.ok());
  ASSERT_EQ(no_collect->size(), 1u);
  EXPECT_EQ((*no_collect)[0].name, "list");
  EXPECT_GE((*no_collect)[0].delta, 50);
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  ASSERT_TRUE(gc::Collect().ok());
}

// The default collection is the young generations': the garbage a workload
// just made is not growth, but a cycle that became garbage only after its
// objects reached the oldest generation counts until a full collection
// (until this, every Update() paid a full collection).
TEST_F(ObjectGraphTest, GrowthCollectsTheYoungGenerationsByDefault) {
  if (compat::kFreeThreaded) {
    GTEST_SKIP() << "free-threaded CPython has no generations: every collection, "
                    "kYoung's too, is a full one";
  }
  ASSERT_TRUE(gc::SetEnabled(false).ok());  // No automatic collection here.
  Ref ns = Steal(PyDict_New());
  PyDict_SetItemString(ns.get(), "__builtins__", PyEval_GetBuiltins());
  auto run = [&](const char* code) {
    Ref done = Steal(PyRun_String(code, Py_file_input, ns.get(), ns.get()));
    ASSERT_TRUE(done) << StatusFromPythonError();
  };
  run("import gc\n"
      "class OldCycle:\n    pass\n"
      "class YoungCycle:\n    pass\n"
      "held = []\n"
      "for _ in range(40):\n    o = OldCycle()\n    o.me = o\n    held.append(o)\n"
      "del o\n"
      "gc.collect(1)\n"  // Survivors of generations 0 and 1 move to 2.
      "assert all(gc.is_tracked(x) for x in held)\n");
  GrowthTracker tracker;
  ASSERT_TRUE(tracker.Update({.limit = 0}).ok());
  // 40 cycles of the oldest generation become garbage; 25 new ones are
  // garbage at once.
  run("held.clear()\n"
      "for _ in range(25):\n    y = YoungCycle()\n    y.me = y\n"
      "del y\n");
  absl::StatusOr<std::vector<GrowthEntry>> rows = tracker.Update({.limit = 0});
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::map<std::string, int64_t> delta;
  for (const GrowthEntry& e : *rows) delta[e.name] = e.delta;
  EXPECT_EQ(delta.count("YoungCycle"), 0u) << "young garbage was collected";
  EXPECT_EQ(delta.count("OldCycle"), 0u) << "no growth: the 40 were there before";
  EXPECT_EQ(TakeTypeCensus()->Count("OldCycle"), 40) << "old garbage is still counted";
  EXPECT_EQ(TakeTypeCensus()->Count("YoungCycle"), 0);
  // A full collection, asked for, takes the old garbage too.
  ASSERT_TRUE(tracker.Update({.collect_depth = CollectDepth::kFull}).ok());
  EXPECT_EQ(TakeTypeCensus()->Count("OldCycle"), 0);
  ASSERT_TRUE(gc::SetEnabled(true).ok());
}

// A chain query's collection is the young generations' too: an old garbage
// cycle can still be a referrer there, and is gone with kFull.
TEST_F(ObjectGraphTest, ChainCollectionDepth) {
  if (compat::kFreeThreaded) {
    GTEST_SKIP() << "free-threaded CPython has no generations: every collection, "
                    "kYoung's too, is a full one";
  }
  ASSERT_TRUE(gc::SetEnabled(false).ok());
  Ref ns = Steal(PyDict_New());
  PyDict_SetItemString(ns.get(), "__builtins__", PyEval_GetBuiltins());
  Ref done =
      Steal(PyRun_String("import gc\n"
                         "class Holder:\n    pass\n"
                         "target = ['the target']\n"
                         "h = Holder()\n"
                         "h.me = h\n"
                         "h.kept = target\n"
                         "gc.collect(1)\n"
                         "del h\n",  // Old garbage that refers to the target.
                         Py_file_input, ns.get(), ns.get()));
  ASSERT_TRUE(done) << StatusFromPythonError();
  PyObject* target = PyDict_GetItemString(ns.get(), "target");
  ASSERT_NE(target, nullptr);
  auto holder_is_root = [](Handle h) { return std::string(Py_TYPE(h.get())->tp_name) == "Holder"; };
  absl::StatusOr<BackrefChain> young =
      FindBackrefChain(Handle(target), {.is_root = holder_is_root}, {.collect_first = true});
  ASSERT_TRUE(young.ok()) << young.status();
  ASSERT_FALSE(young->links.empty());
  EXPECT_EQ(young->links.front().type_name, "Holder");
  young = absl::NotFoundError("released");  // Its links keep the Holder alive.
  absl::StatusOr<BackrefChain> full =
      FindBackrefChain(Handle(target), {.is_root = holder_is_root},
                       {.collect_first = true, .collect_depth = CollectDepth::kFull});
  ASSERT_TRUE(gc::SetEnabled(true).ok());
  if (full.ok()) {
    ASSERT_FALSE(full->links.empty());
    EXPECT_NE(full->links.front().type_name, "Holder");
  } else {
    EXPECT_EQ(full.status().code(), absl::StatusCode::kNotFound) << full.status();
  }
}

// ------------------------------------------------------- by type, marks

TEST_F(ObjectGraphTest, ObjectsByTypeEqualsObjgraphByType) {
  for (const char* name : {"Payload", "graph_app.Payload", "Slotted"}) {
    absl::StatusOr<std::vector<Ref>> ours = ObjectsByType(name);
    ASSERT_TRUE(ours.ok()) << ours.status();
    Ref type_name = Steal(PyUnicode_FromString(name));
    Ref theirs = CallVector(Attr(Import("objgraph"), "by_type").get(), {type_name.get()});
    std::set<PyObject*> a, b;
    for (const Ref& r : *ours) a.insert(r.get());
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(theirs.get()); ++i) {
      b.insert(PyList_GET_ITEM(theirs.get(), i));
    }
    EXPECT_EQ(a, b) << name;
    EXPECT_FALSE(a.empty()) << name;
  }
  absl::StatusOr<std::vector<Ref>> none = ObjectsByType("NoSuchType");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(ObjectsByType("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ObjectGraphTest, NewObjectsSinceAMark) {
  Ref app = Import("graph_app");
  absl::StatusOr<ObjectMark> mark = ObjectMark::Take();
  ASSERT_TRUE(mark.ok());
  EXPECT_GT(mark->size(), 1000u);
  Ref done = Steal(PyObject_CallMethod(app.get(), "make_fresh", nullptr));
  ASSERT_TRUE(done);
  done.Reset();
  absl::StatusOr<std::vector<Ref>> fresh = mark->NewObjects();
  ASSERT_TRUE(fresh.ok());
  absl::StatusOr<TypeCensus> census = CensusOf(*fresh);
  ASSERT_TRUE(census.ok());
  EXPECT_EQ(census->Count("Payload"), 5);
  EXPECT_EQ(census->Count("dict"), 3);
  EXPECT_EQ(census->total(), 8) << ToMap(census->Counts()).size();
}

// ---------------------------------------------------------------- chains

TEST_F(ObjectGraphTest, ChainsEqualObjgraphAndRenderReadablePaths) {
  struct Case {
    const char* target;
    const char* path;
  };
  const Case cases[] = {
      {"cache", "module graph_app .__dict__['_cache'] -> dict['key'] -> list[3]"},
      {"registry",
       "module graph_app .__dict__['registry'] -> Registry.__dict__['items'] -> list[0]"},
      {"table",
       "module graph_app .__dict__['registry'] -> Registry.__dict__['table'] -> "
       "dict['k']"},
      {"materialized",
       "module graph_app .__dict__['materialized'] -> Registry.__dict__['items'] -> "
       "list[0]"},
      {"slotted", "module graph_app .__dict__['holder'] -> Slotted.value"},
      {"closure",
       "module graph_app .__dict__['handler'] -> function make_closure.<locals>.inner "
       ".__closure__ -> tuple[0] -> cell.cell_contents"},
      {"class",
       "module graph_app .__dict__['Config'] -> class Config .__dict__['entries'] -> "
       "list[0]"},
      {"frame",
       "module graph_app .__dict__['saved_tb'] -> traceback.tb_next -> "
       "traceback.tb_frame -> frame fail_with (graph_app.py:42) .f_locals['value']"},
      {"cycle", "module graph_app .__dict__['cycle_holder'] -> dict['a'] -> list[0] -> list[1]"},
      {"string", "module graph_app .__dict__['_names'] -> dict['n']"},
  };
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok()) << graph.status();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    absl::StatusOr<BackrefChain> chain = graph->FindChain(Target(c.target));
    ASSERT_TRUE(chain.ok()) << chain.status();
    EXPECT_EQ(chain->Path(), c.path);
    EXPECT_EQ(chain->links.back().object.get(), Target(c.target).get());
    ExpectSameChainAsObjgraph(*chain, Target(c.target), "objgraph.is_proper_module");
    // The one-shot search (a level at a time, no index) agrees exactly.
    absl::StatusOr<BackrefChain> one = FindBackrefChain(Target(c.target));
    ASSERT_TRUE(one.ok()) << one.status();
    ExpectSameObjects(*one, *chain);
  }
}

TEST_F(ObjectGraphTest, LabellingAttributesCreatesNoInstanceDict) {
  absl::StatusOr<BackrefChain> chain = FindBackrefChain(Target("table"));
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->Path(),
            "module graph_app .__dict__['registry'] -> Registry.__dict__['table'] -> "
            "dict['k']");
  // On 3.11+ registry's attributes are still inline values (it refers to
  // them directly, not to a dict); vars() would have changed that.
  Ref inline_values = testing::Eval(
      "any(r is graph_app.registry.table for r in gc.get_referents(graph_app.registry))",
      "import gc, graph_app");
  EXPECT_EQ(inline_values.get(), PY_VERSION_HEX >= 0x030B0000 ? Py_True : Py_False);
}

TEST_F(ObjectGraphTest, OneShotQueryEqualsTheGraphQuery) {
  absl::StatusOr<BackrefChain> chain = FindBackrefChain(Target("registry"));
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->Path(),
            "module graph_app .__dict__['registry'] -> Registry.__dict__['items'] -> "
            "list[0]");
  ExpectSameChainAsObjgraph(*chain, Target("registry"), "objgraph.is_proper_module");
}

TEST_F(ObjectGraphTest, OtherRootsClassesFramesAndPredicates) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  ChainOptions classes;
  classes.roots.classes = true;
  absl::StatusOr<BackrefChain> chain = graph->FindChain(Target("class"), classes);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->Path(), "class Config .__dict__['entries'] -> list[0]");
  ExpectSameChainAsObjgraph(*chain, Target("class"),
                            "lambda o: objgraph.is_proper_module(o) or isinstance(o, type)");

  ExpectSameObjects(*FindBackrefChain(Target("class"), classes), *chain);

  ChainOptions frames;
  frames.roots.frames = true;
  chain = graph->FindChain(Target("frame"), frames);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ExpectSameObjects(*FindBackrefChain(Target("frame"), frames), *chain);
  EXPECT_EQ(chain->Path(), "frame fail_with (graph_app.py:42) .f_locals['value']");
  ExpectSameChainAsObjgraph(
      *chain, Target("frame"),
      "lambda o: objgraph.is_proper_module(o) or isinstance(o, types.FrameType)");

  // A predicate: the first list on the way is a root.
  ChainOptions lists;
  lists.roots.proper_modules = false;
  lists.is_root = [](Handle h) { return PyList_CheckExact(h.get()) != 0; };
  chain = graph->FindChain(Target("cache"), lists);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->Path(), "list[3]");
  ExpectSameChainAsObjgraph(*chain, Target("cache"), "lambda o: type(o) is list");
  ExpectSameObjects(*FindBackrefChain(Target("cache"), lists), *chain);

  // The target itself a root: a chain of one.
  Ref app = Import("graph_app");
  chain = graph->FindChain(app);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->links.size(), 1u);
  EXPECT_EQ(chain->Path(), "module graph_app");
}

TEST_F(ObjectGraphTest, UntrackedContainersAreNotReferrersAsInObjgraph) {
  Ref app = Import("graph_app");
  Ref atoms = Attr(app, "_atoms");
  Ref is_tracked = Attr(Import("gc"), "is_tracked");
  Ref tracked = CallVector(is_tracked.get(), {atoms.get()});
  ASSERT_EQ(tracked.get(), Py_False);
  absl::StatusOr<BackrefChain> chain = FindBackrefChain(Target("hidden"));
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kNotFound);
  // objgraph's "not found" is the object alone.
  std::vector<PyObject*> theirs = ObjgraphChain(Target("hidden"), "objgraph.is_proper_module");
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(theirs[0], Target("hidden").get());
}

TEST_F(ObjectGraphTest, IgnoredReferrersAreNeverUsed) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  Ref app = Import("graph_app");
  Ref cache = Attr(app, "_cache");
  ChainOptions options;
  options.ignore = {cache.handle()};
  absl::StatusOr<BackrefChain> chain = graph->FindChain(Target("cache"), options);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(chain.status().message()), HasSubstr("no root within 20"));
  EXPECT_EQ(FindBackrefChain(Target("cache"), options).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ObjectGraphTest, DeepChainsWithinMaxDepthAndWithoutRecursion) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  absl::StatusOr<BackrefChain> shallow = graph->FindChain(Target("deep"));
  EXPECT_EQ(shallow.status().code(), absl::StatusCode::kNotFound);
  ChainOptions options;
  options.max_depth = 400;
  absl::StatusOr<BackrefChain> chain = graph->FindChain(Target("deep"), options);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->links.size(), 303u);  // module, its dict, 300 lists, target.
  EXPECT_THAT(chain->Path(),
              StartsWith("module graph_app .__dict__['deep_head'] -> list[0] -> list[0]"));
  ExpectSameChainAsObjgraph(*chain, Target("deep"), "objgraph.is_proper_module", 400);
  // max_depth is a number of references, as in objgraph: 302 is exactly
  // enough, 301 is not.
  options.max_depth = 302;
  EXPECT_TRUE(graph->FindChain(Target("deep"), options).ok());
  options.max_depth = 301;
  EXPECT_EQ(graph->FindChain(Target("deep"), options).status().code(), absl::StatusCode::kNotFound);
  // The one-shot search goes past 12 levels by building the index.
  options.max_depth = 400;
  absl::StatusOr<BackrefChain> one = FindBackrefChain(Target("deep"), options);
  ASSERT_TRUE(one.ok()) << one.status();
  ExpectSameObjects(*one, *chain);
  // And at exactly 12 levels it still answers by itself: the 11-reference
  // chain to the list 10 levels below deep_head.
  Ref app = Import("graph_app");
  Ref node = Attr(app, "deep_head");
  for (int i = 0; i < 9; ++i) node = Borrow(PyList_GET_ITEM(node.get(), 0));
  ChainOptions twelve;
  twelve.max_depth = 12;
  absl::StatusOr<BackrefChain> near = FindBackrefChain(node, twelve);
  ASSERT_TRUE(near.ok()) << near.status();
  EXPECT_EQ(near->depth(), 11u);
  ExpectSameChainAsObjgraph(*near, node, "objgraph.is_proper_module", 12);
}

TEST_F(ObjectGraphTest, AHundredThousandDeepChain) {
  Ref app = Import("graph_app");
  Ref leaf = testing::Eval("Leaf()", "class Leaf:\n    pass\n");
  Ref head = Steal(PyObject_CallMethod(app.get(), "make_deep", "iO", 100000, leaf.get()));
  ASSERT_TRUE(head);
  ASSERT_EQ(PyObject_SetAttrString(app.get(), "very_deep", head.get()), 0);
  head.Reset();
  {
    ChainOptions options;
    options.max_depth = 1000000;
    absl::StatusOr<BackrefChain> chain = FindBackrefChain(leaf, options);
    ASSERT_TRUE(chain.ok()) << chain.status();
    EXPECT_EQ(chain->links.size(), 100003u);
    EXPECT_EQ(chain->depth(), 100002u);
    EXPECT_THAT(chain->Path(), StartsWith("module graph_app .__dict__['very_deep'] -> list[0]"));
    EXPECT_EQ(chain->links[100001].edge, "[0]");
  }
  ASSERT_EQ(PyObject_DelAttrString(app.get(), "very_deep"), 0);
}

TEST_F(ObjectGraphTest, ObjectsThatVanishDuringTheWalkAreHandled) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  Ref app = Import("graph_app");
  ChainOptions options;
  // The predicate runs Python that empties the dict on the chain (its list
  // would be freed, but the snapshot holds it) and drops the other targets.
  options.is_root = [&app](Handle) {
    Ref volatile_dict = Steal(PyObject_GetAttrString(app.get(), "_volatile"));
    if (volatile_dict) PyDict_Clear(volatile_dict.get());
    return false;
  };
  absl::StatusOr<BackrefChain> chain = graph->FindChain(Target("volatile"), options);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->Path(), "module graph_app .__dict__['_volatile'] -> dict? -> list[0]");
  EXPECT_EQ(chain->links[2].edge, "?");
  // A fresh graph sees the heap as it is now: no chain left.
  absl::StatusOr<BackrefChain> after = FindBackrefChain(Target("volatile"));
  EXPECT_EQ(after.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ObjectGraphTest, ObjectsCreatedAfterTheSnapshotAreStillQueried) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  Ref app = Import("graph_app");
  Ref registry = Attr(app, "registry");
  Ref items = Attr(registry, "items");
  Ref late = testing::Eval("[1, 2]");  // Not in the snapshot.
  ASSERT_EQ(PyList_Append(items.get(), late.get()), 0);
  absl::StatusOr<BackrefChain> chain = graph->FindChain(late);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->Path(),
            "module graph_app .__dict__['registry'] -> Registry.__dict__['items'] -> "
            "list[1]");
  ASSERT_EQ(PySequence_DelItem(items.get(), 1), 0);
}

TEST_F(ObjectGraphTest, ManyChainsOnOneGraphEqualObjgraph) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  EXPECT_GT(graph->object_count(), 1000u);
  EXPECT_GT(graph->edge_count(), graph->object_count() / 2);
  // The census heap: 2500 {'payload': Payload, 'items': [i, (i, [])]}.
  Ref app = Import("graph_app");
  Ref heap = Attr(app, "census_heap");
  ASSERT_GE(PyList_GET_SIZE(heap.get()), 2500);
  for (Py_ssize_t i = 0; i < 2500; i += 125) {
    PyObject* entry = PyList_GET_ITEM(heap.get(), i);
    PyObject* items = PyDict_GetItemString(entry, "items");
    PyObject* inner = PyTuple_GET_ITEM(PyList_GET_ITEM(items, 1), 1);
    absl::StatusOr<BackrefChain> chain = graph->FindChain(Handle(inner));
    ASSERT_TRUE(chain.ok()) << chain.status();
    EXPECT_EQ(chain->Path(), absl::StrCat("module graph_app .__dict__['census_heap'] -> list[", i,
                                          "] -> dict['items'] -> list[1] -> tuple[1]"));
    ExpectSameChainAsObjgraph(*chain, Handle(inner), "objgraph.is_proper_module");
  }
}

TEST_F(ObjectGraphTest, ReferrersEqualGcGetReferrers) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  Ref get_referrers = Attr(Import("gc"), "get_referrers");
  for (const char* name : {"dot", "cycle", "string", "slotted"}) {
    absl::StatusOr<std::vector<Ref>> ours = graph->Referrers(Target(name));
    ASSERT_TRUE(ours.ok());
    Ref theirs = CallVector(get_referrers.get(), {Target(name).get()});
    std::set<PyObject*> a, b;
    for (const Ref& r : *ours) a.insert(r.get());
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(theirs.get()); ++i) {
      PyObject* r = PyList_GET_ITEM(theirs.get(), i);
      // gc.get_referrers' own argument tuple is a referrer while it runs.
      if (PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == 1 &&
          PyTuple_GET_ITEM(r, 0) == Target(name).get()) {
        continue;
      }
      b.insert(r);
    }
    EXPECT_EQ(a, b) << name;
    EXPECT_FALSE(a.empty()) << name;
  }
}

std::set<std::string> DotEdges(const std::string& dot) {
  std::set<std::string> edges;
  static const std::regex edge(R"((o\d+) -> (o\d+))");
  for (auto it = std::sregex_iterator(dot.begin(), dot.end(), edge); it != std::sregex_iterator();
       ++it) {
    edges.insert((*it)[1].str() + "->" + (*it)[2].str());
  }
  return edges;
}

TEST_F(ObjectGraphTest, BackrefsDotHasTheEdgesOfObjgraphShowBackrefs) {
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  absl::StatusOr<std::string> ours = graph->BackrefsDot({Target("dot")});
  ASSERT_TRUE(ours.ok()) << ours.status();
  Ref io = Import("io");
  Ref buffer = Steal(PyObject_CallMethod(io.get(), "StringIO", nullptr));
  Ref objs = Steal(PyList_New(0));
  PyList_Append(objs.get(), Target("dot").get());
  Ref depth = Steal(PyLong_FromLong(3));
  Ref done = CallVector(Attr(Import("objgraph"), "show_backrefs").get(), {objs.get()},
                        {{"max_depth", depth.get()}, {"output", buffer.get()}});
  ASSERT_TRUE(done);
  Ref text = Steal(PyObject_CallMethod(buffer.get(), "getvalue", nullptr));
  const std::string theirs = PyUnicode_AsUTF8(text.get());
  std::set<std::string> our_edges = DotEdges(*ours);
  EXPECT_EQ(our_edges, DotEdges(theirs)) << *ours << "\n---\n" << theirs;
  EXPECT_GE(our_edges.size(), 5u);
  EXPECT_THAT(*ours, HasSubstr("[label=\"Payload\\n<Payload drawn>\"]"));
  EXPECT_THAT(*ours, HasSubstr("[fontcolor=red]"));
  EXPECT_THAT(*ours, HasSubstr("[label=\"['a']\"]"));
}

TEST_F(ObjectGraphTest, ChainDotIsValidGraphviz) {
  absl::StatusOr<BackrefChain> chain = FindBackrefChain(Target("cache"));
  ASSERT_TRUE(chain.ok());
  const std::string dot = chain->Dot();
  EXPECT_THAT(dot, StartsWith("digraph ObjectGraph {\n"));
  EXPECT_THAT(dot, HasSubstr("[label=\"module\\ngraph_app\"]"));
  EXPECT_THAT(dot, HasSubstr("[fillcolor=\"0.3,1,0.3\"]"));  // The module.
  EXPECT_THAT(dot, HasSubstr("[label=\"list\\n4 items\"]"));
  EXPECT_THAT(dot, HasSubstr("[label=\"[3]\"]"));
  EXPECT_EQ(DotEdges(dot).size(), 4u);
  if (std::FILE* probe = popen("command -v dot >/dev/null 2>&1", "r")) {
    if (pclose(probe) == 0) {
      std::FILE* render = popen("dot -Tsvg -o /dev/null 2>&1", "w");
      ASSERT_NE(render, nullptr);
      std::fputs(dot.c_str(), render);
      EXPECT_EQ(pclose(render), 0) << dot;
    }
  }
}

TEST_F(ObjectGraphTest, BadInputAndMissingGil) {
  EXPECT_EQ(FindBackrefChain(Handle()).status().code(), absl::StatusCode::kInvalidArgument);
  ChainOptions negative;
  negative.max_depth = -1;
  EXPECT_EQ(FindBackrefChain(Target("cache"), negative).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(graph->Referrers(Handle()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(graph->BackrefsDot({Handle()}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(graph->BackrefsDot({Target("dot")}, {.max_depth = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ObjectMark> mark = ObjectMark::Take(false);
  ASSERT_TRUE(mark.ok());
  GrowthTracker tracker;
  Handle target = Target("cache");
  std::vector<absl::StatusCode> codes;
  {
    GilRelease release;
    std::thread([&] {
      codes.push_back(TakeTypeCensus().status().code());
      codes.push_back(CensusOf({}).status().code());
      codes.push_back(tracker.Update().status().code());
      codes.push_back(ObjectsByType("dict").status().code());
      codes.push_back(ObjectMark::Take().status().code());
      codes.push_back(mark->NewObjects().status().code());
      codes.push_back(ReferrerGraph::Build().status().code());
      codes.push_back(graph->FindChain(target).status().code());
      codes.push_back(graph->Referrers(target).status().code());
      codes.push_back(graph->BackrefsDot({target}).status().code());
      codes.push_back(FindBackrefChain(target).status().code());
    }).join();
  }
  ASSERT_EQ(codes.size(), 11u);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], absl::StatusCode::kFailedPrecondition) << "call " << i;
  }
  EXPECT_TRUE(tracker.peaks().empty());
}

}  // namespace
}  // namespace leakguard
