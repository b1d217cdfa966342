// Profile: built from tracemalloc snapshots and diffs; written to a file.

#include "leakguard/profile.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "leakguard/counters.h"
#include "leakguard/python/error.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

// A traceback as profile frames, root first (tracemalloc's order already).
std::vector<ProfileFrame> StackOf(const tracemalloc::Traceback& traceback) {
  std::vector<ProfileFrame> stack;
  stack.reserve(traceback.size());
  for (size_t i = 0; i < traceback.size(); ++i) {
    const tracemalloc::Frame frame = traceback[i];
    ProfileFrame out;
    out.file = std::string(frame.filename);
    out.line = frame.lineno;
    out.kind = FrameKind::kPython;
    stack.push_back(std::move(out));
  }
  return stack;
}

absl::StatusOr<tracemalloc::Snapshot> Filtered(const tracemalloc::Snapshot& snapshot,
                                               const ProfileOptions& options) {
  if (!options.filter_own_frames) return snapshot;
  return snapshot.FilterTraces(OwnFrameFilters());
}

// Python: names(files) maps {filename: [line, ...]} to
// {filename: {line: qualname}} for the files it could parse.
constexpr char kResolver[] = R"py(
import ast, linecache

def _spans(filename):
    source = ''.join(linecache.getlines(filename))
    if not source:
        return None
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return None
    spans = []
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                spans.append((start, child.end_lineno, name))
                local = '.' if isinstance(child, ast.ClassDef) else '.<locals>.'
                walk(child, name + local)
            else:
                walk(child, prefix)
    walk(tree, '')
    return spans

def names(files):
    out = {}
    for filename, lines in files.items():
        spans = _spans(filename)
        if spans is None:
            continue
        named = {}
        for line in lines:
            best = None
            for start, end, name in spans:
                if start <= line <= end and (best is None or start >= best[0]):
                    best = (start, name)
            named[line] = best[1] if best else '<module>'
        out[filename] = named
    return out
)py";

}  // namespace

absl::StatusOr<int64_t> ResolvePythonFunctions(Profile* profile) {
  if (profile == nullptr) return absl::InvalidArgumentError("ResolvePythonFunctions: null profile");
  if (!Py_IsInitialized() || !PyGILState_Check()) {
    return absl::FailedPreconditionError("ResolvePythonFunctions needs the GIL");
  }
  std::map<std::string, std::set<int64_t>> wanted;
  for (const ProfileSample& sample : profile->samples) {
    for (const ProfileFrame& frame : sample.stack) {
      if (frame.kind == FrameKind::kPython && frame.function.empty() && frame.line > 0) {
        wanted[frame.file].insert(frame.line);
      }
    }
  }
  if (wanted.empty()) return 0;
  Ref files = Steal(PyDict_New());
  if (!files) return StatusFromPythonError();
  for (const auto& [file, lines] : wanted) {
    Ref key = Steal(
        PyUnicode_DecodeUTF8(file.data(), static_cast<Py_ssize_t>(file.size()), "surrogatepass"));
    Ref list = Steal(PyList_New(0));
    if (!key || !list) return StatusFromPythonError();
    for (int64_t line : lines) {
      Ref n = Steal(PyLong_FromLongLong(line));
      if (!n || PyList_Append(list.get(), n.get()) != 0) return StatusFromPythonError();
    }
    if (PyDict_SetItem(files.get(), key.get(), list.get()) != 0) return StatusFromPythonError();
  }
  Ref globals = Steal(PyDict_New());
  if (!globals) return StatusFromPythonError();
  if (PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) != 0) {
    return StatusFromPythonError();
  }
  Ref done = Steal(PyRun_String(kResolver, Py_file_input, globals.get(), globals.get()));
  if (!done) return StatusFromPythonError();
  PyObject* names = PyDict_GetItemString(globals.get(), "names");  // borrowed
  if (names == nullptr) return absl::InternalError("the resolver did not define names()");
  Ref result = Steal(PyObject_CallOneArg(names, files.get()));
  if (!result) return StatusFromPythonError();
  // {filename: {line: name}} back into C++.
  std::map<std::pair<std::string, int64_t>, std::string> resolved;
  PyObject* file_key;
  PyObject* per_line;
  Py_ssize_t pos = 0;
  while (PyDict_Next(result.get(), &pos, &file_key, &per_line)) {
    Ref encoded = Steal(PyUnicode_AsEncodedString(file_key, "utf-8", "surrogatepass"));
    if (!encoded) return StatusFromPythonError();
    const std::string file(PyBytes_AS_STRING(encoded.get()),
                           static_cast<size_t>(PyBytes_GET_SIZE(encoded.get())));
    PyObject* line_key;
    PyObject* name;
    Py_ssize_t inner = 0;
    while (PyDict_Next(per_line, &inner, &line_key, &name)) {
      Py_ssize_t size = 0;
      const char* text = PyUnicode_AsUTF8AndSize(name, &size);
      if (text == nullptr) return StatusFromPythonError();
      resolved[{file, PyLong_AsLongLong(line_key)}] = std::string(text, static_cast<size_t>(size));
    }
  }
  int64_t named = 0;
  for (ProfileSample& sample : profile->samples) {
    for (ProfileFrame& frame : sample.stack) {
      if (frame.kind != FrameKind::kPython || !frame.function.empty()) continue;
      auto found = resolved.find({frame.file, frame.line});
      if (found == resolved.end()) continue;
      frame.function = found->second;
      ++named;
    }
  }
  return named;
}

