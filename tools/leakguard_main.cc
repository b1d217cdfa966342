// The `leakguard` command: the usage text and dispatch (the parsing is
// ParseCommandLine() in cli_args.h).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cli_args.h"
#include "doctor_command.h"
#include "leakguard/version.h"
#include "run_command.h"

namespace {

constexpr char kUsage[] =
    "usage: leakguard run [--frames N] [--top N] [--detector-interval SECONDS]\n"
    "                     [--threshold SIZE] [--json FILE] [--html FILE]\n"
    "                     SCRIPT.py|DIR|ZIP [ARGS...]\n"
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
    "  --html FILE write one self-contained page: the summary, the detector's\n"
    "              rounds plotted (RSS, Python traced, native) and a flame\n"
    "              graph of the live heap at exit\n"
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

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  absl::StatusOr<leakguard::tools::ParsedCommand> command =
      leakguard::tools::ParseCommandLine(args);
  if (!command.ok()) return Usage(std::string(command.status().message()).c_str());
  switch (command->kind) {
    case leakguard::tools::ParsedCommand::Kind::kHelp:
      std::fputs(kUsage, stdout);
      return 0;
    case leakguard::tools::ParsedCommand::Kind::kVersion:
      std::printf("leakguard %s (Python %s)\n", leakguard::Version(),
                  leakguard::CompiledPythonVersion());
      return 0;
    case leakguard::tools::ParsedCommand::Kind::kDoctor:
      command->doctor.python_program = PythonProgram();
      return leakguard::tools::RunDoctor(command->doctor);
    case leakguard::tools::ParsedCommand::Kind::kRun:
      command->run.python_program = PythonProgram();
      return leakguard::tools::RunScript(command->run);
  }
  return 2;  // Not reached: every Kind is handled above.
}
