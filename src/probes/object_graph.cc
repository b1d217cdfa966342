#include "leakguard/object_graph.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "probes/gc_walk.h"
#include "probes/object_graph_internal.h"
#include "python/gil_capability.h"

// PyFrame_Check lives outside <Python.h> before 3.11.
#include <frameobject.h>  // NOLINT(build/include_order)

namespace leakguard {
namespace internal {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// On free-threaded builds gc.get_objects() and gc.get_referrers() list
// objects in the reverse of the heap walk's order (they pop them off a
// stack), so "gc.get_objects() order" is the walk's order reversed there.
constexpr bool kWalkReversed = compat::kFreeThreaded;

// Pointer -> uint32 map with open addressing (linear probing, Fibonacci
// hashing). Built for millions of keys: one cache line per probe, no
// allocation per entry.
class PointerIndex {
 public:
  void Reserve(std::size_t n) {
    std::size_t capacity = 16;
    int bits = 4;
    while (capacity < n + n / 2 + 1) {
      capacity <<= 1;
      ++bits;
    }
    if (capacity <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    shift_ = 64 - bits;
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.key != 0) Insert(slot.key, slot.value);
    }
  }
  // The value for `key`, inserting `value` if absent.
  uint32_t FindOrInsert(const void* key, uint32_t value) {
    if (slots_.empty() || size_ + 1 > slots_.size() / 2 + slots_.size() / 4) {
      Reserve(std::max<std::size_t>(size_ * 2, 16));
    }
    return Insert(reinterpret_cast<std::uintptr_t>(key), value);
  }
  int64_t Find(const void* key) const {
    if (slots_.empty()) return -1;
    const auto k = reinterpret_cast<std::uintptr_t>(key);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = Hash(k);; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.key == k) return slot.value;
      if (slot.key == 0) return -1;
    }
  }

 private:
  struct Slot {
    std::uintptr_t key = 0;
    uint32_t value = 0;
  };
  std::size_t Hash(std::uintptr_t k) const {
    return static_cast<std::size_t>((k >> 4) * 0x9E3779B97F4A7C15ull >> shift_);
  }
  uint32_t Insert(std::uintptr_t k, uint32_t value) {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = Hash(k);; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.key == k) return slot.value;
      if (slot.key == 0) {
        slot.key = k;
        slot.value = value;
        ++size_;
        return value;
      }
    }
  }

  std::vector<Slot> slots_;
  int shift_ = 60;
  std::size_t size_ = 0;
};

absl::StatusOr<Ref> CallGc(const char* name) {
  Ref gc = Steal(PyImport_ImportModule("gc"));
  if (!gc) return StatusFromPythonError();
  Ref result = Steal(PyObject_CallMethod(gc.get(), name, nullptr));
  if (!result) return StatusFromPythonError();
  return result;
}

// gc.collect(): works whether or not automatic collection is enabled.
absl::Status CollectFull() { return CallGc("collect").status(); }

// gc.collect(1) or gc.collect(); see CollectDepth.
absl::Status Collect(CollectDepth depth) {
  if (depth == CollectDepth::kFull) return CollectFull();
  Ref gc = Steal(PyImport_ImportModule("gc"));
  if (!gc) return StatusFromPythonError();
  Ref result = Steal(PyObject_CallMethod(gc.get(), "collect", "i", 1));
  if (!result) return StatusFromPythonError();
  return absl::OkStatus();
}

