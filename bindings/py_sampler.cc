// leakguard.Sampler: the sampled allocation tracker (leakguard/sampler.h)
// from Python, Python's allocators and, with native=True, malloc and mmap
// as called by every loaded library. In a plain python3 the first start()
// attaches leakguard to the running interpreter (Interpreter::Attach), so
// the sampler is stopped before the interpreter finalizes.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/sampler.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

struct Sampler {
  PyObject_HEAD leakguard::AllocationSampler* sampler;  // Owned; null until __init__.
};

Sampler* AsSampler(PyObject* self) { return reinterpret_cast<Sampler*>(self); }

bool Ready(Sampler* s) {
  if (s->sampler != nullptr) return true;
  PyErr_SetString(PyExc_RuntimeError, "Sampler.__init__() was not called");
  return false;
}

int SamplerInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"sampling_interval", "max_frames", "native", "seed",
                                   "max_samples",       nullptr};
  long long interval = int64_t{512} * 1024;
  int max_frames = 16;
  int native = 0;
  unsigned long long seed = 0;
  long long max_samples = int64_t{1} << 20;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$LipKL:Sampler", const_cast<char**>(keywords),
                                   &interval, &max_frames, &native, &seed, &max_samples)) {
    return -1;
  }
  leakguard::SamplerOptions options;
  options.sampling_interval = interval;
  options.max_frames = max_frames;
  options.native = native != 0;
  options.seed = seed;
  options.max_samples = max_samples;
  absl::StatusOr<std::unique_ptr<leakguard::AllocationSampler>> sampler =
      leakguard::AllocationSampler::Create(std::move(options));
  if (!sampler.ok()) {
    SetPythonErrorFromStatus(sampler.status());
    return -1;
  }
  Sampler* s = AsSampler(self);
  delete s->sampler;
  s->sampler = sampler->release();
  return 0;
}

void SamplerDealloc(PyObject* self) {
  Sampler* s = AsSampler(self);
  PyTypeObject* type = Py_TYPE(self);
  delete s->sampler;  // stops it
  type->tp_free(self);
  Py_DECREF(type);
}

PyObject* SamplerStart(PyObject* self, PyObject* /*unused*/) {
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  // A host that started Python itself (a plain python3) is attached once;
  // the handle lives as long as the process.
  static leakguard::Interpreter* attached = nullptr;
  absl::Status started = s->sampler->Start();
  if (!started.ok() && attached == nullptr &&
      started.code() == absl::StatusCode::kFailedPrecondition &&
      started.message().find("Interpreter") != std::string::npos) {
    absl::StatusOr<leakguard::Interpreter> handle = leakguard::Interpreter::Attach();
    if (handle.ok()) {
      attached = new leakguard::Interpreter(*std::move(handle));
      started = s->sampler->Start();
    }
  }
  if (!started.ok()) {
    return SetPythonErrorFromStatus(started);
  }
  Py_RETURN_NONE;
}

PyObject* SamplerStop(PyObject* self, PyObject* /*unused*/) {
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  s->sampler->Stop();
  Py_RETURN_NONE;
}

PyObject* SamplerEnter(PyObject* self, PyObject* unused) {
  if (SamplerStart(self, unused) == nullptr) return nullptr;
  Py_DECREF(Py_None);
  Py_INCREF(self);
  return self;
}

PyObject* SamplerExit(PyObject* self, PyObject* /*args*/) { return SamplerStop(self, nullptr); }

PyObject* SamplerStats(PyObject* self, PyObject* /*unused*/) {
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  const leakguard::SamplerStats st = s->sampler->Stats();
  return Py_BuildValue(
      "{sOsOsLsLsLsLsLsLsLsLsLsL}", "running", st.running ? Py_True : Py_False, "hooked",
      st.hooked ? Py_True : Py_False, "sampling_interval",
      static_cast<long long>(st.sampling_interval), "live_samples",
      static_cast<long long>(st.live_samples), "samples", static_cast<long long>(st.samples),
      "freed", static_cast<long long>(st.freed), "dropped", static_cast<long long>(st.dropped),
      "live_bytes_estimate", static_cast<long long>(st.live_bytes_estimate), "table_bytes",
      static_cast<long long>(st.table_bytes), "stacks", static_cast<long long>(st.stacks),
      "native_live_samples", static_cast<long long>(st.native_live_samples),
      "native_bytes_estimate", static_cast<long long>(st.native_bytes_estimate));
}

// A file name as the sampler read it from a code object (lone surrogates
// encoded as 3-byte sequences): decoded back to the very str Python had.
PyObject* FileNameText(const std::string& text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogatepass");
}

// A library path or symbol name, bytes from the loader: decoded the way
// os.fsdecode() does.
PyObject* LoaderText(const std::string& text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogateescape");
}

PyObject* SiteDict(const leakguard::SiteEstimate& e) {
  return Py_BuildValue(
      "{sNsLsdsdsdsLsLsOsNsN}", "filename", FileNameText(e.filename), "lineno",
      static_cast<long long>(e.lineno), "bytes", e.bytes, "stderr_bytes", e.stderr_bytes, "blocks",
      e.blocks, "samples", static_cast<long long>(e.samples), "oldest_epoch",
      static_cast<long long>(e.oldest_epoch), "native", e.native ? Py_True : Py_False, "library",
      LoaderText(e.library), "function", LoaderText(e.function));
}

// The `top` argument of live_by_line() and to_json(): >= 0, 0 for all.
bool ParseTop(PyObject* args, PyObject* kwargs, const char* format, Py_ssize_t* top) {
  static const char* keywords[] = {"top", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, const_cast<char**>(keywords), top)) {
    return false;
  }
  if (*top < 0) {
    PyErr_Format(PyExc_ValueError, "%s(): top must be >= 0", format + 4);
    return false;
  }
  return true;
}

