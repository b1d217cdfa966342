// The doctor's report stage: the vocabularies' spellings, the sentences of
// the evidence, and the Diagnosis as text, JSON and Graphviz DOT. Nothing
// here decides anything.

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "leakguard/doctor.h"
#include "leakguard/process.h"
#include "leakguard/python/python.h"
#include "leakguard/report.h"

namespace leakguard {
namespace {

constexpr std::string_view kVerdictNames[] = {"leak", "no_leak", "inconclusive"};
constexpr std::string_view kCauseNames[] = {
    "unbounded_cache",    "global_state",  "reference_cycles",      "closure_capture",
    "unclosed_resources", "native_memory", "listener_accumulation", "thread_local",
    "array_copies",       "logging_buffer"};
constexpr std::string_view kNoteNames[] = {"plateau", "one_time_growth", "allocator_retention",
                                           "cyclic_churn"};

template <typename E, size_t N>
std::optional<E> Parse(const std::string_view (&names)[N], std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}

std::string PerIter(int64_t total, int repeat) {
  return absl::StrFormat("%.1f", static_cast<double>(total) / (repeat > 0 ? repeat : 1));
}

}  // namespace

std::string_view CauseFix(CauseId id) noexcept {
  switch (id) {
    case CauseId::kUnboundedCache:
      return "Bound the cache: evict by size and/or age.\n"
             "    @functools.lru_cache(maxsize=1024)        # not maxsize=None\n"
             "    def render(page): ...\n"
             "  or leakguard.lru_cache(maxsize=1024, ttl=300) for a time limit.";
    case CauseId::kGlobalState:
      return "Keep per-request state out of module, class and default-argument containers.\n"
             "    def remember(item, seen=None):\n"
             "        seen = [] if seen is None else seen   # not seen=[]\n"
             "  and remove registry entries when their objects are done (or use "
             "weakref.WeakSet).";
    case CauseId::kReferenceCycles:
      return "Let the cycle collector run: gc.enable() (or gc.set_threshold(700)), or collect on "
             "a\n"
             "  schedule if you must pause it:\n"
             "    gc.disable(); ...; gc.collect()   # at a safe point, every N requests\n"
             "  and break parent/child cycles with weakref (self.parent = weakref.ref(parent)).";
    case CauseId::kClosureCapture:
      return "Capture only what the callback needs, not the whole object:\n"
             "    size = len(body)\n"
             "    def done(): return size          # not: return len(body)\n"
             "  and drop callbacks once they have run.";
    case CauseId::kUnclosedResources:
      return "Close what you open, on every path:\n"
             "    with open(path) as f: ...        # or try/finally: os.close(fd)";
    case CauseId::kNativeMemory:
      return "Free native memory where it is allocated (ctypes: libc.free(p); an extension's\n"
             "  close()/release()); for mmap, m.close(). If no site above names the library,\n"
             "  keep leakguard's native sampler on in the host (SamplerOptions::native)\n"
             "  and read its native_memory sites there.";
    case CauseId::kListenerAccumulation:
      return "Hold listeners weakly, or unsubscribe them:\n"
             "    bus = leakguard.EventBus()          # bound methods held weakly\n"
             "    bus.subscribe(obj.on_event)         # gone when obj is gone\n"
             "  or weakref.WeakMethod(callback) in your own list.";
    case CauseId::kThreadLocal:
      return "Clear per-thread storage at the end of each task (del local.items / "
             "local.__dict__.clear()),\n"
             "  and give threads an end (a pool with a bounded size, a stop event they check).";
    case CauseId::kArrayCopies:
      return "Keep views or the data you need, not copies; bound history buffers:\n"
             "    history = collections.deque(maxlen=100)\n"
             "    history.append(result)               # old arrays are freed\n"
             "  and preallocate instead of np.concatenate in a loop.";
    case CauseId::kLoggingBuffer:
      return "Bound or flush buffering handlers:\n"
             "    logging.handlers.MemoryHandler(capacity=1000, target=file_handler)\n"
             "  (a target and a capacity it reaches), or a StreamHandler/FileHandler in "
             "production.";
  }
  return "";
}

namespace {

std::string DotQuote(const std::string& s) {
  return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}}),
                      "\"");
}

}  // namespace

std::string_view VerdictName(Verdict v) noexcept { return kVerdictNames[static_cast<int>(v)]; }
std::string_view CauseIdName(CauseId id) noexcept { return kCauseNames[static_cast<int>(id)]; }
std::string_view NoteName(Note n) noexcept { return kNoteNames[static_cast<int>(n)]; }
std::optional<Verdict> ParseVerdict(std::string_view name) noexcept {
  return Parse<Verdict>(kVerdictNames, name);
}
std::optional<CauseId> ParseCauseId(std::string_view name) noexcept {
  return Parse<CauseId>(kCauseNames, name);
}
std::optional<Note> ParseNote(std::string_view name) noexcept {
  return Parse<Note>(kNoteNames, name);
}

