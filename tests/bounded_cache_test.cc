// BoundedCache and ConcurrentBoundedCache: bounds, LRU order, TTL on a fake
// clock, stats, callbacks, Python values released under the GIL, threads.

#include "leakguard/bounded_cache.h"

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/process.h"
#include "leakguard/python/call.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard {
namespace {

// AddressSanitizer keeps freed memory in quarantine on purpose, so RSS is
// not a leak signal under it; the soak tests then check everything else.
constexpr bool kRssIsMeaningful = !LEAKGUARD_UNDER_ASAN;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A clock the test moves by hand.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1'000'000);
  std::function<absl::Time()> AsFunction() {
    return [this] { return now; };
  }
};

using StringCache = BoundedCache<std::string, std::string>;

StringCache MakeCache(BoundedCacheOptions<std::string, std::string> options) {
  auto cache = StringCache::Create(std::move(options));
  EXPECT_TRUE(cache.ok()) << cache.status();
  return *std::move(cache);
}

TEST(BoundedCacheTest, CreateRejectsOptionsWithoutABound) {
  auto cache = StringCache::Create({});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cache.status().message(), HasSubstr("needs a bound"));
}

TEST(BoundedCacheTest, CreateRejectsWeightWithoutWeigherAndViceVersa) {
  StringCache::Options no_weigher;
  no_weigher.max_weight = 10;
  EXPECT_THAT(StringCache::Create(no_weigher).status().message(), HasSubstr("weigher is empty"));

  StringCache::Options no_weight;
  no_weight.max_entries = 10;
  no_weight.weigher = [](const std::string&, const std::string&) { return uint64_t{1}; };
  EXPECT_THAT(StringCache::Create(no_weight).status().message(), HasSubstr("max_weight is 0"));
}

TEST(BoundedCacheTest, CreateRejectsNonPositiveTtl) {
  StringCache::Options options;
  options.max_entries = 1;
  options.ttl = absl::ZeroDuration();
  auto zero = StringCache::Create(options);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.status().message(), HasSubstr("got 0"));
  options.ttl = absl::Seconds(-1);
  EXPECT_THAT(StringCache::Create(options).status().message(), HasSubstr("got -1s"));
}

TEST(BoundedCacheTest, EvictsLeastRecentlyUsedFirst) {
  std::vector<std::pair<std::string, EvictionReason>> evicted;
  StringCache::Options options;
  options.max_entries = 3;
  options.on_evict = [&](const std::string& key, std::string& value, EvictionReason reason) {
    evicted.emplace_back(key + "=" + value, reason);
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "1").ok());
  ASSERT_TRUE(cache.Put("b", "2").ok());
  ASSERT_TRUE(cache.Put("c", "3").ok());
  EXPECT_EQ(cache.Get("a"), "1");  // a is now the most recent.
  ASSERT_TRUE(cache.Put("d", "4").ok());
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("d", "a", "c"));
  ASSERT_TRUE(cache.Put("e", "5").ok());
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("e", "d", "a"));
  EXPECT_THAT(evicted, ElementsAre(Pair("b=2", EvictionReason::kCapacity),
                                   Pair("c=3", EvictionReason::kCapacity)));
  EXPECT_EQ(cache.Get("b"), std::nullopt);
  CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_EQ(stats.expirations, 0u);
  EXPECT_EQ(stats.entries, 3u);
}

TEST(BoundedCacheTest, PutReplacesInPlaceWithoutCallback) {
  int callbacks = 0;
  StringCache::Options options;
  options.max_entries = 2;
  options.on_evict = [&](const std::string&, std::string&, EvictionReason) { ++callbacks; };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "1").ok());
  ASSERT_TRUE(cache.Put("b", "2").ok());
  ASSERT_TRUE(cache.Put("a", "one").ok());
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("a", "b"));
  EXPECT_EQ(cache.Get("a"), "one");
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ(callbacks, 0);
}

