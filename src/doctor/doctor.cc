#include "leakguard/doctor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "doctor/doctor_scan.h"
#include "probes/growth.h"
#include "leakguard/object_graph.h"
#include "leakguard/process.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/report.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {
namespace {

// NumPy reports its data buffers to tracemalloc in this domain.
constexpr uint32_t kNumpyDomain = 389047;

struct Counters {
  int64_t rss = 0, traced = 0, blocks = 0, fds = 0, threads = 0;
};

// The helper functions of doctor_scan.cc, in a namespace of their own.
struct Helpers {
  Ref globals;
  Ref scan, thread_locals, gc_automatic, saveall_collect;
};

absl::StatusOr<Helpers> LoadHelpers() {
  Helpers h;
  h.globals = Steal(PyDict_New());
  if (!h.globals) return StatusFromPythonError();
  if (PyDict_SetItemString(h.globals.get(), "__builtins__", PyEval_GetBuiltins()) != 0 ||
      PyDict_SetItemString(h.globals.get(), "__name__", Py_None) != 0) {
    return StatusFromPythonError();
  }
  Ref ran = Steal(PyRun_String(internal::kDoctorScanSource, Py_file_input, h.globals.get(),
                               h.globals.get()));
  if (!ran) return StatusFromPythonError();
  auto get = [&](const char* name) { return Borrow(PyDict_GetItemString(h.globals.get(), name)); };
  h.scan = get("scan");
  h.thread_locals = get("thread_locals");
  h.gc_automatic = get("gc_automatic");
  h.saveall_collect = get("saveall_collect");
  if (!h.scan || !h.thread_locals || !h.gc_automatic || !h.saveall_collect) {
    return absl::InternalError("the doctor's scan helpers did not load");
  }
  return h;
}

absl::StatusOr<bool> GcAutomatic(const Helpers& h) {
  Ref r = Steal(PyObject_CallNoArgs(h.gc_automatic.get()));
  if (!r) return StatusFromPythonError();
  return PyObject_IsTrue(r.get()) == 1;
}

absl::StatusOr<Counters> Read(bool collect, int64_t* freed) {
  if (collect) {
    absl::StatusOr<int64_t> n = internal::CollectGarbage();
    if (!n.ok()) return n.status();
    if (freed != nullptr) *freed = *n;
  }
  Counters c;
  absl::StatusOr<int64_t> blocks = internal::AllocatedBlocks();
  if (!blocks.ok()) return blocks.status();
  c.blocks = *blocks;
  absl::StatusOr<tracemalloc::TracedMemory> traced = tracemalloc::GetTracedMemory();
  if (!traced.ok()) return traced.status();
  c.traced = static_cast<int64_t>(traced->current);
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  if (!sample.ok()) return sample.status();
  c.rss = sample->rss_bytes;
  c.fds = sample->open_fds;
  c.threads = sample->threads;
  return c;
}

// One scan: path -> (kind, measure, item, via_class, via_defaults).
struct ScanEntry {
  std::string kind, item;
  int64_t measure = 0;
  bool via_class = false, via_defaults = false;
};
using Scan = std::map<std::string, ScanEntry>;

absl::StatusOr<Scan> RunScan(const Helpers& h, Handle module) {
  Scan scan;
  if (!module) return scan;
  Ref result = Steal(PyObject_CallOneArg(h.scan.get(), module.ptr()));
  if (!result) return StatusFromPythonError();
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(result.get(), &pos, &key, &value)) {
    const char* path = PyUnicode_AsUTF8(key);
    const char* kind = nullptr;
    long long measure = 0;
    const char* item = nullptr;
    int via_class = 0, via_defaults = 0;
    if (path == nullptr ||
        !PyArg_ParseTuple(value, "sLspp", &kind, &measure, &item, &via_class, &via_defaults)) {
      return StatusFromPythonError();
    }
    scan[path] = ScanEntry{kind, item, measure, via_class != 0, via_defaults != 0};
  }
  return scan;
}

