// leakguard.RequestTracker and leakguard.rss(): per-request memory accounting
// from Python, on leakguard::RequestTracker (constant-memory p50/p99, the
// worst units) and leakguard::ReadRss() (one pread of /proc/self/statm).
//
// The tracker's reports (every report_every units, and each unit past
// rss_threshold_bytes) go to Python's logging, logger "leakguard"
// (PythonLoggingSink). record() releases nothing: it is a few arithmetic
// steps under the tracker's mutex; the sink takes the GIL itself.

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/process.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/request_tracker.h"
#include "leakguard/sink.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Tracker {
  PyObject_HEAD
      // Owned; both null only while __init__ has not run.
      leakguard::RequestTracker* tracker;
  leakguard::PythonLoggingSink* sink;
};

Tracker* AsTracker(PyObject* self) { return reinterpret_cast<Tracker*>(self); }

bool Ready(Tracker* t) {
  if (t->tracker != nullptr) return true;
  PyErr_SetString(PyExc_RuntimeError, "RequestTracker.__init__() was not called");
  return false;
}

PyObject* Rss(PyObject* /*module*/, PyObject* /*unused*/) {
  absl::StatusOr<int64_t> rss = leakguard::ReadRss();
  if (!rss.ok()) {
    return SetPythonErrorFromStatus(rss.status(), "leakguard.rss()");
  }
  return PyLong_FromLongLong(*rss);
}

int TrackerInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"report_every", "rss_threshold_bytes", "worst_kept", "name",
                                   nullptr};
  long long report_every = 0;
  long long threshold = 0;
  int worst_kept = 10;
  const char* name = "requests";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$LLis:RequestTracker",
                                   const_cast<char**>(keywords), &report_every, &threshold,
                                   &worst_kept, &name)) {
    return -1;
  }
  auto sink = std::make_unique<leakguard::PythonLoggingSink>("leakguard");
  leakguard::RequestTrackerOptions options;
  options.report_every = report_every;
  options.rss_threshold_bytes = threshold;
  options.worst_kept = worst_kept;
  options.sink = sink.get();
  options.name = name;
  absl::StatusOr<std::unique_ptr<leakguard::RequestTracker>> tracker =
      leakguard::RequestTracker::Create(std::move(options));
  if (!tracker.ok()) {
    SetPythonErrorFromStatus(tracker.status());
    return -1;
  }
  Tracker* t = AsTracker(self);
  delete t->tracker;
  delete t->sink;
  t->tracker = tracker->release();
  t->sink = sink.release();
  return 0;
}

void TrackerDealloc(PyObject* self) {
  Tracker* t = AsTracker(self);
  PyTypeObject* type = Py_TYPE(self);
  delete t->tracker;
  delete t->sink;
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* TrackerRecord(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"label", "rss_delta", "elapsed", nullptr};
  const char* label = nullptr;
  Py_ssize_t label_size = 0;
  long long rss_delta = 0;
  double elapsed = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#L|d:record", const_cast<char**>(keywords),
                                   &label, &label_size, &rss_delta, &elapsed)) {
    return nullptr;
  }
  Tracker* t = AsTracker(self);
  if (!Ready(t)) return nullptr;
  if (!(elapsed >= 0)) {
    PyErr_SetString(PyExc_ValueError, "record(): elapsed must be >= 0 seconds");
    return nullptr;
  }
  leakguard::UnitRecord record;
  record.label.assign(label, static_cast<size_t>(label_size));
  record.rss_delta = rss_delta;
  record.elapsed = absl::Seconds(elapsed);
  t->tracker->Record(std::move(record));
  Py_RETURN_NONE;
}

PyObject* UnitTuple(const leakguard::UnitRecord& unit) {
  return Py_BuildValue("(s#Ld)", unit.label.data(), static_cast<Py_ssize_t>(unit.label.size()),
                       static_cast<long long>(unit.rss_delta), absl::ToDoubleSeconds(unit.elapsed));
}

