// leakguard/sampler.h
//
// AllocationSampler: a tracker of Python's allocations cheap enough to leave
// on in production. Where tracemalloc records every block (8-25x on an
// allocation-heavy loop), the sampler records about one block per
// `sampling_interval` bytes allocated, chosen at random, and weights each
// sample by how many bytes it stands for. Live heap by line, growth between
// marks and the flame graph are then estimates, with a confidence interval.
//
//   auto sampler = AllocationSampler::Create({});                 // R = 512 KiB
//   if (absl::Status s = (*sampler)->Start(); !s.ok()) return s;  // GIL held
//   auto before = (*sampler)->Mark();
//   RunPlugin();                                                  // many times
//   auto after = (*sampler)->Mark();
//   auto grown = after.snapshot.CompareTo(before.snapshot,
//                                         tracemalloc::GroupBy::kLineno);
//   for (const SiteEstimate& site : (*sampler)->LiveByLine(10)) {
//     std::cout << site.filename << ":" << site.lineno << " ~" << site.bytes << " B\n";
//   }
//   (*sampler)->Stop();      // also done by the Interpreter before it ends
//
// How it samples. The three Python allocator domains (RAW, MEM, OBJ) are
// hooked with PyMem_SetAllocator, each hook chained to the allocator that
// was there before (its `ctx`). Each thread counts down the bytes it
// allocates from a random distance drawn from an exponential distribution
// of mean R; the block during which the count reaches zero is sampled and a
// new distance drawn. A block of s bytes is thus sampled with probability
// p = 1 - exp(-s/R) and stands for s/p bytes (its weight), an unbiased
// estimate whatever the mix of sizes. R = 1 is the exact mode: every block
// is recorded with its own size.
//
// What it costs. An allocation that is not sampled costs a thread-local
// decrement and a branch: the countdown is also the reentrancy guard (set
// out of reach while the thread is inside the sampler, and, for MEM and OBJ
// requests over 512 bytes, around pymalloc, which passes them on to the RAW
// domain, so that their bytes are not counted twice). A
// free first tests one bit of a 128 KiB bitmap of hashed addresses; only a
// set bit (an address that hashes where a live sample does) leads to the
// sample table, so an unsampled free is one load and a branch nearly always.
// A sampled allocation reads the thread's Python stack in place (up to
// `max_frames` frames; no frame object, no allocation through Python, no
// lock) and takes the sampler's lock to record it.
// benchmarks/sampler_benchmark.cc measures all of this against tracemalloc;
// docs/sampler.md has the figures and the statistics (how long a leak of a
// given rate takes to show).
//
// Chain order with tracemalloc. Both hook the same three domains, and the
// one started last sits on top. Start tracemalloc first and the sampler
// second, and stop the sampler first. If tracemalloc is stopped while the
// sampler sits on top of it, tracemalloc puts back the allocators it saved
// and so unhooks the sampler: Stats().hooked turns false and the samples
// stop changing. Starting tracemalloc after the sampler is fine:
// tracemalloc wraps the sampler, and its stop puts the sampler back.
//
// Lifetime and threads. One sampler runs at a time in the process (the
// allocator hooks are process-wide): Start() of a second one is
// FailedPrecondition. Start() and Stop() need the GIL and may be called at
// any time, while other threads allocate: the hooks' state is static and
// never freed, and a hook that cannot be removed (something hooked on top
// of it) stays as a pass-through. Start() registers the sampler as a
// Watcher of the running Interpreter (started or attached), which stops it
// before finalizing. Reading (TakeSnapshot, LiveByLine, Mark, Stats) needs
// no GIL, from any thread. Free-threaded builds: the state is per thread,
// and the allocation path takes no lock until a block is sampled.
//
// Native allocations (SamplerOptions::native). The relocation slots through
// which every loaded object calls malloc, calloc, realloc, free, the
// aligned allocators, mmap and munmap are rewritten to hooks that sample
// the same way, into the same table (domain kNativeDomain), and Stop()
// writes them back. libpython's dlopen is wrapped (objects it loads later
// are patched on load), as are dlsym and libffi's ffi_call in libpython and
// extension modules (ctypes' malloc, looked up at import, is seen).
// libpython's own slots are left alone: its malloc calls are the RAW
// domain's, counted once. A native sample keeps its native stack
// (libunwind), named when read (dladdr, demangled), after its Python
// frames; its site names the Python line, the library and the function.
// docs/sampler.md, "Native allocations", says what is and is not seen.
//
// Its own memory is bounded: at most `max_samples` live samples (past the
// cap new samples are counted in Stats().dropped and not recorded, so the
// estimates undercount; the cap is documented per sample size in
// docs/sampler.md), interned frames and stacks, and the address filter
// (1.1 MiB of static storage whose untouched pages stay unmapped).
// Stats().table_bytes reports it.

#ifndef LEAKGUARD_SAMPLER_H_
#define LEAKGUARD_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/export.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {

