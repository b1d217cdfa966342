// The Python half of the tracemalloc probe: tracing control, and turning
// Python's traces into a C++ Snapshot (and back).
//
// Version differences live in the block below and nowhere else. There are
// few, because everything goes through the `_tracemalloc` extension module,
// whose Python-level functions (start, stop, is_tracing, get_traced_memory,
// reset_peak, get_traceback_limit, get_tracemalloc_memory, clear_traces,
// _get_traces) exist with the same meaning in 3.9 through 3.13. The private
// C functions (`_PyTraceMalloc_GetTraceback` & co) that 3.13 removed are not
// used on any version: none of them can list the traces anyway.

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"
#include "probes/tracemalloc_internal.h"
#include "python/gil_capability.h"

namespace leakguard::tracemalloc {
namespace {

using internal::SnapshotTables;
using internal::SnapshotTrace;
using internal::TablesBuilder;

// ------------------------------------------------- version differences
namespace version {

// A sequence's items, readable with PySequence_Fast_ITEMS. With a GIL, a
// list or tuple is read in place (no Python code runs while we read it, so
// nobody can change it). Free-threaded builds (3.13t) have no such
// guarantee for a list another thread can reach, so they read a private
// tuple copy (PySequence_Tuple copies under the list's critical section).
Ref SequenceItems(PyObject* seq) {
#if defined(Py_GIL_DISABLED)
  return Steal(PySequence_Tuple(seq));
#else
  return Steal(PySequence_Fast(seq, "expected a sequence of traces"));
#endif
}

}  // namespace version

// ------------------------------------------------------------- helpers

absl::StatusOr<Ref> Module(const char* name) {
  Ref module = Steal(PyImport_ImportModule(name));
  if (!module) return StatusFromPythonError();
  return module;
}

// _tracemalloc.<name>(*args) (args: a tuple or nullptr).
absl::StatusOr<Ref> CallTracemalloc(const char* name,
                                    PyObject* args = nullptr) LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> module = Module("_tracemalloc");
  if (!module.ok()) return module.status();
  // Interned lookup: the measuring calls (traced memory, is_tracing) must
  // not leave a fresh name string in the type cache on every call.
  absl::StatusOr<Ref> looked_up = GetAttr(module->handle(), name);
  if (!looked_up.ok()) return looked_up.status();
  Ref func = *std::move(looked_up);
  Ref result = Steal(args != nullptr ? PyObject_Call(func.get(), args, nullptr)
                                     : PyObject_CallNoArgs(func.get()));
  if (!result) return StatusFromPythonError();
  return result;
}

absl::StatusOr<bool> IsTracingLocked() LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> r = CallTracemalloc("is_tracing");
  if (!r.ok()) return r.status();
  const int truth = PyObject_IsTrue(r->get());
  if (truth < 0) return StatusFromPythonError();
  return truth == 1;
}

absl::StatusOr<std::int64_t> AsInt64(PyObject* obj, const char* what) {
  if (!PyLong_Check(obj)) {
    return absl::InternalError(absl::StrCat(what, " is not an int"));
  }
  const long long v = PyLong_AsLongLong(obj);
  if (v == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return static_cast<std::int64_t>(v);
}

absl::StatusOr<int> TracebackLimitLocked() LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> r = CallTracemalloc("get_traceback_limit");
  if (!r.ok()) return r.status();
  absl::StatusOr<std::int64_t> v = AsInt64(r->get(), "get_traceback_limit()");
  if (!v.ok()) return v.status();
  return static_cast<int>(*v);
}

absl::Status StartLocked(int frames) LEAKGUARD_REQUIRES_GIL {
  Ref args = Steal(Py_BuildValue("(i)", frames));
  if (!args) return StatusFromPythonError();
  return CallTracemalloc("start", args.get()).status();
}

absl::Status StopLocked() LEAKGUARD_REQUIRES_GIL { return CallTracemalloc("stop").status(); }

// Puts tracemalloc into the state (tracing, frames). REQUIRES: the GIL.
absl::Status RestoreLocked(bool tracing, int frames) LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<bool> now = IsTracingLocked();
  if (!now.ok()) return now.status();
  if (!tracing) return *now ? StopLocked() : absl::OkStatus();
  if (*now) {
    absl::StatusOr<int> limit = TracebackLimitLocked();
    if (!limit.ok()) return limit.status();
    if (*limit == frames) return absl::OkStatus();
    if (absl::Status s = StopLocked(); !s.ok()) return s;
  }
  return StartLocked(frames);
}

// ------------------------------------------------- Python -> Snapshot

