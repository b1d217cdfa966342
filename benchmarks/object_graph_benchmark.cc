// The object graph against objgraph on the same heap of about a million
// gc-tracked objects, in the same run:
//
//   graph/typestats_1m            TakeTypeCensus().Counts()  vs objgraph.typestats()
//   graph/growth_1m               GrowthTracker::Update() with its default
//                                 collection (one gc.collect(1): the young
//                                 generations, where a workload's fresh
//                                 garbage is) vs objgraph.growth() (a full
//                                 gc.collect() every call), and vs a bare
//                                 gc.collect(). What leakguard's count still
//                                 includes: cycles that became garbage after
//                                 reaching the oldest generation, until the
//                                 interpreter's next full collection
//   graph/growth_full_collect_1m  the same with CollectDepth::kFull: exactly
//                                 objgraph.growth's collection and counts
//   graph/growth_nocollect_1m     the same without the collection (leakguard's
//                                 option) vs objgraph.growth() with its
//                                 gc.collect() made a no-op for the call
//                                 (objgraph_nocollect; same work) and vs
//                                 objgraph.growth() as it is
//   graph/backref_chain_1         FindBackrefChain() of one object vs
//                                 objgraph.find_backref_chain(), chains of 6 to
//                                 9 references (leakguard's default: no
//                                 collection first)
//   graph/backref_chain_1_collect the same with leakguard's collection first
//                                 (collect_first; the young generations) vs
//                                 objgraph, which runs a full collection
//   graph/backref_chain_1_full_collect  with CollectDepth::kFull: objgraph's
//                                 own collection, old garbage roots included
//   graph/backref_chains_100      the chains of 100 different objects: one
//                                 ReferrerGraph, 100 queries, vs 100 calls
//
// The heap: a module `graph_bench_heap` whose `_registry` dict maps ints to
// Record instances (or to 1-3 nested lists around one), each Record holding
// two dicts of small lists. LEAKGUARD_BENCH_SMOKE=1 makes it tiny.

#include <cstdio>
#include <string>
#include <vector>

#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/object_graph.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"

namespace {

constexpr char kHeapCode[] = R"PY(
import random, sys, types

class Record:
    def __init__(self, i):
        self.items = [{'v': [i]}, {'w': [i, i]}]

def build(n_records):
    mod = types.ModuleType('graph_bench_heap')
    sys.modules['graph_bench_heap'] = mod
    mod.Record = Record
    registry = {}
    targets = []
    for i in range(n_records):
        r = Record(i)
        kind = i % 4
        if kind == 0:
            registry[i] = r
        elif kind == 1:
            registry[i] = [r]
        elif kind == 2:
            registry[i] = [[r]]
        else:
            registry[i] = [[[r]]]
        targets.append(r.items[i % 2]['v' if i % 2 == 0 else 'w'])
    mod._registry = registry
    return random.Random(1).sample(targets, 100)

import gc as _gc

class _GcWithoutCollect:
    """The gc module, but collect() does nothing: objgraph.growth()'s own
    work without its full collection."""
    def __getattr__(self, name):
        return getattr(_gc, name)
    @staticmethod
    def collect(generation=2):
        return 0

def growth_without_collect(objgraph, limit, peak_stats):
    saved = objgraph.gc
    objgraph.gc = _GcWithoutCollect()
    try:
        return objgraph.growth(limit, peak_stats)
    finally:
        objgraph.gc = saved
)PY";

struct Heap {
  std::vector<leakguard::Ref> targets;  // 100 objects at depth 6..9.
  leakguard::Ref objgraph;
  leakguard::Ref is_proper_module;
  leakguard::Ref growth_without_collect;  // See kHeapCode.
  leakguard::Ref gc_collect;
  int64_t objects = 0;
};

Heap* heap = nullptr;

void Fail(benchmark::State& state, const absl::Status& status) {
  state.SkipWithError(std::string(status.message()).c_str());
}

leakguard::Ref ObjgraphCall(const char* name, PyObject* arg1 = nullptr, PyObject* arg2 = nullptr) {
  leakguard::Ref func = leakguard::Steal(PyObject_GetAttrString(heap->objgraph.get(), name));
  if (!func) return func;
  return leakguard::Steal(PyObject_CallFunctionObjArgs(func.get(), arg1, arg2, nullptr));
}

void TypestatsLeakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto census = leakguard::TakeTypeCensus();
    if (!census.ok()) return Fail(state, census.status());
    auto counts = census->Counts();
    benchmark::DoNotOptimize(counts.data());
  }
  state.counters["objects"] = static_cast<double>(heap->objects);
}

void TypestatsObjgraph(benchmark::State& state) {
  for (auto _ : state) {
    leakguard::Ref stats = ObjgraphCall("typestats");
    if (!stats) return Fail(state, leakguard::StatusFromPythonError());
  }
  state.counters["objects"] = static_cast<double>(heap->objects);
}

