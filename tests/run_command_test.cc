// `leakguard run` end to end: the real binary, real scripts, exit codes,
// the summary's numbers and lines, and the same sys.path as python3.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

Result Shell(const std::string& command) {
  Result result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    result.out.append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Tool() { return LEAKGUARD_TOOL; }
std::string Script(const char* name) {
  return std::string(LEAKGUARD_TEST_SCRIPTS_DIR) + "/" + name;
}

TEST(RunCommandTest, SummaryNamesTheLineThatHoldsMemory) {
  Result r = Shell(Tool() + " run " + Script("run_keeps_memory.py"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("argv: []"));
  EXPECT_THAT(r.out, HasSubstr("=== leakguard run: "));
  EXPECT_THAT(r.out, HasSubstr("(exit 0,"));
  // The top line is the list comprehension at line 9, in 10,000+ blocks.
  EXPECT_THAT(r.out,
              ::testing::ContainsRegex(
                  " 1\\. [^ ]*run_keeps_memory\\.py:9  [0-9.]+ MiB in 100[0-9][0-9] blocks"));
  EXPECT_THAT(r.out, HasSubstr("descriptors  +3 ("));
  EXPECT_THAT(r.out, HasSubstr("threads      +0 ("));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("Python heap  current [0-9.]+ MiB"));
}

TEST(RunCommandTest, ArgumentsReachTheScriptAndItsExitCodeIsKept) {
  Result r = Shell(Tool() + " run " + Script("run_keeps_memory.py") + " 3 extra");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("argv: ['3', 'extra']"));
  EXPECT_THAT(r.out, HasSubstr("(exit 3,"));
}

TEST(RunCommandTest, ScriptErrorPrintsTracebackAndExitsTwo) {
  Result r = Shell(Tool() + " run " + Script("run_raises.py"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("before the error"));
  EXPECT_THAT(r.out, HasSubstr("Traceback (most recent call last):"));
  EXPECT_THAT(r.out, HasSubstr("run_raises.py\", line 5, in divide"));
  EXPECT_THAT(r.out, HasSubstr("ZeroDivisionError: division by zero"));
}

TEST(RunCommandTest, MissingScriptIsAUsageError) {
  Result r = Shell(Tool() + " run /nonexistent/nothing.py");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("cannot open script '/nonexistent/nothing.py'"));
  EXPECT_THAT(r.out, Not(HasSubstr("Traceback")));
}

TEST(RunCommandTest, BadOptionsAreUsageErrors) {
  Result r = Shell(Tool() + " run --frames 0 " + Script("run_raises.py"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("--frames needs a number in 1..65535, got '0'"));
  r = Shell(Tool() + " frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("unknown command 'frobnicate'"));
  r = Shell(Tool() + " run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("missing SCRIPT.py"));
}

// The script sees python3's own sys.path (site-packages, dist-packages).
TEST(RunCommandTest, SysPathMatchesThePython3ItWasBuiltFor) {
  Result ours = Shell(Tool() + " run " + Script("run_prints_path.py"));
  ASSERT_EQ(ours.exit_code, 0) << ours.out;
  Result theirs =
      Shell(std::string(LEAKGUARD_PYTHON_EXECUTABLE) + " " + Script("run_prints_path.py"));
  ASSERT_EQ(theirs.exit_code, 0) << theirs.out;
  const std::string their_line = theirs.out.substr(0, theirs.out.find('\n'));
  const std::string our_line = ours.out.substr(0, ours.out.find('\n'));
  EXPECT_EQ(our_line, their_line);
  EXPECT_THAT(our_line, HasSubstr("\"name\": \"__main__\""));
}

}  // namespace

namespace {

// With the detector on, a script that leaks 2 MiB every 20 ms is reported
// while it runs, and the JSON summary carries the same reports.
TEST(RunCommandTest, DetectorReportsWhileTheScriptRunsAndJsonHasIt) {
  const std::string json =
      ::testing::TempDir() + "leakguard-run-" + std::to_string(::getpid()) + ".json";
  Result r = Shell(Tool() + " run --detector-interval 0.05 --threshold 4M --json " + json + " " +
                   Script("run_slow_leak.py"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("leakguard [warning] leak_detector 'python_heap'"));
  EXPECT_THAT(
      r.out,
      ::testing::ContainsRegex(
          "detector     [0-9]+ rounds every 50ms, [1-9][0-9]* reports? \\(threshold 4.0 MiB\\)"));
  EXPECT_THAT(r.out, HasSubstr("run_slow_leak.py:8"));
  EXPECT_THAT(r.out, HasSubstr("descriptors +0"));
  // Parse it with the Python the tool was built for.
  Result parsed = Shell(std::string(LEAKGUARD_PYTHON_EXECUTABLE) +
                        " -c \"import json,sys; d=json.load(open(sys.argv[1])); "
                        "r=d['detector']['reports'][0]; "
                        "print(d['exit_code'], d['detector']['threshold_bytes'], r['source'], "
                        "r['top_lines'][0]['line'], d['top_lines'][0]['line'])\" " +
                        json);
  std::remove(json.c_str());
  EXPECT_EQ(parsed.out, "0 4194304 leak_detector 8 8\n");
}

// --html: one page with the summary, the detector's rounds plotted (one
// point per round on the RSS and traced lines, traced ending higher than it
// began for a script that keeps allocating) and the live heap's flame graph.
TEST(RunCommandTest, HtmlPagePlotsTheDetectorsRounds) {
  const std::string html =
      ::testing::TempDir() + "leakguard-run-" + std::to_string(::getpid()) + ".html";
  Result r = Shell(Tool() + " run --detector-interval 0.05 --threshold 4M --html " + html + " " +
                   Script("run_slow_leak.py"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(html);
  std::stringstream text;
  text << in.rdbuf();
  const std::string page = text.str();
  std::remove(html.c_str());
  EXPECT_THAT(page, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(page, HasSubstr("<h2>Summary</h2>"));
  EXPECT_THAT(page, HasSubstr("=== leakguard run: "));
  const std::smatch rounds = [&] {
    std::smatch m;
    std::regex_search(page, m, std::regex("per round, ([0-9]+) rounds"));
    return m;
  }();
  ASSERT_FALSE(rounds.empty()) << page.substr(0, 2000);
  const int n = std::stoi(rounds[1]);
  EXPECT_GE(n, 2);
  // The summary says how many rounds ran: the same number is plotted.
  EXPECT_THAT(r.out, HasSubstr("detector     " + std::to_string(n) + " rounds every 50ms"));
  for (const char* series : {"rss", "traced"}) {
    const std::vector<std::pair<double, double>> points =
        ::leakguard::testing::PlotPoints(page, series);
    EXPECT_EQ(static_cast<int>(points.size()), n) << series;
    if (std::string(series) == "traced" && points.size() >= 2) {
      EXPECT_LT(points.back().second, points.front().second);  // Risen: SVG y grows downwards.
    }
  }
  EXPECT_THAT(page, HasSubstr("<h2>Heap flame graph</h2>"));
  EXPECT_THAT(page, HasSubstr("run_slow_leak.py:8"));
}

TEST(RunCommandTest, BadDetectorOptions) {
  Result r = Shell(Tool() + " run --detector-interval 0 " + Script("run_raises.py"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("--detector-interval needs seconds in 0.001..86400, got '0'"));
  r = Shell(Tool() + " run --threshold 10X " + Script("run_raises.py"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("--threshold needs a positive size"));
  r = Shell(Tool() + " run --json /nonexistent-dir/x.json " + Script("run_keeps_memory.py"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("cannot write '/nonexistent-dir/x.json'"));
}

}  // namespace