// True where PyUnstable_GC_VisitObjects visits exactly the objects (and in
// the order) that gc.get_objects() returns.
absl::StatusOr<bool> CanVisitObjects() {
#if PY_VERSION_HEX >= 0x030C0000 && defined(Py_GIL_DISABLED)
  return true;  // Skips frozen objects, like gc.get_objects().
#elif PY_VERSION_HEX >= 0x030C0000
  // gc.c's visitor (3.13) also walks the permanent generation, which
  // gc.get_objects() leaves out: use it only when nothing is frozen.
  absl::StatusOr<Ref> frozen = CallGc("get_freeze_count");
  if (!frozen.ok()) return frozen.status();
  const long n = PyLong_AsLong(frozen->get());
  if (n == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return n == 0;
#else
  return false;
#endif
}

#if PY_VERSION_HEX >= 0x030C0000
template <typename Fn>
int VisitTrampoline(PyObject* op, void* arg) noexcept {
  (*static_cast<Fn*>(arg))(op);
  return 1;
}
#endif

// Calls `fn(op)` for every gc-tracked object, in gc.get_objects() order;
// `fn` returns true to keep a strong reference to `op`, appended to `kept`
// (owned by the caller; may be null if `fn` never keeps).
//
// `fn` must not use the Python C API beyond Py_INCREF and tp_traverse: it
// runs while the collector's lists are walked in place (gc_walk.c: 3.9 to
// 3.13 with the GIL), or inside PyUnstable_GC_VisitObjects (3.13t, with
// the world stopped, and later versions). No Python code runs during the
// walk. Where neither applies (3.14+ with frozen objects) it goes through
// gc.get_objects().
template <typename Fn>
absl::Status WalkTracked(Fn&& fn, std::vector<PyObject*>* kept) {
  auto visit_one = [&fn, kept](PyObject* op) {
    if (fn(op)) {
      Py_INCREF(op);
      kept->push_back(op);
    }
  };
  if (leakguard_gc_walk_supported()) {
    leakguard_gc_walk(
        [](PyObject* op, void* arg) { (*static_cast<decltype(visit_one)*>(arg))(op); }, &visit_one);
    return absl::OkStatus();
  }
  absl::StatusOr<bool> visit = CanVisitObjects();
  if (!visit.ok()) return visit.status();
#if PY_VERSION_HEX >= 0x030C0000
  if (*visit) {
    PyUnstable_GC_VisitObjects(&VisitTrampoline<decltype(visit_one)>, &visit_one);
    return absl::OkStatus();
  }
#endif
  absl::StatusOr<Ref> list = CallGc("get_objects");
  if (!list.ok()) return list.status();
  if (!PyList_Check(list->get())) {
    return absl::InternalError("gc.get_objects() did not return a list");
  }
  PyObject* objects = list->get();
  // One pass that also drops the list's references: each object is touched
  // once. The list is ours alone, so emptying its slots is safe.
  const Py_ssize_t size = PyList_GET_SIZE(objects);
  constexpr Py_ssize_t kAhead = 8;  // Objects are scattered: overlap misses.
  for (Py_ssize_t i = 0; i < size; ++i) {
    if (i + kAhead < size) {
      __builtin_prefetch(PyList_GET_ITEM(objects, i + kAhead), /*rw=*/1);
    }
    PyObject* op = PyList_GET_ITEM(objects, i);
    PyList_SET_ITEM(objects, i, nullptr);
    if (fn(op)) {
      kept->push_back(op);  // Takes over the list's reference.
    } else {
      Py_DECREF(op);  // Never the last one: the object was alive before.
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Counts objects by exact type; types are kept alive (referenced) from
// the moment they are first met.
class CensusBuilder {
 public:
  CensusBuilder() = default;
  CensusBuilder(const CensusBuilder&) = delete;
  CensusBuilder& operator=(const CensusBuilder&) = delete;
  ~CensusBuilder() {
    for (PyTypeObject* type : types_) Py_DECREF(type);
  }

  // Allowed inside WalkTracked's callback.
  void Add(PyObject* op) noexcept {
    const uint32_t t = IndexOf(Py_TYPE(op), front_cache_);
    ++counts_[t];
    ++total_;
    if constexpr (kWalkReversed) last_seen_[t] = total_;
  }

  // Allowed inside leakguard_gc_walk_both_ends()'s visitor: remembers
  // where in gc.get_objects() order each type is first met, which that
  // walk's visiting order does not tell. Finish() then needs the lengths.
  void AddPlaced(PyObject* op, int generation, Py_ssize_t index) noexcept {
    // The two ends meet different types: one last-type cache each.
    const uint32_t t = IndexOf(Py_TYPE(op), index >= 0 ? front_cache_ : back_cache_);
    ++counts_[t];
    ++total_;
    Place& place = places_[t];
    // Generations are walked 0, 1, 2: the first one met is the earliest.
    if (place.generation < 0) place.generation = generation;
    if (generation != place.generation) return;
    if (index >= 0) {
      if (place.front < 0) place.front = index;  // Met front to back.
    } else {
      place.back = index;  // Met back to front: the last one is earliest.
    }
  }

  // Names the types (runs Python: `__name__`, `__module__`). `walked`: the
  // objects came from WalkTracked, so order them as gc.get_objects() would;
  // `lengths`: they came from AddPlaced, and these were the generations'.
  TypeCensus Finish(bool walked, const Py_ssize_t* lengths = nullptr) LEAKGUARD_REQUIRES_GIL {
    TypeCensus census;
    census.total_ = total_;
    std::vector<std::size_t> order(types_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (lengths != nullptr) {
      std::vector<int64_t> first(types_.size());
      for (std::size_t i = 0; i < first.size(); ++i) {
        const Place& place = places_[i];
        int64_t start = 0;  // Where the type's generation starts.
        for (int g = 0; g < place.generation; ++g) start += lengths[g];
        first[i] =
            start + (place.front >= 0 ? place.front : lengths[place.generation] + place.back);
      }
      std::sort(order.begin(), order.end(),
                [&first](std::size_t a, std::size_t b) { return first[a] < first[b]; });
    } else if (walked && kWalkReversed) {
      // First met in the reversed walk = last met in the walk.
      std::sort(order.begin(), order.end(),
                [this](std::size_t a, std::size_t b) { return last_seen_[a] > last_seen_[b]; });
    }
    for (std::size_t i : order) {
      TypeCensusEntry entry;
      entry.type = Borrow(reinterpret_cast<PyObject*>(types_[i]));
      entry.short_name = ShortTypeName(types_[i]);
      entry.full_name = FullTypeName(types_[i]);
      entry.count = counts_[i];
      census.by_type_.push_back(std::move(entry));
    }
    return census;
  }

  const std::vector<PyTypeObject*>& types() const { return types_; }

 private:
  std::vector<PyTypeObject*> types_;  // First-met order; owned references.
  std::vector<int64_t> counts_;
  // Where a placed walk first met a type (see AddPlaced).
  struct Place {
    int generation = -1;
    int64_t front = -1;  // Smallest index from the front, or -1.
    int64_t back = 0;    // Earliest index from the back (< 0), or 0.
  };

  // The last type looked up, and its index.
  struct LastType {
    PyTypeObject* type = nullptr;
    uint32_t index = 0;
  };

  uint32_t IndexOf(PyTypeObject* type, LastType& last) noexcept {
    if (type != last.type) {
      const uint32_t index = index_.FindOrInsert(type, static_cast<uint32_t>(types_.size()));
      if (index == types_.size()) {
        Py_INCREF(type);
        types_.push_back(type);
        counts_.push_back(0);
        last_seen_.push_back(0);
        places_.emplace_back();
      }
      last.type = type;
      last.index = index;
    }
    return last.index;
  }

  std::vector<int64_t> last_seen_;  // Free-threaded builds only.
  std::vector<Place> places_;
  PointerIndex index_;
  LastType front_cache_;
  LastType back_cache_;
  int64_t total_ = 0;
};

// Drops the references in `objects` and empties it. REQUIRES: the GIL, or
// a finalized interpreter (then the references are forgotten, not dropped).
void ReleaseAll(std::vector<PyObject*>* objects) noexcept {
  if (Py_IsInitialized()) {
    const std::size_t n = objects->size();
    for (std::size_t i = 0; i < n; ++i) {
      if (i + 8 < n) __builtin_prefetch((*objects)[i + 8], /*rw=*/1);
      Py_DECREF((*objects)[i]);
    }
  }
  objects->clear();
}

// Scratch space of one chain query over N nodes (+1 for a target that is not
// a node).
struct Scratch {
  std::vector<uint32_t> stamp;
  std::vector<uint32_t> parent;
  std::vector<uint32_t> depth;
  uint32_t epoch = 0;
};

// The snapshot behind a ReferrerGraph.
struct GraphData {
  std::vector<PyObject*> nodes;     // Owned references, heap order.
  PointerIndex index;               // Node -> position in `nodes`.
  std::vector<uint32_t> offsets;    // Reverse CSR: referrers of node j are
  std::vector<uint32_t> referrers;  // referrers[offsets[j] .. offsets[j+1]).

  absl::Mutex mu;
  std::vector<std::unique_ptr<Scratch>> spare ABSL_GUARDED_BY(mu);

  std::unique_ptr<Scratch> TakeScratch() {
    {
      absl::MutexLock lock(&mu);
      if (!spare.empty()) {
        std::unique_ptr<Scratch> s = std::move(spare.back());
        spare.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<Scratch>();
    s->stamp.assign(nodes.size() + 1, 0);
    s->parent.assign(nodes.size() + 1, kNone);
    s->depth.assign(nodes.size() + 1, 0);
    return s;
  }
  void GiveBack(std::unique_ptr<Scratch> s) {
    absl::MutexLock lock(&mu);
    spare.push_back(std::move(s));
  }

  void Release() noexcept { ReleaseAll(&nodes); }
};

}  // namespace internal

using internal::CensusBuilder;
using internal::GraphData;
using internal::kNone;
using internal::PointerIndex;
using internal::Scratch;

// ------------------------------------------------------------------ census

std::vector<TypeCount> TypeCensus::Counts(TypeNames names) const {
  std::vector<TypeCount> out;
  std::unordered_map<std::string, std::size_t> at;
  for (const TypeCensusEntry& entry : by_type_) {
    const std::string& name = names == TypeNames::kShort ? entry.short_name : entry.full_name;
    auto [it, added] = at.try_emplace(name, out.size());
    if (added) out.push_back(TypeCount{name, 0});
    out[it->second].count += entry.count;
  }
  return out;
}

std::vector<TypeCount> TypeCensus::MostCommon(std::size_t limit, TypeNames names) const {
  std::vector<TypeCount> out = Counts(names);
  std::stable_sort(out.begin(), out.end(),
                   [](const TypeCount& a, const TypeCount& b) { return a.count > b.count; });
  if (limit != 0 && out.size() > limit) out.resize(limit);
  return out;
}

int64_t TypeCensus::Count(std::string_view name) const {
  const bool full = name.find('.') != std::string_view::npos;
  int64_t n = 0;
  for (const TypeCensusEntry& entry : by_type_) {
    if ((full ? entry.full_name : entry.short_name) == name) n += entry.count;
  }
  return n;
}

absl::StatusOr<TypeCensus> TakeTypeCensus(const CensusOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.collect_first) {
    if (absl::Status s = internal::CollectFull(); !s.ok()) return s;
  }
  CensusBuilder builder;
  Py_ssize_t lengths[3];
  if (leakguard_gc_walk_both_ends(
          [](PyObject* op, int generation, Py_ssize_t index, void* arg) {
            static_cast<CensusBuilder*>(arg)->AddPlaced(op, generation, index);
          },
          &builder, lengths)) {
    return builder.Finish(/*walked=*/true, lengths);
  }
  absl::Status walked = internal::WalkTracked(
      [&builder](PyObject* op) {
        builder.Add(op);
        return false;
      },
      nullptr);
  if (!walked.ok()) return walked;
  return builder.Finish(/*walked=*/true);
}

absl::StatusOr<TypeCensus> CensusOf(const std::vector<Ref>& objects) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  CensusBuilder builder;
  for (const Ref& obj : objects) {
    if (obj) builder.Add(obj.get());
  }
  return builder.Finish(/*walked=*/false);
}

absl::StatusOr<std::vector<GrowthEntry>> GrowthTracker::Update(const GrowthOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.collect_first) {
    if (absl::Status s = internal::Collect(options.collect_depth); !s.ok()) return s;
  }
  absl::StatusOr<TypeCensus> census = TakeTypeCensus(CensusOptions{.collect_first = false});
  if (!census.ok()) return census.status();
  std::vector<GrowthEntry> deltas;
  for (TypeCount& row : census->Counts(options.names)) {
    auto [it, added] = peak_index_.try_emplace(row.name, peaks_.size());
    if (added) peaks_.push_back(TypeCount{row.name, 0});
    TypeCount& peak = peaks_[it->second];
    if (row.count > peak.count) {
      deltas.push_back(GrowthEntry{row.name, row.count, row.count - peak.count});
      peak.count = row.count;
    }
  }
  // sorted(..., reverse=True) in objgraph is stable: ties keep dict order.
  std::stable_sort(deltas.begin(), deltas.end(),
                   [](const GrowthEntry& a, const GrowthEntry& b) { return a.delta > b.delta; });
  if (options.limit != 0 && deltas.size() > options.limit) {
    deltas.resize(options.limit);
  }
  return deltas;
}

absl::StatusOr<std::vector<Ref>> ObjectsByType(std::string_view type_name) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (type_name.empty()) {
    return absl::InvalidArgumentError(
        "ObjectsByType needs a type name, e.g. \"dict\" or \"app.Record\"");
  }
  // Walk 1: which type objects carry that name (naming runs Python, which
  // a walk must not).
  CensusBuilder builder;
  absl::Status walked = internal::WalkTracked(
      [&builder](PyObject* op) {
        builder.Add(op);
        return false;
      },
      nullptr);
  if (!walked.ok()) return walked;
  const bool full = type_name.find('.') != std::string_view::npos;
  PointerIndex wanted;
  for (PyTypeObject* type : builder.types()) {
    const std::string name = full ? internal::FullTypeName(type) : internal::ShortTypeName(type);
    if (name == type_name) wanted.FindOrInsert(type, 1);
  }
  // Walk 2: keep the objects of those types.
  std::vector<PyObject*> kept;
  walked = internal::WalkTracked([&wanted](PyObject* op) { return wanted.Find(Py_TYPE(op)) >= 0; },
                                 &kept);
  if (internal::kWalkReversed) std::reverse(kept.begin(), kept.end());
  std::vector<Ref> out;
  out.reserve(kept.size());
  for (PyObject* op : kept) out.push_back(Steal(op));
  if (!walked.ok()) return walked;
  return out;
}

// -------------------------------------------------------------------- marks

absl::StatusOr<ObjectMark> ObjectMark::Take(bool collect_first) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (collect_first) {
    if (absl::Status s = internal::CollectFull(); !s.ok()) return s;
  }
  ObjectMark mark;
  absl::Status walked = internal::WalkTracked(
      [&mark](PyObject* op) {
        mark.ids_.push_back(reinterpret_cast<std::uintptr_t>(op));
        return false;
      },
      nullptr);
  if (!walked.ok()) return walked;
  std::sort(mark.ids_.begin(), mark.ids_.end());
  return mark;
}

absl::StatusOr<std::vector<Ref>> ObjectMark::NewObjects(bool collect_first) const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (collect_first) {
    if (absl::Status s = internal::CollectFull(); !s.ok()) return s;
  }
  std::vector<PyObject*> kept;
  absl::Status walked = internal::WalkTracked(
      [this](PyObject* op) {
        return !std::binary_search(ids_.begin(), ids_.end(), reinterpret_cast<std::uintptr_t>(op));
      },
      &kept);
  if (internal::kWalkReversed) std::reverse(kept.begin(), kept.end());
  std::vector<Ref> out;
  out.reserve(kept.size());
  for (PyObject* op : kept) out.push_back(Steal(op));
  if (!walked.ok()) return walked;
  return out;
}

