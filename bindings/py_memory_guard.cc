// leakguard.memory_guard: measure how much a block or a function grows the
// process, and warn when it grows past a limit.
//
//   with leakguard.memory_guard("load", warn_mb=50) as guard:
//       load()
//   guard.report.rss_delta
//
//   @leakguard.memory_guard("handler", warn_mb=5, mode="traced")
//   def handler(request): ...
//
// mode "process" reads leakguard::SampleProcess() before and after (RSS,
// open descriptors, threads). mode "traced" also measures Python's own heap:
// each scope is a leakguard::MemoryGuard in GuardMode::kTraced, which starts
// tracemalloc for the scope when it is off (and stops it again at the end,
// on every exit path), takes leakguard's own snapshots (not
// tracemalloc.take_snapshot()) and reports the traced growth and the source
// lines that grew most. The warning and the MemoryReport are this module's.

#include <cmath>
#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "leakguard/memory_guard.h"
#include "leakguard/process.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "leakguard/tracemalloc.h"
#include "py_module_internal.h"

namespace leakguard::python::internal {
namespace {

enum class Mode { kProcess, kTraced };

// Traced scopes of all guards share one tracing session: the first that
// finds tracemalloc off starts it, the last of them to end stops it, in
// whatever order they end (asyncio tasks and threads end blocks out of
// order; a stack of TracingScopes would stop tracing under a block still
// open). Lives in the module state.
void UseSharedTracing(ModuleState* state, bool* using_it) {
  *using_it = false;
  if (state->shared_tracing_users == 0) {
    absl::StatusOr<bool> tracing = tracemalloc::IsTracing();
    if (!tracing.ok() || *tracing) return;  // The caller's tracing: left alone.
    absl::StatusOr<tracemalloc::TracingScope> started =
        tracemalloc::TracingScope::Start(MemoryGuardOptions{}.frames);
    if (!started.ok()) return;  // MemoryGuard::Enter reports it.
    state->shared_tracing = new tracemalloc::TracingScope(*std::move(started));
  }
  ++state->shared_tracing_users;
  *using_it = true;
}

void ReleaseSharedTracing(ModuleState* state, bool* using_it) {
  if (!*using_it) return;
  *using_it = false;
  if (--state->shared_tracing_users > 0) return;
  delete static_cast<tracemalloc::TracingScope*>(state->shared_tracing);  // Stops it.
  state->shared_tracing = nullptr;
}

struct Scope {
  Scope() = default;
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  ~Scope() { End(); }
  // Ends the traced measurement (if still running) and this scope's share
  // of the tracing session.
  void End() {
    traced.reset();
    if (state != nullptr) ReleaseSharedTracing(state, &shares_tracing);
  }

