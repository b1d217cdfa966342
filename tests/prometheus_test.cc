// PrometheusSink and MetricsServer: the exposition text, the atomic
// textfile, bounded cardinality, escaping, and the loopback endpoint.
// PrometheusE2E.* is driven by scripts/prometheus-e2e.sh against the real
// node_exporter and Prometheus (it skips when run without the script).

#include "leakguard/prometheus.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/leak_detector.h"
#include "leakguard/profile.h"
#include "leakguard/python/error.h"
#include "leakguard/python/gil.h"
#include "leakguard/python/python.h"
#include "leakguard/python/ref.h"

namespace leakguard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string TempDir() {
  std::string pattern = "/tmp/leakguard-prom-XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return pattern;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// A report shaped as LeakDetector's: growth since its baseline.
Report DetectorReport() {
  Report report;
  report.source = "leak_detector";
  report.severity = Severity::kWarning;
  report.label = "python_heap,native";
  report.time = absl::FromUnixSeconds(1700000000);
  report.elapsed = absl::Seconds(4);
  report.metrics = {{"rss_bytes", 5 << 20}, {"traced_bytes", 1 << 20}, {"fds", 0}, {"threads", 0}};
  report.top_lines = {{"app.py", 12, 600000, 300, 600000},
                      {"lib/\"quoted\".py", 7, 300000, 10, 300000},
                      {"third.py", 3, 1000, 1, 1000}};
  return report;
}

TEST(PrometheusFormat, EscapesLabelValues) {
  EXPECT_EQ(internal::PrometheusEscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(internal::PrometheusEscapeLabelValue("plain/app.py"), "plain/app.py");
}

TEST(PrometheusFormat, FormatsValues) {
  EXPECT_EQ(internal::PrometheusFormatValue(1048576), "1048576");
  EXPECT_EQ(internal::PrometheusFormatValue(-3), "-3");
  EXPECT_EQ(internal::PrometheusFormatValue(0.25), "0.25");
  EXPECT_EQ(internal::PrometheusFormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(internal::PrometheusFormatValue(std::nan("")), "NaN");
  EXPECT_EQ(internal::PrometheusFormatValue(std::numeric_limits<double>::infinity()), "+Inf");
}

TEST(PrometheusSink, RejectsBadOptions) {
  PrometheusSinkOptions options;
  options.max_sites = 1001;
  EXPECT_EQ(PrometheusSink::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_sites = -1;
  EXPECT_EQ(PrometheusSink::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_sites = 20;
  options.textfile_path = "/tmp/leakguard.txt";
  absl::Status status = PrometheusSink::Create(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(".prom"));
  options.textfile_path = "/nonexistent-leakguard-dir/x.prom";
  EXPECT_EQ(PrometheusSink::Create(options).status().code(), absl::StatusCode::kNotFound);
  options.textfile_path = "";
  options.const_labels = {{"__reserved", "x"}};
  EXPECT_EQ(PrometheusSink::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.const_labels = {{"9lives", "x"}};
  EXPECT_EQ(PrometheusSink::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PrometheusSink, WritesTextfileAtomicallyWithTheDetectorsSeries) {
  const std::string dir = TempDir();
  PrometheusSinkOptions options;
  options.textfile_path = dir + "/leakguard.prom";
  options.max_sites = 2;
  options.const_labels = {{"role", "render \"A\""}};
  absl::StatusOr<std::unique_ptr<PrometheusSink>> sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok()) << sink.status();

  // Before any report: the file exists, with RSS and the ten causes at 0.
  std::string text = ReadFile(options.textfile_path);
  EXPECT_THAT(text, HasSubstr("# TYPE leakguard_rss_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_leak_suspected{role=\"render \\\"A\\\"\","
                              "cause=\"native_memory\"} 0\n"));

  (*sink)->Write(DetectorReport());
  EXPECT_EQ((*sink)->failures(), 0);
  text = ReadFile(options.textfile_path);
  const std::string role = "role=\"render \\\"A\\\"\",";
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("leakguard_growth_bytes{", role,
                                     "watcher=\"leak_detector\",source=\"python\"} 1048576\n")));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("leakguard_growth_bytes{", role,
                                     "watcher=\"leak_detector\",source=\"native\"} 4194304\n")));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("leakguard_growth_bytes_per_second{", role,
                                     "watcher=\"leak_detector\",source=\"python\"} 262144\n")));
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("leakguard_growth_bytes_per_second{", role,
                                     "watcher=\"leak_detector\",source=\"native\"} 1048576\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_leak_suspected{", role,
                                           "cause=\"native_memory\"} 1\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_leak_suspected{", role,
                                           "cause=\"unclosed_resources\"} 0\n")));
  // Per-site gauges: capped at max_sites = 2, the file name escaped.
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_site_growth_bytes{", role,
                                           "file=\"app.py\",line=\"12\"} 600000\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_site_growth_blocks{", role,
                                           "file=\"lib/\\\"quoted\\\".py\",line=\"7\"} 10\n")));
  EXPECT_THAT(text, Not(HasSubstr("third.py")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_reports_total{", role,
                                           "watcher=\"leak_detector\",severity=\"warning\"} 1\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("leakguard_last_report_timestamp_seconds{", role,
                                           "watcher=\"leak_detector\"} 1700000000\n")));
  // The counters were read with the GIL (the test thread holds it).
  EXPECT_THAT(text, HasSubstr("# TYPE leakguard_python_blocks gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE leakguard_open_fds gauge\n"));
  // Only the .prom file is left: the temporary file was renamed.
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"leakguard.prom"});
  ::unlink(options.textfile_path.c_str());
  ::rmdir(dir.c_str());
}

