// leakguard.lru_cache: a C implementation of functools.lru_cache with the
// same call forms, key equality and introspection, plus `ttl` (entries
// expire a fixed time after they were computed) and `weak_self` (a cached
// method does not keep its instances alive).
//
// Layout. The cache is a dict mapping each key to a Link; the links are also
// threaded on a recency list (front: most recent). Both the dict and the
// list own a reference to each link, so a link the dict lost to a reentrant
// insertion (an "orphan") stays valid until the list lets it go. Every
// removal takes the link out of the list and out of the dict (only if the
// dict still maps its key to that very link) before dropping references,
// so a `__del__` or `__eq__` run by a decref sees a consistent cache. That
// is all the thread-safety the GIL needs: Python code, and so a thread
// switch, runs only inside calls into Python (the function, __hash__,
// __eq__, a finalizer, a timer), never in the middle of our bookkeeping.
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
#include <ctime>
#include <vector>

#include "leakguard/python/python.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Wrapper;
struct Purger;

// One cached call.
struct Link {
  PyObject_HEAD
  ListNode lru;       // In the wrapper's recency list, which owns a reference.
  ListNode by_age;    // In the wrapper's insertion-order list (ttl); borrowed.
  ListNode by_owner;  // In its Purger's list (weak_self); borrowed.
  Purger* owner;      // Strong, or null.
  PyObject* key;
  PyObject* result;
  double expires;  // On the wrapper's clock; +inf: never.
};

// Removes an instance's entries when the instance dies (weak_self).
struct Purger {
  PyObject_HEAD
  Wrapper* wrapper;     // Borrowed; null once the wrapper lets go of it.
  PyObject* id_key;     // id(instance): the key in wrapper->owners.
  PyObject* cbref;      // Weak reference to the instance; callback: this.
  ListNode links;       // The instance's links (borrowed).
  ListNode in_wrapper;  // In wrapper->purgers (borrowed).
};

struct Wrapper {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject* func;
  PyObject* cache;   // dict: key -> Link
  PyObject* owners;  // dict: id(instance) -> Purger, weak_self only
  PyObject* kwd_mark;
  PyObject* cache_info_type;
  PyObject* typed_obj;  // as given, for cache_parameters()
  PyObject* timer;      // callable returning seconds, or null
  PyObject* dict;
  PyObject* weakreflist;
  PyTypeObject* link_type;
  PyTypeObject* purger_type;
  Py_ssize_t maxsize;  // -1: unbounded; 0: no caching
  double ttl;          // +inf: none
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
  PyObject_HEAD
  PyObject* typed_obj;
  PyObject* timer;
  Py_ssize_t maxsize;
  double ttl;
  bool typed;
  bool weak_self;
};

Link* LinkOfLru(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) -
                                 offsetof(Link, lru));
}
Link* LinkOfAge(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) -
                                 offsetof(Link, by_age));
}
Link* LinkOfOwner(ListNode* node) {
  return reinterpret_cast<Link*>(reinterpret_cast<char*>(node) -
                                 offsetof(Link, by_owner));
}
Purger* PurgerOfNode(ListNode* node) {
  return reinterpret_cast<Purger*>(reinterpret_cast<char*>(node) -
                                   offsetof(Purger, in_wrapper));
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
  PyObject* value = PyObject_CallNoArgs(w->timer);
  if (value == nullptr) return -1;
  const double seconds = PyFloat_AsDouble(value);
  Py_DECREF(value);
  if (seconds == -1.0 && PyErr_Occurred()) return -1;
  *now = seconds;
  return 0;
}

// ------------------------------------------------------------------ links

void LinkDealloc(PyObject* self) {
  Link* link = reinterpret_cast<Link*>(self);
  PyTypeObject* type = Py_TYPE(self);
  if (ListLinked(&link->by_owner)) ListUnlink(&link->by_owner);
  if (ListLinked(&link->by_age)) ListUnlink(&link->by_age);
  Py_CLEAR(link->owner);
  Py_CLEAR(link->key);
  Py_CLEAR(link->result);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kLinkSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(LinkDealloc)},
    {0, nullptr},
};

