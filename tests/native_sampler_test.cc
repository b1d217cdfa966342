// The native side of AllocationSampler (SamplerOptions::native): relocation
// slots patched and put back, a C extension's, ctypes' and NumPy's malloc
// leaks attributed to their library and Python line with the estimate
// within 10% at R = 64 KiB, libpython's own allocations counted once, an
// extension loaded after tracking started, and fork().

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/doctor.h"
#include "leakguard/leak_detector.h"
#include "leakguard/python/error.h"
#include "leakguard/sampler.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::leakguard::testing::Eval;
using ::leakguard::testing::RecordingSink;
using ::leakguard::testing::Script;
using ::leakguard::testing::SleepWithoutGil;
using ::leakguard::testing::WaitFor;
using ::testing::HasSubstr;

// Makes the test extension importable.
void AddExtensionDir() {
  Eval("0", absl::StrCat("import sys\nif ", "'", LEAKGUARD_NATIVE_EXT_DIR, "' not in sys.path: ",
                         "sys.path.insert(0, '", LEAKGUARD_NATIVE_EXT_DIR, "')"));
}

std::unique_ptr<AllocationSampler> StartNative(int64_t interval, uint64_t seed = 7) {
  auto sampler = AllocationSampler::Create(
      {.sampling_interval = interval, .max_frames = 8, .seed = seed, .native = true});
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  if (!sampler.ok()) return nullptr;
  absl::Status started = (*sampler)->Start();
  EXPECT_TRUE(started.ok()) << started;
  return std::move(*sampler);
}

// The native site of `file:line` whose library starts with `library`.
const SiteEstimate* FindNative(const std::vector<SiteEstimate>& sites, const std::string& file,
                               int64_t line, const std::string& library) {
  for (const SiteEstimate& e : sites) {
    if (e.native && e.filename == file && e.lineno == line &&
        absl::StartsWith(e.library, library)) {
      return &e;
    }
  }
  return nullptr;
}

std::string Describe(const std::vector<SiteEstimate>& sites) {
  std::string out;
  for (std::size_t i = 0; i < sites.size() && i < 12; ++i) {
    absl::StrAppend(&out, SiteName(sites[i]), " ", std::llround(sites[i].bytes), " B\n");
  }
  return out;
}

// slot address -> value, of every slot the hooks replace.
std::map<uintptr_t, uintptr_t> SlotValues() {
  std::map<uintptr_t, uintptr_t> out;
  for (const NativeHookSlot& s : ListNativeHookSlots()) out[s.slot] = s.value;
  return out;
}

TEST(NativeSampler, OptionsAreChecked) {
  auto bad = AllocationSampler::Create({.native = true, .max_native_frames = 0});
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("max_native_frames"));
}

// Start() rewrites the slots through which loaded objects call malloc and
// friends (the test extension's among them); Stop() puts every one back.
TEST(NativeSampler, PatchesRelocationSlotsAndRestoresThem) {
  AddExtensionDir();
  Eval("0", "import _lg_native_leak");
  const std::map<uintptr_t, uintptr_t> before = SlotValues();
  ASSERT_FALSE(before.empty());
  for (const NativeHookSlot& s : ListNativeHookSlots()) EXPECT_FALSE(s.hooked) << s.object;

  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  int ext_hooked = 0, hooked = 0;
  for (const NativeHookSlot& s : ListNativeHookSlots()) {
    hooked += s.hooked;
    if (absl::StrContains(s.object, "_lg_native_leak") && s.symbol == "malloc") {
      EXPECT_TRUE(s.hooked);
      ext_hooked += s.hooked;
    }
  }
  EXPECT_EQ(ext_hooked, 1);
  EXPECT_GT(hooked, 10);
  EXPECT_EQ(sampler->Stats().native_hooked_slots, hooked);

  sampler->Stop();
  const std::map<uintptr_t, uintptr_t> after = SlotValues();
  for (const NativeHookSlot& s : ListNativeHookSlots()) {
    auto it = before.find(s.slot);
    if (it == before.end()) {
      ADD_FAILURE() << "a slot not there before: " << s.object << " " << s.symbol;
    } else if (s.value != it->second) {
      // Lazy binding may have resolved a slot meanwhile (its first call):
      // it then holds the function itself, never a hook.
      EXPECT_EQ(s.value, reinterpret_cast<uintptr_t>(dlsym(RTLD_DEFAULT, s.symbol.c_str())))
          << s.object << " " << s.symbol;
    }
  }
  EXPECT_EQ(after.size(), before.size());
  for (const NativeHookSlot& s : ListNativeHookSlots()) EXPECT_FALSE(s.hooked) << s.object;
}