PyObject* SamplerLiveByLine(PyObject* self, PyObject* args, PyObject* kwargs) {
  Py_ssize_t top = 10;
  if (!ParseTop(args, kwargs, "|n:live_by_line", &top)) return nullptr;
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  std::vector<leakguard::SiteEstimate> lines;
  Py_BEGIN_ALLOW_THREADS lines = s->sampler->LiveByLine(static_cast<std::size_t>(top));
  Py_END_ALLOW_THREADS PyObject* out = PyList_New(static_cast<Py_ssize_t>(lines.size()));
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    PyObject* row = SiteDict(lines[i]);
    if (row == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyList_SET_ITEM(out, static_cast<Py_ssize_t>(i), row);
  }
  return out;
}

PyObject* SamplerCollapsed(PyObject* self, PyObject* /*unused*/) {
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  std::string text;
  Py_BEGIN_ALLOW_THREADS text = s->sampler->CollapsedStacks();
  Py_END_ALLOW_THREADS return PyUnicode_DecodeUTF8(
      text.data(), static_cast<Py_ssize_t>(text.size()), "surrogateescape");
}

PyObject* SamplerToJson(PyObject* self, PyObject* args, PyObject* kwargs) {
  Py_ssize_t top = 20;
  if (!ParseTop(args, kwargs, "|n:to_json", &top)) return nullptr;
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  std::string text;
  Py_BEGIN_ALLOW_THREADS text = s->sampler->ToJson(static_cast<std::size_t>(top));
  Py_END_ALLOW_THREADS return PyUnicode_DecodeUTF8(
      text.data(), static_cast<Py_ssize_t>(text.size()), "surrogateescape");
}

PyObject* SamplerRunning(PyObject* self, void* /*closure*/) {
  Sampler* s = AsSampler(self);
  if (!Ready(s)) return nullptr;
  return PyBool_FromLong(s->sampler->running());
}

PyMethodDef kSamplerMethods[] = {
    {"start", SamplerStart, METH_NOARGS,
     "start($self, /)\n--\n\n"
     "Hook the allocators and start sampling (clears an earlier run's\n"
     "samples). RuntimeError if another Sampler runs in the process."},
    {"stop", SamplerStop, METH_NOARGS,
     "stop($self, /)\n--\n\nStop sampling, unhook, put every relocation slot back, drop the\n"
     "samples."},
    {"__enter__", SamplerEnter, METH_NOARGS, "__enter__($self, /)\n--\n\nstart(), then self."},
    {"__exit__", SamplerExit, METH_VARARGS, "__exit__($self, *exc)\n--\n\nstop()."},
    {"stats", SamplerStats, METH_NOARGS,
     "stats($self, /)\n--\n\nThe sampler's counters as a dict (running, hooked, samples,\n"
     "live_bytes_estimate, table_bytes, native_bytes_estimate, ...)."},
    {"live_by_line", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(SamplerLiveByLine)),
     METH_VARARGS | METH_KEYWORDS,
     "live_by_line($self, top=10)\n--\n\n"
     "The `top` sites holding most estimated live bytes (0: all), largest\n"
     "first: dicts with filename, lineno, bytes, stderr_bytes (a 95% interval\n"
     "is bytes +- 1.96 * stderr_bytes), blocks, samples, oldest_epoch, and\n"
     "for native memory native=True, library and function.\n\n"
     "    >>> with leakguard.Sampler(sampling_interval=64 * 1024) as s:\n"
     "    ...     data = [bytearray(1000) for _ in range(10000)]\n"
     "    ...     top = s.live_by_line(1)[0]\n"
     "    >>> top['bytes'] > 5e6\n"
     "    True"},
    {"collapsed_stacks", SamplerCollapsed, METH_NOARGS,
     "collapsed_stacks($self, /)\n--\n\n"
     "The live samples as collapsed stacks ('file:line;...;lib!function\n"
     "bytes' per line), the input of flamegraph.pl, inferno and speedscope."},
    {"to_json", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(SamplerToJson)),
     METH_VARARGS | METH_KEYWORDS,
     "to_json($self, top=20)\n--\n\nThe counters and the `top` sites as one JSON text."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kSamplerGetSet[] = {
    {"running", SamplerRunning, nullptr, "Whether the sampler runs.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

const char kSamplerDoc[] =
    "Sampler(*, sampling_interval=524288, max_frames=16, native=False, seed=0, "
    "max_samples=1048576)\n--\n\n"
    "The sampled allocation tracker, cheap enough to leave on in production:\n"
    "about one block per sampling_interval bytes allocated is recorded, with\n"
    "the bytes it stands for. native=True also samples malloc, mmap and the\n"
    "rest as called by every loaded library (C extensions, ctypes, NumPy),\n"
    "switched on in the running process. One Sampler runs at a time.\n"
    "See docs/sampler.md.";

PyType_Slot kSamplerSlots[] = {
    {Py_tp_doc, const_cast<char*>(kSamplerDoc)},
    {Py_tp_init, reinterpret_cast<void*>(SamplerInit)},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(SamplerDealloc)},
    {Py_tp_methods, kSamplerMethods},
    {Py_tp_getset, kSamplerGetSet},
    {0, nullptr},
};

PyType_Spec kSamplerSpec = {
    "leakguard.Sampler", sizeof(Sampler), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    kSamplerSlots,
};

}  // namespace

int ExecSampler(PyObject* module) {
  PyObject* type = MakeHeapType(module, &kSamplerSpec);
  if (type == nullptr) return -1;
  const int rc = AddObjectRef(module, "Sampler", type);
  Py_DECREF(type);
  return rc;
}

}  // namespace leakguard::python::internal
