// The pure C++ half of the tracemalloc probe: interned snapshot data,
// grouping, diffing, filtering and formatting. Nothing here touches Python,
// so none of it needs the GIL; all of it reads immutable data only.
//
// Python's rules, reproduced from Lib/tracemalloc.py (3.9 to 3.13 share it):
//  - _group_by walks the traces in order and inserts each key the first time
//    it appears; statistics() / compare_to() then sort with reverse=True,
//    which is stable. Keys are unique per group, and the sort keys end with
//    the traceback, so equal sort keys cannot happen: the order is total.
//    We still build groups in Python's insertion order and sort stably, so
//    the output would match even if that ever changed.
//  - A Traceback compares as the tuple of its (filename, lineno) tuples,
//    oldest frame first; filenames compare by code point, which is the byte
//    order of their UTF-8 (surrogatepass) encoding.
//  - cumulative counts a trace once per frame occurrence (a frame repeated
//    by recursion counts twice).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "leakguard/tracemalloc.h"
#include "probes/tracemalloc_internal.h"

namespace leakguard {
namespace internal {

std::shared_ptr<const SnapshotTables> FinishTables(SnapshotTables tables) {
  const std::size_t n = tables.filenames.size();
  std::vector<std::uint32_t> by_name(n);
  for (std::size_t i = 0; i < n; ++i) by_name[i] = static_cast<std::uint32_t>(i);
  std::sort(by_name.begin(), by_name.end(), [&tables](std::uint32_t a, std::uint32_t b) {
    return tables.filenames[a] < tables.filenames[b];
  });
  tables.filename_rank.assign(n, 0);
  for (std::size_t r = 0; r < n; ++r) {
    tables.filename_rank[by_name[r]] = static_cast<std::uint32_t>(r);
  }
  return std::make_shared<const SnapshotTables>(std::move(tables));
}

std::shared_ptr<const SnapshotTables> TablesBuilder::Finish() {
  return FinishTables(std::move(tables_));
}

}  // namespace internal

namespace tracemalloc {
namespace {

using internal::SnapshotFrame;
using internal::SnapshotTables;
using internal::SnapshotTrace;
using Kind = Traceback::Kind;

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ---------------------------------------------------------------- formatting

// Lib/tracemalloc.py's _format_size().
std::string FormatSize(double size, bool sign) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  for (int unit = 0; unit < 5; ++unit) {
    if (std::fabs(size) < 100 && unit != 0) {
      return sign ? absl::StrFormat("%+.1f %s", size, kUnits[unit])
                  : absl::StrFormat("%.1f %s", size, kUnits[unit]);
    }
    if (std::fabs(size) < 10 * 1024 || unit == 4) {
      return sign ? absl::StrFormat("%+.0f %s", size, kUnits[unit])
                  : absl::StrFormat("%.0f %s", size, kUnits[unit]);
    }
    size /= 1024;
  }
  return std::string();  // Not reached: unit 4 always returns.
}

std::string Signed(std::int64_t v) { return v >= 0 ? absl::StrCat("+", v) : absl::StrCat(v); }

std::string AverageSuffix(std::int64_t size, std::int64_t count) {
  if (count == 0) return std::string();
  return absl::StrCat(", average=",
                      FormatSize(static_cast<double>(size) / static_cast<double>(count), false));
}

// ------------------------------------------------------------ ranked keys

// A group key together with the file name ranks to order it by.
struct RankedKey {
  const SnapshotTables* tables;
  const std::uint32_t* rank;  // rank of each of tables' filenames
  Kind kind;
  std::uint32_t id;

