// leakguard/bounded_cache.h
//
// BoundedCache: a least-recently-used cache that cannot grow without bound,
// the leak-proof replacement for a map used as a memo ("unbounded_cache" is
// the most common leak cause of all).
//
//   BoundedCacheOptions<std::string, Ref> options;
//   options.max_entries = 1000;
//   options.ttl = absl::Minutes(5);
//   LEAKGUARD_ASSIGN_OR_RETURN(auto cache, (BoundedCache<std::string, Ref>::Create(options)));
//   LEAKGUARD_ASSIGN_OR_RETURN(Ref parsed, cache.GetOrCompute(path, [&] { return Parse(path); }));
//
// (The macros are internal to leakguard; a host writes the same with
// `if (!x.ok()) return x.status();`.)
//
// Bounds: an entry count, a total weight (a user weigher), or both; when a
// bound is passed the least recently used entries go. Time-to-live: per
// cache and per entry, measured on an injectable clock. Expired entries are
// dropped when they are looked up, when they reach the LRU end, or by
// PurgeExpired().
//
// ConcurrentBoundedCache is the thread-safe variant: the keys are spread over
// shards, each an independent LRU under its own lock, each holding 1/N of
// the bounds (so recency is exact within a shard, approximate across
// shards; use one shard for exact global LRU order). A shard's lock is a
// leaf: nothing else is locked, and no callback, `compute` or Python code
// runs, while it is held, so it cannot take part in a deadlock. It is a
// std::mutex, not an absl::Mutex: Abseil built without NDEBUG (Debian's,
// for one) runs absl::Mutex's deadlock detector unless the host turns it
// off with absl::SetMutexDeadlockDetectionMode, and that detector, one
// process-wide graph behind one lock consulted on every Lock(), would make
// the shards contend on that lock instead of on nothing.
//
// Cost of a hit: one bucket of a power-of-two hash table (no division),
// one node holding key, value and links, and the move to the front; no
// allocation.
//
// Values that hold Python objects (Ref, and the containers of Ref listed
// under HoldsPythonObjects) are copied and released with the GIL held: the
// cache takes it (GilAcquire) itself, so evictions, Erase(), Clear() and the
// destructor are safe on threads that do not hold it. Eviction callbacks and
// value destruction always run after the cache's lock is dropped, so a
// `__del__` or a callback may use the cache again.

#ifndef LEAKGUARD_BOUNDED_CACHE_H_
#define LEAKGUARD_BOUNDED_CACHE_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {

/// Trait: true when copying or destroying a `T` changes Python reference
/// counts, so it must happen with the GIL held. True for Ref and for
/// std::optional, std::shared_ptr, std::unique_ptr, std::vector, std::pair and
/// std::tuple of such types. Specialize it (as std::true_type) for your own
/// types that hold a Ref.
template <typename T>
struct HoldsPythonObjects : std::false_type {};
/// A Ref holds a Python object.
template <>
struct HoldsPythonObjects<Ref> : std::true_type {};
/// An optional holds what its value type holds.
template <typename T>
struct HoldsPythonObjects<std::optional<T>> : HoldsPythonObjects<T> {};
/// The last shared_ptr destroys what it points at.
template <typename T>
struct HoldsPythonObjects<std::shared_ptr<T>> : HoldsPythonObjects<T> {};
/// A unique_ptr destroys what it points at.
template <typename T, typename D>
struct HoldsPythonObjects<std::unique_ptr<T, D>> : HoldsPythonObjects<T> {};
/// A vector holds what its elements hold.
template <typename T, typename A>
struct HoldsPythonObjects<std::vector<T, A>> : HoldsPythonObjects<T> {};
/// A pair holds what either member holds.
template <typename A, typename B>
struct HoldsPythonObjects<std::pair<A, B>>
    : std::disjunction<HoldsPythonObjects<A>, HoldsPythonObjects<B>> {};
/// A tuple holds what any element holds.
template <typename... T>
struct HoldsPythonObjects<std::tuple<T...>> : std::disjunction<HoldsPythonObjects<T>...> {};

/// `HoldsPythonObjects<T>::value`, ignoring const/volatile.
template <typename T>
inline constexpr bool kHoldsPythonObjects = HoldsPythonObjects<std::remove_cv_t<T>>::value;

/// Why the cache dropped an entry on its own (reported to `on_evict`).
enum class EvictionReason {
  /// A count or weight bound was passed; the entry was the least recently
  /// used.
  kCapacity,
  /// Its time-to-live had passed.
  kExpired,
};