constexpr char kExtensionScript[] =
    "import _lg_native_leak\n"
    "def run(n):\n"
    "    for _ in range(n):\n"
    "        _lg_native_leak.leak(65536)\n"  // line 4
    "        _lg_native_leak.churn(65536)\n";

// A leak of 1024 blocks of 64 KiB made by the test extension's malloc:
// named by the extension, its exported function and the Python line, and
// estimated within 10% (about 650 samples: a standard error of 2.4%).
// The extension is imported after tracking started: its dlopen by
// libpython is wrapped, so it is patched on load.
TEST(NativeSampler, ExtensionLeakNamesLibraryFunctionAndLine) {
  AddExtensionDir();
  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  Script script("native_ext.py", kExtensionScript);
  script.Call("run", 1024);
  const std::vector<SiteEstimate> sites = sampler->LiveByLine();
  const SiteEstimate* site = FindNative(sites, "native_ext.py", 4, "_lg_native_leak");
  ASSERT_NE(site, nullptr) << Describe(sites);
  EXPECT_EQ(site->library, "_lg_native_leak.so");
  EXPECT_EQ(site->function, "lg_leak_block");
  const double truth = 1024.0 * 65536;
  EXPECT_NEAR(site->bytes, truth, 0.10 * truth) << Describe(sites);
  // The churn line frees what it allocates: nothing of it stays.
  EXPECT_EQ(FindNative(sites, "native_ext.py", 5, "_lg_native_leak"), nullptr) << Describe(sites);
  EXPECT_GT(sampler->Stats().native_live_samples, 400);

  const std::string stacks = sampler->CollapsedStacks();
  // The Python line, then the extension's frames: its static `leak`
  // (named from the file's .symtab), then the exported function that called
  // malloc.
  EXPECT_THAT(stacks, HasSubstr("native_ext.py:4;_lg_native_leak.so!leak;"
                                "_lg_native_leak.so!lg_leak_block "));
  const std::string json = sampler->ToJson(5);
  EXPECT_THAT(json, HasSubstr("\"library\":\"_lg_native_leak.so\",\"function\":\"lg_leak_block\""));
  sampler->Stop();
  Eval("0", "import _lg_native_leak\n_lg_native_leak.free_all()");
}

// ctypes calls libc's malloc through a pointer it looked up with dlsym
// before tracking started: its calls through libffi's ffi_call are seen
// (the wrapped ffi_call swaps the allocator's address for the hook's), and
// the site is ctypes'.
TEST(NativeSampler, CtypesMallocLeakIsAttributedToCtypesAndTheLine) {
  Script script("native_ctypes.py",
                "import ctypes\n"
                "libc = ctypes.CDLL(None)\n"
                "libc.malloc.restype = ctypes.c_void_p\n"
                "libc.malloc.argtypes = [ctypes.c_size_t]\n"
                "libc.free.argtypes = [ctypes.c_void_p]\n"
                "kept = []\n"
                "def run(n):\n"
                "    for _ in range(n):\n"
                "        kept.append(libc.malloc(65536))\n"  // line 9
                "def release(_):\n"
                "    for p in kept: libc.free(p)\n"
                "    kept.clear()\n");
  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  script.Call("run", 1024);
  std::vector<SiteEstimate> sites = sampler->LiveByLine();
  const SiteEstimate* site = FindNative(sites, "native_ctypes.py", 9, "_ctypes");
  ASSERT_NE(site, nullptr) << Describe(sites);
  const double truth = 1024.0 * 65536;
  EXPECT_NEAR(site->bytes, truth, 0.10 * truth) << Describe(sites);
  // Freed through ctypes' free (also looked up with dlsym): gone.
  script.Call("release");
  sites = sampler->LiveByLine();
  site = FindNative(sites, "native_ctypes.py", 9, "_ctypes");
  EXPECT_TRUE(site == nullptr || site->bytes < 0.02 * truth) << Describe(sites);
  sampler->Stop();
}