absl::Status BadTrace(std::size_t index, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("trace ", index, ": ", what,
                   " (expected (domain, size, traceback, total_nframe) with a traceback "
                   "of (filename: str, lineno: int) tuples, most recent first)"));
}

// Reads an int in [0, max] into `out`; false (error cleared) otherwise.
bool ReadUnsigned(PyObject* obj, std::uint64_t max, std::uint64_t& out) {
  if (!PyLong_Check(obj)) return false;
  const unsigned long long v = PyLong_AsUnsignedLongLong(obj);
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  if (v > max) return false;
  out = v;
  return true;
}

// Converts Python trace tuples, interning file names, frames and
// tracebacks. Objects seen before are recognized by address first (what
// _get_traces() returns shares one tuple per traceback, and a pickle keeps
// that sharing), then by content. The addresses stay valid because the
// caller keeps the sequence, and so every object in it, alive throughout.
class Converter {
 public:
  absl::Status Add(PyObject* const* items, std::size_t n) {
    traces_.reserve(traces_.size() + n);
    for (std::size_t i = 0; i < n; ++i) {
      PyObject* t = items[i];
      if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
        return BadTrace(i, "not a tuple of 4 items");
      }
      SnapshotTrace out;
      std::uint64_t v = 0;
      if (!ReadUnsigned(PyTuple_GET_ITEM(t, 0), std::numeric_limits<std::uint32_t>::max(), v)) {
        return BadTrace(i, "domain is not an int in 0..2**32-1");
      }
      out.domain = static_cast<std::uint32_t>(v);
      if (!ReadUnsigned(PyTuple_GET_ITEM(t, 1), std::numeric_limits<std::uint64_t>::max(), v)) {
        return BadTrace(i, "size is not an int in 0..2**64-1");
      }
      out.size = v;
      PyObject* nframe = PyTuple_GET_ITEM(t, 3);
      if (nframe != Py_None) {
        if (!ReadUnsigned(nframe, SnapshotTrace::kNoTotalNframe - 1, v)) {
          return BadTrace(i,
                          "total_nframe is neither None nor an int in "
                          "0..2**32-2");
        }
        out.total_nframe = static_cast<std::uint32_t>(v);
      }
      absl::StatusOr<std::uint32_t> stack = Stack(PyTuple_GET_ITEM(t, 2), i);
      if (!stack.ok()) return stack.status();
      out.stack = *stack;
      traces_.push_back(out);
    }
    return absl::OkStatus();
  }

  Snapshot Finish(int traceback_limit) {
    return SnapshotAccess::Make(
        builder_.Finish(), std::make_shared<const std::vector<SnapshotTrace>>(std::move(traces_)),
        traceback_limit);
  }

 private:
  absl::StatusOr<std::uint32_t> Stack(PyObject* tb, std::size_t index) {
    if (auto it = stack_ids_.find(tb); it != stack_ids_.end()) {
      return it->second;
    }
    if (!PyTuple_Check(tb)) return BadTrace(index, "traceback is not a tuple");
    const Py_ssize_t n = PyTuple_GET_SIZE(tb);
    if (n > (Py_ssize_t{1} << 24)) {  // tracemalloc stores at most 65535
      return BadTrace(index, "traceback has more than 2**24 frames");
    }
    scratch_.clear();
    for (Py_ssize_t k = 0; k < n; ++k) {
      PyObject* frame = PyTuple_GET_ITEM(tb, k);
      if (!PyTuple_Check(frame) || PyTuple_GET_SIZE(frame) != 2) {
        return BadTrace(index, "a frame is not a (filename, lineno) tuple");
      }
      PyObject* filename = PyTuple_GET_ITEM(frame, 0);
      PyObject* lineno = PyTuple_GET_ITEM(frame, 1);
      if (!PyUnicode_Check(filename)) {
        return BadTrace(index, "a frame's filename is not a str");
      }
      if (!PyLong_Check(lineno)) {
        return BadTrace(index, "a frame's lineno is not an int");
      }
      const long long line = PyLong_AsLongLong(lineno);
      if (line == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return BadTrace(index, "a frame's lineno does not fit in 64 bits");
      }
      absl::StatusOr<std::uint32_t> file = Filename(filename, index);
      if (!file.ok()) return file.status();
      scratch_.push_back(builder_.InternFrame(*file, line));
    }
    const std::uint32_t id = builder_.InternStack(scratch_.data(), scratch_.size());
    stack_ids_.emplace(tb, id);
    return id;
  }

  absl::StatusOr<std::uint32_t> Filename(PyObject* str, std::size_t index) {
    if (auto it = filename_ids_.find(str); it != filename_ids_.end()) {
      return it->second;
    }
    std::uint32_t id = 0;
    if (PyUnicode_IS_ASCII(str)) {
      // ASCII text is its own UTF-8: read it in place, allocating nothing.
      Py_ssize_t size = 0;
      const char* data = PyUnicode_AsUTF8AndSize(str, &size);
      if (data == nullptr) {
        PyErr_Clear();
        return BadTrace(index, "a frame's filename cannot be read");
      }
      id = builder_.InternFilename(std::string_view(data, static_cast<std::size_t>(size)));
    } else {
      // surrogatepass keeps lone surrogates (surrogateescape'd bytes of odd
      // paths) and the code point order.
      Ref bytes = Steal(PyUnicode_AsEncodedString(str, "utf-8", "surrogatepass"));
      if (!bytes) {
        PyErr_Clear();
        return BadTrace(index, "a frame's filename cannot be encoded");
      }
      id = builder_.InternFilename(std::string_view(
          PyBytes_AS_STRING(bytes.get()), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.get()))));
    }
    filename_ids_.emplace(str, id);
    return id;
  }

  TablesBuilder builder_;
  absl::flat_hash_map<PyObject*, std::uint32_t> filename_ids_;
  absl::flat_hash_map<PyObject*, std::uint32_t> stack_ids_;
  std::vector<std::uint32_t> scratch_;
  std::vector<SnapshotTrace> traces_;
};

