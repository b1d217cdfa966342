// leakguard/object_graph.h
//
// The object graph of the running interpreter, objgraph-style, in C++:
//
//   TakeTypeCensus()   gc-tracked objects counted by type (objgraph.typestats,
//                      most_common_types, count), by name and by type object.
//   GrowthTracker      peak-based growth since the last call (objgraph.growth),
//                      after a collection of the young generations (or a
//                      full one, or none; see CollectDepth).
//   ObjectsByType()    the objects of one type (objgraph.by_type).
//   ObjectMark         "what is new since this mark" (objgraph.get_new_ids).
//   ReferrerGraph      a snapshot of who refers to whom, built once from
//                      tp_traverse over every tracked object; answers many
//                      back-reference queries (objgraph.find_backref_chain,
//                      gc.get_referrers, objgraph.show_backrefs) without
//                      scanning the heap again.
//   FindBackrefChain() one query: the same answer, cheaper for one object.
//
//   auto chain = FindBackrefChain(leaked);     // root (a module) first
//   if (chain.ok()) std::puts(chain->Path().c_str());
//   // module app .__dict__['_cache'] -> dict['key'] -> list[3]
//
// What counts, as in objgraph: only objects the cycle collector tracks (what
// `gc.get_objects()` returns). Atoms (int, str, ...) and containers the
// collector untracked (tuples and dicts of atoms) are never counted and
// never appear as referrers, though a chain may end at one. Objects in the
// permanent generation (`gc.freeze()`) are left out, like `gc.get_objects()`.
//
// How the heap is walked: CPython 3.9 to 3.13 (with the GIL) by reading
// the collector's generation lists in place, the census from both ends of
// each list at once; 3.13t through PyUnstable_GC_VisitObjects, which stops
// the world, so the walk is safe there too. No list is built and no Python
// object is created. No Python code runs during a walk, so nothing
// vanishes or appears mid-walk; leakguard's own temporaries are never in
// the graph.
//
// Every call needs the GIL (FailedPrecondition without it). Results that
// hold Refs need the GIL to be copied or destroyed, like Ref itself.

#ifndef LEAKGUARD_OBJECT_GRAPH_H_
#define LEAKGUARD_OBJECT_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/ref.h"

namespace leakguard {

namespace internal {
class CensusBuilder;
struct GraphData;
struct GraphAccess;
}  // namespace internal

/// How type names are spelled (objgraph's `shortnames`).
enum class TypeNames {
  /// `type(obj).__name__`: "dict", "Record". Same-named classes of
  /// different modules share a name. objgraph's default.
  kShort,
  /// objgraph's `shortnames=False`: "<__module__>.<__name__>", e.g.
  /// "builtins.dict", "app.Record" (just the name when `__module__` is
  /// empty or missing).
  kFull,
};

/// A type name and a number of objects.
struct TypeCount {
  /// The name, spelled as asked.
  std::string name;
  /// Objects of that name.
  int64_t count = 0;
};

/// One type object in a census.
struct TypeCensusEntry {
  /// The type object.
  Ref type;
  /// `type.__name__`.
  std::string short_name;
  /// objgraph's long name ("module.name").
  std::string full_name;
  /// Tracked objects whose type is exactly this one.
  int64_t count = 0;
};

/// A count of gc-tracked objects by type, taken at one moment.
class LEAKGUARD_EXPORT TypeCensus {
 public:
  /// Tracked objects counted.
  int64_t total() const noexcept { return total_; }
  /// One entry per type object, in the order each type was first met in
  /// `gc.get_objects()` order.
  const std::vector<TypeCensusEntry>& by_type() const noexcept { return by_type_; }
  /// Counts by name, in first-met order: equal to `objgraph.typestats()`
  /// (a dict, with the same iteration order).
  std::vector<TypeCount> Counts(TypeNames names = TypeNames::kShort) const;
  /// The `limit` most common names, most first, ties in first-met order;
  /// `objgraph.most_common_types(limit)`. `limit` 0: all.
  std::vector<TypeCount> MostCommon(std::size_t limit = 10,
                                    TypeNames names = TypeNames::kShort) const;
  /// Objects of the type named `name`: a full name if it contains a dot,
  /// else a short one (`objgraph.count`). 0 for a name never seen.
  int64_t Count(std::string_view name) const;

