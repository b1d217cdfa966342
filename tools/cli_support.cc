#include "cli_support.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard::tools {
namespace {

std::string Errno(int error) { return std::strerror(error); }

// The directory part of an absolute path ("/" for "/x").
std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// What a path names, for comparing two: the device and inode when it
// exists, else its directory's real path and its name.
struct Identity {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string canonical;
  bool operator==(const Identity& other) const {
    if (exists != other.exists) return false;
    return exists ? dev == other.dev && ino == other.ino : canonical == other.canonical;
  }
};

Identity IdentityOf(const std::string& path) {
  Identity id;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return id;
  }
  char resolved[PATH_MAX];
  const std::string dir = DirName(path);
  id.canonical = (::realpath(dir.c_str(), resolved) != nullptr ? std::string(resolved) : dir) +
                 "/" + BaseName(path);
  return id;
}

bool IsDeviceLike(const std::string& path) {
  return path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0;
}

absl::Status WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(Errno(errno));
    }
    if (n == 0) return absl::UnavailableError("write returned 0");
    text.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status CannotWrite(const std::string& path, const std::string& why) {
  return absl::UnavailableError(absl::StrCat("cannot write '", path, "': ", why));
}

absl::Status WriteDirectly(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return CannotWrite(path, Errno(errno));
  absl::Status written = WriteAll(fd, text);
  if (::close(fd) != 0 && written.ok()) written = absl::UnavailableError(Errno(errno));
  if (!written.ok()) return CannotWrite(path, std::string(written.message()));
  return absl::OkStatus();
}

mode_t CurrentUmask() {
  static const mode_t mask = [] {
    const mode_t m = ::umask(022);
    ::umask(m);
    return m;
  }();
  return mask;
}

std::atomic<int> g_caught_signal{0};
int g_crash_fd = 2;
const char* g_crash_command = "leakguard";

void OnFatalSignal(int signum) {
  // Async-signal-safe only: write(2), signal(), raise().
  char line[160];
  const char* name = signum == SIGSEGV   ? "SIGSEGV"
                     : signum == SIGBUS  ? "SIGBUS"
                     : signum == SIGFPE  ? "SIGFPE"
                     : signum == SIGILL  ? "SIGILL"
                     : signum == SIGABRT ? "SIGABRT"
                                         : "fatal";
  size_t n = 0;
  auto append = [&](const char* s) {
    while (*s != '\0' && n + 1 < sizeof(line)) line[n++] = *s++;
  };
  char digits[8];
  int value = signum, d = 0;
  do {
    digits[d++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && d < 7);
  append("\n");
  append(g_crash_command);
  append(": the script crashed (signal ");
  while (d > 0 && n + 1 < sizeof(line)) line[n++] = digits[--d];
  append(", ");
  append(name);
  append(")\n");
  ssize_t ignored = ::write(g_crash_fd, line, n);
  (void)ignored;
  ::signal(signum, SIG_DFL);
  ::raise(signum);
}

// signal.signal(SIGTERM, this): runs in the main thread, with the GIL, at
// the next bytecode boundary after the signal.
PyObject* OnSignal(PyObject* /*self*/, PyObject* args) {
  int signum = 0;
  PyObject* frame = nullptr;
  if (!PyArg_ParseTuple(args, "iO", &signum, &frame)) return nullptr;
  g_caught_signal.store(signum);
  if (signum == SIGTERM) {
    Ref code = Steal(PyLong_FromLong(kExitTerminated));
    if (code) PyErr_SetObject(PyExc_SystemExit, code.get());
    return nullptr;
  }
  PyErr_SetNone(PyExc_KeyboardInterrupt);
  return nullptr;
}

PyMethodDef g_on_signal_def = {"_leakguard_on_sigterm", OnSignal, METH_VARARGS,
                               "leakguard: SIGTERM -> SystemExit(143)"};

}  // namespace

std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  std::string rest = path;
  while (rest.rfind("./", 0) == 0) rest = rest.substr(2);
  return std::string(cwd) == "/" ? "/" + rest : absl::StrCat(cwd, "/", rest);
}

