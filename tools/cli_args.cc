#include "cli_args.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "leakguard/doctor.h"

namespace leakguard::tools {
namespace {

// "10M", "512K", "1G", "4096": a size in bytes, 1..kMaxThresholdBytes.
bool ParseSize(std::string_view text, int64_t* out) {
  int64_t scale = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
      case 'k':
        scale = int64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        scale = int64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        scale = int64_t{1} << 30;
        break;
      default:
        break;
    }
    if (scale != 1) text.remove_suffix(1);
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value) || value <= 0 ||
      value > kMaxThresholdBytes / scale) {
    return false;
  }
  *out = value * scale;
  return true;
}

bool ParseSeconds(std::string_view text, absl::Duration* out) {
  double seconds = 0;
  // Written so that NaN fails too.
  if (!absl::SimpleAtod(absl::string_view(text.data(), text.size()), &seconds) ||
      !(seconds >= kMinDetectorSeconds) || seconds > kMaxDetectorSeconds) {
    return false;
  }
  *out = absl::Seconds(seconds);
  return true;
}

bool ParseInt(std::string_view text, int low, int high, int* out) {
  int value = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value) || value < low ||
      value > high) {
    return false;
  }
  *out = value;
  return true;
}

// `args` is the whole command line after the program name; args[0] is "doctor".
absl::StatusOr<DoctorCommandOptions> ParseDoctor(absl::Span<const std::string_view> args) {
  DoctorCommandOptions options;
  std::string target;
  std::string wsgi;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    const bool has_value = i + 1 < args.size();
    if ((arg == "--warmup" || arg == "--repeat" || arg == "--top") && has_value) {
      int* field = arg == "--warmup"   ? &options.doctor.warmup
                   : arg == "--repeat" ? &options.doctor.repeat
                                       : &options.doctor.top;
      // The bounds live in DoctorOptions alone.
      const int low = arg == "--warmup"   ? DoctorOptions::kMinWarmup
                      : arg == "--repeat" ? DoctorOptions::kMinRepeat
                                          : DoctorOptions::kMinTop;
      const int high = arg == "--warmup"   ? DoctorOptions::kMaxWarmup
                       : arg == "--repeat" ? DoctorOptions::kMaxRepeat
                                           : DoctorOptions::kMaxTop;
      if (!ParseInt(args[i + 1], low, high, field)) {
        return absl::InvalidArgumentError(std::string(arg) + " needs a number in " +
                                          std::to_string(low) + ".." + std::to_string(high) +
                                          ", got '" + std::string(args[i + 1]) + "'");
      }
      ++i;
    } else if (arg == "--max-repeat" && has_value) {
      if (!ParseInt(args[i + 1], DoctorOptions::kMinMaxRepeat, DoctorOptions::kMaxMaxRepeat,
                    &options.doctor.max_repeat)) {
        return absl::InvalidArgumentError("--max-repeat needs a number in " +
                                          std::to_string(DoctorOptions::kMinMaxRepeat) + ".." +
                                          std::to_string(DoctorOptions::kMaxMaxRepeat) + ", got '" +
                                          std::string(args[i + 1]) + "'");
      }
      ++i;
    } else if ((arg == "--json" || arg == "--dot" || arg == "--html") && has_value) {
      (arg == "--json"  ? options.json_path
       : arg == "--dot" ? options.dot_path
                        : options.html_path) = std::string(args[i + 1]);
      options.doctor.want_dot = options.doctor.want_dot || arg != "--json";
      ++i;
    } else if ((arg == "--call" || arg == "--wsgi" || arg == "--path" || arg == "--method") &&
               has_value) {
      (arg == "--call"   ? options.call
       : arg == "--wsgi" ? wsgi
       : arg == "--path" ? options.wsgi_path
                         : options.wsgi_method) = std::string(args[i + 1]);
      ++i;
    } else if (arg == "--progress" || arg == "--no-progress") {
      options.progress = arg == "--progress" ? 1 : 0;
    } else if (!arg.empty() && arg[0] == '-') {
      return absl::InvalidArgumentError("unknown or incomplete option '" + std::string(arg) + "'");
    } else if (target.empty()) {
      target = std::string(arg);
    } else {
      return absl::InvalidArgumentError(
          "doctor takes one target: SCRIPT.py:FUNC or pkg.module:FUNC");
    }
  }
  if (!options.call.empty() && !wsgi.empty()) {
    return absl::InvalidArgumentError("--call and --wsgi do not go together");
  }
  if (!wsgi.empty()) {
    if (!target.empty()) {
      return absl::InvalidArgumentError("--wsgi APP names the target; give no other");
    }
    target = wsgi;
  }
  // SCRIPT.py:FUNC, path/to/pkg/mod.py:FUNC, pkg.module:FUNC; with --call
  // or --wsgi the part after ':' is the expression's module or the app.
  std::string where = target, what;
  if (const size_t colon = target.rfind(':'); colon != std::string::npos) {
    where = target.substr(0, colon);
    what = target.substr(colon + 1);
  }
  if (where.empty() || (what.empty() && options.call.empty())) {
    return absl::InvalidArgumentError(
        "doctor needs SCRIPT.py:FUNC or pkg.module:FUNC (or SCRIPT.py --call 'f(1)', or "
        "--wsgi app.py:application), e.g. app.py:handle_request");
  }
  if (!wsgi.empty()) {
    options.wsgi_app = what;
  } else {
    options.func = what;
  }
  const bool is_path = where.size() > 3 && where.compare(where.size() - 3, 3, ".py") == 0;
  (is_path || where.find('/') != std::string::npos ? options.script : options.module) = where;
  return options;
}