  ProcessSample before;
  double started_at = 0;
  std::optional<MemoryGuard> traced;  // Traced mode: tracemalloc and lines.
  ModuleState* state = nullptr;
  bool shares_tracing = false;
};

struct Guard;

// One open `with` block. The guard's context variable holds the innermost
// open block of the current context; `outer` is the one it was entered in
// (a persistent stack, so a context copied into a new task or thread shares
// the blocks open at the copy and pops only its own).
struct OpenScope {
  PyObject_HEAD Scope* scope;  // Null once the block has ended.
  Guard* guard;                // Borrowed; null once ended (or the guard is gone).
  PyObject* outer;             // The enclosing OpenScope of the context, or null.
  ListNode in_guard;           // In guard->open while the block is open.
};

struct Guard {
  PyObject_HEAD PyObject* label;
  PyObject* report;      // last MemoryReport, or None
  PyObject* current;     // contextvars.ContextVar: the context's innermost OpenScope
  long long warn_bytes;  // < 0: never warn
  double warn_mb;
  Mode mode;
  int top;
  // Every open `with` block of this guard, in any context, most recent
  // first: one guard object may be used by many tasks and threads at once.
  ListNode open;
};

OpenScope* OpenScopeOfNode(ListNode* node) {
  return reinterpret_cast<OpenScope*>(reinterpret_cast<char*>(node) -
                                      offsetof(OpenScope, in_guard));
}

// Takes the block out of its guard's open list and hands its Scope to the
// caller (null if it had ended already).
Scope* DetachScope(OpenScope* open) {
  if (ListLinked(&open->in_guard)) ListUnlink(&open->in_guard);
  open->guard = nullptr;
  return std::exchange(open->scope, nullptr);
}

void OpenScopeDealloc(PyObject* self) {
  OpenScope* open = reinterpret_cast<OpenScope*>(self);
  PyTypeObject* type = Py_TYPE(self);
  // A block whose context went away without __exit__ (a task dropped in
  // its `with`): end it, which restores tracemalloc.
  delete DetachScope(open);
  Py_CLEAR(open->outer);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kOpenScopeSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(OpenScopeDealloc)},
    {0, nullptr},
};

PyType_Spec kOpenScopeSpec = {
    "leakguard._open_guard_scope",
    sizeof(OpenScope),
    0,
    Py_TPFLAGS_DEFAULT | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kOpenScopeSlots,
};

struct Guarded {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* guard;
  PyObject* func;
  PyObject* dict;
  PyObject* weakreflist;
};

double MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

ModuleState* StateOf(PyObject* obj) { return StateOfType(Py_TYPE(obj)); }

int SampleOrRaise(ProcessSample* out) {
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  if (!sample.ok()) {
    SetPythonErrorFromStatus(sample.status(), "memory_guard cannot sample the process");
    return -1;
  }
  *out = *std::move(sample);
  return 0;
}

// A C++ MemoryGuard's message in the words of a Python caller: the advice
// it gives C++ code ("tracemalloc::TracingScope::Start ...") is replaced by
// what happened in Python terms; any other parenthesized C++ name is
// dropped.
std::string ForPython(absl::string_view message) {
  const std::string text(message);
  if (text.find("tracemalloc is not tracing") != std::string::npos) {
    return "tracemalloc stopped tracing inside the block (tracemalloc.stop() "
           "was called before it ended); leave tracemalloc running until the "
           "block ends";
  }
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(" (", pos);
    const size_t close = open == std::string::npos ? open : text.find(')', open);
    if (close == std::string::npos) break;
    const std::string inner = text.substr(open, close + 1 - open);
    out += text.substr(pos, open - pos);
    if (inner.find("::") == std::string::npos) out += inner;
    pos = close + 1;
  }
  out += text.substr(pos);
  return out;
}

// Raises what a traced MemoryGuard could not do as a RuntimeError naming
// the guard (tracemalloc stopped under it, a failed reading).
void RaiseGuardError(Guard* g, const char* when, const absl::Status& status) {
  PyErr_Format(PyExc_RuntimeError, "memory_guard %R could not %s: %s", g->label, when,
               ForPython(status.message()).c_str());
}

// Opens a scope: in traced mode enters a MemoryGuard (tracemalloc started if
// off, a snapshot when lines are wanted), then samples the process. On
// failure nothing stays changed.
int EnterScope(Guard* g, Scope* scope) {
  scope->started_at = MonotonicSeconds();
  if (g->mode == Mode::kTraced) {
    MemoryGuardOptions options;
    const char* label = PyUnicode_AsUTF8(g->label);
    if (label == nullptr) return -1;
    options.label = label;
    options.mode = GuardMode::kTraced;
    options.top = g->top;  // warn_bytes stays 0: this module warns itself.
    scope->state = StateOf(reinterpret_cast<PyObject*>(g));
    UseSharedTracing(scope->state, &scope->shares_tracing);
    absl::StatusOr<MemoryGuard> traced = MemoryGuard::Enter(std::move(options));
    if (!traced.ok()) {
      scope->End();
      RaiseGuardError(g, "start measuring", traced.status());
      return -1;
    }
    scope->traced.emplace(*std::move(traced));
  }
  if (SampleOrRaise(&scope->before) < 0) {
    scope->End();  // Exits: restores tracemalloc, keeps the error.
    return -1;
  }
  return 0;
}

