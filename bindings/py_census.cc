// The type census from Python, with objgraph's names and results:
// leakguard.typestats(), most_common_types(), count(), growth(), by_type().
// Each walks the collector's lists in C (leakguard/object_graph.h) instead
// of building gc.get_objects() and calling type() on every object.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

TypeNames NamesOf(int shortnames) { return shortnames ? TypeNames::kShort : TypeNames::kFull; }

PyObject* CountsList(const std::vector<TypeCount>& counts) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(counts.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < counts.size(); ++i) {
    PyObject* row = Py_BuildValue("(s#L)", counts[i].name.data(),
                                  static_cast<Py_ssize_t>(counts[i].name.size()),
                                  static_cast<long long>(counts[i].count));
    if (row == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), row);
  }
  return list;
}

PyObject* TypeStats(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"shortnames", nullptr};
  int shortnames = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:typestats", const_cast<char**>(keywords),
                                   &shortnames)) {
    return nullptr;
  }
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  if (!census.ok()) return SetPythonErrorFromStatus(census.status(), "typestats()");
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  for (const TypeCount& row : census->Counts(NamesOf(shortnames))) {
    PyObject* count = PyLong_FromLongLong(row.count);
    if (count == nullptr || PyDict_SetItemString(dict, row.name.c_str(), count) < 0) {
      Py_XDECREF(count);
      Py_DECREF(dict);
      return nullptr;
    }
    Py_DECREF(count);
  }
  return dict;
}

PyObject* MostCommonTypes(PyObject* /*module*/, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"limit", "shortnames", nullptr};
  Py_ssize_t limit = 10;
  int shortnames = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|np:most_common_types",
                                   const_cast<char**>(keywords), &limit, &shortnames)) {
    return nullptr;
  }
  if (limit < 0) {
    PyErr_SetString(PyExc_ValueError, "most_common_types(): limit must be >= 0 (0: all)");
    return nullptr;
  }
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  if (!census.ok()) return SetPythonErrorFromStatus(census.status(), "most_common_types()");
  return CountsList(census->MostCommon(static_cast<size_t>(limit), NamesOf(shortnames)));
}

PyObject* Count(PyObject* /*module*/, PyObject* arg) {
  Py_ssize_t size = 0;
  const char* name = PyUnicode_AsUTF8AndSize(arg, &size);
  if (name == nullptr) return nullptr;
  absl::StatusOr<TypeCensus> census = TakeTypeCensus();
  if (!census.ok()) return SetPythonErrorFromStatus(census.status(), "count()");
  return PyLong_FromLongLong(census->Count(std::string_view(name, static_cast<size_t>(size))));
}

PyObject* ByType(PyObject* /*module*/, PyObject* arg) {
  Py_ssize_t size = 0;
  const char* name = PyUnicode_AsUTF8AndSize(arg, &size);
  if (name == nullptr) return nullptr;
  absl::StatusOr<std::vector<Ref>> objects =
      ObjectsByType(std::string_view(name, static_cast<size_t>(size)));
  if (!objects.ok()) return SetPythonErrorFromStatus(objects.status(), "by_type()");
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(objects->size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < objects->size(); ++i) {
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), NewRef((*objects)[i].get()));
  }
  return list;
}

