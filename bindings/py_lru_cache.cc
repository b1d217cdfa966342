// leakguard.lru_cache: a C implementation of functools.lru_cache with the
// same call forms, key equality and introspection, plus `ttl` (entries
// expire a fixed time after they were computed) and `weak_self` (a cached
// method does not keep its instances alive).
//
// Keys. A call's key is functools' key (a lone exact int or str argument is
// its own key; otherwise the tuple of the positional arguments, a marker,
// the keyword names and values, and with typed=True the argument types),
// compared exactly as a dict compares functools' keys. Each argument is
// hashed once per call, as functools does. A lookup compares the call's
// arguments in place with each stored key, so a hit builds no tuple: the
// tuple is made only to store a new entry.
//
// Layout. The entries (Links) live in the wrapper's own open-addressing hash
// table and on a recency list (front: most recent); the table owns one
// reference to each link, and a link is in both or in neither. Removing an
// entry finds its slot by identity (its stored hash, no comparison), so a
// removal never runs Python code and never fails: the cache cannot raise
// KeyError, whatever a key's __eq__ does. Python code (the function,
// __hash__, __eq__, a finalizer, a timer) runs only between consistent
// states: an __eq__ that changes the table during a lookup makes the lookup
// start again, entries taken out by an insertion are released only once the
// new entry is in, and everything a new entry needs is allocated before the
// lookup that decides to store it. That is all the thread-safety the GIL
// needs.
//
// ttl. Every entry expires `ttl` seconds after it was computed (a hit does
// not extend it). With one ttl per cache, insertion order is expiry order:
// the links are also on an insertion-order list, and each insertion first
// drops every expired entry from its old end (what cachetools.TTLCache
// does), so even an unbounded cache holds only what is still fresh. A hit
// on an expired entry drops it and counts a miss.
//
// weak_self. The first argument is keyed by a weak reference to it (weak
// references hash and compare like their referents, so key equality is
// functools'). Each instance with entries has a Purger: the callback of a
// weak reference to the instance, listing the instance's links. When the
// instance dies, the callback removes its entries.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <utility>
#include <vector>

#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Wrapper;
struct Purger;

// One cached call: 56 bytes, functools' link and its own table slot in
// one, so a cache of plain calls takes less memory than functools' link
// plus dict entry.
struct Link {
  PyObject_HEAD ListNode lru;  // In the wrapper's recency list (while in the table).
  PyObject* key;               // functools' key: the lone argument, or a tuple.
  PyObject* result;
  Py_hash_t hash;  // Of the key, computed once when it was stored.
};

// What a link of a cache with a ttl or weak_self carries after its Link
// (its wrapper's link_type is then the full link's: HasExtra()).
struct LinkExtra {
  ListNode by_age;    // In the wrapper's insertion-order list (ttl).
  ListNode by_owner;  // In its Purger's list (weak_self).
  Purger* owner;      // Strong, or null.
  double expires;     // On the wrapper's clock; +inf: never.
};

struct FullLink {
  Link link;
  LinkExtra extra;
};

LinkExtra* Extra(Link* link) { return &reinterpret_cast<FullLink*>(link)->extra; }

// Removes an instance's entries when the instance dies (weak_self).
struct Purger {
  PyObject_HEAD Wrapper* wrapper;  // Borrowed; null once the wrapper lets go of it.
  PyObject* id_key;                // id(instance): the key in wrapper->owners.
  PyObject* cbref;                 // Weak reference to the instance; callback: this.
  ListNode links;                  // The instance's links (borrowed).
  ListNode in_wrapper;             // In wrapper->purgers (borrowed).
};

struct Wrapper {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* func;
  PyObject* owners;  // dict: id(instance) -> Purger, weak_self only
  PyObject* kwd_mark;
  PyObject* cache_info_type;
  PyObject* maxsize_obj;  // as functools reports it, for cache_parameters()
  PyObject* typed_obj;    // as given, for cache_parameters()
  PyObject* timer;        // callable returning seconds, or null
  PyObject* dict;
  PyObject* weakreflist;
  PyTypeObject* link_type;
  PyTypeObject* purger_type;
  // The table: `slots` has mask + 1 entries (a power of two), each null
  // (never used), Dummy() (an entry was removed) or a Link.
  Link** slots;
  size_t mask;
  Py_ssize_t used;     // Links in the table (currsize).
  Py_ssize_t filled;   // used + dummies; kept below 2/3 of the slots.
  uint64_t version;    // Changes whenever the table does.
  Link* spare;         // A released link kept for the next insertion, or null.
  Py_ssize_t maxsize;  // -1: unbounded; 0: no caching
  double ttl;          // +inf: none
  Py_hash_t kwd_mark_hash;
  bool typed;
  bool weak_self;
  ListNode lru;      // next: most recent; prev: least recent
  ListNode ages;     // ttl only: next: newest; prev: oldest (expires first)
  ListNode purgers;  // Purgers whose `wrapper` is this
  Py_ssize_t hits;
  Py_ssize_t misses;
  Py_ssize_t evictions;
  Py_ssize_t expirations;
};

// The lru_cache(...) decorator returned when no function is given yet.
struct Decorator {
  PyObject_HEAD PyObject* maxsize_obj;
  PyObject* typed_obj;
  PyObject* timer;
  double ttl;
  bool typed;
  bool weak_self;
};

// Whether `w`'s links are full links (they carry a LinkExtra).
bool HasExtra(const Wrapper* w) { return w->ttl != INFINITY || w->weak_self; }

Link* LinkOfLru(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) - offsetof(Link, lru));
}
Link* LinkOfAge(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) - offsetof(FullLink, extra) -
                                 offsetof(LinkExtra, by_age));
}
Link* LinkOfOwner(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) - offsetof(FullLink, extra) -
                                 offsetof(LinkExtra, by_owner));
}
Purger* PurgerOfNode(ListNode* node) {
  return reinterpret_cast<Purger*>(reinterpret_cast<char*>(node) - offsetof(Purger, in_wrapper));
}

double MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The wrapper's clock. -1 with an exception set when a user timer fails.
int Now(Wrapper* w, double* now) {
  if (w->timer == nullptr) {
    *now = MonotonicSeconds();
    return 0;
  }
  Ref value = Steal(PyObject_CallNoArgs(w->timer));
  if (!value) return -1;
  const double seconds = PyFloat_AsDouble(value.get());
  if (seconds == -1.0 && PyErr_Occurred()) return -1;
  *now = seconds;
  return 0;
}

// ------------------------------------------------------------------ links

void LinkDealloc(PyObject* self) {
  Link* link = reinterpret_cast<Link*>(self);
  PyTypeObject* type = Py_TYPE(self);
  Py_CLEAR(link->key);
  Py_CLEAR(link->result);
  type->tp_free(self);
  Py_DECREF(type);
}

void FullLinkDealloc(PyObject* self) {
  LinkExtra* extra = Extra(reinterpret_cast<Link*>(self));
  if (ListLinked(&extra->by_owner)) ListUnlink(&extra->by_owner);
  if (ListLinked(&extra->by_age)) ListUnlink(&extra->by_age);
  Py_CLEAR(extra->owner);
  LinkDealloc(self);
}

PyType_Slot kLinkSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(LinkDealloc)},
    {0, nullptr},
};

PyType_Spec kLinkSpec = {
    "leakguard._lru_link",
    sizeof(Link),
    0,
    Py_TPFLAGS_DEFAULT | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kLinkSlots,
};

PyType_Slot kFullLinkSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(FullLinkDealloc)},
    {0, nullptr},
};

PyType_Spec kFullLinkSpec = {
    "leakguard._lru_full_link",
    sizeof(FullLink),
    0,
    Py_TPFLAGS_DEFAULT | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kFullLinkSlots,
};

// ------------------------------------------------------------------ table

// Marks a slot whose entry was removed.
Link* Dummy() {
  static Link dummy;
  return &dummy;
}

constexpr size_t kMinSlots = 8;

// The slot of `link` (which is in the table): found by identity along its
// hash's probe sequence, without comparing keys.
size_t SlotOf(const Wrapper* w, const Link* link) {
  size_t perturb = static_cast<size_t>(link->hash);
  size_t i = perturb & w->mask;
  while (w->slots[i] != link) {
    perturb >>= 5;
    i = (i * 5 + perturb + 1) & w->mask;
  }
  return i;
}

// The first free (null or dummy) slot of `hash`'s probe sequence.
size_t FreeSlot(const Wrapper* w, Py_hash_t hash) {
  size_t perturb = static_cast<size_t>(hash);
  size_t i = perturb & w->mask;
  while (w->slots[i] != nullptr && w->slots[i] != Dummy()) {
    perturb >>= 5;
    i = (i * 5 + perturb + 1) & w->mask;
  }
  return i;
}

// Rebuilds the table with room for `used + 1` entries and no dummies. Runs
// no Python code. -1 with MemoryError set.
int Resize(Wrapper* w) {
  size_t size = kMinSlots;
  while (size * 2 <= static_cast<size_t>(w->used + 1) * 3) size *= 2;
  Link** fresh = static_cast<Link**>(PyMem_Calloc(size, sizeof(Link*)));
  if (fresh == nullptr) {
    PyErr_NoMemory();
    return -1;
  }
  Link** old = w->slots;
  const size_t old_size = old != nullptr ? w->mask + 1 : 0;
  w->slots = fresh;
  w->mask = size - 1;
  w->filled = w->used;
  ++w->version;
  for (size_t i = 0; i < old_size; ++i) {
    Link* link = old[i];
    if (link != nullptr && link != Dummy()) w->slots[FreeSlot(w, link->hash)] = link;
  }
  PyMem_Free(old);
  return 0;
}

// Adds `link` (a new reference, stolen) to the table and the lists.
// REQUIRES: no entry of its key is in the table, and a free slot is
// guaranteed (Reserve() since the last change). Runs no Python code.
void TableInsert(Wrapper* w, Link* link) {
  const size_t i = FreeSlot(w, link->hash);
  if (w->slots[i] == nullptr) ++w->filled;
  w->slots[i] = link;
  ++w->used;
  ++w->version;
  ListPushFront(&w->lru, &link->lru);
  if (HasExtra(w)) {
    LinkExtra* extra = Extra(link);
    if (extra->expires != INFINITY) ListPushFront(&w->ages, &extra->by_age);
    if (extra->owner != nullptr) ListPushFront(&extra->owner->links, &extra->by_owner);
  }
}

// Makes sure one more entry fits below the load limit. -1 with MemoryError.
int Reserve(Wrapper* w) {
  if (w->slots != nullptr && static_cast<size_t>(w->filled + 1) * 3 < (w->mask + 1) * 2) {
    return 0;
  }
  return Resize(w);
}

// Takes `link` out of the table and the lists without running Python code;
// the table's reference (and the link's owner) pass to the caller, who
// releases them with Release() once the cache is consistent again.
void Detach(Wrapper* w, Link* link) {
  w->slots[SlotOf(w, link)] = Dummy();
  --w->used;
  ++w->version;
  ListUnlink(&link->lru);
  if (HasExtra(w)) {
    LinkExtra* extra = Extra(link);
    if (ListLinked(&extra->by_age)) ListUnlink(&extra->by_age);
    if (ListLinked(&extra->by_owner)) ListUnlink(&extra->by_owner);
  }
}

void DropPurger(Wrapper* w, Purger* p);

// Drops a detached link: its owner's purger goes if the instance has no
// entries left; the link itself is kept as the wrapper's spare when nothing
// else holds it, or freed. Arbitrary code may run (the key's and result's
// finalizers).
void Release(Wrapper* w, Link* link) {
  Purger* owner = HasExtra(w) ? std::exchange(Extra(link)->owner, nullptr) : nullptr;
  if (owner != nullptr) {
    if (ListEmpty(&owner->links) && owner->wrapper == w) DropPurger(w, owner);
    Py_DECREF(owner);
  }
  if (Py_REFCNT(link) == 1 && w->spare == nullptr && w->func != nullptr) {
    // Reused by the next insertion (functools reuses the evicted link too).
    Ref key = Steal(std::exchange(link->key, nullptr));
    Ref result = Steal(std::exchange(link->result, nullptr));
    w->spare = link;
    return;  // key and result go here, the spare already set aside.
  }
  Py_DECREF(link);
}