 private:
  friend class internal::CensusBuilder;
  int64_t total_ = 0;
  std::vector<TypeCensusEntry> by_type_;
};

/// How much of the heap the collection before a growth census or a graph
/// snapshot covers (GrowthOptions and GraphOptions, when `collect_first`).
enum class CollectDepth {
  /// `gc.collect(1)`: the young generations (0 and 1), where the garbage
  /// made since the last collection waits. Costs in proportion to the young
  /// objects, not to the heap: on a heap of a million objects, milliseconds
  /// instead of the hundreds a full collection takes. What it leaves:
  /// cycles whose objects had already reached the oldest generation before
  /// they became garbage; they are counted (and can be referrers) until the
  /// interpreter's next full collection, which CPython runs by itself once
  /// the oldest generation has grown by a quarter. On free-threaded builds
  /// the collector has no generations and this is a full collection.
  kYoung,
  /// `gc.collect()`: every generation, as objgraph does before growth() and
  /// find_backref_chain(): no garbage at all is counted, at the cost of
  /// visiting every tracked object.
  kFull,
};

/// Options of TakeTypeCensus().
struct CensusOptions {
  /// Run a full collection first so that unreachable cycles are not
  /// counted (objgraph.typestats does not; objgraph.growth does).
  bool collect_first = false;
};

/// Counts every gc-tracked object by type.
LEAKGUARD_EXPORT absl::StatusOr<TypeCensus> TakeTypeCensus(const CensusOptions& options = {});

/// Counts the given objects by type (objgraph.typestats(objects=...)),
/// tracked or not; null entries are skipped. E.g. the census of
/// ObjectMark::NewObjects().
LEAKGUARD_EXPORT absl::StatusOr<TypeCensus> CensusOf(const std::vector<Ref>& objects);

/// One row of GrowthTracker::Update().
struct GrowthEntry {
  /// The type name.
  std::string name;
  /// Objects of that name now.
  int64_t count = 0;
  /// Growth above the previous peak.
  int64_t delta = 0;
};

/// Options of GrowthTracker::Update().
struct GrowthOptions {
  /// Rows returned, largest growth first; 0: all.
  std::size_t limit = 10;
  /// How names are spelled (and so how peaks are keyed).
  TypeNames names = TypeNames::kShort;
  /// Collect first (to `collect_depth`), so that garbage awaiting
  /// collection is not reported as growth. Off: cheaper, and the heap is
  /// left exactly as it was; unreachable cycles count.
  bool collect_first = true;
  /// How deep that collection goes. kYoung (the default): one collection of
  /// the young generations, so the garbage a workload just made is not
  /// growth, without the full collection objgraph.growth pays on every call
  /// (cycles that turned into garbage only after reaching the oldest
  /// generation count until the interpreter's next full collection; see
  /// CollectDepth). kFull: objgraph.growth's exact counts.
  CollectDepth collect_depth = CollectDepth::kYoung;
};

/// objgraph.growth's semantics with the peaks kept in this object instead of
/// a shared default argument: each Update() reports, for every type name
/// whose count is above its previous peak, the count and the growth, then
/// raises the peak. Counts that fall never report negative growth, and a
/// type reports again only once it passes its peak.
///
/// REQUIRES: the GIL for Update(). Not thread-safe.
class LEAKGUARD_EXPORT GrowthTracker {
 public:
  /// Takes a census and returns the growth since the last call (the first
  /// call reports every type, from zero). Sorted by growth, largest first,
  /// ties in first-met order, cut to `limit`.
  absl::StatusOr<std::vector<GrowthEntry>> Update(const GrowthOptions& options = {});
  /// The peaks seen so far, by name, in first-seen order.
  const std::vector<TypeCount>& peaks() const noexcept { return peaks_; }
  /// Forgets every peak.
  void Reset() noexcept {
    peaks_.clear();
    peak_index_.clear();
  }

