// bindings/py_module_internal.h
//
// Shared by the parts of the Python module `leakguard` (not installed, not
// part of the public API): the per-module state, the CPython version
// differences the bindings need, and small helpers.
//
// The module uses multi-phase initialization; every type is a heap type
// created with PyType_FromModuleAndSpec and kept in the module state, so the
// module holds no process-wide Python state.

#ifndef LEAKGUARD_BINDINGS_MODULE_INTERNAL_H_
#define LEAKGUARD_BINDINGS_MODULE_INTERNAL_H_

#include "leakguard/python/python.h"

#include <cstring>

namespace leakguard::python::internal {

/// Everything the module's code needs at run time.
struct ModuleState {
  // lru_cache
  PyTypeObject* lru_wrapper_type;
  PyTypeObject* lru_decorator_type;
  PyTypeObject* lru_link_type;
  PyTypeObject* lru_full_link_type;  // ttl or weak_self
  PyTypeObject* lru_purger_type;
  PyObject* cache_info_type;  // functools' CacheInfo namedtuple
  PyObject* kwd_mark;         // separates positional from keyword items
  PyObject* update_wrapper;   // functools.update_wrapper
  // EventBus
  PyTypeObject* bus_type;
  PyTypeObject* listener_type;
  // memory_guard
  PyTypeObject* guard_type;
  PyTypeObject* guard_scope_type;
  void* shared_tracing;  // tracemalloc::TracingScope* of the open traced blocks
  Py_ssize_t shared_tracing_users;
  PyTypeObject* guarded_function_type;
  PyTypeObject* report_type;
  PyObject* growth_warning;
};

/// The state of `module` (an instance of the leakguard module).
inline ModuleState* GetState(PyObject* module) {
  return static_cast<ModuleState*>(PyModule_GetState(module));
}

/// The state of the module that defined `type` (one of our heap types).
inline ModuleState* StateOfType(PyTypeObject* type) {
  return static_cast<ModuleState*>(PyType_GetModuleState(type));
}

/// Each part adds its types and functions to the module; -1 with an
/// exception set on failure.
int ExecLruCache(PyObject* module, ModuleState* state);
int ExecEventBus(PyObject* module, ModuleState* state);
int ExecMemoryGuard(PyObject* module, ModuleState* state);
/// Ends what memory_guard still holds in `state` (module teardown).
void ClearMemoryGuardState(ModuleState* state);
/// Adds leakguard.diagnose() (the leak doctor) to the module.
int ExecDoctor(PyObject* module);

/// The module-level functions of each part, NULL-terminated lists merged
/// into the module's method table.
extern PyMethodDef kLruCacheFunctions[];

/// Visits / clears the state's references (module GC support).
int TraverseState(ModuleState* state, visitproc visit, void* arg);
void ClearState(ModuleState* state);

// ---------------------------------------------------------------- compat

// PyMemberDef type codes: Py_T_* since 3.12, structmember.h before.
#if PY_VERSION_HEX >= 0x030C0000
#define LG_T_PYSSIZET Py_T_PYSSIZET
#define LG_READONLY Py_READONLY
#else
#include <structmember.h>
#define LG_T_PYSSIZET T_PYSSIZET
#define LG_READONLY READONLY
#endif

// Type flags that older CPythons lack are 0 there.
#ifdef Py_TPFLAGS_IMMUTABLETYPE
#define LG_IMMUTABLE Py_TPFLAGS_IMMUTABLETYPE
#else
#define LG_IMMUTABLE 0
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0 Py_TPFLAGS_DISALLOW_INSTANTIATION
#else
#define Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0 0
#endif

/// A heap type of `module` from `spec` (a new reference). Types without a
/// Py_tp_new slot cannot be instantiated from Python on any version (3.9
/// would otherwise inherit object.__new__ and make an uninitialized one).
/// On 3.9 PyType_FromSpec keeps only the part of Py_tp_doc after the
/// "Name(...)\n--\n\n" signature, so `__text_signature__` (which
/// inspect.signature reads) was None; the full text is put back in tp_doc
/// (`__doc__` was already set from the stripped part and stays clean).
inline PyObject* MakeHeapType(PyObject* module, PyType_Spec* spec) {
  PyObject* type = PyType_FromModuleAndSpec(module, spec, nullptr);
#if PY_VERSION_HEX < 0x030A0000
  if (type != nullptr) {
    auto* as_type = reinterpret_cast<PyTypeObject*>(type);
    bool has_new = false;
    const char* doc = nullptr;
    for (PyType_Slot* slot = spec->slots; slot->slot != 0; ++slot) {
      if (slot->slot == Py_tp_new) has_new = true;
      if (slot->slot == Py_tp_doc) doc = static_cast<const char*>(slot->pfunc);
    }
    if (!has_new) as_type->tp_new = nullptr;
    if (doc != nullptr && as_type->tp_doc != nullptr && std::strcmp(doc, as_type->tp_doc) != 0) {
      const size_t size = std::strlen(doc) + 1;
      // type_dealloc frees tp_doc with PyObject_Free: allocate it the same way.
      auto* full = static_cast<char*>(PyObject_Malloc(size));
      if (full == nullptr) {
        Py_DECREF(type);
        PyErr_NoMemory();
        return nullptr;
      }
      std::memcpy(full, doc, size);
      PyObject_Free(const_cast<char*>(as_type->tp_doc));
      as_type->tp_doc = full;
    }
  }
#endif
  return type;
}

/// PyModule_AddObjectRef for 3.9: adds `value` (not stolen) as `name`.
inline int AddObjectRef(PyObject* module, const char* name, PyObject* value) {
  Py_INCREF(value);
  if (PyModule_AddObject(module, name, value) < 0) {
    Py_DECREF(value);
    return -1;
  }
  return 0;
}

/// A new reference to the referent of weak reference `ref`, or nullptr when
/// it is dead (never with an exception set for a valid weakref).
inline PyObject* WeakrefGetRef(PyObject* ref) {
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* obj = nullptr;
  if (PyWeakref_GetRef(ref, &obj) < 0) {
    PyErr_Clear();
    return nullptr;
  }
  return obj;  // NULL when dead.
#else
  PyObject* obj = PyWeakref_GET_OBJECT(ref);
  if (obj == Py_None || Py_REFCNT(obj) <= 0) return nullptr;
  Py_INCREF(obj);
  return obj;
#endif
}

/// Py_NewRef for 3.9.
inline PyObject* NewRef(PyObject* obj) {
  Py_INCREF(obj);
  return obj;
}

/// Intrusive doubly linked list node; a list's head is a node linked to
/// itself. Unlinked nodes have null pointers.
struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;
};

inline void ListInit(ListNode* head) { head->prev = head->next = head; }
inline bool ListEmpty(const ListNode* head) { return head->next == head; }
inline bool ListLinked(const ListNode* node) { return node->next != nullptr; }
inline void ListUnlink(ListNode* node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = nullptr;
}
// Inserts `node` right after `head` (the front).
inline void ListPushFront(ListNode* head, ListNode* node) {
  node->prev = head;
  node->next = head->next;
  head->next->prev = node;
  head->next = node;
}

}  // namespace leakguard::python::internal

#endif  // LEAKGUARD_BINDINGS_MODULE_INTERNAL_H_
