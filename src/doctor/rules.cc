// The doctor's rule table and Decide(): facts in, diagnosis out.
//
// Three groups, tried in order:
//   cause    every row whose condition holds adds its cause;
//   heap     when the Python heap grows (and no row that suppresses the
//            group fired), the first row whose condition holds classifies
//            it;
//   verdict  with no cause, the first row whose condition holds gives the
//            verdict (inconclusive) or the no_leak note.
// docs/doctor.md shows the same table; tests/doctor_rules_test.cc has a test
// per row.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "doctor/facts.h"
#include "leakguard/doctor.h"

namespace leakguard {
namespace {

using internal::Facts;
using internal::HolderName;
using Kind = Evidence::Kind;

Evidence Ev(Kind kind, int64_t amount = 0, int64_t other = 0, int iterations = 0) {
  Evidence e;
  e.kind = kind;
  e.amount = amount;
  e.other = other;
  e.iterations = iterations;
  return e;
}

// The evidence every Python-heap row starts with: the heap grew, and the
// holder (if any) and how.
void HeapEvidence(const Facts& f, Cause& c) {
  c.sites = f.inv->sites;
  c.evidence.push_back(Ev(Kind::kHeapGrew, f.traced_total, f.total.blocks, f.repeat));
  if (f.holder != nullptr) {
    c.holder = HolderName(*f.holder);
    Evidence e =
        Ev(Kind::kHolderGrew, f.holder->series.back() - f.holder->series.front(), 0, f.repeat);
    e.subject = *c.holder;
    e.detail = f.holder->kind;
    e.item = f.holder->item;
    c.evidence.push_back(e);
  }
}

void AddChain(const Facts& f, Cause& c) {
  if (f.inv->chain.empty()) return;
  Evidence e = Ev(Kind::kChain);
  e.detail = f.inv->chain;
  c.evidence.push_back(e);
}

bool HolderIs(const Facts& f, bool (*test)(const HolderEvidence&, const Facts&)) {
  return f.holder != nullptr && test(*f.holder, f);
}

struct Row {
  DoctorRule rule;
  bool (*applies)(const Facts&);
  void (*explain)(const Facts&, Cause&);
};

// clang-format off
const Row kRules[] = {
  // ---- causes: each row that holds adds its cause.
  {{"fds_steady", 1, "cause", CauseId::kUnclosedResources, "", 0.95,
    "open file descriptors grow in at least 90% of the measured iterations", ""},
   [](const Facts& f) { return f.fds_steady; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kFdsGrew, f.total.fds, 0, f.repeat));
     if (f.holder != nullptr) c.holder = HolderName(*f.holder);
     c.sites = f.inv->sites;
   }},
  {{"threads_steady", 2, "cause", CauseId::kThreadLocal, "", 0.9,
    "threads grow in at least 90% of the measured iterations", ""},
   [](const Facts& f) { return f.threads_steady; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kThreadsGrew, f.total.threads, 0, f.repeat));
   }},
  {{"cycles_gc_off", 3, "cause", CauseId::kReferenceCycles, "", 0.9,
    "automatic collection is off and the DEBUG_SAVEALL collection at the end finds at least "
    "one cyclic object per measured iteration", "heap, unless a row above fired"},
   [](const Facts& f) { return f.cycles_pile_up; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kGcOff));
     Evidence e = Ev(Kind::kCyclesPiledUp, f.inv->cyclic_garbage, 0, f.repeat);
     for (const TypeGrowth& t : f.inv->garbage_types) {
       e.items.emplace_back(t.type, static_cast<int64_t>(t.per_iter));
     }
     c.evidence.push_back(e);
     c.evidence.push_back(Ev(Kind::kCyclesWithDel));
     c.sites = f.inv->sites;
   }},
  {{"native_growth", 4, "cause", CauseId::kNativeMemory, "", 0.85,
    "RSS grows by a page or more in at least 90% of the measured iterations, by 256 KiB in all, "
    "and the traced heap explains less than a quarter of it, and it is not dying away (the last "
    "third under half the first); with no holder it must last over twice the iterations more",
    "heap"},
   [](const Facts& f) { return f.native; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kRssOutsidePython, f.total.rss_bytes, f.traced_total, f.repeat));
     if (f.holder != nullptr) {
       c.holder = HolderName(*f.holder);
       Evidence e = Ev(Kind::kHolderKeepsNative, f.holder->series.back() - f.holder->series.front());
       e.subject = *c.holder;
       e.detail = f.holder->kind;
       e.item = f.holder->item;
       c.evidence.push_back(e);
     }
   }},

  // ---- the Python heap grows (blocks or traced bytes steady with traced
  // growth, or a namespace container that gains every iteration): the first
  // row that holds names the cause.
  {{"heap.saved_garbage", 10, "heap", CauseId::kReferenceCycles, "", 0.9,
    "the holder is gc.garbage (the collector keeps what it finds: DEBUG_SAVEALL)", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.registry == "gc.garbage"; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kSavedGarbage)); }},
  {{"heap.arrays", 11, "heap", CauseId::kArrayCopies, "", 0.9,
    "the holder is an ndarray, a list of them or a pandas DataFrame, holds ndarrays, or NumPy's "
    "buffers are over half the traced growth", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts& ff) {
       return h.kind == "ndarray" || h.kind == "ndarray_list" || h.kind == "dataframe" ||
              h.item == "ndarray" || ff.numpy_dominant;
     });
   },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kNumpyGrew, f.inv->numpy_bytes));
   }},
  {{"heap.log_records", 12, "heap", CauseId::kLoggingBuffer, "", 0.9,
    "the holder holds log records or is a handler's .buffer", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) {
       return h.item == "log_record" || absl::StrContains(HolderName(h), ".buffer");
     });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kLoggingBuffer)); }},
  {{"heap.lru_cache", 13, "heap", CauseId::kUnboundedCache, "", 0.9,
    "the holder is a functools cache whose currsize grows", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.kind == "lru_cache"; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kLruCacheGrows)); }},
  {{"heap.closures", 14, "heap", CauseId::kClosureCapture, "", 0.9,
    "the holder holds closures", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.item == "closure"; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kHoldsClosures)); }},
  {{"heap.callbacks", 15, "heap", CauseId::kListenerAccumulation, "", 0.9,
    "the holder holds bound methods, event-loop callbacks or other callables, or is a registry "
    "of callbacks (atexit, weakref.finalize)", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) {
       return h.item == "bound_method" || h.item == "callable" || h.item == "callback" ||
              h.registry == "callbacks";
     });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kHoldsCallbacks)); }},
  {{"heap.context_variable", 16, "heap", CauseId::kThreadLocal, "", 0.8,
    "the holder is a context variable's value", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.via_contextvar; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kContextVariable)); }},
  {{"heap.registry", 17, "heap", CauseId::kGlobalState, "", 0.85,
    "the holder is a registry of the standard library (sys.modules, logging's loggers)", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.registry == "modules"; });
   },
   [](const Facts& f, Cause& c) {
     Evidence e = Ev(Kind::kRegistry);
     e.subject = HolderName(*f.holder);
     c.evidence.push_back(e);
   }},
  {{"heap.mutable_default", 18, "heap", CauseId::kGlobalState, "", 0.9,
    "the holder is reached through a function's __defaults__", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.via_defaults; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kMutableDefault)); }},
  {{"heap.class_attribute", 19, "heap", CauseId::kGlobalState, "", 0.9,
    "the holder is reached through a class attribute", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.via_class; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kClassAttribute)); }},
  {{"heap.module_dict", 20, "heap", CauseId::kUnboundedCache, "", 0.9,
    "the holder is a module-level dict", ""},
   [](const Facts& f) {
     return HolderIs(f, [](const HolderEvidence& h, const Facts&) { return h.kind == "dict"; });
   },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kModuleDict)); }},
  {{"heap.module_container", 21, "heap", CauseId::kGlobalState, "", 0.9,
    "any other holder (a list, set or deque of the namespace)", ""},
   [](const Facts& f) { return f.holder != nullptr; },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kModuleContainer)); }},
  {{"heap.thread_locals", 22, "heap", CauseId::kThreadLocal, "", 0.7,
    "no holder, and the module keeps threading.local objects", ""},
   [](const Facts& f) { return !f.inv->thread_locals.empty(); },
   [](const Facts& f, Cause& c) {
     c.holder = f.inv->thread_locals.front();
     Evidence e = Ev(Kind::kThreadLocalStorage);
     for (const std::string& name : f.inv->thread_locals) e.items.emplace_back(name, 0);
     c.evidence.push_back(e);
   }},
  {{"heap.numpy_buffers", 23, "heap", CauseId::kArrayCopies, "", 0.6,
    "no holder, and NumPy's buffers are over half the traced growth", ""},
   [](const Facts& f) { return f.numpy_dominant; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kNumpyGrew, f.inv->numpy_bytes));
   }},
  {{"heap.unexplained", 24, "heap", CauseId::kGlobalState, "", 0.5,
    "nothing in the namespace explains the growth, and it is above the noise floor: 256 B per "
    "iteration, or gc-tracked objects or a back-reference chain, not through a bounded "
    "container; the holder is the container on the chain", ""},
   [](const Facts& f) { return f.above_noise_floor; },
   [](const Facts& f, Cause& c) {
     // The container on the chain is the nearest named root of the growth.
     if (f.chain_counts && !f.inv->chain_holder.empty()) c.holder = f.inv->chain_holder;
     c.evidence.push_back(Ev(Kind::kNoContainer));
   }},

  // ---- no cause: the first row that holds gives the verdict or note.
  {{"note.bounded", 26, "verdict", std::nullopt, "plateau", 0,
    "containers that state a limit (maxlen, maxsize, capacity) grew, and none without one did",
    ""},
   [](const Facts& f) { return f.holder == nullptr && !f.bounded.empty(); },
   [](const Facts& f, Cause& c) {
     for (const HolderEvidence* h : f.bounded) {
       Evidence e = Ev(Kind::kBounded, h->series.back(), *h->limit);
       e.subject = h->path;
       c.evidence.push_back(e);
     }
   }},
  {{"verdict.settling", 27, "verdict", std::nullopt, "inconclusive", 0,
    "the heap's growth is dying away: the last third of the measured iterations grew by less "
    "than half of the first third, and no holder gained in every iteration", ""},
   [](const Facts& f) { return f.settling; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kSettling, f.traced_total, f.total.blocks, f.repeat));
   }},
  {{"verdict.noise", 28, "verdict", std::nullopt, "no_leak", 0,
    "the heap grew, but below the noise floor and with nothing that holds it", ""},
   [](const Facts& f) { return f.python_heap && !f.above_noise_floor && f.holder == nullptr; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kBelowNoiseFloor, f.traced_total, f.total.blocks, f.repeat));
   }},
  {{"verdict.irregular", 29, "verdict", std::nullopt, "inconclusive", 0,
    "blocks grew in at least half the measured iterations, by at least one per iteration, "
    "above the noise floor", ""},
   [](const Facts& f) {
     return f.growing_steps * 2 >= f.repeat && f.block_growth >= f.repeat && f.above_noise_floor;
   },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kIrregular, f.growing_steps, f.block_growth, f.repeat));
   }},
  {{"note.plateau", 32, "verdict", std::nullopt, "plateau", 0,
    "a namespace container grew and its last step was 0", ""},
   [](const Facts& f) { return !f.stopped.empty(); },
   [](const Facts& f, Cause& c) {
     for (const HolderEvidence* h : f.stopped) {
       Evidence e = Ev(Kind::kStopped, h->series.back(), h->series.front());
       e.subject = h->path;
       c.evidence.push_back(e);
     }
   }},
  {{"note.one_time_growth", 33, "verdict", std::nullopt, "one_time_growth", 0,
    "the first iteration allocated 100 blocks or more and they account for at least half of "
    "the run's", ""},
   [](const Facts& f) { return f.first_blocks >= 100 && f.run_blocks * 2 >= f.first_blocks; },
   [](const Facts& f, Cause& c) { c.evidence.push_back(Ev(Kind::kFirstIteration, f.first_blocks)); }},
  {{"note.cyclic_churn", 34, "verdict", std::nullopt, "cyclic_churn", 0,
    "automatic collection is on and it freed at least one object per iteration", ""},
   [](const Facts& f) { return f.inv->gc_automatic && f.freed_per_iter >= 1; },
   [](const Facts& f, Cause& c) {
     c.evidence.push_back(Ev(Kind::kChurn, static_cast<int64_t>(std::llround(f.freed_per_iter))));
   }},
  {{"note.allocator_retention", 35, "verdict", std::nullopt, "allocator_retention", 0,
    "RSS is 1 MiB higher over the measured iterations, or the first iteration added 4 MiB", ""},
   [](const Facts& f) { return f.total.rss_bytes >= (1 << 20) || f.first_rss >= (4 << 20); },
   [](const Facts&, Cause& c) { c.evidence.push_back(Ev(Kind::kRetained)); }},
};
// clang-format on

}  // namespace

