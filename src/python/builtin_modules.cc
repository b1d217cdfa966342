#include "leakguard/python/builtin_modules.h"

#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "leakguard/python/python.h"

namespace leakguard {
namespace {

struct Entry {
  std::string name;
  BuiltinModuleInit init = nullptr;
  // True once handed to PyImport_AppendInittab. CPython keeps the entry (and
  // the pointer to `name`) for the rest of the process, so it is never
  // appended twice and its name is never freed.
  bool installed = false;
};

struct ModuleTable {
  absl::Mutex mu;
  // A deque: entries never move, so the `name` buffers CPython points at
  // stay valid as the table grows.
  std::deque<Entry> entries ABSL_GUARDED_BY(mu);
};

ModuleTable& Table() {
  static ModuleTable* table = new ModuleTable();  // Never destroyed: CPython
  return *table;                                  // keeps pointers into it.
}

bool IsDottedIdentifier(const std::string& name) {
  bool at_start = true;
  for (char c : name) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (c == '.') {
      if (at_start) return false;
      at_start = true;
    } else if (alpha || (digit && !at_start)) {
      at_start = false;
    } else {
      return false;
    }
  }
  return !at_start;
}

}  // namespace

absl::Status RegisterBuiltinModule(const std::string& name, BuiltinModuleInit init) {
  if (init == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterBuiltinModule(\"", name, "\"): init is null"));
  }
  if (!IsDottedIdentifier(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterBuiltinModule: \"", name,
                     "\" is not a module name (ASCII identifiers joined by dots)"));
  }
  ModuleTable& table = Table();
  absl::MutexLock lock(&table.mu);
  for (const Entry& entry : table.entries) {
    if (entry.name != name) continue;
    if (entry.init == init) return absl::OkStatus();
    return absl::AlreadyExistsError(
        absl::StrCat("a different init function is already registered for the built-in "
                     "module \"",
                     name, "\""));
  }
  if (Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot register the built-in module \"", name,
                     "\" while Python is running: CPython reads its table of built-in "
                     "modules only at start-up; register before Interpreter::Start()"));
  }
  table.entries.push_back(Entry{name, init, false});
  return absl::OkStatus();
}

std::vector<std::string> RegisteredBuiltinModules() {
  ModuleTable& table = Table();
  absl::MutexLock lock(&table.mu);
  std::vector<std::string> names;
  names.reserve(table.entries.size());
  for (const Entry& entry : table.entries) names.push_back(entry.name);
  return names;
}

absl::Status InstallBuiltinModules() {
  ModuleTable& table = Table();
  absl::MutexLock lock(&table.mu);
  if (Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        "InstallBuiltinModules() must run before Python is initialized");
  }
  for (Entry& entry : table.entries) {
    if (entry.installed) continue;
    // PyImport_AppendInittab keeps `name` by pointer; `entry` never moves.
    if (PyImport_AppendInittab(entry.name.c_str(), entry.init) != 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("PyImport_AppendInittab(\"", entry.name, "\") failed"));
    }
    entry.installed = true;
  }
  return absl::OkStatus();
}

}  // namespace leakguard
