// The doctor's first stage: run the workload and gather an Investigation,
// one named function per source of evidence. Nothing here decides anything
// (rules.cc does) or writes a sentence (render.cc does).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "doctor/doctor_scan.h"
#include "doctor/facts.h"
#include "leakguard/counters.h"
#include "leakguard/doctor.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/sampler.h"
#include "leakguard/tracemalloc.h"
#include "probes/growth.h"
#include "python/gil_capability.h"
#include "python/status_macros.h"

namespace leakguard {

absl::Status DoctorOptions::Validate() const {
  std::vector<std::string> wrong;
  if (warmup < kMinWarmup || warmup > kMaxWarmup) {
    wrong.push_back(
        absl::StrCat("warmup must be within ", kMinWarmup, "..", kMaxWarmup, ", got ", warmup));
  }
  if (repeat < kMinRepeat || repeat > kMaxRepeat) {
    wrong.push_back(
        absl::StrCat("repeat must be within ", kMinRepeat, "..", kMaxRepeat, ", got ", repeat));
  }
  if (top < kMinTop || top > kMaxTop) {
    wrong.push_back(absl::StrCat("top must be within ", kMinTop, "..", kMaxTop, ", got ", top));
  }
  if (wrong.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(wrong, "; "));
}

IterationDelta Investigation::MeasuredTotal() const {
  IterationDelta t;
  t.traced_bytes = 0;
  for (size_t i = static_cast<size_t>(options.warmup); i < iterations.size(); ++i) {
    const IterationDelta& d = iterations[i];
    t.rss_bytes += d.rss_bytes;
    *t.traced_bytes += d.traced_bytes.value_or(0);
    t.blocks += d.blocks;
    t.fds += d.fds;
    t.threads += d.threads;
    t.gc_freed += d.gc_freed;
  }
  return t;
}

namespace {

// NumPy reports its data buffers to tracemalloc in this domain.
constexpr uint32_t kNumpyDomain = 389047;

// The functions of doctor_scan.py, loaded into a private namespace.
struct Helpers {
  Ref globals;
  Ref scan, thread_locals, gc_automatic, saveall_collect, bounded_internals, freeze_heap, thaw_heap;
};

absl::StatusOr<Helpers> LoadHelpers() LEAKGUARD_REQUIRES_GIL {
  Helpers h;
  h.globals = Steal(PyDict_New());
  if (!h.globals) return StatusFromPythonError();
  if (PyDict_SetItemString(h.globals.get(), "__builtins__", PyEval_GetBuiltins()) != 0 ||
      PyDict_SetItemString(h.globals.get(), "__name__", Py_None) != 0) {
    return StatusFromPythonError();
  }
  // Compiled under its own file name, so that every frame of the scan is
  // one OwnFrameFilters() drops.
  Ref code = Steal(
      Py_CompileString(internal::kDoctorScanSource, internal::kDoctorScanFilename, Py_file_input));
  if (!code) return StatusFromPythonError();
  Ref ran = Steal(PyEval_EvalCode(code.get(), h.globals.get(), h.globals.get()));
  if (!ran) return StatusFromPythonError();
  auto get = [&](const char* name) { return Borrow(PyDict_GetItemString(h.globals.get(), name)); };
  h.scan = get("scan");
  h.thread_locals = get("thread_locals");
  h.gc_automatic = get("gc_automatic");
  h.saveall_collect = get("saveall_collect");
  h.bounded_internals = get("bounded_internals");
  h.freeze_heap = get("freeze_heap");
  h.thaw_heap = get("thaw_heap");
  if (!h.scan || !h.thread_locals || !h.gc_automatic || !h.saveall_collect ||
      !h.bounded_internals || !h.freeze_heap || !h.thaw_heap) {
    return absl::InternalError("the doctor's scan helpers did not load");
  }
  return h;
}

// One scan of the namespace: path -> what was measured there.
struct ScanEntry {
  std::string kind, item, tags;
  int64_t measure = 0;
  int64_t limit = -1;
};
using Scan = std::map<std::string, ScanEntry>;

std::vector<std::string> StringList(PyObject* list) LEAKGUARD_REQUIRES_GIL {
  std::vector<std::string> out;
  if (list == nullptr || !PyList_Check(list)) return out;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); ++i) {
    const char* s = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
    if (s != nullptr) out.emplace_back(s);
  }
  PyErr_Clear();
  return out;
}