// NumPy, imported before tracking started (the host's state when it turns
// tracking on): an array's data comes from malloc in NumPy's core module.
TEST(NativeSampler, NumpyLeakInAHostThatLoadedItBeforeIsFound) {
  Ref numpy = Steal(PyImport_ImportModule("numpy"));
  if (!numpy) {
    PyErr_Clear();
    GTEST_SKIP() << "NumPy is not installed for this Python";
  }
  Ref lxml = Steal(PyImport_ImportModule("lxml.etree"));
  if (!lxml) PyErr_Clear();  // loaded too when present, as the host would have
  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  Script script("native_numpy.py",
                "import numpy\n"
                "kept = []\n"
                "def run(n):\n"
                "    for _ in range(n):\n"
                "        kept.append(numpy.empty(65536, dtype=numpy.uint8))\n"  // line 5
                "def release(_):\n"
                "    kept.clear()\n");
  script.Call("run", 1024);
  const std::vector<SiteEstimate> sites = sampler->LiveByLine();
  const SiteEstimate* site = FindNative(sites, "native_numpy.py", 5, "_multiarray_umath");
  ASSERT_NE(site, nullptr) << Describe(sites);
  const double truth = 1024.0 * 65536;
  EXPECT_NEAR(site->bytes, truth, 0.10 * truth) << Describe(sites);
  script.Call("release");
  sampler->Stop();
}

// The detector on a native sampler reports native growth by its site: the
// Python line, the library and the function, with the bytes.
TEST(NativeSampler, DetectorReportsNativeGrowthBySite) {
  AddExtensionDir();
  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  Script script("native_ext.py",
                "import _lg_native_leak\n"
                "def run(n):\n"
                "    for _ in range(n):\n"
                "        _lg_native_leak.leak(65536)\n");  // line 4
  script.Call("run", 1);
  RecordingSink sink;
  auto detector = LeakDetector::Create({.interval = absl::Milliseconds(20),
                                        .threshold_bytes = 4 << 20,
                                        .fd_threshold = 0,
                                        .thread_threshold = 0,
                                        .sampler = sampler.get(),
                                        .sink = &sink});
  ASSERT_TRUE(detector.ok()) << detector.status();
  ASSERT_TRUE((*detector)->Start().ok());
  auto native_report = [&]() -> std::optional<Report> {
    for (const Report& r : sink.reports()) {
      if (absl::StrContains(absl::StrJoin(r.notes, "\n"), "by site")) return r;
    }
    return std::nullopt;
  };
  for (int i = 0; i < 100 && !native_report(); ++i) {
    script.Call("run", 32);  // 2 MiB per step
    SleepWithoutGil(absl::Milliseconds(10));
  }
  EXPECT_TRUE(WaitFor([&] { return native_report().has_value(); }));
  (*detector)->Stop();
  const std::optional<Report> report = native_report();
  ASSERT_TRUE(report.has_value());
  EXPECT_THAT(report->label, HasSubstr("native"));
  EXPECT_THAT(absl::StrJoin(report->notes, "\n"),
              HasSubstr("native_ext.py:4 -> _lg_native_leak.so lg_leak_block +"));
  // Native bytes are not counted as Python heap.
  const std::vector<DetectorRound> rounds = (*detector)->History();
  ASSERT_FALSE(rounds.empty());
  ASSERT_TRUE(rounds.back().native_sampled_bytes.has_value());
  EXPECT_GE(*rounds.back().native_sampled_bytes, 4 << 20);
  EXPECT_LT(rounds.back().traced_bytes.value_or(0), 1 << 20);
  sampler->Stop();
  Eval("0", "import _lg_native_leak\n_lg_native_leak.free_all()");
}

// The doctor's native_memory cause names the extension's site: the Python
// line, the library, the function, and the bytes per iteration (4 anonymous
// mappings of 64 KiB, each sampled with probability 0.98 at R = 16 KiB;
// mapped, so RSS grows whatever malloc's free lists hold from other tests).
TEST(NativeSampler, DoctorNamesTheNativeSite) {
  AddExtensionDir();
  Script script("native_doctor.py",
                "import _lg_native_leak\n"
                "def step(_=None):\n"
                "    for _ in range(4):\n"
                "        _lg_native_leak.leak_mapped(65536)\n");  // line 4
  Ref workload = script.Get("step");
  ASSERT_TRUE(workload);
  absl::StatusOr<Diagnosis> d = Diagnose(workload);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->verdict, Verdict::kLeak) << d->ToText();
  ASSERT_FALSE(d->causes.empty()) << d->ToText();
  const Cause& c = d->causes[0];
  EXPECT_EQ(c.id, CauseId::kNativeMemory) << d->ToText();
  ASSERT_FALSE(c.sites.empty()) << d->ToText();
  EXPECT_EQ(c.sites[0].file, "native_doctor.py");
  EXPECT_EQ(c.sites[0].line, 4);
  EXPECT_EQ(c.sites[0].library, "_lg_native_leak.so");
  EXPECT_EQ(c.sites[0].function, "lg_map_block");
  EXPECT_NEAR(c.sites[0].bytes_per_iter, 4 * 65536, 0.10 * 4 * 65536) << d->ToText();
  EXPECT_THAT(d->ToJson(), HasSubstr("\"library\":\"_lg_native_leak.so\""));
}