  std::uint32_t size() const { return kind == Kind::kStack ? tables->stack_size(id) : 1; }
  // Frame i, oldest first, as (filename rank, lineno).
  std::pair<std::uint32_t, std::int64_t> At(std::uint32_t i) const {
    switch (kind) {
      case Kind::kStack: {
        const std::uint32_t n = tables->stack_size(id);
        const SnapshotFrame& f = tables->frames[tables->stack_begin(id)[n - 1 - i]];
        return {rank[f.filename], f.lineno};
      }
      case Kind::kFrame: {
        const SnapshotFrame& f = tables->frames[id];
        return {rank[f.filename], f.lineno};
      }
      case Kind::kFile:
        return {rank[id], 0};
    }
    return {0, 0};
  }
};

// <0, 0, >0 as Python's tuple comparison of the two tracebacks.
int CompareKeys(const RankedKey& a, const RankedKey& b) {
  const std::uint32_t na = a.size();
  const std::uint32_t nb = b.size();
  const std::uint32_t n = std::min(na, nb);
  for (std::uint32_t i = 0; i < n; ++i) {
    auto fa = a.At(i);
    auto fb = b.At(i);
    if (fa != fb) return fa < fb ? -1 : 1;
  }
  if (na == nb) return 0;
  return na < nb ? -1 : 1;
}

// --------------------------------------------------------------- grouping

struct Group {
  Kind kind;
  std::uint32_t id;
  std::int64_t size;
  std::int64_t count;
};

struct Sum {
  std::int64_t size = 0;
  std::int64_t count = 0;
};

// Adds `add` to the group of key (kind, id), creating it (in insertion order)
// through `slot`, a dense index from id to group position (-1: none yet).
inline void AddTo(std::vector<Group>& groups, std::int32_t& slot, Kind kind, std::uint32_t id,
                  const Sum& add) {
  if (slot < 0) {
    slot = static_cast<std::int32_t>(groups.size());
    groups.push_back(Group{kind, id, 0, 0});
  }
  Group& g = groups[static_cast<std::size_t>(slot)];
  g.size += add.size;
  g.count += add.count;
}

absl::Status CheckGroupBy(GroupBy group_by, bool cumulative) {
  if (group_by != GroupBy::kLineno && group_by != GroupBy::kFilename &&
      group_by != GroupBy::kTraceback) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown group_by value ", static_cast<int>(group_by)));
  }
  if (cumulative && group_by == GroupBy::kTraceback) {
    return absl::InvalidArgumentError(
        "cumulative mode cannot be used with group_by 'traceback' (Python "
        "raises ValueError); use 'lineno' or 'filename'");
  }
  return absl::OkStatus();
}

// Snapshot._group_by(): the groups in Python's insertion order.
absl::StatusOr<std::vector<Group>> GroupTraces(const SnapshotTables& t,
                                               const std::vector<SnapshotTrace>& traces,
                                               GroupBy group_by, bool cumulative) {
  if (absl::Status s = CheckGroupBy(group_by, cumulative); !s.ok()) return s;
  // Per traceback first: the traces of one traceback always land in the
  // same groups, and the order in which tracebacks first appear gives the
  // order in which Python first sees each key.
  std::vector<Sum> sums(t.stack_count());
  std::vector<std::uint32_t> order;
  for (const SnapshotTrace& tr : traces) {
    Sum& s = sums[tr.stack];
    if (s.count == 0) order.push_back(tr.stack);
    s.size += static_cast<std::int64_t>(tr.size);
    ++s.count;
  }
  std::vector<Group> groups;
  if (group_by == GroupBy::kTraceback) {
    groups.reserve(order.size());
    for (std::uint32_t s : order) {
      groups.push_back(Group{Kind::kStack, s, sums[s].size, sums[s].count});
    }
    return groups;
  }
  const bool by_file = group_by == GroupBy::kFilename;
  std::vector<std::int32_t> slots(by_file ? t.filenames.size() : t.frames.size(), -1);
  std::int32_t empty_slot = -1;
  for (std::uint32_t s : order) {
    const std::uint32_t n = t.stack_size(s);
    const std::uint32_t* ids = t.stack_begin(s);
    if (n == 0) {
      if (cumulative) continue;  // no frame, nothing to count
      if (by_file) {
        std::size_t index = 0;
        while (traces[index].stack != s) ++index;
        return absl::InvalidArgumentError(
            absl::StrCat("trace ", index,
                         " has an empty traceback: it has no file to group by (Python's "
                         "statistics('filename') raises IndexError)"));
      }
      AddTo(groups, empty_slot, Kind::kStack, s, sums[s]);
      continue;
    }
    const std::uint32_t count = cumulative ? n : 1;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint32_t f = ids[i];
      if (by_file) {
        const std::uint32_t file = t.frames[f].filename;
        AddTo(groups, slots[file], Kind::kFile, file, sums[s]);
      } else {
        AddTo(groups, slots[f], Kind::kFrame, f, sums[s]);
      }
    }
  }
  return groups;
}

