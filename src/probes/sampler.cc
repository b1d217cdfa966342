// The sampling allocation tracker (leakguard/sampler.h).
//
// Layout of the work, from the hottest path to the coldest:
//   - the hooks (HookMalloc, ...): a thread-local countdown for allocations,
//     one load of the address filter for frees; both fall through to the
//     allocator below with a tail call;
//   - Sample(): the block that reached the countdown: the Python stack read
//     in place (frame_walk.c), then, under the state's lock, interned and
//     recorded;
//   - Forget(): a free whose filter bit is set: under the lock,
//     the block is looked up and, when sampled, removed;
//   - the readers (TakeSnapshot, LiveByLine, ...): under the lock, a copy.
//
// The state behind the hooks is process-wide and never freed: a hook that
// another thread entered just before Stop() unhooked it still finds it.

#include "leakguard/sampler.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "probes/frame_walk.h"
#include "probes/got_patch.h"
#include "probes/tracemalloc_internal.h"
#include "python/gil_capability.h"
#include "python/json_text.h"

// libunwind's local-only unwinder: unw_backtrace walks the calling
// thread's stack from the call frame information, without allocating.
#define UNW_LOCAL_ONLY
#include <libunwind.h>

namespace leakguard {
namespace {

// ------------------------------------------------------------ the filter

// The free path's question, "was this address sampled?", asked of 2^20
// hashed slots: one bit each in `g_bits` (128 KiB, read by every free
// without a lock, small enough to stay in the caches), and beside it how
// many live samples hash to the slot (`g_counts`, one byte each, sticky at
// 255; touched only under the state's lock, when a sample comes or goes).
// Zeroed static storage: pages nobody touched are never made resident.
constexpr int kFilterBits = 20;
constexpr std::size_t kFilterSlots = std::size_t{1} << kFilterBits;
constexpr std::size_t kFilterPage = 4096;
std::atomic<uint64_t> g_bits[kFilterSlots / 64];
uint8_t g_counts[kFilterSlots];

// Blocks are 16-byte aligned: the slot is the address in 16-byte units,
// modulo 2^20 (addresses 16 MiB apart share a slot). A shift and a mask,
// no multiply: this runs on every free.
inline std::size_t FilterSlot(const void* p) {
  return static_cast<std::size_t>(reinterpret_cast<uintptr_t>(p) >> 4) & (kFilterSlots - 1);
}

// ------------------------------------------------------- per-thread state

// Trivially constructed, so the hooks read it without an initialization
// guard; initial-exec so that a read is one %fs-relative load, not a call
// to __tls_get_addr (the library may be loaded by dlopen, as the Python
// extension is; 24 bytes of static TLS are well within glibc's reserve).
struct ThreadState {
  int64_t countdown;    // bytes left before the next sample (kBusyCountdown: inside)
  uint64_t rng;         // xorshift64* state
  uint32_t generation;  // g_generation the countdown was drawn in
  bool probing;         // Start()'s check that a hook is in the chain
  bool probe_hit;
  bool inside;  // holding the sampler's lock or reading (Quiet): frees skip Forget()
};
thread_local ThreadState t_state __attribute__((tls_model("initial-exec")));

// Which run of a sampler the process is in (Start() counts them). A thread
// whose countdown was drawn in an earlier run redraws it at its next slow
// path. A countdown left over from a run with a larger R would delay the
// new run's first sample on that thread by up to the old R (for exact mode,
// everything in between would be missed): Start() then installs hooks that
// compare the thread's generation on every call (two more instructions).
std::atomic<uint32_t> g_generation{0};

// ------------------------------------------------------------ the state

// A small lock for the sampled path and the readers. A spin lock, not a
// mutex: it is held for a few hundred nanoseconds, never across a call
// into Python, and taking it must not allocate.
class SpinLock {
 public:
  void lock() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

struct LiveSample {
  uint64_t size = 0;
  double weight = 0;     // bytes it stands for (s / p)
  double inclusion = 1;  // p = 1 - exp(-s / R)
  uint32_t stack = 0;
  uint32_t epoch = 0;   // mark epoch it was taken in
  uint32_t native = 0;  // native stack id + 1; 0: a Python-domain sample
};

struct State {
  // Read by the hooks without the lock.
  std::atomic<bool> enabled{false};
  std::atomic<int64_t> interval{int64_t{512} * 1024};
  std::atomic<int> max_frames{16};
  std::atomic<uint64_t> seed{1};
  std::atomic<uint64_t> thread_seeds{0};

  SpinLock lock;
  // Guarded by `lock`.
  AllocationSampler* owner = nullptr;
  int64_t max_samples = 0;
  bool exact = false;
  absl::flat_hash_map<uintptr_t, LiveSample> live;
  std::unique_ptr<internal::TablesBuilder> tables;
  // File name str objects already interned, with the length their text had:
  // a hit is confirmed by comparing the text (the object may have died and
  // its address been reused), so no reference is kept.
  absl::flat_hash_map<const void*, uint32_t> filename_by_object;
  std::string scratch;
  // Raw frames already interned: (file name object, line) -> frame id, a
  // direct-mapped cache. A hit is confirmed by the str's cached hash and
  // length as well as its address, so an object that died and whose address
  // was reused by another file name is not mistaken for it.
  struct FrameCacheEntry {
    const void* filename = nullptr;
    Py_hash_t hash = -1;
    Py_ssize_t length = -1;
    int lineno = -1;
    uint32_t frame = 0;
  };
  static constexpr std::size_t kFrameCacheSize = 2048;
  std::vector<FrameCacheEntry> frame_cache = std::vector<FrameCacheEntry>(kFrameCacheSize);
  uint32_t unknown_frame = 0;
  uint32_t epoch = 0;
  int64_t samples = 0;
  int64_t freed = 0;
  int64_t dropped = 0;
  double live_weight = 0;
  std::vector<bool> filter_pages = std::vector<bool>(kFilterSlots / kFilterPage);
  int64_t filter_pages_touched = 0;
  // Native stacks, interned: the program counters of stack i (innermost
  // first) are native_pcs[native_offsets[i] .. native_offsets[i + 1]).
  std::vector<uintptr_t> native_pcs;
  std::vector<uint32_t> native_offsets = std::vector<uint32_t>(1, 0);
  absl::flat_hash_map<uint64_t, uint32_t> native_by_hash;
  int64_t native_live = 0;
  double native_weight = 0;
};

State& GlobalState() {
  static State* state = new State;  // never freed: hooks may still run
  return *state;
}

// The countdown of a thread inside the sampler (recording a sample, or in
// the allocator below a hook that must not count twice): no allocation made
// meanwhile brings it to zero. The countdown is the reentrancy guard.
constexpr int64_t kBusyCountdown = std::numeric_limits<int64_t>::max() / 4;

// While the thread runs the sampler's own code (its lock held, a reader, a
// scan of the loaded objects), the allocations that code makes through the
// hooked allocator are neither counted nor sampled, and its frees do not
// look for samples (which would take the lock it may hold).
class Quiet {
 public:
  Quiet() : t_(t_state), countdown_(t_.countdown), inside_(t_.inside) {
    t_.countdown = kBusyCountdown;
    t_.inside = true;
  }
  ~Quiet() {
    t_.countdown = countdown_;
    t_.inside = inside_;
  }
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;

 private:
  ThreadState& t_;
  int64_t countdown_;
  bool inside_;
};

// The state's lock, taken Quiet.
class Locked {
 public:
  explicit Locked(State& s) : lock_(s.lock) {}