TEST(BoundedCacheTest, WeightBoundEvictsUntilItFits) {
  std::vector<std::string> evicted;
  StringCache::Options options;
  options.max_weight = 10;
  options.weigher = [](const std::string&, const std::string& value) {
    return static_cast<uint64_t>(value.size());
  };
  options.on_evict = [&](const std::string& key, std::string&, EvictionReason) {
    evicted.push_back(key);
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "aaaa").ok());
  ASSERT_TRUE(cache.Put("b", "bbbb").ok());
  EXPECT_EQ(cache.Weight(), 8u);
  ASSERT_TRUE(cache.Put("c", "cccccc").ok());  // 14 > 10: a goes, 10 fits.
  EXPECT_THAT(evicted, ElementsAre("a"));
  EXPECT_EQ(cache.Weight(), 10u);
  ASSERT_TRUE(cache.Put("d", "ddddddddd").ok());  // 9: b and c go.
  EXPECT_THAT(evicted, ElementsAre("a", "b", "c"));
  EXPECT_EQ(cache.Weight(), 9u);
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("d"));
}

TEST(BoundedCacheTest, EntryHeavierThanTheBoundIsRejectedAndStateKept) {
  StringCache::Options options;
  options.max_weight = 5;
  options.weigher = [](const std::string&, const std::string& value) {
    return static_cast<uint64_t>(value.size());
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "aa").ok());
  absl::Status status = cache.Put("a", "too heavy");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("weighs 9, more than the cache's bound of 5"));
  EXPECT_EQ(cache.Get("a"), "aa");
  EXPECT_EQ(cache.Weight(), 2u);
}

TEST(BoundedCacheTest, CountAndWeightBoundsTogether) {
  StringCache::Options options;
  options.max_entries = 2;
  options.max_weight = 100;
  options.weigher = [](const std::string&, const std::string& value) {
    return static_cast<uint64_t>(value.size());
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "x").ok());
  ASSERT_TRUE(cache.Put("b", "y").ok());
  ASSERT_TRUE(cache.Put("c", "z").ok());  // Count bound, not weight.
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("c", "b"));
  EXPECT_EQ(cache.Weight(), 2u);
}

// Room is made before a weight is added: with a bound near UINT64_MAX the
// total never wraps (it did: UINT64_MAX - 1 plus 5 read as 3, and nothing
// was evicted).
TEST(BoundedCacheTest, WeightBoundNearUint64MaxNeverWraps) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  BoundedCache<std::string, uint64_t>::Options options;
  options.max_weight = kMax;
  options.weigher = [](const std::string&, const uint64_t& w) { return w; };
  std::vector<std::string> evicted;
  options.on_evict = [&](const std::string& key, uint64_t&, EvictionReason) {
    evicted.push_back(key);
  };
  auto cache = BoundedCache<std::string, uint64_t>::Create(options);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE(cache->Put("huge", kMax - 1).ok());
  EXPECT_EQ(cache->Weight(), kMax - 1);
  ASSERT_TRUE(cache->Put("one", 1).ok());  // Exactly fills the bound.
  EXPECT_EQ(cache->Weight(), kMax);
  EXPECT_TRUE(evicted.empty());
  ASSERT_TRUE(cache->Put("five", 5).ok());  // "huge" has to go.
  EXPECT_THAT(evicted, ElementsAre("huge"));
  EXPECT_EQ(cache->Weight(), 6u);
  EXPECT_THAT(cache->KeysByRecency(), ElementsAre("five", "one"));
  // Replacing a value with a heavier one: the old weight is given back
  // first, then room is made for the new one.
  ASSERT_TRUE(cache->Put("one", kMax - 5).ok());
  EXPECT_EQ(cache->Weight(), kMax);
  ASSERT_TRUE(cache->Put("one", kMax).ok());  // "five" goes.
  EXPECT_THAT(evicted, ElementsAre("huge", "five"));
  EXPECT_EQ(cache->Weight(), kMax);
  EXPECT_EQ(cache->Stats().weight, kMax);
  EXPECT_EQ(cache->Size(), 1u);
}

