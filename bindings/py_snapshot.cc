// leakguard.take_snapshot() and leakguard.Snapshot: tracemalloc snapshots held
// as compact C++ data (leakguard/tracemalloc.h), whose statistics() and
// compare_to() group in C++ and return tracemalloc's own result types
// (tracemalloc.Statistic, StatisticDiff, Traceback), so code written for
// tracemalloc reads them unchanged.

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

namespace tm = leakguard::tracemalloc;

struct SnapshotObject {
  PyObject_HEAD tm::Snapshot* snapshot;  // Owned; never null once made by New().
};

PyObject* NewSnapshot(PyTypeObject* type, tm::Snapshot snapshot) {
  SnapshotObject* self = PyObject_New(SnapshotObject, type);
  if (self == nullptr) return nullptr;
  self->snapshot = new tm::Snapshot(std::move(snapshot));
  return reinterpret_cast<PyObject*>(self);
}

void SnapshotDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  delete reinterpret_cast<SnapshotObject*>(self)->snapshot;
  PyObject_Free(self);
  Py_DECREF(type);
}

const tm::Snapshot& Of(PyObject* self) {
  return *reinterpret_cast<SnapshotObject*>(self)->snapshot;
}

// tracemalloc.Traceback(frames): frames most recent first, as
// _tracemalloc gives them (Traceback reverses them to oldest first).
PyObject* TracebackObject(PyObject* traceback_type, const tm::Traceback& traceback) {
  const std::size_t n = traceback.size();
  Ref frames = Steal(PyTuple_New(static_cast<Py_ssize_t>(n)));
  if (!frames) return nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    const tm::Frame frame = traceback[n - 1 - i];
    PyObject* item = Py_BuildValue(
        "(NL)",
        PyUnicode_DecodeUTF8(frame.filename.data(), static_cast<Py_ssize_t>(frame.filename.size()),
                             "surrogatepass"),
        static_cast<long long>(frame.lineno));
    if (item == nullptr) return nullptr;
    PyTuple_SET_ITEM(frames.get(), static_cast<Py_ssize_t>(i), item);
  }
  return PyObject_CallOneArg(traceback_type, frames.get());
}

bool ParseKey(PyObject* key, tm::GroupBy* out) {
  const char* name = PyUnicode_AsUTF8(key);
  if (name == nullptr) return false;
  absl::StatusOr<tm::GroupBy> group_by = tm::ParseGroupBy(name);
  if (!group_by.ok()) {
    PyErr_Format(PyExc_ValueError, "unknown key_type: %R", key);
    return false;
  }
  *out = *group_by;
  return true;
}

PyObject* TakeSnapshot(PyObject* module, PyObject* /*unused*/) {
  absl::StatusOr<tm::Snapshot> snapshot = tm::Snapshot::Take();
  if (!snapshot.ok()) return SetPythonErrorFromStatus(snapshot.status(), "take_snapshot()");
  Ref type = Steal(PyObject_GetAttrString(module, "Snapshot"));
  if (!type) return nullptr;
  return NewSnapshot(reinterpret_cast<PyTypeObject*>(type.get()), *std::move(snapshot));
}

PyObject* SnapshotFromTracemalloc(PyObject* cls, PyObject* snapshot) {
  absl::StatusOr<tm::Snapshot> converted = tm::Snapshot::FromPython(Handle(snapshot));
  if (!converted.ok())
    return SetPythonErrorFromStatus(converted.status(), "Snapshot.from_tracemalloc()");
  return NewSnapshot(reinterpret_cast<PyTypeObject*>(cls), *std::move(converted));
}

PyObject* SnapshotToTracemalloc(PyObject* self, PyObject* /*unused*/) {
  absl::StatusOr<Ref> python = Of(self).ToPython();
  if (!python.ok()) return SetPythonErrorFromStatus(python.status(), "Snapshot.to_tracemalloc()");
  return python->Release();
}

PyObject* Statistics(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"key_type", "cumulative", nullptr};
  PyObject* key = nullptr;
  int cumulative = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|p:statistics", const_cast<char**>(keywords),
                                   &key, &cumulative)) {
    return nullptr;
  }
  tm::GroupBy group_by;
  if (!ParseKey(key, &group_by)) return nullptr;
  absl::StatusOr<tm::StatisticList> stats = Of(self).Statistics(group_by, cumulative != 0);
  if (!stats.ok()) return SetPythonErrorFromStatus(stats.status(), "Snapshot.statistics()");
  Ref tracemalloc = Steal(PyImport_ImportModule("tracemalloc"));
  if (!tracemalloc) return nullptr;
  Ref traceback_type = Steal(PyObject_GetAttrString(tracemalloc.get(), "Traceback"));
  Ref statistic_type = Steal(PyObject_GetAttrString(tracemalloc.get(), "Statistic"));
  if (!traceback_type || !statistic_type) return nullptr;
  Ref list = Steal(PyList_New(static_cast<Py_ssize_t>(stats->size())));
  if (!list) return nullptr;
  for (std::size_t i = 0; i < stats->size(); ++i) {
    const tm::Statistic& s = (*stats)[i];
    PyObject* traceback = TracebackObject(traceback_type.get(), s.traceback);
    if (traceback == nullptr) return nullptr;
    PyObject* item =
        PyObject_CallFunction(statistic_type.get(), "NLL", traceback,
                              static_cast<long long>(s.size), static_cast<long long>(s.count));
    if (item == nullptr) return nullptr;
    PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), item);
  }
  return list.Release();
}

