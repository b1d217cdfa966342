#include "leakguard/leak_check.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "leakguard/object_graph.h"
#include "leakguard/process.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"
#include "probes/growth.h"
#include "python/gil_capability.h"

namespace leakguard {
namespace {

constexpr int64_t kPage = 4096;

struct Counters {
  int64_t blocks = 0;
  std::optional<int64_t> refs;
  std::optional<int64_t> traced;
  int64_t rss = 0;
  int64_t fds = 0;
};

// The sys functions, looked up once per check.
struct SysCounters {
  Ref getallocatedblocks;
  Ref gettotalrefcount;  // Null on release builds.
};

absl::StatusOr<SysCounters> LookUpSys() {
  SysCounters sys;
  absl::StatusOr<Ref> module = Import("sys");
  if (!module.ok()) return module.status();
  absl::StatusOr<Ref> blocks = GetAttr(module->handle(), "getallocatedblocks");
  if (!blocks.ok()) return blocks.status();
  sys.getallocatedblocks = *std::move(blocks);
  // Only debug builds have it.
  sys.gettotalrefcount = GetAttr(module->handle(), "gettotalrefcount").value_or(Ref());
  return sys;
}

absl::StatusOr<int64_t> CallCount(const Ref& func) {
  Ref value = Steal(PyObject_CallNoArgs(func.get()));
  if (!value) return StatusFromPythonError();
  const long long n = PyLong_AsLongLong(value.get());
  if (n == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return static_cast<int64_t>(n);
}

absl::StatusOr<Counters> ReadCounters(const SysCounters& sys, bool tracing) {
  Counters c;
  absl::StatusOr<int64_t> blocks = CallCount(sys.getallocatedblocks);
  if (!blocks.ok()) return blocks.status();
  c.blocks = *blocks;
  if (sys.gettotalrefcount) {
    absl::StatusOr<int64_t> refs = CallCount(sys.gettotalrefcount);
    if (!refs.ok()) return refs.status();
    c.refs = *refs;
  }
  if (tracing) {
    absl::StatusOr<tracemalloc::TracedMemory> traced = tracemalloc::GetTracedMemory();
    if (!traced.ok()) return traced.status();
    c.traced = static_cast<int64_t>(traced->current);
  }
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  if (!sample.ok()) return sample.status();
  c.rss = sample->rss_bytes;
  c.fds = sample->open_fds;
  return c;
}

RunDelta Subtract(const Counters& after, const Counters& before) {
  RunDelta d;
  d.blocks = after.blocks - before.blocks;
  if (after.refs && before.refs) d.refs = *after.refs - *before.refs;
  if (after.traced && before.traced) d.traced_bytes = *after.traced - *before.traced;
  d.rss_bytes = after.rss - before.rss;
  d.fds = after.fds - before.fds;
  return d;
}

void Judge(LeakCheckResult& result) {
  const auto& o = result.options;
  auto post = [&](auto pick) {
    std::vector<int64_t> values;
    for (size_t i = static_cast<size_t>(o.warmup); i < result.runs.size(); ++i) {
      values.push_back(pick(result.runs[i]));
    }
    return values;
  };
  auto all_at_least = [](const std::vector<int64_t>& v, int64_t floor) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [floor](int64_t x) { return x >= floor; });
  };
  result.leaked_blocks = GrowsEveryRun(post([](const RunDelta& d) { return d.blocks; }));
  if (!result.runs.empty() && result.runs[0].refs.has_value()) {
    result.leaked_refs = GrowsEveryRun(post([](const RunDelta& d) { return d.refs.value_or(0); }));
  }
  const std::vector<int64_t> fds = post([](const RunDelta& d) { return d.fds; });
  result.leaked_fds = std::any_of(fds.begin(), fds.end(), [](int64_t x) { return x != 0; });
  result.leaked_rss = all_at_least(post([](const RunDelta& d) { return d.rss_bytes; }), kPage);
  result.leaked =
      result.leaked_blocks || result.leaked_refs || result.leaked_fds || result.leaked_rss;
}

absl::StatusOr<LeakCheckResult> Run(const std::function<absl::Status()>& fn,
                                    const LeakCheckOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.warmup < 0 || options.warmup > 1000 || options.repeat < 1 || options.repeat > 1000 ||
      options.top < 0 || options.top > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LeakCheck needs warmup in 0..1000, repeat in 1..1000 and top in 0..1000; got warmup=",
        options.warmup, " repeat=", options.repeat, " top=", options.top));
  }
  absl::StatusOr<SysCounters> sys = LookUpSys();
  if (!sys.ok()) return sys.status();

  // Trace for the check if asked and not already tracing; the scope restores
  // tracemalloc's state on every return below.
  std::optional<tracemalloc::TracingScope> scope;
  absl::StatusOr<bool> was_tracing = tracemalloc::IsTracing();
  if (!was_tracing.ok()) return was_tracing.status();
  bool tracing = *was_tracing;
  if (options.trace_lines && !tracing) {
    absl::StatusOr<tracemalloc::TracingScope> started = tracemalloc::TracingScope::Start(1);
    if (!started.ok()) return started.status();
    scope.emplace(*std::move(started));
    tracing = true;
  }

  LeakCheckResult result;
  result.options = options;
  std::optional<tracemalloc::Snapshot> first;
  std::optional<TypeCensus> census_first;
  if (absl::StatusOr<int64_t> c = internal::CollectGarbage(); !c.ok()) return c.status();
  absl::StatusOr<Counters> before = ReadCounters(*sys, tracing);
  if (!before.ok()) return before.status();
  const int total = options.warmup + options.repeat;
  for (int i = 0; i < total; ++i) {
    if (i == options.warmup && options.top > 0) {
      // The snapshot and the census are C++ data, but taking them briefly
      // allocates Python objects: read the counters again after them, so
      // no run pays for it.
      if (tracing && options.trace_lines) {
        absl::StatusOr<tracemalloc::Snapshot> snap = tracemalloc::Snapshot::Take();
        if (!snap.ok()) return snap.status();
        first.emplace(*std::move(snap));
      }
      absl::StatusOr<TypeCensus> census = TakeTypeCensus();
      if (!census.ok()) return census.status();
      census_first.emplace(*std::move(census));
      if (absl::StatusOr<int64_t> c = internal::CollectGarbage(); !c.ok()) return c.status();
      before = ReadCounters(*sys, tracing);
      if (!before.ok()) return before.status();
    }
    if (absl::Status ran = fn(); !ran.ok()) return ran;
    if (absl::StatusOr<int64_t> c = internal::CollectGarbage(); !c.ok()) return c.status();
    absl::StatusOr<Counters> after = ReadCounters(*sys, tracing);
    if (!after.ok()) return after.status();
    result.runs.push_back(Subtract(*after, *before));
    before = std::move(after);
  }
  Judge(result);
  if (census_first.has_value()) {
    absl::StatusOr<TypeCensus> census_last = TakeTypeCensus();
    if (!census_last.ok()) return census_last.status();
    std::map<std::string, int64_t> before;
    for (const TypeCount& t : census_first->Counts()) before[t.name] = t.count;
    for (const TypeCount& t : census_last->Counts()) {
      if (t.count > before[t.name]) result.top_types.push_back({t.name, t.count - before[t.name]});
    }
    std::stable_sort(result.top_types.begin(), result.top_types.end(),
                     [](const TypeDelta& a, const TypeDelta& b) { return a.count > b.count; });
    if (result.top_types.size() > static_cast<size_t>(options.top)) {
      result.top_types.resize(options.top);
    }
  }
  if (first.has_value() && options.top > 0) {
    absl::StatusOr<tracemalloc::Snapshot> last = tracemalloc::Snapshot::Take();
    if (!last.ok()) return last.status();
    absl::StatusOr<std::vector<LineGrowth>> lines =
        internal::GrownLines(*first, *last, tracemalloc::GroupBy::kLineno, options.top);
    if (!lines.ok()) return lines.status();
    result.top_lines = *std::move(lines);
  }
  if (scope.has_value()) {
    if (absl::Status ended = scope->End(); !ended.ok()) return ended;
  }
  return result;
}

