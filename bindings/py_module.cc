// The module object of `leakguard`: multi-phase initialization, the module
// state, and the registration hook for embedding hosts.
//
// Free-threaded builds (3.13t): the module does not declare Py_mod_gil, so
// importing it enables the GIL (CPython says so with a RuntimeWarning). The
// lru_cache and EventBus structures rely on the GIL for their consistency;
// declaring Py_MOD_GIL_NOT_USED would need per-object critical sections.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "leakguard/python/builtin_modules.h"
#include "leakguard/python/python.h"
#include "leakguard/python_module.h"
#include "leakguard/version.h"
#include "py_module_internal.h"

namespace leakguard::python {
namespace internal {

int TraverseState(ModuleState* s, visitproc visit, void* arg) {
  Py_VISIT(s->lru_wrapper_type);
  Py_VISIT(s->lru_decorator_type);
  Py_VISIT(s->lru_link_type);
  Py_VISIT(s->lru_full_link_type);
  Py_VISIT(s->lru_purger_type);
  Py_VISIT(s->cache_info_type);
  Py_VISIT(s->kwd_mark);
  Py_VISIT(s->update_wrapper);
  Py_VISIT(s->bus_type);
  Py_VISIT(s->listener_type);
  Py_VISIT(s->guard_type);
  Py_VISIT(s->guard_scope_type);
  Py_VISIT(s->guarded_function_type);
  Py_VISIT(s->report_type);
  Py_VISIT(s->growth_warning);
  return 0;
}

void ClearState(ModuleState* s) {
  Py_CLEAR(s->lru_wrapper_type);
  Py_CLEAR(s->lru_decorator_type);
  Py_CLEAR(s->lru_link_type);
  Py_CLEAR(s->lru_full_link_type);
  Py_CLEAR(s->lru_purger_type);
  Py_CLEAR(s->cache_info_type);
  Py_CLEAR(s->kwd_mark);
  Py_CLEAR(s->update_wrapper);
  Py_CLEAR(s->bus_type);
  Py_CLEAR(s->listener_type);
  Py_CLEAR(s->guard_type);
  Py_CLEAR(s->guard_scope_type);
  ClearMemoryGuardState(s);
  Py_CLEAR(s->guarded_function_type);
  Py_CLEAR(s->report_type);
  Py_CLEAR(s->growth_warning);
}

int ExecRequestTracker(PyObject* module);  // py_request_tracker.cc
int ExecCensus(PyObject* module);          // py_census.cc
int ExecPackagePath(PyObject* module);     // py_package.cc
int ExecBackrefs(PyObject* module);        // py_backrefs.cc
int ExecSnapshot(PyObject* module);        // py_snapshot.cc
int ExecDetector(PyObject* module);        // py_detector.cc
int ExecSampler(PyObject* module);         // py_sampler.cc

namespace {

int Exec(PyObject* module) {
  ModuleState* state = GetState(module);
  if (ExecLruCache(module, state) < 0 || ExecEventBus(module, state) < 0 ||
      ExecMemoryGuard(module, state) < 0 || ExecDoctor(module) < 0 ||
      ExecRequestTracker(module) < 0 || ExecCensus(module) < 0 || ExecBackrefs(module) < 0 ||
      ExecSnapshot(module) < 0 || ExecDetector(module) < 0 || ExecSampler(module) < 0) {
    return -1;
  }
  if (PyModule_AddStringConstant(module, "__version__", leakguard::Version()) < 0) {
    return -1;
  }
  PyObject* all = Py_BuildValue("(ssssssssssssssssssss)", "lru_cache", "EventBus", "memory_guard",
                                "MemoryReport", "MemoryGrowthWarning", "diagnose", "RequestTracker",
                                "rss", "typestats", "most_common_types", "count", "by_type",
                                "growth", "find_backref_chain", "backref_path", "backrefs_dot",
                                "Snapshot", "take_snapshot", "LeakDetector", "Sampler");
  if (all == nullptr) return -1;
  const int rc = AddObjectRef(module, "__all__", all);
  Py_DECREF(all);
  return rc < 0 ? rc : ExecPackagePath(module);
}

int Traverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState* state = GetState(module);
  return state != nullptr ? TraverseState(state, visit, arg) : 0;
}

int Clear(PyObject* module) {
  ModuleState* state = GetState(module);
  if (state != nullptr) ClearState(state);
  return 0;
}

void Free(void* module) { Clear(static_cast<PyObject*>(module)); }

PyModuleDef_Slot kSlots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(Exec)},
    {0, nullptr},
};

const char kDoc[] =
    "leakguard: leak-proof building blocks for Python code.\n\n"
    "lru_cache    functools.lru_cache in C, plus ttl= and weak_self=\n"
    "EventBus     publish/subscribe with weakly held listeners\n"
    "memory_guard measure (and warn about) the memory growth of a scope\n"
    "diagnose     the leak doctor: why func() leaks, what holds it, the fix\n"
    "RequestTracker, rss  per-request RSS accounting (p50/p99, worst units)\n"
    "typestats, most_common_types, count, by_type, growth  objgraph's census\n"
    "find_backref_chain, backref_path, backrefs_dot  who keeps an object alive\n"
    "take_snapshot, Snapshot  tracemalloc snapshots grouped and compared in C++\n"
    "LeakDetector the background detector (in interpreters leakguard started)\n"
    "Sampler      the sampled allocation tracker (Python and native memory)";

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "leakguard",
    kDoc,
    sizeof(ModuleState),
    kLruCacheFunctions,
    kSlots,
    Traverse,
    Clear,
    Free,
};

}  // namespace
}  // namespace internal

absl::Status RegisterModule() { return RegisterBuiltinModule("leakguard", &PyInit_leakguard); }

}  // namespace leakguard::python

PyMODINIT_FUNC PyInit_leakguard(void) {
  return PyModuleDef_Init(&leakguard::python::internal::kModule);
}

// The same module as the extension file of the `leakguard` package
// (leakguard/_leakguard<EXT_SUFFIX>, re-exported by leakguard/__init__.py).
PyMODINIT_FUNC PyInit__leakguard(void) {
  return PyModuleDef_Init(&leakguard::python::internal::kModule);
}
