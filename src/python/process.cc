#include "leakguard/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "python/status_macros.h"

namespace leakguard {
namespace {

// Reads a small /proc file with plain syscalls: no iostreams, no locale,
// nothing that allocates more than the string itself.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
    }
    return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot read ", path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) break;  // /proc/*/status is a few KiB.
  }
  ::close(fd);
  return out;
}

// Value of "Key:   123 kB" in /proc/<pid>/status, in bytes when `kb`.
// Debian's Abseil is built with its own string_view, hence absl::string_view.
absl::StatusOr<int64_t> StatusField(absl::string_view status, absl::string_view key,
                                    const std::string& path, bool kb) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) {
      continue;
    }
    line = absl::StripAsciiWhitespace(line);
    if (kb && !absl::ConsumeSuffix(&line, "kB")) {
      return absl::DataLossError(
          absl::StrCat(path, ": field ", key, " is not in kB: '", line, "'"));
    }
    line = absl::StripAsciiWhitespace(line);
    int64_t value = 0;
    if (!absl::SimpleAtoi(line, &value) || value < 0) {
      return absl::DataLossError(
          absl::StrCat(path, ": field ", key, " is not a count: '", line, "'"));
    }
    return kb ? value * 1024 : value;
  }
  return absl::DataLossError(absl::StrCat(path, ": no field ", key, " (is this a Linux /proc?)"));
}

absl::StatusOr<int64_t> CountFds(const std::string& dir_path) {
  DIR* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("cannot open ", dir_path, ": ", std::strerror(err)));
    }
    return absl::UnavailableError(absl::StrCat("cannot open ", dir_path, ": ", std::strerror(err)));
  }
  // The directory stream holds a descriptor of its own; do not count it.
  const std::string own = absl::StrCat(::dirfd(dir));
  int64_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own) continue;
    ++count;
  }
  ::closedir(dir);
  return count;
}

std::optional<int64_t> NativeHeapInUse() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return std::nullopt;  // The sanitizer's allocator replaces glibc's.
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
  return std::nullopt;
#else
#define LEAKGUARD_READ_MALLINFO 1
#endif
#else
#define LEAKGUARD_READ_MALLINFO 1
#endif
#if defined(LEAKGUARD_READ_MALLINFO)
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  struct mallinfo2 info = ::mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
#else
  return std::nullopt;
#endif
#endif
}

// A /proc/self file opened once per process (per pid: a forked child must
// not read its parent's file). The fast path is two atomic loads; opening
// happens under a mutex. A descriptor is replaced when a forked child
// inherited it, or when it no longer is the file that was opened (a host
// that closes every descriptor, as daemons do, may have reused its number):
// it is closed only when it still is leakguard's file (same device and
// inode), so a host's descriptor is never closed.
struct ProcFile {
  const char* path;
  int flags;
  absl::Mutex mu;
  std::atomic<int> fd{-1};
  std::atomic<pid_t> pid{0};
  dev_t dev ABSL_GUARDED_BY(mu) = 0;  // Of the file opened.
  ino_t ino ABSL_GUARDED_BY(mu) = 0;
};

// Whether `fd` is (still) the file `file` opened.
bool IsOurs(const ProcFile& file, int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(file.mu) {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == file.dev && st.st_ino == file.ino;
}

// Never destroyed: other threads may read them during exit.
ProcFile& Statm() {
  static ProcFile* file = new ProcFile{"/proc/self/statm", O_RDONLY};
  return *file;
}
ProcFile& Status() {
  static ProcFile* file = new ProcFile{"/proc/self/status", O_RDONLY};
  return *file;
}
ProcFile& FdDir() {
  static ProcFile* file = new ProcFile{"/proc/self/fd", O_RDONLY | O_DIRECTORY};
  return *file;
}
// A directory descriptor has one position: one reader at a time.
absl::Mutex& FdDirReadMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}