/// Counters of a cache since it was created (Clear() does not reset them).
struct CacheStats {
  /// Lookups (Get, GetOrCompute) that found a live entry.
  uint64_t hits = 0;
  /// Lookups that found nothing, or an expired entry.
  uint64_t misses = 0;
  /// Entries dropped to keep within the count or weight bound.
  uint64_t evictions = 0;
  /// Entries dropped because their time-to-live had passed.
  uint64_t expirations = 0;
  /// Entries held now.
  std::size_t entries = 0;
  /// Sum of the weights of the entries held now (the entry count when no
  /// weigher is set).
  uint64_t weight = 0;
};

/// Most shards a ConcurrentBoundedCache accepts (each is a cache line-aligned
/// allocation with its own mutex; more than this only costs memory).
inline constexpr std::size_t kMaxCacheShards = std::size_t{1} << 16;

/// Configuration of a BoundedCache or ConcurrentBoundedCache.
template <typename K, typename V>
struct BoundedCacheOptions {
  /// Most entries held; 0 for no count bound (then max_weight is required).
  std::size_t max_entries = 0;
  /// Largest total weight held; 0 for no weight bound. Needs `weigher`.
  /// Any value up to UINT64_MAX works: room is made before an entry's
  /// weight is added, so the total (Weight(), CacheStats::weight) never
  /// exceeds max_weight and never wraps.
  uint64_t max_weight = 0;
  /// Weight of one entry, computed once when it is stored. Must not throw,
  /// must not call into the cache. Required exactly when max_weight > 0.
  /// A weight of 0 counts as 1: every entry weighs at least 1, so a cache
  /// with only a weight bound still holds at most max_weight entries (a
  /// weigher returning 0 for everything makes max_weight a count bound).
  std::function<uint64_t(const K&, const V&)> weigher;
  /// Time-to-live of entries stored without one of their own;
  /// absl::InfiniteDuration() (the default) for none. Must be positive.
  absl::Duration ttl = absl::InfiniteDuration();
  /// The clock TTLs are measured on; empty for absl::Now(). Tests inject a
  /// fake one. Called with the cache's lock held: must be thread-safe, must
  /// not throw and must not call into the cache.
  std::function<absl::Time()> clock;
  /// Called for every entry the cache drops on its own (capacity or expiry;
  /// not for Erase(), Clear(), a replaced value or destruction), after the
  /// cache's lock is dropped, with the GIL held when V holds Python objects.
  /// It may move the value out. Must not throw.
  std::function<void(const K&, V&, EvictionReason)> on_evict;
  /// ConcurrentBoundedCache only: number of shards, a power of two, at most
  /// kMaxCacheShards (65536) and at most max_entries (or max_weight) when
  /// that is set; 0 picks min(16, max_entries) rounded down to a power of
  /// two. Anything else is InvalidArgument from Create(). Ignored by
  /// BoundedCache.
  std::size_t shards = 0;
};

namespace internal {

// The unsynchronized LRU behind both caches: one heap node per entry, found
// through an intrusive chained hash table and threaded on an intrusive
// recency list (head_.next is the most recent, head_.prev the least).
//
// A hit costs what the textbook std::list + std::unordered_map LRU's does,
// less: the bucket (a power of two, picked from the high bits of a mix of
// the user's hash: no division), the node, which
// holds the key, the value and the links together (no second node to
// reach through an iterator), and the two neighbours the move to the front
// relinks. No allocation and no lock beyond the caller's. Removals hand the
// entries to the caller in `out`, which destroys them (and calls on_evict)
// outside any lock, under the GIL when needed.
template <typename K, typename V, typename Hash, typename Eq>
class LruCore {
 public:
  struct Dropped {
    K key;
    V value;
    std::optional<EvictionReason> reason;  // Set: report to on_evict.
  };
  // Most operations drop at most one entry: no heap allocation for those.
  using DroppedList = absl::InlinedVector<Dropped, 1>;

  LruCore(std::size_t max_entries, uint64_t max_weight, const BoundedCacheOptions<K, V>* options)
      : max_entries_(max_entries),
        max_weight_(max_weight),
        options_(options),
        buckets_(new Node*[std::size_t{1} << kInitialBits]()),
        shift_(64 - kInitialBits) {
    head_.prev = head_.next = &head_;
  }
  // The list points at head_: a core never moves (both caches hold it on
  // the heap).
  LruCore(const LruCore&) = delete;
  LruCore& operator=(const LruCore&) = delete;
  // The caches Clear() first (under the GIL when V needs it); this only
  // frees what is left.
  ~LruCore() {
    for (Link* l = head_.next; l != &head_;) {
      Node* node = static_cast<Node*>(l);
      l = l->next;
      delete node;
    }
  }

