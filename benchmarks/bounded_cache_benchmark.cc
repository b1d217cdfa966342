// C++ BoundedCache throughput, single-threaded and with 2 threads, against
// the textbook LRU (std::list of entries + std::unordered_map of list
// iterators; behind one std::mutex for the threaded case), on the same keys.
//
//   bounded_cache/get_hit/...          Get of a present key
//   bounded_cache/put_evict/...        Put of a new key into a full cache
//   bounded_cache/mixed_2_threads/...  2 threads, 80% Get / 20% Put over
//                                      4x more keys than entries; one
//                                      iteration = 2 x 20,000 operations
//   bounded_cache/mixed_2_threads_absl_deadlock_detection/...
//                                      the same with absl::Mutex's deadlock
//                                      detector on. Debian's Abseil is built
//                                      without NDEBUG, so the detector (a
//                                      process-wide graph behind one
//                                      spinlock, consulted on every Lock) is
//                                      on unless the host turns it off with
//                                      absl::SetMutexDeadlockDetectionMode;
//                                      the other cases run with it off. The
//                                      shards' locks are std::mutex (leaf
//                                      locks, nothing to detect), so this
//                                      row shows that a host with the
//                                      detector on pays nothing for it in
//                                      the cache.
//
// LEAKGUARD_BENCH_SMOKE=1: 2 x 200 operations per threaded iteration.

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bench_main.h"
#include "benchmark/benchmark.h"
#include "leakguard/bounded_cache.h"

namespace {

constexpr std::size_t kEntries = 4096;

using leakguard::bench::Smoke;

// The peer: the LRU cache most code bases write by hand.
template <typename K, typename V>
class ListLru {
 public:
  explicit ListLru(std::size_t capacity) : capacity_(capacity) {}
  std::optional<V> Get(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    list_.splice(list_.begin(), list_, it->second);
    return it->second->second;
  }
  void Put(const K& key, V value) {
    auto it = map_.find(key);
    if (it != map_.end()) {
      it->second->second = std::move(value);
      list_.splice(list_.begin(), list_, it->second);
      return;
    }
    list_.emplace_front(key, std::move(value));
    map_[key] = list_.begin();
    if (map_.size() > capacity_) {
      map_.erase(list_.back().first);
      list_.pop_back();
    }
  }

 private:
  std::size_t capacity_;
  std::list<std::pair<K, V>> list_;
  std::unordered_map<K, typename std::list<std::pair<K, V>>::iterator> map_;
};

template <typename K, typename V>
class LockedListLru {
 public:
  explicit LockedListLru(std::size_t capacity) : lru_(capacity) {}
  std::optional<V> Get(const K& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return lru_.Get(key);
  }
  void Put(const K& key, V value) {
    std::lock_guard<std::mutex> lock(mu_);
    lru_.Put(key, std::move(value));
  }

 private:
  std::mutex mu_;
  ListLru<K, V> lru_;
};

using Cache = leakguard::BoundedCache<uint64_t, uint64_t>;
using Concurrent = leakguard::ConcurrentBoundedCache<uint64_t, uint64_t>;

Cache MakeCache() {
  Cache::Options options;
  options.max_entries = kEntries;
  return *Cache::Create(options);
}

template <typename C>
void FillAndHit(benchmark::State& state, C& cache) {
  for (uint64_t i = 0; i < kEntries; ++i) (void)cache.Put(i, i);
  uint64_t i = 0;
  for (auto _ : state) {
    auto v = cache.Get((i++ * 7) & (kEntries - 1));
    benchmark::DoNotOptimize(v);
  }
}

void GetHitLeakguard(benchmark::State& state) {
  Cache cache = MakeCache();
  FillAndHit(state, cache);
}

void GetHitList(benchmark::State& state) {
  ListLru<uint64_t, uint64_t> cache(kEntries);
  FillAndHit(state, cache);
}

template <typename C>
void FillAndEvict(benchmark::State& state, C& cache) {
  uint64_t i = 0;
  for (; i < kEntries; ++i) (void)cache.Put(i, i);
  for (auto _ : state) {
    (void)cache.Put(i, i);
    ++i;
  }
}

void PutEvictLeakguard(benchmark::State& state) {
  Cache cache = MakeCache();
  FillAndEvict(state, cache);
}

void PutEvictList(benchmark::State& state) {
  ListLru<uint64_t, uint64_t> cache(kEntries);
  FillAndEvict(state, cache);
}

// Two threads, each a fixed batch of operations, per iteration.
template <typename C>
void Mixed2Threads(benchmark::State& state, C& cache) {
  const int ops = Smoke() ? 200 : 20000;
  for (uint64_t i = 0; i < kEntries; ++i) (void)cache.Put(i, i);
  auto work = [&cache, ops](uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < ops; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;  // LCG
      const uint64_t key = (x >> 33) & (4 * kEntries - 1);
      if ((x >> 20) % 5 == 0) {
        (void)cache.Put(key, key);
      } else {
        auto v = cache.Get(key);
        benchmark::DoNotOptimize(v);
      }
    }
  };
  uint64_t round = 0;
  for (auto _ : state) {
    std::thread a(work, 2 * round + 1);
    std::thread b(work, 2 * round + 2);
    a.join();
    b.join();
    ++round;
  }
  state.SetItemsProcessed(state.iterations() * 2 * ops);
}

void Mixed2ThreadsLeakguard(benchmark::State& state) {
  Concurrent::Options options;
  options.max_entries = kEntries;
  auto cache = Concurrent::Create(options);
  Mixed2Threads(state, **cache);
}

void Mixed2ThreadsList(benchmark::State& state) {
  LockedListLru<uint64_t, uint64_t> cache(kEntries);
  Mixed2Threads(state, cache);
}

// Runs `body` with absl's deadlock detector on, then turns it off again.
template <void (*Body)(benchmark::State&)>
void WithDeadlockDetection(benchmark::State& state) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kReport);
  Body(state);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace

BENCHMARK(GetHitLeakguard)->Name("bounded_cache/get_hit/leakguard");
BENCHMARK(GetHitList)->Name("bounded_cache/get_hit/std_list_lru");
BENCHMARK(PutEvictLeakguard)->Name("bounded_cache/put_evict/leakguard");
BENCHMARK(PutEvictList)->Name("bounded_cache/put_evict/std_list_lru");
BENCHMARK(Mixed2ThreadsLeakguard)
    ->Name("bounded_cache/mixed_2_threads/leakguard")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(Mixed2ThreadsList)
    ->Name("bounded_cache/mixed_2_threads/std_list_lru_mutex")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(WithDeadlockDetection<Mixed2ThreadsLeakguard>)
    ->Name("bounded_cache/mixed_2_threads_absl_deadlock_detection/leakguard")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(WithDeadlockDetection<Mixed2ThreadsList>)
    ->Name("bounded_cache/mixed_2_threads_absl_deadlock_detection/std_list_lru_mutex")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return leakguard::bench::RunRegistered(argc, argv);
}
