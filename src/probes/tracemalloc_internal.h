// Internal to the tracemalloc probe: the data behind tracemalloc::Snapshot,
// shared by tracemalloc.cc (the Python side) and tracemalloc_snapshot.cc
// (the pure C++ side). Not installed.

#ifndef LEAKGUARD_SRC_TRACEMALLOC_INTERNAL_H_
#define LEAKGUARD_SRC_TRACEMALLOC_INTERNAL_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "leakguard/tracemalloc.h"

namespace leakguard::internal {

// One interned frame.
struct SnapshotFrame {
  std::uint32_t filename = 0;  // index into SnapshotTables::filenames
  std::int64_t lineno = 0;
};

// One trace: 24 bytes.
struct SnapshotTrace {
  static constexpr std::uint32_t kNoTotalNframe = std::numeric_limits<std::uint32_t>::max();
  std::uint64_t size = 0;
  std::uint32_t domain = 0;
  std::uint32_t stack = 0;  // index of the interned traceback
  std::uint32_t total_nframe = kNoTotalNframe;
};

// Interned file names, frames and tracebacks ("stacks"). Immutable once
// built; shared by a snapshot, the snapshots filtered from it, and the
// result lists whose views point into it.
struct SnapshotTables {
  std::vector<std::string> filenames;        // UTF-8 (surrogatepass)
  std::vector<std::uint32_t> filename_rank;  // order of filenames by code point
  std::vector<SnapshotFrame> frames;
  // Stack s has the frame ids stack_frames[stack_offsets[s] ..
  // stack_offsets[s + 1]), most recent first (the order of _tracemalloc).
  std::vector<std::uint32_t> stack_offsets{0};
  std::vector<std::uint32_t> stack_frames;

  std::uint32_t stack_count() const { return static_cast<std::uint32_t>(stack_offsets.size() - 1); }
  std::uint32_t stack_size(std::uint32_t s) const {
    return stack_offsets[s + 1] - stack_offsets[s];
  }
  const std::uint32_t* stack_begin(std::uint32_t s) const {
    return stack_frames.data() + stack_offsets[s];
  }
};

// Hash of a run of frame ids.
inline std::size_t HashFrameIds(const std::uint32_t* ids, std::size_t n) {
  return absl::Hash<absl::string_view>()(
      absl::string_view(reinterpret_cast<const char*>(ids), n * sizeof(std::uint32_t)));
}

// A run of frame ids, for heterogeneous lookups in a StackSet.
struct StackKey {
  const std::uint32_t* ids;
  std::size_t n;
};

// Hash and equality of stack ids by content, reading the tables they belong
// to (through pointers to the vectors, so the vectors may grow).
struct StackSetHash {
  using is_transparent = void;
  const std::vector<std::uint32_t>* offsets;
  const std::vector<std::uint32_t>* frames;
  std::size_t operator()(std::uint32_t s) const {
    return HashFrameIds(frames->data() + (*offsets)[s], (*offsets)[s + 1] - (*offsets)[s]);
  }
  std::size_t operator()(const StackKey& k) const { return HashFrameIds(k.ids, k.n); }
};
struct StackSetEq {
  using is_transparent = void;
  const std::vector<std::uint32_t>* offsets;
  const std::vector<std::uint32_t>* frames;
  StackKey KeyOf(std::uint32_t s) const {
    return StackKey{frames->data() + (*offsets)[s], (*offsets)[s + 1] - (*offsets)[s]};
  }
  static bool Same(const StackKey& a, const StackKey& b) {
    if (a.n != b.n) return false;
    for (std::size_t i = 0; i < a.n; ++i) {
      if (a.ids[i] != b.ids[i]) return false;
    }
    return true;
  }
  bool operator()(std::uint32_t a, std::uint32_t b) const {
    return a == b || Same(KeyOf(a), KeyOf(b));
  }
  bool operator()(std::uint32_t a, const StackKey& b) const { return Same(KeyOf(a), b); }
  bool operator()(const StackKey& a, std::uint32_t b) const { return Same(a, KeyOf(b)); }
};
using StackSet = absl::flat_hash_set<std::uint32_t, StackSetHash, StackSetEq>;

inline StackSet MakeStackSet(const SnapshotTables& t) {
  return StackSet(0, StackSetHash{&t.stack_offsets, &t.stack_frames},
                  StackSetEq{&t.stack_offsets, &t.stack_frames});
}

// Computes the file name ranks of `tables` and shares them.
std::shared_ptr<const SnapshotTables> FinishTables(SnapshotTables tables);

class TablesBuilder;
// Reads a builder's tables while it is still interning (the sampler copies
// them into each snapshot it takes).
struct TablesBuilderAccess {
  static const std::string& Filename(const TablesBuilder& b, std::uint32_t id);
  static const SnapshotTables& Tables(const TablesBuilder& b);
};

// Builds SnapshotTables, interning as it goes.
class TablesBuilder {
 public:
  TablesBuilder() : stacks_(MakeStackSet(tables_)) {}
  TablesBuilder(const TablesBuilder&) = delete;
  TablesBuilder& operator=(const TablesBuilder&) = delete;

