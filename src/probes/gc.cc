#include "leakguard/gc.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "python/gil_capability.h"

namespace leakguard::gc {
namespace {

constexpr int kGenerations = kOldestGeneration + 1;

absl::Status CheckGeneration(int generation) {
  if (generation < 0 || generation > kOldestGeneration) {
    return absl::InvalidArgumentError(
        absl::StrCat("generation must be 0, 1 or 2 (2 is a full collection), got ", generation));
  }
  return absl::OkStatus();
}

absl::StatusOr<Ref> GcModule() LEAKGUARD_REQUIRES_GIL {
  Ref module = Steal(PyImport_ImportModule("gc"));
  if (!module) return StatusFromPythonError();
  return module;
}

// gc.<name>(*args): a new reference, or the Python error as a Status.
absl::StatusOr<Ref> CallGc(const char* name, PyObject* arg = nullptr) LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> module = GcModule();
  if (!module.ok()) return module.status();
  Ref func = Steal(PyObject_GetAttrString(module->get(), name));
  if (!func) return StatusFromPythonError();
  Ref result = Steal(arg == nullptr ? PyObject_CallNoArgs(func.get())
                                    : PyObject_CallOneArg(func.get(), arg));
  if (!result) return StatusFromPythonError();
  return result;
}

absl::StatusOr<int64_t> AsInt64(PyObject* value) LEAKGUARD_REQUIRES_GIL {
  const long long v = PyLong_AsLongLong(value);
  if (v == -1 && PyErr_Occurred()) return StatusFromPythonError();
  return static_cast<int64_t>(v);
}

absl::StatusOr<std::vector<int64_t>> IntSequence(PyObject* seq) LEAKGUARD_REQUIRES_GIL {
  Ref fast = Steal(PySequence_Fast(seq, "expected a sequence of ints"));
  if (!fast) return StatusFromPythonError();
  std::vector<int64_t> out;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    absl::StatusOr<int64_t> v = AsInt64(PySequence_Fast_GET_ITEM(fast.get(), i));
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  return out;
}

// One generation's cumulative numbers from gc.get_stats().
struct RawStats {
  int64_t collections = 0;
  int64_t collected = 0;
  int64_t uncollectable = 0;
};

absl::StatusOr<std::vector<RawStats>> GetRawStats() LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> stats = CallGc("get_stats");
  if (!stats.ok()) return stats.status();
  if (!PyList_Check(stats->get())) {
    return absl::InternalError("gc.get_stats() did not return a list");
  }
  std::vector<RawStats> out;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(stats->get()); ++i) {
    PyObject* row = PyList_GET_ITEM(stats->get(), i);
    RawStats raw;
    std::pair<const char*, int64_t*> fields[] = {{"collections", &raw.collections},
                                                 {"collected", &raw.collected},
                                                 {"uncollectable", &raw.uncollectable}};
    for (auto& [key, slot] : fields) {
      Ref value = Steal(PyMapping_GetItemString(row, key));
      if (!value) return StatusFromPythonError();
      absl::StatusOr<int64_t> v = AsInt64(value.get());
      if (!v.ok()) return v.status();
      *slot = *v;
    }
    out.push_back(raw);
  }
  if (out.size() < kGenerations) {
    return absl::InternalError("gc.get_stats() has fewer than 3 generations");
  }
  return out;
}

absl::StatusOr<bool> IsEnabledNoCheck() LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<Ref> enabled = CallGc("isenabled");
  if (!enabled.ok()) return enabled.status();
  const int truth = PyObject_IsTrue(enabled->get());
  if (truth < 0) return StatusFromPythonError();
  return truth == 1;
}

absl::Status SetEnabledNoCheck(bool enabled) LEAKGUARD_REQUIRES_GIL {
  return CallGc(enabled ? "enable" : "disable").status();
}