int64_t DomainBytes(const tracemalloc::Snapshot& snapshot) {
  tracemalloc::DomainFilter only_numpy;
  only_numpy.inclusive = true;
  only_numpy.domain = kNumpyDomain;
  absl::StatusOr<tracemalloc::Snapshot> numpy = snapshot.FilterTraces({only_numpy});
  return numpy.ok() ? static_cast<int64_t>(numpy->total_size()) : 0;
}

// The Python name of the container that holds a chain's target: the
// module's name, then each reference as Python spells it (".attr",
// "['key']", "[3]"), up to the last container before the target.
std::string HolderOnChain(const BackrefChain& chain) {
  const std::vector<ChainLink>& links = chain.links;
  if (links.size() < 2 || !absl::StartsWith(links[0].description, "module ")) return "";
  std::string path = links[0].description.substr(7);
  bool into_dict_of_object = false;  // the last step was ".__dict__"
  for (size_t i = 0; i + 2 < links.size(); ++i) {
    absl::string_view edge = links[i].edge;
    if (edge == ".__dict__") {
      into_dict_of_object = true;
      continue;
    }
    // An attribute: `.__dict__['name']`, or `['name']` right after `.__dict__`
    // (evaluated in that order: a partial match of the first changes `edge`).
    if ((absl::ConsumePrefix(&edge, ".__dict__['") && absl::ConsumeSuffix(&edge, "']")) ||
        (into_dict_of_object && absl::ConsumePrefix(&edge, "['") &&
         absl::ConsumeSuffix(&edge, "']"))) {
      absl::StrAppend(&path, ".", edge);
    } else if (absl::StartsWith(edge, "[") || absl::StartsWith(edge, ".")) {
      absl::StrAppend(&path, edge);
    } else {
      return "";  // a key, a set member or a reference gone: no name for it
    }
    into_dict_of_object = false;
  }
  return path;
}

// One investigation, phase by phase: WarmUp, TakeBaseline, Measure, then one
// Gather* per source of evidence over the measured span.
class Investigator {
 public:
  Investigator(Helpers helpers, const DoctorOptions& options, Handle workload, Handle module,
               int bare)
      : helpers_(std::move(helpers)), workload_(workload), module_(module), bare_(bare) {
    inv_.options = options;
  }

  absl::StatusOr<Investigation> Run() && LEAKGUARD_REQUIRES_GIL {
    // Iterations that only run the workload (a bounded container filling
    // before the measured span starts).
    for (int i = 0; i < bare_; ++i) LEAKGUARD_RETURN_IF_ERROR(CallWorkload());
    {
      // The heap as it stands before each run is frozen (see FreezeHeap):
      // thawed for the baseline's walks, and whatever happens, before the
      // gathering below walks it.
      struct Thaw {
        const Investigator* self;
        ~Thaw() { self->ThawHeap(); }
      } thaw{this};
      LEAKGUARD_RETURN_IF_ERROR(WarmUp());
      LEAKGUARD_RETURN_IF_ERROR(TakeBaseline());
      LEAKGUARD_RETURN_IF_ERROR(Measure());
    }
    // The end of the measured span: the snapshot comes before anything
    // below allocates.
    LEAKGUARD_ASSIGN_OR_RETURN(tracemalloc::Snapshot last, tracemalloc::Snapshot::Take());
    GatherNumpy(last);
    LEAKGUARD_RETURN_IF_ERROR(GatherSites(last));
    LEAKGUARD_RETURN_IF_ERROR(GatherTypes());
    LEAKGUARD_RETURN_IF_ERROR(GatherCyclicGarbage());
    GatherHolders();
    LEAKGUARD_RETURN_IF_ERROR(GatherThreadLocals());
    GatherChain();
    PyErr_Clear();
    return std::move(inv_);
  }

