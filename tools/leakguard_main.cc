// The `leakguard` command: argument parsing and dispatch.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "doctor_command.h"
#include "leakguard/version.h"
#include "run_command.h"

namespace {

constexpr char kUsage[] =
    "usage: leakguard run [--frames N] [--top N] [--detector-interval SECONDS]\n"
    "                     [--threshold SIZE] [--json FILE] SCRIPT.py|DIR|ZIP [ARGS...]\n"
    "       leakguard doctor SCRIPT.py:FUNC|pkg.module:FUNC [--warmup N] [--repeat N]\n"
    "                        [--top N] [--max-repeat N] [--json FILE] [--dot FILE]\n"
    "                        [--html FILE] [--progress|--no-progress]\n"
    "       leakguard doctor SCRIPT.py|pkg.module --call 'func(arg, ...)' [...]\n"
    "       leakguard doctor --wsgi app.py:application [--path /route] [--method GET] [...]\n"
    "       leakguard --version\n"
    "\n"
    "  run     run SCRIPT.py (or DIR/ZIP's __main__.py) as __main__ in an\n"
    "          embedded Python and print a memory summary at exit: RSS\n"
    "          before/after/peak, Python heap\n"
    "          (tracemalloc) current/peak with the top allocating lines,\n"
    "          descriptor and thread deltas.\n"
    "  --frames N  tracemalloc frames per allocation, 1..65535 (default 1)\n"
    "  --top N     lines in the summary (default 10)\n"
    "  --detector-interval SECONDS\n"
    "              run the background LeakDetector every SECONDS (e.g. 0.5)\n"
    "              while the script runs; its reports print as they come\n"
    "  --threshold SIZE\n"
    "              the detector reports growth of at least SIZE (bytes, or\n"
    "              with a K/M/G suffix for KiB/MiB/GiB; default 10M)\n"
    "  --json FILE write the summary (and the detector's reports) as JSON\n"
    "\n"
    "  doctor  load SCRIPT.py as a module, call FUNC() warmup + repeat times\n"
    "          (default 3 + 20) and say whether it leaks, why, which variable\n"
    "          holds the growth, and how to fix it. --json writes the diagnosis,\n"
    "          --dot the holder's back-reference chain for Graphviz. A FUNC\n"
    "          returning a generator is exhausted, a coroutine is run with\n"
    "          asyncio.run(), each iteration. A module of a package is imported\n"
    "          as one (relative imports work). --call evaluates an expression in\n"
    "          the module per iteration; --wsgi drives one request per iteration\n"
    "          through a WSGI application in-process (Flask, Django). When the\n"
    "          answer is ambiguous (a bounded cache still filling, growth dying\n"
    "          away) it runs up to --max-repeat more iterations (default 1000).\n"
    "          --html writes the whole diagnosis as one page; a one-line progress\n"
    "          display goes to stderr when it is a terminal.\n"
    "\n"
    "  Outputs are made absolute at start, refused when they name the script\n"
    "  or each other, and replaced atomically (the old file stays if a write\n"
    "  fails). Ctrl-C (SIGINT) reaches the script as KeyboardInterrupt and\n"
    "  SIGTERM as SystemExit(143); what was gathered is still reported.\n"
    "\n"
    "exit status: run: the script's own; doctor: 0 no leak (or inconclusive),\n"
    "1 leak; both: 2 for a usage error, a refused or failed output, or a\n"
    "script that raised; 130 interrupted (SIGINT), 143 terminated (SIGTERM).\n"
    "\n"
    "environment: LEAKGUARD_PYTHON_PROGRAM=PATH starts Python as that python3\n"
    "(same version as leakguard's), so scripts see its sys.path, e.g. a venv's\n"
    "bin/python; `python -m leakguard` sets it to its own interpreter.\n";

// The python3 that scripts see the sys.path of: LEAKGUARD_PYTHON_PROGRAM from
// the environment (a venv's bin/python), else the one leakguard was built with.
std::string PythonProgram() {
  const char* program = std::getenv("LEAKGUARD_PYTHON_PROGRAM");
  return program != nullptr && program[0] != '\0' ? std::string(program)
                                                   : std::string(LEAKGUARD_PYTHON_PROGRAM);
}

int Usage(const char* error) {
  if (error != nullptr) std::fprintf(stderr, "leakguard: %s\n", error);
  std::fputs(kUsage, stderr);
  return 2;
}

// "10M", "512K", "1G", "4096": a size in bytes.
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
      value > (int64_t{1} << 50) / scale) {
    return false;
  }
  *out = value * scale;
  return true;
}