  // The live value for `key` (now the most recent), or null on a miss. An
  // expired entry goes to `out`; on a hit `out` is left untouched.
  V* Get(const K& key, DroppedList* out) {
    Node* node = Find(key, Mix(key));
    if (node == nullptr) [[unlikely]] {
      ++stats_.misses;
      return nullptr;
    }
    if (node->has_ttl && DropIfExpired(node, out)) [[unlikely]]
      return nullptr;
    MoveToFront(node);
    ++stats_.hits;
    return &node->value;
  }

  absl::Status Put(K key, V value, absl::Duration ttl, uint64_t max_weight, DroppedList* out) {
    uint64_t weight = 1;
    if (max_weight_ > 0) {
      // Every entry weighs at least 1, so a weight bound is also a count
      // bound (max_weight entries at most), whatever the weigher says.
      weight = std::max<uint64_t>(options_->weigher(key, value), 1);
      if (weight > max_weight_) {
        out->push_back(Dropped{std::move(key), std::move(value), std::nullopt});
        return absl::InvalidArgumentError(
            absl::StrCat("entry weighs ", weight, ", more than the cache's bound of ", max_weight_,
                         max_weight_ == max_weight
                             ? std::string()
                             : absl::StrCat(" per shard (max_weight ", max_weight, " over shards)"),
                         "; nothing was stored"));
      }
    }
    const absl::Time expires =
        ttl == absl::InfiniteDuration() ? absl::InfiniteFuture() : Now() + ttl;
    const uint64_t hash = Mix(key);
    Node* node = Find(key, hash);
    if (node == nullptr) {
      node = new Node(std::move(key), std::move(value), hash, expires);
      Chain(node);
      LinkFront(node);
    } else {
      out->push_back(Dropped{std::move(key), std::move(node->value), std::nullopt});
      node->value = std::move(value);
      total_weight_ -= node->weight;
      node->weight = 0;
      node->expires = expires;
      node->has_ttl = expires != absl::InfiniteFuture();
      MoveToFront(node);
    }
    // Room for `weight` is made before it is added (the entry itself, now
    // the most recent and weighing 0, is never the one evicted): the total
    // never exceeds max_weight_, so it cannot wrap even when max_weight_ is
    // near UINT64_MAX.
    if (max_weight_ > 0) EvictUntilRoomFor(weight, out);
    node->weight = weight;
    total_weight_ += weight;
    EvictToBounds(out);
    return absl::OkStatus();
  }

  bool Erase(const K& key, DroppedList* out) {
    Node* node = Find(key, Mix(key));
    if (node == nullptr) return false;
    Remove(node, std::nullopt, out);
    return true;
  }

  // Least recently used first.
  void Clear(DroppedList* out) {
    out->reserve(out->size() + size_);
    while (head_.prev != &head_) {
      Remove(static_cast<Node*>(head_.prev), std::nullopt, out);
    }
  }

  // Least recently used first.
  std::size_t PurgeExpired(DroppedList* out) {
    std::size_t purged = 0;
    absl::Time now = absl::InfinitePast();
    for (Link* l = head_.prev; l != &head_;) {
      Node* node = static_cast<Node*>(l);
      l = l->prev;
      if (node->expires == absl::InfiniteFuture()) continue;
      if (now == absl::InfinitePast()) now = Now();
      if (now >= node->expires) {
        ++stats_.expirations;
        Remove(node, EvictionReason::kExpired, out);
        ++purged;
      }
    }
    return purged;
  }

  std::vector<K> KeysByRecency() const {
    std::vector<K> keys;
    keys.reserve(size_);
    for (const Link* l = head_.next; l != &head_; l = l->next) {
      keys.push_back(static_cast<const Node*>(l)->key);
    }
    return keys;
  }

  std::size_t size() const { return size_; }
  uint64_t weight() const { return total_weight_; }
  CacheStats stats() const {
    CacheStats s = stats_;
    s.entries = size_;
    s.weight = total_weight_;
    return s;
  }

 private:
  static constexpr int kInitialBits = 4;

  struct Link {
    Link* prev = nullptr;
    Link* next = nullptr;
  };
  struct Node : Link {
    Node(K k, V v, uint64_t h, absl::Time e)
        : hash(h),
          key(std::move(k)),
          value(std::move(v)),
          expires(e),
          has_ttl(e != absl::InfiniteFuture()) {}
    Node* chain = nullptr;  // The next node of the same bucket.
    uint64_t hash;          // Mix() of the key.
    K key;
    V value;
    absl::Time expires;
    uint64_t weight = 0;
    bool has_ttl = false;  // expires != absl::InfiniteFuture().
  };