absl::StatusOr<CollectResult> CollectNoCheck(int generation) LEAKGUARD_REQUIRES_GIL {
  absl::StatusOr<bool> was_enabled = IsEnabledNoCheck();
  if (!was_enabled.ok()) return was_enabled.status();
  // No automatic collection between the two get_stats() readings, so the
  // difference is this collection's alone.
  if (absl::Status s = SetEnabledNoCheck(false); !s.ok()) return s;
  auto restore = [&] {
    internal::AssumeGilHeld();  // Runs in CollectNoCheck, which requires it.
    if (*was_enabled) {
      // Keep a pending error (if any) for the caller.
      PyObject* pending = compat::FetchException();
      if (!SetEnabledNoCheck(true).ok()) PyErr_Clear();
      if (pending != nullptr) compat::RestoreException(pending);
    }
  };
  absl::StatusOr<std::vector<RawStats>> before = GetRawStats();
  if (!before.ok()) {
    restore();
    return before.status();
  }
  Ref gen = Steal(PyLong_FromLong(generation));
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Ref> total = CallGc("collect", gen.get());
  const auto stop = std::chrono::steady_clock::now();
  if (!total.ok()) {
    restore();
    return total.status();
  }
  absl::StatusOr<std::vector<RawStats>> after = GetRawStats();
  restore();
  if (!after.ok()) return after.status();
  CollectResult result;
  result.generation = generation;
  result.collected = (*after)[generation].collected - (*before)[generation].collected;
  result.uncollectable = (*after)[generation].uncollectable - (*before)[generation].uncollectable;
  result.duration = absl::FromChrono(stop - start);
  return result;
}

std::string ShortTypeName(PyTypeObject* type) LEAKGUARD_REQUIRES_GIL {
  Ref name = Steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__name__"));
  if (name && PyUnicode_Check(name.get())) {
    const char* utf8 = PyUnicode_AsUTF8(name.get());
    if (utf8 != nullptr) return utf8;
  }
  PyErr_Clear();
  return type->tp_name;
}

std::string ReprOf(PyObject* obj, int max_length) LEAKGUARD_REQUIRES_GIL {
  Ref repr = Steal(PyObject_Repr(obj));
  std::string text;
  if (!repr) {
    absl::Status error = StatusFromPythonError();
    text = absl::StrCat("<repr failed: ", error.message(), ">");
  } else {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(repr.get(), &size);
    if (utf8 == nullptr) {
      PyErr_Clear();
      text = "<repr not encodable>";
    } else {
      text.assign(utf8, static_cast<std::size_t>(size));
    }
  }
  if (text.size() > static_cast<std::size_t>(max_length)) {
    std::size_t cut = static_cast<std::size_t>(max_length) - 3;
    // Do not cut a UTF-8 sequence in half.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    text.resize(cut);
    text += "...";
  }
  return text;
}

// Keeps a pending Python exception aside while a destructor calls Python,
// and puts it back afterwards.
class PreserveError {
 public:
  PreserveError() : pending_(compat::FetchException()) {}
  ~PreserveError() {
    PyErr_Clear();
    if (pending_ != nullptr) compat::RestoreException(pending_);
  }
  PreserveError(const PreserveError&) = delete;
  PreserveError& operator=(const PreserveError&) = delete;

 private:
  PyObject* pending_;
};

}  // namespace

absl::StatusOr<CollectResult> Collect(int generation) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (absl::Status s = CheckGeneration(generation); !s.ok()) return s;
  return CollectNoCheck(generation);
}

absl::StatusOr<std::vector<GenerationStats>> Stats() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<std::vector<RawStats>> raw = GetRawStats();
  if (!raw.ok()) return raw.status();
  absl::StatusOr<std::vector<int64_t>> counts = Counts();
  if (!counts.ok()) return counts.status();
  absl::StatusOr<std::vector<int64_t>> thresholds = Thresholds();
  if (!thresholds.ok()) return thresholds.status();
  std::vector<GenerationStats> out;
  for (int g = 0; g < kGenerations; ++g) {
    GenerationStats row;
    row.generation = g;
    row.collections = (*raw)[g].collections;
    row.collected = (*raw)[g].collected;
    row.uncollectable = (*raw)[g].uncollectable;
    if (static_cast<std::size_t>(g) < counts->size()) row.count = (*counts)[g];
    if (static_cast<std::size_t>(g) < thresholds->size()) {
      row.threshold = (*thresholds)[g];
    }
    out.push_back(row);
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> Counts() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> counts = CallGc("get_count");
  if (!counts.ok()) return counts.status();
  return IntSequence(counts->get());
}