/// How the sampler samples.
struct SamplerOptions {
  /// Mean number of bytes allocated between two samples (R). 1: every
  /// block is recorded with its size (exact mode). 1 to 1 GiB.
  int64_t sampling_interval = int64_t{512} * 1024;
  /// Python frames kept per sample, most recent first; 1 to 256.
  int max_frames = 16;
  /// Most live samples held; past it, new samples are dropped (counted in
  /// SamplerStats::dropped). 1 to 2^26.
  int64_t max_samples = int64_t{1} << 20;
  /// Seed of the per-thread random distances; 0: a random seed. With a
  /// fixed seed, a single-threaded workload samples the same blocks each run.
  uint64_t seed = 0;
  /// Also samples native allocations: malloc, calloc, realloc, free,
  /// posix_memalign, aligned_alloc, memalign, valloc, pvalloc and anonymous
  /// mmap/munmap, as called by every loaded object (and every object loaded
  /// later), by rewriting their relocation slots; Stop() puts them back.
  /// See "Native allocations" in the file comment.
  bool native = false;
  /// Native frames kept per native sample, most recent first; 1 to 128.
  int max_native_frames = 32;
  /// Objects whose native allocations are not tracked, each given by a
  /// part of its path ("libfoo.so", "/opt/host/lib/"); "<main>" is the
  /// program itself (the host's own code, when it is not a library).
  std::vector<std::string> native_exclude;
};

/// The tracemalloc domain of native samples in a sampler's snapshots
/// (Python's own are domain 0).
inline constexpr unsigned kNativeDomain = 0x6e6174;  // "nat"

/// The sampler's own counters.
struct SamplerStats {
  /// Whether the sampler runs (Start() succeeded, Stop() not yet called).
  bool running = false;
  /// Whether its hooks are still in the allocator chain (false when
  /// something removed them, e.g. tracemalloc.stop() of a tracemalloc
  /// started before the sampler).
  bool hooked = false;
  /// The mean interval R, in bytes.
  int64_t sampling_interval = 0;
  /// Samples held now (sampled blocks not yet freed).
  int64_t live_samples = 0;
  /// Samples taken since Start().
  int64_t samples = 0;
  /// Frees of sampled blocks seen since Start().
  int64_t freed = 0;
  /// Samples not recorded because the table was full.
  int64_t dropped = 0;
  /// Estimated live bytes: the sum of the live samples' weights.
  int64_t live_bytes_estimate = 0;
  /// Memory the sampler holds for its tables (samples, interned frames and
  /// stacks, and the pages of the address filter it touched), in bytes.
  int64_t table_bytes = 0;
  /// Distinct interned stacks.
  int64_t stacks = 0;
  /// Live samples of native allocations (SamplerOptions::native).
  int64_t native_live_samples = 0;
  /// Their estimated bytes (part of live_bytes_estimate).
  int64_t native_bytes_estimate = 0;
  /// Relocation slots pointing at the native hooks now.
  int64_t native_hooked_slots = 0;
};

/// One line's live heap, estimated from the samples.
struct SiteEstimate {
  /// File of the allocation site (the most recent Python frame;
  /// "<unknown>" for a native allocation made with no Python code running
  /// on the thread).
  std::string filename;
  /// Its line.
  int64_t lineno = 0;
  /// Whether the site is native memory (SamplerOptions::native): the
  /// Python line led to a native allocation in `library`.
  bool native = false;
  /// A native site's library: the file name of the object whose code asked
  /// for the memory (the innermost native frame outside the allocator's own
  /// libraries: libc, libstdc++, libgcc_s, libffi, the loader). Empty for
  /// Python memory.
  std::string library;
  /// The function there (demangled; from the dynamic symbol table, else
  /// from the file's .symtab), or "+0x<offset>" in a stripped library.
  std::string function;
  /// Estimated live bytes allocated there.
  double bytes = 0;
  /// Standard error of `bytes` (Horvitz-Thompson: the square root of the
  /// sum over samples of (1 - p) w^2). A 95% interval is bytes +- 1.96 *
  /// stderr. 0 in exact mode.
  double stderr_bytes = 0;
  /// Estimated live blocks (the sum of 1/p).
  double blocks = 0;
  /// Samples behind the estimate.
  int64_t samples = 0;
  /// The mark epoch (see Mark()) in which the oldest surviving sample of
  /// this line was taken: 0 = before the first mark.
  int64_t oldest_epoch = 0;

  /// Lower end of the 95% interval (never below 0).
  double low() const;
  /// Upper end of the 95% interval.
  double high() const;
};

/// What Mark() saw: the live samples as a tracemalloc::Snapshot (each
/// sample one trace whose size is its weight, so Statistics() and
/// CompareTo() estimate bytes; their `count` counts samples, not blocks),
/// and the per-line estimates with their errors.
struct SamplerMark {
  /// 1 for the first mark after Start(), then 2, ...
  int64_t epoch = 0;
  /// When it was taken.
  absl::Time time;
  /// The live samples.
  tracemalloc::Snapshot snapshot;
  /// Every line's estimate, largest first.
  std::vector<SiteEstimate> lines;
};

