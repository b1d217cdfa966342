// leakguard.EventBus: a publish/subscribe bus whose listeners are held
// weakly. A bound method is held as (weak reference to its object, strong
// reference to its function), so it lives as long as the object, not as long
// as the temporary method object; any other callable is held by a weak
// reference to itself. Dead listeners leave the bus by themselves: each
// weak reference carries a callback that marks the bus for pruning and
// prunes at once unless an emit is running (then the emit prunes when it
// ends).
//
// The listener list is an immutable tuple replaced on every change
// (copy-on-write): emit() iterates the tuple it started with, so listeners
// may subscribe, unsubscribe or drop their objects during an emit.
// Unsubscribed listeners are flagged inactive and skipped by an emit that is
// already running.

#include <cstddef>
#include <cstring>
#include <vector>

#include "leakguard/python/python.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Listener {
  PyObject_HEAD PyObject* ref;  // weakref to the callable / the method's object, or the
                                // callable itself (weak=False)
  PyObject* func;               // the method's function (strong), or null
  bool weak;
  bool active;
};

struct Bus {
  PyObject_HEAD PyObject* listeners;  // tuple of Listener
  PyObject* on_error;                 // callable(exc, listener) or null
  PyObject* prune_cb;                 // weakref callback shared by all listeners
  PyObject* weakreflist;
  int emitting;  // depth of running emits
  bool needs_prune;
};

PyTypeObject* ListenerType(PyObject* bus) { return StateOfType(Py_TYPE(bus))->listener_type; }

// --------------------------------------------------------------- listener

int ListenerTraverse(PyObject* self, visitproc visit, void* arg) {
  Listener* l = reinterpret_cast<Listener*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(l->ref);
  Py_VISIT(l->func);
  return 0;
}

int ListenerClear(PyObject* self) {
  Listener* l = reinterpret_cast<Listener*>(self);
  Py_CLEAR(l->ref);
  Py_CLEAR(l->func);
  return 0;
}

void ListenerDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  ListenerClear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kListenerSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(ListenerDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(ListenerTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(ListenerClear)},
    {0, nullptr},
};

PyType_Spec kListenerSpec = {
    "leakguard._listener",
    sizeof(Listener),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kListenerSlots,
};

// The object a weak listener calls (a new reference): its callable, or its
// method's object. Null when it died.
PyObject* Target(Listener* l) {
  if (l->ref == nullptr) return nullptr;
  if (!l->weak) return NewRef(l->ref);
  return WeakrefGetRef(l->ref);
}

bool Alive(Listener* l) {
  if (!l->active || l->ref == nullptr) return false;
  if (!l->weak) return true;
  PyObject* target = WeakrefGetRef(l->ref);
  Py_XDECREF(target);
  return target != nullptr;
}

// The callable as the user gave it (a new bound method for methods), or
// null if it died.
PyObject* UserCallable(Listener* l) {
  PyObject* target = Target(l);
  if (target == nullptr || l->func == nullptr) return target;
  PyObject* method = PyMethod_New(l->func, target);
  Py_DECREF(target);
  return method;
}

// ------------------------------------------------------------------- bus

// Replaces the listener tuple by one without dead or inactive listeners
// (and without `drop`, if given). The old tuple is released last.
int Rebuild(Bus* bus, PyObject* add) {
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  std::vector<PyObject*> keep;
  keep.reserve(static_cast<size_t>(n) + 1);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyTuple_GET_ITEM(bus->listeners, i);
    if (Alive(reinterpret_cast<Listener*>(item))) keep.push_back(item);
  }
  if (add != nullptr) keep.push_back(add);
  PyObject* next = PyTuple_New(static_cast<Py_ssize_t>(keep.size()));
  if (next == nullptr) return -1;
  for (size_t i = 0; i < keep.size(); ++i) {
    PyTuple_SET_ITEM(next, static_cast<Py_ssize_t>(i), NewRef(keep[i]));
  }
  PyObject* old = bus->listeners;
  bus->listeners = next;
  bus->needs_prune = false;
  Py_DECREF(old);  // May free listeners: their functions' finalizers run.
  return 0;
}

void PruneIfIdle(Bus* bus) {
  if (bus->emitting > 0 || !bus->needs_prune || bus->listeners == nullptr) return;
  PyObject* error = PyErr_Occurred() ? compat::FetchException() : nullptr;
  if (Rebuild(bus, nullptr) < 0) PyErr_WriteUnraisable(reinterpret_cast<PyObject*>(bus));
  if (error != nullptr) compat::RestoreException(error);
}

