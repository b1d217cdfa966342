// leakguard/profile.h
//
// Heap profiles, and the formats profile viewers read. A Profile is a small
// neutral value (stacks of frames, each with bytes and a block count) that
// any source of allocation evidence fills: the tracemalloc probe (here: a
// snapshot's live blocks, or the growth between two snapshots) and, later,
// a sampling tracker. Renderers then write it as:
//
//   EncodePprof      pprof's profile.proto (`go tool pprof`, Pyroscope, ...)
//   RenderCollapsed  collapsed stacks ("a;b;c 1024"): flamegraph.pl, inferno,
//                    speedscope
//   RenderSpeedscope speedscope's JSON file format
//   RenderFlameGraphHtml / RenderHtmlReport
//                    one self-contained HTML page (inline CSS and JS, no
//                    network), with a flame graph and, for the report, text
//                    sections, an SVG (a Graphviz drawing, say) and the
//                    detector's rounds plotted as a time series
//
//   auto scope = tracemalloc::TracingScope::Start(25);
//   auto before = tracemalloc::Snapshot::Take();
//   RunPlugin();
//   auto after = tracemalloc::Snapshot::Take();
//   auto growth = GrowthProfile(*before, *after);          // StatusOr
//   ResolvePythonFunctions(&*growth).IgnoreError();        // names, GIL held
//   auto pb = EncodePprof(*growth);                         // bytes
//   if (absl::Status s = WriteProfileFile("growth.pb", pb); !s.ok()) return s;
//
// Pure C++: building a Profile from snapshots and rendering it need no GIL
// (taking the snapshots does). Thread-compatible values.

#ifndef LEAKGUARD_PROFILE_H_
#define LEAKGUARD_PROFILE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "leakguard/counters.h"
#include "leakguard/export.h"
#include "leakguard/leak_detector.h"
#include "leakguard/tracemalloc.h"

namespace leakguard {

/// Where a frame runs.
enum class FrameKind {
  kPython,  ///< Python code: file and line (function when known)
  kNative,  ///< native code: function (symbol) and the library as file
};

/// One frame of a profile's stack.
struct ProfileFrame {
  /// Function name; empty when unknown (tracemalloc records file and line
  /// only).
  std::string function;
  /// Source file (Python) or shared object (native).
  std::string file;
  /// Line number; 0 when unknown.
  int64_t line = 0;
  /// Python or native.
  FrameKind kind = FrameKind::kPython;

  /// The name viewers show: "function (file:line)" when the function is
  /// known, else "file:line" ("file" when the line is 0 too).
  LEAKGUARD_EXPORT std::string DisplayName() const;

  /// Field-by-field equality.
  friend bool operator==(const ProfileFrame& a, const ProfileFrame& b) {
    return a.function == b.function && a.file == b.file && a.line == b.line && a.kind == b.kind;
  }
};

/// One stack and what was allocated there.
struct ProfileSample {
  /// Frames from the outermost call (the root) to the allocation site.
  std::vector<ProfileFrame> stack;
  /// Bytes in use (in a growth profile: bytes gained).
  int64_t bytes = 0;
  /// Blocks in use (in a growth profile: blocks gained).
  int64_t count = 0;
  /// Bytes allocated over the profile's span, freed or not. tracemalloc
  /// sees live blocks only, so its profiles set this to `bytes`; a sampler
  /// that sees every allocation sets the real total.
  int64_t alloc_bytes = 0;
};

/// A heap profile.
struct Profile {
  /// What it shows ("heap", "growth"), used as a title.
  std::string name = "heap";
  /// True for the change between two moments rather than one moment.
  bool is_growth = false;
  /// The samples, in the order the source gave them (largest first for the
  /// tracemalloc constructors below).
  std::vector<ProfileSample> samples;
  /// When it was taken (or the end of the span).
  absl::Time time = absl::UnixEpoch();
  /// The span a growth profile covers (zero for one moment).
  absl::Duration duration = absl::ZeroDuration();

