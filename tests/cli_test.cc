// The `leakguard` command as a hostile user drives it: outputs that name an
// input, failing writes, relative paths and chdir, signals, crashes, threads
// left running, scripts named after standard modules, generators and
// coroutines, directories and zip files, forks, a closed stdout and file
// names that are not UTF-8. Every case runs the real binary in a fresh
// temporary directory.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli_args.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using leakguard::tools::ParseCommandLine;
using leakguard::tools::ParsedCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Outcome {
  int exit_code = -1;  // WEXITSTATUS, or -1 when killed by a signal
  int signal = 0;      // WTERMSIG, or 0
  std::string out;
  std::string err;
};

struct SpawnOptions {
  std::string cwd;
  rlim_t file_size_limit = RLIM_INFINITY;
  // Called with the pid and the output so far until it returns true (then
  // no more) or the child ends.
  std::function<bool(pid_t, const std::string& out, const std::string& err)> on_output;
};

// Runs argv[0] with argv, waits for it (with a deadline of minutes, only so
// that a hang fails the test instead of the whole suite).
Outcome Spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {}) {
  Outcome run;
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) return run;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) ::_exit(127);
    if (options.file_size_limit != RLIM_INFINITY) {
      struct rlimit limit = {options.file_size_limit, options.file_size_limit};
      ::setrlimit(RLIMIT_FSIZE, &limit);
      ::signal(SIGXFSZ, SIG_IGN);  // A write past it fails with EFBIG.
    }
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  bool out_open = true, err_open = true, notified = !options.on_output;
  bool killed = false;
  while (out_open || err_open) {
    if (std::chrono::steady_clock::now() > deadline && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
      ADD_FAILURE() << "the command did not end; killed it. stderr so far:\n" << run.err;
    }
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    if (!out_open) fds[0].fd = -1;
    if (!err_open) fds[1].fd = -1;
    if (::poll(fds, 2, 200) < 0 && errno != EINTR) break;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? run.out : run.err).append(buf, static_cast<size_t>(n));
      }
    }
    if (!notified && options.on_output(pid, run.out, run.err)) notified = true;
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) run.signal = WTERMSIG(status);
  return run;
}

// LEAKGUARD_CLI_TOOL runs these cases against another build of the command.
std::string Tool() {
  const char* other = std::getenv("LEAKGUARD_CLI_TOOL");
  return other != nullptr && *other != '\0' ? other : LEAKGUARD_TOOL;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A fresh directory per test, removed at the end.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "leakguard-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { Spawn({"/bin/rm", "-rf", dir_}); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Script(const std::string& name, const std::string& text) {
    WriteFile(Path(name), text);
    return Path(name);
  }
  // Parses a JSON file with python3 and prints `expr` (over `d`).
  std::string JsonField(const std::string& path, const std::string& expr) {
    Outcome r = Spawn({LEAKGUARD_PYTHON_EXECUTABLE, "-c",
                       "import json,sys\nwith open(sys.argv[1], encoding='utf-8') as f: d = "
                       "json.load(f)\nprint(" +
                           expr + ")",
                       path});
    return r.exit_code == 0 ? r.out : "error: " + r.err;
  }

  std::string dir_;
};

constexpr char kSteady[] =
    "def f():\n"
    "    return [0] * 10\n";

// ------------------------------------------------------------------ outputs

