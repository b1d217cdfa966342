// Process facts from /proc and libc, against allocations, descriptors and
// threads the test makes itself, and against fake /proc trees.

#include "leakguard/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "leakguard/python/gil.h"
#include "test_util.h"

namespace leakguard {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kMiB = 1024 * 1024;

TEST(ProcessTest, SampleIsPlausible) {
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_GT(sample->rss_bytes, 1 * kMiB);
  EXPECT_GE(sample->peak_rss_bytes, sample->rss_bytes);
  EXPECT_GE(sample->open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(sample->threads, 1);
}

TEST(ProcessTest, TouchingSixtyFourMiBRaisesRssByAtLeastThat) {
  const SampleProcessOptions with_heap{.native_heap = true};
  ProcessSample before = *SampleProcess(with_heap);
  constexpr size_t kSize = 64 * kMiB;
  char* block = static_cast<char*>(std::malloc(kSize));
  ASSERT_NE(block, nullptr);
  ::leakguard::testing::TouchEveryPage(block, kSize, 0x5a);
  ProcessSample during = *SampleProcess(with_heap);
  ProcessDelta delta = during - before;
  EXPECT_GE(delta.rss_bytes, 64 * kMiB);
  EXPECT_GE(during.peak_rss_bytes, during.rss_bytes);
  if (before.native_heap_bytes.has_value()) {
    ASSERT_TRUE(delta.native_heap_bytes.has_value());
    EXPECT_GE(*delta.native_heap_bytes, 64 * kMiB);
  } else {
    GTEST_LOG_(INFO) << "native heap not readable in this build (sanitizer)";
  }
  ::leakguard::testing::Publish(block);  // Alive until here.
  std::free(block);
  ProcessSample after = *SampleProcess(with_heap);
  if (before.native_heap_bytes.has_value()) {
    // glibc returns a 64 MiB mmapped chunk to the kernel on free (a
    // sanitizer's allocator keeps it in quarantine instead).
    EXPECT_LT(after.rss_bytes, during.rss_bytes - 32 * kMiB);
  }
}

// mallinfo2() walks the C heap's free lists: read only when asked.
TEST(ProcessTest, NativeHeapOnlyWhenAsked) {
  EXPECT_FALSE(SampleProcess()->native_heap_bytes.has_value());
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#if !defined(__has_feature)
  EXPECT_TRUE(SampleProcess({.native_heap = true})->native_heap_bytes.has_value());
#elif !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer)
  EXPECT_TRUE(SampleProcess({.native_heap = true})->native_heap_bytes.has_value());
#endif
#endif
}

// The descriptors SampleProcess() keeps open (/proc/self/statm, status and
// fd/) are leakguard's, not the program's: a fresh listing of the same
// directory counts exactly those three more.
TEST(ProcessTest, OwnDescriptorsAreNotCounted) {
  ASSERT_TRUE(ReadRss().ok());
  const ProcessSample kept = *SampleProcess();
  const ProcessSample listed = *SampleProcessAt("/proc/self");
  EXPECT_EQ(listed.open_fds - kept.open_fds, 3);
}

// A host that closes every descriptor (as daemons do) and opens files that
// get the same numbers: leakguard notices its descriptors are gone, opens
// its own again, counts the host's files, and never closes them.
TEST(ProcessTest, DescriptorsTheHostReusedAreLeftToTheHost) {
  ASSERT_TRUE(ReadRss().ok());
  ASSERT_TRUE(SampleProcess().ok());
  // leakguard's three: the entries of /proc/self/fd that point into /proc.
  std::vector<int> kept;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const std::string target = fs::read_symlink(entry.path(), error).string();
    if (!error && target.rfind("/proc/", 0) == 0 && target.find("/fd") != target.size() - 3) {
      kept.push_back(std::stoi(entry.path().filename().string()));
    }
  }
  // The iterator's own descriptor pointed at /proc/self/fd too; it is gone.
  ASSERT_EQ(kept.size(), 2u);  // statm and status; fd/ is a directory of fd
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  for (int fd : kept) ASSERT_EQ(::dup2(null_fd, fd), fd);  // the host's now
  ::close(null_fd);
  absl::StatusOr<int64_t> rss = ReadRss();
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_GT(*rss, 1 * kMiB);
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_GT(sample->rss_bytes, 1 * kMiB);
  // The host's two files count; leakguard's three new ones do not.
  EXPECT_EQ(SampleProcessAt("/proc/self")->open_fds - sample->open_fds, 3);
  for (int fd : kept) {
    std::error_code error;
    EXPECT_EQ(fs::read_symlink("/proc/self/fd/" + std::to_string(fd), error).string(),
              "/dev/null")
        << fd;  // Still the host's, still open.
    ::close(fd);
  }
}

// A forked child reads its own /proc/self, not the parent's through the
// inherited descriptors, and does not count the copies it inherited.
TEST(ProcessTest, AForkedChildReadsItsOwnProcess) {
  GilRelease no_gil;                  // Nothing here touches Python.
  ASSERT_TRUE(SampleProcess().ok());  // The parent's descriptors are open.
  // A second thread in the parent, so that its status says "Threads: 2"
  // (or more) and the child's, read through its own descriptor, says 1.
  std::latch done(1);
  std::thread waiter([&] { done.wait(); });
  ASSERT_GE(SampleProcess()->threads, 2);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    // The child is single-threaded; the parent's test runner has threads.
    absl::StatusOr<ProcessSample> sample = SampleProcess();
    absl::StatusOr<ProcessSample> listed = SampleProcessAt("/proc/self");
    int code = 1;
    if (sample.ok() && listed.ok() && sample->threads == 1 &&
        listed->open_fds - sample->open_fds == 3) {
      code = 0;
    }
    const char byte = static_cast<char>(code);
    (void)!::write(pipe_fds[1], &byte, 1);
    ::_exit(code);
  }
  ::close(pipe_fds[1]);
  done.count_down();
  waiter.join();
  char byte = 2;
  ASSERT_EQ(::read(pipe_fds[0], &byte, 1), 1);
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(byte, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ProcessTest, FiftyOpenDescriptorsAreCounted) {
  ProcessSample before = *SampleProcess();
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  ProcessSample during = *SampleProcess();
  EXPECT_EQ((during - before).open_fds, 50);
  for (int fd : fds) ::close(fd);
  EXPECT_EQ((*SampleProcess() - before).open_fds, 0);
}

TEST(ProcessTest, ThreadsAreCounted) {
  GilRelease no_gil;  // Nothing here touches Python.
  ProcessSample before = *SampleProcess();
  std::latch started(3);
  std::latch finish(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      started.count_down();
      finish.wait();
    });
  }
  started.wait();
  ProcessSample during = *SampleProcess();
  finish.count_down();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ((during - before).threads, 3);
}