PyObject* TrackerStats(PyObject* self, PyObject* /*unused*/) {
  Tracker* t = AsTracker(self);
  if (!Ready(t)) return nullptr;
  const leakguard::TrackerStats stats = t->tracker->Stats();
  PyObject* worst = PyList_New(static_cast<Py_ssize_t>(stats.worst.size()));
  if (worst == nullptr) return nullptr;
  for (size_t i = 0; i < stats.worst.size(); ++i) {
    PyObject* row = UnitTuple(stats.worst[i]);
    if (row == nullptr) {
      Py_DECREF(worst);
      return nullptr;
    }
    PyList_SET_ITEM(worst, static_cast<Py_ssize_t>(i), row);
  }
  return Py_BuildValue("{sLsLsLsLsLsLsN}", "count", static_cast<long long>(stats.count),
                       "total_rss_delta", static_cast<long long>(stats.total_rss_delta),
                       "p50_rss_delta", static_cast<long long>(stats.p50_rss_delta),
                       "p99_rss_delta", static_cast<long long>(stats.p99_rss_delta),
                       "max_rss_delta", static_cast<long long>(stats.max_rss_delta),
                       "over_threshold", static_cast<long long>(stats.over_threshold), "worst",
                       worst);
}

PyObject* TrackerReset(PyObject* self, PyObject* /*unused*/) {
  Tracker* t = AsTracker(self);
  if (!Ready(t)) return nullptr;
  t->tracker->Reset();
  Py_RETURN_NONE;
}

PyMethodDef kTrackerMethods[] = {
    {"record", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(TrackerRecord)),
     METH_VARARGS | METH_KEYWORDS,
     "record($self, label, rss_delta, elapsed=0.0)\n--\n\n"
     "Record one unit of work: its label (e.g. 'GET /users'), its RSS growth\n"
     "in bytes and its duration in seconds. Past rss_threshold_bytes it is\n"
     "logged as a warning; every report_every units the statistics are\n"
     "logged (logger 'leakguard').\n\n"
     "    >>> t = RequestTracker()\n"
     "    >>> t.record('GET /a', 4096, 0.002)\n"
     "    >>> t.stats()['count']\n"
     "    1"},
    {"stats", TrackerStats, METH_NOARGS,
     "stats($self, /)\n--\n\n"
     "The statistics since creation or reset(), as a dict: count,\n"
     "total_rss_delta, p50_rss_delta, p99_rss_delta (within 1/16),\n"
     "max_rss_delta, over_threshold, and worst: [(label, rss_delta, elapsed)]\n"
     "largest first."},
    {"reset", TrackerReset, METH_NOARGS, "reset($self, /)\n--\n\nForget every unit recorded."},
    {nullptr, nullptr, 0, nullptr},
};

const char kTrackerDoc[] =
    "RequestTracker(*, report_every=0, rss_threshold_bytes=0, worst_kept=10, "
    "name='requests')\n--\n\n"
    "Per-request memory accounting in constant memory: p50/p99 of the RSS\n"
    "growth per unit, the worst units by label. Thread-safe. Reports go to\n"
    "the 'leakguard' logger: a warning for each unit that grew by at least\n"
    "rss_threshold_bytes (0: never), the statistics every report_every units\n"
    "(0: never). Measure a unit with leakguard.rss() before and after; the\n"
    "WSGI/ASGI middleware in leakguard.middleware does it per request.";

PyType_Slot kTrackerSlots[] = {
    {Py_tp_doc, const_cast<char*>(kTrackerDoc)},
    {Py_tp_init, reinterpret_cast<void*>(TrackerInit)},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(TrackerDealloc)},
    {Py_tp_methods, kTrackerMethods},
    {0, nullptr},
};

PyType_Spec kTrackerSpec = {
    "leakguard.RequestTracker",
    sizeof(Tracker),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    kTrackerSlots,
};

PyMethodDef kRequestTrackerFunctions[] = {
    {"rss", Rss, METH_NOARGS,
     "rss($module, /)\n--\n\n"
     "The process's resident set size in bytes, read the cheapest way there\n"
     "is (one pread of /proc/self/statm). OSError without /proc.\n\n"
     "    >>> leakguard.rss() > 0\n"
     "    True"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

int ExecRequestTracker(PyObject* module) {
  if (PyModule_AddFunctions(module, kRequestTrackerFunctions) < 0) return -1;
  PyObject* type = MakeHeapType(module, &kTrackerSpec);
  if (type == nullptr) return -1;
  const int rc = AddObjectRef(module, "RequestTracker", type);
  Py_DECREF(type);
  return rc;
}

}  // namespace leakguard::python::internal