 private:
  Quiet quiet_;
  std::lock_guard<SpinLock> lock_;
};

// --------------------------------------------------------- random numbers

uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t NextRandom(ThreadState& t) {
  uint64_t x = t.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t.rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

// An exponential distance of mean `interval`, at least 1 byte.
int64_t DrawDistance(ThreadState& t, int64_t interval) {
  if (interval <= 1) return 0;  // exact mode: every block
  const double u = static_cast<double>((NextRandom(t) >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  const double d = -std::log(u) * static_cast<double>(interval);
  if (d >= 9.0e18) return std::numeric_limits<int64_t>::max() / 2;
  return std::max<int64_t>(1, static_cast<int64_t>(d));
}

// While the sampler is off but its hooks stay in the chain (something hooked
// on top of them), distances are drawn with at least this mean.
constexpr int64_t kIdleInterval = 4096;

// ---------------------------------------------------------- file names

// Appends the UTF-8 text of `str` (lone surrogates as 3-byte sequences,
// "surrogatepass") without asking Python, which would cache an encoded copy
// in the object: an allocation. Returns false for something not a str.
bool AppendUtf8(PyObject* str, std::string* out) {
  if (str == nullptr || !PyUnicode_Check(str)) return false;
#if PY_VERSION_HEX < 0x030C0000
  if (!PyUnicode_IS_READY(str)) return false;
#endif
  const Py_ssize_t n = PyUnicode_GET_LENGTH(str);
  const int kind = PyUnicode_KIND(str);
  const void* data = PyUnicode_DATA(str);
  if (PyUnicode_IS_ASCII(str)) {
    out->append(static_cast<const char*>(data), static_cast<std::size_t>(n));
    return true;
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    const Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (c >> 12)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (c >> 18)));
      out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return true;
}

// The interned id of a frame's file name. REQUIRES: s.lock held.
uint32_t InternFilename(State& s, PyObject* filename) {
  s.scratch.clear();
  if (!AppendUtf8(filename, &s.scratch)) s.scratch = "<unknown>";
  auto it = s.filename_by_object.find(filename);
  if (it != s.filename_by_object.end()) {
    // Confirmed by content: the tables are only read here under the lock.
    if (internal::TablesBuilderAccess::Filename(*s.tables, it->second) == s.scratch) {
      return it->second;
    }
  }
  const uint32_t id = s.tables->InternFilename(internal::NormalizeFilename(s.scratch));
  if (s.filename_by_object.size() < 4096) s.filename_by_object[filename] = id;
  return id;
}

// The interned id of a raw frame, through the frame cache. REQUIRES:
// s.lock held.
uint32_t InternRawFrame(State& s, const leakguard_raw_frame& f) {
  PyObject* name = f.filename;
  if (name == nullptr || !PyUnicode_Check(name)) {
    return s.tables->InternFrame(InternFilename(s, name), f.lineno);
  }
  const Py_hash_t hash = reinterpret_cast<PyASCIIObject*>(name)->hash;
  const Py_ssize_t length = PyUnicode_GET_LENGTH(name);
  if (hash == -1) return s.tables->InternFrame(InternFilename(s, name), f.lineno);
  const std::size_t slot = ((reinterpret_cast<uintptr_t>(name) >> 4) ^
                            (static_cast<uintptr_t>(f.lineno) * 0x9E3779B1U)) &
                           (State::kFrameCacheSize - 1);
  State::FrameCacheEntry& e = s.frame_cache[slot];
  if (e.filename == name && e.hash == hash && e.length == length && e.lineno == f.lineno) {
    return e.frame;
  }
  const uint32_t frame = s.tables->InternFrame(InternFilename(s, name), f.lineno);
  e = State::FrameCacheEntry{name, hash, length, f.lineno, frame};
  return frame;
}

// ------------------------------------------------------------- sampling

// REQUIRES: s.lock held (as for FilterRemove).
void FilterAdd(State& s, const void* p) {
  const std::size_t slot = FilterSlot(p);
  if (g_counts[slot] == 0) {
    g_bits[slot / 64].fetch_or(uint64_t{1} << (slot % 64), std::memory_order_relaxed);
  }
  if (g_counts[slot] != 255) ++g_counts[slot];
  const std::size_t page = slot / kFilterPage;
  if (!s.filter_pages[page]) {
    s.filter_pages[page] = true;
    ++s.filter_pages_touched;
  }
}

void FilterRemove(const void* p) {
  const std::size_t slot = FilterSlot(p);
  if (g_counts[slot] == 0 || g_counts[slot] == 255) return;
  if (--g_counts[slot] == 0) {
    g_bits[slot / 64].fetch_and(~(uint64_t{1} << (slot % 64)), std::memory_order_relaxed);
  }
}

// The interned id + 1 of a native stack. REQUIRES: s.lock held.
uint32_t InternNativeStack(State& s, const uintptr_t* pcs, int n) {
  uint64_t h = 0xcbf29ce484222325ULL ^ static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = (h ^ pcs[i]) * 0x100000001b3ULL;
  for (;; ++h) {  // open addressing over the hash itself, on a collision
    auto [it, inserted] = s.native_by_hash.try_emplace(h, 0);
    if (inserted) {
      s.native_pcs.insert(s.native_pcs.end(), pcs, pcs + n);
      s.native_offsets.push_back(static_cast<uint32_t>(s.native_pcs.size()));
      it->second = static_cast<uint32_t>(s.native_offsets.size() - 1);
      return it->second;
    }
    const uint32_t id = it->second;
    const uint32_t begin = s.native_offsets[id - 1], end = s.native_offsets[id];
    if (end - begin == static_cast<uint32_t>(n) &&
        std::equal(pcs, pcs + n, s.native_pcs.begin() + begin)) {
      return id;
    }
  }
}

// Whether native allocations are recorded now (SamplerOptions::native).
std::atomic<bool> g_native_enabled{false};
// How many native frames a native sample keeps.
std::atomic<int> g_native_frames{32};
void RescanIfObjectsLoaded() noexcept;

// A block of `size` bytes at `p` reached the thread's countdown. A native
// sample (`native_n` >= 0) carries the native stack of the allocation.
void Sample(ThreadState& t, void* p, std::size_t size, const uintptr_t* native_pcs = nullptr,
            int native_n = -1) noexcept {
  State& s = GlobalState();
  if (t.probing) {  // Start() asking whether this hook is in the chain
    t.probe_hit = true;
    t.countdown = 1;
    return;
  }
  const int64_t interval = s.interval.load(std::memory_order_relaxed);
  const uint32_t generation = g_generation.load(std::memory_order_acquire);
  if (t.generation != generation) {
    // First allocation of this thread in this run: seed, then count this
    // block against a fresh distance.
    t.generation = generation;
    t.rng = SplitMix(s.seed.load(std::memory_order_relaxed) +
                     s.thread_seeds.fetch_add(1, std::memory_order_relaxed));
    if (t.rng == 0) t.rng = 1;
    t.countdown = DrawDistance(t, interval) - static_cast<int64_t>(size);
    if (t.countdown > 0) return;
  }
  if (!s.enabled.load(std::memory_order_relaxed)) {
    // Off, with the hooks left in the chain: keep drawing distances, so that
    // the countdown a thread holds when sampling restarts is a fresh
    // exponential one (no bias at restart).
    t.countdown = DrawDistance(t, std::max<int64_t>(interval, kIdleInterval));
    return;
  }
  // The next distance is the thread's countdown once this sample is
  // recorded; until then the countdown is out of reach (the reentrancy
  // guard: an allocation made meanwhile falls through).
  struct NextCountdown {
    ThreadState& t;
    int64_t next;
    ~NextCountdown() { t.countdown = next; }
  } next_countdown{t, DrawDistance(t, interval)};
  t.countdown = kBusyCountdown;
  if (p == nullptr) return;
  double weight = static_cast<double>(size);
  double inclusion = 1;
  if (interval > 1 && size > 0) {
    inclusion = -std::expm1(-static_cast<double>(size) / static_cast<double>(interval));
    weight = static_cast<double>(size) / inclusion;
  }

  const bool native = native_n >= 0;
  if (native) {
    if (!g_native_enabled.load(std::memory_order_relaxed)) return;
    RescanIfObjectsLoaded();
  }

  leakguard_raw_frame frames[256];
  const int max_frames = s.max_frames.load(std::memory_order_relaxed);
  const int n = leakguard_walk_frames(frames, max_frames);

  {
    Locked lock(s);
    if (!s.enabled.load(std::memory_order_relaxed) || s.tables == nullptr) return;
    if (static_cast<int64_t>(s.live.size()) >= s.max_samples) {
      ++s.dropped;
      return;
    }
    uint32_t ids[256];
    int kept = 0;
    for (int i = 0; i < n; ++i) {
      ids[kept++] = InternRawFrame(s, frames[i]);
    }
    if (kept == 0) ids[kept++] = s.unknown_frame;
    const uint32_t stack = s.tables->InternStack(ids, static_cast<std::size_t>(kept));
    auto [it, inserted] = s.live.try_emplace(reinterpret_cast<uintptr_t>(p));
    if (!inserted) {
      s.live_weight -= it->second.weight;  // a free the sampler missed
      if (it->second.native != 0) {
        --s.native_live;
        s.native_weight -= it->second.weight;
      }
    } else {
      FilterAdd(s, p);
    }
    const uint32_t native_stack = native ? InternNativeStack(s, native_pcs, native_n) : 0;
    it->second = LiveSample{size, weight, inclusion, stack, s.epoch, native_stack};
    if (native) {
      ++s.native_live;
      s.native_weight += weight;
    }
    s.live_weight += weight;
    ++s.samples;
  }
}

// A free (or realloc) of `p`, whose filter bit is set.
void Forget(const void* p) noexcept {
  State& s = GlobalState();
  Locked lock(s);
  auto it = s.live.find(reinterpret_cast<uintptr_t>(p));
  if (it == s.live.end()) return;
  s.live_weight -= it->second.weight;
  if (it->second.native != 0) {
    --s.native_live;
    s.native_weight -= it->second.weight;
  }
  s.live.erase(it);
  FilterRemove(p);
  ++s.freed;
}

// (No test for null: its slot is 0, and a lookup of null finds nothing.)
inline bool MaybeSampled(const void* p) {
  const std::size_t slot = FilterSlot(p);
  return (g_bits[slot / 64].load(std::memory_order_relaxed) >> (slot % 64)) & 1;
}

// ------------------------------------------------------------- the hooks

// One per domain, in g_hooks' order RAW, MEM, OBJ. The hooks find theirs by
// index, not through `ctx`: PyMem_SetAllocator copies the five fields while
// threads may be calling PyMem_RawMalloc without the GIL, and such a thread
// can read the new function with the old `ctx` (NULL for the default
// allocator). `prev` is the allocator below (written under the GIL by
// Start(), only when it changed, so a hook running meanwhile reads a value
// that does not move).
// `prev` comes first: a hook below that reads the sampler's `ctx` with its
// own function (the same tearing, the other way round) takes it for the
// allocator below it, which is what `prev` is.
struct Hook {
  PyMemAllocatorEx prev;
  PyMemAllocatorDomain domain;
  bool installed;  // set by Start(), cleared by a Stop() that unhooked
};
Hook g_hooks[3] = {
    {{}, PYMEM_DOMAIN_RAW, false}, {{}, PYMEM_DOMAIN_MEM, false}, {{}, PYMEM_DOMAIN_OBJ, false}};

// pymalloc serves requests up to 512 bytes itself and hands larger ones
// (and reallocs of blocks it does not own) to PyMem_RawMalloc/Realloc,
// which would pass through the RAW hook too and count the bytes twice. So
// the MEM and OBJ hooks put the countdown out of reach around the allocator
// below for those calls only; the common small request is a tail call, as
// are all frees (a second look at an address already forgotten finds
// nothing).
//
// The hooks never throw: what they call is C (the allocator below) or
// noexcept (a sampler out of memory for its own tables terminates rather
// than unwind through CPython's C frames). They are not declared noexcept
// themselves, so that the compiler may turn the call below into a jump.
constexpr std::size_t kPymallocMax = 512;

[[gnu::noinline]] void* SampledMalloc(Hook* h, std::size_t n) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = h->prev.malloc(h->prev.ctx, n);
  Sample(t, p, n);
  return p;
}

[[gnu::noinline]] void* SampledCalloc(Hook* h, std::size_t nelem, std::size_t elsize) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = h->prev.calloc(h->prev.ctx, nelem, elsize);
  Sample(t, p, nelem * elsize);
  return p;
}

[[gnu::noinline]] void* SampledRealloc(Hook* h, void* ptr, std::size_t n) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = h->prev.realloc(h->prev.ctx, ptr, n);
  Sample(t, p, n);
  return p;
}

[[gnu::noinline]] void* BusyMalloc(Hook* h, std::size_t n) noexcept {
  ThreadState& t = t_state;
  const int64_t countdown = t.countdown;
  t.countdown = kBusyCountdown;
  void* p = h->prev.malloc(h->prev.ctx, n);
  t.countdown = countdown;
  return p;
}

[[gnu::noinline]] void* BusyCalloc(Hook* h, std::size_t nelem, std::size_t elsize) noexcept {
  ThreadState& t = t_state;
  const int64_t countdown = t.countdown;
  t.countdown = kBusyCountdown;
  void* p = h->prev.calloc(h->prev.ctx, nelem, elsize);
  t.countdown = countdown;
  return p;
}

[[gnu::noinline]] void* BusyRealloc(Hook* h, void* ptr, std::size_t n) noexcept {
  ThreadState& t = t_state;
  const int64_t countdown = t.countdown;
  t.countdown = kBusyCountdown;
  void* p = h->prev.realloc(h->prev.ctx, ptr, n);
  t.countdown = countdown;
  return p;
}

// Whether the thread's countdown was drawn in an earlier run (only asked by
// the hooks installed after a run with a larger R, see g_generation, and by
// the native hooks). A thread inside the sampler or inside a hook that set
// its countdown out of reach (BusyMalloc, a sample being taken) is never
// stale: the block it is allocating is counted, if at all, by the outer call.
template <bool kCheck>
inline bool Stale(const ThreadState& t) {
  return kCheck && t.generation != g_generation.load(std::memory_order_relaxed) &&
         t.countdown < kBusyCountdown / 2;
}

template <int kIndex, bool kCheck>
void* HookMalloc(void* ctx, std::size_t n) {
  constexpr bool kNests = kIndex != 0;  // MEM and OBJ sit on pymalloc
  Hook* h = &g_hooks[kIndex];
  (void)ctx;
  ThreadState& t = t_state;
  if (Stale<kCheck>(t)) return SampledMalloc(h, n);
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0, 0)) return SampledMalloc(h, n);
  if (kNests && n > kPymallocMax) return BusyMalloc(h, n);
  return h->prev.malloc(h->prev.ctx, n);
}

