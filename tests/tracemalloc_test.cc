// The tracemalloc probe against Python's own tracemalloc, on identical
// traces: statistics, diffs, filters, rendering, fnmatch, element for element
// and in the same order; and the tracing scope's restore on every exit path.

#include "leakguard/tracemalloc.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard::tracemalloc {
namespace {

using ::leakguard::testing::Eval;
using ::testing::HasSubstr;

constexpr GroupBy kAllGroupings[] = {GroupBy::kLineno, GroupBy::kFilename, GroupBy::kTraceback};

// ------------------------------------------------------------- helpers

Ref Import(const char* name) {
  Ref module = Steal(PyImport_ImportModule(name));
  if (!module) ADD_FAILURE() << StatusFromPythonError();
  return module;
}

// module.func(*args) with a Py_BuildValue format; fails the test on error.
template <typename... Args>
Ref Call(const char* module, const char* func, const char* format, Args... args) {
  Ref m = Import(module);
  if (!m) return Ref();
  Ref result = Steal(PyObject_CallMethod(m.get(), func, format, args...));
  if (!result) ADD_FAILURE() << module << "." << func << ": " << StatusFromPythonError();
  return result;
}

// Python's tracemalloc state as Python itself reports it.
bool PyIsTracing() {
  Ref r = Call("tracemalloc", "is_tracing", nullptr);
  return r && PyObject_IsTrue(r.get()) == 1;
}
int PyLimit() {
  Ref r = Call("tracemalloc", "get_traceback_limit", nullptr);
  return r ? static_cast<int>(PyLong_AsLong(r.get())) : -1;
}
void PyStart(int frames) { Call("tracemalloc", "start", "(i)", frames); }
void PyStop() { Call("tracemalloc", "stop", nullptr); }

// A list of bytes -> strings.
std::vector<std::string> Lines(const Ref& list) {
  std::vector<std::string> out;
  if (!list || !PyList_Check(list.get())) {
    ADD_FAILURE() << "expected a list of bytes";
    return out;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list.get()); ++i) {
    PyObject* b = PyList_GET_ITEM(list.get(), i);
    out.emplace_back(PyBytes_AsString(b), static_cast<std::size_t>(PyBytes_Size(b)));
  }
  return out;
}

std::string TbLine(const Traceback& tb) {
  std::vector<std::string> frames;
  for (std::size_t i = 0; i < tb.size(); ++i) frames.push_back(tb[i].ToString());
  return absl::StrJoin(frames, " <- ");
}

std::vector<std::string> OurStatLines(const StatisticList& stats) {
  std::vector<std::string> out;
  for (const Statistic& s : stats) {
    out.push_back(absl::StrFormat("%s size=%d count=%d", TbLine(s.traceback), s.size, s.count));
  }
  return out;
}

std::vector<std::string> OurDiffLines(const StatisticDiffList& diffs) {
  std::vector<std::string> out;
  for (const StatisticDiff& d : diffs) {
    out.push_back(absl::StrFormat("%s size=%d (%+d) count=%d (%+d)", TbLine(d.traceback), d.size,
                                  d.size_diff, d.count, d.count_diff));
  }
  return out;
}

std::vector<std::string> OurTraceLines(const Snapshot& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.trace_count(); ++i) {
    const Trace t = s.trace(i);
    out.push_back(absl::StrFormat("%d %d %s %s", t.domain, t.size, TbLine(t.traceback),
                                  t.total_nframe ? absl::StrCat(*t.total_nframe) : "None"));
  }
  return out;
}

// Equal line by line, naming the first difference.
void ExpectSameLines(const std::vector<std::string>& ours, const std::vector<std::string>& python,
                     const std::string& what) {
  ASSERT_EQ(ours.size(), python.size()) << what;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    ASSERT_EQ(ours[i], python[i]) << what << ", entry " << i;
  }
}

Snapshot Convert(const Ref& py) {
  absl::StatusOr<Snapshot> s = Snapshot::FromPython(py);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : Snapshot();
}

Ref Synthetic(int seed, int n, bool empty = false, bool shared = true, bool uniform = false) {
  Ref m = Import("tm_synthetic");
  Ref kwargs =
      Steal(Py_BuildValue("{s:O,s:O,s:O}", "empty", empty ? Py_True : Py_False, "shared",
                          shared ? Py_True : Py_False, "uniform", uniform ? Py_True : Py_False));
  Ref args = Steal(Py_BuildValue("(ii)", seed, n));
  Ref make = Steal(PyObject_GetAttrString(m.get(), "make"));
  Ref result = Steal(PyObject_Call(make.get(), args.get(), kwargs.get()));
  if (!result) ADD_FAILURE() << StatusFromPythonError();
  return result;
}