// A weigher that returns 0 does not make the cache unbounded: every entry
// weighs at least 1, so max_weight is then a count bound.
TEST(BoundedCacheTest, ZeroWeightsStillKeepACountBound) {
  StringCache::Options options;
  options.max_weight = 3;
  options.weigher = [](const std::string&, const std::string&) { return uint64_t{0}; };
  StringCache cache = MakeCache(options);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cache.Put(std::to_string(i), "value").ok());
  }
  EXPECT_EQ(cache.Size(), 3u);
  EXPECT_EQ(cache.Weight(), 3u);
  EXPECT_EQ(cache.Stats().evictions, 7u);
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("9", "8", "7"));
}

TEST(BoundedCacheTest, TtlExpiresOnTheFakeClock) {
  FakeClock clock;
  std::vector<std::pair<std::string, EvictionReason>> evicted;
  StringCache::Options options;
  options.max_entries = 10;
  options.ttl = absl::Seconds(10);
  options.clock = clock.AsFunction();
  options.on_evict = [&](const std::string& key, std::string&, EvictionReason reason) {
    evicted.emplace_back(key, reason);
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "1").ok());
  clock.now += absl::Seconds(9);
  EXPECT_EQ(cache.Get("a"), "1");  // A hit does not extend the TTL.
  clock.now += absl::Seconds(1);   // Exactly 10 s: expired.
  EXPECT_EQ(cache.Get("a"), std::nullopt);
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_THAT(evicted, ElementsAre(Pair("a", EvictionReason::kExpired)));
  CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.expirations, 1u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST(BoundedCacheTest, PerEntryTtlOverridesTheCachesAndPurgeSweeps) {
  FakeClock clock;
  StringCache::Options options;
  options.max_entries = 10;
  options.ttl = absl::Seconds(10);
  options.clock = clock.AsFunction();
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("default", "10s").ok());
  ASSERT_TRUE(cache.PutWithTtl("short", "2s", absl::Seconds(2)).ok());
  ASSERT_TRUE(cache.PutWithTtl("forever", "inf", absl::InfiniteDuration()).ok());
  EXPECT_EQ(cache.PutWithTtl("bad", "x", absl::ZeroDuration()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Size(), 3u);
  clock.now += absl::Seconds(5);
  EXPECT_EQ(cache.PurgeExpired(), 1u);
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("forever", "default"));
  clock.now += absl::Hours(1000);
  EXPECT_EQ(cache.PurgeExpired(), 1u);
  EXPECT_THAT(cache.KeysByRecency(), ElementsAre("forever"));
  EXPECT_EQ(cache.Stats().expirations, 2u);
}

TEST(BoundedCacheTest, ExpiredLruTailCountsAsExpirationNotEviction) {
  FakeClock clock;
  std::vector<EvictionReason> reasons;
  StringCache::Options options;
  options.max_entries = 2;
  options.clock = clock.AsFunction();
  options.on_evict = [&](const std::string&, std::string&, EvictionReason reason) {
    reasons.push_back(reason);
  };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.PutWithTtl("old", "1", absl::Seconds(1)).ok());
  ASSERT_TRUE(cache.Put("b", "2").ok());
  clock.now += absl::Seconds(2);
  ASSERT_TRUE(cache.Put("c", "3").ok());  // Over the bound: the tail expired.
  ASSERT_TRUE(cache.Put("d", "4").ok());  // Over again: b is evicted.
  EXPECT_THAT(reasons, ElementsAre(EvictionReason::kExpired, EvictionReason::kCapacity));
  EXPECT_EQ(cache.Stats().expirations, 1u);
  EXPECT_EQ(cache.Stats().evictions, 1u);
}

TEST(BoundedCacheTest, GetOrComputeComputesOnceAndDoesNotCacheErrors) {
  StringCache::Options options;
  options.max_entries = 4;
  StringCache cache = MakeCache(options);
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("v");
  };
  EXPECT_EQ(*cache.GetOrCompute("k", compute), "v");
  EXPECT_EQ(*cache.GetOrCompute("k", compute), "v");
  EXPECT_EQ(calls, 1);

  absl::StatusOr<std::string> failed = cache.GetOrCompute(
      "e", []() -> absl::StatusOr<std::string> { return absl::NotFoundError("no such row"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.Get("e"), std::nullopt);
  // The callback may use the cache itself.
  EXPECT_EQ(*cache.GetOrCompute("outer", [&] { return *cache.GetOrCompute("k", compute) + "!"; }),
            "v!");
  CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.hits, 2u);    // k (second call), k (inside outer)
  EXPECT_EQ(stats.misses, 4u);  // k, e, e (the check above), outer
}