// The weak-reference callback: `self` is a weak reference to the bus.
PyObject* OnListenerDied(PyObject* self, PyObject* /*dead_ref*/) {
  PyObject* bus = WeakrefGetRef(self);
  if (bus == nullptr) Py_RETURN_NONE;
  reinterpret_cast<Bus*>(bus)->needs_prune = true;
  PruneIfIdle(reinterpret_cast<Bus*>(bus));
  Py_DECREF(bus);
  Py_RETURN_NONE;
}

PyMethodDef kOnListenerDied = {"_listener_died", OnListenerDied, METH_O, nullptr};

PyObject* BusNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {const_cast<char*>("on_error"), nullptr};
  PyObject* on_error = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O:EventBus", kwlist, &on_error)) {
    return nullptr;
  }
  if (on_error != Py_None && !PyCallable_Check(on_error)) {
    PyErr_Format(PyExc_TypeError, "on_error must be callable or None, not %.200s",
                 Py_TYPE(on_error)->tp_name);
    return nullptr;
  }
  Bus* bus = reinterpret_cast<Bus*>(type->tp_alloc(type, 0));
  if (bus == nullptr) return nullptr;
  bus->listeners = PyTuple_New(0);
  bus->on_error = on_error != Py_None ? NewRef(on_error) : nullptr;
  bus->weakreflist = nullptr;
  bus->emitting = 0;
  bus->needs_prune = false;
  PyObject* self_ref = PyWeakref_NewRef(reinterpret_cast<PyObject*>(bus), nullptr);
  if (self_ref != nullptr) {
    bus->prune_cb = PyCFunction_New(&kOnListenerDied, self_ref);
    Py_DECREF(self_ref);
  }
  if (bus->listeners == nullptr || bus->prune_cb == nullptr) {
    Py_DECREF(bus);
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(bus);
}

// True when listener `l` stands for the callable `cb` (same object, or for
// methods the same function and the same object).
bool Matches(Listener* l, PyObject* cb) {
  if (!l->active) return false;
  PyObject* target = Target(l);
  if (target == nullptr) return false;
  bool same;
  if (l->func != nullptr) {
    same = PyMethod_Check(cb) && PyMethod_GET_FUNCTION(cb) == l->func &&
           PyMethod_GET_SELF(cb) == target;
  } else {
    same = target == cb;
  }
  Py_DECREF(target);
  return same;
}

const char kSubscribeDoc[] =
    "subscribe(callback, *, weak=True)\n--\n\n"
    "Add a listener and return `callback` (so it works as a decorator).\n"
    "weak=True holds it weakly: a bound method lives as long as its object,\n"
    "any other callable as long as something else holds it (a lambda made in\n"
    "the call dies at once). weak=False holds it strongly until\n"
    "unsubscribe(). Subscribing the same listener twice adds it once.";

PyObject* BusSubscribe(PyObject* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {const_cast<char*>("callback"), const_cast<char*>("weak"), nullptr};
  PyObject* cb = nullptr;
  int weak = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$p:subscribe", kwlist, &cb, &weak)) {
    return nullptr;
  }
  if (!PyCallable_Check(cb)) {
    PyErr_Format(PyExc_TypeError, "subscribe() needs a callable, not %.200s", Py_TYPE(cb)->tp_name);
    return nullptr;
  }
  Bus* bus = reinterpret_cast<Bus*>(self);
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (Matches(reinterpret_cast<Listener*>(PyTuple_GET_ITEM(bus->listeners, i)), cb)) {
      return NewRef(cb);
    }
  }
  Listener* l = PyObject_GC_New(Listener, ListenerType(self));
  if (l == nullptr) return nullptr;
  l->ref = nullptr;
  l->func = nullptr;
  l->weak = weak != 0;
  l->active = true;
  PyObject_GC_Track(l);
  const bool method = weak && PyMethod_Check(cb);
  PyObject* target = method ? PyMethod_GET_SELF(cb) : cb;
  if (weak) {
    l->ref = PyWeakref_NewRef(target, bus->prune_cb);
    if (l->ref == nullptr) {
      if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Format(PyExc_TypeError,
                     "EventBus.subscribe cannot hold %R weakly: '%.200s' "
                     "objects do not support weak references; pass "
                     "weak=False and call unsubscribe() when done",
                     cb, Py_TYPE(target)->tp_name);
      }
      Py_DECREF(l);
      return nullptr;
    }
    if (method) l->func = NewRef(PyMethod_GET_FUNCTION(cb));
  } else {
    l->ref = NewRef(cb);
  }
  const int rc = Rebuild(bus, reinterpret_cast<PyObject*>(l));
  Py_DECREF(l);
  if (rc < 0) return nullptr;
  return NewRef(cb);
}

