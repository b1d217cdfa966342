// The `leakguard` command as a user runs it: whole-process wall time of
// `leakguard run` on an empty script, beside python3 itself on the same
// script, measured in the same run:
//
//   cli/run_empty_script/leakguard    `leakguard run empty.py`: the command
//                                     starts its embedded CPython with
//                                     tracemalloc on (1 frame), runs the
//                                     script and prints its memory summary
//                                     at exit (to stderr)
//   cli/run_empty_script/tracemalloc  `python3 -X tracemalloc empty.py`:
//                                     tracing from start-up, no summary
//   cli/run_empty_script/python       `python3 empty.py`: the floor
//
// One iteration is fork + exec + waitpid of the whole command, its stdout and
// stderr sent to /dev/null (so printing the summary is paid, not a
// terminal), and wall time is reported (UseRealTime: the time is spent in
// the child). A command that exits non-zero fails its row. The script is an
// empty file in a fresh temporary directory. python3 is the interpreter the
// benchmarks were built against (LEAKGUARD_PYTHON_EXECUTABLE), which is the
// one `leakguard` embeds. The path of `leakguard` comes from CMake
// (LEAKGUARD_CLI_PATH, when the tools are built); without it the leakguard
// row is skipped with a message.
//
// LEAKGUARD_BENCH_SMOKE=1 changes nothing here: there is no size to shrink,
// and a start-up takes tens of milliseconds, so --benchmark_min_time=0.001
// runs each row once.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_main.h"
#include "benchmark/benchmark.h"

namespace {

// Runs `argv` (argv[0]: an absolute path) to its end with stdin, stdout and
// stderr on /dev/null. Its exit status, 128 + the signal that ended it, or
// -1 when it could not be started or waited for.
int RunToEnd(const std::vector<char*>& argv) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    const int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void RunCommand(benchmark::State& state, std::vector<std::string> command) {
  std::vector<char*> argv;
  for (std::string& arg : command) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (auto _ : state) {
    const int status = RunToEnd(argv);
    if (status != 0) {
      state.SkipWithError((command[0] + " exited with status " + std::to_string(status)).c_str());
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  char dir_template[] = "/tmp/leakguard-cli-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string script = std::string(dir) + "/empty.py";
  std::FILE* f = std::fopen(script.c_str(), "w");
  if (f == nullptr || std::fclose(f) != 0) {
    std::perror(script.c_str());
    rmdir(dir);
    return 1;
  }
  const std::string python = LEAKGUARD_PYTHON_EXECUTABLE;
#if defined(LEAKGUARD_CLI_PATH)
  benchmark::RegisterBenchmark("cli/run_empty_script/leakguard", RunCommand,
                               std::vector<std::string>{LEAKGUARD_CLI_PATH, "run", script})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
#else
  benchmark::RegisterBenchmark("cli/run_empty_script/leakguard", [](benchmark::State& state) {
    state.SkipWithError("built without the leakguard command (LEAKGUARD_BUILD_TOOLS=OFF)");
  })->Unit(benchmark::kMillisecond);
#endif
  benchmark::RegisterBenchmark("cli/run_empty_script/tracemalloc", RunCommand,
                               std::vector<std::string>{python, "-X", "tracemalloc", script})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("cli/run_empty_script/python", RunCommand,
                               std::vector<std::string>{python, script})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  const int status = leakguard::bench::RunRegistered(argc, argv);
  unlink(script.c_str());
  rmdir(dir);
  return status;
}