std::vector<std::string> StringList(PyObject* list) {
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

// The back-reference chain of the newest object of the fastest-growing new
// type, to a proper module.
void FindChain(const ObjectMark& mark, Investigation& inv) {
  absl::StatusOr<std::vector<Ref>> fresh = mark.NewObjects(/*collect_first=*/false);
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
  absl::StatusOr<BackrefChain> chain = graph->FindChain(sample.handle(), ChainOptions{});
  if (!chain.ok()) return;
  inv.chain = chain->Path();
  if (inv.options.want_dot) inv.dot = chain->Dot();
}

absl::StatusOr<Investigation> Run(const std::function<absl::Status()>& workload,
                                  const DoctorOptions& options, Handle module) {
  if (absl::Status gil = CheckGil(); !gil.ok()) return gil;
  if (options.warmup < 0 || options.warmup > 1000 || options.repeat < 2 ||
      options.repeat > 10000 || options.top < 1 || options.top > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the doctor needs warmup in 0..1000, repeat in 2..10000 and top in 1..100; got warmup=",
        options.warmup, " repeat=", options.repeat, " top=", options.top));
  }
  absl::StatusOr<Helpers> helpers = LoadHelpers();
  if (!helpers.ok()) return helpers.status();

  std::optional<tracemalloc::TracingScope> tracing;
  absl::StatusOr<bool> on = tracemalloc::IsTracing();
  if (!on.ok()) return on.status();
  if (!*on) {
    absl::StatusOr<tracemalloc::TracingScope> started = tracemalloc::TracingScope::Start(1);
    if (!started.ok()) return started.status();
    tracing.emplace(*std::move(started));
  }

  Investigation inv;
  inv.options = options;
  std::optional<tracemalloc::Snapshot> first;
  std::optional<TypeCensus> census_first;
  std::optional<ObjectMark> mark;
  std::vector<Scan> scans;
  absl::StatusOr<bool> automatic = GcAutomatic(*helpers);
  if (!automatic.ok()) return automatic.status();
  absl::StatusOr<Counters> base = Read(*automatic, nullptr);
  if (!base.ok()) return base.status();
  const int total = options.warmup + options.repeat;
  for (int i = 0; i < total; ++i) {
    if (i == options.warmup) {
      // The workload may have turned automatic collection off on its first
      // calls: decide how to measure from here on.
      automatic = GcAutomatic(*helpers);
      if (!automatic.ok()) return automatic.status();
      inv.gc_automatic = *automatic;
      // Start from a clean slate: garbage of the warm-up is gone, so what
      // the SAVEALL collection finds at the end was made while measuring.
      if (absl::StatusOr<int64_t> c = internal::CollectGarbage(); !c.ok()) return c.status();
      absl::StatusOr<tracemalloc::Snapshot> snap = tracemalloc::Snapshot::Take();
      if (!snap.ok()) return snap.status();
      first.emplace(*std::move(snap));
      absl::StatusOr<TypeCensus> census = TakeTypeCensus();
      if (!census.ok()) return census.status();
      census_first.emplace(*std::move(census));
      absl::StatusOr<ObjectMark> m = ObjectMark::Take(/*collect_first=*/false);
      if (!m.ok()) return m.status();
      mark.emplace(*std::move(m));
      absl::StatusOr<Scan> scan = RunScan(*helpers, module);
      if (!scan.ok()) return scan.status();
      scans.push_back(*std::move(scan));
      base = Read(inv.gc_automatic, nullptr);
      if (!base.ok()) return base.status();
    }
    if (absl::Status ran = workload(); !ran.ok()) return ran;
    const bool collect = i < options.warmup ? *automatic : inv.gc_automatic;
    IterationDelta d;
    absl::StatusOr<Counters> now = Read(collect, &d.gc_freed);
    if (!now.ok()) return now.status();
    d.rss_bytes = now->rss - base->rss;
    d.traced_bytes = now->traced - base->traced;
    d.blocks = now->blocks - base->blocks;
    d.fds = now->fds - base->fds;
    d.threads = now->threads - base->threads;
    inv.iterations.push_back(d);
    if (i >= options.warmup) {
      absl::StatusOr<Scan> scan = RunScan(*helpers, module);
      if (!scan.ok()) return scan.status();
      // The scan's temporaries end up in CPython's free lists, which a full
      // collection empties: with automatic collection on, the next reading
      // (after its gc.collect()) does not see them; with it off, every
      // iteration is measured at the same point of the same cycle, so they
      // cancel out. Either way the next iteration is measured from `now`.
      scans.push_back(*std::move(scan));
    }
    base = now;
  }

  // The end of the measured span: read it before anything below allocates.
  absl::StatusOr<tracemalloc::Snapshot> last = tracemalloc::Snapshot::Take();
  if (!last.ok()) return last.status();
  inv.numpy_bytes = DomainBytes(*last) - DomainBytes(*first);
  absl::StatusOr<std::vector<LineGrowth>> lines = internal::GrownLines(
      *first, *last, tracemalloc::GroupBy::kLineno, options.top);
  if (!lines.ok()) return lines.status();
  // Sites worth naming: at least a tenth of the largest.
  const int64_t largest = lines->empty() ? 0 : lines->front().size_diff;
  for (const LineGrowth& g : *lines) {
    if (g.size_diff * 10 < largest) continue;
    inv.sites.push_back({g.file, g.line, g.size_diff / options.repeat});
  }

  absl::StatusOr<TypeCensus> census_last = TakeTypeCensus();
  if (!census_last.ok()) return census_last.status();
  {
    std::map<std::string, int64_t> before;
    for (const TypeCount& t : census_first->Counts()) before[t.name] = t.count;
    for (const TypeCount& t : census_last->Counts()) {
      const int64_t grew = t.count - before[t.name];
      if (grew > 0) inv.types.push_back({t.name, static_cast<double>(grew) / options.repeat});
    }
    std::stable_sort(inv.types.begin(), inv.types.end(),
                     [](const TypeGrowth& a, const TypeGrowth& b) { return a.per_iter > b.per_iter; });
    if (inv.types.size() > static_cast<size_t>(options.top)) inv.types.resize(options.top);
  }

  // Garbage only the cycle collector frees (with collection off it piled
  // up during the measured iterations; with it on, each iteration's was
  // freed and counted in gc_freed).
  Ref saved = Steal(PyObject_CallNoArgs(helpers->saveall_collect.get()));
  if (!saved) return StatusFromPythonError();
  long long garbage = 0;
  PyObject* garbage_types = nullptr;
  if (!PyArg_ParseTuple(saved.get(), "LO", &garbage, &garbage_types)) {
    return StatusFromPythonError();
  }
  inv.cyclic_garbage = garbage;
  for (Py_ssize_t i = 0; i < PyList_Size(garbage_types); ++i) {
    const char* name = nullptr;
    long long count = 0;
    if (PyArg_ParseTuple(PyList_GET_ITEM(garbage_types, i), "sL", &name, &count)) {
      inv.garbage_types.push_back({name, static_cast<double>(count)});
    }
  }
  PyErr_Clear();

  // Containers of the namespace that changed over the measured iterations.
  if (!scans.empty()) {
    for (const auto& [path, entry] : scans.back()) {
      auto it0 = scans.front().find(path);
      if (it0 == scans.front().end() || it0->second.measure == entry.measure) continue;
      HolderEvidence h{path, entry.kind, entry.item, {}, entry.via_class, entry.via_defaults};
      for (const Scan& s : scans) {
        auto it = s.find(path);
        h.series.push_back(it == s.end() ? 0 : it->second.measure);
      }
      inv.holders.push_back(std::move(h));
    }
  }
  if (module) {
    Ref locals = Steal(PyObject_CallOneArg(helpers->thread_locals.get(), module.ptr()));
    if (!locals) return StatusFromPythonError();
    inv.thread_locals = StringList(locals.get());
  }
  FindChain(*mark, inv);
  PyErr_Clear();
  if (tracing.has_value()) {
    if (absl::Status ended = tracing->End(); !ended.ok()) return ended;
  }
  return inv;
}