// ------------------------------------------------------------ fnmatch glue

// One filter, evaluated per trace with per-file and per-stack caches, in the
// exact order and with the exact short-circuits of Python's filter_traces()
// (a Filter on an empty traceback raises only where Python evaluates it).
class CompiledFilter {
 public:
  static absl::StatusOr<CompiledFilter> Make(const TraceFilter& filter, const SnapshotTables& t) {
    CompiledFilter c;
    c.tables_ = &t;
    if (const auto* d = std::get_if<DomainFilter>(&filter)) {
      c.is_domain_filter_ = true;
      c.inclusive_ = d->inclusive;
      c.domain_ = d->domain;
      return c;
    }
    const Filter& f = std::get<Filter>(filter);
    c.inclusive_ = f.inclusive;
    c.lineno_ = f.lineno;
    c.all_frames_ = f.all_frames;
    c.domain_ = f.domain;
    absl::StatusOr<std::vector<bool>> m = internal::MatchFilenames(f.filename_pattern, t.filenames);
    if (!m.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter pattern '", AbslView(f.filename_pattern), "': ", m.status().message()));
    }
    c.file_match_ = *std::move(m);
    c.stack_match_.assign(t.stack_count(), kUnknown);
    return c;
  }

  bool inclusive() const { return inclusive_; }

  // BaseFilter._match(trace); an error where Python raises IndexError.
  absl::StatusOr<bool> Match(const SnapshotTrace& trace, std::size_t index) {
    if (is_domain_filter_) {
      return (trace.domain == domain_) != !inclusive_;
    }
    std::int8_t& cached = stack_match_[trace.stack];
    if (cached == kUnknown) {
      absl::StatusOr<bool> res = MatchTraceback(trace.stack, index);
      if (!res.ok()) return res.status();
      cached = *res ? 1 : 0;
    }
    const bool res = cached == 1;
    if (domain_.has_value()) {
      return inclusive_ ? (res && trace.domain == *domain_) : (res || trace.domain != *domain_);
    }
    return res;
  }

 private:
  static constexpr std::int8_t kUnknown = -1;

  bool MatchFrameImpl(std::uint32_t f) const {
    const SnapshotFrame& frame = tables_->frames[f];
    if (!file_match_[frame.filename]) return false;
    return !lineno_.has_value() || frame.lineno == *lineno_;
  }

  absl::StatusOr<bool> MatchTraceback(std::uint32_t s, std::size_t index) const {
    const std::uint32_t n = tables_->stack_size(s);
    const std::uint32_t* ids = tables_->stack_begin(s);
    if (all_frames_) {
      for (std::uint32_t i = 0; i < n; ++i) {
        if (MatchFrameImpl(ids[i])) return inclusive_;
      }
      return !inclusive_;
    }
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace ", index,
                       " has an empty traceback, which a Filter without all_frames cannot "
                       "look at (Python raises IndexError)"));
    }
    return MatchFrameImpl(ids[0]) != !inclusive_;
  }

  const SnapshotTables* tables_ = nullptr;
  bool is_domain_filter_ = false;
  bool inclusive_ = true;
  std::optional<std::int64_t> lineno_;
  bool all_frames_ = false;
  std::optional<std::uint32_t> domain_;
  std::vector<bool> file_match_;
  std::vector<std::int8_t> stack_match_;
};

}  // namespace

// ------------------------------------------------------------- small types

std::string Frame::ToString() const { return absl::StrCat(AbslView(filename), ":", lineno); }

std::size_t Traceback::size() const noexcept {
  if (tables_ == nullptr) return 0;
  return kind_ == Kind::kStack ? tables_->stack_size(id_) : 1;
}

Frame Traceback::operator[](std::size_t i) const noexcept {
  switch (kind_) {
    case Kind::kStack: {
      const std::uint32_t n = tables_->stack_size(id_);
      const SnapshotFrame& f = tables_->frames[tables_->stack_begin(id_)[n - 1 - i]];
      return Frame{tables_->filenames[f.filename], f.lineno};
    }
    case Kind::kFrame: {
      const SnapshotFrame& f = tables_->frames[id_];
      return Frame{tables_->filenames[f.filename], f.lineno};
    }
    case Kind::kFile:
      return Frame{tables_->filenames[id_], 0};
  }
  return Frame{};
}