absl::StatusOr<std::vector<int64_t>> Thresholds() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> thresholds = CallGc("get_threshold");
  if (!thresholds.ok()) return thresholds.status();
  return IntSequence(thresholds->get());
}

absl::Status SetThresholds(const std::vector<int64_t>& thresholds) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (thresholds.empty() || thresholds.size() > kGenerations) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SetThresholds takes 1 to 3 thresholds (youngest first), got ", thresholds.size()));
  }
  for (std::size_t i = 0; i < thresholds.size(); ++i) {
    if (thresholds[i] < 0 || thresholds[i] > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(
          "threshold of generation ", i, " must be 0..2147483647, got ", thresholds[i]));
    }
  }
  Ref args = Steal(PyTuple_New(static_cast<Py_ssize_t>(thresholds.size())));
  if (!args) return StatusFromPythonError();
  for (std::size_t i = 0; i < thresholds.size(); ++i) {
    PyObject* value = PyLong_FromLongLong(thresholds[i]);
    if (value == nullptr) return StatusFromPythonError();
    PyTuple_SET_ITEM(args.get(), static_cast<Py_ssize_t>(i), value);
  }
  absl::StatusOr<Ref> module = GcModule();
  if (!module.ok()) return module.status();
  Ref func = Steal(PyObject_GetAttrString(module->get(), "set_threshold"));
  if (!func) return StatusFromPythonError();
  Ref done = Steal(PyObject_Call(func.get(), args.get(), nullptr));
  if (!done) return StatusFromPythonError();
  return absl::OkStatus();
}

absl::StatusOr<bool> IsEnabled() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return IsEnabledNoCheck();
}

absl::Status SetEnabled(bool enabled) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return SetEnabledNoCheck(enabled);
}

absl::StatusOr<int> DebugFlags() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> flags = CallGc("get_debug");
  if (!flags.ok()) return flags.status();
  absl::StatusOr<int64_t> value = AsInt64(flags->get());
  if (!value.ok()) return value.status();
  return static_cast<int>(*value);
}

absl::Status SetDebugFlags(int flags) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (flags < 0) {
    return absl::InvalidArgumentError(absl::StrCat("gc debug flags must be >= 0, got ", flags));
  }
  Ref value = Steal(PyLong_FromLong(flags));
  if (!value) return StatusFromPythonError();
  return CallGc("set_debug", value.get()).status();
}

absl::Status Freeze() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return CallGc("freeze").status();
}

absl::Status Unfreeze() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return CallGc("unfreeze").status();
}

absl::StatusOr<int64_t> FreezeCount() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  absl::StatusOr<Ref> count = CallGc("get_freeze_count");
  if (!count.ok()) return count.status();
  return AsInt64(count->get());
}

// ---------------------------------------------------------------- SaveAll

absl::StatusOr<std::unique_ptr<SaveAllScope>> SaveAllScope::Begin(const SaveAllOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.samples_per_type < 0 || options.samples_per_type > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples_per_type must be 0..100, got ", options.samples_per_type));
  }
  if (options.max_repr_length < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_repr_length must be at least 8, got ", options.max_repr_length));
  }
  absl::StatusOr<int> flags = DebugFlags();
  if (!flags.ok()) return flags.status();
  absl::StatusOr<Ref> module = GcModule();
  if (!module.ok()) return module.status();
  Ref garbage = Steal(PyObject_GetAttrString(module->get(), "garbage"));
  if (!garbage) return StatusFromPythonError();
  if (!PyList_Check(garbage.get())) {
    return absl::FailedPreconditionError("gc.garbage is not a list; something replaced it");
  }
  std::unique_ptr<SaveAllScope> scope(new SaveAllScope());
  scope->options_ = options;
  scope->previous_flags_ = *flags;
  scope->baseline_ = Steal(PyList_GetSlice(garbage.get(), 0, PY_SSIZE_T_MAX));
  scope->own_ = Steal(PyList_New(0));
  if (!scope->baseline_ || !scope->own_) return StatusFromPythonError();
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(scope->baseline_.get()); ++i) {
    scope->baseline_ids_.push_back(
        reinterpret_cast<std::uintptr_t>(PyList_GET_ITEM(scope->baseline_.get(), i)));
  }
  std::sort(scope->baseline_ids_.begin(), scope->baseline_ids_.end());
  scope->garbage_ = std::move(garbage);
  if (absl::Status s = SetDebugFlags(*flags | kDebugSaveAll); !s.ok()) {
    return s;  // Not active: the destructor changes nothing.
  }
  scope->active_ = true;
  return scope;
}