template <int kIndex, bool kCheck>
void* HookCalloc(void* ctx, std::size_t nelem, std::size_t elsize) {
  constexpr bool kNests = kIndex != 0;  // MEM and OBJ sit on pymalloc
  Hook* h = &g_hooks[kIndex];
  (void)ctx;
  ThreadState& t = t_state;
  std::size_t n = 0;
  if (__builtin_mul_overflow(nelem, elsize, &n)) {
    return h->prev.calloc(h->prev.ctx, nelem, elsize);
  }
  if (Stale<kCheck>(t)) return SampledCalloc(h, nelem, elsize);
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0, 0)) return SampledCalloc(h, nelem, elsize);
  if (kNests && n > kPymallocMax) return BusyCalloc(h, nelem, elsize);
  return h->prev.calloc(h->prev.ctx, nelem, elsize);
}

template <int kIndex, bool kCheck>
void* HookRealloc(void* ctx, void* ptr, std::size_t n) {
  constexpr bool kNests = kIndex != 0;  // MEM and OBJ sit on pymalloc
  Hook* h = &g_hooks[kIndex];
  (void)ctx;
  ThreadState& t = t_state;
  if (MaybeSampled(ptr)) Forget(ptr);
  if (Stale<kCheck>(t)) return SampledRealloc(h, ptr, n);
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0, 0)) return SampledRealloc(h, ptr, n);
  if (kNests) return BusyRealloc(h, ptr, n);
  return h->prev.realloc(h->prev.ctx, ptr, n);
}

[[gnu::noinline]] void ForgetAndFree(Hook* h, void* ptr) noexcept {
  if (!t_state.inside) Forget(ptr);
  h->prev.free(h->prev.ctx, ptr);
}

template <int kIndex>
void HookFree(void* ctx, void* ptr) {
  Hook* h = &g_hooks[kIndex];
  (void)ctx;
  if (MaybeSampled(ptr)) return ForgetAndFree(h, ptr);
  h->prev.free(h->prev.ctx, ptr);
}

template <int kIndex, bool kCheck>
PyMemAllocatorEx HooksOf() {
  return {&g_hooks[kIndex], HookMalloc<kIndex, kCheck>, HookCalloc<kIndex, kCheck>,
          HookRealloc<kIndex, kCheck>, HookFree<kIndex>};
}

PyMemAllocatorEx HooksFor(const Hook& h, bool check) {
  switch (&h - g_hooks) {
    case 0:
      return check ? HooksOf<0, true>() : HooksOf<0, false>();
    case 1:
      return check ? HooksOf<1, true>() : HooksOf<1, false>();
    default:
      return check ? HooksOf<2, true>() : HooksOf<2, false>();
  }
}

bool IsOurs(const PyMemAllocatorEx& a, const Hook& h) {
  return a.ctx == &h && a.free == HooksFor(h, false).free;
}

// Whether an allocation through `h`'s domain passes through the sampler's
// hook (it may sit under another hook). Needs the GIL for the MEM and OBJ
// domains, none for RAW (PyMem_Raw* is thread-safe): callers use
// HookInChain() or RawHookInChain().
bool ProbeChain(Hook& h) {
  ThreadState& t = t_state;
  const ThreadState saved = t;
  t.probing = true;
  t.probe_hit = false;
  t.countdown = 0;
  void* p = nullptr;
  switch (h.domain) {
    case PYMEM_DOMAIN_RAW:
      p = PyMem_RawMalloc(1);
      PyMem_RawFree(p);
      break;
    case PYMEM_DOMAIN_MEM:
      p = PyMem_Malloc(1);
      PyMem_Free(p);
      break;
    case PYMEM_DOMAIN_OBJ:
      p = PyObject_Malloc(1);
      PyObject_Free(p);
      break;
  }
  const bool hit = t.probe_hit;
  t = saved;
  return hit;
}

// ProbeChain() for any domain. REQUIRES: the GIL.
bool HookInChain(Hook& h) LEAKGUARD_REQUIRES_GIL { return ProbeChain(h); }

// Puts the hooks in the chain where they are not (the generation-checking
// kind when `check`; a plain one already on top is swapped for it). A hook
// under another one stays as it is. REQUIRES: the GIL.
void InstallHooks(bool check) LEAKGUARD_REQUIRES_GIL {
  for (Hook& h : g_hooks) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(h.domain, &current);
    if (IsOurs(current, h)) {
      PyMemAllocatorEx ours = HooksFor(h, check);
      if (current.malloc != ours.malloc) PyMem_SetAllocator(h.domain, &ours);
      continue;
    }
    if (h.installed && HookInChain(h)) continue;  // under another hook
    if (std::memcmp(&current, &h.prev, sizeof current) != 0) h.prev = current;
    PyMemAllocatorEx ours = HooksFor(h, check);
    PyMem_SetAllocator(h.domain, &ours);
    h.installed = true;
  }
}

// Takes the hooks out where they are the top of the chain; elsewhere they
// stay as a pass-through. REQUIRES: the GIL.
void RemoveHooks() LEAKGUARD_REQUIRES_GIL {
  for (Hook& h : g_hooks) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(h.domain, &current);
    if (!IsOurs(current, h)) continue;
    PyMem_SetAllocator(h.domain, &h.prev);
    h.installed = false;
  }
}