// Statistics and CompareTo of (new, old) in every grouping, both ways
// cumulative, against Python on the same objects.
void ExpectSameAsPython(const Ref& py_new, const Ref& py_old, const std::string& what,
                        bool strings = false) {
  Snapshot new_snapshot = Convert(py_new);
  Snapshot old_snapshot = Convert(py_old);
  for (GroupBy g : kAllGroupings) {
    for (bool cumulative : {false, true}) {
      const std::string name(GroupByName(g));
      const std::string label = absl::StrCat(what, " ", name, cumulative ? " cumulative" : "");
      if (g == GroupBy::kTraceback && cumulative) {
        EXPECT_EQ(new_snapshot.Statistics(g, true).status().code(),
                  absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(new_snapshot.CompareTo(old_snapshot, g, true).status().code(),
                  absl::StatusCode::kInvalidArgument);
        continue;
      }
      PyObject* cum = cumulative ? Py_True : Py_False;
      absl::StatusOr<StatisticList> stats = new_snapshot.Statistics(g, cumulative);
      ASSERT_TRUE(stats.ok()) << label << ": " << stats.status();
      ExpectSameLines(
          OurStatLines(*stats),
          Lines(Call("tm_synthetic", "stat_lines", "OsO", py_new.get(), name.c_str(), cum)),
          label + " statistics");
      absl::StatusOr<StatisticDiffList> diffs = new_snapshot.CompareTo(old_snapshot, g, cumulative);
      ASSERT_TRUE(diffs.ok()) << label << ": " << diffs.status();
      ExpectSameLines(OurDiffLines(*diffs),
                      Lines(Call("tm_synthetic", "diff_lines", "OOsO", py_new.get(), py_old.get(),
                                 name.c_str(), cum)),
                      label + " compare_to");
      if (strings) {
        std::vector<std::string> ours;
        for (const Statistic& s : *stats) ours.push_back(s.ToString());
        ExpectSameLines(
            ours, Lines(Call("tm_synthetic", "stat_strs", "OsO", py_new.get(), name.c_str(), cum)),
            label + " str(Statistic)");
        ours.clear();
        for (const StatisticDiff& d : *diffs) ours.push_back(d.ToString());
        ExpectSameLines(ours,
                        Lines(Call("tm_synthetic", "diff_strs", "OOsO", py_new.get(), py_old.get(),
                                   name.c_str(), cum)),
                        label + " str(StatisticDiff)");
      }
    }
  }
}

// Runs `body` with tracemalloc off before and after, whatever it does.
class TracemallocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (PyIsTracing()) PyStop();
  }
  void TearDown() override {
    if (PyIsTracing()) PyStop();
    Call("tm_workload", "clear", nullptr);
  }
};

// ------------------------------------------------------- TracingScope

TEST_F(TracemallocTest, ScopeRejectsFramesOutOfRangeAndChangesNothing) {
  for (int frames : {0, -1, 65536, 1 << 20}) {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(frames);
    EXPECT_EQ(scope.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(scope.status().message()), HasSubstr("1..65535"));
    EXPECT_FALSE(PyIsTracing());
  }
  PyStart(3);
  EXPECT_EQ(TracingScope::Start(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PyIsTracing());
  EXPECT_EQ(PyLimit(), 3);
  // The bounds themselves are fine.
  EXPECT_TRUE(TracingScope::Start(65535).ok());
  EXPECT_EQ(PyLimit(), 3);
  EXPECT_TRUE(TracingScope::Start(1).ok());
  EXPECT_EQ(PyLimit(), 3);
}

TEST_F(TracemallocTest, ScopeStartsAndStopsWhenTracingWasOff) {
  {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(7);
    ASSERT_TRUE(scope.ok()) << scope.status();
    EXPECT_TRUE(PyIsTracing());
    EXPECT_EQ(PyLimit(), 7);
    EXPECT_EQ(*GetTracebackLimit(), 7);
    EXPECT_TRUE(*IsTracing());
    EXPECT_FALSE(scope->was_tracing());
    EXPECT_EQ(scope->frames(), 7);
  }
  EXPECT_FALSE(PyIsTracing());
  EXPECT_FALSE(*IsTracing());
}

TEST_F(TracemallocTest, ScopeWithTheSameLimitKeepsEarlierTraces) {
  PyStart(5);
  Ref kept = Eval("bytearray(12345)");
  {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(5);
    ASSERT_TRUE(scope.ok());
    EXPECT_TRUE(scope->was_tracing());
    EXPECT_EQ(scope->previous_frames(), 5);
  }
  EXPECT_TRUE(PyIsTracing());
  EXPECT_EQ(PyLimit(), 5);
  Ref tb = Call("tracemalloc", "get_object_traceback", "O", kept.get());
  EXPECT_NE(tb.get(), Py_None) << "the trace made before the scope is gone";
}

TEST_F(TracemallocTest, NestedScopesRestoreEachLimit) {
  {
    absl::StatusOr<TracingScope> outer = TracingScope::Start(3);
    ASSERT_TRUE(outer.ok());
    {
      absl::StatusOr<TracingScope> inner = TracingScope::Start(9);
      ASSERT_TRUE(inner.ok());
      EXPECT_EQ(PyLimit(), 9);
      EXPECT_TRUE(inner->was_tracing());
      EXPECT_EQ(inner->previous_frames(), 3);
    }
    EXPECT_TRUE(PyIsTracing());
    EXPECT_EQ(PyLimit(), 3);
  }
  EXPECT_FALSE(PyIsTracing());
}

void ThrowInsideScope(int frames) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(frames);
  if (!scope.ok()) return;
  if (PyLimit() == frames) throw std::runtime_error("boom");
}

TEST_F(TracemallocTest, ScopeRestoresWhenAnExceptionPassesThrough) {
  EXPECT_THROW(ThrowInsideScope(4), std::runtime_error);
  EXPECT_FALSE(PyIsTracing());
  PyStart(2);
  EXPECT_THROW(ThrowInsideScope(11), std::runtime_error);
  EXPECT_TRUE(PyIsTracing());
  EXPECT_EQ(PyLimit(), 2);
}

int ReturnEarlyInsideScope(int frames, bool early) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(frames);
  if (!scope.ok()) return -1;
  if (early) return PyLimit();
  return PyLimit() + 1000;
}

TEST_F(TracemallocTest, ScopeRestoresOnEarlyReturn) {
  EXPECT_EQ(ReturnEarlyInsideScope(6, true), 6);
  EXPECT_FALSE(PyIsTracing());
  PyStart(8);
  EXPECT_EQ(ReturnEarlyInsideScope(6, true), 6);
  EXPECT_EQ(PyLimit(), 8);
  EXPECT_EQ(ReturnEarlyInsideScope(6, false), 1006);
  EXPECT_EQ(PyLimit(), 8);
}