// ------------------------------------------------------------ the decision

// A series "grows steadily" when at least 90% of its steps are at least
// `floor` and the total is positive: regrtest's every-run rule with room for
// one noisy step in twenty.
bool Steady(const std::vector<int64_t>& steps, int64_t floor) {
  if (steps.empty()) return false;
  int64_t good = 0, total = 0;
  for (int64_t s : steps) {
    if (s >= floor) ++good;
    total += s;
  }
  return total > 0 && good * 10 >= static_cast<int64_t>(steps.size()) * 9;
}

std::vector<int64_t> Measured(const Investigation& inv, int64_t IterationDelta::*field) {
  std::vector<int64_t> v;
  for (size_t i = static_cast<size_t>(inv.options.warmup); i < inv.iterations.size(); ++i) {
    v.push_back(inv.iterations[i].*field);
  }
  return v;
}

std::vector<int64_t> Steps(const std::vector<int64_t>& series) {
  std::vector<int64_t> steps;
  for (size_t i = 1; i < series.size(); ++i) steps.push_back(series[i] - series[i - 1]);
  return steps;
}

// The namespace container that grew steadily, preferring the shortest
// path among equals: the holder.
const HolderEvidence* SteadyHolder(const Investigation& inv) {
  const HolderEvidence* best = nullptr;
  for (const HolderEvidence& h : inv.holders) {
    if (!Steady(Steps(h.series), 1)) continue;
    if (best == nullptr || h.path.size() < best->path.size()) best = &h;
  }
  return best;
}