TEST(BoundedCacheTest, EraseAndClearKeepCountersAndSkipCallbacks) {
  int callbacks = 0;
  StringCache::Options options;
  options.max_entries = 4;
  options.on_evict = [&](const std::string&, std::string&, EvictionReason) { ++callbacks; };
  StringCache cache = MakeCache(options);
  ASSERT_TRUE(cache.Put("a", "1").ok());
  ASSERT_TRUE(cache.Put("b", "2").ok());
  EXPECT_EQ(cache.Get("a"), "1");
  EXPECT_TRUE(cache.Erase("a"));
  EXPECT_FALSE(cache.Erase("a"));
  cache.Clear();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Stats().hits, 1u);
  EXPECT_EQ(callbacks, 0);
}

TEST(BoundedCacheTest, MoveKeepsEntries) {
  StringCache::Options options;
  options.max_entries = 2;
  StringCache a = MakeCache(options);
  ASSERT_TRUE(a.Put("k", "v").ok());
  StringCache b = std::move(a);
  EXPECT_EQ(b.Get("k"), "v");
  StringCache c = MakeCache(options);
  c = std::move(b);
  EXPECT_EQ(c.Get("k"), "v");
}

// ---------------------------------------------------------------- Python

static_assert(kHoldsPythonObjects<Ref>);
static_assert(kHoldsPythonObjects<std::pair<int, Ref>>);
static_assert(kHoldsPythonObjects<std::shared_ptr<std::vector<Ref>>>);
static_assert(!kHoldsPythonObjects<std::string>);

using RefCache = BoundedCache<int, Ref>;

// A Python object whose finalizer appends its name to `deleted` and
// records whether it ran with the GIL held (it always does when it runs).
Ref MakeTracked(const char* name) {
  Ref obj = testing::Eval(std::string("Tracked('") + name + "')",
                          "import builtins\n"
                          "if not hasattr(builtins, '_lg_deleted'):\n"
                          "    builtins._lg_deleted = []\n"
                          "class Tracked:\n"
                          "    def __init__(self, name): self.name = name\n"
                          "    def __del__(self): builtins._lg_deleted.append(self.name)\n");
  return obj;
}

// The names of the Tracked objects finalized since the last call, in order.
std::string DeletedNames() {
  const char* setup =
      "import builtins\n"
      "if not hasattr(builtins, '_lg_deleted'):\n"
      "    builtins._lg_deleted = []\n";
  Ref deleted = testing::Eval("','.join(builtins._lg_deleted)", setup);
  std::string names = deleted ? PyUnicode_AsUTF8(deleted.get()) : "?";
  Ref cleared = testing::Eval("builtins._lg_deleted.clear()", setup);
  return names;
}

TEST(BoundedCacheTest, RefValuesAreReleasedOnEvictionAndDestruction) {
  DeletedNames();
  Ref keep = testing::Eval("object()");
  const Py_ssize_t base = keep.handle().RefCount();
  {
    RefCache::Options options;
    options.max_entries = 2;
    auto cache = RefCache::Create(options);
    ASSERT_TRUE(cache.ok());
    ASSERT_TRUE(cache->Put(0, keep).ok());
    EXPECT_EQ(keep.handle().RefCount(), base + 1);
    {
      std::optional<Ref> got = cache->Get(0);
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(got->get(), keep.get());
      EXPECT_EQ(keep.handle().RefCount(), base + 2);
    }
    ASSERT_TRUE(cache->Put(1, MakeTracked("one")).ok());
    ASSERT_TRUE(cache->Put(2, MakeTracked("two")).ok());  // Evicts key 0.
    EXPECT_EQ(keep.handle().RefCount(), base);
    ASSERT_TRUE(cache->Put(1, MakeTracked("uno")).ok());  // Replaces "one".
    EXPECT_EQ(DeletedNames(), "one");
  }
  EXPECT_EQ(DeletedNames(), "two,uno");  // Clear() goes least recent first.
}