TEST_F(TracemallocTest, ScopeRestoresWhatPythonChangedInside) {
  {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(2);
    ASSERT_TRUE(scope.ok());
    PyStop();
    PyStart(12);
  }
  EXPECT_FALSE(PyIsTracing());
  PyStart(4);
  {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(4);
    ASSERT_TRUE(scope.ok());
    PyStop();
  }
  EXPECT_TRUE(PyIsTracing());
  EXPECT_EQ(PyLimit(), 4);
}

TEST_F(TracemallocTest, MovedScopeRestoresOnceAndEndIsIdempotent) {
  std::optional<TracingScope> holder;
  {
    absl::StatusOr<TracingScope> scope = TracingScope::Start(5);
    ASSERT_TRUE(scope.ok());
    holder.emplace(*std::move(scope));
    EXPECT_FALSE(scope->active());
  }
  EXPECT_TRUE(PyIsTracing()) << "the moved-from scope restored";
  EXPECT_TRUE(holder->active());
  EXPECT_TRUE(holder->End().ok());
  EXPECT_FALSE(holder->active());
  EXPECT_FALSE(PyIsTracing());
  PyStart(3);  // End() again and the destructor must not touch this.
  EXPECT_TRUE(holder->End().ok());
  holder.reset();
  EXPECT_TRUE(PyIsTracing());
  EXPECT_EQ(PyLimit(), 3);
}

TEST_F(TracemallocTest, MoveAssignmentEndsTheOverwrittenScope) {
  absl::StatusOr<TracingScope> a = TracingScope::Start(3);
  ASSERT_TRUE(a.ok());
  absl::StatusOr<TracingScope> b = TracingScope::Start(6);  // 3 -> 6
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(PyLimit(), 6);
  *b = std::move(*a);  // b's end restores 3; b now holds a's duty (off)
  EXPECT_EQ(PyLimit(), 3);
  EXPECT_TRUE(b->active());
  EXPECT_FALSE(a->active());
  EXPECT_TRUE(b->End().ok());
  EXPECT_FALSE(PyIsTracing());
}

TEST_F(TracemallocTest, ScopeEndsOnAThreadThatDoesNotHoldTheGil) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(5);
  ASSERT_TRUE(scope.ok());
  {
    GilRelease released;
    std::thread([s = *std::move(scope)]() mutable {
      TracingScope gone = std::move(s);  // destroyed here, GIL taken inside
    }).join();
  }
  EXPECT_FALSE(PyIsTracing());
}

TEST_F(TracemallocTest, EndKeepsAPendingPythonException) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(2);
  ASSERT_TRUE(scope.ok());
  PyErr_SetString(PyExc_KeyError, "pending");
  EXPECT_TRUE(scope->End().ok());
  ASSERT_NE(PyErr_Occurred(), nullptr);
  EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_KeyError));
  PyErr_Clear();
  EXPECT_FALSE(PyIsTracing());
}

TEST_F(TracemallocTest, EveryCallThatTouchesPythonNeedsTheGil) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(1);
  ASSERT_TRUE(scope.ok());
  Ref py = Synthetic(1, 10);
  Snapshot converted = Convert(py);
  std::vector<absl::Status> seen;
  {
    GilRelease released;
    std::thread([&] {
      seen.push_back(TracingScope::Start(1).status());
      seen.push_back(IsTracing().status());
      seen.push_back(GetTracedMemory().status());
      seen.push_back(ResetPeak());
      seen.push_back(GetTracebackLimit().status());
      seen.push_back(GetTracemallocMemory().status());
      seen.push_back(ClearTraces());
      seen.push_back(Snapshot::Take().status());
      seen.push_back(Snapshot::FromPython(py).status());
      seen.push_back(Snapshot::Load("/nonexistent").status());
      seen.push_back(converted.ToPython().status());
      seen.push_back(converted.Dump("/tmp/never-written"));
      seen.push_back(scope->End());
    }).join();
  }
  ASSERT_EQ(seen.size(), 13u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].code(), absl::StatusCode::kFailedPrecondition) << i;
  }
  EXPECT_TRUE(scope->active()) << "End() without the GIL must not give up";
  EXPECT_TRUE(PyIsTracing());
}

// --------------------------------------------------------- traced memory

TEST_F(TracemallocTest, TracedMemoryFollowsAnAllocationAndItsPeak) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(1);
  ASSERT_TRUE(scope.ok());
  ASSERT_TRUE(ClearTraces().ok());
  absl::StatusOr<TracedMemory> base = GetTracedMemory();
  ASSERT_TRUE(base.ok()) << base.status();
  constexpr std::size_t kBig = 4 << 20;
  Ref big = Steal(PyByteArray_FromStringAndSize(nullptr, kBig));
  absl::StatusOr<TracedMemory> with = GetTracedMemory();
  ASSERT_TRUE(with.ok());
  EXPECT_GE(with->current, base->current + kBig);
  EXPECT_LE(with->current, base->current + kBig + 4096);
  big.Reset();
  absl::StatusOr<TracedMemory> after = GetTracedMemory();
  EXPECT_LE(after->current, base->current + 4096);
  EXPECT_GE(after->peak, base->current + kBig);
  ASSERT_TRUE(ResetPeak().ok());
  absl::StatusOr<TracedMemory> reset = GetTracedMemory();
  EXPECT_LT(reset->peak, base->current + kBig);
  EXPECT_LE(reset->peak - reset->current, 1024u);
  // What Python reports, read right after.
  Ref py = Call("tracemalloc", "get_traced_memory", nullptr);
  absl::StatusOr<TracedMemory> ours = GetTracedMemory();
  const auto py_current = PyLong_AsSize_t(PyTuple_GetItem(py.get(), 0));
  EXPECT_LE(ours->current > py_current ? ours->current - py_current : py_current - ours->current,
            512u);
}