PyType_Spec kLinkSpec = {
    "leakguard._lru_link", sizeof(Link), 0,
    Py_TPFLAGS_DEFAULT | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kLinkSlots,
};

// ---------------------------------------------------------------- purgers

void DropPurger(Wrapper* w, Purger* p);

// Takes `link` out of the cache: out of the recency list, out of its
// purger's list, out of the dict if the dict still maps its key to it. The
// references are dropped last, when the cache is consistent again. Returns
// -1 with an exception set if the dict lookup failed (the link is gone from
// the list all the same). REQUIRES: no exception pending.
int RemoveLink(Wrapper* w, Link* link) {
  Py_INCREF(link);  // Alive until the end, whatever the decrefs below run.
  const bool listed = ListLinked(&link->lru);
  if (listed) ListUnlink(&link->lru);
  if (ListLinked(&link->by_age)) ListUnlink(&link->by_age);
  Purger* owner = link->owner;  // Its reference is now ours.
  link->owner = nullptr;
  if (ListLinked(&link->by_owner)) ListUnlink(&link->by_owner);
  int rc = 0;
  PyObject* current = PyDict_GetItemWithError(w->cache, link->key);
  if (current == reinterpret_cast<PyObject*>(link)) {
    rc = PyDict_DelItem(w->cache, link->key);
  } else if (current == nullptr && PyErr_Occurred()) {
    rc = -1;
  }
  PyObject* error = rc < 0 ? compat::FetchException() : nullptr;
  if (owner != nullptr) {
    if (ListEmpty(&owner->links) && owner->wrapper == w) DropPurger(w, owner);
    Py_DECREF(owner);
  }
  if (listed) Py_DECREF(link);  // The list's reference.
  Py_DECREF(link);              // May free it: arbitrary code may run.
  if (error != nullptr) compat::RestoreException(error);
  return rc;
}

// Unregisters `p` from `w` (its instance has no entries left, or died).
void DropPurger(Wrapper* w, Purger* p) {
  Py_INCREF(p);
  if (p->wrapper != nullptr) {
    ListUnlink(&p->in_wrapper);
    p->wrapper = nullptr;
  }
  PyObject* cbref = p->cbref;  // Breaks the purger <-> weakref cycle.
  p->cbref = nullptr;
  if (w->owners != nullptr && p->id_key != nullptr) {
    // int keys: the lookup runs no Python code.
    PyObject* current = PyDict_GetItemWithError(w->owners, p->id_key);
    if (current == reinterpret_cast<PyObject*>(p)) {
      if (PyDict_DelItem(w->owners, p->id_key) < 0) PyErr_Clear();
    } else if (current == nullptr) {
      PyErr_Clear();
    }
  }
  Py_XDECREF(cbref);
  Py_DECREF(p);
}

// Removes every entry of `p`'s instance.
void PurgeEntries(Wrapper* w, Purger* p) {
  while (!ListEmpty(&p->links)) {
    Link* link = LinkOfOwner(p->links.next);
    if (RemoveLink(w, link) < 0) {
      PyErr_WriteUnraisable(reinterpret_cast<PyObject*>(w));
    }
  }
}

// Weak-reference callback: the instance died.
PyObject* PurgerCall(PyObject* self, PyObject* /*args*/, PyObject* /*kwargs*/) {
  Purger* p = reinterpret_cast<Purger*>(self);
  Wrapper* w = p->wrapper;
  if (w == nullptr) Py_RETURN_NONE;
  Py_INCREF(w);
  Py_INCREF(p);
  PurgeEntries(w, p);
  if (p->wrapper == w) DropPurger(w, p);
  Py_DECREF(p);
  Py_DECREF(w);
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
    "leakguard._lru_purger", sizeof(Purger), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE |
        Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kPurgerSlots,
};