TEST_F(CliTest, OutputThatIsTheScriptIsRefusedBeforeAnythingRuns) {
  const std::string script = Script("v.py", std::string(kSteady) + "print('ran')\n");
  const std::string original = ReadFile(script);
  for (const char* option : {"--json", "--dot"}) {
    Outcome r = Spawn({Tool(), "doctor", script + ":f", option, script});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(std::string(option) + " '" + script +
                                 "' is the script itself; refusing to overwrite it"));
    EXPECT_THAT(r.out, Not(HasSubstr("ran")));
    EXPECT_EQ(ReadFile(script), original);
  }
  // The same file by another name: relative to the working directory.
  Outcome r = Spawn({Tool(), "run", "--json", "./v.py", "v.py"}, {.cwd = dir_});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is the script itself"));
  EXPECT_THAT(r.out, Not(HasSubstr("ran")));
  EXPECT_EQ(ReadFile(script), original);
  // And through a symbolic link.
  ASSERT_EQ(::symlink(script.c_str(), Path("link.json").c_str()), 0);
  r = Spawn({Tool(), "doctor", script + ":f", "--json", Path("link.json")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is the script itself"));
  EXPECT_EQ(ReadFile(script), original);
}

TEST_F(CliTest, JsonAndDotNamingOneFileAreRefused) {
  const std::string script = Script("v.py", kSteady);
  Outcome r = Spawn({Tool(), "doctor", script + ":f", "--json", Path("out"), "--dot", "out"},
                    {.cwd = dir_});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--dot and --json both name '" + Path("out") +
                               "'; give each output its own file"));
  EXPECT_FALSE(Exists(Path("out")));
}

TEST_F(CliTest, AWriteThatFailsExitsTwoAndLeavesTheOldFileIntact) {
  const std::string script = Script("v.py", kSteady);
  const std::string old_json = "{\"old\": true}\n";
  WriteFile(Path("out.json"), old_json);
  // A file size limit of 200 bytes: the new report does not fit.
  Outcome r = Spawn({Tool(), "run", "--json", Path("out.json"), script}, {.file_size_limit = 200});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cannot write '" + Path("out.json") + "': File too large"));
  EXPECT_EQ(ReadFile(Path("out.json")), old_json);
  r = Spawn({Tool(), "doctor", "--warmup", "1", "--repeat", "2", script + ":f", "--json",
             Path("out.json")},
            {.file_size_limit = 200});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cannot write '" + Path("out.json") + "': File too large"));
  EXPECT_EQ(ReadFile(Path("out.json")), old_json);
  // No temporary file is left behind.
  Outcome ls = Spawn({"/bin/ls", "-A", dir_});
  EXPECT_THAT(ls.out, HasSubstr("out.json\n"));
  EXPECT_THAT(ls.out, Not(HasSubstr("leakguard-")));
}