// Takes `link` out of the cache and drops it.
void RemoveLink(Wrapper* w, Link* link) {
  Detach(w, link);
  Release(w, link);
}

// ---------------------------------------------------------------- purgers

// Unregisters `p` from `w` (its instance has no entries left, or died).
void DropPurger(Wrapper* w, Purger* p) {
  Ref keep = Borrow(reinterpret_cast<PyObject*>(p));
  if (p->wrapper != nullptr) {
    ListUnlink(&p->in_wrapper);
    p->wrapper = nullptr;
  }
  Ref cbref = Steal(std::exchange(p->cbref, nullptr));  // Breaks the cycle.
  if (w->owners != nullptr && p->id_key != nullptr) {
    // int keys: the lookup runs no Python code.
    PyObject* current = PyDict_GetItemWithError(w->owners, p->id_key);
    if (current == reinterpret_cast<PyObject*>(p)) {
      if (PyDict_DelItem(w->owners, p->id_key) < 0) PyErr_Clear();
    } else if (current == nullptr) {
      PyErr_Clear();
    }
  }
}

// Removes every entry of `p`'s instance.
void PurgeEntries(Wrapper* w, Purger* p) {
  while (!ListEmpty(&p->links)) RemoveLink(w, LinkOfOwner(p->links.next));
}

// Weak-reference callback: the instance died.
PyObject* PurgerCall(PyObject* self, PyObject* /*args*/, PyObject* /*kwargs*/) {
  Purger* p = reinterpret_cast<Purger*>(self);
  Wrapper* w = p->wrapper;
  if (w == nullptr) Py_RETURN_NONE;
  Ref keep_wrapper = Borrow(reinterpret_cast<PyObject*>(w));
  Ref keep_purger = Borrow(self);
  PurgeEntries(w, p);
  if (p->wrapper == w) DropPurger(w, p);
  Py_RETURN_NONE;
}

int PurgerTraverse(PyObject* self, visitproc visit, void* arg) {
  Purger* p = reinterpret_cast<Purger*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(p->cbref);
  return 0;
}

int PurgerClear(PyObject* self) {
  Purger* p = reinterpret_cast<Purger*>(self);
  Py_CLEAR(p->cbref);
  return 0;
}

void PurgerDealloc(PyObject* self) {
  Purger* p = reinterpret_cast<Purger*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (p->wrapper != nullptr) {
    ListUnlink(&p->in_wrapper);
    p->wrapper = nullptr;
  }
  Py_CLEAR(p->cbref);
  Py_CLEAR(p->id_key);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kPurgerSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(PurgerDealloc)},
    {Py_tp_call, reinterpret_cast<void*>(PurgerCall)},
    {Py_tp_traverse, reinterpret_cast<void*>(PurgerTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(PurgerClear)},
    {0, nullptr},
};

PyType_Spec kPurgerSpec = {
    "leakguard._lru_purger",
    sizeof(Purger),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kPurgerSlots,
};

// The purger of `instance` (a new reference), made on first use. May run
// Python code (a stale purger's entries are dropped).
Ref GetPurger(Wrapper* w, PyObject* instance) {
  Ref id_key = Steal(PyLong_FromVoidPtr(instance));
  if (!id_key) return Ref();
  Ref found = Borrow(PyDict_GetItemWithError(w->owners, id_key.get()));
  if (found) {
    Purger* p = reinterpret_cast<Purger*>(found.get());
    Ref referent = Steal(p->cbref != nullptr ? WeakrefGetRef(p->cbref) : nullptr);
    if (referent.get() == instance) return found;
    // A dead instance whose callback never ran, and a new one at its
    // address: its entries are stale.
    PurgeEntries(w, p);
    if (p->wrapper == w) DropPurger(w, p);
  } else if (PyErr_Occurred()) {
    return Ref();
  }
  Purger* p = PyObject_GC_New(Purger, w->purger_type);
  if (p == nullptr) return Ref();
  p->wrapper = nullptr;
  p->id_key = id_key.Release();
  p->cbref = nullptr;
  ListInit(&p->links);
  p->in_wrapper = ListNode{};
  PyObject_GC_Track(p);
  Ref purger = Steal(reinterpret_cast<PyObject*>(p));
  p->cbref = PyWeakref_NewRef(instance, purger.get());
  if (p->cbref == nullptr || PyDict_SetItem(w->owners, p->id_key, purger.get()) < 0) {
    return Ref();
  }
  p->wrapper = w;
  ListPushFront(&w->purgers, &p->in_wrapper);
  return purger;
}

// --------------------------------------------------------------- wrapper

// Empties the cache: the table, the lists and the purgers are detached
// first, and only then are the references dropped, so finalizers that run
// see an empty, consistent cache.
void ClearLinks(Wrapper* w) {
  std::vector<Ref> drop;
  while (!ListEmpty(&w->lru)) {
    Link* link = LinkOfLru(w->lru.next);
    ListUnlink(&link->lru);
    if (HasExtra(w)) {
      LinkExtra* extra = Extra(link);
      if (ListLinked(&extra->by_owner)) ListUnlink(&extra->by_owner);
      if (ListLinked(&extra->by_age)) ListUnlink(&extra->by_age);
      if (extra->owner != nullptr) {
        drop.push_back(Steal(reinterpret_cast<PyObject*>(std::exchange(extra->owner, nullptr))));
      }
    }
    drop.push_back(Steal(reinterpret_cast<PyObject*>(link)));  // The table's.
  }
  while (!ListEmpty(&w->purgers)) {
    Purger* p = PurgerOfNode(w->purgers.next);
    ListUnlink(&p->in_wrapper);
    p->wrapper = nullptr;
    if (p->cbref != nullptr) drop.push_back(Steal(std::exchange(p->cbref, nullptr)));
  }
  if (w->slots != nullptr) {
    for (size_t i = 0; i <= w->mask; ++i) w->slots[i] = nullptr;
  }
  w->used = 0;
  w->filled = 0;
  ++w->version;
  if (w->spare != nullptr) {
    drop.push_back(Steal(reinterpret_cast<PyObject*>(std::exchange(w->spare, nullptr))));
  }
  if (w->owners != nullptr) PyDict_Clear(w->owners);
  PyObject* error = PyErr_Occurred() ? compat::FetchException() : nullptr;
  drop.clear();
  if (error != nullptr) compat::RestoreException(error);
}