// The purger of `instance` (a new reference), made on first use.
Purger* GetPurger(Wrapper* w, PyObject* instance) {
  PyObject* id_key = PyLong_FromVoidPtr(instance);
  if (id_key == nullptr) return nullptr;
  PyObject* found = PyDict_GetItemWithError(w->owners, id_key);
  if (found != nullptr) {
    Purger* p = reinterpret_cast<Purger*>(found);
    PyObject* referent = p->cbref != nullptr ? WeakrefGetRef(p->cbref) : nullptr;
    Py_XDECREF(referent);
    if (referent == instance) {
      Py_DECREF(id_key);
      Py_INCREF(p);
      return p;
    }
    // A dead instance whose callback never ran, and a new one at its
    // address: its entries are stale.
    Py_INCREF(p);
    PurgeEntries(w, p);
    if (p->wrapper == w) DropPurger(w, p);
    Py_DECREF(p);
  } else if (PyErr_Occurred()) {
    Py_DECREF(id_key);
    return nullptr;
  }
  Purger* p = PyObject_GC_New(Purger, w->purger_type);
  if (p == nullptr) {
    Py_DECREF(id_key);
    return nullptr;
  }
  p->wrapper = nullptr;
  p->id_key = id_key;
  p->cbref = nullptr;
  ListInit(&p->links);
  p->in_wrapper = ListNode{};
  PyObject_GC_Track(p);
  p->cbref = PyWeakref_NewRef(instance, reinterpret_cast<PyObject*>(p));
  if (p->cbref == nullptr ||
      PyDict_SetItem(w->owners, id_key, reinterpret_cast<PyObject*>(p)) < 0) {
    Py_DECREF(p);
    return nullptr;
  }
  p->wrapper = w;
  ListPushFront(&w->purgers, &p->in_wrapper);
  return p;
}

// --------------------------------------------------------------- wrapper

// Empties the cache: the list and the purgers are detached first, the dicts
// emptied, and only then are the references dropped, so finalizers that run
// see an empty, consistent cache.
void ClearLinks(Wrapper* w) {
  std::vector<PyObject*> drop;
  while (!ListEmpty(&w->lru)) {
    Link* link = LinkOfLru(w->lru.next);
    ListUnlink(&link->lru);
    if (ListLinked(&link->by_owner)) ListUnlink(&link->by_owner);
    if (ListLinked(&link->by_age)) ListUnlink(&link->by_age);
    if (link->owner != nullptr) {
      drop.push_back(reinterpret_cast<PyObject*>(link->owner));
      link->owner = nullptr;
    }
    drop.push_back(reinterpret_cast<PyObject*>(link));  // The list's ref.
  }
  while (!ListEmpty(&w->purgers)) {
    Purger* p = PurgerOfNode(w->purgers.next);
    ListUnlink(&p->in_wrapper);
    p->wrapper = nullptr;
    if (p->cbref != nullptr) {
      drop.push_back(p->cbref);
      p->cbref = nullptr;
    }
  }
  if (w->cache != nullptr) PyDict_Clear(w->cache);
  if (w->owners != nullptr) PyDict_Clear(w->owners);
  PyObject* error = PyErr_Occurred() ? compat::FetchException() : nullptr;
  for (PyObject* obj : drop) Py_DECREF(obj);
  if (error != nullptr) compat::RestoreException(error);
}

void MoveToFront(Wrapper* w, Link* link) {
  if (ListLinked(&link->lru)) {
    if (w->lru.next == &link->lru) return;
    ListUnlink(&link->lru);
  } else {
    Py_INCREF(link);  // A dict-only link joins the list again.
  }
  ListPushFront(&w->lru, &link->lru);
}