  // The user's hash mixed (std::hash of an integer is the identity): both
  // halves of its 128-bit product with an odd constant, folded, so that
  // every bit of the result depends on every bit of the hash. The bucket
  // is the top bits; ConcurrentBoundedCache picks the shard from the top
  // bits of the plain product, which this does not follow.
  uint64_t Mix(const K& key) const {
    const absl::uint128 product =
        absl::uint128(static_cast<uint64_t>(hash_(key))) * 0xD6E8FEB86659FD93ull;
    return absl::Uint128High64(product) ^ absl::Uint128Low64(product);
  }
  Node** BucketOf(uint64_t hash) const {
    return &buckets_[static_cast<std::size_t>(hash >> shift_)];
  }

  Node* Find(const K& key, uint64_t hash) const {
    for (Node* n = *BucketOf(hash); n != nullptr; n = n->chain) {
      if (n->hash == hash && eq_(n->key, key)) return n;
    }
    return nullptr;
  }

  // Adds `node` to its bucket, doubling the table first when it holds as
  // many entries as buckets.
  void Chain(Node* node) {
    const int bits = 64 - shift_;
    if (size_ >= (std::size_t{1} << bits) && bits < 62) {
      const int new_bits = bits + 1;
      std::unique_ptr<Node*[]> grown(new Node*[std::size_t{1} << new_bits]());
      buckets_.swap(grown);
      shift_ = 64 - new_bits;
      for (Link* l = head_.next; l != &head_; l = l->next) {
        Node* n = static_cast<Node*>(l);
        Node** bucket = BucketOf(n->hash);
        n->chain = *bucket;
        *bucket = n;
      }
    }
    Node** bucket = BucketOf(node->hash);
    node->chain = *bucket;
    *bucket = node;
    ++size_;
  }

  void Unchain(Node* node) {
    Node** p = BucketOf(node->hash);
    while (*p != node) p = &(*p)->chain;
    *p = node->chain;
    --size_;
  }

  // Get() of an entry with a time-to-live: drops it (a miss) if expired.
  [[gnu::noinline]] bool DropIfExpired(Node* node, DroppedList* out) {
    if (Now() < node->expires) return false;
    ++stats_.misses;
    ++stats_.expirations;
    Remove(node, EvictionReason::kExpired, out);
    return true;
  }

  absl::Time Now() const { return options_->clock ? options_->clock() : absl::Now(); }

  void LinkFront(Link* l) {
    l->prev = &head_;
    l->next = head_.next;
    head_.next->prev = l;
    head_.next = l;
  }
  static void Unlink(Link* l) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
  }
  void MoveToFront(Link* l) {
    if (head_.next == l) return;
    Unlink(l);
    LinkFront(l);
  }

  void Remove(Node* node, std::optional<EvictionReason> reason, DroppedList* out) {
    Unlink(node);
    Unchain(node);
    total_weight_ -= node->weight;
    std::unique_ptr<Node> owned(node);
    out->push_back(Dropped{std::move(node->key), std::move(node->value), reason});
  }

  bool OverBounds() const {
    return (max_entries_ > 0 && size_ > max_entries_) ||
           (max_weight_ > 0 && total_weight_ > max_weight_);
  }

  // Evicts least recently used entries until `weight` more fits under
  // max_weight_ (weight <= max_weight_ is checked by the caller).
  void EvictUntilRoomFor(uint64_t weight, DroppedList* out) {
    while (total_weight_ > max_weight_ - weight && head_.prev != &head_) {
      EvictOldest(out);
    }
  }

  void EvictOldest(DroppedList* out) {
    Node* oldest = static_cast<Node*>(head_.prev);
    const bool expired = oldest->expires != absl::InfiniteFuture() && Now() >= oldest->expires;
    if (expired) {
      ++stats_.expirations;
    } else {
      ++stats_.evictions;
    }
    Remove(oldest, expired ? EvictionReason::kExpired : EvictionReason::kCapacity, out);
  }

  void EvictToBounds(DroppedList* out) {
    while (OverBounds() && head_.prev != &head_) EvictOldest(out);
  }

  std::size_t max_entries_;
  uint64_t max_weight_;
  const BoundedCacheOptions<K, V>* options_;  // Owned by the cache.
  std::unique_ptr<Node*[]> buckets_;
  int shift_;  // 64 - log2(bucket count).
  std::size_t size_ = 0;
  Link head_;  // Sentinel of the recency list.
  uint64_t total_weight_ = 0;
  CacheStats stats_;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] Eq eq_;
};

