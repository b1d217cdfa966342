// leakguard/event_bus.h
//
// EventBus: publish/subscribe whose listeners cannot leak. The
// "listener_accumulation" cause is a bus that keeps every handler (and
// everything the handler reaches) alive forever; here a listener is held
// only as long as the object that owns it.
//
//   EventBus<const Frame&> frames;
//   auto view = std::make_shared<View>();
//   Subscription sub = frames.Subscribe(view, &View::OnFrame);  // weak
//   frames.Emit(frame);          // calls view->OnFrame(frame)
//   view.reset();                // listener dead: pruned, never called again
//
// Listeners are a member function of an object held by std::weak_ptr, or a
// callable tied to an owner's lifetime (a weak_ptr to anything), or a bare
// callable that lives as long as its Subscription. A listener may return
// void or absl::Status.
//
// Subscribe() returns a Subscription: destroying it unsubscribes (keep it as
// a member of the owner); Detach() lets the listener live as long as its
// owner instead.
//
// Emit() calls the listeners subscribed when it starts, in subscription
// order, with no lock held: a listener may subscribe, unsubscribe (itself or
// others), drop its owner or emit again. A listener unsubscribed during an
// emit is not called after that point by the same thread; one whose owner
// died is skipped and pruned. A listener that fails (returns an error, or
// throws) does not stop the others; its failure is in the EmitResult.
//
// Thread-safety: all methods may be called from any thread. Emit() takes a
// snapshot of the listener list under the lock (copy-on-write, one shared_ptr
// copy) and calls listeners outside it. An emit that started on another
// thread before Unsubscribe() returned may still call the listener once;
// the owner is kept alive (weak_ptr::lock) for the duration of each call.

#ifndef LEAKGUARD_EVENT_BUS_H_
#define LEAKGUARD_EVENT_BUS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace leakguard {

namespace internal {

// What a Subscription needs from a listener, independent of the bus's
// argument types.
class ListenerBase {
 public:
  ListenerBase(uint64_t id, std::weak_ptr<const void> owner, bool has_owner)
      : id_(id), owner_(std::move(owner)), has_owner_(has_owner) {}
  ListenerBase(const ListenerBase&) = delete;
  ListenerBase& operator=(const ListenerBase&) = delete;
  virtual ~ListenerBase() = default;

  uint64_t id() const { return id_; }
  bool has_owner() const { return has_owner_; }
  const std::weak_ptr<const void>& owner() const { return owner_; }
  // Subscribed, and its owner (if it has one) alive.
  bool Alive() const {
    return active_.load(std::memory_order_acquire) && (!has_owner_ || !owner_.expired());
  }
  bool active() const { return active_.load(std::memory_order_acquire); }
  void Deactivate() { active_.store(false, std::memory_order_release); }

 private:
  const uint64_t id_;
  const std::weak_ptr<const void> owner_;
  const bool has_owner_;
  std::atomic<bool> active_{true};
};

// What a Subscription needs from a bus.
class BusStateBase {
 public:
  virtual ~BusStateBase() = default;
  virtual void Remove(uint64_t id) = 0;
};

// Calls `f(args...)`, turning a void result into OK.
template <typename F, typename... A>
absl::Status InvokeListener(F& f, A&&... args) {
  using R = std::invoke_result_t<F&, A...>;
  if constexpr (std::is_convertible_v<R, absl::Status>) {
    return std::invoke(f, std::forward<A>(args)...);
  } else {
    std::invoke(f, std::forward<A>(args)...);
    return absl::OkStatus();
  }
}

}  // namespace internal

/// Handle of one subscription. Destroying it (or Unsubscribe()) removes the
/// listener; Detach() leaves the listener to live as long as its owner.
/// Move-only; outliving the bus is fine (it then does nothing).
/// Thread-safety: one Subscription must not be used by two threads at once;
/// distinct Subscriptions of one bus may.
class [[nodiscard]] Subscription {
 public:
  /// An empty handle, subscribed to nothing.
  Subscription() = default;
  /// Takes `other`'s subscription; `other` becomes empty.
  Subscription(Subscription&& other) noexcept
      : bus_(std::move(other.bus_)), listener_(std::move(other.listener_)) {}
  /// Unsubscribes what this handle held, then takes `other`'s.
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      Unsubscribe();
      bus_ = std::move(other.bus_);
      listener_ = std::move(other.listener_);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  /// Unsubscribes.
  ~Subscription() { Unsubscribe(); }

  /// Removes the listener from its bus (no-op if already gone or empty).
  /// Once this returns, emits that start later never call it.
  void Unsubscribe() noexcept {
    std::shared_ptr<internal::BusStateBase> bus = bus_.lock();
    std::shared_ptr<internal::ListenerBase> listener = listener_.lock();
    bus_.reset();
    listener_.reset();
    if (listener != nullptr) listener->Deactivate();
    if (bus != nullptr && listener != nullptr) bus->Remove(listener->id());
  }

