// PrometheusSink: the gauges, the exposition text and the atomic textfile.

#include "leakguard/prometheus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "leakguard/process.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

// docs/design.md's cause ids: the only values the `cause` label takes.
constexpr std::array<const char*, 10> kCauseIds = {
    "unbounded_cache",    "global_state",  "reference_cycles",      "closure_capture",
    "unclosed_resources", "native_memory", "listener_accumulation", "thread_local",
    "array_copies",       "logging_buffer"};

bool IsCauseId(const std::string& id) {
  return std::find(kCauseIds.begin(), kCauseIds.end(), id) != kCauseIds.end();
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// HELP text escapes backslash and line feed (not quotes).
std::string EscapeHelp(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

// Builds the exposition text one family at a time.
class Exposition {
 public:
  explicit Exposition(const std::string& const_labels) : const_labels_(const_labels) {}

  void Family(absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(&text_, "# HELP ", name, " ",
                    EscapeHelp(std::string_view(help.data(), help.size())), "\n# TYPE ", name, " ",
                    type, "\n");
  }
  // `labels` are name/value pairs; values are escaped here.
  void Sample(absl::string_view name,
              std::initializer_list<std::pair<absl::string_view, absl::string_view>> labels,
              double value) {
    text_.append(name.data(), name.size());
    std::string rendered = const_labels_;
    for (const auto& [label, label_value] : labels) {
      if (!rendered.empty()) rendered += ',';
      absl::StrAppend(&rendered, label, "=\"",
                      internal::PrometheusEscapeLabelValue(
                          std::string_view(label_value.data(), label_value.size())),
                      "\"");
    }
    if (!rendered.empty()) absl::StrAppend(&text_, "{", rendered, "}");
    absl::StrAppend(&text_, " ", internal::PrometheusFormatValue(value), "\n");
  }
  std::string Take() { return std::move(text_); }

 private:
  const std::string& const_labels_;
  std::string text_;
};

}  // namespace

namespace internal {

std::string PrometheusEscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string PrometheusFormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 9.007199254740992e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (result.ec != std::errc()) return "NaN";
  return std::string(buffer, result.ptr);
}

}  // namespace internal

PrometheusSink::PrometheusSink(PrometheusSinkOptions options) : options_(std::move(options)) {
  for (const auto& [name, value] : options_.const_labels) {
    if (!const_labels_.empty()) const_labels_ += ',';
    absl::StrAppend(&const_labels_, name, "=\"", internal::PrometheusEscapeLabelValue(value), "\"");
  }
  for (const char* id : kCauseIds) suspected_[id] = false;
}

PrometheusSink::~PrometheusSink() = default;

