// A host that embeds Python with leakguard, runs a plugin function many
// times, and watches the process while it does. The README shows it.
#include <cstdio>

#include "leakguard/leakguard.h"

int main() {
  leakguard::InterpreterOptions options;
  options.program_name = "/usr/bin/python3";  // see the same packages as it
  auto py = leakguard::Interpreter::Start(options);
  if (!py.ok()) return std::fprintf(stderr, "%s\n", py.status().ToString().c_str()), 2;

  PyObject* globals = PyModule_GetDict(PyImport_AddModule("__main__"));
  leakguard::Ref plugin =
      leakguard::Steal(PyRun_String("cache = []\ndef plugin(i):\n    cache.append(bytes(1000))\n",
                                    Py_file_input, globals, globals));
  leakguard::Ref func = leakguard::Borrow(PyDict_GetItemString(globals, "plugin"));

  auto before = leakguard::SampleProcess();
  for (int i = 0; i < 20000; ++i) {
    leakguard::Ref result = leakguard::Steal(PyObject_CallFunction(func.get(), "i", i));
    if (!result)
      return std::fprintf(stderr, "%s\n", leakguard::StatusFromPythonError().ToString().c_str()), 1;
  }
  auto after = leakguard::SampleProcess();
  if (before.ok() && after.ok()) {
    std::printf("20000 plugin calls: RSS %s\n",
                leakguard::FormatBytes((*after - *before).rss_bytes).c_str());
  }
  return 0;
}
