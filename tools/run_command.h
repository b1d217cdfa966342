// `leakguard run SCRIPT.py [ARGS...]`: runs a script as __main__ in an
// embedded interpreter, optionally with the LeakDetector watching, and
// prints a memory summary at exit (text on stderr, JSON to a file).

#ifndef LEAKGUARD_TOOLS_RUN_COMMAND_H_
#define LEAKGUARD_TOOLS_RUN_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace leakguard::tools {

/// Options of `leakguard run`.
struct RunOptions {
  std::string script;                                       // Path of the script, as given.
  std::vector<std::string> args;                            // sys.argv[1:].
  int frames = 1;                                           // tracemalloc frames per allocation.
  int top = 10;                                             // Lines listed in the summary.
  std::string python_program;                               // program_name for the interpreter.
  absl::Duration detector_interval = absl::ZeroDuration();  // 0: no detector.
  int64_t threshold_bytes = 10 << 20;                       // The detector's threshold.
  std::string json_path;                                    // Write the summary as JSON here too.
  std::string html_path;  // --html: the summary, the rounds plot and the heap's flame graph.
};

/// Runs the script and prints the summary to stderr. Returns the process
/// exit code: the script's own (SystemExit), or 2 when it raised or could
/// not be started.
int RunScript(const RunOptions& options);

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_RUN_COMMAND_H_