PyObject* BusUnsubscribe(PyObject* self, PyObject* cb) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  bool found = false;
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  for (Py_ssize_t i = 0; i < n; ++i) {
    Listener* l = reinterpret_cast<Listener*>(PyTuple_GET_ITEM(bus->listeners, i));
    if (Matches(l, cb)) {
      l->active = false;
      found = true;
    }
  }
  if (found && Rebuild(bus, nullptr) < 0) return nullptr;
  return PyBool_FromLong(found);
}

// Reports a listener's exception (pending) to on_error, or to
// sys.unraisablehook; an exception raised by on_error itself goes to
// sys.unraisablehook. Leaves no exception pending.
void ReportFailure(Bus* bus, Listener* l) {
  PyObject* exc = compat::FetchException();
  PyObject* listener = UserCallable(l);
  if (listener == nullptr) {
    PyErr_Clear();
    listener = NewRef(Py_None);
  }
  if (bus->on_error != nullptr) {
    PyObject* result = PyObject_CallFunctionObjArgs(bus->on_error, exc, listener, nullptr);
    if (result == nullptr) {
      PyErr_WriteUnraisable(bus->on_error);
    } else {
      Py_DECREF(result);
    }
  } else {
    compat::RestoreException(NewRef(exc));
    PyErr_WriteUnraisable(listener);
  }
  Py_DECREF(listener);
  Py_DECREF(exc);
}

const char kEmitDoc[] =
    "emit(*args, **kwargs)\n--\n\n"
    "Call every live listener with the arguments, in subscription order, and\n"
    "return how many were called. A listener that raises an Exception does\n"
    "not stop the others: the exception goes to on_error(exc, listener), or\n"
    "to sys.unraisablehook. BaseExceptions (KeyboardInterrupt, SystemExit)\n"
    "propagate at once. A RecursionError raised inside a nested emit() of\n"
    "the same bus (a listener recursing into emit() without end) unwinds to\n"
    "the outermost emit(), which reports it like any other failure.";

PyObject* BusEmit(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  const Py_ssize_t total = nargs + nkw;
  // stack[0] is free for the method's object (or for the callee, with
  // PY_VECTORCALL_ARGUMENTS_OFFSET); the arguments follow.
  PyObject* small[9];
  std::vector<PyObject*> large;
  PyObject** stack = small;
  if (total + 1 > 9) {
    large.resize(static_cast<size_t>(total) + 1);
    stack = large.data();
  }
  if (total > 0) std::memcpy(stack + 1, args, static_cast<size_t>(total) * sizeof(PyObject*));

  PyObject* snapshot = NewRef(bus->listeners);
  ++bus->emitting;
  Py_ssize_t called = 0;
  bool failed = false;
  const Py_ssize_t n = PyTuple_GET_SIZE(snapshot);
  for (Py_ssize_t i = 0; i < n; ++i) {
    Listener* l = reinterpret_cast<Listener*>(PyTuple_GET_ITEM(snapshot, i));
    if (!l->active) continue;
    PyObject* target = Target(l);
    if (target == nullptr) {
      bus->needs_prune = true;
      continue;
    }
    PyObject* result;
    if (l->func != nullptr) {
      stack[0] = target;
      result = PyObject_Vectorcall(l->func, stack, static_cast<size_t>(nargs) + 1, kwnames);
    } else {
      result = PyObject_Vectorcall(
          target, stack + 1, static_cast<size_t>(nargs) | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    }
    ++called;
    if (result != nullptr) {
      Py_DECREF(result);
      Py_DECREF(target);
      continue;
    }
    Py_DECREF(target);
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
      failed = true;  // KeyboardInterrupt, SystemExit, ...: propagate.
      break;
    }
    if (bus->emitting > 1 && PyErr_ExceptionMatches(PyExc_RecursionError)) {
      // A listener recursing into emit() ran out of stack: there is none
      // left here to call on_error (or sys.unraisablehook) with, so the
      // error unwinds to the outermost emit() of this bus, which reports it.
      failed = true;
      break;
    }
    ReportFailure(bus, l);
  }
  --bus->emitting;
  Py_DECREF(snapshot);
  PruneIfIdle(bus);
  if (failed) return nullptr;
  return PyLong_FromSsize_t(called);
}