// Whether the RAW hook still runs (read without the GIL: only PyMem_Raw*).
bool RawHookInChain() {
  PyMemAllocatorEx current;
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &current);
  if (IsOurs(current, g_hooks[0])) return true;
  return g_hooks[0].installed && ProbeChain(g_hooks[0]);
}

// ------------------------------------------------------- the native hooks

// The allocator the hooked objects called before (looked up in the global
// scope, so a preloaded jemalloc or tcmalloc, or a sanitizer's allocator,
// is the one called), and the loader functions the hooks wrap. Resolved
// once, by the first Start() with SamplerOptions::native.
struct NativeFunctions {
  void* (*malloc)(std::size_t);
  void* (*calloc)(std::size_t, std::size_t);
  void* (*realloc)(void*, std::size_t);
  void (*free)(void*);
  int (*posix_memalign)(void**, std::size_t, std::size_t);
  void* (*aligned_alloc)(std::size_t, std::size_t);
  void* (*memalign)(std::size_t, std::size_t);
  void* (*valloc)(std::size_t);
  void* (*pvalloc)(std::size_t);
  void* (*mmap)(void*, std::size_t, int, int, int, off_t);
  int (*munmap)(void*, std::size_t);
  void* (*dlopen)(const char*, int);
  void* (*dlsym)(void*, const char*);
};
NativeFunctions g_real;

// The native hooks and the function that reads the native stack sit in a
// section of their own, so that the stack's first frames (the hook's own)
// are recognized by address and dropped, whatever was inlined or turned
// into a jump.
#define LEAKGUARD_NATIVE_HOOK [[gnu::section("leakguard_native_hooks"), gnu::used]]
extern "C" const char __start_leakguard_native_hooks[];  // NOLINT: the linker's names
extern "C" const char __stop_leakguard_native_hooks[];   // NOLINT

inline bool InHookSection(uintptr_t pc) {
  return pc >= reinterpret_cast<uintptr_t>(__start_leakguard_native_hooks) &&
         pc < reinterpret_cast<uintptr_t>(__stop_leakguard_native_hooks);
}

// Records the block `p` of `size` bytes as a native sample: reads the
// native stack (libunwind), drops the hooks' frames, and hands it to
// Sample(). The countdown is already out of reach.
LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void SampleNative(ThreadState& t, void* p,
                                                          std::size_t size) noexcept {
  constexpr int kMax = 128;
  void* raw[kMax + 8];
  const int want = std::min(kMax, g_native_frames.load(std::memory_order_relaxed)) + 8;
  const int got = p == nullptr ? 0 : unw_backtrace(raw, want);
  uintptr_t pcs[kMax];
  int n = 0;
  int i = 0;
  while (i < got && InHookSection(reinterpret_cast<uintptr_t>(raw[i]))) ++i;
  for (; i < got && n < want - 8; ++i) pcs[n++] = reinterpret_cast<uintptr_t>(raw[i]);
  Sample(t, p, size, pcs, n);
}

// The native hooks always ask whether a countdown is stale: they run for
// all the process's memory, and a countdown left from an earlier, sparser
// run would hide this one's first samples.
inline bool NativeStale(const ThreadState& t) { return Stale<true>(t); }

LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void* NativeSampledMalloc(std::size_t n) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = g_real.malloc(n);
  SampleNative(t, p, n);
  return p;
}

LEAKGUARD_NATIVE_HOOK void* NativeMalloc(std::size_t n) {
  ThreadState& t = t_state;
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0 || NativeStale(t), 0)) return NativeSampledMalloc(n);
  return g_real.malloc(n);
}

LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void* NativeSampledCalloc(std::size_t nelem,
                                                                  std::size_t elsize) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = g_real.calloc(nelem, elsize);
  SampleNative(t, p, nelem * elsize);
  return p;
}

LEAKGUARD_NATIVE_HOOK void* NativeCalloc(std::size_t nelem, std::size_t elsize) {
  ThreadState& t = t_state;
  std::size_t n = 0;
  if (__builtin_mul_overflow(nelem, elsize, &n)) return g_real.calloc(nelem, elsize);
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0 || NativeStale(t), 0)) {
    return NativeSampledCalloc(nelem, elsize);
  }
  return g_real.calloc(nelem, elsize);
}

LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void NativeForget(void* p) noexcept {
  if (!t_state.inside) Forget(p);
}

LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void* NativeSampledRealloc(void* ptr,
                                                                   std::size_t n) noexcept {
  ThreadState& t = t_state;
  t.countdown = kBusyCountdown;
  void* p = g_real.realloc(ptr, n);
  SampleNative(t, p, n);
  return p;
}

LEAKGUARD_NATIVE_HOOK void* NativeRealloc(void* ptr, std::size_t n) {
  ThreadState& t = t_state;
  if (MaybeSampled(ptr)) NativeForget(ptr);
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown <= 0 || NativeStale(t), 0)) {
    return NativeSampledRealloc(ptr, n);
  }
  return g_real.realloc(ptr, n);
}

LEAKGUARD_NATIVE_HOOK [[gnu::noinline]] void NativeForgetAndFree(void* p) noexcept {
  NativeForget(p);
  g_real.free(p);
}

LEAKGUARD_NATIVE_HOOK void NativeFree(void* p) {
  if (MaybeSampled(p)) return NativeForgetAndFree(p);
  g_real.free(p);
}

// The aligned allocators: rarer, so one shape for all (the sampled path
// calls `alloc` again with the countdown out of reach).
template <typename Alloc>
LEAKGUARD_NATIVE_HOOK inline void* NativeAligned(std::size_t n, Alloc alloc) {
  ThreadState& t = t_state;
  t.countdown -= static_cast<int64_t>(n);
  if (__builtin_expect(t.countdown > 0 && !NativeStale(t), 1)) return alloc();
  t.countdown = kBusyCountdown;
  void* p = alloc();
  SampleNative(t, p, n);
  return p;
}

LEAKGUARD_NATIVE_HOOK int NativePosixMemalign(void** out, std::size_t align, std::size_t n) {
  int rc = 0;
  void* p = NativeAligned(n, [&]() -> void* {
    rc = g_real.posix_memalign(out, align, n);
    return rc == 0 ? *out : nullptr;
  });
  (void)p;
  return rc;
}

LEAKGUARD_NATIVE_HOOK void* NativeAlignedAlloc(std::size_t align, std::size_t n) {
  return NativeAligned(n, [&] { return g_real.aligned_alloc(align, n); });
}

LEAKGUARD_NATIVE_HOOK void* NativeMemalign(std::size_t align, std::size_t n) {
  return NativeAligned(n, [&] { return g_real.memalign(align, n); });
}

LEAKGUARD_NATIVE_HOOK void* NativeValloc(std::size_t n) {
  return NativeAligned(n, [&] { return g_real.valloc(n); });
}

LEAKGUARD_NATIVE_HOOK void* NativePvalloc(std::size_t n) {
  return NativeAligned(n, [&] { return g_real.pvalloc(n); });
}

// Anonymous mappings only: a file mapping is not heap.
LEAKGUARD_NATIVE_HOOK void* NativeMmap(void* addr, std::size_t len, int prot, int flags, int fd,
                                       off_t off) {
  if ((flags & MAP_ANONYMOUS) == 0) return g_real.mmap(addr, len, prot, flags, fd, off);
  return NativeAligned(len, [&]() -> void* {
    void* p = g_real.mmap(addr, len, prot, flags, fd, off);
    return p;
  });
}

LEAKGUARD_NATIVE_HOOK int NativeMunmap(void* addr, std::size_t len) {
  if (MaybeSampled(addr)) NativeForget(addr);
  return g_real.munmap(addr, len);
}

// What the hooks are patched into, and which objects are left alone.
// Guarded by NativeScopeLock().
std::mutex& NativeScopeLock() {
  static auto* lock = new std::mutex;  // never freed: a dlopen hook may run late
  return *lock;
}
internal::GotScope& NativeScope() {
  static auto* scope = new internal::GotScope;
  return *scope;
}
// The load bias of the object holding libpython (the main program when
// the interpreter is linked in), whose allocations the Python hooks see.
std::atomic<uintptr_t> g_libpython_base{~uintptr_t{0}};
// Its start address (Dl_info::dli_fbase), for naming frames.
std::atomic<uintptr_t> g_libpython_fbase{0};

bool IsExtensionModule(const std::string& path) {
  return path.find(".cpython-") != std::string::npos ||
         path.find(".abi3.so") != std::string::npos ||
         path.find("/lib-dynload/") != std::string::npos;
}

// libpython's own allocations go through PyMem_RawMalloc, which the RAW
// hook samples: patching its malloc too would count them twice.
bool NotLibpython(const internal::GotObject& o) {
  return o.base != g_libpython_base.load(std::memory_order_relaxed);
}

// dlopen and dlsym look at their caller (its RUNPATH, its namespace,
// RTLD_NEXT), which a wrapper hides: they are wrapped only in libpython and
// in extension modules without a RUNPATH, where Python's imports and ctypes
// call them with what needs no caller.
bool PythonLoader(const internal::GotObject& o) {
  if (o.has_runpath) return false;
  return !NotLibpython(o) || IsExtensionModule(o.path);
}

void* NativeDlopen(const char* file, int flags);
void* NativeDlsym(void* handle, const char* name);
void* NativeDlsymAnswer(void* f);