// Converts `traces` (any sequence of trace tuples) with `traceback_limit`.
absl::StatusOr<Snapshot> ConvertTraces(PyObject* traces, int traceback_limit) {
  Ref items = version::SequenceItems(traces);
  if (!items) {
    PyErr_Clear();
    return absl::InvalidArgumentError("the snapshot's traces are not a sequence of trace tuples");
  }
  Converter converter;
  const auto n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(items.get()));
  if (absl::Status s = converter.Add(PySequence_Fast_ITEMS(items.get()), n); !s.ok()) {
    return s;
  }
  return converter.Finish(traceback_limit);
}

}  // namespace

// ------------------------------------------------------- tracing state

absl::StatusOr<bool> IsTracing() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return IsTracingLocked();
}

absl::StatusOr<TracedMemory> GetTracedMemory() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> r = CallTracemalloc("get_traced_memory");
  if (!r.ok()) return r.status();
  Py_ssize_t current = 0;
  Py_ssize_t peak = 0;
  if (!PyArg_ParseTuple(r->get(), "nn", &current, &peak)) {
    return StatusFromPythonError();
  }
  return TracedMemory{static_cast<std::size_t>(current), static_cast<std::size_t>(peak)};
}

absl::Status ResetPeak() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return CallTracemalloc("reset_peak").status();
}

absl::StatusOr<int> GetTracebackLimit() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return TracebackLimitLocked();
}

absl::StatusOr<std::size_t> GetTracemallocMemory() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> r = CallTracemalloc("get_tracemalloc_memory");
  if (!r.ok()) return r.status();
  const std::size_t v = PyLong_AsSize_t(r->get());
  if (v == static_cast<std::size_t>(-1) && PyErr_Occurred()) {
    return StatusFromPythonError();
  }
  return v;
}

absl::Status ClearTraces() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return CallTracemalloc("clear_traces").status();
}

// -------------------------------------------------------- TracingScope

TracingScope::TracingScope(bool was_tracing, int previous_frames, int frames) noexcept
    : active_(true),
      was_tracing_(was_tracing),
      previous_frames_(previous_frames),
      frames_(frames) {}

absl::StatusOr<TracingScope> TracingScope::Start(int frames) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (frames < 1 || frames > kMaxFrames) {
    return absl::InvalidArgumentError(absl::StrCat("frames must be in 1..", kMaxFrames,
                                                   " (tracemalloc's traceback "
                                                   "limit), got ",
                                                   frames));
  }
  absl::StatusOr<bool> was = IsTracingLocked();
  if (!was.ok()) return was.status();
  absl::StatusOr<int> limit = TracebackLimitLocked();
  if (!limit.ok()) return limit.status();
  if (*was && *limit == frames) return TracingScope(true, *limit, frames);
  if (*was) {
    if (absl::Status s = StopLocked(); !s.ok()) return s;
  }
  if (absl::Status s = StartLocked(frames); !s.ok()) {
    if (*was) (void)RestoreLocked(true, *limit);  // best effort; report `s`
    return s;
  }
  return TracingScope(*was, *limit, frames);
}

