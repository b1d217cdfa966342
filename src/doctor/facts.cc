#include "doctor/facts.h"

#include <algorithm>

#include <string>
#include <utility>
#include <vector>
#include "absl/strings/match.h"

namespace leakguard::internal {
namespace {

std::vector<int64_t> Measured(const Investigation& inv, int64_t (*field)(const IterationDelta&)) {
  std::vector<int64_t> v;
  for (size_t i = static_cast<size_t>(inv.options.warmup); i < inv.iterations.size(); ++i) {
    v.push_back(field(inv.iterations[i]));
  }
  return v;
}

// The container that grew steadily and states no limit: the script's and
// its project's before the standard library's registries, then the shortest
// path among equals.
const HolderEvidence* SteadyHolder(const Investigation& inv) {
  const HolderEvidence* best = nullptr;
  auto rank = [](const HolderEvidence& h) {
    return std::make_pair(!h.registry.empty(), h.path.size());
  };
  for (const HolderEvidence& h : inv.holders) {
    if (h.internal || IsBounded(h, inv.options) || !Steady(Steps(h.series), 1)) continue;
    if (best == nullptr || rank(h) < rank(*best)) best = &h;
  }
  return best;
}

// The last third of the series grew by less than half of the first third.
bool DyingAway(const std::vector<int64_t>& steps) {
  if (steps.size() < 6) return false;
  const size_t third = steps.size() / 3;
  int64_t first = 0, last = 0;
  for (size_t i = 0; i < third; ++i) {
    first += steps[i];
    last += steps[steps.size() - 1 - i];
  }
  return first > 0 && last * 2 < first;
}

}  // namespace

bool IsBounded(const HolderEvidence& h, const DoctorOptions& options) {
  if (!h.limit.has_value() || h.series.empty() || h.series.back() > *h.limit) return false;
  const int64_t grew = h.series.back() - h.series.front();
  if (grew <= 0) return true;
  // A limit the growth would reach only far beyond the budget (a buffer of
  // a billion entries) bounds nothing in practice.
  const double need = static_cast<double>(*h.limit - h.series.back()) *
                      std::max(options.repeat, 1) / static_cast<double>(grew);
  return need <= 10.0 * std::max(options.max_repeat, options.repeat);
}

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
  f.native = Steady(f.rss, 4096) && f.total.rss_bytes >= int64_t{256} * 1024 &&
             f.traced_total * 4 < f.total.rss_bytes && !DyingAway(f.rss);
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
      (((Steady(f.blocks, 1) || Steady(f.traced, kTracedNoiseFloor)) && f.traced_total > 0) ||
       f.holder_every_step);
  bool tracked_growth = false;
  for (const TypeGrowth& t : inv.types) tracked_growth = tracked_growth || t.per_iter >= 1;
  // A chain whose sample a bounded container holds is no evidence of a leak.
  bool chain_bounded = false;
  for (const HolderEvidence& h : inv.holders) {
    if ((h.internal || IsBounded(h, inv.options)) && !inv.chain_holder.empty() &&
        (inv.chain_holder == h.path || absl::StartsWith(inv.chain_holder, h.path + ".") ||
         absl::StartsWith(inv.chain_holder, h.path + "["))) {
      chain_bounded = true;
    }
  }
  f.chain_counts = !inv.chain.empty() && !chain_bounded;
  f.above_noise_floor = !chain_bounded && (f.traced_total >= kUnexplainedFloor * f.repeat ||
                                           tracked_growth || f.chain_counts);
  f.settling = f.python_heap && !f.holder_every_step && DyingAway(f.traced);
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
  for (const HolderEvidence& h : inv.holders) {
    if (!IsBounded(h, inv.options) || h.series.back() <= h.series.front()) continue;
    f.bounded.push_back(&h);
    if (h.series.back() >= *h.limit) continue;
    f.filling.push_back(&h);
    const int64_t grew = h.series.back() - h.series.front();
    const int64_t left = *h.limit - h.series.back();
    const int64_t need = (left * f.repeat + grew - 1) / grew;
    f.iterations_to_fill = std::max(f.iterations_to_fill, need);
  }
  f.bounded_filling = f.holder == nullptr && !f.filling.empty();
  f.first_blocks = inv.iterations.empty() ? 0 : inv.iterations.front().blocks;
  f.first_rss = inv.iterations.empty() ? 0 : inv.iterations.front().rss_bytes;
  for (const IterationDelta& it : inv.iterations) f.run_blocks += it.blocks;
  f.freed_per_iter = static_cast<double>(f.total.gc_freed) / f.repeat;
  return f;
}

}  // namespace leakguard::internal