  /// Lets go of the handle without unsubscribing: the listener stays until
  /// its owner dies (or forever, for a listener without an owner, until the
  /// bus is destroyed).
  void Detach() noexcept {
    bus_.reset();
    listener_.reset();
  }

  /// True while the listener is subscribed, its owner alive and the bus
  /// alive.
  bool active() const {
    std::shared_ptr<internal::ListenerBase> listener = listener_.lock();
    return listener != nullptr && !bus_.expired() && listener->Alive();
  }

 private:
  template <typename... Args>
  friend class EventBus;
  Subscription(std::weak_ptr<internal::BusStateBase> bus,
               std::weak_ptr<internal::ListenerBase> listener)
      : bus_(std::move(bus)), listener_(std::move(listener)) {}

  std::weak_ptr<internal::BusStateBase> bus_;
  std::weak_ptr<internal::ListenerBase> listener_;
};

/// What one Emit() did.
struct EmitResult {
  /// Listeners called (those that failed included).
  std::size_t delivered = 0;
  /// Dead listeners (owner gone) found and removed by this emit.
  std::size_t pruned = 0;
  /// One status per listener that returned an error or threw, in call
  /// order; the message names the listener's subscription number.
  std::vector<absl::Status> failures;
  /// True when no listener failed.
  bool ok() const { return failures.empty(); }
};

/// A publish/subscribe bus for events of argument types `Args...`. Listeners
/// receive each argument as a const reference. See the file comment for the
/// semantics. Thread-safe.
template <typename... Args>
class EventBus {
  // Listeners receive each argument as `const Arg<A>&`.
  template <typename A>
  using Arg = std::remove_cvref_t<A>;

 public:
  /// Makes an empty bus.
  EventBus() : state_(std::make_shared<State>()) {}
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;
  EventBus(EventBus&&) = delete;
  EventBus& operator=(EventBus&&) = delete;
  /// Drops every listener. Outstanding Subscriptions become no-ops.
  /// REQUIRES: no Emit() of this bus is running.
  ~EventBus() = default;

  /// Subscribes `method` of the object `owner` points at; the bus holds the
  /// object weakly. The method receives the event's arguments and returns
  /// void or absl::Status.
  template <typename T, typename M>
  Subscription Subscribe(std::type_identity_t<std::weak_ptr<T>> owner, M T::*method) {
    static_assert(std::is_member_function_pointer_v<M T::*>,
                  "Subscribe(owner, &T::Method) needs a member function");
    std::weak_ptr<const void> erased = owner;
    return Add(std::move(erased), true, [method](const void* self, const Arg<Args>&... args) {
      T* object = static_cast<T*>(const_cast<void*>(self));
      return internal::InvokeListener(method, object, args...);
    });
  }

  /// Subscribes `listener`, a callable that lives as long as `owner` (held
  /// weakly): once the owner is gone the listener is pruned and destroyed.
  /// The owner is kept alive during each call.
  template <typename O, typename F>
  Subscription SubscribeWithOwner(const std::weak_ptr<O>& owner, F listener) {
    static_assert(std::is_invocable_v<F&, const Arg<Args>&...>,
                  "the listener must be callable with the bus's arguments");
    std::weak_ptr<const void> erased = owner;
    return Add(std::move(erased), true,
               [f = std::move(listener)](const void*, const Arg<Args>&... args) mutable {
                 return internal::InvokeListener(f, args...);
               });
  }

  /// Subscribes `listener` with no owner: it lives until its Subscription
  /// unsubscribes (or, after Detach(), until the bus is destroyed).
  template <typename F>
  Subscription Subscribe(F listener) {
    static_assert(std::is_invocable_v<F&, const Arg<Args>&...>,
                  "the listener must be callable with the bus's arguments");
    return Add(std::weak_ptr<const void>(), false,
               [f = std::move(listener)](const void*, const Arg<Args>&... args) mutable {
                 return internal::InvokeListener(f, args...);
               });
  }

  /// Calls every live listener subscribed before this call started, in
  /// subscription order, with no lock held. Dead listeners are skipped and
  /// pruned. Failures (an error Status, or an exception) are collected, and
  /// the remaining listeners still run.
  EmitResult Emit(const Arg<Args>&... args) {
    std::shared_ptr<const ListenerList> snapshot;
    {
      absl::MutexLock lock(&state_->mu);
      snapshot = state_->listeners;
    }
    EmitResult result;
    std::size_t dead = 0;
    for (const std::shared_ptr<Listener>& listener : *snapshot) {
      if (!listener->active()) continue;
      std::shared_ptr<const void> owner;
      if (listener->has_owner()) {
        owner = listener->owner().lock();
        if (owner == nullptr) {
          ++dead;
          continue;
        }
      }
      ++result.delivered;
      absl::Status status = Call(*listener, owner.get(), args...);
      if (!status.ok()) {
        result.failures.push_back(absl::Status(
            status.code(),
            absl::StrCat("listener #", listener->id(), " failed: ", status.message())));
      }
    }
    if (dead > 0) result.pruned = state_->Prune();
    return result;
  }