void MoveToFront(Wrapper* w, Link* link) {
  if (w->lru.next == &link->lru) return;
  ListUnlink(&link->lru);
  ListPushFront(&w->lru, &link->lru);
}

// A call's key as functools would build it, described in place (nothing is
// allocated): a lone exact int or str argument is its own key unless typed
// (or weak_self); otherwise a tuple of `size` items: the positional
// arguments, then a marker and the keyword names and values in call order,
// then (typed) the argument types. weak_self keys the first argument by a
// weak reference, which hashes and compares like the argument itself.
struct CallKey {
  PyObject* const* args;
  PyObject* kwnames;
  Py_ssize_t nargs;
  Py_ssize_t nkw;
  Py_ssize_t size;  // Items of the tuple key; 0 for a lone argument.
  bool bare;
};

CallKey DescribeKey(const Wrapper* w, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  CallKey k;
  k.args = args;
  k.kwnames = kwnames;
  k.nargs = nargs;
  k.nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  k.bare = !w->typed && !w->weak_self && k.nkw == 0 && nargs == 1 &&
           (PyUnicode_CheckExact(args[0]) || PyLong_CheckExact(args[0]));
  k.size = 0;
  if (!k.bare) {
    k.size = nargs;
    if (k.nkw > 0) k.size += 2 * k.nkw + 1;
    if (w->typed) k.size += nargs + k.nkw;
  }
  return k;
}

// Item `i` of the tuple key (borrowed); item 0 under weak_self stands for
// the weak reference to it.
PyObject* KeyItem(const Wrapper* w, const CallKey& k, Py_ssize_t i) {
  if (i < k.nargs) return k.args[i];
  i -= k.nargs;
  if (k.nkw > 0) {
    if (i == 0) return w->kwd_mark;
    if (i <= 2 * k.nkw) {
      const Py_ssize_t j = (i - 1) / 2;
      return (i - 1) % 2 == 0 ? PyTuple_GET_ITEM(k.kwnames, j) : k.args[k.nargs + j];
    }
    i -= 2 * k.nkw + 1;
  }
  return reinterpret_cast<PyObject*>(Py_TYPE(k.args[i]));  // typed
}

// The key's hash, each item's __hash__ called exactly once (a tuple's hash
// combination). -1 with an exception set (an unhashable argument).
Py_hash_t HashKey(const Wrapper* w, const CallKey& k) {
  if (k.bare) return PyObject_Hash(k.args[0]);
  constexpr uint64_t kPrime1 = 11400714785074694791ULL;
  constexpr uint64_t kPrime2 = 14029467366897019727ULL;
  constexpr uint64_t kPrime5 = 2870177450012600261ULL;
  uint64_t acc = kPrime5;
  for (Py_ssize_t i = 0; i < k.size; ++i) {
    PyObject* item = KeyItem(w, k, i);
    const Py_hash_t lane = item == w->kwd_mark ? w->kwd_mark_hash : PyObject_Hash(item);
    if (lane == -1) return -1;
    acc += static_cast<uint64_t>(lane) * kPrime2;
    acc = (acc << 31) | (acc >> 33);
    acc *= kPrime1;
  }
  acc += static_cast<uint64_t>(k.size) ^ (kPrime5 ^ 3527539ULL);
  const Py_hash_t hash = static_cast<Py_hash_t>(acc);
  return hash == -1 ? 1546275796 : hash;
}

// Whether the stored key of `link` equals the call's key, exactly as a dict
// compares functools' keys (identity first, then ==, item by item as a
// tuple does). 1, 0, or -1 with an exception set. May run Python code.
int KeyEquals(const Wrapper* w, const Link* link, const CallKey& k) {
  PyObject* stored = link->key;
  if (k.bare) {
    if (stored == k.args[0]) return 1;
    if (PyTuple_CheckExact(stored)) return 0;  // A tuple never equals an int or str.
    return PyObject_RichCompareBool(stored, k.args[0], Py_EQ);
  }
  if (!PyTuple_CheckExact(stored)) return 0;
  const Py_ssize_t n = PyTuple_GET_SIZE(stored);
  for (Py_ssize_t i = 0; i < n && i < k.size; ++i) {
    PyObject* mine = PyTuple_GET_ITEM(stored, i);
    PyObject* theirs = KeyItem(w, k, i);
    int eq;
    if (i == 0 && w->weak_self) {
      Ref referent = Steal(WeakrefGetRef(mine));
      if (!referent) return 0;  // A dead instance's entry (about to go).
      eq = referent.get() == theirs ? 1 : PyObject_RichCompareBool(referent.get(), theirs, Py_EQ);
    } else {
      eq = mine == theirs ? 1 : PyObject_RichCompareBool(mine, theirs, Py_EQ);
    }
    if (eq <= 0) return eq;
  }
  return n == k.size ? 1 : 0;
}

// Looks the call's key up: 1 with *found set (borrowed, in the table), 0
// when absent, -1 with an exception set. An __eq__ that changes the table
// makes the lookup start again, as a dict's does.
int Find(Wrapper* w, Py_hash_t hash, const CallKey& k, Link** found) {
  if (w->slots == nullptr) return 0;
restart:
  size_t perturb = static_cast<size_t>(hash);
  size_t i = perturb & w->mask;
  for (;;) {
    Link* link = w->slots[i];
    if (link == nullptr) return 0;
    if (link != Dummy() && link->hash == hash) {
      if (k.bare && link->key == k.args[0]) {
        *found = link;
        return 1;
      }
      const uint64_t version = w->version;
      Py_INCREF(link);
      const int eq = KeyEquals(w, link, k);
      Py_DECREF(link);  // Frees it only if it left the table (version moved).
      if (eq < 0) return -1;
      if (w->version != version) goto restart;
      if (eq > 0) {
        *found = link;
        return 1;
      }
    }
    perturb >>= 5;
    i = (i * 5 + perturb + 1) & w->mask;
  }
}