// The descriptor of `file` for this process, opened on first use, and
// again when `check` finds the one kept is no longer the file opened.
// NotFound when the file does not exist (no /proc), Unavailable otherwise.
absl::StatusOr<int> OpenOnce(ProcFile& file, bool check = false) {
  const pid_t pid = ::getpid();
  if (!check && file.pid.load(std::memory_order_acquire) == pid) {
    const int fd = file.fd.load(std::memory_order_acquire);
    if (fd >= 0) return fd;
  }
  absl::MutexLock lock(&file.mu);
  const int kept = file.fd.load(std::memory_order_acquire);
  const bool ours = IsOurs(file, kept);
  if (file.pid.load(std::memory_order_acquire) == pid && (!check || ours)) return kept;
  const int fd = ::open(file.path, file.flags | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat("cannot open ", file.path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::UnavailableError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot stat ", file.path, ": ", std::strerror(err)));
  }
  // The copy a fork left, or a kept one that is still ours: closed. A number
  // the host reused: left alone.
  if (ours) ::close(kept);
  file.dev = st.st_dev;
  file.ino = st.st_ino;
  file.fd.store(fd, std::memory_order_release);
  file.pid.store(pid, std::memory_order_release);
  return fd;
}

// This process's descriptor of `file`, checked to still be the file opened
// (reopened if not), or -1 when it cannot be opened.
int OwnFd(ProcFile& file) {
  absl::StatusOr<int> fd = OpenOnce(file, /*check=*/true);
  return fd.ok() ? *fd : -1;
}

// All of a /proc file, read in place from offset 0 (the kernel makes the
// text anew for each read at offset 0).
absl::StatusOr<std::string> PreadAll(int fd, const char* path) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), static_cast<off_t>(out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) break;  // /proc/*/status is a few KiB.
  }
  return out;
}

// Entries of /proc/self/fd, less the descriptors leakguard keeps open to
// read /proc (they are its own, not the program's).
absl::StatusOr<int64_t> CountOwnProcessFds() {
  LEAKGUARD_ASSIGN_OR_RETURN(const int dir, OpenOnce(FdDir(), /*check=*/true));
  const int ours[] = {dir, OwnFd(Statm()), OwnFd(Status())};
  absl::MutexLock lock(&FdDirReadMutex());
  if (::lseek(dir, 0, SEEK_SET) < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot rewind /proc/self/fd: ", std::strerror(errno)));
  }
  alignas(8) char buf[8192];
  int64_t count = 0;
  while (true) {
    const ssize_t n = ::getdents64(dir, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("cannot read /proc/self/fd: ", std::strerror(errno)));
    }
    if (n == 0) break;
    for (ssize_t at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buf + at);
      at += entry->d_reclen;
      int fd = -1;
      if (!absl::SimpleAtoi(entry->d_name, &fd)) continue;  // "." and ".."
      if (fd == ours[0] || fd == ours[1] || fd == ours[2]) continue;
      ++count;
    }
  }
  return count;
}

}  // namespace

namespace {

// RSS from the statm descriptor `fd`.
absl::StatusOr<int64_t> RssFrom(int fd) {
  char buf[128];
  ssize_t n;
  do {
    n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot read /proc/self/statm: ", std::strerror(errno)));
  }
  buf[n] = '\0';
  // "size resident shared text lib data dt", in pages.
  absl::string_view text(buf, static_cast<size_t>(n));
  std::vector<absl::string_view> fields = absl::StrSplit(text, ' ', absl::SkipEmpty());
  int64_t pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages) || pages < 0) {
    return absl::DataLossError(
        absl::StrCat("/proc/self/statm is not 'size resident ...': '", text, "'"));
  }
  static const int64_t page_size = ::sysconf(_SC_PAGESIZE);
  return pages * page_size;
}

}  // namespace

absl::StatusOr<int64_t> ReadRss() {
  absl::StatusOr<int> opened = OpenOnce(Statm());
  if (!opened.ok()) return absl::UnavailableError(opened.status().message());
  absl::StatusOr<int64_t> rss = RssFrom(*opened);
  if (rss.ok()) return rss;
  // The descriptor may no longer be statm (a host closed it and reused the
  // number): checked, reopened if so, and read once more.
  absl::StatusOr<int> checked = OpenOnce(Statm(), /*check=*/true);
  if (!checked.ok() || *checked == *opened) return rss;
  return RssFrom(*checked);
}