// Builds the key exactly as functools does: a lone int/str argument is its
// own key unless typed; otherwise a tuple of the positional arguments, then
// a marker and the keyword names and values in call order, then (typed)
// the argument types. weak_self keys the first argument by a weak
// reference. Returns a new reference, or null with an exception set.
PyObject* MakeKey(Wrapper* w, PyObject* const* args, Py_ssize_t nargs,
                  PyObject* kwnames) {
  const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  if (!w->typed && !w->weak_self && nkw == 0) {
    if (nargs == 1 &&
        (PyUnicode_CheckExact(args[0]) || PyLong_CheckExact(args[0]))) {
      return NewRef(args[0]);
    }
  }
  Py_ssize_t size = nargs;
  if (nkw > 0) size += 2 * nkw + 1;
  if (w->typed) size += nargs + nkw;
  PyObject* key = PyTuple_New(size);
  if (key == nullptr) return nullptr;
  Py_ssize_t pos = 0;
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* item;
    if (i == 0 && w->weak_self) {
      item = PyWeakref_NewRef(args[0], nullptr);
      if (item == nullptr) {
        Py_DECREF(key);
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
          PyErr_Format(PyExc_TypeError,
                       "lru_cache(weak_self=True) cannot make a weak reference "
                       "to its first argument, a '%.200s' object; give the "
                       "class a __weakref__ slot, or use weak_self=False",
                       Py_TYPE(args[0])->tp_name);
        }
        return nullptr;
      }
    } else {
      item = NewRef(args[i]);
    }
    PyTuple_SET_ITEM(key, pos++, item);
  }
  if (nkw > 0) {
    PyTuple_SET_ITEM(key, pos++, NewRef(w->kwd_mark));
    for (Py_ssize_t j = 0; j < nkw; ++j) {
      PyTuple_SET_ITEM(key, pos++, NewRef(PyTuple_GET_ITEM(kwnames, j)));
      PyTuple_SET_ITEM(key, pos++, NewRef(args[nargs + j]));
    }
  }
  if (w->typed) {
    for (Py_ssize_t i = 0; i < nargs + nkw; ++i) {
      PyTuple_SET_ITEM(key, pos++,
                       NewRef(reinterpret_cast<PyObject*>(Py_TYPE(args[i]))));
    }
  }
  return key;
}

// Stores `result` under `key` after a miss: drops every expired entry
// (oldest first, as cachetools.TTLCache does), evicts least recently used
// entries down to maxsize, then links and inserts the new entry.
int Insert(Wrapper* w, PyObject* key, PyObject* result, PyObject* instance) {
  double expires = INFINITY;
  if (w->ttl != INFINITY) {
    double now = 0;
    if (Now(w, &now) < 0) return -1;
    expires = now + w->ttl;
    // One ttl for all entries: insertion order is expiry order.
    while (!ListEmpty(&w->ages)) {
      Link* oldest = LinkOfAge(w->ages.prev);
      if (oldest->expires > now) break;
      ++w->expirations;
      if (RemoveLink(w, oldest) < 0) return -1;
    }
  }
  if (w->maxsize > 0) {
    while (PyDict_GET_SIZE(w->cache) >= w->maxsize && !ListEmpty(&w->lru)) {
      ++w->evictions;
      if (RemoveLink(w, LinkOfLru(w->lru.prev)) < 0) return -1;
    }
  }
  Purger* owner = nullptr;
  if (w->weak_self) {
    owner = GetPurger(w, instance);
    if (owner == nullptr) return -1;
  }
  Link* link = PyObject_New(Link, w->link_type);
  if (link == nullptr) {
    Py_XDECREF(owner);
    return -1;
  }
  link->lru = ListNode{};
  link->by_age = ListNode{};
  link->by_owner = ListNode{};
  link->owner = owner;
  link->key = NewRef(key);
  link->result = NewRef(result);
  link->expires = expires;
  ListPushFront(&w->lru, &link->lru);  // The list takes the new reference.
  if (expires != INFINITY) ListPushFront(&w->ages, &link->by_age);
  if (owner != nullptr) ListPushFront(&owner->links, &link->by_owner);
  if (PyDict_SetItem(w->cache, key, reinterpret_cast<PyObject*>(link)) < 0) {
    PyObject* error = compat::FetchException();
    if (RemoveLink(w, link) < 0) PyErr_Clear();
    compat::RestoreException(error);
    return -1;
  }
  return 0;
}