// libffi's ffi_call, through which ctypes calls a C function by its
// address: a malloc looked up before tracking started (a module-level
// `libc.malloc`) is still called through it. Found in the libffi loaded
// by the process (ctypes loads it as its own dependency, out of the global
// scope), once it is. Guarded by NativeScopeLock() for writing.
using FfiCall = void (*)(void*, void (*)(), void*, void**);
std::atomic<FfiCall> g_ffi_call{nullptr};
void NativeFfiCall(void* cif, void (*fn)(), void* rvalue, void** avalue);

// Unlike dlopen, ffi_call does not look at its caller: it is wrapped in
// libpython and every extension module, with a RUNPATH or not (a CPython
// built with an rpath gives one to each).
bool FfiCaller(const internal::GotObject& o) {
  return g_ffi_call.load(std::memory_order_relaxed) != nullptr &&
         (!NotLibpython(o) || IsExtensionModule(o.path));
}

int FindLibffi(dl_phdr_info* info, std::size_t, void* data) {
  if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, "/libffi.so") != nullptr) {
    *static_cast<std::string*>(data) = info->dlpi_name;
    return 1;
  }
  return 0;
}

// REQUIRES: NativeScopeLock() held, Quiet.
void ResolveFfiCall() {
  if (g_ffi_call.load(std::memory_order_relaxed) != nullptr) return;
  std::string path;
  dl_iterate_phdr(FindLibffi, &path);
  if (path.empty()) return;
  void* handle = g_real.dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  if (handle == nullptr) return;
  g_ffi_call.store(reinterpret_cast<FfiCall>(g_real.dlsym(handle, "ffi_call")),
                   std::memory_order_release);
  dlclose(handle);
}

const std::vector<internal::GotReplacement>& NativeReplacements() {
  static const auto* list = new std::vector<internal::GotReplacement>{
      {"malloc", reinterpret_cast<void*>(&NativeMalloc), NotLibpython},
      {"calloc", reinterpret_cast<void*>(&NativeCalloc), NotLibpython},
      {"realloc", reinterpret_cast<void*>(&NativeRealloc), NotLibpython},
      {"free", reinterpret_cast<void*>(&NativeFree), NotLibpython},
      {"posix_memalign", reinterpret_cast<void*>(&NativePosixMemalign), NotLibpython},
      {"aligned_alloc", reinterpret_cast<void*>(&NativeAlignedAlloc), NotLibpython},
      {"memalign", reinterpret_cast<void*>(&NativeMemalign), NotLibpython},
      {"valloc", reinterpret_cast<void*>(&NativeValloc), NotLibpython},
      {"pvalloc", reinterpret_cast<void*>(&NativePvalloc), NotLibpython},
      {"mmap", reinterpret_cast<void*>(&NativeMmap), NotLibpython},
      {"mmap64", reinterpret_cast<void*>(&NativeMmap), NotLibpython},
      {"munmap", reinterpret_cast<void*>(&NativeMunmap), NotLibpython},
      {"dlopen", reinterpret_cast<void*>(&NativeDlopen), PythonLoader},
      {"dlsym", reinterpret_cast<void*>(&NativeDlsym), PythonLoader},
      {"ffi_call", reinterpret_cast<void*>(&NativeFfiCall), FfiCaller},
  };
  return *list;
}

// Patches every loaded object in scope not patched yet. Quiet: the
// patcher's own allocations go through hooks it may already have placed.
uint64_t g_patched_generation = 0;  // guarded by NativeScopeLock()
int PatchNative() noexcept {
  Quiet quiet;
  std::lock_guard<std::mutex> lock(NativeScopeLock());
  g_patched_generation = internal::LoadedObjectGeneration();
  ResolveFfiCall();
  return internal::PatchGot(NativeReplacements(), NativeScope());
}

// Called on the sampled path: objects loaded since the last scan (by a
// caller whose dlopen is not wrapped) are patched; at most once per
// millisecond of the thread's time, as a dl_iterate_phdr costs a lock.
void RescanIfObjectsLoaded() noexcept {
  thread_local int64_t last_ns __attribute__((tls_model("initial-exec"))) = 0;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  const int64_t ns = now.tv_sec * 1000000000LL + now.tv_nsec;
  if (ns - last_ns < 1000000) return;
  last_ns = ns;
  Quiet quiet;
  uint64_t patched = 0;
  {
    std::lock_guard<std::mutex> lock(NativeScopeLock());
    patched = g_patched_generation;
  }
  if (internal::LoadedObjectGeneration() != patched) PatchNative();
}

void* NativeDlopen(const char* file, int flags) {
  void* handle = g_real.dlopen(file, flags);
  if (handle != nullptr && g_native_enabled.load(std::memory_order_acquire)) PatchNative();
  return handle;
}

// The real allocator's functions, looked up by a wrapped dlsym (ctypes'
// CDLL(None).malloc), are answered with the hooks while native tracking
// runs.
void* NativeDlsym(void* handle, const char* name) {
  void* f = g_real.dlsym(handle, name);
  if (f == nullptr || !g_native_enabled.load(std::memory_order_acquire)) return f;
  return NativeDlsymAnswer(f);
}

// The hook standing for the allocator function `f`, or `f`.
// The allocator functions a dlsym or an ffi_call may name, and their hooks:
// filled once by ResolveNative(), before any hook is installed, and only
// read after.
constexpr int kAnsweredFunctions = 7;
std::pair<void*, void*> g_hook_of[kAnsweredFunctions];

void* NativeDlsymAnswer(void* f) {
  for (const auto& [real, hook] : g_hook_of) {
    if (f == real) return hook;
  }
  return f;
}

void NativeFfiCall(void* cif, void (*fn)(), void* rvalue, void** avalue) {
  const FfiCall real = g_ffi_call.load(std::memory_order_acquire);
  if (g_native_enabled.load(std::memory_order_relaxed)) {
    void* target = reinterpret_cast<void*>(fn);
    void* hook = NativeDlsymAnswer(target);
    if (hook != target) fn = reinterpret_cast<void (*)()>(hook);
  }
  real(cif, fn, rvalue, avalue);
}

// Resolves g_real once. REQUIRES: called with the GIL (Start()).
absl::Status ResolveNative() LEAKGUARD_REQUIRES_GIL {
  static bool resolved = false;
  if (resolved) return absl::OkStatus();
  Quiet quiet;
  auto get = [](const char* name, auto* out) {
    *out = reinterpret_cast<std::remove_pointer_t<decltype(out)>>(dlsym(RTLD_DEFAULT, name));
    return *out != nullptr;
  };
  NativeFunctions f{};
  const bool ok = get("malloc", &f.malloc) && get("calloc", &f.calloc) &&
                  get("realloc", &f.realloc) && get("free", &f.free) &&
                  get("posix_memalign", &f.posix_memalign) &&
                  get("aligned_alloc", &f.aligned_alloc) && get("memalign", &f.memalign) &&
                  get("valloc", &f.valloc) && get("pvalloc", &f.pvalloc) && get("mmap", &f.mmap) &&
                  get("munmap", &f.munmap) && get("dlopen", &f.dlopen) && get("dlsym", &f.dlsym);
  if (!ok) {
    return absl::UnimplementedError(
        "AllocationSampler: native tracking needs malloc, calloc, realloc, free, "
        "posix_memalign, aligned_alloc, memalign, valloc, pvalloc, mmap, munmap, dlopen and "
        "dlsym from the process's global scope, and one of them was not found");
  }
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(&PyMem_RawMalloc), &info, reinterpret_cast<void**>(&map),
              RTLD_DL_LINKMAP) != 0 &&
      map != nullptr) {
    g_libpython_base.store(map->l_addr, std::memory_order_relaxed);
  }
  g_real = f;
  const std::pair<void*, void*> hook_of[kAnsweredFunctions] = {
      {reinterpret_cast<void*>(f.malloc), reinterpret_cast<void*>(&NativeMalloc)},
      {reinterpret_cast<void*>(f.calloc), reinterpret_cast<void*>(&NativeCalloc)},
      {reinterpret_cast<void*>(f.realloc), reinterpret_cast<void*>(&NativeRealloc)},
      {reinterpret_cast<void*>(f.free), reinterpret_cast<void*>(&NativeFree)},
      {reinterpret_cast<void*>(f.posix_memalign), reinterpret_cast<void*>(&NativePosixMemalign)},
      {reinterpret_cast<void*>(f.aligned_alloc), reinterpret_cast<void*>(&NativeAlignedAlloc)},
      {reinterpret_cast<void*>(f.memalign), reinterpret_cast<void*>(&NativeMemalign)},
  };
  std::copy(std::begin(hook_of), std::end(hook_of), std::begin(g_hook_of));
  resolved = true;
  return absl::OkStatus();
}

// Keeps the state consistent across fork(): the locks are held while the
// process forks, so the child's copy is never caught half-written; the
// child goes on sampling (its hooks and tables are copies of the parent's).
thread_local ThreadState t_fork_saved __attribute__((tls_model("initial-exec")));
void ForkPrepare() {
  t_fork_saved = t_state;
  t_state.inside = true;
  t_state.countdown = kBusyCountdown;
  NativeScopeLock().lock();
  GlobalState().lock.lock();
}
void ForkParent() {
  GlobalState().lock.unlock();
  NativeScopeLock().unlock();
  t_state.inside = t_fork_saved.inside;
  t_state.countdown = t_fork_saved.countdown;
}
// The child's only thread is the one that forked, which holds both locks.
void ForkChild() { ForkParent(); }