std::string RenderEvidence(const Evidence& e) {
  using Kind = Evidence::Kind;
  switch (e.kind) {
    case Kind::kFdsGrew:
      return absl::StrCat("open file descriptors grew by ", e.amount, " over ", e.iterations,
                          " iterations (", PerIter(e.amount, e.iterations), " per iteration)");
    case Kind::kThreadsGrew:
      return absl::StrCat("threads grew by ", e.amount, " over ", e.iterations,
                          " iterations: threads are started and never end");
    case Kind::kGcOff:
      return "automatic garbage collection is off (gc.isenabled() is False or the generation-0 "
             "threshold is 0)";
    case Kind::kCyclesPiledUp: {
      std::vector<std::string> kinds;
      for (const auto& [type, count] : e.items) kinds.push_back(absl::StrCat(type, " x", count));
      return absl::StrCat(e.amount, " objects in reference cycles piled up over ", e.iterations,
                          " iterations, freed only by gc.collect(): ", absl::StrJoin(kinds, ", "));
    }
    case Kind::kCyclesWithDel:
      return absl::StrCat("on CPython ", PY_MAJOR_VERSION, ".", PY_MINOR_VERSION,
                          " cycles whose objects define __del__ are collected too (PEP 442); "
                          "gc.garbage fills only under DEBUG_SAVEALL or for legacy tp_del types");
    case Kind::kRssOutsidePython:
      return absl::StrCat("RSS grew ", FormatBytes(e.amount), " (",
                          FormatBytes(e.amount / (e.iterations > 0 ? e.iterations : 1)),
                          " per iteration) while Python's traced heap grew ", FormatBytes(e.other),
                          ": memory outside Python's allocator");
    case Kind::kHolderKeepsNative:
      return absl::StrCat(e.subject, " (", e.detail, " of ", e.item, ") grew by ", e.amount,
                          " and keeps the native objects alive");
    case Kind::kHeapGrew:
      return absl::StrCat(
          "Python's traced heap grew ", FormatBytes(e.amount), " over ", e.iterations,
          " iterations (", FormatBytes(e.amount / (e.iterations > 0 ? e.iterations : 1)), " and ",
          PerIter(e.other, e.iterations), " blocks per iteration), in every iteration");
    case Kind::kHolderGrew: {
      const bool bytes = e.detail == "ndarray" || e.detail == "ndarray_list";
      return absl::StrCat(e.subject, " is a ", e.detail, " that grew by ",
                          bytes ? FormatBytes(e.amount) : absl::StrCat(e.amount), " over the ",
                          e.iterations, " iterations",
                          e.item.empty() ? "" : absl::StrCat(" (it holds ", e.item, " objects)"));
    }
    case Kind::kNumpyGrew:
      return absl::StrCat("NumPy's traced buffers grew ", FormatBytes(e.amount));
    case Kind::kLoggingBuffer:
      return "the container is a logging handler's record buffer";
    case Kind::kLruCacheGrows:
      return "a functools cache whose currsize grows: it never evicts";
    case Kind::kHoldsClosures:
      return "it holds closures; their cells keep what they captured alive";
    case Kind::kHoldsCallbacks:
      return "it holds callbacks (bound methods keep their objects alive) that are added and "
             "never removed";
    case Kind::kMutableDefault:
      return "a mutable default argument: one object shared by every call";
    case Kind::kClassAttribute:
      return "a class attribute: shared by every instance, lives as long as the class";
    case Kind::kModuleDict:
      return "a module-level dict that gains a key every iteration and never evicts";
    case Kind::kModuleContainer:
      return "a module-level container that only grows";
    case Kind::kThreadLocalStorage: {
      std::vector<std::string> names;
      for (const auto& item : e.items) names.push_back(item.first);
      return absl::StrCat(
          "no container reachable from the module's globals grew, but the module keeps "
          "threading.local storage (",
          absl::StrJoin(names, ", "), "), whose per-thread values live as long as their threads");
    }
    case Kind::kNoContainer:
      return "no container of the script's namespace explains it; see the chain";
    case Kind::kChain:
      return absl::StrCat("back-reference chain: ", e.detail);
    case Kind::kIrregular:
      return absl::StrCat("allocated blocks grew in ", e.amount, " of ", e.iterations,
                          " iterations (", e.other,
                          " in all): too irregular to call; run with more --repeat");
    case Kind::kStopped:
      return absl::StrCat(e.subject, " grew from ", e.other, " to ", e.amount, " and then stopped");
    case Kind::kFirstIteration:
      return absl::StrCat("the first iteration allocated ", e.amount,
                          " blocks that stay; later iterations add nothing");
    case Kind::kChurn:
      return absl::StrFormat(
          "the collector freed %d objects in reference cycles per iteration: cycles are made "
          "and collected, nothing piles up",
          e.amount);
    case Kind::kRetained:
      return "RSS is higher than at the start but does not grow: the allocator keeps memory it "
             "got back";
    case Kind::kBounded:
      return absl::StrCat(e.subject, " is bounded at ", e.other, " entries (now ", e.amount,
                          "): its growth stops there");
    case Kind::kFilledFirst:
      return absl::StrCat("ran ", e.amount, " more iterations first, until ", e.subject,
                          " was full, and measured after that");
    case Kind::kNeedsMore:
      return absl::StrCat(e.subject, " is bounded at ", e.other,
                          " entries and still filling: ", "about ", e.amount,
                          " more iterations are needed to be sure (raise --max-repeat)");
    case Kind::kRanLonger:
      return absl::StrCat("too irregular to call; ran ", e.amount, " more iterations");
    case Kind::kSavedGarbage:
      return "gc.garbage keeps every object the collector finds unreachable: gc.DEBUG_SAVEALL "
             "is set (gc.get_debug()), so reference cycles are never freed";
    case Kind::kRegistry:
      return absl::StrCat(e.subject,
                          " is a registry of the standard library: what is added to "
                          "it stays for the life of the process");
    case Kind::kConfirmed:
      return absl::StrCat("nothing was found to hold the growth: measured again over ", e.amount,
                          " more iterations before deciding");
    case Kind::kSettling:
      return absl::StrCat("Python's traced heap grew ", FormatBytes(e.amount), " over ",
                          e.iterations,
                          " iterations, less and less: a warm-up still going on; "
                          "run with more --warmup or --max-repeat");
    case Kind::kBelowNoiseFloor:
      return absl::StrCat("Python's traced heap grew ", FormatBytes(e.amount), " over ",
                          e.iterations,
                          " iterations with nothing that holds it: below the noise "
                          "floor (256 B per iteration of untracked objects; CPython's own caches, "
                          "such as the method cache's attribute names, grow like this)");
    case Kind::kContextVariable:
      return "it is the value of a context variable, shared by every context that did not set "
             "its own (per-request state that outlives the request)";
  }
  return "";
}