// -------------------------------------------------------------------- graph

namespace {

int RecordReferent(PyObject* referent, void* arg) noexcept {
  static_cast<std::vector<PyObject*>*>(arg)->push_back(referent);
  return 0;
}

struct MatchContext {
  PyObject* target;
};

int MatchReferent(PyObject* referent, void* arg) noexcept {
  return referent == static_cast<MatchContext*>(arg)->target ? 1 : 0;
}

// True if `op` refers to `target` (tp_traverse stops at the first match).
bool RefersTo(PyObject* op, PyObject* target) noexcept {
  traverseproc traverse = Py_TYPE(op)->tp_traverse;
  if (traverse == nullptr) return false;
  MatchContext context{target};
  return traverse(op, &MatchReferent, &context) != 0;
}

// The snapshot nodes that refer to `target` (which is not a node), in node
// order: one scan of the snapshot, like one gc.get_referrers() call.
std::vector<uint32_t> ScanReferrers(const GraphData& data, PyObject* target) {
  std::vector<uint32_t> found;
#if defined(Py_GIL_DISABLED)
  // Other threads may be changing containers: traverse only with the world
  // stopped, visiting live objects and keeping those that are nodes.
  struct Context {
    const GraphData* data;
    PyObject* target;
    std::vector<uint32_t>* found;
  } context{&data, target, &found};
  PyUnstable_GC_VisitObjects(
      [](PyObject* op, void* arg) noexcept -> int {
        auto* c = static_cast<Context*>(arg);
        const int64_t j = c->data->index.Find(op);
        if (j >= 0 && RefersTo(op, c->target)) {
          c->found->push_back(static_cast<uint32_t>(j));
        }
        return 1;
      },
      &context);
  std::sort(found.begin(), found.end());
#else
  for (std::size_t i = 0; i < data.nodes.size(); ++i) {
    if (RefersTo(data.nodes[i], target)) found.push_back(static_cast<uint32_t>(i));
  }
#endif
  return found;
}

// Modules that are sys.modules[module.__name__] (objgraph.is_proper_module),
// sorted by address.
std::vector<std::uintptr_t> ProperModules() {
  std::vector<std::uintptr_t> out;
  PyObject* modules = PySys_GetObject("modules");  // Borrowed.
  if (modules == nullptr) return out;
  Ref values = Steal(PyMapping_Values(modules));
  if (!values) {
    PyErr_Clear();
    return out;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values.get()); ++i) {
    PyObject* module = PyList_GET_ITEM(values.get(), i);
    if (!PyModule_Check(module)) continue;
    Ref name = Steal(PyObject_GetAttrString(module, "__name__"));
    if (!name) {
      PyErr_Clear();
      continue;
    }
    Ref found = Steal(PyObject_GetItem(modules, name.get()));
    if (!found) {
      PyErr_Clear();
      continue;
    }
    if (found.get() == module) {
      out.push_back(reinterpret_cast<std::uintptr_t>(module));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ChainLink MakeLink(PyObject* obj) LEAKGUARD_REQUIRES_GIL {
  ChainLink link;
  link.object = Borrow(obj);
  link.type_name = internal::ShortTypeName(Py_TYPE(obj));
  link.description = internal::Describe(obj);
  link.label = internal::ShortLabel(obj);
  return link;
}

// `path`: root first, target last. Names each object and each reference.
BackrefChain MakeChain(const std::vector<PyObject*>& path) LEAKGUARD_REQUIRES_GIL {
  BackrefChain chain;
  chain.links.reserve(path.size());
  for (PyObject* obj : path) chain.links.push_back(MakeLink(obj));
  for (std::size_t k = 0; k + 1 < chain.links.size(); ++k) {
    chain.links[k].edge =
        internal::EdgeLabel(chain.links[k].object.get(), chain.links[k + 1].object.get());
    // The snapshot said k refers to k+1; if it no longer does, say so.
    // (Not on free-threaded builds: tp_traverse outside a stopped world
    // could race with another thread changing the container.)
    if (!compat::kFreeThreaded && chain.links[k].edge.empty() &&
        !RefersTo(chain.links[k].object.get(), chain.links[k + 1].object.get())) {
      chain.links[k].edge = std::string(1, '?');  // (g++ 12 -Wrestrict)
    }
  }
  PyErr_Clear();
  return chain;
}

// Every tracked object (a strong reference each, in gc.get_objects() order)
// and the raw addresses of its referents: those of nodes[i] are
// referents[first_edge[i] .. first_edge[i + 1]). The addresses are compared,
// never followed.
struct Snapshot {
  std::vector<PyObject*> nodes;
  std::vector<uint64_t> first_edge;
  std::vector<PyObject*> referents;

  void Release() noexcept { internal::ReleaseAll(&nodes); }
};

absl::Status TakeSnapshot(Snapshot* snapshot) {
  std::vector<uint64_t>& first_edge = snapshot->first_edge;
  std::vector<PyObject*>& referents = snapshot->referents;
  absl::Status walked = internal::WalkTracked(
      [&first_edge, &referents](PyObject* op) {
        first_edge.push_back(referents.size());
        traverseproc traverse = Py_TYPE(op)->tp_traverse;
        if (traverse != nullptr) traverse(op, &RecordReferent, &referents);
        return true;
      },
      &snapshot->nodes);
  if (!walked.ok()) {
    snapshot->Release();
    return walked;
  }
  const std::size_t n = snapshot->nodes.size();
  if (n >= kNone) {
    snapshot->Release();
    return absl::ResourceExhaustedError("more than 4 billion tracked objects");
  }
  first_edge.push_back(referents.size());
  if (internal::kWalkReversed) {
    // Number the nodes in gc.get_objects() order (see kWalkReversed).
    std::reverse(snapshot->nodes.begin(), snapshot->nodes.end());
    std::vector<uint64_t> reversed_first(n + 1, 0);
    std::vector<PyObject*> reversed_referents;
    reversed_referents.reserve(referents.size());
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t old = n - 1 - i;
      reversed_first[i] = reversed_referents.size();
      reversed_referents.insert(reversed_referents.end(), referents.begin() + first_edge[old],
                                referents.begin() + first_edge[old + 1]);
    }
    reversed_first[n] = reversed_referents.size();
    first_edge = std::move(reversed_first);
    referents = std::move(reversed_referents);
  }
  return absl::OkStatus();
}

// What ends a chain, for one query: the kinds, objgraph's proper modules
// (computed once per query), the caller's predicate.
class RootTest {
 public:
  explicit RootTest(const ChainOptions& options) : options_(options) {
    if (options.roots.proper_modules) proper_ = ProperModules();
  }
  bool operator()(PyObject* obj) const {
    if (options_.roots.modules && PyModule_Check(obj)) return true;
    if (options_.roots.proper_modules && PyModule_Check(obj) &&
        std::binary_search(proper_.begin(), proper_.end(), reinterpret_cast<std::uintptr_t>(obj))) {
      return true;
    }
    if (options_.roots.classes && PyType_Check(obj)) return true;
    if (options_.roots.frames && PyFrame_Check(obj)) return true;
    if (options_.is_root) {
      bool yes = false;
      try {
        yes = options_.is_root(Handle(obj));
      } catch (...) {  // Never across the API: treated as "not a root".
      }
      if (PyErr_Occurred()) PyErr_Clear();
      return yes;
    }
    return false;
  }

 private:
  const ChainOptions& options_;
  std::vector<std::uintptr_t> proper_;
};

absl::Status CheckChainArguments(Handle target, const ChainOptions& options) {
  if (!target) return absl::InvalidArgumentError("chain of a null handle");
  if (options.max_depth < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_depth must be >= 0, got ", options.max_depth));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GraphData>> IndexSnapshot(Snapshot* snapshot);

absl::Status NoChain(const ChainOptions& options, std::size_t searched) {
  return absl::NotFoundError(absl::StrCat(
      "no root within ", options.max_depth, " references of the object (searched ", searched,
      " referrers); raise max_depth, or widen the roots (classes, frames, "
      "any module, a predicate)"));
}

}  // namespace

ReferrerGraph::ReferrerGraph(std::unique_ptr<GraphData> data) : data_(std::move(data)) {}

ReferrerGraph::ReferrerGraph(ReferrerGraph&& other) noexcept = default;

ReferrerGraph& ReferrerGraph::operator=(ReferrerGraph&& other) noexcept {
  if (this != &other) {
    if (data_) {
      GilAcquire gil;
      data_->Release();
    }
    data_ = std::move(other.data_);
  }
  return *this;
}

ReferrerGraph::~ReferrerGraph() {
  if (!data_) return;
  if (!Py_IsInitialized()) {
    data_->Release();  // Forgets; the objects are gone with the interpreter.
    return;
  }
  GilAcquire gil;
  data_->Release();
}

std::size_t ReferrerGraph::object_count() const noexcept { return data_ ? data_->nodes.size() : 0; }

std::size_t ReferrerGraph::edge_count() const noexcept {
  return data_ ? data_->referrers.size() : 0;
}

absl::StatusOr<ReferrerGraph> ReferrerGraph::Build(const GraphOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.collect_first) {
    if (absl::Status s = internal::Collect(options.collect_depth); !s.ok()) return s;
  }
  Snapshot snapshot;
  if (absl::Status s = TakeSnapshot(&snapshot); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<GraphData>> data = IndexSnapshot(&snapshot);
  if (!data.ok()) return data.status();
  return ReferrerGraph(*std::move(data));
}

namespace {

// The referrer index of a snapshot (whose references it takes over).
absl::StatusOr<std::unique_ptr<GraphData>> IndexSnapshot(Snapshot* snapshot) {
  auto data = std::make_unique<GraphData>();
  data->nodes = std::move(snapshot->nodes);
  std::vector<uint64_t>& first_edge = snapshot->first_edge;
  std::vector<PyObject*>& referents = snapshot->referents;
  const std::size_t n = data->nodes.size();
  data->index.Reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    data->index.FindOrInsert(data->nodes[i], static_cast<uint32_t>(i));
  }
  // Referents that are nodes, each (referrer, referent) pair once; counted
  // per referent for the reverse index.
  std::vector<uint32_t> mapped(referents.size(), kNone);
  std::vector<uint32_t> last_referrer(n, kNone);
  std::vector<uint64_t> counts(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (uint64_t e = first_edge[i]; e < first_edge[i + 1]; ++e) {
      const int64_t j = data->index.Find(referents[e]);
      if (j < 0 || last_referrer[j] == i) continue;
      last_referrer[j] = static_cast<uint32_t>(i);
      mapped[e] = static_cast<uint32_t>(j);
      ++counts[j + 1];
    }
  }
  referents.clear();
  referents.shrink_to_fit();
  last_referrer.clear();
  last_referrer.shrink_to_fit();
  for (std::size_t j = 0; j < n; ++j) counts[j + 1] += counts[j];
  if (counts[n] >= kNone) {
    data->Release();
    return absl::ResourceExhaustedError("more than 4 billion references");
  }
  data->offsets.assign(counts.begin(), counts.end());
  data->referrers.resize(counts[n]);
  // Referrers of each node in node (heap) order: gc.get_referrers' order.
  for (std::size_t i = 0; i < n; ++i) {
    for (uint64_t e = first_edge[i]; e < first_edge[i + 1]; ++e) {
      if (mapped[e] != kNone) {
        data->referrers[counts[mapped[e]]++] = static_cast<uint32_t>(i);
      }
    }
  }
  return data;
}

}  // namespace

namespace internal {

// Builds ReferrerGraphs for FindBackrefChain().
struct GraphAccess {
  static ReferrerGraph Make(std::unique_ptr<GraphData> data) {
    return ReferrerGraph(std::move(data));
  }
};

}  // namespace internal

absl::StatusOr<std::vector<Ref>> ReferrerGraph::Referrers(Handle target) const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!target) return absl::InvalidArgumentError("Referrers of a null handle");
  std::vector<Ref> out;
  if (!data_) return out;
  const int64_t t = data_->index.Find(target.get());
  if (t >= 0) {
    for (uint32_t e = data_->offsets[t]; e < data_->offsets[t + 1]; ++e) {
      out.push_back(Borrow(data_->nodes[data_->referrers[e]]));
    }
  } else {
    for (uint32_t i : ScanReferrers(*data_, target.get())) {
      out.push_back(Borrow(data_->nodes[i]));
    }
  }
  return out;
}