// objgraph.growth(limit=10, peak_stats={}, shortnames=True): peak_stats is
// read and raised in place; without one, the module keeps its own dict
// (objgraph's shared default argument), module attribute _growth_peaks.
PyObject* Growth(PyObject* module, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"limit", "peak_stats", "shortnames", nullptr};
  Py_ssize_t limit = 10;
  PyObject* peaks = Py_None;
  int shortnames = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nOp:growth", const_cast<char**>(keywords),
                                   &limit, &peaks, &shortnames)) {
    return nullptr;
  }
  if (limit < 0) {
    PyErr_SetString(PyExc_ValueError, "growth(): limit must be >= 0 (0: all)");
    return nullptr;
  }
  Ref own;
  if (peaks == Py_None) {
    own = Steal(PyObject_GetAttrString(module, "_growth_peaks"));
    if (!own) {
      PyErr_Clear();
      own = Steal(PyDict_New());
      if (!own || PyObject_SetAttrString(module, "_growth_peaks", own.get()) < 0) return nullptr;
    }
    peaks = own.get();
  }
  if (!PyDict_Check(peaks)) {
    PyErr_Format(PyExc_TypeError, "growth(): peak_stats must be a dict, not %.200s",
                 Py_TYPE(peaks)->tp_name);
    return nullptr;
  }
  CensusOptions options;
  options.collect_first = true;  // as objgraph.growth: garbage is not growth
  absl::StatusOr<TypeCensus> census = TakeTypeCensus(options);
  if (!census.ok()) return SetPythonErrorFromStatus(census.status(), "growth()");
  struct Row {
    std::string name;
    int64_t count;
    int64_t delta;
  };
  std::vector<Row> rows;
  for (const TypeCount& row : census->Counts(NamesOf(shortnames))) {
    PyObject* previous = PyDict_GetItemString(peaks, row.name.c_str());  // Borrowed.
    long long peak = 0;
    if (previous != nullptr) {
      peak = PyLong_AsLongLong(previous);
      if (peak == -1 && PyErr_Occurred()) return nullptr;
    }
    if (row.count <= peak) continue;
    rows.push_back({row.name, row.count, row.count - peak});
    PyObject* count = PyLong_FromLongLong(row.count);
    if (count == nullptr || PyDict_SetItemString(peaks, row.name.c_str(), count) < 0) {
      Py_XDECREF(count);
      return nullptr;
    }
    Py_DECREF(count);
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.delta > b.delta; });
  if (limit > 0 && rows.size() > static_cast<size_t>(limit))
    rows.resize(static_cast<size_t>(limit));
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(rows.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < rows.size(); ++i) {
    PyObject* row =
        Py_BuildValue("(s#LL)", rows[i].name.data(), static_cast<Py_ssize_t>(rows[i].name.size()),
                      static_cast<long long>(rows[i].count), static_cast<long long>(rows[i].delta));
    if (row == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), row);
  }
  return list;
}

template <typename F>
PyCFunction Cast(F f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

PyMethodDef kCensusFunctions[] = {
    {"typestats", Cast(TypeStats), METH_VARARGS | METH_KEYWORDS,
     "typestats($module, /, shortnames=True)\n--\n\n"
     "Counts of the gc-tracked objects by type name, as a dict in the order\n"
     "each type is first met: objgraph.typestats().\n\n"
     "    >>> leakguard.typestats()['function'] > 0\n"
     "    True"},
    {"most_common_types", Cast(MostCommonTypes), METH_VARARGS | METH_KEYWORDS,
     "most_common_types($module, /, limit=10, shortnames=True)\n--\n\n"
     "The limit most common type names (0: all), most first, as\n"
     "[(name, count)]: objgraph.most_common_types().\n\n"
     "    >>> name, count = leakguard.most_common_types(limit=1)[0]\n"
     "    >>> count > 0\n"
     "    True"},
    {"count", Count, METH_O,
     "count($module, typename, /)\n--\n\n"
     "How many tracked objects have that type name (a dotted name is a full\n"
     "one, 'module.Class'): objgraph.count()."},
    {"by_type", ByType, METH_O,
     "by_type($module, typename, /)\n--\n\n"
     "The tracked objects of that type name, as a list: objgraph.by_type()."},
    {"growth", Cast(Growth), METH_VARARGS | METH_KEYWORDS,
     "growth($module, /, limit=10, peak_stats=None, shortnames=True)\n--\n\n"
     "After a full collection, the type names whose count passed their peak\n"
     "since the last call, as [(name, count, delta)], largest growth first:\n"
     "objgraph.growth(). peak_stats (a dict) is read and raised in place;\n"
     "without one the module keeps its own.\n\n"
     "    >>> peaks = {}\n"
     "    >>> _ = leakguard.growth(peak_stats=peaks)  # the baseline\n"
     "    >>> class Node: pass\n"
     "    >>> keep = [Node() for _ in range(1000)]\n"
     "    >>> leakguard.growth(limit=1, peak_stats=peaks)\n"
     "    [('Node', 1000, 1000)]"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecCensus(PyObject* module) { return PyModule_AddFunctions(module, kCensusFunctions); }

}  // namespace leakguard::python::internal