// ------------------------------------------------------------- readers

}  // namespace

namespace internal {
// Reads the builder's tables (sampler only).
const std::string& TablesBuilderAccess::Filename(const TablesBuilder& b, uint32_t id) {
  return b.tables_.filenames[id];
}
const SnapshotTables& TablesBuilderAccess::Tables(const TablesBuilder& b) { return b.tables_; }
}  // namespace internal

double SiteEstimate::low() const { return std::max(0.0, bytes - 1.96 * stderr_bytes); }
double SiteEstimate::high() const { return bytes + 1.96 * stderr_bytes; }

absl::StatusOr<std::unique_ptr<AllocationSampler>> AllocationSampler::Create(
    SamplerOptions options) {
  if (options.sampling_interval < 1 || options.sampling_interval > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SamplerOptions.sampling_interval must be 1 to 1 GiB bytes, got ",
                     options.sampling_interval));
  }
  if (options.max_frames < 1 || options.max_frames > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("SamplerOptions.max_frames must be 1 to 256, got ", options.max_frames));
  }
  if (options.max_samples < 1 || options.max_samples > (int64_t{1} << 26)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SamplerOptions.max_samples must be 1 to 2^26, got ", options.max_samples));
  }
  if (options.max_native_frames < 1 || options.max_native_frames > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SamplerOptions.max_native_frames must be 1 to 128, got ", options.max_native_frames));
  }
#if !defined(__x86_64__) && !defined(__aarch64__)
  if (options.native) {
    return absl::UnimplementedError(
        "SamplerOptions.native: native tracking patches x86-64 and AArch64 relocations only");
  }
#endif
  return std::unique_ptr<AllocationSampler>(new AllocationSampler(std::move(options)));
}

AllocationSampler::AllocationSampler(SamplerOptions options) : options_(std::move(options)) {}

AllocationSampler::~AllocationSampler() { Stop(); }

void AllocationSampler::StopBeforeFinalize() noexcept { Stop(); }

absl::Status AllocationSampler::Start() {
  if (absl::Status gil = CheckGil(); !gil.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("AllocationSampler::Start: ", gil.message()));
  }
  internal::AssumeGilHeld();
  State& s = GlobalState();
  {
    Locked lock(s);
    if (s.owner == this) return absl::OkStatus();
    if (s.owner != nullptr) {
      return absl::FailedPreconditionError(
          "AllocationSampler::Start: another sampler is running in this process (the "
          "allocator hooks are process-wide); stop it first");
    }
  }
  if (options_.native) {
    if (absl::Status resolved = ResolveNative(); !resolved.ok()) return resolved;
  }
  if (absl::Status registered = Interpreter::RegisterWatcher(this); !registered.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("AllocationSampler::Start: ", registered.message()));
  }
  uint64_t seed = options_.seed;
  if (seed == 0)
    seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  {
    Locked lock(s);
    s.owner = this;
    s.max_samples = options_.max_samples;
    s.exact = options_.sampling_interval == 1;
    s.live.clear();
    s.filename_by_object.clear();
    std::fill(s.frame_cache.begin(), s.frame_cache.end(), State::FrameCacheEntry{});
    s.tables = std::make_unique<internal::TablesBuilder>();
    s.unknown_frame = s.tables->InternFrame(s.tables->InternFilename("<unknown>"), 0);
    s.epoch = 0;
    s.samples = s.freed = s.dropped = 0;
    s.live_weight = 0;
    s.native_pcs.clear();
    s.native_offsets.assign(1, 0);
    s.native_by_hash.clear();
    s.native_live = 0;
    s.native_weight = 0;
    s.interval.store(options_.sampling_interval, std::memory_order_relaxed);
    s.max_frames.store(options_.max_frames, std::memory_order_relaxed);
    s.seed.store(seed, std::memory_order_relaxed);
    s.thread_seeds.store(0, std::memory_order_relaxed);
    g_generation.fetch_add(1, std::memory_order_release);
  }
  // Countdowns left by a run with a larger R would hold this run's first
  // samples back: then every call compares generations (see g_generation).
  static int64_t largest_interval LEAKGUARD_GUARDED_BY_GIL = 0;
  InstallHooks(options_.sampling_interval < largest_interval);
  largest_interval = std::max(largest_interval, options_.sampling_interval);
  s.enabled.store(true, std::memory_order_release);
  if (options_.native) {
    static bool fork_handlers LEAKGUARD_GUARDED_BY_GIL = false;
    if (!fork_handlers) {
      pthread_atfork(ForkPrepare, ForkParent, ForkChild);
      fork_handlers = true;
    }
    g_libpython_fbase.store(0, std::memory_order_relaxed);
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&PyMem_RawMalloc), &info) != 0) {
      g_libpython_fbase.store(reinterpret_cast<uintptr_t>(info.dli_fbase),
                              std::memory_order_relaxed);
    }
    {
      Quiet quiet;
      std::lock_guard<std::mutex> lock(NativeScopeLock());
      // An allocator's own mappings are the memory its malloc hands out,
      // counted there: a preloaded jemalloc, tcmalloc or mimalloc is left
      // alone.
      NativeScope().exclude = options_.native_exclude;
      for (const char* allocator : {"/libjemalloc.so", "/libtcmalloc", "/libmimalloc.so"}) {
        NativeScope().exclude.push_back(allocator);
      }
    }
    g_native_frames.store(options_.max_native_frames, std::memory_order_relaxed);
    g_native_enabled.store(true, std::memory_order_release);
    PatchNative();
  }
  return absl::OkStatus();
}

void AllocationSampler::Stop() {
  State& s = GlobalState();
  {
    Locked lock(s);
    if (s.owner != this) return;
  }
  s.enabled.store(false, std::memory_order_release);
  if (g_native_enabled.exchange(false, std::memory_order_acq_rel)) {
    Quiet quiet;
    std::lock_guard<std::mutex> lock(NativeScopeLock());
    internal::RestoreGot(NativeReplacements());
  }
  {
    GilAcquire gil;
    if (gil.ok()) {
      internal::AssumeGilHeld();
      RemoveHooks();
    }
  }
  {
    Locked lock(s);
    // Every sample goes: clear the filter pages this run touched (sticky
    // slots included), leaving the untouched ones unmapped.
    for (std::size_t page = 0; page < s.filter_pages.size(); ++page) {
      if (!s.filter_pages[page]) continue;
      std::memset(g_counts + page * kFilterPage, 0, kFilterPage);
      for (std::size_t w = page * kFilterPage / 64; w < (page + 1) * kFilterPage / 64; ++w) {
        g_bits[w].store(0, std::memory_order_relaxed);
      }
    }
    s.live.clear();
    absl::flat_hash_map<uintptr_t, LiveSample>().swap(s.live);
    s.filename_by_object.clear();
    s.tables.reset();
    s.live_weight = 0;
    std::vector<uintptr_t>().swap(s.native_pcs);
    s.native_offsets.assign(1, 0);
    absl::flat_hash_map<uint64_t, uint32_t>().swap(s.native_by_hash);
    s.native_live = 0;
    s.native_weight = 0;
    s.owner = nullptr;
  }
  Interpreter::UnregisterWatcher(this);
}

bool AllocationSampler::running() const {
  State& s = GlobalState();
  Locked lock(s);
  return s.owner == this;
}

SamplerStats AllocationSampler::Stats() const {
  State& s = GlobalState();
  SamplerStats stats;
  stats.sampling_interval = options_.sampling_interval;
  const bool running = this->running();
  stats.hooked = running && RawHookInChain();
  if (running && options_.native && g_native_enabled.load(std::memory_order_acquire)) {
    for (const NativeHookSlot& slot : ListNativeHookSlots())
      stats.native_hooked_slots += slot.hooked;
  }
  Locked lock(s);
  if (s.owner != this) return stats;
  stats.running = true;
  stats.live_samples = static_cast<int64_t>(s.live.size());
  stats.samples = s.samples;
  stats.freed = s.freed;
  stats.dropped = s.dropped;
  stats.live_bytes_estimate = std::llround(std::max(0.0, s.live_weight));
  stats.native_live_samples = s.native_live;
  stats.native_bytes_estimate = std::llround(std::max(0.0, s.native_weight));
  const internal::SnapshotTables& t = internal::TablesBuilderAccess::Tables(*s.tables);
  stats.stacks = t.stack_count();
  int64_t bytes =
      static_cast<int64_t>(s.live.capacity() * (sizeof(std::pair<uintptr_t, LiveSample>) + 1));
  for (const std::string& f : t.filenames) {
    bytes += static_cast<int64_t>(f.capacity() + sizeof(std::string));
  }
  bytes += static_cast<int64_t>(t.frames.capacity() * sizeof(internal::SnapshotFrame) +
                                t.stack_offsets.capacity() * 4 + t.stack_frames.capacity() * 4);
  // The builder's interning maps hold about as much again as its tables.
  bytes += static_cast<int64_t>(t.frames.size() * 24 + std::size_t{t.stack_count()} * 8 +
                                s.filename_by_object.capacity() * 17);
  bytes += static_cast<int64_t>(s.frame_cache.size() * sizeof(State::FrameCacheEntry));
  // Each touched page of counts has an eighth of a page of bits beside it.
  bytes += s.filter_pages_touched * static_cast<int64_t>(kFilterPage + kFilterPage / 8);
  bytes += static_cast<int64_t>(s.native_pcs.capacity() * sizeof(uintptr_t) +
                                s.native_offsets.capacity() * 4 + s.native_by_hash.capacity() * 13);
  stats.table_bytes = bytes;
  return stats;
}