TEST(BoundedCacheTest, RefCacheWorksFromThreadsWithoutTheGil) {
  DeletedNames();
  RefCache::Options options;
  options.max_entries = 1;
  bool callback_had_gil = false;
  options.on_evict = [&](const int&, Ref&, EvictionReason) {
    callback_had_gil = PyGILState_Check() != 0;
  };
  auto made = RefCache::Create(options);
  ASSERT_TRUE(made.ok());
  auto cache = std::make_unique<RefCache>(*std::move(made));
  ASSERT_TRUE(cache->Put(1, MakeTracked("first")).ok());
  Ref second = MakeTracked("second");
  bool got_first = false;
  {
    GilRelease release;
    std::thread([&] {
      EXPECT_FALSE(CheckGil().ok());
      std::optional<Ref> first = cache->Get(1);  // Copies under the GIL.
      got_first = first.has_value();
      {
        GilAcquire gil;  // Our own copy is ours to release.
        first.reset();
      }
      Ref moved;
      {
        GilAcquire gil;
        moved = std::move(second);
      }
      EXPECT_TRUE(cache->Put(2, std::move(moved)).ok());  // Evicts "first".
      cache.reset();  // Releases "second" without the caller holding the GIL.
    }).join();
  }
  EXPECT_TRUE(got_first);
  EXPECT_TRUE(callback_had_gil);
  if (compat::kFreeThreaded) {
    // Free-threaded CPython frees an object whose last reference another
    // thread dropped when its owning thread next runs Python (biased
    // reference counting): run some, then compare without the order.
    absl::StatusOr<Ref> gc = Import("gc");
    ASSERT_TRUE(gc.ok());
    ASSERT_TRUE(CallMethod(gc->handle(), "collect").ok());
    std::string names = DeletedNames();
    EXPECT_TRUE(names == "first,second" || names == "second,first") << names;
  } else {
    EXPECT_EQ(DeletedNames(), "first,second");
  }
}

TEST(BoundedCacheTest, RejectedRefValueIsReleasedUnderTheGil) {
  Ref keep = testing::Eval("object()");
  const Py_ssize_t base = keep.handle().RefCount();
  BoundedCacheOptions<int, Ref> options;
  options.max_weight = 1;
  options.weigher = [](const int&, const Ref&) { return uint64_t{2}; };
  auto cache = RefCache::Create(options);
  ASSERT_TRUE(cache.ok());
  {
    GilRelease release;
    std::thread([&] {
      Ref copy;
      {
        GilAcquire gil;
        copy = keep;
      }
      EXPECT_EQ(cache->Put(1, std::move(copy)).code(), absl::StatusCode::kInvalidArgument);
    }).join();
  }
  EXPECT_EQ(keep.handle().RefCount(), base);
}

// A finalizer run by an eviction may use the cache again: disposal happens
// after the cache's bookkeeping is done (and after the lock, for the
// concurrent cache).
TEST(BoundedCacheTest, CallbackMayReenterTheConcurrentCache) {
  using Cache = ConcurrentBoundedCache<int, std::string>;
  Cache::Options options;
  options.max_entries = 1;
  Cache* self = nullptr;
  std::optional<std::string> seen;
  options.on_evict = [&](const int&, std::string&, EvictionReason) {
    seen = self->Get(2);  // Would deadlock if called under the shard lock.
  };
  auto cache = Cache::Create(options);
  ASSERT_TRUE(cache.ok());
  self = cache->get();
  ASSERT_TRUE((*cache)->Put(1, "a").ok());
  ASSERT_TRUE((*cache)->Put(2, "b").ok());
  EXPECT_EQ(seen, "b");
}

// ------------------------------------------------------------ concurrent