// The key to store for a new entry (a new reference): the lone argument,
// or the tuple.
Ref StoredKey(const Wrapper* w, const CallKey& k) {
  if (k.bare) return Borrow(k.args[0]);
  Ref key = Steal(PyTuple_New(k.size));
  if (!key) return key;
  for (Py_ssize_t i = 0; i < k.size; ++i) {
    PyObject* item;
    if (i == 0 && w->weak_self) {
      item = PyWeakref_NewRef(k.args[0], nullptr);
      if (item == nullptr) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
          PyErr_Format(PyExc_TypeError,
                       "lru_cache(weak_self=True) cannot make a weak reference "
                       "to its first argument, a '%.200s' object; give the "
                       "class a __weakref__ slot, or use weak_self=False",
                       Py_TYPE(k.args[0])->tp_name);
        }
        return Ref();
      }
    } else {
      item = NewRef(KeyItem(w, k, i));
    }
    PyTuple_SET_ITEM(key.get(), i, item);
  }
  return key;
}

// A link to fill: the spare one, or a new one. Null with an exception set.
Link* NewLink(Wrapper* w) {
  if (w->spare != nullptr) return std::exchange(w->spare, nullptr);
  Link* link = PyObject_New(Link, w->link_type);  // A FullLink when HasExtra(w).
  if (link == nullptr) return nullptr;
  link->lru = ListNode{};
  link->key = nullptr;
  link->result = nullptr;
  link->hash = 0;
  if (HasExtra(w)) *Extra(link) = LinkExtra{ListNode{}, ListNode{}, nullptr, INFINITY};
  return link;
}

// After a miss: calls the function and stores its result, unless a
// recursive call (or another thread) stored one meanwhile, which is kept, as
// functools does. Every expired entry goes (ttl), then least recently used
// entries down to maxsize; they are released after the new entry is in.
PyObject* Miss(Wrapper* w, const CallKey& k, Py_hash_t hash, PyObject* const* args, size_t nargsf,
               PyObject* kwnames) {
  ++w->misses;
  Ref result = Steal(PyObject_Vectorcall(w->func, args, nargsf, kwnames));
  if (!result || w->func == nullptr) return result.Release();  // Or cleared meanwhile.
  double now = 0;
  if (w->ttl != INFINITY && Now(w, &now) < 0) return nullptr;
  // Everything the entry needs is made before the lookup that decides to
  // store it: from that lookup to the insertion no Python code runs.
  Ref key = StoredKey(w, k);
  if (!key) return nullptr;
  Ref owner;
  if (w->weak_self) {
    owner = GetPurger(w, args[0]);
    if (!owner) return nullptr;
  }
  Link* fresh = NewLink(w);
  if (fresh == nullptr) return nullptr;
  Ref link = Steal(reinterpret_cast<PyObject*>(fresh));
  fresh->key = key.Release();
  fresh->result = NewRef(result.get());
  fresh->hash = hash;
  if (HasExtra(w)) {
    Extra(fresh)->expires = w->ttl != INFINITY ? now + w->ttl : INFINITY;
    Extra(fresh)->owner = reinterpret_cast<Purger*>(owner.Release());
  }
  Link* again = nullptr;
  const int found = Find(w, hash, k, &again);
  if (found < 0) return nullptr;
  if (found > 0 || w->func == nullptr) return result.Release();
  Link* gone_one = nullptr;  // Usually one entry leaves per insertion.
  std::vector<Link*> gone_more;
  auto take_out = [&](Link* old) {
    Detach(w, old);
    if (gone_one == nullptr) {
      gone_one = old;
    } else {
      gone_more.push_back(old);
    }
  };
  if (w->ttl != INFINITY) {
    // One ttl for all entries: insertion order is expiry order.
    while (!ListEmpty(&w->ages) && Extra(LinkOfAge(w->ages.prev))->expires <= now) {
      ++w->expirations;
      take_out(LinkOfAge(w->ages.prev));
    }
  }
  if (w->maxsize > 0) {
    while (w->used >= w->maxsize && !ListEmpty(&w->lru)) {
      ++w->evictions;
      take_out(LinkOfLru(w->lru.prev));
    }
  }
  const int reserved = Reserve(w);
  if (reserved == 0) TableInsert(w, reinterpret_cast<Link*>(link.Release()));
  if (gone_one != nullptr) Release(w, gone_one);
  for (Link* old : gone_more) Release(w, old);
  if (reserved < 0) return nullptr;
  return result.Release();
}

PyObject* WrapperVectorcall(PyObject* self, PyObject* const* args, size_t nargsf,
                            PyObject* kwnames) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  if (w->func == nullptr) {
    PyErr_SetString(PyExc_ReferenceError, "this lru_cache wrapper was cleared");
    return nullptr;
  }
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (w->maxsize == 0) {
    ++w->misses;
    return PyObject_Vectorcall(w->func, args, nargsf, kwnames);
  }
  if (w->weak_self && nargs == 0) {
    PyErr_SetString(PyExc_TypeError,
                    "lru_cache(weak_self=True) needs the instance (self) as "
                    "the first positional argument");
    return nullptr;
  }
  const CallKey k = DescribeKey(w, args, nargs, kwnames);
  const Py_hash_t hash = HashKey(w, k);
  if (hash == -1) return nullptr;
  double now = 0;
  if (w->ttl != INFINITY && Now(w, &now) < 0) return nullptr;
  Link* link = nullptr;
  const int found = Find(w, hash, k, &link);
  if (found < 0) return nullptr;
  if (found > 0) {
    if (w->ttl == INFINITY || now < Extra(link)->expires) {
      if (w->maxsize > 0) MoveToFront(w, link);
      ++w->hits;
      return NewRef(link->result);
    }
    ++w->expirations;
    RemoveLink(w, link);
  }
  return Miss(w, k, hash, args, nargsf, kwnames);
}