absl::StatusOr<BackrefChain> ReferrerGraph::FindChain(Handle target,
                                                      const ChainOptions& options) const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (absl::Status s = CheckChainArguments(target, options); !s.ok()) return s;
  if (!data_) return absl::FailedPreconditionError("empty (moved-from) graph");
  GraphData& data = *data_;
  const uint32_t n = static_cast<uint32_t>(data.nodes.size());
  Ref keep_target = Borrow(target.get());  // Alive whatever is_root does.
  const int64_t found = data.index.Find(target.get());
  const uint32_t t = found >= 0 ? static_cast<uint32_t>(found) : n;
  std::vector<uint32_t> virtual_referrers;
  if (t == n) virtual_referrers = ScanReferrers(data, target.get());
  auto object_of = [&](uint32_t i) { return i == n ? keep_target.get() : data.nodes[i]; };
  const RootTest is_root(options);

  std::unique_ptr<Scratch> scratch = data.TakeScratch();
  Scratch& s = *scratch;
  if (++s.epoch == 0) {  // Wrapped: clear the stamps once.
    std::fill(s.stamp.begin(), s.stamp.end(), 0);
    s.epoch = 1;
  }
  for (Handle ignored : options.ignore) {
    const int64_t i = ignored ? data.index.Find(ignored.get()) : -1;
    if (i >= 0) s.stamp[i] = s.epoch;  // Never enqueued.
  }
  s.stamp[t] = s.epoch;
  s.parent[t] = kNone;
  s.depth[t] = 0;
  std::vector<uint32_t> queue{t};
  uint32_t root = kNone;
  const uint32_t max_depth = static_cast<uint32_t>(options.max_depth);
  // objgraph's _find_chain: dequeue, test, expand while below max_depth.
  for (std::size_t head = 0; head < queue.size(); ++head) {
    const uint32_t x = queue[head];
    if (is_root(object_of(x))) {
      root = x;
      break;
    }
    if (s.depth[x] >= max_depth) continue;
    const uint32_t* begin;
    const uint32_t* end;
    if (x == n) {
      begin = virtual_referrers.data();
      end = begin + virtual_referrers.size();
    } else {
      begin = data.referrers.data() + data.offsets[x];
      end = data.referrers.data() + data.offsets[x + 1];
    }
    for (const uint32_t* r = begin; r != end; ++r) {
      if (s.stamp[*r] == s.epoch) continue;
      s.stamp[*r] = s.epoch;
      s.parent[*r] = x;
      s.depth[*r] = s.depth[x] + 1;
      queue.push_back(*r);
    }
  }
  std::vector<PyObject*> path;
  for (uint32_t i = root; i != kNone; i = s.parent[i]) path.push_back(object_of(i));
  data.GiveBack(std::move(scratch));
  if (root == kNone) return NoChain(options, queue.size());
  return MakeChain(path);
}