  /// Sum of the samples' bytes.
  LEAKGUARD_EXPORT int64_t TotalBytes() const;
};

/// Options for the tracemalloc constructors.
struct ProfileOptions {
  /// Keep at most this many stacks (the largest), 0: all.
  size_t max_samples = 0;
  /// Drop leakguard's own frames and the import machinery (OwnFrameFilters())
  /// first.
  bool filter_own_frames = true;
};

/// The live blocks of `snapshot` grouped by traceback (one sample per
/// distinct stack, largest first). InvalidArgument when the filters fail.
LEAKGUARD_EXPORT absl::StatusOr<Profile> ProfileFromSnapshot(const tracemalloc::Snapshot& snapshot,
                                                             const ProfileOptions& options = {});

/// The growth from `older` to `newer`, grouped by traceback: one sample per
/// stack that gained bytes (those that shrank or stayed are left out, as a
/// flame graph cannot draw them), largest first; `bytes` and `count` are the
/// gains. `duration` is left zero (the snapshots do not carry their time).
LEAKGUARD_EXPORT absl::StatusOr<Profile> GrowthProfile(const tracemalloc::Snapshot& older,
                                                       const tracemalloc::Snapshot& newer,
                                                       const ProfileOptions& options = {});

/// The same from an existing diff list (any grouping: kLineno keys give
/// one-frame stacks). Entries with size_diff <= 0 are left out;
/// `max_samples` applies, `filter_own_frames` does not (the diff is made).
LEAKGUARD_EXPORT Profile ProfileFromDiff(const tracemalloc::StatisticDiffList& diff,
                                         const ProfileOptions& options = {});

/// Names the Python frames that have no function (tracemalloc's) after the
/// innermost function or class whose source spans the frame's line, as
/// `co_qualname` spells it ("Cache.get", "load.<locals>.inner"; "<module>"
/// outside any), parsing each file once with Python's `ast` (source through
/// `linecache`, so code `linecache` knows about works too). Frames of files
/// that cannot be read or parsed keep an empty function. Returns how many
/// frames were named. FailedPrecondition without the GIL.
/// REQUIRES: the GIL is held.
LEAKGUARD_EXPORT absl::StatusOr<int64_t> ResolvePythonFunctions(Profile* profile);

// -------------------------------------------------------------- pprof

/// The profile as an uncompressed pprof protobuf message (profile.proto's
/// `perftools.profiles.Profile`): sample types inuse_space/bytes,
/// inuse_objects/count, alloc_space/bytes (in that order, the default
/// inuse_space); one Function per (name, file), one Location per frame with
/// its Line; the string table deduplicated. pprof reads it as is (it
/// accepts gzipped and plain files). Python frames without a function name
/// are named "file:line".
LEAKGUARD_EXPORT std::string EncodePprof(const Profile& profile);

/// Writes `bytes` to `path` (created or replaced). Errors: the errno text
/// as NotFound / PermissionDenied / Unavailable.
LEAKGUARD_EXPORT absl::Status WriteProfileFile(const std::string& path, const std::string& bytes);

// -------------------------------------------------------------- flame graphs

/// Collapsed stacks, one line per sample with bytes > 0: frame display
/// names root first joined by ';', a space, the bytes. Identical stacks are
/// summed. ';' and line breaks in names become ',' and ' '.
LEAKGUARD_EXPORT std::string RenderCollapsed(const Profile& profile);

/// speedscope's file format (https://www.speedscope.app/file-format-schema.json):
/// one "sampled" profile in bytes, frames shared with name, file and line.
LEAKGUARD_EXPORT std::string RenderSpeedscope(const Profile& profile);

/// One detector round for the time-series plot (bytes since the baseline).
struct RoundPoint {
  /// Round number.
  int64_t round = 0;
  /// RSS growth.
  int64_t rss_bytes = 0;
  /// Python traced heap growth (empty when not traced).
  std::optional<int64_t> traced_bytes;
  /// Native growth (RSS outside the traced heap), when known.
  std::optional<int64_t> native_bytes;
};

/// The detector's rounds (LeakDetector::History()) as plot points: RSS and
/// traced growth as recorded, native growth as the detector judges it (RSS
/// growth outside the traced heap, tracemalloc's tables and the detector's
/// own rounds), only for rounds that traced.
LEAKGUARD_EXPORT std::vector<RoundPoint> RoundPointsFromHistory(
    const std::vector<DetectorRound>& history);

/// Successive readings' differences (the doctor's Diagnosis::iterations,
/// one per run of the workload) as plot points: point i (numbered from 1)
/// is the growth from before the first run to after run i, RSS and traced
/// summed; native is RSS minus traced where traced is known. A run without
/// a traced reading ends the traced and native lines there.
LEAKGUARD_EXPORT std::vector<RoundPoint> RoundPointsFromDeltas(const std::vector<Counters>& deltas);

/// A page's text section: a heading and preformatted text.
struct HtmlSection {
  /// The heading.
  std::string heading;
  /// Text shown as is (escaped), line breaks kept.
  std::string text;
};

/// What RenderHtmlReport puts on one page, all optional but the title.
struct HtmlReportInput {
  /// Page title and top heading.
  std::string title = "leakguard report";
  /// Text sections, in order (verdict, causes, holders, ...).
  std::vector<HtmlSection> sections;
  /// An SVG document or fragment inserted as is (for example `dot -Tsvg`
  /// output of the back-reference graph). Must be trusted SVG: it is not
  /// sanitized. An XML prolog and DOCTYPE are dropped; text without an
  /// `<svg` element (a DOT source, say) is shown escaped, as preformatted
  /// text. Empty: none.
  std::string svg;
  /// Heading over the SVG.
  std::string svg_heading = "Back-reference graph";
  /// The flame graph's profile; no samples: no flame graph.
  Profile profile;
  /// The detector's rounds (or the doctor's iterations), plotted as RSS /
  /// traced / native lines; fewer than two points: no plot.
  std::vector<RoundPoint> rounds;
  /// What one point of `rounds` is, singular: the x axis' label and the
  /// plot's caption ("round" for the detector, "iteration" for the doctor).
  std::string rounds_unit = "round";
  /// Heading over the plot.
  std::string rounds_heading = "Rounds";
};

/// A self-contained HTML page (no network access: CSS and JS inline) with
/// an interactive flame graph of `profile` (icicle layout, root on top;
/// hover shows bytes and share, click zooms, click the root to reset). The
/// frames are drawn as DOM elements whose text is the frame's display name,
/// so a headless browser's DOM lists them.
LEAKGUARD_EXPORT std::string RenderFlameGraphHtml(const Profile& profile,
                                                  const std::string& title = "");

/// The whole report on one self-contained page: the sections, the SVG, the
/// rounds as an inline SVG plot, and the flame graph.
LEAKGUARD_EXPORT std::string RenderHtmlReport(const HtmlReportInput& input);

/// The rounds as an inline SVG line plot (one polyline per series, axes in
/// bytes and `unit`s, a legend); "" for fewer than two points.
LEAKGUARD_EXPORT std::string RenderRoundsSvg(const std::vector<RoundPoint>& rounds,
                                             std::string_view unit = "round");

}  // namespace leakguard

#endif  // LEAKGUARD_PROFILE_H_