PyObject* Miss(Wrapper* w, PyObject* key, PyObject* const* args,
               size_t nargsf, PyObject* kwnames) {
  ++w->misses;
  PyObject* result = PyObject_Vectorcall(w->func, args, nargsf, kwnames);
  if (result == nullptr) {
    Py_DECREF(key);
    return nullptr;
  }
  // A recursive call (or another thread) may have cached it meanwhile:
  // keep that entry, as functools does.
  PyObject* again = PyDict_GetItemWithError(w->cache, key);
  if (again == nullptr) {
    if (PyErr_Occurred() ||
        Insert(w, key, result, w->weak_self ? args[0] : nullptr) < 0) {
      Py_DECREF(key);
      Py_DECREF(result);
      return nullptr;
    }
  }
  Py_DECREF(key);
  return result;
}

PyObject* WrapperVectorcall(PyObject* self, PyObject* const* args,
                            size_t nargsf, PyObject* kwnames) {
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
  PyObject* key = MakeKey(w, args, nargs, kwnames);
  if (key == nullptr) return nullptr;
  PyObject* found = PyDict_GetItemWithError(w->cache, key);
  if (found == nullptr) {
    if (PyErr_Occurred()) {
      Py_DECREF(key);
      return nullptr;
    }
    return Miss(w, key, args, nargsf, kwnames);
  }
  Link* link = reinterpret_cast<Link*>(found);
  if (w->ttl != INFINITY) {
    Py_INCREF(link);  // A user timer may run Python code.
    double now = 0;
    if (Now(w, &now) < 0) {
      Py_DECREF(link);
      Py_DECREF(key);
      return nullptr;
    }
    if (now >= link->expires) {
      ++w->expirations;
      const int rc = RemoveLink(w, link);
      Py_DECREF(link);
      if (rc < 0) {
        Py_DECREF(key);
        return nullptr;
      }
      return Miss(w, key, args, nargsf, kwnames);
    }
    Py_DECREF(link);  // Still held by the dict: no Python code ran since.
  }
  if (w->maxsize > 0 || !ListLinked(&link->lru)) MoveToFront(w, link);
  ++w->hits;
  PyObject* result = NewRef(link->result);
  Py_DECREF(key);
  return result;
}

PyObject* WrapperCacheInfo(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  const Py_ssize_t currsize = w->cache ? PyDict_GET_SIZE(w->cache) : 0;
  if (w->maxsize < 0) {
    return PyObject_CallFunction(w->cache_info_type, "nnOn", w->hits,
                                 w->misses, Py_None, currsize);
  }
  return PyObject_CallFunction(w->cache_info_type, "nnnn", w->hits, w->misses,
                               w->maxsize, currsize);
}

PyObject* WrapperCacheClear(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  w->hits = w->misses = w->evictions = w->expirations = 0;
  ClearLinks(w);
  Py_RETURN_NONE;
}

PyObject* WrapperCacheParameters(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  PyObject* maxsize = w->maxsize < 0 ? NewRef(Py_None) : PyLong_FromSsize_t(w->maxsize);
  PyObject* ttl = w->ttl == INFINITY ? NewRef(Py_None) : PyFloat_FromDouble(w->ttl);
  PyObject* params = nullptr;
  if (maxsize != nullptr && ttl != nullptr) {
    params = Py_BuildValue("{sOsOsOsO}", "maxsize", maxsize, "typed",
                           w->typed_obj, "ttl", ttl, "weak_self",
                           w->weak_self ? Py_True : Py_False);
  }
  Py_XDECREF(maxsize);
  Py_XDECREF(ttl);
  return params;
}

PyObject* WrapperCacheStats(PyObject* self, PyObject* /*unused*/) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  return Py_BuildValue("{snsnsnsnsn}", "hits", w->hits, "misses", w->misses,
                       "evictions", w->evictions, "expirations",
                       w->expirations, "currsize",
                       w->cache ? PyDict_GET_SIZE(w->cache) : Py_ssize_t{0});
}