 private:
  const DoctorOptions& options() const { return inv_.options; }

  absl::StatusOr<bool> GcAutomatic() const LEAKGUARD_REQUIRES_GIL {
    Ref r = Steal(PyObject_CallNoArgs(helpers_.gc_automatic.get()));
    if (!r) return StatusFromPythonError();
    return PyObject_IsTrue(r.get()) == 1;
  }

  absl::StatusOr<Scan> RunScan() const LEAKGUARD_REQUIRES_GIL {
    Scan scan;
    PyObject* module = module_ ? module_.get() : Py_None;
    PyObject* internals = internals_ ? internals_.get() : Py_None;
    Ref result =
        Steal(PyObject_CallFunctionObjArgs(helpers_.scan.get(), module, internals, nullptr));
    if (!result) return StatusFromPythonError();
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(result.get(), &pos, &key, &value)) {
      const char* path = PyUnicode_AsUTF8(key);
      const char* kind = nullptr;
      long long measure = 0;
      const char* item = nullptr;
      const char* tags = nullptr;
      long long limit = -1;
      if (path == nullptr ||
          !PyArg_ParseTuple(value, "sLssL", &kind, &measure, &item, &tags, &limit)) {
        return StatusFromPythonError();
      }
      scan[path] = ScanEntry{kind, item, tags, measure, limit};
    }
    return scan;
  }

  absl::Status CallWorkload() const LEAKGUARD_REQUIRES_GIL {
    Ref r = Steal(PyObject_CallNoArgs(workload_.get()));
    if (!r) return StatusFromPythonError();
    return absl::OkStatus();
  }

  // Runs the workload once and records what changed since base_, collecting
  // first when `collect` (automatic collection on: the reading after the
  // collection is the one that counts).
  absl::Status Iterate(bool collect) LEAKGUARD_REQUIRES_GIL {
    LEAKGUARD_RETURN_IF_ERROR(CallWorkload());
    LEAKGUARD_ASSIGN_OR_RETURN(Counters now, ReadCounters({.collect = collect}));
    IterationDelta d = now - base_;
    d.gc_freed = collect ? now.gc_freed : 0;
    inv_.iterations.push_back(d);
    base_ = now;
    return absl::OkStatus();
  }

  // With automatic collection on, every reading below starts with a full
  // collection, and on a big heap that walk of every tracked object is most
  // of the doctor's cost. Right after a full collection everything tracked
  // is alive (or is garbage no later collection frees either), so the doctor
  // freezes it (gc.freeze()): the collections that follow walk only what the
  // workload made since, and free exactly the garbage a full collection
  // would have freed of it. (An object frozen alive that the workload then
  // drops into a cycle stays until the heap is thawed; the SAVEALL
  // collection at the end, after the thaw, still sees it.)
  absl::Status FreezeHeap() LEAKGUARD_REQUIRES_GIL {
    Ref r = Steal(PyObject_CallNoArgs(helpers_.freeze_heap.get()));
    if (!r) return StatusFromPythonError();
    return absl::OkStatus();
  }

  // Undoes FreezeHeap() (no-op when nothing is frozen by the doctor). Keeps
  // a pending Python error as it was.
  void ThawHeap() const LEAKGUARD_REQUIRES_GIL {
    PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
    PyErr_Fetch(&type, &value, &traceback);
    Ref r = Steal(PyObject_CallNoArgs(helpers_.thaw_heap.get()));
    if (!r) PyErr_Clear();
    PyErr_Restore(type, value, traceback);
  }

  // Warm-up: imports, caches filling. Measured like the rest (the verdict
  // reads the first iteration) but never part of the growth.
  absl::Status WarmUp() LEAKGUARD_REQUIRES_GIL {
    LEAKGUARD_ASSIGN_OR_RETURN(const bool automatic, GcAutomatic());
    LEAKGUARD_ASSIGN_OR_RETURN(base_, ReadCounters({.collect = automatic}));
    if (automatic) LEAKGUARD_RETURN_IF_ERROR(FreezeHeap());
    for (int i = 0; i < options().warmup; ++i) {
      LEAKGUARD_RETURN_IF_ERROR(Iterate(automatic));
    }
    return absl::OkStatus();
  }

  // The baseline of the measured span, taken once: the collector's mode
  // (the workload may have turned automatic collection off on its first
  // calls), a clean slate of garbage (what the SAVEALL collection finds at
  // the end was made while measuring), the snapshot, the type census, the
  // object mark, the first namespace scan and the counters.
  absl::Status TakeBaseline() LEAKGUARD_REQUIRES_GIL {
    LEAKGUARD_ASSIGN_OR_RETURN(inv_.gc_automatic, GcAutomatic());
    ThawHeap();  // the census and the mark walk every generation
    LEAKGUARD_RETURN_IF_ERROR(internal::CollectGarbage().status());
    LEAKGUARD_ASSIGN_OR_RETURN(tracemalloc::Snapshot first, tracemalloc::Snapshot::Take());
    first_.emplace(std::move(first));
    LEAKGUARD_ASSIGN_OR_RETURN(TypeCensus census, TakeTypeCensus());
    census_first_.emplace(std::move(census));
    LEAKGUARD_ASSIGN_OR_RETURN(ObjectMark mark, ObjectMark::Take(/*collect_first=*/false));
    mark_.emplace(std::move(mark));
    internals_ = Steal(PyObject_CallNoArgs(helpers_.bounded_internals.get()));
    if (!internals_) return StatusFromPythonError();
    LEAKGUARD_ASSIGN_OR_RETURN(Scan scan, RunScan());
    scans_.push_back(std::move(scan));
    LEAKGUARD_ASSIGN_OR_RETURN(base_, ReadCounters({.collect = inv_.gc_automatic}));
    if (inv_.gc_automatic) LEAKGUARD_RETURN_IF_ERROR(FreezeHeap());
    return absl::OkStatus();
  }

  // The measured iterations, each followed by a namespace scan. The scan's
  // temporaries end up in CPython's free lists, which a full collection
  // empties: with automatic collection on, the next reading (after its
  // gc.collect()) does not see them; with it off, every iteration is
  // measured at the same point of the same cycle, so they cancel out.
  absl::Status Measure() LEAKGUARD_REQUIRES_GIL {
    for (int i = 0; i < options().repeat; ++i) {
      LEAKGUARD_RETURN_IF_ERROR(Iterate(inv_.gc_automatic));
      LEAKGUARD_ASSIGN_OR_RETURN(Scan scan, RunScan());
      scans_.push_back(std::move(scan));
    }
    return absl::OkStatus();
  }

  // NumPy's traced domain.
  void GatherNumpy(const tracemalloc::Snapshot& last) {
    inv_.numpy_bytes = DomainBytes(last) - DomainBytes(*first_);
  }

  // The lines that grew, leakguard's own frames excluded; those worth
  // naming are at least a tenth of the largest.
  absl::Status GatherSites(const tracemalloc::Snapshot& last) LEAKGUARD_REQUIRES_GIL {
    LEAKGUARD_ASSIGN_OR_RETURN(
        std::vector<LineGrowth> lines,
        internal::GrownLines(*first_, last, tracemalloc::GroupBy::kLineno, options().top));
    const int64_t largest = lines.empty() ? 0 : lines.front().size_diff;
    for (const LineGrowth& g : lines) {
      if (g.size_diff * 10 < largest) continue;
      inv_.sites.push_back({g.file, g.line, g.size_diff / options().repeat});
    }
    return absl::OkStatus();
  }

  // The types whose gc-tracked count grew.
  absl::Status GatherTypes() LEAKGUARD_REQUIRES_GIL {
    LEAKGUARD_ASSIGN_OR_RETURN(TypeCensus census_last, TakeTypeCensus());
    std::map<std::string, int64_t> before;
    for (const TypeCount& t : census_first_->Counts()) before[t.name] = t.count;
    for (const TypeCount& t : census_last.Counts()) {
      const int64_t grew = t.count - before[t.name];
      if (grew > 0) {
        inv_.types.push_back({t.name, static_cast<double>(grew) / options().repeat});
      }
    }
    std::stable_sort(
        inv_.types.begin(), inv_.types.end(),
        [](const TypeGrowth& a, const TypeGrowth& b) { return a.per_iter > b.per_iter; });
    if (inv_.types.size() > static_cast<size_t>(options().top)) inv_.types.resize(options().top);
    return absl::OkStatus();
  }

  // Garbage only the cycle collector frees: with collection off it piled up
  // during the measured iterations; with it on, each iteration's was freed
  // and counted in gc_freed.
  absl::Status GatherCyclicGarbage() LEAKGUARD_REQUIRES_GIL {
    Ref saved = Steal(PyObject_CallNoArgs(helpers_.saveall_collect.get()));
    if (!saved) return StatusFromPythonError();
    long long garbage = 0;
    PyObject* garbage_types = nullptr;
    if (!PyArg_ParseTuple(saved.get(), "LO", &garbage, &garbage_types)) {
      return StatusFromPythonError();
    }
    inv_.cyclic_garbage = garbage;
    for (Py_ssize_t i = 0; i < PyList_Size(garbage_types); ++i) {
      const char* name = nullptr;
      long long count = 0;
      if (PyArg_ParseTuple(PyList_GET_ITEM(garbage_types, i), "sL", &name, &count)) {
        inv_.garbage_types.push_back({name, static_cast<double>(count)});
      }
    }
    PyErr_Clear();
    return absl::OkStatus();
  }

  // The namespace's containers that changed over the measured iterations,
  // each with its series.
  void GatherHolders() LEAKGUARD_REQUIRES_GIL {
    if (scans_.empty()) return;
    for (const auto& [path, entry] : scans_.back()) {
      auto it0 = scans_.front().find(path);
      // Containers that changed, and those that state a limit (even when
      // full and flat: a sample they hold is no evidence of a leak).
      if (it0 == scans_.front().end()) continue;
      if (it0->second.measure == entry.measure && entry.limit <= 0) continue;
      HolderEvidence h;
      h.path = path;
      h.kind = entry.kind;
      h.item = entry.item;
      for (absl::string_view tag : absl::StrSplit(entry.tags, ',', absl::SkipEmpty())) {
        if (tag == "class") h.via_class = true;
        if (tag == "defaults") h.via_defaults = true;
        if (tag == "contextvar") h.via_contextvar = true;
        if (tag == "internal") h.internal = true;
        if (absl::ConsumePrefix(&tag, "registry")) {
          h.registry = absl::ConsumePrefix(&tag, ":") ? std::string(tag) : "modules";
        }
      }
      if (entry.limit > 0) h.limit = entry.limit;
      for (const Scan& s : scans_) {
        auto it = s.find(path);
        h.series.push_back(it == s.end() ? 0 : it->second.measure);
      }
      inv_.holders.push_back(std::move(h));
    }
  }

  // The module's threading.local objects.
  absl::Status GatherThreadLocals() LEAKGUARD_REQUIRES_GIL {
    if (!module_) return absl::OkStatus();
    Ref locals = Steal(PyObject_CallOneArg(helpers_.thread_locals.get(), module_.get()));
    if (!locals) return StatusFromPythonError();
    inv_.thread_locals = StringList(locals.get());
    return absl::OkStatus();
  }

  // The back-reference chain of the newest object of the fastest-growing
  // new type, to a proper module (best effort: nothing found is no error).
  void GatherChain() LEAKGUARD_REQUIRES_GIL {
    absl::StatusOr<std::vector<Ref>> fresh = mark_->NewObjects(/*collect_first=*/false);
    if (!fresh.ok() || fresh->empty()) {
      PyErr_Clear();
      return;
    }
    absl::StatusOr<TypeCensus> census = CensusOf(*fresh);
    if (!census.ok()) return;
    std::vector<TypeCount> common = census->MostCommon(1);
    if (common.empty()) return;
    Ref sample;
    for (auto it = fresh->rbegin(); it != fresh->rend(); ++it) {
      if (std::string(Py_TYPE(it->get())->tp_name).ends_with(common[0].name)) {
        sample = *it;
        break;
      }
    }
    fresh->clear();  // Drop the references before walking the graph.
    if (!sample) return;
    absl::StatusOr<ReferrerGraph> graph = ReferrerGraph::Build();
    if (!graph.ok()) return;
    absl::StatusOr<BackrefChain> chain = graph->FindChain(sample, ChainOptions{});
    if (!chain.ok()) return;
    inv_.chain = chain->Path();
    inv_.chain_holder = HolderOnChain(*chain);
    if (options().want_dot) inv_.dot = chain->Dot();
  }

  Helpers helpers_;
  Handle workload_;
  Handle module_;
  int bare_ = 0;
  Investigation inv_;
  Counters base_;
  std::optional<tracemalloc::Snapshot> first_;
  std::optional<TypeCensus> census_first_;
  std::optional<ObjectMark> mark_;
  std::vector<Scan> scans_;
  Ref internals_;  // bounded_internals(), found once at the baseline
};