std::string Series(const std::vector<RunDelta>& runs, size_t from, size_t to,
                   const std::function<std::string(const RunDelta&)>& show) {
  std::vector<std::string> parts;
  for (size_t i = from; i < to && i < runs.size(); ++i) parts.push_back(show(runs[i]));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string Signed(int64_t v) { return v > 0 ? absl::StrCat("+", v) : absl::StrCat(v); }
std::string SignedSize(int64_t v) {
  return v > 0 ? absl::StrCat("+", FormatBytes(v)) : FormatBytes(v);
}

}  // namespace

bool GrowsEveryRun(const std::vector<int64_t>& deltas) {
  if (deltas.empty() || deltas.back() < 1) return false;
  const auto below = std::count_if(deltas.begin(), deltas.end(), [](int64_t d) { return d < 1; });
  return below == 0 || (below == 1 && deltas.size() >= 4);
}

std::string LeakCheckResult::Describe() const {
  std::vector<std::string> what;
  if (leaked_blocks) what.push_back("memory blocks");
  if (leaked_refs) what.push_back("references");
  if (leaked_fds) what.push_back("file descriptors");
  if (leaked_rss) what.push_back("RSS");
  std::string out =
      leaked ? absl::StrCat("leaks ", absl::StrJoin(what, ", ")) : std::string("no leak");
  absl::StrAppend(&out, " over ", options.repeat, " runs (after ", options.warmup,
                  " warmup runs)\n");
  const size_t w = static_cast<size_t>(options.warmup);
  const size_t n = runs.size();
  auto row = [&](const char* name, const std::function<std::string(const RunDelta&)>& show) {
    absl::StrAppend(&out, "  ", name, Series(runs, w, n, show), "  warmup ",
                    Series(runs, 0, w, show), "\n");
  };
  row("blocks per run: ", [](const RunDelta& d) { return Signed(d.blocks); });
  if (!runs.empty() && runs[0].refs) {
    row("refs per run:   ", [](const RunDelta& d) { return Signed(d.refs.value_or(0)); });
  }
  if (!runs.empty() && runs[0].traced_bytes) {
    row("traced per run: ",
        [](const RunDelta& d) { return SignedSize(d.traced_bytes.value_or(0)); });
  }
  row("RSS per run:    ", [](const RunDelta& d) { return SignedSize(d.rss_bytes); });
  row("fds per run:    ", [](const RunDelta& d) { return Signed(d.fds); });
  if (!top_lines.empty()) {
    absl::StrAppend(&out, "  lines that grew over the ", options.repeat, " runs:\n");
    for (const LineGrowth& line : top_lines) {
      absl::StrAppend(&out, "    ", line.file, ":", line.line, "  ", SignedSize(line.size_diff),
                      " in ", Signed(line.count_diff), " blocks\n");
    }
  }
  if (!top_types.empty()) {
    std::vector<std::string> types;
    for (const TypeDelta& t : top_types) types.push_back(absl::StrCat(t.type, " +", t.count));
    absl::StrAppend(&out, "  types that grew over the ", options.repeat,
                    " runs: ", absl::StrJoin(types, ", "), "\n");
  }
  absl::StrAppend(&out,
                  "  rule: blocks/refs leak when every post-warmup delta is >= 1 (over 4+ "
                  "runs, one below 1 that is not the last is forgiven); fds when any delta "
                  "is non-zero; RSS when every delta is >= 4 KiB\n");
  return out;
}

absl::StatusOr<LeakCheckResult> RunLeakCheck(const std::function<absl::Status()>& fn,
                                             const LeakCheckOptions& options) {
  return Run(fn, options);
}

absl::StatusOr<LeakCheckResult> RunLeakCheck(Handle callable, const LeakCheckOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!callable || !PyCallable_Check(callable.get())) {
    return absl::InvalidArgumentError("RunLeakCheck needs a Python callable");
  }
  return Run(
      [callable]() -> absl::Status {
        Ref result = Steal(PyObject_CallNoArgs(callable.get()));
        if (!result) return StatusFromPythonError();
        return absl::OkStatus();
      },
      options);
}

}  // namespace leakguard
