// EventBus: weak listeners, Subscription handles, pruning, failures, and
// emits racing subscribe/unsubscribe/owner drops on several threads.

#include "leakguard/event_bus.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/process.h"
#include "test_util.h"

namespace leakguard {
namespace {

// AddressSanitizer keeps freed memory in quarantine on purpose, so RSS is
// not a leak signal under it; the soak tests then check everything else.
constexpr bool kRssIsMeaningful = !LEAKGUARD_UNDER_ASAN;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Recorder {
  explicit Recorder(std::string n, std::vector<std::string>* l) : name(std::move(n)), log(l) {}
  void OnEvent(const std::string& what, int n) {
    log->push_back(name + ":" + what + ":" + std::to_string(n));
  }
  absl::Status OnEventStatus(const std::string& what, int) {
    log->push_back(name + ":" + what);
    return absl::OkStatus();
  }
  std::string name;
  std::vector<std::string>* log;
};

using Bus = EventBus<std::string, int>;

TEST(EventBusTest, MemberListenerIsHeldWeakly) {
  std::vector<std::string> log;
  Bus bus;
  auto owner = std::make_shared<Recorder>("a", &log);
  std::weak_ptr<Recorder> watch = owner;
  Subscription sub = bus.Subscribe(owner, &Recorder::OnEvent);
  EXPECT_EQ(bus.Size(), 1u);
  EXPECT_EQ(owner.use_count(), 1);  // The bus holds no strong reference.
  EmitResult first = bus.Emit("x", 1);
  EXPECT_EQ(first.delivered, 1u);
  owner.reset();
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(bus.Size(), 0u);
  EXPECT_FALSE(sub.active());
  EmitResult second = bus.Emit("y", 2);
  EXPECT_EQ(second.delivered, 0u);
  EXPECT_EQ(second.pruned, 1u);
  EXPECT_THAT(log, ElementsAre("a:x:1"));
}

TEST(EventBusTest, ListenersRunInSubscriptionOrder) {
  std::vector<std::string> log;
  Bus bus;
  auto a = std::make_shared<Recorder>("a", &log);
  auto b = std::make_shared<Recorder>("b", &log);
  Subscription sa = bus.Subscribe(a, &Recorder::OnEvent);
  Subscription sb = bus.Subscribe(b, &Recorder::OnEventStatus);
  Subscription sc = bus.SubscribeWithOwner(
      std::weak_ptr<Recorder>(a),
      [&log](const std::string& what, int) { log.push_back("lambda:" + what); });
  Subscription sd = bus.Subscribe(
      [&log](const std::string&, int n) { log.push_back("free:" + std::to_string(n)); });
  EXPECT_TRUE(bus.Emit("go", 7).ok());
  EXPECT_THAT(log, ElementsAre("a:go:7", "b:go", "lambda:go", "free:7"));
}

TEST(EventBusTest, DestroyingTheSubscriptionUnsubscribes) {
  std::vector<std::string> log;
  Bus bus;
  auto a = std::make_shared<Recorder>("a", &log);
  {
    Subscription sub = bus.Subscribe(a, &Recorder::OnEvent);
    EXPECT_TRUE(sub.active());
  }
  EXPECT_EQ(bus.Size(), 0u);
  EXPECT_EQ(bus.Emit("x", 1).delivered, 0u);
  EXPECT_TRUE(log.empty());
}

TEST(EventBusTest, DetachedListenerLivesAsLongAsItsOwner) {
  std::vector<std::string> log;
  Bus bus;
  auto a = std::make_shared<Recorder>("a", &log);
  bus.Subscribe(a, &Recorder::OnEvent).Detach();
  EXPECT_EQ(bus.Emit("x", 1).delivered, 1u);
  a.reset();
  EXPECT_EQ(bus.Emit("y", 2).delivered, 0u);
  EXPECT_THAT(log, ElementsAre("a:x:1"));
}

TEST(EventBusTest, OwnerlessListenerNeedsItsSubscription) {
  int calls = 0;
  Bus bus;
  Subscription sub = bus.Subscribe([&calls](const std::string&, int) { ++calls; });
  bus.Emit("x", 1);
  sub.Unsubscribe();
  sub.Unsubscribe();  // Idempotent.
  bus.Emit("x", 2);
  EXPECT_EQ(calls, 1);
}

// The callable of a dead listener is destroyed by pruning, which happens
// on the next Subscribe even if nothing is emitted.
TEST(EventBusTest, DeadListenerIsDestroyedOnNextSubscribe) {
  Bus bus;
  auto token = std::make_shared<int>(0);
  auto owner = std::make_shared<int>(1);
  bus.SubscribeWithOwner(std::weak_ptr<int>(owner), [token](const std::string&, int) {}).Detach();
  EXPECT_EQ(token.use_count(), 2);
  owner.reset();
  EXPECT_EQ(token.use_count(), 2);  // Dead but not pruned yet.
  Subscription other = bus.Subscribe([](const std::string&, int) {});
  EXPECT_EQ(token.use_count(), 1);
}

TEST(EventBusTest, FailingListenersAreReportedAndOthersStillRun) {
  std::vector<std::string> log;
  Bus bus;
  Subscription s1 = bus.Subscribe([&](const std::string&, int) {
    log.push_back("1");
    return absl::NotFoundError("no such thing");
  });
  Subscription s2 = bus.Subscribe([&](const std::string&, int) -> void {
    log.push_back("2");
    throw std::runtime_error("boom");
  });
  Subscription s3 = bus.Subscribe([&](const std::string&, int) { log.push_back("3"); });
  EmitResult result = bus.Emit("x", 0);
  EXPECT_THAT(log, ElementsAre("1", "2", "3"));
  EXPECT_EQ(result.delivered, 3u);
  ASSERT_EQ(result.failures.size(), 2u);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.failures[0].code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.failures[0].message(), "listener #1 failed: no such thing");
  EXPECT_EQ(result.failures[1].code(), absl::StatusCode::kInternal);
  EXPECT_EQ(result.failures[1].message(), "listener #2 failed: threw boom");
}

TEST(EventBusTest, UnsubscribeDuringEmitSkipsTheRemovedListener) {
  std::vector<std::string> log;
  Bus bus;
  Subscription second;
  Subscription first = bus.Subscribe([&](const std::string&, int) {
    log.push_back("first");
    second.Unsubscribe();  // Removes a later listener of this very emit.
    first.Unsubscribe();   // And itself.
  });
  second = bus.Subscribe([&](const std::string&, int) { log.push_back("second"); });
  Subscription third = bus.Subscribe([&](const std::string&, int) { log.push_back("third"); });
  EXPECT_EQ(bus.Emit("x", 0).delivered, 2u);
  EXPECT_EQ(bus.Emit("x", 0).delivered, 1u);
  EXPECT_THAT(log, ElementsAre("first", "third", "third"));
}

TEST(EventBusTest, SubscribeDuringEmitTakesEffectFromTheNextEmit) {
  std::vector<std::string> log;
  Bus bus;
  std::vector<Subscription> added;
  Subscription adder = bus.Subscribe([&](const std::string&, int n) {
    log.push_back("adder" + std::to_string(n));
    added.push_back(bus.Subscribe([&log, n](const std::string&, int m) {
      log.push_back("added" + std::to_string(n) + "@" + std::to_string(m));
    }));
  });
  bus.Emit("x", 1);
  bus.Emit("x", 2);
  EXPECT_THAT(log, ElementsAre("adder1", "adder2", "added1@2"));
}

TEST(EventBusTest, OwnerDroppedDuringEmitIsSkippedAndPruned) {
  std::vector<std::string> log;
  Bus bus;
  auto victim = std::make_shared<Recorder>("victim", &log);
  Subscription killer = bus.Subscribe([&](const std::string&, int) {
    log.push_back("killer");
    victim.reset();
  });
  Subscription sub = bus.Subscribe(victim, &Recorder::OnEvent);
  EmitResult result = bus.Emit("x", 0);
  EXPECT_THAT(log, ElementsAre("killer"));
  EXPECT_EQ(result.delivered, 1u);
  EXPECT_EQ(result.pruned, 1u);
  EXPECT_EQ(bus.Size(), 1u);
}

TEST(EventBusTest, ListenerMayEmitAgain) {
  std::vector<int> seen;
  Bus bus;
  Subscription sub = bus.Subscribe([&](const std::string&, int n) {
    seen.push_back(n);
    if (n < 3) bus.Emit("again", n + 1);
  });
  bus.Emit("x", 1);
  EXPECT_THAT(seen, ElementsAre(1, 2, 3));
}

TEST(EventBusTest, SubscriptionMayOutliveTheBus) {
  Subscription sub;
  {
    Bus bus;
    sub = bus.Subscribe([](const std::string&, int) {});
    EXPECT_TRUE(sub.active());
  }
  EXPECT_FALSE(sub.active());
  sub.Unsubscribe();  // No bus any more: nothing happens.
}

TEST(EventBusTest, MovedSubscriptionKeepsTheListener) {
  int calls = 0;
  Bus bus;
  Subscription a = bus.Subscribe([&calls](const std::string&, int) { ++calls; });
  Subscription b = std::move(a);
  EXPECT_FALSE(a.active());  // NOLINT(bugprone-use-after-move): moved-from is empty.
  bus.Emit("x", 0);
  EXPECT_EQ(calls, 1);
  Subscription c = bus.Subscribe([&calls](const std::string&, int) { calls += 10; });
  b = std::move(c);  // Unsubscribes b's old listener.
  bus.Emit("x", 0);
  EXPECT_EQ(calls, 11);
}

TEST(EventBusTest, UnsubscribeAllEmptiesTheBus) {
  Bus bus;
  Subscription a = bus.Subscribe([](const std::string&, int) {});
  Subscription b = bus.Subscribe([](const std::string&, int) {});
  bus.UnsubscribeAll();
  EXPECT_EQ(bus.Size(), 0u);
  EXPECT_FALSE(a.active());
  EXPECT_EQ(bus.Emit("x", 0).delivered, 0u);
}

// Storm: 2 emitters, 2 threads subscribing and unsubscribing transient
// listeners, 1 thread making owners and dropping them, for a fixed number
// of rounds. The permanent listeners must see every emit exactly once (no
// lost live listener), transient ones never after unsubscribe, no crash,
// no deadlock (the test finishes).
TEST(EventBusTest, StormOfSubscribesAndEmitsLosesNoLiveListener) {
  EventBus<int> bus;
  constexpr int kPermanent = 5;
  constexpr int kEmitsPerThread = 20000;
  std::atomic<int> permanent_calls[kPermanent] = {};
  std::vector<Subscription> permanent;
  for (int i = 0; i < kPermanent; ++i) {
    permanent.push_back(bus.Subscribe([&permanent_calls, i](int) { ++permanent_calls[i]; }));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> late_calls{0};
  auto churn = [&] {
    while (!stop.load()) {
      auto flag = std::make_shared<std::atomic<bool>>(true);
      Subscription s = bus.Subscribe([flag, &late_calls](int) {
        if (!flag->load()) ++late_calls;  // Called after unsubscribe returned.
      });
      std::this_thread::yield();
      s.Unsubscribe();
      flag->store(false);
    }
  };
  auto owners = [&] {
    while (!stop.load()) {
      auto owner = std::make_shared<int>(0);
      bus.SubscribeWithOwner(std::weak_ptr<int>(owner), [](int) {}).Detach();
      std::this_thread::yield();
      owner.reset();
    }
  };
  std::atomic<int> failures{0};
  auto emitter = [&] {
    for (int i = 0; i < kEmitsPerThread; ++i) {
      if (!bus.Emit(i).ok()) ++failures;
    }
  };
  std::thread c1(churn), c2(churn), o(owners);
  std::thread e1(emitter), e2(emitter);
  e1.join();
  e2.join();
  stop = true;
  c1.join();
  c2.join();
  o.join();
  for (int i = 0; i < kPermanent; ++i) {
    EXPECT_EQ(permanent_calls[i].load(), 2 * kEmitsPerThread) << "listener " << i;
  }
  EXPECT_EQ(failures.load(), 0);
  // An emit already running on another thread may call a listener once
  // after Unsubscribe() returned (documented); it is rare and bounded.
  EXPECT_LE(late_calls.load(), 2 * kEmitsPerThread);
  bus.Emit(0);  // Prunes what the owner thread left behind.
  EXPECT_EQ(bus.Size(), static_cast<std::size_t>(kPermanent));
}

struct Counter {
  void On(int n) { total += n; }
  int64_t total = 0;
};

// A million bus operations (subscribe, emit, unsubscribe or owner drop)
// after a warm-up: RSS stays within 2 MiB (one leaked listener per cycle
// would be tens of MB), the bus ends with exactly its permanent listener,
// and that listener saw every emit.
TEST(EventBusSoakTest, MillionOperationsLeaveRssFlat) {
  EventBus<int> bus;
  int64_t sum = 0;
  Subscription keep = bus.Subscribe([&sum](int n) { sum += n; });
  auto cycle = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      auto owner = std::make_shared<Counter>();
      Subscription s = bus.Subscribe(owner, &Counter::On);
      if (!bus.Emit(1).ok() || owner->total != 1) ADD_FAILURE();
      if (i % 2 == 0) {
        s.Detach();  // This one dies with its owner, pruned later.
        owner.reset();
      }
    }
  };
  cycle(10000);
  auto before = SampleProcess();
  ASSERT_TRUE(before.ok());
  constexpr int kCycles = 333'334;  // Three operations each.
  cycle(kCycles);
  auto after = SampleProcess();
  ASSERT_TRUE(after.ok());
  if (kRssIsMeaningful) {
    EXPECT_LT(after->rss_bytes - before->rss_bytes, 2 << 20);
  }
  bus.Emit(0);
  EXPECT_EQ(bus.Size(), 1u);
  EXPECT_EQ(sum, 10000 + kCycles);
}

}  // namespace
}  // namespace leakguard