TEST(ConcurrentBoundedCacheTest, CreateValidatesShards) {
  using Cache = ConcurrentBoundedCache<int, int>;
  Cache::Options options;
  options.max_entries = 4;
  options.shards = 3;
  EXPECT_THAT((Cache::Create(options)).status().message(), HasSubstr("power of two"));
  options.shards = 8;
  EXPECT_THAT((Cache::Create(options)).status().message(),
              HasSubstr("shards (8) exceeds max_entries (4)"));
  options.shards = 0;
  auto cache = Cache::Create(options);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ((*cache)->ShardCount(), 4u);
  options.max_entries = 1000;
  EXPECT_EQ((*Cache::Create(options))->ShardCount(), 16u);
}

// Shard counts no cache could allocate are refused, never thrown:
// 1 << 63 shards once escaped Create() as std::length_error.
TEST(ConcurrentBoundedCacheTest, CreateRefusesHugeShardCountsWithoutThrowing) {
  using Cache = ConcurrentBoundedCache<int, int>;
  constexpr std::size_t kHuge = std::size_t{1} << 63;
  Cache::Options by_count;
  by_count.max_entries = std::numeric_limits<std::size_t>::max();
  by_count.shards = kHuge;
  absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Create(by_count);
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cache.status().message(),
              HasSubstr("shards (9223372036854775808) exceeds the most a cache "
                        "accepts (65536)"));
  Cache::Options by_weight;
  by_weight.max_weight = std::numeric_limits<uint64_t>::max();
  by_weight.weigher = [](const int&, const int&) { return uint64_t{1}; };
  by_weight.shards = kHuge;
  EXPECT_EQ(Cache::Create(by_weight).status().code(), absl::StatusCode::kInvalidArgument);
  by_weight.shards = kMaxCacheShards * 2;
  EXPECT_EQ(Cache::Create(by_weight).status().code(), absl::StatusCode::kInvalidArgument);
  by_weight.shards = 64;
  cache = Cache::Create(by_weight);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->ShardCount(), 64u);
}

// Per-shard weight budgets near UINT64_MAX / shards do not wrap either.
TEST(ConcurrentBoundedCacheTest, WeightsNearTheShardBudgetNeverWrap) {
  using Cache = ConcurrentBoundedCache<int, uint64_t>;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  Cache::Options options;
  options.max_weight = kMax;
  options.shards = 1;
  options.weigher = [](const int&, const uint64_t& w) { return w; };
  auto cache = Cache::Create(options);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE((*cache)->Put(1, kMax - 2).ok());
  ASSERT_TRUE((*cache)->Put(2, 3).ok());  // 1 has to go.
  EXPECT_EQ((*cache)->Get(1), std::nullopt);
  EXPECT_EQ((*cache)->Get(2), 3u);
  EXPECT_EQ((*cache)->Stats().weight, 3u);
  EXPECT_EQ((*cache)->Stats().evictions, 1u);
}

TEST(ConcurrentBoundedCacheTest, BoundsAreSplitExactlyOverShards) {
  using Cache = ConcurrentBoundedCache<int, int>;
  Cache::Options options;
  options.max_entries = 70;  // 4 shards: 18, 18, 17, 17.
  options.shards = 4;
  auto cache = Cache::Create(options);
  ASSERT_TRUE(cache.ok());
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE((*cache)->Put(i, i).ok());
  EXPECT_EQ((*cache)->Size(), 70u);
  EXPECT_EQ((*cache)->Stats().evictions, 10000u - 70u);
}

TEST(ConcurrentBoundedCacheTest, OneShardIsExactLru) {
  using Cache = ConcurrentBoundedCache<int, int>;
  Cache::Options options;
  options.max_entries = 2;
  options.shards = 1;
  auto cache = Cache::Create(options);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->Put(1, 10).ok());
  ASSERT_TRUE((*cache)->Put(2, 20).ok());
  EXPECT_EQ((*cache)->Get(1), 10);
  ASSERT_TRUE((*cache)->Put(3, 30).ok());
  EXPECT_EQ((*cache)->Get(2), std::nullopt);
  EXPECT_EQ((*cache)->Get(1), 10);
  EXPECT_EQ((*cache)->Get(3), 30);
}