bool SaveAllScope::Baseline(PyObject* entry) const {
  return std::binary_search(baseline_ids_.begin(), baseline_ids_.end(),
                            reinterpret_cast<std::uintptr_t>(entry));
}

absl::StatusOr<GarbageReport> SaveAllScope::Collect(int generation) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (absl::Status s = CheckGeneration(generation); !s.ok()) return s;
  PyObject* garbage = garbage_.get();
  const Py_ssize_t before = PyList_GET_SIZE(garbage);
  absl::StatusOr<CollectResult> collected = CollectNoCheck(generation);
  if (!collected.ok()) return collected.status();
  // Collections append to gc.garbage; what is past `before` is ours.
  for (Py_ssize_t i = before; i < PyList_GET_SIZE(garbage); ++i) {
    if (PyList_Append(own_.get(), PyList_GET_ITEM(garbage, i)) != 0) {
      return StatusFromPythonError();
    }
  }
  // Summarise a copy: repr() may run code that changes gc.garbage.
  Ref entries = Steal(PyList_GetSlice(garbage, 0, PY_SSIZE_T_MAX));
  if (!entries) return StatusFromPythonError();
  struct PerType {
    Ref type;
    int64_t count = 0;
    std::vector<Ref> samples;
  };
  std::vector<PerType> per_type;
  std::map<PyTypeObject*, std::size_t> index;
  GarbageReport report;
  report.collection = *collected;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries.get()); ++i) {
    PyObject* entry = PyList_GET_ITEM(entries.get(), i);
    if (Baseline(entry)) continue;
    ++report.total;
    PyTypeObject* type = Py_TYPE(entry);
    auto [it, added] = index.try_emplace(type, per_type.size());
    if (added) {
      per_type.emplace_back();
      per_type.back().type = Borrow(reinterpret_cast<PyObject*>(type));
    }
    PerType& row = per_type[it->second];
    ++row.count;
    if (static_cast<int>(row.samples.size()) < options_.samples_per_type) {
      row.samples.push_back(Borrow(entry));
    }
  }
  for (PerType& row : per_type) {
    GarbageType out;
    out.type_name = ShortTypeName(reinterpret_cast<PyTypeObject*>(row.type.get()));
    out.count = row.count;
    for (const Ref& sample : row.samples) {
      out.samples.push_back(ReprOf(sample.get(), options_.max_repr_length));
    }
    report.types.push_back(std::move(out));
  }
  std::stable_sort(report.types.begin(), report.types.end(),
                   [](const GarbageType& a, const GarbageType& b) {
                     if (a.count != b.count) return a.count > b.count;
                     return a.type_name < b.type_name;
                   });
  return report;
}

SaveAllScope::~SaveAllScope() {
  if (!Py_IsInitialized()) {
    // The interpreter is gone: its objects are gone too, never decref them.
    (void)garbage_.Release();
    (void)baseline_.Release();
    (void)own_.Release();
    return;
  }
  GilAcquire gil;  // Held until the members below are released.
  PreserveError preserve;
  if (!active_) {  // Begin() failed before changing anything.
    own_.Reset();
    baseline_.Reset();
    garbage_.Reset();
    return;
  }
  // SAVEALL off until the end, so that the exit collection frees what we
  // take out of gc.garbage instead of saving it again.
  if (!SetDebugFlags(previous_flags_ & ~kDebugSaveAll).ok()) PyErr_Clear();
  PyObject* garbage = garbage_.get();
  if (garbage != nullptr) {
    // Keep the baseline entries (if SAVEALL was off before) or everything
    // but our own additions (if it was already on).
    const bool was_saveall = (previous_flags_ & kDebugSaveAll) != 0;
    std::vector<std::uintptr_t> own_ids;
    for (Py_ssize_t i = 0; own_ && i < PyList_GET_SIZE(own_.get()); ++i) {
      own_ids.push_back(reinterpret_cast<std::uintptr_t>(PyList_GET_ITEM(own_.get(), i)));
    }
    std::sort(own_ids.begin(), own_ids.end());
    Ref kept = Steal(PyList_New(0));
    if (kept) {
      bool ok = true;
      for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(garbage); ++i) {
        PyObject* entry = PyList_GET_ITEM(garbage, i);
        const auto id = reinterpret_cast<std::uintptr_t>(entry);
        const bool keep =
            was_saveall ? !std::binary_search(own_ids.begin(), own_ids.end(), id) : Baseline(entry);
        if (keep && PyList_Append(kept.get(), entry) != 0) ok = false;
      }
      if (ok) {
        PyList_SetSlice(garbage, 0, PY_SSIZE_T_MAX, kept.get());
      }
      kept.Reset();
    }
    PyErr_Clear();
  }
  own_.Reset();
  baseline_.Reset();
  garbage_.Reset();
  if (options_.collect_on_exit) {
    if (!CollectNoCheck(kOldestGeneration).ok()) PyErr_Clear();
  }
  if (!SetDebugFlags(previous_flags_).ok()) PyErr_Clear();
}

