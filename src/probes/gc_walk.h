// Internal: the gc-tracked objects visited in place (see gc_walk.c).
#ifndef LEAKGUARD_SRC_GC_WALK_H_
#define LEAKGUARD_SRC_GC_WALK_H_

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

// Called once per tracked object. It must not run Python code, allocate
// Python objects or decref: the lists are being walked. Py_INCREF is fine.
typedef void (*leakguard_gc_visit)(PyObject* op, void* arg);

// 1 where leakguard_gc_walk() works on this interpreter build (CPython
// 3.9 to 3.13 with the GIL), 0 elsewhere.
int leakguard_gc_walk_supported(void);

// Visits every object of generations 0, 1 and 2 in gc.get_objects()
// order (frozen objects are not visited). Needs the GIL. Returns 0, having
// visited nothing, where not supported.
int leakguard_gc_walk(leakguard_gc_visit visit, void* arg);

// Called once per tracked object by leakguard_gc_walk_both_ends():
// `generation` 0 to 2, `index` its place in that generation's list, from
// the front (0 = first) when >= 0, from the back (-1 = last) when < 0.
typedef void (*leakguard_gc_visit_placed)(PyObject* op, int generation, Py_ssize_t index,
                                          void* arg);

// Visits the same objects as leakguard_gc_walk(), each generation's list
// from both ends at once (about 1.4x faster on a heap of a million
// objects: two independent chains of cache misses instead of one). Sets
// lengths[g] to the number of objects in generation g, so that a visit's
// place in gc.get_objects() order can be worked out afterwards. Needs the
// GIL; the visitor has leakguard_gc_visit's limits. Returns 0, having
// visited nothing, where not supported.
int leakguard_gc_walk_both_ends(leakguard_gc_visit_placed visit, void* arg, Py_ssize_t lengths[3]);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LEAKGUARD_SRC_GC_WALK_H_