// The report's `top`: ((filename, lineno, size_diff, count_diff), ...).
PyObject* LinesTuple(const std::vector<LineGrowth>& lines) {
  PyObject* top = PyTuple_New(static_cast<Py_ssize_t>(lines.size()));
  if (top == nullptr) return nullptr;
  for (size_t i = 0; i < lines.size(); ++i) {
    const LineGrowth& l = lines[i];
    PyObject* row =
        Py_BuildValue("(s#iLL)", l.file.data(), static_cast<Py_ssize_t>(l.file.size()), l.line,
                      static_cast<long long>(l.size_diff), static_cast<long long>(l.count_diff));
    if (row == nullptr) {
      Py_DECREF(top);
      return nullptr;
    }
    PyTuple_SET_ITEM(top, static_cast<Py_ssize_t>(i), row);
  }
  return top;
}

std::string Describe(Guard* g, long long rss_delta, PyObject* traced_delta, PyObject* top) {
  std::string label = PyUnicode_AsUTF8(g->label);
  std::string msg =
      absl::StrCat("memory_guard '", label, "': RSS grew by ", FormatBytes(rss_delta));
  if (traced_delta != Py_None) {
    absl::StrAppend(&msg, ", traced Python memory by ",
                    FormatBytes(PyLong_AsLongLong(traced_delta)));
  }
  absl::StrAppend(&msg, " (limit ", FormatBytes(g->warn_bytes), ")");
  if (PyTuple_Check(top) && PyTuple_GET_SIZE(top) > 0) {
    PyObject* first = PyTuple_GET_ITEM(top, 0);
    PyObject* file = PyTuple_GET_ITEM(first, 0);
    const char* name = PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : nullptr;
    absl::StrAppend(&msg, "; top: ", name != nullptr ? name : "?", ":",
                    PyLong_AsLong(PyTuple_GET_ITEM(first, 1)), " +",
                    FormatBytes(PyLong_AsLongLong(PyTuple_GET_ITEM(first, 2))));
  }
  PyErr_Clear();
  return msg;
}

// Reports through logging.getLogger("leakguard") and warnings.warn.
int Warn(Guard* g, const std::string& msg) {
  PyObject* logging = PyImport_ImportModule("logging");
  if (logging == nullptr) return -1;
  PyObject* logger = PyObject_CallMethod(logging, "getLogger", "s", "leakguard");
  Py_DECREF(logging);
  if (logger == nullptr) return -1;
  PyObject* logged = PyObject_CallMethod(logger, "warning", "ss", "%s", msg.c_str());
  Py_DECREF(logger);
  if (logged == nullptr) return -1;
  Py_DECREF(logged);
  return PyErr_WarnEx(StateOf(reinterpret_cast<PyObject*>(g))->growth_warning, msg.c_str(), 1);
}