// ---------------------------------------------------------------- Pause

absl::StatusOr<std::unique_ptr<PauseScope>> PauseScope::Begin(const PauseOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (options.every < absl::ZeroDuration() || options.every_allocations < 0 ||
      options.check_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "PauseScope: every, every_allocations and check_interval must not be "
        "negative");
  }
  if (options.every == absl::ZeroDuration() && options.every_allocations == 0) {
    return absl::InvalidArgumentError(
        "PauseScope needs a plan: set `every` (a period) and/or "
        "`every_allocations`; never disable the GC without one");
  }
  if (absl::Status s = CheckGeneration(options.generation); !s.ok()) return s;
  absl::StatusOr<bool> enabled = IsEnabledNoCheck();
  if (!enabled.ok()) return enabled.status();

  std::unique_ptr<PauseScope> scope(new PauseScope(options));
  scope->previously_enabled_ = *enabled;
  const bool needs_thread =
      options.every > absl::ZeroDuration() ||
      (options.every_allocations > 0 && options.check_interval > absl::ZeroDuration());
  if (needs_thread) {
    if (absl::Status s = Interpreter::RegisterWatcher(scope.get()); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("PauseScope's background thread needs a running "
                       "leakguard::Interpreter (",
                       s.message(),
                       "); without one, set check_interval to zero, leave `every` unset "
                       "and call Tick()"));
    }
    scope->registered_ = true;
  }
  if (absl::Status s = SetEnabledNoCheck(false); !s.ok()) {
    return s;  // Not active: the destructor only unregisters.
  }
  scope->active_ = true;
  {
    absl::MutexLock lock(&scope->mu_);
    if (options.every > absl::ZeroDuration()) {
      scope->next_due_ = absl::Now() + options.every;
    }
  }
  if (needs_thread) {
    PauseScope* raw = scope.get();
    try {
      scope->thread_ = std::thread([raw] { raw->Loop(); });
    } catch (const std::system_error& e) {
      // Put everything back (without the exit collection: no plan ran).
      scope->active_ = false;
      if (!SetEnabledNoCheck(*enabled).ok()) PyErr_Clear();
      return absl::ResourceExhaustedError(
          absl::StrCat("PauseScope could not start its thread: ", e.what()));
    }
  }
  return scope;
}

PauseScope::~PauseScope() {
  StopThread();
  if (registered_) Interpreter::UnregisterWatcher(this);
  bool finalized = false;
  {
    absl::MutexLock lock(&mu_);
    finalized = finalized_;
  }
  if (!active_ || finalized || !Py_IsInitialized()) return;
  GilAcquire gil;
  PreserveError preserve;
  if (!CollectNoCheck(options_.generation).ok()) PyErr_Clear();
  if (!SetEnabledNoCheck(previously_enabled_).ok()) PyErr_Clear();
}

void PauseScope::StopBeforeFinalize() noexcept {
  {
    absl::MutexLock lock(&mu_);
    finalized_ = true;
  }
  StopThread();
}