namespace {

// What the readers work from: a copy of the live samples and of the tables
// they refer to, taken under the lock, so that the slow part (grouping,
// naming native frames, which takes the loader's lock) runs without it.
struct LiveCopy {
  internal::SnapshotTables tables;
  std::vector<LiveSample> samples;
  std::vector<uintptr_t> native_pcs;
  std::vector<uint32_t> native_offsets;
};

// REQUIRES: s.lock held, s.tables set.
LiveCopy CopyLocked(const State& s) {
  LiveCopy copy;
  copy.tables = internal::TablesBuilderAccess::Tables(*s.tables);
  copy.samples.reserve(s.live.size());
  for (const auto& [address, sample] : s.live) copy.samples.push_back(sample);
  if (s.native_live > 0) {
    copy.native_pcs = s.native_pcs;
    copy.native_offsets = s.native_offsets;
  }
  return copy;
}

// A native frame's names.
struct NativeFrameName {
  std::string library;       // the object's file name
  std::string function;      // demangled, or "+0x<offset>"
  bool transparent = false;  // the allocator's own libraries
  bool interpreter = false;  // libpython
};

bool IsTransparentLibrary(const std::string& base) {
  for (const char* prefix :
       {"libc.so", "libc-", "libstdc++", "libgcc_s", "libffi", "ld-linux", "libm.so", "libpthread",
        "libunwind", "libleakguard", "libjemalloc", "libtcmalloc", "libclang_rt"}) {
    if (base.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// The functions of an object's own symbol table (.symtab: static
// functions too, which dladdr's dynamic table does not hold), read from its
// file once, sorted by address. Empty for a stripped file.
struct FileSymbols {
  struct Entry {
    uint64_t begin, end;
    uint32_t name;  // offset in `names`
  };
  std::vector<Entry> entries;
  std::string names;

  // The function whose link-time range holds `offset`, or null.
  const char* Find(uint64_t offset) const {
    auto it = std::upper_bound(entries.begin(), entries.end(), offset,
                               [](uint64_t o, const Entry& e) { return o < e.begin; });
    if (it == entries.begin()) return nullptr;
    --it;
    return offset < it->end ? names.c_str() + it->name : nullptr;
  }
};

FileSymbols ReadFileSymbols(const std::string& path) {
  FileSymbols out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < sizeof(ElfW(Ehdr)) || std::memcmp(data.data(), ELFMAG, SELFMAG) != 0 ||
      data[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32)) {
    return out;
  }
  ElfW(Ehdr) eh;
  std::memcpy(&eh, data.data(), sizeof eh);
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(ElfW(Shdr)) ||
      eh.e_shoff + std::size_t{eh.e_shnum} * sizeof(ElfW(Shdr)) > data.size()) {
    return out;
  }
  std::vector<ElfW(Shdr)> sections(eh.e_shnum);
  std::memcpy(sections.data(), data.data() + eh.e_shoff, sections.size() * sizeof(ElfW(Shdr)));
  for (const ElfW(Shdr) & sh : sections) {
    if (sh.sh_type != SHT_SYMTAB || sh.sh_link >= sections.size()) continue;
    const ElfW(Shdr)& str = sections[sh.sh_link];
    if (sh.sh_offset + sh.sh_size > data.size() || str.sh_offset + str.sh_size > data.size()) {
      continue;
    }
    const std::size_t n = sh.sh_size / sizeof(ElfW(Sym));
    for (std::size_t i = 0; i < n; ++i) {
      ElfW(Sym) sym;
      std::memcpy(&sym, data.data() + sh.sh_offset + i * sizeof(ElfW(Sym)), sizeof sym);
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0 ||
          sym.st_name >= str.sh_size) {
        continue;
      }
      const char* name = data.data() + str.sh_offset + sym.st_name;
      const std::size_t len = strnlen(name, str.sh_size - sym.st_name);
      out.entries.push_back({sym.st_value, sym.st_value + std::max<uint64_t>(sym.st_size, 1),
                             static_cast<uint32_t>(out.names.size())});
      out.names.append(name, len);
      out.names.push_back('\0');
    }
  }
  std::sort(
      out.entries.begin(), out.entries.end(),
      [](const FileSymbols::Entry& a, const FileSymbols::Entry& b) { return a.begin < b.begin; });
  return out;
}

// The static function at `pc` in the object `map` (its file's .symtab).
// REQUIRES: the symbolizer's lock held (the cache is its).
const char* StaticFunctionAt(uintptr_t pc, const link_map* map) {
  static auto* files = new absl::node_hash_map<std::string, FileSymbols>;
  std::string path = map->l_name != nullptr ? map->l_name : "";
  if (path.empty()) path = "/proc/self/exe";
  auto it = files->find(path);
  if (it == files->end()) it = files->emplace(path, ReadFileSymbols(path)).first;
  return it->second.Find(pc - map->l_addr);
}

// Names the code at `pc` (a return address: the call is one byte before),
// through the loader's tables (dladdr), once per address.
const NativeFrameName& Symbolize(uintptr_t pc) {
  static std::mutex* lock = new std::mutex;
  // Node-based: the names handed out stay where they are as the cache grows.
  static auto* cache = new absl::node_hash_map<uintptr_t, NativeFrameName>;
  std::lock_guard<std::mutex> guard(*lock);
  auto [it, inserted] = cache->try_emplace(pc);
  if (!inserted) return it->second;
  NativeFrameName& name = it->second;
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(reinterpret_cast<void*>(pc - 1), &info, reinterpret_cast<void**>(&map),
              RTLD_DL_LINKMAP) == 0) {
    name.library = "?";
    name.function = absl::StrFormat("0x%x", pc);
    return name;
  }
  std::string path = info.dli_fname != nullptr ? info.dli_fname : "";
  const std::size_t slash = path.rfind('/');
  name.library = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.library.empty()) name.library = "<main>";
  const char* symbol = info.dli_sname;
  if (symbol == nullptr && map != nullptr) symbol = StaticFunctionAt(pc - 1, map);
  if (symbol != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(symbol, nullptr, nullptr, &status);
    name.function = status == 0 && demangled != nullptr ? demangled : symbol;
    std::free(demangled);
  } else {
    name.function = absl::StrFormat("+0x%x", pc - reinterpret_cast<uintptr_t>(info.dli_fbase));
  }
  name.transparent = IsTransparentLibrary(name.library);
  name.interpreter = reinterpret_cast<uintptr_t>(info.dli_fbase) ==
                     g_libpython_fbase.load(std::memory_order_relaxed);
  return name;
}

// The native frames of a native sample above the interpreter (innermost
// first), and the one among them that names the site.
struct NativeView {
  std::vector<const NativeFrameName*> frames;
  const NativeFrameName* site = nullptr;
};

NativeView ViewNative(const LiveCopy& c, uint32_t id) {
  NativeView view;
  const uint32_t begin = c.native_offsets[id - 1], end = c.native_offsets[id];
  for (uint32_t i = begin; i < end; ++i) {
    const NativeFrameName& f = Symbolize(c.native_pcs[i]);
    if (f.interpreter) break;  // the Python frames stand for the rest
    view.frames.push_back(&f);
    if (view.site == nullptr && !f.transparent) view.site = &f;
  }
  if (view.site == nullptr && !view.frames.empty()) view.site = view.frames.front();
  return view;
}

struct SiteKey {
  uint32_t frame;
  const NativeFrameName* native;  // null: Python memory
  friend bool operator==(SiteKey a, SiteKey b) {
    return a.frame == b.frame && a.native == b.native;
  }
  template <typename H>
  friend H AbslHashValue(H h, SiteKey k) {
    return H::combine(std::move(h), k.frame, k.native);
  }
};