absl::StatusOr<Investigation> InvestigateAfter(Handle workload, const DoctorOptions& options,
                                               Handle namespace_module, int bare) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!workload || !PyCallable_Check(workload.get())) {
    return absl::InvalidArgumentError("Investigate needs a Python callable");
  }
  LEAKGUARD_RETURN_IF_ERROR(options.Validate());
  Ref module = Borrow(namespace_module);
  if (!module) {
    // The callable's own module, when it has one in sys.modules.
    absl::StatusOr<Ref> name = GetAttr(workload, "__module__");
    if (name.ok() && PyUnicode_Check(name->get())) {
      PyObject* modules = PyImport_GetModuleDict();  // Borrowed.
      module = Borrow(PyDict_GetItemWithError(modules, name->get()));
    }
    PyErr_Clear();
  }
  LEAKGUARD_ASSIGN_OR_RETURN(Helpers helpers, LoadHelpers());

  // The doctor traces (one frame); a trace already running is left as it is.
  std::optional<tracemalloc::TracingScope> tracing;
  LEAKGUARD_ASSIGN_OR_RETURN(const bool on, tracemalloc::IsTracing());
  if (!on) {
    LEAKGUARD_ASSIGN_OR_RETURN(tracemalloc::TracingScope started,
                               tracemalloc::TracingScope::Start(1));
    tracing.emplace(std::move(started));
  }
  absl::StatusOr<Investigation> inv =
      Investigator(std::move(helpers), options, workload, module, bare).Run();
  if (tracing.has_value()) {
    absl::Status ended = tracing->End();
    if (inv.ok() && !ended.ok()) return ended;
  }
  return inv;
}

}  // namespace