ProcessDelta operator-(const ProcessSample& after, const ProcessSample& before) {
  ProcessDelta delta;
  delta.rss_bytes = after.rss_bytes - before.rss_bytes;
  delta.open_fds = after.open_fds - before.open_fds;
  delta.threads = after.threads - before.threads;
  if (after.native_heap_bytes && before.native_heap_bytes) {
    delta.native_heap_bytes = *after.native_heap_bytes - *before.native_heap_bytes;
  }
  delta.elapsed = after.taken_at - before.taken_at;
  return delta;
}

namespace {

// The fields of a sample that come from `status` (the text of a
// /proc/PID/status file read from `status_path`).
absl::StatusOr<ProcessSample> FromStatus(const std::string& status,
                                         const std::string& status_path) {
  ProcessSample sample;
  sample.taken_at = absl::Now();
  LEAKGUARD_ASSIGN_OR_RETURN(sample.rss_bytes, StatusField(status, "VmRSS", status_path, true));
  LEAKGUARD_ASSIGN_OR_RETURN(sample.peak_rss_bytes,
                             StatusField(status, "VmHWM", status_path, true));
  LEAKGUARD_ASSIGN_OR_RETURN(sample.threads, StatusField(status, "Threads", status_path, false));
  return sample;
}

}  // namespace

absl::StatusOr<ProcessSample> SampleProcessAt(std::string_view proc_dir,
                                              const SampleProcessOptions& options) {
  const std::string dir(proc_dir);
  const std::string status_path = absl::StrCat(dir, "/status");
  LEAKGUARD_ASSIGN_OR_RETURN(const std::string status, ReadSmallFile(status_path));
  LEAKGUARD_ASSIGN_OR_RETURN(ProcessSample sample, FromStatus(status, status_path));
  LEAKGUARD_ASSIGN_OR_RETURN(sample.open_fds, CountFds(absl::StrCat(dir, "/fd")));
  if (options.native_heap && proc_dir == "/proc/self") {
    sample.native_heap_bytes = NativeHeapInUse();
  }
  return sample;
}

absl::StatusOr<ProcessSample> SampleProcess(const SampleProcessOptions& options) {
  absl::StatusOr<ProcessSample> sample = [&]() -> absl::StatusOr<ProcessSample> {
    // Counted first: it checks (and if need be reopens) all three kept
    // descriptors, the status file's too.
    LEAKGUARD_ASSIGN_OR_RETURN(const int64_t fds, CountOwnProcessFds());
    LEAKGUARD_ASSIGN_OR_RETURN(const int status_fd, OpenOnce(Status()));
    LEAKGUARD_ASSIGN_OR_RETURN(const std::string status, PreadAll(status_fd, Status().path));
    LEAKGUARD_ASSIGN_OR_RETURN(ProcessSample s, FromStatus(status, Status().path));
    s.open_fds = fds;
    if (options.native_heap) s.native_heap_bytes = NativeHeapInUse();
    return s;
  }();
  if (!sample.ok() && absl::IsNotFound(sample.status())) {
    return absl::UnavailableError(
        absl::StrCat("process facts need a mounted /proc: ", sample.status().message()));
  }
  return sample;
}

std::string FormatBytes(int64_t bytes) {
  const char* sign = bytes < 0 ? "-" : "";
  const double size = bytes < 0 ? -static_cast<double>(bytes) : static_cast<double>(bytes);
  if (size < 1024) return absl::StrFormat("%s%d B", sign, static_cast<int64_t>(size));
  if (size < 1024.0 * 1024) return absl::StrFormat("%s%.1f KiB", sign, size / 1024);
  if (size < 1024.0 * 1024 * 1024) {
    return absl::StrFormat("%s%.1f MiB", sign, size / (1024.0 * 1024));
  }
  return absl::StrFormat("%s%.2f GiB", sign, size / (1024.0 * 1024 * 1024));
}

}  // namespace leakguard
