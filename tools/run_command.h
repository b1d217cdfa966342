// `leakguard run SCRIPT.py [ARGS...]`: runs a script as __main__ in an
// embedded interpreter and prints a memory summary at exit.

#ifndef LEAKGUARD_TOOLS_RUN_COMMAND_H_
#define LEAKGUARD_TOOLS_RUN_COMMAND_H_

#include <string>
#include <vector>

namespace leakguard::tools {

/// Options of `leakguard run`.
struct RunOptions {
  std::string script;               // Path of the script, as given.
  std::vector<std::string> args;    // sys.argv[1:].
  int frames = 1;                   // tracemalloc frames per allocation.
  int top = 10;                     // Lines listed in the summary.
  std::string python_program;       // program_name for the interpreter.
};

/// Runs the script and prints the summary to stderr. Returns the process
/// exit code: the script's own (SystemExit), or 2 when it raised or could
/// not be started.
int RunScript(const RunOptions& options);

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_RUN_COMMAND_H_