PyObject* WrapperCacheInfo(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  if (w->maxsize < 0) {
    return PyObject_CallFunction(w->cache_info_type, "nnOn", w->hits, w->misses, Py_None, w->used);
  }
  return PyObject_CallFunction(w->cache_info_type, "nnnn", w->hits, w->misses, w->maxsize, w->used);
}

PyObject* WrapperCacheClear(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  w->hits = w->misses = w->evictions = w->expirations = 0;
  ClearLinks(w);
  Py_RETURN_NONE;
}

// functools' {'maxsize', 'typed'}, plus 'ttl' when a ttl is set and
// 'weak_self' when it is on.
PyObject* WrapperCacheParameters(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  Ref params = Steal(Py_BuildValue("{sOsO}", "maxsize", w->maxsize_obj, "typed", w->typed_obj));
  if (!params) return nullptr;
  if (w->ttl != INFINITY) {
    Ref ttl = Steal(PyFloat_FromDouble(w->ttl));
    if (!ttl || PyDict_SetItemString(params.get(), "ttl", ttl.get()) < 0) return nullptr;
  }
  if (w->weak_self && PyDict_SetItemString(params.get(), "weak_self", Py_True) < 0) {
    return nullptr;
  }
  return params.Release();
}

PyObject* WrapperCacheStats(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  return Py_BuildValue("{snsnsnsnsn}", "hits", w->hits, "misses", w->misses, "evictions",
                       w->evictions, "expirations", w->expirations, "currsize", w->used);
}

PyObject* WrapperReduce(PyObject* self, PyObject* /*unused*/) {
  return PyObject_GetAttrString(self, "__qualname__");
}

PyObject* WrapperReturnSelf(PyObject* self, PyObject* /*args*/) { return NewRef(self); }

PyObject* WrapperDescrGet(PyObject* self, PyObject* obj, PyObject* /*type*/) {
  if (obj == nullptr || obj == Py_None) return NewRef(self);
  return PyMethod_New(self, obj);
}

int WrapperTraverse(PyObject* self, visitproc visit, void* arg) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  Py_VISIT(Py_TYPE(self));
  // Links are not GC objects; their references are visited on their
  // behalf, once per link the table holds (all of them are on the list).
  for (ListNode* node = w->lru.next; node != nullptr && node != &w->lru; node = node->next) {
    Link* link = LinkOfLru(node);
    Py_VISIT(link->key);
    Py_VISIT(link->result);
    if (HasExtra(w)) Py_VISIT(reinterpret_cast<PyObject*>(Extra(link)->owner));
  }
  Py_VISIT(w->func);
  Py_VISIT(w->owners);
  Py_VISIT(w->cache_info_type);
  Py_VISIT(w->maxsize_obj);
  Py_VISIT(w->typed_obj);
  Py_VISIT(w->timer);
  Py_VISIT(w->dict);
  Py_VISIT(reinterpret_cast<PyObject*>(w->link_type));
  Py_VISIT(reinterpret_cast<PyObject*>(w->purger_type));
  return 0;
}

// Keeps the (emptied) table and the types, so a call that arrives after a
// clear fails cleanly instead of crashing.
int WrapperClear(PyObject* self) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  Py_CLEAR(w->func);  // First: no link is kept as a spare from here on.
  ClearLinks(w);
  Py_CLEAR(w->timer);
  Py_CLEAR(w->dict);
  return 0;
}