PyObject* CompareTo(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"old_snapshot", "key_type", "cumulative", nullptr};
  PyObject* old = nullptr;
  PyObject* key = nullptr;
  int cumulative = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!U|p:compare_to", const_cast<char**>(keywords),
                                   Py_TYPE(self), &old, &key, &cumulative)) {
    return nullptr;
  }
  tm::GroupBy group_by;
  if (!ParseKey(key, &group_by)) return nullptr;
  absl::StatusOr<tm::StatisticDiffList> diffs =
      Of(self).CompareTo(Of(old), group_by, cumulative != 0);
  if (!diffs.ok()) return SetPythonErrorFromStatus(diffs.status(), "Snapshot.compare_to()");
  Ref tracemalloc = Steal(PyImport_ImportModule("tracemalloc"));
  if (!tracemalloc) return nullptr;
  Ref traceback_type = Steal(PyObject_GetAttrString(tracemalloc.get(), "Traceback"));
  Ref diff_type = Steal(PyObject_GetAttrString(tracemalloc.get(), "StatisticDiff"));
  if (!traceback_type || !diff_type) return nullptr;
  Ref list = Steal(PyList_New(static_cast<Py_ssize_t>(diffs->size())));
  if (!list) return nullptr;
  for (std::size_t i = 0; i < diffs->size(); ++i) {
    const tm::StatisticDiff& d = (*diffs)[i];
    PyObject* traceback = TracebackObject(traceback_type.get(), d.traceback);
    if (traceback == nullptr) return nullptr;
    PyObject* item =
        PyObject_CallFunction(diff_type.get(), "NLLLL", traceback, static_cast<long long>(d.size),
                              static_cast<long long>(d.size_diff), static_cast<long long>(d.count),
                              static_cast<long long>(d.count_diff));
    if (item == nullptr) return nullptr;
    PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), item);
  }
  return list.Release();
}

PyObject* GetTraceCount(PyObject* self, void* /*closure*/) {
  return PyLong_FromSize_t(Of(self).trace_count());
}

PyObject* GetTotalSize(PyObject* self, void* /*closure*/) {
  return PyLong_FromUnsignedLongLong(Of(self).total_size());
}

PyObject* GetTracebackLimit(PyObject* self, void* /*closure*/) {
  return PyLong_FromLong(Of(self).traceback_limit());
}

template <typename F>
PyCFunction Cast(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

PyMethodDef kSnapshotMethods[] = {
    {"statistics", Cast(Statistics), METH_VARARGS | METH_KEYWORDS,
     "statistics($self, /, key_type, cumulative=False)\n--\n\n"
     "tracemalloc.Snapshot.statistics(): the traces grouped by 'lineno',\n"
     "'filename' or 'traceback', largest first, as tracemalloc.Statistic."},
    {"compare_to", Cast(CompareTo), METH_VARARGS | METH_KEYWORDS,
     "compare_to($self, /, old_snapshot, key_type, cumulative=False)\n--\n\n"
     "tracemalloc.Snapshot.compare_to(): the change per key from old_snapshot\n"
     "(a leakguard.Snapshot) to this one, largest first, as\n"
     "tracemalloc.StatisticDiff.\n\n"
     "    >>> import tracemalloc\n"
     "    >>> tracemalloc.start()\n"
     "    >>> before = leakguard.take_snapshot()\n"
     "    >>> kept = [bytes(1000) for _ in range(100)]\n"
     "    >>> top = leakguard.take_snapshot().compare_to(before, 'lineno')[0]\n"
     "    >>> type(top).__name__, top.count_diff >= 100, top.size_diff >= 100000\n"
     "    ('StatisticDiff', True, True)\n"
     "    >>> tracemalloc.stop()"},
    {"to_tracemalloc", SnapshotToTracemalloc, METH_NOARGS,
     "to_tracemalloc($self, /)\n--\n\nA tracemalloc.Snapshot with the same traces."},
    {"from_tracemalloc", SnapshotFromTracemalloc, METH_O | METH_CLASS,
     "from_tracemalloc($type, snapshot, /)\n--\n\nThe leakguard.Snapshot of a "
     "tracemalloc.Snapshot."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kSnapshotGetSet[] = {
    {"trace_count", GetTraceCount, nullptr, "Number of traces.", nullptr},
    {"total_size", GetTotalSize, nullptr, "Sum of the traces' sizes, bytes.", nullptr},
    {"traceback_limit", GetTracebackLimit, nullptr,
     "tracemalloc's frame limit when the snapshot was taken.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot kSnapshotSlots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "A tracemalloc snapshot held as compact C++ data: leakguard.take_snapshot(),\n"
                    "Snapshot.from_tracemalloc(snapshot). Immutable.")},
    {Py_tp_dealloc, reinterpret_cast<void*>(SnapshotDealloc)},
    {Py_tp_methods, kSnapshotMethods},
    {Py_tp_getset, kSnapshotGetSet},
    {0, nullptr},
};

PyType_Spec kSnapshotSpec = {
    "leakguard.Snapshot",
    sizeof(SnapshotObject),
    0,
    Py_TPFLAGS_DEFAULT | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kSnapshotSlots,
};

PyMethodDef kSnapshotFunctions[] = {
    {"take_snapshot", TakeSnapshot, METH_NOARGS,
     "take_snapshot($module, /)\n--\n\n"
     "tracemalloc.take_snapshot() as a leakguard.Snapshot (RuntimeError when\n"
     "tracemalloc is not tracing), whose statistics() and compare_to() run in\n"
     "C++ and return tracemalloc's result types."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecSnapshot(PyObject* module) {
  if (PyModule_AddFunctions(module, kSnapshotFunctions) < 0) return -1;
  PyObject* type = MakeHeapType(module, &kSnapshotSpec);
  if (type == nullptr) return -1;
  const int rc = AddObjectRef(module, "Snapshot", type);
  Py_DECREF(type);
  return rc;
}

}  // namespace leakguard::python::internal