std::vector<Frame> Traceback::frames() const {
  std::vector<Frame> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.push_back((*this)[i]);
  return out;
}

std::string Traceback::ToString() const { return empty() ? std::string() : (*this)[0].ToString(); }

std::vector<std::string> Traceback::Format(std::optional<int> limit, bool most_recent_first) const {
  const std::int64_t n = static_cast<std::int64_t>(size());
  std::int64_t begin = 0;
  std::int64_t end = n;
  if (limit.has_value()) {
    const std::int64_t l = *limit;
    if (l > 0) {
      begin = std::max<std::int64_t>(0, n - l);  // self[-limit:]
    } else {
      end = l == 0 ? 0 : std::max<std::int64_t>(0, n + l);  // self[:limit]
    }
  }
  std::vector<std::string> lines;
  for (std::int64_t k = 0; k < end - begin; ++k) {
    const std::int64_t i = most_recent_first ? end - 1 - k : begin + k;
    const Frame f = (*this)[static_cast<std::size_t>(i)];
    lines.push_back(absl::StrCat("  File \"", AbslView(f.filename), "\", line ", f.lineno));
  }
  return lines;
}

bool operator==(const Traceback& a, const Traceback& b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i])) return false;
  }
  return true;
}

bool operator<(const Traceback& a, const Traceback& b) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const Frame fa = a[i];
    const Frame fb = b[i];
    if (!(fa == fb)) return fa < fb;
  }
  return a.size() < b.size();
}

std::string Statistic::ToString() const {
  return absl::StrCat(traceback.ToString(), ": size=", FormatSize(static_cast<double>(size), false),
                      ", count=", count, AverageSuffix(size, count));
}

std::string StatisticDiff::ToString() const {
  return absl::StrCat(traceback.ToString(), ": size=", FormatSize(static_cast<double>(size), false),
                      " (", FormatSize(static_cast<double>(size_diff), true), "), count=", count,
                      " (", Signed(count_diff), ")", AverageSuffix(size, count));
}

absl::StatusOr<GroupBy> ParseGroupBy(std::string_view name) {
  if (name == "lineno") return GroupBy::kLineno;
  if (name == "filename") return GroupBy::kFilename;
  if (name == "traceback") return GroupBy::kTraceback;
  return absl::InvalidArgumentError(absl::StrCat("unknown group_by '", AbslView(name),
                                                 "': use 'lineno', 'filename' or 'traceback'"));
}

std::string_view GroupByName(GroupBy group_by) noexcept {
  switch (group_by) {
    case GroupBy::kLineno:
      return "lineno";
    case GroupBy::kFilename:
      return "filename";
    case GroupBy::kTraceback:
      return "traceback";
  }
  return "?";
}

// ------------------------------------------------------------------ Snapshot

namespace {
std::shared_ptr<const SnapshotTables> EmptyTables() {
  static const auto* empty =
      new std::shared_ptr<const SnapshotTables>(std::make_shared<const SnapshotTables>());
  return *empty;
}
}  // namespace

Snapshot::Snapshot()
    : tables_(EmptyTables()), traces_(std::make_shared<const std::vector<SnapshotTrace>>()) {}

Snapshot::Snapshot(std::shared_ptr<const SnapshotTables> tables,
                   std::shared_ptr<const std::vector<SnapshotTrace>> traces,
                   int traceback_limit) noexcept
    : tables_(std::move(tables)), traces_(std::move(traces)), traceback_limit_(traceback_limit) {}

std::size_t Snapshot::trace_count() const noexcept { return traces_->size(); }

Trace Snapshot::trace(std::size_t i) const noexcept {
  const SnapshotTrace& t = (*traces_)[i];
  Trace out;
  out.domain = t.domain;
  out.size = t.size;
  out.traceback = Traceback(tables_.get(), Kind::kStack, t.stack);
  if (t.total_nframe != SnapshotTrace::kNoTotalNframe) {
    out.total_nframe = t.total_nframe;
  }
  return out;
}

std::uint64_t Snapshot::total_size() const noexcept {
  std::uint64_t total = 0;
  for (const SnapshotTrace& t : *traces_) total += t.size;
  return total;
}