// Closes a scope: samples again, stops tracing if the scope started it (on
// every path), stores the report in g->report and warns past the limit.
// Returns -1 with an exception set on failure (tracemalloc is restored all
// the same).
int LeaveScope(Guard* g, Scope* scope) {
  ProcessSample after;
  const int sampled = SampleOrRaise(&after);
  PyObject* traced_delta = NewRef(Py_None);
  PyObject* top = nullptr;
  if (scope->traced.has_value()) {
    // Exit keeps a pending exception (a failed sample) pending, and restores
    // tracemalloc on every path.
    absl::StatusOr<GuardReport> traced = scope->traced->Exit();
    scope->End();
    if (sampled < 0) {
      // The sampling error is the one reported.
    } else if (!traced.ok()) {
      RaiseGuardError(g, "measure", traced.status());
      Py_DECREF(traced_delta);
      return -1;
    } else {
      Py_SETREF(traced_delta, PyLong_FromLongLong(traced->traced_bytes.value_or(0)));
      top = LinesTuple(traced->top_lines);
    }
  } else {
    top = PyTuple_New(0);
  }
  if (sampled < 0 || top == nullptr || traced_delta == nullptr) {
    Py_XDECREF(traced_delta);
    Py_XDECREF(top);
    return -1;
  }
  const ProcessDelta delta = after - scope->before;
  bool exceeded = false;
  if (g->warn_bytes >= 0) {
    exceeded = delta.rss_bytes > g->warn_bytes;
    if (traced_delta != Py_None && PyLong_AsLongLong(traced_delta) > g->warn_bytes) {
      exceeded = true;
    }
  }
  PyObject* report = PyStructSequence_New(StateOf(reinterpret_cast<PyObject*>(g))->report_type);
  if (report == nullptr) {
    Py_DECREF(traced_delta);
    Py_DECREF(top);
    return -1;
  }
  PyObject* values[] = {
      NewRef(g->label),
      PyUnicode_FromString(g->mode == Mode::kTraced ? "traced" : "process"),
      PyLong_FromLongLong(scope->before.rss_bytes),
      PyLong_FromLongLong(after.rss_bytes),
      PyLong_FromLongLong(delta.rss_bytes),
      PyLong_FromLongLong(delta.open_fds),
      PyLong_FromLongLong(delta.threads),
      traced_delta,
      top,
      PyFloat_FromDouble(MonotonicSeconds() - scope->started_at),
      g->warn_bytes >= 0 ? PyLong_FromLongLong(g->warn_bytes) : NewRef(Py_None),
      PyBool_FromLong(exceeded),
  };
  bool ok = true;
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); ++i) {
    if (values[i] == nullptr) {
      ok = false;
      values[i] = NewRef(Py_None);
    }
    PyStructSequence_SetItem(report, static_cast<Py_ssize_t>(i), values[i]);
  }
  if (!ok) {
    Py_DECREF(report);
    return -1;
  }
  Py_SETREF(g->report, report);
  if (!exceeded) return 0;
  return Warn(g, Describe(g, delta.rss_bytes, PyStructSequence_GetItem(report, 7),
                          PyStructSequence_GetItem(report, 8)));
}

// ------------------------------------------------------------------ guard

PyObject* GuardNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {const_cast<char*>("label"), const_cast<char*>("warn_mb"),
                           const_cast<char*>("mode"), const_cast<char*>("top"), nullptr};
  PyObject* label = nullptr;
  PyObject* warn_mb = Py_None;
  const char* mode = "process";
  int top = 10;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$Osi:memory_guard", kwlist, &label, &warn_mb,
                                   &mode, &top)) {
    return nullptr;
  }
  if (!PyUnicode_Check(label)) {
    PyErr_Format(PyExc_TypeError, "memory_guard label must be a str, not %.200s",
                 Py_TYPE(label)->tp_name);
    return nullptr;
  }
  double mb = -1;
  if (warn_mb != Py_None) {
    if (PyBool_Check(warn_mb) || !(PyLong_Check(warn_mb) || PyFloat_Check(warn_mb))) {
      PyErr_Format(PyExc_TypeError, "warn_mb must be None or a number, not %.200s",
                   Py_TYPE(warn_mb)->tp_name);
      return nullptr;
    }
    mb = PyFloat_AsDouble(warn_mb);
    if (mb == -1.0 && PyErr_Occurred()) return nullptr;
    if (std::isnan(mb) || mb < 0 || mb > 1e12) {
      PyErr_Format(PyExc_ValueError, "warn_mb must be a number of MiB >= 0 (or None), got %R",
                   warn_mb);
      return nullptr;
    }
  }
  Mode parsed;
  if (std::string(mode) == "process") {
    parsed = Mode::kProcess;
  } else if (std::string(mode) == "traced") {
    parsed = Mode::kTraced;
  } else {
    PyErr_Format(PyExc_ValueError, "mode must be 'process' or 'traced', got '%s'", mode);
    return nullptr;
  }
  if (top < 0 || top > 1000) {
    PyErr_Format(PyExc_ValueError, "top must be within 0..1000, got %d", top);
    return nullptr;
  }
  Guard* g = reinterpret_cast<Guard*>(type->tp_alloc(type, 0));
  if (g == nullptr) return nullptr;
  g->label = NewRef(label);
  g->report = NewRef(Py_None);
  g->warn_mb = mb;
  g->warn_bytes = mb < 0 ? -1 : static_cast<long long>(mb * 1024.0 * 1024.0);
  g->mode = parsed;
  g->top = top;
  ListInit(&g->open);
  g->current = PyContextVar_New("leakguard.memory_guard", nullptr);
  if (g->current == nullptr) {
    Py_DECREF(g);
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(g);
}