std::string Diagnosis::ToJson() const {
  std::string out = absl::StrCat(
      "{\"verdict\":", JsonQuote(std::string(VerdictName(verdict))),
      ",\"note\":", note ? JsonQuote(std::string(NoteName(*note))) : std::string("null"),
      ",\"iterations\":{\"warmup\":", warmup, ",\"repeat\":", repeat,
      "},\"growth\":{\"rss_bytes_per_iter\":", rss_bytes_per_iter,
      ",\"traced_bytes_per_iter\":", traced_bytes_per_iter,
      ",\"blocks_per_iter\":", blocks_per_iter, ",\"fds_per_iter\":", fds_per_iter,
      ",\"threads_per_iter\":", threads_per_iter, ",\"types\":[");
  for (size_t i = 0; i < types.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"type\":", JsonQuote(types[i].type),
                    ",\"per_iter\":", absl::StrFormat("%.2f", types[i].per_iter), "}");
  }
  absl::StrAppend(&out, "]},\"causes\":[");
  for (size_t i = 0; i < causes.size(); ++i) {
    const Cause& c = causes[i];
    absl::StrAppend(&out, i ? "," : "", "{\"id\":", JsonQuote(std::string(CauseIdName(c.id))),
                    ",\"confidence\":", absl::StrFormat("%.2f", c.confidence),
                    ",\"holder\":", c.holder ? JsonQuote(*c.holder) : std::string("null"),
                    ",\"sites\":[");
    for (size_t j = 0; j < c.sites.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", "{\"file\":", JsonQuote(c.sites[j].file),
                      ",\"line\":", c.sites[j].line,
                      ",\"bytes_per_iter\":", c.sites[j].bytes_per_iter);
      if (!c.sites[j].library.empty()) {
        absl::StrAppend(&out, ",\"library\":", JsonQuote(c.sites[j].library),
                        ",\"function\":", JsonQuote(c.sites[j].function));
      }
      out.push_back('}');
    }
    absl::StrAppend(&out, "],\"evidence\":[");
    for (size_t j = 0; j < c.evidence.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", JsonQuote(RenderEvidence(c.evidence[j])));
    }
    absl::StrAppend(&out, "],\"fix\":", JsonQuote(c.fix), "}");
  }
  absl::StrAppend(&out, "]}\n");
  return out;
}