const std::vector<DoctorRule>& DoctorRules() {
  static const std::vector<DoctorRule>* const rules = [] {
    auto* v = new std::vector<DoctorRule>;
    for (const Row& row : kRules) v->push_back(row.rule);
    return v;
  }();
  return *rules;
}

Diagnosis Decide(const Investigation& inv) {
  const Facts f = internal::DeriveFacts(inv);
  Diagnosis d;
  d.warmup = inv.options.warmup;
  d.repeat = f.repeat;
  d.rss_bytes_per_iter = f.total.rss_bytes / f.repeat;
  d.traced_bytes_per_iter = f.traced_total / f.repeat;
  d.blocks_per_iter = f.total.blocks / f.repeat;
  d.fds_per_iter = f.total.fds / f.repeat;
  d.threads_per_iter = f.total.threads / f.repeat;
  d.types = inv.types;
  d.chain_dot = inv.dot;
  d.iterations = inv.iterations;

  auto make = [&f](const Row& row) {
    Cause c;
    c.id = *row.rule.cause;
    c.rule = std::string(row.rule.id);
    c.confidence = row.rule.confidence;
    c.fix = std::string(CauseFix(c.id));
    row.explain(f, c);
    return c;
  };
  // Causes.
  bool heap_suppressed = false;
  bool others_fired = false;  // a cause row above cycles_gc_off fired
  for (const Row& row : kRules) {
    if (row.rule.group != "cause" || !row.applies(f)) continue;
    d.causes.push_back(make(row));
    if (row.rule.id == "native_growth") heap_suppressed = true;
    if (row.rule.id == "cycles_gc_off" && !others_fired) heap_suppressed = true;
    others_fired = true;
  }
  // The Python heap.
  // A container with a stated limit still filling, and none without one
  // growing: the heap's growth is that filling (Diagnose() runs on until it
  // is full when the budget allows), not a leak.
  if (f.bounded_filling) heap_suppressed = true;
  // Growth that is dying away is a warm-up still going on: measured longer
  // (Diagnose()) before it is called a leak.
  if (f.settling && f.holder == nullptr) heap_suppressed = true;
  if (f.python_heap && !heap_suppressed) {
    for (const Row& row : kRules) {
      if (row.rule.group != "heap" || !row.applies(f)) continue;
      Cause c = make(row);
      // The heap's own evidence first, the row's after it, the chain last.
      Cause heap;
      HeapEvidence(f, heap);
      c.sites = heap.sites;
      if (!c.holder.has_value()) c.holder = heap.holder;
      c.evidence.insert(c.evidence.begin(), heap.evidence.begin(), heap.evidence.end());
      AddChain(f, c);
      d.causes.push_back(std::move(c));
      break;
    }
  }
  std::stable_sort(d.causes.begin(), d.causes.end(),
                   [](const Cause& a, const Cause& b) { return a.confidence > b.confidence; });
  if (!d.causes.empty()) {
    d.verdict = Verdict::kLeak;
    return d;
  }
  d.verdict = Verdict::kNoLeak;
  for (const Row& row : kRules) {
    if (row.rule.group != "verdict" || !row.applies(f)) continue;
    Cause remarks;
    row.explain(f, remarks);
    d.remarks = std::move(remarks.evidence);
    if (row.rule.outcome == "inconclusive") {
      d.verdict = Verdict::kInconclusive;
    } else if (row.rule.outcome != "no_leak") {
      d.note = ParseNote(row.rule.outcome);
    }
    break;
  }
  return d;
}

}  // namespace leakguard
