#include "probes/growth.h"

#include <string>
#include <vector>

#include "leakguard/counters.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard::internal {

absl::StatusOr<std::vector<LineGrowth>> GrownLines(const tracemalloc::Snapshot& before,
                                                   const tracemalloc::Snapshot& after,
                                                   tracemalloc::GroupBy group_by, int top) {
  const std::vector<tracemalloc::TraceFilter>& filters = OwnFrameFilters();
  absl::StatusOr<tracemalloc::Snapshot> a = before.FilterTraces(filters);
  if (!a.ok()) return a.status();
  absl::StatusOr<tracemalloc::Snapshot> b = after.FilterTraces(filters);
  if (!b.ok()) return b.status();
  absl::StatusOr<tracemalloc::StatisticDiffList> diffs = b->CompareTo(*a, group_by);
  if (!diffs.ok()) return diffs.status();
  std::vector<LineGrowth> lines;
  // compare_to's order is by |size_diff|: the first positive ones are the
  // largest growths.
  for (const tracemalloc::StatisticDiff& diff : *diffs) {
    if (static_cast<int>(lines.size()) >= top) break;
    if (diff.size_diff <= 0 || diff.traceback.empty()) continue;
    const tracemalloc::Frame frame = diff.traceback.most_recent();
    lines.push_back(
        {std::string(frame.filename),
         group_by == tracemalloc::GroupBy::kFilename ? 0 : static_cast<int>(frame.lineno),
         diff.size_diff, diff.count_diff, diff.size});
  }
  return lines;
}

absl::StatusOr<int64_t> AllocatedBlocks() {
  absl::StatusOr<Ref> sys = Import("sys");
  if (!sys.ok()) return sys.status();
  absl::StatusOr<Ref> value = CallMethod(sys->handle(), "getallocatedblocks");
  if (!value.ok()) return value.status();
  const long long n = PyLong_AsLongLong(value->get());
  if (n == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return static_cast<int64_t>(n);
}

absl::StatusOr<std::optional<int64_t>> TotalRefCount() {
#ifndef Py_REF_DEBUG
  return std::optional<int64_t>();  // Only debug builds have sys.gettotalrefcount.
#else
  absl::StatusOr<Ref> sys = Import("sys");
  if (!sys.ok()) return sys.status();
  absl::StatusOr<Ref> value = CallMethod(sys->handle(), "gettotalrefcount");
  if (!value.ok()) return value.status();
  const long long n = PyLong_AsLongLong(value->get());
  if (n == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return std::optional<int64_t>(n);
#endif
}

absl::StatusOr<int64_t> CollectGarbage() {
  absl::StatusOr<Ref> gc = Import("gc");
  if (!gc.ok()) return gc.status();
  absl::StatusOr<Ref> freed = CallMethod(gc->handle(), "collect");
  if (!freed.ok()) return freed.status();
  const long long n = PyLong_AsLongLong(freed->get());
  if (n == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return static_cast<int64_t>(n);
}

}  // namespace leakguard::internal
