// Reference counting of Handle and Ref, checked through sys.getrefcount.

#include "leakguard/python/ref.h"

#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::leakguard::testing::Eval;
using ::leakguard::testing::SysGetRefCount;

static_assert(std::is_trivially_copyable_v<Handle>);
static_assert(std::is_nothrow_move_constructible_v<Ref>);
static_assert(sizeof(Ref) == sizeof(PyObject*));

// A fresh instance of a class with a weakref slot, so we can see it die.
Ref NewObject() { return Eval("Obj()", "class Obj: pass"); }

// Calls the weakref, as Python code would: the referent or None.
bool IsAlive(const Ref& weak) {
  Ref target = Steal(PyObject_CallNoArgs(weak.get()));
  return target && target.get() != Py_None;
}

TEST(RefTest, StealTakesTheNewReferenceWithoutAddingOne) {
  PyObject* raw = PyList_New(0);
  ASSERT_NE(raw, nullptr);
  // Only our reference (a C vectorcall adds none for its argument).
  EXPECT_EQ(SysGetRefCount(raw), 1);
  Ref list = Steal(raw);
  EXPECT_EQ(SysGetRefCount(list.get()), 1);
  EXPECT_EQ(list.get(), raw);
}

TEST(RefTest, BorrowAddsExactlyOneReference) {
  Ref owner = NewObject();
  const Py_ssize_t before = SysGetRefCount(owner.get());
  {
    Ref borrowed = Borrow(owner.get());
    EXPECT_EQ(SysGetRefCount(owner.get()), before + 1);
    Ref from_handle = Borrow(owner);
    EXPECT_EQ(SysGetRefCount(owner.get()), before + 2);
  }
  EXPECT_EQ(SysGetRefCount(owner.get()), before);
}

TEST(RefTest, HandleNeverTouchesTheCount) {
  Ref owner = NewObject();
  const Py_ssize_t before = SysGetRefCount(owner.get());
  Handle a = owner.handle();
  Handle b = a;
  std::vector<Handle> many(100, b);
  EXPECT_EQ(SysGetRefCount(owner.get()), before);
  EXPECT_EQ(a.RefCount(), before);
  EXPECT_TRUE(a == many.back());
  EXPECT_FALSE(Handle());
  EXPECT_EQ(Handle().RefCount(), 0);
}

TEST(RefTest, CopyAddsOneAndMoveAddsNone) {
  Ref owner = NewObject();
  const Py_ssize_t before = SysGetRefCount(owner.get());
  Ref copy = owner;
  EXPECT_EQ(SysGetRefCount(owner.get()), before + 1);
  Ref moved = std::move(copy);
  EXPECT_EQ(SysGetRefCount(owner.get()), before + 1);
  EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): moved-from is null.
  Ref assigned;
  assigned = moved;
  EXPECT_EQ(SysGetRefCount(owner.get()), before + 2);
  assigned = std::move(moved);  // Drops assigned's old reference.
  EXPECT_EQ(SysGetRefCount(owner.get()), before + 1);
}

TEST(RefTest, SelfAssignmentKeepsTheCount) {
  Ref owner = NewObject();
  const Py_ssize_t before = SysGetRefCount(owner.get());
  Ref& alias = owner;
  owner = alias;
  EXPECT_EQ(SysGetRefCount(owner.get()), before);
  owner = std::move(alias);
  EXPECT_EQ(SysGetRefCount(owner.get()), before);
}

TEST(RefTest, ReleaseHandsOwnershipBackWithoutDecrement) {
  Ref owner = NewObject();
  const Py_ssize_t before = SysGetRefCount(owner.get());
  Ref extra = owner;
  PyObject* raw = extra.Release();
  EXPECT_FALSE(extra);
  EXPECT_EQ(SysGetRefCount(owner.get()), before + 1);
  Py_DECREF(raw);
  EXPECT_EQ(SysGetRefCount(owner.get()), before);
}

TEST(RefTest, ResetAndDestructionFreeTheObject) {
  Ref object = NewObject();
  Ref weak = Steal(PyWeakref_NewRef(object.get(), nullptr));
  ASSERT_TRUE(weak);
  Ref second = object;
  object.Reset();
  EXPECT_FALSE(object);
  EXPECT_TRUE(IsAlive(weak));
  { Ref last = std::move(second); }
  EXPECT_FALSE(IsAlive(weak));
}

TEST(RefTest, NullRefsNeverTouchPython) {
  Ref a;
  Ref b = a;
  b = std::move(a);
  b.Reset();
  EXPECT_EQ(Steal(nullptr).get(), nullptr);
  EXPECT_EQ(Borrow(static_cast<PyObject*>(nullptr)).get(), nullptr);
}

// A __del__ that runs during Reset() sees the Ref already null: the pointer
// is swapped out before the decref.
TEST(RefTest, ResetSwapsBeforeDecref) {
  static Ref* slot = nullptr;
  static bool saw_null = false;
  PyMethodDef def = {"probe",
                     [](PyObject*, PyObject*) -> PyObject* {
                       saw_null = !*slot;
                       Py_RETURN_NONE;
                     },
                     METH_NOARGS, nullptr};
  Ref probe = Steal(PyCFunction_New(&def, nullptr));
  ASSERT_TRUE(probe);
  Ref cls = Eval("type('D', (), {'__del__': lambda self: self.probe()})");
  ASSERT_TRUE(cls);
  Ref holder = Steal(PyObject_CallNoArgs(cls.get()));
  ASSERT_TRUE(holder);
  ASSERT_EQ(PyObject_SetAttrString(holder.get(), "probe", probe.get()), 0);
  slot = &holder;
  holder.Reset();
  slot = nullptr;
  EXPECT_TRUE(saw_null);
}

}  // namespace
}  // namespace leakguard