  std::uint32_t InternFilename(std::string_view name) {
    auto [it, inserted] = filename_ids_.try_emplace(
        std::string(name), static_cast<std::uint32_t>(tables_.filenames.size()));
    if (inserted) tables_.filenames.emplace_back(name);
    return it->second;
  }
  std::uint32_t InternFrame(std::uint32_t filename, std::int64_t lineno) {
    auto [it, inserted] = frame_ids_.try_emplace(std::make_pair(filename, lineno),
                                                 static_cast<std::uint32_t>(tables_.frames.size()));
    if (inserted) tables_.frames.push_back(SnapshotFrame{filename, lineno});
    return it->second;
  }
  // `ids`: frame ids, most recent first.
  std::uint32_t InternStack(const std::uint32_t* ids, std::size_t n) {
    auto it = stacks_.find(StackKey{ids, n});
    if (it != stacks_.end()) return *it;
    std::uint32_t id = tables_.stack_count();
    tables_.stack_frames.insert(tables_.stack_frames.end(), ids, ids + n);
    tables_.stack_offsets.push_back(static_cast<std::uint32_t>(tables_.stack_frames.size()));
    stacks_.insert(id);
    return id;
  }
  std::size_t stack_count() const { return tables_.stack_count(); }
  std::size_t frame_count() const { return tables_.frames.size(); }

  // Computes the file name ranks and hands the tables over.
  std::shared_ptr<const SnapshotTables> Finish();

 private:
  friend struct TablesBuilderAccess;
  SnapshotTables tables_;
  absl::flat_hash_map<std::string, std::uint32_t> filename_ids_;
  absl::flat_hash_map<std::pair<std::uint32_t, std::int64_t>, std::uint32_t> frame_ids_;
  StackSet stacks_;
};

// Lib/tracemalloc.py's _normalize_filename() on POSIX (normcase is a no-op):
// a trailing ".pyc" becomes ".py".
inline std::string_view NormalizeFilename(std::string_view name) {
  constexpr std::string_view kPyc = ".pyc";
  if (name.size() >= kPyc.size() && name.substr(name.size() - kPyc.size()) == kPyc) {
    name.remove_suffix(1);
  }
  return name;
}

// Filter._match_frame_impl()'s file name test of every name in `filenames`
// against `pattern` (both normalized first). InvalidArgument when the
// pattern is not UTF-8 or makes a set `re` would reject.
absl::StatusOr<std::vector<bool>> MatchFilenames(std::string_view pattern,
                                                 const std::vector<std::string>& filenames);

}  // namespace leakguard::internal

namespace leakguard::tracemalloc {

// Builds and reads Snapshot internals (a friend of Snapshot).
struct SnapshotAccess {
  static Snapshot Make(std::shared_ptr<const internal::SnapshotTables> tables,
                       std::shared_ptr<const std::vector<internal::SnapshotTrace>> traces,
                       int traceback_limit) {
    return Snapshot(std::move(tables), std::move(traces), traceback_limit);
  }
  static const internal::SnapshotTables& Tables(const Snapshot& s) { return *s.tables_; }
  static const std::vector<internal::SnapshotTrace>& Traces(const Snapshot& s) {
    return *s.traces_;
  }
};

}  // namespace leakguard::tracemalloc

#endif  // LEAKGUARD_SRC_TRACEMALLOC_INTERNAL_H_
