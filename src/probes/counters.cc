#include "leakguard/counters.h"

#include <vector>

#include "leakguard/process.h"
#include "leakguard/python/gil.h"
#include "probes/growth.h"
#include "python/gil_capability.h"
#include "python/status_macros.h"

namespace leakguard {

Counters operator-(const Counters& after, const Counters& before) {
  Counters d;
  d.rss_bytes = after.rss_bytes - before.rss_bytes;
  if (after.traced_bytes && before.traced_bytes) {
    d.traced_bytes = *after.traced_bytes - *before.traced_bytes;
  }
  d.blocks = after.blocks - before.blocks;
  if (after.refs && before.refs) d.refs = *after.refs - *before.refs;
  d.fds = after.fds - before.fds;
  d.threads = after.threads - before.threads;
  d.gc_freed = after.gc_freed;
  d.taken_at = after.taken_at;
  return d;
}

absl::StatusOr<Counters> ReadCounters(const ReadCountersOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  Counters c;
  if (options.collect) {
    LEAKGUARD_ASSIGN_OR_RETURN(c.gc_freed, internal::CollectGarbage());
  }
  LEAKGUARD_ASSIGN_OR_RETURN(c.blocks, internal::AllocatedBlocks());
  LEAKGUARD_ASSIGN_OR_RETURN(c.refs, internal::TotalRefCount());
  LEAKGUARD_ASSIGN_OR_RETURN(const bool tracing, tracemalloc::IsTracing());
  if (tracing) {
    LEAKGUARD_ASSIGN_OR_RETURN(const tracemalloc::TracedMemory traced,
                               tracemalloc::GetTracedMemory());
    c.traced_bytes = static_cast<int64_t>(traced.current);
  }
  LEAKGUARD_ASSIGN_OR_RETURN(const ProcessSample sample, SampleProcess());
  c.rss_bytes = sample.rss_bytes;
  c.fds = sample.open_fds;
  c.threads = sample.threads;
  c.taken_at = sample.taken_at;
  return c;
}

const std::vector<tracemalloc::TraceFilter>& OwnFrameFilters() {
  static const std::vector<tracemalloc::TraceFilter>* const filters = [] {
    auto* list = new std::vector<tracemalloc::TraceFilter>;
    for (const char* pattern :
         {"<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>",
          "*/tracemalloc.py", "<leakguard>/*"}) {
      tracemalloc::Filter filter;
      filter.inclusive = false;
      filter.filename_pattern = pattern;
      list->emplace_back(filter);
    }
    return list;
  }();
  return *filters;
}

}  // namespace leakguard