absl::StatusOr<Investigation> Investigate(Handle workload, const DoctorOptions& options,
                                          Handle namespace_module) {
  return InvestigateAfter(workload, options, namespace_module, /*bare=*/0);
}

namespace {

// Native memory named: the workload run `repeat` more times under the
// native sampler (R = 16 KiB), between two marks, and the native sites whose
// estimate grew by more than 3 standard errors, largest first, per
// iteration. Empty when no sampler can run (another one runs, or no
// leakguard Interpreter is attached) or nothing native grew.
absl::StatusOr<std::vector<Site>> AttributeNative(Handle workload, const DoctorOptions& options)
    LEAKGUARD_REQUIRES_GIL {
  std::vector<Site> sites;
  absl::StatusOr<std::unique_ptr<AllocationSampler>> sampler = AllocationSampler::Create(
      {.sampling_interval = int64_t{16} * 1024, .max_frames = 8, .native = true});
  if (!sampler.ok()) return sites;
  if (!(*sampler)->Start().ok()) return sites;
  auto run = [&](int n) -> absl::Status {
    for (int i = 0; i < n; ++i) {
      Ref r = Steal(PyObject_CallNoArgs(workload.get()));
      if (!r) return StatusFromPythonError();
    }
    return absl::OkStatus();
  };
  absl::Status ran = run(1);  // what the first call under the hooks sets up
  const SamplerMark before = (*sampler)->Mark();
  if (ran.ok()) ran = run(options.repeat);
  const SamplerMark after = (*sampler)->Mark();
  (*sampler)->Stop();
  LEAKGUARD_RETURN_IF_ERROR(ran);
  std::map<std::string, const SiteEstimate*> old;
  for (const SiteEstimate& e : before.lines) {
    if (e.native) old[SiteName(e)] = &e;
  }
  struct Grown {
    const SiteEstimate* site;
    double bytes;
  };
  std::vector<Grown> grown;
  for (const SiteEstimate& e : after.lines) {
    if (!e.native) continue;
    auto it = old.find(SiteName(e));
    const double base = it == old.end() ? 0 : it->second->bytes;
    const double base_err = it == old.end() ? 0 : it->second->stderr_bytes;
    const double g = e.bytes - base;
    if (g <= 3 * std::sqrt(e.stderr_bytes * e.stderr_bytes + base_err * base_err) || g <= 0) {
      continue;
    }
    grown.push_back({&e, g});
  }
  std::sort(grown.begin(), grown.end(),
            [](const Grown& a, const Grown& b) { return a.bytes > b.bytes; });
  for (const Grown& g : grown) {
    if (static_cast<int>(sites.size()) >= options.top) break;
    Site site;
    site.file = g.site->filename;
    site.line = static_cast<int>(g.site->lineno);
    site.bytes_per_iter = std::llround(g.bytes / options.repeat);
    site.library = g.site->library;
    site.function = g.site->function;
    sites.push_back(std::move(site));
  }
  return sites;
}

// Investigate, decide, and when the answer is ambiguous run on within
// options.max_repeat: first until containers with a stated limit are full
// (then one more window, for their tables to settle), then longer when the
// growth is too irregular to call.
absl::StatusOr<Diagnosis> DiagnoseTraced(Handle workload, const DoctorOptions& options,
                                         Handle namespace_module) LEAKGUARD_REQUIRES_GIL {
  LEAKGUARD_ASSIGN_OR_RETURN(Investigation inv, Investigate(workload, options, namespace_module));
  Diagnosis d = Decide(inv);
  int budget = options.max_repeat;
  int extra = 0;
  std::vector<Evidence> ran;
  const internal::Facts facts = internal::DeriveFacts(inv);
  if (d.verdict != Verdict::kLeak && facts.bounded_filling) {
    auto left = [](const HolderEvidence* h) {
      const int64_t grew = h->series.back() - h->series.front();
      return static_cast<double>(*h->limit - h->series.back()) / static_cast<double>(grew);
    };
    const HolderEvidence& slowest = **std::max_element(
        facts.filling.begin(), facts.filling.end(),
        [&left](const HolderEvidence* a, const HolderEvidence* b) { return left(a) < left(b); });
    const int64_t need = facts.iterations_to_fill + options.repeat;
    DoctorOptions again = options;
    again.warmup = std::min(options.warmup, 1);
    if (need + again.warmup + again.repeat > budget) {
      d.verdict = Verdict::kInconclusive;
      d.note.reset();
      Evidence e;
      e.kind = Evidence::Kind::kNeedsMore;
      e.amount = need + again.warmup + again.repeat;
      e.other = *slowest.limit;
      e.subject = slowest.path;
      d.remarks.push_back(std::move(e));
      return d;
    }
    LEAKGUARD_ASSIGN_OR_RETURN(
        Investigation filled,
        InvestigateAfter(workload, again, namespace_module, static_cast<int>(need)));
    d = Decide(filled);
    const int used = static_cast<int>(need) + again.warmup + again.repeat;
    extra += used;
    budget -= used;
    if (d.verdict == Verdict::kNoLeak && !d.note) d.note = Note::kPlateau;
    Evidence e;
    e.kind = Evidence::Kind::kFilledFirst;
    e.amount = need;
    std::vector<std::string> names;
    for (const HolderEvidence* h : facts.filling) names.push_back(h->path);
    e.subject = absl::StrJoin(names, ", ");
    ran.push_back(std::move(e));
  }
  // The weakest cause (growth nothing is found to hold) must last: measured
  // again over twice the iterations before it is called a leak; a warm-up
  // still going on dies away meanwhile.
  // So must native growth (RSS alone: an allocator still settling looks the
  // same for a while).
  const bool unexplained_only =
      d.verdict == Verdict::kLeak && d.causes.size() == 1 &&
      (d.causes[0].rule == "heap.unexplained" ||
       (d.causes[0].rule == "native_growth" && !d.causes[0].holder.has_value()));
  // One more measured run of `repeat` iterations (no warm-up: the workload
  // is warm), decided on its own, and the remark that says so.
  auto measure_again = [&](int repeat, Evidence::Kind said) -> absl::Status {
    DoctorOptions again = options;
    again.warmup = 0;
    again.repeat = repeat;
    LEAKGUARD_ASSIGN_OR_RETURN(Investigation more, Investigate(workload, again, namespace_module));
    d = Decide(more);
    extra += repeat;
    budget -= repeat;
    Evidence e;
    e.kind = said;
    e.amount = repeat;
    ran.push_back(std::move(e));
    return absl::OkStatus();
  };
  if (unexplained_only && budget >= 2 * options.repeat) {
    LEAKGUARD_RETURN_IF_ERROR(measure_again(std::min(2 * options.repeat, DoctorOptions::kMaxRepeat),
                                            Evidence::Kind::kConfirmed));
  }
  for (int pass = 0;
       pass < 3 && d.verdict == Verdict::kInconclusive && budget >= 2 * options.repeat; ++pass) {
    LEAKGUARD_RETURN_IF_ERROR(
        measure_again(std::min({budget, options.repeat * 4, DoctorOptions::kMaxRepeat}),
                      Evidence::Kind::kRanLonger));
  }
  // A native_memory cause names where: the native sites, ahead of the
  // traced lines it may carry.
  for (Cause& c : d.causes) {
    if (c.id != CauseId::kNativeMemory) continue;
    LEAKGUARD_ASSIGN_OR_RETURN(std::vector<Site> native, AttributeNative(workload, options));
    if (!native.empty()) {
      extra += options.repeat + 1;
      c.sites.insert(c.sites.begin(), native.begin(), native.end());
    }
    break;
  }
  if (extra > 0) {
    d.extra_iterations = options.warmup + options.repeat + extra;
    d.remarks.insert(d.remarks.begin(), ran.begin(), ran.end());
  }
  return d;
}

}  // namespace

absl::StatusOr<Diagnosis> Diagnose(Handle workload, const DoctorOptions& options,
                                   Handle namespace_module) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  // One trace for every run: what a later run replaces must have been traced
  // when it was made, or its replacement looks like growth (tracemalloc
  // sees the new allocation and not the free of an untraced one).
  std::optional<tracemalloc::TracingScope> tracing;
  LEAKGUARD_ASSIGN_OR_RETURN(const bool on, tracemalloc::IsTracing());
  if (!on) {
    LEAKGUARD_ASSIGN_OR_RETURN(tracemalloc::TracingScope started,
                               tracemalloc::TracingScope::Start(1));
    tracing.emplace(std::move(started));
  }
  absl::StatusOr<Diagnosis> d = DiagnoseTraced(workload, options, namespace_module);
  if (tracing.has_value()) {
    absl::Status ended = tracing->End();
    if (d.ok() && !ended.ok()) return ended;
  }
  return d;
}

}  // namespace leakguard