TEST_F(TracemallocTest, TracemallocMemoryIsWhatPythonReports) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(1);
  ASSERT_TRUE(scope.ok());
  Ref keep = Eval("[str(i) for i in range(20000)]");
  absl::StatusOr<std::size_t> ours = GetTracemallocMemory();
  ASSERT_TRUE(ours.ok());
  Ref py = Call("tracemalloc", "get_tracemalloc_memory", nullptr);
  const std::size_t theirs = PyLong_AsSize_t(py.get());
  EXPECT_GT(*ours, 20000u * 8) << "20000 traces need more than that";
  EXPECT_LE(*ours > theirs ? *ours - theirs : theirs - *ours, 4096u);
  scope->End().IgnoreError();
  EXPECT_LT(*GetTracemallocMemory(), 4096u);  // off: empty tables only
  EXPECT_EQ(GetTracedMemory()->current, 0u);
  EXPECT_EQ(GetTracedMemory()->peak, 0u);
}

// ---------------------------------------------------------- equality

TEST_F(TracemallocTest, TakeNeedsTracing) {
  absl::StatusOr<Snapshot> s = Snapshot::Take();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("not tracing"));
}

TEST_F(TracemallocTest, WorkloadStatisticsAndDiffsEqualPython) {
  absl::StatusOr<TracingScope> scope = TracingScope::Start(10);
  ASSERT_TRUE(scope.ok());
  Call("tm_workload", "run", "(ii)", 1, 3000);
  Ref old_py = Call("tracemalloc", "take_snapshot", nullptr);
  Call("tm_workload", "run", "(ii)", 2, 3000);
  Ref new_py = Call("tracemalloc", "take_snapshot", nullptr);
  scope->End().IgnoreError();
  ExpectSameAsPython(new_py, old_py, "workload", /*strings=*/true);
  ExpectSameAsPython(old_py, new_py, "workload reversed");

  // The interned tables hold exactly the distinct values Python has.
  Snapshot s = Convert(new_py);
  Ref counts = Call("tm_synthetic", "counts", "O", new_py.get());
  EXPECT_EQ(s.filename_count(), PyLong_AsSize_t(PyTuple_GetItem(counts.get(), 0)));
  EXPECT_EQ(s.frame_count(), PyLong_AsSize_t(PyTuple_GetItem(counts.get(), 1)));
  EXPECT_EQ(s.traceback_count(), PyLong_AsSize_t(PyTuple_GetItem(counts.get(), 2)));
  EXPECT_GT(s.traceback_count(), 10u);
  EXPECT_EQ(s.traceback_limit(), 10);
  ExpectSameLines(OurTraceLines(s), Lines(Call("tm_synthetic", "trace_lines", "O", new_py.get())),
                  "traces");
}

TEST_F(TracemallocTest, CumulativeCountsARepeatedFramePerOccurrence) {
  // Python's _group_by(cumulative=True) adds a trace to a frame's group once
  // for every time the frame occurs in the traceback (recursion).
  Ref py = Eval(
      "tracemalloc.Snapshot([(0, 10, (('r.py', 5), ('r.py', 5), ('m.py', 1)),"
      " 3), (0, 7, (('m.py', 2),), 1)], 5)",
      "import tracemalloc");
  Snapshot s = Convert(py);
  absl::StatusOr<StatisticList> by_line = s.Statistics(GroupBy::kLineno, true);
  ASSERT_TRUE(by_line.ok());
  EXPECT_THAT(OurStatLines(*by_line),
              ::testing::ElementsAre("r.py:5 size=20 count=2", "m.py:1 size=10 count=1",
                                     "m.py:2 size=7 count=1"));
  absl::StatusOr<StatisticList> by_file = s.Statistics(GroupBy::kFilename, true);
  EXPECT_THAT(OurStatLines(*by_file),
              ::testing::ElementsAre("r.py:0 size=20 count=2", "m.py:0 size=17 count=2"));
  ExpectSameLines(OurStatLines(*by_line),
                  Lines(Call("tm_synthetic", "stat_lines", "OsO", py.get(), "lineno", Py_True)),
                  "python");
  ExpectSameLines(OurStatLines(*by_file),
                  Lines(Call("tm_synthetic", "stat_lines", "OsO", py.get(), "filename", Py_True)),
                  "python");
}

TEST_F(TracemallocTest, SyntheticTiesAndOddNamesOrderAsPython) {
  for (int seed : {1, 2, 3, 4, 5}) {
    const std::string what = absl::StrCat("synthetic seed ", seed);
    Ref a = Synthetic(seed, 400);
    Ref b = Synthetic(seed + 10, 300, false, /*shared=*/false);
    ExpectSameAsPython(a, b, what, /*strings=*/seed == 1);
    ExpectSameAsPython(b, a, what + " reversed");
    ExpectSameAsPython(a, a, what + " with itself");
    // Every statistic ties on size and count: the traceback alone orders.
    Ref u = Synthetic(seed, 0, false, true, /*uniform=*/true);
    Ref v = Synthetic(seed + 3, 0, false, false, /*uniform=*/true);
    ExpectSameAsPython(u, v, what + " uniform");
  }
  // Unshared equal tuples intern to the same ids as shared ones.
  Snapshot shared = Convert(Synthetic(3, 500));
  Snapshot unshared = Convert(Synthetic(3, 500, false, false));
  EXPECT_EQ(shared.traceback_count(), unshared.traceback_count());
  EXPECT_EQ(shared.frame_count(), unshared.frame_count());
  EXPECT_EQ(OurTraceLines(shared), OurTraceLines(unshared));
  // Statistics of an empty snapshot.
  absl::StatusOr<StatisticList> none = Snapshot().Statistics(GroupBy::kLineno);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  absl::StatusOr<StatisticDiffList> gone = Snapshot().CompareTo(shared, GroupBy::kTraceback);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->size(), shared.traceback_count());
  for (const StatisticDiff& d : *gone) {
    EXPECT_EQ(d.size, 0);
    EXPECT_LT(d.size_diff, 0);
    EXPECT_EQ(d.count, 0);
  }
}