PyObject* WrapperReduce(PyObject* self, PyObject* /*unused*/) {
  return PyObject_GetAttrString(self, "__qualname__");
}

PyObject* WrapperReturnSelf(PyObject* self, PyObject* /*args*/) {
  return NewRef(self);
}

PyObject* WrapperDescrGet(PyObject* self, PyObject* obj, PyObject* /*type*/) {
  if (obj == nullptr || obj == Py_None) return NewRef(self);
  return PyMethod_New(self, obj);
}

int WrapperTraverse(PyObject* self, visitproc visit, void* arg) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  Py_VISIT(Py_TYPE(self));
  // Links are not GC objects; their references are visited on their
  // behalf, once per link the list holds.
  for (ListNode* node = w->lru.next; node != nullptr && node != &w->lru;
       node = node->next) {
    Link* link = LinkOfLru(node);
    Py_VISIT(link->key);
    Py_VISIT(link->result);
    Py_VISIT(reinterpret_cast<PyObject*>(link->owner));
  }
  Py_VISIT(w->func);
  Py_VISIT(w->cache);
  Py_VISIT(w->owners);
  Py_VISIT(w->cache_info_type);
  Py_VISIT(w->typed_obj);
  Py_VISIT(w->timer);
  Py_VISIT(w->dict);
  Py_VISIT(reinterpret_cast<PyObject*>(w->link_type));
  Py_VISIT(reinterpret_cast<PyObject*>(w->purger_type));
  return 0;
}

// Keeps the (emptied) dicts and the types, so a call that arrives after a
// clear fails cleanly instead of crashing.
int WrapperClear(PyObject* self) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  ClearLinks(w);
  Py_CLEAR(w->func);
  Py_CLEAR(w->timer);
  Py_CLEAR(w->dict);
  return 0;
}