absl::Status CheckOutputs(const std::string& script, std::vector<OutputFile*> outputs) {
  const Identity script_id = IdentityOf(script);
  for (size_t i = 0; i < outputs.size(); ++i) {
    OutputFile& out = *outputs[i];
    out.path = AbsolutePath(out.path);
    const Identity id = IdentityOf(out.path);
    if (id == script_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          out.option, " '", out.path, "' is the script itself; refusing to overwrite it"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (IdentityOf(outputs[j]->path) == id) {
        return absl::InvalidArgumentError(absl::StrCat(out.option, " and ", outputs[j]->option,
                                                       " both name '", out.path,
                                                       "'; give each output its own file"));
      }
    }
    struct stat st;
    if (::stat(out.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return CannotWrite(out.path, "it is a directory");
    }
    const bool replaced_by_rename =
        !IsDeviceLike(out.path) &&
        (!id.exists || (::stat(out.path.c_str(), &st) == 0 && S_ISREG(st.st_mode)));
    // An existing file the user may not write is not replaced either.
    if (id.exists && ::access(out.path.c_str(), W_OK) != 0) {
      return CannotWrite(out.path, Errno(errno));
    }
    std::string target = out.path;
    char resolved[PATH_MAX];
    if (id.exists && ::realpath(out.path.c_str(), resolved) != nullptr) target = resolved;
    const std::string dir = DirName(target);
    if (::stat(dir.c_str(), &st) != 0) return CannotWrite(out.path, Errno(errno));
    if (!S_ISDIR(st.st_mode)) return CannotWrite(out.path, Errno(ENOTDIR));
    // The temporary file is made in the target's directory.
    if (replaced_by_rename && ::access(dir.c_str(), W_OK) != 0) {
      return CannotWrite(out.path, Errno(errno));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteOutput(const std::string& path, std::string_view text) {
  std::string target = path;
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) != nullptr) target = resolved;  // Through symlinks.
  }
  if (IsDeviceLike(path) || IsDeviceLike(target) || (exists && !S_ISREG(st.st_mode))) {
    return WriteDirectly(target, text);
  }
  std::string temp = absl::StrCat(DirName(target), "/.", BaseName(target), ".leakguard-XXXXXX");
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return CannotWrite(path, Errno(errno));
  const mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~CurrentUmask());
  absl::Status status = WriteAll(fd, text);
  if (status.ok() && ::fchmod(fd, mode) != 0) status = absl::UnavailableError(Errno(errno));
  if (status.ok() && ::fsync(fd) != 0) status = absl::UnavailableError(Errno(errno));
  if (::close(fd) != 0 && status.ok()) status = absl::UnavailableError(Errno(errno));
  if (status.ok() && ::rename(temp.c_str(), target.c_str()) != 0) {
    status = absl::UnavailableError(Errno(errno));
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return CannotWrite(path, std::string(status.message()));
  }
  return absl::OkStatus();
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    const unsigned char c = byte(i);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((byte(i + k) & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    // No overlong forms, no surrogates, nothing past U+10FFFF.
    if (ok && ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
               (cp >= 0xD800 && cp <= 0xDFFF))) {
      ok = false;
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

ReportStream::ReportStream(int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy >= 0) {
    fd_ = copy;
    owned_ = true;
  } else {
    fd_ = fd;  // Closed already: writes will say so.
  }
}

ReportStream::~ReportStream() {
  if (owned_) ::close(fd_);
}

absl::Status ReportStream::Write(std::string_view text) { return WriteAll(fd_, text); }

void InstallCrashMessage(const char* command, int report_fd) {
  g_crash_command = command;
  g_crash_fd = report_fd;
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = OnFatalSignal;
  action.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int signum : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
    ::sigaction(signum, &action, nullptr);
  }
}

absl::Status InstallSignalHandlers(int report_fd) {
  Ref faulthandler = Steal(PyImport_ImportModule("faulthandler"));
  if (!faulthandler) return StatusFromPythonError();
  // faulthandler keeps the handler it replaces (InstallCrashMessage's) and
  // calls it after printing the traceback.
  Ref enabled = Steal(PyObject_CallMethod(faulthandler.get(), "enable", "(ii)", report_fd, 1));
  if (!enabled) return StatusFromPythonError();
  // _signal, the C module `signal` wraps: importing `signal` itself pulls
  // in enum, functools and collections (5 ms of start-up, measured) for
  // names this does not need.
  Ref signal_module = Steal(PyImport_ImportModule("_signal"));
  if (!signal_module) return StatusFromPythonError();
  Ref handler = Steal(PyCFunction_New(&g_on_signal_def, nullptr));
  if (!handler) return StatusFromPythonError();
  // SIGINT keeps Python's own signal.default_int_handler (installed with the
  // interpreter's signal handlers), which asyncio.run() and others look for.
  Ref previous =
      Steal(PyObject_CallMethod(signal_module.get(), "signal", "(iO)", SIGTERM, handler.get()));
  if (!previous) return StatusFromPythonError();
  return absl::OkStatus();
}

std::string CommandWording(absl::string_view message) {
  std::string out;
  size_t i = 0;
  while (i < message.size()) {
    if (message[i] == '(') {
      const size_t close = message.find(')', i);
      if (close != absl::string_view::npos &&
          message.substr(i, close - i).find("::") != absl::string_view::npos) {
        while (!out.empty() && out.back() == ' ') out.pop_back();
        i = close + 1;
        continue;
      }
    }
    out += message[i++];
  }
  for (const char* advice : {": start it first", "; start it first", ", start it first"}) {
    if (const size_t at = out.find(advice); at != std::string::npos) out.erase(at);
  }
  for (size_t at = out.find("leakguard::Interpreter"); at != std::string::npos;
       at = out.find("leakguard::Interpreter")) {
    out.replace(at, std::strlen("leakguard::Interpreter"), "leakguard's interpreter");
  }
  for (size_t at = out.find("leakguard::"); at != std::string::npos; at = out.find("leakguard::")) {
    out.erase(at, std::strlen("leakguard::"));
  }
  return out;
}

int CaughtSignal() { return g_caught_signal.load(); }

std::string SignalName(int signum) {
  if (signum == SIGINT) return "SIGINT";
  if (signum == SIGTERM) return "SIGTERM";
  return absl::StrCat("signal ", signum);
}

void FlushPythonStreams() {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);  // Keep a pending error as it is.
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // Borrowed.
    if (stream == nullptr || stream == Py_None) continue;
    Ref done = Steal(PyObject_CallMethod(stream, "flush", nullptr));
    if (!done) PyErr_Clear();
  }
  PyErr_Restore(type, value, traceback);
}