std::string ProfileFrame::DisplayName() const {
  std::string where = line > 0 ? absl::StrCat(file, ":", line) : file;
  if (function.empty()) return where.empty() ? std::string("?") : where;
  if (where.empty()) return function;
  return absl::StrCat(function, " (", where, ")");
}

int64_t Profile::TotalBytes() const {
  int64_t total = 0;
  for (const ProfileSample& sample : samples) total += sample.bytes;
  return total;
}

absl::StatusOr<Profile> ProfileFromSnapshot(const tracemalloc::Snapshot& snapshot,
                                            const ProfileOptions& options) {
  absl::StatusOr<tracemalloc::Snapshot> filtered = Filtered(snapshot, options);
  if (!filtered.ok()) return filtered.status();
  absl::StatusOr<tracemalloc::StatisticList> stats =
      filtered->Statistics(tracemalloc::GroupBy::kTraceback);
  if (!stats.ok()) return stats.status();
  Profile profile;
  profile.name = "heap";
  profile.time = absl::Now();
  for (const tracemalloc::Statistic& stat : *stats) {
    if (options.max_samples > 0 && profile.samples.size() >= options.max_samples) break;
    ProfileSample sample;
    sample.stack = StackOf(stat.traceback);
    sample.bytes = stat.size;
    sample.count = stat.count;
    sample.alloc_bytes = stat.size;
    profile.samples.push_back(std::move(sample));
  }
  return profile;
}

Profile ProfileFromDiff(const tracemalloc::StatisticDiffList& diff, const ProfileOptions& options) {
  Profile profile;
  profile.name = "growth";
  profile.is_growth = true;
  profile.time = absl::Now();
  std::vector<const tracemalloc::StatisticDiff*> grown;
  for (const tracemalloc::StatisticDiff& entry : diff) {
    if (entry.size_diff > 0) grown.push_back(&entry);
  }
  // compare_to sorts by |size_diff| first; the gains alone, largest first.
  std::stable_sort(grown.begin(), grown.end(),
                   [](const auto* a, const auto* b) { return a->size_diff > b->size_diff; });
  for (const tracemalloc::StatisticDiff* entry : grown) {
    if (options.max_samples > 0 && profile.samples.size() >= options.max_samples) break;
    ProfileSample sample;
    sample.stack = StackOf(entry->traceback);
    sample.bytes = entry->size_diff;
    sample.count = std::max<int64_t>(entry->count_diff, 0);
    sample.alloc_bytes = entry->size_diff;
    profile.samples.push_back(std::move(sample));
  }
  return profile;
}

absl::StatusOr<Profile> GrowthProfile(const tracemalloc::Snapshot& older,
                                      const tracemalloc::Snapshot& newer,
                                      const ProfileOptions& options) {
  absl::StatusOr<tracemalloc::Snapshot> a = Filtered(older, options);
  if (!a.ok()) return a.status();
  absl::StatusOr<tracemalloc::Snapshot> b = Filtered(newer, options);
  if (!b.ok()) return b.status();
  absl::StatusOr<tracemalloc::StatisticDiffList> diff =
      b->CompareTo(*a, tracemalloc::GroupBy::kTraceback);
  if (!diff.ok()) return diff.status();
  ProfileOptions unfiltered = options;
  unfiltered.filter_own_frames = false;
  return ProfileFromDiff(*diff, unfiltered);
}

std::vector<RoundPoint> RoundPointsFromHistory(const std::vector<DetectorRound>& history) {
  std::vector<RoundPoint> points;
  points.reserve(history.size());
  for (const DetectorRound& round : history) {
    RoundPoint point;
    point.round = round.round;
    point.rss_bytes = round.process.rss_bytes;
    point.traced_bytes = round.traced_bytes;
    if (round.traced_bytes) {
      point.native_bytes = round.process.rss_bytes - std::max<int64_t>(*round.traced_bytes, 0) -
                           std::max<int64_t>(round.tracemalloc_bytes.value_or(0), 0) -
                           round.detector_bytes.value_or(0);
    }
    points.push_back(point);
  }
  return points;
}

std::vector<RoundPoint> RoundPointsFromDeltas(const std::vector<Counters>& deltas) {
  std::vector<RoundPoint> points;
  points.reserve(deltas.size());
  int64_t rss = 0;
  std::optional<int64_t> traced = 0;
  for (const Counters& d : deltas) {
    rss += d.rss_bytes;
    if (traced && d.traced_bytes) {
      *traced += *d.traced_bytes;
    } else {
      traced.reset();
    }
    RoundPoint point;
    point.round = static_cast<int64_t>(points.size()) + 1;
    point.rss_bytes = rss;
    point.traced_bytes = traced;
    if (traced) point.native_bytes = rss - *traced;
    points.push_back(point);
  }
  return points;
}

absl::Status WriteProfileFile(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto error = [&](int err, const char* what) {
    const std::string message = absl::StrCat(what, " '", path, "': ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
    if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  };
  if (fd < 0) return error(errno, "cannot create");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return error(err, "cannot write");
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return error(errno, "cannot close");
  return absl::OkStatus();
}

}  // namespace leakguard