// A fake /proc/<pid> tree under a temporary directory.
class FakeProcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("leakguard-fakeproc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "fd");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteStatus(const std::string& text) { std::ofstream(dir_ / "status") << text; }
  void AddFds(int n) {
    for (int i = 0; i < n; ++i) {
      std::ofstream(dir_ / "fd" / ("fake" + std::to_string(i))) << "";
    }
  }

  fs::path dir_;
};

TEST_F(FakeProcTest, ParsesExactValues) {
  WriteStatus("Name:\tapp\nVmHWM:\t  4096 kB\nVmRSS:\t  1234 kB\nThreads:\t7\n");
  AddFds(5);
  absl::StatusOr<ProcessSample> sample = SampleProcessAt(dir_.string());
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->rss_bytes, 1234 * 1024);
  EXPECT_EQ(sample->peak_rss_bytes, 4096 * 1024);
  EXPECT_EQ(sample->threads, 7);
  EXPECT_EQ(sample->open_fds, 5);
  EXPECT_FALSE(sample->native_heap_bytes.has_value());
}

TEST_F(FakeProcTest, MissingStatusIsNotFound) {
  absl::StatusOr<ProcessSample> sample = SampleProcessAt(dir_.string());
  EXPECT_EQ(sample.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sample.status().message(), HasSubstr("/status"));
}