void WrapperDealloc(PyObject* self) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (w->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  Py_CLEAR(w->func);  // First: no link is kept as a spare from here on.
  ClearLinks(w);
  PyMem_Free(w->slots);
  w->slots = nullptr;
  Py_CLEAR(w->owners);
  Py_CLEAR(w->kwd_mark);
  Py_CLEAR(w->cache_info_type);
  Py_CLEAR(w->maxsize_obj);
  Py_CLEAR(w->typed_obj);
  Py_CLEAR(w->timer);
  Py_CLEAR(w->dict);
  Py_CLEAR(w->link_type);
  Py_CLEAR(w->purger_type);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kWrapperMethods[] = {
    {"cache_info", WrapperCacheInfo, METH_NOARGS,
     "Report cache statistics: CacheInfo(hits, misses, maxsize, currsize)."},
    {"cache_clear", WrapperCacheClear, METH_NOARGS, "Clear the cache and its statistics."},
    {"cache_parameters", WrapperCacheParameters, METH_NOARGS,
     "The parameters: {'maxsize', 'typed'} as functools gives them, plus\n"
     "'ttl' when a ttl is set and 'weak_self' when it is on."},
    {"cache_stats", WrapperCacheStats, METH_NOARGS,
     "hits, misses, evictions, expirations and currsize, as a dict."},
    {"__reduce__", WrapperReduce, METH_NOARGS, nullptr},
    {"__copy__", WrapperReturnSelf, METH_VARARGS, nullptr},
    {"__deepcopy__", WrapperReturnSelf, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef kWrapperMembers[] = {
    {"__dictoffset__", LG_T_PYSSIZET, offsetof(Wrapper, dict), LG_READONLY, nullptr},
    {"__weaklistoffset__", LG_T_PYSSIZET, offsetof(Wrapper, weakreflist), LG_READONLY, nullptr},
    {"__vectorcalloffset__", LG_T_PYSSIZET, offsetof(Wrapper, vectorcall), LG_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef kWrapperGetSet[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyObject* WrapperCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  return PyVectorcall_Call(self, args, kwargs);
}

PyType_Slot kWrapperSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(WrapperDealloc)},
    {Py_tp_call, reinterpret_cast<void*>(WrapperCall)},
    {Py_tp_traverse, reinterpret_cast<void*>(WrapperTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(WrapperClear)},
    {Py_tp_methods, kWrapperMethods},
    {Py_tp_members, kWrapperMembers},
    {Py_tp_getset, kWrapperGetSet},
    {Py_tp_descr_get, reinterpret_cast<void*>(WrapperDescrGet)},
    {Py_tp_doc, const_cast<char*>("A function wrapped by leakguard.lru_cache: a bounded "
                                  "LRU cache of its results.")},
    {0, nullptr},
};

PyType_Spec kWrapperSpec = {
    "leakguard._lru_cache_wrapper",
    sizeof(Wrapper),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
        Py_TPFLAGS_METHOD_DESCRIPTOR | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kWrapperSlots,
};

struct Params {
  PyObject* maxsize_obj = nullptr;  // Borrowed; as cache_parameters() reports it.
  bool typed = false;
  PyObject* typed_obj = Py_False;  // Borrowed.
  double ttl = INFINITY;
  bool weak_self = false;
  PyObject* timer = nullptr;  // Borrowed.
};

PyObject* MakeWrapper(ModuleState* state, PyObject* func, const Params& p) {
  if (!PyCallable_Check(func)) {
    PyErr_SetString(PyExc_TypeError, "the first argument must be callable");
    return nullptr;
  }
  // As functools: a maxsize too big for a C size fails here, not in lru_cache().
  Py_ssize_t maxsize = -1;
  if (p.maxsize_obj != Py_None) {
    maxsize = PyNumber_AsSsize_t(p.maxsize_obj, PyExc_OverflowError);
    if (maxsize == -1 && PyErr_Occurred()) return nullptr;
  }
  Wrapper* w = PyObject_GC_New(Wrapper, state->lru_wrapper_type);
  if (w == nullptr) return nullptr;
  w->vectorcall = WrapperVectorcall;
  w->func = NewRef(func);
  w->owners = p.weak_self ? PyDict_New() : nullptr;
  w->kwd_mark = NewRef(state->kwd_mark);
  w->kwd_mark_hash = PyObject_Hash(state->kwd_mark);  // object's: never fails
  w->cache_info_type = NewRef(state->cache_info_type);
  w->maxsize_obj = NewRef(p.maxsize_obj);
  w->typed_obj = NewRef(p.typed_obj);
  w->timer = p.timer != nullptr ? NewRef(p.timer) : nullptr;
  w->dict = nullptr;
  w->weakreflist = nullptr;
  // Plain links unless entries expire or belong to an instance.
  PyTypeObject* link_type =
      p.ttl != INFINITY || p.weak_self ? state->lru_full_link_type : state->lru_link_type;
  w->link_type = reinterpret_cast<PyTypeObject*>(NewRef(reinterpret_cast<PyObject*>(link_type)));
  w->purger_type =
      reinterpret_cast<PyTypeObject*>(NewRef(reinterpret_cast<PyObject*>(state->lru_purger_type)));
  w->slots = nullptr;
  w->mask = 0;
  w->used = 0;
  w->filled = 0;
  w->version = 0;
  w->spare = nullptr;
  w->maxsize = maxsize;
  w->ttl = p.ttl;
  w->typed = p.typed;
  w->weak_self = p.weak_self;
  ListInit(&w->lru);
  ListInit(&w->ages);
  ListInit(&w->purgers);
  w->hits = w->misses = w->evictions = w->expirations = 0;
  PyObject_GC_Track(w);
  Ref wrapper = Steal(reinterpret_cast<PyObject*>(w));
  if (p.weak_self && w->owners == nullptr) return nullptr;
  Ref updated =
      Steal(PyObject_CallFunctionObjArgs(state->update_wrapper, wrapper.get(), func, nullptr));
  if (!updated) return nullptr;
  return wrapper.Release();
}

// ------------------------------------------------------------- decorator

PyObject* DecoratorCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  PyObject* func = nullptr;
  static char* kwlist[] = {const_cast<char*>("user_function"), nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:lru_cache", kwlist, &func)) {
    return nullptr;
  }
  Params p;
  p.maxsize_obj = d->maxsize_obj;
  p.typed = d->typed;
  p.typed_obj = d->typed_obj;
  p.ttl = d->ttl;
  p.weak_self = d->weak_self;
  p.timer = d->timer;
  return MakeWrapper(StateOfType(Py_TYPE(self)), func, p);
}

PyObject* DecoratorRepr(PyObject* self) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  Ref ttl = d->ttl == INFINITY ? Borrow(Py_None) : Steal(PyFloat_FromDouble(d->ttl));
  if (!ttl) return nullptr;
  return PyUnicode_FromFormat(
      "<leakguard.lru_cache decorator maxsize=%R typed=%R ttl=%R weak_self=%s>", d->maxsize_obj,
      d->typed_obj, ttl.get(), d->weak_self ? "True" : "False");
}

int DecoratorTraverse(PyObject* self, visitproc visit, void* arg) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(d->maxsize_obj);
  Py_VISIT(d->typed_obj);
  Py_VISIT(d->timer);
  return 0;
}

int DecoratorClear(PyObject* self) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  Py_CLEAR(d->timer);
  return 0;
}

void DecoratorDealloc(PyObject* self) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  Py_CLEAR(d->maxsize_obj);
  Py_CLEAR(d->typed_obj);
  Py_CLEAR(d->timer);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kDecoratorSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(DecoratorDealloc)},
    {Py_tp_call, reinterpret_cast<void*>(DecoratorCall)},
    {Py_tp_repr, reinterpret_cast<void*>(DecoratorRepr)},
    {Py_tp_traverse, reinterpret_cast<void*>(DecoratorTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(DecoratorClear)},
    {0, nullptr},
};

PyType_Spec kDecoratorSpec = {
    "leakguard._lru_cache_decorator",
    sizeof(Decorator),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kDecoratorSlots,
};

// Parses ttl: None, or a positive number of seconds (inf: none).
int ParseTtl(PyObject* obj, double* ttl) {
  *ttl = INFINITY;
  if (obj == nullptr || obj == Py_None) return 0;
  if (PyBool_Check(obj) || !(PyLong_Check(obj) || PyFloat_Check(obj))) {
    PyErr_Format(PyExc_TypeError, "ttl must be None or a number of seconds, not %.200s",
                 Py_TYPE(obj)->tp_name);
    return -1;
  }
  const double value = PyFloat_AsDouble(obj);
  if (value == -1.0 && PyErr_Occurred()) return -1;
  if (std::isnan(value) || value <= 0) {
    PyErr_Format(PyExc_ValueError, "ttl must be a positive number of seconds (or None), got %R",
                 obj);
    return -1;
  }
  *ttl = value;
  return 0;
}