bool ParseSeconds(std::string_view text, absl::Duration* out) {
  double seconds = 0;
  if (!absl::SimpleAtod(absl::string_view(text.data(), text.size()), &seconds) ||
      !(seconds >= 0.001) || seconds > 86400) {
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

int Doctor(const std::vector<std::string_view>& args) {
  leakguard::tools::DoctorCommandOptions options;
  options.python_program = PythonProgram();
  std::string target;
  std::string wsgi;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    const bool has_value = i + 1 < args.size();
    if ((arg == "--warmup" || arg == "--repeat" || arg == "--top") && has_value) {
      int* field = arg == "--warmup" ? &options.doctor.warmup
                   : arg == "--repeat" ? &options.doctor.repeat : &options.doctor.top;
      using leakguard::DoctorOptions;  // The bounds live there alone.
      const int low = arg == "--warmup"   ? DoctorOptions::kMinWarmup
                      : arg == "--repeat" ? DoctorOptions::kMinRepeat
                                          : DoctorOptions::kMinTop;
      const int high = arg == "--warmup"   ? DoctorOptions::kMaxWarmup
                       : arg == "--repeat" ? DoctorOptions::kMaxRepeat
                                           : DoctorOptions::kMaxTop;
      if (!ParseInt(args[i + 1], low, high, field)) {
        std::string message = std::string(arg) + " needs a number in " + std::to_string(low) +
                              ".." + std::to_string(high) + ", got '" + std::string(args[i + 1]) +
                              "'";
        return Usage(message.c_str());
      }
      ++i;
    } else if (arg == "--max-repeat" && has_value) {
      using leakguard::DoctorOptions;
      if (!ParseInt(args[i + 1], DoctorOptions::kMinMaxRepeat, DoctorOptions::kMaxMaxRepeat,
                    &options.doctor.max_repeat)) {
        std::string message = "--max-repeat needs a number in " +
                              std::to_string(DoctorOptions::kMinMaxRepeat) + ".." +
                              std::to_string(DoctorOptions::kMaxMaxRepeat) + ", got '" +
                              std::string(args[i + 1]) + "'";
        return Usage(message.c_str());
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
      std::string message = "unknown or incomplete option '" + std::string(arg) + "'";
      return Usage(message.c_str());
    } else if (target.empty()) {
      target = std::string(arg);
    } else {
      return Usage("doctor takes one target: SCRIPT.py:FUNC or pkg.module:FUNC");
    }
  }
  if (!options.call.empty() && !wsgi.empty()) return Usage("--call and --wsgi do not go together");
  if (!wsgi.empty()) {
    if (!target.empty()) return Usage("--wsgi APP names the target; give no other");
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
    return Usage(
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
  return leakguard::tools::RunDoctor(options);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("missing command");
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("leakguard %s (Python %s)\n", leakguard::Version(),
                leakguard::CompiledPythonVersion());
    return 0;
  }
  if (args[0] == "doctor") return Doctor(args);
  if (args[0] != "run") {
    std::string message = "unknown command '" + std::string(args[0]) + "'";
    return Usage(message.c_str());
  }
  leakguard::tools::RunOptions options;
  options.python_program = PythonProgram();
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
      const int high = arg == "--frames" ? 65535 : 1000000;
      if (!ParseInt(args[i + 1], 1, high, target)) {
        std::string message = std::string(arg) + " needs a number in 1.." + std::to_string(high) +
                              ", got '" + std::string(args[i + 1]) + "'";
        return Usage(message.c_str());
      }
      ++i;
      continue;
    }
    if (arg == "--detector-interval" && i + 1 < args.size()) {
      if (!ParseSeconds(args[i + 1], &options.detector_interval)) {
        std::string message = "--detector-interval needs seconds in 0.001..86400, got '" +
                              std::string(args[i + 1]) + "'";
        return Usage(message.c_str());
      }
      ++i;
      continue;
    }
    if (arg == "--threshold" && i + 1 < args.size()) {
      if (!ParseSize(args[i + 1], &options.threshold_bytes)) {
        std::string message =
            "--threshold needs a positive size like 4096, 512K, 10M or 1G, got '" +
            std::string(args[i + 1]) + "'";
        return Usage(message.c_str());
      }
      ++i;
      continue;
    }
    if (arg == "--json" && i + 1 < args.size()) {
      options.json_path = std::string(args[i + 1]);
      ++i;
      continue;
    }
    std::string message = "unknown or incomplete option '" + std::string(arg) + "'";
    return Usage(message.c_str());
  }
  if (i >= args.size()) return Usage("run: missing SCRIPT.py");
  options.script = std::string(args[i]);
  for (++i; i < args.size(); ++i) options.args.emplace_back(args[i]);
  return leakguard::tools::RunScript(options);
}