TEST_F(FakeProcTest, MissingFieldIsDataLoss) {
  WriteStatus("VmHWM:\t1 kB\nThreads:\t1\n");
  absl::StatusOr<ProcessSample> sample = SampleProcessAt(dir_.string());
  EXPECT_EQ(sample.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(sample.status().message(), HasSubstr("VmRSS"));
}

TEST_F(FakeProcTest, GarbageValueIsDataLoss) {
  WriteStatus("VmRSS:\tlots kB\nVmHWM:\t1 kB\nThreads:\t1\n");
  EXPECT_EQ(SampleProcessAt(dir_.string()).status().code(), absl::StatusCode::kDataLoss);
  WriteStatus("VmRSS:\t12 MB\nVmHWM:\t1 kB\nThreads:\t1\n");
  EXPECT_EQ(SampleProcessAt(dir_.string()).status().code(), absl::StatusCode::kDataLoss);
  WriteStatus("VmRSS:\t-5 kB\nVmHWM:\t1 kB\nThreads:\t1\n");
  EXPECT_EQ(SampleProcessAt(dir_.string()).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(FakeProcTest, MissingFdDirectoryIsNotFound) {
  WriteStatus("VmRSS:\t1 kB\nVmHWM:\t1 kB\nThreads:\t1\n");
  fs::remove_all(dir_ / "fd");
  absl::StatusOr<ProcessSample> sample = SampleProcessAt(dir_.string());
  EXPECT_EQ(sample.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sample.status().message(), HasSubstr("/fd"));
}

TEST(ProcessTest, NonexistentProcRootIsAnError) {
  EXPECT_FALSE(SampleProcessAt("/nonexistent/leakguard/proc").ok());
}

TEST(ProcessTest, DeltaSubtractsFieldByField) {
  ProcessSample a;
  a.rss_bytes = 100;
  a.open_fds = 5;
  a.threads = 2;
  a.native_heap_bytes = 10;
  a.taken_at = absl::FromUnixSeconds(10);
  ProcessSample b = a;
  b.rss_bytes = 40;
  b.open_fds = 7;
  b.threads = 1;
  b.native_heap_bytes = 30;
  b.taken_at = absl::FromUnixSeconds(13);
  ProcessDelta d = b - a;
  EXPECT_EQ(d.rss_bytes, -60);
  EXPECT_EQ(d.open_fds, 2);
  EXPECT_EQ(d.threads, -1);
  EXPECT_EQ(d.native_heap_bytes, 20);
  EXPECT_EQ(d.elapsed, absl::Seconds(3));
  b.native_heap_bytes.reset();
  EXPECT_FALSE((b - a).native_heap_bytes.has_value());
}

TEST(ProcessTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(-3 * kMiB), "-3.0 MiB");
  EXPECT_EQ(FormatBytes(5LL * 1024 * kMiB), "5.00 GiB");
}

}  // namespace
}  // namespace leakguard

namespace leakguard {
namespace {

TEST(ReadRssTest, AgreesWithSampleProcessAndSeesGrowth) {
  absl::StatusOr<int64_t> rss = ReadRss();
  ASSERT_TRUE(rss.ok()) << rss.status();
  absl::StatusOr<ProcessSample> sample = SampleProcess();
  ASSERT_TRUE(sample.ok());
  // Two readings moments apart: within 1 MiB of each other.
  EXPECT_NEAR(static_cast<double>(*rss), static_cast<double>(sample->rss_bytes), 1024.0 * 1024);
  constexpr size_t kSize = 32 * 1024 * 1024;
  char* block = static_cast<char*>(std::malloc(kSize));
  ASSERT_NE(block, nullptr);
  ::leakguard::testing::TouchEveryPage(block, kSize, 1);
  EXPECT_GE(*ReadRss() - *rss, static_cast<int64_t>(kSize));
  ::leakguard::testing::Publish(block);
  std::free(block);
}

TEST(ReadRssTest, ForkedChildReadsItsOwnStatm) {
  ASSERT_TRUE(ReadRss().ok());  // The parent opens its descriptor first.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child touches 48 MiB the parent never has: its RSS reading must
    // show them, which a stale parent descriptor would not.
    const int64_t before = ReadRss().value_or(-1);
    constexpr size_t kSize = 48 * 1024 * 1024;
    char* block = static_cast<char*>(std::malloc(kSize));
    if (block == nullptr) ::_exit(1);
    // Written and published: at -O3 an allocation nothing reads is
    // otherwise removed, and the child measured nothing.
    ::leakguard::testing::TouchEveryPage(block, kSize, 2);
    const int64_t after = ReadRss().value_or(-1);
    ::leakguard::testing::Publish(block);
    const char ok = (before > 0 && after - before >= static_cast<int64_t>(kSize)) ? 'y' : 'n';
    (void)!::write(pipe_fds[1], &ok, 1);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char ok = '?';
  ASSERT_EQ(::read(pipe_fds[0], &ok, 1), 1);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(ok, 'y');
}

}  // namespace
}  // namespace leakguard