void WrapperDealloc(PyObject* self) {
  Wrapper* w = reinterpret_cast<Wrapper*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (w->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  ClearLinks(w);
  Py_CLEAR(w->func);
  Py_CLEAR(w->cache);
  Py_CLEAR(w->owners);
  Py_CLEAR(w->kwd_mark);
  Py_CLEAR(w->cache_info_type);
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
    {"cache_clear", WrapperCacheClear, METH_NOARGS,
     "Clear the cache and its statistics."},
    {"cache_parameters", WrapperCacheParameters, METH_NOARGS,
     "The parameters: {'maxsize', 'typed', 'ttl', 'weak_self'}."},
    {"cache_stats", WrapperCacheStats, METH_NOARGS,
     "hits, misses, evictions, expirations and currsize, as a dict."},
    {"__reduce__", WrapperReduce, METH_NOARGS, nullptr},
    {"__copy__", WrapperReturnSelf, METH_VARARGS, nullptr},
    {"__deepcopy__", WrapperReturnSelf, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef kWrapperMembers[] = {
    {"__dictoffset__", LG_T_PYSSIZET, offsetof(Wrapper, dict), LG_READONLY,
     nullptr},
    {"__weaklistoffset__", LG_T_PYSSIZET, offsetof(Wrapper, weakreflist),
     LG_READONLY, nullptr},
    {"__vectorcalloffset__", LG_T_PYSSIZET, offsetof(Wrapper, vectorcall),
     LG_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef kWrapperGetSet[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr,
     nullptr},
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
    {Py_tp_doc, const_cast<char*>(
                    "A function wrapped by leakguard.lru_cache: a bounded "
                    "LRU cache of its results.")},
    {0, nullptr},
};

PyType_Spec kWrapperSpec = {
    "leakguard._lru_cache_wrapper", sizeof(Wrapper), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
        Py_TPFLAGS_METHOD_DESCRIPTOR | LG_IMMUTABLE |
        Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kWrapperSlots,
};

struct Params {
  Py_ssize_t maxsize = 128;
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
  Wrapper* w = PyObject_GC_New(Wrapper, state->lru_wrapper_type);
  if (w == nullptr) return nullptr;
  w->vectorcall = WrapperVectorcall;
  w->func = NewRef(func);
  w->cache = PyDict_New();
  w->owners = p.weak_self ? PyDict_New() : nullptr;
  w->kwd_mark = NewRef(state->kwd_mark);
  w->cache_info_type = NewRef(state->cache_info_type);
  w->typed_obj = NewRef(p.typed_obj);
  w->timer = p.timer != nullptr ? NewRef(p.timer) : nullptr;
  w->dict = nullptr;
  w->weakreflist = nullptr;
  w->link_type = reinterpret_cast<PyTypeObject*>(
      NewRef(reinterpret_cast<PyObject*>(state->lru_link_type)));
  w->purger_type = reinterpret_cast<PyTypeObject*>(
      NewRef(reinterpret_cast<PyObject*>(state->lru_purger_type)));
  w->maxsize = p.maxsize;
  w->ttl = p.ttl;
  w->typed = p.typed;
  w->weak_self = p.weak_self;
  ListInit(&w->lru);
  ListInit(&w->ages);
  ListInit(&w->purgers);
  w->hits = w->misses = w->evictions = w->expirations = 0;
  PyObject_GC_Track(w);
  if (w->cache == nullptr || (p.weak_self && w->owners == nullptr)) {
    Py_DECREF(w);
    return nullptr;
  }
  PyObject* updated = PyObject_CallFunctionObjArgs(
      state->update_wrapper, reinterpret_cast<PyObject*>(w), func, nullptr);
  if (updated == nullptr) {
    Py_DECREF(w);
    return nullptr;
  }
  Py_DECREF(updated);
  return reinterpret_cast<PyObject*>(w);
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
  p.maxsize = d->maxsize;
  p.typed = d->typed;
  p.typed_obj = d->typed_obj;
  p.ttl = d->ttl;
  p.weak_self = d->weak_self;
  p.timer = d->timer;
  return MakeWrapper(StateOfType(Py_TYPE(self)), func, p);
}

PyObject* DecoratorRepr(PyObject* self) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  PyObject* maxsize = d->maxsize < 0 ? NewRef(Py_None) : PyLong_FromSsize_t(d->maxsize);
  PyObject* ttl = d->ttl == INFINITY ? NewRef(Py_None) : PyFloat_FromDouble(d->ttl);
  PyObject* repr = nullptr;
  if (maxsize != nullptr && ttl != nullptr) {
    repr = PyUnicode_FromFormat(
        "<leakguard.lru_cache decorator maxsize=%R typed=%R ttl=%R "
        "weak_self=%s>",
        maxsize, d->typed_obj, ttl, d->weak_self ? "True" : "False");
  }
  Py_XDECREF(maxsize);
  Py_XDECREF(ttl);
  return repr;
}

int DecoratorTraverse(PyObject* self, visitproc visit, void* arg) {
  Decorator* d = reinterpret_cast<Decorator*>(self);
  Py_VISIT(Py_TYPE(self));
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
    "leakguard._lru_cache_decorator", sizeof(Decorator), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE |
        Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kDecoratorSlots,
};

// Parses ttl: None, or a positive number of seconds (inf: none).
int ParseTtl(PyObject* obj, double* ttl) {
  *ttl = INFINITY;
  if (obj == nullptr || obj == Py_None) return 0;
  if (PyBool_Check(obj) || !(PyLong_Check(obj) || PyFloat_Check(obj))) {
    PyErr_Format(PyExc_TypeError,
                 "ttl must be None or a number of seconds, not %.200s",
                 Py_TYPE(obj)->tp_name);
    return -1;
  }
  const double value = PyFloat_AsDouble(obj);
  if (value == -1.0 && PyErr_Occurred()) return -1;
  if (std::isnan(value) || value <= 0) {
    PyErr_Format(PyExc_ValueError,
                 "ttl must be a positive number of seconds (or None), got %R",
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
  static char* kwlist[] = {const_cast<char*>("maxsize"),
                           const_cast<char*>("typed"),
                           const_cast<char*>("ttl"),
                           const_cast<char*>("weak_self"),
                           const_cast<char*>("timer"), nullptr};
  PyObject* maxsize_obj = nullptr;
  PyObject* typed_obj = Py_False;
  PyObject* ttl_obj = Py_None;
  PyObject* weak_self_obj = Py_False;
  PyObject* timer = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO$OO:lru_cache", kwlist,
                                   &maxsize_obj, &typed_obj, &ttl_obj,
                                   &weak_self_obj, &timer)) {
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
      PyErr_Format(PyExc_TypeError, "timer must be callable, not %.200s",
                   Py_TYPE(timer)->tp_name);
      return nullptr;
    }
    if (p.ttl == INFINITY) {
      PyErr_SetString(PyExc_ValueError, "timer is only used with ttl; set ttl");
      return nullptr;
    }
    p.timer = timer;
  }
  PyObject* func = nullptr;
  if (maxsize_obj == nullptr) {
    p.maxsize = 128;
  } else if (PyLong_Check(maxsize_obj)) {
    p.maxsize = PyNumber_AsSsize_t(maxsize_obj, PyExc_OverflowError);
    if (p.maxsize == -1 && PyErr_Occurred()) return nullptr;
    if (p.maxsize < 0) p.maxsize = 0;
  } else if (PyCallable_Check(maxsize_obj) && PyBool_Check(typed_obj)) {
    func = maxsize_obj;  // @lru_cache without parentheses.
    p.maxsize = 128;
  } else if (maxsize_obj == Py_None) {
    p.maxsize = -1;
  } else {
    PyErr_SetString(PyExc_TypeError,
                    "Expected first argument to be an integer, a callable, "
                    "or None");
    return nullptr;
  }
  if (func != nullptr) return MakeWrapper(state, func, p);
  Decorator* d = PyObject_GC_New(Decorator, state->lru_decorator_type);
  if (d == nullptr) return nullptr;
  d->typed_obj = NewRef(p.typed_obj);
  d->timer = p.timer != nullptr ? NewRef(p.timer) : nullptr;
  d->maxsize = p.maxsize;
  d->ttl = p.ttl;
  d->typed = p.typed;
  d->weak_self = p.weak_self;
  PyObject_GC_Track(d);
  return reinterpret_cast<PyObject*>(d);
}

}  // namespace

PyMethodDef kLruCacheFunctions[] = {
    {"lru_cache", reinterpret_cast<PyCFunction>(
                      reinterpret_cast<void (*)()>(LruCacheFunction)),
     METH_VARARGS | METH_KEYWORDS, kLruCacheDoc},
    {nullptr, nullptr, 0, nullptr},
};

int ExecLruCache(PyObject* module, ModuleState* state) {
  state->lru_link_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kLinkSpec));
  state->lru_purger_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kPurgerSpec));
  state->lru_wrapper_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kWrapperSpec));
  state->lru_decorator_type =
      reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kDecoratorSpec));
  if (state->lru_link_type == nullptr || state->lru_purger_type == nullptr ||
      state->lru_wrapper_type == nullptr || state->lru_decorator_type == nullptr) {
    return -1;
  }
  state->kwd_mark = PyObject_CallNoArgs(reinterpret_cast<PyObject*>(&PyBaseObject_Type));
  if (state->kwd_mark == nullptr) return -1;
  PyObject* functools = PyImport_ImportModule("functools");
  if (functools == nullptr) return -1;
  state->update_wrapper = PyObject_GetAttrString(functools, "update_wrapper");
  // functools' own CacheInfo, so cache_info() results are interchangeable.
  state->cache_info_type = PyObject_GetAttrString(functools, "_CacheInfo");
  Py_DECREF(functools);
  if (state->update_wrapper == nullptr || state->cache_info_type == nullptr) {
    return -1;
  }
  return 0;
}

}  // namespace leakguard::python::internal