std::size_t Snapshot::filename_count() const noexcept { return tables_->filenames.size(); }
std::size_t Snapshot::frame_count() const noexcept { return tables_->frames.size(); }
std::size_t Snapshot::traceback_count() const noexcept { return tables_->stack_count(); }

absl::StatusOr<Snapshot> Snapshot::FilterTraces(const std::vector<TraceFilter>& filters) const {
  if (filters.empty()) return *this;  // Python copies; ours is immutable.
  std::vector<CompiledFilter> include;
  std::vector<CompiledFilter> exclude;
  for (const TraceFilter& f : filters) {
    absl::StatusOr<CompiledFilter> c = CompiledFilter::Make(f, *tables_);
    if (!c.ok()) return c.status();
    (c->inclusive() ? include : exclude).push_back(*std::move(c));
  }
  auto kept = std::make_shared<std::vector<SnapshotTrace>>();
  const std::vector<SnapshotTrace>& traces = *traces_;
  for (std::size_t i = 0; i < traces.size(); ++i) {
    bool keep = true;
    if (!include.empty()) {
      keep = false;
      for (CompiledFilter& f : include) {  // any(), short-circuiting
        absl::StatusOr<bool> m = f.Match(traces[i], i);
        if (!m.ok()) return m.status();
        if (*m) {
          keep = true;
          break;
        }
      }
    }
    if (keep) {
      for (CompiledFilter& f : exclude) {  // any(not ...), short-circuiting
        absl::StatusOr<bool> m = f.Match(traces[i], i);
        if (!m.ok()) return m.status();
        if (!*m) {
          keep = false;
          break;
        }
      }
    }
    if (keep) kept->push_back(traces[i]);
  }
  return Snapshot(tables_, std::move(kept), traceback_limit_);
}

absl::StatusOr<StatisticList> Snapshot::Statistics(GroupBy group_by, bool cumulative) const {
  absl::StatusOr<std::vector<Group>> grouped =
      GroupTraces(*tables_, *traces_, group_by, cumulative);
  if (!grouped.ok()) return grouped.status();
  std::vector<Group>& groups = *grouped;
  const SnapshotTables* t = tables_.get();
  const std::uint32_t* rank = t->filename_rank.data();
  // Statistic._sort_key = (size, count, traceback), reverse=True.
  std::stable_sort(groups.begin(), groups.end(), [t, rank](const Group& a, const Group& b) {
    if (a.size != b.size) return a.size > b.size;
    if (a.count != b.count) return a.count > b.count;
    return CompareKeys(RankedKey{t, rank, a.kind, a.id}, RankedKey{t, rank, b.kind, b.id}) > 0;
  });
  std::vector<Statistic> out;
  out.reserve(groups.size());
  for (const Group& g : groups) {
    out.push_back(Statistic{Traceback(t, g.kind, g.id), g.size, g.count});
  }
  return StatisticList(std::move(out), {tables_});
}

namespace {

constexpr std::uint32_t kMissing = 0xFFFFFFFFu;

// Maps the keys of an older snapshot's tables onto a newer one's, and ranks
// the file names of both in one code point order.
class KeyMapper {
 public:
  KeyMapper(const SnapshotTables& nt, const SnapshotTables& ot, GroupBy group_by)
      : new_(nt), old_(ot), same_(&nt == &ot) {
    if (same_) return;
    absl::flat_hash_map<absl::string_view, std::uint32_t> names;
    names.reserve(nt.filenames.size());
    for (std::uint32_t i = 0; i < nt.filenames.size(); ++i) {
      names.emplace(AbslView(nt.filenames[i]), i);
    }
    file_.assign(ot.filenames.size(), kMissing);
    // The union of both name lists, in code point order.
    std::vector<std::pair<std::string_view, std::int64_t>> all;
    all.reserve(nt.filenames.size() + ot.filenames.size());
    for (std::uint32_t i = 0; i < nt.filenames.size(); ++i) {
      all.emplace_back(nt.filenames[i], i);
    }
    for (std::uint32_t i = 0; i < ot.filenames.size(); ++i) {
      auto it = names.find(AbslView(ot.filenames[i]));
      if (it != names.end()) {
        file_[i] = it->second;
      } else {
        all.emplace_back(ot.filenames[i], -1 - static_cast<std::int64_t>(i));
      }
    }
    std::sort(all.begin(), all.end());
    new_rank_.assign(nt.filenames.size(), 0);
    old_rank_.assign(ot.filenames.size(), 0);
    for (std::uint32_t r = 0; r < all.size(); ++r) {
      if (all[r].second >= 0) {
        new_rank_[static_cast<std::size_t>(all[r].second)] = r;
      } else {
        old_rank_[static_cast<std::size_t>(-1 - all[r].second)] = r;
      }
    }
    for (std::uint32_t i = 0; i < ot.filenames.size(); ++i) {
      if (file_[i] != kMissing) old_rank_[i] = new_rank_[file_[i]];
    }
    if (group_by != GroupBy::kFilename) {
      new_frames_.reserve(nt.frames.size());
      for (std::uint32_t i = 0; i < nt.frames.size(); ++i) {
        new_frames_.emplace(std::make_pair(nt.frames[i].filename, nt.frames[i].lineno), i);
      }
    }
  }

