// Runs tests/python/test_*.py inside an embedding host: the module is
// registered with leakguard::python::RegisterModule() before the
// interpreter starts, so `import leakguard` finds the built-in, not an
// extension file. Under the sanitizer build this is how the bindings get
// ASan/UBSan coverage.
//
//   leakguard_embedded_pytests TESTS_DIR XML_OUT

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "leakguard/python/builtin_modules.h"
#include "leakguard/python/error.h"
#include "leakguard/python/interpreter.h"
#include "leakguard/python/ref.h"
#include "leakguard/python_module.h"

namespace {

PyObject* OtherInit() { return nullptr; }

// The registry's contract, checked around Interpreter::Start(): exact codes.
bool Expect(const absl::Status& status, absl::StatusCode code, const char* what) {
  if (status.code() == code) return true;
  std::fprintf(stderr, "registry check failed: %s: got %s\n", what, status.ToString().c_str());
  return false;
}

bool CheckRegistryBeforeStart() {
  bool ok = Expect(leakguard::python::RegisterModule(), absl::StatusCode::kOk,
                   "RegisterModule again is a no-op");
  ok &= Expect(leakguard::RegisterBuiltinModule("leakguard", &OtherInit),
               absl::StatusCode::kAlreadyExists, "same name, other init");
  ok &= Expect(leakguard::RegisterBuiltinModule("not a name", &OtherInit),
               absl::StatusCode::kInvalidArgument, "bad name");
  ok &= Expect(leakguard::RegisterBuiltinModule("x..y", &OtherInit),
               absl::StatusCode::kInvalidArgument, "empty dotted part");
  ok &= Expect(leakguard::RegisterBuiltinModule("ok_name", nullptr),
               absl::StatusCode::kInvalidArgument, "null init");
  const std::vector<std::string> names = leakguard::RegisteredBuiltinModules();
  if (names != std::vector<std::string>{"leakguard"}) {
    std::fprintf(stderr, "registry check failed: %zu names registered\n", names.size());
    ok = false;
  }
  return ok;
}

bool CheckRegistryWhileRunning() {
  return Expect(leakguard::RegisterBuiltinModule("late", &OtherInit),
                absl::StatusCode::kFailedPrecondition, "register while running") &&
         Expect(leakguard::InstallBuiltinModules(), absl::StatusCode::kFailedPrecondition,
                "install while running");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TESTS_DIR XML_OUT\n", argv[0]);
    return 2;
  }
  if (absl::Status registered = leakguard::python::RegisterModule(); !registered.ok()) {
    std::fprintf(stderr, "%s\n", registered.ToString().c_str());
    return 2;
  }
  if (!CheckRegistryBeforeStart()) return 1;
  leakguard::InterpreterOptions options;
  options.program_name = LEAKGUARD_PYTHON_EXECUTABLE;
  options.argv = {"leakguard-embedded-pytests"};
  options.extra_sys_path = {argv[1]};
  auto py = leakguard::Interpreter::Start(options);
  if (!py.ok()) {
    std::fprintf(stderr, "%s\n", py.status().ToString().c_str());
    return 2;
  }
  if (!CheckRegistryWhileRunning()) return 1;
  int rc = 1;
  {
    PyObject* globals = PyModule_GetDict(PyImport_AddModule("__main__"));
    leakguard::Ref dir = leakguard::Steal(PyUnicode_FromString(argv[1]));
    leakguard::Ref xml = leakguard::Steal(PyUnicode_FromString(argv[2]));
    PyDict_SetItemString(globals, "_tests_dir", dir.get());
    PyDict_SetItemString(globals, "_xml", xml.get());
    leakguard::Ref done = leakguard::Steal(
        PyRun_String("import glob, os, sys\n"
                     "import leakguard\n"
                     "assert 'leakguard' in sys.builtin_module_names, sys.builtin_module_names\n"
                     "assert leakguard.__spec__.origin == 'built-in', leakguard.__spec__\n"
                     "os.environ['LEAKGUARD_EXPECT_BUILTIN'] = '1'\n"
                     "import run_tests\n"
                     "_modules = sorted(os.path.basename(p)[:-3] for p in\n"
                     "                  glob.glob(os.path.join(_tests_dir, 'test_*.py')))\n"
                     "_rc = run_tests.main(['--xml', _xml, '--prefix', 'embedded.'] + _modules)\n",
                     Py_file_input, globals, globals));
    if (!done) {
      std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str());
    } else {
      PyObject* code = PyDict_GetItemString(globals, "_rc");
      rc = code != nullptr ? static_cast<int>(PyLong_AsLong(code)) : 1;
    }
  }
  if (absl::Status finalized = py->Finalize(); !finalized.ok()) {
    std::fprintf(stderr, "%s\n", finalized.ToString().c_str());
    return 1;
  }
  return rc;
}