// A shard's lock: a std::mutex (see the file comment for why not an
// absl::Mutex), annotated for Clang's thread-safety analysis.
class ABSL_LOCKABLE ShardMutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE ShardLock {
 public:
  explicit ShardLock(ShardMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~ShardLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  ShardLock(const ShardLock&) = delete;
  ShardLock& operator=(const ShardLock&) = delete;

 private:
  ShardMutex* mu_;
};

// Destroys dropped entries after reporting evictions to `on_evict`: with the
// GIL held when K or V holds Python objects. Without a running interpreter
// such values cannot be released safely; they are leaked on purpose (a
// cache holding Refs must not outlive the interpreter).
template <typename K, typename V, typename DroppedList>
void DisposeDropped(const BoundedCacheOptions<K, V>& options, DroppedList* dropped) {
  if (dropped->empty()) return;
  // In order (least recently used first): report, then destroy the value.
  auto report_and_clear = [&] {
    for (auto& d : *dropped) {
      if (options.on_evict && d.reason.has_value()) {
        options.on_evict(d.key, d.value, *d.reason);
      }
      [[maybe_unused]] V doomed = std::move(d.value);
    }
    dropped->clear();  // Moved-from values: nothing of Python's left.
  };
  if constexpr (kHoldsPythonObjects<V>) {
    GilAcquire gil;
    if (!gil.ok()) {
      new DroppedList(std::move(*dropped));  // Deliberate leak.
      dropped->clear();
      return;
    }
    report_and_clear();
  } else {
    report_and_clear();
  }
}

template <typename K, typename V>
absl::Status ValidateCacheOptions(const BoundedCacheOptions<K, V>& options) {
  if (options.max_entries == 0 && options.max_weight == 0) {
    return absl::InvalidArgumentError(
        "a BoundedCache needs a bound: set max_entries and/or max_weight "
        "(a cache without one is the leak it is meant to prevent)");
  }
  if (options.max_weight > 0 && !options.weigher) {
    return absl::InvalidArgumentError(
        "max_weight is set but weigher is empty: give a function that "
        "weighs an entry");
  }
  if (options.max_weight == 0 && options.weigher) {
    return absl::InvalidArgumentError(
        "weigher is set but max_weight is 0: set the weight bound, or drop "
        "the weigher");
  }
  if (options.ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl must be positive (or absl::InfiniteDuration() for none), got ",
                     absl::FormatDuration(options.ttl)));
  }
  return absl::OkStatus();
}

inline absl::Status ValidateEntryTtl(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an entry's ttl must be positive (or absl::InfiniteDuration() for "
                     "none), got ",
                     absl::FormatDuration(ttl)));
  }
  return absl::OkStatus();
}

// The value a GetOrCompute() callback produced, as a StatusOr.
template <typename V, typename R>
absl::StatusOr<V> ToStatusOr(R&& result) {
  return absl::StatusOr<V>(std::forward<R>(result));
}

// The GIL for the whole of an operation on a cache whose values hold Python
// objects; nothing otherwise. Taken before any cache lock, never inside one,
// so the lock order is always GIL -> shard mutex.
template <typename V>
class MaybeGil {
 public:
  MaybeGil() = default;
  MaybeGil(const MaybeGil&) = delete;
  MaybeGil& operator=(const MaybeGil&) = delete;
  bool ok() const { return true; }
};
template <typename V>
requires kHoldsPythonObjects<V>
class MaybeGil<V> {
 public:
  MaybeGil() = default;
  MaybeGil(const MaybeGil&) = delete;
  MaybeGil& operator=(const MaybeGil&) = delete;
  bool ok() const { return gil_.ok(); }

 private:
  GilAcquire gil_;
};

// PutWithTtl() of both caches: checks the entry's ttl, then stores through
// `store(key, value, &dropped)` (which takes whatever lock it needs and
// returns the core's status), and disposes of what was dropped: evicted
// entries, or the value itself when the ttl or its weight is refused.
template <typename Core, typename K, typename V, typename Store>
absl::Status PutThrough(const BoundedCacheOptions<K, V>& options, K key, V value,
                        absl::Duration ttl, Store&& store) {
  [[maybe_unused]] MaybeGil<V> gil;
  typename Core::DroppedList dropped;
  absl::Status status = ValidateEntryTtl(ttl);
  if (status.ok()) {
    status = store(std::move(key), std::move(value), &dropped);
  } else {
    dropped.push_back(typename Core::Dropped{std::move(key), std::move(value), std::nullopt});
  }
  DisposeDropped(options, &dropped);
  return status;
}

// GetOrCompute() of both caches, through their Get() and Put().
template <typename V, typename Cache, typename K, typename F>
absl::StatusOr<V> GetOrComputeIn(Cache& cache, const K& key, F&& compute) {
  [[maybe_unused]] MaybeGil<V> gil;
  if (std::optional<V> hit = cache.Get(key)) return *std::move(hit);
  absl::StatusOr<V> computed = ToStatusOr<V>(std::forward<F>(compute)());
  if (!computed.ok()) return computed;
  cache.Put(key, *computed).IgnoreError();  // Too heavy: returned, not stored.
  return computed;
}

}  // namespace internal