TEST(PrometheusSink, KeepsThePendingPythonException) {
  auto sink = PrometheusSink::Create({});
  ASSERT_TRUE(sink.ok());
  PyErr_SetString(PyExc_KeyError, "pending");
  (*sink)->Write(DetectorReport());
  ASSERT_TRUE(PyErr_Occurred() != nullptr);
  EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_KeyError));
  PyErr_Clear();
  EXPECT_EQ((*sink)->failures(), 0);
  // The counters were read all the same.
  EXPECT_THAT((*sink)->Render(), HasSubstr("# TYPE leakguard_python_blocks gauge\n"));
}

TEST(PrometheusSink, ObserveSetsAbsoluteGaugesAndCausesAreValidated) {
  PrometheusSinkOptions options;
  options.read_counters = false;
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  Counters counters;
  counters.rss_bytes = 123456789;
  counters.traced_bytes = 7340032;
  counters.blocks = 4242;
  counters.fds = 17;
  counters.threads = 3;
  ASSERT_TRUE((*sink)->Observe(counters).ok());
  std::string text = (*sink)->Render();
  EXPECT_THAT(text, HasSubstr("leakguard_python_traced_bytes 7340032\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_python_blocks 4242\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_open_fds 17\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_threads 3\n"));
  // Render() re-reads RSS from /proc: this process' RSS, not the observed one.
  EXPECT_THAT(text, Not(HasSubstr("leakguard_rss_bytes 123456789\n")));
  EXPECT_THAT(text, HasSubstr("leakguard_rss_bytes "));

  absl::Status bad = (*sink)->SetSuspectedCauses({"unbounded_cache", "memory_leak"});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("memory_leak"));
  EXPECT_THAT((*sink)->Render(),
              HasSubstr("leakguard_leak_suspected{cause=\"unbounded_cache\"} 0"));
  ASSERT_TRUE((*sink)->SetSuspectedCauses({"unbounded_cache", "logging_buffer"}).ok());
  text = (*sink)->Render();
  EXPECT_THAT(text, HasSubstr("leakguard_leak_suspected{cause=\"unbounded_cache\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_leak_suspected{cause=\"logging_buffer\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("leakguard_leak_suspected{cause=\"global_state\"} 0\n"));
  // Exactly ten cause series.
  size_t causes = 0;
  for (size_t at = text.find("leakguard_leak_suspected{"); at != std::string::npos;
       at = text.find("leakguard_leak_suspected{", at + 1)) {
    ++causes;
  }
  EXPECT_EQ(causes, 10u);
}

