// leakguard/prometheus.h
//
// Prometheus metrics: a Sink that keeps leakguard's latest readings as
// gauges and writes them in Prometheus' text exposition format, either as a
// file for node_exporter's textfile collector (written atomically: a
// temporary file in the same directory, then rename()), or served by an
// optional in-process HTTP endpoint (MetricsServer, off unless started, on a
// loopback address only).
//
//   PrometheusSinkOptions options;
//   options.textfile_path = "/var/lib/prometheus/node-exporter/leakguard.prom";
//   auto sink = PrometheusSink::Create(options);       // StatusOr
//   detector_options.sink = sink->get();
//   auto server = MetricsServer::Start(sink->get(), {.port = 9464});
//
// The series (names, units and labels follow Prometheus' conventions: base
// units, `_bytes`, `_total` for counters, snake_case labels):
//
//   leakguard_rss_bytes                      resident set size of the process
//   leakguard_python_traced_bytes            Python heap traced by tracemalloc
//   leakguard_python_blocks                  sys.getallocatedblocks()
//   leakguard_open_fds, leakguard_threads    the process' descriptors, threads
//   leakguard_growth_bytes                   {watcher, source="python"|"native"}
//   leakguard_growth_bytes_per_second        {watcher, source="python"|"native"}
//   leakguard_leak_suspected                 {cause=<cause id>} 1 or 0, one
//                                            series per cause id, always
//   leakguard_site_growth_bytes              {file, line}: the lines that grew
//   leakguard_site_growth_blocks             most in the latest report that
//                                            named lines, at most max_sites
//   leakguard_reports_total                  {watcher, severity} counter
//   leakguard_last_report_timestamp_seconds  {watcher}
//
// Cardinality is bounded: `cause` takes only the ten cause ids of
// docs/design.md, `watcher` at most kMaxWatchers distinct report sources
// (later ones are counted under watcher="other"), and the per-site series at
// most `max_sites` (default 20, at most 1000), replaced as a whole by each
// report that names lines.
//
// Pure C++ except the optional counter reading (see
// PrometheusSinkOptions::read_counters). Thread-safe: Write(), Observe(),
// Render() may be called from any thread at once.

#ifndef LEAKGUARD_PROMETHEUS_H_
#define LEAKGUARD_PROMETHEUS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "leakguard/counters.h"
#include "leakguard/export.h"
#include "leakguard/report.h"
#include "leakguard/sink.h"

namespace leakguard {

/// Options of a PrometheusSink.
struct PrometheusSinkOptions {
  /// Where to write the textfile after every Write()/Observe(): a path
  /// ending in ".prom" (node_exporter's textfile collector reads only those;
  /// the temporary file, ".<name>.tmp.<pid>" in the same directory, does not
  /// match). Empty: no file (serve with MetricsServer, or call Render()).
  std::string textfile_path;
  /// Per-site gauges kept, 0..1000 (0: none).
  int max_sites = 20;
  /// Labels added to every series (for example {"instance_role", "render"}).
  /// Names must match [a-zA-Z_][a-zA-Z0-9_]* and not start with "__";
  /// values are escaped.
  std::vector<std::pair<std::string, std::string>> const_labels;
  /// Before rendering each report, read the absolute counters
  /// (ReadCounters(): RSS, traced heap, blocks, fds, threads) by taking the
  /// GIL when an interpreter runs, as PythonLoggingSink does (same
  /// REQUIRES: the interpreter is not being finalized by another thread).
  /// false: only RSS is read (from /proc, no GIL) and the Python gauges come
  /// from Observe().
  bool read_counters = true;
};

/// The sink. See the file comment for the series.
class LEAKGUARD_EXPORT PrometheusSink : public Sink {
 public:
  /// Distinct report sources given their own `watcher` label value.
  static constexpr int kMaxWatchers = 8;
  /// Largest allowed max_sites.
  static constexpr int kMaxSitesLimit = 1000;

  /// Validates the options: InvalidArgument for max_sites out of 0..1000, a
  /// textfile path not ending in ".prom", a bad label name; NotFound when
  /// the textfile's directory does not exist. Writes the first textfile (so
  /// the series exist before the first report), and returns its error.
  static absl::StatusOr<std::unique_ptr<PrometheusSink>> Create(PrometheusSinkOptions options);

  PrometheusSink(const PrometheusSink&) = delete;
  PrometheusSink& operator=(const PrometheusSink&) = delete;
  ~PrometheusSink() override;