/// A bounded LRU cache with optional time-to-live. Not thread-safe: use one
/// per thread, guard it yourself, or use ConcurrentBoundedCache.
///
/// REQUIRES: K does not hold Python objects (its hash and equality run
/// inside the cache); V's moved-from state holds no Python reference.
/// Values that hold Python objects: every operation takes the GIL itself;
/// with no interpreter running, Get() misses and dropped values are leaked
/// rather than released without the GIL.
template <typename K, typename V, typename Hash = std::hash<K>, typename Eq = std::equal_to<K>>
class BoundedCache {
  static_assert(!kHoldsPythonObjects<K>,
                "BoundedCache keys must not hold Python objects; key by a "
                "C++ value (a string, an id) instead");

 public:
  /// The configuration type.
  using Options = BoundedCacheOptions<K, V>;

  /// Makes a cache. InvalidArgument when no bound is set, when max_weight
  /// and weigher are not given together, or when ttl is not positive.
  static absl::StatusOr<BoundedCache> Create(Options options) {
    if (absl::Status valid = internal::ValidateCacheOptions(options); !valid.ok()) {
      return valid;
    }
    return BoundedCache(std::move(options));
  }

  /// Moves the entries; `other` may then only be destroyed or assigned to.
  BoundedCache(BoundedCache&&) noexcept = default;
  /// Drops this cache's entries (as the destructor does), then takes
  /// `other`'s.
  BoundedCache& operator=(BoundedCache&& other) noexcept {
    if (this != &other) {
      if (core_ != nullptr) Clear();
      options_ = std::move(other.options_);
      core_ = std::move(other.core_);
    }
    return *this;
  }
  BoundedCache(const BoundedCache&) = delete;
  BoundedCache& operator=(const BoundedCache&) = delete;
  /// Releases every value (under the GIL when V holds Python objects); no
  /// eviction callbacks.
  ~BoundedCache() {
    if (core_ != nullptr) Clear();
  }

  /// The value for `key` if present and not expired (a copy), and marks it
  /// most recently used. An expired entry is dropped (reported to on_evict
  /// as kExpired) and counts as a miss.
  std::optional<V> Get(const K& key) {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    if (!gil.ok()) return std::nullopt;
    DroppedList dropped;
    if (const V* hit = core_->Get(key, &dropped)) return *hit;
    internal::DisposeDropped(*options_, &dropped);
    return std::nullopt;
  }

  /// Stores `value` under `key` (replacing any value there) with the
  /// cache's ttl, as the most recently used entry, then evicts least
  /// recently used entries until the bounds hold.
  /// InvalidArgument when the entry alone weighs more than max_weight; the
  /// cache is then unchanged and `value` is released.
  absl::Status Put(K key, V value) {
    return PutWithTtl(std::move(key), std::move(value), options_->ttl);
  }

  /// As Put(), with this entry's own time-to-live (absl::InfiniteDuration()
  /// for none, whatever the cache's ttl). InvalidArgument for a ttl that is
  /// not positive.
  absl::Status PutWithTtl(K key, V value, absl::Duration ttl) {
    return internal::PutThrough<Core>(
        *options_, std::move(key), std::move(value), ttl, [&](K&& k, V&& v, DroppedList* dropped) {
          return core_->Put(std::move(k), std::move(v), ttl, options_->max_weight, dropped);
        });
  }

  /// The cached value for `key`, or the value `compute()` returns, which is
  /// then stored and returned. `compute` returns a V or an
  /// absl::StatusOr<V>; an error is returned as is and nothing is stored. A
  /// computed value heavier than max_weight is returned but not stored.
  /// `compute` runs with no lock held (and with the GIL held when V holds
  /// Python objects); it may use the cache.
  template <typename F>
  requires std::is_copy_constructible_v<V> absl::StatusOr<V> GetOrCompute(const K& key,
                                                                          F&& compute) {
    return internal::GetOrComputeIn<V>(*this, key, std::forward<F>(compute));
  }

  /// Removes `key`'s entry; returns whether there was one. No callback.
  bool Erase(const K& key) {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    const bool erased = core_->Erase(key, &dropped);
    internal::DisposeDropped(*options_, &dropped);
    return erased;
  }

  /// Removes every entry. No callbacks; the stats counters are kept.
  void Clear() {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    core_->Clear(&dropped);
    internal::DisposeDropped(*options_, &dropped);
  }

  /// Drops every expired entry now (each reported as kExpired); returns how
  /// many. Lookups drop expired entries lazily; call this to free their
  /// memory without waiting for a lookup or an eviction.
  std::size_t PurgeExpired() {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    const std::size_t purged = core_->PurgeExpired(&dropped);
    internal::DisposeDropped(*options_, &dropped);
    return purged;
  }

