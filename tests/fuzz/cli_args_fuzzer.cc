// libFuzzer target: the `leakguard` command's argument parser
// (ParseCommandLine in tools/cli_args.cc) fed arbitrary command lines.
//
// Input: the arguments after the program name, separated by NUL bytes (as
// the kernel hands them over); an empty input is no argument at all.
// Checked on every input: a failure is InvalidArgument with a message that
// quotes, where it quotes an argument, one that was given; a success names
// the command of args[0], keeps every number within the bounds
// cli_args.h documents (and DoctorOptions::Validate() accepts the doctor's),
// splits the doctor's target into exactly one of script or module plus a
// function, expression or application, and ends with the script and its
// arguments exactly as given; parsing a copy of the same arguments again
// gives the same result. Any violation aborts (a finding).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli_args.h"
#include "leakguard/doctor.h"

namespace {

using leakguard::DoctorOptions;
using leakguard::tools::DoctorCommandOptions;
using leakguard::tools::kMaxDetectorSeconds;
using leakguard::tools::kMaxFrames;
using leakguard::tools::kMaxRunTop;
using leakguard::tools::kMaxThresholdBytes;
using leakguard::tools::kMinDetectorSeconds;
using leakguard::tools::kMinFrames;
using leakguard::tools::kMinRunTop;
using leakguard::tools::ParseCommandLine;
using leakguard::tools::ParsedCommand;
using leakguard::tools::RunOptions;

[[noreturn]] void Fail(const char* what, const std::vector<std::string_view>& args) {
  std::fprintf(stderr, "ParseCommandLine: %s; %zu arguments:", what, args.size());
  for (std::string_view arg : args) {
    std::fprintf(stderr, " '%.*s'", static_cast<int>(arg.size()), arg.data());
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

bool IsArg(std::string_view text, const std::vector<std::string_view>& args) {
  for (std::string_view arg : args) {
    if (arg == text) return true;
  }
  return false;
}

bool InRange(int value, int low, int high) { return value >= low && value <= high; }

bool SameRun(const RunOptions& a, const RunOptions& b) {
  return a.script == b.script && a.args == b.args && a.frames == b.frames && a.top == b.top &&
         a.python_program == b.python_program && a.detector_interval == b.detector_interval &&
         a.threshold_bytes == b.threshold_bytes && a.json_path == b.json_path;
}

bool SameDoctor(const DoctorCommandOptions& a, const DoctorCommandOptions& b) {
  return a.script == b.script && a.module == b.module && a.func == b.func && a.call == b.call &&
         a.wsgi_app == b.wsgi_app && a.wsgi_path == b.wsgi_path && a.wsgi_method == b.wsgi_method &&
         a.doctor.warmup == b.doctor.warmup && a.doctor.repeat == b.doctor.repeat &&
         a.doctor.top == b.doctor.top && a.doctor.want_dot == b.doctor.want_dot &&
         a.doctor.max_repeat == b.doctor.max_repeat && a.json_path == b.json_path &&
         a.dot_path == b.dot_path && a.html_path == b.html_path && a.progress == b.progress &&
         a.python_program == b.python_program;
}

// A message that quotes a value ("got 'x'", "option '--x'", "command 'x'")
// ends with it: one of the arguments, whole, in quotes.
void CheckError(const absl::Status& status, const std::vector<std::string_view>& args) {
  if (status.code() != absl::StatusCode::kInvalidArgument) Fail("not InvalidArgument", args);
  const std::string_view message(status.message().data(), status.message().size());
  if (message.empty()) Fail("an empty message", args);
  if (message.back() != '\'') return;
  for (std::string_view arg : args) {
    const size_t quoted = arg.size() + 2;
    if (message.size() > quoted && message[message.size() - quoted] == '\'' &&
        message.substr(message.size() - quoted + 1, arg.size()) == arg) {
      return;
    }
  }
  Fail("a message quoting no argument", args);
}

void CheckRun(const RunOptions& run, const std::vector<std::string_view>& args) {
  if (!InRange(run.frames, kMinFrames, kMaxFrames)) Fail("frames out of bounds", args);
  if (!InRange(run.top, kMinRunTop, kMaxRunTop)) Fail("run top out of bounds", args);
  if (run.detector_interval != absl::ZeroDuration() &&
      (run.detector_interval < absl::Seconds(kMinDetectorSeconds) ||
       run.detector_interval > absl::Seconds(kMaxDetectorSeconds))) {
    Fail("detector interval out of bounds", args);
  }
  if (run.threshold_bytes < 1 || run.threshold_bytes > kMaxThresholdBytes) {
    Fail("threshold out of bounds", args);
  }
  if (!run.python_program.empty()) Fail("python_program set", args);
  if (!run.json_path.empty() && !IsArg(run.json_path, args)) Fail("json path not given", args);
  // run [OPTIONS] SCRIPT ARGS...: the last arguments, unchanged.
  if (args.size() < run.args.size() + 2) Fail("more script arguments than given", args);
  const size_t first = args.size() - run.args.size();
  for (size_t k = 0; k < run.args.size(); ++k) {
    if (run.args[k] != args[first + k]) Fail("script argument changed", args);
  }
  if (run.script != args[first - 1]) Fail("script is not the argument before its own", args);
}

void CheckDoctor(const DoctorCommandOptions& doctor, const std::vector<std::string_view>& args) {
  const DoctorOptions& d = doctor.doctor;
  if (!InRange(d.warmup, DoctorOptions::kMinWarmup, DoctorOptions::kMaxWarmup) ||
      !InRange(d.repeat, DoctorOptions::kMinRepeat, DoctorOptions::kMaxRepeat) ||
      !InRange(d.top, DoctorOptions::kMinTop, DoctorOptions::kMaxTop) ||
      !InRange(d.max_repeat, DoctorOptions::kMinMaxRepeat, DoctorOptions::kMaxMaxRepeat)) {
    Fail("doctor number out of bounds", args);
  }
  if (!d.Validate().ok()) Fail("DoctorOptions::Validate() refuses what was parsed", args);
  if (doctor.script.empty() == doctor.module.empty()) Fail("not one of script, module", args);
  const std::string& where = doctor.script.empty() ? doctor.module : doctor.script;
  const bool looks_like_path =
      (where.size() > 3 && where.compare(where.size() - 3, 3, ".py") == 0) ||
      where.find('/') != std::string::npos;
  if (looks_like_path != !doctor.script.empty()) Fail("path and module mixed up", args);
  if (!doctor.call.empty() && !doctor.wsgi_app.empty()) Fail("both --call and --wsgi", args);
  if (!doctor.func.empty() && !doctor.wsgi_app.empty()) Fail("both FUNC and --wsgi", args);
  if (doctor.func.empty() && doctor.call.empty() && doctor.wsgi_app.empty()) {
    Fail("nothing to call", args);
  }
  // The target (or --wsgi's value) was WHERE:WHAT, or WHERE with --call.
  const std::string& what = doctor.wsgi_app.empty() ? doctor.func : doctor.wsgi_app;
  if (!IsArg(where + ":" + what, args) && !(what.empty() && IsArg(where, args))) {
    Fail("target not given", args);
  }
  if ((!doctor.dot_path.empty() || !doctor.html_path.empty()) && !d.want_dot) {
    Fail("--dot or --html without want_dot", args);
  }
  if (doctor.progress < -1 || doctor.progress > 1) Fail("progress out of bounds", args);
  if (!doctor.python_program.empty()) Fail("python_program set", args);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> args;
  for (size_t start = 0; !input.empty() && start <= input.size();) {
    size_t nul = input.find('\0', start);
    if (nul == std::string_view::npos) nul = input.size();
    args.push_back(input.substr(start, nul - start));
    start = nul + 1;
  }

  const absl::StatusOr<ParsedCommand> parsed = ParseCommandLine(args);

  // Again, from a copy in other memory: nothing may depend on where the
  // arguments live or on an earlier call.
  const std::vector<std::string> copies(args.begin(), args.end());
  const std::vector<std::string_view> again_args(copies.begin(), copies.end());
  const absl::StatusOr<ParsedCommand> again = ParseCommandLine(again_args);
  if (parsed.ok() != again.ok()) Fail("a second parse disagrees on success", args);

  if (!parsed.ok()) {
    CheckError(parsed.status(), args);
    if (parsed.status() != again.status()) Fail("a second parse gives another error", args);
    return 0;
  }
  if (parsed->kind != again->kind) Fail("a second parse gives another command", args);
  if (args.empty()) Fail("success without a command", args);
  switch (parsed->kind) {
    case ParsedCommand::Kind::kHelp:
      if (args[0] != "--help" && args[0] != "-h" && args[0] != "help") Fail("help for", args);
      break;
    case ParsedCommand::Kind::kVersion:
      if (args[0] != "--version") Fail("version for", args);
      break;
    case ParsedCommand::Kind::kRun:
      if (args[0] != "run") Fail("run for", args);
      CheckRun(parsed->run, args);
      if (!SameRun(parsed->run, again->run)) Fail("a second parse gives other run options", args);
      break;
    case ParsedCommand::Kind::kDoctor:
      if (args[0] != "doctor") Fail("doctor for", args);
      CheckDoctor(parsed->doctor, args);
      if (!SameDoctor(parsed->doctor, again->doctor)) {
        Fail("a second parse gives other doctor options", args);
      }
      break;
  }
  return 0;
}