 private:
  std::vector<TypeCount> peaks_;
  std::unordered_map<std::string, std::size_t> peak_index_;
};

/// The tracked objects of the type named `type_name` (a full name if it
/// contains a dot, else a short one), in `gc.get_objects()` order;
/// objgraph.by_type. Empty for a name no object has. InvalidArgument for an
/// empty name.
LEAKGUARD_EXPORT absl::StatusOr<std::vector<Ref>> ObjectsByType(std::string_view type_name);

/// The identities of every tracked object at one moment, to find the
/// objects created since (objgraph.get_new_ids without the printing). An
/// object freed after the mark whose address is reused by a new object
/// counts as old, as in objgraph (ids are addresses). Holds no Python
/// references.
class LEAKGUARD_EXPORT ObjectMark {
 public:
  /// Marks the tracked objects now, after a full collection if
  /// `collect_first` (as get_new_ids does).
  static absl::StatusOr<ObjectMark> Take(bool collect_first = true);
  /// Tracked objects now that were not tracked at the mark, in
  /// `gc.get_objects()` order, after a full collection if `collect_first`.
  absl::StatusOr<std::vector<Ref>> NewObjects(bool collect_first = true) const;
  /// Objects marked.
  std::size_t size() const noexcept { return ids_.size(); }

 private:
  std::vector<std::uintptr_t> ids_;  // Sorted addresses.
};

/// What may end a back-reference chain (any that matches does).
struct RootKinds {
  /// A module that is `sys.modules[module.__name__]`: objgraph's
  /// `is_proper_module`, and its default root.
  bool proper_modules = true;
  /// Any module object, in sys.modules or not.
  bool modules = false;
  /// Any class (type object).
  bool classes = false;
  /// Any frame object (running or suspended code, tracebacks).
  bool frames = false;
};

/// Options of a back-reference chain query.
struct ChainOptions {
  /// Kinds of objects that end the chain.
  RootKinds roots;
  /// Also ends the chain where this returns true (called with the GIL held,
  /// once per object reached, nearest first; it may run Python code).
  std::function<bool(Handle)> is_root;
  /// Longest chain searched, in references (objgraph's max_depth).
  int max_depth = 20;
  /// Objects never used as referrers (objgraph's extra_ignore), e.g. a
  /// caller's own frames or containers.
  std::vector<Handle> ignore;
};

/// One object of a chain.
struct ChainLink {
  /// The object (kept alive by the chain).
  Ref object;
  /// `type(object).__name__`.
  std::string type_name;
  /// How the path names it: "module app", "class Config", "function f",
  /// "frame run (app.py:12)", or just the type name ("dict", "Record").
  std::string description;
  /// objgraph's node label: name, "N items", "file:line" or a repr cut to
  /// 40 characters.
  std::string label;
  /// How this object refers to the next one in the chain: "['key']" (dict
  /// value), "<key 'k'>" (dict key), "[3]" (list / tuple index),
  /// ".__dict__", ".__dict__['name']" (instance attribute), ".name" (slot
  /// or function attribute), ".cell_contents", ".f_locals['x']", "{member}"
  /// (set); "?" when the reference is gone since the snapshot (containers
  /// always; other objects on GIL builds); empty when unknown, and for the
  /// target.
  std::string edge;
};

/// A shortest chain of references from a root to a target.
struct LEAKGUARD_EXPORT BackrefChain {
  /// Root first, target last (objgraph.find_backref_chain's order). A
  /// target that is itself a root gives a chain of one.
  std::vector<ChainLink> links;

