// Embeds Python through an installed leakguard and evaluates 6 * 7.
#include <cstdio>

#include "leakguard/leakguard.h"

int main() {
  auto py = leakguard::Interpreter::Start({});
  if (!py.ok()) {
    std::fprintf(stderr, "%s\n", py.status().ToString().c_str());
    return 1;
  }
  PyObject* globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  leakguard::Ref answer = leakguard::Steal(PyRun_String("6 * 7", Py_eval_input, globals, globals));
  if (!answer) {
    std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str());
    return 1;
  }
  std::printf("consumer: leakguard %s, Python %d.%d, 6 * 7 = %ld\n", leakguard::Version(),
              PY_MAJOR_VERSION, PY_MINOR_VERSION, PyLong_AsLong(answer.get()));
  answer.Reset();
  return py->Finalize().ok() ? 0 : 1;
}