PyObject* GuardEnter(PyObject* self, PyObject* /*unused*/) {
  Guard* g = reinterpret_cast<Guard*>(self);
  PyObject* outer = nullptr;
  if (PyContextVar_Get(g->current, nullptr, &outer) < 0) return nullptr;
  Ref outer_ref = Steal(outer);
  OpenScope* open = PyObject_New(OpenScope, StateOf(self)->guard_scope_type);
  if (open == nullptr) return nullptr;
  open->scope = nullptr;
  open->guard = nullptr;
  open->outer = outer_ref.Release();
  open->in_guard = ListNode{};
  Ref open_ref = Steal(reinterpret_cast<PyObject*>(open));
  auto scope = std::make_unique<Scope>();
  if (EnterScope(g, scope.get()) < 0) return nullptr;
  open->scope = scope.release();
  open->guard = g;
  ListPushFront(&g->open, &open->in_guard);
  Ref token = Steal(PyContextVar_Set(g->current, open_ref.get()));
  if (!token) return nullptr;  // open_ref's release ends the block.
  return NewRef(self);
}

PyObject* GuardExit(PyObject* self, PyObject* /*args*/) {
  Guard* g = reinterpret_cast<Guard*>(self);
  PyObject* innermost = nullptr;
  if (PyContextVar_Get(g->current, nullptr, &innermost) < 0) return nullptr;
  Ref found = Steal(innermost);
  OpenScope* open = reinterpret_cast<OpenScope*>(found.get());
  if (open != nullptr) {
    // Pops the context's innermost block, ended or not.
    PyObject* outer = open->outer != nullptr ? open->outer : Py_None;
    Ref token = Steal(PyContextVar_Set(g->current, outer));
    if (!token) return nullptr;
  }
  if (open == nullptr || open->scope == nullptr) {
    // No block open in this context: the block was entered in another one
    // (another thread, or a task that handed its guard on). End the most
    // recent open block of this guard, so that what it changed (tracemalloc)
    // is restored.
    if (ListEmpty(&g->open)) {
      PyErr_Format(PyExc_RuntimeError, "memory_guard %R: __exit__ without a matching __enter__",
                   g->label);
      return nullptr;
    }
    found = Borrow(reinterpret_cast<PyObject*>(OpenScopeOfNode(g->open.next)));
    open = reinterpret_cast<OpenScope*>(found.get());
  }
  std::unique_ptr<Scope> scope(DetachScope(open));
  if (LeaveScope(g, scope.get()) < 0) return nullptr;
  Py_RETURN_FALSE;  // Never swallows the block's exception.
}

PyObject* MakeGuarded(Guard* g, PyObject* func);

PyObject* GuardCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  PyObject* func = nullptr;
  static char* kwlist[] = {const_cast<char*>("func"), nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:memory_guard", kwlist, &func)) {
    return nullptr;
  }
  if (!PyCallable_Check(func)) {
    PyErr_Format(PyExc_TypeError, "memory_guard decorates a callable, not %.200s",
                 Py_TYPE(func)->tp_name);
    return nullptr;
  }
  return MakeGuarded(reinterpret_cast<Guard*>(self), func);
}

