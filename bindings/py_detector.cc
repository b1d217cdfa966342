// leakguard.LeakDetector: the background LeakDetector (leakguard/
// leak_detector.h) from Python, its reports to the "leakguard" logger or to a
// callback. The detector's thread needs an interpreter started by leakguard
// (an embedding host, or a script run by `leakguard run`): in a plain
// python3, start() raises RuntimeError saying so.

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/leak_detector.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/report.h"
#include "leakguard/sink.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Detector {
  PyObject_HEAD leakguard::LeakDetector* detector;  // Owned; null until __init__.
  leakguard::Sink* sink;                            // Owned; outlives the detector.
  PyObject* callback;                               // Strong; null: logging.
};

Detector* AsDetector(PyObject* self) { return reinterpret_cast<Detector*>(self); }

// Stops the thread (Stop() releases the GIL while joining) and frees it.
void Destroy(Detector* d) {
  if (d->detector != nullptr) {
    d->detector->Stop();
    delete d->detector;
    d->detector = nullptr;
  }
  delete d->sink;
  d->sink = nullptr;
}

// Called on the detector's thread: the report, as a dict (RenderJson's
// fields), to the Python callback. Its exceptions go to sys.unraisablehook.
void CallPython(PyObject* callback, const leakguard::Report& report) {
  const std::string json = leakguard::RenderJson(report);
  PyGILState_STATE gil = PyGILState_Ensure();
  {  // Every Ref is dropped before the GIL is released.
    Ref module = Steal(PyImport_ImportModule("json"));
    Ref value = module ? Steal(PyObject_CallMethod(module.get(), "loads", "s#", json.data(),
                                                   static_cast<Py_ssize_t>(json.size())))
                       : Ref();
    Ref result = value ? Steal(PyObject_CallOneArg(callback, value.get())) : Ref();
    if (!result) PyErr_WriteUnraisable(callback);
  }
  PyGILState_Release(gil);
}

int DetectorInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"interval",     "threshold_bytes",
                                   "fd_threshold", "thread_threshold",
                                   "traced",       "frames",
                                   "top",          "min_report_interval",
                                   "callback",     nullptr};
  double interval = 60;
  long long threshold = 64 << 20;
  long long fd_threshold = 16;
  long long thread_threshold = 8;
  int traced = 1;
  int frames = 1;
  int top = 10;
  double min_report_interval = 600;
  PyObject* callback = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$dLLLpiidO:LeakDetector",
                                   const_cast<char**>(keywords), &interval, &threshold,
                                   &fd_threshold, &thread_threshold, &traced, &frames, &top,
                                   &min_report_interval, &callback)) {
    return -1;
  }
  if (callback != Py_None && !PyCallable_Check(callback)) {
    PyErr_SetString(PyExc_TypeError, "LeakDetector(): callback must be callable or None");
    return -1;
  }
  Detector* d = AsDetector(self);
  Destroy(d);
  Py_CLEAR(d->callback);
  leakguard::Sink* sink = nullptr;
  if (callback == Py_None) {
    sink = new leakguard::PythonLoggingSink("leakguard");
  } else {
    Py_INCREF(callback);
    d->callback = callback;
    sink = new leakguard::CallbackSink(
        [callback](const leakguard::Report& report) { CallPython(callback, report); });
  }
  leakguard::LeakDetectorOptions options;
  options.interval = absl::Seconds(interval);
  options.threshold_bytes = threshold;
  options.fd_threshold = fd_threshold;
  options.thread_threshold = thread_threshold;
  options.traced = traced != 0;
  options.frames = frames;
  options.top = top;
  options.min_report_interval = absl::Seconds(min_report_interval);
  // This class asks for no on-demand report (no report_now(), no
  // triggers), the only reports with type growth: skip the baseline's
  // type census rather than pay for it at start().
  options.type_census = false;
  options.sink = sink;
  absl::StatusOr<std::unique_ptr<leakguard::LeakDetector>> detector =
      leakguard::LeakDetector::Create(std::move(options));
  if (!detector.ok()) {
    delete sink;
    SetPythonErrorFromStatus(detector.status());
    return -1;
  }
  d->sink = sink;
  d->detector = detector->release();
  return 0;
}

bool Ready(Detector* d) {
  if (d->detector != nullptr) return true;
  PyErr_SetString(PyExc_RuntimeError, "LeakDetector.__init__() was not called");
  return false;
}