/// One relocation slot of a loaded object through which it calls a
/// function the native hooks replace (SamplerOptions::native): for checking
/// what native tracking changed, and that Stop() put it back.
struct NativeHookSlot {
  /// The object's path ("" for the main program).
  std::string object;
  /// The function ("malloc", "free", "mmap", "dlopen", ...).
  std::string symbol;
  /// The slot's address.
  uintptr_t slot = 0;
  /// What it holds now.
  uintptr_t value = 0;
  /// Whether it holds one of the hooks.
  bool hooked = false;
};

/// Every such slot of every loaded object, now. Any thread, no GIL.
LEAKGUARD_EXPORT std::vector<NativeHookSlot> ListNativeHookSlots();

/// A site's name for reports: "file:line" for Python memory,
/// "file:line -> library function" for native memory.
LEAKGUARD_EXPORT std::string SiteName(const SiteEstimate& site);

/// A line whose live estimate grew steadily across marks.
struct GrowingSite {
  /// The line's estimate at the last mark.
  SiteEstimate last;
  /// Growth from the first mark to the last, in estimated bytes.
  double growth = 0;
  /// Standard error of `growth`.
  double stderr_growth = 0;
  /// The growth between consecutive marks, oldest first.
  std::vector<double> deltas;
};

/// The verdict over a series of marks (regrtest's rule for memory blocks,
/// applied to estimates): a line leaks when its estimate rose between every
/// pair of consecutive marks and its total growth exceeds `z` standard
/// errors. Needs at least 3 marks (2 intervals); fewer gives an empty list.
/// Largest growth first.
LEAKGUARD_EXPORT std::vector<GrowingSite> FindGrowingSites(const std::vector<SamplerMark>& marks,
                                                           double z = 3.0);

/// The sampling tracker; see the file comment.
class LEAKGUARD_EXPORT AllocationSampler : public Watcher {
 public:
  /// Validates the options (InvalidArgument names the field out of range).
  static absl::StatusOr<std::unique_ptr<AllocationSampler>> Create(SamplerOptions options);

  /// Stop().
  ~AllocationSampler() override;
  AllocationSampler(const AllocationSampler&) = delete;
  AllocationSampler& operator=(const AllocationSampler&) = delete;

  /// Hooks the allocators (once; again after a Stop() that could remove
  /// them) and starts recording; clears the samples of an earlier run.
  /// No-op if running. FailedPrecondition without a running leakguard
  /// Interpreter (Start() or Attach()), without the GIL, or while another
  /// sampler runs.
  /// REQUIRES: the GIL is held.
  absl::Status Start();

  /// Stops recording, unhooks where the sampler is still the top of the
  /// chain (else leaves a pass-through), drops the samples, and
  /// unregisters. No-op if not running. Any thread; takes the GIL if the
  /// caller does not hold it.
  void Stop();

  /// True between Start() and Stop().
  bool running() const;

  /// The sampler's counters. Any thread, no GIL.
  SamplerStats Stats() const;

  /// The live samples as a snapshot (see SamplerMark::snapshot); its
  /// traceback limit is max_frames. Any thread, no GIL. Empty when not
  /// running.
  tracemalloc::Snapshot TakeSnapshot() const;

  /// The `top` lines holding most estimated live bytes (0: all), largest
  /// first. Any thread, no GIL.
  std::vector<SiteEstimate> LiveByLine(std::size_t top = 0) const;

  /// Takes a snapshot and the per-line estimates, and starts a new epoch
  /// (samples taken from now on are younger than this mark). Any thread, no
  /// GIL.
  SamplerMark Mark();

  /// The live samples as collapsed stacks, "file:line;file:line bytes" per
  /// stack (oldest frame first, estimated bytes), the input of
  /// flamegraph.pl, inferno and speedscope.
  /// A native sample's stack is its Python frames followed by the native
  /// frames above the interpreter ("library!function"), so a line reads
  /// "app.py:42;etree.so!fromstring;libxml2.so.2!xmlNewDoc".
  std::string CollapsedStacks() const;

  /// The counters and the `top` lines (0: all) as one JSON object:
  /// {"sampling_interval":..,"live_samples":..,...,"lines":[{"filename":..,
  /// "lineno":..,"bytes":..,"stderr_bytes":..,"blocks":..,"samples":..,
  /// "oldest_epoch":..}]} (see docs/sampler.md).
  std::string ToJson(std::size_t top = 20) const;

  /// The options it was created with.
  const SamplerOptions& options() const { return options_; }

  /// Watcher: Stop().
  void StopBeforeFinalize() noexcept override;

 private:
  explicit AllocationSampler(SamplerOptions options);
  const SamplerOptions options_;
};

}  // namespace leakguard

#endif  // LEAKGUARD_SAMPLER_H_