PyObject* GuardGetReport(PyObject* self, void*) {
  return NewRef(reinterpret_cast<Guard*>(self)->report);
}
PyObject* GuardGetLabel(PyObject* self, void*) {
  return NewRef(reinterpret_cast<Guard*>(self)->label);
}
PyObject* GuardGetMode(PyObject* self, void*) {
  return PyUnicode_FromString(reinterpret_cast<Guard*>(self)->mode == Mode::kTraced ? "traced"
                                                                                    : "process");
}
PyObject* GuardGetWarnMb(PyObject* self, void*) {
  Guard* g = reinterpret_cast<Guard*>(self);
  if (g->warn_mb < 0) Py_RETURN_NONE;
  return PyFloat_FromDouble(g->warn_mb);
}

PyObject* GuardRepr(PyObject* self) {
  Guard* g = reinterpret_cast<Guard*>(self);
  return PyUnicode_FromFormat("<leakguard.memory_guard %R mode=%s>", g->label,
                              g->mode == Mode::kTraced ? "traced" : "process");
}

int GuardTraverse(PyObject* self, visitproc visit, void* arg) {
  Guard* g = reinterpret_cast<Guard*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(g->label);
  Py_VISIT(g->report);
  Py_VISIT(g->current);
  return 0;
}

int GuardClear(PyObject* self) {
  Guard* g = reinterpret_cast<Guard*>(self);
  Py_CLEAR(g->report);
  return 0;
}