// The live samples as a Snapshot, and (when `lines` is set) per-site
// estimates. Runs Quiet, without the lock.
tracemalloc::Snapshot BuildSnapshot(LiveCopy copy, int traceback_limit,
                                    std::vector<SiteEstimate>* lines) {
  auto traces = std::make_shared<std::vector<internal::SnapshotTrace>>();
  traces->reserve(copy.samples.size());
  struct Acc {
    double bytes = 0, variance = 0, blocks = 0;
    int64_t samples = 0;
    uint32_t oldest = std::numeric_limits<uint32_t>::max();
  };
  absl::flat_hash_map<SiteKey, Acc> by_site;
  for (const LiveSample& sample : copy.samples) {
    internal::SnapshotTrace trace;
    trace.size = static_cast<uint64_t>(std::llround(sample.weight));
    trace.domain = sample.native != 0 ? kNativeDomain : 0;
    trace.stack = sample.stack;
    traces->push_back(trace);
    if (lines != nullptr) {
      SiteKey key{copy.tables.stack_begin(sample.stack)[0], nullptr};
      if (sample.native != 0) {
        key.native = ViewNative(copy, sample.native).site;
        if (key.native == nullptr) key.native = &Symbolize(0);
      }
      Acc& a = by_site[key];
      a.bytes += sample.weight;
      a.variance += (1 - sample.inclusion) * sample.weight * sample.weight;
      a.blocks += sample.weight / std::max<double>(1.0, static_cast<double>(sample.size));
      ++a.samples;
      a.oldest = std::min(a.oldest, sample.epoch);
    }
  }
  if (lines != nullptr) {
    lines->clear();
    lines->reserve(by_site.size());
    for (const auto& [key, a] : by_site) {
      const internal::SnapshotFrame& f = copy.tables.frames[key.frame];
      SiteEstimate e;
      e.filename = copy.tables.filenames[f.filename];
      e.lineno = f.lineno;
      if (key.native != nullptr) {
        e.native = true;
        e.library = key.native->library;
        e.function = key.native->function;
      }
      e.bytes = a.bytes;
      e.stderr_bytes = std::sqrt(a.variance);
      e.blocks = a.blocks;
      e.samples = a.samples;
      e.oldest_epoch = a.oldest;
      lines->push_back(std::move(e));
    }
    std::sort(lines->begin(), lines->end(), [](const SiteEstimate& a, const SiteEstimate& b) {
      if (a.bytes != b.bytes) return a.bytes > b.bytes;
      if (a.filename != b.filename) return a.filename < b.filename;
      if (a.lineno != b.lineno) return a.lineno < b.lineno;
      if (a.library != b.library) return a.library < b.library;
      return a.function < b.function;
    });
  }
  auto tables = internal::FinishTables(std::move(copy.tables));
  return tracemalloc::SnapshotAccess::Make(std::move(tables), std::move(traces), traceback_limit);
}

}  // namespace

std::vector<NativeHookSlot> ListNativeHookSlots() {
  Quiet quiet;
  std::vector<std::string> symbols;
  for (const internal::GotReplacement& r : NativeReplacements()) symbols.push_back(r.symbol);
  std::vector<NativeHookSlot> out;
  for (const internal::GotSlot& slot : internal::ListGotSlots(symbols)) {
    NativeHookSlot h;
    h.object = slot.object;
    h.symbol = slot.symbol;
    h.slot = reinterpret_cast<uintptr_t>(slot.slot);
    h.value = reinterpret_cast<uintptr_t>(slot.value);
    for (const internal::GotReplacement& r : NativeReplacements()) {
      if (slot.value == r.replacement) h.hooked = true;
    }
    out.push_back(std::move(h));
  }
  return out;
}

std::string SiteName(const SiteEstimate& site) {
  std::string name = absl::StrCat(site.filename, ":", site.lineno);
  if (site.native) absl::StrAppend(&name, " -> ", site.library, " ", site.function);
  return name;
}

tracemalloc::Snapshot AllocationSampler::TakeSnapshot() const {
  State& s = GlobalState();
  Quiet quiet;
  LiveCopy copy;
  {
    Locked lock(s);
    if (s.owner != this || s.tables == nullptr) return tracemalloc::Snapshot();
    copy = CopyLocked(s);
  }
  return BuildSnapshot(std::move(copy), options_.max_frames, nullptr);
}

std::vector<SiteEstimate> AllocationSampler::LiveByLine(std::size_t top) const {
  State& s = GlobalState();
  Quiet quiet;
  std::vector<SiteEstimate> lines;
  LiveCopy copy;
  {
    Locked lock(s);
    if (s.owner != this || s.tables == nullptr) return lines;
    copy = CopyLocked(s);
  }
  BuildSnapshot(std::move(copy), options_.max_frames, &lines);
  if (top != 0 && lines.size() > top) lines.resize(top);
  return lines;
}

SamplerMark AllocationSampler::Mark() {
  State& s = GlobalState();
  Quiet quiet;
  SamplerMark mark;
  mark.time = absl::Now();
  LiveCopy copy;
  {
    Locked lock(s);
    if (s.owner != this || s.tables == nullptr) return mark;
    copy = CopyLocked(s);
    mark.epoch = ++s.epoch;
  }
  mark.snapshot = BuildSnapshot(std::move(copy), options_.max_frames, &mark.lines);
  return mark;
}

std::string AllocationSampler::CollapsedStacks() const {
  State& s = GlobalState();
  Quiet quiet;
  LiveCopy copy;
  {
    Locked lock(s);
    if (s.owner != this || s.tables == nullptr) return "";
    copy = CopyLocked(s);
  }
  absl::flat_hash_map<std::string, double> stacks;
  std::string key;
  for (const LiveSample& sample : copy.samples) {
    key.clear();
    const uint32_t* ids = copy.tables.stack_begin(sample.stack);
    const uint32_t n = std::min<uint32_t>(copy.tables.stack_size(sample.stack),
                                          static_cast<uint32_t>(options_.max_frames));
    for (uint32_t f = n; f-- > 0;) {
      const internal::SnapshotFrame& frame = copy.tables.frames[ids[f]];
      if (!key.empty()) key.push_back(';');
      absl::StrAppend(&key, copy.tables.filenames[frame.filename], ":", frame.lineno);
    }
    if (sample.native != 0) {
      const NativeView view = ViewNative(copy, sample.native);
      for (std::size_t f = view.frames.size(); f-- > 0;) {
        absl::StrAppend(&key, ";", view.frames[f]->library, "!", view.frames[f]->function);
      }
    }
    stacks[key] += sample.weight;
  }
  std::vector<std::pair<std::string, double>> sorted(stacks.begin(), stacks.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& [k, bytes] : sorted) {
    absl::StrAppend(&out, k, " ", static_cast<uint64_t>(std::llround(bytes)), "\n");
  }
  return out;
}

std::string AllocationSampler::ToJson(std::size_t top) const {
  const SamplerStats st = Stats();
  const std::vector<SiteEstimate> lines = LiveByLine(top);
  std::string out = absl::StrFormat(
      "{\"sampling_interval\":%d,\"running\":%s,\"hooked\":%s,\"live_samples\":%d,"
      "\"samples\":%d,\"freed\":%d,\"dropped\":%d,\"live_bytes_estimate\":%d,"
      "\"table_bytes\":%d,\"stacks\":%d,\"native_live_samples\":%d,\"lines\":[",
      st.sampling_interval, st.running ? "true" : "false", st.hooked ? "true" : "false",
      st.live_samples, st.samples, st.freed, st.dropped, st.live_bytes_estimate, st.table_bytes,
      st.stacks, st.native_live_samples);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const SiteEstimate& e = lines[i];
    if (i != 0) out.push_back(',');
    out += "{\"filename\":";
    internal::AppendJsonQuoted(&out, e.filename);
    if (e.native) {
      out += ",\"library\":";
      internal::AppendJsonQuoted(&out, e.library);
      out += ",\"function\":";
      internal::AppendJsonQuoted(&out, e.function);
    }
    absl::StrAppendFormat(&out,
                          ",\"lineno\":%d,\"bytes\":%.0f,\"stderr_bytes\":%.0f,\"blocks\":%.1f,"
                          "\"samples\":%d,\"oldest_epoch\":%d}",
                          e.lineno, e.bytes, e.stderr_bytes, e.blocks, e.samples, e.oldest_epoch);
  }
  out += "]}";
  return out;
}

std::vector<GrowingSite> FindGrowingSites(const std::vector<SamplerMark>& marks, double z) {
  std::vector<GrowingSite> out;
  if (marks.size() < 3) return out;
  using Key = std::tuple<std::string, int64_t, std::string, std::string>;
  std::vector<absl::flat_hash_map<Key, const SiteEstimate*>> index(marks.size());
  for (std::size_t m = 0; m < marks.size(); ++m) {
    for (const SiteEstimate& e : marks[m].lines) {
      index[m][{e.filename, e.lineno, e.library, e.function}] = &e;
    }
  }
  for (const SiteEstimate& last : marks.back().lines) {
    const Key key{last.filename, last.lineno, last.library, last.function};
    GrowingSite site;
    site.last = last;
    bool steady = true;
    double previous = 0;
    double first_variance = 0;
    for (std::size_t m = 0; m < marks.size(); ++m) {
      auto it = index[m].find(key);
      const double bytes = it == index[m].end() ? 0 : it->second->bytes;
      if (m == 0 && it != index[m].end()) {
        first_variance = it->second->stderr_bytes * it->second->stderr_bytes;
      }
      if (m > 0) {
        site.deltas.push_back(bytes - previous);
        if (bytes - previous <= 0) steady = false;
      }
      previous = bytes;
    }
    if (!steady) continue;
    const double first = index[0].count(key) ? index[0][key]->bytes : 0;
    site.growth = last.bytes - first;
    // Samples that survive from the first mark to the last are shared by
    // both estimates; treating them as independent overstates the error,
    // which errs towards silence.
    site.stderr_growth = std::sqrt(last.stderr_bytes * last.stderr_bytes + first_variance);
    if (site.growth <= z * site.stderr_growth) continue;
    out.push_back(std::move(site));
  }
  std::sort(out.begin(), out.end(),
            [](const GrowingSite& a, const GrowingSite& b) { return a.growth > b.growth; });
  return out;
}

}  // namespace leakguard