  /// Number of entries held (expired ones not yet dropped included).
  std::size_t Size() const { return core_->size(); }
  /// Total weight held (the entry count without a weigher).
  uint64_t Weight() const { return core_->weight(); }
  /// Counters and current size.
  CacheStats Stats() const { return core_->stats(); }
  /// The keys, most recently used first (for tests and diagnostics).
  std::vector<K> KeysByRecency() const { return core_->KeysByRecency(); }

 private:
  using Core = internal::LruCore<K, V, Hash, Eq>;
  using DroppedList = typename Core::DroppedList;

  explicit BoundedCache(Options options)
      : options_(std::make_unique<Options>(std::move(options))),
        core_(std::make_unique<Core>(options_->max_entries, options_->max_weight, options_.get())) {
  }

  std::unique_ptr<Options> options_;
  std::unique_ptr<Core> core_;
};

/// The thread-safe BoundedCache: keys are spread over shards (by a mix of
/// Hash), each an LRU with 1/N of max_entries and max_weight under its own
/// std::mutex (a leaf lock; see the file comment). Same operations and semantics as BoundedCache,
/// except that recency (and so eviction order) is per shard and an entry must fit in one shard's
/// weight budget (max_weight / shards).
///
/// Thread-safety: every method may be called from any thread. Callbacks,
/// `compute` and value destruction run with no shard lock held. Values that
/// hold Python objects: each operation takes the GIL before any shard lock.
template <typename K, typename V, typename Hash = std::hash<K>, typename Eq = std::equal_to<K>>
class ConcurrentBoundedCache {
  static_assert(!kHoldsPythonObjects<K>,
                "ConcurrentBoundedCache keys must not hold Python objects; key "
                "by a C++ value (a string, an id) instead");

 public:
  /// The configuration type.
  using Options = BoundedCacheOptions<K, V>;