TEST_F(TracemallocTest, FiltersEqualPython) {
  Ref py = Synthetic(21, 600);
  Ref other = Synthetic(22, 400);
  Snapshot s = Convert(py);
  Snapshot o = Convert(other);
  Ref specs_list = Call("tm_synthetic", "filter_specs", "(ii)", 5, 250);
  ASSERT_TRUE(specs_list);
  int kept_some = 0;
  int dropped_some = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(specs_list.get()); ++i) {
    PyObject* specs = PyList_GET_ITEM(specs_list.get(), i);
    std::vector<TraceFilter> filters;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(specs); ++k) {
      PyObject* spec = PyList_GET_ITEM(specs, k);
      const std::string kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0));
      const bool inclusive = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 1)) == 1;
      if (kind == "D") {
        filters.emplace_back(DomainFilter{
            inclusive, static_cast<std::uint32_t>(PyLong_AsLong(PyTuple_GET_ITEM(spec, 2)))});
        continue;
      }
      Filter f;
      f.inclusive = inclusive;
      f.filename_pattern = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 2));
      if (PyTuple_GET_ITEM(spec, 3) != Py_None) {
        f.lineno = PyLong_AsLong(PyTuple_GET_ITEM(spec, 3));
      }
      f.all_frames = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 4)) == 1;
      if (PyTuple_GET_ITEM(spec, 5) != Py_None) {
        f.domain = static_cast<std::uint32_t>(PyLong_AsLong(PyTuple_GET_ITEM(spec, 5)));
      }
      filters.push_back(f);
    }
    Ref py_filtered = Call("tm_synthetic", "apply_specs", "OO", py.get(), specs);
    absl::StatusOr<Snapshot> ours = s.FilterTraces(filters);
    ASSERT_TRUE(ours.ok()) << ours.status();
    const std::string what = absl::StrCat("filter list ", i);
    ExpectSameLines(OurTraceLines(*ours),
                    Lines(Call("tm_synthetic", "trace_lines", "O", py_filtered.get())), what);
    if (ours->trace_count() > 0) ++kept_some;
    if (ours->trace_count() < s.trace_count()) ++dropped_some;
    if (i % 25 == 0) {
      // Filtered snapshots share their tables: the same-tables diff path.
      Ref py_other = Call("tm_synthetic", "apply_specs", "OO", other.get(), specs);
      absl::StatusOr<Snapshot> filtered_other = o.FilterTraces(filters);
      ASSERT_TRUE(filtered_other.ok());
      ExpectSameAsPython(py_filtered, py, what + " vs unfiltered");
      ExpectSameAsPython(py_filtered, py_other, what + " vs other");
    }
  }
  EXPECT_GT(kept_some, 50);
  EXPECT_GT(dropped_some, 50);
}

TEST_F(TracemallocTest, EmptyTracebacksBehaveAsInPython) {
  Ref py = Synthetic(31, 300, /*empty=*/true);
  Ref old_py = Synthetic(32, 200, /*empty=*/true);
  Snapshot s = Convert(py);
  Snapshot o = Convert(old_py);
  // lineno and traceback groupings, and filename cumulative, work.
  for (auto [g, cumulative] :
       {std::pair{GroupBy::kLineno, false}, std::pair{GroupBy::kLineno, true},
        std::pair{GroupBy::kTraceback, false}, std::pair{GroupBy::kFilename, true}}) {
    const std::string name(GroupByName(g));
    PyObject* cum = cumulative ? Py_True : Py_False;
    ExpectSameLines(OurStatLines(*s.Statistics(g, cumulative)),
                    Lines(Call("tm_synthetic", "stat_lines", "OsO", py.get(), name.c_str(), cum)),
                    name);
    ExpectSameLines(OurDiffLines(*s.CompareTo(o, g, cumulative)),
                    Lines(Call("tm_synthetic", "diff_lines", "OOsO", py.get(), old_py.get(),
                               name.c_str(), cum)),
                    name + " diff");
  }
  // Python raises IndexError for filename without cumulative; so do we.
  absl::StatusOr<StatisticList> by_file = s.Statistics(GroupBy::kFilename);
  EXPECT_EQ(by_file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(by_file.status().message()), HasSubstr("empty traceback"));
  Ref raised = Steal(PyObject_CallMethod(py.get(), "statistics", "s", "filename"));
  EXPECT_FALSE(raised);
  EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_IndexError));
  PyErr_Clear();
  // A Filter that looks at the most recent frame raises too; all_frames not.
  Filter recent;
  recent.filename_pattern = "*";
  EXPECT_EQ(s.FilterTraces({recent}).status().code(), absl::StatusCode::kInvalidArgument);
  Filter all = recent;
  all.all_frames = true;
  absl::StatusOr<Snapshot> kept = s.FilterTraces({all});
  ASSERT_TRUE(kept.ok());
  Ref spec = Steal(Py_BuildValue("[(sOsOOO)]", "F", Py_True, "*", Py_None, Py_True, Py_None));
  ExpectSameLines(
      OurTraceLines(*kept),
      Lines(Call("tm_synthetic", "trace_lines", "O",
                 Call("tm_synthetic", "apply_specs", "OO", py.get(), spec.get()).get())),
      "all_frames filter");
  EXPECT_LT(kept->trace_count(), s.trace_count());
}

// A leakguard snapshot taken from C, called from Python.
std::optional<Snapshot>* g_live = nullptr;
PyObject* TakeForPython(PyObject*, PyObject*) {
  absl::StatusOr<Snapshot> s = Snapshot::Take();
  if (!s.ok()) {
    PyErr_SetString(PyExc_RuntimeError, std::string(s.status().message()).c_str());
    return nullptr;
  }
  g_live->emplace(*std::move(s));
  Py_RETURN_NONE;
}
PyMethodDef g_take_def = {"leakguard_take", TakeForPython, METH_NOARGS, nullptr};