  const std::uint32_t* new_rank() const {
    return same_ ? new_.filename_rank.data() : new_rank_.data();
  }
  const std::uint32_t* old_rank() const {
    return same_ ? old_.filename_rank.data() : old_rank_.data();
  }
  bool same() const { return same_; }

  std::uint32_t File(std::uint32_t old_id) const { return same_ ? old_id : file_[old_id]; }
  std::uint32_t FrameId(std::uint32_t old_id) const {
    if (same_) return old_id;
    const SnapshotFrame& f = old_.frames[old_id];
    const std::uint32_t file = file_[f.filename];
    if (file == kMissing) return kMissing;
    auto it = new_frames_.find(std::make_pair(file, f.lineno));
    return it == new_frames_.end() ? kMissing : it->second;
  }

 private:
  const SnapshotTables& new_;
  const SnapshotTables& old_;
  const bool same_;
  std::vector<std::uint32_t> file_;
  std::vector<std::uint32_t> new_rank_;
  std::vector<std::uint32_t> old_rank_;
  absl::flat_hash_map<std::pair<std::uint32_t, std::int64_t>, std::uint32_t> new_frames_;
};

struct DiffEntry {
  const SnapshotTables* tables;
  const std::uint32_t* rank;
  Kind kind;
  std::uint32_t id;
  std::int64_t size;
  std::int64_t size_diff;
  std::int64_t count;
  std::int64_t count_diff;
};

std::int64_t Abs(std::int64_t v) { return v < 0 ? -v : v; }

}  // namespace

