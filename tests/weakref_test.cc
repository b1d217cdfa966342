// Weak references and finalizers with C++ callbacks: they run exactly once,
// their callables are destroyed exactly once, they keep nothing alive, and
// they run at interpreter exit (checked in a forked child that finalizes).

#include "leakguard/weakref.h"

#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

// A fresh instance of a plain class (weak-referenceable).
Ref NewObject() { return testing::Eval("Thing()", "class Thing:\n    pass\n"); }

// A callable that counts its runs; `token.use_count() == 1` once every copy
// of the callable has been destroyed.
struct Probe {
  std::shared_ptr<int> runs = std::make_shared<int>(0);
  std::function<void()> Callback() const {
    auto counter = runs;
    return [counter] { ++*counter; };
  }
  bool CallableDestroyed() const { return runs.use_count() == 1; }
};

TEST(WeakRefTest, LocksWhileAliveAndEmptiesAfterDeath) {
  Ref obj = NewObject();
  ASSERT_TRUE(obj);
  const Py_ssize_t refs = testing::SysGetRefCount(obj.get());
  absl::StatusOr<WeakRef> weak = WeakRef::Create(obj);
  ASSERT_TRUE(weak.ok()) << weak.status();
  EXPECT_EQ(testing::SysGetRefCount(obj.get()), refs);  // Keeps nothing.
  {
    absl::StatusOr<Ref> locked = weak->Lock();
    ASSERT_TRUE(locked.ok());
    EXPECT_EQ(locked->get(), obj.get());
    EXPECT_EQ(testing::SysGetRefCount(obj.get()), refs + 1);
  }
  EXPECT_TRUE(*weak->Alive());
  obj.Reset();
  absl::StatusOr<Ref> locked = weak->Lock();
  ASSERT_TRUE(locked.ok());
  EXPECT_FALSE(*locked);
  EXPECT_FALSE(*weak->Alive());
}

TEST(WeakRefTest, CallbackRunsOnceWhenTheObjectDies) {
  Probe probe;
  Ref obj = NewObject();
  absl::StatusOr<WeakRef> weak = WeakRef::Create(obj, probe.Callback());
  ASSERT_TRUE(weak.ok());
  WeakRef copy = *weak;  // Copies share the callback: still runs once.
  EXPECT_EQ(*probe.runs, 0);
  EXPECT_FALSE(probe.CallableDestroyed());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 1);
  EXPECT_TRUE(probe.CallableDestroyed());  // Python dropped the callback.
  EXPECT_FALSE(*copy.Alive());
}

TEST(WeakRefTest, DestroyingTheWeakRefFirstCancelsTheCallback) {
  Probe probe;
  Ref obj = NewObject();
  {
    absl::StatusOr<WeakRef> weak = WeakRef::Create(obj, probe.Callback());
    ASSERT_TRUE(weak.ok());
  }
  EXPECT_TRUE(probe.CallableDestroyed());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 0);
}

TEST(WeakRefTest, CallbackThatThrowsIsContained) {
  Ref obj = NewObject();
  absl::StatusOr<WeakRef> weak =
      WeakRef::Create(obj, [] { throw std::runtime_error("from a callback"); });
  ASSERT_TRUE(weak.ok());
  obj.Reset();  // Must not terminate or leave a Python error behind.
  EXPECT_EQ(PyErr_Occurred(), nullptr);
  EXPECT_FALSE(*weak->Alive());
}

TEST(WeakRefTest, ObjectsWithoutWeakrefSupportAreInvalidArgument) {
  for (const char* expr : {"12345678", "'text'", "[1, 2]", "(1, 2)", "{}"}) {
    Ref obj = testing::Eval(expr);
    Probe probe;
    absl::StatusOr<WeakRef> weak = WeakRef::Create(obj, probe.Callback());
    EXPECT_EQ(weak.status().code(), absl::StatusCode::kInvalidArgument) << expr;
    EXPECT_THAT(std::string(weak.status().message()), HasSubstr("cannot create weak reference to"))
        << expr;
    EXPECT_TRUE(probe.CallableDestroyed()) << expr;
    EXPECT_EQ(PyErr_Occurred(), nullptr);
  }
  Ref slotted = testing::Eval("S()", "class S:\n    __slots__ = ('a',)\n");
  EXPECT_EQ(WeakRef::Create(slotted).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WeakRef::Create(Handle()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeakRefTest, EmptyWeakRefLocksToNothing) {
  WeakRef empty;
  EXPECT_TRUE(empty.empty());
  absl::StatusOr<Ref> locked = empty.Lock();
  ASSERT_TRUE(locked.ok());
  EXPECT_FALSE(*locked);
}

TEST(FinalizerTest, RunsOnceWhenTheObjectDiesAndKeepsNoReference) {
  Probe probe;
  Ref obj = NewObject();
  const Py_ssize_t refs = testing::SysGetRefCount(obj.get());
  absl::StatusOr<Finalizer> fin = Finalizer::Create(obj, probe.Callback());
  ASSERT_TRUE(fin.ok()) << fin.status();
  EXPECT_EQ(testing::SysGetRefCount(obj.get()), refs);
  EXPECT_TRUE(*fin->Alive());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 1);
  EXPECT_TRUE(probe.CallableDestroyed());
  EXPECT_FALSE(*fin->Alive());
  EXPECT_FALSE(*fin->Detach());
  EXPECT_FALSE(*fin->RunNow());
  EXPECT_EQ(*probe.runs, 1);
}

TEST(FinalizerTest, DetachCancelsAndDestroysTheCallable) {
  Probe probe;
  Ref obj = NewObject();
  absl::StatusOr<Finalizer> fin = Finalizer::Create(obj, probe.Callback());
  ASSERT_TRUE(fin.ok());
  EXPECT_TRUE(*fin->Detach());
  EXPECT_TRUE(probe.CallableDestroyed());
  EXPECT_FALSE(*fin->Alive());
  EXPECT_FALSE(*fin->Detach());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 0);
}