TEST_F(CliTest, DevFullFailsWithExitTwo) {
  const std::string script = Script("v.py", kSteady);
  Outcome r = Spawn({Tool(), "run", "--json", "/dev/full", script});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cannot write '/dev/full': No space left on device"));
  r = Spawn(
      {Tool(), "doctor", "--warmup", "1", "--repeat", "2", script + ":f", "--dot", "/dev/full"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cannot write '/dev/full': No space left on device"));
}

TEST_F(CliTest, AReportThatCannotBeWrittenToStdoutExitsTwo) {
  const std::string script = Script("v.py", kSteady);
  Outcome r = Spawn(
      {"/bin/sh", "-c", Tool() + " doctor --warmup 1 --repeat 2 " + script + ":f >/dev/full"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: cannot write the report to stdout: No space "
                               "left on device"));
}

TEST_F(CliTest, ReplacedReportKeepsItsModeAndIsValidJson) {
  const std::string script = Script("v.py", kSteady);
  WriteFile(Path("out.json"), "stale");
  ASSERT_EQ(::chmod(Path("out.json").c_str(), 0640), 0);
  Outcome r = Spawn({Tool(), "run", "--json", Path("out.json"), script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(JsonField(Path("out.json"), "d['exit_code'], d['script'].endswith('v.py')"),
            "0 True\n");
  struct stat st;
  ASSERT_EQ(::stat(Path("out.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(CliTest, RelativeOutputsDoNotFollowTheScriptsChdir) {
  ASSERT_EQ(::mkdir(Path("sub").c_str(), 0755), 0);
  const std::string script = Script("wander.py",
                                    "import os\n"
                                    "os.chdir('sub')\n"
                                    "def f():\n"
                                    "    os.chdir(os.path.dirname(os.getcwd()) + '/sub')\n");
  Outcome r = Spawn({Tool(), "run", "--json", "run.json", "wander.py"}, {.cwd = dir_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Exists(Path("run.json")));
  EXPECT_FALSE(Exists(Path("sub/run.json")));
  r = Spawn({Tool(), "doctor", "--warmup", "1", "--repeat", "2", "wander.py:f", "--json",
             "doc.json", "--dot", "doc.dot"},
            {.cwd = dir_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(JsonField(Path("doc.json"), "d['verdict']"), "no_leak\n");
  EXPECT_THAT(ReadFile(Path("doc.dot")), HasSubstr("digraph leakguard"));
  EXPECT_FALSE(Exists(Path("sub/doc.json")));
  EXPECT_FALSE(Exists(Path("sub/doc.dot")));
}

// ------------------------------------------------------------------ signals

// Sends `signum` once the script has printed "ready".
SpawnOptions SignalWhenReady(int signum) {
  SpawnOptions options;
  options.on_output = [signum](pid_t pid, const std::string& out, const std::string&) {
    if (out.find("ready") == std::string::npos) return false;
    ::kill(pid, signum);
    return true;
  };
  return options;
}

constexpr char kWaitsForever[] =
    "import time\n"
    "try:\n"
    "    print('ready', flush=True)\n"
    "    while True:\n"
    "        time.sleep(0.05)\n"
    "finally:\n"
    "    print('finally ran', flush=True)\n";

TEST_F(CliTest, SigintDuringRunIsKeyboardInterruptAndTheSummaryIsPrinted) {
  const std::string script = Script("forever.py", kWaitsForever);
  Outcome r = Spawn({Tool(), "run", "--json", Path("run.json"), script}, SignalWhenReady(SIGINT));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_THAT(r.out, HasSubstr("finally ran"));
  EXPECT_THAT(r.err, HasSubstr("Traceback (most recent call last):"));
  EXPECT_THAT(r.err, HasSubstr("\nKeyboardInterrupt\n"));
  EXPECT_THAT(r.err,
              HasSubstr("=== leakguard run: " + script + " (interrupted by SIGINT, exit 130,"));
  EXPECT_THAT(r.err, HasSubstr("Python heap  current"));
  EXPECT_EQ(JsonField(Path("run.json"), "d['exit_code'], d['interrupted']"), "130 SIGINT\n");
}

// asyncio.run() and others look for Python's own SIGINT handler.
TEST_F(CliTest, SigintKeepsPythonsDefaultHandler) {
  const std::string script =
      Script("handler.py",
             "import signal\n"
             "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n");
  Outcome ours = Spawn({Tool(), "run", script});
  Outcome python = Spawn({LEAKGUARD_PYTHON_EXECUTABLE, script});
  EXPECT_EQ(python.out, "True\n");
  EXPECT_EQ(ours.out, python.out) << ours.err;
}

TEST_F(CliTest, SigtermDuringRunEndsCleanlyWith143) {
  const std::string script = Script("forever.py", kWaitsForever);
  Outcome r = Spawn({Tool(), "run", "--json", Path("run.json"), script}, SignalWhenReady(SIGTERM));
  EXPECT_EQ(r.exit_code, 143) << r.err;
  EXPECT_EQ(r.signal, 0);
  EXPECT_THAT(r.out, HasSubstr("finally ran"));
  EXPECT_THAT(r.err, HasSubstr("(interrupted by SIGTERM, exit 143,"));
  EXPECT_EQ(JsonField(Path("run.json"), "d['exit_code'], d['interrupted']"), "143 SIGTERM\n");
}

// FUNC finishes four calls, then blocks in the fifth until the signal.
constexpr char kBlocksOnFifthCall[] =
    "import time\n"
    "calls = 0\n"
    "kept = []\n"
    "def f():\n"
    "    global calls\n"
    "    calls += 1\n"
    "    kept.append(bytearray(100000))\n"
    "    if calls == 5:\n"
    "        print('ready', flush=True)\n"
    "        while True:\n"
    "            time.sleep(0.05)\n";

TEST_F(CliTest, SigintDuringDoctorReportsTheIterationsDone) {
  const std::string script = Script("slow.py", kBlocksOnFifthCall);
  Outcome r =
      Spawn({Tool(), "doctor", script + ":f", "--json", Path("doc.json")}, SignalWhenReady(SIGINT));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_THAT(r.err, HasSubstr("KeyboardInterrupt"));
  EXPECT_THAT(r.out, HasSubstr("interrupted (SIGINT) after 4 of 23 iterations (3 warmup + 20 "
                               "measured): no verdict, the run did not finish"));
  // Four iterations done, 100,000 bytes kept by each.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("so far, over 4 iterations: RSS [-+0-9.]+ [KMG]?i?B, "
                                              "Python heap \\+(39[0-9]|4[0-4][0-9])\\.[0-9] KiB"));
  EXPECT_EQ(
      JsonField(Path("doc.json"),
                "d['verdict'], d['interrupted']['signal'], d['interrupted']['iterations_done'],"
                " d['interrupted']['iterations_planned'], d['so_far']['traced_bytes'] >= 400000"),
      "None SIGINT 4 23 True\n");
}

TEST_F(CliTest, SigtermDuringDoctorEndsWith143) {
  const std::string script = Script("slow.py", kBlocksOnFifthCall);
  Outcome r = Spawn({Tool(), "doctor", script + ":f"}, SignalWhenReady(SIGTERM));
  EXPECT_EQ(r.exit_code, 143) << r.err;
  EXPECT_THAT(r.out, HasSubstr("interrupted (SIGTERM) after 4 of 23 iterations"));
}

TEST_F(CliTest, ACrashPrintsPythonsTracebackAndSaysSo) {
  const std::string script = Script("crash.py",
                                    "import ctypes\n"
                                    "def boom():\n"
                                    "    ctypes.string_at(0)\n"
                                    "boom()\n");
  Outcome r = Spawn({Tool(), "run", script});
  EXPECT_EQ(r.signal, SIGSEGV) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Fatal Python error: Segmentation fault"));
  EXPECT_THAT(r.err, HasSubstr("crash.py\", line 3 in boom"));
  EXPECT_THAT(r.err, HasSubstr("leakguard run: the script crashed (signal 11, SIGSEGV)"));
  r = Spawn({Tool(), "doctor", script + ":boom"});
  EXPECT_EQ(r.signal, SIGSEGV) << r.err;
  EXPECT_THAT(r.err, HasSubstr("crash.py\", line 3 in boom"));
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: the script crashed (signal 11, SIGSEGV)"));
}

// ------------------------------------------------------------------- hangs

TEST_F(CliTest, AThreadLeftRunningDoesNotHoldUpTheDoctorsExit) {
  const std::string script =
      Script("stuck.py",
             "import threading\n"
             "forever = threading.Event()\n"
             "started = []\n"
             "def f():\n"
             "    if not started:\n"
             "        t = threading.Thread(target=forever.wait, name='stuck-worker')\n"
             "        t.start()\n"
             "        started.append(t)\n");
  Outcome r = Spawn({Tool(), "doctor", script + ":f", "--json", Path("doc.json")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(JsonField(Path("doc.json"), "d['verdict']"), "no_leak\n");
  EXPECT_THAT(r.out, HasSubstr("leakguard doctor " + script + ":f"));
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: 1 thread the workload started still running: "
                               "'stuck-worker'; waiting up to 2s for it"));
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: exiting without waiting for 1 thread"));
}

// ----------------------------------------------------------- wrong answers

constexpr char kLeaksPerCall[] =
    "_keep = []\n"
    "def {name}():\n"
    "    _keep.append(bytearray(200000))\n";

std::string Leaky(const std::string& name) {
  std::string text = kLeaksPerCall;
  text.replace(text.find("{name}"), 6, name);
  return text;
}

TEST_F(CliTest, AScriptNamedAfterAStandardModuleIsTheUsersFile) {
  for (const std::string& name : {std::string("os"), std::string("json")}) {
    const std::string func = name == "os" ? "getcwd" : "f";
    const std::string script = Script(name + ".py", Leaky(func));
    Outcome r = Spawn({Tool(), "doctor", script + ":" + func, "--json", Path(name + ".json")});
    EXPECT_EQ(r.exit_code, 1) << name << ": " << r.out << r.err;
    EXPECT_EQ(JsonField(Path(name + ".json"), "d['verdict'], d['causes'][0]['holder']"),
              "leak " + name + "._keep\n");
  }
}

TEST_F(CliTest, AGeneratorIsExhaustedAndACoroutineRunEachIteration) {
  const std::string gen = Script("gen.py",
                                 "_keep = []\n"
                                 "def f():\n"
                                 "    _keep.append(bytearray(200000))\n"
                                 "    yield 1\n"
                                 "    yield 2\n");
  Outcome r = Spawn({Tool(), "doctor", gen + ":f"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("f returns a generator: each iteration exhausted it"));
  EXPECT_THAT(r.out, HasSubstr("LEAK"));
  const std::string coro = Script("coro.py",
                                  "import asyncio\n"
                                  "_keep = []\n"
                                  "async def f():\n"
                                  "    await asyncio.sleep(0)\n"
                                  "    _keep.append(bytearray(200000))\n");
  r = Spawn({Tool(), "doctor", coro + ":f"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(
      r.out,
      HasSubstr("f returns a coroutine: each iteration ran it to completion with asyncio.run()"));
  const std::string agen = Script("agen.py",
                                  "async def f():\n"
                                  "    yield 1\n");
  r = Spawn({Tool(), "doctor", agen + ":f"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("is an async generator function, which leakguard doctor cannot drive"));
  EXPECT_THAT(r.out, Not(HasSubstr("NO LEAK")));
}

TEST_F(CliTest, RunOfADirectoryOrZipDoesWhatPython3Does) {
  ASSERT_EQ(::mkdir(Path("app").c_str(), 0755), 0);
  WriteFile(Path("app/__main__.py"), "import sys\nprint('main of', sys.argv[0], __name__)\n");
  Outcome r = Spawn({Tool(), "run", Path("app")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "main of " + Path("app") + " __main__\n");
  Outcome zipped = Spawn({LEAKGUARD_PYTHON_EXECUTABLE, "-m", "zipfile", "-c", Path("app.zip"),
                          Path("app/__main__.py")});
  ASSERT_EQ(zipped.exit_code, 0) << zipped.err;
  r = Spawn({Tool(), "run", Path("app.zip")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "main of " + Path("app.zip") + " __main__\n");
  // No __main__: python3's message and exit code.
  ASSERT_EQ(::mkdir(Path("empty").c_str(), 0755), 0);
  r = Spawn({Tool(), "run", Path("empty")});
  Outcome python = Spawn({LEAKGUARD_PYTHON_EXECUTABLE, Path("empty")});
  EXPECT_EQ(python.exit_code, 1);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("can't find '__main__' module in '" + Path("empty") + "'"));
  EXPECT_THAT(python.err, HasSubstr("can't find '__main__' module in '" + Path("empty") + "'"));
}

TEST_F(CliTest, TracebackFormattingIsNotTheScriptsMemory) {
  const std::string script = Script("raises.py",
                                    "def divide(a, b):\n"
                                    "    return a / b\n"
                                    "divide(1, 0)\n");
  Outcome r = Spawn({Tool(), "run", "--top", "200", "--json", Path("run.json"), script});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("ZeroDivisionError: division by zero"));
  // Not one line of the modules that format a traceback.
  EXPECT_EQ(JsonField(Path("run.json"),
                      "[l['file'] for l in d['top_lines'] if any(m in l['file'] for m in "
                      "('traceback.py', 'linecache.py', 'enum.py', 'ast.py', '/re/', "
                      "'tokenize.py'))]"),
            "[]\n");
}

TEST_F(CliTest, AForkedChildPrintsNoSecondSummary) {
  const std::string script = Script("forks.py",
                                    "import os\n"
                                    "pid = os.fork()\n"
                                    "if pid:\n"
                                    "    os.waitpid(pid, 0)\n"
                                    "else:\n"
                                    "    print('child done', flush=True)\n");
  // With the detector too: its thread is the parent's, the child must not
  // wait for it.
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{}, std::vector<std::string>{"--detector-interval", "0.05"}}) {
    std::vector<std::string> argv = {Tool(), "run"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(script);
    Outcome r = Spawn(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "child done\n");
    size_t summaries = 0;
    for (size_t at = r.err.find("=== leakguard run:"); at != std::string::npos;
         at = r.err.find("=== leakguard run:", at + 1)) {
      ++summaries;
    }
    EXPECT_EQ(summaries, 1u) << r.err;
  }
}

TEST_F(CliTest, AScriptThatClosesStdoutDoesNotLoseTheReport) {
  const std::string script = Script("closes.py", std::string("import os\nos.close(1)\n") + kSteady);
  Outcome r = Spawn({Tool(), "doctor", "--warmup", "1", "--repeat", "3", script + ":f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("leakguard doctor " + script + ":f\n\nNO LEAK"));
  const std::string run_script = Script("closes2.py", "import os\nos.close(2)\n");
  r = Spawn({Tool(), "run", run_script});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("=== leakguard run: " + run_script + " (exit 0,"));
  // Messages and tracebacks too.
  const std::string raises =
      Script("closes3.py", "import os\nos.close(2)\nraise ValueError('late')\n");
  r = Spawn({Tool(), "run", raises});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("ValueError: late"));
  r = Spawn({Tool(), "doctor", run_script + ":nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: " + run_script + " has no function 'nope'"));
}

TEST_F(CliTest, FileNamesThatAreNotUtf8) {
  const std::string name = "caf\xe9";  // Latin-1, not UTF-8.
  const std::string script = Script(name + ".py", kSteady);
  Outcome r = Spawn({Tool(), "run", "--json", Path("run.json"), script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(JsonField(Path("run.json"), "d['script'].endswith('caf\\ufffd.py')"), "True\n");
  r = Spawn({Tool(), "doctor", "--warmup", "1", "--repeat", "3", script + ":f", "--json",
             Path("doc.json")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("UnicodeDecodeError")));
  EXPECT_EQ(JsonField(Path("doc.json"), "d['verdict']"), "no_leak\n");
}

// ----------------------------------------------------------------- messages

TEST_F(CliTest, MessagesSpeakOfTheCommandNotOfCpp) {
  const std::string script = Script("stops.py", "import tracemalloc\ntracemalloc.stop()\n");
  Outcome r = Spawn({Tool(), "run", script});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("top lines unavailable: the script stopped tracemalloc "
                               "(tracemalloc.stop()), so no lines were recorded"));
  EXPECT_THAT(r.err, Not(HasSubstr("TracingScope")));
  EXPECT_THAT(r.err, Not(HasSubstr("::")));
  // FUNC itself stops tracemalloc: the doctor says so, in Python's terms.
  const std::string doctor_script = Script("stops_each.py",
                                           "import tracemalloc\n"
                                           "def f():\n"
                                           "    tracemalloc.stop()\n");
  r = Spawn({Tool(), "doctor", doctor_script + ":f"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("leakguard doctor: cannot diagnose " + doctor_script +
                               ":f: f stopped tracemalloc (tracemalloc.stop()), which the "
                               "doctor needs to measure the Python heap"));
  EXPECT_THAT(r.err, Not(HasSubstr("::")));
  EXPECT_THAT(r.err, Not(HasSubstr("raised")));
}

// ---------------------------------------------------------- argument parsing

TEST(CliArgsTest, RunOptionsAreParsedIntoTheirFields) {
  const std::vector<std::string_view> args = {
      "run",      "--frames",    "5",     "--top",  "3",        "--detector-interval",
      "0.25",     "--threshold", "512K",  "--json", "out.json", "--html",
      "out.html", "app.py",      "--top", "x"};
  absl::StatusOr<ParsedCommand> parsed = ParseCommandLine(args);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, ParsedCommand::Kind::kRun);
  const leakguard::tools::RunOptions& run = parsed->run;
  EXPECT_EQ(run.script, "app.py");
  // Everything after SCRIPT is the script's own, options included.
  EXPECT_THAT(run.args, ElementsAre("--top", "x"));
  EXPECT_EQ(run.frames, 5);
  EXPECT_EQ(run.top, 3);
  EXPECT_EQ(run.detector_interval, absl::Milliseconds(250));
  EXPECT_EQ(run.threshold_bytes, 512 * 1024);
  EXPECT_EQ(run.json_path, "out.json");
  EXPECT_EQ(run.html_path, "out.html");
  EXPECT_EQ(run.python_program, "");  // The command fills it in from the environment.
}

TEST(CliArgsTest, DoctorTargetIsSplitIntoModuleAndFunc) {
  const std::vector<std::string_view> args = {"doctor", "pkg.mod:handle", "--warmup",
                                              "0",      "--repeat",       "5",
                                              "--html", "r.html",         "--no-progress"};
  absl::StatusOr<ParsedCommand> parsed = ParseCommandLine(args);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, ParsedCommand::Kind::kDoctor);
  const leakguard::tools::DoctorCommandOptions& doctor = parsed->doctor;
  EXPECT_EQ(doctor.module, "pkg.mod");
  EXPECT_EQ(doctor.script, "");
  EXPECT_EQ(doctor.func, "handle");
  EXPECT_EQ(doctor.doctor.warmup, 0);
  EXPECT_EQ(doctor.doctor.repeat, 5);
  EXPECT_EQ(doctor.html_path, "r.html");
  EXPECT_TRUE(doctor.doctor.want_dot);  // The page shows the holder's chain.
  EXPECT_EQ(doctor.progress, 0);
}

TEST(CliArgsTest, BadValuesAreInvalidArgumentWithTheCommandsMessage) {
  const std::vector<std::string_view> threshold = {"run", "--threshold", "10X", "a.py"};
  absl::StatusOr<ParsedCommand> parsed = ParseCommandLine(threshold);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(),
            "--threshold needs a positive size like 4096, 512K, 10M or 1G, got '10X'");
  const std::vector<std::string_view> repeat = {"doctor", "a.py:f", "--repeat", "1"};
  parsed = ParseCommandLine(repeat);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "--repeat needs a number in 2..10000, got '1'");
  parsed = ParseCommandLine({});
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "missing command");
  // A size past 2^50 bytes overflows nothing: it is refused.
  const std::vector<std::string_view> huge = {"run", "--threshold", "1048577G", "a.py"};
  EXPECT_EQ(ParseCommandLine(huge).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CliTest, TheCommandPrintsTheParsersMessageThenTheUsage) {
  const std::vector<std::string_view> args = {"doctor", "a.py:f", "b.py:g"};
  const absl::Status status = ParseCommandLine(args).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  Outcome r = Spawn({Tool(), "doctor", "a.py:f", "b.py:g"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("leakguard: " + std::string(status.message()) + "\nusage: "));
  EXPECT_EQ(r.out, "");
}

}  // namespace