// How the live snapshot and Python's, taken right after it, differ once the
// takes' own leftovers are filtered out: the first differing statistic of
// each grouping and every non-zero diff by traceback; empty when identical.
std::vector<std::string> LiveTakeDifferences(const Snapshot& live, const Snapshot& theirs) {
  // The two takes see each other's leftovers (tuples kept by free lists),
  // allocated from tm_live.py and tracemalloc.py, and, on 3.9, a few blocks
  // that C code (no Python frame: "<unknown>") frees in between; everything
  // else must be identical.
  Filter no_live;
  no_live.inclusive = false;
  no_live.filename_pattern = "*tm_live.py";
  no_live.all_frames = true;
  Filter no_tracemalloc = no_live;
  no_tracemalloc.filename_pattern = "*tracemalloc.py";
  Filter no_c = no_live;
  no_c.filename_pattern = "<unknown>";
  const std::vector<TraceFilter> filters = {no_live, no_tracemalloc, no_c};
  absl::StatusOr<Snapshot> a = live.FilterTraces(filters);
  absl::StatusOr<Snapshot> b = theirs.FilterTraces(filters);
  if (!a.ok() || !b.ok()) return {"FilterTraces failed"};
  std::vector<std::string> out;
  if (a->trace_count() <= 1000u) {
    out.push_back(absl::StrCat("only ", a->trace_count(), " traces"));
  }
  for (GroupBy g : kAllGroupings) {
    const std::vector<std::string> ours = OurStatLines(*a->Statistics(g));
    const std::vector<std::string> python = OurStatLines(*b->Statistics(g));
    if (ours.size() != python.size()) {
      out.push_back(absl::StrCat(std::string(GroupByName(g)), ": ", ours.size(), " vs ",
                                 python.size(), " statistics"));
    }
    for (std::size_t i = 0; i < std::min(ours.size(), python.size()); ++i) {
      if (ours[i] != python[i]) {
        out.push_back(absl::StrCat(std::string(GroupByName(g)), " entry ", i, ": ", ours[i], " vs ",
                                   python[i]));
        break;
      }
    }
  }
  absl::StatusOr<StatisticDiffList> diff = a->CompareTo(*b, GroupBy::kTraceback);
  if (!diff.ok()) return {"CompareTo failed"};
  for (const StatisticDiff& d : *diff) {
    if (d.size_diff != 0 || d.count_diff != 0) out.push_back(d.ToString());
  }
  return out;
}

TEST_F(TracemallocTest, LiveTakeEqualsTakeSnapshotTakenRightAfter) {
  std::optional<Snapshot> live;
  g_live = &live;
  Ref take = Steal(PyCFunction_New(&g_take_def, nullptr));
  absl::StatusOr<TracingScope> scope = TracingScope::Start(6);
  ASSERT_TRUE(scope.ok());
  Call("tm_workload", "run", "(ii)", 7, 2000);
  for (const char* order : {"take_both", "take_both_reversed"}) {
    // Two takes are not one atomic moment: on the free-threaded build memory
    // can still be released between them that no Python code of the test
    // frees (arrays whose free QSBR delayed, objects whose last reference
    // biased reference counting merged later). A pair may therefore differ
    // by such a block; of three pairs, one must be identical. A wrong Take()
    // differs in every pair: the workload does not change between them.
    std::vector<std::string> attempts;
    bool identical = false;
    for (int attempt = 0; attempt < 3 && !identical; ++attempt) {
      live.reset();
      Ref py = Call("tm_live", order, "O", take.get());
      ASSERT_TRUE(live.has_value());
      EXPECT_EQ(live->traceback_limit(), 6);
      const std::vector<std::string> differences = LiveTakeDifferences(*live, Convert(py));
      identical = differences.empty();
      attempts.push_back(absl::StrJoin(differences, "\n  "));
    }
    EXPECT_TRUE(identical) << order << ", every pair differed:\n  "
                           << absl::StrJoin(attempts, "\n--\n  ");
  }
  g_live = nullptr;
}

TEST_F(TracemallocTest, TracebackFormatEqualsPython) {
  Ref py = Synthetic(41, 40);
  Snapshot s = Convert(py);
  for (std::optional<int> limit :
       {std::optional<int>(), std::optional<int>(0), std::optional<int>(1), std::optional<int>(2),
        std::optional<int>(-1), std::optional<int>(-3), std::optional<int>(10)}) {
    for (bool recent_first : {false, true}) {
      Ref py_limit = limit ? Steal(PyLong_FromLong(*limit)) : Borrow(Py_None);
      Ref theirs = Call("tm_synthetic", "format_lines", "OOO", py.get(), py_limit.get(),
                        recent_first ? Py_True : Py_False);
      ASSERT_EQ(static_cast<std::size_t>(PyList_GET_SIZE(theirs.get())), s.trace_count());
      for (std::size_t i = 0; i < s.trace_count(); ++i) {
        ExpectSameLines(s.trace(i).traceback.Format(limit, recent_first),
                        Lines(Borrow(PyList_GET_ITEM(theirs.get(), static_cast<Py_ssize_t>(i)))),
                        absl::StrCat("trace ", i, " limit ", limit.value_or(999)));
      }
    }
  }
}