absl::StatusOr<std::unique_ptr<PrometheusSink>> PrometheusSink::Create(
    PrometheusSinkOptions options) {
  if (options.max_sites < 0 || options.max_sites > kMaxSitesLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_sites must be in 0..", kMaxSitesLimit, ", got ", options.max_sites));
  }
  for (const auto& label : options.const_labels) {
    if (!IsLabelName(label.first)) {
      return absl::InvalidArgumentError(
          absl::StrCat("label name '", label.first,
                       "' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"));
    }
  }
  if (!options.textfile_path.empty()) {
    const std::string& path = options.textfile_path;
    const size_t slash = path.rfind('/');
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    if (!absl::EndsWith(base, ".prom") || base == ".prom") {
      return absl::InvalidArgumentError(absl::StrCat(
          "textfile path '", path,
          "' must name a file ending in \".prom\" (node_exporter's textfile collector reads "
          "only those)"));
    }
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      return ErrnoStatus(errno, absl::StrCat("textfile directory '", dir, "'"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::NotFoundError(absl::StrCat("textfile directory '", dir, "' is not a directory"));
    }
  }
  std::unique_ptr<PrometheusSink> sink(new PrometheusSink(std::move(options)));
  absl::Status written = sink->WriteTextfile();
  if (!written.ok()) return written;
  return sink;
}

void PrometheusSink::ObserveLocked(const Counters& counters) {
  rss_ = counters.rss_bytes;
  if (counters.traced_bytes) traced_ = *counters.traced_bytes;
  blocks_ = counters.blocks;
  fds_ = counters.fds;
  threads_ = counters.threads;
}

void PrometheusSink::Write(const Report& report) noexcept {
  try {
    std::optional<Counters> counters;
    if (options_.read_counters) {
      GilAcquire gil;
      if (gil.ok()) {
        // Keep the exception the calling thread may have pending (a guard
        // may report while one unwinds through it), as PythonLoggingSink does.
        Ref pending = Steal(compat::FetchException());
        absl::StatusOr<Counters> read = ReadCounters();
        if (read.ok()) counters = *read;  // ReadCounters leaves no Python error set.
        if (pending) compat::RestoreException(pending.Release());
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (counters) ObserveLocked(*counters);
      std::string watcher = report.source.empty() ? "unknown" : report.source;
      if (std::find(watchers_.begin(), watchers_.end(), watcher) == watchers_.end()) {
        if (static_cast<int>(watchers_.size()) < kMaxWatchers) {
          watchers_.push_back(watcher);
        } else {
          watcher = "other";
        }
      }
      ++reports_[{watcher, SeverityName(report.severity)}];
      last_report_[watcher] = absl::ToDoubleSeconds(report.time - absl::UnixEpoch());

      std::optional<int64_t> rss_growth;
      std::optional<int64_t> traced_growth;
      for (const auto& [name, value] : report.metrics) {
        if (name == "rss_bytes") rss_growth = value;
        if (name == "traced_bytes") traced_growth = value;
      }
      if (rss_growth || traced_growth) {
        Growth& growth = growth_[watcher];
        growth.has_python = traced_growth.has_value();
        growth.python_bytes = traced_growth.value_or(0);
        growth.native_bytes = rss_growth.value_or(0) - std::max<int64_t>(growth.python_bytes, 0);
        growth.seconds = absl::ToDoubleSeconds(report.elapsed);
      }
      if (report.source == "leak_detector") {
        // The detector's kinds of growth that name a cause.
        const std::vector<std::string> kinds = absl::StrSplit(report.label, ',');
        auto has = [&](const char* kind) {
          return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
        };
        suspected_["native_memory"] = has("native");
        suspected_["unclosed_resources"] = has("descriptors");
        suspected_["thread_local"] = has("threads");
      }
      if (!report.top_lines.empty()) {
        sites_.clear();
        for (const LineGrowth& line : report.top_lines) {
          if (static_cast<int>(sites_.size()) >= options_.max_sites) break;
          sites_.push_back({line.file, line.line, line.size_diff, line.count_diff});
        }
      }
    }
    if (!WriteTextfile().ok()) CountFailure();
  } catch (...) {
    CountFailure();
  }
}

absl::Status PrometheusSink::Observe(const Counters& counters) {
  {
    absl::MutexLock lock(&mu_);
    ObserveLocked(counters);
  }
  return WriteTextfile();
}

absl::Status PrometheusSink::SetSuspectedCauses(const std::vector<std::string>& causes) {
  for (const std::string& id : causes) {
    if (!IsCauseId(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", id, "' is not a leak cause id (see docs/design.md)"));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, on] : suspected_) {
      on = std::find(causes.begin(), causes.end(), id) != causes.end();
    }
  }
  return WriteTextfile();
}

int64_t PrometheusSink::write_failures() const noexcept {
  absl::MutexLock lock(&mu_);
  return write_failures_;
}

std::string PrometheusSink::Render() const {
  absl::StatusOr<int64_t> rss = ReadRss();
  absl::MutexLock lock(&mu_);
  return RenderLocked(rss.ok() ? std::optional<int64_t>(*rss) : std::nullopt);
}

std::string PrometheusSink::RenderLocked(std::optional<int64_t> rss) const {
  Exposition out(const_labels_);
  const std::optional<int64_t> rss_now = rss ? rss : rss_;
  auto gauge = [&](absl::string_view name, absl::string_view help,
                   const std::optional<int64_t>& value) {
    if (!value) return;
    out.Family(name, "gauge", help);
    out.Sample(name, {}, static_cast<double>(*value));
  };
  gauge("leakguard_rss_bytes", "Resident set size of the process.", rss_now);
  gauge("leakguard_python_traced_bytes",
        "Python heap traced by tracemalloc (all domains), at the last reading.", traced_);
  gauge("leakguard_python_blocks", "Python's allocated blocks (sys.getallocatedblocks()).",
        blocks_);
  gauge("leakguard_open_fds", "Open file descriptors of the process.", fds_);
  gauge("leakguard_threads", "Threads of the process.", threads_);

  if (!growth_.empty()) {
    out.Family("leakguard_growth_bytes", "gauge",
               "Growth over the watcher's span in its latest report: python is the traced "
               "heap, native is RSS growth outside it.");
    for (const auto& [watcher, growth] : growth_) {
      if (growth.has_python) {
        out.Sample("leakguard_growth_bytes", {{"watcher", watcher}, {"source", "python"}},
                   static_cast<double>(growth.python_bytes));
      }
      out.Sample("leakguard_growth_bytes", {{"watcher", watcher}, {"source", "native"}},
                 static_cast<double>(growth.native_bytes));
    }
    out.Family("leakguard_growth_bytes_per_second", "gauge",
               "leakguard_growth_bytes divided by the length of the watcher's span.");
    for (const auto& [watcher, growth] : growth_) {
      if (growth.seconds <= 0) continue;
      if (growth.has_python) {
        out.Sample("leakguard_growth_bytes_per_second",
                   {{"watcher", watcher}, {"source", "python"}},
                   static_cast<double>(growth.python_bytes) / growth.seconds);
      }
      out.Sample("leakguard_growth_bytes_per_second", {{"watcher", watcher}, {"source", "native"}},
                 static_cast<double>(growth.native_bytes) / growth.seconds);
    }
  }

  out.Family("leakguard_leak_suspected", "gauge",
             "1 while a leak of this cause is suspected, else 0.");
  for (const char* id : kCauseIds) {
    out.Sample("leakguard_leak_suspected", {{"cause", id}}, suspected_.at(id) ? 1 : 0);
  }

  if (!sites_.empty()) {
    out.Family("leakguard_site_growth_bytes", "gauge",
               "Bytes gained by the source lines that grew most in the latest report naming "
               "lines.");
    for (const Site& site : sites_) {
      const std::string line = absl::StrCat(site.line);
      out.Sample("leakguard_site_growth_bytes", {{"file", site.file}, {"line", line}},
                 static_cast<double>(site.bytes));
    }
    out.Family("leakguard_site_growth_blocks", "gauge",
               "Blocks gained by the same lines as leakguard_site_growth_bytes.");
    for (const Site& site : sites_) {
      const std::string line = absl::StrCat(site.line);
      out.Sample("leakguard_site_growth_blocks", {{"file", site.file}, {"line", line}},
                 static_cast<double>(site.blocks));
    }
  }

  if (!reports_.empty()) {
    out.Family("leakguard_reports_total", "counter", "Reports received by this sink.");
    for (const auto& [key, count] : reports_) {
      out.Sample("leakguard_reports_total", {{"watcher", key.first}, {"severity", key.second}},
                 static_cast<double>(count));
    }
    out.Family("leakguard_last_report_timestamp_seconds", "gauge",
               "Unix time of the watcher's latest report.");
    for (const auto& [watcher, seconds] : last_report_) {
      out.Sample("leakguard_last_report_timestamp_seconds", {{"watcher", watcher}}, seconds);
    }
  }
  return out.Take();
}

absl::Status PrometheusSink::WriteTextfile() const {
  if (options_.textfile_path.empty()) return absl::OkStatus();
  absl::MutexLock file_lock(&file_mu_);
  std::string text;
  {
    absl::StatusOr<int64_t> rss = ReadRss();
    absl::MutexLock lock(&mu_);
    text = RenderLocked(rss.ok() ? std::optional<int64_t>(*rss) : std::nullopt);
  }
  const std::string& path = options_.textfile_path;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  // Same directory (rename() is atomic only within one file system), a name
  // the textfile collector ignores (it reads "*.prom" only).
  const std::string temp = absl::StrCat(dir, ".", base, ".tmp.", ::getpid());
  absl::Status status;
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    status = ErrnoStatus(errno, absl::StrCat("cannot create '", temp, "'"));
  } else {
    size_t done = 0;
    while (done < text.size() && status.ok()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        status = ErrnoStatus(errno, absl::StrCat("cannot write '", temp, "'"));
      } else {
        done += static_cast<size_t>(n);
      }
    }
    if (::close(fd) != 0 && status.ok()) {
      status = ErrnoStatus(errno, absl::StrCat("cannot close '", temp, "'"));
    }
    if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("cannot rename '", temp, "' to '", path, "'"));
    }
    if (!status.ok()) ::unlink(temp.c_str());
  }
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    ++write_failures_;
  }
  return status;
}

}  // namespace leakguard
