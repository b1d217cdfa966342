#include "doctor_command.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "leakguard/doctor.h"
#include "leakguard/python/call.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
#include "leakguard/python_module.h"
#endif
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard::tools {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "leakguard doctor: %s\n", message.c_str());
  return 2;
}

int FailWithTraceback(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "leakguard doctor: %s: %s\n", what.c_str(),
               std::string(status.message()).c_str());
  if (auto tb = PythonTraceback(status)) std::fputs(tb->c_str(), stderr);
  return 2;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int RunDoctor(const DoctorCommandOptions& options) {
  if (::access(options.script.c_str(), R_OK) != 0) {
    return Fail(absl::StrCat("cannot open script '", options.script, "': ", std::strerror(errno)));
  }
  std::string file = options.script;
  std::string dir = ".";
  if (const size_t slash = file.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : file.substr(0, slash);
    file = file.substr(slash + 1);
  }
  if (file.size() < 4 || file.substr(file.size() - 3) != ".py") {
    return Fail(absl::StrCat("'", options.script, "' is not a .py file"));
  }
  const std::string module_name = file.substr(0, file.size() - 3);
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) != nullptr) dir = resolved;

  InterpreterOptions interpreter_options;
  interpreter_options.program_name = options.python_program;
  interpreter_options.argv = {options.script};
  interpreter_options.extra_sys_path = {dir};
#if defined(LEAKGUARD_WITH_PYTHON_MODULE)
  if (absl::Status registered = python::RegisterModule(); !registered.ok()) {
    return Fail(std::string(registered.message()));
  }
#endif
  absl::StatusOr<Interpreter> interpreter = Interpreter::Start(interpreter_options);
  if (!interpreter.ok()) return Fail(std::string(interpreter.status().message()));

  int exit_code = 2;
  {
    absl::StatusOr<Ref> module = Import(module_name.c_str());
    if (!module.ok()) {
      return FailWithTraceback(absl::StrCat("importing ", options.script, " failed"),
                               module.status());
    }
    Ref func = Steal(PyObject_GetAttrString(module->get(), options.func.c_str()));
    if (!func) {
      PyErr_Clear();
      return Fail(absl::StrCat(options.script, " has no function '", options.func, "'"));
    }
    if (!PyCallable_Check(func.get())) {
      return Fail(absl::StrCat(options.script, ":", options.func, " is not callable"));
    }
    absl::StatusOr<Diagnosis> diagnosis = Diagnose(func.handle(), options.doctor, module->handle());
    if (!diagnosis.ok()) {
      return FailWithTraceback(absl::StrCat(options.script, ":", options.func, " raised"),
                               diagnosis.status());
    }
    std::printf("leakguard doctor %s:%s\n\n%s", options.script.c_str(), options.func.c_str(),
                diagnosis->ToText().c_str());
    std::fflush(stdout);
    exit_code = diagnosis->verdict == Verdict::kLeak ? 1 : 0;
    if (!options.json_path.empty() && !WriteFile(options.json_path, diagnosis->ToJson())) {
      exit_code = Fail(absl::StrCat("cannot write '", options.json_path, "': ", std::strerror(errno)));
    }
    if (!options.dot_path.empty()) {
      // The same diagnosis as the text and the JSON.
      const std::string dot = diagnosis->ToDot();
      if (!WriteFile(options.dot_path, dot)) {
        exit_code = Fail(absl::StrCat("cannot write '", options.dot_path, "': ", std::strerror(errno)));
      }
    }
  }
  // Threads the script started and never ended must not hold up the exit.
  return exit_code;
}

}  // namespace leakguard::tools