std::string Diagnosis::ToText() const {
  std::string out;
  if (verdict == Verdict::kLeak) {
    absl::StrAppend(
        &out, "LEAK: ", causes.size() == 1 ? "one cause" : absl::StrCat(causes.size(), " causes"),
        " found");
  } else if (verdict == Verdict::kNoLeak) {
    absl::StrAppend(&out, "NO LEAK");
    if (note) absl::StrAppend(&out, " (", std::string(NoteName(*note)), ")");
  } else {
    absl::StrAppend(&out, "INCONCLUSIVE");
  }
  if (extra_iterations > 0) {
    absl::StrAppendFormat(&out, "  [%d iterations in all; decided on the last %d]\n",
                          extra_iterations, repeat);
  } else {
    absl::StrAppendFormat(&out, "  [%d warm-up + %d measured iterations]\n", warmup, repeat);
  }
  absl::StrAppendFormat(
      &out, "growth per iteration: RSS %s, Python heap %s, %d blocks, %d fds, %d threads\n",
      FormatBytes(rss_bytes_per_iter), FormatBytes(traced_bytes_per_iter), blocks_per_iter,
      fds_per_iter, threads_per_iter);
  if (!types.empty()) {
    std::vector<std::string> t;
    for (const TypeGrowth& g : types) t.push_back(absl::StrFormat("%s +%.1f", g.type, g.per_iter));
    absl::StrAppend(&out, "types per iteration: ", absl::StrJoin(t, ", "), "\n");
  }
  for (const Evidence& r : remarks) absl::StrAppend(&out, "  - ", RenderEvidence(r), "\n");
  int rank = 0;
  for (const Cause& c : causes) {
    absl::StrAppendFormat(&out, "\n%d. %s (confidence %.2f)\n", ++rank, CauseIdName(c.id),
                          c.confidence);
    absl::StrAppend(&out, "   holder: ", c.holder.value_or("(none: nothing in Python holds it)"),
                    "\n");
    if (!c.sites.empty()) {
      absl::StrAppend(&out, "   allocated at:\n");
      for (const Site& s : c.sites) {
        absl::StrAppend(
            &out, "     ", s.file, ":", s.line,
            s.library.empty() ? std::string() : absl::StrCat(" -> ", s.library, " ", s.function),
            "  ", FormatBytes(s.bytes_per_iter), " per iteration\n");
      }
    }
    absl::StrAppend(&out, "   evidence:\n");
    for (const Evidence& e : c.evidence) absl::StrAppend(&out, "     - ", RenderEvidence(e), "\n");
    absl::StrAppend(&out, "   fix: ", c.fix, "\n");
  }
  return out;
}

std::string Diagnosis::ToDot() const {
  if (!chain_dot.empty()) return chain_dot;
  std::string out = "digraph leakguard {\n  rankdir=LR;\n  node [shape=box];\n";
  int n = 0;
  for (const Cause& c : causes) {
    const std::string cause = absl::StrCat("cause", n++);
    absl::StrAppend(
        &out, "  ", cause, " [label=",
        DotQuote(absl::StrFormat("%s (confidence %.2f)", CauseIdName(c.id), c.confidence)),
        ", style=filled, fillcolor=\"#f4cccc\"];\n");
    if (c.holder) {
      const std::string holder = absl::StrCat(cause, "_holder");
      absl::StrAppend(&out, "  ", holder, " [label=", DotQuote(*c.holder),
                      ", style=filled, fillcolor=\"#fff2cc\"];\n  ", holder, " -> ", cause,
                      " [label=\"holds the growth\"];\n");
    }
    for (size_t i = 0; i < c.sites.size(); ++i) {
      const Site& s = c.sites[i];
      const std::string site = absl::StrCat(cause, "_site", i);
      absl::StrAppend(&out, "  ", site, " [label=",
                      DotQuote(absl::StrCat(s.file, ":", s.line, "\n",
                                            FormatBytes(s.bytes_per_iter), " per iteration")),
                      "];\n  ", cause, " -> ", site, " [label=\"allocated at\"];\n");
    }
  }
  if (causes.empty()) {
    absl::StrAppend(
        &out, "  label=",
        DotQuote(absl::StrCat("no growth to show: ", std::string(VerdictName(verdict)))), ";\n");
  }
  absl::StrAppend(&out, "}\n");
  return out;
}

}  // namespace leakguard