// "app.f.__defaults__[0]" names the defaults tuple the user wrote.
std::string HolderName(const HolderEvidence& h) {
  const size_t at = h.path.find(".__defaults__[");
  if (at != std::string::npos) return h.path.substr(0, at + 13);
  return h.path;
}

const char* FixFor(const std::string& id) {
  static const std::map<std::string, const char*> fixes = {
      {"unbounded_cache",
       "Bound the cache: evict by size and/or age.\n"
       "    @functools.lru_cache(maxsize=1024)        # not maxsize=None\n"
       "    def render(page): ...\n"
       "  or leakguard.lru_cache(maxsize=1024, ttl=300) for a time limit."},
      {"global_state",
       "Keep per-request state out of module, class and default-argument containers.\n"
       "    def remember(item, seen=None):\n"
       "        seen = [] if seen is None else seen   # not seen=[]\n"
       "  and remove registry entries when their objects are done (or use weakref.WeakSet)."},
      {"reference_cycles",
       "Let the cycle collector run: gc.enable() (or gc.set_threshold(700)), or collect on a\n"
       "  schedule if you must pause it:\n"
       "    gc.disable(); ...; gc.collect()   # at a safe point, every N requests\n"
       "  and break parent/child cycles with weakref (self.parent = weakref.ref(parent))."},
      {"closure_capture",
       "Capture only what the callback needs, not the whole object:\n"
       "    size = len(body)\n"
       "    def done(): return size          # not: return len(body)\n"
       "  and drop callbacks once they have run."},
      {"unclosed_resources",
       "Close what you open, on every path:\n"
       "    with open(path) as f: ...        # or try/finally: os.close(fd)"},
      {"native_memory",
       "Free native memory where it is allocated (ctypes: libc.free(p); an extension's\n"
       "  close()/release()); for mmap, m.close(). Profile native allocations with\n"
       "  memray --native or valgrind if the source is unknown."},
      {"listener_accumulation",
       "Hold listeners weakly, or unsubscribe them:\n"
       "    bus = leakguard.EventBus()          # bound methods held weakly\n"
       "    bus.subscribe(obj.on_event)         # gone when obj is gone\n"
       "  or weakref.WeakMethod(callback) in your own list."},
      {"thread_local",
       "Clear per-thread storage at the end of each task (del local.items / local.__dict__.clear()),\n"
       "  and give threads an end (a pool with a bounded size, a stop event they check)."},
      {"array_copies",
       "Keep views or the data you need, not copies; bound history buffers:\n"
       "    history = collections.deque(maxlen=100)\n"
       "    history.append(result)               # old arrays are freed\n"
       "  and preallocate instead of np.concatenate in a loop."},
      {"logging_buffer",
       "Bound or flush buffering handlers:\n"
       "    logging.handlers.MemoryHandler(capacity=1000, target=file_handler)\n"
       "  (a target and a capacity it reaches), or a StreamHandler/FileHandler in production."},
  };
  auto it = fixes.find(id);
  return it == fixes.end() ? "" : it->second;
}

std::string Bytes(int64_t n) { return FormatBytes(n); }

std::string PerIter(int64_t total, int repeat) {
  return absl::StrFormat("%.1f", static_cast<double>(total) / repeat);
}

}  // namespace