TracingScope::TracingScope(TracingScope&& other) noexcept
    : active_(std::exchange(other.active_, false)),
      was_tracing_(other.was_tracing_),
      previous_frames_(other.previous_frames_),
      frames_(other.frames_) {}

TracingScope& TracingScope::operator=(TracingScope&& other) noexcept {
  if (this != &other) {
    if (active_) {
      GilAcquire gil;
      if (gil.ok()) (void)End();
      active_ = false;
    }
    active_ = std::exchange(other.active_, false);
    was_tracing_ = other.was_tracing_;
    previous_frames_ = other.previous_frames_;
    frames_ = other.frames_;
  }
  return *this;
}

TracingScope::~TracingScope() {
  if (!active_) return;
  GilAcquire gil;         // Any thread may end a scope.
  if (!gil.ok()) return;  // The interpreter is gone, and tracing with it.
  (void)End();
}

absl::Status TracingScope::End() {
  if (!active_) return absl::OkStatus();
  LEAKGUARD_RETURN_IF_NO_GIL();
  active_ = false;
  // Restoring calls Python; keep an exception the caller has pending.
  PyObject* pending = compat::FetchException();
  absl::Status status = RestoreLocked(was_tracing_, previous_frames_);
  if (pending != nullptr) compat::RestoreException(pending);
  return status;
}

// ------------------------------------------------------------ Snapshot

absl::StatusOr<Snapshot> Snapshot::Take() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<bool> tracing = IsTracingLocked();
  if (!tracing.ok()) return tracing.status();
  if (!*tracing) {
    return absl::FailedPreconditionError(
        "tracemalloc is not tracing memory allocations, so there is nothing "
        "to snapshot: start it first (tracemalloc::TracingScope::Start, or "
        "tracemalloc.start() in Python)");
  }
  // take_snapshot(): _get_traces(), then get_traceback_limit().
  absl::StatusOr<Ref> traces = CallTracemalloc("_get_traces");
  if (!traces.ok()) return traces.status();
  absl::StatusOr<int> limit = TracebackLimitLocked();
  if (!limit.ok()) return limit.status();
  if (!PyList_Check(traces->get())) {
    return absl::InternalError("_tracemalloc._get_traces() returned no list");
  }
  // The list is ours alone: read it in place on every build.
  Converter converter;
  absl::Status added = converter.Add(PySequence_Fast_ITEMS(traces->get()),
                                     static_cast<std::size_t>(PyList_GET_SIZE(traces->get())));
  if (!added.ok()) return added;
  traces->Reset();  // Drop the Python objects before building the result.
  return converter.Finish(*limit);
}

absl::StatusOr<Snapshot> Snapshot::FromPython(Handle snapshot) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!snapshot) return absl::InvalidArgumentError("snapshot is null");
  Ref traces = Steal(PyObject_GetAttrString(snapshot.get(), "traces"));
  Ref items = traces ? Steal(PyObject_GetAttrString(traces.get(), "_traces")) : Ref();
  Ref limit = items ? Steal(PyObject_GetAttrString(snapshot.get(), "traceback_limit")) : Ref();
  if (!limit) {
    PyErr_Clear();
    return absl::InvalidArgumentError(
        absl::StrCat("expected a tracemalloc.Snapshot (with traces._traces and "
                     "traceback_limit), got a ",
                     Py_TYPE(snapshot.get())->tp_name));
  }
  std::uint64_t limit_value = 0;
  if (!ReadUnsigned(limit.get(), std::numeric_limits<int>::max(), limit_value)) {
    return absl::InvalidArgumentError("the snapshot's traceback_limit is not a non-negative int");
  }
  return ConvertTraces(items.get(), static_cast<int>(limit_value));
}

