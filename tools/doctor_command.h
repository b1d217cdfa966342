// `leakguard doctor SCRIPT.py:FUNC`: imports the script as a module, calls
// FUNC once per iteration, and prints the diagnosis.

#ifndef LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_
#define LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_

#include <string>

#include "leakguard/doctor.h"

namespace leakguard::tools {

/// Options of `leakguard doctor`.
struct DoctorCommandOptions {
  std::string script;           // SCRIPT.py (a module of a package is imported as one)
  std::string module;           // or pkg.module, imported by name (cwd on sys.path)
  std::string func;             // FUNC
  std::string call;             // --call 'func(arg, ...)': evaluated in the module per iteration
  std::string wsgi_app;         // --wsgi: the module's WSGI application attribute
  std::string wsgi_path = "/";  // --path
  std::string wsgi_method = "GET";  // --method
  DoctorOptions doctor;             // --warmup, --repeat, --top, --max-repeat
  std::string json_path;            // --json FILE
  std::string dot_path;             // --dot FILE
  std::string html_path;            // --html FILE
  int progress = -1;                // --progress / --no-progress; -1: when stderr is a terminal
  std::string python_program;       // program_name for the interpreter.
};

/// Runs the doctor. Returns 0 (no leak, or inconclusive), 1 (leak) or 2
/// (usage or script error: message and traceback on stderr).
int RunDoctor(const DoctorCommandOptions& options);

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_