// Native tracking switched on and off 20 times while two threads without
// Python malloc and free through this program's own relocation slots: no
// crash, no free that goes astray, and every slot put back at the end.
TEST(NativeSampler, StartStopWhileThreadsMalloc) {
  const std::map<uintptr_t, uintptr_t> before = SlotValues();
  std::atomic<bool> done{false};
  std::atomic<int64_t> calls{0};
  auto churn = [&] {
    std::vector<void*> ring(64, nullptr);
    for (uint64_t i = 0; !done.load(std::memory_order_relaxed); ++i) {
      void*& slot = ring[i % ring.size()];
      std::free(slot);
      slot = std::malloc(16 + (i * 2654435761u) % 8192);
      if (slot != nullptr) static_cast<char*>(slot)[0] = 1;
      calls.fetch_add(1, std::memory_order_relaxed);
    }
    for (void* p : ring) std::free(p);
  };
  std::thread a(churn), b(churn);
  for (int run = 0; run < 20; ++run) {
    auto sampler = StartNative(int64_t{4} * 1024, static_cast<uint64_t>(run + 1));
    ASSERT_NE(sampler, nullptr);
    SleepWithoutGil(absl::Milliseconds(5));
    const SamplerStats stats = sampler->Stats();
    EXPECT_GT(stats.native_hooked_slots, 0);
    sampler->Stop();
  }
  done = true;
  {
    GilRelease released;
    a.join();
    b.join();
  }
  EXPECT_GT(calls.load(), 1000);
  for (const NativeHookSlot& s : ListNativeHookSlots()) {
    EXPECT_FALSE(s.hooked) << s.object << " " << s.symbol;
    auto it = before.find(s.slot);
    if (it != before.end() && s.value != it->second) {
      EXPECT_EQ(s.value, reinterpret_cast<uintptr_t>(dlsym(RTLD_DEFAULT, s.symbol.c_str())))
          << s.object << " " << s.symbol;
    }
  }
}

// libpython's malloc calls are the RAW domain's: a 1 MiB bytes object is
// one Python sample at its line, and no native one (exact mode).
TEST(NativeSampler, LibpythonAllocationsAreCountedOnce) {
  Script script("native_once.py",
                "kept = []\n"
                "def run(n):\n"
                "    kept.append(bytes(n))\n");  // line 3
  auto sampler = StartNative(1);
  ASSERT_NE(sampler, nullptr);
  script.Call("run", 1 << 20);
  const std::vector<SiteEstimate> sites = sampler->LiveByLine();
  double python = 0, native = 0;
  for (const SiteEstimate& e : sites) {
    if (e.filename != "native_once.py" || e.lineno != 3) continue;
    (e.native ? native : python) += e.bytes;
  }
  EXPECT_GE(python, 1 << 20) << Describe(sites);
  EXPECT_LT(python, (1 << 20) + 4096) << Describe(sites);
  EXPECT_EQ(native, 0) << Describe(sites);
  sampler->Stop();
  Eval("0", "0");
}

// A child forked while tracking runs goes on sampling in its copy; the
// parent is unaffected.
TEST(NativeSampler, ForkedChildGoesOnSampling) {
  AddExtensionDir();
  Eval("0", "import _lg_native_leak");
  auto sampler = StartNative(int64_t{64} * 1024);
  ASSERT_NE(sampler, nullptr);
  Script script("native_fork.py",
                "import _lg_native_leak\n"
                "def run(n):\n"
                "    for _ in range(n):\n"
                "        _lg_native_leak.leak(65536)\n");  // line 4
  // As os.fork() does it: the interpreter's own fork protocol around the
  // call, so the child's interpreter is usable.
  PyOS_BeforeFork();
  const pid_t pid = fork();
  if (pid != 0) PyOS_AfterFork_Parent();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    PyOS_AfterFork_Child();
    script.Call("run", 256);
    const std::vector<SiteEstimate> sites = sampler->LiveByLine();
    const SiteEstimate* site = FindNative(sites, "native_fork.py", 4, "_lg_native_leak");
    _exit(site != nullptr && site->bytes > 0.5 * 256 * 65536 ? 0 : 3);
  }
  int status = 0;
  {
    GilRelease released;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
  }
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  script.Call("run", 64);
  EXPECT_GT(sampler->Stats().native_live_samples, 0);
  sampler->Stop();
  Eval("0", "import _lg_native_leak\n_lg_native_leak.free_all()");
}

}  // namespace
}  // namespace leakguard
