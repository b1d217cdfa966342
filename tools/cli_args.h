// The `leakguard` command line turned into options: which command, and the
// RunOptions or DoctorCommandOptions it runs with. Pure (no Python, no I/O,
// no environment, no exit), so that the command, its unit tests and the
// libFuzzer target in tests/fuzz/ all call the same code.

#ifndef LEAKGUARD_TOOLS_CLI_ARGS_H_
#define LEAKGUARD_TOOLS_CLI_ARGS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "doctor_command.h"
#include "run_command.h"

namespace leakguard::tools {

/// Bounds the parser enforces on `leakguard run`; doctor's live in
/// DoctorOptions.
inline constexpr int kMinFrames = 1;
inline constexpr int kMaxFrames = 65535;
inline constexpr int kMinRunTop = 1;
inline constexpr int kMaxRunTop = 1000000;
inline constexpr double kMinDetectorSeconds = 0.001;
inline constexpr double kMaxDetectorSeconds = 86400;
inline constexpr int64_t kMaxThresholdBytes = int64_t{1} << 50;

/// A parsed command line.
struct ParsedCommand {
  enum class Kind {
    kHelp,     // --help, -h, help: print the usage on stdout, exit 0
    kVersion,  // --version
    kRun,      // `run`: `run` holds its options
    kDoctor,   // `doctor`: `doctor` holds its options
  };
  Kind kind = Kind::kHelp;
  RunOptions run;               // Set for kRun only.
  DoctorCommandOptions doctor;  // Set for kDoctor only.
};

/// Parses the command's arguments, `argv[1..]` (without the program name).
/// Leaves `python_program` empty in both option structs: the caller fills it
/// in from the environment.
///
/// On success, for kRun: `script` is set (possibly to an empty string given
/// after `--`), `frames` in kMinFrames..kMaxFrames, `top` in
/// kMinRunTop..kMaxRunTop, `detector_interval` zero or in
/// kMinDetectorSeconds..kMaxDetectorSeconds, `threshold_bytes` in
/// 1..kMaxThresholdBytes. For kDoctor: warmup, repeat, top and max_repeat
/// within DoctorOptions' kMin*/kMax*; exactly one of `script` and `module`
/// is non-empty; `func` or `call` or `wsgi_app` is non-empty, never both of
/// `call` and `wsgi_app`; `want_dot` is set when --dot or --html is given;
/// `progress` is -1, 0 or 1.
///
/// Returns InvalidArgument on a usage error, its message the one the command
/// prints after "leakguard: " (e.g. "--top needs a number in 1..1000000, got
/// 'x'"). Never fails otherwise. Thread-safe.
absl::StatusOr<ParsedCommand> ParseCommandLine(absl::Span<const std::string_view> args);

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_CLI_ARGS_H_
