#include "leakguard/weakref.h"

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"
#include "python/gil_capability.h"

namespace leakguard {
namespace {

// The C++ callable behind a Python callback object. The capsule that owns it
// is the callback's `self`; Python frees the capsule (and so destroys the
// callable, exactly once) when it frees the callback.
struct Callable {
  std::function<void()> fn;
  bool ran = false;
};

constexpr char kCallableCapsule[] = "leakguard.Callable";

void DeleteCallable(PyObject* capsule) noexcept {
  delete static_cast<Callable*>(PyCapsule_GetPointer(capsule, kCallableCapsule));
}

// Runs the callable once; C++ exceptions stop here.
void RunOnce(PyObject* self) noexcept {
  auto* callable = static_cast<Callable*>(PyCapsule_GetPointer(self, kCallableCapsule));
  if (callable == nullptr) {
    PyErr_Clear();
    return;
  }
  if (callable->ran || !callable->fn) return;
  callable->ran = true;
  try {
    callable->fn();
  } catch (...) {  // Documented: discarded, never crosses into Python.
  }
}

// weakref.ref calls its callback with the weakref; finalize calls it bare.
PyObject* WeakrefCallback(PyObject* self, PyObject* /*weakref*/) noexcept {
  RunOnce(self);
  Py_RETURN_NONE;
}

PyObject* FinalizeCallback(PyObject* self, PyObject* /*unused*/) noexcept {
  RunOnce(self);
  Py_RETURN_NONE;
}

PyMethodDef kWeakrefCallbackDef = {"leakguard_weakref_callback", &WeakrefCallback, METH_O,
                                   "Runs a leakguard::WeakRef's C++ callback."};
PyMethodDef kFinalizeCallbackDef = {"leakguard_finalizer", &FinalizeCallback, METH_NOARGS,
                                    "Runs a leakguard::Finalizer's C++ callable."};

// A callback object owning `fn`.
absl::StatusOr<Ref> MakeCallback(PyMethodDef* def, std::function<void()> fn) {
  auto* callable = new Callable{std::move(fn)};
  Ref capsule = Steal(PyCapsule_New(callable, kCallableCapsule, &DeleteCallable));
  if (!capsule) {
    delete callable;
    return StatusFromPythonError();
  }
  Ref func = Steal(PyCFunction_New(def, capsule.get()));
  if (!func) return StatusFromPythonError();
  return func;
}

// TypeError from weakref creation ("cannot create weak reference to 'int'
// object") becomes InvalidArgument with Python's message.
absl::Status WeakrefError() {
  absl::Status status = StatusFromPythonError();
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(status.message());
  }
  return status;
}

// Drops `ref` with the GIL held; after finalization only forgets it.
void DropWithGil(Ref& ref) noexcept {
  if (!ref) return;
  if (!Py_IsInitialized()) {
    (void)ref.Release();
    return;
  }
  GilAcquire gil;
  PyObject* pending = compat::FetchException();
  ref.Reset();
  PyErr_Clear();
  if (pending != nullptr) compat::RestoreException(pending);
}

absl::StatusOr<bool> Truth(PyObject* obj) {
  const int truth = PyObject_IsTrue(obj);
  if (truth < 0) return StatusFromPythonError();
  return truth == 1;
}

}  // namespace

// ------------------------------------------------------------------ WeakRef

absl::StatusOr<WeakRef> WeakRef::Create(Handle object, std::function<void()> on_death) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!object) return absl::InvalidArgumentError("WeakRef of a null handle");
  Ref callback;
  if (on_death) {
    absl::StatusOr<Ref> made = MakeCallback(&kWeakrefCallbackDef, std::move(on_death));
    if (!made.ok()) return made.status();
    callback = *std::move(made);
  }
  Ref ref = Steal(PyWeakref_NewRef(object.get(), callback.get()));
  if (!ref) return WeakrefError();
  return WeakRef(std::move(ref));
}

absl::StatusOr<Ref> WeakRef::Lock() const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!ref_) return Ref();
  PyObject* target = nullptr;
  if (compat::WeakrefGetRef(ref_.get(), &target) < 0) {
    return StatusFromPythonError();
  }
  return Steal(target);
}

absl::StatusOr<bool> WeakRef::Alive() const {
  absl::StatusOr<Ref> target = Lock();
  if (!target.ok()) return target.status();
  return static_cast<bool>(*target);
}

WeakRef::~WeakRef() { DropWithGil(ref_); }

// ---------------------------------------------------------------- Finalizer

absl::StatusOr<Finalizer> Finalizer::Create(Handle object, std::function<void()> callback,
                                            const FinalizerOptions& options) {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!object) return absl::InvalidArgumentError("Finalizer of a null handle");
  if (!callback) {
    return absl::InvalidArgumentError("Finalizer needs a callable to run");
  }
  Ref weakref = Steal(PyImport_ImportModule("weakref"));
  if (!weakref) return StatusFromPythonError();
  Ref finalize_type = Steal(PyObject_GetAttrString(weakref.get(), "finalize"));
  if (!finalize_type) return StatusFromPythonError();
  absl::StatusOr<Ref> func = MakeCallback(&kFinalizeCallbackDef, std::move(callback));
  if (!func.ok()) return func.status();
  Ref finalize =
      Steal(PyObject_CallFunctionObjArgs(finalize_type.get(), object.get(), func->get(), nullptr));
  if (!finalize) return WeakrefError();
  if (!options.run_at_exit && PyObject_SetAttrString(finalize.get(), "atexit", Py_False) != 0) {
    absl::Status status = StatusFromPythonError();
    Ref detached = Steal(PyObject_CallMethod(finalize.get(), "detach", nullptr));
    PyErr_Clear();
    return status;
  }
  return Finalizer(std::move(finalize));
}

absl::StatusOr<bool> Finalizer::Detach() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!finalize_) return false;
  // detach() returns (obj, func, args, kwargs) or None; dropping the tuple
  // drops our callback object, which destroys the callable.
  Ref detached = Steal(PyObject_CallMethod(finalize_.get(), "detach", nullptr));
  if (!detached) return StatusFromPythonError();
  return detached.get() != Py_None;
}

absl::StatusOr<bool> Finalizer::Alive() const {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!finalize_) return false;
  Ref alive = Steal(PyObject_GetAttrString(finalize_.get(), "alive"));
  if (!alive) return StatusFromPythonError();
  return Truth(alive.get());
}

absl::StatusOr<bool> Finalizer::RunNow() {
  LEAKGUARD_RETURN_IF_NO_GIL();
  if (!finalize_) return false;
  absl::StatusOr<bool> alive = Alive();
  if (!alive.ok() || !*alive) return alive;
  Ref result = Steal(PyObject_CallNoArgs(finalize_.get()));
  if (!result) return StatusFromPythonError();
  return true;
}

void Finalizer::DetachAndDrop() noexcept {
  if (!finalize_) return;
  if (!Py_IsInitialized()) {
    (void)finalize_.Release();
    return;
  }
  GilAcquire gil;
  PyObject* pending = compat::FetchException();
  Ref detached = Steal(PyObject_CallMethod(finalize_.get(), "detach", nullptr));
  detached.Reset();
  finalize_.Reset();
  PyErr_Clear();
  if (pending != nullptr) compat::RestoreException(pending);
}

Finalizer& Finalizer::operator=(Finalizer&& other) noexcept {
  if (this != &other) {
    DetachAndDrop();
    finalize_ = std::move(other.finalize_);
  }
  return *this;
}

Finalizer::~Finalizer() { DetachAndDrop(); }

}  // namespace leakguard