absl::StatusOr<StatisticDiffList> Snapshot::CompareTo(const Snapshot& older, GroupBy group_by,
                                                      bool cumulative) const {
  // Python groups the newer snapshot first, then the older one.
  absl::StatusOr<std::vector<Group>> new_grouped =
      GroupTraces(*tables_, *traces_, group_by, cumulative);
  if (!new_grouped.ok()) return new_grouped.status();
  absl::StatusOr<std::vector<Group>> old_grouped =
      GroupTraces(*older.tables_, *older.traces_, group_by, cumulative);
  if (!old_grouped.ok()) return old_grouped.status();
  const std::vector<Group>& new_groups = *new_grouped;
  const std::vector<Group>& old_groups = *old_grouped;
  const SnapshotTables& nt = *tables_;
  const SnapshotTables& ot = *older.tables_;
  const KeyMapper mapper(nt, ot, group_by);

  // Where each key of the newer snapshot sits in new_groups.
  std::vector<std::int32_t> new_slot(group_by == GroupBy::kFilename ? nt.filenames.size()
                                     : group_by == GroupBy::kLineno ? nt.frames.size()
                                                                    : nt.stack_count(),
                                     -1);
  std::int32_t new_empty_slot = -1;  // lineno key of an empty traceback
  for (std::size_t i = 0; i < new_groups.size(); ++i) {
    const Group& g = new_groups[i];
    if (group_by == GroupBy::kLineno && g.kind == Kind::kStack) {
      new_empty_slot = static_cast<std::int32_t>(i);
    } else {
      new_slot[g.id] = static_cast<std::int32_t>(i);
    }
  }
  internal::StackSet new_stacks = internal::MakeStackSet(nt);
  if (group_by == GroupBy::kTraceback && !mapper.same()) {
    new_stacks.reserve(new_groups.size());
    for (const Group& g : new_groups) new_stacks.insert(g.id);
  }

  // Match each old group to a new one (Python: old_group.pop(traceback)).
  std::vector<std::int32_t> old_for_new(new_groups.size(), -1);
  std::vector<bool> old_matched(old_groups.size(), false);
  std::vector<std::uint32_t> scratch;
  for (std::size_t j = 0; j < old_groups.size(); ++j) {
    const Group& g = old_groups[j];
    std::int32_t match = -1;
    if (g.kind == Kind::kFile) {
      const std::uint32_t id = mapper.File(g.id);
      if (id != kMissing) match = new_slot[id];
    } else if (g.kind == Kind::kFrame) {
      const std::uint32_t id = mapper.FrameId(g.id);
      if (id != kMissing) match = new_slot[id];
    } else if (group_by == GroupBy::kLineno) {
      match = new_empty_slot;  // the one empty-traceback key
    } else if (mapper.same()) {
      match = new_slot[g.id];
    } else {
      const std::uint32_t n = ot.stack_size(g.id);
      const std::uint32_t* ids = ot.stack_begin(g.id);
      scratch.clear();
      bool ok = true;
      for (std::uint32_t i = 0; i < n && ok; ++i) {
        const std::uint32_t id = mapper.FrameId(ids[i]);
        ok = id != kMissing;
        scratch.push_back(id);
      }
      if (ok) {
        auto it = new_stacks.find(internal::StackKey{scratch.data(), n});
        if (it != new_stacks.end()) match = new_slot[*it];
      }
    }
    if (match >= 0) {
      old_for_new[static_cast<std::size_t>(match)] = static_cast<std::int32_t>(j);
      old_matched[j] = true;
    }
  }

  // _compare_grouped_stats(): new keys in order, then the old leftovers.
  std::vector<DiffEntry> entries;
  entries.reserve(new_groups.size() + old_groups.size());
  const std::uint32_t* new_rank = mapper.new_rank();
  const std::uint32_t* old_rank = mapper.old_rank();
  for (std::size_t i = 0; i < new_groups.size(); ++i) {
    const Group& g = new_groups[i];
    std::int64_t old_size = 0;
    std::int64_t old_count = 0;
    if (old_for_new[i] >= 0) {
      const Group& o = old_groups[static_cast<std::size_t>(old_for_new[i])];
      old_size = o.size;
      old_count = o.count;
    }
    entries.push_back(DiffEntry{&nt, new_rank, g.kind, g.id, g.size, g.size - old_size, g.count,
                                g.count - old_count});
  }
  for (std::size_t j = 0; j < old_groups.size(); ++j) {
    if (old_matched[j]) continue;
    const Group& g = old_groups[j];
    entries.push_back(DiffEntry{&ot, old_rank, g.kind, g.id, 0, -g.size, 0, -g.count});
  }
  // StatisticDiff._sort_key = (abs(size_diff), size, abs(count_diff), count,
  // traceback), reverse=True.
  std::stable_sort(entries.begin(), entries.end(), [](const DiffEntry& a, const DiffEntry& b) {
    if (Abs(a.size_diff) != Abs(b.size_diff)) {
      return Abs(a.size_diff) > Abs(b.size_diff);
    }
    if (a.size != b.size) return a.size > b.size;
    if (Abs(a.count_diff) != Abs(b.count_diff)) {
      return Abs(a.count_diff) > Abs(b.count_diff);
    }
    if (a.count != b.count) return a.count > b.count;
    return CompareKeys(RankedKey{a.tables, a.rank, a.kind, a.id},
                       RankedKey{b.tables, b.rank, b.kind, b.id}) > 0;
  });
  std::vector<StatisticDiff> out;
  out.reserve(entries.size());
  for (const DiffEntry& e : entries) {
    out.push_back(StatisticDiff{Traceback(e.tables, e.kind, e.id), e.size, e.size_diff, e.count,
                                e.count_diff});
  }
  std::vector<std::shared_ptr<const SnapshotTables>> owners{tables_};
  if (!mapper.same()) owners.push_back(older.tables_);
  return StatisticDiffList(std::move(out), std::move(owners));
}

}  // namespace tracemalloc
}  // namespace leakguard