  /// References in the chain (links - 1).
  std::size_t depth() const noexcept { return links.empty() ? 0 : links.size() - 1; }
  /// The readable path, root first, each object followed by how it refers
  /// to the next, the target left implicit:
  /// `module app .__dict__['_cache'] -> dict['key'] -> list[3]`.
  /// A `.__dict__` step into a dict is merged with that dict's key. A chain
  /// of one gives the target's description. Needs no GIL.
  std::string Path() const;
  /// The chain as Graphviz DOT, in objgraph.show_chain's style: one box per
  /// object (type name and label), edges from referrer to referent labelled
  /// with `edge`, the target in red, modules green. Needs no GIL.
  std::string Dot() const;
};

/// Options of ReferrerGraph::Build().
struct GraphOptions {
  /// Collect (to `collect_depth`) before the snapshot (objgraph runs a full
  /// collection before every chain query). Off by default: garbage cannot
  /// lie on a chain from a live root (a proper module), so chain lengths to
  /// such roots are the same, and the heap is left as it was. Turn it on
  /// when roots may themselves be garbage (classes, modules out of
  /// sys.modules, frames, a custom `is_root`).
  bool collect_first = false;
  /// How deep that collection goes: kYoung (the default) drops the garbage
  /// made since the last collection, in milliseconds; kFull matches
  /// objgraph exactly, old garbage roots included, at the cost of a full
  /// collection (see CollectDepth).
  CollectDepth collect_depth = CollectDepth::kYoung;
};

/// Options of ReferrerGraph::BackrefsDot().
struct BackrefsDotOptions {
  /// Levels of referrers drawn (objgraph.show_backrefs' max_depth).
  int max_depth = 3;
  /// Referrers drawn per object; the rest become one "N more
  /// backreferences" node (objgraph's too_many).
  int too_many = 10;
  /// Objects never drawn as referrers.
  std::vector<Handle> ignore;
};

/// Who refers to whom among all gc-tracked objects, as one snapshot: built
/// once (one tp_traverse pass over the heap, indexed by referent), then
/// queried many times without scanning the heap again.
///
/// The graph holds a strong reference to every object in it, so nothing in
/// it vanishes while it lives (and nothing it holds is freed before it is
/// destroyed: build it, query, drop it). Objects created after Build() are
/// not nodes, but queries for them still work (their direct referrers are
/// found by one scan of the snapshot). References changed after Build() are
/// not seen; a chain edge that no longer exists is labelled "?".
///
/// REQUIRES: the GIL for every call, moves and destruction included (the
/// destructor takes it if needed). Queries may run from several threads at
/// once (each uses scratch space of its own).
class LEAKGUARD_EXPORT ReferrerGraph {
 public:
  /// Snapshots every gc-tracked object and indexes its referents.
  static absl::StatusOr<ReferrerGraph> Build(const GraphOptions& options = {});

  /// A shortest chain of references from a root to `target`, found
  /// breadth-first exactly as objgraph.find_backref_chain does (same
  /// referrer order, same tie-breaking, same max_depth meaning).
  /// NotFound when no root is within `max_depth` references.
  /// InvalidArgument for a null target or a negative max_depth.
  absl::StatusOr<BackrefChain> FindChain(Handle target, const ChainOptions& options = {}) const;

  /// The direct referrers of `target` among the snapshot's objects, in
  /// `gc.get_referrers()` order, each once.
  absl::StatusOr<std::vector<Ref>> Referrers(Handle target) const;

  /// The referrers of `targets`, up to `max_depth` levels, as Graphviz DOT in
  /// objgraph.show_backrefs' layout (node ids "o<address>", the targets in
  /// red, modules green, edges referrer -> referent with labels).
  absl::StatusOr<std::string> BackrefsDot(const std::vector<Handle>& targets,
                                          const BackrefsDotOptions& options = {}) const;

  /// Tracked objects in the snapshot.
  std::size_t object_count() const noexcept;
  /// Distinct (referrer, referent) pairs among them.
  std::size_t edge_count() const noexcept;

  /// Takes `other`'s snapshot; `other` becomes empty.
  ReferrerGraph(ReferrerGraph&& other) noexcept;
  /// Drops the snapshot held, then takes `other`'s.
  ReferrerGraph& operator=(ReferrerGraph&& other) noexcept;
  ReferrerGraph(const ReferrerGraph&) = delete;
  ReferrerGraph& operator=(const ReferrerGraph&) = delete;
  /// Drops every reference of the snapshot.
  ~ReferrerGraph();

 private:
  friend struct internal::GraphAccess;
  explicit ReferrerGraph(std::unique_ptr<internal::GraphData> data);
  std::unique_ptr<internal::GraphData> data_;
};

/// One chain query, with the answer of ReferrerGraph::Build() then
/// FindChain(), cheaper for one object: it snapshots the heap and searches a
/// level at a time over the recorded references, building the referrer
/// index only if the search goes deeper than 12 levels. For many queries on
/// the same heap build a ReferrerGraph once.
LEAKGUARD_EXPORT absl::StatusOr<BackrefChain> FindBackrefChain(
    Handle target, const ChainOptions& options = {}, const GraphOptions& graph_options = {});

}  // namespace leakguard

#endif  // LEAKGUARD_OBJECT_GRAPH_H_
