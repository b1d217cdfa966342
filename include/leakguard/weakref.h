// leakguard/weakref.h
//
// Weak references and finalizers from C++, for hosts that must react to a
// Python object's death without keeping it alive:
//
//   WeakRef    a weak reference to any weak-referenceable object. Lock() gives
//              a strong Ref while the object lives, a null Ref after. An
//              optional C++ callback runs when the object dies.
//   Finalizer  `weakref.finalize` with a C++ callable: runs it once, when the
//              object dies or at interpreter exit (whichever comes first);
//              Detach() cancels it, Alive() tells whether it is pending. It
//              keeps no reference to the object.
//
//   auto fin = Finalizer::Create(plugin, [&registry, id] { registry.Drop(id); });
//   if (!fin.ok()) return fin.status();   // e.g. the object is an int
//
// Objects that cannot be weakly referenced (int, str, tuple, list, dict and
// instances of classes with `__slots__` but no `__weakref__`) get
// InvalidArgument.
//
// Callbacks run with the GIL held, on whichever thread drops the last
// reference (or runs the exit handlers). They must not throw; an exception
// escaping one is caught and discarded. They may run during interpreter
// finalization, never after it.
//
// Every call needs the GIL (FailedPrecondition without it). Destructors take
// the GIL themselves if the calling thread does not hold it, and touch
// nothing once the interpreter has been finalized.

#ifndef LEAKGUARD_WEAKREF_H_
#define LEAKGUARD_WEAKREF_H_

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/export.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {

namespace compat {

/// The referent of the weak reference `ref` as a new (strong) reference in
/// `*out`: returns 1 and sets it while the object lives, 0 (and nullptr)
/// once it is dead, -1 with a Python error if `ref` is not a weak reference.
/// PyWeakref_GetRef on 3.13+, PyWeakref_GetObject plus an incref before.
/// REQUIRES: the GIL is held.
inline int WeakrefGetRef(PyObject* ref, PyObject** out) {
#if PY_VERSION_HEX >= 0x030D0000
  return PyWeakref_GetRef(ref, out);
#else
  *out = nullptr;
  PyObject* target = PyWeakref_GetObject(ref);  // Borrowed.
  if (target == nullptr) return -1;
  if (target == Py_None) return 0;
  Py_INCREF(target);
  *out = target;
  return 1;
#endif
}

}  // namespace compat

/// A weak reference to a Python object, with an optional C++ callback run
/// when the object dies.
///
/// Copies share the underlying `weakref.ref` (and its callback). The
/// callback runs at most once, and only if some WeakRef sharing it still
/// exists when the object dies: destroying every copy first cancels it.
/// The callable is destroyed exactly once, when Python frees the callback
/// (after it ran, or when the last copy goes).
///
/// REQUIRES: the GIL is held for every operation, copies included.
class LEAKGUARD_EXPORT WeakRef {
 public:
  /// An empty WeakRef: Lock() gives a null Ref.
  WeakRef() = default;

  /// Creates a weak reference to `object`; `on_death` (may be empty) runs
  /// once when the object dies. InvalidArgument for a null handle or an
  /// object that cannot be weakly referenced (with Python's message, e.g.
  /// "cannot create weak reference to 'list' object").
  static absl::StatusOr<WeakRef> Create(Handle object, std::function<void()> on_death = {});

  /// A strong reference to the object while it lives; a null Ref once it
  /// died (or for an empty WeakRef).
  absl::StatusOr<Ref> Lock() const;

  /// True while the object lives.
  absl::StatusOr<bool> Alive() const;

  /// True for a default-constructed or moved-from WeakRef.
  bool empty() const noexcept { return !ref_; }

  /// The `weakref.ref` object itself (borrowed; null when empty).
  Handle handle() const noexcept { return ref_.handle(); }

  /// Adds a reference to `other`'s weakref object.
  WeakRef(const WeakRef& other) = default;
  /// Shares `other`'s weakref object.
  WeakRef& operator=(const WeakRef& other) = default;
  /// Takes `other`'s weakref object; `other` becomes empty.
  WeakRef(WeakRef&& other) noexcept = default;
  /// Takes `other`'s weakref object; `other` becomes empty.
  WeakRef& operator=(WeakRef&& other) noexcept = default;
  /// Drops the weakref object (taking the GIL if needed).
  ~WeakRef();

 private:
  explicit WeakRef(Ref ref) : ref_(std::move(ref)) {}
  Ref ref_;
};

/// Options of Finalizer::Create.
struct FinalizerOptions {
  /// Run the callable at interpreter exit if the object is still alive then
  /// (`weakref.finalize`'s `atexit` attribute). Off: a finalizer still
  /// pending at exit never runs.
  bool run_at_exit = true;
};

/// `weakref.finalize(object, callable)` with a C++ callable.
///
/// The callable runs at most once: when the object dies, or at interpreter
/// exit (Python's atexit handlers run during Interpreter::Finalize) if the
/// object still lives then, or when RunNow() is called. It keeps no
/// reference to the object. The callable is destroyed exactly once: right
/// after it ran, or by Detach().
///
/// Destroying a Finalizer whose object still lives detaches it: the callable
/// never runs and is destroyed. Move-only.
///
/// REQUIRES: the GIL is held for every call except destruction (which takes
/// it if needed).
class LEAKGUARD_EXPORT Finalizer {
 public:
  /// An empty Finalizer (Alive() is false).
  Finalizer() = default;

  /// Registers `callback` to run when `object` dies. InvalidArgument for a
  /// null handle, an empty callback, or an object that cannot be weakly
  /// referenced.
  static absl::StatusOr<Finalizer> Create(Handle object, std::function<void()> callback,
                                          const FinalizerOptions& options = {});

  /// Cancels the finalizer: the callable will not run and is destroyed now.
  /// Returns true if it was pending, false if it had already run or been
  /// detached.
  absl::StatusOr<bool> Detach();

  /// True while the callable is pending (neither run nor detached).
  absl::StatusOr<bool> Alive() const;

  /// Runs the callable now if it is pending (it will not run again).
  /// Returns whether it ran.
  absl::StatusOr<bool> RunNow();

  /// Takes `other`'s registration; `other` becomes empty.
  Finalizer(Finalizer&& other) noexcept = default;
  /// Detaches the finalizer held, then takes `other`'s.
  Finalizer& operator=(Finalizer&& other) noexcept;
  Finalizer(const Finalizer&) = delete;
  Finalizer& operator=(const Finalizer&) = delete;
  /// Detaches a pending finalizer (taking the GIL if needed).
  ~Finalizer();

 private:
  explicit Finalizer(Ref finalize) : finalize_(std::move(finalize)) {}
  void DetachAndDrop() noexcept;
  Ref finalize_;  // The weakref.finalize object.
};

}  // namespace leakguard

#endif  // LEAKGUARD_WEAKREF_H_