bool WaitForThreads(const char* command, ReportStream& report, absl::Duration limit) {
  Ref threading = Steal(PyImport_ImportModule("threading"));
  Ref get_ident = threading ? Steal(PyObject_GetAttrString(threading.get(), "get_ident")) : Ref();
  Ref me = get_ident ? Steal(PyObject_CallNoArgs(get_ident.get())) : Ref();
  Ref all = me ? Steal(PyObject_CallMethod(threading.get(), "enumerate", nullptr)) : Ref();
  if (!all || !PyList_Check(all.get())) {
    PyErr_Clear();
    return true;  // Nothing to go on: let finalization do what it does.
  }
  std::vector<Ref> running;
  std::vector<std::string> names;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all.get()); ++i) {
    PyObject* thread = PyList_GET_ITEM(all.get(), i);  // Borrowed.
    Ref ident = Steal(PyObject_GetAttrString(thread, "ident"));
    Ref daemon = Steal(PyObject_GetAttrString(thread, "daemon"));
    Ref name = Steal(PyObject_GetAttrString(thread, "name"));
    if (!ident || !daemon || !name) {
      PyErr_Clear();
      continue;
    }
    const int same = PyObject_RichCompareBool(ident.get(), me.get(), Py_EQ);
    const int is_daemon = PyObject_IsTrue(daemon.get());
    if (same != 0 || is_daemon != 0) {
      PyErr_Clear();
      continue;
    }
    const char* utf8 = PyUnicode_Check(name.get()) ? PyUnicode_AsUTF8(name.get()) : nullptr;
    if (utf8 == nullptr) PyErr_Clear();
    names.push_back(absl::StrCat("'", utf8 != nullptr ? utf8 : "?", "'"));
    running.push_back(Borrow(thread));
  }
  if (running.empty()) return true;
  absl::Status ignored = report.Write(absl::StrCat(
      command, ": ", running.size(), running.size() == 1 ? " thread" : " threads",
      " the workload started still running: ", absl::StrJoin(names, ", "), "; waiting up to ",
      absl::FormatDuration(limit), " for ", running.size() == 1 ? "it" : "them", "\n"));
  const absl::Time deadline = absl::Now() + limit;
  size_t left = 0;
  for (const Ref& thread : running) {
    const double seconds = std::max(0.0, absl::ToDoubleSeconds(deadline - absl::Now()));
    Ref joined = Steal(PyObject_CallMethod(thread.get(), "join", "(d)", seconds));
    if (!joined) PyErr_Clear();
    Ref alive = Steal(PyObject_CallMethod(thread.get(), "is_alive", nullptr));
    if (!alive) {
      PyErr_Clear();
      ++left;
    } else if (PyObject_IsTrue(alive.get()) != 0) {
      ++left;
    }
  }
  if (left == 0) return true;
  ignored = report.Write(absl::StrCat(command, ": exiting without waiting for ", left,
                                      left == 1 ? " thread" : " threads", "\n"));
  return false;
}

}  // namespace leakguard::tools
