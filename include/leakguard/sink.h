// leakguard/sink.h
//
// Sinks: where reports go. A host picks one (or fans out to several):
//
//   StderrSink          text on stderr (or any FILE*), the default
//   JsonLinesSink       one JSON object per line, appended to a file
//   PythonLoggingSink   Python's `logging`, logger "leakguard", so hosts that
//                       configure Python logging get the reports
//   CallbackSink        a user function
//   FanOutSink          several of the above
//
// Write() never throws and never lets a failure escape: a sink that cannot
// write counts the failure (failures()) and moves on.
// Thread-safety: every sink here may be written from several threads at
// once.

#ifndef LEAKGUARD_SINK_H_
#define LEAKGUARD_SINK_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "leakguard/export.h"
#include "leakguard/report.h"

namespace leakguard {

/// Receives reports. Implementations must be thread-safe and must not throw.
class LEAKGUARD_EXPORT Sink {
 public:
  virtual ~Sink();
  /// Delivers one report. Never throws.
  virtual void Write(const Report& report) noexcept = 0;
  /// Reports this sink failed to deliver so far.
  int64_t failures() const noexcept { return failures_.load(); }

 protected:
  /// Counts one failed delivery.
  void CountFailure() noexcept { failures_.fetch_add(1); }

 private:
  std::atomic<int64_t> failures_{0};
};

/// Text (RenderText) on a stdio stream; stderr by default.
class LEAKGUARD_EXPORT StderrSink : public Sink {
 public:
  /// Writes to `stream` (not owned; must outlive the sink).
  explicit StderrSink(std::FILE* stream = stderr) : stream_(stream) {}
  /// Renders and writes the report in one fwrite.
  void Write(const Report& report) noexcept override;

 private:
  std::FILE* stream_;
};

/// One JSON object per line (RenderJson), appended to a file.
class LEAKGUARD_EXPORT JsonLinesSink : public Sink {
 public:
  /// Opens `path` for appending (created if missing). Errors: the errno
  /// text as Unavailable / NotFound / PermissionDenied.
  static absl::StatusOr<std::unique_ptr<JsonLinesSink>> Open(const std::string& path);
  /// Closes the file.
  ~JsonLinesSink() override;
  JsonLinesSink(const JsonLinesSink&) = delete;
  JsonLinesSink& operator=(const JsonLinesSink&) = delete;

  /// Appends one line and flushes it.
  void Write(const Report& report) noexcept override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit JsonLinesSink(std::FILE* file) : file_(file) {}
  absl::Mutex mu_;
  std::FILE* file_ ABSL_GUARDED_BY(mu_);
};

/// Python's logging: `logging.getLogger("leakguard")`, level WARNING for
/// warnings and INFO for info, message = the report's text, and the report
/// as a dict in the record's `leakguard` attribute (`extra=`).
/// Takes the GIL for each write (from any thread); drops the report (and
/// counts a failure) when no interpreter runs or logging raises.
class LEAKGUARD_EXPORT PythonLoggingSink : public Sink {
 public:
  /// Logs to the logger named `logger` (default "leakguard").
  explicit PythonLoggingSink(std::string logger = "leakguard") : logger_(std::move(logger)) {}
  /// Logs the report; never raises into the caller.
  void Write(const Report& report) noexcept override;

 private:
  std::string logger_;
};

/// Calls a function with each report. Exceptions it throws are caught and
/// counted as failures.
class LEAKGUARD_EXPORT CallbackSink : public Sink {
 public:
  /// The callback; called on the reporting thread.
  using Callback = std::function<void(const Report&)>;
  /// Wraps `callback`.
  explicit CallbackSink(Callback callback) : callback_(std::move(callback)) {}
  /// Calls the callback.
  void Write(const Report& report) noexcept override;

 private:
  Callback callback_;
};

/// Writes each report to every sink given (not owned; they must outlive it).
class LEAKGUARD_EXPORT FanOutSink : public Sink {
 public:
  /// Fans out to `sinks` in order.
  explicit FanOutSink(std::vector<Sink*> sinks) : sinks_(std::move(sinks)) {}
  /// Writes to each sink in turn.
  void Write(const Report& report) noexcept override;

 private:
  std::vector<Sink*> sinks_;
};

/// The process-wide default sink (a StderrSink on stderr). Never null.
LEAKGUARD_EXPORT Sink* DefaultSink() noexcept;

}  // namespace leakguard

#endif  // LEAKGUARD_SINK_H_