IterationDelta Investigation::MeasuredTotal() const {
  IterationDelta t;
  for (size_t i = static_cast<size_t>(options.warmup); i < iterations.size(); ++i) {
    t.rss_bytes += iterations[i].rss_bytes;
    t.traced_bytes += iterations[i].traced_bytes;
    t.blocks += iterations[i].blocks;
    t.fds += iterations[i].fds;
    t.threads += iterations[i].threads;
    t.gc_freed += iterations[i].gc_freed;
  }
  return t;
}

Diagnosis Decide(const Investigation& inv) {
  Diagnosis d;
  const int repeat = inv.options.repeat;
  d.warmup = inv.options.warmup;
  d.repeat = repeat;
  const IterationDelta total = inv.MeasuredTotal();
  d.rss_bytes_per_iter = total.rss_bytes / repeat;
  d.traced_bytes_per_iter = total.traced_bytes / repeat;
  d.blocks_per_iter = total.blocks / repeat;
  d.fds_per_iter = total.fds / repeat;
  d.threads_per_iter = total.threads / repeat;
  d.types = inv.types;
  d.dot = inv.dot;

  const std::vector<int64_t> blocks = Measured(inv, &IterationDelta::blocks);
  const std::vector<int64_t> traced = Measured(inv, &IterationDelta::traced_bytes);
  const std::vector<int64_t> rss = Measured(inv, &IterationDelta::rss_bytes);
  const std::vector<int64_t> fds = Measured(inv, &IterationDelta::fds);
  const std::vector<int64_t> threads = Measured(inv, &IterationDelta::threads);
  const HolderEvidence* holder = SteadyHolder(inv);
  auto add = [&d](Cause c) {
    c.fix = FixFor(c.id);
    d.causes.push_back(std::move(c));
  };
  auto python_sites = [&inv] { return inv.sites; };

  // 1. Descriptors: exact counters; any steady rise is a leak.
  if (Steady(fds, 1)) {
    Cause c{"unclosed_resources", 0.95, std::nullopt, {}, {}, ""};
    c.evidence.push_back(absl::StrCat("open file descriptors grew by ", total.fds, " over ",
                                      repeat, " iterations (", PerIter(total.fds, repeat),
                                      " per iteration)"));
    if (holder != nullptr) c.holder = HolderName(*holder);
    c.sites = python_sites();
    add(std::move(c));
  }
  // 2. Threads that never end.
  if (Steady(threads, 1)) {
    Cause c{"thread_local", 0.9, std::nullopt, {}, {}, ""};
    c.evidence.push_back(absl::StrCat("threads grew by ", total.threads, " over ", repeat,
                                      " iterations: threads are started and never end"));
    add(std::move(c));
  }
  // 3. Cycles that only the collector frees, with the collector off.
  if (!inv.gc_automatic && inv.cyclic_garbage >= repeat) {
    Cause c{"reference_cycles", 0.9, std::nullopt, {}, {}, ""};
    c.evidence.push_back(
        "automatic garbage collection is off (gc.isenabled() is False or the generation-0 "
        "threshold is 0)");
    std::vector<std::string> kinds;
    for (const TypeGrowth& t : inv.garbage_types) {
      kinds.push_back(absl::StrCat(t.type, " x", static_cast<int64_t>(t.per_iter)));
    }
    c.evidence.push_back(absl::StrCat(inv.cyclic_garbage,
                                      " objects in reference cycles piled up over ", repeat,
                                      " iterations, freed only by gc.collect(): ",
                                      absl::StrJoin(kinds, ", ")));
    c.evidence.push_back(absl::StrCat(
        "on CPython ", PY_MAJOR_VERSION, ".", PY_MINOR_VERSION,
        " cycles whose objects define __del__ are collected too (PEP 442); gc.garbage fills "
        "only under DEBUG_SAVEALL or for legacy tp_del types"));
    c.sites = python_sites();
    add(std::move(c));
  }
  // 4. Native: RSS rises steadily, traced memory does not explain it.
  const bool native = Steady(rss, 4096) && total.rss_bytes >= 256 * 1024 &&
                      total.traced_bytes * 4 < total.rss_bytes;
  if (native) {
    Cause c{"native_memory", 0.85, std::nullopt, {}, {}, ""};
    c.evidence.push_back(absl::StrCat("RSS grew ", Bytes(total.rss_bytes), " (",
                                      Bytes(total.rss_bytes / repeat),
                                      " per iteration) while Python's traced heap grew ",
                                      Bytes(total.traced_bytes),
                                      ": memory outside Python's allocator"));
    if (holder != nullptr) {
      c.holder = HolderName(*holder);
      c.evidence.push_back(absl::StrCat(*c.holder, " (", holder->kind, " of ", holder->item,
                                        ") grew by ", holder->series.back() - holder->series.front(),
                                        " and keeps the native objects alive"));
    }
    add(std::move(c));
  }
  // 5. The Python heap.
  // A container that gains in every measured iteration is growth even when
  // it is too small for the heap counters to show every time (a list of
  // shared objects grows by a pointer, reallocated in jumps).
  const bool holder_every_step =
      holder != nullptr && [&] {
        for (int64_t step : Steps(holder->series)) {
          if (step <= 0) return false;
        }
        return true;
      }();
  const bool python = !native &&
                      (((Steady(blocks, 1) || Steady(traced, 1)) && total.traced_bytes > 0) ||
                       holder_every_step);
  if (python && !(d.causes.size() == 1 && d.causes[0].id == "reference_cycles")) {
    Cause c{"", 0.9, std::nullopt, {}, {}, ""};
    c.sites = python_sites();
    c.evidence.push_back(absl::StrCat("Python's traced heap grew ", Bytes(total.traced_bytes),
                                      " over ", repeat, " iterations (",
                                      Bytes(total.traced_bytes / repeat), " and ",
                                      PerIter(total.blocks, repeat),
                                      " blocks per iteration), in every iteration"));
    if (holder != nullptr) {
      c.holder = HolderName(*holder);
      const int64_t grew = holder->series.back() - holder->series.front();
      c.evidence.push_back(absl::StrCat(
          *c.holder, " is a ", holder->kind, " that grew by ",
          holder->kind == "ndarray" || holder->kind == "ndarray_list" ? Bytes(grew)
                                                                       : absl::StrCat(grew),
          " over the ", repeat, " iterations",
          holder->item.empty() ? "" : absl::StrCat(" (it holds ", holder->item, " objects)")));
      const std::string& item = holder->item;
      const std::string& kind = holder->kind;
      if (kind == "ndarray" || kind == "ndarray_list" || item == "ndarray" ||
          inv.numpy_bytes * 2 > total.traced_bytes) {
        c.id = "array_copies";
        c.evidence.push_back(absl::StrCat("NumPy's traced buffers grew ", Bytes(inv.numpy_bytes)));
      } else if (item == "log_record" || absl::StrContains(c.holder.value(), ".buffer")) {
        c.id = "logging_buffer";
        c.evidence.push_back("the container is a logging handler's record buffer");
      } else if (kind == "lru_cache") {
        c.id = "unbounded_cache";
        c.evidence.push_back("a functools cache whose currsize grows: it never evicts");
      } else if (item == "closure") {
        c.id = "closure_capture";
        c.evidence.push_back(
            "it holds closures; their cells keep what they captured alive");
      } else if (item == "bound_method" || item == "callable") {
        c.id = "listener_accumulation";
        c.evidence.push_back(
            "it holds callbacks (bound methods keep their objects alive) that are added and "
            "never removed");
      } else if (holder->via_defaults) {
        c.id = "global_state";
        c.evidence.push_back("a mutable default argument: one object shared by every call");
      } else if (holder->via_class) {
        c.id = "global_state";
        c.evidence.push_back("a class attribute: shared by every instance, lives as long as the class");
      } else if (kind == "dict") {
        c.id = "unbounded_cache";
        c.evidence.push_back("a module-level dict that gains a key every iteration and never evicts");
      } else {
        c.id = "global_state";
        c.evidence.push_back("a module-level container that only grows");
      }
    } else if (!inv.thread_locals.empty()) {
      c.id = "thread_local";
      c.confidence = 0.7;
      c.holder = inv.thread_locals.front();
      c.evidence.push_back(absl::StrCat(
          "no container reachable from the module's globals grew, but the module keeps "
          "threading.local storage (", absl::StrJoin(inv.thread_locals, ", "),
          "), whose per-thread values live as long as their threads"));
    } else if (inv.numpy_bytes * 2 > total.traced_bytes) {
      c.id = "array_copies";
      c.confidence = 0.6;
      c.evidence.push_back(absl::StrCat("NumPy's traced buffers grew ", Bytes(inv.numpy_bytes)));
    } else {
      c.id = "global_state";
      c.confidence = 0.5;
      c.evidence.push_back("no container of the script's namespace explains it; see the chain");
    }
    if (!inv.chain.empty()) c.evidence.push_back(absl::StrCat("back-reference chain: ", inv.chain));
    add(std::move(c));
  }

  std::stable_sort(d.causes.begin(), d.causes.end(),
                   [](const Cause& a, const Cause& b) { return a.confidence > b.confidence; });
  if (!d.causes.empty()) {
    d.verdict = "leak";
    return d;
  }

  // No steady growth. Say what the growth there was means.
  int64_t measured_growth = 0;
  for (int64_t b : blocks) measured_growth += b;
  int growing_steps = 0;
  for (int64_t b : blocks) growing_steps += b > 0 ? 1 : 0;
  const bool inconclusive = growing_steps * 2 >= repeat && measured_growth >= repeat;
  if (inconclusive) {
    d.verdict = "inconclusive";
    d.remarks.push_back(absl::StrCat("allocated blocks grew in ", growing_steps, " of ", repeat,
                                     " iterations (", measured_growth,
                                     " in all): too irregular to call; run with more --repeat"));
    return d;
  }
  d.verdict = "no_leak";
  bool plateau = false;
  for (const HolderEvidence& h : inv.holders) {
    const std::vector<int64_t> steps = Steps(h.series);
    if (!steps.empty() && steps.back() == 0 && h.series.back() > h.series.front()) {
      plateau = true;
      d.remarks.push_back(absl::StrCat(h.path, " grew from ", h.series.front(), " to ",
                                       h.series.back(), " and then stopped"));
    }
  }
  int64_t warm_first = inv.iterations.empty() ? 0 : inv.iterations.front().blocks;
  const double freed_per_iter = static_cast<double>(total.gc_freed) / repeat;
  int64_t run_blocks = 0;  // Every iteration, warm-up included.
  for (const IterationDelta& it : inv.iterations) run_blocks += it.blocks;
  if (plateau) {
    d.note = "plateau";
  } else if (warm_first >= 100 && run_blocks * 2 >= warm_first) {
    d.note = "one_time_growth";
    d.remarks.push_back(absl::StrCat("the first iteration allocated ", warm_first,
                                     " blocks that stay; later iterations add nothing"));
  } else if (inv.gc_automatic && freed_per_iter >= 1) {
    d.note = "cyclic_churn";
    d.remarks.push_back(absl::StrFormat(
        "the collector freed %.0f objects in reference cycles per iteration: cycles are made "
        "and collected, nothing piles up", freed_per_iter));
  } else if (total.rss_bytes >= (1 << 20) || inv.iterations.front().rss_bytes >= (4 << 20)) {
    d.note = "allocator_retention";
    d.remarks.push_back("RSS is higher than at the start but does not grow: the allocator keeps "
                        "memory it got back");
  }
  return d;
}