absl::StatusOr<std::string> ReferrerGraph::BackrefsDot(const std::vector<Handle>& targets,
                                                       const BackrefsDotOptions& options) const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.max_depth < 0 || options.too_many < 0) {
    return absl::InvalidArgumentError("BackrefsDot: max_depth and too_many must be >= 0");
  }
  for (Handle target : targets) {
    if (!target) return absl::InvalidArgumentError("BackrefsDot of a null handle");
  }
  if (!data_) return absl::FailedPreconditionError("empty (moved-from) graph");
  const GraphData& data = *data_;
  PointerIndex ignore;
  for (Handle h : options.ignore) {
    if (h) ignore.FindOrInsert(h.get(), 1);
  }
  // show_backrefs' walk: breadth-first from the targets, by object.
  struct Item {
    Ref object;
    int depth;
  };
  std::vector<Item> queue;
  PointerIndex depth_of;  // object -> depth (stored +1)
  std::string out =
      "digraph ObjectGraph {\n"
      "  node[shape=box, style=filled, fillcolor=white];\n";
  for (Handle target : targets) {
    absl::StrAppend(&out, "  ", internal::DotNodeId(target.get()), "[fontcolor=red];\n");
    if (depth_of.Find(target.get()) < 0) {
      depth_of.FindOrInsert(target.get(), 1);
      queue.push_back(Item{Borrow(target.get()), 0});
    }
  }
  auto gradient = [&](double s0, double v0, double s1, double v1, int depth) {
    const double f = options.max_depth == 0 ? 0.0 : static_cast<double>(depth) / options.max_depth;
    return std::make_pair(s0 * (1 - f) + s1 * f, v0 * (1 - f) + v1 * f);
  };
  for (std::size_t head = 0; head < queue.size(); ++head) {
    PyObject* target = queue[head].object.get();
    const int depth = queue[head].depth;
    const std::string id = internal::DotNodeId(target);
    absl::StrAppend(&out, "  ", id, "[label=\"",
                    internal::DotQuote(absl::StrCat(internal::ShortTypeName(Py_TYPE(target)), "\n",
                                                    internal::ShortLabel(target))),
                    "\"];\n");
    auto [sat, val] = gradient(0, 1, 0, 0.3, depth);
    double hue = 0;
    if (PyModule_Check(target)) {
      hue = 0.3;
      sat = 1;
    }
    absl::StrAppend(&out, "  ", id, absl::StrFormat("[fillcolor=\"%g,%g,%g\"];\n", hue, sat, val));
    if (val < 0.5) absl::StrAppend(&out, "  ", id, "[fontcolor=white];\n");
    const int has_del =
        PyObject_HasAttrString(reinterpret_cast<PyObject*>(Py_TYPE(target)), "__del__");
    if (has_del == 1) {
      absl::StrAppend(&out, "  ", id, "->", id,
                      "_has_a_del[color=red,style=dotted,len=0.25,weight=10];\n");
      absl::StrAppend(&out, "  ", id,
                      "_has_a_del[label=\"__del__\",shape=doublecircle,height=0.25,"
                      "color=red,fillcolor=\"0,.5,1\",fontsize=6];\n");
    }
    if (depth >= options.max_depth) continue;
    std::vector<uint32_t> scanned;
    const uint32_t* begin;
    const uint32_t* end;
    const int64_t t = data.index.Find(target);
    if (t >= 0) {
      begin = data.referrers.data() + data.offsets[t];
      end = data.referrers.data() + data.offsets[t + 1];
    } else {
      scanned = ScanReferrers(data, target);
      begin = scanned.data();
      end = begin + scanned.size();
    }
    int drawn = 0;
    int skipped = 0;
    for (const uint32_t* r = begin; r != end; ++r) {
      PyObject* source = data.nodes[*r];
      if (ignore.Find(source) >= 0) continue;
      if (drawn >= options.too_many) {
        ++skipped;
        continue;
      }
      absl::StrAppend(&out, "  ", internal::DotNodeId(source), " -> ", id);
      const std::string label = internal::EdgeLabel(source, target);
      if (!label.empty()) {
        absl::StrAppend(&out, " [label=\"", internal::DotQuote(label), "\"]");
      }
      out += ";\n";
      if (depth_of.Find(source) < 0) {
        depth_of.FindOrInsert(source, static_cast<uint32_t>(depth + 2));
        queue.push_back(Item{Borrow(source), depth + 1});
      }
      ++drawn;
    }
    if (skipped > 0) {
      auto [s2, v2] = gradient(1, 1, 1, 0.3, depth + 1);
      const std::string more = absl::StrCat("too_many_", id);
      absl::StrAppend(&out, "  ", more, "->", id, "[color=red,style=dotted,len=0.25,weight=10];\n");
      absl::StrAppend(&out, "  ", more, "[label=\"", skipped,
                      " more backreferences\",shape=box,height=0.25,color=red,",
                      absl::StrFormat("fillcolor=\"%g,%g,%g\",fontsize=6];\n", 0.0, s2, v2));
      absl::StrAppend(&out, "  ", more, "[fontcolor=white];\n");
    }
  }
  out += "}\n";
  PyErr_Clear();
  return out;
}

