// Profile: built from tracemalloc snapshots and diffs; written to a file.

#include "leakguard/profile.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "leakguard/counters.h"

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

}  // namespace

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
  std::stable_sort(grown.begin(), grown.end(), [](const auto* a, const auto* b) {
    return a->size_diff > b->size_diff;
  });
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
