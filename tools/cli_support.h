// What `leakguard run` and `leakguard doctor` share: output files checked
// before anything runs and written atomically, the report stream (a copy of
// fd 1 or 2 taken at start, so a script that closes its stdout cannot lose
// the report), signals (SIGINT and SIGTERM become exceptions in the script,
// a crash prints Python's traceback and says so), the bounded wait for
// threads a script left running, and text made valid UTF-8 for JSON.

#ifndef LEAKGUARD_TOOLS_CLI_SUPPORT_H_
#define LEAKGUARD_TOOLS_CLI_SUPPORT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace leakguard::tools {

/// Exit codes of the command.
inline constexpr int kExitUsage = 2;          // usage error, failed output, script error
inline constexpr int kExitInterrupted = 130;  // SIGINT (128 + 2)
inline constexpr int kExitTerminated = 143;   // SIGTERM (128 + 15)

/// One output named on the command line (`--json FILE`, `--dot FILE`).
struct OutputFile {
  std::string option;  // "--json"
  std::string path;    // As given; made absolute by CheckOutputs().
};

/// `path` made absolute against the current directory (no symlinks
/// resolved), so that a script's chdir() does not move the output.
std::string AbsolutePath(const std::string& path);

/// Makes every output's path absolute and checks, before anything runs,
/// that none of them is (the same file as) `script` or another output, and
/// that each one's directory exists. InvalidArgument with a message naming
/// the options otherwise.
absl::Status CheckOutputs(const std::string& script, std::vector<OutputFile*> outputs);

/// Writes `text` to `path`: a regular file (or a new one) is written to a
/// temporary file in its directory, flushed to disk and renamed over it, so
/// a failure leaves the old file as it was; anything else (a device such as
/// /dev/full or /dev/stdout, a FIFO) is written directly. Every write, the
/// fsync and the close are checked. The error says what failed and why.
absl::Status WriteOutput(const std::string& path, std::string_view text);

/// `text` with every byte sequence that is not UTF-8 replaced by U+FFFD.
std::string ValidUtf8(std::string_view text);

/// A copy of fd 1 or 2 taken at start: the command's reports go there, so a
/// script that closes (or reopens) its stdout/stderr does not lose them.
class ReportStream {
 public:
  explicit ReportStream(int fd);
  ~ReportStream();
  ReportStream(const ReportStream&) = delete;
  ReportStream& operator=(const ReportStream&) = delete;
  /// Writes all of `text`; the error says why it could not.
  absl::Status Write(std::string_view text);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool owned_ = false;
};

/// Before the interpreter starts: a fatal signal (SIGSEGV, SIGBUS, SIGFPE,
/// SIGILL, SIGABRT) writes "leakguard: the script crashed (signal N ...)"
/// to `report_fd` and then ends the process with that signal.
void InstallCrashMessage(const char* command, int report_fd);

/// After the interpreter starts (GIL held, main thread; the interpreter
/// started with install_signal_handlers, so SIGINT raises KeyboardInterrupt
/// through signal.default_int_handler): faulthandler on (Python's traceback
/// on a crash, to `report_fd`), and SIGTERM raises SystemExit(143) in the
/// main thread. A Python error as a Status if they cannot be installed.
absl::Status InstallSignalHandlers(int report_fd);

/// SIGTERM once its handler ran since InstallSignalHandlers(), else 0
/// (SIGINT shows as the KeyboardInterrupt it raises).
int CaughtSignal();

/// "SIGINT" / "SIGTERM" / "signal N".
std::string SignalName(int signum);

/// With the GIL, in the main thread: waits up to `limit` for the
/// non-daemon threads other than this one to end. Names them on `report`
/// first. True when none is left running (Py_FinalizeEx will not block);
/// false when some still run.
bool WaitForThreads(const char* command, ReportStream& report, absl::Duration limit);

/// A library message in the command's words: asides that name C++ API
/// ("(tracemalloc::TracingScope::Start, ...)", "leakguard::Interpreter")
/// and advice only a C++ caller can follow ("start it first") are taken
/// out, so the command never tells its user to call C++.
std::string CommandWording(absl::string_view message);

/// Flushes sys.stdout and sys.stderr (errors cleared). REQUIRES: the GIL.
void FlushPythonStreams();

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_CLI_SUPPORT_H_