  /// Takes one report into the gauges (see the file comment) and rewrites
  /// the textfile. A failed file write counts a failure. Never throws.
  void Write(const Report& report) noexcept override ABSL_LOCKS_EXCLUDED(mu_);

  /// Sets the absolute gauges (RSS, traced heap when set, blocks, fds,
  /// threads) from a reading the host made, and rewrites the textfile.
  /// No GIL needed. Returns the textfile write's error.
  absl::Status Observe(const Counters& counters) ABSL_LOCKS_EXCLUDED(mu_);

  /// Sets leakguard_leak_suspected{cause} to 1 for the cause ids in
  /// `causes` and to 0 for the others (the doctor's findings, for example),
  /// and rewrites the textfile. InvalidArgument, changing nothing, for an
  /// id that is not one of docs/design.md's ten.
  absl::Status SetSuspectedCauses(const std::vector<std::string>& causes) ABSL_LOCKS_EXCLUDED(mu_);

  /// The exposition text now (RSS re-read from /proc, no GIL).
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

  /// Textfile writes that failed so far (also counted in failures()).
  int64_t write_failures() const noexcept ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit PrometheusSink(PrometheusSinkOptions options);
  absl::Status WriteTextfile() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string RenderLocked(std::optional<int64_t> rss) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ObserveLocked(const Counters& counters) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Growth {
    int64_t python_bytes = 0;
    int64_t native_bytes = 0;
    double seconds = 0;
    bool has_python = false;
  };
  struct Site {
    std::string file;
    int line = 0;
    int64_t bytes = 0;
    int64_t blocks = 0;
  };

  const PrometheusSinkOptions options_;
  std::string const_labels_;  // rendered once: `a="b",c="d"` or ""
  mutable absl::Mutex mu_;
  // Serializes textfile writes (the rename must not race another write).
  mutable absl::Mutex file_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::optional<int64_t> rss_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> traced_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> blocks_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> fds_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> threads_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Growth> growth_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> suspected_ ABSL_GUARDED_BY(mu_);
  std::vector<Site> sites_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, int64_t> reports_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, double> last_report_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> watchers_ ABSL_GUARDED_BY(mu_);
  mutable int64_t write_failures_ ABSL_GUARDED_BY(mu_) = 0;
};

/// Options of a MetricsServer.
struct MetricsServerOptions {
  /// A loopback address to listen on: "127.0.0.1" (any 127.x.y.z) or "::1".
  std::string address = "127.0.0.1";
  /// TCP port; 0 picks a free one (see MetricsServer::port()).
  int port = 0;
};

/// A tiny HTTP/1.0 server on one thread that answers `GET /metrics` (and
/// HEAD, headers only) with PrometheusSink::Render() (`text/plain;
/// version=0.0.4`), 404 for other paths and 405 for other methods; one
/// connection at a time, each closed after its answer, a client that sends
/// nothing for 5 s is dropped.
/// Off unless a host starts one. Thread-safe.
class LEAKGUARD_EXPORT MetricsServer {
 public:
  /// Binds and starts serving `sink` (not owned; must outlive the server).
  /// InvalidArgument for a null sink, a port outside 0..65535 or an address
  /// that is not loopback; the errno text (Unavailable / PermissionDenied)
  /// when bind or listen fails, e.g. a port in use.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const PrometheusSink* sink, const MetricsServerOptions& options = {});

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// Stop().
  ~MetricsServer();

  /// The port listened on.
  int port() const noexcept { return port_; }
  /// Requests answered so far (any status).
  int64_t requests() const noexcept ABSL_LOCKS_EXCLUDED(mu_);
  /// Wakes the thread, finishes the answer in progress, joins and closes the
  /// socket. Idempotent; any thread but the server's own.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  MetricsServer(const PrometheusSink* sink, int listen_fd, int wake_read, int wake_write, int port);
  void Serve();
  void Answer(int fd);

  const PrometheusSink* sink_;
  int listen_fd_;
  int wake_read_;
  int wake_write_;
  int port_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

namespace internal {

/// A label value escaped for the exposition format: backslash, double quote
/// and line feed as `\\`, `\"`, `\n`. Exposed for tests.
LEAKGUARD_EXPORT std::string PrometheusEscapeLabelValue(std::string_view value);

/// A sample value as the exposition format spells it: integers exactly,
/// others in shortest round-trip form, "NaN", "+Inf", "-Inf".
LEAKGUARD_EXPORT std::string PrometheusFormatValue(double value);

}  // namespace internal

}  // namespace leakguard

#endif  // LEAKGUARD_PROMETHEUS_H_