// `args` is the whole command line after the program name; args[0] is "run".
absl::StatusOr<RunOptions> ParseRun(absl::Span<const std::string_view> args) {
  RunOptions options;
  size_t i = 1;
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.empty() || arg[0] != '-') break;
    if ((arg == "--frames" || arg == "--top") && i + 1 < args.size()) {
      int* target = arg == "--frames" ? &options.frames : &options.top;
      const int low = arg == "--frames" ? kMinFrames : kMinRunTop;
      const int high = arg == "--frames" ? kMaxFrames : kMaxRunTop;
      if (!ParseInt(args[i + 1], low, high, target)) {
        return absl::InvalidArgumentError(std::string(arg) + " needs a number in " +
                                          std::to_string(low) + ".." + std::to_string(high) +
                                          ", got '" + std::string(args[i + 1]) + "'");
      }
      ++i;
      continue;
    }
    if (arg == "--detector-interval" && i + 1 < args.size()) {
      if (!ParseSeconds(args[i + 1], &options.detector_interval)) {
        return absl::InvalidArgumentError(
            "--detector-interval needs seconds in 0.001..86400, got '" + std::string(args[i + 1]) +
            "'");
      }
      ++i;
      continue;
    }
    if (arg == "--threshold" && i + 1 < args.size()) {
      if (!ParseSize(args[i + 1], &options.threshold_bytes)) {
        return absl::InvalidArgumentError(
            "--threshold needs a positive size like 4096, 512K, 10M or 1G, got '" +
            std::string(args[i + 1]) + "'");
      }
      ++i;
      continue;
    }
    if ((arg == "--json" || arg == "--html") && i + 1 < args.size()) {
      (arg == "--json" ? options.json_path : options.html_path) = std::string(args[i + 1]);
      ++i;
      continue;
    }
    return absl::InvalidArgumentError("unknown or incomplete option '" + std::string(arg) + "'");
  }
  if (i >= args.size()) return absl::InvalidArgumentError("run: missing SCRIPT.py");
  options.script = std::string(args[i]);
  for (++i; i < args.size(); ++i) options.args.emplace_back(args[i]);
  return options;
}

}  // namespace

absl::StatusOr<ParsedCommand> ParseCommandLine(absl::Span<const std::string_view> args) {
  if (args.empty()) return absl::InvalidArgumentError("missing command");
  ParsedCommand command;
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    command.kind = ParsedCommand::Kind::kHelp;
    return command;
  }
  if (args[0] == "--version") {
    command.kind = ParsedCommand::Kind::kVersion;
    return command;
  }
  if (args[0] == "doctor") {
    absl::StatusOr<DoctorCommandOptions> doctor = ParseDoctor(args);
    if (!doctor.ok()) return doctor.status();
    command.kind = ParsedCommand::Kind::kDoctor;
    command.doctor = *std::move(doctor);
    return command;
  }
  if (args[0] != "run") {
    return absl::InvalidArgumentError("unknown command '" + std::string(args[0]) + "'");
  }
  absl::StatusOr<RunOptions> run = ParseRun(args);
  if (!run.ok()) return run.status();
  command.kind = ParsedCommand::Kind::kRun;
  command.run = *std::move(run);
  return command;
}

}  // namespace leakguard::tools
