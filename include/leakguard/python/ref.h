// leakguard/python/ref.h
//
// Ownership of Python objects as types, never as a bool:
//
//   Handle  a borrowed PyObject*: trivially copyable, no reference counting.
//           Valid only while somebody else keeps the object alive.
//   Ref     an owned (strong) reference: decrefs when destroyed or Reset().
//
// Make them with the named factories, which say what happens to the count:
//
//   Ref list = Steal(PyList_New(0));         // takes the new reference
//   Ref item = Borrow(PyList_GetItem(l, 0));  // adds one of its own
//   PyObject* out = list.Release();           // hands ownership back to C
//
// Both give the raw pointer with get(); a Ref passes wherever a Handle is
// taken (it converts, borrowing), so a function that only looks at an
// object takes a Handle and is called with either.
//
// REQUIRES (everything that touches a count): the GIL is held. Debug builds
// (NDEBUG undefined) check it with PyGILState_Check() on every incref/decref.

#ifndef LEAKGUARD_PYTHON_REF_H_
#define LEAKGUARD_PYTHON_REF_H_

#include <cstddef>
#include <utility>

#include "leakguard/export.h"
#include "leakguard/python/python.h"

namespace leakguard {

namespace internal {
/// Debug check behind every count change: aborts with a message naming `op`
/// when the calling thread does not hold the GIL. No-op with NDEBUG.
LEAKGUARD_EXPORT void AssertGilHeld(const char* op) noexcept;
}  // namespace internal

/// A borrowed reference: the PyObject* and nothing else. Copying a Handle
/// never touches the reference count.
class Handle {
 public:
  /// A null handle.
  constexpr Handle() noexcept = default;
  /// Wraps `ptr` without taking a reference.
  constexpr explicit Handle(PyObject* ptr) noexcept : ptr_(ptr) {}

  /// The raw pointer (may be null). The same accessor as Ref::get().
  constexpr PyObject* get() const noexcept { return ptr_; }
  /// True when the handle is not null.
  constexpr explicit operator bool() const noexcept { return ptr_ != nullptr; }
  /// Current reference count, or 0 for a null handle.
  /// REQUIRES: the GIL is held.
  Py_ssize_t RefCount() const noexcept { return ptr_ ? Py_REFCNT(ptr_) : 0; }

  /// Handles compare by identity.
  friend constexpr bool operator==(Handle a, Handle b) noexcept { return a.ptr_ == b.ptr_; }

 private:
  PyObject* ptr_ = nullptr;
};

/// An owned reference. Copying increments the count; moving transfers it;
/// destruction and Reset() decrement it.
/// REQUIRES: the GIL is held for every operation that changes the count
/// (construction from a pointer, copy, Reset, destruction of a non-null Ref).
/// Moving and destroying a null Ref never touch Python.
class Ref {
 public:
  /// A null reference.
  constexpr Ref() noexcept = default;
  /// Decrements the count of the object held, if any.
  ~Ref() { Reset(); }

  /// Adds a reference to the object `other` holds.
  Ref(const Ref& other) noexcept : ptr_(other.ptr_) { IncRef(ptr_); }
  /// Adds a reference to `other`'s object and drops the one held before.
  Ref& operator=(const Ref& other) noexcept {
    if (this != &other) {
      IncRef(other.ptr_);
      Reset(other.ptr_);
    }
    return *this;
  }
  /// Takes `other`'s reference; `other` becomes null.
  Ref(Ref&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  /// Takes `other`'s reference and drops the one held before.
  Ref& operator=(Ref&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.ptr_, nullptr));
    return *this;
  }

  /// The raw pointer, still owned by this Ref (may be null).
  PyObject* get() const noexcept { return ptr_; }
  /// A borrowed view of the object held. A Ref converts to it implicitly, so
  /// a Ref is passed wherever a Handle is taken; the Handle is valid while
  /// this Ref (or another owner) keeps the object alive.
  Handle handle() const noexcept { return Handle(ptr_); }
  /// The same view as handle(), implicit: a Ref is a Handle that owns.
  // NOLINTNEXTLINE(google-explicit-constructor)
  operator Handle() const noexcept { return Handle(ptr_); }
  /// True when a reference is held.
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// Gives up ownership without touching the count: the caller now owns the
  /// reference that was held. The Ref becomes null.
  [[nodiscard]] PyObject* Release() noexcept { return std::exchange(ptr_, nullptr); }
  /// Drops the reference held (if any); the Ref becomes null.
  void Reset() noexcept { Reset(nullptr); }

  /// Identity comparison.
  friend bool operator==(const Ref& a, const Ref& b) noexcept { return a.ptr_ == b.ptr_; }

 private:
  friend Ref Steal(PyObject* ptr) noexcept;
  friend Ref Borrow(PyObject* ptr) noexcept;

  explicit Ref(PyObject* owned) noexcept : ptr_(owned) {}

  static void IncRef(PyObject* ptr) noexcept {
    if (ptr == nullptr) return;
#ifndef NDEBUG
    internal::AssertGilHeld("Ref incref");
#endif
    Py_INCREF(ptr);
  }
  // Replaces the pointer held with `owned`, then decrefs the old object. The
  // order matters: the decref may run arbitrary Python (a __del__) that
  // looks at this Ref again.
  void Reset(PyObject* owned) noexcept {
    PyObject* old = std::exchange(ptr_, owned);
    if (old == nullptr) return;
#ifndef NDEBUG
    internal::AssertGilHeld("Ref decref");
#endif
    Py_DECREF(old);
  }

  PyObject* ptr_ = nullptr;
};

/// Takes ownership of a new reference, as returned by most C-API calls
/// (`PyList_New`, `PyObject_GetAttrString`, ...). A null `ptr` gives a null
/// Ref; the Python error, if any, stays pending for the caller to handle.
[[nodiscard]] inline Ref Steal(PyObject* ptr) noexcept { return Ref(ptr); }

/// Adds a reference of its own to a borrowed pointer (`PyList_GetItem`,
/// `PyDict_GetItem`, ...). A null `ptr` gives a null Ref.
/// REQUIRES: the GIL is held.
[[nodiscard]] inline Ref Borrow(PyObject* ptr) noexcept {
  Ref::IncRef(ptr);
  return Ref(ptr);
}

/// Adds a reference of its own to the object a Handle points at.
/// REQUIRES: the GIL is held.
[[nodiscard]] inline Ref Borrow(Handle handle) noexcept { return Borrow(handle.get()); }

}  // namespace leakguard

#endif  // LEAKGUARD_PYTHON_REF_H_