const char kLruCacheDoc[] =
    "lru_cache(maxsize=128, typed=False, ttl=None, *, weak_self=False, "
    "timer=None)\n--\n\n"
    "Least-recently-used cache decorator, a drop-in for functools.lru_cache\n"
    "(same call forms, keys, cache_info(), cache_clear(), cache_parameters(),\n"
    "__wrapped__), implemented in C.\n\n"
    "ttl: entries expire this many seconds after they were computed.\n"
    "weak_self: key the first argument (self) by a weak reference, so a\n"
    "cached method does not keep its instances alive; an instance's entries\n"
    "go when it does.\n"
    "timer: the clock for ttl, a callable returning seconds (default: the\n"
    "monotonic clock).";

PyObject* LruCacheFunction(PyObject* module, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {const_cast<char*>("maxsize"), const_cast<char*>("typed"),
                           const_cast<char*>("ttl"),     const_cast<char*>("weak_self"),
                           const_cast<char*>("timer"),   nullptr};
  PyObject* maxsize_obj = nullptr;
  PyObject* typed_obj = Py_False;
  PyObject* ttl_obj = Py_None;
  PyObject* weak_self_obj = Py_False;
  PyObject* timer = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO$OO:lru_cache", kwlist, &maxsize_obj,
                                   &typed_obj, &ttl_obj, &weak_self_obj, &timer)) {
    return nullptr;
  }
  ModuleState* state = GetState(module);
  Params p;
  p.typed_obj = typed_obj;
  const int typed = PyObject_IsTrue(typed_obj);
  const int weak_self = PyObject_IsTrue(weak_self_obj);
  if (typed < 0 || weak_self < 0) return nullptr;
  p.typed = typed != 0;
  p.weak_self = weak_self != 0;
  if (ParseTtl(ttl_obj, &p.ttl) < 0) return nullptr;
  if (timer != Py_None) {
    if (!PyCallable_Check(timer)) {
      PyErr_Format(PyExc_TypeError, "timer must be callable, not %.200s", Py_TYPE(timer)->tp_name);
      return nullptr;
    }
    if (p.ttl == INFINITY) {
      PyErr_SetString(PyExc_ValueError, "timer is only used with ttl; set ttl");
      return nullptr;
    }
    p.timer = timer;
  }
  PyObject* func = nullptr;
  Ref maxsize_ref;  // What cache_parameters() reports, as functools does.
  if (maxsize_obj == nullptr) {
    maxsize_ref = Steal(PyLong_FromLong(128));
  } else if (PyLong_Check(maxsize_obj)) {
    // functools: `if maxsize < 0: maxsize = 0`, before any conversion, so
    // any negative int (-10**30 too) means no caching.
    Ref zero = Steal(PyLong_FromLong(0));
    if (!zero) return nullptr;
    const int negative = PyObject_RichCompareBool(maxsize_obj, zero.get(), Py_LT);
    if (negative < 0) return nullptr;
    if (negative) {
      maxsize_ref = std::move(zero);
    } else {
      maxsize_ref = Borrow(maxsize_obj);  // Converted when a function is wrapped.
    }
  } else if (PyCallable_Check(maxsize_obj) && PyBool_Check(typed_obj)) {
    func = maxsize_obj;  // @lru_cache without parentheses.
    maxsize_ref = Steal(PyLong_FromLong(128));
  } else if (maxsize_obj == Py_None) {
    maxsize_ref = Borrow(Py_None);
  } else {
    PyErr_SetString(PyExc_TypeError,
                    "Expected first argument to be an integer, a callable, "
                    "or None");
    return nullptr;
  }
  if (!maxsize_ref) return nullptr;
  p.maxsize_obj = maxsize_ref.get();
  if (func != nullptr) return MakeWrapper(state, func, p);
  Decorator* d = PyObject_GC_New(Decorator, state->lru_decorator_type);
  if (d == nullptr) return nullptr;
  d->maxsize_obj = NewRef(p.maxsize_obj);
  d->typed_obj = NewRef(p.typed_obj);
  d->timer = p.timer != nullptr ? NewRef(p.timer) : nullptr;
  d->ttl = p.ttl;
  d->typed = p.typed;
  d->weak_self = p.weak_self;
  PyObject_GC_Track(d);
  return reinterpret_cast<PyObject*>(d);
}

}  // namespace

PyMethodDef kLruCacheFunctions[] = {
    {"lru_cache", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(LruCacheFunction)),
     METH_VARARGS | METH_KEYWORDS, kLruCacheDoc},
    {nullptr, nullptr, 0, nullptr},
};

int ExecLruCache(PyObject* module, ModuleState* state) {
  state->lru_link_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kLinkSpec));
  state->lru_full_link_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kFullLinkSpec));
  state->lru_purger_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kPurgerSpec));
  state->lru_wrapper_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kWrapperSpec));
  state->lru_decorator_type =
      reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kDecoratorSpec));
  if (state->lru_link_type == nullptr || state->lru_full_link_type == nullptr ||
      state->lru_purger_type == nullptr || state->lru_wrapper_type == nullptr ||
      state->lru_decorator_type == nullptr) {
    return -1;
  }
  state->kwd_mark = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
  if (state->kwd_mark == nullptr) return -1;
  Ref functools = Steal(PyImport_ImportModule("functools"));
  if (!functools) return -1;
  state->update_wrapper = PyObject_GetAttrString(functools.get(), "update_wrapper");
  // functools' own CacheInfo, so cache_info() results are interchangeable.
  state->cache_info_type = PyObject_GetAttrString(functools.get(), "_CacheInfo");
  if (state->update_wrapper == nullptr || state->cache_info_type == nullptr) {
    return -1;
  }
  return 0;
}

}  // namespace leakguard::python::internal
