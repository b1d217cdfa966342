// Python exceptions become Statuses with type, message and traceback.

#include "leakguard/python/error.h"

#include <string>
#include <thread>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/ref.h"
#include "test_util.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;

// Calls error_cases.<name>() and converts the exception it raises.
absl::Status CallFailing(const char* name) {
  Ref module = Steal(PyImport_ImportModule("error_cases"));
  if (!module) return StatusFromPythonError();
  Ref result = Steal(PyObject_CallMethod(module.get(), name, nullptr));
  EXPECT_FALSE(result) << name << " did not raise";
  return StatusFromPythonError();
}

absl::Status Raise(PyObject* type, const char* message) {
  PyErr_SetString(type, message);
  return StatusFromPythonError();
}

TEST(ErrorTest, CarriesTypeMessageAndTracebackWithLines) {
  absl::Status status = CallFailing("fail_nested");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "ValueError: bad value");
  EXPECT_EQ(PythonExceptionType(status), "ValueError");
  std::string traceback = PythonTraceback(status).value_or("");
  EXPECT_THAT(traceback, HasSubstr("Traceback (most recent call last):"));
  EXPECT_THAT(traceback, HasSubstr("error_cases.py\", line 18, in fail_nested"));
  EXPECT_THAT(traceback, HasSubstr("error_cases.py\", line 14, in fail_value"));
  EXPECT_THAT(traceback, HasSubstr("ValueError: bad value"));
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST(ErrorTest, SurvivesAnExceptionWhoseStrRaises) {
  absl::Status status = CallFailing("fail_bad_str");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(status.message(), "error_cases.BadStr: <exception str() failed>");
  EXPECT_EQ(PythonExceptionType(status), "error_cases.BadStr");
  EXPECT_THAT(PythonTraceback(status).value_or(""), HasSubstr("in fail_bad_str"));
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST(ErrorTest, QualifiesUserExceptionTypesWithTheirModule) {
  absl::Status status = CallFailing("fail_app");
  EXPECT_EQ(status.message(), "error_cases.AppError: custom");
  EXPECT_EQ(PythonExceptionType(status), "error_cases.AppError");
}

TEST(ErrorTest, MapsExceptionTypesToStatusCodes) {
  EXPECT_EQ(Raise(PyExc_TypeError, "t").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Raise(PyExc_KeyError, "k").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Raise(PyExc_IndexError, "i").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Raise(PyExc_FileNotFoundError, "f").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Raise(PyExc_ModuleNotFoundError, "m").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Raise(PyExc_PermissionError, "p").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Raise(PyExc_TimeoutError, "t").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Raise(PyExc_MemoryError, "m").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Raise(PyExc_NotImplementedError, "n").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Raise(PyExc_RuntimeError, "r").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(Raise(PyExc_OSError, "o").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(PyErr_Occurred(), nullptr);
}

TEST(ErrorTest, ExceptionWithoutTracebackStillFormats) {
  absl::Status status = Raise(PyExc_KeyError, "missing");
  EXPECT_EQ(status.message(), "KeyError: 'missing'");
  EXPECT_THAT(PythonTraceback(status).value_or(""), HasSubstr("KeyError: 'missing'"));
}

TEST(ErrorTest, NoPendingExceptionIsInternal) {
  absl::Status status = StatusFromPythonError();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(PythonExceptionType(status).has_value());
}

TEST(ErrorTest, WithoutTheGilIsFailedPrecondition) {
  PyErr_SetString(PyExc_ValueError, "stays pending");
  absl::Status status;
  {
    GilRelease release;
    std::thread([&status] { status = StatusFromPythonError(); }).join();
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  // This thread's pending error was not touched.
  ASSERT_NE(PyErr_Occurred(), nullptr);
  EXPECT_EQ(StatusFromPythonError().message(), "ValueError: stays pending");
}

TEST(ErrorTest, PlainStatusesHaveNoPythonPayloads) {
  absl::Status status = absl::NotFoundError("x");
  EXPECT_FALSE(PythonExceptionType(status).has_value());
  EXPECT_FALSE(PythonTraceback(status).has_value());
}

}  // namespace
}  // namespace leakguard