absl::StatusOr<Investigation> Investigate(Handle workload, const DoctorOptions& options,
                                          Handle namespace_module) {
  if (absl::Status gil = CheckGil(); !gil.ok()) return gil;
  if (!workload || !PyCallable_Check(workload.ptr())) {
    return absl::InvalidArgumentError("Investigate needs a Python callable");
  }
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
  return Run(
      [workload]() -> absl::Status {
        Ref r = Steal(PyObject_CallNoArgs(workload.ptr()));
        if (!r) return StatusFromPythonError();
        return absl::OkStatus();
      },
      options, module.handle());
}

absl::StatusOr<Diagnosis> Diagnose(Handle workload, const DoctorOptions& options,
                                   Handle namespace_module) {
  absl::StatusOr<Investigation> inv = Investigate(workload, options, namespace_module);
  if (!inv.ok()) return inv.status();
  return Decide(*inv);
}

// ------------------------------------------------------------- rendering

std::string Diagnosis::ToJson() const {
  auto str_or_null = [](const std::optional<std::string>& s) {
    return s.has_value() ? JsonQuote(*s) : std::string("null");
  };
  std::string out = absl::StrCat("{\"verdict\":", JsonQuote(verdict), ",\"note\":",
                                 str_or_null(note), ",\"iterations\":{\"warmup\":", warmup,
                                 ",\"repeat\":", repeat, "},\"growth\":{\"rss_bytes_per_iter\":",
                                 rss_bytes_per_iter, ",\"traced_bytes_per_iter\":",
                                 traced_bytes_per_iter, ",\"blocks_per_iter\":", blocks_per_iter,
                                 ",\"fds_per_iter\":", fds_per_iter, ",\"threads_per_iter\":",
                                 threads_per_iter, ",\"types\":[");
  for (size_t i = 0; i < types.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"type\":", JsonQuote(types[i].type),
                    ",\"per_iter\":", absl::StrFormat("%.2f", types[i].per_iter), "}");
  }
  absl::StrAppend(&out, "]},\"causes\":[");
  for (size_t i = 0; i < causes.size(); ++i) {
    const Cause& c = causes[i];
    absl::StrAppend(&out, i ? "," : "", "{\"id\":", JsonQuote(c.id), ",\"confidence\":",
                    absl::StrFormat("%.2f", c.confidence), ",\"holder\":", str_or_null(c.holder),
                    ",\"sites\":[");
    for (size_t j = 0; j < c.sites.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", "{\"file\":", JsonQuote(c.sites[j].file),
                      ",\"line\":", c.sites[j].line, ",\"bytes_per_iter\":",
                      c.sites[j].bytes_per_iter, "}");
    }
    absl::StrAppend(&out, "],\"evidence\":[");
    for (size_t j = 0; j < c.evidence.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", JsonQuote(c.evidence[j]));
    }
    absl::StrAppend(&out, "],\"fix\":", JsonQuote(c.fix), "}");
  }
  absl::StrAppend(&out, "]}\n");
  return out;
}