absl::StatusOr<BackrefChain> FindBackrefChain(Handle target, const ChainOptions& options,
                                              const GraphOptions& graph_options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (absl::Status s = CheckChainArguments(target, options); !s.ok()) return s;
  if (graph_options.collect_first) {
    if (absl::Status s = internal::Collect(graph_options.collect_depth); !s.ok()) return s;
  }
  // One query needs no index: the same breadth-first search, a level at a
  // time, finds the referrers of a whole level in one sequential pass over
  // the recorded referents. Same order and tie-breaking as FindChain().
  Snapshot snapshot;
  if (absl::Status s = TakeSnapshot(&snapshot); !s.ok()) return s;
  const std::vector<PyObject*>& nodes = snapshot.nodes;
  const std::size_t n = nodes.size();
  const uint32_t kTarget = static_cast<uint32_t>(n);  // Its id, node or not.
  Ref keep_target = Borrow(target.get());
  auto object_of = [&](uint32_t i) { return i == kTarget ? keep_target.get() : nodes[i]; };
  PointerIndex ignored;
  for (Handle h : options.ignore) {
    if (h) ignored.FindOrInsert(h.get(), 1);
  }
  std::vector<uint8_t> visited(n, 0);
  std::vector<uint32_t> parent(n, kNone);
  const RootTest is_root(options);
  std::vector<uint32_t> level{kTarget};
  std::size_t searched = 1;
  uint32_t root = kNone;
  // A 64 Kibit filter over the level's addresses rejects almost every
  // referent with one L1 load before the exact lookup.
  std::vector<uint64_t> filter(1024);
  auto bit = [](const void* p) {
    return static_cast<uint32_t>(
        (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull >> 48);
  };
  std::vector<std::pair<uint32_t, uint32_t>> found;  // (position in level, referrer)
  constexpr int kMaxLevelScans = 12;
  for (int depth = 0; !level.empty(); ++depth) {
    for (uint32_t x : level) {
      if (is_root(object_of(x))) {
        root = x;
        break;
      }
    }
    if (root != kNone || depth >= options.max_depth) break;
    if (depth == kMaxLevelScans) {
      // Deep: one scan per level would cost more than the index. Answer
      // from a ReferrerGraph of the same snapshot (the search restarts).
      absl::StatusOr<std::unique_ptr<GraphData>> data = IndexSnapshot(&snapshot);
      if (!data.ok()) {
        snapshot.Release();
        return data.status();
      }
      ReferrerGraph graph = internal::GraphAccess::Make(*std::move(data));
      return graph.FindChain(target, options);
    }
    std::fill(filter.begin(), filter.end(), 0);
    PointerIndex position;
    for (std::size_t k = 0; k < level.size(); ++k) {
      PyObject* obj = object_of(level[k]);
      const uint32_t b = bit(obj);
      filter[b >> 6] |= uint64_t{1} << (b & 63);
      position.FindOrInsert(obj, static_cast<uint32_t>(k));
    }
    found.clear();
    for (std::size_t i = 0; i < n; ++i) {
      // Visited and ignored objects are never added again: skip their edges.
      if (visited[i] || nodes[i] == target.get()) continue;
      for (uint64_t e = snapshot.first_edge[i]; e < snapshot.first_edge[i + 1]; ++e) {
        PyObject* p = snapshot.referents[e];
        const uint32_t b = bit(p);
        if ((filter[b >> 6] >> (b & 63) & 1) == 0) continue;
        const int64_t k = position.Find(p);
        if (k >= 0) found.emplace_back(static_cast<uint32_t>(k), static_cast<uint32_t>(i));
      }
    }
    // Per object of the level in queue order, its referrers in heap order.
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<uint32_t> next;
    for (const auto& [k, i] : found) {
      if (visited[i] || ignored.Find(nodes[i]) >= 0) continue;
      visited[i] = 1;
      parent[i] = level[k];
      next.push_back(i);
    }
    searched += next.size();
    level = std::move(next);
  }
  absl::StatusOr<BackrefChain> result = NoChain(options, searched);
  if (root != kNone) {
    std::vector<PyObject*> path;
    for (uint32_t i = root; i != kTarget && i != kNone; i = parent[i]) {
      path.push_back(nodes[i]);
    }
    path.push_back(keep_target.get());
    result = MakeChain(path);
  }
  snapshot.Release();
  return result;
}

}  // namespace leakguard
