#include "leakguard/sink.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {

Sink::~Sink() = default;

void StderrSink::Write(const Report& report) noexcept {
  try {
    const std::string text = RenderText(report);
    // One fwrite: stdio locks the stream, so concurrent reports never
    // interleave within a report.
    if (std::fwrite(text.data(), 1, text.size(), stream_) != text.size()) {
      CountFailure();
    }
    std::fflush(stream_);
  } catch (...) {
    CountFailure();
  }
}

absl::StatusOr<std::unique_ptr<JsonLinesSink>> JsonLinesSink::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "ae");
  if (file == nullptr) {
    const int err = errno;
    const std::string message =
        absl::StrCat("cannot open '", path, "' for appending: ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  }
  return std::unique_ptr<JsonLinesSink>(new JsonLinesSink(file));
}

JsonLinesSink::~JsonLinesSink() {
  absl::MutexLock lock(&mu_);
  if (file_ != nullptr) std::fclose(file_);
}

void JsonLinesSink::Write(const Report& report) noexcept {
  try {
    std::string line = RenderJson(report);
    line += '\n';
    absl::MutexLock lock(&mu_);
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
      CountFailure();
    }
  } catch (...) {
    CountFailure();
  }
}

namespace {

// The report as a Python dict, for logging's `extra`. New reference or null
// with a Python error set.
PyObject* ReportAsDict(const Report& report) {
  Ref metrics = Steal(PyDict_New());
  if (!metrics) return nullptr;
  for (const auto& [name, value] : report.metrics) {
    Ref v = Steal(PyLong_FromLongLong(value));
    if (!v || PyDict_SetItemString(metrics.get(), name.c_str(), v.get()) != 0) {
      return nullptr;
    }
  }
  Ref lines = Steal(PyList_New(0));
  if (!lines) return nullptr;
  for (const LineGrowth& line : report.top_lines) {
    Ref item = Steal(Py_BuildValue("{s:s,s:i,s:L,s:L,s:L}", "file", line.file.c_str(), "line",
                                   line.line, "size_diff", static_cast<long long>(line.size_diff),
                                   "count_diff", static_cast<long long>(line.count_diff), "size",
                                   static_cast<long long>(line.size)));
    if (!item || PyList_Append(lines.get(), item.get()) != 0) return nullptr;
  }
  Ref types = Steal(PyList_New(0));
  if (!types) return nullptr;
  for (const TypeCountDiff& type : report.type_growth) {
    Ref name = Steal(PyUnicode_DecodeUTF8(type.name.data(),
                                          static_cast<Py_ssize_t>(type.name.size()), "replace"));
    if (!name) return nullptr;
    Ref item = Steal(Py_BuildValue("{s:O,s:L,s:L}", "name", name.get(), "count",
                                   static_cast<long long>(type.count), "count_diff",
                                   static_cast<long long>(type.count_diff)));
    if (!item || PyList_Append(types.get(), item.get()) != 0) return nullptr;
  }
  Ref notes = Steal(PyList_New(0));
  if (!notes) return nullptr;
  for (const std::string& note : report.notes) {
    Ref text =
        Steal(PyUnicode_DecodeUTF8(note.data(), static_cast<Py_ssize_t>(note.size()), "replace"));
    if (!text || PyList_Append(notes.get(), text.get()) != 0) return nullptr;
  }
  return Py_BuildValue("{s:s,s:s,s:s,s:s,s:d,s:O,s:O,s:O,s:O}", "source", report.source.c_str(),
                       "label", report.label.c_str(), "severity", SeverityName(report.severity),
                       "summary", report.summary.c_str(), "elapsed_s",
                       absl::ToDoubleSeconds(report.elapsed), "metrics", metrics.get(), "top_lines",
                       lines.get(), "type_growth", types.get(), "notes", notes.get());
}

bool LogToPython(const std::string& logger_name, const Report& report) {
  Ref logging = Steal(PyImport_ImportModule("logging"));
  if (!logging) return false;
  Ref logger = Steal(PyObject_CallMethod(logging.get(), "getLogger", "s", logger_name.c_str()));
  if (!logger) return false;
  Ref extra_value = Steal(ReportAsDict(report));
  if (!extra_value) return false;
  Ref extra = Steal(Py_BuildValue("{s:O}", "leakguard", extra_value.get()));
  if (!extra) return false;
  std::string text = RenderText(report);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  Ref message =
      Steal(PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
  if (!message) return false;
  const int level = report.severity == Severity::kWarning ? 30 : 20;
  Ref log = Steal(PyObject_GetAttrString(logger.get(), "log"));
  if (!log) return false;
  Ref args = Steal(Py_BuildValue("(isO)", level, "%s", message.get()));
  Ref kwargs = Steal(Py_BuildValue("{s:O}", "extra", extra.get()));
  if (!args || !kwargs) return false;
  Ref done = Steal(PyObject_Call(log.get(), args.get(), kwargs.get()));
  return static_cast<bool>(done);
}

}  // namespace

void PythonLoggingSink::Write(const Report& report) noexcept {
  try {
    GilAcquire gil;
    if (!gil.ok()) {
      CountFailure();
      return;
    }
    // Keep whatever exception the calling thread has pending (a guard may
    // report while an exception unwinds through it).
    Ref pending = Steal(compat::FetchException());
    if (!LogToPython(logger_, report)) {
      PyErr_Clear();
      CountFailure();
    }
    if (pending) compat::RestoreException(pending.Release());
  } catch (...) {
    CountFailure();
  }
}

void CallbackSink::Write(const Report& report) noexcept {
  try {
    if (callback_) callback_(report);
  } catch (...) {
    CountFailure();
  }
}

void FanOutSink::Write(const Report& report) noexcept {
  for (Sink* sink : sinks_) {
    if (sink != nullptr) sink->Write(report);
  }
}

Sink* DefaultSink() noexcept {
  static StderrSink* sink = new StderrSink(stderr);  // Never destroyed.
  return sink;
}

}  // namespace leakguard