std::string Diagnosis::ToText() const {
  std::string out;
  if (verdict == "leak") {
    absl::StrAppend(&out, "LEAK: ", causes.size() == 1 ? "one cause" : absl::StrCat(causes.size(), " causes"),
                    " found");
  } else if (verdict == "no_leak") {
    absl::StrAppend(&out, "NO LEAK");
    if (note) absl::StrAppend(&out, " (", *note, ")");
  } else {
    absl::StrAppend(&out, "INCONCLUSIVE");
  }
  absl::StrAppendFormat(&out, "  [%d warm-up + %d measured iterations]\n", warmup, repeat);
  absl::StrAppendFormat(&out,
                        "growth per iteration: RSS %s, Python heap %s, %d blocks, %d fds, %d threads\n",
                        FormatBytes(rss_bytes_per_iter), FormatBytes(traced_bytes_per_iter),
                        blocks_per_iter, fds_per_iter, threads_per_iter);
  if (!types.empty()) {
    std::vector<std::string> t;
    for (const TypeGrowth& g : types) t.push_back(absl::StrFormat("%s +%.1f", g.type, g.per_iter));
    absl::StrAppend(&out, "types per iteration: ", absl::StrJoin(t, ", "), "\n");
  }
  for (const std::string& r : remarks) absl::StrAppend(&out, "  - ", r, "\n");
  int rank = 0;
  for (const Cause& c : causes) {
    absl::StrAppendFormat(&out, "\n%d. %s (confidence %.2f)\n", ++rank, c.id, c.confidence);
    absl::StrAppend(&out, "   holder: ", c.holder.value_or("(none: nothing in Python holds it)"), "\n");
    if (!c.sites.empty()) {
      absl::StrAppend(&out, "   allocated at:\n");
      for (const Site& s : c.sites) {
        absl::StrAppend(&out, "     ", s.file, ":", s.line, "  ", FormatBytes(s.bytes_per_iter),
                        " per iteration\n");
      }
    }
    absl::StrAppend(&out, "   evidence:\n");
    for (const std::string& e : c.evidence) absl::StrAppend(&out, "     - ", e, "\n");
    absl::StrAppend(&out, "   fix: ", c.fix, "\n");
  }
  return out;
}

}  // namespace leakguard