Py_ssize_t BusLength(PyObject* self) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  PruneIfIdle(bus);
  Py_ssize_t live = 0;
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (Alive(reinterpret_cast<Listener*>(PyTuple_GET_ITEM(bus->listeners, i)))) ++live;
  }
  return live;
}

PyObject* BusClear(PyObject* self, PyObject* /*unused*/) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  for (Py_ssize_t i = 0; i < n; ++i) {
    reinterpret_cast<Listener*>(PyTuple_GET_ITEM(bus->listeners, i))->active = false;
  }
  if (Rebuild(bus, nullptr) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyObject* BusListeners(PyObject* self, PyObject* /*unused*/) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  PyObject* list = PyList_New(0);
  if (list == nullptr) return nullptr;
  const Py_ssize_t n = PyTuple_GET_SIZE(bus->listeners);
  for (Py_ssize_t i = 0; i < n; ++i) {
    Listener* l = reinterpret_cast<Listener*>(PyTuple_GET_ITEM(bus->listeners, i));
    if (!l->active) continue;
    PyObject* cb = UserCallable(l);
    if (cb == nullptr) {
      if (PyErr_Occurred()) {
        Py_DECREF(list);
        return nullptr;
      }
      continue;
    }
    const int rc = PyList_Append(list, cb);
    Py_DECREF(cb);
    if (rc < 0) {
      Py_DECREF(list);
      return nullptr;
    }
  }
  return list;
}

PyObject* BusRepr(PyObject* self) {
  return PyUnicode_FromFormat("<leakguard.EventBus with %zd live listeners>", BusLength(self));
}

int BusTraverse(PyObject* self, visitproc visit, void* arg) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(bus->listeners);
  Py_VISIT(bus->on_error);
  Py_VISIT(bus->prune_cb);
  return 0;
}

int BusClearRefs(PyObject* self) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  PyObject* empty = PyTuple_New(0);
  if (empty == nullptr) {
    PyErr_Clear();
    return 0;  // Keep the list; nothing else to break.
  }
  Py_XSETREF(bus->listeners, empty);
  Py_CLEAR(bus->on_error);
  return 0;
}

void BusDealloc(PyObject* self) {
  Bus* bus = reinterpret_cast<Bus*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (bus->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  Py_CLEAR(bus->listeners);
  Py_CLEAR(bus->on_error);
  Py_CLEAR(bus->prune_cb);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kBusMethods[] = {
    {"subscribe", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(BusSubscribe)),
     METH_VARARGS | METH_KEYWORDS, kSubscribeDoc},
    {"unsubscribe", BusUnsubscribe, METH_O,
     "unsubscribe(callback)\n--\n\nRemove the listener; return whether it was "
     "subscribed. Bound methods match by function and object."},
    {"emit", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(BusEmit)),
     METH_FASTCALL | METH_KEYWORDS, kEmitDoc},
    {"clear", BusClear, METH_NOARGS, "clear()\n--\n\nRemove every listener."},
    {"listeners", BusListeners, METH_NOARGS,
     "listeners()\n--\n\nThe live listeners, as a new list (bound methods "
     "rebuilt)."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef kBusMembers[] = {
    {"__weaklistoffset__", LG_T_PYSSIZET, offsetof(Bus, weakreflist), LG_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

const char kBusDoc[] =
    "EventBus(*, on_error=None)\n--\n\n"
    "A publish/subscribe bus that holds its listeners weakly: a listener\n"
    "whose object is gone leaves the bus by itself and is never called\n"
    "again. on_error(exc, listener) receives listener failures (default:\n"
    "sys.unraisablehook).";

PyType_Slot kBusSlots[] = {
    {Py_tp_new, reinterpret_cast<void*>(BusNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(BusDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(BusTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(BusClearRefs)},
    {Py_tp_methods, kBusMethods},
    {Py_tp_members, kBusMembers},
    {Py_tp_repr, reinterpret_cast<void*>(BusRepr)},
    {Py_sq_length, reinterpret_cast<void*>(BusLength)},
    {Py_tp_doc, const_cast<char*>(kBusDoc)},
    {0, nullptr},
};

PyType_Spec kBusSpec = {
    "leakguard.EventBus",
    sizeof(Bus),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE,
    kBusSlots,
};

}  // namespace

int ExecEventBus(PyObject* module, ModuleState* state) {
  state->listener_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kListenerSpec));
  if (state->listener_type == nullptr) return -1;
  state->bus_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kBusSpec));
  if (state->bus_type == nullptr) return -1;
  return AddObjectRef(module, "EventBus", reinterpret_cast<PyObject*>(state->bus_type));
}

}  // namespace leakguard::python::internal