absl::StatusOr<Snapshot> Snapshot::Load(const std::string& path) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  // Snapshot.load(): pickle.load() of the file opened in binary mode.
  absl::StatusOr<Ref> io = Module("io");
  if (!io.ok()) return io.status();
  absl::StatusOr<Ref> pickle = Module("pickle");
  if (!pickle.ok()) return pickle.status();
  absl::StatusOr<Ref> tracemalloc = Module("tracemalloc");
  if (!tracemalloc.ok()) return tracemalloc.status();
  Ref name =
      Steal(PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
  if (!name) return StatusFromPythonError();
  Ref file = Steal(PyObject_CallMethod(io->get(), "open", "Os", name.get(), "rb"));
  if (!file) return StatusFromPythonError();
  // The whole file first, then pickle.loads() of the bytes: a frame length
  // in a damaged or hostile file (a few bytes can declare petabytes) then
  // reads as truncated data instead of making the reader allocate what it
  // declares, as pickle.load() of the file does.
  Ref data = Steal(PyObject_CallMethod(file.get(), "read", nullptr));
  absl::Status load_error;
  if (!data) load_error = StatusFromPythonError();
  Ref closed = Steal(PyObject_CallMethod(file.get(), "close", nullptr));
  if (!closed) PyErr_Clear();
  Ref loaded;
  if (data) {
    loaded = Steal(PyObject_CallMethod(pickle->get(), "loads", "O", data.get()));
    if (!loaded) load_error = StatusFromPythonError();
  }
  if (!load_error.ok()) {
    return absl::Status(load_error.code() == absl::StatusCode::kUnknown
                            ? absl::StatusCode::kInvalidArgument
                            : load_error.code(),
                        absl::StrCat("cannot load a tracemalloc snapshot from '", path,
                                     "': ", load_error.message()));
  }
  Ref type = Steal(PyObject_GetAttrString(tracemalloc->get(), "Snapshot"));
  if (!type) return StatusFromPythonError();
  const int is_snapshot = PyObject_IsInstance(loaded.get(), type.get());
  if (is_snapshot < 0) return StatusFromPythonError();
  if (is_snapshot == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds a pickled ",
                                                   Py_TYPE(loaded.get())->tp_name,
                                                   ", not a tracemalloc.Snapshot"));
  }
  return FromPython(loaded);
}

absl::StatusOr<Ref> Snapshot::ToPython() const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> tracemalloc = Module("tracemalloc");
  if (!tracemalloc.ok()) return tracemalloc.status();
  const SnapshotTables& t = *tables_;
  std::vector<Ref> filenames(t.filenames.size());
  std::vector<Ref> frames(t.frames.size());
  std::vector<Ref> stacks(t.stack_count());
  auto filename = [&](std::uint32_t id) -> PyObject* {
    if (!filenames[id]) {
      const std::string& s = t.filenames[id];
      filenames[id] =
          Steal(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogatepass"));
    }
    return filenames[id].get();
  };
  auto frame = [&](std::uint32_t id) -> PyObject* {
    if (!frames[id]) {
      PyObject* name = filename(t.frames[id].filename);
      if (name == nullptr) return nullptr;
      frames[id] = Steal(Py_BuildValue("(OL)", name, static_cast<long long>(t.frames[id].lineno)));
    }
    return frames[id].get();
  };
  auto stack = [&](std::uint32_t id) -> PyObject* {
    if (!stacks[id]) {
      const std::uint32_t n = t.stack_size(id);
      Ref tuple = Steal(PyTuple_New(n));
      if (!tuple) return nullptr;
      for (std::uint32_t k = 0; k < n; ++k) {
        PyObject* f = frame(t.stack_begin(id)[k]);
        if (f == nullptr) return nullptr;
        Py_INCREF(f);
        PyTuple_SET_ITEM(tuple.get(), k, f);
      }
      stacks[id] = std::move(tuple);
    }
    return stacks[id].get();
  };
  const std::vector<SnapshotTrace>& traces = *traces_;
  Ref list = Steal(PyList_New(static_cast<Py_ssize_t>(traces.size())));
  if (!list) return StatusFromPythonError();
  for (std::size_t i = 0; i < traces.size(); ++i) {
    const SnapshotTrace& tr = traces[i];
    PyObject* tb = stack(tr.stack);
    if (tb == nullptr) return StatusFromPythonError();
    Ref nframe = tr.total_nframe == SnapshotTrace::kNoTotalNframe
                     ? Borrow(Py_None)
                     : Steal(PyLong_FromUnsignedLong(tr.total_nframe));
    if (!nframe) return StatusFromPythonError();
    PyObject* item = Py_BuildValue("(kKOO)", static_cast<unsigned long>(tr.domain),
                                   static_cast<unsigned long long>(tr.size), tb, nframe.get());
    if (item == nullptr) return StatusFromPythonError();
    PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), item);
  }
  Ref result = Steal(
      PyObject_CallMethod(tracemalloc->get(), "Snapshot", "Oi", list.get(), traceback_limit_));
  if (!result) return StatusFromPythonError();
  return result;
}

absl::Status Snapshot::Dump(const std::string& path) const {
  absl::StatusOr<Ref> py = ToPython();
  if (!py.ok()) return py.status();
  Ref name =
      Steal(PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
  if (!name) return StatusFromPythonError();
  Ref done = Steal(PyObject_CallMethod(py->get(), "dump", "O", name.get()));
  if (!done) return StatusFromPythonError();
  return absl::OkStatus();
}

}  // namespace leakguard::tracemalloc