  /// Number of live listeners (subscribed, owner alive). Thread-safe; a
  /// moment's view under concurrency.
  std::size_t Size() const {
    absl::MutexLock lock(&state_->mu);
    std::size_t live = 0;
    for (const std::shared_ptr<Listener>& l : *state_->listeners) {
      if (l->Alive()) ++live;
    }
    return live;
  }

  /// Removes every listener; their Subscriptions become no-ops.
  void UnsubscribeAll() {
    std::shared_ptr<const ListenerList> old;
    absl::MutexLock lock(&state_->mu);
    for (const std::shared_ptr<Listener>& l : *state_->listeners) {
      l->Deactivate();
    }
    old = std::exchange(state_->listeners, std::make_shared<ListenerList>());
  }

 private:
  using Callback = std::function<absl::Status(const void*, const Arg<Args>&...)>;

  class Listener : public internal::ListenerBase {
   public:
    Listener(uint64_t id, std::weak_ptr<const void> owner, bool has_owner, Callback callback)
        : ListenerBase(id, std::move(owner), has_owner), callback_(std::move(callback)) {}
    const Callback& callback() const { return callback_; }

   private:
    const Callback callback_;
  };
  using ListenerList = std::vector<std::shared_ptr<Listener>>;

  struct State : internal::BusStateBase {
    State() : listeners(std::make_shared<ListenerList>()) {}

    // Replaces the list by a copy without `id` (and without dead entries).
    void Remove(uint64_t id) override {
      std::shared_ptr<const ListenerList> old;  // Freed after the lock.
      absl::MutexLock lock(&mu);
      auto next = std::make_shared<ListenerList>();
      next->reserve(listeners->size());
      for (const std::shared_ptr<Listener>& l : *listeners) {
        if (l->id() != id && l->Alive()) next->push_back(l);
      }
      old = std::exchange(listeners, std::move(next));
    }

    // Drops dead listeners; returns how many.
    std::size_t Prune() {
      std::shared_ptr<const ListenerList> old;
      absl::MutexLock lock(&mu);
      auto next = std::make_shared<ListenerList>();
      next->reserve(listeners->size());
      for (const std::shared_ptr<Listener>& l : *listeners) {
        if (l->Alive()) next->push_back(l);
      }
      const std::size_t pruned = listeners->size() - next->size();
      old = std::exchange(listeners, std::move(next));
      return pruned;
    }

    mutable absl::Mutex mu;
    // Copy-on-write: a published list is never modified, so Emit() may read
    // its snapshot without the lock.
    std::shared_ptr<const ListenerList> listeners ABSL_GUARDED_BY(mu);
    uint64_t next_id ABSL_GUARDED_BY(mu) = 1;
  };

  template <typename F>
  Subscription Add(std::weak_ptr<const void> owner, bool has_owner, F callback) {
    std::shared_ptr<Listener> listener;
    std::shared_ptr<const ListenerList> old;
    {
      absl::MutexLock lock(&state_->mu);
      listener = std::make_shared<Listener>(state_->next_id++, std::move(owner), has_owner,
                                            Callback(std::move(callback)));
      auto next = std::make_shared<ListenerList>();
      next->reserve(state_->listeners->size() + 1);
      for (const std::shared_ptr<Listener>& l : *state_->listeners) {
        if (l->Alive()) next->push_back(l);  // Prune while copying.
      }
      next->push_back(listener);
      old = std::exchange(state_->listeners, std::move(next));
    }
    std::weak_ptr<internal::BusStateBase> bus = state_;
    std::weak_ptr<internal::ListenerBase> handle = listener;
    return Subscription(std::move(bus), std::move(handle));
  }

  static absl::Status Call(const Listener& listener, const void* owner,
                           const Arg<Args>&... args) noexcept {
#if defined(__cpp_exceptions)
    try {
      return listener.callback()(owner, args...);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("threw ", e.what()));
    } catch (...) {
      return absl::UnknownError(
          "threw an exception not derived from "
          "std::exception");
    }
#else
    return listener.callback()(owner, args...);
#endif
  }

  std::shared_ptr<State> state_;
};

}  // namespace leakguard

#endif  // LEAKGUARD_EVENT_BUS_H_