void GrowthLeakguard(benchmark::State& state, bool collect,
                     leakguard::CollectDepth depth = leakguard::CollectDepth::kYoung) {
  leakguard::GrowthTracker tracker;
  for (auto _ : state) {
    auto rows = tracker.Update({.collect_first = collect, .collect_depth = depth});
    if (!rows.ok()) return Fail(state, rows.status());
    benchmark::DoNotOptimize(rows->data());
  }
}

void GrowthObjgraph(benchmark::State& state) {
  leakguard::Ref peaks = leakguard::Steal(PyDict_New());
  for (auto _ : state) {
    leakguard::Ref limit = leakguard::Steal(PyLong_FromLong(10));
    leakguard::Ref rows = ObjgraphCall("growth", limit.get(), peaks.get());
    if (!rows) return Fail(state, leakguard::StatusFromPythonError());
  }
}

void GrowthObjgraphWithoutCollect(benchmark::State& state) {
  leakguard::Ref peaks = leakguard::Steal(PyDict_New());
  for (auto _ : state) {
    leakguard::Ref limit = leakguard::Steal(PyLong_FromLong(10));
    leakguard::Ref rows = leakguard::Steal(
        PyObject_CallFunctionObjArgs(heap->growth_without_collect.get(), heap->objgraph.get(),
                                     limit.get(), peaks.get(), nullptr));
    if (!rows) return Fail(state, leakguard::StatusFromPythonError());
  }
}

void GcCollect(benchmark::State& state) {
  for (auto _ : state) {
    leakguard::Ref n = leakguard::Steal(PyObject_CallNoArgs(heap->gc_collect.get()));
    if (!n) return Fail(state, leakguard::StatusFromPythonError());
  }
}

void ChainLeakguard(benchmark::State& state, bool collect,
                    leakguard::CollectDepth depth = leakguard::CollectDepth::kYoung) {
  std::size_t k = 0;
  for (auto _ : state) {
    auto chain = leakguard::FindBackrefChain(heap->targets[k++ % 100], {},
                                             {.collect_first = collect, .collect_depth = depth});
    if (!chain.ok()) return Fail(state, chain.status());
    benchmark::DoNotOptimize(chain->links.data());
  }
}

void ChainObjgraph(benchmark::State& state) {
  std::size_t k = 0;
  for (auto _ : state) {
    leakguard::Ref chain = ObjgraphCall("find_backref_chain", heap->targets[k++ % 100].get(),
                                        heap->is_proper_module.get());
    if (!chain) return Fail(state, leakguard::StatusFromPythonError());
  }
}

void Chains100Leakguard(benchmark::State& state) {
  for (auto _ : state) {
    auto graph = leakguard::ReferrerGraph::Build();
    if (!graph.ok()) return Fail(state, graph.status());
    for (const leakguard::Ref& target : heap->targets) {
      auto chain = graph->FindChain(target);
      if (!chain.ok()) return Fail(state, chain.status());
      benchmark::DoNotOptimize(chain->links.data());
    }
  }
}

void Chains100Objgraph(benchmark::State& state) {
  for (auto _ : state) {
    for (const leakguard::Ref& target : heap->targets) {
      leakguard::Ref chain =
          ObjgraphCall("find_backref_chain", target.get(), heap->is_proper_module.get());
      if (!chain) return Fail(state, leakguard::StatusFromPythonError());
    }
  }
}

