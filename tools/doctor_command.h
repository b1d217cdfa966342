// `leakguard doctor SCRIPT.py:FUNC`: imports the script as a module, calls
// FUNC once per iteration, and prints the diagnosis.

#ifndef LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_
#define LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_

#include <string>

#include "leakguard/doctor.h"

namespace leakguard::tools {

/// Options of `leakguard doctor`.
struct DoctorCommandOptions {
  std::string script;          // SCRIPT.py
  std::string func;            // FUNC
  DoctorOptions doctor;        // --warmup, --repeat, --top
  std::string json_path;       // --json FILE
  std::string dot_path;        // --dot FILE
  std::string python_program;  // program_name for the interpreter.
};

/// Runs the doctor. Returns 0 (no leak, or inconclusive), 1 (leak) or 2
/// (usage or script error: message and traceback on stderr).
int RunDoctor(const DoctorCommandOptions& options);

}  // namespace leakguard::tools

#endif  // LEAKGUARD_TOOLS_DOCTOR_COMMAND_H_
