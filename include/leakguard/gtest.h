// leakguard/gtest.h
//
// GoogleTest assertions for leak checks (header-only: libleakguard does not
// depend on GoogleTest). Each runs RunLeakCheck() on the callable and fails
// with LeakCheckResult::Describe(): the verdict, the per-run deltas of every
// counter, and the lines that grew.
//
//   TEST(Plugin, DoesNotLeak) {
//     EXPECT_NO_PYTHON_LEAKS([] { return RunPluginOnce(); });   // absl::Status()
//     ASSERT_NO_PYTHON_LEAKS(py_callable_handle);               // leakguard::Handle
//     EXPECT_NO_PYTHON_LEAKS(fn, {.warmup = 5, .repeat = 10});  // with options
//   }
//
// REQUIRES: the GIL is held by the test thread.

#ifndef LEAKGUARD_GTEST_H_
#define LEAKGUARD_GTEST_H_

#include <string>

#include "gtest/gtest.h"
#include "leakguard/leak_check.h"

namespace leakguard::testing {

/// Runs the leak check and turns its result into an AssertionResult.
/// `expr` is the callable's source text, for the message.
template <typename Callable>
::testing::AssertionResult CheckNoPythonLeaks(const char* expr, Callable&& callable,
                                              const LeakCheckOptions& options = {}) {
  absl::StatusOr<LeakCheckResult> result;
  if constexpr (std::is_convertible_v<Callable, Handle>) {
    result = RunLeakCheck(Handle(callable), options);
  } else {
    result = RunLeakCheck(std::function<absl::Status()>(callable), options);
  }
  if (!result.ok()) {
    return ::testing::AssertionFailure()
           << "leak check of " << expr << " could not run: " << result.status();
  }
  if (result->leaked) {
    return ::testing::AssertionFailure() << expr << " " << result->Describe();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace leakguard::testing

/// Non-fatal: the callable (absl::Status() or a leakguard::Handle to a
/// Python callable) leaks nothing by RunLeakCheck()'s rule. Optional second
/// argument: LeakCheckOptions.
#define EXPECT_NO_PYTHON_LEAKS(callable, ...) \
  EXPECT_TRUE(                                \
      ::leakguard::testing::CheckNoPythonLeaks(#callable, callable __VA_OPT__(, ) __VA_ARGS__))

/// Fatal version of EXPECT_NO_PYTHON_LEAKS.
#define ASSERT_NO_PYTHON_LEAKS(callable, ...) \
  ASSERT_TRUE(                                \
      ::leakguard::testing::CheckNoPythonLeaks(#callable, callable __VA_OPT__(, ) __VA_ARGS__))

#endif  // LEAKGUARD_GTEST_H_