// Four threads mixing Put/Get/GetOrCompute/Erase: every lookup is counted
// exactly once, the bound holds, and every value read is the one written
// for its key.
TEST(ConcurrentBoundedCacheTest, ThreadsHammeringKeepCountsAndBounds) {
  using Cache = ConcurrentBoundedCache<int, int>;
  Cache::Options options;
  options.max_entries = 256;
  auto made = Cache::Create(options);
  ASSERT_TRUE(made.ok());
  Cache& cache = **made;
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::atomic<int> wrong{0};
  std::atomic<uint64_t> lookups{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        const int key = (i * 7 + t * 13) % 1024;
        switch (i % 4) {
          case 0:
            if (!cache.Put(key, key * 3).ok()) ++wrong;
            break;
          case 1: {
            ++lookups;
            std::optional<int> v = cache.Get(key);
            if (v.has_value() && *v != key * 3) ++wrong;
            break;
          }
          case 2: {
            ++lookups;
            absl::StatusOr<int> v = cache.GetOrCompute(key, [key] { return key * 3; });
            if (!v.ok() || *v != key * 3) ++wrong;
            break;
          }
          default:
            cache.Erase(key + 1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CacheStats stats = cache.Stats();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(stats.hits + stats.misses, lookups.load());
  EXPECT_LE(cache.Size(), 256u);
}

TEST(ConcurrentBoundedCacheTest, PythonValuesFromManyThreadsWithoutTheGil) {
  using Cache = ConcurrentBoundedCache<int, Ref>;
  Cache::Options options;
  options.max_entries = 8;
  auto made = Cache::Create(options);
  ASSERT_TRUE(made.ok());
  Ref keep = testing::Eval("object()");
  const Py_ssize_t base = keep.handle().RefCount();
  {
    GilRelease release;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 2000; ++i) {
          Ref copy;
          {
            GilAcquire gil;
            copy = keep;
          }
          (void)(*made)->Put((i + t) % 32, std::move(copy));
          std::optional<Ref> got = (*made)->Get(i % 32);
          GilAcquire gil;
          if (got.has_value() && got->get() != keep.get()) ADD_FAILURE();
          got.reset();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  EXPECT_EQ(keep.handle().RefCount(), base + static_cast<Py_ssize_t>((*made)->Size()));
  made->reset();
  EXPECT_EQ(keep.handle().RefCount(), base);
}

// ---------------------------------------------------------- no self-leak

int64_t AllocatedBlocks() {
  Ref n = testing::Eval("sys.getallocatedblocks()", "import sys");
  return n ? PyLong_AsLongLong(n.get()) : -1;
}

// A million cache operations on Python values after a warm-up: the objects
// Python holds (sys.getallocatedblocks) and the shared value's reference
// count return to where they were, and RSS stays within 2 MiB (allocator
// noise; a per-operation leak of even 8 bytes would be 8 MB).
TEST(BoundedCacheSoakTest, MillionOperationsLeaveRefcountsAndBlocksFlat) {
  RefCache::Options options;
  options.max_entries = 1000;
  auto cache = RefCache::Create(options);
  ASSERT_TRUE(cache.ok());
  Ref value = testing::Eval("'payload' * 3");
  auto cycle = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const int key = i % 4096;
      if (i % 2 == 0) {
        (void)cache->Put(key, value);
      } else {
        std::optional<Ref> got = cache->Get(key);
      }
    }
  };
  cycle(20000);  // Warm-up: the map reaches its steady size.
  cache->Clear();
  const Py_ssize_t refs = value.handle().RefCount();
  const int64_t blocks = AllocatedBlocks();
  auto before = SampleProcess();
  ASSERT_TRUE(before.ok());
  cycle(1'000'000);
  cache->Clear();
  auto after = SampleProcess();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(value.handle().RefCount(), refs);
  EXPECT_LE(AllocatedBlocks() - blocks, 8);  // Copies of a Ref allocate nothing.
  if (kRssIsMeaningful) {
    EXPECT_LT(after->rss_bytes - before->rss_bytes, 2 << 20);
  }
  EXPECT_EQ(cache->Stats().hits + cache->Stats().misses, 510'000u);
}

}  // namespace
}  // namespace leakguard