TEST(PrometheusSink, BoundsTheWatcherLabel) {
  PrometheusSinkOptions options;
  options.read_counters = false;
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok());
  for (int i = 0; i < 12; ++i) {
    Report report;
    report.source = absl::StrCat("watcher", i);
    (*sink)->Write(report);
  }
  const std::string text = (*sink)->Render();
  EXPECT_THAT(text,
              HasSubstr("leakguard_reports_total{watcher=\"watcher7\",severity=\"info\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("watcher=\"watcher8\"")));
  EXPECT_THAT(text, HasSubstr("leakguard_reports_total{watcher=\"other\",severity=\"info\"} 4\n"));
}

TEST(PrometheusSink, CountsAFailedTextfileWrite) {
  const std::string dir = TempDir();
  PrometheusSinkOptions options;
  options.textfile_path = dir + "/leakguard.prom";
  options.read_counters = false;
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok());
  ::unlink(options.textfile_path.c_str());
  ASSERT_EQ(::rmdir(dir.c_str()), 0);
  (*sink)->Write(DetectorReport());
  EXPECT_EQ((*sink)->failures(), 1);
  EXPECT_EQ((*sink)->write_failures(), 1);
}

// One HTTP exchange with the server; the whole response.
std::string Fetch(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  ::close(fd);
  return response;
}

TEST(MetricsServer, ServesMetricsOnLoopbackAndStopsCleanly) {
  PrometheusSinkOptions options;
  options.read_counters = false;
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok());
  (*sink)->Write(DetectorReport());
  auto server = MetricsServer::Start(sink->get());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);

  const std::string ok = Fetch((*server)->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ok, ::testing::StartsWith("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("leakguard_growth_bytes{watcher=\"leak_detector\",source=\"python\"} "
                            "1048576\n"));
  EXPECT_THAT(Fetch((*server)->port(), "GET /other HTTP/1.0\r\n\r\n"),
              ::testing::StartsWith("HTTP/1.0 404"));
  EXPECT_THAT(Fetch((*server)->port(), "POST /metrics HTTP/1.0\r\n\r\n"),
              ::testing::StartsWith("HTTP/1.0 405"));
  EXPECT_EQ((*server)->requests(), 3);
  (*server)->Stop();
  (*server)->Stop();  // Idempotent.
  EXPECT_EQ(Fetch((*server)->port(), "GET /metrics HTTP/1.0\r\n\r\n"), "connect failed");
}