TEST(FinalizerTest, DestroyedBeforeTheObjectDetachesCleanly) {
  Probe probe;
  Ref obj = NewObject();
  {
    absl::StatusOr<Finalizer> fin = Finalizer::Create(obj, probe.Callback());
    ASSERT_TRUE(fin.ok());
    Finalizer moved = *std::move(fin);  // The moved-from one detaches nothing.
    EXPECT_TRUE(*moved.Alive());
  }
  EXPECT_TRUE(probe.CallableDestroyed());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 0);
}

TEST(FinalizerTest, RunNowRunsOnceAndNeverAgain) {
  Probe probe;
  Ref obj = NewObject();
  absl::StatusOr<Finalizer> fin = Finalizer::Create(obj, probe.Callback());
  ASSERT_TRUE(fin.ok());
  EXPECT_TRUE(*fin->RunNow());
  EXPECT_EQ(*probe.runs, 1);
  EXPECT_TRUE(probe.CallableDestroyed());
  EXPECT_FALSE(*fin->RunNow());
  obj.Reset();
  EXPECT_EQ(*probe.runs, 1);
}

TEST(FinalizerTest, BadInputIsInvalidArgument) {
  Ref number = testing::Eval("10**30");
  Probe probe;
  absl::StatusOr<Finalizer> fin = Finalizer::Create(number, probe.Callback());
  EXPECT_EQ(fin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(fin.status().message()),
              HasSubstr("cannot create weak reference to 'int' object"));
  EXPECT_TRUE(probe.CallableDestroyed());
  Ref obj = NewObject();
  EXPECT_EQ(Finalizer::Create(obj, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Finalizer::Create(Handle(), probe.Callback()).status().code(),
            absl::StatusCode::kInvalidArgument);
  Finalizer empty;
  EXPECT_FALSE(*empty.Alive());
  EXPECT_FALSE(*empty.Detach());
}

TEST(WeakrefProbeTest, EveryCallWithoutTheGilIsFailedPrecondition) {
  Ref obj = NewObject();
  absl::StatusOr<WeakRef> weak = WeakRef::Create(obj);
  absl::StatusOr<Finalizer> fin = Finalizer::Create(obj, [] {});
  ASSERT_TRUE(weak.ok() && fin.ok());
  std::vector<absl::StatusCode> codes;
  {
    GilRelease release;
    std::thread([&] {
      codes.push_back(WeakRef::Create(obj).status().code());
      codes.push_back(weak->Lock().status().code());
      codes.push_back(weak->Alive().status().code());
      codes.push_back(Finalizer::Create(obj, [] {}).status().code());
      codes.push_back(fin->Detach().status().code());
      codes.push_back(fin->Alive().status().code());
      codes.push_back(fin->RunNow().status().code());
    }).join();
  }
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], absl::StatusCode::kFailedPrecondition) << "call " << i;
  }
  EXPECT_TRUE(*fin->Alive());  // Untouched by the refused calls.
}

// A Finalizer whose object outlives the interpreter runs at exit, exactly
// once, and its callable is destroyed exactly once; the C++ object deleted
// after finalization touches nothing. Runs in a child process (the
// "threadsafe" death-test style re-executes this binary, so the child has
// an interpreter of its own, not a forked copy) that finalizes it.
int RunAtExitInChild(bool run_at_exit) {
  static int runs = 0;
  static int destroyed = 0;
  struct Counted {
    ~Counted() { ++destroyed; }
  };
  Ref obj = NewObject();
  // Kept alive by a module global until the interpreter goes.
  PyObject* main_dict = PyModule_GetDict(PyImport_AddModule("__main__"));
  PyDict_SetItemString(main_dict, "kept_until_exit", obj.get());
  auto counted = std::make_shared<Counted>();
  auto* fin =
      new Finalizer(*Finalizer::Create(obj, [counted] { ++runs; }, {.run_at_exit = run_at_exit}));
  counted.reset();
  obj.Reset();
  Py_FinalizeEx();
  delete fin;  // After finalization: must not touch Python.
  if (run_at_exit) return runs == 1 && destroyed == 1 ? 0 : 10 + runs;
  return runs == 0 ? 0 : 20 + runs;
}

TEST(FinalizerDeathTest, RunsAtInterpreterExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(_exit(RunAtExitInChild(true)), ::testing::ExitedWithCode(0), "");
}

TEST(FinalizerDeathTest, WithoutRunAtExitItDoesNotRunAtExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(_exit(RunAtExitInChild(false)), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace leakguard