void GuardDealloc(PyObject* self) {
  Guard* g = reinterpret_cast<Guard*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  GuardClear(self);
  // Open blocks end here: tracemalloc is restored.
  while (!ListEmpty(&g->open)) delete DetachScope(OpenScopeOfNode(g->open.next));
  Py_CLEAR(g->current);
  Py_CLEAR(g->label);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kGuardMethods[] = {
    {"__enter__", GuardEnter, METH_NOARGS, nullptr},
    {"__exit__", GuardExit, METH_VARARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kGuardGetSet[] = {
    {"report", GuardGetReport, nullptr,
     "The MemoryReport of the last scope that ended (None before).", nullptr},
    {"label", GuardGetLabel, nullptr, "The label given.", nullptr},
    {"mode", GuardGetMode, nullptr, "'process' or 'traced'.", nullptr},
    {"warn_mb", GuardGetWarnMb, nullptr, "The warning limit in MiB, or None.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

const char kGuardDoc[] =
    "memory_guard(label, *, warn_mb=None, mode='process', top=10)\n--\n\n"
    "Measure the memory growth of a `with` block, or of each call of a\n"
    "decorated function. mode='process': RSS, open descriptors and threads\n"
    "before/after. mode='traced': also Python's traced heap (tracemalloc is\n"
    "started for the scope if it is off, and stopped again after) and the\n"
    "`top` source lines that grew most. When RSS (or, traced, the traced heap)\n"
    "grows by more than warn_mb MiB, a MemoryGrowthWarning is issued and the\n"
    "'leakguard' logger logs a warning. The last report is `.report`.\n"
    "One guard object may be used from several threads and asyncio tasks at\n"
    "once: `with` blocks pair up per context (contextvars), so each task and\n"
    "thread measures its own blocks (`.report` is the last to finish). An\n"
    "__exit__ in a context with no block of this guard open (the block was\n"
    "entered in another thread) ends the guard's most recent open block.";

PyType_Slot kGuardSlots[] = {
    {Py_tp_new, reinterpret_cast<void*>(GuardNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(GuardDealloc)},
    {Py_tp_call, reinterpret_cast<void*>(GuardCall)},
    {Py_tp_repr, reinterpret_cast<void*>(GuardRepr)},
    {Py_tp_traverse, reinterpret_cast<void*>(GuardTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(GuardClear)},
    {Py_tp_methods, kGuardMethods},
    {Py_tp_getset, kGuardGetSet},
    {Py_tp_doc, const_cast<char*>(kGuardDoc)},
    {0, nullptr},
};

PyType_Spec kGuardSpec = {
    "leakguard.memory_guard",
    sizeof(Guard),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | LG_IMMUTABLE,
    kGuardSlots,
};

// ---------------------------------------------------------------- guarded

PyObject* GuardedVectorcall(PyObject* self, PyObject* const* args, size_t nargsf,
                            PyObject* kwnames) {
  Guarded* f = reinterpret_cast<Guarded*>(self);
  if (f->func == nullptr) {
    PyErr_SetString(PyExc_ReferenceError, "this memory_guard wrapper was cleared");
    return nullptr;
  }
  Guard* g = reinterpret_cast<Guard*>(f->guard);
  Py_INCREF(g);
  Scope scope;  // Per call: threads and recursion each get their own.
  if (EnterScope(g, &scope) < 0) {
    Py_DECREF(g);
    return nullptr;
  }
  PyObject* result = PyObject_Vectorcall(f->func, args, nargsf, kwnames);
  PyObject* error = result == nullptr ? compat::FetchException() : nullptr;
  const int left = LeaveScope(g, &scope);
  Py_DECREF(g);
  if (error != nullptr) {
    // The function's own exception wins; a failure of the guard (e.g. a
    // warning turned into an error) is reported, not lost.
    if (left < 0) PyErr_WriteUnraisable(self);
    compat::RestoreException(error);
    return nullptr;
  }
  if (left < 0) {
    Py_DECREF(result);
    return nullptr;
  }
  return result;
}

PyObject* GuardedCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  return PyVectorcall_Call(self, args, kwargs);
}

PyObject* GuardedDescrGet(PyObject* self, PyObject* obj, PyObject* /*type*/) {
  if (obj == nullptr || obj == Py_None) return NewRef(self);
  return PyMethod_New(self, obj);
}

PyObject* GuardedGetGuard(PyObject* self, void*) {
  return NewRef(reinterpret_cast<Guarded*>(self)->guard);
}

int GuardedTraverse(PyObject* self, visitproc visit, void* arg) {
  Guarded* f = reinterpret_cast<Guarded*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(f->guard);
  Py_VISIT(f->func);
  Py_VISIT(f->dict);
  return 0;
}

int GuardedClear(PyObject* self) {
  Guarded* f = reinterpret_cast<Guarded*>(self);
  Py_CLEAR(f->func);
  Py_CLEAR(f->dict);
  return 0;
}

void GuardedDealloc(PyObject* self) {
  Guarded* f = reinterpret_cast<Guarded*>(self);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (f->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  GuardedClear(self);
  Py_CLEAR(f->guard);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMemberDef kGuardedMembers[] = {
    {"__dictoffset__", LG_T_PYSSIZET, offsetof(Guarded, dict), LG_READONLY, nullptr},
    {"__weaklistoffset__", LG_T_PYSSIZET, offsetof(Guarded, weakreflist), LG_READONLY, nullptr},
    {"__vectorcalloffset__", LG_T_PYSSIZET, offsetof(Guarded, vectorcall), LG_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef kGuardedGetSet[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {"memory_guard", GuardedGetGuard, nullptr,
     "The memory_guard measuring each call (its .report is the last call's).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot kGuardedSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(GuardedDealloc)},
    {Py_tp_call, reinterpret_cast<void*>(GuardedCall)},
    {Py_tp_descr_get, reinterpret_cast<void*>(GuardedDescrGet)},
    {Py_tp_traverse, reinterpret_cast<void*>(GuardedTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(GuardedClear)},
    {Py_tp_members, kGuardedMembers},
    {Py_tp_getset, kGuardedGetSet},
    {0, nullptr},
};

PyType_Spec kGuardedSpec = {
    "leakguard._guarded_function",
    sizeof(Guarded),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
        Py_TPFLAGS_METHOD_DESCRIPTOR | LG_IMMUTABLE | Py_TPFLAGS_DISALLOW_INSTANTIATION_OR_0,
    kGuardedSlots,
};

PyObject* MakeGuarded(Guard* g, PyObject* func) {
  ModuleState* state = StateOf(reinterpret_cast<PyObject*>(g));
  Guarded* f = PyObject_GC_New(Guarded, state->guarded_function_type);
  if (f == nullptr) return nullptr;
  f->vectorcall = GuardedVectorcall;
  f->guard = NewRef(reinterpret_cast<PyObject*>(g));
  f->func = NewRef(func);
  f->dict = nullptr;
  f->weakreflist = nullptr;
  PyObject_GC_Track(f);
  PyObject* updated = PyObject_CallFunctionObjArgs(state->update_wrapper,
                                                   reinterpret_cast<PyObject*>(f), func, nullptr);
  if (updated == nullptr) {
    Py_DECREF(f);
    return nullptr;
  }
  Py_DECREF(updated);
  return reinterpret_cast<PyObject*>(f);
}

PyStructSequence_Field kReportFields[] = {
    {const_cast<char*>("label"), const_cast<char*>("the guard's label")},
    {const_cast<char*>("mode"), const_cast<char*>("'process' or 'traced'")},
    {const_cast<char*>("rss_before"), const_cast<char*>("resident set size at entry, bytes")},
    {const_cast<char*>("rss_after"), const_cast<char*>("resident set size at exit, bytes")},
    {const_cast<char*>("rss_delta"), const_cast<char*>("rss_after - rss_before")},
    {const_cast<char*>("fds_delta"), const_cast<char*>("change of open file descriptors")},
    {const_cast<char*>("threads_delta"), const_cast<char*>("change of the thread count")},
    {const_cast<char*>("traced_delta"),
     const_cast<char*>("change of tracemalloc's traced memory, bytes (None: process mode)")},
    {const_cast<char*>("top"),
     const_cast<char*>("(filename, lineno, size_diff, count_diff) of the lines that "
                       "grew most (traced mode)")},
    {const_cast<char*>("elapsed"), const_cast<char*>("seconds the scope took")},
    {const_cast<char*>("warn_bytes"), const_cast<char*>("the limit in bytes, or None")},
    {const_cast<char*>("exceeded"), const_cast<char*>("True when the growth passed the limit")},
    {nullptr, nullptr},
};

PyStructSequence_Desc kReportDesc = {
    const_cast<char*>("leakguard.MemoryReport"),
    const_cast<char*>("What one memory_guard scope measured."),
    kReportFields,
    12,
};

}  // namespace

void ClearMemoryGuardState(ModuleState* state) {
  // Blocks still open when the module goes: tracing stops with it.
  delete static_cast<tracemalloc::TracingScope*>(state->shared_tracing);
  state->shared_tracing = nullptr;
  state->shared_tracing_users = 0;
}

int ExecMemoryGuard(PyObject* module, ModuleState* state) {
  state->guard_scope_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kOpenScopeSpec));
  if (state->guard_scope_type == nullptr) return -1;
  state->guard_type = reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kGuardSpec));
  if (state->guard_type == nullptr) return -1;
  state->guarded_function_type =
      reinterpret_cast<PyTypeObject*>(MakeHeapType(module, &kGuardedSpec));
  if (state->guarded_function_type == nullptr) return -1;
  state->report_type = PyStructSequence_NewType(&kReportDesc);
  if (state->report_type == nullptr) return -1;
  state->growth_warning =
      PyErr_NewExceptionWithDoc("leakguard.MemoryGrowthWarning",
                                "Issued by memory_guard when a scope grows past its warn_mb limit.",
                                PyExc_UserWarning, nullptr);
  if (state->growth_warning == nullptr) return -1;
  if (AddObjectRef(module, "memory_guard", reinterpret_cast<PyObject*>(state->guard_type)) < 0 ||
      AddObjectRef(module, "MemoryReport", reinterpret_cast<PyObject*>(state->report_type)) < 0 ||
      AddObjectRef(module, "MemoryGrowthWarning", state->growth_warning) < 0) {
    return -1;
  }
  return 0;
}

}  // namespace leakguard::python::internal