  /// Makes a cache. InvalidArgument as BoundedCache::Create(), and when
  /// `shards` is not a power of two, exceeds kMaxCacheShards, max_entries
  /// or max_weight. Never throws for any `shards`.
  static absl::StatusOr<std::unique_ptr<ConcurrentBoundedCache>> Create(Options options) {
    if (absl::Status valid = internal::ValidateCacheOptions(options); !valid.ok()) {
      return valid;
    }
    std::size_t shards = options.shards;
    if (shards == 0) {
      shards = 16;
      if (options.max_entries > 0 && options.max_entries < shards) {
        shards = std::bit_floor(options.max_entries);
      }
    } else if (shards > kMaxCacheShards) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shards (", shards, ") exceeds the most a cache accepts (", kMaxCacheShards, ")"));
    } else if (!std::has_single_bit(shards)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shards must be a power of two (or 0 for automatic), got ", shards));
    } else if (options.max_entries > 0 && shards > options.max_entries) {
      return absl::InvalidArgumentError(absl::StrCat("shards (", shards, ") exceeds max_entries (",
                                                     options.max_entries,
                                                     "): every shard needs room for one entry"));
    }
    if (options.max_weight > 0 && options.max_weight < shards) {
      return absl::InvalidArgumentError(absl::StrCat("max_weight (", options.max_weight,
                                                     ") is below the shard count (", shards,
                                                     "): every shard needs a weight budget"));
    }
    return std::unique_ptr<ConcurrentBoundedCache>(
        new ConcurrentBoundedCache(std::move(options), shards));
  }

  ConcurrentBoundedCache(const ConcurrentBoundedCache&) = delete;
  ConcurrentBoundedCache& operator=(const ConcurrentBoundedCache&) = delete;
  ConcurrentBoundedCache(ConcurrentBoundedCache&&) = delete;
  ConcurrentBoundedCache& operator=(ConcurrentBoundedCache&&) = delete;
  /// Releases every value (under the GIL when V holds Python objects).
  /// REQUIRES: no other thread uses the cache.
  ~ConcurrentBoundedCache() { Clear(); }

  /// As BoundedCache::Get().
  std::optional<V> Get(const K& key) {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    if (!gil.ok()) return std::nullopt;
    std::optional<V> found;
    DroppedList dropped;
    Shard& shard = ShardFor(key);
    {
      internal::ShardLock lock(&shard.mu);
      if (const V* hit = shard.core.Get(key, &dropped)) found.emplace(*hit);
    }
    internal::DisposeDropped(*options_, &dropped);
    return found;
  }

  /// As BoundedCache::Put(); the weight bound is the shard's.
  absl::Status Put(K key, V value) {
    return PutWithTtl(std::move(key), std::move(value), options_->ttl);
  }

  /// As BoundedCache::PutWithTtl().
  absl::Status PutWithTtl(K key, V value, absl::Duration ttl) {
    return internal::PutThrough<Core>(
        *options_, std::move(key), std::move(value), ttl, [&](K&& k, V&& v, DroppedList* dropped) {
          Shard& shard = ShardFor(k);
          internal::ShardLock lock(&shard.mu);
          return shard.core.Put(std::move(k), std::move(v), ttl, options_->max_weight, dropped);
        });
  }

  /// As BoundedCache::GetOrCompute(). Two threads missing the same key at
  /// once may both compute it; the later Put wins.
  template <typename F>
  requires std::is_copy_constructible_v<V> absl::StatusOr<V> GetOrCompute(const K& key,
                                                                          F&& compute) {
    return internal::GetOrComputeIn<V>(*this, key, std::forward<F>(compute));
  }

  /// As BoundedCache::Erase().
  bool Erase(const K& key) {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    bool erased = false;
    {
      Shard& shard = ShardFor(key);
      internal::ShardLock lock(&shard.mu);
      erased = shard.core.Erase(key, &dropped);
    }
    internal::DisposeDropped(*options_, &dropped);
    return erased;
  }

  /// As BoundedCache::Clear(); shard by shard (not one atomic snapshot).
  void Clear() {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      internal::ShardLock lock(&shards_[i]->mu);
      shards_[i]->core.Clear(&dropped);
    }
    internal::DisposeDropped(*options_, &dropped);
  }

  /// As BoundedCache::PurgeExpired().
  std::size_t PurgeExpired() {
    [[maybe_unused]] internal::MaybeGil<V> gil;
    DroppedList dropped;
    std::size_t purged = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      internal::ShardLock lock(&shards_[i]->mu);
      purged += shards_[i]->core.PurgeExpired(&dropped);
    }
    internal::DisposeDropped(*options_, &dropped);
    return purged;
  }

  /// Entries held, summed over shards (a moment's view under concurrency).
  std::size_t Size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      internal::ShardLock lock(&shards_[i]->mu);
      n += shards_[i]->core.size();
    }
    return n;
  }

  /// Counters summed over shards.
  CacheStats Stats() const {
    CacheStats total;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      internal::ShardLock lock(&shards_[i]->mu);
      CacheStats s = shards_[i]->core.stats();
      total.hits += s.hits;
      total.misses += s.misses;
      total.evictions += s.evictions;
      total.expirations += s.expirations;
      total.entries += s.entries;
      total.weight += s.weight;
    }
    return total;
  }

  /// Number of shards in use.
  std::size_t ShardCount() const { return shard_count_; }

 private:
  using Core = internal::LruCore<K, V, Hash, Eq>;
  using DroppedList = typename Core::DroppedList;

  struct alignas(64) Shard {
    Shard(std::size_t max_entries, uint64_t max_weight, const Options* options)
        : core(max_entries, max_weight, options) {}
    mutable internal::ShardMutex mu;
    Core core ABSL_GUARDED_BY(mu);
  };

  ConcurrentBoundedCache(Options options, std::size_t shards)
      : options_(std::make_unique<Options>(std::move(options))),
        shard_count_(shards),
        shift_(64 - std::countr_zero(shards)) {
    shards_.reserve(shards);
    // Bounds split exactly: the first (max % shards) shards get one more.
    for (std::size_t i = 0; i < shards; ++i) {
      const std::size_t entries =
          options_->max_entries == 0
              ? 0
              : options_->max_entries / shards + (i < options_->max_entries % shards ? 1 : 0);
      const uint64_t weight =
          options_->max_weight == 0
              ? 0
              : options_->max_weight / shards + (i < options_->max_weight % shards ? 1 : 0);
      shards_.push_back(std::make_unique<Shard>(entries, weight, options_.get()));
    }
  }

  Shard& ShardFor(const K& key) const {
    if (shard_count_ == 1) return *shards_[0];
    // Fibonacci hashing: the shard comes from the high bits of a mix of the
    // hash, so it does not correlate with the map's bucket (low bits).
    const uint64_t h = static_cast<uint64_t>(hash_(key)) * 0x9E3779B97F4A7C15ull;
    return *shards_[static_cast<std::size_t>(h >> shift_)];
  }

  std::unique_ptr<Options> options_;
  std::size_t shard_count_;
  int shift_;
  // Each shard is its own allocation (its own cache lines, and a mutex
  // never moves).
  std::vector<std::unique_ptr<Shard>> shards_;
  Hash hash_;
};

}  // namespace leakguard

#endif  // LEAKGUARD_BOUNDED_CACHE_H_