void PauseScope::StopThread() noexcept {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    // The thread may be waiting for the GIL to finish a round; let it.
    GilRelease release;
    thread_.join();
  }
}

void PauseScope::Loop() noexcept {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      absl::Duration wait = absl::InfiniteDuration();
      if (options_.every_allocations > 0 && options_.check_interval > absl::ZeroDuration()) {
        wait = options_.check_interval;
      }
      if (options_.every > absl::ZeroDuration()) {
        wait = std::min(wait, std::max(absl::ZeroDuration(), next_due_ - absl::Now()));
      }
      mu_.AwaitWithTimeout(absl::Condition(&stop_), wait);
      if (stop_) return;
    }
    GilAcquire gil;  // Only now, never while sleeping.
    if (!gil.ok()) return;
    if (!RunIfDue().ok()) PyErr_Clear();
  }
}

absl::StatusOr<bool> PauseScope::RunIfDue() {
  internal::AssumeGilHeld();  // Its two callers hold it: Tick() checked, the thread took it.
  bool due = false;
  {
    absl::MutexLock lock(&mu_);
    due = options_.every > absl::ZeroDuration() && absl::Now() >= next_due_;
  }
  if (!due && options_.every_allocations > 0) {
    absl::StatusOr<Ref> counts = CallGc("get_count");
    if (!counts.ok()) return counts.status();
    absl::StatusOr<std::vector<int64_t>> values = IntSequence(counts->get());
    if (!values.ok()) return values.status();
    due = !values->empty() && (*values)[0] >= options_.every_allocations;
  }
  if (!due) return false;
  absl::StatusOr<CollectResult> done = CollectNoCheck(options_.generation);
  {
    absl::MutexLock lock(&mu_);
    ++collections_;
    if (options_.every > absl::ZeroDuration()) {
      next_due_ = absl::Now() + options_.every;
    }
  }
  if (!done.ok()) return done.status();
  return true;
}

absl::StatusOr<bool> PauseScope::Tick() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  return RunIfDue();
}

int64_t PauseScope::collections() const {
  absl::MutexLock lock(&mu_);
  return collections_;
}

// ---------------------------------------------------------------- Recorder

struct CollectionRecorder::State {
  absl::Mutex mu;
  bool active ABSL_GUARDED_BY(mu) = true;
  std::size_t max_events ABSL_GUARDED_BY(mu) = 0;
  std::chrono::steady_clock::time_point started ABSL_GUARDED_BY(mu);
  bool in_collection ABSL_GUARDED_BY(mu) = false;
  std::vector<CollectionEvent> events ABSL_GUARDED_BY(mu);
  int64_t dropped ABSL_GUARDED_BY(mu) = 0;
  GenerationPauses summary[kGenerations] ABSL_GUARDED_BY(mu);
};

namespace {

constexpr char kRecorderCapsule[] = "leakguard.gc.CollectionRecorder";

void DeleteRecorderState(PyObject* capsule) noexcept {
  delete static_cast<std::shared_ptr<CollectionRecorder::State>*>(
      PyCapsule_GetPointer(capsule, kRecorderCapsule));
}

int64_t InfoInt(PyObject* info, const char* key) {
  if (!PyDict_Check(info)) return 0;
  PyObject* value = PyDict_GetItemString(info, key);  // Borrowed.
  if (value == nullptr) return 0;
  const long long v = PyLong_AsLongLong(value);
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return 0;
  }
  return v;
}