TEST(MetricsServer, RefusesNonLoopbackAddressesAndBusyPorts) {
  auto sink = PrometheusSink::Create({});
  ASSERT_TRUE(sink.ok());
  for (const char* address : {"0.0.0.0", "10.1.2.3", "::", "localhost"}) {
    auto server = MetricsServer::Start(sink->get(), {.address = address, .port = 0});
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  EXPECT_EQ(MetricsServer::Start(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start(sink->get(), {.port = 70000}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = MetricsServer::Start(sink->get(), {.address = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.ok());
  auto second =
      MetricsServer::Start(sink->get(), {.address = "127.0.0.1", .port = (*first)->port()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

// Several writers, a textfile and scrapes at once: every report counted, the
// file always whole.
TEST(PrometheusSink, ConcurrentWritesAndScrapes) {
  const std::string dir = TempDir();
  PrometheusSinkOptions options;
  options.textfile_path = dir + "/leakguard.prom";
  options.read_counters = false;
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok());
  auto server = MetricsServer::Start(sink->get());
  ASSERT_TRUE(server.ok());
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) (*sink)->Write(DetectorReport());
    });
  }
  int whole = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string response = Fetch((*server)->port(), "GET /metrics HTTP/1.0\r\n\r\n");
    if (response.find("HTTP/1.0 200 OK") == 0 &&
        response.find("leakguard_leak_suspected{cause=\"logging_buffer\"}") != std::string::npos) {
      ++whole;
    }
    const std::string file = ReadFile(options.textfile_path);
    EXPECT_THAT(file, HasSubstr("cause=\"logging_buffer\"} 0\n"));  // never half a file
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(whole, 20);
  EXPECT_EQ((*sink)->failures(), 0);
  EXPECT_THAT(ReadFile(options.textfile_path),
              HasSubstr("leakguard_reports_total{watcher=\"leak_detector\",severity=\"warning\"} "
                        "800\n"));
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"leakguard.prom"});
  (*server)->Stop();
  ::unlink(options.textfile_path.c_str());
  ::rmdir(dir.c_str());
}

// The real detector feeding the sink: a Python leak of 512 KiB per call at
// a marked line of tests/scripts/detector_workloads.py must show up as
// python growth over the threshold and as that line's site gauge.
TEST(PrometheusSink, TakesTheLeakDetectorsReports) {
  int marked = -1;
  {
    std::ifstream in(std::string(LEAKGUARD_TEST_SCRIPTS_DIR) + "/detector_workloads.py");
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find("# leak: ") != std::string::npos) marked = n;
    }
  }
  ASSERT_GT(marked, 0);
  auto call = [](const char* func) {
    Ref m = Steal(PyImport_ImportModule("detector_workloads"));
    ASSERT_TRUE(m) << StatusFromPythonError();
    Ref r = Steal(PyObject_CallMethod(m.get(), func, nullptr));
    ASSERT_TRUE(r) << StatusFromPythonError();
  };
  call("reset");
  auto sink = PrometheusSink::Create({});
  ASSERT_TRUE(sink.ok());
  auto detector = LeakDetector::Create(
      {.interval = absl::Milliseconds(50), .threshold_bytes = 1 << 20, .sink = sink->get()});
  ASSERT_TRUE(detector.ok()) << detector.status();
  ASSERT_TRUE((*detector)->Start().ok());
  const std::string site = absl::StrCat("detector_workloads.py\",line=\"", marked, "\"} ");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string text;
  while (absl::Now() < deadline) {
    call("grow");
    {
      GilRelease release;
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
    }
    text = (*sink)->Render();
    if (text.find(site) != std::string::npos) break;
  }
  const std::vector<RoundPoint> points = RoundPointsFromHistory((*detector)->History());
  (*detector)->Stop();
  call("reset");
  ASSERT_THAT(text, HasSubstr(site)) << text;
  const std::string growth = "leakguard_growth_bytes{watcher=\"leak_detector\",source=\"python\"} ";
  const size_t at = text.find(growth);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GE(std::stoll(text.substr(at + growth.size())), 1 << 20);
  EXPECT_THAT(text, HasSubstr("leakguard_reports_total{watcher=\"leak_detector\","
                              "severity=\"warning\"} "));
  // The detector's rounds, as the HTML report plots them.
  ASSERT_GE(points.size(), 2u);
  EXPECT_TRUE(points.back().traced_bytes.has_value());
  EXPECT_GE(*points.back().traced_bytes, 1 << 20);
  EXPECT_THAT(RenderRoundsSvg(points), HasSubstr("data-series=\"traced\""));
}

// Run by scripts/prometheus-e2e.sh: writes a textfile for node_exporter and
// serves /metrics for Prometheus, then waits for the script's "done" file.
TEST(PrometheusE2E, ServesForRealServers) {
  const char* dir = std::getenv("LEAKGUARD_E2E_DIR");
  if (dir == nullptr) GTEST_SKIP() << "run by scripts/prometheus-e2e.sh";
  PrometheusSinkOptions options;
  options.textfile_path = absl::StrCat(dir, "/textfile/leakguard.prom");
  options.const_labels = {{"host_role", "e2e"}};
  auto sink = PrometheusSink::Create(options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  (*sink)->Write(DetectorReport());
  ASSERT_EQ((*sink)->failures(), 0);
  auto server = MetricsServer::Start(sink->get());
  ASSERT_TRUE(server.ok()) << server.status();
  {
    std::ofstream port(absl::StrCat(dir, "/port.tmp"));
    port << (*server)->port() << "\n";
  }
  ASSERT_EQ(::rename(absl::StrCat(dir, "/port.tmp").c_str(), absl::StrCat(dir, "/port").c_str()),
            0);
  // Serve until the script has its answers (generous deadline).
  const std::string done = absl::StrCat(dir, "/done");
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  Py_BEGIN_ALLOW_THREADS;
  while (::access(done.c_str(), F_OK) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  Py_END_ALLOW_THREADS;
  EXPECT_EQ(::access(done.c_str(), F_OK), 0) << "the script never finished";
  EXPECT_GE((*server)->requests(), 1);
}

}  // namespace
}  // namespace leakguard