PyObject* DetectorStart(PyObject* self, PyObject* /*unused*/) {
  Detector* d = AsDetector(self);
  if (!Ready(d)) return nullptr;
  absl::Status started = d->detector->Start();
  if (!started.ok()) {
    if (absl::IsFailedPrecondition(started)) {
      PyErr_Format(PyExc_RuntimeError,
                   "LeakDetector.start(): %s (the detector needs an interpreter started by "
                   "leakguard: an embedding host, or `leakguard run script.py`)",
                   std::string(started.message()).c_str());
      return nullptr;
    }
    return SetPythonErrorFromStatus(started, "LeakDetector.start()");
  }
  Py_RETURN_NONE;
}

PyObject* DetectorStop(PyObject* self, PyObject* /*unused*/) {
  Detector* d = AsDetector(self);
  if (!Ready(d)) return nullptr;
  d->detector->Stop();
  Py_RETURN_NONE;
}

PyObject* DetectorEnter(PyObject* self, PyObject* unused) {
  PyObject* r = DetectorStart(self, unused);
  if (r == nullptr) return nullptr;
  Py_DECREF(r);
  return NewRef(self);
}

PyObject* DetectorExit(PyObject* self, PyObject* /*args*/) {
  PyObject* r = DetectorStop(self, nullptr);
  if (r == nullptr) return nullptr;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

PyObject* GetRunning(PyObject* self, void* /*closure*/) {
  Detector* d = AsDetector(self);
  return PyBool_FromLong(d->detector != nullptr && d->detector->running());
}

PyObject* GetRounds(PyObject* self, void* /*closure*/) {
  Detector* d = AsDetector(self);
  return PyLong_FromLongLong(d->detector != nullptr ? d->detector->rounds() : 0);
}

PyObject* GetReports(PyObject* self, void* /*closure*/) {
  Detector* d = AsDetector(self);
  return PyLong_FromLongLong(d->detector != nullptr ? d->detector->reports() : 0);
}

int DetectorTraverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(AsDetector(self)->callback);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

int DetectorClear(PyObject* self) {
  Detector* d = AsDetector(self);
  Destroy(d);  // The thread is gone before the callback is dropped.
  Py_CLEAR(d->callback);
  return 0;
}

void DetectorDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  DetectorClear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kDetectorMethods[] = {
    {"start", DetectorStart, METH_NOARGS,
     "start($self, /)\n--\n\n"
     "Start the thread (no-op if running); growth is measured from when it\n"
     "returns. RuntimeError in an interpreter leakguard did not start."},
    {"stop", DetectorStop, METH_NOARGS,
     "stop($self, /)\n--\n\nStop and join the thread (no-op if stopped)."},
    {"__enter__", DetectorEnter, METH_NOARGS, "__enter__($self, /)\n--\n\nstart()"},
    {"__exit__", DetectorExit, METH_VARARGS, "__exit__($self, *exc_info)\n--\n\nstop()"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kDetectorGetSet[] = {
    {"running", GetRunning, nullptr, "True while the thread runs.", nullptr},
    {"rounds", GetRounds, nullptr, "Rounds completed since the last start().", nullptr},
    {"reports", GetReports, nullptr, "Reports sent since the last start().", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

const char kDetectorDoc[] =
    "LeakDetector(*, interval=60.0, threshold_bytes=67108864, fd_threshold=16, "
    "thread_threshold=8, traced=True, frames=1, top=10, min_report_interval=600.0, "
    "callback=None)\n--\n\n"
    "The background leak detector: a thread wakes every interval seconds,\n"
    "compares RSS, tracemalloc, descriptors and threads with the baseline taken\n"
    "at start(), and reports growth past the thresholds, naming the lines that\n"
    "grew. Reports go to the 'leakguard' logger, or to callback(report_dict)\n"
    "on the detector's thread. Needs an interpreter started by leakguard (an\n"
    "embedding host, `leakguard run`); a context manager (start/stop).";

PyType_Slot kDetectorSlots[] = {
    {Py_tp_doc, const_cast<char*>(kDetectorDoc)},
    {Py_tp_init, reinterpret_cast<void*>(DetectorInit)},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(DetectorDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(DetectorTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(DetectorClear)},
    {Py_tp_methods, kDetectorMethods},
    {Py_tp_getset, kDetectorGetSet},
    {0, nullptr},
};

PyType_Spec kDetectorSpec = {
    "leakguard.LeakDetector", sizeof(Detector), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    kDetectorSlots,
};

}  // namespace

int ExecDetector(PyObject* module) {
  PyObject* type = MakeHeapType(module, &kDetectorSpec);
  if (type == nullptr) return -1;
  const int rc = AddObjectRef(module, "LeakDetector", type);
  Py_DECREF(type);
  return rc;
}

}  // namespace leakguard::python::internal