// gc.callbacks calls this with (phase, info). Never raises: an exception
// here would be reported as unraisable in the middle of a collection.
PyObject* RecorderCallback(PyObject* self, PyObject* args) noexcept {
  auto* holder = static_cast<std::shared_ptr<CollectionRecorder::State>*>(
      PyCapsule_GetPointer(self, kRecorderCapsule));
  PyObject* phase = nullptr;
  PyObject* info = nullptr;
  if (holder == nullptr || !PyArg_ParseTuple(args, "OO", &phase, &info) ||
      !PyUnicode_Check(phase)) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  CollectionRecorder::State& state = **holder;
  const auto now = std::chrono::steady_clock::now();
  if (PyUnicode_CompareWithASCIIString(phase, "start") == 0) {
    absl::MutexLock lock(&state.mu);
    state.started = now;
    state.in_collection = true;
    Py_RETURN_NONE;
  }
  if (PyUnicode_CompareWithASCIIString(phase, "stop") != 0) Py_RETURN_NONE;
  CollectionEvent event;
  event.generation = static_cast<int>(InfoInt(info, "generation"));
  event.collected = InfoInt(info, "collected");
  event.uncollectable = InfoInt(info, "uncollectable");
  absl::MutexLock lock(&state.mu);
  if (!state.active || !state.in_collection) Py_RETURN_NONE;
  state.in_collection = false;
  event.duration = absl::FromChrono(now - state.started);
  if (event.generation >= 0 && event.generation < kGenerations) {
    GenerationPauses& row = state.summary[event.generation];
    ++row.count;
    row.total += event.duration;
    row.max = std::max(row.max, event.duration);
    row.collected += event.collected;
    row.uncollectable += event.uncollectable;
  }
  if (state.events.size() < state.max_events) {
    state.events.push_back(event);
  } else {
    ++state.dropped;
  }
  Py_RETURN_NONE;
}

PyMethodDef kRecorderMethod = {"leakguard_collection_recorder", &RecorderCallback, METH_VARARGS,
                               "Records gc collections for leakguard::gc::CollectionRecorder."};

}  // namespace

absl::StatusOr<std::unique_ptr<CollectionRecorder>> CollectionRecorder::Begin(
    std::size_t max_events) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  auto state = std::make_shared<State>();
  {
    absl::MutexLock lock(&state->mu);
    state->max_events = max_events;
    for (int g = 0; g < kGenerations; ++g) state->summary[g].generation = g;
  }
  auto* holder = new std::shared_ptr<State>(state);
  Ref capsule = Steal(PyCapsule_New(holder, kRecorderCapsule, &DeleteRecorderState));
  if (!capsule) {
    delete holder;
    return StatusFromPythonError();
  }
  Ref callback = Steal(PyCFunction_New(&kRecorderMethod, capsule.get()));
  if (!callback) return StatusFromPythonError();
  absl::StatusOr<Ref> module = GcModule();
  if (!module.ok()) return module.status();
  Ref callbacks = Steal(PyObject_GetAttrString(module->get(), "callbacks"));
  if (!callbacks) return StatusFromPythonError();
  if (!PyList_Check(callbacks.get())) {
    return absl::FailedPreconditionError("gc.callbacks is not a list; something replaced it");
  }
  if (PyList_Append(callbacks.get(), callback.get()) != 0) {
    return StatusFromPythonError();
  }
  std::unique_ptr<CollectionRecorder> recorder(new CollectionRecorder());
  recorder->state_ = std::move(state);
  recorder->callback_ = std::move(callback);
  return recorder;
}

CollectionRecorder::~CollectionRecorder() {
  if (state_) {
    absl::MutexLock lock(&state_->mu);
    state_->active = false;
  }
  if (!callback_) return;
  if (!Py_IsInitialized()) {
    (void)callback_.Release();
    return;
  }
  GilAcquire gil;
  PreserveError preserve;
  absl::StatusOr<Ref> module = GcModule();
  if (module.ok()) {
    Ref callbacks = Steal(PyObject_GetAttrString(module->get(), "callbacks"));
    if (callbacks && PyList_Check(callbacks.get())) {
      // Exactly our object, by identity; the last occurrence first.
      for (Py_ssize_t i = PyList_GET_SIZE(callbacks.get()) - 1; i >= 0; --i) {
        if (PyList_GET_ITEM(callbacks.get(), i) == callback_.get()) {
          PySequence_DelItem(callbacks.get(), i);
          break;
        }
      }
    }
  }
  PyErr_Clear();
  callback_.Reset();
}

std::vector<CollectionEvent> CollectionRecorder::Events() const {
  absl::MutexLock lock(&state_->mu);
  return state_->events;
}

std::vector<GenerationPauses> CollectionRecorder::Summary() const {
  absl::MutexLock lock(&state_->mu);
  return std::vector<GenerationPauses>(state_->summary, state_->summary + kGenerations);
}

int64_t CollectionRecorder::dropped_events() const {
  absl::MutexLock lock(&state_->mu);
  return state_->dropped;
}

}  // namespace leakguard::gc