TEST_F(TracemallocTest, KeysRenderAsFileAndLine) {
  Ref py = Eval(
      "tracemalloc.Snapshot([(0, 100, (('app.py', 12), ('main.py', 3)), 2),"
      " (0, 50, (('lib.py', 7),), 1)], 5)",
      "import tracemalloc");
  Snapshot s = Convert(py);
  absl::StatusOr<StatisticList> by_line = s.Statistics(GroupBy::kLineno);
  ASSERT_TRUE(by_line.ok());
  ASSERT_EQ(by_line->size(), 2u);
  EXPECT_EQ((*by_line)[0].traceback.ToString(), "app.py:12");
  EXPECT_EQ((*by_line)[0].traceback.most_recent().filename, "app.py");
  EXPECT_EQ((*by_line)[0].traceback.most_recent().lineno, 12);
  EXPECT_EQ((*by_line)[0].ToString(), "app.py:12: size=100 B, count=1, average=100 B");
  EXPECT_EQ((*by_line)[1].traceback.ToString(), "lib.py:7");
  absl::StatusOr<StatisticList> by_file = s.Statistics(GroupBy::kFilename);
  EXPECT_EQ((*by_file)[0].traceback.ToString(), "app.py:0");
  absl::StatusOr<StatisticList> by_tb = s.Statistics(GroupBy::kTraceback);
  const Traceback& tb = (*by_tb)[0].traceback;
  ASSERT_EQ(tb.size(), 2u);
  EXPECT_EQ(tb[0].ToString(), "main.py:3");  // oldest first, as Python
  EXPECT_EQ(tb[1].ToString(), "app.py:12");
  EXPECT_EQ(tb.ToString(), "main.py:3");  // str(Traceback) = str(tb[0])
  EXPECT_THAT(tb.Format(),
              ::testing::ElementsAre("  File \"main.py\", line 3", "  File \"app.py\", line 12"));
  const Trace t = s.trace(0);
  EXPECT_EQ(t.size, 100u);
  EXPECT_EQ(t.total_nframe, 2u);
  EXPECT_EQ(t.traceback, tb);
  EXPECT_FALSE(t.traceback < tb);
  EXPECT_TRUE(s.trace(1).traceback < tb);  // "lib.py" < "main.py"
  EXPECT_EQ(s.total_size(), 150u);
  EXPECT_EQ(GroupByName(GroupBy::kFilename), "filename");
  EXPECT_EQ(*ParseGroupBy("traceback"), GroupBy::kTraceback);
  EXPECT_EQ(ParseGroupBy("line").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TracemallocTest, DumpLoadAndToPythonRoundTrip) {
  Ref py = Synthetic(51, 300);
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/tm_roundtrip_", getpid(), ".pickle");
  ASSERT_TRUE(Steal(PyObject_CallMethod(py.get(), "dump", "s", path.c_str())));
  absl::StatusOr<Snapshot> loaded = Snapshot::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Snapshot direct = Convert(py);
  EXPECT_EQ(OurTraceLines(*loaded), OurTraceLines(direct));
  EXPECT_EQ(loaded->traceback_limit(), 4);
  // Ours, dumped, loads in Python equal to the original.
  ASSERT_TRUE(direct.Dump(path).ok());
  Ref tm = Import("tracemalloc");
  Ref snapshot_type = Steal(PyObject_GetAttrString(tm.get(), "Snapshot"));
  Ref reloaded = Steal(PyObject_CallMethod(snapshot_type.get(), "load", "s", path.c_str()));
  ASSERT_TRUE(reloaded) << StatusFromPythonError();
  PyObject* a = PyObject_GetAttrString(reloaded.get(), "traces");
  Ref a_traces = Steal(PyObject_GetAttrString(a, "_traces"));
  Py_DECREF(a);
  PyObject* b = PyObject_GetAttrString(py.get(), "traces");
  Ref b_traces = Steal(PyObject_GetAttrString(b, "_traces"));
  Py_DECREF(b);
  EXPECT_EQ(PyObject_RichCompareBool(a_traces.get(), b_traces.get(), Py_EQ), 1);
  absl::StatusOr<Ref> to_py = direct.ToPython();
  ASSERT_TRUE(to_py.ok());
  PyObject* c = PyObject_GetAttrString(to_py->get(), "traces");
  Ref c_traces = Steal(PyObject_GetAttrString(c, "_traces"));
  Py_DECREF(c);
  EXPECT_EQ(PyObject_RichCompareBool(c_traces.get(), b_traces.get(), Py_EQ), 1);
  std::remove(path.c_str());
}

// Found by tests/fuzz/snapshot_load_fuzzer (corpus/snapshot_load/
// huge_frame.pickle): a 180-byte file whose pickle FRAME declares about
// 72 PB. pickle.load() of the file asked the reader for that many bytes
// (MemoryError here; under ASan an abort; with less, gigabytes allocated);
// read whole and unpickled from memory it is just truncated data.
TEST_F(TracemallocTest, LoadOfAFileDeclaringAHugePickleFrameIsTruncatedData) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/tm_frame_", getpid(), ".pickle");
  Eval("None",
       "import tracemalloc, pickle\n"
       "good = pickle.dumps(tracemalloc.Snapshot(((0, 64, (('/srv/a.py', 10),), 1),), 5),"
       " protocol=5)\n"
       "assert good[2] == 0x95\n"  // FRAME, then its 8-byte length.
       "bad = good[:3] + (0xfffffffe0000c7).to_bytes(8, 'little') + good[11:]\n"
       "with open(" +
           absl::StrCat("'", path, "'") + ", 'wb') as f: f.write(bad)");
  absl::StatusOr<Snapshot> loaded = Snapshot::Load(path);
  std::remove(path.c_str());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << loaded.status();
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("truncated"));
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST_F(TracemallocTest, LoadAndFromPythonRejectBadInput) {
  absl::StatusOr<Snapshot> missing = Snapshot::Load("/nonexistent/snap.pickle");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  const std::string path = absl::StrCat(::testing::TempDir(), "/tm_bad_", getpid(), ".pickle");
  Eval("None", "import pickle\nwith open(" + absl::StrCat("'", path, "'") +
                   ", 'wb') as f: pickle.dump({'a': 1}, f)");
  absl::StatusOr<Snapshot> not_snapshot = Snapshot::Load(path);
  EXPECT_EQ(not_snapshot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_snapshot.status().message()), HasSubstr("holds a pickled dict"));
  Eval("None",
       "with open(" + absl::StrCat("'", path, "'") + ", 'wb') as f: f.write(b'not a pickle')");
  EXPECT_EQ(Snapshot::Load(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::remove(path.c_str());
  EXPECT_EQ(PyErr_Occurred(), nullptr);

  Ref number = Steal(PyLong_FromLong(3));
  absl::StatusOr<Snapshot> from_int = Snapshot::FromPython(number);
  EXPECT_EQ(from_int.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(from_int.status().message()), HasSubstr("got a int"));
  struct Case {
    const char* traces;
    const char* message;
  };
  for (const Case& c : {
           Case{"[(0, 10, (('a.py', 1),), 1), (0, -1, (), 1)]", "trace 1: size is not an int"},
           Case{"[(0, 1, (('a.py', 1),))]", "trace 0: not a tuple of 4 items"},
           Case{"[(0, 1, ((b'a.py', 1),), 1)]", "trace 0: a frame's filename is not a str"},
           Case{"[(0, 1, (('a.py', '1'),), 1)]", "trace 0: a frame's lineno is not an int"},
           Case{"[(2**40, 1, (), 1)]", "trace 0: domain is not an int"},
           Case{"[(0, 1, [('a.py', 1)], 1)]", "trace 0: traceback is not a tuple"},
           Case{"[(0, 1, (), 'x')]", "trace 0: total_nframe"},
       }) {
    Ref bad = Eval(absl::StrCat("tracemalloc.Snapshot(", c.traces, ", 1)"), "import tracemalloc");
    absl::StatusOr<Snapshot> s = Snapshot::FromPython(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.traces;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
  }
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST_F(TracemallocTest, StatisticsAndCompareRunOnThreadsWithoutTheGil) {
  Snapshot a = Convert(Synthetic(61, 2000));
  Snapshot b = Convert(Synthetic(62, 2000));
  const std::vector<std::string> want_stats = OurStatLines(*a.Statistics(GroupBy::kTraceback));
  const std::vector<std::string> want_diffs = OurDiffLines(*a.CompareTo(b, GroupBy::kLineno, true));
  std::vector<std::vector<std::string>> stats(4);
  std::vector<std::vector<std::string>> diffs(4);
  {
    GilRelease released;
    ASSERT_FALSE(CheckGil().ok());
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        for (int k = 0; k < 5; ++k) {
          stats[i] = OurStatLines(*a.Statistics(GroupBy::kTraceback));
          diffs[i] = OurDiffLines(*a.CompareTo(b, GroupBy::kLineno, true));
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(stats[i], want_stats);
    EXPECT_EQ(diffs[i], want_diffs);
  }
  EXPECT_FALSE(want_diffs.empty());
}

TEST_F(TracemallocTest, ResultListsOutliveTheirSnapshots) {
  std::optional<StatisticDiffList> diffs;
  std::string first;
  {
    Snapshot a = Convert(Synthetic(71, 100));
    Snapshot b = Convert(Synthetic(72, 100));
    diffs = *a.CompareTo(b, GroupBy::kTraceback);
    first = (*diffs)[0].ToString();
  }
  ASSERT_FALSE(diffs->empty());
  EXPECT_EQ((*diffs)[0].ToString(), first);
  std::size_t frames = 0;
  for (const StatisticDiff& d : *diffs) frames += d.traceback.frames().size();
  EXPECT_GT(frames, diffs->size());
}

// -------------------------------------------------------------- fnmatch

TEST(TracemallocFnmatchTest, EqualsPythonOnRandomPatterns) {
  Ref cases = Call("tm_fnmatch", "cases", "(ii)", 11, 6000);
  ASSERT_TRUE(cases);
  int matched = 0;
  int compared = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cases.get()); ++i) {
    PyObject* c = PyList_GET_ITEM(cases.get(), i);
    PyObject* verdict = PyTuple_GET_ITEM(c, 2);
    if (verdict == Py_None) continue;  // this Python raises on the pattern
    const std::string name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(c, 0));
    const std::string pattern = PyUnicode_AsUTF8(PyTuple_GET_ITEM(c, 1));
    absl::StatusOr<bool> ours = internal::FnMatch(name, pattern);
    ASSERT_TRUE(ours.ok()) << pattern << ": " << ours.status();
    ASSERT_EQ(*ours, verdict == Py_True) << "fnmatch(" << name << ", " << pattern << ")";
    ++compared;
    matched += *ours ? 1 : 0;
  }
  EXPECT_GT(compared, 5000);
  EXPECT_GT(matched, 150);
}

TEST(TracemallocFnmatchTest, KnownCases) {
  struct Case {
    const char* name;
    const char* pattern;
    bool match;
  };
  for (const Case& c : {
           Case{"/usr/lib/python3/app.py", "*/app.py", true}, Case{"app.py", "*/app.py", false},
           Case{"a\nb", "a*b", true},        // '*' crosses newlines
           Case{"App.py", "app.py", false},  // case-sensitive
           Case{"b.py", "[!a].py", true}, Case{"].py", "[]].py", true}, Case{"-", "[a-]", true},
           Case{"z", "[z-a]", false},          // reversed range: matches nothing
           Case{"q", "[!z-a]", true},          // ... and negated, anything
           Case{"\\", "[\\]", true},           // '\' is literal
           Case{"[", "[", true},               // unclosed '[' is literal
           Case{"\xc3\xa9.py", "?.py", true},  // '?' is one code point
       }) {
    absl::StatusOr<bool> m = internal::FnMatch(c.name, c.pattern);
    ASSERT_TRUE(m.ok()) << c.pattern;
    EXPECT_EQ(*m, c.match) << c.name << " vs " << c.pattern;
  }
  EXPECT_EQ(internal::FnMatch("a", "\xff").status().code(), absl::StatusCode::kInvalidArgument);
  Filter bad;  // a pattern that is not UTF-8
  bad.filename_pattern = "\xc3";
  EXPECT_EQ(Snapshot().FilterTraces({bad}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace leakguard::tracemalloc
