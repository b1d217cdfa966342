// Python exceptions become Statuses with type, message and traceback.

#include "leakguard/python/error.h"

#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
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

// The pending exception's class name and str(), cleared.
std::pair<std::string, std::string> TakeRaised() {
  Ref exc = Steal(compat::FetchException());
  if (!exc) return {"<nothing raised>", ""};
  Ref text = Steal(PyObject_Str(exc.get()));
  const char* utf8 = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
  std::pair<std::string, std::string> out{Py_TYPE(exc.get())->tp_name,
                                          utf8 ? utf8 : "<str failed>"};
  PyErr_Clear();
  return out;
}

TEST(SetPythonErrorFromStatusTest, RaisesTheOriginalClassAgainWithItsMessage) {
  absl::Status app = CallFailing("fail_app");
  Ref module = Steal(PyImport_ImportModule("error_cases"));
  ASSERT_TRUE(module);
  Ref app_error = Steal(PyObject_GetAttrString(module.get(), "AppError"));
  ASSERT_TRUE(app_error);
  EXPECT_EQ(SetPythonErrorFromStatus(app, "step()"), nullptr);
  ASSERT_NE(PyErr_Occurred(), nullptr);
  EXPECT_TRUE(PyErr_ExceptionMatches(app_error.get()));
  EXPECT_EQ(TakeRaised(), std::make_pair(std::string("AppError"), std::string("step(): custom")));

  SetPythonErrorFromStatus(CallFailing("fail_nested"));
  EXPECT_EQ(TakeRaised(), std::make_pair(std::string("ValueError"), std::string("bad value")));
  // A round trip gives the same status back.
  SetPythonErrorFromStatus(Raise(PyExc_TimeoutError, "slow"));
  absl::Status again = StatusFromPythonError();
  EXPECT_EQ(again.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(again.message(), "TimeoutError: slow");
}

TEST(SetPythonErrorFromStatusTest, RaisesByCodeTheMirrorOfStatusFromPythonError) {
  const std::pair<absl::Status, const char*> cases[] = {
      {absl::InvalidArgumentError("m"), "ValueError"},
      {absl::NotFoundError("m"), "LookupError"},
      {absl::ResourceExhaustedError("m"), "MemoryError"},
      {absl::UnimplementedError("m"), "NotImplementedError"},
      {absl::PermissionDeniedError("m"), "PermissionError"},
      {absl::DeadlineExceededError("m"), "TimeoutError"},
      {absl::UnavailableError("m"), "OSError"},
      {absl::DataLossError("m"), "OSError"},
      {absl::FailedPreconditionError("m"), "RuntimeError"},
      {absl::InternalError("m"), "RuntimeError"},
      {absl::UnknownError("m"), "RuntimeError"},
  };
  for (const auto& [status, type] : cases) {
    SetPythonErrorFromStatus(status, "f()");
    EXPECT_EQ(TakeRaised(), std::make_pair(std::string(type), std::string("f(): m"))) << status;
  }
  // Each class StatusFromPythonError() maps to a code comes back as a class
  // that maps to the same code.
  for (PyObject* type : {PyExc_ValueError, PyExc_LookupError, PyExc_MemoryError,
                         PyExc_NotImplementedError, PyExc_PermissionError, PyExc_TimeoutError}) {
    PyErr_SetString(type, "x");
    const absl::Status status = StatusFromPythonError();
    SetPythonErrorFromStatus(absl::Status(status.code(), "x"));
    EXPECT_EQ(StatusFromPythonError().code(), status.code()) << status;
  }
}

TEST(SetPythonErrorFromStatusTest, FallsBackToTheCodeWhenTheClassCannotBeRaisedAgain) {
  // A module nobody imported is not imported to find the class.
  absl::Status unknown = absl::InvalidArgumentError("nosuchmodule_lg.Bad: no");
  unknown.SetPayload(kPythonTypePayload, absl::Cord("nosuchmodule_lg.Bad"));
  SetPythonErrorFromStatus(unknown);
  EXPECT_EQ(TakeRaised(),
            std::make_pair(std::string("ValueError"), std::string("nosuchmodule_lg.Bad: no")));
  Ref name = Steal(PyUnicode_FromString("nosuchmodule_lg"));
  EXPECT_FALSE(Steal(PyImport_GetModule(name.get())));
  // SystemExit would end the caller's program: raised as RuntimeError.
  SetPythonErrorFromStatus(Raise(PyExc_SystemExit, "3"));
  EXPECT_EQ(TakeRaised(),
            std::make_pair(std::string("RuntimeError"), std::string("SystemExit: 3")));
  // A class whose constructor wants more than a message.
  absl::Status decode = absl::InvalidArgumentError("UnicodeDecodeError: bad byte");
  decode.SetPayload(kPythonTypePayload, absl::Cord("UnicodeDecodeError"));
  SetPythonErrorFromStatus(decode);
  EXPECT_EQ(TakeRaised(),
            std::make_pair(std::string("ValueError"), std::string("UnicodeDecodeError: bad byte")));
}

TEST(SetPythonErrorFromStatusTest, AnOkStatusIsASystemError) {
  SetPythonErrorFromStatus(absl::OkStatus(), "g()");
  EXPECT_EQ(
      TakeRaised(),
      std::make_pair(std::string("SystemError"),
                     std::string("g(): SetPythonErrorFromStatus() called with an OK status")));
}

}  // namespace
}  // namespace leakguard
