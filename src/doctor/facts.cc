#include "doctor/facts.h"

#include <string>
#include <vector>

namespace leakguard::internal {
namespace {

std::vector<int64_t> Measured(const Investigation& inv, int64_t (*field)(const IterationDelta&)) {
  std::vector<int64_t> v;
  for (size_t i = static_cast<size_t>(inv.options.warmup); i < inv.iterations.size(); ++i) {
    v.push_back(field(inv.iterations[i]));
  }
  return v;
}

const HolderEvidence* SteadyHolder(const Investigation& inv) {
  const HolderEvidence* best = nullptr;
  for (const HolderEvidence& h : inv.holders) {
    if (!Steady(Steps(h.series), 1)) continue;
    if (best == nullptr || h.path.size() < best->path.size()) best = &h;
  }
  return best;
}

}  // namespace

bool Steady(const std::vector<int64_t>& steps, int64_t floor) {
  if (steps.empty()) return false;
  int64_t good = 0, total = 0;
  for (int64_t s : steps) {
    if (s >= floor) ++good;
    total += s;
  }
  return total > 0 && good * 10 >= static_cast<int64_t>(steps.size()) * 9;
}

std::vector<int64_t> Steps(const std::vector<int64_t>& series) {
  std::vector<int64_t> steps;
  for (size_t i = 1; i < series.size(); ++i) steps.push_back(series[i] - series[i - 1]);
  return steps;
}

std::string HolderName(const HolderEvidence& h) {
  const size_t at = h.path.find(".__defaults__[");
  if (at != std::string::npos) return h.path.substr(0, at + 13);
  return h.path;
}

Facts DeriveFacts(const Investigation& inv) {
  Facts f;
  f.inv = &inv;
  f.repeat = inv.options.repeat > 0 ? inv.options.repeat : 1;
  f.total = inv.MeasuredTotal();
  f.traced_total = f.total.traced_bytes.value_or(0);
  f.blocks = Measured(inv, [](const IterationDelta& d) { return d.blocks; });
  f.traced = Measured(inv, [](const IterationDelta& d) { return d.traced_bytes.value_or(0); });
  f.rss = Measured(inv, [](const IterationDelta& d) { return d.rss_bytes; });
  f.fds = Measured(inv, [](const IterationDelta& d) { return d.fds; });
  f.threads = Measured(inv, [](const IterationDelta& d) { return d.threads; });

  f.fds_steady = Steady(f.fds, 1);
  f.threads_steady = Steady(f.threads, 1);
  f.cycles_pile_up = !inv.gc_automatic && inv.cyclic_garbage >= f.repeat;
  f.native = Steady(f.rss, 4096) && f.total.rss_bytes >= 256 * 1024 &&
             f.traced_total * 4 < f.total.rss_bytes;
  f.holder = SteadyHolder(inv);
  if (f.holder != nullptr) {
    f.holder_every_step = true;
    for (int64_t step : Steps(f.holder->series)) {
      if (step <= 0) f.holder_every_step = false;
    }
  }
  // A container that gains in every measured iteration is growth even when
  // it is too small for the heap counters to show every time (a list of
  // shared objects grows by a pointer, reallocated in jumps).
  f.python_heap =
      !f.native &&
      (((Steady(f.blocks, 1) || Steady(f.traced, 1)) && f.traced_total > 0) || f.holder_every_step);
  f.numpy_dominant = inv.numpy_bytes > 0 && inv.numpy_bytes * 2 > f.traced_total;

  for (int64_t b : f.blocks) {
    f.block_growth += b;
    f.growing_steps += b > 0 ? 1 : 0;
  }
  for (const HolderEvidence& h : inv.holders) {
    const std::vector<int64_t> steps = Steps(h.series);
    if (!steps.empty() && steps.back() == 0 && h.series.back() > h.series.front()) {
      f.stopped.push_back(&h);
    }
  }
  f.first_blocks = inv.iterations.empty() ? 0 : inv.iterations.front().blocks;
  f.first_rss = inv.iterations.empty() ? 0 : inv.iterations.front().rss_bytes;
  for (const IterationDelta& it : inv.iterations) f.run_blocks += it.blocks;
  f.freed_per_iter = static_cast<double>(f.total.gc_freed) / f.repeat;
  return f;
}

}  // namespace leakguard::internal
