// libFuzzer target: tracemalloc::Snapshot::Load() of a file holding the
// input bytes, then what a caller does with what it loaded (statistics,
// compare, back to Python).
//
// Load() reads the file with pickle, which can call any importable
// function: the target replaces pickle.load and pickle.loads for the
// process with an
// Unpickler whose find_class allows only the classes a
// tracemalloc.Snapshot.dump() file names (and refuses the rest), so random
// input cannot run os.system. Everything else a pickle can build (tuples,
// lists, dicts, ints, strings, objects of those classes with any state)
// still reaches leakguard's conversion. Checked on every input: no crash,
// no sanitizer report; an error is a Status, and a loaded snapshot answers
// every query without crashing and converts back to Python.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "leakguard/python/python.h"
#include "leakguard/tracemalloc.h"

namespace {

constexpr char kRestrictedPickle[] = R"PY(
import copyreg, io, pickle, tracemalloc

class _SnapshotOnly(pickle.Unpickler):
    _allowed = {
        ('tracemalloc', 'Snapshot'), ('tracemalloc', '_Traces'),
        ('tracemalloc', 'Traceback'), ('tracemalloc', 'Frame'),
        ('tracemalloc', 'Trace'), ('copyreg', '_reconstructor'),
        ('builtins', 'object'),
    }
    def find_class(self, module, name):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'{module}.{name} refused by the fuzz target')

def _load(file, **kwargs):
    return _SnapshotOnly(file, **kwargs).load()

def _loads(data, **kwargs):
    return _SnapshotOnly(io.BytesIO(data), **kwargs).load()

pickle.load = _load
pickle.loads = _loads
)PY";

std::string path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Py_InitializeEx(0);
  if (PyRun_SimpleString(kRestrictedPickle) != 0) std::abort();
  char name[] = "/tmp/leakguard-fuzz-snapshot-XXXXXX";
  const int fd = ::mkstemp(name);
  if (fd < 0) std::abort();
  ::close(fd);
  path = name;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
    if (fd < 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  namespace tm = leakguard::tracemalloc;
  absl::StatusOr<tm::Snapshot> snapshot = tm::Snapshot::Load(path);
  if (PyErr_Occurred()) {
    std::fprintf(stderr, "Load() left a Python exception set\n");
    std::abort();
  }
  if (!snapshot.ok()) {
    if (snapshot.status().message().empty()) {
      std::fprintf(stderr, "Load() failed without a reason\n");
      std::abort();
    }
    return 0;
  }
  for (tm::GroupBy by : {tm::GroupBy::kLineno, tm::GroupBy::kFilename, tm::GroupBy::kTraceback}) {
    for (bool cumulative : {false, true}) {
      (void)snapshot->Statistics(by, cumulative);
      (void)snapshot->CompareTo(*snapshot, by, cumulative);
    }
  }
  absl::StatusOr<leakguard::Ref> back = snapshot->ToPython();
  if (back.ok()) {
    absl::StatusOr<tm::Snapshot> again = tm::Snapshot::FromPython(back->handle());
    if (!again.ok() || again->trace_count() != snapshot->trace_count()) {
      std::fprintf(stderr, "a loaded snapshot does not survive ToPython/FromPython\n");
      std::abort();
    }
  }
  PyErr_Clear();
  return 0;
}