// Builds the heap and checks, once, that both tools find chains of the
// same length for every target (a benchmark of different answers would be
// meaningless).
absl::Status BuildHeap(bool smoke) {
  PyObject* globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  leakguard::Ref done = leakguard::Steal(PyRun_String(kHeapCode, Py_file_input, globals, globals));
  if (!done) return leakguard::StatusFromPythonError();
  PyObject* build = PyDict_GetItemString(globals, "build");  // Borrowed.
  leakguard::Ref sample = leakguard::Steal(PyObject_CallFunction(build, "i", smoke ? 500 : 130000));
  if (!sample) return leakguard::StatusFromPythonError();
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sample.get()); ++i) {
    heap->targets.push_back(leakguard::Borrow(PyList_GET_ITEM(sample.get(), i)));
  }
  sample.Reset();
  heap->growth_without_collect =
      leakguard::Borrow(PyDict_GetItemString(globals, "growth_without_collect"));
  leakguard::Ref gc_module = leakguard::Steal(PyImport_ImportModule("gc"));
  if (!gc_module) return leakguard::StatusFromPythonError();
  heap->gc_collect = leakguard::Steal(PyObject_GetAttrString(gc_module.get(), "collect"));
  if (!heap->growth_without_collect || !heap->gc_collect) {
    return absl::InternalError("the heap code did not define its helpers");
  }
  PyDict_DelItemString(globals, "build");  // Drop Record/build from __main__.
  PyDict_DelItemString(globals, "Record");
  heap->objgraph = leakguard::Steal(PyImport_ImportModule("objgraph"));
  if (!heap->objgraph) return leakguard::StatusFromPythonError();
  heap->is_proper_module =
      leakguard::Steal(PyObject_GetAttrString(heap->objgraph.get(), "is_proper_module"));
  auto census = leakguard::TakeTypeCensus({.collect_first = true});
  if (!census.ok()) return census.status();
  heap->objects = census->total();
  auto graph = leakguard::ReferrerGraph::Build();
  if (!graph.ok()) return graph.status();
  const std::size_t checks = smoke ? 100 : 3;  // objgraph is slow at 1M.
  for (std::size_t i = 0; i < checks; ++i) {
    auto chain = graph->FindChain(heap->targets[i]);
    if (!chain.ok()) return chain.status();
    leakguard::Ref theirs =
        ObjgraphCall("find_backref_chain", heap->targets[i].get(), heap->is_proper_module.get());
    if (!theirs) return leakguard::StatusFromPythonError();
    if (static_cast<std::size_t>(PyList_GET_SIZE(theirs.get())) != chain->links.size()) {
      return absl::InternalError("leakguard and objgraph disagree on a chain length");
    }
    if (chain->depth() < 6 || chain->depth() > 10) {
      return absl::InternalError("unexpected chain depth");
    }
  }
  std::fprintf(stderr, "heap: %lld tracked objects, %zu edges; chains checked\n",
               static_cast<long long>(heap->objects), graph->edge_count());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<leakguard::Interpreter> py = leakguard::bench::StartInterpreter();
  if (!py) return 1;
  heap = new Heap();
  if (absl::Status built = BuildHeap(leakguard::bench::Smoke()); !built.ok()) {
    std::fprintf(stderr, "heap: %s\n", built.ToString().c_str());
    return 1;
  }
  auto ms = [](benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMillisecond); };
  ms(benchmark::RegisterBenchmark("graph/typestats_1m/leakguard", TypestatsLeakguard));
  ms(benchmark::RegisterBenchmark("graph/typestats_1m/objgraph", TypestatsObjgraph));
  ms(benchmark::RegisterBenchmark("graph/growth_1m/leakguard",
                                  [](benchmark::State& s) { GrowthLeakguard(s, true); }));
  ms(benchmark::RegisterBenchmark("graph/growth_1m/objgraph", GrowthObjgraph));
  ms(benchmark::RegisterBenchmark("graph/growth_1m/gc.collect", GcCollect));
  ms(benchmark::RegisterBenchmark(
      "graph/growth_full_collect_1m/leakguard",
      [](benchmark::State& s) { GrowthLeakguard(s, true, leakguard::CollectDepth::kFull); }));
  ms(benchmark::RegisterBenchmark("graph/growth_full_collect_1m/objgraph", GrowthObjgraph));
  ms(benchmark::RegisterBenchmark("graph/growth_nocollect_1m/leakguard",
                                  [](benchmark::State& s) { GrowthLeakguard(s, false); }));
  ms(benchmark::RegisterBenchmark("graph/growth_nocollect_1m/objgraph_nocollect",
                                  GrowthObjgraphWithoutCollect));
  ms(benchmark::RegisterBenchmark("graph/growth_nocollect_1m/objgraph", GrowthObjgraph));
  ms(benchmark::RegisterBenchmark("graph/backref_chain_1/leakguard",
                                  [](benchmark::State& s) { ChainLeakguard(s, false); }));
  ms(benchmark::RegisterBenchmark("graph/backref_chain_1/objgraph", ChainObjgraph));
  ms(benchmark::RegisterBenchmark("graph/backref_chain_1_collect/leakguard",
                                  [](benchmark::State& s) { ChainLeakguard(s, true); }));
  ms(benchmark::RegisterBenchmark("graph/backref_chain_1_collect/objgraph", ChainObjgraph));
  ms(benchmark::RegisterBenchmark(
      "graph/backref_chain_1_full_collect/leakguard",
      [](benchmark::State& s) { ChainLeakguard(s, true, leakguard::CollectDepth::kFull); }));
  ms(benchmark::RegisterBenchmark("graph/backref_chain_1_full_collect/objgraph", ChainObjgraph));
  ms(benchmark::RegisterBenchmark("graph/backref_chains_100/leakguard", Chains100Leakguard));
  ms(benchmark::RegisterBenchmark("graph/backref_chains_100/objgraph", Chains100Objgraph));
  const int status = leakguard::bench::RunRegistered(argc, argv);
  delete heap;  // Its Refs go while the interpreter still runs.
  heap = nullptr;
  return status;
}
