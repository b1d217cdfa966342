

// The collector's generation lists, walked in place (CPython 3.9 to 3.13
// with the GIL).
//
// Before 3.12 the public C API has no way to visit the gc-tracked objects:
// the only door is gc.get_objects(), which builds a list of every object
// (an allocation, an incref and a decref each) only for the census to throw
// it away. On a heap of a million objects that list is most of the cost.
// 3.12 added PyUnstable_GC_VisitObjects, but it walks one list at a time
// front to back, and (3.13) the permanent generation too, which
// gc.get_objects() leaves out.
// This file reads the same doubly-linked lists gc.get_objects() reads
// (generation 0, 1, 2; the permanent generation of gc.freeze() left out,
// as it does), with nothing allocated: in order, or from both ends at once
// for the census, which only needs to know where each visit falls.
//
// It is C, not C++: the internal headers it needs (Py_BUILD_CORE) are
// written for CPython's own C build and include <stdatomic.h>. It is the
// only file of leakguard that looks at interpreter internals, and only for
// released versions, whose layout no longer changes: `interp->gc` with its
// `generations[NUM_GENERATIONS]` lists, the same from 3.9 to 3.13. Builds
// without the GIL (3.13t) have no such lists, and 3.14 changed them
// (incremental collection): there this file compiles to a stub and
// object_graph.cc uses the public PyUnstable_GC_VisitObjects.

#include <Python.h>

#include "probes/gc_walk.h"

#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define LEAKGUARD_GC_WALK 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <internal/pycore_gc.h>
#include <internal/pycore_interp.h>
_Static_assert(NUM_GENERATIONS == 3, "gc_walk.h promises three generations (lengths[3])");
#endif

#ifdef LEAKGUARD_GC_WALK
// The lists are linked lists: the next object is known only once this
// one's header has arrived, one cache miss after another. But pymalloc
// hands out the blocks of a size class in address order, so the list's
// next objects mostly live a little further along in memory. Asking for
// the memory 512 and 1024 bytes ahead (a prefetch never faults, whatever
// the address) has it on its way before the chain gets there: the census
// of benchmarks/run.sh's million objects (graph/typestats_1m) went from
// 36 to 24 ms with it (both-ends walk), and from 72 to 37 ms on a heap
// whose lists jump between size classes (timed once, one-off program).
static inline void PrefetchAround(const PyGC_Head* gc, int direction) {
  const uintptr_t at = (uintptr_t)gc;
  __builtin_prefetch((const void*)(at + direction * 512));
  __builtin_prefetch((const void*)(at + direction * 1024));
}
#endif

int leakguard_gc_walk_supported(void) {
#ifdef LEAKGUARD_GC_WALK
  return 1;
#else
  return 0;
#endif
}

int leakguard_gc_walk(leakguard_gc_visit visit, void* arg) {
#ifdef LEAKGUARD_GC_WALK
  PyInterpreterState* interp = PyInterpreterState_Get();
  struct _gc_runtime_state* gcstate = &interp->gc;
  for (int i = 0; i < NUM_GENERATIONS; ++i) {
    PyGC_Head* head = &gcstate->generations[i].head;
    PyGC_Head* gc = _PyGCHead_NEXT(head);
    while (gc != head) {
      PyGC_Head* next = _PyGCHead_NEXT(gc);  // Before the visit: overlap.
      PrefetchAround(gc, 1);
      visit((PyObject*)(gc + 1), arg);
      gc = next;
    }
  }
  return 1;
#else
  (void)visit;
  (void)arg;
  return 0;
#endif
}

int leakguard_gc_walk_both_ends(leakguard_gc_visit_placed visit, void* arg, Py_ssize_t lengths[3]) {
#ifdef LEAKGUARD_GC_WALK
  PyInterpreterState* interp = PyInterpreterState_Get();
  struct _gc_runtime_state* gcstate = &interp->gc;
  for (int g = 0; g < NUM_GENERATIONS; ++g) {
    PyGC_Head* head = &gcstate->generations[g].head;
    Py_ssize_t from_front = 0;
    Py_ssize_t from_back = 0;
    PyGC_Head* front = _PyGCHead_NEXT(head);
    PyGC_Head* back = _PyGCHead_PREV(head);
    // Every object from `front` to `back` (inclusive) is still to visit.
    // Walking one linked list is one chain of dependent cache misses; two
    // chains, one from each end, keep two misses in flight.
    if (front != head) {
      for (;;) {
        if (front == back) {
          visit((PyObject*)(front + 1), g, from_front++, arg);
          break;
        }
        PyGC_Head* front_next = _PyGCHead_NEXT(front);
        PyGC_Head* back_prev = _PyGCHead_PREV(back);
        PrefetchAround(front, 1);
        PrefetchAround(back, -1);
        visit((PyObject*)(front + 1), g, from_front++, arg);
        visit((PyObject*)(back + 1), g, -(++from_back), arg);
        if (front_next == back) break;  // They met between two objects.
        front = front_next;
        back = back_prev;
      }
    }
    lengths[g] = from_front + from_back;
  }
  return 1;
#else
  (void)visit;
  (void)arg;
  lengths[0] = lengths[1] = lengths[2] = 0;
  return 0;
#endif
}
